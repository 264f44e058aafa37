//! Random numbers: a seedable global generator (`seed`) and explicit [`Rng`]s, both
//! ChaCha8 so that a seed gives the same numbers on every platform.
use std::sync::Mutex;

use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::{DType, Tensor};

/// A reproducible random generator.
#[derive(Clone, Debug)]
pub struct Rng(pub ChaCha8Rng);

impl Rng {
    /// A generator seeded with `n`.
    pub fn seed(n: u64) -> Rng { Rng(ChaCha8Rng::seed_from_u64(n)) }
    /// A uniform number in [0, 1).
    pub fn uniform(&mut self) -> f64 { self.0.random::<f64>() }
    /// A 64-bit key for a counter-based generator (the GPU's draws), one per call.
    ///
    /// ```
    /// use flux_core::tensor::random::Rng;
    /// assert_eq!(Rng::seed(3).key(), Rng::seed(3).key());
    /// ```
    pub fn key(&mut self) -> u64 { self.0.random::<u64>() }
    /// A standard normal number.
    pub fn normal(&mut self) -> f64 { StandardNormal.sample(&mut self.0) }
    /// A uniform integer in 0..n.
    pub fn below(&mut self, n: usize) -> usize { self.0.random_range(0..n.max(1)) }
    /// A random permutation of 0..n (Fisher–Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.0.random_range(0..=i);
            v.swap(i, j);
        }
        v
    }
    /// Uniform numbers in [lo, hi).
    pub fn uniform_tensor(&mut self, shape: &[usize], lo: f64, hi: f64, dtype: DType) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| lo + (hi - lo) * self.uniform()).collect();
        from_f64(v, shape, dtype)
    }
    /// Normal numbers with the given mean and standard deviation.
    pub fn normal_tensor(&mut self, shape: &[usize], mean: f64, std: f64, dtype: DType) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| mean + std * self.normal()).collect();
        from_f64(v, shape, dtype)
    }
}

fn from_f64(v: Vec<f64>, shape: &[usize], dtype: DType) -> Tensor {

    crate::dispatch!(dtype, T => Tensor::from_cpu(T::vec_into(v.into_iter().map(T::f).collect()), shape))
}

static GLOBAL: Mutex<Option<Rng>> = Mutex::new(None);

/// Reseed the global generator (Python's `fx.seed`).
pub fn seed(n: u64) { *GLOBAL.lock().unwrap() = Some(Rng::seed(n)); }

/// Run `f` with the global generator (seeded from the clock until `seed` is called).
pub fn with_global<R>(f: impl FnOnce(&mut Rng) -> R) -> R {
    let mut g = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = g.get_or_insert_with(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        Rng::seed(t)
    });
    f(r)
}
