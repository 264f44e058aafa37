//! Submits and dispatches per training step on the GPU: a W1-like step (MLP
//! 784-512-512-10 relu, logitcrossentropy, Adam; batch 128 unless given) through the
//! public `Module`/`train` API, with the model, the optimiser state and the batch on the
//! GPU and only the loss read back.
//!
//! ```text
//! cargo run --release -p flux-core --features wgpu --example gpu_step -- 5 128
//! ```
//! prints, for the given number of steps (default 5) at the given batch, the command
//! buffers submitted and the kernels dispatched per steady step; a third argument
//! `unbatched` submits every kernel alone, as before batching, for comparison. On Mesa's lavapipe
//! these counts are meaningful; its times are not GPU performance figures.
use flux_core::backend::wgpu::batch;
use flux_core::nn::{losses, Activation, Chain, Dense, Module};
use flux_core::optim;
use flux_core::tensor::random::Rng;
use flux_core::{train, DType, Device, Result, Tensor};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).map(|s| s.parse::<usize>().ok());
    let steps = args.next().flatten().unwrap_or(5).max(2);
    let bn = args.next().flatten().unwrap_or(128);
    if std::env::args().nth(3).as_deref() == Some("unbatched") {
        batch::set_unbatched(true);
    }
    let gpu = match Device::wgpu() {
        Ok(d) => d,
        Err(e) => {
            println!("no GPU: {e}");
            return Ok(());
        }
    };
    let info = flux_core::backend::wgpu::gpu_info()?;
    let mut rng = Rng::seed(0);
    let relu = Activation::from_name("relu").expect("a known activation");
    let mut m = Chain::new(vec![
        Box::new(Dense::with_rng(784, 512, DType::F32, &mut rng).activation(relu)),
        Box::new(Dense::with_rng(512, 512, DType::F32, &mut rng).activation(relu)),
        Box::new(Dense::with_rng(512, 10, DType::F32, &mut rng)),
    ]);
    for p in m.params_mut() {
        let moved = p.to_device(gpu)?;
        p.replace_data_(&moved);
    }
    let x = Tensor::from_vec((0..bn * 784).map(|i| ((i * 7919 % 1000) as f32) / 500.0 - 1.0).collect(), &[bn, 784])?.to_device(gpu)?;
    let labels: Vec<usize> = (0..bn).map(|i| i * 7 % 10).collect();
    let y = flux_core::data::onehot(&labels, 10, DType::F32)?.to_device(gpu)?;
    let rule = optim::Adam::new(1e-3, (0.9, 0.999), 1e-8)?;
    let mut state = optim::setup(&rule, &m)?;
    let loss = |m: &Chain, x: &Tensor, y: &Tensor| losses::logitcrossentropy(&m.forward(x)?, y, -1, losses::Agg::Mean);
    let mut per_step = Vec::new();
    for _ in 0..steps {
        let (s0, d0) = (batch::submits(), batch::dispatches());
        let t0 = std::time::Instant::now();
        let ls = train::train(&mut m, loss, std::iter::once(Ok((x.clone(), y.clone()))), &mut state)?;
        per_step.push((batch::submits() - s0, batch::dispatches() - d0, t0.elapsed().as_secs_f64() * 1e3, ls[0]));
    }
    println!("adapter: {} ({}, {})", info.name, info.backend, info.device_type);
    for (i, (s, d, ms, l)) in per_step.iter().enumerate() {
        println!("step {i}: {s} submits, {d} dispatches, loss {l:.4}, {ms:.1} ms");
    }
    let steady = &per_step[1..];
    let max_submits = steady.iter().map(|p| p.0).max().unwrap_or(0);
    let dispatches = steady.iter().map(|p| p.1).max().unwrap_or(0);
    println!("W1-like step at batch {bn}: at most {max_submits} submits and {dispatches} dispatches per steady step");
    Ok(())
}
