//! The Scale layer as a fused op: `σ(s ⊙ x + b)` over the trailing dimensions of `x`
//! in one pass, and one backward pass giving the gradients of `x`, `s` and `b`.
use super::{apply, FusedOp};
use crate::autodiff::Backward;
use crate::error::{shape_err, Result};
use crate::nn::Activation;
use crate::tensor::elementwise::{mul_deriv_inplace, unary_backward, unary_inplace};
use crate::tensor::{DType, Device, Tensor};
use crate::error::py_shape;

#[derive(Debug)]
struct ScaleOp {
    act: Activation,
}

/// What the backward needs: the input, the scale, and the pre-activation and output
/// when there is an activation.
#[derive(Debug)]
struct ScaleBackward {
    x: Tensor,
    s: Tensor,
    has_bias: bool,
    act: Option<(crate::tensor::elementwise::UnaryOp, Tensor, Tensor)>,
}

impl FusedOp for ScaleOp {
    fn name(&self) -> &'static str { "scale" }
    fn cpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let (x, s, b) = (xs[0], xs[1], xs.get(2).copied());
        crate::tensor::alloc::reserve(x.shape(), x.dtype())?;
        let m = s.numel().max(1);
        let (z, y) = crate::dispatch!(x.dtype(), T => {
            let (xc, sc) = (x.as_contiguous::<T>()?, s.as_contiguous::<T>()?);
            let (xv, sv) = (xc.as_slice::<T>()?, sc.as_slice::<T>()?);
            let mut z: Vec<T> = Vec::with_capacity(xv.len());
            match b {
                Some(b) => {
                    let bc = b.as_contiguous::<T>()?;
                    let bv = bc.as_slice::<T>()?;
                    for row in xv.chunks(m) {
                        z.extend(row.iter().zip(sv).zip(bv).map(|((&a, &f), &c)| f * a + c));
                    }
                }
                None => {
                    for row in xv.chunks(m) {
                        z.extend(row.iter().zip(sv).map(|(&a, &f)| f * a));
                    }
                }
            }
            match self.act.unary_op() {
                None => (None, Tensor::from_vec(z, x.shape())?),
                Some(op) => {
                    let mut y = z.clone();
                    unary_inplace(op, &mut y);
                    (Some((op, Tensor::from_vec(z, x.shape())?)), Tensor::from_vec(y, x.shape())?)
                }
            }
        });
        let act = z.map(|(op, z)| (op, z, y.clone()));
        Ok((y, Box::new(ScaleBackward { x: x.clone(), s: s.clone(), has_bias: b.is_some(), act })))
    }
    /// `s ⊙ x + b` and the activation with the device's kernels.
    fn wgpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let (x, s, b) = (xs[0], xs[1], xs.get(2).copied());
        let (y, act) = crate::autodiff::unrecorded(|| -> Result<_> {
            let z = s.mul(x)?;
            let z = match b {
                Some(b) => z.add(b)?,
                None => z,
            };
            Ok(match self.act.unary_op() {
                None => (z, None),
                Some(op) => {
                    let y = z.unary(op)?;
                    (y.clone(), Some((op, z, y)))
                }
            })
        })?;
        Ok((y, Box::new(ScaleBackward { x: x.clone(), s: s.clone(), has_bias: b.is_some(), act })))
    }
}

impl ScaleBackward {
    /// The rule with the device's kernels (a GPU forward's backward).
    fn on_device(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let gz = match &self.act {
            Some((op, z, y)) => unary_backward(*op, z, y, g)?,
            None => g.clone(),
        };
        let need = |i: usize| needs.get(i).copied().unwrap_or(false);
        let mut out = vec![
            need(0).then(|| gz.mul(&self.s)).transpose()?,
            need(1).then(|| gz.mul(&self.x)?.sum_to_shape(self.s.shape())).transpose()?,
        ];
        if self.has_bias {
            out.push(need(2).then(|| gz.sum_to_shape(self.s.shape())).transpose()?);
        }
        Ok(out)
    }
}

