//! The CPU backend: [`CpuStorage`] implements [`BackendStorage`] with the host kernels
//! (elementwise in [`elementwise`], reductions in [`reduce`], softmax in [`softmax`],
//! indexing in [`index`]; the matrix product's GEMM core stays in
//! `tensor/matmul.rs`). Kernels are generic over [`Float`] and instantiated per dtype by
//! `dispatch!`.
pub mod elementwise;
pub mod index;
pub mod reduce;
pub mod softmax;

use super::{BackendStorage, BinaryOp, CmpOp, MatmulDims, ReduceOp, UnaryOp};
use crate::error::{Error, Result};
use crate::tensor::layout::{for_each_offset, Layout};
use crate::tensor::{CpuStorage, DType, Device, Float};
use elementwise::contig;

/// `n` copies of `v` as a host buffer of `dtype`.
///
/// ```
/// use flux_core::{backend::cpu::full, tensor::CpuStorage, DType};
/// assert!(matches!(full(3, 1.5, DType::F64), CpuStorage::F64(v) if v == vec![1.5; 3]));
/// ```
pub fn full(n: usize, v: f64, dtype: DType) -> CpuStorage { crate::dispatch!(dtype, T => T::vec_into(vec![T::f(v); n])) }

/// The buffer as `&[T]` (the caller has promoted both operands to one dtype).
#[inline]
pub(crate) fn slice<T: Float>(s: &CpuStorage) -> Result<&[T]> {
    T::slice(s).ok_or_else(|| Error::DType(format!("expected {}, got {}", T::DTYPE.name(), s.dtype().name())))
}

/// The view `l` of `raw` as one contiguous slice: borrowed when it already is, copied
/// (in row-major order) otherwise.
pub(crate) fn contiguous_view<'a, T: Float>(raw: &'a [T], l: &Layout) -> std::borrow::Cow<'a, [T]> {
    if l.is_contiguous() {
        std::borrow::Cow::Borrowed(contig(raw, l))
    } else {
        std::borrow::Cow::Owned(strided_copy(raw, l))
    }
}

/// The view `l` of `raw` copied in row-major order.
pub(crate) fn strided_copy<T: Float>(raw: &[T], l: &Layout) -> Vec<T> {
    if l.is_contiguous() {
        return contig(raw, l).to_vec();
    }
    let mut out = Vec::with_capacity(l.numel());
    for_each_offset(&l.shape, &l.strides, l.offset, |_, o| out.push(raw[o]));
    out
}

impl BackendStorage for CpuStorage {
    #[inline]
    fn device(&self) -> Device { Device::Cpu }
    #[inline]
    fn dtype(&self) -> DType { CpuStorage::dtype(self) }
    #[inline]
    fn len(&self) -> usize { CpuStorage::len(self) }
    fn to_cpu(&self) -> Result<CpuStorage> { Ok(self.clone()) }
    fn from_cpu(c: &CpuStorage) -> Result<Self> { Ok(c.clone()) }
    fn full(n: usize, v: f64, dtype: DType) -> Result<Self> { Ok(full(n, v, dtype)) }

