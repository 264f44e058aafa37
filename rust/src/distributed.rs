//! Data parallelism, the part that is not communication: the tensors of a gradient
//! (or model) tree packed into a few contiguous buckets and unpacked again, so that a
//! message-passing library (MPI, behind `flux_rs.distributed`) reduces a handful of
//! large buffers instead of one small message per tensor. No MPI here: the buckets are
//! plain slices that the caller hands to whatever transport it has.
//!
//! ```
//! use flux_core::{distributed, DType, Tensor};
//! let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
//! let b = Tensor::from_vec(vec![3.0f32, 4.0, 5.0], &[3]).unwrap();
//! let plan = distributed::plan(&[(DType::F32, 2), (DType::F32, 3)], 1 << 20);
//! assert_eq!(plan.len(), 1);
//! let mut buf = vec![0f32; plan[0].len];
//! distributed::pack(&[&a, &b], &mut buf).unwrap();
//! assert_eq!(buf, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
//! buf.iter_mut().for_each(|v| *v *= 2.0); // what a sum over two equal ranks gives
//! let (mut a, mut b) = (a, b);
//! distributed::unpack(&buf, &mut [&mut a, &mut b], 0.5).unwrap();
//! assert_eq!(b.to_vec_f64().unwrap(), vec![3.0, 4.0, 5.0]);
//! ```
use crate::error::{value_err, Result};
use crate::tensor::{DType, Device, Float, Tensor};

/// One bucket of a [`plan`]: tensors `members` (indices into the planned list, in
/// order), all of `dtype`, laid end to end in `len` elements.
///
/// ```
/// use flux_core::{distributed::{plan, Bucket}, DType};
/// let b = plan(&[(DType::F32, 10), (DType::F64, 3), (DType::F32, 5)], 0);
/// assert_eq!(b[0], Bucket { dtype: DType::F32, members: vec![0, 2], len: 15 });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// The dtype every member of the bucket has.
    pub dtype: DType,
    /// The indices of the tensors packed into this bucket, in order.
    pub members: Vec<usize>,
    /// The number of elements the bucket holds.
    pub len: usize,
}

/// Group tensors, given as `(dtype, element count)` in tree order, into buckets of one
/// dtype each holding at most `cap_bytes` (a tensor larger than that gets a bucket of
/// its own; `cap_bytes == 0` means no cap: one bucket per dtype). The order inside a
/// dtype is kept, so every rank that plans the same tree gets the same buckets.
///
/// ```
/// use flux_core::{distributed::plan, DType};
/// let p = plan(&[(DType::F32, 3), (DType::F64, 1), (DType::F32, 2), (DType::F32, 4)], 20);
/// let members: Vec<Vec<usize>> = p.iter().map(|b| b.members.clone()).collect();
/// assert_eq!(members, vec![vec![0, 2], vec![3], vec![1]]); // 5 f32 fit in 20 bytes, 9 do not
/// ```
pub fn plan(items: &[(DType, usize)], cap_bytes: usize) -> Vec<Bucket> {
    let mut dtypes: Vec<DType> = Vec::new();
    for &(d, _) in items {
        if !dtypes.contains(&d) {
            dtypes.push(d);
        }
    }
    let mut out = Vec::new();
    for d in dtypes {
        let cap = if cap_bytes == 0 { usize::MAX } else { (cap_bytes / d.size()).max(1) };
        let mut cur = Bucket { dtype: d, members: vec![], len: 0 };
        for (i, &(_, n)) in items.iter().enumerate().filter(|(_, it)| it.0 == d) {
            if !cur.members.is_empty() && cur.len.saturating_add(n) > cap {
                out.push(std::mem::replace(&mut cur, Bucket { dtype: d, members: vec![], len: 0 }));
            }
            cur.members.push(i);
            cur.len += n;
        }
        if !cur.members.is_empty() {
            out.push(cur);
        }
    }
    out
}

fn check_fill(total: usize, buf: usize, what: &str) -> Result<()> {
    if total != buf {
        return Err(value_err!("{what}: the tensors hold {total} elements but the bucket holds {buf}"));
    }
    Ok(())
}

