//! The normalisation, dropout and embedding layers' calls: each Python layer holds its
//! parameters and running statistics and calls one of these, which calls one flux-core
//! function (`flux_core::nn::norm`, `flux_core::nn::dropout`, `flux_core::nn::embedding`).
use flux_core::nn::norm::{self as knorm, NormOpts};
use flux_core::Tensor;
use pyo3::prelude::*;

use crate::convert::{maybe_detach, to_tensor};
use crate::errors::IntoPyResult;
use crate::tensor::PyTensor;

/// The layer's mode: `None` is Flux's automatic mode (training while a gradient is recorded).
fn training(active: Option<bool>) -> bool { active.unwrap_or_else(flux_core::autodiff::is_recording) }

fn opts(eps: f64, momentum: f64, act: &str, param: Option<f64>) -> PyResult<NormOpts> {
    Ok(NormOpts { eps, momentum, act: flux_core::nn::Activation::parse(act, param).py()? })
}

fn affine<'a>(g: &'a Option<PyRef<'_, PyTensor>>, b: &'a Option<PyRef<'_, PyTensor>>) -> Option<(&'a Tensor, &'a Tensor)> {
    g.as_ref().zip(b.as_ref()).map(|(g, b)| (&g.t, &b.t))
}

fn running<'a>(m: &'a mut Option<PyRefMut<'_, PyTensor>>, v: &'a mut Option<PyRefMut<'_, PyTensor>>) -> Option<(&'a mut Tensor, &'a mut Tensor)> {
    m.as_mut().zip(v.as_mut()).map(|(m, v)| (&mut m.t, &mut v.t))
}

/// A norm with running statistics: `f` (batch or instance norm) with the Python layer's fields.
type TrackedNorm = fn(&Tensor, usize, Option<(&Tensor, &Tensor)>, Option<(&mut Tensor, &mut Tensor)>, bool, &NormOpts) -> flux_core::Result<Tensor>;

#[allow(clippy::too_many_arguments)]
fn tracked(
    py: Python<'_>, f: TrackedNorm, x: &Bound<'_, PyAny>, chs: usize, gamma: Option<PyRef<'_, PyTensor>>, beta: Option<PyRef<'_, PyTensor>>,
    mut running_mean: Option<PyRefMut<'_, PyTensor>>, mut running_var: Option<PyRefMut<'_, PyTensor>>, active: Option<bool>, eps: f64,
    momentum: f64, act: &str, param: Option<f64>,
) -> PyResult<PyTensor> {
    let x = to_tensor(x, None)?;
    let (o, train) = (opts(eps, momentum, act, param)?, training(active));
    let (aff, run) = (affine(&gamma, &beta), running(&mut running_mean, &mut running_var));
    Ok(PyTensor::new(maybe_detach(py, x.numel(), || f(&x, chs, aff, run, train, &o)).py()?))
}

/// BatchNorm's forward: `λ(γ·x̂ + β)`; in training (`active`, or while a gradient is
/// recorded when `active` is None) with batch statistics and the running ones `running_mean`,
/// `running_var` updated in place, else with the running ones.
#[pyfunction]
#[pyo3(signature = (x, chs, gamma, beta, running_mean, running_var, active, eps, momentum, act="identity", param=None))]
#[allow(clippy::too_many_arguments)]
fn batchnorm(
    py: Python<'_>, x: &Bound<'_, PyAny>, chs: usize, gamma: Option<PyRef<'_, PyTensor>>, beta: Option<PyRef<'_, PyTensor>>,
    running_mean: Option<PyRefMut<'_, PyTensor>>, running_var: Option<PyRefMut<'_, PyTensor>>, active: Option<bool>, eps: f64,
    momentum: f64, act: &str, param: Option<f64>,
) -> PyResult<PyTensor> {
    tracked(py, knorm::batch_norm, x, chs, gamma, beta, running_mean, running_var, active, eps, momentum, act, param)
}

