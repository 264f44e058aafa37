//! Plain standardisation of a (P, C, Q) view, `x̂ = (x − μ)/√(σ² + ε)` per C slice with
//! the uncorrected variance, returning the statistics too. It is the fused norm op of
//! [`crate::ops::norm`] without an affine part or running statistics (the layers call
//! that op directly).
use crate::error::Result;
use crate::ops::norm::{norm_with_stats, NormSpec, Stats};
use crate::tensor::Tensor;

/// Standardise `x` viewed as (p, c, q) over p and q for each of the c slices. Returns
/// `(x̂, mean, var)` with `mean`, `var` of shape (c,) (not differentiable).
///
/// ```
/// use flux_core::{Tensor, tensor::norm::normalize};
/// let x = Tensor::from_vec(vec![1.0f64, 3.0, 10.0, 30.0], &[2, 2]).unwrap();
/// let (y, mean, var) = normalize(&x, 1, 2, 2, 0.0).unwrap();   // two rows, each over its 2 values
/// assert_eq!(y.to_vec_f64().unwrap(), vec![-1.0, 1.0, -1.0, 1.0]);
/// assert_eq!((mean.to_vec_f64().unwrap(), var.to_vec_f64().unwrap()), (vec![2.0, 20.0], vec![1.0, 100.0]));
/// ```
pub fn normalize(x: &Tensor, p: usize, c: usize, q: usize, eps: f64) -> Result<(Tensor, Tensor, Tensor)> {
    let (y, st) = norm_with_stats(x, None, &NormSpec::new(p, c, q).eps(eps), Stats::Batch)?;
    let (mean, var) = st.expect("batch statistics");
    Ok((y, mean, var))
}
