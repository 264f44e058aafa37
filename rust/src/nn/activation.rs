//! Activation functions as an enum, so a layer can apply one inside a fused call.
use std::str::FromStr;

use crate::error::{value_err, Error, Result};
use crate::tensor::elementwise::UnaryOp;
use crate::tensor::Tensor;

/// The activation a layer applies to its output (`σ` in Flux's `Dense(in => out, σ)`).
///
/// ```
/// use flux_core::{nn::Activation, Tensor};
/// let x = Tensor::from_vec(vec![-1.0f64, 2.0], &[2]).unwrap();
/// assert_eq!(Activation::Relu.apply(&x).unwrap().to_vec_f64().unwrap(), vec![0.0, 2.0]);
/// assert_eq!("tanh".parse::<Activation>().unwrap(), Activation::Tanh);
/// assert_eq!(Activation::default(), Activation::Identity);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Activation {
    /// `x` unchanged.
    #[default]
    Identity,
    /// `max(0, x)`.
    Relu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `x` if `x > 0`, else `a·x` (Flux's default slope is 0.01).
    LeakyRelu(f64),
    /// `x` if `x > 0`, else `α·(e^x − 1)` (Flux's default α is 1).
    Elu(f64),
    /// The Gaussian error linear unit, tanh approximation (as Flux's `gelu`).
    Gelu,
    /// `x·σ(x)`.
    Swish,
    /// `log(1 + e^x)`.
    Softplus,
}

/// Names, parsing, and applying an activation.
///
/// ```
/// use flux_core::nn::Activation;
/// assert_eq!(Activation::parse("σ", None).unwrap(), Activation::Sigmoid);
/// ```
impl Activation {
    /// The activation called `name` (`"relu"`, `"sigmoid"` or `"σ"`, `"tanh"`,
    /// `"leakyrelu"`, `"elu"`, `"gelu"`, `"swish"`, `"softplus"`, `"identity"`), with
    /// `param` as the slope of leakyrelu or the α of elu (their defaults when `None`).
    ///
    /// ```
    /// use flux_core::nn::Activation;
    /// assert_eq!(Activation::parse("leakyrelu", Some(0.2)).unwrap(), Activation::LeakyRelu(0.2));
    /// assert!(Activation::parse("relux", None).is_err());
    /// ```
    pub fn parse(name: &str, param: Option<f64>) -> Result<Activation> {
        Ok(match name {
            "identity" => Activation::Identity,
            "relu" => Activation::Relu,
            "sigmoid" | "σ" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "leakyrelu" => Activation::LeakyRelu(param.unwrap_or(0.01)),
            "elu" => Activation::Elu(param.unwrap_or(1.0)),
            "gelu" => Activation::Gelu,
            "swish" => Activation::Swish,
            "softplus" => Activation::Softplus,
            _ => return Err(value_err!("unknown activation {name:?}")),
        })
    }

    /// [`Activation::parse`] with the default parameters.
    ///
    /// ```
    /// assert_eq!(flux_core::nn::Activation::from_name("elu").unwrap(), flux_core::nn::Activation::Elu(1.0));
    /// ```
    pub fn from_name(name: &str) -> Result<Activation> { Self::parse(name, None) }

    /// The elementwise kernel behind this activation (`None` for the identity).
    ///
    /// ```
    /// use flux_core::{nn::Activation, tensor::elementwise::UnaryOp};
    /// assert_eq!(Activation::Relu.unary_op(), Some(UnaryOp::Relu));
    /// assert_eq!(Activation::Identity.unary_op(), None);
    /// ```
    pub fn unary_op(self) -> Option<UnaryOp> {
        Some(match self {
            Activation::Identity => return None,
            Activation::Relu => UnaryOp::Relu,
            Activation::Sigmoid => UnaryOp::Sigmoid,
            Activation::Tanh => UnaryOp::Tanh,
            Activation::LeakyRelu(a) => UnaryOp::LeakyRelu(a),
            Activation::Elu(a) => UnaryOp::Elu(a),
            Activation::Gelu => UnaryOp::Gelu,
            Activation::Swish => UnaryOp::Swish,
            Activation::Softplus => UnaryOp::Softplus,
        })
    }

    /// `σ(x)`, recorded on the tape like any elementwise op.
    ///
    /// ```
    /// use flux_core::{nn::Activation, Tensor};
    /// let x = Tensor::from_vec(vec![0.0f32], &[1]).unwrap();
    /// assert_eq!(Activation::Sigmoid.apply(&x).unwrap().to_vec_f64().unwrap(), vec![0.5]);
    /// ```
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        match self.unary_op() {
            None => Ok(x.clone()),
            Some(op) => x.unary(op),
        }
    }
}

impl FromStr for Activation {
    type Err = Error;
    fn from_str(name: &str) -> Result<Activation> { Self::from_name(name) }
}
