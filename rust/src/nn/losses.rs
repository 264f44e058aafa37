//! Every loss of `Flux.Losses`, prediction first, class dimension last by
//! default (`dim = -1`).
//!
//! Most losses are compositions of tensor ops, each of which has its own backward rule,
//! so gradients flow through them with no extra code; they are written in the forms that
//! stay finite (`softplus` for `logσ`, a masked `xlogy`, logsumexp in `logsoftmax`).
//! `ctc_loss` is one fused kernel (the α–β recursions) with its own [`Backward`].
//!
//! ```
//! use flux_core::{Tensor, nn::losses::{mse, Agg}};
//! let yh = Tensor::from_vec(vec![0.9f64, 0.1, 0.1, 0.9], &[4]).unwrap();
//! let y = Tensor::from_vec(vec![1.0f64, 1.0, 0.0, 0.0], &[4]).unwrap();
//! assert!((mse(&yh, &y, Agg::Mean).unwrap().item().unwrap() - 0.41).abs() < 1e-12);
//! ```
use crate::autodiff::{self, Backward, Op};
use crate::error::{py_shape, shape_err, value_err, Result};
use crate::tensor::elementwise::CmpOp;
use crate::tensor::{DType, Tensor};

/// How per-element (or per-sample) losses are combined.
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// let e = t(vec![1.0, 3.0]);
/// assert_eq!((val(Agg::Mean.apply(&e).unwrap()), val(Agg::Sum.apply(&e).unwrap())), (2.0, 4.0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agg {
    /// The mean over all elements.
    Mean,
    /// The sum over all elements.
    Sum,
    /// unreduced
    None,
}

/// Parsing and applying an aggregation.
///
/// ```
/// use flux_core::{nn::losses::Agg, Tensor};
/// let x = Tensor::from_vec(vec![1.0f64, 3.0], &[2]).unwrap();
/// assert_eq!(Agg::from_name("mean").unwrap().apply(&x).unwrap().item().unwrap(), 2.0);
/// ```
impl Agg {
    /// `"mean"`, `"sum"` or `"none"` (also `"identity"`).
    ///
    /// ```
    /// assert_eq!(flux_core::nn::losses::Agg::from_name("sum").unwrap(), flux_core::nn::losses::Agg::Sum);
    /// ```
    pub fn from_name(s: &str) -> Result<Agg> {
        match s {
            "mean" => Ok(Agg::Mean),
            "sum" => Ok(Agg::Sum),
            "none" | "identity" => Ok(Agg::None),
            _ => Err(value_err!("agg must be 'mean', 'sum' or 'none', got {s:?}")),
        }
    }
    /// Reduce `x` (all of it) as this aggregation says.
    ///
    /// ```
    /// use flux_core::{nn::losses::Agg, Tensor};
    /// let x = Tensor::from_vec(vec![1.0f64, 3.0], &[2]).unwrap();
    /// assert_eq!(Agg::Sum.apply(&x).unwrap().item().unwrap(), 4.0);
    /// assert_eq!(Agg::Mean.apply(&x).unwrap().item().unwrap(), 2.0);
    /// assert_eq!(Agg::None.apply(&x).unwrap().to_vec_f64().unwrap(), vec![1.0, 3.0]);
    /// ```
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Agg::Mean => x.mean(None, false),
            Agg::Sum => x.sum(None, false),
            Agg::None => Ok(x.clone()),
        }
    }
}

/// Sizes must match exactly (no broadcasting); a 0-d target is allowed.
///
/// ```
/// use flux_core::{nn::losses::check_sizes, DType, Tensor};
/// let (a, b) = (Tensor::zeros(&[2, 3], DType::F32), Tensor::zeros(&[3, 2], DType::F32));
/// assert!(check_sizes(&a, &a, "mse").is_ok());
/// assert!(check_sizes(&a, &Tensor::scalar(1.0, DType::F32), "mse").is_ok()); // a 0-d target
/// assert!(check_sizes(&a, &b, "mse").unwrap_err().to_string().contains("mse expects shape(ŷ) = (2, 3)"));
/// ```
pub fn check_sizes(yhat: &Tensor, y: &Tensor, name: &str) -> Result<()> {
    if yhat.shape() != y.shape() && y.ndim() != 0 {
        return Err(shape_err!("{name} expects shape(ŷ) = {} to match shape(y) = {}", py_shape(yhat.shape()), py_shape(y.shape())));
    }
    Ok(())
}

