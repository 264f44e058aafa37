//! Between tensors and device buffers, for the fused ops whose GPU forward launches a
//! kernel of its own: the row-major buffer of a GPU tensor, and a tensor around a new
//! buffer.
use super::pool::GpuBuffer;
use super::WgpuStorage;
use crate::error::{Error, Result};
use crate::tensor::{DType, Layout, Storage, Tensor};

/// `t` with its elements row-major from offset 0 of a buffer of exactly its size (a
/// copy on the device when `t` is a view), so that [`buffer`] can hand it to a kernel.
pub(crate) fn dense(t: &Tensor) -> Result<Tensor> {
    if t.is_contiguous() && t.layout().offset == 0 && t.storage().len() == t.numel() {
        return Ok(t.clone());
    }
    Ok(Tensor::from_storage(t.storage().copy_strided(t.layout())?, Layout::contiguous(t.shape())))
}

/// The device buffer of a GPU tensor made by [`dense`]; `Error::Device` for a tensor
/// elsewhere, `Error::DType` for one that is not float32.
pub(crate) fn buffer<'a>(t: &'a Tensor, op: &str) -> Result<&'a GpuBuffer> {
    if t.dtype() != DType::F32 {
        return Err(Error::DType(format!("{op}: the GPU computes in float32, got a {:?} tensor", t.dtype())));
    }
    match t.storage() {
        Storage::Wgpu(s) => Ok(s.buffer()),
        other => Err(crate::backend::mixed_devices(op, crate::tensor::Device::Wgpu, other.device())),
    }
}

/// A GPU tensor of `shape` around `buf` (row-major, `buf` holds exactly its elements).
pub(crate) fn wrap(buf: GpuBuffer, shape: &[usize]) -> Tensor {
    debug_assert_eq!(buf.len(), shape.iter().product::<usize>());
    Tensor::from_storage(Storage::Wgpu(WgpuStorage::new(buf)), Layout::contiguous(shape))
}
