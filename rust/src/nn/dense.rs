//! The fully connected layer: [`linear`] checks its operands and runs the fused op
//! [`DenseOp`] (`rust/src/ops/dense.rs`, one tape node per layer on either device);
//! [`Dense`] holds the parameters.
use super::{Activation, Module};
use crate::error::{shape_err, Result};
use crate::ops::{self, dense::DenseOp};
use crate::tensor::random::Rng;
use crate::tensor::{DType, Tensor};

/// `σ(x·Wᵀ + b)` for `x` of shape (..., in) and `W` of shape (out, in).
///
/// ```
/// use flux_core::{nn::{linear, Activation}, Tensor};
/// let x = Tensor::from_vec(vec![1.0f32, -2.0], &[1, 2]).unwrap();
/// let w = Tensor::from_vec(vec![1.0f32, 1.0, 0.0, 1.0], &[2, 2]).unwrap();
/// let b = Tensor::from_vec(vec![0.5f32, 0.0], &[2]).unwrap();
/// let y = linear(&x, &w, Some(&b), Activation::Relu).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![0.0, 0.0]);
/// ```
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Activation) -> Result<Tensor> {
    if w.ndim() != 2 {
        return Err(shape_err!("Dense weight must be 2-D (out, in), got shape {:?}", w.shape()));
    }
    let (out, inp) = (w.shape()[0], w.shape()[1]);
    if x.ndim() == 0 || x.shape()[x.ndim() - 1] != inp {
        return Err(shape_err!("Dense({inp} => {out}) expects input with last dimension {inp}, got shape {:?}", x.shape()));
    }
    if let Some(b) = b {
        if b.shape() != [out] {
            // a bias that only broadcasts: the composed (unfused) path
            let y = x.matmul(&w.t()?)?.add(b)?;
            return act.apply(&y);
        }
    }
    let dt = DType::promote(x.dtype(), w.dtype());
    // borrowed unless a cast is needed: a tiny layer's call is mostly such bookkeeping
    let (x, w) = (x.cast_cow(dt)?, w.cast_cow(dt)?);
    let b = b.map(|b| b.cast_cow(dt)).transpose()?;
    let lead = &x.shape()[..x.ndim() - 1];
    let rows: usize = lead.iter().product();
    let x2 = if x.ndim() == 2 { std::borrow::Cow::Borrowed(&*x) } else { std::borrow::Cow::Owned(x.reshape(&[rows, inp])?) };
    let mut ins: Vec<&Tensor> = vec![&x2, &w];
    if let Some(b) = b.as_deref() {
        ins.push(b);
    }
    let y = ops::apply(&DenseOp { act }, &ins)?;
    if x.ndim() == 2 {
        return Ok(y);
    }
    let mut shape = lead.to_vec();
    shape.push(out);
    y.reshape(&shape)
}

/// A fully connected layer: `σ(x·Wᵀ + b)` with `W` of shape (out, in).
///
/// Built with defaults and configured by chaining, as in `Dense(2 => 16, tanh)`:
///
/// ```
/// use flux_core::{nn::{Activation, Dense, Module}, tensor::random::Rng, DType, Tensor};
/// let d = Dense::new(2, 16).activation(Activation::Tanh);
/// assert_eq!(d.weight.shape(), &[16, 2]);
/// // f64, from a seeded generator: the same weights every run
/// let d64 = Dense::with_rng(2, 16, DType::F64, &mut Rng::seed(0));
/// assert_eq!(d64.forward(&Tensor::zeros(&[3, 2], DType::F64)).unwrap().shape(), &[3, 16]);
/// ```
pub struct Dense {
    /// The weight, shape (out, in).
    pub weight: Tensor,
    /// The bias, shape (out,), or `None` for a layer without one (see [`Dense::bias`]).
    pub bias: Option<Tensor>,
    /// The activation applied to `x·Wᵀ + b`.
    pub act: Activation,
}

