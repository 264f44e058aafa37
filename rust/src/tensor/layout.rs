//! Shape, strides and offset, and the strided walks every non-contiguous path uses.
use crate::error::{shape_err, Result};

/// Shape, strides (in elements) and offset of a view into a buffer.
///
/// ```
/// use flux_core::tensor::Layout;
/// let t = Layout { shape: vec![3, 2], strides: vec![1, 3], offset: 0 }; // a (2, 3) array transposed
/// assert!(!t.is_contiguous());
/// assert_eq!(Layout::contiguous(&[3, 2]).strides, vec![2, 1]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The size of each dimension.
    pub shape: Vec<usize>,
    /// Element strides; 0 marks a broadcast dimension.
    pub strides: Vec<usize>,
    /// Where element 0 sits in the buffer.
    pub offset: usize,
}

/// The strides of a contiguous row-major array of `shape`.
///
/// ```
/// use flux_core::tensor::layout::row_major_strides;
/// assert_eq!(row_major_strides(&[2, 3, 4]), vec![12, 4, 1]);
/// ```
pub fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![0; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        s[i] = acc;
        acc *= shape[i].max(1);
    }
    s
}

/// Sizes, contiguity and broadcasting of a view.
///
/// ```
/// use flux_core::tensor::Layout;
/// let l = Layout::contiguous(&[2, 3]);
/// assert_eq!((l.numel(), l.ndim(), l.offset), (6, 2, 0));
/// ```
impl Layout {
    /// The layout of a contiguous array of `shape`.
    ///
    /// ```
    /// use flux_core::tensor::Layout;
    /// let l = Layout::contiguous(&[2, 3]);
    /// assert_eq!((l.strides, l.offset), (vec![3, 1], 0));
    /// ```
    pub fn contiguous(shape: &[usize]) -> Self {
        Layout { shape: shape.to_vec(), strides: row_major_strides(shape), offset: 0 }
    }
    /// The number of elements.
    ///
    /// ```
    /// use flux_core::tensor::Layout;
    /// assert_eq!(Layout::contiguous(&[2, 3, 4]).numel(), 24);
    /// assert_eq!(Layout::contiguous(&[]).numel(), 1); // a scalar
    /// ```
    pub fn numel(&self) -> usize { self.shape.iter().product() }
    /// The number of dimensions.
    ///
    /// ```
    /// use flux_core::tensor::Layout;
    /// assert_eq!(Layout::contiguous(&[2, 3, 4]).ndim(), 3);
    /// ```
    pub fn ndim(&self) -> usize { self.shape.len() }
    /// Row-major without gaps (dimensions of size 1 may have any stride).
    ///
    /// ```
    /// use flux_core::tensor::Layout;
    /// assert!(Layout::contiguous(&[2, 3]).is_contiguous());
    /// assert!(Layout { shape: vec![1, 3], strides: vec![7, 1], offset: 2 }.is_contiguous()); // size-1 dims: any stride
    /// assert!(!Layout { shape: vec![2, 3], strides: vec![1, 2], offset: 0 }.is_contiguous());
    /// ```
    pub fn is_contiguous(&self) -> bool {
        // An empty tensor has no elements to be out of order. Without this, a fresh
        // `[2, 0, 3]` (whose row-major strides use max(size, 1)) failed the check below,
        // so `contiguous()` could never make it contiguous and every op on it errored.
        if self.shape.contains(&0) {
            return true;
        }
        let mut acc = 1;
        for i in (0..self.shape.len()).rev() {
            if self.shape[i] != 1 && self.strides[i] != acc {
                return false;
            }
            acc *= self.shape[i];
        }
        true
    }
    /// The layout seen through numpy broadcasting to `shape`.
    ///
    /// ```
    /// use flux_core::tensor::Layout;
    /// let b = Layout::contiguous(&[3]).broadcast_to(&[2, 3]).unwrap();
    /// assert_eq!((b.shape, b.strides), (vec![2, 3], vec![0, 1])); // stride 0: the row repeats
    /// assert!(Layout::contiguous(&[3]).broadcast_to(&[2]).is_err());
    /// ```
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Layout> {
        if shape.len() < self.ndim() {
            return Err(shape_err!("cannot broadcast shape {:?} to {:?}", self.shape, shape));
        }
        let lead = shape.len() - self.ndim();
        let mut strides = vec![0; shape.len()];
        for i in 0..self.ndim() {
            let (s, t) = (self.shape[i], shape[lead + i]);
            if s == t {
                strides[lead + i] = self.strides[i];
            } else if s == 1 {
                strides[lead + i] = 0;
            } else {
                return Err(shape_err!("cannot broadcast shape {:?} to {:?}", self.shape, shape));
            }
        }
        Ok(Layout { shape: shape.to_vec(), strides, offset: self.offset })
    }
}

