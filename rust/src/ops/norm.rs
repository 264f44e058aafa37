//! Normalisation as one fused op: batch, layer, group and instance norm, each with its
//! affine part (γ, β), its activation and its running-statistics update, one pass
//! forward and one backward rule.
//!
//! Every norm views its input as (P, S, Q) and standardises each of the S slices over
//! its P·Q values, `x̂ = (x − μ)/√(σ² + ε)` with the uncorrected variance (as Flux).
//! The affine vectors have `period · inner` entries: the element at (p, s, q) uses entry
//! `(s mod period)·inner + q ÷ (Q / inner)`.
//!
//! | norm | input | (P, S, Q) | affine (period, inner) |
//! |---|---|---|---|
//! | batch | (N, C, spatial...) | (N, C, ∏spatial) | (C, 1) |
//! | instance | (N, C, spatial...) | (1, N·C, ∏spatial) | (C, 1) |
//! | group (G groups) | (N, C, spatial...) | (1, N·G, C/G·∏spatial) | (G, C/G) |
//! | layer over the last dims of size R | (..., R) | (1, M, R) | (1, R) |
//!
//! Running statistics (batch and instance norm) have `period` entries; slice `s` uses
//! entry `s mod period`, and a training step folds the mean of the slices sharing an
//! entry into it with Flux's momentum convention:
//! `μ ← (1 − m)·μ + m·mean`, `σ² ← (1 − m)·σ² + m·M/(M − 1)·var` (M = P·Q).
//!
//! The backward rule recomputes `x̂` and the pre-activation from the saved input and
//! statistics instead of saving them: with `dz = g ⊙ λ′` and `dx̂ = dz ⊙ γ`,
//! `dx = (dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))/√(σ² + ε)` (means over each slice; only
//! `dx̂/√(σ² + ε)` with fixed statistics), `dγ = Σ dz·x̂`, `dβ = Σ dz`.
use std::mem::MaybeUninit;
use std::sync::Mutex;

use rayon::prelude::*;

use super::{apply, FusedOp};
use crate::autodiff::Backward;
use crate::error::{shape_err, value_err, Error, Result};
use crate::nn::Activation;
use crate::tensor::elementwise::UnaryOp;
use crate::tensor::reduce::sum_lanes;
use crate::tensor::{Float, Tensor, PAR_THRESHOLD};

/// How a norm is laid out over its input: the (P, S, Q) view, the affine indexing, ε
/// and the activation applied after the affine part.
///
/// ```
/// use flux_core::ops::norm::NormSpec;
/// // BatchNorm over (8, 3, 4, 4): statistics per channel over 8·16 values
/// let s = NormSpec::new(8, 3, 16).affine(3, 1);
/// assert_eq!((s.p, s.s, s.q, s.period, s.inner), (8, 3, 16, 3, 1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormSpec {
    /// Outer count of the view (each slice's values are spread over `p` blocks).
    pub p: usize,
    /// Number of slices, each standardised on its own.
    pub s: usize,
    /// Contiguous values per block.
    pub q: usize,
    /// Affine / running-statistics period over the slices.
    pub period: usize,
    /// Affine entries per block (`q` must be a multiple).
    pub inner: usize,
    /// Added to the variance.
    pub eps: f64,
    /// Applied after the affine part.
    pub act: Activation,
}

