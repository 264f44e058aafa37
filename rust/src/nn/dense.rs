//! The fully connected layer.
use super::{Activation, Module};
use crate::error::{shape_err, Result};
use crate::tensor::random::Rng;
use crate::tensor::{DType, Tensor};

/// `σ(x·Wᵀ + b)` for `x` of shape (..., in) and `W` of shape (out, in).
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Activation) -> Result<Tensor> {
    if w.ndim() != 2 {
        return Err(shape_err!("Dense weight must be 2-D (out, in), got shape {:?}", w.shape()));
    }
    let (out, inp) = (w.shape()[0], w.shape()[1]);
    if x.ndim() == 0 || x.shape()[x.ndim() - 1] != inp {
        return Err(shape_err!("Dense({inp} => {out}) expects input with last dimension {inp}, got shape {:?}", x.shape()));
    }
    let mut y = x.matmul(&w.t()?)?;
    if let Some(b) = b {
        y = y.add(b)?;
    }
    act.apply(&y)
}

pub struct Dense {
    pub weight: Tensor,
    pub bias: Tensor,
    pub act: Activation,
}

impl Dense {
    /// Glorot-uniform weight, zero bias.
    pub fn new(inp: usize, out: usize, act: Option<Activation>, dtype: DType, rng: &mut Rng) -> Dense {
        Dense {
            weight: super::init::glorot_uniform(&[out, inp], 1.0, dtype, rng),
            bias: Tensor::zeros(&[out], dtype),
            act: act.unwrap_or(Activation::Identity),
        }
    }
}

impl Module for Dense {
    fn forward(&self, x: &Tensor) -> Result<Tensor> { linear(x, &self.weight, Some(&self.bias), self.act) }
    fn parameters(&self) -> Vec<(String, &Tensor)> { vec![("weight".into(), &self.weight), ("bias".into(), &self.bias)] }
    fn parameters_mut(&mut self) -> Vec<(String, &mut Tensor)> { vec![("weight".into(), &mut self.weight), ("bias".into(), &mut self.bias)] }
}