/// Copy `tensors` (all of dtype `T`) end to end into `out`, whose length must be
/// their total element count. One copy per tensor; strided views are read in
/// row-major order.
///
/// ```
/// use flux_core::{distributed::pack, Tensor};
/// let (a, b) = (Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap(), Tensor::from_vec(vec![3.0f32], &[1]).unwrap());
/// let mut out = vec![0f32; 3];
/// pack(&[&a, &b], &mut out).unwrap();
/// assert_eq!(out, vec![1.0, 2.0, 3.0]);
/// assert!(pack(&[&a], &mut out).is_err()); // 2 elements do not fill 3
/// ```
pub fn pack<T: Float>(tensors: &[&Tensor], out: &mut [T]) -> Result<()> {
    check_fill(tensors.iter().map(|t| t.numel()).sum(), out.len(), "pack")?;
    let mut at = 0;
    for t in tensors {
        if t.dtype() != T::DTYPE {
            return Err(value_err!("pack: a {} tensor in a {} bucket", t.dtype().name(), T::DTYPE.name()));
        }
        // MPI reduces host memory: a device tensor is read back first
        let host;
        let t = if t.device() == Device::Cpu { *t } else { host = t.to_device(Device::Cpu)?; &host };
        let c = t.as_contiguous::<T>()?;
        let n = c.numel();
        out[at..at + n].copy_from_slice(c.as_slice::<T>()?);
        at += n;
    }
    Ok(())
}

/// The inverse of [`pack`]: overwrite each tensor with its part of `src`, times
/// `scale` (`1 / ranks` turns an MPI sum into a mean). Writes in place (copy-on-write:
/// a buffer shared with another tensor is copied first), keeping each tensor's
/// identity.
///
/// ```
/// use flux_core::{distributed::unpack, DType, Tensor};
/// let (mut a, mut b) = (Tensor::zeros(&[2], DType::F32), Tensor::zeros(&[1], DType::F32));
/// // a sum over 2 ranks turned into a mean
/// unpack(&[2.0f32, 4.0, 6.0], &mut [&mut a, &mut b], 0.5).unwrap();
/// assert_eq!((a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap()), (vec![1.0, 2.0], vec![3.0]));
/// ```
pub fn unpack<T: Float>(src: &[T], tensors: &mut [&mut Tensor], scale: f64) -> Result<()> {
    check_fill(tensors.iter().map(|t| t.numel()).sum(), src.len(), "unpack")?;
    let s = T::f(scale);
    let mut at = 0;
    for t in tensors.iter_mut() {
        let n = t.numel();
        let part = &src[at..at + n];
        if t.device() != Device::Cpu {
            // a device tensor gets its part uploaded (assign_ moves it there)
            let v: Vec<T> = if scale == 1.0 { part.to_vec() } else { part.iter().map(|&v| v * s).collect() };
            t.assign_(&Tensor::from_vec(v, t.shape())?)?;
            at += n;
            continue;
        }
        let dst = t.data_mut::<T>()?;
        if scale == 1.0 {
            dst.copy_from_slice(part);
        } else {
            dst.iter_mut().zip(part).for_each(|(d, &v)| *d = v * s);
        }
        at += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t32(v: &[f32]) -> Tensor { Tensor::from_vec(v.to_vec(), &[v.len()]).unwrap() }

    #[test]
    fn plan_cuts_at_the_cap_and_keeps_big_tensors_whole() {
        let p = plan(&[(DType::F64, 10), (DType::F64, 1), (DType::F64, 1)], 16);
        assert_eq!(p.iter().map(|b| (b.members.clone(), b.len)).collect::<Vec<_>>(), vec![(vec![0], 10), (vec![1, 2], 2)]);
        let p = plan(&[(DType::F32, 7), (DType::F32, 9)], 0);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].len, 16);
        assert!(plan(&[], 8).is_empty());
    }

    #[test]
    fn pack_reads_strided_views_and_unpack_scales() {
        let m = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
        let mt = m.permute(&[1, 0]).unwrap(); // [[1, 3], [2, 4]]
        let v = t32(&[5.0]);
        let mut buf = vec![0f32; 5];
        pack(&[&mt, &v], &mut buf).unwrap();
        assert_eq!(buf, vec![1.0, 3.0, 2.0, 4.0, 5.0]);
        let (mut a, mut b) = (mt.clone(), v.clone());
        unpack(&buf, &mut [&mut a, &mut b], 0.5).unwrap();
        assert_eq!(a.to_vec_f64().unwrap(), vec![0.5, 1.5, 1.0, 2.0]);
        assert_eq!(b.to_vec_f64().unwrap(), vec![2.5]);
        // the source of the view kept its values (copy-on-write)
        assert_eq!(m.to_vec_f64().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn sizes_and_dtypes_are_checked() {
        let a = t32(&[1.0, 2.0]);
        assert!(pack(&[&a], &mut [0f32; 3]).is_err());
        assert!(pack(&[&a], &mut [0f64; 2]).is_err());
        let mut b = a.clone();
        assert!(unpack(&[1f32; 1], &mut [&mut b], 1.0).is_err());
    }
}