/// Builders.
///
/// ```
/// use flux_core::{nn::Activation, ops::norm::NormSpec};
/// let s = NormSpec::new(4, 3, 2).eps(0.0).activation(Activation::Relu);
/// assert_eq!((s.eps, s.act, s.period), (0.0, Activation::Relu, 3));
/// ```
impl NormSpec {
    /// A (p, s, q) view with one affine entry per slice, ε = 1e-5, no activation.
    ///
    /// ```
    /// use flux_core::ops::norm::NormSpec;
    /// // LayerNorm over the last dimension of (10, 6): 10 slices of 6 contiguous values
    /// let s = NormSpec::new(1, 10, 6);
    /// assert_eq!((s.period, s.inner, s.eps), (10, 1, 1e-5));
    /// ```
    pub fn new(p: usize, s: usize, q: usize) -> NormSpec {
        NormSpec { p, s, q, period: s, inner: 1, eps: 1e-5, act: Activation::Identity }
    }
    /// The affine vectors' (and running statistics') period over slices and entries per block.
    ///
    /// ```
    /// use flux_core::ops::norm::NormSpec;
    /// let s = NormSpec::new(1, 10, 6).affine(1, 6); // one (6,) scale shared by every slice
    /// assert_eq!((s.period, s.inner), (1, 6));
    /// ```
    pub fn affine(mut self, period: usize, inner: usize) -> NormSpec {
        self.period = period;
        self.inner = inner;
        self
    }
    /// ε added to the variance.
    ///
    /// ```
    /// use flux_core::ops::norm::NormSpec;
    /// assert_eq!(NormSpec::new(1, 2, 3).eps(1e-3).eps, 1e-3);
    /// ```
    pub fn eps(mut self, eps: f64) -> NormSpec {
        self.eps = eps;
        self
    }
    /// The activation after the affine part.
    ///
    /// ```
    /// use flux_core::{nn::Activation, ops::norm::NormSpec};
    /// assert_eq!(NormSpec::new(1, 2, 3).activation(Activation::Tanh).act, Activation::Tanh);
    /// ```
    pub fn activation(mut self, act: Activation) -> NormSpec {
        self.act = act;
        self
    }
    fn affine_len(&self) -> usize { self.period * self.inner }
    fn check(&self, x: &Tensor) -> Result<()> {
        let (p, s, q) = (self.p, self.s, self.q);
        if p.checked_mul(s).and_then(|v| v.checked_mul(q)) != Some(x.numel()) {
            return Err(shape_err!("normalize: a tensor of shape {:?} cannot be viewed as ({p}, {s}, {q})", x.shape()));
        }
        if p * q == 0 && s > 0 {
            return Err(value_err!("normalize: each slice needs at least one value, got shape {:?}", x.shape()));
        }
        if s > 0 && (self.period == 0 || self.inner == 0 || s % self.period != 0 || q % self.inner != 0) {
            return Err(value_err!(
                "normalize: affine period {} and inner size {} do not divide the view ({p}, {s}, {q})",
                self.period, self.inner
            ));
        }
        if !(self.eps >= 0.0) {
            return Err(value_err!("normalize: eps must be non-negative, got {}", self.eps));
        }
        Ok(())
    }
}

/// Which statistics standardise the input.
///
/// ```
/// use flux_core::{ops::norm::{norm, NormSpec, Stats}, Tensor};
/// // fixed statistics: (x − 1)/√4
/// let x = Tensor::from_vec(vec![3.0f64, 5.0], &[1, 1, 2]).unwrap();
/// let (mu, var) = (Tensor::from_vec(vec![1.0f64], &[1]).unwrap(), Tensor::from_vec(vec![4.0f64], &[1]).unwrap());
/// let y = norm(&x, None, &NormSpec::new(1, 1, 2).eps(0.0), Stats::Running { mean: &mu, var: &var }).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![1.0, 2.0]);
/// ```
#[derive(Debug)]
pub enum Stats<'a> {
    /// The batch's own mean and variance.
    Batch,
    /// The batch's own, folded into these running statistics with `momentum`.
    Track {
        /// Running mean, `period` entries, updated in place.
        mean: &'a mut Tensor,
        /// Running (unbiased) variance, updated in place.
        var: &'a mut Tensor,
        /// Weight of this batch in the update.
        momentum: f64,
    },
    /// Fixed statistics (inference with running statistics); not differentiated.
    Running {
        /// Mean, `period` entries.
        mean: &'a Tensor,
        /// Variance, `period` entries.
        var: &'a Tensor,
    },
}

/// The fused op: inputs `x` and, when affine, `γ` and `β`.
#[derive(Debug)]
struct NormOp<'a> {
    spec: NormSpec,
    affine: bool,
    stats: Mutex<Stats<'a>>,
    /// the batch statistics of the last forward, for [`normalize`]'s callers
    batch_stats: Mutex<Option<(Tensor, Tensor)>>,
}

/// Apply `f(chunk index, slice index, chunk)` over the P·S chunks of length q.
fn for_chunks<E: Send>(out: &mut [E], s: usize, q: usize, f: impl Fn(usize, usize, &mut [E]) + Sync + Send) {
    if q == 0 {
        return;
    }
    if out.len() >= PAR_THRESHOLD && rayon::current_num_threads() > 1 {
        crate::parallel::warm();
        out.par_chunks_exact_mut(q).enumerate().for_each(|(k, ch)| f(k, k % s, ch));
    } else {
        out.chunks_exact_mut(q).enumerate().for_each(|(k, ch)| f(k, k % s, ch));
    }
}

