//! Convolutions on a device other than the CPU (the GPU): [`conv`](super::conv),
//! [`conv_transpose`](super::conv_transpose) and their backward through the seam's
//! kernels ([`Storage::conv_fwd`], [`Storage::conv_bwd_data`],
//! [`Storage::conv_bwd_filter`]), on the CPU path's geometry and tape record. Operands
//! already packed are borrowed, not cloned (a GPU storage's clone is a device copy).
use std::borrow::Cow;

use super::{ConvBackward, Geom};
use crate::backend::{BinaryOp, CmpOp, ReduceOp};
use crate::error::Result;
use crate::tensor::{Layout, Storage, Tensor};

fn tensor(s: Storage, shape: &[usize]) -> Tensor { Tensor::from_storage(s, Layout::contiguous(shape)) }

/// The forward of `conv`/`conv_relu`: `relu(conv(x, w) + b)` of shape `oshape`.
pub(super) fn conv(x: &Tensor, w: &Tensor, b: Option<&Tensor>, g: &Geom, relu: bool, oshape: &[usize]) -> Result<Tensor> {
    let bs = b.map(Tensor::packed_storage_ref).transpose()?;
    let y = x.packed_storage_ref()?.conv_fwd(&*w.packed_storage_ref()?, bs.as_deref(), g, relu)?;
    Ok(tensor(y, oshape))
}

/// The forward of `conv_transpose`: the adjoint of a convolution with the same weight,
/// plus the bias per output channel.
pub(super) fn conv_transpose(x: &Tensor, w: &Tensor, b: Option<&Tensor>, g: &Geom, oshape: &[usize]) -> Result<Tensor> {
    let y = x.packed_storage_ref()?.conv_bwd_data(&*w.packed_storage_ref()?, g)?;
    let Some(b) = b else { return Ok(tensor(y, oshape)) };
    // the bias viewed as (1, channels, 1…), broadcast over the output
    let mut bl = Layout { shape: vec![1; oshape.len()], strides: vec![0; oshape.len()], offset: b.layout().offset };
    bl.shape[1] = oshape[1];
    bl.strides[1] = b.layout().strides[0];
    let y = y.binary(&Layout::contiguous(oshape), b.storage(), &bl, oshape, BinaryOp::Add)?;
    Ok(tensor(y, oshape))
}

/// The gradients `[dx, dw, db]` of a convolution (or transposed convolution) recorded
/// by `record_conv`, for the output gradient `gy`.
pub(super) fn backward(op: &ConvBackward, gy: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
    let g = &op.g;
    let mut d = gy.packed_storage_ref()?;
    if let Some(y) = &op.relu_y {
        // relu′ read off the output (it is positive exactly where the input was)
        let l = Layout::contiguous(y.shape());
        let ys = y.packed_storage_ref()?;
        let zero = ys.full_like(1, 0.0, y.dtype())?;
        let zl = Layout { shape: vec![1; y.ndim()], strides: vec![0; y.ndim()], offset: 0 };
        let mask = ys.cmp(&l, &zero, &zl, y.shape(), CmpOp::Gt)?;
        d = Cow::Owned(d.binary(&l, &mask, &l, y.shape(), BinaryOp::Mul)?);
    }
    let (x, w) = (op.x.packed_storage_ref()?, op.w.packed_storage_ref()?);
    let need_b = needs.get(2).copied().unwrap_or(false);
    let ns = op.x.ndim() - 2;
    // the bias gradient: d summed over the batch and space, per channel
    let bias_grad = |d: &Storage, shape: &[usize]| -> Result<Tensor> {
        let dims: Vec<usize> = (0..shape.len()).filter(|&i| i != 1).collect();
        Ok(tensor(d.reduce(&Layout::contiguous(shape), &dims, ReduceOp::Sum)?, &[shape[1]]))
    };
    let (dx, dw, db) = if !op.transposed {
        // x is the big side, the output (and d) the small one
        let ys = [&[g.n, g.cs][..], &g.small[3 - ns..]].concat();
        (
            if needs[0] { Some(tensor(d.conv_bwd_data(&w, g)?, op.x.shape())) } else { None },
            if needs[1] { Some(tensor(x.conv_bwd_filter(&d, g)?, op.w.shape())) } else { None },
            if need_b { Some(bias_grad(&d, &ys)?) } else { None },
        )
    } else {
        // x is the small side, the output (and d) the big one
        let ys = [&[g.n, g.cb][..], &g.big[3 - ns..]].concat();
        (
            if needs[0] { Some(tensor(d.conv_fwd(&w, None, g, false)?, op.x.shape())) } else { None },
            if needs[1] { Some(tensor(d.conv_bwd_filter(&x, g)?, op.w.shape())) } else { None },
            if need_b { Some(bias_grad(&d, &ys)?) } else { None },
        )
    };
    let mut out = vec![dx, dw];
    if needs.len() > 2 {
        out.push(db);
    }
    Ok(out)
}
