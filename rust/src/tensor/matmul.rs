//! Matrix products through the `gemm` crate. Operands are read through their strides,
//! so a transposed view costs no copy; batch dimensions broadcast as in numpy.
use super::layout::{broadcast_shapes, Layout};
use super::{DType, Float, Tensor};
use crate::backend::MatmulDims;
use crate::autodiff::{record, Op};
use crate::error::{shape_err, Result};

/// Work (m·n·k) above which gemm runs on rayon's threads.
const PAR_FLOPS: usize = 1 << 18;
/// Work (m·n·k) up to which a plain loop beats gemm's packing and dispatch (about a
/// microsecond a call): the products of tiny layers and batch-1 steps.
const SMALL_FLOPS: usize = 4096;

/// A 2-D operand read in place: the whole buffer, the offset of element (0, 0), and
/// the row and column strides in elements (a transposed view just swaps them).
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    /// The buffer.
    pub data: &'a [T],
    /// Offset of element (0, 0).
    pub off: usize,
    /// Row stride.
    pub rs: isize,
    /// Column stride.
    pub cs: isize,
}

impl<'a, T: Float> Mat<'a, T> {
    /// The operand of a 2-D tensor (any strides), or its transpose.
    pub(crate) fn of(t: &'a Tensor, transpose: bool) -> Result<Mat<'a, T>> {
        let l = t.layout();
        let (rs, cs) = (l.strides[0] as isize, l.strides[1] as isize);
        let (rs, cs) = if transpose { (cs, rs) } else { (rs, cs) };
        Ok(Mat { data: t.raw::<T>()?, off: l.offset, rs, cs })
    }
    pub(crate) fn t(self) -> Mat<'a, T> { Mat { rs: self.cs, cs: self.rs, ..self } }
}

/// Run one small product now, so that the `gemm` crate's lazily detected cache and CPU
/// parameters (about 1 ms on first use) are not paid by the first training step. The
/// Python module calls this at import.
///
/// ```
/// flux_core::tensor::matmul::prepare();
/// // the first product after it pays no set-up
/// let a = flux_core::Tensor::ones(&[64, 64], flux_core::DType::F32);
/// assert_eq!(a.matmul(&a).unwrap().to_vec_f64().unwrap()[0], 64.0);
/// ```
pub fn prepare() {
    // one product below the parallel threshold and two above it: these start the pool's
    // workers on gemm too, whose per-thread packing buffers are made (and their pages
    // first touched) on first use: 1–1.5 ms of a first training step otherwise
    for n in [32, 128, 512] {
        let a = vec![0f32; n * n];
        let m = Mat { data: &a, off: 0, rs: n as isize, cs: 1 };
        let c = gemm_new(n, n, n, m, m);
        debug_assert!(c.iter().all(|&v| v == 0.0));
    }
}

/// `C[m,n] (+)= A[m,k] · B[k,n]` into a contiguous row-major `c`; with `accumulate` the
/// product is added to what `c` holds (a bias written there first, say).
pub(crate) fn gemm_into<T: Float>(m: usize, n: usize, k: usize, a: Mat<'_, T>, b: Mat<'_, T>, c: &mut [T], accumulate: bool) {
    gemm_into_ld(m, n, k, a, b, c, n, accumulate)
}

/// [`gemm_into`] with rows of `c` `ldc` elements apart: the product lands in a column
/// block of a wider row-major matrix (one head's slice of attention's output, say).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_into_ld<T: Float>(m: usize, n: usize, k: usize, a: Mat<'_, T>, b: Mat<'_, T>, c: &mut [T], ldc: usize, accumulate: bool) {
    assert!(ldc >= n && (m == 0 || c.len() >= (m - 1) * ldc + n), "gemm_into: output too small");
    // SAFETY: `c` is an exclusive borrow that holds every element (i, j) < (m, n) at i·ldc + j.
    unsafe { gemm_ptr(m, n, k, a, b, c.as_mut_ptr(), ldc, accumulate, T::one()) }
}

/// `C = s·A·B` into rows `ldc` apart, the scale applied inside the product (attention's
/// 1/√d on its scores and their gradients: no separate pass over the result).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_scaled_ld<T: Float>(m: usize, n: usize, k: usize, a: Mat<'_, T>, b: Mat<'_, T>, c: &mut [T], ldc: usize, s: T) {
    assert!(ldc >= n && (m == 0 || c.len() >= (m - 1) * ldc + n), "gemm_into: output too small");
    // SAFETY: as in `gemm_into_ld`.
    unsafe { gemm_ptr(m, n, k, a, b, c.as_mut_ptr(), ldc, false, s) }
}

