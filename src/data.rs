//! Gathering a batch of observations (rows along the first dimension) in Rust.
use numpy::{PyReadonlyArray2, PyReadwriteArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::IntoPyResult;
use crate::tensor::PyTensor;

/// Copy rows `idx` of `src` into `dst`; both are C-contiguous arrays viewed as bytes,
/// shaped (rows, row_bytes). The GIL is released during the copy.
#[pyfunction]
fn gather_bytes(py: Python<'_>, src: PyReadonlyArray2<'_, u8>, idx: Vec<usize>, mut dst: PyReadwriteArray2<'_, u8>) -> PyResult<()> {
    let row = src.shape()[1];
    if dst.shape()[1] != row {
        return Err(PyValueError::new_err("gather: row sizes differ"));
    }
    let s = src.as_slice().map_err(|_| PyValueError::new_err("gather: source must be C-contiguous"))?;
    let d = dst.as_slice_mut().map_err(|_| PyValueError::new_err("gather: destination must be C-contiguous"))?;
    py.detach(|| flux_core::data::gather_rows(s, row, &idx, d)).py()
}

/// Rows `idx` of a tensor (a new tensor).
#[pyfunction]
fn gather_tensor(py: Python<'_>, t: PyRef<'_, PyTensor>, idx: Vec<usize>) -> PyResult<PyTensor> {
    let x = &t.t;
    Ok(PyTensor::new(py.detach(|| x.index_select(0, &idx)).py()?))
}

/// Rank `rank`'s batches (lists of observation indices) of one epoch of `order` in a
/// `size`-way data-parallel run with per-rank `batchsize` (see `flux_core::data::shard_batches`).
#[pyfunction]
fn shard_batches(order: Vec<usize>, batchsize: usize, partial: bool, rank: usize, size: usize) -> PyResult<Vec<Vec<usize>>> {
    flux_core::data::shard_batches(&order, batchsize, partial, rank, size).py()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(shard_batches, m)?)?;
    m.add_function(wrap_pyfunction!(gather_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(gather_tensor, m)?)?;
    Ok(())
}