/// The target checked against ŷ and converted to ŷ's dtype (float32 in → float32 out).
fn target<'a>(yhat: &Tensor, y: &'a Tensor, name: &str) -> Result<std::borrow::Cow<'a, Tensor>> {
    check_sizes(yhat, y, name)?;
    y.cast_cow(yhat.dtype())
}

/// `eps(float(eltype(ŷ)))`
///
/// ```
/// use flux_core::{nn::losses::default_eps, DType};
/// assert_eq!(default_eps(DType::F32), f32::EPSILON as f64);
/// assert_eq!(default_eps(DType::F64), f64::EPSILON);
/// ```
pub fn default_eps(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => f32::EPSILON as f64,
        DType::F64 => f64::EPSILON,
    }
}

/// `x·log(z)`, exactly 0 where `x == 0` (and then no gradient reaches `z`).
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// // x·log(z), and 0 where x = 0 (even for z = 0)
/// assert_eq!(losses::xlogy(&t(vec![0.0, 2.0]), &t(vec![0.0, 1.0])).unwrap().to_vec_f64().unwrap(), vec![0.0, 0.0]);
/// ```
pub fn xlogy(x: &Tensor, z: &Tensor) -> Result<Tensor> {
    let nz = x.compare(&x.full_beside(&[], 0.0, x.dtype())?, CmpOp::Ne)?;
    // z where x ≠ 0, 1 elsewhere: log stays finite and d/dz vanishes where x == 0
    let zs = z.mul(&nz)?.add(&nz.rsub_scalar(1.0)?)?;
    x.mul(&zs.log()?)
}

/// `x·log(x)`, 0 at 0.
///
/// ```
/// use flux_core::{nn::losses::xlogx, Tensor};
/// let y = xlogx(&Tensor::from_vec(vec![0.0f64, 1.0, 2.0], &[3]).unwrap()).unwrap().to_vec_f64().unwrap();
/// assert_eq!(y[..2], [0.0, 0.0]); // 0 at 0, not NaN
/// assert!((y[2] - 2.0 * 2f64.ln()).abs() < 1e-15);
/// ```
pub fn xlogx(x: &Tensor) -> Result<Tensor> { xlogy(x, x) }

/// Sum over the class dimension `dim`, one value per sample.
fn per_sample(x: &Tensor, dim: isize) -> Result<Tensor> {
    if x.ndim() == 0 {
        return Ok(x.clone());
    }
    x.sum(Some(&[dim]), false)
}

/// `agg(|ŷ − y|)`
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// assert_eq!(val(losses::mae(&t(vec![1.0, 2.0]), &t(vec![0.0, 4.0]), Agg::Mean).unwrap()), 1.5);
/// ```
pub fn mae(yhat: &Tensor, y: &Tensor, agg: Agg) -> Result<Tensor> {
    let y = target(yhat, y, "mae")?;
    agg.apply(&yhat.sub(&y)?.abs()?)
}

