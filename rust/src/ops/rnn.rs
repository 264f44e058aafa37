//! The Elman RNN sequence kernel: `h′ = σ(gx + h·Whᵀ)` per step (one GEMM, then the
//! activation in place); BPTT in reverse with one GEMM per step. Shared machinery:
//! [`super::recurrent`].
use super::recurrent::{input_projection, through_wh, Dims, Saved};
use crate::autodiff::Backward;
use crate::error::Result;
use crate::nn::Activation;
use crate::tensor::elementwise::{mul_deriv_inplace, unary_inplace};
use crate::tensor::matmul::{gemm_into, Mat};
use crate::tensor::{Float, Tensor};

/// Whether σ′ needs the pre-activation; tanh, sigmoid and relu read it off the output.
fn needs_pre(act: Activation) -> bool {
    !matches!(act, Activation::Identity | Activation::Relu | Activation::Tanh | Activation::Sigmoid)
}

/// The forward pass of [`super::recurrent::Sequence`] for the RNN: output `ys` (B, T, H).
pub(super) fn forward<T: Float>(d: Dims, act: Activation, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
    let gx = input_projection::<T>(d, xs[0], xs[1], xs[3])?;
    let h0 = xs[4].as_slice::<T>()?;
    let (b, h) = (d.b, d.h);
    let n = b * d.t * h;
    let mut out = vec![T::zero(); n];
    let mut pre = if needs_pre(act) { vec![T::zero(); n] } else { Vec::new() };
    let mut a = vec![T::zero(); b * h];
    let whm = Mat::of(xs[2], true)?;
    for t in 0..d.t {
        // a ← gx rows of this step, then + h·Whᵀ
        for bi in 0..b {
            let r = d.row(bi, t);
            a[bi * h..(bi + 1) * h].copy_from_slice(&gx[r * h..(r + 1) * h]);
        }
        gemm_into(b, h, h, d.h_prev(t, h0, &out), whm, &mut a, true);
        if !pre.is_empty() {
            (0..b).for_each(|bi| pre[d.row(bi, t) * h..][..h].copy_from_slice(&a[bi * h..(bi + 1) * h]));
        }
        if let Some(op) = act.unary_op() {
            unary_inplace(op, &mut a);
        }
        (0..b).for_each(|bi| out[d.row(bi, t) * h..][..h].copy_from_slice(&a[bi * h..(bi + 1) * h]));
    }
    let y = Tensor::from_vec(out, &[b, d.t, h])?;
    let pre = if pre.is_empty() { None } else { Some(Tensor::from_vec(pre, &[n])?) };
    Ok((y.clone(), Box::new(RnnBackward { s: Saved::new(d, xs), act, y, pre })))
}

/// What the RNN's backward pass reads: the inputs, the output and, when σ′ needs it, the
/// pre-activations.
#[derive(Debug)]
struct RnnBackward {
    s: Saved,
    act: Activation,
    y: Tensor,
    pre: Option<Tensor>,
}

impl RnnBackward {
    fn run<T: Float>(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let d = self.s.d;
        let (b, h) = (d.b, d.h);
        let g = g.as_contiguous::<T>()?;
        let gy = g.as_slice::<T>()?;
        let ys = self.y.as_slice::<T>()?;
        let pre = match &self.pre {
            Some(p) => p.as_slice::<T>()?,
            None => ys,
        };
        let mut dg = vec![T::zero(); b * d.t * h];
        let mut dh = vec![T::zero(); b * h];
        for t in (0..d.t).rev() {
            for bi in 0..b {
                let r = d.row(bi, t) * h;
                let row = &mut dg[r..r + h];
                row.iter_mut().zip(&gy[r..r + h]).zip(&dh[bi * h..(bi + 1) * h]).for_each(|((o, &a), &c)| *o = a + c);
                if let Some(op) = self.act.unary_op() {
                    mul_deriv_inplace(op, row, &pre[r..r + h], &ys[r..r + h]);
                }
            }
            if t > 0 || needs[4] {
                through_wh(d, d.step_rows(t, &dg, h), &self.s.wh, &mut dh, false)?;
            }
        }
        let mut res = self.s.weight_grads(&dg, &dg, ys, needs)?;
        res.push(needs[4].then(|| Tensor::from_vec(dh, &[b, h])).transpose()?);
        Ok(res)
    }
}

impl Backward for RnnBackward {
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        crate::dispatch!(self.y.dtype(), T => self.run::<T>(g, needs))
    }
}
