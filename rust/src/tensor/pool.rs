//! Max and mean pooling over 1, 2 or 3 spatial dimensions of an (N, C, spatial...)
//! tensor, with stride and low/high padding per dimension. Each (sample, channel) plane
//! is independent, so planes are split over rayon's threads.
//!
//! Mean pooling divides by the full window size, padding included (NNlib's `meanpool`,
//! PyTorch's default `count_include_pad=True`); max pooling never picks padding.
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::reduce::sum_lanes;
use super::{Float, Tensor, PAR_THRESHOLD};
use crate::autodiff::{record, Backward, Op};
use crate::error::{py_shape, shape_err, value_err, Result};
use crate::tensor::Device;

mod device; // the forward and backward on other devices, through the seam

/// Which reduction a pooling window applies.
///
/// ```
/// use flux_core::{tensor::pool::{pool, PoolMode, PoolSpec}, Tensor};
/// let x = Tensor::from_vec(vec![1.0f32, 3.0, 2.0, 6.0], &[1, 1, 4]).unwrap();
/// let spec = PoolSpec::new(&[2]);
/// assert_eq!(pool(&x, PoolMode::Max, &spec).unwrap().to_vec_f64().unwrap(), vec![3.0, 6.0]);
/// assert_eq!(pool(&x, PoolMode::Mean, &spec).unwrap().to_vec_f64().unwrap(), vec![2.0, 4.0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolMode {
    /// The maximum of the window.
    Max,
    /// The mean of the window (padding counts as zeros).
    Mean,
}

/// Window, stride and padding (low and high side) per spatial dimension.
///
/// ```
/// use flux_core::{tensor::pool::{pool, PoolMode, PoolSpec}, DType, Tensor};
/// let spec = PoolSpec { window: vec![3], stride: vec![1], pad_lo: vec![1], pad_hi: vec![1] };
/// // a "same" max pool: the length is kept
/// assert_eq!(pool(&Tensor::zeros(&[1, 1, 5], DType::F32), PoolMode::Max, &spec).unwrap().shape(), &[1, 1, 5]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSpec {
    /// Window size per spatial dimension.
    pub window: Vec<usize>,
    /// Stride per spatial dimension.
    pub stride: Vec<usize>,
    /// Padding at the low end.
    pub pad_lo: Vec<usize>,
    /// Padding at the high end.
    pub pad_hi: Vec<usize>,
}

/// Flux's default spec.
///
/// ```
/// use flux_core::tensor::pool::PoolSpec;
/// assert_eq!(PoolSpec::new(&[3]).pad_lo, vec![0]);
/// ```
impl PoolSpec {
    /// Window `k` in every one of `n` dimensions, stride = window, no padding (Flux's default).
    ///
    /// ```
    /// let s = flux_core::tensor::pool::PoolSpec::new(&[2, 2]);
    /// assert_eq!(s.stride, vec![2, 2]);
    /// ```
    pub fn new(window: &[usize]) -> PoolSpec {
        let n = window.len();
        PoolSpec { window: window.to_vec(), stride: window.to_vec(), pad_lo: vec![0; n], pad_hi: vec![0; n] }
    }
}

/// The shape of one pooling, spatial dimensions padded to three (leading ones). Public
/// because the seam's pooling kernels ([`BackendStorage::pool_fwd`](crate::backend::BackendStorage::pool_fwd))
/// take it.
///
/// ```
/// use flux_core::tensor::pool::PGeom;
/// // 2×2 max pooling of 8×8 planes
/// let g = PGeom { planes: 6, big: [1, 8, 8], small: [1, 4, 4], k: [1, 2, 2], stride: [1, 2, 2], pad: [0; 3] };
/// assert_eq!((g.big[1] - g.k[1]) / g.stride[1] + 1, g.small[1]);
/// ```
#[derive(Clone, Debug)]
pub struct PGeom {
    /// (sample, channel) planes: batch × channels.
    pub planes: usize,
    /// Spatial size of the input.
    pub big: [usize; 3],
    /// Spatial size of the output.
    pub small: [usize; 3],
    /// Window size.
    pub k: [usize; 3],
    /// Stride.
    pub stride: [usize; 3],
    /// Low-side padding.
    pub pad: [usize; 3],
}

fn pad3(v: &[usize], fill: usize) -> [usize; 3] {
    let mut o = [fill; 3];
    o[3 - v.len()..].copy_from_slice(v);
    o
}

