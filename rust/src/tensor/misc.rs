//! Selection and resampling ops: `where_`, `clamp`, `split`, linear interpolation along
//! one axis (the building block of bilinear/trilinear upsampling), nearest and linear
//! upsampling of the spatial dims of (N, C, spatial...) tensors, and pixel shuffle.
use std::sync::Arc;

use rayon::prelude::*;

use super::layout::{broadcast_shapes, norm_dim};
use super::movement::SliceDim;
use super::elementwise::CmpOp;
use super::{DType, Float, Tensor, PAR_THRESHOLD};
use crate::autodiff::{record, Backward, Op};
use crate::error::{shape_err, value_err, Result};

#[derive(Debug)]
struct WhereBackward {
    cond: Tensor,
}

impl Backward for WhereBackward {
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let ga = needs[0].then(|| g.mul(&self.cond)).transpose()?;
        let gb = needs[1].then(|| g.mul(&self.cond.rsub_scalar(1.0)?)).transpose()?;
        Ok(vec![ga, gb])
    }
}

/// `a` where `cond` is non-zero, else `b` (numpy's `where`, broadcasting all three).
/// The gradient goes to the branch that was taken, so a NaN in the other branch does
/// not leak into it.
///
/// ```
/// use flux_core::{Tensor, tensor::misc::where_};
/// let c = Tensor::from_vec(vec![1.0f32, 0.0], &[2]).unwrap();
/// let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
/// let b = Tensor::from_vec(vec![f32::NAN, 20.0], &[2]).unwrap();
/// assert_eq!(where_(&c, &a, &b).unwrap().to_vec_f64().unwrap(), vec![1.0, 20.0]);
/// ```
pub fn where_(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let shape = broadcast_shapes(&broadcast_shapes(cond.shape(), a.shape())?, b.shape())?;
    let dt = DType::promote(a.dtype(), b.dtype());
    super::alloc::reserve(&shape, dt)?;
    let a = a.cast(dt)?.broadcast_to(&shape)?;
    let b = b.cast(dt)?.broadcast_to(&shape)?;
    let c = cond.detach().cast(dt)?.broadcast_to(&shape)?;
    let zero = c.full_beside(&[], 0.0, dt)?;
    let mask = c.compare(&zero, super::elementwise::CmpOp::Ne)?;
    let s = c.storage().where_cond(c.layout(), a.storage(), a.layout(), b.storage(), b.layout(), &shape)?;
    let out = Tensor::from_storage(s, super::Layout::contiguous(&shape));
    record(&[&a, &b], &out, || Op::Custom(Box::new(WhereBackward { cond: mask })));
    Ok(out)
}

#[derive(Debug)]
struct ClampBackward {
    x: Tensor,
    lo: f64,
    hi: f64,
}

impl Backward for ClampBackward {
    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        // g where lo ≤ x ≤ hi, else 0 (not g·0: an infinite g outside stays 0), on x's device
        let dt = self.x.dtype();
        let c = |v: f64| self.x.full_beside(&[], v, dt);
        let inside = self.x.compare(&c(self.lo)?, CmpOp::Ge)?.mul(&self.x.compare(&c(self.hi)?, CmpOp::Le)?)?;
        Ok(vec![Some(where_(&inside, &g.cast(dt)?, &c(0.0)?)?.reshape(self.x.shape())?)])
    }
}

/// `min(max(x, lo), hi)`; the gradient passes where `lo ≤ x ≤ hi` (ChainRules' rule).
/// Use ±infinity for a one-sided clamp.
///
/// ```
/// use flux_core::{Tensor, tensor::misc::clamp};
/// let x = Tensor::from_vec(vec![-2.0f32, 0.5, 3.0], &[3]).unwrap();
/// assert_eq!(clamp(&x, 0.0, 1.0).unwrap().to_vec_f64().unwrap(), vec![0.0, 0.5, 1.0]);
/// ```
pub fn clamp(x: &Tensor, lo: f64, hi: f64) -> Result<Tensor> {
    if lo > hi {
        return Err(value_err!("clamp: lo ({lo}) must not exceed hi ({hi})"));
    }
    let out = Tensor::from_storage(x.storage().clamp(x.layout(), lo, hi)?, super::Layout::contiguous(x.shape()));
    record(&[x], &out, || Op::Custom(Box::new(ClampBackward { x: x.detach(), lo, hi })));
    Ok(out)
}

