//! A test device: transfers work, every kernel is missing. It stands in for a GPU
//! backend that lacks an op, so tests can show that such an op is an
//! [`Error::Device`](crate::Error::Device) naming it, not a panic.
use super::BackendStorage;
use crate::error::Result;
use crate::tensor::{CpuStorage, DType, Device};

/// A host buffer that claims to live on the GPU and has no kernels.
#[derive(Clone, Debug)]
pub struct NullStorage(pub CpuStorage);

impl BackendStorage for NullStorage {
    fn device(&self) -> Device { Device::Wgpu }
    fn dtype(&self) -> DType { self.0.dtype() }
    fn len(&self) -> usize { self.0.len() }
    fn to_cpu(&self) -> Result<CpuStorage> { Ok(self.0.clone()) }
    fn from_cpu(c: &CpuStorage) -> Result<Self> { Ok(NullStorage(c.clone())) }
}