/// `agg(|ŷ − y|²)`
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// let (yhat, y) = (t(vec![1.0, 2.0]), t(vec![0.0, 4.0]));
/// assert_eq!(val(losses::mse(&yhat, &y, Agg::Mean).unwrap()), 2.5);
/// assert_eq!(val(losses::mse(&yhat, &y, Agg::Sum).unwrap()), 5.0);
/// assert_eq!(losses::mse(&yhat, &y, Agg::None).unwrap().to_vec_f64().unwrap(), vec![1.0, 4.0]);
/// assert!(losses::mse(&yhat, &t(vec![1.0]), Agg::Mean).is_err());  // shapes must match
/// ```
pub fn mse(yhat: &Tensor, y: &Tensor, agg: Agg) -> Result<Tensor> {
    let y = target(yhat, y, "mse")?;
    if agg != Agg::None && yhat.shape() == y.shape() && yhat.dtype() == y.dtype() {
        // one fused op and one tape node instead of three (sub, square, mean): the
        // common case, and most of a small regression step
        return crate::ops::apply(&crate::ops::mse::MseOp { mean: agg == Agg::Mean }, &[yhat, &y]);
    }
    agg.apply(&yhat.sub(&y)?.square()?)
}

/// `agg(log((ŷ + ϵ)/(y + ϵ))²)`
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// assert!(val(losses::msle(&t(vec![1.0, 3.0]), &t(vec![1.0, 3.0]), Agg::Mean, None).unwrap()).abs() < 1e-12);
/// assert!(val(losses::msle(&t(vec![1.0]), &t(vec![3.0]), Agg::Mean, None).unwrap()) > 0.0);
/// ```
pub fn msle(yhat: &Tensor, y: &Tensor, agg: Agg, eps: Option<f64>) -> Result<Tensor> {
    let y = target(yhat, y, "msle")?;
    let eps = eps.unwrap_or_else(|| default_eps(yhat.dtype()));
    agg.apply(&yhat.add_scalar(eps)?.div(&y.add_scalar(eps)?)?.log()?.square()?)
}

/// `e = |ŷ − y|`: `½e²` where `e < δ`, else `δ(e − ½δ)`; then `agg`.
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// // ½e² for |e| ≤ δ, δ(|e| − ½δ) beyond: (0.125 + 2.5) / 2
/// let l = val(losses::huber_loss(&t(vec![0.5, 3.0]), &t(vec![0.0, 0.0]), Agg::Mean, 1.0).unwrap());
/// assert!((l - 1.3125).abs() < 1e-12);
/// ```
pub fn huber_loss(yhat: &Tensor, y: &Tensor, agg: Agg, delta: f64) -> Result<Tensor> {
    let y = target(yhat, y, "huber_loss")?;
    let e = yhat.sub(&y)?.abs()?;
    // the branch mask is a constant for differentiation, as Flux's ignore_derivatives
    let small = e.compare(&e.full_beside(&[], delta, e.dtype())?, CmpOp::Lt)?;
    let quad = e.square()?.mul_scalar(0.5)?.mul(&small)?;
    let lin = e.add_scalar(-0.5 * delta)?.mul_scalar(delta)?.mul(&small.rsub_scalar(1.0)?)?;
    agg.apply(&quad.add(&lin)?)
}

/// Smoothed labels: `y(1 − α) + α/size(y, dim)`, or with `dim = None` (binary labels,
/// Flux's `dims = 0`) `y(1 − α) + α/2`. Requires `0 < α < 1`.
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// let s = losses::label_smoothing(&t(vec![0.0, 1.0]), 0.2, None).unwrap().to_vec_f64().unwrap();
/// assert!((s[0] - 0.1).abs() < 1e-12 && (s[1] - 0.9).abs() < 1e-12);
/// ```
pub fn label_smoothing(y: &Tensor, alpha: f64, dim: Option<isize>) -> Result<Tensor> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(value_err!("label_smoothing needs 0 < α < 1, got α = {alpha}"));
    }
    let k = match dim {
        None => 2.0,
        Some(d) => {
            let d = crate::tensor::layout::norm_dim(d, y.ndim())?;
            *y.shape().get(d).ok_or_else(|| value_err!("label_smoothing: y of shape {:?} has no dimension {d}", y.shape()))? as f64
        }
    };
    y.mul_scalar(1.0 - alpha)?.add_scalar(alpha / k)
}

