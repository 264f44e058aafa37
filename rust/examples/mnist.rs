//! Train an MLP on MNIST with the core crate alone (no Python):
//! `cargo run --release -p flux-core --example mnist [path/to/mnist.npz] [epochs]`.
//! The default data is the subset that ships in the repository's data/ folder.
//! (`mnist_gpu` is the same on the GPU.)
#[path = "common/mnist_data.rs"]
mod mnist_data;

use flux_core::data::{onehot, DataLoader, LoaderOptions};
use flux_core::nn::{losses, Chain, Module};
use flux_core::{optim, train, DType, Result, Tensor};
use mnist_data::accuracy;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).cloned().unwrap_or_else(|| mnist_data::SUBSET.into());
    let epochs: usize = args.get(2).and_then(|e| e.parse().ok()).unwrap_or(3);
    let d = mnist_data::load(&path, None)?;
    println!("data: {} training and {} test images from {path}", d.y_train.len(), d.y_test.len());

    let mut model = mnist_data::mlp();
    let mut state = optim::setup(&optim::Adam::default().eta(1e-3), &model)?;
    let mut loader = DataLoader::new(d.x_train, onehot(&d.y_train, 10, DType::F32)?, LoaderOptions::default().batchsize(128).shuffle(true))?;
    let loss = |m: &Chain, x: &Tensor, y: &Tensor| losses::logitcrossentropy(&m.forward(x)?, y, -1, losses::Agg::Mean);
    for epoch in 1..=epochs {
        let t0 = std::time::Instant::now();
        let ls = train::train(&mut model, loss, loader.epoch(), &mut state)?;
        let mean = ls.iter().sum::<f64>() / ls.len() as f64;
        println!(
            "epoch {epoch}: mean loss {mean:.4}, test accuracy {:.4} ({:.2} s)",
            accuracy(&model, &d.x_test, &d.y_test)?,
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
