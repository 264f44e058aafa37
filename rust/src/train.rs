//! The training loop for native apps.
use crate::autodiff::value_and_grad;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::optim::{update, Leaf};
use crate::tensor::Tensor;

/// One epoch: for each batch, the gradient of `loss(model, x, y)` and one update.
/// Returns the loss of every batch. A non-finite loss stops with
/// [`Error::NonFiniteLoss`] before its update, keeping all earlier ones.
///
/// ```
/// use flux_core::{data::{DataLoader, LoaderOptions}, nn::{losses, Dense, Module}, optim, train::train, Tensor};
/// // fit y = 2x with one Dense(1 => 1)
/// let x = Tensor::from_vec((0..8).map(|v| v as f32 / 8.0).collect(), &[8, 1]).unwrap();
/// let y = x.mul_scalar(2.0).unwrap();
/// let mut model = Dense::new(1, 1);
/// let mut state = optim::setup(&optim::Adam::default().eta(0.1), &model).unwrap();
/// let mut data = DataLoader::new(x, y, LoaderOptions::default().batchsize(4)).unwrap();
/// let mse = |m: &Dense, x: &Tensor, y: &Tensor| losses::mse(&m.forward(x)?, y, losses::Agg::Mean);
/// let first = train(&mut model, mse, data.epoch(), &mut state).unwrap();
/// assert_eq!(first.len(), 2);
/// for _ in 0..100 {
///     train(&mut model, mse, data.epoch(), &mut state).unwrap();
/// }
/// let last = train(&mut model, mse, data.epoch(), &mut state).unwrap();
/// assert!(last[1] < first[1] / 10.0);
/// ```
pub fn train<M, L, I>(model: &mut M, loss: L, data: I, state: &mut [Leaf]) -> Result<Vec<f64>>
where
    M: Module,
    L: Fn(&M, &Tensor, &Tensor) -> Result<Tensor>,
    I: IntoIterator<Item = Result<(Tensor, Tensor)>>,
{
    let mut losses = Vec::new();
    for (index, batch) in data.into_iter().enumerate() {
        let (x, y) = batch?;
        let params: Vec<Tensor> = model.params().into_iter().cloned().collect();
        let refs: Vec<&Tensor> = params.iter().collect();
        let (l, grads) = value_and_grad(&refs, || loss(model, &x, &y))?;
        let value = l.item()?;
        if !value.is_finite() {
            return Err(Error::NonFiniteLoss { value, index });
        }
        drop(params);
        let g: Vec<Option<&Tensor>> = grads.iter().map(Option::as_ref).collect();
        update(state, model, &g)?;
        losses.push(value);
    }
    Ok(losses)
}
