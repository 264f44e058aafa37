//! Reshape, permute, broadcast, slicing, gathering along an axis, concatenation.
use std::sync::Arc;

use super::layout::{norm_dim, row_major_strides, Layout};
use super::{Float, Tensor};
use crate::autodiff::{record, Op};
use crate::error::{shape_err, Result};

/// One dimension of a basic slice: `start`, number of elements `len`, `step` (> 0).
///
/// ```
/// use flux_core::{Tensor, tensor::movement::SliceDim};
/// let x = Tensor::from_vec((0..6).map(f64::from).collect(), &[6]).unwrap();
/// let every_other = x.slice(&[SliceDim { start: 1, len: 3, step: 2 }]).unwrap();
/// assert_eq!(every_other.to_vec_f64().unwrap(), vec![1.0, 3.0, 5.0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceDim {
    /// First index.
    pub start: usize,
    /// Number of indices taken.
    pub len: usize,
    /// Distance between them.
    pub step: usize,
}

/// Shape changes (views where the layout allows), slicing, gathering and joining.
///
/// ```
/// use flux_core::Tensor;
/// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
/// let y = x.t().unwrap().reshape(&[6]).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
/// ```
impl Tensor {
    /// Unrecorded reshape (a view when contiguous).
    pub(crate) fn reshape_view(&self, shape: &[usize]) -> Result<Tensor> {
        let c = self.contiguous()?;
        Ok(c.view(Layout { shape: shape.to_vec(), strides: row_major_strides(shape), offset: c.layout().offset }))
    }
    /// Unrecorded permutation of dimensions (always a view).
    pub(crate) fn permute_view(&self, perm: &[usize]) -> Tensor {
        let l = self.layout();
        self.view(Layout {
            shape: perm.iter().map(|&p| l.shape[p]).collect(),
            strides: perm.iter().map(|&p| l.strides[p]).collect(),
            offset: l.offset,
        })
    }