/// `A[m,k] · B[k,n]` as a new row-major vector, written once (no zero-fill first).
pub(crate) fn gemm_new<T: Float>(m: usize, n: usize, k: usize, a: Mat<'_, T>, b: Mat<'_, T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(m * n);
    // SAFETY: the capacity holds m×n elements; without `accumulate` every one of them is
    // written and none is read, so the vector is initialised when its length is set.
    unsafe {
        gemm_ptr(m, n, k, a, b, out.as_mut_ptr(), n, false, T::one());
        out.set_len(m * n);
    }
    out
}

/// The product times `scale` into `c`, whose element (i, j) is at `c + i·ldc + j` and
/// writable (initialised when `accumulate`, since it is then read).
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_ptr<T: Float>(m: usize, n: usize, k: usize, a: Mat<'_, T>, b: Mat<'_, T>, c: *mut T, ldc: usize, accumulate: bool, scale: T) {
    // SAFETY: the caller's contract (see above): `c` is valid for m×ldc writes
    unsafe {
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            if !accumulate {
                (0..m).for_each(|i| (0..n).for_each(|j| c.add(i * ldc + j).write(T::zero())));
            }
            return;
        }
        // every element the strides reach lies inside the buffers (checked, so that the
        // unchecked reads below are sound whatever a caller passes)
        let last = |x: &Mat<'_, T>, r: usize, q: usize| x.off as isize + (r as isize - 1) * x.rs + (q as isize - 1) * x.cs;
        assert!(a.rs >= 0 && a.cs >= 0 && b.rs >= 0 && b.cs >= 0, "gemm: negative strides");
        assert!((last(&a, m, k) as usize) < a.data.len() && (last(&b, k, n) as usize) < b.data.len(), "gemm: operand out of bounds");
        if m * n * k <= SMALL_FLOPS {
            for i in 0..m {
                for j in 0..n {
                    let mut acc = if accumulate { *c.add(i * ldc + j) } else { T::zero() };
                    let (mut ia, mut ib) = (a.off as isize + i as isize * a.rs, b.off as isize + j as isize * b.cs);
                    for _ in 0..k {
                        acc += a.data[ia as usize] * b.data[ib as usize] * scale;
                        ia += a.cs;
                        ib += b.rs;
                    }
                    c.add(i * ldc + j).write(acc);
                }
            }
            return;
        }
        let threads = if m * n * k >= PAR_FLOPS { rayon::current_num_threads() } else { 1 };
        gemm_threads(m, n, k, a, b, c, ldc, accumulate, scale, threads);
    }
}

/// `C (+)= scale·A·B` through the `gemm` crate on up to `threads` of rayon's pool: the one
/// place the crate is called (matmul, conv and the recurrent layers all come here).
///
/// # Safety
/// Every element the strides of `a` and `b` reach lies inside their buffers, strides are
/// non-negative, and `c` is valid for writes of element (i, j) at `c + i·ldc + j`, (i, j)
/// < (m, n), and initialised if `accumulate`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_threads<T: Float>(m: usize, n: usize, k: usize, a: Mat<'_, T>, b: Mat<'_, T>, c: *mut T, ldc: usize, accumulate: bool, scale: T, threads: usize) {
    // SAFETY: the caller's
    unsafe {
        if threads <= 1 {
            return call_gemm(m, n, k, a, b, c, ldc, accumulate, scale, gemm::Parallelism::None);
        }
        if m * n * k < SPLIT_MIN_FLOPS {
            // as gemm itself would below its threading threshold: splitting 64³ cost 3×
            return call_gemm(m, n, k, a, b, c, ldc, accumulate, scale, gemm::Parallelism::None);
        }
        crate::parallel::warm();
        if threads <= SPLIT_MAX_THREADS {
            split_gemm(m, n, k, a, b, c, ldc, accumulate, scale, threads)
        } else {
            call_gemm(m, n, k, a, b, c, ldc, accumulate, scale, gemm::Parallelism::Rayon(threads))
        }
    }
}

/// Thread counts up to which a product is split into one block of C per thread (see
/// [`split_gemm`]); above it gemm's own parallel loop, which packs each panel of the
/// shared operand once for all threads, is kept (only 2 threads were measured).
const SPLIT_MAX_THREADS: usize = 4;

/// Work (m·n·k) below which a product runs on one thread whatever `threads` says: the
/// `gemm` crate's own threading threshold for f32 and f64 (48·48·256).
const SPLIT_MIN_FLOPS: usize = 48 * 48 * 256;

/// A pointer into C handed to the pool's threads: each writes its own block of it.
#[derive(Clone, Copy)]
struct CPtr<T>(*mut T);
// SAFETY: the blocks the threads write are disjoint (see `split_gemm`).
unsafe impl<T> Send for CPtr<T> {}
unsafe impl<T> Sync for CPtr<T> {}

