//! The layer calls of ConvTranspose, Scale, Bilinear and Maxout: each Python layer
//! calls one of these, and each calls the flux-core function that the Rust module of
//! the same name uses (`flux_core::nn::{conv, scale, bilinear, combinators}`).
use flux_core::nn::{bilinear, combinators, conv, scale, Activation};
use flux_core::tensor::conv::ConvSpec;
use pyo3::prelude::*;

use crate::convert::{maybe_detach, to_tensor};
use crate::errors::IntoPyResult;
use crate::tensor::PyTensor;

/// `act(conv_transpose(x, w) + b)` in one call: the ConvTranspose layer, with `w`
/// (C_in, C_out/groups, k...) and the activation by name (`param`: leakyrelu's slope, elu's α).
#[pyfunction]
#[pyo3(signature = (x, w, b, stride, pad_lo, pad_hi, dilation, groups, out_pad, act="identity", param=None))]
#[allow(clippy::too_many_arguments)]
fn conv_transpose_layer(
    py: Python<'_>, x: &Bound<'_, PyAny>, w: PyRef<'_, PyTensor>, b: Option<PyRef<'_, PyTensor>>,
    stride: Vec<usize>, pad_lo: Vec<usize>, pad_hi: Vec<usize>, dilation: Vec<usize>, groups: usize, out_pad: Vec<usize>,
    act: &str, param: Option<f64>,
) -> PyResult<PyTensor> {
    let act = Activation::parse(act, param).py()?;
    let x = to_tensor(x, Some(w.t.dtype()))?;
    let (w, b) = (&w.t, b.as_ref().map(|b| &b.t));
    let s = ConvSpec { stride, pad_lo, pad_hi, dilation, groups };
    let work = x.numel() * w.numel();
    Ok(PyTensor::new(maybe_detach(py, work, || conv::conv_transpose_layer(&x, w, b, &s, &out_pad, act)).py()?))
}

/// `act(s ⊙ x + bias)` in one call: the Scale layer (`x` ends in the shape of `s`, the scale).
#[pyfunction]
#[pyo3(signature = (x, s, bias, act="identity", param=None))]
fn scale_layer(py: Python<'_>, x: &Bound<'_, PyAny>, s: PyRef<'_, PyTensor>, bias: Option<PyRef<'_, PyTensor>>, act: &str, param: Option<f64>) -> PyResult<PyTensor> {
    let act = Activation::parse(act, param).py()?;
    let x = to_tensor(x, Some(s.t.dtype()))?;
    let (s, b) = (&s.t, bias.as_ref().map(|b| &b.t));
    Ok(PyTensor::new(maybe_detach(py, x.numel(), || scale::scale(&x, s, b, act)).py()?))
}

/// `act(xᵀ W[o] y + b[o])` in one call: the Bilinear layer, `x` (..., in1), `y` (..., in2),
/// `w` (out, in1, in2).
#[pyfunction]
#[pyo3(signature = (x, y, w, b, act="identity", param=None))]
fn bilinear_layer(
    py: Python<'_>, x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>, w: PyRef<'_, PyTensor>, b: Option<PyRef<'_, PyTensor>>, act: &str,
    param: Option<f64>,
) -> PyResult<PyTensor> {
    let act = Activation::parse(act, param).py()?;
    let (x, y) = (to_tensor(x, Some(w.t.dtype()))?, to_tensor(y, Some(w.t.dtype()))?);
    let (w, b) = (&w.t, b.as_ref().map(|b| &b.t));
    let work = x.numel() * w.numel();
    Ok(PyTensor::new(maybe_detach(py, work, || bilinear::bilinear(&x, &y, w, b, act)).py()?))
}

/// The elementwise maximum of the layers' outputs `ys`, in one call (the Maxout layer).
#[pyfunction]
fn maxout(py: Python<'_>, ys: Vec<Bound<'_, PyAny>>) -> PyResult<PyTensor> {
    let ts = ys.iter().map(|y| to_tensor(y, None)).collect::<PyResult<Vec<_>>>()?;
    let work = ts.iter().map(|t| t.numel()).sum();
    Ok(PyTensor::new(maybe_detach(py, work, || combinators::maxout(&ts)).py()?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(conv_transpose_layer, m)?)?;
    m.add_function(wrap_pyfunction!(scale_layer, m)?)?;
    m.add_function(wrap_pyfunction!(bilinear_layer, m)?)?;
    m.add_function(wrap_pyfunction!(maxout, m)?)?;
    Ok(())
}
