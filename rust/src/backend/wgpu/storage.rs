//! [`WgpuStorage`]: a tensor's buffer on the GPU, and the seam's kernels
//! ([`BackendStorage`]) in terms of the kernel families of this backend.
use super::elementwise::{self as ew, ScalarOp};
use super::matmul::MatLayout;
use super::pool::GpuBuffer;
use super::reduce::{Reduce, SoftmaxMode};
use super::{argmax, conv, device, gather, matmul, pooling, reduce, transfer};
use crate::backend::{BackendStorage, BinaryOp, CmpOp, MatmulDims, ReduceOp, UnaryOp};
use crate::error::{Error, Result};
use crate::tensor::conv::Geom;
use crate::tensor::pool::{PGeom, PoolMode};
use crate::tensor::{CpuStorage, DType, Device, Layout};

/// A buffer of f32 on the GPU (the GPU computes in f32 only). Cloning copies the
/// buffer on the device (copy-on-write tensors clone a shared storage before writing).
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, transfer, WgpuStorage};
/// if gpu_available() {
///     let s = WgpuStorage::new(transfer::upload(&[1.0, 2.0]).unwrap());
///     let c = s.clone(); // a copy on the device
///     assert_eq!(transfer::download(c.buffer()).unwrap(), vec![1.0, 2.0]);
/// }
/// ```
pub struct WgpuStorage {
    buf: GpuBuffer,
}

impl std::fmt::Debug for WgpuStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "WgpuStorage({:?})", self.buf) }
}

impl Clone for WgpuStorage {
    fn clone(&self) -> Self {
        // a failure here means the device is lost; Clone cannot return it, and a silent
        // wrong buffer is worse than stopping
        let n = self.buf.len();
        let copy = ew::contiguous(&self.buf, &Layout::contiguous(&[n])).expect("copying a GPU buffer failed (device lost?)");
        WgpuStorage { buf: copy }
    }
}

/// Can a GPU be used? `Ok` with an adapter, else `Error::Device` saying why.
///
/// ```
/// use flux_core::{backend::wgpu::{available, gpu_available}, Error};
/// match available() {
///     Ok(()) => assert!(gpu_available()),
///     Err(e) => assert!(matches!(e, Error::Device(_))),
/// }
/// ```
pub fn available() -> Result<()> { device::context().map(|_| ()) }

/// Wrapping and reaching the device buffer.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, transfer, WgpuStorage};
/// if gpu_available() {
///     assert_eq!(WgpuStorage::new(transfer::upload(&[3.0]).unwrap()).buffer().len(), 1);
/// }
/// ```
impl WgpuStorage {
    /// Wrap a buffer of f32.
    ///
    /// ```
    /// use flux_core::backend::wgpu::{gpu_available, transfer, WgpuStorage};
    /// if gpu_available() {
    ///     let s = WgpuStorage::new(transfer::upload(&[1.0, 2.0, 3.0]).unwrap());
    ///     assert_eq!(transfer::download(s.buffer()).unwrap(), vec![1.0, 2.0, 3.0]);
    /// }
    /// ```
    pub fn new(buf: GpuBuffer) -> WgpuStorage { WgpuStorage { buf } }
    /// The device buffer.
    ///
    /// ```
    /// use flux_core::backend::wgpu::{gpu_available, transfer, WgpuStorage};
    /// if gpu_available() {
    ///     assert_eq!(WgpuStorage::new(transfer::upload(&[1.0, 2.0]).unwrap()).buffer().bytes(), 8);
    /// }
    /// ```
    pub fn buffer(&self) -> &GpuBuffer { &self.buf }
    /// The device buffer, to write in place (optimiser steps).
    ///
    /// ```
    /// use flux_core::backend::wgpu::{elementwise::fill_into, gpu_available, transfer, WgpuStorage};
    /// if gpu_available() {
    ///     let mut s = WgpuStorage::new(transfer::upload(&[1.0, 2.0]).unwrap());
    ///     fill_into(s.buffer_mut(), 0, 2, 5.0).unwrap();
    ///     assert_eq!(transfer::download(s.buffer()).unwrap(), vec![5.0, 5.0]);
    /// }
    /// ```
    pub fn buffer_mut(&mut self) -> &mut GpuBuffer { &mut self.buf }
}

fn f32_only(dtype: DType, op: &str) -> Result<()> {
    if dtype == DType::F32 {
        return Ok(());
    }
    Err(Error::DType(format!("{op}: the GPU computes in float32; {dtype:?} tensors stay on the CPU (cast to float32 first)")))
}

fn wrap(b: GpuBuffer) -> WgpuStorage { WgpuStorage { buf: b } }