/// A vector of the `n = P·S·Q` values that `write` puts into each chunk of length q, as
/// [`for_chunks`]: the buffer is not zero-filled first (that was a pass of its own over
/// every activation). `write` must write every element of its chunk.
fn from_chunks<T: Float>(n: usize, s: usize, q: usize, write: impl Fn(usize, usize, &mut [MaybeUninit<T>]) + Sync + Send) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    if q > 0 {
        for_chunks(&mut v.spare_capacity_mut()[..n], s, q, write);
    }
    // SAFETY: n is a multiple of q (the spec's check), so the chunks cover all n elements
    // and `write` initialised each of them (or n = 0 when q = 0).
    unsafe { v.set_len(if q > 0 { n } else { 0 }) };
    v
}

/// `(0..s).map(f)`, on rayon when the work is large.
fn per_slice<R: Send>(n: usize, s: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    if n >= PAR_THRESHOLD && s > 1 && rayon::current_num_threads() > 1 {
        crate::parallel::warm();
        (0..s).into_par_iter().map(f).collect()
    } else {
        (0..s).map(f).collect()
    }
}

/// `(Σ u, Σ v)` with `(u, v) = f(a, b, c)` over three runs of equal length, in 16
/// interleaved partial sums each, as [`sum_lanes`] (so the backward's sums vectorise).
#[inline(always)]
fn sum2_lanes<T: Float>(a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T) -> (T, T)) -> (T, T) {
    const L: usize = 16;
    let (mut su, mut sv) = ([T::zero(); L], [T::zero(); L]);
    let n = a.len() / L * L;
    for ((ca, cb), cc) in a[..n].chunks_exact(L).zip(b[..n].chunks_exact(L)).zip(c[..n].chunks_exact(L)) {
        for l in 0..L {
            let (u, v) = f(ca[l], cb[l], cc[l]);
            su[l] += u;
            sv[l] += v;
        }
    }
    let (mut tu, mut tv) = (T::zero(), T::zero());
    for ((&x, &y), &z) in a[n..].iter().zip(&b[n..]).zip(&c[n..]) {
        let (u, v) = f(x, y, z);
        tu += u;
        tv += v;
    }
    (su.iter().fold(T::zero(), |s, &x| s + x) + tu, sv.iter().fold(T::zero(), |s, &x| s + x) + tv)
}

/// Per-slice mean and uncorrected variance, two passes for accuracy. With blocks of at
/// least [`BLOCK_STATS`] values (BatchNorm over images) the two passes are made per block,
/// while it is in cache, and the blocks' means and squared deviations merged (Chan et
/// al.'s pairwise update): one pass over memory instead of two. A single block (layer,
/// group and instance norm) gives the same numbers either way.
fn batch_stats<T: Float>(x: &[T], sp: &NormSpec) -> (Vec<T>, Vec<T>) {
    let (p, s, q) = (sp.p, sp.s, sp.q);
    let m = T::f((p * q) as f64);
    per_slice(x.len(), s, |si| {
        let block = |pi: usize| &x[(pi * s + si) * q..][..q];
        if q >= BLOCK_STATS {
            let qf = T::f(q as f64);
            let (mut n, mut mu, mut m2) = (T::zero(), T::zero(), T::zero());
            for pi in 0..p {
                let b = block(pi);
                let mb = sum_lanes(b, |a| a) / qf;
                let m2b = sum_lanes(b, |a| (a - mb) * (a - mb));
                let delta = mb - mu;
                let nq = n + qf;
                mu += delta * (qf / nq);
                m2 += m2b + delta * delta * (n * qf / nq);
                n = nq;
            }
            return (mu, m2 / m);
        }
        let mu = (0..p).map(|pi| sum_lanes(block(pi), |a| a)).sum::<T>() / m;
        let var = (0..p).map(|pi| sum_lanes(block(pi), |a| (a - mu) * (a - mu))).sum::<T>() / m;
        (mu, var)
    })
    .into_iter()
    .unzip()
}

/// Blocks from this many values up take [`batch_stats`]' one-pass merge (a block of 4
/// KiB or more is still in L1 for its second pass).
const BLOCK_STATS: usize = 256;

