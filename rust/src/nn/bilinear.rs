//! The bilinear layer: `z[…, o] = σ(Σᵢⱼ x[…, i]·W[o, i, j]·y[…, j] + b[o])`, a shell
//! over the fused op [`crate::ops::bilinear`].
use super::{Activation, Module};
use crate::error::Result;
use crate::tensor::random::Rng;
use crate::tensor::{DType, Tensor};

/// The whole layer in one call (one fused op; the Python layer calls it too).
pub use crate::ops::bilinear::bilinear;

/// Flux's `Bilinear`: weight (out, in1, in2), bias (out,). `forward_t(x)` uses `y = x`;
/// [`Bilinear::forward2`] takes two inputs.
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Module, bilinear::Bilinear}};
/// let b = Bilinear::new(3, 4, 2);
/// let z = b.forward2(&Tensor::ones(&[5, 3], DType::F32), &Tensor::ones(&[5, 4], DType::F32), false).unwrap();
/// assert_eq!(z.shape(), &[5, 2]);
/// ```
pub struct Bilinear {
    /// The weight, shape (out, in1, in2).
    pub weight: Tensor,
    /// The bias, shape (out,), or `None` for a layer without bias.
    pub bias: Option<Tensor>,
    /// The activation applied last.
    pub act: Activation,
}

/// Constructors and builders.
///
/// ```
/// use flux_core::nn::bilinear::Bilinear;
/// assert_eq!(Bilinear::new(2, 3, 4).bias.unwrap().shape(), &[4]);
/// ```
impl Bilinear {
    /// A float32 layer with a Glorot-uniform weight from the global generator, zero bias.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Activation, Module, bilinear::Bilinear}};
    /// let b = Bilinear::new(3, 4, 2).activation(Activation::Tanh);
    /// assert_eq!(b.weight.shape(), &[2, 3, 4]);
    /// let z = b.forward2(&Tensor::ones(&[5, 3], DType::F32), &Tensor::ones(&[5, 4], DType::F32), false).unwrap();
    /// assert_eq!(z.shape(), &[5, 2]);
    /// assert_eq!(b.no_bias().parameters().len(), 1);
    /// ```
    pub fn new(in1: usize, in2: usize, out: usize) -> Bilinear {
        crate::tensor::random::with_global(|r| Bilinear::with_rng(in1, in2, out, DType::F32, r))
    }
    /// A layer of `dtype` whose weight is drawn from `rng`.
    ///
    /// ```
    /// use flux_core::{DType, nn::bilinear::Bilinear, tensor::random::Rng};
    /// assert_eq!(Bilinear::with_rng(3, 4, 2, DType::F64, &mut Rng::seed(1)).weight.shape(), &[2, 3, 4]);
    /// ```
    pub fn with_rng(in1: usize, in2: usize, out: usize, dtype: DType, rng: &mut Rng) -> Bilinear {
        Bilinear {
            weight: super::init::glorot_uniform(&[out, in1, in2], 1.0, dtype, rng),
            bias: Some(Tensor::zeros(&[out], dtype)),
            act: Activation::Identity,
        }
    }
    /// The same layer with activation `act`.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Activation, bilinear::Bilinear}};
    /// let mut b = Bilinear::new(1, 1, 1).activation(Activation::Relu);
    /// b.weight = Tensor::full(&[1, 1, 1], -1.0, DType::F32);
    /// let z = b.forward2(&Tensor::ones(&[2, 1], DType::F32), &Tensor::ones(&[2, 1], DType::F32), false).unwrap();
    /// assert_eq!(z.to_vec_f64().unwrap(), vec![0.0, 0.0]); // relu(−1·1·1)
    /// ```
    pub fn activation(mut self, act: Activation) -> Bilinear {
        self.act = act;
        self
    }
    /// The same layer without a bias.
    ///
    /// ```
    /// use flux_core::nn::{Module, bilinear::Bilinear};
    /// let b = Bilinear::new(2, 2, 3).no_bias();
    /// assert!(b.bias.is_none());
    /// assert_eq!(b.parameters().iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["weight"]);
    /// ```
    pub fn no_bias(mut self) -> Bilinear {
        self.bias = None;
        self
    }
    /// The layer applied to two inputs `x` (..., in1) and `y` (..., in2).
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::bilinear::Bilinear};
    /// let mut b = Bilinear::new(2, 3, 1).no_bias();
    /// b.weight = Tensor::ones(&[1, 2, 3], DType::F32);  // z = (x₀ + x₁)(y₀ + y₁ + y₂)
    /// let (x, y) = (Tensor::ones(&[1, 2], DType::F32), Tensor::ones(&[1, 3], DType::F32));
    /// assert_eq!(b.forward2(&x, &y, false).unwrap().to_vec_f64().unwrap(), vec![6.0]);
    /// ```
    pub fn forward2(&self, x: &Tensor, y: &Tensor, _train: bool) -> Result<Tensor> { bilinear(x, y, &self.weight, self.bias.as_ref(), self.act) }
}

impl Module for Bilinear {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> { self.forward2(x, x, train) }
    crate::module_params!(weight; optional bias);
}
