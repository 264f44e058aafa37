//! Normalisation on the GPU (`kernels/norm.wgsl`): the forward and backward of the
//! fused norm op of [`crate::ops::norm`] (batch, layer, group and instance norm), one
//! workgroup per slice of its (P, S, Q) view, each kernel one pass.
//!
//! The activation after the affine part runs in the forward kernel's pass (its output
//! written beside, or instead of, the affine output); the affine gradients are sums of the backward kernel's `dz·x̂` and of `dz` over the
//! slices sharing an entry (the reduce kernels).
use super::elementwise::{unary_code, word};
use super::kernel::{f32_bits, groups_1d, launch, Kernel};
use super::pool::GpuBuffer;
use super::tensors::{buffer, dense, wrap};
use crate::autodiff::Backward;
use crate::error::{shape_err, Result};
use crate::ops::norm::NormSpec;
use crate::tensor::elementwise::{unary_backward, UnaryOp};
use crate::tensor::{DType, Device, Tensor};

const NORM: Kernel = super::elementwise::family_with_activations!("norm");

fn params(sp: &NormSpec, batch: bool, gxh: bool) -> Result<Vec<u32>> {
    Ok(vec![
        word(sp.p, "a size")?,
        word(sp.s, "a size")?,
        word(sp.q, "a size")?,
        word(sp.period, "a size")?,
        word(sp.inner, "a size")?,
        f32_bits(sp.eps as f32),
        batch as u32,
        gxh as u32,
    ])
}

/// `z = γ·x̂ + β` per slice of `x` viewed as `sp`'s (P, S, Q), and with `act` also
/// `y = act(z)` in the same pass: `(z or y, z when act and keep_z)`. With `batch` the
/// slice statistics are computed and written into `stats` (`[mean (S), variance (S)]`),
/// otherwise read from it. `gamma`, `beta` hold `period·inner` entries.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    x: &GpuBuffer,
    gamma: &GpuBuffer,
    beta: &GpuBuffer,
    stats: &GpuBuffer,
    sp: &NormSpec,
    batch: bool,
    act: Option<UnaryOp>,
    keep_z: bool,
) -> Result<(GpuBuffer, Option<GpuBuffer>)> {
    let keep_z = keep_z && act.is_some();
    let z = GpuBuffer::new(if act.is_none() || keep_z { x.len() } else { 1 })?;
    let y = GpuBuffer::new(if act.is_some() { x.len() } else { 1 })?;
    let code = act.map(unary_code);
    if x.len() > 0 {
        let mut w = params(sp, batch, false)?;
        let (_, alpha, beta_) = code.unwrap_or((0.0, 0.0, 0.0));
        w.extend([act.is_some() as u32, keep_z as u32, f32_bits(alpha), f32_bits(beta_)]);
        let consts = code.map(|(c, _, _)| vec![("OP", c)]).unwrap_or_default();
        launch(&NORM, "norm_forward", &consts, &[x, gamma, beta, stats, &z, &y], &w, groups_1d(sp.s, 1))?;
    }
    Ok(match act {
        None => (z, None),
        Some(_) => (y, keep_z.then_some(z)),
    })
}

/// The gradient of `x` from `dz` (the gradient of the affine output), and with
/// `want_gxh` also `dz·x̂` per element, for the statistics in `stats` (batch statistics
/// when `batch`: their gradient flows).
pub(crate) fn backward(x: &GpuBuffer, dz: &GpuBuffer, gamma: &GpuBuffer, stats: &GpuBuffer, sp: &NormSpec, batch: bool, want_gxh: bool) -> Result<(GpuBuffer, Option<GpuBuffer>)> {
    let dx = GpuBuffer::new(x.len())?;
    let gxh = GpuBuffer::new(if want_gxh { x.len() } else { 1 })?;
    if x.len() > 0 {
        let w = params(sp, batch, want_gxh)?;
        launch(&NORM, "norm_backward", &[], &[x, dz, gamma, stats, &dx, &gxh], &w, groups_1d(sp.s, 1))?;
    }
    Ok((dx, want_gxh.then_some(gxh)))
}

/// What the fused op's GPU forward gives back: the output, its backward rule and the
/// batch statistics (mean, variance; `None` with fixed statistics).
pub(crate) type Forward = (Tensor, Box<dyn Backward>, Option<(Tensor, Tensor)>);