/// Run `$body` with `$f` (the activation) and `$d` (its derivative from pre-activation
/// and output) as closures whose op is a constant, so that the loops vectorise.
macro_rules! with_act {
    ($T:ty, $act:expr, |$f:ident, $d:ident| $body:expr) => {
        match $act {
            Activation::Identity => {
                let $f = |z: $T| z;
                let $d = |_z: $T, _y: $T| <$T>::one();
                $body
            }
            Activation::Relu => {
                // relu′ from z, which the backward recomputes exactly as the forward did
                // (so z > 0 exactly where y > 0): the backward need not read y
                let $f = |z: $T| UnaryOp::Relu.fwd(z);
                let $d = |z: $T, _y: $T| UnaryOp::Relu.deriv(z, z);
                $body
            }
            other => {
                let op = other.unary_op().expect("every activation but the identity is a unary op");
                let $f = move |z: $T| op.fwd(z);
                let $d = move |z: $T, y: $T| op.deriv(z, y);
                $body
            }
        }
    };
}

/// Fold the batch statistics into the running ones (entries shared by several slices
/// take their mean, in slice order).
fn fold_running<T: Float>(mean: &mut Tensor, var: &mut Tensor, momentum: f64, mu: &[T], v: &[T], sp: &NormSpec) -> Result<()> {
    let period = sp.period;
    let reps = sp.s / period;
    let m = (sp.p * sp.q) as f64;
    let avg = |a: &[T], j: usize| (0..reps).map(|r| a[r * period + j]).sum::<T>() / T::f(reps as f64);
    let new_mu: Vec<T> = (0..period).map(|j| avg(mu, j)).collect();
    let new_var: Vec<T> = (0..period).map(|j| avg(v, j)).collect();
    let (keep, mom, unbias) = (T::f(1.0 - momentum), T::f(momentum), T::f(momentum * m / (m - 1.0)));
    let rm = mean.as_contiguous::<T>()?.as_slice::<T>()?.to_vec();
    let rv = var.as_contiguous::<T>()?.as_slice::<T>()?.to_vec();
    let um: Vec<T> = rm.iter().zip(&new_mu).map(|(&r, &b)| r * keep + b * mom).collect();
    let uv: Vec<T> = rv.iter().zip(&new_var).map(|(&r, &b)| r * keep + b * unbias).collect();
    mean.assign_(&Tensor::from_vec(um, &[period])?)?;
    var.assign_(&Tensor::from_vec(uv, &[period])?)?;
    Ok(())
}

/// A running-statistics vector as `period` values of dtype T.
fn running_vec<T: Float>(t: &Tensor, period: usize, what: &str) -> Result<Vec<T>> {
    if t.numel() != period {
        return Err(shape_err!("normalize: running {what} has {} entries, expected {period}", t.numel()));
    }
    Ok(t.as_contiguous::<T>()?.as_slice::<T>()?.to_vec())
}

