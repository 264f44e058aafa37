//! The elementwise affine layer [`Scale`]: `σ(scale ⊙ x + bias)`.
use super::{Activation, Module};
use super::losses::py_shape;
use crate::error::{shape_err, Result};
use crate::tensor::{DType, Tensor};

/// `σ(scale ⊙ x + bias)` with `scale` and `bias` broadcast against the trailing
/// dimensions of `x`, which must equal `scale`'s shape: the whole [`Scale`] layer in one
/// call (the Python layer calls this too).
///
/// ```
/// use flux_core::{Tensor, nn::{scale::scale, Activation}};
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
    let y = x.mul(scale)?;
    let y = match bias {
        Some(b) => y.add(b)?,
        None => y,
    };
    act.apply(&y)
}

/// Flux's `Scale`: a learnable elementwise scale and shift (ones and zeros at first).
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Activation, Module, scale::Scale}};
/// let s = Scale::new(&[2]).activation(Activation::Tanh);
/// let y = s.forward(&Tensor::zeros(&[3, 2], DType::F32)).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![0.0; 6]);
/// assert_eq!(s.parameters().len(), 2);
/// ```
pub struct Scale {
    /// The factor, shape `size`.
    pub scale: Tensor,
    /// The shift, shape `size`, or `None` for a layer without bias.
    pub bias: Option<Tensor>,
    /// The activation applied last.
    pub act: Activation,
}

impl Scale {
    /// A float32 layer over trailing dimensions `size`: scale ones, bias zeros, no activation.
    pub fn new(size: &[usize]) -> Scale { Scale { scale: Tensor::ones(size, DType::F32), bias: Some(Tensor::zeros(size, DType::F32)), act: Activation::Identity } }
    /// The same layer with activation `act`.
    pub fn activation(mut self, act: Activation) -> Scale {
        self.act = act;
        self
    }
    /// The same layer without a bias.
    ///
    /// ```
    /// use flux_core::nn::{Module, scale::Scale};
    /// assert_eq!(Scale::new(&[3]).no_bias().parameters().len(), 1);
    /// ```
    pub fn no_bias(mut self) -> Scale {
        self.bias = None;
        self
    }
    /// The same layer with its parameters converted to `dtype`.
    pub fn dtype(mut self, dtype: DType) -> Scale {
        // a cast between float types cannot fail
        self.scale = self.scale.cast(dtype).expect("float cast");
        self.bias = self.bias.map(|b| b.cast(dtype).expect("float cast"));
        self
    }
}

impl Module for Scale {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> { scale(x, &self.scale, self.bias.as_ref(), self.act) }
    crate::module_params!(scale; optional bias);
}
