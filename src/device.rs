//! Devices from Python: `"cpu"` and `"gpu"` (the wgpu backend), whether a GPU can be had,
//! and why not.
use flux_core::Device;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::IntoPyResult;

/// The device a Python name stands for; `"gpu"` without an adapter is the reason none
/// can be had (a ValueError).
pub fn parse(name: &str) -> PyResult<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "gpu" => Device::wgpu().py(),
        _ => Err(PyValueError::new_err(format!("device must be \"cpu\" or \"gpu\", got {name:?}"))),
    }
}

/// `t`'s values on `d`, detached: a float64 tensor becomes float32 on the GPU, as Flux's
/// `gpu` does (the GPU computes in float32). How `fx.gpu` / `fx.cpu` move a Tensor and
/// an optimiser state alike.
pub fn moved(t: &flux_core::Tensor, d: Device) -> flux_core::Result<flux_core::Tensor> {
    let src = if d != Device::Cpu && t.dtype() == flux_core::DType::F64 { t.cast(flux_core::DType::F32)? } else { t.detach() };
    src.to_device(d)
}

/// Can tensors move to the GPU (a wgpu adapter was found, lavapipe included)?
#[pyfunction]
fn gpu_available() -> bool { Device::wgpu().is_ok() }

/// Why the GPU cannot be used, or None when it can.
#[pyfunction]
fn _gpu_unavailable_reason() -> Option<String> { Device::wgpu().err().map(|e| e.to_string()) }

/// `(reads, bytes)`: device → host reads so far in this process (a GPU training step
/// reads back its loss, 4 bytes, and nothing else); `(0, 0)` without the GPU backend.
#[pyfunction]
fn _gpu_reads() -> (u64, u64) {
    #[cfg(feature = "wgpu")]
    return flux_core::backend::wgpu::transfer::reads();
    #[cfg(not(feature = "wgpu"))]
    (0, 0)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(gpu_available, m)?)?;
    m.add_function(wrap_pyfunction!(_gpu_reads, m)?)?;
    m.add_function(wrap_pyfunction!(_gpu_unavailable_reason, m)?)?;
    Ok(())
}
