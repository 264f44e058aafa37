//! Numerically stable softmax and logsoftmax along one dimension.
use super::layout::norm_dim;
use super::{Float, Tensor};
use crate::autodiff::{record, Op};
use crate::error::Result;

/// Softmax (or logsoftmax) over the middle axis of a contiguous (outer, n, inner) view.
fn kernel<T: Float>(xs: &[T], outer: usize, n: usize, inner: usize, log: bool) -> Vec<T> {
    let mut out = vec![T::zero(); xs.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| o * n * inner + j * inner + i;
            let mut mx = T::neg_infinity();
            for j in 0..n {
                mx = mx.max(xs[at(j)]);
            }
            if !mx.is_finite() {
                mx = T::zero();
            }
            let mut s = T::zero();
            for j in 0..n {
                let e = (xs[at(j)] - mx).exp();
                out[at(j)] = e;
                s += e;
            }
            if log {
                // (x − max) − ln Σ, not x − (ln Σ + max): adding the max first rounds
                // ln Σ at the magnitude of x (in f32 an error of ~1e-5 at x ≈ 1000).
                let ls = s.ln();
                for j in 0..n {
                    out[at(j)] = (xs[at(j)] - mx) - ls;
                }
            } else {
                for j in 0..n {
                    out[at(j)] = out[at(j)] / s;
                }
            }
        }
    }
    out
}

impl Tensor {
    fn softmax_impl(&self, dim: isize, log: bool) -> Result<Tensor> {
        let d = norm_dim(dim, self.ndim())?;
        let x = self.contiguous();
        let s = self.shape();
        // a 0-d tensor is one row of length 1 (indexing s[d] panicked)
        let (outer, n, inner) = if s.is_empty() { (1, 1, 1) } else { (s[..d].iter().product(), s[d], s[d + 1..].iter().product()) };
        let out = crate::dispatch!(self.dtype(), T => {
            Tensor::from_cpu(T::vec_into(kernel(x.as_slice::<T>()?, outer, n, inner, log)), s)
        });
        record(&[self], &out, || Op::Softmax { y: out.clone(), dim: d, log });
        Ok(out)
    }
    /// `exp(x) / sum(exp(x), dim)`, computed stably.
    pub fn softmax(&self, dim: isize) -> Result<Tensor> { self.softmax_impl(dim, false) }
    /// `x - log(sum(exp(x), dim))`, computed stably.
    pub fn logsoftmax(&self, dim: isize) -> Result<Tensor> { self.softmax_impl(dim, true) }
}
