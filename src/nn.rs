//! Layers' kernels, activations, losses, initialisers and random numbers.
use flux_core::nn::{self, losses, Activation};
use flux_core::tensor::elementwise::UnaryOp;
use flux_core::tensor::random::{self, Rng};
use flux_core::{DType, Tensor};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::convert::{dtype_from_name, maybe_detach, to_tensor};
use crate::errors::IntoPyResult;
use crate::tensor::PyTensor;

/// A seeded random generator (ChaCha8): `fx.Rng(42)`. Pass it as `rng=` for reproducible
/// initialisation, dropout masks and shuffling.
#[pyclass(name = "Rng", module = "flux_rs")]
#[derive(Clone)]
pub struct PyRng {
    pub r: Rng,
}

#[pymethods]
impl PyRng {
    #[new]
    fn new(seed: u64) -> Self { PyRng { r: Rng::seed(seed) } }
    /// A random permutation of range(n).
    fn permutation(&mut self, n: usize) -> Vec<usize> { self.r.permutation(n) }
    fn __repr__(&self) -> String { "Rng(...)".into() }
}

/// Run `f` with `rng` when given, else with the global generator.
pub fn with_rng<R>(rng: Option<&Bound<'_, PyRng>>, f: impl FnOnce(&mut Rng) -> R) -> R {
    match rng {
        Some(r) => f(&mut r.borrow_mut().r),
        None => random::with_global(f),
    }
}

/// Reseed the global generator.
#[pyfunction]
fn seed(n: u64) { random::seed(n) }

fn unary_op(name: &str, param: Option<f64>) -> PyResult<UnaryOp> {
    Ok(match name {
        "leakyrelu" => UnaryOp::LeakyRelu(param.unwrap_or(0.01)),
        "elu" => UnaryOp::Elu(param.unwrap_or(1.0)),
        "neg" => UnaryOp::Neg,
        "exp" => UnaryOp::Exp,
        "log" => UnaryOp::Log,
        "sqrt" => UnaryOp::Sqrt,
        "abs" => UnaryOp::Abs,
        "square" => UnaryOp::Square,
        "sign" => UnaryOp::Sign,
        other => match Activation::from_name(other).py()? {
            Activation::Unary(op) => op,
            Activation::Identity => return Err(PyValueError::new_err("identity is not a unary kernel")),
        },
    })
}

/// Apply an elementwise function by name (`"relu"`, `"leakyrelu"` with slope `param`, …).
#[pyfunction]
#[pyo3(signature = (x, name, param=None))]
fn unary(py: Python<'_>, x: &Bound<'_, PyAny>, name: &str, param: Option<f64>) -> PyResult<PyTensor> {
    let op = unary_op(name, param)?;
    let t = to_tensor(x, None)?;
    Ok(PyTensor::new(maybe_detach(py, t.numel(), || t.unary(op)).py()?))
}

#[pyfunction]
#[pyo3(signature = (x, dim=-1, log=false))]
fn softmax(py: Python<'_>, x: &Bound<'_, PyAny>, dim: isize, log: bool) -> PyResult<PyTensor> {
    let t = to_tensor(x, None)?;
    Ok(PyTensor::new(maybe_detach(py, t.numel(), || if log { t.logsoftmax(dim) } else { t.softmax(dim) }).py()?))
}

/// The Dense kernel: `act(x @ w.T + b)` in one call.
#[pyfunction]
#[pyo3(signature = (x, w, b, act, param=None))]
fn dense(py: Python<'_>, x: PyRef<'_, PyTensor>, w: PyRef<'_, PyTensor>, b: Option<PyRef<'_, PyTensor>>, act: &str, param: Option<f64>) -> PyResult<PyTensor> {
    let a = if act == "identity" { Activation::Identity } else { Activation::Unary(unary_op(act, param)?) };
    let (x, w) = (&x.t, &w.t);
    let b = b.as_ref().map(|b| &b.t);
    let work = x.numel() * w.shape().first().copied().unwrap_or(1);
    Ok(PyTensor::new(maybe_detach(py, work, || nn::linear(x, w, b, a)).py()?))
}

/// Losses by name, prediction first.
#[pyfunction]
#[pyo3(signature = (name, yhat, y, agg="mean", dims=-1, eps=None))]
fn loss(py: Python<'_>, name: &str, yhat: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>, agg: &str, dims: isize, eps: Option<f64>) -> PyResult<PyTensor> {
    let yh = to_tensor(yhat, None)?;
    let yt = to_tensor(y, Some(yh.dtype()))?;
    let agg = losses::Agg::from_name(agg).py()?;
    let n = yh.numel();
    let out = maybe_detach(py, n, || match name {
        "mse" => losses::mse(&yh, &yt, agg),
        "crossentropy" => losses::crossentropy(&yh, &yt, dims, agg, eps),
        "logitcrossentropy" => losses::logitcrossentropy(&yh, &yt, dims, agg),
        _ => Err(flux_core::Error::Value(format!("unknown loss {name:?}"))),
    });
    Ok(PyTensor::new(out.py()?))
}

/// A weight initialiser by name for `shape`.
#[pyfunction]
#[pyo3(signature = (name, shape, dtype="float32", gain=None, rng=None))]
fn init(name: &str, shape: Vec<usize>, dtype: &str, gain: Option<f64>, rng: Option<&Bound<'_, PyRng>>) -> PyResult<PyTensor> {
    let dt = dtype_from_name(dtype)?;
    let t = with_rng(rng, |r| -> PyResult<Tensor> {
        Ok(match name {
            "glorot_uniform" => nn::init::glorot_uniform(&shape, gain.unwrap_or(1.0), dt, r),
            "glorot_normal" => nn::init::glorot_normal(&shape, gain.unwrap_or(1.0), dt, r),
            "kaiming_uniform" => nn::init::kaiming_uniform(&shape, gain.unwrap_or(2f64.sqrt()), dt, r),
            "kaiming_normal" => nn::init::kaiming_normal(&shape, gain.unwrap_or(2f64.sqrt()), dt, r),
            "rand" => r.uniform_tensor(&shape, 0.0, 1.0, dt),
            "randn" => r.normal_tensor(&shape, 0.0, 1.0, dt),
            _ => return Err(PyValueError::new_err(format!("unknown initialiser {name:?}"))),
        })
    })?;
    Ok(PyTensor::new(t))
}

/// One-hot rows: `out[i, idx[i]] = 1` for `n` classes.
#[pyfunction]
#[pyo3(signature = (idx, n, dtype="float32"))]
fn onehot(idx: Vec<usize>, n: usize, dtype: &str) -> PyResult<PyTensor> {
    let dt = dtype_from_name(dtype)?;
    let mut v = vec![0f64; idx.len() * n];
    for (row, &i) in idx.iter().enumerate() {
        v[row * n + i] = 1.0;
    }
    let t = Tensor::from_vec(v, &[idx.len(), n]).py()?;
    Ok(PyTensor::new(if dt == DType::F64 { t } else { t.cast(dt).py()? }))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRng>()?;
    m.add_function(wrap_pyfunction!(seed, m)?)?;
    m.add_function(wrap_pyfunction!(unary, m)?)?;
    m.add_function(wrap_pyfunction!(softmax, m)?)?;
    m.add_function(wrap_pyfunction!(dense, m)?)?;
    m.add_function(wrap_pyfunction!(loss, m)?)?;
    m.add_function(wrap_pyfunction!(init, m)?)?;
    m.add_function(wrap_pyfunction!(onehot, m)?)?;
    Ok(())
}