impl NormOp<'_> {
    fn forward<T: Float>(&self, x: &Tensor, gamma: Option<&Tensor>, beta: Option<&Tensor>) -> Result<(Tensor, Box<dyn Backward>)> {
        let sp = self.spec;
        let (p, s, q, period, inner) = (sp.p, sp.s, sp.q, sp.period, sp.inner);
        let xc = x.as_contiguous::<T>()?;
        let xs = xc.as_slice::<T>()?;
        let mut stats = self.stats.lock().map_err(|_| Error::Value("normalize: running statistics poisoned by a panic".into()))?;
        let (mu, inv, batch) = match &*stats {
            Stats::Batch | Stats::Track { .. } => {
                if let Stats::Track { .. } = &*stats {
                    if p * q < 2 {
                        return Err(value_err!("normalize: tracking statistics needs more than one value per slice, got shape {:?}", x.shape()));
                    }
                    if inner != 1 {
                        return Err(value_err!("normalize: running statistics need one affine entry per slice"));
                    }
                }
                let (mu, var) = batch_stats(xs, &sp);
                let inv: Vec<T> = var.iter().map(|&v| T::one() / (v + T::f(sp.eps)).sqrt()).collect();
                if let Stats::Track { mean, var: rvar, momentum } = &mut *stats {
                    fold_running(mean, rvar, *momentum, &mu, &var, &sp)?;
                }
                *self.batch_stats.lock().expect("not poisoned") = Some((Tensor::from_vec(mu.clone(), &[s])?, Tensor::from_vec(var, &[s])?));
                (mu, inv, true)
            }
            Stats::Running { mean, var } => {
                if inner != 1 {
                    return Err(value_err!("normalize: running statistics need one affine entry per slice"));
                }
                let (rm, rv) = (running_vec::<T>(mean, period, "mean")?, running_vec::<T>(var, period, "variance")?);
                let mu: Vec<T> = (0..s).map(|si| rm[si % period]).collect();
                let inv: Vec<T> = (0..s).map(|si| T::one() / (rv[si % period] + T::f(sp.eps)).sqrt()).collect();
                (mu, inv, false)
            }
        };
        drop(stats);
        let (g, b) = (gamma.map(|t| t.as_contiguous::<T>()).transpose()?, beta.map(|t| t.as_contiguous::<T>()).transpose()?);
        let ones = vec![T::one(); if g.is_none() { sp.affine_len() } else { 0 }];
        let zeros = vec![T::zero(); if b.is_none() { sp.affine_len() } else { 0 }];
        let gs: &[T] = match &g { Some(g) => g.as_slice::<T>()?, None => &ones };
        let bs: &[T] = match &b { Some(b) => b.as_slice::<T>()?, None => &zeros };
        let qb = q / inner;
        let y = with_act!(T, sp.act, |f, _d| {
            from_chunks(xs.len(), s, q, |k, si, ch| {
                let (m, iv) = (mu[si], inv[si]);
                let a0 = (si % period) * inner;
                let xk = &xs[k * q..(k + 1) * q];
                if qb == 1 {
                    // an affine entry per element (LayerNorm): one loop along the slice,
                    // the same arithmetic as below, vectorised
                    let (ga, ba) = (&gs[a0..a0 + q], &bs[a0..a0 + q]);
                    ch.iter_mut().zip(xk).zip(ga.iter().zip(ba)).for_each(|((o, &v), (&gm, &bt))| {
                        let scale = gm * iv;
                        o.write(f(v * scale + (bt - m * scale)));
                    });
                    return;
                }
                for ia in 0..inner {
                    // z = γ·(x − μ)·inv + β = x·scale + shift
                    let scale = gs[a0 + ia] * iv;
                    let shift = bs[a0 + ia] - m * scale;
                    let (yo, xi) = (&mut ch[ia * qb..(ia + 1) * qb], &xk[ia * qb..(ia + 1) * qb]);
                    yo.iter_mut().zip(xi).for_each(|(o, &v)| {
                        o.write(f(v * scale + shift));
                    });
                }
            })
        });
        let y = Tensor::from_vec(y, x.shape())?;
        let bwd = NormBackward {
            x: xc.into_owned(),
            y: y.clone(),
            gamma: g.map(|t| t.into_owned()),
            beta: b.map(|t| t.into_owned()),
            mu: Tensor::from_vec(mu, &[s])?,
            inv: Tensor::from_vec(inv, &[s])?,
            spec: sp,
            batch,
            affine: self.affine,
        };
        Ok((y, Box::new(bwd)))
    }
}

impl FusedOp for NormOp<'_> {
    fn name(&self) -> &'static str { "normalize" }
    fn cpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let x = xs[0];
        let (g, b) = if self.affine { (xs.get(1).copied(), xs.get(2).copied()) } else { (None, None) };
        crate::dispatch!(x.dtype(), T => self.forward::<T>(x, g, b))
    }
    /// The GPU kernels of `backend/wgpu/norm.rs`; the running statistics are folded in
    /// on the device with tensor ops.
    #[cfg(feature = "wgpu")]
    fn wgpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let (x, sp) = (xs[0], &self.spec);
        let affine = if self.affine { Some((xs[1], xs[2])) } else { None };
        let mut stats = self.stats.lock().map_err(|_| Error::Value("normalize: running statistics poisoned by a panic".into()))?;
        let tracks = matches!(&*stats, Stats::Track { .. });
        if tracks && sp.p * sp.q < 2 {
            return Err(value_err!("normalize: tracking statistics needs more than one value per slice, got shape {:?}", x.shape()));
        }
        if !matches!(&*stats, Stats::Batch) && sp.inner != 1 {
            return Err(value_err!("normalize: running statistics need one affine entry per slice"));
        }
        let running = match &*stats {
            Stats::Running { mean, var } => Some((&**mean, &**var)),
            _ => None,
        };
        let (y, bwd, batch) = crate::autodiff::unrecorded(|| crate::backend::wgpu::norm::norm_forward(x, affine, sp, running))?;
        if let (Stats::Track { mean, var, momentum }, Some((mu, v))) = (&mut *stats, &batch) {
            crate::autodiff::unrecorded(|| fold_running_tensors(mean, var, *momentum, mu, v, sp))?;
        }
        *self.batch_stats.lock().expect("not poisoned") = batch;
        Ok((y, bwd))
    }
}