/// `−Σ_dim xlogy(y, ŷ + ϵ)` per sample, then `agg` (ŷ are probabilities).
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// let l = val(losses::crossentropy(&t(vec![0.25, 0.75]), &t(vec![0.0, 1.0]), -1, Agg::Mean, None).unwrap());
/// assert!((l + 0.75f64.ln()).abs() < 1e-9);
/// ```
pub fn crossentropy(yhat: &Tensor, y: &Tensor, dim: isize, agg: Agg, eps: Option<f64>) -> Result<Tensor> {
    let y = target(yhat, y, "crossentropy")?;
    let eps = eps.unwrap_or_else(|| default_eps(yhat.dtype()));
    agg.apply(&per_sample(&xlogy(&y, &yhat.add_scalar(eps)?)?, dim)?.neg()?)
}

/// `−Σ_dim y·logsoftmax(ŷ)` per sample, then `agg` (ŷ are logits).
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// // equal logits: log 2 for two classes
/// let l = val(losses::logitcrossentropy(&t(vec![3.0, 3.0]), &t(vec![0.0, 1.0]), -1, Agg::Mean).unwrap());
/// assert!((l - 2f64.ln()).abs() < 1e-12);
/// ```
pub fn logitcrossentropy(yhat: &Tensor, y: &Tensor, dim: isize, agg: Agg) -> Result<Tensor> {
    let y = target(yhat, y, "logitcrossentropy")?;
    agg.apply(&per_sample(&y.mul(&yhat.logsoftmax(dim)?)?, dim)?.neg()?)
}

/// `agg(−xlogy(y, ŷ + ϵ) − xlogy(1 − y, 1 − ŷ + ϵ))` (ŷ are probabilities).
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// let l = val(losses::binarycrossentropy(&t(vec![0.5]), &t(vec![1.0]), Agg::Mean, None).unwrap());
/// assert!((l - 2f64.ln()).abs() < 1e-9);
/// ```
pub fn binarycrossentropy(yhat: &Tensor, y: &Tensor, agg: Agg, eps: Option<f64>) -> Result<Tensor> {
    let y = target(yhat, y, "binarycrossentropy")?;
    let eps = eps.unwrap_or_else(|| default_eps(yhat.dtype()));
    let a = xlogy(&y, &yhat.add_scalar(eps)?)?;
    let b = xlogy(&y.rsub_scalar(1.0)?, &yhat.rsub_scalar(1.0 + eps)?)?;
    agg.apply(&a.add(&b)?.neg()?)
}

/// `agg((1 − y)·ŷ − logσ(ŷ))` for logits ŷ, with `−logσ(ŷ) = softplus(−ŷ)` (stable for
/// any ŷ, and its gradient `σ(ŷ) − y` never overflows).
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// let l = val(losses::logitbinarycrossentropy(&t(vec![0.0]), &t(vec![1.0]), Agg::Mean).unwrap());
/// assert!((l - 2f64.ln()).abs() < 1e-12);
/// ```
pub fn logitbinarycrossentropy(yhat: &Tensor, y: &Tensor, agg: Agg) -> Result<Tensor> {
    let y = target(yhat, y, "logitbinarycrossentropy")?;
    agg.apply(&y.rsub_scalar(1.0)?.mul(yhat)?.add(&yhat.neg()?.softplus()?)?)
}

/// KL(y ‖ ŷ): per sample `Σ_dim xlogx(y) − Σ_dim xlogy(y, ŷ + ϵ)`, then `agg`.
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// let p = t(vec![0.2, 0.8]);
/// assert!(val(losses::kldivergence(&p, &p, -1, Agg::Mean, None).unwrap()).abs() < 1e-9);
/// assert!(val(losses::kldivergence(&t(vec![0.5, 0.5]), &p, -1, Agg::Mean, None).unwrap()) > 0.0);
/// ```
pub fn kldivergence(yhat: &Tensor, y: &Tensor, dim: isize, agg: Agg, eps: Option<f64>) -> Result<Tensor> {
    let y = target(yhat, y, "kldivergence")?;
    let eps = eps.unwrap_or_else(|| default_eps(yhat.dtype()));
    let ent = per_sample(&xlogx(&y)?, dim)?;
    let ce = per_sample(&xlogy(&y, &yhat.add_scalar(eps)?)?, dim)?;
    agg.apply(&ent.sub(&ce)?)
}

