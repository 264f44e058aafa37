//! Train the MNIST MLP of the `mnist` example on the GPU (the wgpu backend), with the
//! same `Module`/`Rule`/`train` API:
//! `cargo run --release -p flux-core --features wgpu --example mnist_gpu [path/to/mnist.npz] [epochs] [images]`
//! (an empty path is the default).
//! The default data is the subset that ships in the repository's data/ folder; `images`
//! keeps only the first that many training and test images (CI runs a few hundred on
//! Mesa's lavapipe, a CPU Vulkan device). Prints the adapter, the loss and accuracy per
//! epoch, and how many bytes came back from the device per training step (the loss:
//! 4 bytes).
#[path = "common/mnist_data.rs"]
mod mnist_data;

use flux_core::backend::wgpu::{gpu_info, transfer};
use flux_core::data::{onehot, DataLoader, LoaderOptions};
use flux_core::nn::{losses, to_device_, Chain, Module};
use flux_core::{optim, train, DType, Device, Result, Tensor};
use mnist_data::accuracy;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).filter(|p| !p.is_empty()).cloned().unwrap_or_else(|| mnist_data::SUBSET.into());
    let epochs: usize = args.get(2).and_then(|e| e.parse().ok()).unwrap_or(3);
    let limit: Option<usize> = args.get(3).and_then(|n| n.parse().ok());
    let gpu = Device::wgpu()?;
    let info = gpu_info()?;
    println!("adapter: {} ({}, {}, driver {})", info.name, info.backend, info.device_type, info.driver);
    let d = mnist_data::load(&path, limit)?;
    println!("data: {} training and {} test images from {path}", d.y_train.len(), d.y_test.len());

    let mut model = mnist_data::mlp();
    to_device_(&mut model, gpu)?;
    // set up after the move: Adam's moments live on the GPU beside the parameters
    let mut state = optim::setup(&optim::Adam::default().eta(1e-3), &model)?;
    let mut loader = DataLoader::new(d.x_train, onehot(&d.y_train, 10, DType::F32)?, LoaderOptions::default().batchsize(128).shuffle(true))?;
    let x_test = d.x_test.to_device(gpu)?;
    let loss = |m: &Chain, x: &Tensor, y: &Tensor| losses::logitcrossentropy(&m.forward(x)?, y, -1, losses::Agg::Mean);
    for epoch in 1..=epochs {
        let t0 = std::time::Instant::now();
        let (reads0, bytes0) = transfer::reads();
        // each batch goes up to the GPU; nothing but the loss comes back
        let batches = loader.epoch().map(|b| b.and_then(|(x, y)| Ok((x.to_device(gpu)?, y.to_device(gpu)?))));
        let ls = train::train(&mut model, loss, batches, &mut state)?;
        let (reads1, bytes1) = transfer::reads();
        let mean = ls.iter().sum::<f64>() / ls.len() as f64;
        println!(
            "epoch {epoch}: mean loss {mean:.4}, test accuracy {:.4} ({:.2} s; {} steps read back {} bytes in {} reads)",
            accuracy(&model, &x_test, &d.y_test)?,
            t0.elapsed().as_secs_f64(),
            ls.len(),
            bytes1 - bytes0,
            reads1 - reads0
        );
    }
    Ok(())
}