    #[inline]
    fn unary(&self, l: &Layout, op: UnaryOp) -> Result<Self> {
        crate::dispatch!(self.dtype(), T => {
            let xs = contiguous_view(slice::<T>(self)?, l);
            Ok(T::vec_into(elementwise::unary(&xs, op)))
        })
    }
    fn unary_backward(&self, l: &Layout, y: &Self, yl: &Layout, g: &Self, gl: &Layout, op: UnaryOp) -> Result<Self> {
        crate::dispatch!(self.dtype(), T => {
            let xs = contiguous_view(slice::<T>(self)?, l);
            let ys = contiguous_view(slice::<T>(y)?, yl);
            let gs = contiguous_view(slice::<T>(g)?, gl);
            Ok(T::vec_into(elementwise::unary_backward(&xs, &ys, &gs, op)))
        })
    }
    #[inline]
    fn binary(&self, l: &Layout, rhs: &Self, rl: &Layout, shape: &[usize], op: BinaryOp) -> Result<Self> {
        crate::dispatch!(self.dtype(), T => Ok(T::vec_into(elementwise::binary(slice::<T>(self)?, l, slice::<T>(rhs)?, rl, shape, op)?)))
    }
    fn cmp(&self, l: &Layout, rhs: &Self, rl: &Layout, shape: &[usize], op: CmpOp) -> Result<Self> {
        crate::dispatch!(self.dtype(), T => Ok(T::vec_into(elementwise::cmp(slice::<T>(self)?, l, slice::<T>(rhs)?, rl, shape, op)?)))
    }
    fn affine(&self, l: &Layout, mul: f64, add: f64) -> Result<Self> {
        crate::dispatch!(self.dtype(), T => {
            let xs = contiguous_view(slice::<T>(self)?, l);
            let (m, a) = (T::f(mul), T::f(add));
            Ok(T::vec_into(elementwise::map_slice(&xs, move |v| v * m + a)))
        })
    }
    fn reduce(&self, l: &Layout, dims: &[usize], op: ReduceOp) -> Result<Self> {
        crate::dispatch!(self.dtype(), T => Ok(T::vec_into(reduce::reduce(slice::<T>(self)?, l, dims, op))))
    }
    fn softmax(&self, l: &Layout, dim: usize, log: bool) -> Result<Self> {
        crate::dispatch!(self.dtype(), T => {
            let xs = contiguous_view(slice::<T>(self)?, l);
            let s = &l.shape;
            // a 0-d tensor is one row of length 1
            let (outer, n, inner) = if s.is_empty() { (1, 1, 1) } else { (s[..dim].iter().product(), s[dim], s[dim + 1..].iter().product()) };
            Ok(T::vec_into(softmax::softmax(&xs, outer, n, inner, log)))
        })
    }
    fn matmul(&self, l: &Layout, rhs: &Self, rl: &Layout, dims: MatmulDims) -> Result<Self> {
        crate::dispatch!(self.dtype(), T => Ok(T::vec_into(crate::tensor::matmul::bmm_strided(slice::<T>(self)?, l, slice::<T>(rhs)?, rl, dims))))
    }
    fn cast(&self, l: &Layout, dtype: DType) -> Result<Self> {
        crate::dispatch!(self.dtype(), S => {
            let src = contiguous_view(slice::<S>(self)?, l);
            crate::dispatch!(dtype, D => Ok(D::vec_into(src.iter().map(|&v| D::f(v.to_f64())).collect())))
        })
    }
    fn copy_strided(&self, l: &Layout) -> Result<Self> {
        crate::dispatch!(self.dtype(), T => Ok(T::vec_into(strided_copy(slice::<T>(self)?, l))))
    }
    fn index_select(&self, l: &Layout, axis: usize, idx: &[usize]) -> Result<Self> {
        crate::dispatch!(self.dtype(), T => Ok(T::vec_into(index::index_select(&contiguous_view(slice::<T>(self)?, l), &l.shape, axis, idx))))
    }
    fn index_add(&self, l: &Layout, axis: usize, idx: &[usize], n: usize) -> Result<Self> {
        crate::dispatch!(self.dtype(), T => Ok(T::vec_into(index::index_add(&contiguous_view(slice::<T>(self)?, l), &l.shape, axis, idx, n))))
    }
    fn concat(&self, parts: &[(&Self, &Layout)], axis: usize) -> Result<Self> {
        crate::dispatch!(self.dtype(), T => {
            let views = parts.iter().map(|(p, l)| Ok((contiguous_view(slice::<T>(p)?, l), l.shape.as_slice()))).collect::<Result<Vec<_>>>()?;
            Ok(T::vec_into(index::concat(&views, axis)))
        })
    }
    fn clamp(&self, l: &Layout, lo: f64, hi: f64) -> Result<Self> {
        crate::dispatch!(self.dtype(), T => {
            let (lo, hi) = (T::f(lo), T::f(hi));
            let xs = contiguous_view(slice::<T>(self)?, l);
            // Julia's clamp: NaN passes through
            Ok(T::vec_into(elementwise::map_slice(&xs, move |v| if v < lo { lo } else if v > hi { hi } else { v })))
        })
    }
    fn argmax_last(&self, l: &Layout) -> Result<Vec<usize>> {
        let n = l.shape.last().copied().unwrap_or(1).max(1);
        crate::dispatch!(self.dtype(), T => {
            let xs = contiguous_view(slice::<T>(self)?, l);
            Ok(xs.chunks(n).map(|c| {
                // NaN counts as the largest value and the first one wins, as in Julia's
                // findmax and numpy's argmax (and as `max` returns NaN)
                let mut best = 0;
                for (i, &v) in c.iter().enumerate() {
                    if c[best].is_nan() {
                        break;
                    }
                    if v > c[best] || v.is_nan() { best = i; }
                }
                best
            }).collect())
        })
    }
    fn scatter_strided(&self, l: &Layout, n: usize, dst: &Layout) -> Result<Self> {
        crate::dispatch!(self.dtype(), T => {
            let src = contiguous_view(slice::<T>(self)?, l);
            let mut out = vec![T::zero(); n];
            for_each_offset(&dst.shape, &dst.strides, dst.offset, |k, o| out[o] = src[k]);
            Ok(T::vec_into(out))
        })
    }
    fn where_cond(&self, l: &Layout, a: &Self, al: &Layout, b: &Self, bl: &Layout, shape: &[usize]) -> Result<Self> {
        crate::dispatch!(a.dtype(), T => {
            let c = self.cast(l, T::DTYPE)?;
            let c = strided_copy(slice::<T>(&c)?, &Layout::contiguous(&l.shape).broadcast_to(shape)?);
            let av = strided_copy(slice::<T>(a)?, &al.broadcast_to(shape)?);
            let bv = strided_copy(slice::<T>(b)?, &bl.broadcast_to(shape)?);
            Ok(T::vec_into(c.iter().zip(av).zip(bv).map(|((&c, x), y)| if c != T::zero() { x } else { y }).collect()))
        })
    }
}
