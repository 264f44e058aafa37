//! Normalisation layers: [`BatchNorm`], [`InstanceNorm`], [`GroupNorm`], [`LayerNorm`].
//!
//! Each is one call of the fused op [`crate::ops::norm::norm`] (standardisation,
//! affine part, activation and running-statistics update in one pass; one backward).
//! The free functions [`batch_norm`], [`instance_norm`], [`group_norm`] and
//! [`layer_norm`] take the parameters explicitly: the layers call them, and so do the
//! Python layers, which hold their parameters themselves.
//!
//! Flux's conventions: the uncorrected variance normalises; a training step updates
//! the running statistics with `μ ← (1 − m)·μ + m·mean`, `σ² ← (1 − m)·σ² + m·var·M/(M − 1)`
//! (momentum `m`, `M` values per channel).
use std::sync::Mutex;

use super::{Activation, Module, ParamPath};
use crate::error::{shape_err, value_err, Error, Result};
use crate::ops::norm::{norm, NormSpec, Stats};
use crate::tensor::{DType, Tensor};

/// ε, momentum and activation of a normalisation layer (Flux's defaults: 1e-5, 0.1,
/// identity).
///
/// ```
/// use flux_core::nn::{norm::NormOpts, Activation};
/// let o = NormOpts::default().eps(1e-3).activation(Activation::from_name("relu").unwrap());
/// assert_eq!((o.eps, o.momentum), (1e-3, 0.1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormOpts {
    /// Added to the variance.
    pub eps: f64,
    /// Weight of the new batch in the running statistics.
    pub momentum: f64,
    /// Applied after the affine part.
    pub act: Activation,
}

impl Default for NormOpts {
    fn default() -> Self { NormOpts { eps: 1e-5, momentum: 0.1, act: Activation::Identity } }
}

/// Builders, one per option.
///
/// ```
/// use flux_core::nn::norm::NormOpts;
/// assert_eq!(NormOpts::default().momentum(0.3).eps(0.1).momentum, 0.3);
/// ```
impl NormOpts {
    /// Set ε.
    ///
    /// ```
    /// use flux_core::nn::{norm::NormOpts, Activation};
    /// let o = NormOpts::default().eps(1e-3).momentum(0.01).activation(Activation::Relu);
    /// assert_eq!((o.eps, o.momentum, o.act), (1e-3, 0.01, Activation::Relu));
    /// ```
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    /// Set the momentum.
    ///
    /// ```
    /// use flux_core::nn::norm::NormOpts;
    /// assert_eq!(NormOpts::default().momentum(0.01).momentum, 0.01);
    /// ```
    pub fn momentum(mut self, m: f64) -> Self {
        self.momentum = m;
        self
    }
    /// Set the activation.
    ///
    /// ```
    /// use flux_core::nn::{norm::NormOpts, Activation};
    /// assert_eq!(NormOpts::default().activation(Activation::Tanh).act, Activation::Tanh);
    /// ```
    pub fn activation(mut self, act: Activation) -> Self {
        self.act = act;
        self
    }
}

