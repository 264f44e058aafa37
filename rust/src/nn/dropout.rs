//! [`Dropout`] and [`AlphaDropout`]: active only in training (`forward_t(x, true)`, or
//! `forward` while a gradient is recorded), each one fused op of [`crate::ops::dropout`].
use std::sync::Mutex;

use super::Module;
use crate::error::{value_err, Error, Result};
use crate::ops::dropout::{alpha_dropout, dropout};
use crate::tensor::random::{self, Rng};
use crate::tensor::Tensor;

/// Where a dropout layer draws from: its own generator, or the global one.
///
/// ```
/// use flux_core::nn::dropout::{Dropout, Source};
/// assert!(matches!(Dropout::new(0.5).unwrap().rng, Source::Global));
/// assert!(matches!(Dropout::new(0.5).unwrap().seed(1).rng, Source::Own(_)));
/// ```
#[derive(Debug, Default)]
pub enum Source {
    /// The process-wide generator (`random::seed` reseeds it).
    #[default]
    Global,
    /// A generator of the layer's own.
    Own(Mutex<Rng>),
}

/// Drawing from the chosen generator (crate-internal).
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Module, dropout::Dropout}};
/// // two layers with their own generators, seeded alike, drop alike
/// let x = Tensor::ones(&[64], DType::F32);
/// let (a, b) = (Dropout::new(0.5).unwrap().seed(9), Dropout::new(0.5).unwrap().seed(9));
/// assert_eq!(a.forward_t(&x, true).unwrap().to_vec_f64().unwrap(), b.forward_t(&x, true).unwrap().to_vec_f64().unwrap());
/// ```
impl Source {
    fn with<R>(&self, f: impl FnOnce(&mut Rng) -> Result<R>) -> Result<R> {
        match self {
            Source::Global => random::with_global(f),
            Source::Own(m) => f(&mut *m.lock().map_err(|_| Error::Value("dropout generator poisoned by a panic".into()))?),
        }
    }
}

fn check_p(p: f64) -> Result<f64> { crate::tensor::dropout::check_p(p).map(|_| p) }

/// The shape of a mask that varies along `dims` only (all dimensions when `None`).
///
/// ```
/// use flux_core::nn::dropout::mask_shape;
/// assert_eq!(mask_shape(&[4, 6, 3, 3], Some(&[1])).unwrap(), vec![1, 6, 1, 1]);
/// assert_eq!(mask_shape(&[4, 6], Some(&[-1])).unwrap(), vec![1, 6]);
/// assert!(mask_shape(&[4, 6], Some(&[2])).is_err());
/// ```
pub fn mask_shape(shape: &[usize], dims: Option<&[isize]>) -> Result<Vec<usize>> {
    let Some(dims) = dims else { return Ok(shape.to_vec()) };
    let nd = shape.len() as isize;
    let mut keep = vec![false; shape.len()];
    for &d in dims {
        if !(-nd..nd).contains(&d) {
            return Err(value_err!("dropout dims {dims:?} out of range for an input of shape {}", super::norm::tuple(shape)));
        }
        keep[d.rem_euclid(nd) as usize] = true;
    }
    Ok(shape.iter().zip(keep).map(|(&s, k)| if k { s } else { 1 }).collect())
}

/// Dropout with probability `p`: in training each element (or, with `dims`, each slice
/// along those dimensions) is zeroed with probability `p` and the rest scaled by
/// 1/(1−p); the identity in inference.
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Module, dropout::Dropout}};
/// let d = Dropout::new(0.5).unwrap().dims(&[1]).seed(3);
/// let x = Tensor::ones(&[4, 6], DType::F32);
/// assert_eq!(d.forward_t(&x, false).unwrap().to_vec_f64().unwrap(), vec![1.0; 24]);
/// let y = d.forward_t(&x, true).unwrap().to_vec_f64().unwrap();
/// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
/// assert!(y.chunks(6).all(|r| r == &y[..6]));                    // one decision per column
/// ```
#[derive(Debug)]
pub struct Dropout {
    /// Drop probability.
    pub p: f64,
    /// Dimensions along which the mask varies (`None`: all).
    pub dims: Option<Vec<isize>>,
    /// The generator drawn from.
    pub rng: Source,
}

