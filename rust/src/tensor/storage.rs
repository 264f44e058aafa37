//! Where a tensor's numbers live. Storage is shared through an `Arc`; writers call
//! `Arc::make_mut`, so a uniquely owned buffer is updated in place and a shared one is
//! copied first (copy-on-write).
use super::dtype::DType;

/// The device a storage lives on. Only the CPU today; a wgpu variant slots in beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// Host memory.
    Cpu,
}

/// A host buffer of one dtype.
#[derive(Clone, Debug)]
pub enum CpuStorage {
    /// f32 elements.
    F32(Vec<f32>),
    /// f64 elements.
    F64(Vec<f64>),
}

impl CpuStorage {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
        }
    }
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
        }
    }
    /// Does it hold no elements?
    pub fn is_empty(&self) -> bool { self.len() == 0 }
}

/// A buffer on some device.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Storage {
    /// A host buffer.
    Cpu(CpuStorage),
}

impl Storage {
    /// Where the buffer lives.
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
        }
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(c) => c.dtype(),
        }
    }
    /// The host buffer.
    pub fn cpu(&self) -> &CpuStorage {
        match self {
            Storage::Cpu(c) => c,
        }
    }
    /// The host buffer, mutably.
    pub fn cpu_mut(&mut self) -> &mut CpuStorage {
        match self {
            Storage::Cpu(c) => c,
        }
    }
}
