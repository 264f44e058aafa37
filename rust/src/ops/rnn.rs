//! The Elman RNN sequence kernel: `h′ = σ(gx + h·Whᵀ)` per step (one GEMM, then the
//! activation in place); BPTT in reverse with one GEMM per step. Shared machinery:
//! [`super::recurrent`].
use super::recurrent::{batch_chunks, gemm_here, run_chunks, split_by, Dims, Inputs, Saved, ToWh};
use crate::autodiff::Backward;
use crate::error::Result;
use crate::nn::Activation;
use crate::tensor::elementwise::{mul_deriv_inplace, unary_inplace};
use crate::tensor::matmul::Mat;
use crate::tensor::{Float, Tensor};

/// Whether σ′ needs the pre-activation; tanh, sigmoid and relu read it off the output.
fn needs_pre(act: Activation) -> bool {
    !matches!(act, Activation::Identity | Activation::Relu | Activation::Tanh | Activation::Sigmoid)
}

/// The forward pass of [`super::recurrent::Sequence`] for the RNN: output `ys` (B, T, H).
pub(super) fn forward<T: Float>(d: Dims, act: Activation, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
    let ins = Inputs::<T>::new(d, xs)?;
    let h0 = xs[4].as_slice::<T>()?;
    let (b, h) = (d.b, d.h);
    let n = b * d.t * h;
    // the input projection, overwritten step by step with the states
    let mut out = vec![T::zero(); n];
    let mut pre = if needs_pre(act) { vec![T::zero(); n] } else { Vec::new() };
    let chunks = batch_chunks(d);
    let pres = if pre.is_empty() { chunks.iter().map(|_| Default::default()).collect() } else { split_by(&mut pre, &chunks, d.t * h) };
    let jobs = chunks.iter().zip(split_by(&mut out, &chunks, d.t * h)).zip(pres);
    run_chunks(jobs.collect(), |((rows, ys), pre): ((_, &mut [T]), &mut [T])| {
        let dc = d.chunk(rows);
        ins.project(rows, ys);
        let h0 = &h0[rows.start * h..];
        let mut a = vec![T::zero(); dc.b * h];
        for t in 0..d.t {
            // a ← this step's projection + h·Whᵀ, then σ, then into its rows of ys
            (0..dc.b).for_each(|bi| a[bi * h..(bi + 1) * h].copy_from_slice(&ys[dc.row(bi, t) * h..][..h]));
            gemm_here(dc.b, h, h, dc.h_prev(t, h0, ys), ins.wht(), &mut a, h, true);
            if !pre.is_empty() {
                (0..dc.b).for_each(|bi| pre[dc.row(bi, t) * h..][..h].copy_from_slice(&a[bi * h..(bi + 1) * h]));
            }
            if let Some(op) = act.unary_op() {
                unary_inplace(op, &mut a);
            }
            (0..dc.b).for_each(|bi| ys[dc.row(bi, t) * h..][..h].copy_from_slice(&a[bi * h..(bi + 1) * h]));
        }
    });
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
        let whm = Mat::of(&self.s.wh, false)?;
        let mut dg = vec![T::zero(); b * d.t * h];
        let mut dh = vec![T::zero(); b * h];
        let chunks = batch_chunks(d);
        let jobs = chunks.iter().zip(split_by(&mut dg, &chunks, d.t * h)).zip(split_by(&mut dh, &chunks, h));
        run_chunks(jobs.collect(), |((rows, dg), dh)| {
            let dn = d.chunk(rows);
            let s = rows.start * d.t * h;
            let (gy, ys, pre) = (&gy[s..], &ys[s..], &pre[s..]);
            for t in (0..d.t).rev() {
                for bi in 0..dn.b {
                    let r = dn.row(bi, t) * h;
                    let row = &mut dg[r..r + h];
                    row.iter_mut().zip(&gy[r..r + h]).zip(&dh[bi * h..(bi + 1) * h]).for_each(|((o, &a), &c)| *o = a + c);
                    if let Some(op) = self.act.unary_op() {
                        mul_deriv_inplace(op, row, &pre[r..r + h], &ys[r..r + h]);
                    }
                }
                if t > 0 || needs[4] {
                    gemm_here(dn.b, h, h, dn.step_rows(t, dg, h), whm, dh, h, false);
                }
            }
        });
        let to_wh = ToWh { dg: Mat { data: &dg, off: 0, rs: h as isize, cs: 1 }, first: 0, rows: h };
        let mut res = self.s.weight_grads(&dg, &[to_wh], ys, needs)?;
        res.push(needs[4].then(|| Tensor::from_vec(dh, &[b, h])).transpose()?);
        Ok(res)
    }
}

impl Backward for RnnBackward {
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        crate::dispatch!(self.y.dtype(), T => self.run::<T>(g, needs))
    }
}
