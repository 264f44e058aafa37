//! Dropout masks with an explicit generator; [`dropout`] and [`alpha_dropout`] are the
//! fused ops of [`crate::ops::dropout`], re-exported here.
use super::random::Rng;
use super::{DType, Tensor};
use crate::error::{value_err, Result};

/// SELU's negative saturation value −λα (NNlib's `α′` in AlphaDropout).
pub const ALPHA_PRIME: f64 = -1.7580993408473766;

pub(crate) fn check_p(p: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(value_err!("dropout probability must be in [0, 1], got {p}"));
    }
    Ok(())
}

/// A mask of `shape` whose entries are 0 with probability `p` and 1/(1−p) otherwise
/// (element kept iff a uniform draw exceeds `p`, as Flux).
///
/// ```
/// use flux_core::{DType, tensor::{random::Rng, dropout::dropout_mask}};
/// let m = dropout_mask(&[1000], 0.5, DType::F32, &mut Rng::seed(0)).unwrap();
/// assert!(m.to_vec_f64().unwrap().iter().all(|&v| v == 0.0 || v == 2.0));
/// ```
pub fn dropout_mask(shape: &[usize], p: f64, dtype: DType, rng: &mut Rng) -> Result<Tensor> {
    check_p(p)?;
    let n: usize = shape.iter().product();
    let keep = if p >= 1.0 { 0.0 } else { 1.0 / (1.0 - p) };
    let v: Vec<f64> = (0..n).map(|_| if rng.uniform() > p { keep } else { 0.0 }).collect();
    Tensor::from_vec(v, shape)?.cast(dtype)
}

// The layers' dropout and alpha dropout are fused ops (one pass, one tape node) that
// draw exactly as `dropout_mask` does.
pub use crate::ops::dropout::{alpha_dropout, dropout};
