//! Matrix products through the `gemm` crate. Operands are read through their strides,
//! so a transposed view costs no copy; batch dimensions broadcast as in numpy.
use super::layout::broadcast_shapes;
use super::{DType, Float, Tensor};
use crate::autodiff::{record, Op};
use crate::error::{shape_err, Result};

/// Work (m·n·k) above which gemm runs on rayon's threads.
const PAR_FLOPS: usize = 1 << 18;

/// `C[m,n] = A[m,k] · B[k,n]` for one matrix each, read through element strides.
#[allow(clippy::too_many_arguments)]
fn gemm_one<T: Float>(
    m: usize, n: usize, k: usize,
    a: *const T, a_rs: isize, a_cs: isize,
    b: *const T, b_rs: isize, b_cs: isize,
    c: *mut T,
) {
    let par = if m * n * k >= PAR_FLOPS && rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the pointers cover m×k, k×n and m×n elements at the given strides, checked
    // by the callers from the tensors' layouts; `c` is a fresh buffer nothing else reads.
    unsafe {
        gemm::gemm(
            m, n, k,
            c, 1, n as isize, false,
            a, a_cs, a_rs,
            b, b_cs, b_rs,
            T::zero(), T::one(),
            false, false, false,
            par,
        );
    }
}

/// Batched product of `a` (..., m, k) and `b` (..., k, n), both ≥ 2-D and of one dtype.
fn bmm<T: Float>(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (sa, sb) = (a.shape(), b.shape());
    let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (k2, n) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    if k != k2 {
        return Err(shape_err!("matmul: shapes {:?} and {:?} do not fit (inner dimensions {} and {})", sa, sb, k, k2));
    }
    let batch = broadcast_shapes(&sa[..sa.len() - 2], &sb[..sb.len() - 2])?;
    let mut oshape = batch.clone();
    oshape.extend([m, n]);
    let nb: usize = batch.iter().product();
    let mut out = vec![T::zero(); nb * m * n];
    let la = a.layout().broadcast_to(&[batch.as_slice(), &[m, k]].concat())?;
    let lb = b.layout().broadcast_to(&[batch.as_slice(), &[k, n]].concat())?;
    let (ra, rb) = (a.raw::<T>()?, b.raw::<T>()?);
    let nd = batch.len();
    let (a_rs, a_cs) = (la.strides[nd] as isize, la.strides[nd + 1] as isize);
    let (b_rs, b_cs) = (lb.strides[nd] as isize, lb.strides[nd + 1] as isize);
    if m * n == 0 {
        return Ok(Tensor::from_cpu(T::vec_into(out), &oshape));
    }
    let mut bi = 0;
    super::layout::for_each_offset2(&batch, &la.strides[..nd], la.offset, &lb.strides[..nd], lb.offset, |_, oa, ob| {
        let c = out[bi * m * n..].as_mut_ptr();
        if k == 0 {
            bi += 1;
            return;
        }
        // SAFETY (pointer arithmetic): offsets come from layouts validated against the storage.
        gemm_one(m, n, k, ra[oa..].as_ptr(), a_rs, a_cs, rb[ob..].as_ptr(), b_rs, b_cs, c);
        bi += 1;
    });
    Ok(Tensor::from_cpu(T::vec_into(out), &oshape))
}

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
        let out = crate::dispatch!(dt, T => bmm::<T>(&a, &b)?);
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
