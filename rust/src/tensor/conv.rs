//! N-d convolution (1, 2 or 3 spatial dimensions) and transposed convolution, NCHW
//! with PyTorch's weight layout `(out, in / groups, k...)`.
//!
//! Both go through three kernels on one geometry, where a convolution maps the "big"
//! tensor (its input) to the "small" one (its output):
//! `conv_fwd` (im2col + GEMM: small = W · cols(big)), `conv_bwd_data` (GEMM + col2im:
//! big = col2im(Wᵀ · small)) and `conv_bwd_filter` (dW = Σₙ small · cols(big)ᵀ).
//! A transposed convolution is the adjoint of a convolution with the same weight, so its
//! forward is `conv_bwd_data` and its backward uses the other two. The batch is split
//! over rayon's threads, one GEMM per sample and group; a single sample uses GEMM's own
//! threads instead.
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::elementwise::UnaryOp;
use super::{DType, Float, Tensor};
use crate::autodiff::{record, Backward, Op};
use crate::error::{py_shape, shape_err, value_err, Result};
use crate::tensor::matmul::{gemm_threads, Mat};
use crate::tensor::Device;

mod device; // the forward and backward on other devices, through the seam

/// Stride, padding (low and high side per dimension), dilation and groups of a
/// convolution over `n` spatial dimensions.
///
/// ```
/// use flux_core::tensor::conv::ConvSpec;
/// let s = ConvSpec::new(2).with_stride(2).with_pad(1);
/// assert_eq!((s.stride, s.pad_lo, s.pad_hi, s.groups), (vec![2, 2], vec![1, 1], vec![1, 1], 1));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    /// Stride per spatial dimension.
    pub stride: Vec<usize>,
    /// Padding at the low end of each spatial dimension.
    pub pad_lo: Vec<usize>,
    /// Padding at the high end of each spatial dimension.
    pub pad_hi: Vec<usize>,
    /// Dilation per spatial dimension.
    pub dilation: Vec<usize>,
    /// Channel groups (in and out channels are split into this many).
    pub groups: usize,
}

/// A default spec and builders.
///
/// ```
/// use flux_core::tensor::conv::ConvSpec;
/// assert_eq!(ConvSpec::new(1).with_stride(3).stride, vec![3]);
/// ```
impl ConvSpec {
    /// Stride 1, no padding, dilation 1, one group, over `n` spatial dimensions.
    ///
    /// ```
    /// let s = flux_core::tensor::conv::ConvSpec::new(2);
    /// assert_eq!(s.stride, vec![1, 1]);
    /// ```
    pub fn new(n: usize) -> ConvSpec {
        ConvSpec { stride: vec![1; n], pad_lo: vec![0; n], pad_hi: vec![0; n], dilation: vec![1; n], groups: 1 }
    }
    /// The same settings with symmetric padding `p` in every dimension.
    ///
    /// ```
    /// use flux_core::tensor::conv::ConvSpec;
    /// let s = ConvSpec::new(3).with_pad(2);
    /// assert_eq!((s.pad_lo, s.pad_hi), (vec![2; 3], vec![2; 3]));
    /// ```
    pub fn with_pad(mut self, p: usize) -> ConvSpec {
        self.pad_lo = vec![p; self.pad_lo.len()];
        self.pad_hi = vec![p; self.pad_hi.len()];
        self
    }
    /// The same settings with stride `s` in every dimension.
    ///
    /// ```
    /// use flux_core::tensor::conv::ConvSpec;
    /// assert_eq!(ConvSpec::new(2).with_stride(4).stride, vec![4, 4]);
    /// ```
    pub fn with_stride(mut self, s: usize) -> ConvSpec {
        self.stride = vec![s; self.stride.len()];
        self
    }
    fn check(&self, n: usize) -> Result<()> {
        let ok = [&self.stride, &self.pad_lo, &self.pad_hi, &self.dilation].iter().all(|v| v.len() == n);
        if !ok {
            return Err(value_err!(
                "convolution settings stride {}, padding {}/{}, dilation {} do not all have {n} spatial entries",
                py_shape(&self.stride), py_shape(&self.pad_lo), py_shape(&self.pad_hi), py_shape(&self.dilation)
            ));
        }
        if self.stride.contains(&0) || self.dilation.contains(&0) || self.groups == 0 {
            return Err(value_err!(
                "stride, dilation and groups must be positive, got stride={}, dilation={}, groups={}",
                py_shape(&self.stride), py_shape(&self.dilation), self.groups
            ));
        }
        Ok(())
    }
}

/// The shape of one convolution, with the spatial dimensions padded to three (leading
/// ones) so that one set of loops serves 1-D, 2-D and 3-D. Public because the seam's
/// convolution kernels ([`BackendStorage::conv_fwd`](crate::backend::BackendStorage::conv_fwd)
/// and its two gradients) take it.
///
/// ```
/// use flux_core::tensor::conv::{conv_out_len, Geom};
/// // a 2-D convolution 8×8 → 4×4, window 3, stride 2, padding 1
/// let g = Geom { n: 2, cb: 3, cs: 4, groups: 1, big: [1, 8, 8], small: [1, 4, 4], k: [1, 3, 3], stride: [1, 2, 2], pad: [0, 1, 1], dil: [1; 3] };
/// assert_eq!(conv_out_len(g.big[2], g.k[2], g.stride[2], g.pad[2], g.pad[2], g.dil[2]), Some(g.small[2]));
/// ```
#[derive(Clone, Debug)]
pub struct Geom {
    /// Batch size.
    pub n: usize,
    /// channels of the big (conv input) and small (conv output) tensors
    pub cb: usize,
    /// Channels of the small side.
    pub cs: usize,
    /// Channel groups (in and out channels are split into this many).
    pub groups: usize,
    /// Spatial size of the big side (padded to 3 dimensions).
    pub big: [usize; 3],
    /// Spatial size of the small side.
    pub small: [usize; 3],
    /// Kernel size.
    pub k: [usize; 3],
    /// Stride.
    pub stride: [usize; 3],
    /// Low-side padding.
    pub pad: [usize; 3],
    /// Dilation.
    pub dil: [usize; 3],
}