/// A shape as Python writes it: `(3, 5)`, `(5,)`.
pub(crate) fn tuple(s: &[usize]) -> String {
    match s {
        [a] => format!("({a},)"),
        _ => format!("({})", s.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

fn check_channels(what: &str, x: &Tensor, chs: usize) -> Result<()> {
    if x.ndim() < 2 || x.shape()[1] != chs {
        return Err(shape_err!(
            "{what}({chs}) expects input (batch, {chs}, ...) with {chs} channels in dimension 1, got shape {}",
            tuple(x.shape())
        ));
    }
    Ok(())
}

/// Batch normalisation of `x` (N, C, ...) over every dimension but 1. In training (or
/// without running statistics) the batch's statistics normalise, and `running` (when
/// given) is updated in place; otherwise `running` does.
///
/// ```
/// use flux_core::{Tensor, nn::norm::{batch_norm, NormOpts}};
/// let x = Tensor::from_vec(vec![1.0f64, 3.0], &[2, 1]).unwrap();
/// let (mut mu, mut var) = (Tensor::zeros(&[1], flux_core::DType::F64), Tensor::ones(&[1], flux_core::DType::F64));
/// let y = batch_norm(&x, 1, None, Some((&mut mu, &mut var)), true, &NormOpts::default().eps(0.0)).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![-1.0, 1.0]);
/// assert_eq!(mu.to_vec_f64().unwrap(), vec![0.2]);   // 0.9·0 + 0.1·2
/// ```
pub fn batch_norm(
    x: &Tensor, chs: usize, affine: Option<(&Tensor, &Tensor)>, running: Option<(&mut Tensor, &mut Tensor)>, train: bool, opts: &NormOpts,
) -> Result<Tensor> {
    check_channels("BatchNorm", x, chs)?;
    let (n, q) = (x.shape()[0], x.shape()[2..].iter().product::<usize>());
    if train && n * q == 1 {
        return Err(value_err!("BatchNorm({chs}) in training needs more than one value per channel, got shape {}", tuple(x.shape())));
    }
    let spec = NormSpec::new(n, chs, q).affine(chs, 1).eps(opts.eps).activation(opts.act);
    norm(x, affine, &spec, stats(running, train, opts.momentum))
}

/// The statistics a layer with a mode uses: the batch's (tracked into `running` in
/// training), or the running ones in inference.
fn stats<'a>(running: Option<(&'a mut Tensor, &'a mut Tensor)>, train: bool, momentum: f64) -> Stats<'a> {
    match running {
        None => Stats::Batch,
        Some((mean, var)) if train => Stats::Track { mean, var, momentum },
        Some((mean, var)) => Stats::Running { mean, var },
    }
}

/// Instance normalisation of `x` (N, C, spatial...): statistics per sample and channel
/// over the spatial dimensions; running statistics (when given) are the batch mean of
/// those.
///
/// ```
/// use flux_core::{Tensor, nn::norm::{instance_norm, NormOpts}};
/// let x = Tensor::from_vec(vec![1.0f64, 3.0, 10.0, 30.0], &[2, 1, 2]).unwrap();
/// let y = instance_norm(&x, 1, None, None, true, &NormOpts::default().eps(0.0)).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![-1.0, 1.0, -1.0, 1.0]);
/// ```
pub fn instance_norm(
    x: &Tensor, chs: usize, affine: Option<(&Tensor, &Tensor)>, running: Option<(&mut Tensor, &mut Tensor)>, train: bool, opts: &NormOpts,
) -> Result<Tensor> {
    check_channels("InstanceNorm", x, chs)?;
    if x.ndim() < 3 {
        return Err(shape_err!("InstanceNorm({chs}) expects (batch, channels, spatial...), got shape {}", tuple(x.shape())));
    }
    let (n, q) = (x.shape()[0], x.shape()[2..].iter().product::<usize>());
    if train && running.is_some() && q == 1 {
        return Err(value_err!("InstanceNorm({chs}) needs more than one spatial value to track statistics, got shape {}", tuple(x.shape())));
    }
    let spec = NormSpec::new(1, n * chs, q).affine(chs, 1).eps(opts.eps).activation(opts.act);
    norm(x, affine, &spec, stats(running, train, opts.momentum))
}

/// Group normalisation of `x` (N, C, ...): the channels split into `groups` groups,
/// statistics per sample and group; no running statistics.
///
/// ```
/// use flux_core::{Tensor, nn::norm::{group_norm, NormOpts}};
/// let x = Tensor::from_vec(vec![1.0f64, 3.0, 10.0, 30.0], &[1, 4]).unwrap();
/// let y = group_norm(&x, 4, 2, None, &NormOpts::default().eps(0.0)).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![-1.0, 1.0, -1.0, 1.0]);
/// ```
pub fn group_norm(x: &Tensor, chs: usize, groups: usize, affine: Option<(&Tensor, &Tensor)>, opts: &NormOpts) -> Result<Tensor> {
    if groups == 0 || chs % groups != 0 {
        return Err(value_err!("GroupNorm: the number of channels ({chs}) must be divisible by the number of groups ({groups})"));
    }
    check_channels("GroupNorm", x, chs)?;
    let n = x.shape()[0];
    let q = x.numel() / (n * groups).max(1);
    let spec = NormSpec::new(1, n * groups, q).affine(groups, chs / groups).eps(opts.eps).activation(opts.act);
    norm(x, affine, &spec, Stats::Batch)
}

/// Layer normalisation over the last `size.len()` dimensions of `x`, which must equal
/// `size`; `affine` vectors have `∏size` entries (any shape, e.g. `size`).
///
/// ```
/// use flux_core::{Tensor, nn::norm::{layer_norm, NormOpts}};
/// let x = Tensor::from_vec(vec![1.0f64, 3.0, 10.0, 30.0], &[2, 2]).unwrap();
/// let y = layer_norm(&x, &[2], None, &NormOpts::default().eps(0.0)).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![-1.0, 1.0, -1.0, 1.0]);
/// ```
pub fn layer_norm(x: &Tensor, size: &[usize], affine: Option<(&Tensor, &Tensor)>, opts: &NormOpts) -> Result<Tensor> {
    let k = size.len();
    if x.ndim() < k || &x.shape()[x.ndim() - k..] != size {
        let sz = if k == 1 { size[0].to_string() } else { tuple(size) };
        return Err(shape_err!(
            "LayerNorm({sz}) expects input whose last {k} dimension(s) are {}, got shape {}",
            tuple(size), tuple(x.shape())
        ));
    }
    let r: usize = size.iter().product();
    let spec = NormSpec::new(1, x.numel() / r.max(1), r).affine(1, r).eps(opts.eps).activation(opts.act);
    norm(x, affine, &spec, Stats::Batch)
}

/// A poisoned lock (a panic while it was held) as an error, not a second panic.
fn poisoned<T>(_: T) -> Error { Error::Value("running statistics poisoned by an earlier panic".into()) }

/// The affine pair of a layer, if any.
fn pair<'a>(g: &'a Option<Tensor>, b: &'a Option<Tensor>) -> Option<(&'a Tensor, &'a Tensor)> { g.as_ref().zip(b.as_ref()) }

/// Builder pieces shared by the layers with (γ, β) and optional running statistics.
/// `$ctor` makes a layer of 4 channels for the examples.
macro_rules! affine_layer {
    ($T:ident, $ctor:literal) => {
        #[doc = concat!("The affine part, ε, the activation and the dtype.\n\n```\n",
            "use flux_core::{nn::{norm::", stringify!($T), ", Activation}, DType};\n",
            "let l = ", $ctor, ".eps(1e-3).activation(Activation::Relu).dtype(DType::F64);\n",
            "assert_eq!((l.opts.eps, l.opts.act, l.gamma.unwrap().dtype()), (1e-3, Activation::Relu, DType::F64));\n```")]
        impl $T {
            #[doc = concat!("With (γ = 1, β = 0) or without the affine part.\n\n```\n",
                "use flux_core::nn::norm::", stringify!($T), ";\n",
                "let l = ", $ctor, ".affine(false);\n",
                "assert!(l.gamma.is_none() && l.beta.is_none());\n",
                "let l = l.affine(true);\n",
                "assert_eq!((l.gamma.unwrap().to_vec_f64().unwrap(), l.beta.unwrap().to_vec_f64().unwrap()), (vec![1.0; 4], vec![0.0; 4]));\n```")]
            pub fn affine(mut self, on: bool) -> Self {
                let dt = self.dtype;
                self.gamma = on.then(|| Tensor::ones(&self.affine_shape(), dt));
                self.beta = on.then(|| Tensor::zeros(&self.affine_shape(), dt));
                self
            }
            #[doc = concat!("Set ε.\n\n```\n",
                "use flux_core::nn::norm::", stringify!($T), ";\n",
                "assert_eq!(", $ctor, ".eps(1e-3).opts.eps, 1e-3);\n",
                "assert_eq!(", $ctor, ".opts.eps, 1e-5);\n```")]
            pub fn eps(mut self, eps: f64) -> Self {
                self.opts.eps = eps;
                self
            }
            #[doc = concat!("Set the activation applied after the affine part.\n\n```\n",
                "use flux_core::{nn::{norm::", stringify!($T), ", Activation, Module}, DType, Tensor};\n",
                "let l = ", $ctor, ".activation(Activation::Relu);\n",
                "let x = Tensor::from_vec((0..32).map(|v| (v as f32).sin()).collect(), &[2, 4, 4]).unwrap();\n",
                "assert!(l.forward(&x).unwrap().to_vec_f64().unwrap().iter().all(|&v| v >= 0.0));\n```")]
            pub fn activation(mut self, act: Activation) -> Self {
                self.opts.act = act;
                self
            }
            #[doc = concat!("Parameters (and running statistics) as `dtype`.\n\n```\n",
                "use flux_core::{nn::norm::", stringify!($T), ", DType};\n",
                "let l = ", $ctor, ".dtype(DType::F64);\n",
                "assert_eq!((l.gamma.unwrap().dtype(), l.beta.unwrap().dtype()), (DType::F64, DType::F64));\n```")]
            pub fn dtype(mut self, dtype: DType) -> Self {
                let cast = |t: &Tensor| t.cast(dtype).expect("a float dtype");
                self.dtype = dtype;
                self.gamma = self.gamma.as_ref().map(cast);
                self.beta = self.beta.as_ref().map(cast);
                self.running_cast(dtype);
                self
            }
        }
    };
}