/// `agg(ŷ − xlogy(y, ŷ))`
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// // ŷ − y·log ŷ
/// assert!((val(losses::poisson_loss(&t(vec![1.0]), &t(vec![1.0]), Agg::Mean).unwrap()) - 1.0).abs() < 1e-12);
/// ```
pub fn poisson_loss(yhat: &Tensor, y: &Tensor, agg: Agg) -> Result<Tensor> {
    let y = target(yhat, y, "poisson_loss")?;
    agg.apply(&yhat.sub(&xlogy(&y, yhat)?)?)
}

/// `agg(max(0, 1 − ŷ·y))` for labels y ∈ {−1, 1}.
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// // mean(max(0, 1 − ŷ·y)) = (0.5 + 3) / 2
/// assert_eq!(val(losses::hinge_loss(&t(vec![0.5, -2.0]), &t(vec![1.0, 1.0]), Agg::Mean).unwrap()), 1.75);
/// ```
pub fn hinge_loss(yhat: &Tensor, y: &Tensor, agg: Agg) -> Result<Tensor> {
    let y = target(yhat, y, "hinge_loss")?;
    agg.apply(&yhat.mul(&y)?.rsub_scalar(1.0)?.relu()?)
}

/// `agg(max(0, 1 − ŷ·y)²)`
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// assert_eq!(val(losses::squared_hinge_loss(&t(vec![0.5, -2.0]), &t(vec![1.0, 1.0]), Agg::Mean).unwrap()), 4.625);
/// ```
pub fn squared_hinge_loss(yhat: &Tensor, y: &Tensor, agg: Agg) -> Result<Tensor> {
    let y = target(yhat, y, "squared_hinge_loss")?;
    agg.apply(&yhat.mul(&y)?.rsub_scalar(1.0)?.relu()?.square()?)
}

/// `1 − (2Σ(y·ŷ) + s)/(Σy² + Σŷ² + s)` over all elements (no `agg`).
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// let y = t(vec![1.0, 0.0, 1.0]);
/// assert!(val(losses::dice_coeff_loss(&y, &y, 1.0).unwrap()).abs() < 1e-12);  // a perfect overlap
/// assert!(val(losses::dice_coeff_loss(&t(vec![0.0, 1.0, 0.0]), &y, 1.0).unwrap()) > 0.5);
/// ```
pub fn dice_coeff_loss(yhat: &Tensor, y: &Tensor, smooth: f64) -> Result<Tensor> {
    let y = target(yhat, y, "dice_coeff_loss")?;
    let num = y.mul(yhat)?.sum_all()?.mul_scalar(2.0)?.add_scalar(smooth)?;
    let den = y.square()?.sum_all()?.add(&yhat.square()?.sum_all()?)?.add_scalar(smooth)?;
    num.div(&den)?.rsub_scalar(1.0)
}

/// `1 − (TP + 1)/(TP + β·FP + (1 − β)·FN + 1)` with `TP = Σyŷ`, `FP = Σ(1 − y)ŷ`,
/// `FN = Σy(1 − ŷ)` (no `agg`; β weighs false positives, as Flux's code does).
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// let y = t(vec![1.0, 0.0, 1.0]);
/// assert!(val(losses::tversky_loss(&y, &y, 0.7).unwrap()).abs() < 1e-12);
/// assert!(val(losses::tversky_loss(&t(vec![0.0, 1.0, 0.0]), &y, 0.7).unwrap()) > 0.5);
/// ```
pub fn tversky_loss(yhat: &Tensor, y: &Tensor, beta: f64) -> Result<Tensor> {
    let y = target(yhat, y, "tversky_loss")?;
    let tp = y.mul(yhat)?;
    let fp = y.rsub_scalar(1.0)?.mul(yhat)?.mul_scalar(beta)?;
    let fneg = y.mul(&yhat.rsub_scalar(1.0)?)?.mul_scalar(1.0 - beta)?;
    let num = tp.sum_all()?.add_scalar(1.0)?;
    let den = tp.add(&fp)?.add(&fneg)?.sum_all()?.add_scalar(1.0)?;
    num.div(&den)?.rsub_scalar(1.0)
}

