//! Losses, prediction first (spec §8), class dimension last by default.
use crate::error::{shape_err, value_err, Result};
use crate::tensor::{DType, Tensor};

/// How per-element (or per-sample) losses are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agg {
    Mean,
    Sum,
    /// unreduced
    None,
}

impl Agg {
    pub fn from_name(s: &str) -> Result<Agg> {
        match s {
            "mean" => Ok(Agg::Mean),
            "sum" => Ok(Agg::Sum),
            "none" | "identity" => Ok(Agg::None),
            _ => Err(value_err!("agg must be 'mean', 'sum' or 'none', got {s:?}")),
        }
    }
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Agg::Mean => x.mean(None, false),
            Agg::Sum => x.sum(None, false),
            Agg::None => Ok(x.clone()),
        }
    }
}

/// Sizes must match exactly; a one-element target is allowed.
pub fn check_sizes(yhat: &Tensor, y: &Tensor, name: &str) -> Result<()> {
    if yhat.shape() != y.shape() && y.ndim() != 0 {
        return Err(shape_err!("{name} expects shape(ŷ) = {:?} to match shape(y) = {:?}", yhat.shape(), y.shape()));
    }
    Ok(())
}

/// `eps(float(eltype(ŷ)))`
pub fn default_eps(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => f32::EPSILON as f64,
        DType::F64 => f64::EPSILON,
    }
}

/// Mean (by `agg`) of `|ŷ − y|²`.
pub fn mse(yhat: &Tensor, y: &Tensor, agg: Agg) -> Result<Tensor> {
    check_sizes(yhat, y, "mse")?;
    agg.apply(&yhat.sub(&y.cast(yhat.dtype())?)?.square()?)
}

/// `−Σ_dim y·log(ŷ + ϵ)` per sample, then `agg`.
pub fn crossentropy(yhat: &Tensor, y: &Tensor, dim: isize, agg: Agg, eps: Option<f64>) -> Result<Tensor> {
    check_sizes(yhat, y, "crossentropy")?;
    let eps = eps.unwrap_or_else(|| default_eps(yhat.dtype()));
    let per = y.cast(yhat.dtype())?.mul(&yhat.add_scalar(eps)?.log()?)?.sum(Some(&[dim]), false)?.neg()?;
    agg.apply(&per)
}

/// `−Σ_dim y·logsoftmax(ŷ)` per sample, then `agg` (ŷ are logits).
pub fn logitcrossentropy(yhat: &Tensor, y: &Tensor, dim: isize, agg: Agg) -> Result<Tensor> {
    check_sizes(yhat, y, "logitcrossentropy")?;
    let per = y.cast(yhat.dtype())?.mul(&yhat.logsoftmax(dim)?)?.sum(Some(&[dim]), false)?.neg()?;
    agg.apply(&per)
}