/// Visit (β, γ) under Flux's and the Python layers' names and order (`β`, `γ`), so that a
/// checkpoint moves between Rust and Python by name.
fn visit_affine<'a>(gamma: &'a Option<Tensor>, beta: &'a Option<Tensor>, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a Tensor)) {
    beta.iter().for_each(|t| path.visit("β", t, f));
    gamma.iter().for_each(|t| path.visit("γ", t, f));
}

fn visit_affine_mut<'a>(gamma: &'a mut Option<Tensor>, beta: &'a mut Option<Tensor>, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a mut Tensor)) {
    beta.iter_mut().for_each(|t| path.visit_mut("β", t, f));
    gamma.iter_mut().for_each(|t| path.visit_mut("γ", t, f));
}

/// Running statistics behind a lock: `forward_t(&self, ..)` updates them in training.
type Running = Option<Mutex<(Tensor, Tensor)>>;

fn running_buffers(r: &Running) -> Vec<(String, Tensor)> {
    match r.as_ref().and_then(|m| m.lock().ok()) {
        Some(g) => vec![("μ".into(), g.0.clone()), ("σ2".into(), g.1.clone())],
        None => vec![],
    }
}

fn set_running(r: &Running, path: &str, v: &Tensor) -> Result<bool> {
    let Some(m) = r else { return Ok(false) };
    let mut g = m.lock().map_err(poisoned)?;
    let t = match path {
        "μ" => &mut g.0,
        "σ2" => &mut g.1,
        _ => return Ok(false),
    };
    t.assign_(v)?;
    Ok(true)
}