/// [`fold_running`] with tensor ops, on the device of the batch statistics; the
/// running statistics keep their device, dtype and shape.
#[cfg(feature = "wgpu")]
fn fold_running_tensors(mean: &mut Tensor, var: &mut Tensor, momentum: f64, mu: &Tensor, v: &Tensor, sp: &NormSpec) -> Result<()> {
    let (period, reps) = (sp.period, sp.s / sp.period);
    let m = (sp.p * sp.q) as f64;
    for (run, batch, w) in [(mean, mu, momentum), (var, v, momentum * m / (m - 1.0))] {
        if run.numel() != period {
            return Err(shape_err!("normalize: running statistics have {} entries, expected {period}", run.numel()));
        }
        let b = batch.reshape(&[reps, period])?.mean(Some(&[0]), false)?;
        let r = run.to_device(b.device())?.cast(b.dtype())?.reshape(&[period])?;
        let new = r.mul_scalar(1.0 - momentum)?.add(&b.mul_scalar(w)?)?;
        run.replace_data_(&new.reshape(run.shape())?.to_device(run.device())?.cast(run.dtype())?);
    }
    Ok(())
}

#[derive(Debug)]
struct NormBackward {
    x: Tensor,
    y: Tensor,
    gamma: Option<Tensor>,
    beta: Option<Tensor>,
    mu: Tensor,
    inv: Tensor,
    spec: NormSpec,
    /// batch statistics (their gradient flows) or fixed ones
    batch: bool,
    affine: bool,
}