/// Split along `axis` into consecutive pieces of the given sizes (views; they must add
/// up to the axis length).
///
/// ```
/// use flux_core::{Tensor, DType, tensor::misc::split};
/// let x = Tensor::zeros(&[2, 5], DType::F32);
/// let p = split(&x, &[2, 3], 1).unwrap();
/// assert_eq!((p[0].shape(), p[1].shape()), (&[2usize, 2][..], &[2usize, 3][..]));
/// ```
pub fn split(x: &Tensor, sizes: &[usize], axis: isize) -> Result<Vec<Tensor>> {
    if x.ndim() == 0 {
        return Err(shape_err!("split needs at least one dimension"));
    }
    let ax = norm_dim(axis, x.ndim())?;
    if sizes.iter().sum::<usize>() != x.shape()[ax] {
        return Err(shape_err!("split: sizes {:?} do not add up to {} (axis {} of shape {:?})", sizes, x.shape()[ax], ax, x.shape()));
    }
    let mut start = 0;
    let mut out = Vec::with_capacity(sizes.len());
    for &s in sizes {
        let dims: Vec<SliceDim> = x
            .shape()
            .iter()
            .enumerate()
            .map(|(i, &n)| if i == ax { SliceDim { start, len: s, step: 1 } } else { SliceDim { start: 0, len: n, step: 1 } })
            .collect();
        out.push(x.slice(&dims)?);
        start += s;
    }
    Ok(out)
}

/// Linear interpolation weights along one axis: output j reads `(1−t)·x[i0] + t·x[i1]`.
///
/// ```
/// use flux_core::tensor::misc::Interp;
/// let w = Interp::linear(2, 3, true);
/// // outputs at source positions 0, ½ and 1
/// assert_eq!((w.i0, w.i1, w.t), (vec![0, 0, 1], vec![1, 1, 1], vec![0.0, 0.5, 0.0]));
/// ```
#[derive(Clone, Debug)]
pub struct Interp {
    /// The lower source index of each output position.
    pub i0: Vec<usize>,
    /// The upper source index.
    pub i1: Vec<usize>,
    /// The weight of the upper index.
    pub t: Vec<f64>,
}

/// The weights of linear interpolation.
///
/// ```
/// use flux_core::tensor::misc::Interp;
/// assert_eq!(Interp::linear(4, 8, false).t.len(), 8);
/// ```
impl Interp {
    /// Resample `n_in` points to `n_out`: with `align_corners` the end points match
    /// (NNlib's default), otherwise pixel centres do (PyTorch's default).
    ///
    /// ```
    /// use flux_core::tensor::misc::Interp;
    /// // align_corners: the ends match, the midpoint reads half of each neighbour
    /// let a = Interp::linear(2, 3, true);
    /// assert_eq!(a.t[1], 0.5);
    /// // pixel centres (PyTorch): output 0 sits at source −0.25, clamped to the first point
    /// let c = Interp::linear(2, 4, false);
    /// assert_eq!((c.i0[0], c.t[0]), (0, 0.0));
    /// ```
    pub fn linear(n_in: usize, n_out: usize, align_corners: bool) -> Interp {
        let mut it = Interp { i0: vec![], i1: vec![], t: vec![] };
        for j in 0..n_out {
            let src = if align_corners {
                if n_out > 1 { j as f64 * (n_in as f64 - 1.0) / (n_out as f64 - 1.0) } else { 0.0 }
            } else {
                ((j as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5).max(0.0)
            };
            let i0 = (src.floor() as usize).min(n_in - 1);
            let i1 = (i0 + 1).min(n_in - 1);
            it.i0.push(i0);
            it.i1.push(i1);
            it.t.push(if i1 == i0 { 0.0 } else { src - i0 as f64 });
        }
        it
    }
}

fn interp_kernel<T: Float>(xs: &[T], outer: usize, n: usize, inner: usize, w: &Interp) -> Vec<T> {
    let m = w.t.len();
    let mut out = vec![T::zero(); outer * m * inner];
    let f = |(o, ch): (usize, &mut [T])| {
        let src = &xs[o * n * inner..(o + 1) * n * inner];
        for j in 0..m {
            let (a, b, t) = (w.i0[j], w.i1[j], T::f(w.t[j]));
            let d = &mut ch[j * inner..(j + 1) * inner];
            let (ra, rb) = (&src[a * inner..(a + 1) * inner], &src[b * inner..(b + 1) * inner]);
            for ((d, &u), &v) in d.iter_mut().zip(ra).zip(rb) {
                *d = u + (v - u) * t;
            }
        }
    };
    if out.len() >= PAR_THRESHOLD {
        out.par_chunks_exact_mut((m * inner).max(1)).enumerate().for_each(f);
    } else {
        out.chunks_exact_mut((m * inner).max(1)).enumerate().for_each(f);
    }
    out
}

#[derive(Debug)]
struct InterpBackward {
    in_shape: Vec<usize>,
    axis: usize,
    w: Arc<Interp>,
}

impl Backward for InterpBackward {
    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let g = g.contiguous()?;
        let s = &self.in_shape;
        let (outer, n, inner) = (s[..self.axis].iter().product::<usize>(), s[self.axis], s[self.axis + 1..].iter().product::<usize>());
        let m = self.w.t.len();
        crate::dispatch!(g.dtype(), T => {
            let gs = g.as_slice::<T>()?;
            let mut dx = vec![T::zero(); outer * n * inner];
            let f = |(o, ch): (usize, &mut [T])| {
                let src = &gs[o * m * inner..(o + 1) * m * inner];
                for j in 0..m {
                    let (a, b, t) = (self.w.i0[j], self.w.i1[j], T::f(self.w.t[j]));
                    for k in 0..inner {
                        let v = src[j * inner + k];
                        ch[a * inner + k] += v * (T::one() - t);
                        ch[b * inner + k] += v * t;
                    }
                }
            };
            if dx.len() >= PAR_THRESHOLD {
                dx.par_chunks_exact_mut((n * inner).max(1)).enumerate().for_each(f);
            } else {
                dx.chunks_exact_mut((n * inner).max(1)).enumerate().for_each(f);
            }
            Ok(vec![Some(Tensor::from_cpu(T::vec_into(dx), s))])
        })
    }
}