/// numpy's broadcast of two shapes.
///
/// ```
/// use flux_core::tensor::layout::broadcast_shapes;
/// assert_eq!(broadcast_shapes(&[4, 1, 3], &[2, 1]).unwrap(), vec![4, 2, 3]);
/// assert!(broadcast_shapes(&[3], &[4]).is_err());
/// ```
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(crate::error::Error::mismatch("broadcast", a, b));
        };
    }
    Ok(out)
}

/// Call `f(k, off)` for every element `k` (row-major order) of `shape` walked with `strides`.
///
/// ```
/// use flux_core::tensor::layout::for_each_offset;
/// let mut offs = vec![];
/// for_each_offset(&[2, 2], &[1, 2], 0, |k, off| offs.push((k, off))); // a transposed 2×2
/// assert_eq!(offs, vec![(0, 0), (1, 2), (2, 1), (3, 3)]);
/// ```
#[inline]
pub fn for_each_offset(shape: &[usize], strides: &[usize], offset: usize, mut f: impl FnMut(usize, usize)) {
    let n: usize = shape.iter().product();
    if n == 0 {
        return;
    }
    let nd = shape.len();
    if nd == 0 {
        f(0, offset);
        return;
    }
    let (inner, istride) = (shape[nd - 1], strides[nd - 1]);
    let mut idx = vec![0usize; nd];
    let mut base = offset;
    let mut k = 0;
    loop {
        let mut o = base;
        for _ in 0..inner {
            f(k, o);
            k += 1;
            o += istride;
        }
        // carry into the outer dimensions
        let mut d = nd - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            base += strides[d];
            if idx[d] < shape[d] {
                break;
            }
            base -= strides[d] * shape[d];
            idx[d] = 0;
        }
    }
}

/// Like [`for_each_offset`] for two operands walked in lockstep over one shape.
///
/// ```
/// use flux_core::tensor::layout::for_each_offset2;
/// let mut offs = vec![];
/// // a (2, 2) operand against a row broadcast over it (stride 0)
/// for_each_offset2(&[2, 2], &[2, 1], 0, &[0, 1], 5, |k, a, b| offs.push((k, a, b)));
/// assert_eq!(offs, vec![(0, 0, 5), (1, 1, 6), (2, 2, 5), (3, 3, 6)]);
/// ```
#[inline]
pub fn for_each_offset2(
    shape: &[usize],
    sa: &[usize],
    oa: usize,
    sb: &[usize],
    ob: usize,
    mut f: impl FnMut(usize, usize, usize),
) {
    let n: usize = shape.iter().product();
    if n == 0 {
        return;
    }
    let nd = shape.len();
    if nd == 0 {
        f(0, oa, ob);
        return;
    }
    let (inner, ia, ib) = (shape[nd - 1], sa[nd - 1], sb[nd - 1]);
    let mut idx = vec![0usize; nd];
    let (mut ba, mut bb) = (oa, ob);
    let mut k = 0;
    loop {
        let (mut pa, mut pb) = (ba, bb);
        for _ in 0..inner {
            f(k, pa, pb);
            k += 1;
            pa += ia;
            pb += ib;
        }
        let mut d = nd - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            ba += sa[d];
            bb += sb[d];
            if idx[d] < shape[d] {
                break;
            }
            ba -= sa[d] * shape[d];
            bb -= sb[d] * shape[d];
            idx[d] = 0;
        }
    }
}

/// Normalise a possibly negative dimension index.
///
/// ```
/// use flux_core::tensor::layout::norm_dim;
/// assert_eq!(norm_dim(-1, 3).unwrap(), 2);
/// assert_eq!(norm_dim(1, 3).unwrap(), 1);
/// assert!(norm_dim(3, 3).is_err());
/// ```
pub fn norm_dim(d: isize, ndim: usize) -> Result<usize> {
    let n = ndim as isize;
    let r = if d < 0 { d + n } else { d };
    if r < 0 || r >= n.max(1) && !(ndim == 0 && r == 0) {
        return Err(shape_err!("dimension {} is out of range for a tensor with {} dimensions", d, ndim));
    }
    Ok(r as usize)
}
