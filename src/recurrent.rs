//! The recurrent layers' one call: a whole sequence (RNN, LSTM, GRU) or one cell step,
//! as one fused flux-core op.
use flux_core::nn::recurrent::{self as rec, State};
use flux_core::nn::Activation;
use flux_core::ops::recurrent::Cell;
use flux_core::Tensor;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;

use crate::convert::{maybe_detach, to_tensor};
use crate::errors::IntoPyResult;
use crate::tensor::PyTensor;

fn cell(kind: &str, act: &str, param: Option<f64>) -> PyResult<Cell> {
    Ok(match kind {
        "lstm" => Cell::Lstm,
        "gru" => Cell::Gru,
        "rnn" => Cell::Rnn(Activation::parse(act, param).py()?),
        _ => return Err(PyValueError::new_err(format!("recurrent kind must be 'rnn', 'lstm' or 'gru', got {kind:?}"))),
    })
}

/// `x` as a Tensor of `w`'s dtype: as it is when it already is one, else through
/// `layers._input_like` (conversion, and Flux's one-time warning for float64 input).
fn input_like<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, w: &Bound<'py, PyTensor>) -> PyResult<Tensor> {
    static INPUT_LIKE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    if let Ok(t) = x.cast::<PyTensor>() {
        if let Ok(t) = t.try_borrow() {
            if t.t.dtype() == w.borrow().t.dtype() {
                return Ok(t.t.clone());
            }
        }
    }
    let f = INPUT_LIKE.get_or_try_init(py, || py.import("flux_rs.layers")?.getattr("_input_like").map(Bound::unbind))?;
    Ok(f.bind(py).call1((x, w))?.cast_into::<PyTensor>()?.borrow().t.clone())
}

/// The state argument: a tensor (RNN, GRU) or a pair `(h, c)` (LSTM), each converted to
/// the layer's dtype.
fn state_arg(cell: Cell, s: &Bound<'_, PyAny>, like: flux_core::DType) -> PyResult<State> {
    if cell == Cell::Lstm {
        let pair = s.cast::<PyTuple>().map_err(|_| PyTypeError::new_err(format!("LSTM state must be a tuple (h, c), got {}", s.get_type().name().map(|n| n.to_string()).unwrap_or_default())))?;
        if pair.len() != 2 {
            return Err(PyValueError::new_err(format!("LSTM state must be a tuple (h, c), got {} elements", pair.len())));
        }
        return pair.iter().map(|t| to_tensor(&t, Some(like))).collect();
    }
    Ok(vec![to_tensor(s, Some(like))?])
}

fn state_out(py: Python<'_>, mut st: State) -> PyResult<Py<PyAny>> {
    if st.len() == 2 {
        let c = PyTensor::new(st.pop().expect("two"));
        let h = PyTensor::new(st.pop().expect("two"));
        return Ok((h, c).into_pyobject(py)?.into_any().unbind());
    }
    Ok(Py::new(py, PyTensor::new(st.pop().expect("one")))?.into_any())
}

/// A recurrent layer's forward pass as one fused op, `kind` being rnn, lstm or gru.
/// `act` and `param` are the RNN's activation. A sequence (`step=False`, x (batch, time, in)
/// or (time, in)) returns (states of every step, last state); a cell step (x (batch, in)
/// or (in,)) returns (h, new state). The state is a Tensor, or (h, c) for the LSTM.
#[pyfunction]
#[pyo3(signature = (kind, x, wi, wh, b, state=None, act="tanh", param=None, step=false))]
#[allow(clippy::too_many_arguments)]
fn recurrent<'py>(
    py: Python<'py>, kind: &str, x: &Bound<'py, PyAny>, wi: &Bound<'py, PyTensor>, wh: PyRef<'py, PyTensor>, b: Option<PyRef<'py, PyTensor>>,
    state: Option<&Bound<'py, PyAny>>, act: &str, param: Option<f64>, step: bool,
) -> PyResult<(PyTensor, Py<PyAny>)> {
    let c = cell(kind, act, param)?;
    let x = input_like(py, x, wi)?;
    let wi = wi.borrow().t.clone();
    let st = state.map(|s| state_arg(c, s, wi.dtype())).transpose()?;
    let (wh, b) = (&wh.t, b.as_ref().map(|b| &b.t));
    let work = x.numel() * wh.shape().first().copied().unwrap_or(1);
    if step {
        let st = maybe_detach(py, work, || rec::step(c, &x, &wi, wh, b, st.as_deref())).py()?;
        return Ok((PyTensor::new(st[0].clone()), state_out(py, st)?));
    }
    let (ys, st) = maybe_detach(py, work, || rec::sequence(c, &x, &wi, wh, b, st.as_deref())).py()?;
    Ok((PyTensor::new(ys), state_out(py, st)?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(recurrent, m)?)?;
    Ok(())
}
