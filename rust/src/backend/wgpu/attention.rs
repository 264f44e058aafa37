//! Scaled dot-product attention on the GPU (`kernels/attention.wgsl`): per (batch, head)
//! the scores `q·kᵀ` and the output `α·v` are batched tiled GEMMs
//! ([`super::matmul`]) over head views of q, k and v (no split copies of packed
//! projections), with scale, bias, causal or given mask and the softmax in one kernel
//! between them. The backward runs there too: the GEMMs of the chain rule and the
//! softmax's Jacobian-vector product in one kernel. The CPU's kernel and the op's checks
//! are [`crate::ops::attention`].
use super::elementwise::{family, word};
use super::kernel::{f32_bits, groups_1d, launch, Kernel};
use super::pool::GpuBuffer;
use super::tensors::{buffer, dense, wrap};
use crate::autodiff::Backward;
use crate::error::Result;
use crate::ops::attention::{Dims as AttentionDims, Saved as SavedAttention, SdpaBackward, SdpaOp};
use crate::tensor::{Device, Layout, Tensor};
use std::sync::Arc;

/// The op's name in errors.
const OP: &str = "scaled_dot_product_attention";

/// The masked softmax shares softmax.wgsl's row pass (`kernels/softmax_row.wgsl`).
const ATTENTION: Kernel = family!("attention", "softmax_row");

/// A tensor read through its strides broadcast to the scores' (batch, nheads, q_len,
/// kv_len): its buffer and `[offset, strides…]` as kernel words.
fn broadcast_words(t: &Tensor, full: &[usize; 4]) -> Result<Vec<u32>> {
    let l = t.layout().broadcast_to(full)?;
    let mut w = vec![word(l.offset, "an offset")?];
    for s in &l.strides {
        w.push(word(*s, "a stride")?);
    }
    Ok(w)
}

/// α = softmax(scale·s + bias, masked) along the last axis of the scores `s` (batch,
/// nheads, q_len, kv_len, contiguous): query i sees key j unless `causal` and j > i, or
/// `keep` (broadcast) is 0 there.
///
/// ```
/// use flux_core::{backend::wgpu::attention::masked_softmax, DType, Device, Tensor};
/// if let Ok(s) = Tensor::zeros(&[1, 1, 2, 2], DType::F32).to_device(Device::Wgpu) {
///     // causal: query 0 sees key 0 only; query 1 sees both equally
///     let a = masked_softmax(&s, 1.0, true, None, None).unwrap();
///     assert_eq!(a.to_vec_f64().unwrap(), vec![1.0, 0.0, 0.5, 0.5]);
/// }
/// ```
pub fn masked_softmax(s: &Tensor, scale: f32, causal: bool, bias: Option<&Tensor>, keep: Option<&Tensor>) -> Result<Tensor> {
    let full = [s.shape()[0], s.shape()[1], s.shape()[2], s.shape()[3]];
    let rows = full[0] * full[1] * full[2];
    let flags = causal as u32 | (bias.is_some() as u32) << 1 | (keep.is_some() as u32) << 2;
    let mut w = vec![word(rows, "rows")?, word(full[1], "heads")?, word(full[2], "queries")?, word(full[3], "keys")?, f32_bits(scale), flags];
    let s = dense(s)?;
    let sb = buffer(&s, OP)?;
    let mut bufs = vec![sb];
    for t in [bias, keep] {
        match t {
            Some(t) => {
                w.extend(broadcast_words(t, &full)?);
                bufs.push(buffer(t, OP)?);
            }
            None => {
                w.extend([0; 5]);
                bufs.push(sb); // not read: any buffer fills the binding
            }
        }
    }
    let out = GpuBuffer::new(s.numel())?;
    bufs.insert(1, &out);
    launch(&ATTENTION, "masked_softmax", &[], &bufs, &w, groups_1d(rows, 1))?;
    Ok(wrap(out, s.shape()))
}

/// The softmax's backward along the last axis: `dS = α ⊙ (dα − Σ dα⊙α)` per row.
///
/// ```
/// use flux_core::{backend::wgpu::attention::softmax_backward, DType, Device, Tensor};
/// let gpu = |v: f64| Tensor::full(&[1, 1, 1, 2], v, DType::F32).to_device(Device::Wgpu);
/// if let (Ok(a), Ok(da)) = (gpu(0.5), gpu(1.0)) {
///     // an equal gradient on every weight changes nothing: the weights sum to one
///     assert_eq!(softmax_backward(&a, &da).unwrap().to_vec_f64().unwrap(), vec![0.0, 0.0]);
/// }
/// ```
pub fn softmax_backward(alpha: &Tensor, dalpha: &Tensor) -> Result<Tensor> {
    let (a, da) = (dense(alpha)?, dense(dalpha)?);
    let len = *a.shape().last().unwrap_or(&1);
    let rows = a.numel() / len.max(1);
    let out = GpuBuffer::new(a.numel())?;
    launch(&ATTENTION, "softmax_backward", &[], &[buffer(&da, OP)?, &out, buffer(&a, OP)?], &[word(rows, "rows")?, word(len, "keys")?], groups_1d(rows, 1))?;
    Ok(wrap(out, a.shape()))
}

