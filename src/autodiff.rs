//! The tape as Python sees it: `fx.gradient` opens it, watches the parameters, runs the
//! user's function (whose ops record themselves) and asks for the backward pass.
use flux_core::autodiff;
use pyo3::prelude::*;

use pyo3::sync::PyOnceLock;
use pyo3::types::{PyFloat, PyList, PyTuple};

use crate::convert::maybe_detach;
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
    backward(py, &loss.t, &params)
}

/// The backward sweep for `params`, without the GIL when the model is big enough for
/// that to pay (shared by `tape_finish` and `value_and_grad`).
fn backward(py: Python<'_>, loss: &flux_core::Tensor, params: &[PyRef<'_, PyTensor>]) -> PyResult<Vec<Option<PyTensor>>> {
    let wrt: Vec<&flux_core::Tensor> = params.iter().map(|p| &p.t).collect();
    let work: usize = wrt.iter().map(|t| t.numel()).sum();
    let g = maybe_detach(py, work, || autodiff::finish(loss, &wrt)).py()?;
    Ok(g.into_iter().map(|o| o.map(PyTensor::new)).collect())
}

/// `fx.withgradient` in one call: walk each argument for its tensors, open the tape,
/// call `f(*args)`, run the backward pass from its scalar loss (`f`'s result, or the first
/// element of a tuple it returns) and rebuild one gradient tree per argument. Returns
/// `(value, gradients)`. A result holding no Tensor loss goes through
/// `_autodiff._loss_of`, which raises TypeError or, for a constant, lets every gradient
/// be None.
#[pyfunction]
fn value_and_grad<'py>(py: Python<'py>, f: &Bound<'py, PyAny>, args: &Bound<'py, PyTuple>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
    static HELPERS: PyOnceLock<(Py<PyAny>, Py<PyAny>)> = PyOnceLock::new();
    let (as_arg, loss_of) = HELPERS.get_or_try_init(py, || -> PyResult<_> {
        let m = py.import("flux_rs._autodiff")?;
        Ok((m.getattr("_as_arg")?.unbind(), m.getattr("_loss_of")?.unbind()))
    })?;
    // floats and float arrays become Tensors (`_as_arg`) so that they can be
    // differentiated; a float argument gets a float gradient back
    let convert = |a: &Bound<'py, PyAny>| a.is_instance_of::<PyFloat>() || a.cast::<numpy::PyUntypedArray>().is_ok();
    let orig = args;
    let args = if args.iter().any(|a| convert(&a)) {
        PyTuple::new(py, args.iter().map(|a| if convert(&a) { as_arg.bind(py).call1((a,)) } else { Ok(a) }).collect::<PyResult<Vec<_>>>()?)?
    } else {
        args.clone()
    };
    let (val, grads) = record_and_rebuild(py, f, &args)?;
    let Some(grads) = grads else {
        loss_of.bind(py).call1((&val,))?; // raises for a non-scalar result
        return Ok((val, PyTuple::new(py, orig.iter().map(|_| py.None()))?));
    };
    let grads = grads
        .iter()
        .zip(orig.iter())
        .map(|(g, a)| if a.is_exact_instance_of::<PyFloat>() && !g.is_none() { g.call_method0("item") } else { Ok(g) })
        .collect::<PyResult<Vec<_>>>()?;
    Ok((val, PyTuple::new(py, grads)?))
}

/// Closes this thread's tape when dropped (a no-op once the backward pass has closed it):
/// on every way out of `record_and_rebuild`, an error, no loss, or a Rust panic that pyo3
/// resumes when `f` gives back a PanicException. A tape left open would make every later
/// gradient on this thread fail as "nested".
struct OpenTape;

impl Drop for OpenTape {
    fn drop(&mut self) { autodiff::abort() }
}

fn record_and_rebuild<'py>(py: Python<'py>, f: &Bound<'py, PyAny>, args: &Bound<'py, PyTuple>) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyTuple>>)> {
    let mut params = crate::tree::Params::default();
    let plans = args.iter().map(|a| crate::tree::plan(&a, &mut params)).collect::<PyResult<Vec<_>>>()?;
    autodiff::start().py()?;
    let _open = OpenTape;
    for p in &params.list {
        autodiff::watch(&p.borrow().t); // borrowed only here and at the end: f may assign_ (BatchNorm's running stats)
    }
    let val = f.call1(args)?;
    let first = match val.cast::<PyTuple>() {
        Ok(t) if !t.is_empty() => t.get_item(0)?,
        _ => val.clone(),
    };
    let Ok(loss) = first.cast::<PyTensor>() else {
        return Ok((val, None));
    };
    let loss = loss.borrow();
    let refs: Vec<PyRef<'py, PyTensor>> = params.list.iter().map(|p| p.borrow()).collect();
    let gs = PyList::new(py, backward(py, &loss.t, &refs)?)?;
    let trees = plans.iter().map(|p| p.rebuild(py, &gs)).collect::<PyResult<Vec<_>>>()?;
    Ok((val, Some(PyTuple::new(py, trees)?)))
}

/// Is a gradient being recorded on this thread? (Layers in automatic mode train only then.)
#[pyfunction]
fn is_recording() -> bool { autodiff::is_recording() }

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tape_start, m)?)?;
    m.add_function(wrap_pyfunction!(tape_abort, m)?)?;
    m.add_function(wrap_pyfunction!(tape_finish, m)?)?;
    m.add_function(wrap_pyfunction!(is_recording, m)?)?;
    m.add_function(wrap_pyfunction!(value_and_grad, m)?)?;
    Ok(())
}