/// Sizes and fast-path conditions (crate-internal).
///
/// ```
/// use flux_core::tensor::pool::PGeom;
/// let g = PGeom { planes: 1, big: [1, 1, 4], small: [1, 1, 2], k: [1, 1, 2], stride: [1, 1, 2], pad: [0; 3] };
/// assert_eq!(g.small[2] * g.stride[2], g.big[2]);
/// ```
impl PGeom {
    /// No window reaches into padding on either side (the fast paths' condition: `pad`
    /// is only the low side, and a high-side padding can still be read).
    fn unpadded(&self) -> bool {
        self.pad == [0; 3] && (0..3).all(|i| self.small[i] == 0 || (self.small[i] - 1) * self.stride[i] + self.k[i] <= self.big[i])
    }
    fn lb(&self) -> usize { self.big.iter().product() }
    /// A 2-D 2×2 window with stride 2 and no padding on either side (the fast
    /// max-pooling path).
    fn is_max_2x2(&self) -> bool { self.k == [1, 2, 2] && self.stride == [1, 2, 2] && self.big[0] == 1 && self.unpadded() }
    fn ls(&self) -> usize { self.small.iter().product() }
    /// Visit the in-bounds input offsets of output position (od, oh, ow).
    #[inline]
    fn window(&self, od: usize, oh: usize, ow: usize, mut f: impl FnMut(usize)) {
        let [bd, bh, bw] = self.big;
        let start = |o: usize, i: usize| (o * self.stride[i]) as isize - self.pad[i] as isize;
        let (d0, h0, w0) = (start(od, 0), start(oh, 1), start(ow, 2));
        for a in 0..self.k[0] as isize {
            let id = d0 + a;
            if id < 0 || id >= bd as isize {
                continue;
            }
            for b in 0..self.k[1] as isize {
                let ih = h0 + b;
                if ih < 0 || ih >= bh as isize {
                    continue;
                }
                let base = (id as usize * bh + ih as usize) * bw;
                for e in 0..self.k[2] as isize {
                    let iw = w0 + e;
                    if iw >= 0 && iw < bw as isize {
                        f(base + iw as usize);
                    }
                }
            }
        }
    }
}

/// Forward over one plane: outputs and (for max) the winning input offsets.
fn plane_fwd<T: Float>(g: &PGeom, mode: PoolMode, x: &[T], y: &mut [T], arg: &mut [u32]) {
    if g.unpadded() {
        return match mode {
            PoolMode::Max if g.is_max_2x2() => plane_max_2x2(g, x, y, arg),
            PoolMode::Max => plane_max_unpadded(g, x, y, arg),
            PoolMode::Mean => plane_mean_unpadded(g, x, y),
        };
    }
    let kk = T::f(g.k.iter().product::<usize>() as f64);
    let mut o = 0;
    for od in 0..g.small[0] {
        for oh in 0..g.small[1] {
            for ow in 0..g.small[2] {
                match mode {
                    PoolMode::Max => {
                        let (mut best, mut at) = (T::neg_infinity(), u32::MAX);
                        g.window(od, oh, ow, |i| {
                            let v = x[i];
                            if at == u32::MAX || v > best || v.is_nan() && !best.is_nan() {
                                best = v;
                                at = i as u32;
                            }
                        });
                        y[o] = best;
                        arg[o] = at;
                    }
                    PoolMode::Mean => {
                        let mut s = T::zero();
                        g.window(od, oh, ow, |i| s += x[i]);
                        y[o] = s / kk;
                    }
                }
                o += 1;
            }
        }
    }
}

/// Visit the window rows (start offset into the plane, length `k[2]`) of output (od, oh, ow)
/// when there is no padding: every row lies inside the plane.
#[inline(always)]
fn unpadded_rows(g: &PGeom, od: usize, oh: usize, ow: usize, mut f: impl FnMut(usize)) {
    let [_, bh, bw] = g.big;
    for a in 0..g.k[0] {
        for b in 0..g.k[1] {
            f(((od * g.stride[0] + a) * bh + oh * g.stride[1] + b) * bw + ow * g.stride[2]);
        }
    }
}

/// Mean pooling without padding: each window is `k[0]·k[1]` contiguous runs of `k[2]`
/// values, summed as runs (a global mean pool is one long run per row).
fn plane_mean_unpadded<T: Float>(g: &PGeom, x: &[T], y: &mut [T]) {
    let inv = T::one() / T::f(g.k.iter().product::<usize>() as f64);
    let kw = g.k[2];
    let mut o = 0;
    for od in 0..g.small[0] {
        for oh in 0..g.small[1] {
            for ow in 0..g.small[2] {
                let mut s = T::zero();
                unpadded_rows(g, od, oh, ow, |base| s += sum_lanes(&x[base..base + kw], |v| v));
                y[o] = s * inv;
                o += 1;
            }
        }
    }
}