    /// A new shape with the same number of elements; one entry may be `-1`.
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// let x = Tensor::zeros(&[2, 3, 4], DType::F32);
    /// assert_eq!(x.reshape_infer(&[-1, 4]).unwrap().shape(), &[6, 4]);
    /// assert!(x.reshape_infer(&[-1, 5]).is_err());
    /// ```
    pub fn reshape_infer(&self, shape: &[isize]) -> Result<Tensor> {
        let n = self.numel();
        let known_dims: Vec<usize> = shape.iter().filter(|&&s| s >= 0).map(|&s| s as usize).collect();
        let known = super::alloc::numel(&known_dims)?;
        let infer = shape.iter().filter(|&&s| s < 0).count();
        if infer > 1 {
            return Err(shape_err!("only one dimension can be -1 in reshape, got {:?}", shape));
        }
        let s: Vec<usize> = shape
            .iter()
            .map(|&d| if d < 0 { n.checked_div(known).unwrap_or(0) } else { d as usize })
            .collect();
        self.reshape(&s)
    }
    /// The same elements under `shape` (a view when contiguous).
    ///
    /// ```
    /// let t = flux_core::Tensor::zeros(&[2, 3], flux_core::DType::F32);
    /// assert_eq!(t.reshape(&[3, 2]).unwrap().shape(), &[3, 2]);
    /// ```
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if super::alloc::numel(shape)? != self.numel() {
            return Err(shape_err!("cannot reshape a tensor of shape {:?} into shape {:?}", self.shape(), shape));
        }
        let out = self.reshape_view(shape)?;
        record(&[self], &out, || Op::Reshape { in_shape: self.shape().to_vec() });
        Ok(out)
    }
    /// Reorder dimensions (`perm` is a permutation of `0..ndim`; negative entries count from the end).
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// let x = Tensor::zeros(&[2, 3, 4], DType::F32);
    /// assert_eq!(x.permute(&[2, 0, 1]).unwrap().shape(), &[4, 2, 3]);
    /// assert_eq!(x.permute(&[-1, 0, 1]).unwrap().shape(), &[4, 2, 3]);
    /// ```
    pub fn permute(&self, perm: &[isize]) -> Result<Tensor> {
        let nd = self.ndim();
        let p: Vec<usize> = perm.iter().map(|&d| norm_dim(d, nd)).collect::<Result<_>>()?;
        let mut seen = p.clone();
        seen.sort_unstable();
        if p.len() != nd || seen != (0..nd).collect::<Vec<_>>() {
            return Err(shape_err!("{:?} is not a permutation of the {} dimensions of shape {:?}", perm, nd, self.shape()));
        }
        let out = self.permute_view(&p);
        record(&[self], &out, || Op::Permute { perm: p });
        Ok(out)
    }
    /// Swap the last two dimensions (reverse a matrix's; a 1-D tensor is unchanged).
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    /// let t = x.t().unwrap();
    /// assert_eq!(t.shape(), &[3, 2]);
    /// assert_eq!(t.to_vec_f64().unwrap(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    /// ```
    pub fn t(&self) -> Result<Tensor> {
        let nd = self.ndim() as isize;
        if nd < 2 {
            return Ok(self.clone());
        }
        let mut p: Vec<isize> = (0..nd).collect();
        p.swap((nd - 1) as usize, (nd - 2) as usize);
        self.permute(&p)
    }
    /// numpy's `broadcast_to` (a view with zero strides).
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let row = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
    /// let b = row.broadcast_to(&[3, 2]).unwrap();
    /// assert_eq!(b.to_vec_f64().unwrap(), vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    /// assert!(row.broadcast_to(&[3]).is_err());
    /// ```
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        super::alloc::numel(shape)?;
        let out = self.view(self.layout().broadcast_to(shape)?);
        record(&[self], &out, || Op::Expand { in_shape: self.shape().to_vec() });
        Ok(out)
    }
    /// Basic slicing: one [`SliceDim`] per dimension (a view).
    ///
    /// ```
    /// use flux_core::{Tensor, tensor::movement::SliceDim};
    /// let x = Tensor::from_vec((0..6).map(f64::from).collect(), &[2, 3]).unwrap();
    /// let last_col = x.slice(&[SliceDim { start: 0, len: 2, step: 1 }, SliceDim { start: 2, len: 1, step: 1 }]).unwrap();
    /// assert_eq!(last_col.to_vec_f64().unwrap(), vec![2.0, 5.0]);
    /// ```
    pub fn slice(&self, dims: &[SliceDim]) -> Result<Tensor> {
        let l = self.layout();
        if dims.len() != l.ndim() {
            return Err(shape_err!("slice needs {} dimensions, got {}", l.ndim(), dims.len()));
        }
        let mut offset = l.offset;
        let mut shape = Vec::with_capacity(dims.len());
        let mut strides = Vec::with_capacity(dims.len());
        for (i, s) in dims.iter().enumerate() {
            if s.len > 0 && (s.step == 0 || s.start + (s.len - 1) * s.step >= l.shape[i]) {
                return Err(shape_err!("slice {:?} is out of bounds for dimension {} of size {}", s, i, l.shape[i]));
            }
            if s.len > 0 {
                offset += s.start * l.strides[i];
            }
            shape.push(s.len);
            strides.push(l.strides[i] * s.step.max(1));
        }
        let out = self.view(Layout { shape, strides, offset });
        record(&[self], &out, || Op::Slice { in_shape: self.shape().to_vec(), dims: dims.to_vec() });
        Ok(out)
    }
    /// Gather entries `idx` along `axis` (a copy); the axis takes `idx.len()` entries.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let x = Tensor::from_vec((0..6).map(f64::from).collect(), &[3, 2]).unwrap();
    /// assert_eq!(x.index_select(0, &[2, 0, 2]).unwrap().to_vec_f64().unwrap(), vec![4.0, 5.0, 0.0, 1.0, 4.0, 5.0]);
    /// assert_eq!(x.index_select(-1, &[1]).unwrap().to_vec_f64().unwrap(), vec![1.0, 3.0, 5.0]);
    /// ```
    pub fn index_select(&self, axis: isize, idx: &[usize]) -> Result<Tensor> {
        if self.ndim() == 0 {
            // (norm_dim accepts axis 0 of a 0-d tensor; indexing its shape panicked)
            return Err(shape_err!("index_select needs at least one dimension, got a 0-d tensor"));
        }
        let ax = norm_dim(axis, self.ndim())?;
        let n = self.shape()[ax];
        if let Some(&bad) = idx.iter().find(|&&i| i >= n) {
            return Err(shape_err!("index {} is out of bounds for axis {} with size {}", bad, ax, n));
        }
        let mut shape = self.shape().to_vec();
        shape[ax] = idx.len();
        super::alloc::reserve(&shape, self.dtype())?;
        let out = Tensor::from_storage(self.storage().index_select(self.layout(), ax, idx)?, Layout::contiguous(&shape));
        record(&[self], &out, || Op::IndexSelect { in_shape: self.shape().to_vec(), axis: ax, idx: Arc::new(idx.to_vec()) });
        Ok(out)
    }
    /// Join tensors of equal shape except along `axis`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0], &[1, 2]).unwrap();
    /// let b = Tensor::from_vec(vec![3.0f32, 4.0, 5.0, 6.0], &[2, 2]).unwrap();
    /// let c = Tensor::concat(&[&a, &b], 0).unwrap();
    /// assert_eq!((c.shape(), c.to_vec_f64().unwrap()), (&[3usize, 2][..], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    /// ```
    pub fn concat(ts: &[&Tensor], axis: isize) -> Result<Tensor> {
        let first = ts.first().ok_or_else(|| shape_err!("concat needs at least one tensor"))?;
        if first.ndim() == 0 {
            // as numpy; slicing the shape around the axis panicked here
            return Err(shape_err!("zero-dimensional tensors cannot be concatenated"));
        }
        let ax = norm_dim(axis, first.ndim())?;
        let dt = ts.iter().map(|t| t.dtype()).fold(first.dtype(), super::DType::promote);
        for t in ts {
            let ok = t.ndim() == first.ndim()
                && t.shape().iter().zip(first.shape()).enumerate().all(|(i, (a, b))| i == ax || a == b);
            if !ok {
                return Err(shape_err!("concat along axis {}: shape {:?} does not match {:?}", ax, t.shape(), first.shape()));
            }
        }
        let cast: Vec<Tensor> = ts.iter().map(|t| t.cast(dt)).collect::<Result<_>>()?;
        let sizes: Vec<usize> = ts.iter().map(|t| t.shape()[ax]).collect();
        let mut shape = first.shape().to_vec();
        shape[ax] = sizes.iter().sum();
        let parts: Vec<(&super::Storage, &Layout)> = cast.iter().map(|c| (c.storage(), c.layout())).collect();
        let out = Tensor::from_storage(super::Storage::concat(&parts, ax)?, Layout::contiguous(&shape));
        let refs: Vec<&Tensor> = cast.iter().collect();
        record(&refs, &out, || Op::Concat { axis: ax, sizes });
        Ok(out)
    }
    /// Stack equally shaped tensors along a new dimension `axis`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
    /// let b = Tensor::from_vec(vec![3.0f32, 4.0], &[2]).unwrap();
    /// let s = Tensor::stack(&[&a, &b], 1).unwrap();
    /// assert_eq!((s.shape(), s.to_vec_f64().unwrap()), (&[2usize, 2][..], vec![1.0, 3.0, 2.0, 4.0]));
    /// ```
    pub fn stack(ts: &[&Tensor], axis: isize) -> Result<Tensor> {
        let first = ts.first().ok_or_else(|| shape_err!("stack needs at least one tensor"))?;
        let ax = norm_dim(axis, first.ndim() + 1)?;
        let mut un = Vec::with_capacity(ts.len());
        for t in ts {
            if t.shape() != first.shape() {
                return Err(shape_err!("stack needs equal shapes, got {:?} and {:?}", first.shape(), t.shape()));
            }
            let mut s = t.shape().to_vec();
            s.insert(ax, 1);
            un.push(t.reshape(&s)?);
        }
        let refs: Vec<&Tensor> = un.iter().collect();
        Tensor::concat(&refs, ax as isize)
    }
}

/// Backward of [`Tensor::slice`]: `g` written into zeros of the input's shape.
pub(crate) fn slice_backward(in_shape: &[usize], dims: &[SliceDim], g: &Tensor) -> Result<Tensor> {
    let base = row_major_strides(in_shape);
    let offset: usize = dims.iter().zip(&base).map(|(d, s)| if d.len > 0 { d.start * s } else { 0 }).sum();
    let dst = Layout {
        shape: dims.iter().map(|d| d.len).collect(),
        strides: dims.iter().zip(&base).map(|(d, s)| s * d.step.max(1)).collect(),
        offset,
    };
    let n = in_shape.iter().product();
    Ok(Tensor::from_storage(g.storage().scatter_strided(g.layout(), n, &dst)?, Layout::contiguous(in_shape)))
}

/// Backward of [`Tensor::index_select`]: scatter-add of `g` into zeros.
pub(crate) fn index_add(in_shape: &[usize], axis: usize, idx: &[usize], g: &Tensor) -> Result<Tensor> {
    let s = g.storage().index_add(g.layout(), axis, idx, in_shape[axis])?;
    Ok(Tensor::from_storage(s, Layout::contiguous(in_shape)))
}

#[allow(dead_code)]
fn _assert_float<T: Float>() {}
