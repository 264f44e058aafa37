//! Activation functions by name, so a layer can apply one inside a fused call.
use crate::error::{value_err, Result};
use crate::tensor::elementwise::UnaryOp;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Identity,
    Unary(UnaryOp),
}

impl Activation {
    /// `"relu"`, `"sigmoid"`, `"tanh"`, `"leakyrelu"`, `"elu"`, `"gelu"`, `"swish"`, `"softplus"`, `"identity"`.
    pub fn from_name(name: &str) -> Result<Activation> {
        Ok(match name {
            "identity" => Activation::Identity,
            "relu" => Activation::Unary(UnaryOp::Relu),
            "sigmoid" | "σ" => Activation::Unary(UnaryOp::Sigmoid),
            "tanh" => Activation::Unary(UnaryOp::Tanh),
            "leakyrelu" => Activation::Unary(UnaryOp::LeakyRelu(0.01)),
            "elu" => Activation::Unary(UnaryOp::Elu(1.0)),
            "gelu" => Activation::Unary(UnaryOp::Gelu),
            "swish" => Activation::Unary(UnaryOp::Swish),
            "softplus" => Activation::Unary(UnaryOp::Softplus),
            _ => return Err(value_err!("unknown activation {name:?}")),
        })
    }
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Identity => Ok(x.clone()),
            Activation::Unary(op) => x.unary(*op),
        }
    }
}