impl Backward for ScaleBackward {
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        if self.x.device() != Device::Cpu {
            return self.on_device(g, needs);
        }
        let m = self.s.numel().max(1);
        crate::dispatch!(self.x.dtype(), T => {
            let gc = g.as_contiguous::<T>()?;
            // the gradient of the pre-activation, g · σ′(z)
            let mut gz = gc.as_slice::<T>()?.to_vec();
            if let Some((op, z, y)) = &self.act {
                mul_deriv_inplace(*op, &mut gz, z.as_slice::<T>()?, y.as_slice::<T>()?);
            }
            let (xc, sc) = (self.x.as_contiguous::<T>()?, self.s.as_contiguous::<T>()?);
            let (xv, sv) = (xc.as_slice::<T>()?, sc.as_slice::<T>()?);
            let dx = needs[0]
                .then(|| {
                    let d: Vec<T> = gz.chunks(m).flat_map(|row| row.iter().zip(sv).map(|(&a, &f)| a * f)).collect();
                    Tensor::from_vec(d, self.x.shape())
                })
                .transpose()?;
            let ds = needs[1]
                .then(|| {
                    let mut d = vec![T::zero(); m];
                    for (grow, xrow) in gz.chunks(m).zip(xv.chunks(m)) {
                        d.iter_mut().zip(grow.iter().zip(xrow)).for_each(|(acc, (&a, &v))| *acc += a * v);
                    }
                    Tensor::from_vec(d, self.s.shape())
                })
                .transpose()?;
            let mut out = vec![dx, ds];
            if self.has_bias {
                let db = needs[2]
                    .then(|| {
                        let mut d = vec![T::zero(); m];
                        for grow in gz.chunks(m) {
                            d.iter_mut().zip(grow).for_each(|(acc, &a)| *acc += a);
                        }
                        Tensor::from_vec(d, self.s.shape())
                    })
                    .transpose()?;
                out.push(db);
            }
            Ok(out)
        })
    }
}

/// `σ(scale ⊙ x + bias)` with `scale` and `bias` broadcast against the trailing
/// dimensions of `x`, which must equal `scale`'s shape: one node on the tape, whose
/// backward gives the gradients of `x`, `scale` and `bias` in one pass. Inputs of mixed
/// float types are promoted, as for `x * scale`.
///
/// ```
/// use flux_core::{Tensor, nn::Activation, ops::scale::scale};
/// let x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0, 4.0], &[2, 2]).unwrap();
/// let s = Tensor::from_vec(vec![2.0f64, 1.0], &[2]).unwrap();
/// let b = Tensor::from_vec(vec![0.0f64, 1.0], &[2]).unwrap();
/// let y = scale(&x, &s, Some(&b), Activation::Relu).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![2.0, 0.0, 6.0, 5.0]);
/// ```
pub fn scale(x: &Tensor, scale: &Tensor, bias: Option<&Tensor>, act: Activation) -> Result<Tensor> {
    let k = scale.ndim();
    if x.ndim() < k || x.shape()[x.ndim() - k..] != *scale.shape() {
        return Err(shape_err!("Scale expects input ending in dimensions {}, got shape {}", py_shape(scale.shape()), py_shape(x.shape())));
    }
    if let Some(b) = bias {
        if b.shape() != scale.shape() {
            return Err(shape_err!("Scale: bias of shape {} does not match scale of shape {}", py_shape(b.shape()), py_shape(scale.shape())));
        }
    }
    let dt = bias.iter().fold(DType::promote(x.dtype(), scale.dtype()), |d, b| DType::promote(d, b.dtype()));
    let (x, s, b) = (x.cast(dt)?, scale.cast(dt)?, bias.map(|b| b.cast(dt)).transpose()?);
    let mut inputs = vec![&x, &s];
    inputs.extend(b.as_ref());
    apply(&ScaleOp { act }, &inputs)
}

#[cfg(test)]
mod tests {
    // forward against loops and gradients against finite differences (f64, and f32
    // against f64): rust/tests/layers_misc.rs
    use super::*;

    #[test]
    fn checks_shapes_and_promotes_dtypes() {
        let x = Tensor::ones(&[2, 3], DType::F32);
        assert!(scale(&x, &Tensor::ones(&[2], DType::F32), None, Activation::Identity).unwrap_err().to_string().contains("(2,)"));
        assert!(scale(&x, &Tensor::ones(&[3], DType::F32), Some(&Tensor::ones(&[2], DType::F32)), Activation::Identity).is_err());
        // mixed dtypes promote, as x * s does
        assert_eq!(scale(&x, &Tensor::ones(&[3], DType::F64), None, Activation::Identity).unwrap().dtype(), DType::F64);
    }
}