/// 2-D max pooling with a 2×2 window and stride 2 (CNNs' usual downsampling): the
/// winner rule of [`plane_max_unpadded`] (first maximum in window order, the first NaN
/// wins) on the four values of each window, without the general loops.
fn plane_max_2x2<T: Float>(g: &PGeom, x: &[T], y: &mut [T], arg: &mut [u32]) {
    let [_, _, bw] = g.big;
    let [_, sh, sw] = g.small;
    for oh in 0..sh {
        let (r0, r1) = (2 * oh * bw, (2 * oh + 1) * bw);
        let (x0, x1) = (&x[r0..r0 + 2 * sw], &x[r1..r1 + 2 * sw]);
        let (yo, ao) = (&mut y[oh * sw..(oh + 1) * sw], &mut arg[oh * sw..(oh + 1) * sw]);
        for (ow, (yv, av)) in yo.iter_mut().zip(ao.iter_mut()).enumerate() {
            let c = [x0[2 * ow], x0[2 * ow + 1], x1[2 * ow], x1[2 * ow + 1]];
            let (mut best, mut at) = (c[0], 0);
            for (i, &v) in c.iter().enumerate().skip(1) {
                let take = v > best;
                best = if take { v } else { best };
                at = if take { i } else { at };
            }
            if let Some(i) = c.iter().position(|v| v.is_nan()) {
                (best, at) = (c[i], i);
            }
            *yv = best;
            *av = ([r0, r0 + 1, r1, r1 + 1][at] + 2 * ow) as u32;
        }
    }
}

/// Max pooling without padding (Flux's and LeNet's case): every window lies inside the
/// plane, so the offsets need no bounds tests; the winner rule is `plane_fwd`'s (first
/// maximum, NaN propagates).
fn plane_max_unpadded<T: Float>(g: &PGeom, x: &[T], y: &mut [T], arg: &mut [u32]) {
    let [_, bh, bw] = g.big;
    let [sd, sh, sw] = g.small;
    let [kd, kh, kw] = g.k;
    let [td, th, tw] = g.stride;
    let mut o = 0;
    for od in 0..sd {
        for oh in 0..sh {
            for ow in 0..sw {
                let first = ((od * td) * bh + oh * th) * bw + ow * tw;
                let (mut best, mut at, mut nan) = (x[first], first, false);
                for a in 0..kd {
                    for b in 0..kh {
                        let base = ((od * td + a) * bh + oh * th + b) * bw + ow * tw;
                        for (e, &v) in x[base..base + kw].iter().enumerate() {
                            // selects, not branches: on real data the winner is a coin
                            // flip, and mispredicted branches cost 10 ns an output
                            let take = v > best;
                            best = if take { v } else { best };
                            at = if take { base + e } else { at };
                            nan |= v.is_nan();
                        }
                    }
                }
                if nan {
                    // rare: the first NaN of the window wins, as in the general path
                    g.window(od, oh, ow, |i| {
                        if x[i].is_nan() && !best.is_nan() {
                            best = x[i];
                            at = i;
                        }
                    });
                }
                y[o] = best;
                arg[o] = at as u32;
                o += 1;
            }
        }
    }
}

/// The input gradient of [`plane_max_2x2`] over one plane, every value written (each
/// input lies in at most one window, so the gradient is the window's or zero): no zero
/// fill of the whole gradient first, no scattered adds. Each window's two rows are
/// written together, four selects per window.
fn plane_max_2x2_bwd<T: Float>(g: &PGeom, gy: &[T], arg: &[u32], dx: &mut [MaybeUninit<T>]) {
    let [_, _, bw] = g.big;
    let [_, sh, sw] = g.small;
    let zero = T::zero();
    let (pairs, rest) = dx.split_at_mut(2 * sh * bw);
    for (oh, rows) in pairs.chunks_exact_mut(2 * bw).enumerate() {
        let (r0, r1) = rows.split_at_mut(bw);
        let (gr, ar) = (&gy[oh * sw..(oh + 1) * sw], &arg[oh * sw..(oh + 1) * sw]);
        let top = 2 * oh * bw;
        for ow in 0..sw {
            // the winner's place in its window: 0, 1 (upper row), bw, bw + 1 (lower row)
            let at = (ar[ow] as usize).wrapping_sub(top + 2 * ow);
            let v = gr[ow];
            r0[2 * ow].write(if at == 0 { v } else { zero });
            r0[2 * ow + 1].write(if at == 1 { v } else { zero });
            r1[2 * ow].write(if at == bw { v } else { zero });
            r1[2 * ow + 1].write(if at == bw + 1 { v } else { zero });
        }
        // an odd width's last column lies in no window
        for d in r0[2 * sw..].iter_mut().chain(r1[2 * sw..].iter_mut()) {
            d.write(zero);
        }
    }
    // as does an odd height's last row
    for d in rest.iter_mut() {
        d.write(zero);
    }
}

