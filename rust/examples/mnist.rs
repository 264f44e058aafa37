//! Train an MLP on MNIST with the core crate alone (no Python):
//! `cargo run --release -p flux-core --example mnist [path/to/mnist.npz] [epochs]`.
//! The default data is the subset that ships in the repository's data/ folder.
use std::fs::File;
use std::io::BufReader;

use flux_core::data::{onehot, DataLoader};
use flux_core::nn::{losses, Activation, Chain, Dense, Module};
use flux_core::tensor::random::Rng;
use flux_core::{optim, train, DType, Error, Result, Tensor};

/// Images as float32 in [0, 1], shape (n, 784), and labels.
fn load(npz: &mut npyz::npz::NpzArchive<BufReader<File>>, x: &str, y: &str) -> Result<(Tensor, Vec<usize>)> {
    let io = |e: std::io::Error| Error::Io(e.to_string());
    let xa = npz.by_name(x).map_err(io)?.ok_or_else(|| Error::Io(format!("{x} missing")))?;
    let n = xa.shape()[0] as usize;
    let pixels: Vec<u8> = xa.into_vec().map_err(io)?;
    let xs = Tensor::from_vec(pixels.iter().map(|&p| p as f32 / 255.0).collect(), &[n, 784])?;
    let ya = npz.by_name(y).map_err(io)?.ok_or_else(|| Error::Io(format!("{y} missing")))?;
    let labels: Vec<u8> = ya.into_vec().map_err(io)?;
    Ok((xs, labels.into_iter().map(usize::from).collect()))
}

fn accuracy(model: &Chain, x: &Tensor, y: &[usize]) -> Result<f64> {
    let (pred, _) = model.forward(x)?.argmax(-1)?;
    Ok(pred.iter().zip(y).filter(|(p, t)| p == t).count() as f64 / y.len() as f64)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).cloned().unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../data/mnist_subset.npz").into());
    let epochs: usize = args.get(2).and_then(|e| e.parse().ok()).unwrap_or(3);
    let mut npz = npyz::npz::NpzArchive::open(&path).map_err(|e| Error::Io(format!("{path}: {e}")))?;
    let (x_train, y_train) = load(&mut npz, "x_train", "y_train")?;
    let (x_test, y_test) = load(&mut npz, "x_test", "y_test")?;
    println!("data: {} training and {} test images from {path}", y_train.len(), y_test.len());

    let mut rng = Rng::seed(0);
    let mut model = Chain::new(vec![
        Box::new(Dense::new(784, 256, Some(Activation::from_name("relu")?), DType::F32, &mut rng)),
        Box::new(Dense::new(256, 10, None, DType::F32, &mut rng)),
    ]);
    let mut state = optim::setup(&optim::Adam::new(1e-3, (0.9, 0.999), 1e-8)?, &model)?;
    let mut loader = DataLoader::new(x_train, onehot(&y_train, 10, DType::F32)?, 128, true, true, 0)?;
    let loss = |m: &Chain, x: &Tensor, y: &Tensor| losses::logitcrossentropy(&m.forward(x)?, y, -1, losses::Agg::Mean);
    for epoch in 1..=epochs {
        let t0 = std::time::Instant::now();
        let ls = train::train(&mut model, loss, loader.epoch(), &mut state)?;
        let mean = ls.iter().sum::<f64>() / ls.len() as f64;
        println!(
            "epoch {epoch}: mean loss {mean:.4}, test accuracy {:.4} ({:.2} s)",
            accuracy(&model, &x_test, &y_test)?,
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
