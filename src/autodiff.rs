//! The tape as Python sees it: `fx.gradient` opens it, watches the parameters, runs the
//! user's function (whose ops record themselves) and asks for the backward pass.
use flux_core::autodiff;
use pyo3::prelude::*;

use crate::errors::IntoPyResult;
use crate::tensor::PyTensor;

/// Open a tape and watch `params` (tensors reached twice are one variable).
#[pyfunction]
fn tape_start(params: Vec<PyRef<'_, PyTensor>>) -> PyResult<()> {
    autodiff::start().py()?;
    for p in &params {
        autodiff::watch(&p.t);
    }
    Ok(())
}

/// Close the tape without a backward pass.
#[pyfunction]
fn tape_abort() { autodiff::abort() }

/// Backward pass: d`loss`/d`p` for each of `params` (None where the loss does not depend on it).
#[pyfunction]
fn tape_finish(py: Python<'_>, loss: PyRef<'_, PyTensor>, params: Vec<PyRef<'_, PyTensor>>) -> PyResult<Vec<Option<PyTensor>>> {
    let wrt: Vec<&flux_core::Tensor> = params.iter().map(|p| &p.t).collect();
    let l = &loss.t;
    let g = py.detach(|| autodiff::finish(l, &wrt)).py()?;
    Ok(g.into_iter().map(|o| o.map(PyTensor::new)).collect())
}

/// Is a gradient being recorded on this thread? (Layers in automatic mode train only then.)
#[pyfunction]
fn is_recording() -> bool { autodiff::is_recording() }

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tape_start, m)?)?;
    m.add_function(wrap_pyfunction!(tape_abort, m)?)?;
    m.add_function(wrap_pyfunction!(tape_finish, m)?)?;
    m.add_function(wrap_pyfunction!(is_recording, m)?)?;
    Ok(())
}