fn visit_running_mut(r: &mut Running, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &mut Tensor)) {
    // a poisoned lock still holds the statistics: they move with the model all the same
    if let Some(m) = r {
        let g = m.get_mut().unwrap_or_else(|e| e.into_inner());
        path.within("μ", |p| f(p, &mut g.0));
        path.within("σ2", |p| f(p, &mut g.1));
    }
}

fn new_running(chs: usize, dt: DType) -> Running { Some(Mutex::new((Tensor::zeros(&[chs], dt), Tensor::ones(&[chs], dt)))) }

/// A norm layer with (γ, β) and optional running statistics, whose forward is `$f`.
/// (`$ctor` as in [`affine_layer!`].)
macro_rules! tracked_layer {
    ($(#[$doc:meta])* $T:ident, $f:ident, $ctor:literal) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $T {
            /// Scale γ (C,), or `None` without the affine part.
            pub gamma: Option<Tensor>,
            /// Shift β (C,).
            pub beta: Option<Tensor>,
            /// ε, momentum, activation.
            pub opts: NormOpts,
            running: Running,
            chs: usize,
            dtype: DType,
        }

        #[doc = concat!("Running statistics: on or off, their momentum, their values.\n\n```\n",
            "use flux_core::nn::norm::", stringify!($T), ";\n",
            "let l = ", $ctor, ".track_stats(true).momentum(0.2);\n",
            "assert_eq!((l.opts.momentum, l.running_stats().unwrap().0.shape()), (0.2, &[4][..]));\n```")]
        impl $T {
            #[doc = concat!("With or without running statistics (without: batch statistics always).\n\n```\n",
                "use flux_core::nn::norm::", stringify!($T), ";\n",
                "assert!(", $ctor, ".track_stats(true).running_stats().is_some());\n",
                "assert!(", $ctor, ".track_stats(false).running_stats().is_none());\n```")]
            pub fn track_stats(mut self, on: bool) -> Self {
                self.running = if on { new_running(self.chs, self.dtype) } else { None };
                self
            }
            #[doc = concat!("Set the momentum of the running statistics.\n\n```\n",
                "use flux_core::{nn::{norm::", stringify!($T), ", Module}, DType, Tensor};\n",
                "let l = ", $ctor, ".track_stats(true).momentum(0.5);\n",
                "l.forward_t(&Tensor::ones(&[2, 4, 3], DType::F32), true).unwrap();\n",
                "// μ ← (1 − m)·0 + m·mean(x)\n",
                "assert_eq!(l.running_stats().unwrap().0.to_vec_f64().unwrap(), vec![0.5; 4]);\n```")]
            pub fn momentum(mut self, m: f64) -> Self {
                self.opts.momentum = m;
                self
            }
            #[doc = concat!("The running (mean, variance), if tracked.\n\n```\n",
                "use flux_core::nn::norm::", stringify!($T), ";\n",
                "let (mu, var) = ", $ctor, ".track_stats(true).running_stats().unwrap();\n",
                "assert_eq!((mu.to_vec_f64().unwrap(), var.to_vec_f64().unwrap()), (vec![0.0; 4], vec![1.0; 4]));\n```")]
            pub fn running_stats(&self) -> Option<(Tensor, Tensor)> { self.running.as_ref().and_then(|m| m.lock().ok()).map(|g| g.clone()) }
            fn running_cast(&mut self, dt: DType) {
                if let Some(m) = self.running.as_mut().and_then(|m| m.get_mut().ok()) {
                    *m = (m.0.cast(dt).expect("a float dtype"), m.1.cast(dt).expect("a float dtype"));
                }
            }
            fn affine_shape(&self) -> Vec<usize> { vec![self.chs] }
            fn blank(chs: usize) -> Self { $T { gamma: None, beta: None, opts: NormOpts::default(), running: None, chs, dtype: DType::F32 } }
        }
        affine_layer!($T, $ctor);

        impl Module for $T {
            fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
                let aff = pair(&self.gamma, &self.beta);
                match &self.running {
                    Some(m) => {
                        let mut g = m.lock().map_err(poisoned)?;
                        let (mu, var) = &mut *g;
                        $f(x, self.chs, aff, Some((mu, var)), train, &self.opts)
                    }
                    None => $f(x, self.chs, aff, None, train, &self.opts),
                }
            }
            fn visit_params<'a>(&'a self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a Tensor)) { visit_affine(&self.gamma, &self.beta, path, f) }
            fn visit_params_mut<'a>(&'a mut self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a mut Tensor)) {
                visit_affine_mut(&mut self.gamma, &mut self.beta, path, f)
            }
            fn buffers(&self) -> Vec<(String, Tensor)> { running_buffers(&self.running) }
            fn set_buffer(&self, path: &str, value: &Tensor) -> Result<bool> { set_running(&self.running, path, value) }
            fn visit_buffers_mut(&mut self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &mut Tensor)) {
                visit_running_mut(&mut self.running, path, f)
            }
        }
    };
}