/// InstanceNorm's forward (statistics per sample and channel), as `batchnorm`.
#[pyfunction]
#[pyo3(signature = (x, chs, gamma, beta, running_mean, running_var, active, eps, momentum, act="identity", param=None))]
#[allow(clippy::too_many_arguments)]
fn instancenorm(
    py: Python<'_>, x: &Bound<'_, PyAny>, chs: usize, gamma: Option<PyRef<'_, PyTensor>>, beta: Option<PyRef<'_, PyTensor>>,
    running_mean: Option<PyRefMut<'_, PyTensor>>, running_var: Option<PyRefMut<'_, PyTensor>>, active: Option<bool>, eps: f64,
    momentum: f64, act: &str, param: Option<f64>,
) -> PyResult<PyTensor> {
    tracked(py, knorm::instance_norm, x, chs, gamma, beta, running_mean, running_var, active, eps, momentum, act, param)
}

/// GroupNorm's forward: `chs` channels in `groups` groups.
#[pyfunction]
#[pyo3(signature = (x, chs, groups, gamma, beta, eps, act="identity", param=None))]
#[allow(clippy::too_many_arguments)]
fn groupnorm(
    py: Python<'_>, x: &Bound<'_, PyAny>, chs: usize, groups: usize, gamma: Option<PyRef<'_, PyTensor>>, beta: Option<PyRef<'_, PyTensor>>,
    eps: f64, act: &str, param: Option<f64>,
) -> PyResult<PyTensor> {
    let x = to_tensor(x, None)?;
    let o = opts(eps, 0.0, act, param)?;
    let aff = affine(&gamma, &beta);
    Ok(PyTensor::new(maybe_detach(py, x.numel(), || knorm::group_norm(&x, chs, groups, aff, &o)).py()?))
}

/// LayerNorm's forward over the trailing dimensions `size`, with scale `gamma` and bias `beta` of `∏size` entries.
#[pyfunction]
#[pyo3(signature = (x, size, gamma, beta, eps, act="identity", param=None))]
#[allow(clippy::too_many_arguments)]
fn layernorm(
    py: Python<'_>, x: &Bound<'_, PyAny>, size: Vec<usize>, gamma: Option<PyRef<'_, PyTensor>>, beta: Option<PyRef<'_, PyTensor>>, eps: f64,
    act: &str, param: Option<f64>,
) -> PyResult<PyTensor> {
    let x = to_tensor(x, None)?;
    let o = opts(eps, 0.0, act, param)?;
    let aff = affine(&gamma, &beta);
    Ok(PyTensor::new(maybe_detach(py, x.numel(), || knorm::layer_norm(&x, &size, aff, &o)).py()?))
}

/// Embedding's lookup: rows of `w` for the integer array `idx` (shape idx.shape + w.shape[1:]);
/// row `padding_idx` reads as zeros and gets no gradient.
#[pyfunction]
#[pyo3(signature = (w, idx, padding_idx=None))]
fn embedding(py: Python<'_>, w: PyRef<'_, PyTensor>, idx: &Bound<'_, PyAny>, padding_idx: Option<usize>) -> PyResult<PyTensor> {
    let w = &w.t;
    if w.ndim() == 0 {
        return Err(pyo3::exceptions::PyValueError::new_err("an embedding table needs at least one dimension"));
    }
    let (i, shape) = crate::layers::indices(idx, w.shape()[0])?;
    let work = i.len() * w.numel() / w.shape()[0].max(1);
    Ok(PyTensor::new(maybe_detach(py, work, || flux_core::ops::embedding::embedding(w, &i, &shape, padding_idx)).py()?))
}

