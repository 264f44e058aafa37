//! Numerically stable softmax and logsoftmax along one dimension.
use super::layout::{norm_dim, Layout};
use super::Tensor;
use crate::autodiff::{record, Op};
use crate::error::Result;

/// Softmax and logsoftmax along a dimension (recorded on the tape).
///
/// ```
/// use flux_core::Tensor;
/// let p = Tensor::from_vec(vec![0.0f64, 0.0], &[2]).unwrap().softmax(0).unwrap();
/// assert_eq!(p.to_vec_f64().unwrap(), vec![0.5, 0.5]);
/// ```
impl Tensor {
    fn softmax_impl(&self, dim: isize, log: bool) -> Result<Tensor> {
        let d = norm_dim(dim, self.ndim())?;
        let out = Tensor::from_storage(self.storage().softmax(self.layout(), d, log)?, Layout::contiguous(self.shape()));
        record(&[self], &out, || Op::Softmax { y: out.clone(), dim: d, log });
        Ok(out)
    }
    /// `exp(x) / sum(exp(x), dim)`, computed stably.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 1000.0, 1000.0], &[2, 2]).unwrap();
    /// let p = x.softmax(-1).unwrap().to_vec_f64().unwrap();
    /// assert!((p[1] - 1.0 / (1.0 + (-1f64).exp())).abs() < 1e-15);
    /// assert_eq!(p[2..], [0.5, 0.5]); // no overflow of e^1000
    /// ```
    pub fn softmax(&self, dim: isize) -> Result<Tensor> { self.softmax_impl(dim, false) }
    /// `x - log(sum(exp(x), dim))`, computed stably.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let x = Tensor::from_vec(vec![3.0f64, 3.0], &[2]).unwrap();
    /// let l = x.logsoftmax(0).unwrap().to_vec_f64().unwrap();
    /// assert!(l.iter().all(|v| (v + 2f64.ln()).abs() < 1e-15));
    /// ```
    pub fn logsoftmax(&self, dim: isize) -> Result<Tensor> { self.softmax_impl(dim, true) }
}
