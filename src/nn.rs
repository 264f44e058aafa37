//! Layers' kernels, activations, losses, initialisers and random numbers.
use flux_core::nn::{self, losses, Activation};
use flux_core::tensor::elementwise::UnaryOp;
use flux_core::tensor::random::{self, Rng};
use flux_core::{DType, Tensor};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::convert::{dtype_from_name, join_device, maybe_detach, to_tensor};
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
    fn new(seed: &Bound<'_, PyAny>) -> PyResult<Self> { Ok(PyRng { r: Rng::seed(crate::convert::seed_arg(seed, "seed")?) }) }
    /// A random permutation of range(n).
    fn permutation(&mut self, n: usize) -> Vec<usize> { self.r.permutation(n) }
    fn __repr__(&self) -> String { "Rng(...)".into() }
    /// The generator's exact position, `(seed_hex, stream, word_pos)`, for checkpoints.
    fn _getstate(&self) -> (String, u64, String) {
        let (seed, stream, pos) = flux_core::io::rng_state(&self.r);
        (seed.iter().map(|b| format!("{b:02x}")).collect(), stream, pos.to_string())
    }
    /// A generator at the position `_getstate` described.
    #[staticmethod]
    fn _fromstate(seed_hex: &str, stream: u64, word_pos: &str) -> PyResult<PyRng> {
        let bad = || PyValueError::new_err(format!("not a generator state: {seed_hex:?}, {word_pos:?}"));
        if seed_hex.len() != 64 || !seed_hex.is_ascii() {
            return Err(bad());
        }
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::from_str_radix(&seed_hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        let pos: u128 = word_pos.parse().map_err(|_| bad())?;
        Ok(PyRng { r: flux_core::io::rng_from_state(seed, stream, pos) })
    }
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
fn seed(n: &Bound<'_, PyAny>) -> PyResult<()> {
    random::seed(crate::convert::seed_arg(n, "seed")?);
    Ok(())
}

pub(crate) fn unary_op(name: &str, param: Option<f64>) -> PyResult<UnaryOp> {
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
        other => match Activation::from_name(other).py()?.unary_op() {
            Some(op) => op,
            None => return Err(PyValueError::new_err("identity is not a unary kernel")),
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

/// Softmax (or logsoftmax with `log=True`) along `dim`, computed stably.
#[pyfunction]
#[pyo3(signature = (x, dim=-1, log=false))]
fn softmax(py: Python<'_>, x: &Bound<'_, PyAny>, dim: isize, log: bool) -> PyResult<PyTensor> {
    let t = to_tensor(x, None)?;
    Ok(PyTensor::new(maybe_detach(py, t.numel(), || if log { t.logsoftmax(dim) } else { t.softmax(dim) }).py()?))
}

/// The Dense kernel: `act(x @ w.T + b)` in one call. An `x` that is not a Tensor of the
/// weight's dtype goes through `layers._input_like` first (conversion, and Flux's
/// one-time warning for float64 input to a float32 layer): the check costs nothing here,
/// where two `dtype` lookups in Python were a tenth of a tiny layer's call.
#[pyfunction]
#[pyo3(signature = (x, w, b, act, param=None))]
fn dense(py: Python<'_>, x: &Bound<'_, PyAny>, w: &Bound<'_, PyTensor>, b: Option<PyRef<'_, PyTensor>>, act: &str, param: Option<f64>) -> PyResult<PyTensor> {
    static INPUT_LIKE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let a = Activation::parse(act, param).py()?;
    let wr = w.borrow();
    let xb = match x.cast::<PyTensor>() {
        Ok(t) if t.try_borrow().is_ok_and(|t| t.t.dtype() == wr.t.dtype()) => t.clone(),
        _ => {
            let f = INPUT_LIKE.get_or_try_init(py, || py.import("flux_rs.layers")?.getattr("_input_like").map(Bound::unbind))?;
            f.bind(py).call1((x, w))?.cast_into::<PyTensor>()?
        }
    };
    let xr = xb.try_borrow()?;
    let (x, w) = (&xr.t, &wr.t);
    let b = b.as_ref().map(|b| &b.t);
    let work = x.numel() * w.shape().first().copied().unwrap_or(1);
    Ok(PyTensor::new(maybe_detach(py, work, || nn::linear(x, w, b, a)).py()?))
}

/// Losses by name, prediction first, class dimension `dims`. `param` is the loss's own
/// number: huber `delta`, dice `smooth`, tversky `beta`, focal `gamma`, siamese `margin`.
#[pyfunction]
#[pyo3(signature = (name, yhat, y, agg="mean", dims=-1, eps=None, param=None))]
#[allow(clippy::too_many_arguments)]
fn loss(py: Python<'_>, name: &str, yhat: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>, agg: &str, dims: isize, eps: Option<f64>, param: Option<f64>) -> PyResult<PyTensor> {
    let yh = to_tensor(yhat, None)?;
    let yt = to_tensor(y, Some(yh.dtype()))?;
    let [yh, yt]: [Tensor; 2] = join_device(&[yhat, y], vec![yh, yt])?.try_into().expect("two tensors");
    let agg = losses::Agg::from_name(agg).py()?;
    let p = |d: f64| param.unwrap_or(d);
    let out = maybe_detach(py, yh.numel(), || match name {
        "mae" => losses::mae(&yh, &yt, agg),
        "mse" => losses::mse(&yh, &yt, agg),
        "msle" => losses::msle(&yh, &yt, agg, eps),
        "huber_loss" => losses::huber_loss(&yh, &yt, agg, p(1.0)),
        "crossentropy" => losses::crossentropy(&yh, &yt, dims, agg, eps),
        "logitcrossentropy" => losses::logitcrossentropy(&yh, &yt, dims, agg),
        "binarycrossentropy" => losses::binarycrossentropy(&yh, &yt, agg, eps),
        "logitbinarycrossentropy" => losses::logitbinarycrossentropy(&yh, &yt, agg),
        "kldivergence" => losses::kldivergence(&yh, &yt, dims, agg, eps),
        "poisson_loss" => losses::poisson_loss(&yh, &yt, agg),
        "hinge_loss" => losses::hinge_loss(&yh, &yt, agg),
        "squared_hinge_loss" => losses::squared_hinge_loss(&yh, &yt, agg),
        "dice_coeff_loss" => losses::dice_coeff_loss(&yh, &yt, p(1.0)),
        "tversky_loss" => losses::tversky_loss(&yh, &yt, p(0.7)),
        "binary_focal_loss" => losses::binary_focal_loss(&yh, &yt, agg, p(2.0), eps),
        "focal_loss" => losses::focal_loss(&yh, &yt, dims, agg, p(2.0), eps),
        "siamese_contrastive_loss" => losses::siamese_contrastive_loss(&yh, &yt, agg, p(1.0)),
        _ => Err(flux_core::Error::Value(format!("unknown loss {name:?}"))),
    });
    Ok(PyTensor::new(out.py()?))
}

/// `y·(1 − α) + α/size(y, dims)`; `dims=None` for binary labels (`+ α/2`).
#[pyfunction]
#[pyo3(signature = (y, alpha, dims=None))]
fn label_smoothing(y: &Bound<'_, PyAny>, alpha: f64, dims: Option<isize>) -> PyResult<PyTensor> {
    let y = to_tensor(y, None)?;
    Ok(PyTensor::new(losses::label_smoothing(&y, alpha, dims).py()?))
}

/// CTC negative log-likelihood of `labels` under logits of shape (time, classes); blank last.
#[pyfunction]
fn ctc_loss(py: Python<'_>, yhat: &Bound<'_, PyAny>, labels: Vec<usize>) -> PyResult<PyTensor> {
    let yh = to_tensor(yhat, None)?;
    Ok(PyTensor::new(maybe_detach(py, yh.numel() * (2 * labels.len() + 1), || losses::ctc_loss(&yh, &labels)).py()?))
}

/// A weight initialiser by name for `shape`; unused keywords are ignored.
#[pyfunction]
#[pyo3(signature = (name, shape, dtype="float32", gain=None, rng=None, mean=None, std=None, lo=None, hi=None, sparsity=None, shift=None))]
#[allow(clippy::too_many_arguments)]
fn init(
    name: &str, shape: Vec<usize>, dtype: &str, gain: Option<f64>, rng: Option<&Bound<'_, PyRng>>, mean: Option<f64>, std: Option<f64>,
    lo: Option<f64>, hi: Option<f64>, sparsity: Option<f64>, shift: Option<Vec<isize>>,
) -> PyResult<PyTensor> {
    use nn::init as I;
    let dt = dtype_from_name(dtype)?;
    // random draws are made in f64 first: reserve that much before drawing
    flux_core::tensor::alloc::reserve(&shape, DType::F64).py()?;
    let g = |d: f64| gain.unwrap_or(d);
    let t = with_rng(rng, |r| -> flux_core::Result<Tensor> {
        Ok(match name {
            "glorot_uniform" => I::glorot_uniform(&shape, g(1.0), dt, r),
            "glorot_normal" => I::glorot_normal(&shape, g(1.0), dt, r),
            "kaiming_uniform" => I::kaiming_uniform(&shape, g(2f64.sqrt()), dt, r),
            "kaiming_normal" => I::kaiming_normal(&shape, g(2f64.sqrt()), dt, r),
            "truncated_normal" => I::truncated_normal(&shape, mean.unwrap_or(0.0), std.unwrap_or(1.0), lo.unwrap_or(-2.0), hi.unwrap_or(2.0), dt, r)?,
            "lecun_normal" => I::lecun_normal(&shape, g(1.0), dt, r)?,
            "orthogonal" => I::orthogonal(&shape, g(1.0), dt, r)?,
            "sparse_init" => {
                let s = sparsity.ok_or_else(|| flux_core::Error::Value("sparse_init needs sparsity=".into()))?;
                I::sparse_init(&shape, s, std.unwrap_or(0.01), dt, r)?
            }
            "identity_init" => I::identity_init(&shape, g(1.0), shift.as_deref().unwrap_or(&[]), dt)?,
            "rand" => r.uniform_tensor(&shape, 0.0, 1.0, dt),
            "randn" => r.normal_tensor(&shape, 0.0, 1.0, dt),
            _ => return Err(flux_core::Error::Value(format!("unknown initialiser {name:?}"))),
        })
    });
    Ok(PyTensor::new(t.py()?))
}

/// One-hot rows: `out[i, idx[i]] = 1` for `n` classes.
#[pyfunction]
#[pyo3(signature = (idx, n, dtype="float32"))]
fn onehot(idx: Vec<usize>, n: usize, dtype: &str) -> PyResult<PyTensor> {
    Ok(PyTensor::new(flux_core::data::onehot(&idx, n, dtype_from_name(dtype)?).py()?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRng>()?;
    m.add_function(wrap_pyfunction!(seed, m)?)?;
    m.add_function(wrap_pyfunction!(unary, m)?)?;
    m.add_function(wrap_pyfunction!(softmax, m)?)?;
    m.add_function(wrap_pyfunction!(dense, m)?)?;
    m.add_function(wrap_pyfunction!(loss, m)?)?;
    m.add_function(wrap_pyfunction!(label_smoothing, m)?)?;
    m.add_function(wrap_pyfunction!(ctc_loss, m)?)?;
    m.add_function(wrap_pyfunction!(init, m)?)?;
    m.add_function(wrap_pyfunction!(onehot, m)?)?;
    Ok(())
}