fn plane_bwd<T: Float>(g: &PGeom, mode: PoolMode, gy: &[T], arg: &[u32], dx: &mut [T]) {
    let inv = T::one() / T::f(g.k.iter().product::<usize>() as f64);
    if mode == PoolMode::Mean && g.unpadded() {
        let kw = g.k[2];
        let mut o = 0;
        for od in 0..g.small[0] {
            for oh in 0..g.small[1] {
                for ow in 0..g.small[2] {
                    let v = gy[o] * inv;
                    unpadded_rows(g, od, oh, ow, |base| dx[base..base + kw].iter_mut().for_each(|d| *d += v));
                    o += 1;
                }
            }
        }
        return;
    }
    let mut o = 0;
    for od in 0..g.small[0] {
        for oh in 0..g.small[1] {
            for ow in 0..g.small[2] {
                match mode {
                    PoolMode::Max => {
                        if arg[o] != u32::MAX {
                            dx[arg[o] as usize] += gy[o];
                        }
                    }
                    PoolMode::Mean => {
                        let v = gy[o] * inv;
                        g.window(od, oh, ow, |i| dx[i] += v);
                    }
                }
                o += 1;
            }
        }
    }
}

#[derive(Debug)]
struct PoolBackward {
    g: PGeom,
    mode: PoolMode,
    arg: Vec<u32>,
    in_shape: Vec<usize>,
}

impl Backward for PoolBackward {
    fn backward(&self, gy: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let gy = gy.contiguous()?;
        let (lb, ls) = (self.g.lb(), self.g.ls());
        crate::dispatch!(gy.dtype(), T => {
            let gs = gy.as_slice::<T>()?;
            let g = &self.g;
            if self.mode == PoolMode::Max && g.is_max_2x2() {
                let total = g.planes * lb;
                let mut dx: Vec<T> = Vec::with_capacity(total);
                let f = |(p, d): (usize, &mut [MaybeUninit<T>])| plane_max_2x2_bwd(g, &gs[p * ls..(p + 1) * ls], &self.arg[p * ls..(p + 1) * ls], d);
                let spare = &mut dx.spare_capacity_mut()[..total];
                if total >= PAR_THRESHOLD {
                    spare.par_chunks_exact_mut(lb.max(1)).enumerate().for_each(f);
                } else {
                    spare.chunks_exact_mut(lb.max(1)).enumerate().for_each(f);
                }
                // SAFETY: the planes cover all `total` values and each plane's are written above
                unsafe { dx.set_len(total) };
                return Ok(vec![Some(Tensor::from_cpu(T::vec_into(dx), &self.in_shape))]);
            }
            if self.mode == PoolMode::Mean && g.small == [1; 3] && g.k == g.big && g.unpadded() {
                // a global mean pool: each plane's gradient is its one output's, spread evenly
                let inv = T::one() / T::f(lb as f64);
                let dx: Vec<T> = gs.iter().flat_map(|&v| std::iter::repeat_n(v * inv, lb)).collect();
                return Ok(vec![Some(Tensor::from_cpu(T::vec_into(dx), &self.in_shape))]);
            }
            let mut dx = vec![T::zero(); self.g.planes * lb];
            let f = |(p, d): (usize, &mut [T])| plane_bwd(&self.g, self.mode, &gs[p * ls..(p + 1) * ls], if self.arg.is_empty() { &[] } else { &self.arg[p * ls..] }, d);
            if dx.len() >= PAR_THRESHOLD {
                dx.par_chunks_exact_mut(lb.max(1)).enumerate().for_each(f);
            } else {
                dx.chunks_exact_mut(lb.max(1)).enumerate().for_each(f);
            }
            Ok(vec![Some(Tensor::from_cpu(T::vec_into(dx), &self.in_shape))])
        })
    }
}

