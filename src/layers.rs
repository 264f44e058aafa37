//! Kernels of the conv / pool / norm / dropout / embedding / resampling layers. Each
//! function checks and converts its arguments and calls one flux-core op.
use flux_core::nn::{conv::conv_layer, Activation};
use flux_core::tensor::conv::{self as kconv, ConvSpec};
use flux_core::tensor::pool::{self as kpool, PoolMode, PoolSpec};
use flux_core::tensor::{dropout as kdrop, gather, misc, norm};
use flux_core::Tensor;
use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;

use crate::convert::{join_device, maybe_detach, to_tensor};
use crate::errors::IntoPyResult;
use crate::nn::{with_rng, PyRng};
use crate::tensor::PyTensor;

fn spec(stride: Vec<usize>, pad_lo: Vec<usize>, pad_hi: Vec<usize>, dilation: Vec<usize>, groups: usize) -> ConvSpec {
    ConvSpec { stride, pad_lo, pad_hi, dilation, groups }
}

/// `act(conv(x, w) + b)`: cross-correlation of `x` (N, C, spatial...) with `w`
/// (O, C/groups, k...), plus bias, then the activation by name (the Conv layer in one
/// call; a relu is fused into the convolution).
#[pyfunction]
#[pyo3(signature = (x, w, b, stride, pad_lo, pad_hi, dilation, groups, act="identity", param=None))]
#[allow(clippy::too_many_arguments)]
fn conv(
    py: Python<'_>, x: &Bound<'_, PyAny>, w: PyRef<'_, PyTensor>, b: Option<PyRef<'_, PyTensor>>,
    stride: Vec<usize>, pad_lo: Vec<usize>, pad_hi: Vec<usize>, dilation: Vec<usize>, groups: usize, act: &str, param: Option<f64>,
) -> PyResult<PyTensor> {
    let act = Activation::parse(act, param).py()?;
    let x = to_tensor(x, Some(w.t.dtype()))?;
    let (w, b) = (&w.t, b.as_ref().map(|b| &b.t));
    let s = spec(stride, pad_lo, pad_hi, dilation, groups);
    let work = x.numel() * w.numel();
    Ok(PyTensor::new(maybe_detach(py, work, || conv_layer(&x, w, b, &s, act)).py()?))
}

/// Transposed convolution of `x` (N, C_in, spatial...) with `w` (C_in, C_out/groups, k...).
#[pyfunction]
#[pyo3(signature = (x, w, b, stride, pad_lo, pad_hi, dilation, groups, out_pad))]
#[allow(clippy::too_many_arguments)]
fn conv_transpose(
    py: Python<'_>, x: &Bound<'_, PyAny>, w: PyRef<'_, PyTensor>, b: Option<PyRef<'_, PyTensor>>,
    stride: Vec<usize>, pad_lo: Vec<usize>, pad_hi: Vec<usize>, dilation: Vec<usize>, groups: usize, out_pad: Vec<usize>,
) -> PyResult<PyTensor> {
    let x = to_tensor(x, Some(w.t.dtype()))?;
    let (w, b) = (&w.t, b.as_ref().map(|b| &b.t));
    let s = spec(stride, pad_lo, pad_hi, dilation, groups);
    let work = x.numel() * w.numel();
    Ok(PyTensor::new(maybe_detach(py, work, || kconv::conv_transpose(&x, w, b, &s, &out_pad)).py()?))
}

/// Max (`mode="max"`) or mean pooling of `x` (N, C, spatial...).
#[pyfunction]
#[pyo3(signature = (x, mode, window, stride, pad_lo, pad_hi))]
fn pool(py: Python<'_>, x: &Bound<'_, PyAny>, mode: &str, window: Vec<usize>, stride: Vec<usize>, pad_lo: Vec<usize>, pad_hi: Vec<usize>) -> PyResult<PyTensor> {
    let m = match mode {
        "max" => PoolMode::Max,
        "mean" => PoolMode::Mean,
        _ => return Err(PyValueError::new_err(format!("pooling mode must be 'max' or 'mean', got {mode:?}"))),
    };
    let x = to_tensor(x, None)?;
    let s = PoolSpec { window, stride, pad_lo, pad_hi };
    Ok(PyTensor::new(maybe_detach(py, x.numel(), || kpool::pool(&x, m, &s)).py()?))
}

