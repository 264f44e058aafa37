//! Gradient clipping: ClipGrad clamps each entry to [−δ, δ];
//! ClipNorm rescales the whole array so that its p-norm is at most ω.
use super::kernel::{elementwise, wgsl, jmax, jmin, Target};
use super::{Hyper, Rule, State};
use crate::error::{py_shape, Error, Result};
use crate::tensor::{Device, Float, Tensor};

/// The ClipGrad rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{ClipGrad, Rule};
/// use flux_core::Tensor;
/// let rule = ClipGrad::new(0.25);
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.9).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct ClipGrad {
    /// The bound δ: each gradient entry is clamped to [−δ, δ].
    pub delta: f64,
}

defaults!(ClipGrad { delta: f64 = 10.0 => 5.0 });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{ClipGrad, Rule};
/// assert_eq!(ClipGrad::default().name(), "ClipGrad");
/// ```
impl ClipGrad {
    /// The rule with these hyperparameters.
    ///
    /// ```
    /// use flux_core::optim::ClipGrad;
    /// let r = ClipGrad::new(1.0);
    /// assert_eq!(r.delta, 1.0);
    /// ```
    pub fn new(delta: f64) -> Self { ClipGrad { delta } }
    fn run(&self, _st: &mut State, t: Target) -> Result<bool> {
        crate::dispatch!(t.dtype(), T => {
            let (lo, hi) = (-T::f(self.delta), T::f(self.delta));
            // Julia's clamp: `x > hi ? hi : x < lo ? lo : x` (NaN passes through; no panic
            // for a negative δ)
            elementwise::<T, 0>(t, [], wgsl!("clip_grad", [lo, hi]), move |_, g, _| if g > hi { hi } else if g < lo { lo } else { g })?;
        });
        Ok(true)
    }
}

impl Rule for ClipGrad {
    fn name(&self) -> &'static str { "ClipGrad" }
    hyperparameters!(delta: float);
    fn init(&self, _x: &Tensor) -> Result<State> { Ok(State::Empty) }
    via_run!();
}

/// The ClipNorm rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{ClipNorm, Rule};
/// use flux_core::Tensor;
/// let rule = ClipNorm::new(0.5, 2.0, true);
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.9).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct ClipNorm {
    /// The largest norm ω the gradient may have.
    pub omega: f64,
    /// The order p of the norm (2 by default; `Inf` is the max-norm).
    pub p: f64,
    /// Raise [`Error::Domain`] when the norm is Inf or NaN.
    pub throw: bool,
}

defaults!(ClipNorm { omega: f64 = 10.0 => 5.0, p: f64 = 2.0 => 1.0, throw: bool = true => false });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{ClipNorm, Rule};
/// assert_eq!(ClipNorm::default().name(), "ClipNorm");
/// ```
impl ClipNorm {
    /// The rule with these hyperparameters.
    ///
    /// ```
    /// use flux_core::optim::ClipNorm;
    /// let r = ClipNorm::new(1.0, 2.0, false);
    /// assert_eq!(r.throw, false);
    /// ```
    pub fn new(omega: f64, p: f64, throw: bool) -> Self { ClipNorm { omega, p, throw } }
    fn run(&self, _st: &mut State, t: Target) -> Result<bool> {
        crate::dispatch!(t.dtype(), T => {
            // on a device the norm is reduced there and only its value comes back
            let n = if t.g().device() == Device::Cpu {
                pnorm::<T>(t.g().cast(T::DTYPE)?.contiguous()?.as_slice::<T>()?, self.p)
            } else {
                T::f(device_pnorm(t.g(), self.p)?)
            };
            if self.throw && !n.is_finite() {
                return Err(Error::Domain(format!(
                    "gradient has {}-norm {}, for array of shape {} and dtype {}",
                    julia_float(self.p),
                    julia_float(n.to_f64()),
                    py_shape(t.x().shape()),
                    T::DTYPE.name()
                )));
            }
            // λ = T(min(ω/n, 1)): the division and min in f64, as Julia promotes
            let lam = T::f(jmin(self.omega / n.to_f64(), 1.0));
            elementwise::<T, 0>(t, [], wgsl!("scale", [lam]), move |_, g, _| g * lam)?;
        });
        Ok(true)
    }
}

impl Rule for ClipNorm {
    fn name(&self) -> &'static str { "ClipNorm" }
    hyperparameters!(omega: float, p: float, throw: bool);
    fn init(&self, _x: &Tensor) -> Result<State> { Ok(State::Empty) }
    via_run!();
}