/// The product in `parts` blocks of C along the longer of m and n (rows at multiples of
/// 8, columns at multiples of 16: whole AVX-512 vectors), each one serial gemm on a
/// thread of the pool. gemm's own rayon loop scaled badly where m or n is not a multiple
/// of its tile, or is narrow (2 threads, GFLOP/s, gemm's loop against the split: n=127
/// 80 against 215, n=200 175 / 300, n=513 265 / 330, 128×10×512 20 / 70; BENCHMARKS.md,
/// "GEMM, session 9") and was within noise of it elsewhere (2048³: 0.98–1.03×). Each
/// block packs the other operand again: a cost of about 1/rows of the block's work.
///
/// # Safety
/// As [`gemm_threads`].
#[allow(clippy::too_many_arguments)]
unsafe fn split_gemm<T: Float>(m: usize, n: usize, k: usize, a: Mat<'_, T>, b: Mat<'_, T>, c: *mut T, ldc: usize, accumulate: bool, scale: T, parts: usize) {
    use rayon::prelude::*;
    let c = CPtr(c);
    let (len, tile) = if m >= n { (m, 8) } else { (n, 16) };
    let step = len.div_ceil(parts).div_ceil(tile) * tile;
    (0..len.div_ceil(step)).into_par_iter().for_each(|i| {
        let (lo, w) = (i * step, step.min(len - i * step));
        // SAFETY: block i is rows (or columns) lo..lo+w of C, disjoint from the others';
        // the operands' sub-blocks lie inside the checked whole
        unsafe {
            let c = c;
            if m >= n {
                let a = Mat { off: a.off + lo * a.rs as usize, ..a };
                call_gemm(w, n, k, a, b, c.0.add(lo * ldc), ldc, accumulate, scale, gemm::Parallelism::None);
            } else {
                let b = Mat { off: b.off + lo * b.cs as usize, ..b };
                call_gemm(m, w, k, a, b, c.0.add(lo), ldc, accumulate, scale, gemm::Parallelism::None);
            }
        }
    });
}

/// The one call of the `gemm` crate: C = (C +) scale·A·B, C row-major with rows `ldc` apart.
///
/// # Safety
/// As [`gemm_threads`].
#[allow(clippy::too_many_arguments)]
unsafe fn call_gemm<T: Float>(m: usize, n: usize, k: usize, a: Mat<'_, T>, b: Mat<'_, T>, c: *mut T, ldc: usize, accumulate: bool, scale: T, par: gemm::Parallelism) {
    // SAFETY: the caller's
    unsafe {
        gemm::gemm(
            m, n, k,
            c, 1, ldc as isize, accumulate,
            a.data.as_ptr().add(a.off), a.cs, a.rs,
            b.data.as_ptr().add(b.off), b.cs, b.rs,
            T::one(), scale,
            false, false, false,
            par,
        );
    }
}

/// Batched product of `a` (..., m, k) and `b` (..., k, n), both ≥ 2-D and of one dtype:
/// the shape checks here, the product by the operands' backend.
fn bmm(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (sa, sb) = (a.shape(), b.shape());
    let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (k2, n) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    if k != k2 {
        return Err(crate::error::Error::mismatch("matmul", sa, sb));
    }
    let batch = broadcast_shapes(&sa[..sa.len() - 2], &sb[..sb.len() - 2])?;
    let mut oshape = batch.clone();
    oshape.extend([m, n]);
    super::alloc::reserve(&oshape, a.dtype())?;
    let la = a.layout().broadcast_to(&[batch.as_slice(), &[m, k]].concat())?;
    let lb = b.layout().broadcast_to(&[batch.as_slice(), &[k, n]].concat())?;
    let dims = MatmulDims { batch: batch.iter().product(), m, n, k };
    Ok(Tensor::from_storage(a.storage().matmul(&la, b.storage(), &lb, dims)?, Layout::contiguous(&oshape)))
}

/// The CPU's batched product over host buffers: `la` and `lb` are broadcast to
/// `(batch…, m, k)` and `(batch…, k, n)`; the result is `(batch…, m, n)` row-major.
pub(crate) fn bmm_strided<T: Float>(ra: &[T], la: &Layout, rb: &[T], lb: &Layout, dims: MatmulDims) -> Vec<T> {
    let MatmulDims { batch: nb, m, n, k } = dims;
    let nd = la.ndim() - 2;
    let (a_rs, a_cs) = (la.strides[nd] as isize, la.strides[nd + 1] as isize);
    let (b_rs, b_cs) = (lb.strides[nd] as isize, lb.strides[nd + 1] as isize);
    if m * n == 0 || nb == 0 {
        return Vec::new();
    }
    if nb == 1 {
        let a = Mat { data: ra, off: la.offset, rs: a_rs, cs: a_cs };
        let b = Mat { data: rb, off: lb.offset, rs: b_rs, cs: b_cs };
        return gemm_new(m, n, k, a, b);
    }
    let mut out = vec![T::zero(); nb * m * n];
    let mut bi = 0;
    super::layout::for_each_offset2(&la.shape[..nd], &la.strides[..nd], la.offset, &lb.strides[..nd], lb.offset, |_, oa, ob| {
        let c = &mut out[bi * m * n..(bi + 1) * m * n];
        let a = Mat { data: ra, off: oa, rs: a_rs, cs: a_cs };
        let b = Mat { data: rb, off: ob, rs: b_rs, cs: b_cs };
        gemm_into(m, n, k, a, b, c, false);
        bi += 1;
    });
    out
}

