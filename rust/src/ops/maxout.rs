//! The Maxout layer's combination as a fused op: the elementwise maximum of k tensors in
//! one pass (one tape node instead of k − 1 `maximum`s), and a backward that shares
//! each element's gradient equally among the inputs that attain the maximum.
use super::{apply, FusedOp};
use crate::autodiff::Backward;
use crate::error::{value_err, Result};
use crate::tensor::elementwise::{BinaryOp, CmpOp};
use crate::tensor::layout::broadcast_shapes;
use crate::tensor::misc::where_;
use crate::tensor::{DType, Device, Tensor};

#[derive(Debug)]
struct MaxoutOp;

#[derive(Debug)]
struct MaxoutBackward {
    /// The inputs (contiguous, one shape) and the output.
    ys: Vec<Tensor>,
    out: Tensor,
}

impl FusedOp for MaxoutOp {
    fn name(&self) -> &'static str { "maxout" }
    fn cpu_fwd(&self, ys: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let shape = ys[0].shape().to_vec();
        crate::tensor::alloc::reserve(&shape, ys[0].dtype())?;
        crate::dispatch!(ys[0].dtype(), T => {
            let cs: Vec<Tensor> = ys.iter().map(|y| y.as_contiguous::<T>().map(|c| c.into_owned())).collect::<Result<_>>()?;
            let mut acc = cs[0].as_slice::<T>()?.to_vec();
            for c in &cs[1..] {
                // NaN-propagating, as `maximum`
                acc.iter_mut().zip(c.as_slice::<T>()?).for_each(|(a, &b)| *a = BinaryOp::Max.fwd(*a, b));
            }
            let out = Tensor::from_vec(acc, &shape)?;
            Ok((out.clone(), Box::new(MaxoutBackward { ys: cs, out }) as Box<dyn Backward>))
        })
    }
    /// `maximum` over the inputs with the device's kernels.
    fn wgpu_fwd(&self, ys: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let out = crate::autodiff::unrecorded(|| ys[1..].iter().try_fold(ys[0].clone(), |acc, y| acc.maximum(y)))?;
        let ys = ys.iter().map(|&y| y.clone()).collect();
        Ok((out.clone(), Box::new(MaxoutBackward { ys, out })))
    }
}

impl MaxoutBackward {
    /// The rule with the device's kernels: each input that attains the maximum gets
    /// `g / count`, where `count` (≥ 1 but where the maximum is NaN) is how many attain it.
    fn on_device(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let hits: Vec<Tensor> = self.ys.iter().map(|y| y.compare(&self.out, CmpOp::Eq)).collect::<Result<_>>()?;
        let count = hits[1..].iter().try_fold(hits[0].clone(), |c, h| c.add(h))?;
        let zero = g.full_beside(&[], 0.0, g.dtype())?;
        let share = where_(&count, &g.div(&count)?, &zero)?;
        hits.iter().zip(needs).map(|(h, &need)| need.then(|| h.mul(&share)).transpose()).collect()
    }
}

impl Backward for MaxoutBackward {
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        if self.out.device() != Device::Cpu {
            return self.on_device(g, needs);
        }
        crate::dispatch!(self.out.dtype(), T => {
            let gc = g.as_contiguous::<T>()?;
            let (gv, ov) = (gc.as_slice::<T>()?, self.out.as_slice::<T>()?);
            let vs: Vec<&[T]> = self.ys.iter().map(|y| y.as_slice::<T>()).collect::<Result<_>>()?;
            // how many inputs attain each element's maximum (ties share the gradient)
            let mut count = vec![T::zero(); ov.len()];
            for v in &vs {
                count.iter_mut().zip(v.iter().zip(ov)).for_each(|(c, (&a, &m))| if a == m { *c += T::one() });
            }
            let share: Vec<T> = gv.iter().zip(&count).map(|(&gi, &c)| if c > T::zero() { gi / c } else { T::zero() }).collect();
            vs.iter()
                .zip(needs)
                .map(|(v, &need)| {
                    need.then(|| {
                        let d: Vec<T> = v.iter().zip(ov).zip(&share).map(|((&a, &m), &s)| if a == m { s } else { T::zero() }).collect();
                        Tensor::from_vec(d, self.out.shape())
                    })
                    .transpose()
                })
                .collect()
        })
    }
}

/// The elementwise maximum of `ys` (broadcast against each other, float types
/// promoted) as one node on the tape: where several inputs tie for the maximum they
/// share its gradient equally, as for the `max` reduction.
///
/// ```
/// use flux_core::{Tensor, ops::maxout::maxout};
/// let a = Tensor::from_vec(vec![1.0f32, 5.0], &[2]).unwrap();
/// let b = Tensor::from_vec(vec![3.0f32, 2.0], &[2]).unwrap();
/// assert_eq!(maxout(&[a, b]).unwrap().to_vec_f64().unwrap(), vec![3.0, 5.0]);
/// ```
pub fn maxout(ys: &[Tensor]) -> Result<Tensor> {
    let first = ys.first().ok_or_else(|| value_err!("Maxout needs at least one layer"))?;
    let shape = ys[1..].iter().try_fold(first.shape().to_vec(), |s, y| broadcast_shapes(&s, y.shape()))?;
    let dt = ys[1..].iter().fold(first.dtype(), |d, y| DType::promote(d, y.dtype()));
    let same: Vec<Tensor> = ys.iter().map(|y| y.cast(dt)?.broadcast_to(&shape)).collect::<Result<_>>()?;
    apply(&MaxoutOp, &same.iter().collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::value_and_grad;

    #[test]
    fn ties_share_the_gradient_equally_and_shapes_broadcast() {
        let a = Tensor::from_vec(vec![1.0f64, 4.0], &[2]).unwrap();
        let b = Tensor::from_vec(vec![1.0f64, 2.0], &[2]).unwrap();
        let c = Tensor::from_vec(vec![1.0f64], &[1]).unwrap();
        let (_, g) = value_and_grad(&[&a, &b, &c], || maxout(&[a.clone(), b.clone(), c.clone()])?.sum_all()).unwrap();
        let g: Vec<Vec<f64>> = g.iter().map(|t| t.as_ref().unwrap().to_vec_f64().unwrap()).collect();
        assert_eq!(g, vec![vec![1.0 / 3.0, 1.0], vec![1.0 / 3.0, 0.0], vec![1.0 / 3.0]]);
        assert!(maxout(&[a, Tensor::zeros(&[3], DType::F64)]).is_err());
    }
}
