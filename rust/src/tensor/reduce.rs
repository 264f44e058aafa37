//! Reductions over any set of dimensions: sum, mean, max, min.
use super::layout::{norm_dim, Layout};
use super::{Float, Tensor};
use crate::autodiff::{record, Op};
use crate::error::Result;

pub use crate::backend::ReduceOp;

/// `Σ f(x)` over `xs` in 16 interleaved partial sums, added up in a fixed order: one
/// running float sum is a serial chain the compiler may not reorder, so it does not
/// vectorise (the convolution's bias gradient and the norms' statistics use this).
#[inline(always)]
pub(crate) fn sum_lanes<T: Float>(xs: &[T], f: impl Fn(T) -> T) -> T {
    const L: usize = 16;
    let mut acc = [T::zero(); L];
    let mut it = xs.chunks_exact(L);
    for c in &mut it {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    let tail = it.remainder().iter().fold(T::zero(), |s, &v| s + f(v));
    acc.iter().fold(T::zero(), |s, &a| s + a) + tail
}

/// Sorted, unique, non-negative dims; `None` means all.
pub(crate) fn norm_dims(dims: Option<&[isize]>, ndim: usize) -> Result<Vec<usize>> {
    let mut v = match dims {
        None => (0..ndim).collect(),
        Some(ds) => ds.iter().map(|&d| norm_dim(d, ndim)).collect::<Result<Vec<_>>>()?,
    };
    v.sort_unstable();
    v.dedup();
    // `norm_dim` accepts dim 0 of a 0-d tensor (as torch does); reducing it is a no-op,
    // and keeping it made the kernels index a dimension that does not exist (a panic).
    v.retain(|&d| d < ndim);
    Ok(v)
}

fn keep_shape(shape: &[usize], dims: &[usize]) -> Vec<usize> {
    shape.iter().enumerate().map(|(i, &s)| if dims.contains(&i) { 1 } else { s }).collect()
}
fn drop_shape(shape: &[usize], dims: &[usize]) -> Vec<usize> {
    shape.iter().enumerate().filter(|(i, _)| !dims.contains(i)).map(|(_, &s)| s).collect()
}

/// Reductions over some or all dimensions (recorded on the tape), and `argmax`.
///
/// ```
/// use flux_core::Tensor;
/// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
/// assert_eq!(x.sum(Some(&[0]), false).unwrap().to_vec_f64().unwrap(), vec![4.0, 6.0]);
/// ```
impl Tensor {
    fn reduce(&self, dims: Option<&[isize]>, keepdims: bool, op: ReduceOp) -> Result<(Tensor, Vec<usize>)> {
        let d = norm_dims(dims, self.ndim())?;
        let kshape = keep_shape(self.shape(), &d);
        let k = Tensor::from_storage(self.storage().reduce(self.layout(), &d, op)?, Layout::contiguous(&kshape));
        let out = if keepdims { k } else { k.reshape_view(&drop_shape(self.shape(), &d))? };
        Ok((out, d))
    }
    /// Sum over `dims` (all when `None`).
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    /// let rows = x.sum(Some(&[-1]), true).unwrap();
    /// assert_eq!((rows.shape(), rows.to_vec_f64().unwrap()), (&[2usize, 1][..], vec![3.0, 7.0]));
    /// assert_eq!(x.sum(None, false).unwrap().item().unwrap(), 10.0);
    /// ```
    pub fn sum(&self, dims: Option<&[isize]>, keepdims: bool) -> Result<Tensor> {
        let (out, d) = self.reduce(dims, keepdims, ReduceOp::Sum)?;
        record(&[self], &out, || Op::Sum { in_shape: self.shape().to_vec(), dims: d, scale: 1.0 });
        Ok(out)
    }
    /// The sum of every element (0-d).
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    /// let s = x.sum_all().unwrap();
    /// assert_eq!((s.ndim(), s.item().unwrap()), (0, 10.0));
    /// ```
    pub fn sum_all(&self) -> Result<Tensor> { self.sum(None, false) }
    /// The mean over `dims` (all when `None`).
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    /// assert_eq!(x.mean(Some(&[1]), false).unwrap().to_vec_f64().unwrap(), vec![1.5, 3.5]);
    /// assert_eq!(x.mean(None, false).unwrap().item().unwrap(), 2.5);
    /// ```
    pub fn mean(&self, dims: Option<&[isize]>, keepdims: bool) -> Result<Tensor> {
        let (s, d) = self.reduce(dims, keepdims, ReduceOp::Sum)?;
        let count: usize = d.iter().map(|&i| self.shape()[i]).product();
        let scale = 1.0 / count as f64;
        let out = Tensor::from_storage(s.storage().affine(s.layout(), scale, 0.0)?, Layout::contiguous(s.shape()));
        record(&[self], &out, || Op::Sum { in_shape: self.shape().to_vec(), dims: d, scale });
        Ok(out)
    }
    fn extremum(&self, dims: Option<&[isize]>, keepdims: bool, op: ReduceOp) -> Result<Tensor> {
        let nd = norm_dims(dims, self.ndim())?;
        if nd.iter().any(|&i| self.shape()[i] == 0) || (self.numel() == 0 && self.ndim() > 0 && nd.is_empty()) {
            // as numpy: a maximum of nothing has no value
            return Err(crate::error::value_err!("max/min over an empty dimension of a tensor of shape {:?}", self.shape()));
        }
        let (out, d) = self.reduce(dims, keepdims, op)?;
        record(&[self], &out, || Op::Extremum { x: self.clone(), y: out.clone(), dims: d });
        Ok(out)
    }
    /// The maximum over `dims`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 5.0, 3.0, 4.0], &[2, 2]).unwrap();
    /// assert_eq!(x.max(Some(&[0]), false).unwrap().to_vec_f64().unwrap(), vec![3.0, 5.0]);
    /// assert_eq!(x.max(None, false).unwrap().item().unwrap(), 5.0);
    /// ```
    pub fn max(&self, dims: Option<&[isize]>, keepdims: bool) -> Result<Tensor> { self.extremum(dims, keepdims, ReduceOp::Max) }
    /// The minimum over `dims`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 5.0, 3.0, 0.5], &[2, 2]).unwrap();
    /// assert_eq!(x.min(Some(&[1]), false).unwrap().to_vec_f64().unwrap(), vec![1.0, 0.5]);
    /// ```
    pub fn min(&self, dims: Option<&[isize]>, keepdims: bool) -> Result<Tensor> { self.extremum(dims, keepdims, ReduceOp::Min) }

    /// Sum away the dimensions that broadcasting added to reach this shape from `shape`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let g = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]).unwrap();
    /// // the gradient of a (2,) operand broadcast to (3, 2)
    /// assert_eq!(g.sum_to_shape(&[2]).unwrap().to_vec_f64().unwrap(), vec![9.0, 12.0]);
    /// assert_eq!(g.sum_to_shape(&[3, 1]).unwrap().to_vec_f64().unwrap(), vec![3.0, 7.0, 11.0]);
    /// ```
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let lead = self.ndim() - shape.len();
        let dims: Vec<isize> = (0..self.ndim())
            .filter(|&i| i < lead || (shape[i - lead] == 1 && self.shape()[i] != 1))
            .map(|i| i as isize)
            .collect();
        self.sum(Some(&dims), true)?.reshape(shape)
    }

    /// Index of the largest value along `dim` (first on ties; NaN counts as the largest,
    /// as in Julia and numpy), for each other position.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 5.0, 3.0, 7.0, 0.0, 7.0], &[2, 3]).unwrap();
    /// let (idx, shape) = x.argmax(1).unwrap();
    /// assert_eq!((idx, shape), (vec![1, 0], vec![2])); // ties: the first wins
    /// ```
    pub fn argmax(&self, dim: isize) -> Result<(Vec<usize>, Vec<usize>)> {
        let d = norm_dim(dim, self.ndim())?;
        if self.ndim() == 0 {
            // a 0-d tensor has one element; indexing its (absent) dim panicked
            return Ok((vec![0], vec![]));
        }
        let n = self.shape()[d];
        if n == 0 {
            return Err(crate::error::value_err!("argmax over an empty dimension of a tensor of shape {:?}", self.shape()));
        }
        let mut perm: Vec<usize> = (0..self.ndim()).filter(|&i| i != d).collect();
        perm.push(d);
        // the view with `d` last; the backend reads it through its strides
        let xp = self.permute_view(&perm);
        let idx = xp.storage().argmax_last(xp.layout())?;
        Ok((idx, drop_shape(self.shape(), &[d])))
    }
}
