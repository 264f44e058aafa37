//! Checkpoints and in-place loading: `save_safetensors` / `load_safetensors` over
//! `flux_core::io`, and `assign_`, which copies values into an existing Tensor (what
//! `fx.loadmodel_` needs to keep a model's parameters the same objects).
use std::collections::BTreeMap;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{maybe_detach, to_tensor};
use crate::errors::IntoPyResult;
use crate::tensor::PyTensor;

/// `dst[...] = src` in place (converted to dst's dtype); shapes must match.
#[pyfunction]
fn assign_(py: Python<'_>, dst: &Bound<'_, PyTensor>, src: &Bound<'_, PyAny>) -> PyResult<()> {
    let mut d = dst.try_borrow_mut().map_err(|_| pyo3::exceptions::PyValueError::new_err("assign_: the destination is in use"))?;
    let s = to_tensor(src, Some(d.t.dtype()))?;
    let t = &mut d.t;
    if t.device() != flux_core::Device::Cpu {
        // a model on the GPU: the values go up to it (loading a checkpoint into it)
        if s.shape() != t.shape() {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "cannot assign a tensor of shape {:?} into one of shape {:?}",
                s.shape(),
                t.shape()
            )));
        }
        let v = s.cast(t.dtype()).py()?.to_device(t.device()).py()?;
        t.replace_data_(&v);
        return Ok(());
    }
    maybe_detach(py, s.numel(), || t.assign_(&s)).py()
}

/// Write named tensors and string metadata atomically (see `flux_core::io::save`).
#[pyfunction]
fn save_safetensors(py: Python<'_>, path: std::path::PathBuf, tensors: Vec<(String, PyRef<'_, PyTensor>)>, metadata: BTreeMap<String, String>) -> PyResult<()> {
    let ts: Vec<(String, flux_core::Tensor)> = tensors.iter().map(|(n, t)| (n.clone(), t.t.clone())).collect();
    py.detach(|| flux_core::io::save(&path, &ts, &metadata)).py()
}

/// What `load_safetensors` returns: the tensors in file order, the metadata, verified.
type Loaded<'py> = (Vec<(String, PyTensor)>, Bound<'py, PyDict>, bool);

/// `(tensors as [(name, Tensor)] in file order, metadata dict, verified)`.
#[pyfunction]
fn load_safetensors<'py>(py: Python<'py>, path: std::path::PathBuf) -> PyResult<Loaded<'py>> {
    let ck = py.detach(|| flux_core::io::load(&path)).py()?;
    let meta = PyDict::new(py);
    for (k, v) in &ck.metadata {
        meta.set_item(k, v)?;
    }
    Ok((ck.tensors.into_iter().map(|(n, t)| (n, PyTensor::new(t))).collect(), meta, ck.verified))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(assign_, m)?)?;
    m.add_function(wrap_pyfunction!(save_safetensors, m)?)?;
    m.add_function(wrap_pyfunction!(load_safetensors, m)?)?;
    Ok(())
}
