//! Reductions over axes (`kernels/reduce.wgsl`) and softmax, log-softmax and
//! logsumexp along an axis (`kernels/softmax.wgsl`).
use super::elementwise::{family, word};
use super::kernel::{groups_1d, launch, Kernel};
use super::pool::GpuBuffer;
use crate::error::{shape_err, Result};
use crate::tensor::layout::{row_major_strides, Layout};

const REDUCE: Kernel = family!("reduce");
const SOFTMAX: Kernel = family!("softmax", "softmax_row");

/// A reduction on the GPU.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, reduce::{reduce, Reduce}, transfer};
/// use flux_core::tensor::Layout;
/// if gpu_available() {
///     let x = transfer::upload(&[1.0, 5.0, 3.0, 4.0]).unwrap();
///     let l = Layout::contiguous(&[2, 2]);
///     assert_eq!(transfer::download(&reduce(&x, &l, &[1], Reduce::Max).unwrap()).unwrap(), vec![5.0, 4.0]);
///     assert_eq!(transfer::download(&reduce(&x, &l, &[0, 1], Reduce::Mean).unwrap()).unwrap(), vec![3.25]);
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    /// The sum.
    Sum,
    /// The mean (the sum over the count).
    Mean,
    /// The maximum (NaN if any element is NaN).
    Max,
    /// The minimum (NaN if any element is NaN).
    Min,
}

// below this many elements per output, one invocation per output beats one workgroup
const WIDE: usize = 128;

/// Reduce the view `l` of `x` over `axes` (sorted, unique, in range): a contiguous
/// buffer with the kept axes' shape (row-major), or one element when every axis goes.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, reduce::{reduce, Reduce}, transfer};
/// use flux_core::tensor::Layout;
/// if gpu_available() {
///     let x = transfer::upload(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
///     let s = reduce(&x, &Layout::contiguous(&[2, 3]), &[1], Reduce::Sum).unwrap();
///     assert_eq!(transfer::download(&s).unwrap(), vec![6.0, 15.0]);
/// }
/// ```
pub fn reduce(x: &GpuBuffer, l: &Layout, axes: &[usize], op: Reduce) -> Result<GpuBuffer> {
    if axes.iter().any(|&a| a >= l.ndim()) || axes.windows(2).any(|w| w[0] >= w[1]) {
        return Err(shape_err!("reduce: axes {:?} are not sorted, unique axes of a tensor with {} dimensions", axes, l.ndim()));
    }
    let (mut ks, mut kst, mut rs, mut rst) = (vec![], vec![], vec![], vec![]);
    for d in 0..l.ndim() {
        if axes.contains(&d) {
            rs.push(l.shape[d]);
            rst.push(l.strides[d]);
        } else {
            ks.push(l.shape[d]);
            kst.push(l.strides[d]);
        }
    }
    let n_out: usize = ks.iter().product();
    let r: usize = rs.iter().product();
    let mut w = vec![word(n_out, "outputs")?, word(ks.len(), "dimensions")?];
    for v in ks.iter().chain(&kst) {
        w.push(word(*v, "a size or stride")?);
    }
    w.extend([word(l.offset, "an offset")?, word(r, "elements reduced")?, word(rs.len(), "dimensions")?]);
    for v in rs.iter().chain(&rst) {
        w.push(word(*v, "a size or stride")?);
    }
    let code = match op {
        Reduce::Sum => 0.0,
        Reduce::Mean => 1.0,
        Reduce::Max => 2.0,
        Reduce::Min => 3.0,
    };
    let out = GpuBuffer::new(n_out)?;
    if r >= WIDE {
        launch(&REDUCE, "reduce_wide", &[("OP", code)], &[x, &out], &w, groups_1d(n_out, 1))?;
    } else {
        launch(&REDUCE, "reduce_narrow", &[("OP", code)], &[x, &out], &w, groups_1d(n_out, 256))?;
    }
    Ok(out)
}

/// What [`softmax`] computes along its axis.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, reduce::{softmax, SoftmaxMode}, transfer};
/// use flux_core::tensor::Layout;
/// if gpu_available() {
///     let x = transfer::upload(&[0.0, 0.0]).unwrap();
///     let l = Layout::contiguous(&[2]);
///     assert_eq!(transfer::download(&softmax(&x, &l, 0, SoftmaxMode::Softmax).unwrap()).unwrap(), vec![0.5, 0.5]);
///     let lse = transfer::download(&softmax(&x, &l, 0, SoftmaxMode::LogSumExp).unwrap()).unwrap();
///     assert!((lse[0] - 2f32.ln()).abs() < 1e-6);
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftmaxMode {
    /// `exp(x - max) / Σ exp(x - max)`: the input's shape.
    Softmax,
    /// `x - max - log Σ exp(x - max)`: the input's shape.
    LogSoftmax,
    /// `max + log Σ exp(x - max)`: the axis removed.
    LogSumExp,
}

/// Softmax, log-softmax or logsumexp of the view `l` of `x` along `axis`, into a
/// contiguous buffer.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, reduce::{softmax, SoftmaxMode}, transfer};
/// use flux_core::tensor::Layout;
/// if gpu_available() {
///     let x = transfer::upload(&[0.0, 0.0, 5.0, 5.0]).unwrap();
///     let y = softmax(&x, &Layout::contiguous(&[2, 2]), 1, SoftmaxMode::Softmax).unwrap();
///     assert_eq!(transfer::download(&y).unwrap(), vec![0.5; 4]);
/// }
/// ```
pub fn softmax(x: &GpuBuffer, l: &Layout, axis: usize, mode: SoftmaxMode) -> Result<GpuBuffer> {
    if axis >= l.ndim() {
        return Err(shape_err!("softmax: axis {} is out of range for a tensor with {} dimensions", axis, l.ndim()));
    }
    let out_shape: Vec<usize> = match mode {
        SoftmaxMode::LogSumExp => l.shape.iter().enumerate().filter(|&(d, _)| d != axis).map(|(_, &s)| s).collect(),
        _ => l.shape.clone(),
    };
    let ost = row_major_strides(&l.shape);
    let keep: Vec<usize> = (0..l.ndim()).filter(|&d| d != axis).collect();
    let n_rows: usize = keep.iter().map(|&d| l.shape[d]).product();
    let mut w = vec![word(n_rows, "rows")?, word(keep.len(), "dimensions")?];
    for &d in &keep {
        w.push(word(l.shape[d], "a size")?);
    }
    for &d in &keep {
        w.push(word(l.strides[d], "a stride")?);
    }
    for &d in &keep {
        w.push(word(ost[d], "a stride")?);
    }
    w.extend([
        word(l.offset, "an offset")?,
        word(l.shape[axis], "a size")?,
        word(l.strides[axis], "a stride")?,
        word(ost[axis], "a stride")?,
    ]);
    let code = match mode {
        SoftmaxMode::Softmax => 0.0,
        SoftmaxMode::LogSoftmax => 1.0,
        SoftmaxMode::LogSumExp => 2.0,
    };
    let out = GpuBuffer::new(out_shape.iter().product())?;
    launch(&SOFTMAX, "softmax", &[("MODE", code)], &[x, &out], &w, groups_1d(n_rows, 1))?;
    Ok(out)
}
