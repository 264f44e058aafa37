//! Numerically stable softmax and logsoftmax on the host.
use crate::tensor::Float;

/// Softmax (or logsoftmax) over the middle axis of a contiguous (outer, n, inner) buffer.
pub(crate) fn softmax<T: Float>(xs: &[T], outer: usize, n: usize, inner: usize, log: bool) -> Vec<T> {
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