/// `(1 − x)^γ`; γ = 0 is exactly 1 (the power's gradient `0·x^−1` would be NaN at x = 0).
fn focal_weight(one_minus: &Tensor, gamma: f64) -> Result<Option<Tensor>> {
    if gamma == 0.0 {
        return Ok(None);
    }
    Ok(Some(one_minus.powf(gamma)?))
}

/// `ŷϵ = ŷ + ϵ`, `p_t = y·ŷϵ + (1 − y)(1 − ŷϵ)`: `agg((1 − p_t)^γ · (−log p_t))`.
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// // γ = 0 is the binary cross-entropy
/// let (yhat, y) = (t(vec![0.3, 0.9]), t(vec![0.0, 1.0]));
/// let f = val(losses::binary_focal_loss(&yhat, &y, Agg::Mean, 0.0, None).unwrap());
/// assert!((f - val(losses::binarycrossentropy(&yhat, &y, Agg::Mean, None).unwrap())).abs() < 1e-9);
/// ```
pub fn binary_focal_loss(yhat: &Tensor, y: &Tensor, agg: Agg, gamma: f64, eps: Option<f64>) -> Result<Tensor> {
    let y = target(yhat, y, "binary_focal_loss")?;
    let eps = eps.unwrap_or_else(|| default_eps(yhat.dtype()));
    let ye = yhat.add_scalar(eps)?;
    let pt = y.mul(&ye)?.add(&y.rsub_scalar(1.0)?.mul(&ye.rsub_scalar(1.0)?)?)?;
    let ce = pt.log()?.neg()?;
    let l = match focal_weight(&pt.rsub_scalar(1.0)?, gamma)? {
        Some(w) => w.mul(&ce)?,
        None => ce,
    };
    agg.apply(&l)
}

/// Per sample `Σ_dim −y·(1 − ŷϵ)^γ·log(ŷϵ)` with `ŷϵ = ŷ + ϵ`, then `agg`.
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// // γ = 0 is the cross-entropy
/// let (yhat, y) = (t(vec![0.3, 0.7]), t(vec![0.0, 1.0]));
/// let f = val(losses::focal_loss(&yhat, &y, -1, Agg::Mean, 0.0, None).unwrap());
/// assert!((f - val(losses::crossentropy(&yhat, &y, -1, Agg::Mean, None).unwrap())).abs() < 1e-9);
/// ```
pub fn focal_loss(yhat: &Tensor, y: &Tensor, dim: isize, agg: Agg, gamma: f64, eps: Option<f64>) -> Result<Tensor> {
    let y = target(yhat, y, "focal_loss")?;
    let eps = eps.unwrap_or_else(|| default_eps(yhat.dtype()));
    let ye = yhat.add_scalar(eps)?;
    let mut l = y.mul(&ye.log()?)?;
    if let Some(w) = focal_weight(&ye.rsub_scalar(1.0)?, gamma)? {
        l = l.mul(&w)?;
    }
    agg.apply(&per_sample(&l, dim)?.neg()?)
}

