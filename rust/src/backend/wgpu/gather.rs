//! Indexing along an axis by an index list (`kernels/gather.wgsl`): index_select
//! (embedding lookups, gathers) and its adjoint scatter_add.
use super::elementwise::{contiguous, family, fill_into, word, WG};
use super::kernel::{groups_1d, launch, Kernel};
use super::pool::GpuBuffer;
use super::transfer::upload_u32;
use crate::error::{shape_err, Result};
use crate::tensor::layout::Layout;

const GATHER: Kernel = family!("gather");

fn indices(idx: &[usize], bound: usize, op: &str) -> Result<GpuBuffer> {
    if let Some(&bad) = idx.iter().find(|&&i| i >= bound) {
        return Err(shape_err!("{}: index {} is out of bounds for an axis of {}", op, bad, bound));
    }
    let v: Vec<u32> = idx.iter().map(|&i| word(i, "an index")).collect::<Result<_>>()?;
    upload_u32(&v)
}

// (outer, rows, inner) of a contiguous array around `axis`
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

/// `x` with the entries `idx` taken along `axis` (repeats allowed): a contiguous
/// buffer of `x`'s shape with `shape[axis] = idx.len()`.
///
/// ```
/// use flux_core::backend::wgpu::{gather::index_select, gpu_available, transfer};
/// use flux_core::tensor::Layout;
/// if gpu_available() {
///     let x = transfer::upload(&[0.0, 1.0, 10.0, 11.0, 20.0, 21.0]).unwrap();
///     let y = index_select(&x, &Layout::contiguous(&[3, 2]), 0, &[2, 0]).unwrap();
///     assert_eq!(transfer::download(&y).unwrap(), vec![20.0, 21.0, 0.0, 1.0]);
/// }
/// ```
pub fn index_select(x: &GpuBuffer, l: &Layout, axis: usize, idx: &[usize]) -> Result<GpuBuffer> {
    if axis >= l.ndim() {
        return Err(shape_err!("index_select: axis {} is out of range for a tensor with {} dimensions", axis, l.ndim()));
    }
    let (outer, rows, inner) = split(&l.shape, axis);
    let ib = indices(idx, rows, "index_select")?;
    let src = if l.is_contiguous() && l.offset == 0 { None } else { Some(contiguous(x, l)?) };
    let n = outer * idx.len() * inner;
    let out = GpuBuffer::new(n)?;
    let w = [word(n, "elements")?, word(outer, "a size")?, word(rows, "a size")?, word(idx.len(), "indices")?, word(inner, "a size")?];
    launch(&GATHER, "index_select", &[], &[src.as_ref().unwrap_or(x), &ib, &out], &w, groups_1d(n, WG))?;
    Ok(out)
}

/// The adjoint of [`index_select`]: zeros of `x`'s shape with `shape[axis] = n`, and
/// entry `j` of `x` along `axis` added into entry `idx[j]` (repeats accumulate).
///
/// ```
/// use flux_core::backend::wgpu::{gather::scatter_add, gpu_available, transfer};
/// use flux_core::tensor::Layout;
/// if gpu_available() {
///     let x = transfer::upload(&[1.0, 2.0, 3.0]).unwrap();
///     let y = scatter_add(&x, &Layout::contiguous(&[3]), 0, &[1, 1, 0], 2).unwrap();
///     assert_eq!(transfer::download(&y).unwrap(), vec![3.0, 3.0]);
/// }
/// ```
pub fn scatter_add(x: &GpuBuffer, l: &Layout, axis: usize, idx: &[usize], n: usize) -> Result<GpuBuffer> {
    if axis >= l.ndim() || l.shape[axis] != idx.len() {
        return Err(shape_err!("scatter_add: {} indices for axis {} of a tensor of shape {:?}", idx.len(), axis, l.shape));
    }
    let (outer, k, inner) = split(&l.shape, axis);
    let ib = indices(idx, n, "scatter_add")?;
    let src = if l.is_contiguous() && l.offset == 0 { None } else { Some(contiguous(x, l)?) };
    let out = GpuBuffer::new(outer * n * inner)?;
    fill_into(&out, 0, outer * n * inner, 0.0)?;
    let total = outer * k * inner;
    let w = [word(total, "elements")?, word(outer, "a size")?, word(n, "a size")?, word(k, "indices")?, word(inner, "a size")?];
    launch(&GATHER, "scatter_add", &[], &[src.as_ref().unwrap_or(x), &ib, &out], &w, groups_1d(total, WG))?;
    Ok(out)
}
