//! The fully connected layer, as one fused op: `σ(x·Wᵀ + b)` is a single GEMM whose
//! output starts as the bias rows, then the activation in place; the backward pass is
//! one elementwise sweep (`g ⊙ σ′`) and two GEMMs that read `W` and `x` through strides
//! (no transposed copies), with the bias gradient as column sums. One tape node per layer.
use super::{Activation, Module};
use crate::autodiff::{record, Backward, Op};
use crate::error::{shape_err, Result};
use crate::tensor::elementwise::{mul_deriv_map, unary_inplace, unary_map};
use crate::tensor::matmul::{gemm_into, gemm_new, Mat};
use crate::tensor::random::Rng;
use crate::tensor::{DType, Float, Tensor};

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
    if x.device() != crate::Device::Cpu {
        // off the CPU the fused kernel (which reads host memory) gives way to the
        // composed ops, which every backend runs
        let y = x.matmul(&w.t()?)?;
        let y = match b {
            Some(b) => y.add(b)?,
            None => y,
        };
        return act.apply(&y);
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
    let (y, z) = crate::dispatch!(dt, T => forward::<T>(&x2, &w, b.as_deref(), act, rows, inp, out)?);
    let mut ins: Vec<&Tensor> = vec![&x2, &w];
    if let Some(b) = b.as_deref() {
        ins.push(b);
    }
    record(&ins, &y, || Op::Custom(Box::new(DenseBackward { x: x2.clone().into_owned(), w: w.clone().into_owned(), y: y.clone(), z, act, bias: b.is_some() })));
    if x.ndim() == 2 {
        return Ok(y);
    }
    let mut shape = lead.to_vec();
    shape.push(out);
    y.reshape(&shape)
}

/// Whether σ′ needs the pre-activation `z`; relu, tanh and sigmoid read it off `y`.
fn needs_z(act: Activation) -> bool {
    !matches!(act, Activation::Identity | Activation::Relu | Activation::Tanh | Activation::Sigmoid)
}

/// (y, z): the output and, when σ′ needs it, the pre-activation.
fn forward<T: Float>(x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Activation, rows: usize, inp: usize, out: usize) -> Result<(Tensor, Option<Tensor>)> {
    let (xm, wm) = (Mat::of(x, false)?, Mat::of(w, true)?);
    let mut z = match b {
        Some(b) => {
            // the bias rows first, then the product added onto them
            let b = b.as_contiguous::<T>()?;
            let bv = b.as_slice::<T>()?;
            let mut z = Vec::with_capacity(rows * out);
            (0..rows).for_each(|_| z.extend_from_slice(bv));
            gemm_into(rows, out, inp, xm, wm, &mut z, true);
            z
        }
        None => gemm_new(rows, out, inp, xm, wm),
    };
    let Some(op) = act.unary_op() else {
        return Ok((Tensor::from_vec(z, &[rows, out])?, None));
    };
    if needs_z(act) {
        let y = unary_map(op, &z);
        return Ok((Tensor::from_vec(y, &[rows, out])?, Some(Tensor::from_vec(z, &[rows, out])?)));
    }
    unary_inplace(op, &mut z);
    Ok((Tensor::from_vec(z, &[rows, out])?, None))
}

/// The backward rule of [`linear`]'s fused op (inputs x, W and, if any, b).
#[derive(Debug)]
struct DenseBackward {
    x: Tensor,
    w: Tensor,
    y: Tensor,
    z: Option<Tensor>,
    act: Activation,
    bias: bool,
}

impl DenseBackward {
    fn run<T: Float>(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let (rows, inp) = (self.x.shape()[0], self.x.shape()[1]);
        let out = self.w.shape()[0];
        let g = g.as_contiguous::<T>()?;
        let gs = g.as_slice::<T>()?;
        // dz = g ⊙ σ′(z, y), or g itself for the identity
        let dz_own;
        let dz: &[T] = match self.act.unary_op() {
            None => gs,
            Some(op) => {
                let y = self.y.as_slice::<T>()?;
                let z = match &self.z {
                    Some(z) => z.as_slice::<T>()?,
                    None => y, // relu: y > 0 exactly where z > 0
                };
                dz_own = mul_deriv_map(op, gs, z, y);
                &dz_own
            }
        };
        let dzm = Mat { data: dz, off: 0, rs: out as isize, cs: 1 };
        let gx = if needs[0] {
            Some(Tensor::from_vec(gemm_new(rows, inp, out, dzm, Mat::of(&self.w, false)?), &[rows, inp])?)
        } else {
            None
        };
        let gw = if needs[1] {
            Some(Tensor::from_vec(gemm_new(out, inp, rows, dzm.t(), Mat::of(&self.x, false)?), &[out, inp])?)
        } else {
            None
        };
        let mut res = vec![gx, gw];
        if self.bias {
            res.push(if needs.get(2).copied().unwrap_or(false) {
                let mut s = vec![T::zero(); out];
                for r in dz.chunks_exact(out.max(1)) {
                    s.iter_mut().zip(r).for_each(|(a, &v)| *a += v);
                }
                Some(Tensor::from_vec(s, &[out])?)
            } else {
                None
            });
        }
        Ok(res)
    }
}

impl Backward for DenseBackward {
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        crate::dispatch!(self.x.dtype(), T => self.run::<T>(g, needs))
    }
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