/// `agg((1 − y)·ŷ² + y·max(0, margin − ŷ)²)` for distances ŷ and labels y (0 similar,
/// 1 dissimilar). A negative margin is a ValueError.
///
/// ```
/// use flux_core::{nn::losses::{self, Agg}, Tensor};
/// let t = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
/// let val = |l: Tensor| l.item().unwrap();
/// // (1 − y)·ŷ² + y·max(0, margin − ŷ)²
/// let l = val(losses::siamese_contrastive_loss(&t(vec![0.2]), &t(vec![1.0]), Agg::Mean, 1.0).unwrap());
/// assert!((l - 0.64).abs() < 1e-12);
/// ```
pub fn siamese_contrastive_loss(yhat: &Tensor, y: &Tensor, agg: Agg, margin: f64) -> Result<Tensor> {
    if margin < 0.0 {
        return Err(value_err!("siamese_contrastive_loss: margin must be non-negative, got {margin}"));
    }
    let y = target(yhat, y, "siamese_contrastive_loss")?;
    let near = y.rsub_scalar(1.0)?.mul(&yhat.square()?)?;
    let far = y.mul(&yhat.rsub_scalar(margin)?.relu()?.square()?)?;
    agg.apply(&near.add(&far)?)
}

// ---- CTC -------------------------------------------------------------------------------

fn logaddexp(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// The gradient of ctc_loss with respect to the logits, computed with the forward pass.
#[derive(Debug)]
struct CtcBackward {
    grad: Tensor,
}

impl Backward for CtcBackward {
    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(self.grad.mul(&g.cast(self.grad.dtype())?)?)])
    }
}

