//! Attention: the fused scaled-dot-product op and the whole multi-head layer, each one
//! call into flux-core (`ops::attention::Sdpa`, `nn::attention::MultiHeadAttention`).
use flux_core::nn::attention::{AttendOptions, MultiHeadAttention, Projection};
use flux_core::ops::attention::{Mask, Sdpa};
use flux_core::{DType, Tensor};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::convert::{maybe_detach, to_tensor};
use crate::errors::IntoPyResult;
use crate::nn::{with_rng, PyRng};
use crate::tensor::PyTensor;

/// A mask argument: None, or a boolean (or integer) array-like, true (non-zero) where a
/// query may attend. A float array is refused with a TypeError: an additive mask
/// (PyTorch's convention, 0 to keep and -inf to mask) would read inverted; it belongs in
/// `bias`. A Tensor (always float) on the CPU must hold only 0 and 1 for the same reason.
fn mask_arg(mask: Option<&Bound<'_, PyAny>>, dt: DType) -> PyResult<Mask> {
    let Some(m) = mask.filter(|m| !m.is_none()) else { return Ok(Mask::None) };
    if !m.is_instance_of::<PyTensor>() {
        let a = m.py().import("numpy")?.call_method1("asarray", (m,))?;
        let dtype = a.getattr("dtype")?;
        let kind: String = dtype.getattr("kind")?.extract()?;
        if !matches!(kind.as_str(), "b" | "i" | "u") {
            return Err(PyTypeError::new_err(format!(
                "mask must be a boolean array, true where a query may attend, got a {} of dtype {dtype}; an additive (float) mask goes in bias=",
                m.get_type().name()?
            )));
        }
        return Ok(Mask::Keep(to_tensor(&a, Some(dt))?));
    }
    let t = to_tensor(m, Some(dt))?;
    if t.device() == flux_core::Device::Cpu && t.to_vec_f64().py()?.iter().any(|&v| v != 0.0 && v != 1.0) {
        return Err(PyValueError::new_err(
            "a Tensor mask must hold only 0 and 1 (1 where a query may attend); an additive mask goes in bias=",
        ));
    }
    Ok(Mask::Keep(t))
}

/// A layer's mode: `Some` forced, `None` Flux's automatic mode (training while a
/// gradient is taken).
fn training(mode: Option<bool>) -> bool { mode.unwrap_or_else(flux_core::autodiff::is_recording) }

fn work(q: &Tensor, k: &Tensor) -> usize { q.numel() * k.shape().get(1).copied().unwrap_or(0) }

/// `(y, α)` of scaled dot-product attention over `nheads` heads (one fused op).
#[pyfunction]
#[pyo3(signature = (q, k, v, nheads, bias=None, mask=None, dropout=0.0, train=None, rng=None))]
#[allow(clippy::too_many_arguments)]
fn dot_product_attention(
    py: Python<'_>, q: &Bound<'_, PyAny>, k: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>, nheads: usize,
    bias: Option<&Bound<'_, PyAny>>, mask: Option<&Bound<'_, PyAny>>, dropout: f64, train: Option<bool>,
    rng: Option<&Bound<'_, PyRng>>,
) -> PyResult<(PyTensor, PyTensor)> {
    let q = to_tensor(q, None)?;
    let dt = q.dtype();
    let (k, v) = (to_tensor(k, Some(dt))?, to_tensor(v, Some(dt))?);
    let mut op = Sdpa::new(nheads).mask(mask_arg(mask, dt)?).dropout(if training(train) { dropout } else { 0.0 });
    if let Some(b) = bias.filter(|b| !b.is_none()) {
        op = op.bias(to_tensor(b, Some(dt))?);
    }
    let w = work(&q, &k);
    let (y, a) = with_rng(rng, |r| maybe_detach(py, w, || op.forward_with_rng(&q, &k, &v, r))).py()?;
    Ok((PyTensor::new(y), PyTensor::new(a)))
}

fn proj(w: PyRef<'_, PyTensor>, b: Option<PyRef<'_, PyTensor>>) -> Projection {
    Projection { weight: w.t.clone(), bias: b.map(|b| b.t.clone()) }
}

/// The multi-head attention layer's whole forward pass, `(y, α)`: the four projections
/// given as (weight, bias or None) pairs; dropout `dropout` on the weights in training
/// (`train` True, or None and a gradient being taken).
#[pyfunction]
#[pyo3(signature = (q, k, v, nheads, wq, bq, wk, bk, wv, bv, wo, bo, bias=None, mask=None, dropout=0.0, train=None, rng=None))]
#[allow(clippy::too_many_arguments)]
fn multihead_attention(
    py: Python<'_>, q: &Bound<'_, PyAny>, k: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>, nheads: usize,
    wq: PyRef<'_, PyTensor>, bq: Option<PyRef<'_, PyTensor>>, wk: PyRef<'_, PyTensor>, bk: Option<PyRef<'_, PyTensor>>,
    wv: PyRef<'_, PyTensor>, bv: Option<PyRef<'_, PyTensor>>, wo: PyRef<'_, PyTensor>, bo: Option<PyRef<'_, PyTensor>>,
    bias: Option<&Bound<'_, PyAny>>, mask: Option<&Bound<'_, PyAny>>, dropout: f64, train: Option<bool>,
    rng: Option<&Bound<'_, PyRng>>,
) -> PyResult<(PyTensor, PyTensor)> {
    let dt = wq.t.dtype();
    let (q, k, v) = (to_tensor(q, Some(dt))?, to_tensor(k, Some(dt))?, to_tensor(v, Some(dt))?);
    let mha = MultiHeadAttention { nheads, q_proj: proj(wq, bq), k_proj: proj(wk, bk), v_proj: proj(wv, bv), out_proj: proj(wo, bo), dropout };
    let (mask, train) = (mask_arg(mask, dt)?, training(train));
    let bias = bias.filter(|b| !b.is_none()).map(|b| to_tensor(b, Some(dt))).transpose()?;
    let w = work(&q, &k) + q.numel() * mha.q_proj.weight.shape()[0];
    let (y, a) = with_rng(rng, |r| {
        maybe_detach(py, w, || {
            let opts = AttendOptions { bias: bias.as_ref(), mask, train, rng: Some(r) };
            mha.forward_qkv(&q, &k, &v, opts)
        })
    })
    .py()?;
    Ok((PyTensor::new(y), PyTensor::new(a)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(dot_product_attention, m)?)?;
    m.add_function(wrap_pyfunction!(multihead_attention, m)?)?;
    Ok(())
}
