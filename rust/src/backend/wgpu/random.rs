//! Random numbers drawn on the GPU (`kernels/random.wgsl`): uniform and normal fills
//! and dropout's keep masks, from a counter-based hash keyed by a 64-bit seed, so no
//! generator state lives on the device and no draw crosses the bus.
//!
//! The numbers are not the CPU generator's (ChaCha8 there): a seed gives the same
//! numbers on every GPU run, and the same distribution as the CPU, not the same values.
use super::elementwise::{family, word, WG};
use super::kernel::{f32_bits, groups_1d, launch, Kernel};
use super::pool::GpuBuffer;
use crate::error::Result;

const RANDOM: Kernel = family!("random");

fn draw(entry: &str, n: usize, seed: u64, a: f32, b: f32) -> Result<GpuBuffer> {
    let out = GpuBuffer::new(n)?;
    let w = [word(n, "elements")?, seed as u32, (seed >> 32) as u32, f32_bits(a), f32_bits(b)];
    launch(&RANDOM, entry, &[], &[&out], &w, groups_1d(n, WG))?;
    Ok(out)
}

/// `n` uniform numbers in `[lo, hi)` keyed by `seed`.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, random::uniform, transfer};
/// if gpu_available() {
///     let u = transfer::download(&uniform(1000, 7, 2.0, 3.0).unwrap()).unwrap();
///     assert!(u.iter().all(|&v| (2.0..3.0).contains(&v)));
///     assert_eq!(u, transfer::download(&uniform(1000, 7, 2.0, 3.0).unwrap()).unwrap()); // same seed, same draw
/// }
/// ```
pub fn uniform(n: usize, seed: u64, lo: f32, hi: f32) -> Result<GpuBuffer> { draw("uniform", n, seed, lo, hi) }

/// `n` normal numbers with mean `mean` and standard deviation `std`, keyed by `seed`.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, random::normal, transfer};
/// if gpu_available() {
///     let v = transfer::download(&normal(4096, 1, 0.0, 1.0).unwrap()).unwrap();
///     let mean = v.iter().sum::<f32>() / 4096.0;
///     assert!(mean.abs() < 0.1 && v.iter().all(|x| x.is_finite()));
/// }
/// ```
pub fn normal(n: usize, seed: u64, mean: f32, std: f32) -> Result<GpuBuffer> { draw("normal", n, seed, mean, std) }

/// Dropout's mask: `n` entries, each `keep` where a uniform draw exceeds `p` (probability
/// 1 − p) and 0 otherwise, keyed by `seed`.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, random::keep_mask, transfer};
/// if gpu_available() {
///     let m = transfer::download(&keep_mask(1000, 3, 0.5, 2.0).unwrap()).unwrap();
///     assert!(m.iter().all(|&v| v == 0.0 || v == 2.0));
/// }
/// ```
pub fn keep_mask(n: usize, seed: u64, p: f32, keep: f32) -> Result<GpuBuffer> { draw("keep_mask", n, seed, p, keep) }