/// The negative log-likelihood of the label sequence `labels` (0-based class indices)
/// under `logits` of shape `(time, classes)`, with the blank the **last** class and a
/// log-softmax over classes taken inside (NNlib's `ctc_loss` in our layout).
/// Computed with Graves' α recursion in log space; the gradient comes from the α–β
/// recursions. An impossible alignment (too few time steps) gives `+∞` and a zero
/// gradient.
///
/// ```
/// use flux_core::{Tensor, nn::losses::ctc_loss};
/// // two steps, classes {a, blank}: the paths "a a", "a -", "- a" all read "a"
/// let x = Tensor::zeros(&[2, 2], flux_core::DType::F64);
/// let l = ctc_loss(&x, &[0]).unwrap().item().unwrap();
/// assert!((l - (4.0f64 / 3.0).ln()).abs() < 1e-12);
/// ```
pub fn ctc_loss(logits: &Tensor, labels: &[usize]) -> Result<Tensor> {
    if logits.ndim() != 2 {
        return Err(shape_err!("ctc_loss expects ŷ of shape (time, classes), got shape {}", py_shape(logits.shape())));
    }
    let (t_len, c) = (logits.shape()[0], logits.shape()[1]);
    if c < 2 {
        return Err(shape_err!("ctc_loss needs at least 2 classes (the last is the blank), got shape {}", py_shape(logits.shape())));
    }
    let blank = c - 1;
    if let Some(&bad) = labels.iter().find(|&&l| l >= blank) {
        return Err(value_err!("ctc_loss: label {bad} is not a class index below the blank {blank} (ŷ has {c} classes)"));
    }
    #[cfg(feature = "wgpu")]
    if logits.device() == crate::tensor::Device::Wgpu && t_len > 0 {
        return ctc_loss_gpu(logits, labels, t_len, c);
    }
    // log-probabilities in f64 whatever the input dtype
    let lp: Vec<f64> = {
        let v = logits.to_vec_f64()?;
        let mut out = vec![0.0; v.len()];
        for t in 0..t_len {
            let row = &v[t * c..(t + 1) * c];
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let m = if m.is_finite() { m } else { 0.0 };
            let ls = row.iter().map(|&x| (x - m).exp()).sum::<f64>().ln();
            for k in 0..c {
                out[t * c + k] = (row[k] - m) - ls;
            }
        }
        out
    };
    // the extended sequence: blank, l1, blank, l2, …, blank
    let s_len = 2 * labels.len() + 1;
    let ext: Vec<usize> = (0..s_len).map(|s| if s % 2 == 0 { blank } else { labels[s / 2] }).collect();
    let skip = |s: usize| s >= 2 && ext[s] != blank && ext[s] != ext[s - 2];
    let ninf = f64::NEG_INFINITY;
    let mut alpha = vec![ninf; t_len * s_len];
    let mut beta = vec![ninf; t_len * s_len];
    let nll = if t_len == 0 {
        if labels.is_empty() { 0.0 } else { f64::INFINITY }
    } else {
        alpha[0] = lp[ext[0]];
        if s_len > 1 {
            alpha[1] = lp[ext[1]];
        }
        for t in 1..t_len {
            for s in 0..s_len {
                let mut a = alpha[(t - 1) * s_len + s];
                if s >= 1 {
                    a = logaddexp(a, alpha[(t - 1) * s_len + s - 1]);
                }
                if skip(s) {
                    a = logaddexp(a, alpha[(t - 1) * s_len + s - 2]);
                }
                alpha[t * s_len + s] = a + lp[t * c + ext[s]];
            }
        }
        let last = (t_len - 1) * s_len;
        let ll = if s_len > 1 { logaddexp(alpha[last + s_len - 1], alpha[last + s_len - 2]) } else { alpha[last] };
        -ll
    };
    // (a GPU sequence of no time steps lands here: its loss and empty gradient go up)
    let out = Tensor::scalar(nll, logits.dtype()).to_device(logits.device())?.detach();
    if autodiff::is_recording() {
        // β_t(s): log-probability of emitting the rest after step t, being at s at step t
        // (excluding step t's own emission), so Σ_s α_t(s)β_t(s) = p for every t.
        let mut grad = vec![0.0f64; t_len * c];
        if nll.is_finite() && t_len > 0 {
            let last = (t_len - 1) * s_len;
            beta[last + s_len - 1] = 0.0;
            if s_len > 1 {
                beta[last + s_len - 2] = 0.0;
            }
            for t in (0..t_len - 1).rev() {
                for s in 0..s_len {
                    let nx = |s2: usize| beta[(t + 1) * s_len + s2] + lp[(t + 1) * c + ext[s2]];
                    let mut b = nx(s);
                    if s + 1 < s_len {
                        b = logaddexp(b, nx(s + 1));
                    }
                    if s + 2 < s_len && skip(s + 2) {
                        b = logaddexp(b, nx(s + 2));
                    }
                    beta[t * s_len + s] = b;
                }
            }
            let ll = -nll;
            for t in 0..t_len {
                let mut occ = vec![ninf; c];
                for s in 0..s_len {
                    occ[ext[s]] = logaddexp(occ[ext[s]], alpha[t * s_len + s] + beta[t * s_len + s]);
                }
                for k in 0..c {
                    // d(−log p)/d logit = softmax − posterior occupancy of class k at t
                    grad[t * c + k] = lp[t * c + k].exp() - (occ[k] - ll).exp();
                }
            }
        }
        let g = Tensor::from_vec(grad, &[t_len, c])?.cast(logits.dtype())?.to_device(logits.device())?.detach();
        autodiff::record(&[logits], &out, || Op::Custom(Box::new(CtcBackward { grad: g })));
    }
    Ok(out)
}

/// ctc_loss of GPU logits: the recursions and the gradient in one GPU kernel
/// ([`crate::backend::wgpu::ctc`]), so a step reads nothing back mid-way (float32 there,
/// float64 on the CPU).
#[cfg(feature = "wgpu")]
fn ctc_loss_gpu(logits: &Tensor, labels: &[usize], t_len: usize, c: usize) -> Result<Tensor> {
    use crate::backend::wgpu::{ctc, tensors};
    let blank = (c - 1) as u32;
    let ext: Vec<u32> = (0..2 * labels.len() + 1).map(|s| if s % 2 == 0 { blank } else { labels[s / 2] as u32 }).collect();
    let x = tensors::dense(logits)?;
    let want_grad = autodiff::is_recording();
    let (nll, grad) = ctc::ctc(tensors::buffer(&x, "ctc_loss")?, t_len, c, &ext, want_grad)?;
    let out = tensors::wrap(nll, &[]).detach();
    if let Some(g) = grad {
        let g = tensors::wrap(g, &[t_len, c]).detach();
        autodiff::record(&[logits], &out, || Op::Custom(Box::new(CtcBackward { grad: g })));
    }
    Ok(out)
}
