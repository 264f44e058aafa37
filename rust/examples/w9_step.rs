//! W9 of the benchmarks in Rust alone, for profiling the convolutions without Python:
//! one Adam step of conv 3×3 3→32 pad 1, BatchNorm relu, conv 3×3 32→64 pad 1, BatchNorm
//! relu, maxpool 2, conv 3×3 64→64 pad 1, global mean pool, Dense(64, 10) on 64×3×32×32.
//!
//! ```text
//! cargo run --release -p flux-core --example w9_step -- 20
//! ```
//! prints the median step time of the given number of steps (default 20).
use flux_core::nn::conv::{Conv, Flatten, Pool};
use flux_core::nn::norm::BatchNorm;
use flux_core::nn::{losses, Activation, Chain, Dense, Module};
use flux_core::optim;
use flux_core::tensor::random::Rng;
use flux_core::{train, DType, Result, Tensor};

/// The Python extension's glibc settings (src/alloc.rs `keep_freed_memory`), so that the
/// harness's page faults match a step run from Python: freed memory kept, blocks from
/// 32 MiB up mapped one by one.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        // SAFETY: mallopt only sets the allocator's parameters, before any thread starts
        unsafe {
            mallopt(-3, 32 << 20); // M_MMAP_THRESHOLD
            mallopt(-1, 1 << 30); // M_TRIM_THRESHOLD
        }
    }
}

fn main() -> Result<()> {
    keep_freed_memory();
    let steps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let mut rng = Rng::seed(0);
    let conv = |i: usize, o: usize, rng: &mut Rng| Conv::with_rng(&[3, 3], i, o, DType::F32, rng).pad(1);
    let relu = Activation::from_name("relu").expect("a known activation");
    let mut m = Chain::new(vec![
        Box::new(conv(3, 32, &mut rng)),
        Box::new(BatchNorm::new(32).activation(relu)),
        Box::new(conv(32, 64, &mut rng)),
        Box::new(BatchNorm::new(64).activation(relu)),
        Box::new(Pool::max(&[2, 2])),
        Box::new(conv(64, 64, &mut rng)),
        Box::new(Pool::mean(&[16, 16])),
        Box::new(Flatten),
        Box::new(Dense::with_rng(64, 10, DType::F32, &mut rng)),
    ]);
    let x = Tensor::from_vec((0..64 * 3 * 32 * 32).map(|i| ((i * 7919 % 1000) as f32) / 500.0 - 1.0).collect(), &[64, 3, 32, 32])?;
    let labels: Vec<usize> = (0..64).map(|i| i * 7 % 10).collect();
    let y = flux_core::data::onehot(&labels, 10, DType::F32)?;
    let rule = optim::Adam::new(1e-3, (0.9, 0.999), 1e-8)?;
    let mut state = optim::setup(&rule, &m)?;
    let loss = |m: &Chain, x: &Tensor, y: &Tensor| losses::logitcrossentropy(&m.forward(x)?, y, -1, losses::Agg::Mean);
    let mut times = Vec::new();
    for _ in 0..steps + 2 {
        let t0 = std::time::Instant::now();
        let ls = train::train(&mut m, loss, std::iter::once(Ok((x.clone(), y.clone()))), &mut state)?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(ls);
    }
    let mut t = times[2..].to_vec();
    t.sort_by(|a, b| a.partial_cmp(b).expect("finite times"));
    println!("W9 step: median {:.1} ms, min {:.1} ms over {} steps", t[t.len() / 2], t[0], t.len());
    Ok(())
}