/// Standardise `x` viewed as (p, c, q) per c slice: returns (x̂, mean, var).
#[pyfunction]
fn normalize(py: Python<'_>, x: &Bound<'_, PyAny>, p: usize, c: usize, q: usize, eps: f64) -> PyResult<(PyTensor, PyTensor, PyTensor)> {
    let x = to_tensor(x, None)?;
    let (y, m, v) = maybe_detach(py, x.numel(), || norm::normalize(&x, p, c, q, eps)).py()?;
    Ok((PyTensor::new(y), PyTensor::new(m), PyTensor::new(v)))
}

/// `x ⊙ mask`, the mask of `mask_shape` drawn from `rng` (or the global generator).
#[pyfunction]
#[pyo3(signature = (x, p, mask_shape, rng=None))]
fn dropout(x: &Bound<'_, PyAny>, p: f64, mask_shape: Vec<usize>, rng: Option<&Bound<'_, PyRng>>) -> PyResult<PyTensor> {
    let x = to_tensor(x, None)?;
    Ok(PyTensor::new(with_rng(rng, |r| kdrop::dropout(&x, p, &mask_shape, r)).py()?))
}

/// SELU-preserving alpha dropout.
#[pyfunction]
#[pyo3(signature = (x, p, rng=None))]
fn alpha_dropout(x: &Bound<'_, PyAny>, p: f64, rng: Option<&Bound<'_, PyRng>>) -> PyResult<PyTensor> {
    let x = to_tensor(x, None)?;
    Ok(PyTensor::new(with_rng(rng, |r| kdrop::alpha_dropout(&x, p, r)).py()?))
}

/// Integer indices from a numpy array, with negative entries rejected.
pub(crate) fn indices(idx: &Bound<'_, PyAny>, n: usize) -> PyResult<(Vec<usize>, Vec<usize>)> {
    let np = idx.py().import("numpy")?;
    let arr = np.call_method1("asarray", (idx,))?;
    let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
    if kind != "i" && kind != "u" {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!("indices must be integers, got an array of dtype {}", arr.getattr("dtype")?)));
    }
    // (not ascontiguousarray, which turns a 0-d index into a 1-d one)
    let kw = pyo3::types::PyDict::new(idx.py());
    kw.set_item("dtype", "int64")?;
    kw.set_item("order", "C")?;
    let arr = np.call_method("asarray", (arr,), Some(&kw))?;
    let a: PyReadonlyArrayDyn<'_, i64> = arr.extract()?;
    let shape = a.shape().to_vec();
    let mut out = Vec::with_capacity(a.len());
    for &i in a.as_slice()? {
        if i < 0 || i as usize >= n {
            return Err(PyIndexError::new_err(format!("index {i} is out of bounds for {n} rows")));
        }
        out.push(i as usize);
    }
    Ok((out, shape))
}

/// Rows of `src` picked by an integer array `idx`: shape idx.shape + src.shape[1:].
#[pyfunction]
fn gather_rows(py: Python<'_>, src: &Bound<'_, PyAny>, idx: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
    let s = to_tensor(src, None)?;
    if s.ndim() == 0 {
        return Err(PyValueError::new_err("gather needs a source with at least one dimension"));
    }
    let (i, shape) = indices(idx, s.shape()[0])?;
    Ok(PyTensor::new(maybe_detach(py, i.len(), || gather::gather(&s, &i, &shape)).py()?))
}

/// Rows of `src` added into `n` rows at positions `idx`.
#[pyfunction]
fn scatter_add(py: Python<'_>, src: &Bound<'_, PyAny>, idx: &Bound<'_, PyAny>, n: usize) -> PyResult<PyTensor> {
    let s = to_tensor(src, None)?;
    let (i, shape) = indices(idx, n)?;
    Ok(PyTensor::new(maybe_detach(py, s.numel(), || gather::scatter_add(&s, &i, &shape, n)).py()?))
}