/// Constructor and builders.
///
/// ```
/// use flux_core::nn::dropout::Dropout;
/// let d = Dropout::new(0.3).unwrap().dims(&[1]);
/// assert_eq!((d.p, d.dims), (0.3, Some(vec![1])));
/// ```
impl Dropout {
    /// Probability `p` in [0, 1], every element on its own, the global generator.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, dropout::Dropout}};
    /// let d = Dropout::new(0.5).unwrap().seed(3);
    /// let x = Tensor::ones(&[1000], DType::F64);
    /// let y = d.forward_t(&x, true).unwrap().to_vec_f64().unwrap();
    /// // kept values are scaled by 1/(1 − p), so the mean stays near 1
    /// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
    /// assert_eq!(d.forward_t(&x, false).unwrap().to_vec_f64().unwrap(), vec![1.0; 1000]);
    /// assert!(Dropout::new(1.5).is_err());
    /// ```
    pub fn new(p: f64) -> Result<Dropout> { Ok(Dropout { p: check_p(p)?, dims: None, rng: Source::Global }) }
    /// One decision per slice: the mask varies along `dims` only.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, dropout::Dropout}};
    /// // one decision per row: whole rows are kept or dropped
    /// let d = Dropout::new(0.5).unwrap().dims(&[0]).seed(1);
    /// let y = d.forward_t(&Tensor::ones(&[6, 4], DType::F32), true).unwrap().to_vec_f64().unwrap();
    /// assert!(y.chunks(4).all(|r| r.iter().all(|&v| v == r[0])));
    /// ```
    pub fn dims(mut self, dims: &[isize]) -> Self {
        self.dims = Some(dims.to_vec());
        self
    }
    /// A generator of the layer's own, seeded with `seed`.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, dropout::Dropout}};
    /// let x = Tensor::ones(&[64], DType::F32);
    /// let y1 = Dropout::new(0.5).unwrap().seed(7).forward_t(&x, true).unwrap();
    /// let y2 = Dropout::new(0.5).unwrap().seed(7).forward_t(&x, true).unwrap();
    /// assert_eq!(y1.to_vec_f64().unwrap(), y2.to_vec_f64().unwrap()); // reproducible
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.rng = Source::Own(Mutex::new(Rng::seed(seed)));
        self
    }
}

impl Module for Dropout {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        let ms = mask_shape(x.shape(), self.dims.as_deref())?;
        self.rng.with(|r| dropout(x, self.p, &ms, r))
    }
    crate::module_params!();
}

/// Alpha dropout for self-normalising (SELU) networks: dropped values become SELU's
/// saturation value and an affine correction keeps mean and variance; the identity in
/// inference.
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Module, dropout::AlphaDropout}};
/// let d = AlphaDropout::new(1.0).unwrap().seed(0);
/// let x = Tensor::ones(&[3], DType::F64);
/// assert_eq!(d.forward_t(&x, true).unwrap().to_vec_f64().unwrap(), vec![0.0; 3]);
/// assert_eq!(d.forward_t(&x, false).unwrap().to_vec_f64().unwrap(), vec![1.0; 3]);
/// ```
#[derive(Debug)]
pub struct AlphaDropout {
    /// Drop probability.
    pub p: f64,
    /// The generator drawn from.
    pub rng: Source,
}

/// Constructor and builder.
///
/// ```
/// use flux_core::nn::dropout::AlphaDropout;
/// assert_eq!(AlphaDropout::new(0.1).unwrap().p, 0.1);
/// ```
impl AlphaDropout {
    /// Probability `p` in [0, 1], the global generator.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, dropout::AlphaDropout}};
    /// let d = AlphaDropout::new(0.2).unwrap().seed(4);
    /// let x = Tensor::zeros(&[4], DType::F64);
    /// assert_eq!(d.forward_t(&x, false).unwrap().to_vec_f64().unwrap(), vec![0.0; 4]);  // the identity in inference
    /// assert!(AlphaDropout::new(-0.1).is_err());
    /// ```
    pub fn new(p: f64) -> Result<AlphaDropout> { Ok(AlphaDropout { p: check_p(p)?, rng: Source::Global }) }
    /// A generator of the layer's own, seeded with `seed`.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, dropout::AlphaDropout}};
    /// let x = Tensor::ones(&[64], DType::F32);
    /// let y1 = AlphaDropout::new(0.5).unwrap().seed(3).forward_t(&x, true).unwrap();
    /// let y2 = AlphaDropout::new(0.5).unwrap().seed(3).forward_t(&x, true).unwrap();
    /// assert_eq!(y1.to_vec_f64().unwrap(), y2.to_vec_f64().unwrap());
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.rng = Source::Own(Mutex::new(Rng::seed(seed)));
        self
    }
}

impl Module for AlphaDropout {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train {
            return Ok(x.clone());
        }
        self.rng.with(|r| alpha_dropout(x, self.p, r))
    }
    crate::module_params!();
}
