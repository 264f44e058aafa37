//! Shared by the GPU test files: the adapter (or a printed reason to skip) and
//! deterministic float32 data.
#![allow(dead_code)]

use flux_core::{Device, Tensor};

/// The GPU, or `None` after printing why the tests of `what` skip.
pub fn gpu(what: &str) -> Option<Device> {
    match Device::wgpu() {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("SKIPPED: no GPU adapter for {what}: {e}");
            None
        }
    }
}

/// A float32 tensor of `shape` with values in `[lo, hi)` from a linear congruential
/// sequence seeded by `seed`.
pub fn data(shape: &[usize], seed: u64, lo: f32, hi: f32) -> Tensor {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}