impl NormBackward {
    fn run<T: Float>(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let sp = self.spec;
        let (p, s, q, period, inner) = (sp.p, sp.s, sp.q, sp.period, sp.inner);
        let qb = q / inner;
        let na = sp.affine_len();
        let gc = g.as_contiguous::<T>()?;
        let (gs, xs) = (gc.as_slice::<T>()?, self.x.as_slice::<T>()?);
        // the identity's and relu's derivatives do not read y: x stands in for it, a
        // stream already in cache, instead of a third pass over memory
        let ys = if matches!(sp.act, Activation::Identity | Activation::Relu) { xs } else { self.y.as_slice::<T>()? };
        let (mu, inv) = (self.mu.as_slice::<T>()?, self.inv.as_slice::<T>()?);
        let ones = vec![T::one(); if self.gamma.is_none() { na } else { 0 }];
        let zeros = vec![T::zero(); if self.beta.is_none() { na } else { 0 }];
        let gam: &[T] = match &self.gamma { Some(t) => t.as_slice::<T>()?, None => &ones };
        let bet: &[T] = match &self.beta { Some(t) => t.as_slice::<T>()?, None => &zeros };
        let need_affine = self.affine && (needs.get(1).copied().unwrap_or(false) || needs.get(2).copied().unwrap_or(false));
        let need_sums = self.batch || need_affine;
        let m = T::f((p * q) as f64);
        with_act!(T, sp.act, |f, d| {
            let _ = &f;
            // pass 1: per slice and affine entry, Σdz and Σdz·x̂
            let sums: Vec<Vec<(T, T)>> = if need_sums {
                per_slice(xs.len(), s, |si| {
                    let (mi, iv, a0) = (mu[si], inv[si], (si % period) * inner);
                    let mut acc = vec![(T::zero(), T::zero()); inner];
                    for pi in 0..p {
                        let o = (pi * s + si) * q;
                        if qb == 1 {
                            // an affine entry per element (LayerNorm): one loop along the slice
                            let ins = gs[o..o + q].iter().zip(&xs[o..o + q]).zip(&ys[o..o + q]);
                            for ((a, ((&gv, &xv), &yv)), (&gm, &bt)) in acc.iter_mut().zip(ins).zip(gam[a0..a0 + q].iter().zip(&bet[a0..a0 + q])) {
                                let xh = (xv - mi) * iv;
                                let scale = gm * iv;
                                let dz = gv * d(xv * scale + (bt - mi * scale), yv);
                                a.0 += dz;
                                a.1 += dz * xh;
                            }
                            continue;
                        }
                        for (ia, a) in acc.iter_mut().enumerate() {
                            let (gm, bt) = (gam[a0 + ia], bet[a0 + ia]);
                            // z = x·scale + shift, as the forward computed it
                            let scale = gm * iv;
                            let shift = bt - mi * scale;
                            let r = o + ia * qb..o + (ia + 1) * qb;
                            let (sd, sdx) = sum2_lanes(&gs[r.clone()], &xs[r.clone()], &ys[r], |gv, xv, yv| {
                                let xh = (xv - mi) * iv;
                                let dz = gv * d(xv * scale + shift, yv);
                                (dz, dz * xh)
                            });
                            a.0 += sd;
                            a.1 += sdx;
                        }
                    }
                    acc
                })
            } else {
                Vec::new()
            };
            // mean(dx̂) and mean(dx̂·x̂) per slice, dx̂ = dz·γ
            let ab: Vec<(T, T)> = if self.batch {
                sums.iter()
                    .enumerate()
                    .map(|(si, acc)| {
                        let a0 = (si % period) * inner;
                        let (a, b) = acc.iter().enumerate().fold((T::zero(), T::zero()), |(a, b), (ia, &(sd, sdx))| (a + gam[a0 + ia] * sd, b + gam[a0 + ia] * sdx));
                        (a / m, b / m)
                    })
                    .collect()
            } else {
                vec![(T::zero(), T::zero()); s]
            };
            // pass 2: dx
            let dx = needs[0].then(|| {
                from_chunks(xs.len(), s, q, |k, si, ch| {
                    let (mi, iv, a0) = (mu[si], inv[si], (si % period) * inner);
                    let (a, b) = ab[si];
                    let o = k * q;
                    if qb == 1 {
                        // an affine entry per element (LayerNorm): one loop along the slice
                        let ins = gs[o..o + q].iter().zip(&xs[o..o + q]).zip(&ys[o..o + q]);
                        for ((dv, ((&gv, &xv), &yv)), (&gm, &bt)) in ch.iter_mut().zip(ins).zip(gam[a0..a0 + q].iter().zip(&bet[a0..a0 + q])) {
                            let xh = (xv - mi) * iv;
                            let scale = gm * iv;
                            let dxh = gv * d(xv * scale + (bt - mi * scale), yv) * gm;
                            dv.write((dxh - a - xh * b) * iv);
                        }
                        return;
                    }
                    for ia in 0..inner {
                        let (gm, bt) = (gam[a0 + ia], bet[a0 + ia]);
                        let scale = gm * iv;
                        let shift = bt - mi * scale;
                        let r = o + ia * qb..o + (ia + 1) * qb;
                        let out = &mut ch[ia * qb..(ia + 1) * qb];
                        for (((dv, &gv), &xv), &yv) in out.iter_mut().zip(&gs[r.clone()]).zip(&xs[r.clone()]).zip(&ys[r]) {
                            let xh = (xv - mi) * iv;
                            let dxh = gv * d(xv * scale + shift, yv) * gm;
                            dv.write((dxh - a - xh * b) * iv);
                        }
                    }
                })
            });
            let mut out = vec![dx.map(|dx| Tensor::from_vec(dx, self.x.shape())).transpose()?];
            if self.affine {
                // Σ over the slices sharing an entry, in slice order
                let (mut dg, mut db) = (vec![T::zero(); na], vec![T::zero(); na]);
                for (si, acc) in sums.iter().enumerate() {
                    let a0 = (si % period) * inner;
                    for (ia, &(sd, sdx)) in acc.iter().enumerate() {
                        db[a0 + ia] += sd;
                        dg[a0 + ia] += sdx;
                    }
                }
                let shaped = |v: Vec<T>, t: &Option<Tensor>| -> Result<Tensor> { Tensor::from_vec(v, t.as_ref().map_or(&[na][..], |t| t.shape())) };
                out.push(if needs.get(1).copied().unwrap_or(false) { Some(shaped(dg, &self.gamma)?) } else { None });
                out.push(if needs.get(2).copied().unwrap_or(false) { Some(shaped(db, &self.beta)?) } else { None });
            }
            Ok(out)
        })
    }
}