/// Sizes derived from the shape (crate-internal).
///
/// ```
/// use flux_core::tensor::conv::Geom;
/// let g = Geom { n: 1, cb: 2, cs: 2, groups: 2, big: [1, 1, 3], small: [1, 1, 2], k: [1, 1, 2], stride: [1; 3], pad: [0; 3], dil: [1; 3] };
/// assert_eq!(g.cb % g.groups, 0);
/// ```
impl Geom {
    fn kk(&self) -> usize { self.k.iter().product() }
    fn lb(&self) -> usize { self.big.iter().product() }
    fn ls(&self) -> usize { self.small.iter().product() }
    /// rows of one group's column matrix: (cb / groups) · ∏k
    fn ckg(&self) -> usize { self.cb / self.groups * self.kk() }
    fn osg(&self) -> usize { self.cs / self.groups }
}

fn pad3(v: &[usize], fill: usize) -> [usize; 3] {
    let mut o = [fill; 3];
    o[3 - v.len()..].copy_from_slice(v);
    o
}

/// Output length of a convolution along one dimension (`None` if the window does not fit).
///
/// ```
/// use flux_core::tensor::conv::conv_out_len;
/// assert_eq!(conv_out_len(28, 5, 1, 0, 0, 1), Some(24));
/// assert_eq!(conv_out_len(32, 3, 2, 1, 1, 1), Some(16));
/// assert_eq!(conv_out_len(2, 5, 1, 0, 0, 1), None); // the window does not fit
/// ```
pub fn conv_out_len(n: usize, k: usize, stride: usize, pad_lo: usize, pad_hi: usize, dil: usize) -> Option<usize> {
    // checked: a huge padding or dilation is "does not fit", not a wrapped size
    let span = dil.checked_mul(k.max(1) - 1)?.checked_add(1)?;
    let padded = n.checked_add(pad_lo)?.checked_add(pad_hi)?;
    if padded < span || k == 0 || stride == 0 {
        return None;
    }
    Some((padded - span) / stride + 1)
}

/// `dst ← src` for the short rows of small images (8–32 elements in LeNet), in
/// fixed-size pieces the compiler inlines: a `memcpy` call per row was 10% of a step.
#[inline(always)]
fn copy_row<T: Copy>(dst: &mut [T], src: &[T]) {
    if dst.len() >= 64 {
        return dst.copy_from_slice(src);
    }
    let (mut d8, mut s8) = (dst.chunks_exact_mut(8), src.chunks_exact(8));
    for (d, s) in (&mut d8).zip(&mut s8) {
        let s: &[T; 8] = s.try_into().expect("chunks of 8");
        let d: &mut [T; 8] = d.try_into().expect("chunks of 8");
        *d = *s;
    }
    for (d, s) in d8.into_remainder().iter_mut().zip(s8.remainder()) {
        *d = *s;
    }
}

/// The output columns `lo..hi` of a row whose input column is `ow·stride + off` and
/// lies inside `0..bw`: the others read padding.
#[inline(always)]
fn valid_cols(sw: usize, bw: usize, stride: usize, off: isize) -> (usize, usize) {
    let lo = if off < 0 { (off.unsigned_abs()).div_ceil(stride) } else { 0 };
    let room = bw as isize - off;
    let hi = if room <= 0 { 0 } else { (room as usize).div_ceil(stride).min(sw) };
    (lo.min(sw), hi.max(lo.min(sw)))
}