/// Max or mean pooling of `x` (N, C, spatial...) with one window entry per spatial dim.
///
/// ```
/// use flux_core::{Tensor, tensor::pool::{pool, PoolMode, PoolSpec}};
/// let x = Tensor::from_vec((0..16).map(|v| v as f32).collect(), &[1, 1, 4, 4]).unwrap();
/// let y = pool(&x, PoolMode::Max, &PoolSpec::new(&[2, 2])).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![5.0, 7.0, 13.0, 15.0]);
/// ```
pub fn pool(x: &Tensor, mode: PoolMode, spec: &PoolSpec) -> Result<Tensor> {
    let ns = spec.window.len();
    if !(1..=3).contains(&ns) {
        return Err(value_err!("pooling works over 1 to 3 spatial dimensions, got a window of {:?}", spec.window));
    }
    if [&spec.stride, &spec.pad_lo, &spec.pad_hi].iter().any(|v| v.len() != ns) {
        return Err(value_err!(
            "pooling settings stride {}, padding {}/{} do not all have the window {}'s {ns} entries",
            py_shape(&spec.stride), py_shape(&spec.pad_lo), py_shape(&spec.pad_hi), py_shape(&spec.window)
        ));
    }
    if spec.stride.contains(&0) || spec.window.contains(&0) {
        return Err(value_err!("pooling window and stride must be positive, got window={}, stride={}", py_shape(&spec.window), py_shape(&spec.stride)));
    }
    if x.ndim() != ns + 2 {
        return Err(shape_err!(
            "a {}-d pooling window {:?} expects a {}-d input (batch, channels, spatial...), got shape {:?}",
            ns, spec.window, ns + 2, x.shape()
        ));
    }
    let xs = x.shape();
    let mut small = Vec::with_capacity(ns);
    for i in 0..ns {
        // a window lying wholly in the padding would give -inf (max) or 0 (mean)
        if spec.pad_lo[i] >= spec.window[i] || spec.pad_hi[i] >= spec.window[i] {
            return Err(value_err!(
                "pooling padding {:?}/{:?} must be smaller than the window {:?} (a window inside the padding has no input)",
                spec.pad_lo, spec.pad_hi, spec.window
            ));
        }
        let padded = xs[2 + i] + spec.pad_lo[i] + spec.pad_hi[i];
        if padded < spec.window[i] {
            return Err(shape_err!("pooling window {:?} is larger than the padded input of spatial shape {:?}", spec.window, &xs[2..]));
        }
        small.push((padded - spec.window[i]) / spec.stride[i] + 1);
    }
    let xc = x.contiguous()?;
    let g = PGeom {
        planes: xs[0] * xs[1],
        big: pad3(&xs[2..], 1),
        small: pad3(&small, 1),
        k: pad3(&spec.window, 1),
        stride: pad3(&spec.stride, 1),
        pad: pad3(&spec.pad_lo, 0),
    };
    if g.lb() >= u32::MAX as usize {
        return Err(value_err!("pooling planes of more than 2^32 elements are not supported"));
    }
    let (lb, ls) = (g.lb(), g.ls());
    let mut oshape = vec![xs[0], xs[1]];
    oshape.extend(&small);
    if xc.device() != Device::Cpu {
        return device::pool(&xc, mode, g, &oshape);
    }
    super::alloc::reserve(&oshape, x.dtype())?;
    let mut arg = vec![u32::MAX; if mode == PoolMode::Max { g.planes * ls } else { 0 }];
    let out = crate::dispatch!(x.dtype(), T => {
        let xv = xc.as_slice::<T>()?;
        let mut y = vec![T::zero(); g.planes * ls];
        if ls > 0 {
            let big = xv.len() >= PAR_THRESHOLD;
            match mode {
                PoolMode::Max => {
                    let f = |((p, yy), a): ((usize, &mut [T]), &mut [u32])| plane_fwd(&g, mode, &xv[p * lb..(p + 1) * lb], yy, a);
                    if big {
                        y.par_chunks_exact_mut(ls).enumerate().zip(arg.par_chunks_exact_mut(ls)).for_each(f);
                    } else {
                        y.chunks_exact_mut(ls).enumerate().zip(arg.chunks_exact_mut(ls)).for_each(f);
                    }
                }
                PoolMode::Mean => {
                    let f = |(p, yy): (usize, &mut [T])| plane_fwd(&g, mode, &xv[p * lb..(p + 1) * lb], yy, &mut []);
                    if big {
                        y.par_chunks_exact_mut(ls).enumerate().for_each(f);
                    } else {
                        y.chunks_exact_mut(ls).enumerate().for_each(f);
                    }
                }
            }
        }
        Tensor::from_cpu(T::vec_into(y), &oshape)
    });
    record(&[&xc], &out, || Op::Custom(Box::new(PoolBackward { g, mode, arg, in_shape: xs.to_vec() })));
    Ok(out)
}