/// Test hook: build the Rust layer `kind` (`"BatchNorm"`, `"InstanceNorm"`, `"GroupNorm"`,
/// `"LayerNorm"`, `"Dropout"`, `"AlphaDropout"`) with the given parameters (`gamma`,
/// `beta`, `running_mean`/`running_var`, copied in), run its `Module::forward_t(x, train)`, and
/// return `(y, running mean, running var)`: the Python layers must give the same bits.
/// `load_from`: first load the parameters and running statistics from a safetensors file
/// by their Rust paths (`Module::parameters_mut`, `Module::set_buffer`, as a Rust program
/// resumes); `save_to`: afterwards save them there under those paths with
/// `flux_core::io::save` (checkpoints between Rust and Python).
#[pyfunction]
#[pyo3(signature = (kind, x, train, chs=0, gamma=None, beta=None, running_mean=None, running_var=None, eps=1e-5, momentum=0.1, act="identity", param=None, groups=1, size=None, p=0.0, seed=None, dims=None, load_from=None, save_to=None))]
#[allow(clippy::too_many_arguments)]
fn _module_forward(
    kind: &str, x: &Bound<'_, PyAny>, train: bool, chs: usize, gamma: Option<PyRef<'_, PyTensor>>, beta: Option<PyRef<'_, PyTensor>>,
    running_mean: Option<PyRef<'_, PyTensor>>, running_var: Option<PyRef<'_, PyTensor>>, eps: f64, momentum: f64, act: &str, param: Option<f64>, groups: usize,
    size: Option<Vec<usize>>, p: f64, seed: Option<u64>, dims: Option<Vec<isize>>, load_from: Option<String>, save_to: Option<String>,
) -> PyResult<(PyTensor, Option<PyTensor>, Option<PyTensor>)> {
    use flux_core::nn::{dropout as kd, Module};
    let x = to_tensor(x, None)?;
    let o = opts(eps, momentum, act, param)?;
    let dt = x.dtype();
    let (g, b) = (gamma.as_ref().map(|t| t.t.clone()), beta.as_ref().map(|t| t.t.clone()));
    let set = |m: &dyn Module| -> PyResult<()> {
        if let (Some(mu), Some(v)) = (&running_mean, &running_var) {
            m.set_buffer("μ", &mu.t).py()?;
            m.set_buffer("σ2", &v.t).py()?;
        }
        Ok(())
    };
    let mut m: Box<dyn Module> = match kind {
        "BatchNorm" => {
            let mut l = knorm::BatchNorm::new(chs).dtype(dt).track_stats(running_mean.is_some());
            (l.gamma, l.beta, l.opts) = (g, b, o);
            Box::new(l)
        }
        "InstanceNorm" => {
            let mut l = knorm::InstanceNorm::new(chs).dtype(dt).track_stats(running_mean.is_some());
            (l.gamma, l.beta, l.opts) = (g, b, o);
            Box::new(l)
        }
        "GroupNorm" => {
            let mut l = knorm::GroupNorm::new(chs, groups).py()?.dtype(dt);
            (l.gamma, l.beta, l.opts) = (g, b, o);
            Box::new(l)
        }
        "LayerNorm" => {
            let mut l = knorm::LayerNorm::new(&size.unwrap_or_default()).dtype(dt);
            (l.gamma, l.beta, l.opts) = (g, b, o);
            Box::new(l)
        }
        "Dropout" => {
            let mut l = kd::Dropout::new(p).py()?;
            l.dims = dims;
            Box::new(match seed { Some(s) => l.seed(s), None => l })
        }
        "AlphaDropout" => {
            let l = kd::AlphaDropout::new(p).py()?;
            Box::new(match seed { Some(s) => l.seed(s), None => l })
        }
        _ => return Err(pyo3::exceptions::PyValueError::new_err(format!("unknown layer {kind:?}"))),
    };
    set(&*m)?;
    if let Some(path) = load_from {
        let ck = flux_core::io::load(&path).py()?;
        let get = |name: &str| {
            ck.tensors.iter().find(|(n, _)| n == name).map(|(_, v)| v).ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(format!("{path} has no tensor {name:?}")))
        };
        for (name, t) in m.parameters_mut() {
            *t = get(&name)?.cast(t.dtype()).py()?;
        }
        for (name, _) in m.buffers() {
            m.set_buffer(&name, get(&name)?).py()?;
        }
    }
    let y = m.forward_t(&x, train).py()?;
    if let Some(path) = save_to {
        // the parameters and the running statistics, by path (as `fx.save` writes a layer)
        let ts: Vec<(String, Tensor)> = m.parameters().into_iter().map(|(n, t)| (n, t.clone())).chain(m.buffers()).collect();
        flux_core::io::save(&path, &ts, &Default::default()).py()?;
    }
    let bufs = m.buffers();
    let find = |k: &str| bufs.iter().find(|(p, _)| p == k).map(|(_, t)| PyTensor::new(t.clone()));
    Ok((PyTensor::new(y), find("μ"), find("σ2")))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(batchnorm, m)?)?;
    m.add_function(wrap_pyfunction!(instancenorm, m)?)?;
    m.add_function(wrap_pyfunction!(groupnorm, m)?)?;
    m.add_function(wrap_pyfunction!(layernorm, m)?)?;
    m.add_function(wrap_pyfunction!(embedding, m)?)?;
    m.add_function(wrap_pyfunction!(_module_forward, m)?)?;
    Ok(())
}