tracked_layer!(
    /// Batch normalisation over channel dimension 1: `λ(γ·(x − μ)/√(σ² + ε) + β)` with
    /// the batch's statistics in training (running ones updated) and the running ones in
    /// inference. Defaults: affine, tracking, ε = 1e-5, momentum 0.1, float32.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Activation, Module, norm::BatchNorm}};
    /// let bn = BatchNorm::new(3).activation(Activation::from_name("relu").unwrap());
    /// let x = Tensor::ones(&[4, 3, 2, 2], DType::F32);
    /// assert_eq!(bn.forward_t(&x, true).unwrap().shape(), &[4, 3, 2, 2]);
    /// let (mu, _) = bn.running_stats().unwrap();
    /// assert_eq!(mu.to_vec_f64().unwrap(), vec![0.10000000149011612; 3]); // 0.1·mean(1)
    /// ```
    BatchNorm,
    batch_norm,
    "BatchNorm::new(4)"
);

/// The constructor (the builders are shared with the other norm layers).
///
/// ```
/// use flux_core::nn::norm::BatchNorm;
/// assert!(BatchNorm::new(3).running_stats().is_some());
/// ```
impl BatchNorm {
    /// `chs` channels, Flux's defaults.
    ///
    /// ```
    /// use flux_core::{DType, nn::{Module, norm::BatchNorm}};
    /// let bn = BatchNorm::new(4).momentum(0.01).eps(1e-3).dtype(DType::F64);
    /// assert_eq!(bn.parameters().iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["β", "γ"]); // Flux's and Python's names
    /// assert_eq!(bn.running_stats().unwrap().0.dtype(), DType::F64);
    /// assert!(BatchNorm::new(4).track_stats(false).running_stats().is_none());
    /// ```
    pub fn new(chs: usize) -> BatchNorm { BatchNorm::blank(chs).affine(true).track_stats(true) }
}