/// Operand `which` (q 0, k 1, v 2) of a dense buffer as (batch, nheads, len, per-head)
/// read in place.
fn heads(t: &Tensor, d: &AttentionDims, which: usize) -> Tensor {
    let (len, per) = if which == 0 { (d.lq, d.hq) } else if which == 1 { (d.lk, d.hq) } else { (d.lk, d.hv) };
    let ld = d.ld[which];
    t.view(Layout { shape: vec![d.b, d.h, len, per], strides: vec![len * ld, per, ld, 1], offset: d.col[which] })
}

/// (batch, nheads, len, per) back to (batch, len, nheads·per).
fn merge(t: &Tensor) -> Result<Tensor> {
    let s = t.shape().to_vec();
    dense(&t.permute(&[0, 2, 1, 3])?)?.reshape(&[s[0], s[2], s[1] * s[3]])
}

fn on_gpu(t: &Tensor) -> Result<Tensor> { t.detach().to_device(Device::Wgpu) }

/// The GPU forward of the attention op: `y` (batch, q_len, v_dim), with α and the saved
/// tensors handed to the op for α's own node, and a backward pass on the GPU.
pub(crate) fn forward(op: &SdpaOp, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
    // the tensor ops inside are one node on the tape, recorded by ops::apply
    crate::autodiff::unrecorded(|| run(op, xs))
}

fn run(op: &SdpaOp, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
    let d = op.d;
    let n = d.n_in();
    let (q, k, v) = (dense(xs[0])?, dense(xs[(n - 1).min(1)])?, dense(xs[n - 1])?);
    let scores = heads(&q, &d, 0).matmul(&heads(&k, &d, 1).t()?)?;
    let keep = op.keep.as_ref().map(on_gpu).transpose()?;
    let bias = xs.get(n).map(|b| b.detach());
    let alpha = masked_softmax(&scores, d.scale() as f32, op.causal, bias.as_ref(), keep.as_ref())?;
    let drop = op.drop.as_ref().map(on_gpu).transpose()?;
    let p = match &drop {
        Some(m) => alpha.mul(m)?,
        None => alpha.clone(),
    };
    let y = merge(&p.matmul(&heads(&v, &d, 2))?)?;
    let saved = Arc::new(SavedAttention { d, q, k, v, alpha: alpha.clone(), drop, bias_shape: xs.get(n).map(|b| b.shape().to_vec()) });
    *op.weights.lock().unwrap_or_else(|e| e.into_inner()) = Some((alpha, saved.clone()));
    Ok((y, Box::new(SdpaBackward { s: saved, of_weights: false })))
}

/// The GPU backward of the attention op (from y's gradient, or α's when `of_weights`):
/// the gradients of q, k, v (or the packed qkv) and the bias.
pub(crate) fn backward(s: &SavedAttention, of_weights: bool, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
    let d = s.d;
    let n = d.n_in();
    let need = |i: usize| needs.get(i).copied().unwrap_or(false);
    let need_q = need(0);
    let need_k = if d.packed { need(0) } else { need(1) };
    let need_v = (if d.packed { need(0) } else { need(2) }) && !of_weights;
    let need_bias = s.bias_shape.is_some() && need(n);
    let (q4, k4, v4) = (heads(&s.q, &d, 0), heads(&s.k, &d, 1), heads(&s.v, &d, 2));
    let g = dense(g)?;
    let (dalpha, gv) = if of_weights {
        (g, None)
    } else {
        let gy = g.view(Layout { shape: vec![d.b, d.h, d.lq, d.hv], strides: vec![d.lq * d.dv(), d.hv, d.dv(), 1], offset: 0 });
        let mut da = gy.matmul(&v4.t()?)?;
        let p = match &s.drop {
            Some(m) => {
                da = da.mul(m)?;
                s.alpha.mul(m)?
            }
            None => s.alpha.clone(),
        };
        (da, need_v.then(|| merge(&p.t()?.matmul(&gy)?)).transpose()?)
    };
    let ds = softmax_backward(&s.alpha, &dalpha)?;
    let scale = d.scale();
    let gq = need_q.then(|| merge(&ds.matmul(&k4)?.mul_scalar(scale)?)).transpose()?;
    let gk = need_k.then(|| merge(&ds.t()?.matmul(&q4)?.mul_scalar(scale)?)).transpose()?;
    let mut out = if d.packed {
        let packed = match (gq, gk) {
            (Some(gq), Some(gk)) => {
                let gv = match gv {
                    Some(gv) => gv,
                    None => gq.full_beside(&[d.b, d.lk, d.dv()], 0.0, gq.dtype())?,
                };
                Some(Tensor::concat(&[&gq, &gk, &gv], 2)?)
            }
            _ => None,
        };
        vec![packed]
    } else {
        vec![gq, gk, gv]
    };
    if let Some(bs) = &s.bias_shape {
        out.push(need_bias.then(|| ds.sum_to_shape(bs)).transpose()?);
    }
    Ok(out)
}
