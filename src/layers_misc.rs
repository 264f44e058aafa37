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

/// Test hook: build the Rust layer `kind` (`"ConvTranspose"`, `"Scale"`, `"Bilinear"`,
/// `"Maxout"` of Dense members `(weight, bias)`, `"Upsample"`, `"PixelShuffle"`) from the
/// given parameters and configuration and run its `forward_t` (Bilinear: `forward2(x, y)`):
/// the Python layer must give the same bits.
#[pyfunction]
#[pyo3(signature = (kind, x, weight=None, bias=None, act="identity", param=None, y=None, stride=None, pad_lo=None, pad_hi=None, dilation=None, groups=1, out_pad=None, members=None, mode="nearest", scales=None, size=None, align_corners=true, r=1))]
#[allow(clippy::too_many_arguments)]
fn _misc_forward(
    kind: &str, x: &Bound<'_, PyAny>, weight: Option<PyRef<'_, PyTensor>>, bias: Option<PyRef<'_, PyTensor>>, act: &str, param: Option<f64>,
    y: Option<&Bound<'_, PyAny>>, stride: Option<Vec<usize>>, pad_lo: Option<Vec<usize>>, pad_hi: Option<Vec<usize>>, dilation: Option<Vec<usize>>,
    groups: usize, out_pad: Option<Vec<usize>>, members: Option<Vec<(PyRef<'_, PyTensor>, Option<PyRef<'_, PyTensor>>)>>, mode: &str,
    scales: Option<Vec<f64>>, size: Option<Vec<usize>>, align_corners: bool, r: usize,
) -> PyResult<PyTensor> {
    use flux_core::nn::{resample, Dense, Module};
    use pyo3::exceptions::PyValueError;
    let act = Activation::parse(act, param).py()?;
    let x = to_tensor(x, None)?;
    let need = |t: &Option<PyRef<'_, PyTensor>>| t.as_ref().map(|t| t.t.clone()).ok_or_else(|| PyValueError::new_err(format!("{kind} needs weight")));
    let bias = bias.as_ref().map(|b| b.t.clone());
    let out = match kind {
        "ConvTranspose" => {
            let w = need(&weight)?;
            let n = w.ndim().saturating_sub(2);
            let spec = ConvSpec {
                stride: stride.unwrap_or(vec![1; n]),
                pad_lo: pad_lo.unwrap_or(vec![0; n]),
                pad_hi: pad_hi.unwrap_or(vec![0; n]),
                dilation: dilation.unwrap_or(vec![1; n]),
                groups,
            };
            let b = bias.ok_or_else(|| PyValueError::new_err("ConvTranspose needs bias"))?;
            conv::ConvTranspose { weight: w, bias: b, spec, out_pad: out_pad.unwrap_or(vec![0; n]), act }.forward_t(&x, false)
        }
        "Scale" => scale::Scale { scale: need(&weight)?, bias, act }.forward_t(&x, false),
        "Bilinear" => {
            let y = y.map(|y| to_tensor(y, None)).transpose()?.unwrap_or_else(|| x.clone());
            bilinear::Bilinear { weight: need(&weight)?, bias, act }.forward2(&x, &y, false)
        }
        "Maxout" => {
            let ms = members.unwrap_or_default().into_iter();
            let layers: Vec<Box<dyn Module>> = ms.map(|(w, b)| Box::new(Dense { weight: w.t.clone(), bias: b.map(|b| b.t.clone()), act }) as Box<dyn Module>).collect();
            combinators::Maxout::new(layers).forward_t(&x, false)
        }
        "Upsample" => {
            let resize = resample::Resize::one_of(scales, size).py()?;
            let up = resample::Upsample { mode: resample::UpsampleMode::parse(mode).py()?, resize, align_corners };
            up.forward_t(&x, false)
        }
        "PixelShuffle" => resample::PixelShuffle(r).forward_t(&x, false),
        _ => return Err(PyValueError::new_err(format!("unknown layer {kind:?}"))),
    };
    Ok(PyTensor::new(out.py()?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_misc_forward, m)?)?;
    m.add_function(wrap_pyfunction!(conv_transpose_layer, m)?)?;
    m.add_function(wrap_pyfunction!(scale_layer, m)?)?;
    m.add_function(wrap_pyfunction!(bilinear_layer, m)?)?;
    m.add_function(wrap_pyfunction!(maxout, m)?)?;
    Ok(())
}
