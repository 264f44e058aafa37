//! The bilinear layer: `z[…, o] = σ(Σᵢⱼ x[…, i]·W[o, i, j]·y[…, j] + b[o])`.
use super::{Activation, Module};
use super::losses::py_shape;
use crate::error::{shape_err, Result};
use crate::tensor::random::Rng;
use crate::tensor::{DType, Tensor};

/// `σ(xᵀ W[o] y + b[o])` for every leading index, with `x` (..., in1), `y` (..., in2)
/// and `W` (out, in1, in2): the whole [`Bilinear`] layer in one call (the Python layer
/// calls this too). One GEMM `x · W'` with `W'` = W as (in1, out·in2), then a product
/// with `y` summed over `in2`.
///
/// ```
/// use flux_core::{Tensor, nn::{bilinear::bilinear, Activation}};
/// let x = Tensor::from_vec(vec![1.0f64, 2.0], &[1, 2]).unwrap();
/// let y = Tensor::from_vec(vec![3.0f64], &[1, 1]).unwrap();
/// let w = Tensor::from_vec(vec![1.0f64, 1.0], &[1, 2, 1]).unwrap();  // z = (x₀ + x₁)·y₀
/// assert_eq!(bilinear(&x, &y, &w, None, Activation::Identity).unwrap().to_vec_f64().unwrap(), vec![9.0]);
/// ```
pub fn bilinear(x: &Tensor, y: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Activation) -> Result<Tensor> {
    if w.ndim() != 3 {
        return Err(shape_err!("Bilinear weight must be 3-D (out, in1, in2), got shape {:?}", w.shape()));
    }
    let (out, in1, in2) = (w.shape()[0], w.shape()[1], w.shape()[2]);
    let fits = x.ndim() > 0 && y.ndim() > 0 && x.shape()[x.ndim() - 1] == in1 && y.shape()[y.ndim() - 1] == in2;
    if !fits || x.shape()[..x.ndim() - 1] != y.shape()[..y.ndim() - 1] {
        return Err(shape_err!(
            "Bilinear(({in1}, {in2}) => {out}) expects inputs (..., {in1}) and (..., {in2}) with equal leading dims, got shapes {} and {}",
            py_shape(x.shape()),
            py_shape(y.shape())
        ));
    }
    if let Some(b) = b {
        if b.shape() != [out] {
            return Err(shape_err!("Bilinear: bias must have shape ({out},), got {:?}", b.shape()));
        }
    }
    let lead = &x.shape()[..x.ndim() - 1];
    let rows: usize = lead.iter().product();
    let (xf, yf) = (x.reshape(&[rows, in1])?, y.reshape(&[rows, 1, in2])?);
    // (rows, in1) @ (in1, out·in2) → (rows, out, in2); then contract in2 with y
    let wm = w.permute(&[1, 0, 2])?.reshape(&[in1, out * in2])?;
    let u = xf.matmul(&wm)?.reshape(&[rows, out, in2])?;
    let z = u.mul(&yf)?.sum(Some(&[2]), false)?;
    let z = match b {
        Some(b) => z.add(b)?,
        None => z,
    };
    let mut shape = lead.to_vec();
    shape.push(out);
    act.apply(&z.reshape(&shape)?)
}

/// Flux's `Bilinear`: weight (out, in1, in2), bias (out,). `forward_t(x)` uses `y = x`;
/// [`Bilinear::forward2`] takes two inputs.
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Module, bilinear::Bilinear}};
/// let b = Bilinear::new(3, 4, 2);
/// let z = b.forward2(&Tensor::ones(&[5, 3], DType::F32), &Tensor::ones(&[5, 4], DType::F32), false).unwrap();
/// assert_eq!(z.shape(), &[5, 2]);
/// ```
pub struct Bilinear {
    /// The weight, shape (out, in1, in2).
    pub weight: Tensor,
    /// The bias, shape (out,), or `None` for a layer without bias.
    pub bias: Option<Tensor>,
    /// The activation applied last.
    pub act: Activation,
}

impl Bilinear {
    /// A float32 layer with a Glorot-uniform weight from the global generator, zero bias.
    pub fn new(in1: usize, in2: usize, out: usize) -> Bilinear {
        crate::tensor::random::with_global(|r| Bilinear::with_rng(in1, in2, out, DType::F32, r))
    }
    /// A layer of `dtype` whose weight is drawn from `rng`.
    ///
    /// ```
    /// use flux_core::{DType, nn::bilinear::Bilinear, tensor::random::Rng};
    /// assert_eq!(Bilinear::with_rng(3, 4, 2, DType::F64, &mut Rng::seed(1)).weight.shape(), &[2, 3, 4]);
    /// ```
    pub fn with_rng(in1: usize, in2: usize, out: usize, dtype: DType, rng: &mut Rng) -> Bilinear {
        Bilinear {
            weight: super::init::glorot_uniform(&[out, in1, in2], 1.0, dtype, rng),
            bias: Some(Tensor::zeros(&[out], dtype)),
            act: Activation::Identity,
        }
    }
    /// The same layer with activation `act`.
    pub fn activation(mut self, act: Activation) -> Bilinear {
        self.act = act;
        self
    }
    /// The same layer without a bias.
    pub fn no_bias(mut self) -> Bilinear {
        self.bias = None;
        self
    }
    /// The layer applied to two inputs `x` (..., in1) and `y` (..., in2).
    pub fn forward2(&self, x: &Tensor, y: &Tensor, _train: bool) -> Result<Tensor> { bilinear(x, y, &self.weight, self.bias.as_ref(), self.act) }
}

impl Module for Bilinear {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> { self.forward2(x, x, train) }
    crate::module_params!(weight; optional bias);
}