/// Resample `x` along `axis` with the interpolation weights `w`.
///
/// ```
/// use flux_core::{tensor::misc::{interp_axis, Interp}, Tensor};
/// let x = Tensor::from_vec(vec![0.0f64, 10.0], &[1, 2]).unwrap();
/// let y = interp_axis(&x, 1, &Interp::linear(2, 5, true)).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![0.0, 2.5, 5.0, 7.5, 10.0]);
/// ```
pub fn interp_axis(x: &Tensor, axis: isize, w: &Interp) -> Result<Tensor> {
    let ax = norm_dim(axis, x.ndim())?;
    let s = x.shape().to_vec();
    if w.i0.iter().chain(&w.i1).any(|&i| i >= s[ax]) {
        return Err(shape_err!("interpolation reads past the end of axis {ax} of shape {:?}", s));
    }
    if x.device() != super::Device::Cpu {
        return interp_composed(x, ax, w);
    }
    let xc = x.contiguous()?;
    let (outer, n, inner) = (s[..ax].iter().product::<usize>(), s[ax], s[ax + 1..].iter().product::<usize>());
    let mut oshape = s.clone();
    oshape[ax] = w.t.len();
    super::alloc::reserve(&oshape, x.dtype())?;
    let out = crate::dispatch!(x.dtype(), T => {
        Tensor::from_cpu(T::vec_into(interp_kernel(xc.as_slice::<T>()?, outer, n, inner, w)), &oshape)
    });
    record(&[&xc], &out, || Op::Custom(Box::new(InterpBackward { in_shape: s, axis: ax, w: Arc::new(w.clone()) })));
    Ok(out)
}

/// [`interp_axis`] on another device, from ops every device has: `u + (v − u)·t` with `u`
/// and `v` the rows `i0` and `i1` (gathers, whose backward scatters), `t` broadcast
/// along the axis; the same formula as the CPU kernel.
fn interp_composed(x: &Tensor, ax: usize, w: &Interp) -> Result<Tensor> {
    let (u, v) = (x.index_select(ax as isize, &w.i0)?, x.index_select(ax as isize, &w.i1)?);
    let mut tshape = vec![1; x.ndim()];
    tshape[ax] = w.t.len();
    let t = Tensor::from_vec(w.t.clone(), &tshape)?.cast(x.dtype())?.to_device(x.device())?;
    u.add(&v.sub(&u)?.mul(&t)?)
}