/// The fused norm op's forward on the GPU (see [`crate::ops::norm::norm`]): `x`, and
/// `gamma`/`beta` when affine, are GPU tensors; `running` are fixed statistics
/// (`period` entries each, on any device), or `None` for the batch's own.
pub(crate) fn norm_forward(x: &Tensor, affine: Option<(&Tensor, &Tensor)>, sp: &NormSpec, running: Option<(&Tensor, &Tensor)>) -> Result<Forward> {
    let (s, na) = (sp.s, sp.period * sp.inner);
    let xd = dense(x)?;
    let (gamma, beta) = match affine {
        Some((g, b)) => (dense(g)?, dense(b)?),
        None => (Tensor::full_on(&[na], 1.0, DType::F32, Device::Wgpu)?, Tensor::full_on(&[na], 0.0, DType::F32, Device::Wgpu)?),
    };
    let stats = match running {
        None => wrap(GpuBuffer::new(2 * s)?, &[2 * s]),
        Some((rm, rv)) => {
            // the fixed statistics of every slice, [mean (S), variance (S)]
            let per_slice: Vec<usize> = (0..s).map(|i| i % sp.period).collect();
            let on = |t: &Tensor, what: &str| -> Result<Tensor> {
                if t.numel() != sp.period {
                    return Err(shape_err!("normalize: running {what} has {} entries, expected {}", t.numel(), sp.period));
                }
                t.to_device(Device::Wgpu)?.cast(DType::F32)?.reshape(&[sp.period])?.index_select(0, &per_slice)
            };
            dense(&Tensor::concat(&[&on(rm, "mean")?, &on(rv, "variance")?], 0)?)?
        }
    };
    let op = "normalize";
    // relu, tanh and sigmoid read σ′ off y: z is kept only for the others
    let u = sp.act.unary_op();
    let keep_z = !matches!(u, None | Some(UnaryOp::Relu | UnaryOp::Tanh | UnaryOp::Sigmoid));
    let (yb, zb) = forward(buffer(&xd, op)?, buffer(&gamma, op)?, buffer(&beta, op)?, buffer(&stats, op)?, sp, running.is_none(), u, keep_z)?;
    let y = wrap(yb, x.shape());
    let act = u.map(|u| (u, zb.map(|z| wrap(z, x.shape())).unwrap_or_else(|| y.clone()), y.clone()));
    let batch = running.is_none().then(|| -> Result<(Tensor, Tensor)> {
        let st = stats.reshape(&[2, s])?;
        Ok((st.index_select(0, &[0])?.reshape(&[s])?, st.index_select(0, &[1])?.reshape(&[s])?))
    });
    let bwd = NormBackward {
        x: xd,
        gamma,
        shapes: affine.map(|(g, b)| [g.shape().to_vec(), b.shape().to_vec()]),
        stats,
        spec: *sp,
        batch: running.is_none(),
        act,
    };
    Ok((y, Box::new(bwd), batch.transpose()?))
}

/// The GPU backward of the fused norm op.
#[derive(Debug)]
struct NormBackward {
    x: Tensor,
    /// γ (ones when not affine)
    gamma: Tensor,
    /// the shapes of γ and β when affine
    shapes: Option<[Vec<usize>; 2]>,
    /// [mean (S), variance (S)] as the forward used them
    stats: Tensor,
    spec: NormSpec,
    batch: bool,
    /// the activation, its input and output
    act: Option<(UnaryOp, Tensor, Tensor)>,
}

impl Backward for NormBackward {
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let op = "normalize backward";
        let sp = &self.spec;
        let dz = match &self.act {
            Some((u, z, y)) => unary_backward(*u, z, y, g)?,
            None => dense(g)?,
        };
        let dz = dense(&dz)?;
        let need = |i: usize| needs.get(i).copied().unwrap_or(false);
        let want_affine = self.shapes.is_some() && (need(1) || need(2));
        let (dx, gxh) = backward(buffer(&self.x, op)?, buffer(&dz, op)?, buffer(&self.gamma, op)?, buffer(&self.stats, op)?, sp, self.batch, want_affine)?;
        let mut out = vec![need(0).then(|| wrap(dx, self.x.shape()))];
        if let Some([gs, bs]) = &self.shapes {
            // element (p, r·period + j, i·(Q/inner) + k) feeds entry (j, i): sum over p, r, k
            let view = [sp.p, sp.s / sp.period, sp.period, sp.inner, sp.q / sp.inner];
            let entries = |t: &Tensor, shape: &[usize]| t.reshape(&view)?.sum(Some(&[0, 1, 4]), false)?.reshape(shape);
            let dg = match (need(1), gxh) {
                (true, Some(b)) => Some(entries(&wrap(b, self.x.shape()), gs)?),
                _ => None,
            };
            let db = need(2).then(|| entries(&dz, bs)).transpose()?;
            out.push(dg);
            out.push(db);
        }
        Ok(out)
    }
}
