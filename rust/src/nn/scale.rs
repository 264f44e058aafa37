//! The elementwise affine layer [`Scale`]: `σ(scale ⊙ x + bias)`, a shell over the
//! fused op [`crate::ops::scale`].
use super::{Activation, Module};
use crate::error::Result;
use crate::tensor::{DType, Tensor};

/// The whole layer in one call (one fused op; the Python layer calls it too).
pub use crate::ops::scale::scale;

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

/// Constructor and builders.
///
/// ```
/// use flux_core::nn::scale::Scale;
/// assert!(Scale::new(&[2]).bias.is_some());
/// ```
impl Scale {
    /// A float32 layer over trailing dimensions `size`: scale ones, bias zeros, no activation.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, scale::Scale}};
    /// let s = Scale::new(&[3]);
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[1, 3]).unwrap();
    /// assert_eq!(s.forward(&x).unwrap().to_vec_f64().unwrap(), vec![1.0, 2.0, 3.0]);  // ones and zeros at first
    /// assert_eq!(s.dtype(DType::F64).scale.dtype(), DType::F64);
    /// ```
    pub fn new(size: &[usize]) -> Scale { Scale { scale: Tensor::ones(size, DType::F32), bias: Some(Tensor::zeros(size, DType::F32)), act: Activation::Identity } }
    /// The same layer with activation `act`.
    ///
    /// ```
    /// use flux_core::{Tensor, nn::{Activation, Module, scale::Scale}};
    /// let s = Scale::new(&[2]).activation(Activation::Relu);
    /// let y = s.forward(&Tensor::from_vec(vec![-1.0f32, 2.0], &[1, 2]).unwrap()).unwrap();
    /// assert_eq!(y.to_vec_f64().unwrap(), vec![0.0, 2.0]);
    /// ```
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
    ///
    /// ```
    /// use flux_core::{DType, nn::scale::Scale};
    /// let s = Scale::new(&[2, 3]).dtype(DType::F64);
    /// assert_eq!((s.scale.dtype(), s.bias.unwrap().shape()), (DType::F64, &[2usize, 3][..]));
    /// ```
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
