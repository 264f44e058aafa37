//! Where a tensor's numbers live. Storage is shared through an `Arc`; writers call
//! `Arc::make_mut`, so a uniquely owned buffer is updated in place and a shared one is
//! copied first (copy-on-write).
use super::dtype::DType;

/// The device a storage lives on. Only the CPU today; a wgpu variant slots in beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
}

#[derive(Clone, Debug)]
pub enum CpuStorage {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl CpuStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool { self.len() == 0 }
}

/// A buffer on some device.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Storage {
    Cpu(CpuStorage),
}

impl Storage {
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
        }
    }
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(c) => c.dtype(),
        }
    }
    pub fn cpu(&self) -> &CpuStorage {
        match self {
            Storage::Cpu(c) => c,
        }
    }
    pub fn cpu_mut(&mut self) -> &mut CpuStorage {
        match self {
            Storage::Cpu(c) => c,
        }
    }
}