impl Backward for NormBackward {
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        crate::dispatch!(self.x.dtype(), T => self.run::<T>(g, needs))
    }
}

/// `λ(γ·x̂ + β)` with `x̂` standardised per slice of the (P, S, Q) view (see the module
/// docs), as one tape node. `gamma`/`beta` (both or neither) have `period·inner`
/// entries, any shape; they are converted to `x`'s dtype. With [`Stats::Track`] the
/// running statistics are updated in place.
///
/// ```
/// use flux_core::{Tensor, ops::norm::{norm, NormSpec, Stats}};
/// // BatchNorm of (2, 1, 2): one channel, four values 1, 3, 5, 7
/// let x = Tensor::from_vec(vec![1.0f64, 3.0, 5.0, 7.0], &[2, 1, 2]).unwrap();
/// let (mut mu, mut var) = (Tensor::from_vec(vec![0.0f64], &[1]).unwrap(), Tensor::from_vec(vec![1.0f64], &[1]).unwrap());
/// let g = Tensor::from_vec(vec![2.0f64], &[1]).unwrap();
/// let b = Tensor::from_vec(vec![1.0f64], &[1]).unwrap();
/// let stats = Stats::Track { mean: &mut mu, var: &mut var, momentum: 0.1 };
/// let y = norm(&x, Some((&g, &b)), &NormSpec::new(2, 1, 2).eps(0.0), stats).unwrap();
/// let s = 5f64.sqrt(); // x̂ = (x − 4)/√5, then 2·x̂ + 1
/// let want = [1.0 - 6.0 / s, 1.0 - 2.0 / s, 1.0 + 2.0 / s, 1.0 + 6.0 / s];
/// assert!(y.to_vec_f64().unwrap().iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12));
/// assert!((mu.item().unwrap() - 0.4).abs() < 1e-12);                      // 0.9·0 + 0.1·4
/// assert!((var.item().unwrap() - (0.9 + 0.1 * 20.0 / 3.0)).abs() < 1e-12); // unbiased 20/3
/// ```
pub fn norm(x: &Tensor, affine: Option<(&Tensor, &Tensor)>, spec: &NormSpec, stats: Stats<'_>) -> Result<Tensor> {
    Ok(norm_with_stats(x, affine, spec, stats)?.0)
}

/// [`norm`], also returning the batch statistics (mean, variance; `None` with
/// [`Stats::Running`]), which are not differentiated.
///
/// ```
/// use flux_core::{ops::norm::{norm_with_stats, NormSpec, Stats}, Tensor};
/// let x = Tensor::from_vec(vec![1.0f64, 3.0], &[1, 1, 2]).unwrap();
/// let (y, stats) = norm_with_stats(&x, None, &NormSpec::new(1, 1, 2).eps(0.0), Stats::Batch).unwrap();
/// let (mean, var) = stats.unwrap();
/// assert_eq!((mean.to_vec_f64().unwrap(), var.to_vec_f64().unwrap()), (vec![2.0], vec![1.0]));
/// assert_eq!(y.to_vec_f64().unwrap(), vec![-1.0, 1.0]);
/// ```
pub fn norm_with_stats(x: &Tensor, affine: Option<(&Tensor, &Tensor)>, spec: &NormSpec, stats: Stats<'_>) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
    spec.check(x)?;
    let op = NormOp { spec: *spec, affine: affine.is_some(), stats: Mutex::new(stats), batch_stats: Mutex::new(None) };
    let y = match affine {
        Some((g, b)) => {
            let n = spec.affine_len();
            if g.numel() != n || b.numel() != n {
                return Err(shape_err!(
                    "normalize: scale and bias need {n} entries each, got shapes {:?} and {:?}",
                    g.shape(), b.shape()
                ));
            }
            let (g, b) = (g.cast_cow(x.dtype())?, b.cast_cow(x.dtype())?);
            apply(&op, &[x, &g, &b])?
        }
        None => apply(&op, &[x])?,
    };
    let st = op.batch_stats.into_inner().map_err(|_| Error::Value("normalize: poisoned".into()))?;
    Ok((y, st))
}