/// A batched operand of `matmul` as one batch stride: the batch dims (all but the last
/// two) must step evenly; otherwise a contiguous copy is made first.
fn mat_operand(s: &WgpuStorage, l: &Layout) -> Result<(Option<GpuBuffer>, MatLayout)> {
    let nd = l.ndim();
    let (rows, cols) = (l.shape[nd - 2], l.shape[nd - 1]);
    let (bs, bst) = (&l.shape[..nd - 2], &l.strides[..nd - 2]);
    // one stride for the whole batch: the dims of size > 1 nest row-major
    let dims: Vec<(usize, usize)> = bs.iter().zip(bst).filter(|&(&n, _)| n > 1).map(|(&n, &s)| (n, s)).collect();
    let even = dims.windows(2).all(|w| w[0].1 == w[1].1 * w[1].0);
    if even {
        let bstride = dims.last().map_or(0, |d| d.1);
        let ml = MatLayout { rows, cols, offset: l.offset, batch_stride: bstride, row_stride: l.strides[nd - 2], col_stride: l.strides[nd - 1] };
        return Ok((None, ml));
    }
    let c = ew::contiguous(&s.buf, l)?;
    Ok((Some(c), MatLayout::contiguous(rows, cols)))
}

impl BackendStorage for WgpuStorage {
    fn device(&self) -> Device { Device::Wgpu }
    fn dtype(&self) -> DType { DType::F32 }
    fn len(&self) -> usize { self.buf.len() }
    fn to_cpu(&self) -> Result<CpuStorage> { Ok(CpuStorage::F32(transfer::download(&self.buf)?)) }
    fn from_cpu(c: &CpuStorage) -> Result<Self> {
        match c {
            CpuStorage::F32(v) => Ok(wrap(transfer::upload(v)?)),
            CpuStorage::F64(_) => Err(Error::DType(
                "the GPU computes in float32: cast the float64 tensor to float32 before moving it to the GPU".into(),
            )),
        }
    }
    fn full(n: usize, v: f64, dtype: DType) -> Result<Self> {
        f32_only(dtype, "full")?;
        Ok(wrap(ew::full(n, v as f32)?))
    }
    fn unary(&self, l: &Layout, op: UnaryOp) -> Result<Self> { Ok(wrap(ew::unary(&self.buf, l, op)?)) }
    fn unary_backward(&self, l: &Layout, y: &Self, yl: &Layout, g: &Self, gl: &Layout, op: UnaryOp) -> Result<Self> {
        // the kernel reads its three operands contiguously
        let c = |s: &Self, l: &Layout| -> Result<Option<GpuBuffer>> {
            if l.is_contiguous() && l.offset == 0 && !l.strides.contains(&0) { Ok(None) } else { ew::contiguous(&s.buf, l).map(Some) }
        };
        let (xc, yc, gc) = (c(self, l)?, c(y, yl)?, c(g, gl)?);
        let out = ew::unary_backward(
            xc.as_ref().unwrap_or(&self.buf),
            yc.as_ref().unwrap_or(&y.buf),
            gc.as_ref().unwrap_or(&g.buf),
            l.numel(),
            op,
        )?;
        Ok(wrap(out))
    }
    fn binary(&self, l: &Layout, rhs: &Self, rl: &Layout, shape: &[usize], op: BinaryOp) -> Result<Self> {
        let (a, b) = (l.broadcast_to(shape)?, rl.broadcast_to(shape)?);
        Ok(wrap(ew::binary(&self.buf, &a, &rhs.buf, &b, op)?.0))
    }
    fn cmp(&self, l: &Layout, rhs: &Self, rl: &Layout, shape: &[usize], op: CmpOp) -> Result<Self> {
        let (a, b) = (l.broadcast_to(shape)?, rl.broadcast_to(shape)?);
        Ok(wrap(ew::compare(&self.buf, &a, &rhs.buf, &b, op)?.0))
    }
    fn affine(&self, l: &Layout, mul: f64, add: f64) -> Result<Self> {
        Ok(wrap(ew::scalar(&self.buf, l, ScalarOp::Affine(mul as f32, add as f32))?))
    }
    fn reduce(&self, l: &Layout, dims: &[usize], op: ReduceOp) -> Result<Self> {
        let op = match op {
            ReduceOp::Sum => Reduce::Sum,
            ReduceOp::Max => Reduce::Max,
            ReduceOp::Min => Reduce::Min,
        };
        Ok(wrap(reduce::reduce(&self.buf, l, dims, op)?))
    }
    fn softmax(&self, l: &Layout, dim: usize, log: bool) -> Result<Self> {
        let mode = if log { SoftmaxMode::LogSoftmax } else { SoftmaxMode::Softmax };
        Ok(wrap(reduce::softmax(&self.buf, l, dim, mode)?))
    }
    fn matmul(&self, l: &Layout, rhs: &Self, rl: &Layout, dims: MatmulDims) -> Result<Self> {
        let (ac, la) = mat_operand(self, l)?;
        let (bc, lb) = mat_operand(rhs, rl)?;
        let out = matmul::matmul(ac.as_ref().unwrap_or(&self.buf), la, bc.as_ref().unwrap_or(&rhs.buf), lb, dims.batch)?;
        Ok(wrap(out))
    }
    fn cast(&self, l: &Layout, dtype: DType) -> Result<Self> {
        f32_only(dtype, "cast")?;
        self.copy_strided(l)
    }
    fn copy_strided(&self, l: &Layout) -> Result<Self> { Ok(wrap(ew::contiguous(&self.buf, l)?)) }
    fn index_select(&self, l: &Layout, axis: usize, idx: &[usize]) -> Result<Self> {
        Ok(wrap(gather::index_select(&self.buf, l, axis, idx)?))
    }
    fn index_add(&self, l: &Layout, axis: usize, idx: &[usize], n: usize) -> Result<Self> {
        Ok(wrap(gather::scatter_add(&self.buf, l, axis, idx, n)?))
    }
    fn gather_rows(&self, l: &Layout, idx: &[usize]) -> Result<Self> {
        if l.ndim() == 0 {
            return Err(Error::Shape("gather needs a source with at least one dimension".into()));
        }
        // rows along dim 0; the output [k, rest…] is [k, row_len] in memory
        Ok(wrap(gather::index_select(&self.buf, l, 0, idx)?))
    }
    fn scatter_add_rows(&self, l: &Layout, idx: &[usize], n: usize) -> Result<Self> {
        if l.shape.first() == Some(&idx.len()) {
            return Ok(wrap(gather::scatter_add(&self.buf, l, 0, idx, n)?));
        }
        // a source shaped idx_shape + rest: its rows are [idx.len(), row_len] once contiguous
        let c = ew::contiguous(&self.buf, l)?;
        let rows = Layout::contiguous(&[idx.len(), l.numel() / idx.len().max(1)]);
        Ok(wrap(gather::scatter_add(&c, &rows, 0, idx, n)?))
    }
    fn concat(&self, parts: &[(&Self, &Layout)], axis: usize) -> Result<Self> {
        let first = parts.first().ok_or_else(|| Error::Shape("concat of no tensors".into()))?.1;
        let mut shape = first.shape.clone();
        shape[axis] = parts.iter().map(|(_, l)| l.shape[axis]).sum();
        let out = GpuBuffer::new(shape.iter().product())?;
        let ol = Layout::contiguous(&shape);
        let mut at = 0;
        for (s, l) in parts {
            let view = Layout { shape: l.shape.clone(), strides: ol.strides.clone(), offset: at * ol.strides[axis] };
            ew::copy_into(&s.buf, l, &out, &view)?;
            at += l.shape[axis];
        }
        Ok(wrap(out))
    }
    fn where_cond(&self, l: &Layout, a: &Self, al: &Layout, b: &Self, bl: &Layout, shape: &[usize]) -> Result<Self> {
        let (lc, la, lb) = (l.broadcast_to(shape)?, al.broadcast_to(shape)?, bl.broadcast_to(shape)?);
        Ok(wrap(ew::where_(&self.buf, &lc, &a.buf, &la, &b.buf, &lb)?.0))
    }
    fn conv_fwd(&self, w: &Self, bias: Option<&Self>, g: &Geom, relu: bool) -> Result<Self> {
        Ok(wrap(conv::conv_fwd(&self.buf, &w.buf, bias.map(|b| &b.buf), g, relu)?))
    }
    fn conv_bwd_data(&self, w: &Self, g: &Geom) -> Result<Self> { Ok(wrap(conv::conv_bwd_data(&self.buf, &w.buf, g)?)) }
    fn conv_bwd_filter(&self, dy: &Self, g: &Geom) -> Result<Self> { Ok(wrap(conv::conv_bwd_filter(&self.buf, &dy.buf, g)?)) }
    fn pool_fwd(&self, g: &PGeom, mode: PoolMode) -> Result<(Self, Option<Self>)> {
        let (y, arg) = pooling::pool_fwd(&self.buf, g, mode)?;
        Ok((wrap(y), arg.map(wrap)))
    }
    fn pool_bwd(&self, arg: Option<&Self>, g: &PGeom, mode: PoolMode) -> Result<Self> {
        Ok(wrap(pooling::pool_bwd(&self.buf, arg.map(|a| &a.buf), g, mode)?))
    }
    fn clamp(&self, l: &Layout, lo: f64, hi: f64) -> Result<Self> {
        Ok(wrap(ew::scalar(&self.buf, l, ScalarOp::Clamp(lo as f32, hi as f32))?))
    }
    fn argmax_last(&self, l: &Layout) -> Result<Vec<usize>> { argmax::argmax_last(&self.buf, l) }
    fn scatter_strided(&self, l: &Layout, n: usize, dst: &Layout) -> Result<Self> {
        let out = ew::full(n, 0.0)?;
        ew::copy_into(&self.buf, l, &out, dst)?;
        Ok(wrap(out))
    }
    fn optim_step(&mut self, read: &Self, states: &mut [&mut Self], step: crate::backend::OptimStep<'_>) -> Result<()> {
        super::rules::optim_step(self, read, states, step)
    }
}
