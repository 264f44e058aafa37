//! Numerically stable softmax and logsoftmax along one dimension.
use super::layout::{norm_dim, Layout};
use super::Tensor;
use crate::autodiff::{record, Op};
use crate::error::Result;

impl Tensor {
    fn softmax_impl(&self, dim: isize, log: bool) -> Result<Tensor> {
        let d = norm_dim(dim, self.ndim())?;
        let out = Tensor::from_storage(self.storage().softmax(self.layout(), d, log)?, Layout::contiguous(self.shape()));
        record(&[self], &out, || Op::Softmax { y: out.clone(), dim: d, log });
        Ok(out)
    }
    /// `exp(x) / sum(exp(x), dim)`, computed stably.
    pub fn softmax(&self, dim: isize) -> Result<Tensor> { self.softmax_impl(dim, false) }
    /// `x - log(sum(exp(x), dim))`, computed stably.
    pub fn logsoftmax(&self, dim: isize) -> Result<Tensor> { self.softmax_impl(dim, true) }
}
