//! The index of the largest value along the last axis (`kernels/argmax.wgsl`): only
//! the indices come back to the host, one u32 per row.
use super::elementwise::{self as ew, family, word};
use super::kernel::{groups_1d, launch, Kernel};
use super::pool::GpuBuffer;
use super::transfer;
use crate::error::Result;
use crate::tensor::layout::Layout;

const ARGMAX: Kernel = family!("argmax");

/// For each row of the view `l` along its last axis, the index of its largest value
/// (the first on ties, NaN counts as the largest).
///
/// ```
/// use flux_core::backend::wgpu::{argmax::argmax_last, gpu_available, transfer};
/// use flux_core::tensor::Layout;
/// if gpu_available() {
///     let x = transfer::upload(&[1.0, 5.0, 2.0, 7.0, 0.0, 7.0]).unwrap();
///     assert_eq!(argmax_last(&x, &Layout::contiguous(&[2, 3])).unwrap(), vec![1, 0]);
/// }
/// ```
pub fn argmax_last(x: &GpuBuffer, l: &Layout) -> Result<Vec<usize>> {
    let n = l.shape.last().copied().unwrap_or(1);
    let rows = if n == 0 { 0 } else { l.numel() / n };
    if rows == 0 {
        return Ok(vec![]);
    }
    // the kernel reads rows contiguously
    let copy = if l.is_contiguous() && l.offset == 0 { None } else { Some(ew::contiguous(x, l)?) };
    let out = GpuBuffer::new(rows)?;
    launch(&ARGMAX, "argmax", &[], &[copy.as_ref().unwrap_or(x), &out], &[word(rows, "rows")?, word(n, "a row's length")?], groups_1d(rows, ew::WG))?;
    Ok(transfer::download_u32(&out)?.into_iter().map(|i| i as usize).collect())
}