tracked_layer!(
    /// Instance normalisation: statistics per sample and channel over the spatial
    /// dimensions. Defaults as Flux: no affine part, no running statistics.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, norm::InstanceNorm}};
    /// let l = InstanceNorm::new(2);
    /// assert!(l.parameters().is_empty());
    /// assert_eq!(l.forward(&Tensor::ones(&[3, 2, 5], DType::F32)).unwrap().shape(), &[3, 2, 5]);
    /// ```
    InstanceNorm,
    instance_norm,
    "InstanceNorm::new(4).affine(true)"
);

/// The constructor (the builders are shared with the other norm layers).
///
/// ```
/// use flux_core::nn::norm::InstanceNorm;
/// assert!(InstanceNorm::new(3).gamma.is_none());
/// ```
impl InstanceNorm {
    /// `chs` channels, Flux's defaults (no affine part, no running statistics).
    ///
    /// ```
    /// use flux_core::nn::{Module, norm::InstanceNorm};
    /// let l = InstanceNorm::new(3).affine(true).track_stats(true);
    /// assert_eq!(l.parameters().len(), 2);
    /// assert!(l.running_stats().is_some());
    /// ```
    pub fn new(chs: usize) -> InstanceNorm { InstanceNorm::blank(chs) }
}

/// Group normalisation: `groups` groups of channels, statistics per sample and group.
/// Default: affine, ε = 1e-5.
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Module, norm::GroupNorm}};
/// let l = GroupNorm::new(4, 2).unwrap();
/// assert_eq!(l.forward(&Tensor::ones(&[3, 4, 5, 5], DType::F32)).unwrap().shape(), &[3, 4, 5, 5]);
/// assert!(GroupNorm::new(6, 4).is_err());
/// ```
#[derive(Debug)]
pub struct GroupNorm {
    /// Scale γ (C,), or `None` without the affine part.
    pub gamma: Option<Tensor>,
    /// Shift β (C,).
    pub beta: Option<Tensor>,
    /// ε and activation (no running statistics, so no momentum).
    pub opts: NormOpts,
    chs: usize,
    groups: usize,
    dtype: DType,
}

/// The constructor (the builders are shared with the other norm layers).
///
/// ```
/// use flux_core::nn::norm::GroupNorm;
/// assert_eq!(GroupNorm::new(6, 3).unwrap().gamma.unwrap().shape(), &[6]);
/// ```
impl GroupNorm {
    /// `chs` channels in `groups` groups (`chs` must be divisible by `groups`).
    ///
    /// ```
    /// use flux_core::{nn::{norm::GroupNorm, Module}, DType, Tensor};
    /// let l = GroupNorm::new(4, 2).unwrap();
    /// // each group of 2 channels standardised per sample: [1, 1, 3, 3] → [−1, −1, 1, 1]
    /// let x = Tensor::from_vec(vec![1.0f64, 1.0, 3.0, 3.0, 0.0, 0.0, 2.0, 2.0], &[1, 4, 2]).unwrap();
    /// let y = l.dtype(DType::F64).eps(0.0).forward(&x).unwrap().to_vec_f64().unwrap();
    /// assert!((y[0] + 1.0).abs() < 1e-12 && (y[7] - 1.0).abs() < 1e-12);
    /// assert!(GroupNorm::new(4, 3).is_err());
    /// ```
    pub fn new(chs: usize, groups: usize) -> Result<GroupNorm> {
        if groups == 0 || chs % groups != 0 {
            return Err(value_err!("GroupNorm: the number of channels ({chs}) must be divisible by the number of groups ({groups})"));
        }
        Ok(GroupNorm { gamma: None, beta: None, opts: NormOpts::default(), chs, groups, dtype: DType::F32 }.affine(true))
    }
    fn affine_shape(&self) -> Vec<usize> { vec![self.chs] }
    fn running_cast(&mut self, _: DType) {}
}
affine_layer!(GroupNorm, "GroupNorm::new(4, 2).unwrap()");