/// Matrix products (recorded on the tape).
///
/// ```
/// use flux_core::Tensor;
/// let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
/// assert_eq!(a.matmul(&a).unwrap().to_vec_f64().unwrap(), vec![7.0, 10.0, 15.0, 22.0]);
/// ```
impl Tensor {
    /// numpy's `matmul`: 1-D operands are promoted to a row/column and squeezed back.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    /// let v = Tensor::from_vec(vec![1.0f32, 1.0], &[2]).unwrap();
    /// assert_eq!(a.matmul(&v).unwrap().to_vec_f64().unwrap(), vec![3.0, 7.0]);
    /// ```
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        if self.ndim() == 0 || other.ndim() == 0 {
            return Err(shape_err!("matmul needs at least 1-D operands, got shapes {:?} and {:?}", self.shape(), other.shape()));
        }
        let dt = DType::promote(self.dtype(), other.dtype());
        let a = if self.ndim() == 1 { self.reshape(&[1, self.numel()])? } else { self.cast(dt)? };
        let b = if other.ndim() == 1 { other.reshape(&[other.numel(), 1])? } else { other.cast(dt)? };
        let (a, b) = (a.cast(dt)?, b.cast(dt)?);
        let out = bmm(&a, &b)?;
        record(&[&a, &b], &out, || Op::Matmul { a: a.clone(), b: b.clone() });
        let mut s = out.shape().to_vec();
        if other.ndim() == 1 {
            s.pop();
        }
        if self.ndim() == 1 {
            s.remove(s.len() - if other.ndim() == 1 { 1 } else { 2 });
        }
        if s.as_slice() != out.shape() { out.reshape(&s) } else { Ok(out) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The f64 product of the strided operands, element by element.
    fn reference(m: usize, n: usize, k: usize, a: &Mat<'_, f32>, b: &Mat<'_, f32>) -> Vec<f64> {
        let at = |x: &Mat<'_, f32>, i: usize, j: usize| x.data[(x.off as isize + i as isize * x.rs + j as isize * x.cs) as usize] as f64;
        (0..m * n).map(|ij| (0..k).map(|p| at(a, ij / n, p) * at(b, p, ij % n)).sum()).collect()
    }

    #[test]
    fn split_products_match_the_reference_for_any_thread_count() {
        // odd, tile-multiple and narrow shapes, with transposed operands, an offset, rows
        // of C wider than n, a scale and accumulation: every block boundary of the split
        let data: Vec<f32> = (0..300 * 300 + 7).map(|i| ((i * 7919 % 1009) as f32 - 504.0) / 504.0).collect();
        for (m, n, k) in [(127, 127, 127), (200, 96, 131), (9, 300, 250), (260, 10, 300), (128, 128, 128)] {
            for (ta, tb) in [(false, false), (true, false), (false, true)] {
                let a = if ta { Mat { data: &data, off: 7, rs: 1, cs: m as isize } } else { Mat { data: &data, off: 7, rs: k as isize, cs: 1 } };
                let b = if tb { Mat { data: &data, off: 3, rs: 1, cs: k as isize } } else { Mat { data: &data, off: 3, rs: n as isize, cs: 1 } };
                let want = reference(m, n, k, &a, &b);
                let ldc = n + 5;
                for threads in [1, 2, 3, 5] {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let mut c = vec![1.0f32; m * ldc];
                    // SAFETY: the operands are in bounds (checked by the reference's
                    // indexing above) and c holds m rows of ldc initialised values
                    pool.install(|| unsafe { gemm_threads(m, n, k, a, b, c.as_mut_ptr(), ldc, true, 0.5, threads) });
                    for i in 0..m {
                        for j in 0..ldc {
                            let got = c[i * ldc + j] as f64;
                            let exp = if j < n { 1.0 + 0.5 * want[i * n + j] } else { 1.0 };
                            assert!((got - exp).abs() <= 1e-4 * (1.0 + exp.abs()), "{m}×{n}×{k} ta={ta} tb={tb} threads={threads} ({i},{j}): {got} vs {exp}");
                        }
                    }
                }
            }
        }
    }
}
