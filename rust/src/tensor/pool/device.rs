//! Pooling on a device other than the CPU (the GPU): [`pool`](super::pool)'s forward
//! and backward through the seam's kernels ([`Storage::pool_fwd`],
//! [`Storage::pool_bwd`]), on the CPU path's geometry.
use super::{PGeom, PoolMode};
use crate::autodiff::{record, Backward, Op};
use crate::error::Result;
use crate::tensor::{Layout, Storage, Tensor};

#[derive(Debug)]
struct DevicePoolBackward {
    g: PGeom,
    mode: PoolMode,
    /// max pooling's window winners, on the device
    arg: Option<Storage>,
    in_shape: Vec<usize>,
}

impl Backward for DevicePoolBackward {
    fn backward(&self, gy: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let dx = gy.packed_storage_ref()?.pool_bwd(self.arg.as_ref(), &self.g, self.mode)?;
        Ok(vec![Some(Tensor::from_storage(dx, Layout::contiguous(&self.in_shape)))])
    }
}

/// The pooling of `x` with geometry `g` into shape `oshape`, recorded on the tape.
pub(super) fn pool(x: &Tensor, mode: PoolMode, g: PGeom, oshape: &[usize]) -> Result<Tensor> {
    let (y, arg) = x.packed_storage_ref()?.pool_fwd(&g, mode)?;
    let out = Tensor::from_storage(y, Layout::contiguous(oshape));
    record(&[x], &out, || Op::Custom(Box::new(DevicePoolBackward { g, mode, arg, in_shape: x.shape().to_vec() })));
    Ok(out)
}