/// Unfold one sample `x` (cb × big) into `col` (cb·∏k × small, rows `rs` apart), zeros
/// where the window reads padding. Row `c·∏k + kidx` matches the weight's `(c, k...)`
/// flattening.
fn im2col<T: Float>(g: &Geom, x: &[T], col: &mut [T], rs: usize) {
    let [bd, bh, bw] = g.big;
    let [sd, sh, sw] = g.small;
    let [kd, kh, kw] = g.k;
    let ls = g.ls();
    let mut row = 0;
    for c in 0..g.cb {
        let xc = &x[c * bd * bh * bw..(c + 1) * bd * bh * bw];
        for a in 0..kd {
            for b in 0..kh {
                for e in 0..kw {
                    let out = &mut col[row * rs..row * rs + ls];
                    let off = (e * g.dil[2]) as isize - g.pad[2] as isize;
                    // the padded columns are the same in every output row of this kernel row
                    let (lo, hi) = valid_cols(sw, bw, g.stride[2], off);
                    let mut o = 0;
                    for od in 0..sd {
                        let id = (od * g.stride[0] + a * g.dil[0]) as isize - g.pad[0] as isize;
                        for oh in 0..sh {
                            let ih = (oh * g.stride[1] + b * g.dil[1]) as isize - g.pad[1] as isize;
                            let dst = &mut out[o..o + sw];
                            o += sw;
                            if id < 0 || id >= bd as isize || ih < 0 || ih >= bh as isize {
                                dst.fill(T::zero());
                                continue;
                            }
                            let src = &xc[(id as usize * bh + ih as usize) * bw..][..bw];
                            dst[..lo].fill(T::zero());
                            dst[hi..].fill(T::zero());
                            if g.stride[2] == 1 {
                                let s0 = (lo as isize + off) as usize;
                                copy_row(&mut dst[lo..hi], &src[s0..s0 + hi - lo]);
                            } else {
                                for (ow, d) in dst[lo..hi].iter_mut().enumerate() {
                                    *d = src[(((lo + ow) * g.stride[2]) as isize + off) as usize];
                                }
                            }
                        }
                    }
                    row += 1;
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: add `col` into one sample `x` (the caller's buffer is
/// already zeroed: clearing it here was a second pass over the input gradient); `col`'s
/// rows are `rs` apart.
fn col2im<T: Float>(g: &Geom, col: &[T], x: &mut [T], rs: usize) {
    let [bd, bh, bw] = g.big;
    let [sd, sh, sw] = g.small;
    let [kd, kh, kw] = g.k;
    let ls = g.ls();
    let mut row = 0;
    for c in 0..g.cb {
        let xc = &mut x[c * bd * bh * bw..(c + 1) * bd * bh * bw];
        for a in 0..kd {
            for b in 0..kh {
                for e in 0..kw {
                    let src_row = &col[row * rs..row * rs + ls];
                    let off = (e * g.dil[2]) as isize - g.pad[2] as isize;
                    let (lo, hi) = valid_cols(sw, bw, g.stride[2], off);
                    let mut o = 0;
                    for od in 0..sd {
                        let id = (od * g.stride[0] + a * g.dil[0]) as isize - g.pad[0] as isize;
                        for oh in 0..sh {
                            let ih = (oh * g.stride[1] + b * g.dil[1]) as isize - g.pad[1] as isize;
                            let s = &src_row[o + lo..o + hi];
                            o += sw;
                            if id < 0 || id >= bd as isize || ih < 0 || ih >= bh as isize {
                                continue;
                            }
                            let dst = &mut xc[(id as usize * bh + ih as usize) * bw..][..bw];
                            if g.stride[2] == 1 {
                                let d0 = (lo as isize + off) as usize;
                                dst[d0..d0 + s.len()].iter_mut().zip(s).for_each(|(d, &v)| *d += v);
                            } else {
                                for (ow, &v) in s.iter().enumerate() {
                                    dst[(((lo + ow) * g.stride[2]) as isize + off) as usize] += v;
                                }
                            }
                        }
                    }
                    row += 1;
                }
            }
        }
    }
}

/// `C (m×n) = [C +] A (m×k) · B (k×n)`, operands read through (row, column) strides; C
/// is row-major with row stride `n`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_strided<T: Float>(
    m: usize, n: usize, k: usize,
    a: &[T], a_rs: usize, a_cs: usize,
    b: &[T], b_rs: usize, b_cs: usize,
    c: &mut [T], accumulate: bool, threads: usize,
) {
    if k == 0 && !accumulate {
        c[..m * n].fill(T::zero());
    }
    // SAFETY: c holds initialised values (read when accumulating)
    unsafe { gemm_raw(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c.as_mut_ptr(), n, c.len(), accumulate, threads) }
}

/// [`gemm_strided`] writing `C = A · B` into a buffer not yet initialised (a fresh
/// output: no zero fill first); afterwards its first `m·n` values are initialised.
#[allow(clippy::too_many_arguments)]
fn gemm_uninit<T: Float>(
    m: usize, n: usize, k: usize,
    a: &[T], a_rs: usize, a_cs: usize,
    b: &[T], b_rs: usize, b_cs: usize,
    c: &mut [MaybeUninit<T>], threads: usize,
) {
    if k == 0 {
        c[..m * n].iter_mut().for_each(|v| {
            v.write(T::zero());
        });
    }
    // SAFETY: with `accumulate` false gemm writes C without reading it
    unsafe { gemm_raw(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c.as_mut_ptr().cast::<T>(), n, c.len(), false, threads) }
}

/// `C (m×n, rows ldc apart) += A (m×k) · B (k×n)`: accumulating into a block of a wider
/// matrix.
#[allow(clippy::too_many_arguments)]
fn gemm_acc_ld<T: Float>(
    m: usize, n: usize, k: usize,
    a: &[T], a_rs: usize, a_cs: usize,
    b: &[T], b_rs: usize, b_cs: usize,
    c: &mut [T], ldc: usize, threads: usize,
) {
    // SAFETY: c holds initialised values
    unsafe { gemm_raw(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c.as_mut_ptr(), ldc, c.len(), true, threads) }
}

/// The call into gemm shared by [`gemm_strided`], [`gemm_uninit`] and [`gemm_acc_ld`].
///
/// # Safety
/// `c` points to `c_len` writable values, initialised if `accumulate`; C's rows are
/// `ldc` apart.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw<T: Float>(
    m: usize, n: usize, k: usize,
    a: &[T], a_rs: usize, a_cs: usize,
    b: &[T], b_rs: usize, b_cs: usize,
    c: *mut T, ldc: usize, c_len: usize, accumulate: bool, threads: usize,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(a.len() > (m - 1) * a_rs + (k - 1) * a_cs && b.len() > (k - 1) * b_rs + (n - 1) * b_cs && ldc >= n && c_len >= (m - 1) * ldc + n);
    let (a, b) = (Mat { data: a, off: 0, rs: a_rs as isize, cs: a_cs as isize }, Mat { data: b, off: 0, rs: b_rs as isize, cs: b_cs as isize });
    // SAFETY: the assert above bounds every element the strides reach.
    unsafe { gemm_threads(m, n, k, a, b, c, ldc, accumulate, T::one(), threads) }
}

/// The row stride of a column matrix with rows of `ls` values: one cache line more when
/// rows would lie a multiple of 1 KiB apart, which maps gemm's reads down a column of
/// them onto a few L1 sets.
fn col_stride(ls: usize) -> usize {
    if ls >= 256 && ls % 256 == 0 { ls + 16 } else { ls }
}

/// Threads for GEMM inside one sample: all of them when the batch cannot use them.
fn inner_threads(n: usize, work: usize) -> usize {
    let t = rayon::current_num_threads();
    if n >= t || work < (1 << 18) { 1 } else { t }
}

/// How a convolution is unfolded for GEMM. Either the whole window (im2col: `blocks` = 1,
/// the weight as it is) or, for 2-D convolutions with vertical stride 1 and at least 32
/// output and 8 input channels per group, only its horizontal part: each channel's input unfolded
/// by the window's `kw` columns over the output's rows plus `kh − 1` (`dh`) more, and
/// the `kh` window rows taken as `kh` GEMMs over the same matrix shifted by whole rows
/// (`shift` values), each with the weight's columns of that window row (`blocks`
/// matrices (cs × ck)). That matrix is a third (3×3 kernels) of the column matrix's
/// size, so it costs a third of im2col's and col2im's memory traffic.
struct Unfold<'a, T: Float> {
    /// the geometry im2col/col2im run on (a kernel one row high for the row unfold)
    cg: Geom,
    /// GEMMs per group, and the column shift between them
    blocks: usize,
    shift: usize,
    /// rows of one group's unfolded matrix, and its row stride
    ck: usize,
    rs: usize,
    /// `blocks` weight matrices (cs × ck), when given a weight
    w: std::borrow::Cow<'a, [T]>,
}

impl<'a, T: Float> Unfold<'a, T> {
    /// The unfolding of `g`, with the weight `w` (cs, cb/groups, k...) split into its
    /// blocks when given (`None`: the filter gradient, which does not read it).
    fn new(g: &Geom, w: Option<&'a [T]>) -> Unfold<'a, T> {
        // from 8 input channels per group: with fewer (an RGB input) the GEMMs' depth
        // (channels · kw) is too short to load and store their output kh times
        let rows = g.big[0] == 1 && g.k[0] == 1 && g.small[0] == 1 && g.stride[1] == 1 && g.k[1] > 1 && g.osg() >= 32 && g.cb / g.groups >= 8;
        if !rows {
            return Unfold { cg: g.clone(), blocks: 1, shift: 0, ck: g.ckg(), rs: col_stride(g.ls()), w: std::borrow::Cow::Borrowed(w.unwrap_or(&[])) };
        }
        let (kh, kw, dh) = (g.k[1], g.k[2], g.dil[1]);
        let cg = Geom { small: [1, g.small[1] + (kh - 1) * dh, g.small[2]], k: [1, 1, kw], stride: [1, 1, g.stride[2]], pad: [0, g.pad[1], g.pad[2]], dil: [1, 1, g.dil[2]], ..g.clone() };
        let (cbg, ckg) = (g.cb / g.groups, g.ckg());
        let ck = cbg * kw;
        // block b, row o, column c·kw + e ← w[o, c, b, e]
        let mut wr = Vec::new();
        if let Some(w) = w {
            wr.reserve(kh * g.cs * ck);
            for b in 0..kh {
                for o in 0..g.cs {
                    for c in 0..cbg {
                        wr.extend_from_slice(&w[o * ckg + (c * kh + b) * kw..][..kw]);
                    }
                }
            }
        }
        Unfold { rs: cg.ls(), cg, blocks: kh, shift: dh * g.small[2], ck, w: std::borrow::Cow::Owned(wr) }
    }
    /// the unfolded matrix of all groups
    fn col_len(&self, g: &Geom) -> usize { g.groups * self.ck * self.rs }
    /// weight block b's rows from output channel o
    fn wb(&self, g: &Geom, b: usize, o: usize) -> &[T] { &self.w[(b * g.cs + o) * self.ck..] }
    /// group gi's unfolded matrix from block b's shift
    fn colb<'c>(&self, col: &'c [T], gi: usize, b: usize) -> &'c [T] { &col[gi * self.ck * self.rs + b * self.shift..] }
}

/// small[n] = W · cols(big[n]) (+ bias), then relu when `relu` (bias and relu are applied
/// to each sample while its output is in cache). `w` is (cs, cb/groups, k...).
pub(crate) fn conv_fwd<T: Float>(g: &Geom, x: &[T], w: &[T], bias: Option<&[T]>, relu: bool) -> Vec<T> {
    let (lb, ls, ckg, osg) = (g.lb(), g.ls(), g.ckg(), g.osg());
    let total = g.n * g.cs * ls;
    // written by GEMM without a zero fill first (that was a pass over the whole output)
    let mut out: Vec<T> = Vec::with_capacity(total);
    if total == 0 {
        return out;
    }
    let th = inner_threads(g.n, osg * ckg * ls);
    let u = Unfold::new(g, Some(w));
    let (ck, rs) = (u.ck, u.rs);
    // gemm copies (packs) the unfolded matrix when it computes more than 48 output
    // channels at once; in blocks of at most 32 it reads it where im2col put it
    let ob = if osg > 48 { 32 } else { osg };
    let one = |(col, _): &mut (Vec<T>, Vec<T>), (ni, y): (usize, &mut [MaybeUninit<T>])| {
        im2col(&u.cg, &x[ni * g.cb * lb..(ni + 1) * g.cb * lb], col, rs);
        for gi in 0..g.groups {
            for o0 in (0..osg).step_by(ob) {
                let (o, m) = (gi * osg + o0, ob.min(osg - o0));
                let yo = &mut y[o * ls..];
                gemm_uninit(m, ls, ck, u.wb(g, 0, o), ck, 1, u.colb(col, gi, 0), rs, 1, yo, th);
                // SAFETY: the GEMM above wrote these m·ls values
                let yo = unsafe { &mut *(&mut yo[..m * ls] as *mut [MaybeUninit<T>] as *mut [T]) };
                for b in 1..u.blocks {
                    gemm_acc_ld(m, ls, ck, u.wb(g, b, o), ck, 1, u.colb(col, gi, b), rs, 1, yo, ls, th);
                }
            }
        }
        // SAFETY: the groups' GEMMs wrote all cs·ls values of this sample
        let y = unsafe { &mut *(y as *mut [MaybeUninit<T>] as *mut [T]) };
        for (o, row) in y.chunks_exact_mut(ls).enumerate() {
            let b = bias.map_or(T::zero(), |b| b[o]);
            match (bias.is_some(), relu) {
                (true, false) => row.iter_mut().for_each(|v| *v += b),
                (_, true) => row.iter_mut().for_each(|v| *v = UnaryOp::Relu.fwd(*v + b)),
                (false, false) => {}
            }
        }
    };
    per_sample(&mut out.spare_capacity_mut()[..total], g.cs * ls, g.n, th, u.col_len(g), 0, one);
    // SAFETY: the n samples' chunks cover all `total` values, each written above
    unsafe { out.set_len(total) };
    out
}

/// Run `one(scratch, (sample, its chunk of out))` over the batch: on rayon's threads in
/// contiguous runs of samples, one pair of scratch buffers (`colsize` and `extra` values)
/// per run, or in order when GEMM has the threads (`th` > 1).
#[allow(clippy::too_many_arguments)]
fn per_sample<T: Float>(
    out: &mut [MaybeUninit<T>], chunk: usize, n: usize, th: usize, colsize: usize, extra: usize,
    one: impl Fn(&mut (Vec<T>, Vec<T>), (usize, &mut [MaybeUninit<T>])) + Sync + Send,
) {
    let runs = rayon::current_num_threads().min(n).max(1);
    let scratch = || (vec![T::zero(); colsize], vec![T::zero(); extra]);
    if th > 1 || runs == 1 {
        let mut sc = scratch();
        out.chunks_exact_mut(chunk).enumerate().for_each(|p| one(&mut sc, p));
        return;
    }
    let per = n.div_ceil(runs);
    out.par_chunks_mut(per * chunk).enumerate().for_each(|(ri, part)| {
        let mut sc = scratch();
        part.chunks_exact_mut(chunk).enumerate().for_each(|(i, c)| one(&mut sc, (ri * per + i, c)));
    });
}

/// big[n] = col2im(Wᵀ · small[n]): the gradient of `conv_fwd` with respect to its input.
pub(crate) fn conv_bwd_data<T: Float>(g: &Geom, dy: &[T], w: &[T]) -> Vec<T> {
    let (lb, ls, ckg, osg) = (g.lb(), g.ls(), g.ckg(), g.osg());
    let total = g.n * g.cb * lb;
    // each sample's gradient is zeroed just before col2im adds into it, while it is in
    // cache, not in a pass of its own over the whole gradient first
    let mut out: Vec<T> = Vec::with_capacity(total);
    if total == 0 {
        return out;
    }
    let th = inner_threads(g.n, osg * ckg * ls);
    let u = Unfold::new(g, Some(w));
    let (ck, rs, lsu) = (u.ck, u.rs, u.cg.ls());
    let rsd = col_stride(ls);
    let one = |(col, dyp): &mut (Vec<T>, Vec<T>), (ni, dx): (usize, &mut [MaybeUninit<T>])| {
        let d = &dy[ni * g.cs * ls..(ni + 1) * g.cs * ls];
        for gi in 0..g.groups {
            // this group's dy with rows rsd apart, read in place by every GEMM below
            for (dst, src) in dyp.chunks_exact_mut(rsd).zip(d[gi * osg * ls..(gi + 1) * osg * ls].chunks_exact(ls)) {
                dst[..ls].copy_from_slice(src);
            }
            let cg = &mut col[gi * ck * rs..];
            // Wᵀ of block b: (ck × osg), element (r, o) at wb[o·ck + r]
            let wt = |b: usize| u.wb(g, b, gi * osg);
            // Wᵀ · dy, the unfolded input gradient (or block 0's part of it)
            gemm_row_blocks(ck, ls, osg, wt(0), 1, ck, dyp, rsd, 1, cg, rs, false, th);
            // the row unfold: block b adds into the columns from b·shift on, so those
            // block 0 did not write start at zero
            if u.blocks > 1 {
                for row in cg.chunks_mut(rs).take(ck) {
                    row[ls..lsu].fill(T::zero());
                }
            }
            for b in 1..u.blocks {
                gemm_row_blocks(ck, ls, osg, wt(b), 1, ck, dyp, rsd, 1, &mut cg[b * u.shift..], rs, true, th);
            }
        }
        col2im(&u.cg, col, zeroed(dx), rs);
    };
    per_sample(&mut out.spare_capacity_mut()[..total], g.cb * lb, g.n, th, u.col_len(g), osg * rsd, one);
    // SAFETY: the n samples' chunks cover all `total` values, each zeroed above
    unsafe { out.set_len(total) };
    out
}

/// `C (m × n, rows ldc apart) [+]= A · B` in blocks of at most 48 rows of C, so that gemm
/// reads B where it lies instead of packing it for every call (it packs the operand read
/// across its row panels once more than 48 rows are computed at a time).
#[allow(clippy::too_many_arguments)]
fn gemm_row_blocks<T: Float>(
    m: usize, n: usize, k: usize,
    a: &[T], a_rs: usize, a_cs: usize,
    b: &[T], b_rs: usize, b_cs: usize,
    c: &mut [T], ldc: usize, accumulate: bool, th: usize,
) {
    const ROWS: usize = 48;
    for r0 in (0..m).step_by(ROWS) {
        let cr = &mut c[r0 * ldc..];
        // SAFETY: c is initialised (read only when accumulating)
        unsafe { gemm_raw(ROWS.min(m - r0), n, k, &a[r0 * a_rs..], a_rs, a_cs, b, b_rs, b_cs, cr.as_mut_ptr(), ldc, cr.len(), accumulate, th) }
    }
}

/// `dst (cols × rows) = srcᵀ` for `src` (rows × cols): 16 source rows at a time, each
/// destination row's 16 values written together (16 read streams, whole-line writes).
fn transpose_into<T: Copy>(src: &[T], rows: usize, cols: usize, dst: &mut [T]) {
    const B: usize = 16;
    let full = rows / B * B;
    for r0 in (0..full).step_by(B) {
        let s: [&[T]; B] = std::array::from_fn(|i| &src[(r0 + i) * cols..][..cols]);
        for c in 0..cols {
            let d: &mut [T; B] = (&mut dst[c * rows + r0..][..B]).try_into().expect("B values");
            for (i, v) in d.iter_mut().enumerate() {
                *v = s[i][c];
            }
        }
    }
    for r in full..rows {
        for c in 0..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

/// Fill `s` with zeros and view it as initialised.
fn zeroed<T: Float>(s: &mut [MaybeUninit<T>]) -> &mut [T] {
    s.iter_mut().for_each(|v| {
        v.write(T::zero());
    });
    // SAFETY: every element was written just above
    unsafe { &mut *(s as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// dW = Σₙ small[n] · cols(big[n])ᵀ and, with `bias`, db = Σ over batch and space of
/// small (summed while each sample's gradient is in cache, not in a pass of its own);
/// summed over the batch in a fixed order of chunks (so the result does not depend on
/// how rayon schedules them).
pub(crate) fn conv_bwd_filter<T: Float>(g: &Geom, x: &[T], dy: &[T], bias: bool) -> (Vec<T>, Option<Vec<T>>) {
    let (lb, ls, ckg, osg) = (g.lb(), g.ls(), g.ckg(), g.osg());
    let wsize = g.cs * ckg;
    let nb = if bias { g.cs } else { 0 };
    if g.n == 0 || wsize == 0 {
        return (vec![T::zero(); wsize], bias.then(|| vec![T::zero(); nb]));
    }
    let chunks = rayon::current_num_threads().min(g.n).max(1);
    let th = inner_threads(g.n, osg * ckg * ls);
    let per = g.n.div_ceil(chunks);
    // the unfolding only: the weight is not read
    let u = Unfold::<T>::new(g, None);
    let (ck, rs) = (u.ck, u.rs);
    // One chunk's dW (or dWᵀ, per group and block ck × osg) followed by its db. Both
    // operands have the contracted (spatial) index contiguous, so gemm must pack one of
    // them read across; as dWᵀ = cols · dyᵀ that one is dy (osg × ls), not the unfolded
    // matrix (ck × ls, 1.5 to 9 times larger in W9). Only with at least 32 output channels
    // per group: gemm's row panels are 16 to 64 rows of the packed operand, which a
    // handful of channels (LeNet's 6) would leave mostly empty.
    let transposed = osg >= 32;
    let part = |ci: usize| -> Vec<T> {
        let mut acc = vec![T::zero(); wsize + nb];
        let (dw, db) = acc.split_at_mut(wsize);
        let mut col = vec![T::zero(); u.col_len(g)];
        let mut dyt = vec![T::zero(); if transposed { osg * ls } else { 0 }];
        for ni in ci * per..((ci + 1) * per).min(g.n) {
            im2col(&u.cg, &x[ni * g.cb * lb..(ni + 1) * g.cb * lb], &mut col, rs);
            let d = &dy[ni * g.cs * ls..(ni + 1) * g.cs * ls];
            for gi in 0..g.groups {
                let dg = &d[gi * osg * ls..];
                if transposed {
                    // dyᵀ of group gi (ls × osg) once per sample, read in place by every
                    // GEMM below: in blocks of at most 48 rows of dWᵀ gemm does not pack it
                    transpose_into(&dg[..osg * ls], osg, ls, &mut dyt);
                }
                for b in 0..u.blocks {
                    let cg = u.colb(&col, gi, b);
                    let out = &mut dw[(gi * u.blocks + b) * osg * ck..];
                    if transposed {
                        gemm_row_blocks(ck, osg, ls, cg, rs, 1, &dyt, osg, 1, out, osg, true, th);
                    } else {
                        // colᵀ of group gi: (ls × ck), element (l, r) at col[r·rs + l]
                        gemm_strided(osg, ck, ls, dg, ls, 1, cg, 1, rs, out, true, th);
                    }
                }
            }
            for (b, row) in db.iter_mut().zip(d.chunks_exact(ls.max(1))) {
                *b += super::reduce::sum_lanes(row, |v| v);
            }
        }
        acc
    };
    let parts: Vec<Vec<T>> = if th > 1 || chunks == 1 { (0..chunks).map(part).collect() } else { (0..chunks).into_par_iter().map(part).collect() };
    let mut it = parts.into_iter();
    let mut acc = it.next().unwrap_or_else(|| vec![T::zero(); wsize + nb]);
    for p in it {
        acc.iter_mut().zip(p).for_each(|(a, v)| *a += v);
    }
    let db = bias.then(|| acc.split_off(wsize));
    if !transposed {
        return (acc, db);
    }
    // each group's and block's dWᵀ (ck × osg) back to the weight's (osg × ckg): row
    // c·kwc + e of block b is the weight's column (c·blocks + b)·kwc + e
    let kwc = ck / (g.cb / g.groups);
    let mut dw = vec![T::zero(); wsize];
    for (gb, t) in acc.chunks_exact(osg * ck).enumerate() {
        let (gi, b) = (gb / u.blocks, gb % u.blocks);
        let w = &mut dw[gi * osg * ckg..(gi + 1) * osg * ckg];
        for (r, row) in t.chunks_exact(osg).enumerate() {
            let col = ((r / kwc) * u.blocks + b) * kwc + r % kwc;
            for (o, &v) in row.iter().enumerate() {
                w[o * ckg + col] = v;
            }
        }
    }
    (dw, db)
}

/// Σ over batch and space of `dy` (n, c, l): the bias gradient.
fn bias_grad<T: Float>(dy: &[T], n: usize, c: usize, l: usize) -> Vec<T> {
    let mut db = vec![T::zero(); c];
    for ni in 0..n {
        for (ci, d) in db.iter_mut().enumerate() {
            *d += super::reduce::sum_lanes(&dy[(ni * c + ci) * l..][..l], |v| v);
        }
    }
    db
}

fn vec_tensor<T: Float>(v: Vec<T>, shape: &[usize]) -> Tensor { Tensor::from_cpu(T::vec_into(v), shape) }

/// Common checks; returns the operands promoted to one dtype and made contiguous.
fn prepare(x: &Tensor, w: &Tensor, b: Option<&Tensor>, what: &str) -> Result<(Tensor, Tensor, Option<Tensor>, DType)> {
    let nd = w.ndim();
    if !(3..=5).contains(&nd) {
        return Err(shape_err!("{what} weight must have 3 to 5 dimensions (out, in, k...), got shape {:?}", w.shape()));
    }
    if x.ndim() != nd {
        return Err(shape_err!(
            "{what} with a {}-d kernel expects a {}-d input (batch, channels, spatial...), got shape {:?}",
            nd - 2, nd, x.shape()
        ));
    }
    let dt = DType::promote(x.dtype(), w.dtype());
    let x = x.cast(dt)?.contiguous()?;
    let w = w.cast(dt)?.contiguous()?;
    let b = b.map(|b| b.cast(dt).and_then(|b| b.contiguous())).transpose()?;
    Ok((x, w, b, dt))
}

#[derive(Debug)]
struct ConvBackward {
    x: Tensor,
    w: Tensor,
    g: Geom,
    transposed: bool,
    /// the output, when a relu was fused into the forward (its derivative is read off it)
    relu_y: Option<Tensor>,
}

impl Backward for ConvBackward {
    fn backward(&self, gy: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        if self.x.device() != Device::Cpu {
            return device::backward(self, gy, needs);
        }
        let g = &self.g;
        let gy = gy.cast(self.x.dtype())?.contiguous()?;
        crate::dispatch!(self.x.dtype(), T => {
            let (xs, ws) = (self.x.as_slice::<T>()?, self.w.as_slice::<T>()?);
            let masked: Vec<T>;
            let d = match &self.relu_y {
                Some(y) => {
                    masked = gy.as_slice::<T>()?.iter().zip(y.as_slice::<T>()?).map(|(&g, &y)| g * UnaryOp::Relu.deriv(y, y)).collect();
                    &masked[..]
                }
                None => gy.as_slice::<T>()?,
            };
            // conv: x is big, y small. transposed: x is small, y big.
            let need_b = needs.get(2).copied().unwrap_or(false);
            let (dx, dw, db) = if !self.transposed {
                let (dw, db) = if needs[1] {
                    let (dw, db) = conv_bwd_filter(g, xs, d, need_b);
                    (Some(dw), db)
                } else {
                    (None, need_b.then(|| bias_grad(d, g.n, g.cs, g.ls())))
                };
                (
                    needs[0].then(|| vec_tensor(conv_bwd_data(g, d, ws), self.x.shape())),
                    dw.map(|v| vec_tensor(v, self.w.shape())),
                    db.map(|v| vec_tensor(v, &[g.cs])),
                )
            } else {
                (
                    needs[0].then(|| vec_tensor(conv_fwd(g, d, ws, None, false), self.x.shape())),
                    needs[1].then(|| vec_tensor(conv_bwd_filter(g, d, xs, false).0, self.w.shape())),
                    need_b.then(|| vec_tensor(bias_grad(d, g.n, g.cb, g.lb()), &[g.cb])),
                )
            };
            let mut out = vec![dx, dw];
            if needs.len() > 2 {
                out.push(db);
            }
            Ok(out)
        })
    }
}

fn record_conv(x: &Tensor, w: &Tensor, b: Option<&Tensor>, out: &Tensor, g: Geom, transposed: bool, relu: bool) {
    let mut ins = vec![x, w];
    if let Some(b) = b {
        ins.push(b);
    }
    let relu_y = relu.then(|| out.clone());
    record(&ins, out, || Op::Custom(Box::new(ConvBackward { x: x.clone(), w: w.clone(), g, transposed, relu_y })));
}

/// Cross-correlation (PyTorch's `conv1d/2d/3d`): `x` (N, C_in, spatial...), `w` (C_out,
/// C_in / groups, k...), optional bias (C_out,). Output spatial length per dimension:
/// `(n + pad_lo + pad_hi − dilation·(k − 1) − 1) ÷ stride + 1`.
///
/// ```
/// use flux_core::{Tensor, tensor::conv::{conv, ConvSpec}};
/// let x = Tensor::ones(&[1, 1, 4, 4], flux_core::DType::F32);
/// let w = Tensor::ones(&[2, 1, 3, 3], flux_core::DType::F32);
/// let y = conv(&x, &w, None, &ConvSpec::new(2).with_pad(1)).unwrap();
/// assert_eq!(y.shape(), &[1, 2, 4, 4]);
/// assert_eq!(y.to_vec_f64().unwrap()[5], 9.0);
/// ```
/// Check that the output of shape `oshape` and the largest column buffer (a kernel's
/// worth of input per output position) can be allocated, before either is made.
fn reserve_conv(oshape: &[usize], ws: &[usize], dt: DType) -> Result<()> {
    super::alloc::reserve(oshape, dt)?;
    let col = [&ws[1..], &oshape[2..]].concat();
    super::alloc::reserve(&col, dt)?;
    Ok(())
}

/// Cross-correlation of `x` (N, C, spatial...) with `w` (O, C/groups, k...), plus `b` (O,), as PyTorch's `conv2d`.
///
/// ```
/// use flux_core::{DType, Tensor, tensor::conv::{conv, ConvSpec}};
/// let y = conv(&Tensor::ones(&[1, 1, 4, 4], DType::F32), &Tensor::ones(&[1, 1, 3, 3], DType::F32), None, &ConvSpec::new(2)).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![9.0; 4]);
/// ```
pub fn conv(x: &Tensor, w: &Tensor, b: Option<&Tensor>, spec: &ConvSpec) -> Result<Tensor> { conv_impl(x, w, b, spec, false) }

/// `relu(conv(x, w, b))` as one op: the relu is applied to each sample's output while
/// it is in cache, and the backward masks the gradient with the saved output (one pass
/// over the activations and one tape node fewer than [`conv`] then `relu`).
///
/// ```
/// use flux_core::{DType, Tensor, tensor::conv::{conv_relu, ConvSpec}};
/// let x = Tensor::from_vec(vec![1.0f32, -2.0, 3.0], &[1, 1, 3]).unwrap();
/// let y = conv_relu(&x, &Tensor::ones(&[1, 1, 1], DType::F32), None, &ConvSpec::new(1)).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![1.0, 0.0, 3.0]);
/// ```
pub fn conv_relu(x: &Tensor, w: &Tensor, b: Option<&Tensor>, spec: &ConvSpec) -> Result<Tensor> { conv_impl(x, w, b, spec, true) }

fn conv_impl(x: &Tensor, w: &Tensor, b: Option<&Tensor>, spec: &ConvSpec, relu: bool) -> Result<Tensor> {
    let (xc, wc, bc, dt) = prepare(x, w, b, "conv")?;
    let ns = wc.ndim() - 2;
    spec.check(ns)?;
    let (xs, ws) = (xc.shape(), wc.shape());
    let (cout, cin_g) = (ws[0], ws[1]);
    let groups = spec.groups;
    if xs[1] != cin_g * groups || cout % groups != 0 {
        return Err(shape_err!(
            "conv: weight {:?} with groups={} expects {} input channels (and out channels divisible by groups), got input of shape {:?}",
            ws, groups, cin_g * groups, xs
        ));
    }
    let mut small = Vec::with_capacity(ns);
    for i in 0..ns {
        let o = conv_out_len(xs[2 + i], ws[2 + i], spec.stride[i], spec.pad_lo[i], spec.pad_hi[i], spec.dilation[i]).ok_or_else(|| {
            shape_err!(
                "conv: kernel {:?} (dilation {:?}) does not fit the padded input of spatial shape {:?} (padding {:?}/{:?})",
                &ws[2..], spec.dilation, &xs[2..], spec.pad_lo, spec.pad_hi
            )
        })?;
        small.push(o);
    }
    if let Some(b) = &bc {
        if b.shape() != [cout] {
            return Err(shape_err!("conv: bias must have shape ({cout},), got {:?}", b.shape()));
        }
    }
    let g = Geom {
        n: xs[0], cb: xs[1], cs: cout, groups,
        big: pad3(&xs[2..], 1), small: pad3(&small, 1), k: pad3(&ws[2..], 1),
        stride: pad3(&spec.stride, 1), pad: pad3(&spec.pad_lo, 0), dil: pad3(&spec.dilation, 1),
    };
    let mut oshape = vec![xs[0], cout];
    oshape.extend(&small);
    if xc.device() != Device::Cpu {
        let out = device::conv(&xc, &wc, bc.as_ref(), &g, relu, &oshape)?;
        record_conv(&xc, &wc, bc.as_ref(), &out, g, false, relu);
        return Ok(out);
    }
    reserve_conv(&oshape, ws, dt)?;
    let out = crate::dispatch!(dt, T => {
        let bs = match &bc { Some(b) => Some(b.as_slice::<T>()?), None => None };
        vec_tensor(conv_fwd(&g, xc.as_slice::<T>()?, wc.as_slice::<T>()?, bs, relu), &oshape)
    });
    record_conv(&xc, &wc, bc.as_ref(), &out, g, false, relu);
    Ok(out)
}

/// Transposed convolution (PyTorch's `conv_transpose*d`, the adjoint of [`conv`] with the
/// same weight): `x` (N, C_in, spatial...), `w` (C_in, C_out / groups, k...). Output
/// length per dimension: `(n − 1)·stride + dilation·(k − 1) + 1 − pad_lo − pad_hi + out_pad`.
///
/// ```
/// use flux_core::{Tensor, DType, tensor::conv::{conv_transpose, ConvSpec}};
/// let x = Tensor::ones(&[1, 1, 2, 2], DType::F64);
/// let w = Tensor::ones(&[1, 3, 2, 2], DType::F64);
/// let y = conv_transpose(&x, &w, None, &ConvSpec::new(2).with_stride(2), &[0, 0]).unwrap();
/// assert_eq!(y.shape(), &[1, 3, 4, 4]);
/// ```
pub fn conv_transpose(x: &Tensor, w: &Tensor, b: Option<&Tensor>, spec: &ConvSpec, out_pad: &[usize]) -> Result<Tensor> {
    let (xc, wc, bc, dt) = prepare(x, w, b, "conv_transpose")?;
    let ns = wc.ndim() - 2;
    spec.check(ns)?;
    if out_pad.len() != ns {
        return Err(value_err!("conv_transpose: out_pad needs {ns} entries, got {:?}", out_pad));
    }
    let (xs, ws) = (xc.shape(), wc.shape());
    let groups = spec.groups;
    let (cin, cout) = (ws[0], ws[1] * groups);
    if xs[1] != cin || cin % groups != 0 {
        return Err(shape_err!(
            "conv_transpose: weight {:?} expects {} input channels (divisible by groups={}), got input of shape {:?}",
            ws, cin, groups, xs
        ));
    }
    let mut big = Vec::with_capacity(ns);
    for i in 0..ns {
        let full = (xs[2 + i].max(1) - 1)
            .checked_mul(spec.stride[i])
            .and_then(|a| a.checked_add(spec.dilation[i].checked_mul(ws[2 + i].max(1) - 1)?))
            .and_then(|a| a.checked_add(1 + out_pad[i]))
            .ok_or_else(|| value_err!("conv_transpose: stride {:?} and dilation {:?} give an output too large to count", spec.stride, spec.dilation))?;
        let cut = spec.pad_lo[i].saturating_add(spec.pad_hi[i]);
        if full <= cut || xs[2 + i] == 0 || out_pad[i] >= spec.stride[i].max(spec.dilation[i]) {
            return Err(shape_err!(
                "conv_transpose: input of spatial shape {:?} with kernel {:?}, stride {:?}, padding {:?}/{:?}, out_pad {:?} gives no valid output",
                &xs[2..], &ws[2..], spec.stride, spec.pad_lo, spec.pad_hi, out_pad
            ));
        }
        big.push(full - cut);
    }
    if let Some(b) = &bc {
        if b.shape() != [cout] {
            return Err(shape_err!("conv_transpose: bias must have shape ({cout},), got {:?}", b.shape()));
        }
    }
    let g = Geom {
        n: xs[0], cb: cout, cs: cin, groups,
        big: pad3(&big, 1), small: pad3(&xs[2..], 1), k: pad3(&ws[2..], 1),
        stride: pad3(&spec.stride, 1), pad: pad3(&spec.pad_lo, 0), dil: pad3(&spec.dilation, 1),
    };
    let mut oshape = vec![xs[0], cout];
    oshape.extend(&big);
    if xc.device() != Device::Cpu {
        let out = device::conv_transpose(&xc, &wc, bc.as_ref(), &g, &oshape)?;
        record_conv(&xc, &wc, bc.as_ref(), &out, g, true, false);
        return Ok(out);
    }
    reserve_conv(&oshape, ws, dt)?;
    let out = crate::dispatch!(dt, T => {
        let mut y = conv_bwd_data(&g, xc.as_slice::<T>()?, wc.as_slice::<T>()?);
        if let Some(b) = &bc {
            let bs = b.as_slice::<T>()?;
            let lb = g.lb();
            for (i, row) in y.chunks_exact_mut(lb.max(1)).enumerate() {
                let bv = bs[i % cout];
                row.iter_mut().for_each(|v| *v += bv);
            }
        }
        vec_tensor(y, &oshape)
    });
    record_conv(&xc, &wc, bc.as_ref(), &out, g, true, false);
    Ok(out)
}