/// `a` where `cond` is non-zero else `b`; host data `a` beside a Tensor `b` takes `b`'s
/// dtype, and host data joins the device of the first Tensor among `a`, `b`.
#[pyfunction]
fn where_(cond: &Bound<'_, PyAny>, a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
    let ta = match b.cast::<PyTensor>() {
        // so that fx.where(mask, 0.0, x) or a float64 array there keeps x's dtype
        Ok(tb) if !a.is_instance_of::<PyTensor>() => {
            let dt = to_tensor(tb.as_any(), None)?.dtype();
            to_tensor(a, Some(dt))?.cast(dt).py()?
        }
        _ => to_tensor(a, None)?,
    };
    let tb = to_tensor(b, Some(ta.dtype()))?;
    let tc = to_tensor(cond, Some(ta.dtype()))?;
    let [a, b, c]: [Tensor; 3] = join_device(&[a, b, cond], vec![ta, tb, tc])?.try_into().expect("three tensors");
    Ok(PyTensor::new(misc::where_(&c, &a, &b).py()?))
}

/// Clamp every element to [lo, hi].
#[pyfunction]
fn clamp(x: &Bound<'_, PyAny>, lo: f64, hi: f64) -> PyResult<PyTensor> {
    Ok(PyTensor::new(misc::clamp(&to_tensor(x, None)?, lo, hi).py()?))
}

/// Split along `axis` into pieces of the given sizes.
#[pyfunction]
fn split(x: &Bound<'_, PyAny>, sizes: Vec<usize>, axis: isize) -> PyResult<Vec<PyTensor>> {
    Ok(misc::split(&to_tensor(x, None)?, &sizes, axis).py()?.into_iter().map(PyTensor::new).collect())
}

/// Resample the spatial dims of `x` by `mode` ("nearest", "linear", "bilinear",
/// "trilinear") to the size given by exactly one of `scales` and `size` (one entry for
/// all spatial dims or one each): the Upsample layer, in the function the Rust
/// `nn::resample::Upsample` calls.
#[pyfunction]
#[pyo3(signature = (x, mode, scales=None, size=None, align_corners=true))]
fn upsample(
    py: Python<'_>, x: &Bound<'_, PyAny>, mode: &str, scales: Option<Vec<f64>>, size: Option<Vec<usize>>, align_corners: bool,
) -> PyResult<PyTensor> {
    use flux_core::nn::resample::{self, Resize, UpsampleMode};
    let x = to_tensor(x, None)?;
    let (mode, resize) = (UpsampleMode::parse(mode).py()?, Resize::one_of(scales, size).py()?);
    let work = x.numel();
    Ok(PyTensor::new(maybe_detach(py, work, || resample::upsample(&x, mode, &resize, align_corners)).py()?))
}

/// Rearrange (N, C·r², H, W) into (N, C, H·r, W·r); `r` must be positive.
#[pyfunction]
fn pixel_shuffle(x: &Bound<'_, PyAny>, r: i64) -> PyResult<PyTensor> {
    let r = usize::try_from(r).map_err(|_| PyValueError::new_err(format!("pixel_shuffle needs a positive factor, got {r}")))?;
    Ok(PyTensor::new(misc::pixel_shuffle(&to_tensor(x, None)?, r).py()?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(conv, m)?)?;
    m.add_function(wrap_pyfunction!(conv_transpose, m)?)?;
    m.add_function(wrap_pyfunction!(pool, m)?)?;
    m.add_function(wrap_pyfunction!(normalize, m)?)?;
    m.add_function(wrap_pyfunction!(dropout, m)?)?;
    m.add_function(wrap_pyfunction!(alpha_dropout, m)?)?;
    m.add_function(wrap_pyfunction!(gather_rows, m)?)?;
    m.add_function(wrap_pyfunction!(scatter_add, m)?)?;
    m.add_function(wrap_pyfunction!(where_, m)?)?;
    m.add_function(wrap_pyfunction!(clamp, m)?)?;
    m.add_function(wrap_pyfunction!(split, m)?)?;
    m.add_function(wrap_pyfunction!(upsample, m)?)?;
    m.add_function(wrap_pyfunction!(pixel_shuffle, m)?)?;
    Ok(())
}