impl Module for GroupNorm {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> { group_norm(x, self.chs, self.groups, pair(&self.gamma, &self.beta), &self.opts) }
    fn visit_params<'a>(&'a self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a Tensor)) { visit_affine(&self.gamma, &self.beta, path, f) }
    fn visit_params_mut<'a>(&'a mut self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a mut Tensor)) {
        visit_affine_mut(&mut self.gamma, &mut self.beta, path, f)
    }
}

/// Layer normalisation over the trailing dimensions `size`, then a learnable scale and
/// bias of shape `size` (Flux's `Scale`), then the activation. Default: affine, ε = 1e-5.
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Module, norm::LayerNorm}};
/// let l = LayerNorm::new(&[4]);
/// let y = l.forward(&Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 4]).unwrap()).unwrap();
/// assert!(y.sum_all().unwrap().item().unwrap().abs() < 1e-6);
/// assert_eq!(l.parameters()[0].1.shape(), &[4]);
/// // named as in Flux and Python (`LayerNorm.diag` is a `Scale`)
/// assert_eq!(l.parameters().iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), ["diag.scale", "diag.bias"]);
/// ```
#[derive(Debug)]
pub struct LayerNorm {
    /// Scale of shape `size`, or `None` without the affine part (path `diag.scale`).
    pub gamma: Option<Tensor>,
    /// Bias of shape `size` (path `diag.bias`).
    pub beta: Option<Tensor>,
    /// ε and activation.
    pub opts: NormOpts,
    size: Vec<usize>,
    dtype: DType,
}

/// The constructor (the builders are shared with the other norm layers).
///
/// ```
/// use flux_core::nn::norm::LayerNorm;
/// assert_eq!(LayerNorm::new(&[2, 3]).beta.unwrap().shape(), &[2, 3]);
/// ```
impl LayerNorm {
    /// Normalise over trailing dimensions of shape `size`.
    ///
    /// ```
    /// use flux_core::{nn::{norm::LayerNorm, Module}, DType, Tensor};
    /// let l = LayerNorm::new(&[2]).dtype(DType::F64).eps(0.0);
    /// let y = l.forward(&Tensor::from_vec(vec![1.0f64, 3.0, 5.0, 9.0], &[2, 2]).unwrap()).unwrap();
    /// let want = [-1.0, 1.0, -1.0, 1.0]; // each row standardised
    /// assert!(y.to_vec_f64().unwrap().iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12));
    /// ```
    pub fn new(size: &[usize]) -> LayerNorm {
        LayerNorm { gamma: None, beta: None, opts: NormOpts::default(), size: size.to_vec(), dtype: DType::F32 }.affine(true)
    }
    fn affine_shape(&self) -> Vec<usize> { self.size.clone() }
    fn running_cast(&mut self, _: DType) {}
}
affine_layer!(LayerNorm, "LayerNorm::new(&[4])");

impl Module for LayerNorm {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> { layer_norm(x, &self.size, pair(&self.gamma, &self.beta), &self.opts) }
    // The paths of Flux's and the Python layer's (`diag::Scale` with fields scale and
    // bias), so that a checkpoint moves between Rust and Python by name.
    fn visit_params<'a>(&'a self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a Tensor)) {
        path.within("diag", |p| {
            self.gamma.iter().for_each(|t| p.visit("scale", t, f));
            self.beta.iter().for_each(|t| p.visit("bias", t, f));
        })
    }
    fn visit_params_mut<'a>(&'a mut self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a mut Tensor)) {
        path.within("diag", |p| {
            self.gamma.iter_mut().for_each(|t| p.visit_mut("scale", t, f));
            self.beta.iter_mut().for_each(|t| p.visit_mut("bias", t, f));
        })
    }
}