/// `‖g‖_p` of a tensor on any device, reduced on that device: `m·‖g/m‖_p` with
/// `m = max|g|` (the rescaling of Julia's generic norm, against overflow), so that only
/// the norm (one float) comes back to the host — and `m` too when the norm is not
/// finite. p = Inf, −Inf, 0 (the count of non-zero entries), 1 or any other p.
///
/// ```
/// use flux_core::{optim::clip::device_pnorm, Tensor};
/// let g = Tensor::from_vec(vec![3.0f32, -4.0], &[2]).unwrap();
/// assert!((device_pnorm(&g, 2.0).unwrap() - 5.0).abs() < 1e-6);
/// assert_eq!(device_pnorm(&g, f64::INFINITY).unwrap(), 4.0);
/// assert_eq!(device_pnorm(&g, 0.0).unwrap(), 2.0);
/// ```
pub fn device_pnorm(g: &Tensor, p: f64) -> Result<f64> {
    let a = g.detach().abs()?;
    if g.numel() == 0 {
        return Ok(0.0);
    }
    if p == f64::INFINITY {
        return a.max(None, false)?.item();
    }
    if p == f64::NEG_INFINITY {
        return a.min(None, false)?.item();
    }
    if p == 0.0 {
        let zero = a.full_beside(&[], 0.0, a.dtype())?;
        return a.compare(&zero, crate::backend::CmpOp::Ne)?.sum_all()?.item();
    }
    if p == 1.0 {
        return a.sum_all()?.item();
    }
    // m = max|g| (1 where it is 0, so that a zero gradient has norm 0, not 0/0)
    let m = a.max(None, false)?;
    let zero = a.full_beside(&[], 0.0, a.dtype())?;
    let one = a.full_beside(&[], 1.0, a.dtype())?;
    let m1 = crate::tensor::misc::where_(&m.compare(&zero, crate::backend::CmpOp::Gt)?, &m, &one)?;
    let r = a.div(&m1)?;
    let s = if p == 2.0 { r.square()?.sum_all()?.sqrt()? } else { r.powf(p)?.sum_all()?.powf(1.0 / p)? };
    let n = s.mul(&m1)?.item()?;
    if !n.is_finite() {
        // an infinite entry makes g/m NaN; the norm is then that infinity
        let mv = m.item()?;
        if mv.is_infinite() {
            return Ok(mv);
        }
    }
    Ok(n)
}

/// `‖g‖_p` as Julia's `LinearAlgebra.norm` computes it for an array (the generic
/// algorithms, with their rescaling against overflow): p = 2, 1, Inf, −Inf, 0 (the
/// count of non-zero entries) or any other p. Sums run in f64; the result is rounded to
/// the gradient's precision. An empty array has norm 0.
///
/// ```
/// use flux_core::optim::clip::pnorm;
/// let g = [3.0f64, -4.0, 0.0];
/// assert_eq!(pnorm(&g, 2.0), 5.0);
/// assert_eq!(pnorm(&g, 1.0), 7.0);
/// assert_eq!(pnorm(&g, f64::INFINITY), 4.0);
/// assert_eq!(pnorm(&g, 0.0), 2.0); // the non-zero entries
/// assert_eq!(pnorm::<f32>(&[], 2.0), 0.0);
/// ```
pub fn pnorm<T: Float>(g: &[T], p: f64) -> T {
    if g.is_empty() {
        return T::zero();
    }
    let norm_inf = || g.iter().fold(g[0].abs(), |m, v| jmax(m, v.abs()));
    let norm_minus_inf = || g.iter().fold(g[0].abs(), |m, v| jmin(m, v.abs()));
    if p == 2.0 {
        let maxabs = norm_inf();
        if maxabs.is_zero() || maxabs.is_infinite() {
            return maxabs;
        }
        let n = T::f(g.len() as f64);
        if (n * maxabs * maxabs).is_finite() && !(maxabs * maxabs).is_zero() {
            let s: f64 = g.iter().map(|&v| (v * v).to_f64()).sum();
            T::f(s.sqrt())
        } else {
            let mut s = T::zero();
            for &v in g {
                let r = v.abs() / maxabs;
                s += r * r;
            }
            maxabs * s.sqrt()
        }
    } else if p == 1.0 {
        T::f(g.iter().map(|v| v.abs().to_f64()).sum::<f64>())
    } else if p == f64::INFINITY {
        norm_inf()
    } else if p == 0.0 {
        T::f(g.iter().filter(|v| !v.is_zero()).count() as f64)
    } else if p == f64::NEG_INFINITY {
        norm_minus_inf()
    } else {
        let mut maxabs = T::zero();
        if !(-1.0..=1.0).contains(&p) {
            maxabs = if p > 1.0 { norm_inf() } else { norm_minus_inf() };
            if maxabs.is_zero() || maxabs.is_infinite() {
                return maxabs;
            }
        }
        let m = maxabs.to_f64();
        if (-1.0..=1.0).contains(&p) || ((g.len() as f64 * m.powf(p)).is_finite() && m.powf(p) != 0.0) {
            let s: f64 = g.iter().map(|v| v.abs().to_f64().powf(p)).sum();
            T::f(s.powf(1.0 / p))
        } else {
            let s: f64 = g.iter().map(|v| (v.abs() / maxabs).to_f64().powf(p)).sum();
            T::f(m * s.powf(1.0 / p))
        }
    }
}

/// A float as Julia prints it: `2.0`, `Inf`, `-Inf`, `NaN`.
fn julia_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        (if v > 0.0 { "Inf" } else { "-Inf" }).into()
    } else {
        format!("{v:?}")
    }
}
