//! Train a 2-16-1 MLP on XOR with the core crate alone: `cargo run --release --example xor`.
use flux_core::nn::{losses, Activation, Chain, Dense, Module};
use flux_core::tensor::random::Rng;
use flux_core::{optim, train, DType, Result, Tensor};

fn main() -> Result<()> {
    let mut rng = Rng::seed(0);
    let x = Tensor::from_vec(vec![0f32, 0., 0., 1., 1., 0., 1., 1.], &[4, 2])?;
    let y = Tensor::from_vec(vec![0f32, 1., 1., 0.], &[4, 1])?;
    let mut model = Chain::new(vec![
        Box::new(Dense::with_rng(2, 16, DType::F32, &mut rng).activation(Activation::Tanh)),
        Box::new(Dense::with_rng(16, 1, DType::F32, &mut rng).activation(Activation::Sigmoid)),
    ]);
    let mut state = optim::setup(&optim::Adam::default().eta(0.05), &model)?;
    let mut last = f64::NAN;
    for _ in 0..500 {
        let batches = std::iter::once(Ok((x.clone(), y.clone())));
        last = train::train(&mut model, |m, x, y| losses::mse(&m.forward(x)?, y, losses::Agg::Mean), batches, &mut state)?[0];
    }
    let pred = model.forward(&x)?.to_vec_f64()?;
    println!("final loss {last:.6}; predictions {:?}", pred.iter().map(|p| (p * 1000.0).round() / 1000.0).collect::<Vec<_>>());
    assert!(last < 0.01, "XOR did not train: loss {last}");
    Ok(())
}
