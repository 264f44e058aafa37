//! The mean (or summed) squared error as one fused op: `Σ(ŷ − y)²`, times `1/n` for the
//! mean. On the CPU one pass, summed in the same order as the composed ops (so the
//! value is bit-identical to theirs); on the GPU a difference, a square and one
//! reduction, all on the device. The backward, `2·scale·(ŷ − y)·g` (and its negative
//! for `y`), runs on the operands' device too; `g` stays a device scalar.
use crate::autodiff::Backward;
use crate::error::Result;
use crate::ops::FusedOp;
use crate::tensor::{Device, Float, Tensor};

/// `Σ(ŷ − y)²`, scaled by `1/n` when `mean` (inputs `ŷ` and `y` of one shape and dtype;
/// [`crate::nn::losses::mse`] is the public entry, which checks them).
///
/// ```
/// use flux_core::{ops::{apply, mse::MseOp}, Tensor};
/// let (a, b) = (Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap(), Tensor::from_vec(vec![0.0f32, 4.0], &[2]).unwrap());
/// assert_eq!(apply(&MseOp { mean: true }, &[&a, &b]).unwrap().item().unwrap(), 2.5);
/// ```
#[derive(Debug)]
pub struct MseOp {
    /// Divide the sum by the number of elements.
    pub mean: bool,
}

/// The factor on the sum of squares: 1/n for the mean, else 1.
fn scale(op: &MseOp, n: usize) -> f64 { if op.mean { 1.0 / n as f64 } else { 1.0 } }

impl FusedOp for MseOp {
    fn name(&self) -> &'static str { "mse" }
    fn cpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        crate::dispatch!(xs[0].dtype(), T => {
            let (a, b) = (xs[0].as_contiguous::<T>()?, xs[1].as_contiguous::<T>()?);
            let (av, bv) = (a.as_slice::<T>()?, b.as_slice::<T>()?);
            let sum = av.iter().zip(bv).fold(T::zero(), |acc, (&p, &q)| acc + (p - q) * (p - q));
            let scale = scale(self, av.len());
            let out = Tensor::from_vec(vec![if self.mean { sum * T::f(scale) } else { sum }], &[])?;
            Ok((out, Box::new(MseBackward { yhat: a.detach(), y: b.detach(), scale }) as Box<dyn Backward>))
        })
    }
    fn wgpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let (a, b) = (xs[0].detach(), xs[1].detach());
        let scale = scale(self, a.numel());
        let s = a.sub(&b)?.square()?.sum_all()?;
        let out = if self.mean { s.mul_scalar(scale)? } else { s };
        Ok((out, Box::new(MseBackward { yhat: a, y: b, scale })))
    }
}

/// d/dŷ = 2·scale·(ŷ − y)·g, d/dy its negative.
#[derive(Debug)]
struct MseBackward {
    yhat: Tensor,
    y: Tensor,
    scale: f64,
}

impl MseBackward {
    fn run<T: Float>(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let k = g.cast(T::DTYPE)?.item()? * 2.0 * self.scale;
        let (a, b) = (self.yhat.contiguous()?, self.y.contiguous()?);
        let (av, bv) = (a.as_slice::<T>()?, b.as_slice::<T>()?);
        let d: Vec<T> = av.iter().zip(bv).map(|(&p, &q)| (p - q) * T::f(k)).collect();
        let shape = self.yhat.shape();
        let gy = if needs.get(1).copied().unwrap_or(false) { Some(Tensor::from_vec(d.iter().map(|&v| -v).collect(), shape)?) } else { None };
        let gh = if needs[0] { Some(Tensor::from_vec(d, shape)?) } else { None };
        Ok(vec![gh, gy])
    }
    /// On a device: `g` (a 0-d device tensor) is never read back.
    fn run_device(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let d = self.yhat.sub(&self.y)?.mul(&g.cast(self.yhat.dtype())?)?.mul_scalar(2.0 * self.scale)?;
        let gy = needs.get(1).copied().unwrap_or(false).then(|| d.neg()).transpose()?;
        Ok(vec![needs[0].then_some(d), gy])
    }
}

impl Backward for MseBackward {
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        if self.yhat.device() != Device::Cpu {
            return self.run_device(g, needs);
        }
        crate::dispatch!(self.yhat.dtype(), T => self.run::<T>(g, needs))
    }
}
