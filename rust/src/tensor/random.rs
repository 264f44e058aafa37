//! Random numbers: a seedable global generator (`seed`) and explicit [`Rng`]s, both
//! ChaCha8 so that a seed gives the same numbers on every platform.
use std::sync::Mutex;

use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::{DType, Tensor};

/// A reproducible random generator.
///
/// ```
/// use flux_core::tensor::random::Rng;
/// let (mut a, mut b) = (Rng::seed(7), Rng::seed(7));
/// assert_eq!(a.uniform(), b.uniform()); // the same seed, the same stream
/// ```
#[derive(Clone, Debug)]
pub struct Rng(pub ChaCha8Rng);

/// Numbers, integers, permutations and random tensors from one seeded stream.
///
/// ```
/// use flux_core::tensor::random::Rng;
/// let mut r = Rng::seed(1);
/// assert!(r.below(10) < 10);
/// ```
impl Rng {
    /// A generator seeded with `n`.
    ///
    /// ```
    /// use flux_core::tensor::random::Rng;
    /// assert_eq!(Rng::seed(3).normal(), Rng::seed(3).normal());
    /// assert_ne!(Rng::seed(3).uniform(), Rng::seed(4).uniform());
    /// ```
    pub fn seed(n: u64) -> Rng { Rng(ChaCha8Rng::seed_from_u64(n)) }
    /// A uniform number in [0, 1).
    ///
    /// ```
    /// use flux_core::tensor::random::Rng;
    /// let mut r = Rng::seed(0);
    /// assert!((0..100).map(|_| r.uniform()).all(|u| (0.0..1.0).contains(&u)));
    /// ```
    pub fn uniform(&mut self) -> f64 { self.0.random::<f64>() }
    /// A 64-bit key for a counter-based generator (the GPU's draws), one per call.
    ///
    /// ```
    /// use flux_core::tensor::random::Rng;
    /// assert_eq!(Rng::seed(3).key(), Rng::seed(3).key());
    /// ```
    pub fn key(&mut self) -> u64 { self.0.random::<u64>() }
    /// A standard normal number.
    ///
    /// ```
    /// use flux_core::tensor::random::Rng;
    /// let mut r = Rng::seed(0);
    /// let mean = (0..10_000).map(|_| r.normal()).sum::<f64>() / 10_000.0;
    /// assert!(mean.abs() < 0.05);
    /// ```
    pub fn normal(&mut self) -> f64 { StandardNormal.sample(&mut self.0) }
    /// A uniform integer in 0..n.
    ///
    /// ```
    /// use flux_core::tensor::random::Rng;
    /// let mut r = Rng::seed(0);
    /// assert!((0..100).all(|_| r.below(3) < 3));
    /// assert_eq!(r.below(0), 0); // an empty range gives 0
    /// ```
    pub fn below(&mut self, n: usize) -> usize { self.0.random_range(0..n.max(1)) }
    /// A random permutation of 0..n (Fisher–Yates).
    ///
    /// ```
    /// use flux_core::tensor::random::Rng;
    /// let mut p = Rng::seed(0).permutation(5);
    /// p.sort();
    /// assert_eq!(p, vec![0, 1, 2, 3, 4]);
    /// ```
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.0.random_range(0..=i);
            v.swap(i, j);
        }
        v
    }
    /// Uniform numbers in [lo, hi).
    ///
    /// The tensor is made in host memory: the stream runs on the host, so a seed gives
    /// the same numbers whichever device they end up on. For the GPU, move it with
    /// [`Tensor::to_device`], or build a whole model on the CPU and move it once with
    /// [`nn::to_device_`](crate::nn::to_device_) (parameters and running statistics).
    ///
    /// ```
    /// use flux_core::{DType, Device, tensor::random::Rng};
    /// let t = Rng::seed(0).uniform_tensor(&[100], -2.0, -1.0, DType::F32);
    /// assert!(t.to_vec_f64().unwrap().iter().all(|&v| (-2.0..-1.0).contains(&v)));
    /// if let Ok(gpu) = Device::wgpu() {
    ///     let g = Rng::seed(0).uniform_tensor(&[100], -2.0, -1.0, DType::F32).to_device(gpu).unwrap();
    ///     assert_eq!(g.to_vec_f64().unwrap(), t.to_vec_f64().unwrap()); // the same draw on the GPU
    /// }
    /// ```
    pub fn uniform_tensor(&mut self, shape: &[usize], lo: f64, hi: f64, dtype: DType) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| lo + (hi - lo) * self.uniform()).collect();
        from_f64(v, shape, dtype)
    }
    /// Normal numbers with the given mean and standard deviation, in host memory (see
    /// [`Rng::uniform_tensor`] for the GPU).
    ///
    /// ```
    /// use flux_core::{DType, tensor::random::Rng};
    /// let t = Rng::seed(0).normal_tensor(&[10_000], 5.0, 0.1, DType::F64);
    /// assert!((t.mean(None, false).unwrap().item().unwrap() - 5.0).abs() < 0.01);
    /// ```
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
///
/// ```
/// use flux_core::tensor::random::{seed, with_global};
/// seed(42);
/// let a = with_global(|r| r.uniform());
/// seed(42);
/// assert_eq!(with_global(|r| r.uniform()), a);
/// ```
pub fn seed(n: u64) { *GLOBAL.lock().unwrap() = Some(Rng::seed(n)); }

/// Run `f` with the global generator (seeded from the clock until `seed` is called).
///
/// ```
/// use flux_core::tensor::random::with_global;
/// let p = with_global(|r| r.permutation(3));
/// assert_eq!(p.len(), 3);
/// ```
pub fn with_global<R>(f: impl FnOnce(&mut Rng) -> R) -> R {
    let mut g = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = g.get_or_insert_with(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        Rng::seed(t)
    });
    f(r)
}