fn check_spatial(x: &Tensor, size: &[usize], what: &str) -> Result<()> {
    if x.ndim() != size.len() + 2 || size.is_empty() {
        return Err(shape_err!(
            "{what}: an output size of {} spatial dims needs a {}-d input (batch, channels, spatial...), got shape {:?}",
            size.len(), size.len() + 2, x.shape()
        ));
    }
    if size.contains(&0) || x.shape()[2..].contains(&0) {
        return Err(shape_err!("{what}: sizes must be positive, got output {:?} from input {:?}", size, x.shape()));
    }
    // the output, and the per-position index tables, must fit before they are built
    let out = [&x.shape()[..2], size].concat();
    super::alloc::reserve(&out, x.dtype())?;
    for &m in size {
        super::alloc::reserve_elems(m, 3 * std::mem::size_of::<usize>(), &|| format!("{what}'s index table of {m} entries"))?;
    }
    Ok(())
}

/// Nearest-neighbour upsampling of the spatial dims to `size` (output j reads input
/// `⌊j·n_in/n_out⌋`, PyTorch's `nearest`; an integer scale repeats each entry).
///
/// ```
/// use flux_core::{Tensor, tensor::misc::upsample_nearest};
/// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[1, 1, 2]).unwrap();
/// assert_eq!(upsample_nearest(&x, &[4]).unwrap().to_vec_f64().unwrap(), vec![1.0, 1.0, 2.0, 2.0]);
/// ```
pub fn upsample_nearest(x: &Tensor, size: &[usize]) -> Result<Tensor> {
    check_spatial(x, size, "upsample_nearest")?;
    let mut y = x.clone();
    for (i, &m) in size.iter().enumerate() {
        let n = x.shape()[2 + i];
        if m == n {
            continue;
        }
        let idx: Vec<usize> = (0..m).map(|j| ((j * n) / m).min(n - 1)).collect();
        y = y.index_select(2 + i as isize, &idx)?;
    }
    Ok(y)
}

/// Linear, bilinear or trilinear upsampling of the spatial dims to `size`, one axis at a
/// time (which equals the tensor-product interpolation).
///
/// ```
/// use flux_core::{Tensor, tensor::misc::upsample_linear};
/// let x = Tensor::from_vec(vec![0.0f64, 3.0], &[1, 1, 2]).unwrap();
/// assert_eq!(upsample_linear(&x, &[4], true).unwrap().to_vec_f64().unwrap(), vec![0.0, 1.0, 2.0, 3.0]);
/// ```
pub fn upsample_linear(x: &Tensor, size: &[usize], align_corners: bool) -> Result<Tensor> {
    check_spatial(x, size, "upsample_linear")?;
    let mut y = x.clone();
    for (i, &m) in size.iter().enumerate() {
        let n = x.shape()[2 + i];
        if m == n {
            continue;
        }
        y = interp_axis(&y, 2 + i as isize, &Interp::linear(n, m, align_corners))?;
    }
    Ok(y)
}

/// (N, C·r², H, W) → (N, C, H·r, W·r) with PyTorch's channel order (`pixel_shuffle`).
///
/// ```
/// use flux_core::{Tensor, DType, tensor::misc::pixel_shuffle};
/// let x = Tensor::zeros(&[2, 8, 3, 3], DType::F32);
/// assert_eq!(pixel_shuffle(&x, 2).unwrap().shape(), &[2, 2, 6, 6]);
/// ```
pub fn pixel_shuffle(x: &Tensor, r: usize) -> Result<Tensor> {
    let s = x.shape();
    if r == 0 {
        return Err(crate::error::value_err!("pixel_shuffle needs a positive factor, got 0"));
    }
    if x.ndim() < 3 || !s[1].is_multiple_of(r.pow((x.ndim() - 2) as u32)) {
        return Err(shape_err!(
            "pixel_shuffle with factor {r} needs an input (batch, channels, spatial...) whose channels divide by {r}^(spatial dims), got shape {:?}",
            s
        ));
    }
    let ns = x.ndim() - 2;
    let c = s[1] / r.pow(ns as u32);
    // (N, C, r..., spatial...) → (N, C, spatial_0, r, spatial_1, r, ...)
    let mut split = vec![s[0], c];
    split.extend(std::iter::repeat_n(r, ns));
    split.extend(&s[2..]);
    let mut perm: Vec<isize> = vec![0, 1];
    for i in 0..ns {
        perm.push((2 + ns + i) as isize);
        perm.push((2 + i) as isize);
    }
    let mut out = vec![s[0], c];
    out.extend(s[2..].iter().map(|&v| v * r));
    x.reshape(&split)?.permute(&perm)?.contiguous()?.reshape(&out)
}