/// Constructors and builders.
///
/// ```
/// use flux_core::nn::{Activation, Dense};
/// let d = Dense::new(3, 2).bias(false).activation(Activation::Relu);
/// assert_eq!((d.bias.is_none(), d.act), (true, Activation::Relu));
/// ```
impl Dense {
    /// A float32 layer with a Glorot-uniform weight drawn from the global generator
    /// ([`crate::tensor::random::seed`] makes it reproducible), zero bias, no activation.
    ///
    /// ```
    /// use flux_core::{nn::{Dense, Module}, tensor::random, DType};
    /// random::seed(1);
    /// let a = Dense::new(3, 2);
    /// random::seed(1);
    /// assert_eq!(a.weight.to_vec_f64().unwrap(), Dense::new(3, 2).weight.to_vec_f64().unwrap());
    /// assert_eq!((a.weight.dtype(), a.params().len()), (DType::F32, 2));
    /// ```
    pub fn new(inp: usize, out: usize) -> Dense { crate::tensor::random::with_global(|r| Dense::with_rng(inp, out, DType::F32, r)) }
    /// A layer of `dtype` with a Glorot-uniform weight drawn from `rng`, zero bias, no activation.
    ///
    /// ```
    /// use flux_core::{nn::Dense, tensor::random::Rng, DType};
    /// let a = Dense::with_rng(3, 2, DType::F64, &mut Rng::seed(7));
    /// let b = Dense::with_rng(3, 2, DType::F64, &mut Rng::seed(7));
    /// assert_eq!(a.weight.to_vec_f64().unwrap(), b.weight.to_vec_f64().unwrap());
    /// ```
    pub fn with_rng(inp: usize, out: usize, dtype: DType, rng: &mut Rng) -> Dense {
        Dense { weight: super::init::glorot_uniform(&[out, inp], 1.0, dtype, rng), bias: Some(Tensor::zeros(&[out], dtype)), act: Activation::Identity }
    }
    /// The same layer with a (zero) bias, or without one (`Dense(in => out; bias=false)`
    /// in Flux): a layer without bias has the weight as its only parameter.
    ///
    /// ```
    /// use flux_core::{nn::{Dense, Module}, DType, Tensor};
    /// let d = Dense::new(2, 3).bias(false);
    /// assert_eq!(d.parameters().iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["weight"]);
    /// // x·Wᵀ alone: a zero input gives zeros
    /// assert_eq!(d.forward(&Tensor::zeros(&[1, 2], DType::F32)).unwrap().to_vec_f64().unwrap(), vec![0.0; 3]);
    /// ```
    pub fn bias(mut self, on: bool) -> Dense {
        let (out, dtype) = (self.weight.shape()[0], self.weight.dtype());
        self.bias = on.then(|| self.bias.take().unwrap_or_else(|| Tensor::zeros(&[out], dtype)));
        self
    }
    /// The same layer with activation `act`.
    ///
    /// ```
    /// use flux_core::{nn::{Activation, Dense, Module}, DType, Tensor};
    /// let d = Dense::new(2, 3).activation(Activation::Relu);
    /// let x = flux_core::tensor::random::Rng::seed(0).normal_tensor(&[4, 2], 0.0, 1.0, DType::F32);
    /// let y = d.forward(&x).unwrap();
    /// assert!(y.to_vec_f64().unwrap().iter().all(|&v| v >= 0.0));
    /// ```
    pub fn activation(mut self, act: Activation) -> Dense {
        self.act = act;
        self
    }
    /// The same layer with its parameters converted to `dtype`.
    ///
    /// ```
    /// use flux_core::{nn::Dense, DType};
    /// assert_eq!(Dense::new(2, 3).dtype(DType::F64).weight.dtype(), DType::F64);
    /// ```
    pub fn dtype(mut self, dtype: DType) -> Dense {
        // a cast between float types cannot fail
        self.weight = self.weight.cast(dtype).expect("float cast");
        self.bias = self.bias.map(|b| b.cast(dtype).expect("float cast"));
        self
    }
}

impl Module for Dense {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> { linear(x, &self.weight, self.bias.as_ref(), self.act) }
    crate::module_params!(weight; optional bias);
}
