//! Convolution, pooling and flatten layers for Rust users (the Python layers call the
//! same ops in [`crate::tensor::conv`] and [`crate::tensor::pool`]).
use super::{Activation, Module};
use crate::error::Result;
use crate::tensor::conv::{conv, conv_relu, conv_transpose, ConvSpec};
use crate::tensor::pool::{pool, PoolMode, PoolSpec};
use crate::tensor::random::Rng;
use crate::tensor::{DType, Tensor};

/// `act(conv(x, weight) + bias)` with weight (out, in / groups, k...), input NCHW.
///
/// Built with defaults (stride 1, no padding, dilation 1, one group, no activation) and
/// configured by chaining:
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Activation, Module, conv::Conv}};
/// let c = Conv::new(&[3, 3], 1, 6).pad(1).stride(2).activation(Activation::Relu);
/// assert_eq!(c.forward(&Tensor::zeros(&[2, 1, 28, 28], DType::F32)).unwrap().shape(), &[2, 6, 14, 14]);
/// ```
pub struct Conv {
    /// The kernel, shape (out, in / groups, k...).
    pub weight: Tensor,
    /// The bias, shape (out,).
    pub bias: Tensor,
    /// Stride, padding, dilation and groups.
    pub spec: ConvSpec,
    /// The activation applied after the bias.
    pub act: Activation,
}

/// Constructors and builders (stride, padding, dilation, groups, dtype, activation).
///
/// ```
/// use flux_core::nn::conv::Conv;
/// assert_eq!(Conv::new(&[3, 3], 2, 4).bias.shape(), &[4]);
/// ```
impl Conv {
    /// A float32 layer with window `k`, a Glorot-uniform weight from the global
    /// generator, zero bias, stride 1, no padding.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, conv::Conv}};
    /// let c = Conv::new(&[5, 5], 1, 6);
    /// assert_eq!(c.weight.shape(), &[6, 1, 5, 5]);
    /// assert_eq!(c.forward(&Tensor::zeros(&[2, 1, 28, 28], DType::F32)).unwrap().shape(), &[2, 6, 24, 24]);
    /// ```
    pub fn new(k: &[usize], inp: usize, out: usize) -> Conv { crate::tensor::random::with_global(|r| Conv::with_rng(k, inp, out, DType::F32, r)) }
    /// A layer of `dtype` whose Glorot-uniform weight is drawn from `rng`.
    ///
    /// ```
    /// use flux_core::{DType, nn::conv::Conv, tensor::random::Rng};
    /// let c = Conv::with_rng(&[5, 5], 1, 6, DType::F64, &mut Rng::seed(0));
    /// assert_eq!(c.weight.shape(), &[6, 1, 5, 5]);
    /// ```
    pub fn with_rng(k: &[usize], inp: usize, out: usize, dtype: DType, rng: &mut Rng) -> Conv {
        let mut shape = vec![out, inp];
        shape.extend(k);
        Conv {
            weight: super::init::glorot_uniform(&shape, 1.0, dtype, rng),
            bias: Tensor::zeros(&[out], dtype),
            spec: ConvSpec::new(k.len()),
            act: Activation::Identity,
        }
    }
    /// The same layer with activation `act`.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Activation, Module, conv::Conv}};
    /// let c = Conv::new(&[1, 1], 1, 1).activation(Activation::Relu);
    /// let y = c.forward(&Tensor::from_vec(vec![-1.0f32, 1.0], &[1, 1, 1, 2]).unwrap()).unwrap();
    /// assert!(y.to_vec_f64().unwrap().iter().all(|&v| v >= 0.0));
    /// ```
    pub fn activation(mut self, act: Activation) -> Conv {
        self.act = act;
        self
    }
    /// The same layer with symmetric padding `p` in every spatial dimension.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, conv::Conv}};
    /// // "same" padding for a 3×3 window
    /// let c = Conv::new(&[3, 3], 2, 4).pad(1);
    /// assert_eq!(c.forward(&Tensor::zeros(&[1, 2, 8, 8], DType::F32)).unwrap().shape(), &[1, 4, 8, 8]);
    /// ```
    pub fn pad(mut self, p: usize) -> Conv {
        self.spec = self.spec.with_pad(p);
        self
    }
    /// The same layer with stride `s` in every spatial dimension.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, conv::Conv}};
    /// let c = Conv::new(&[2, 2], 1, 1).stride(2);
    /// assert_eq!(c.forward(&Tensor::zeros(&[1, 1, 8, 8], DType::F32)).unwrap().shape(), &[1, 1, 4, 4]);
    /// ```
    pub fn stride(mut self, s: usize) -> Conv {
        self.spec = self.spec.with_stride(s);
        self
    }
    /// The same layer with dilation `d` in every spatial dimension.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, conv::Conv}};
    /// let c = Conv::new(&[3, 3], 1, 1).dilation(2);
    /// assert_eq!(c.forward(&Tensor::zeros(&[1, 1, 9, 9], DType::F32)).unwrap().shape(), &[1, 1, 5, 5]);
    /// ```
    pub fn dilation(mut self, d: usize) -> Conv {
        self.spec.dilation = vec![d; self.spec.dilation.len()];
        self
    }
    /// The same layer with its channels split into `n` groups (PyTorch's and Flux's
    /// `groups`; `n` = in channels is a depthwise convolution): the weight becomes
    /// (out, in / n, k...). Both channel counts must divide by `n`.
    ///
    /// The grouped weight keeps the first in / n input channels of the weight drawn by
    /// the constructor, rescaled to the Glorot bound of the grouped shape: the same
    /// distribution as a fresh draw, without drawing again from the generator.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, conv::Conv}};
    /// let c = Conv::new(&[3, 3], 4, 6).groups(2).unwrap();
    /// assert_eq!(c.weight.shape(), &[6, 2, 3, 3]);
    /// assert_eq!(c.forward(&Tensor::zeros(&[1, 4, 5, 5], DType::F32)).unwrap().shape(), &[1, 6, 3, 3]);
    /// assert!(Conv::new(&[3, 3], 4, 6).groups(3).is_err());
    /// ```
    pub fn groups(mut self, n: usize) -> Result<Conv> {
        let ws = self.weight.shape().to_vec();
        let (out, inp) = (ws[0], ws[1] * self.spec.groups);
        if n == 0 || inp % n != 0 || out % n != 0 {
            return Err(crate::error::value_err!("Conv groups must divide both channel counts, got groups {n} for {inp} => {out}"));
        }
        if n < self.spec.groups {
            return Err(crate::error::value_err!("Conv with groups {} cannot be regrouped into fewer groups ({n})", self.spec.groups));
        }
        self.weight = regroup(&self.weight, inp / n)?;
        self.spec.groups = n;
        Ok(self)
    }
    /// The same layer with its parameters converted to `dtype`.
    ///
    /// ```
    /// use flux_core::{DType, nn::conv::Conv};
    /// let c = Conv::new(&[3, 3], 1, 2).dtype(DType::F64);
    /// assert_eq!((c.weight.dtype(), c.bias.dtype()), (DType::F64, DType::F64));
    /// ```
    pub fn dtype(mut self, dtype: DType) -> Conv {
        // a cast between float types cannot fail
        self.weight = self.weight.cast(dtype).expect("float cast");
        self.bias = self.bias.cast(dtype).expect("float cast");
        self
    }
}

impl Module for Conv {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> { conv_layer(x, &self.weight, Some(&self.bias), &self.spec, self.act) }
    crate::module_params!(weight, bias);
}

/// `act(conv(x, w) + b)`: the whole [`Conv`] layer in one call (the Python layer calls
/// this too). A relu is fused into the convolution ([`conv_relu`]); other activations
/// are applied after it.
///
/// ```
/// use flux_core::{DType, Tensor, nn::{conv::conv_layer, Activation}, tensor::conv::ConvSpec};
/// let x = Tensor::from_vec(vec![1.0f32, -2.0, 3.0], &[1, 1, 3]).unwrap();
/// let w = Tensor::ones(&[1, 1, 1], DType::F32);
/// let y = conv_layer(&x, &w, None, &ConvSpec::new(1), Activation::Relu).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![1.0, 0.0, 3.0]);
/// ```
pub fn conv_layer(x: &Tensor, w: &Tensor, b: Option<&Tensor>, spec: &ConvSpec, act: Activation) -> Result<Tensor> {
    match act {
        Activation::Relu => conv_relu(x, w, b, spec),
        other => other.apply(&conv(x, w, b, spec)?),
    }
}

/// `act(conv_transpose(x, weight) + bias)`: the whole [`ConvTranspose`] layer in one
/// call (the Python layer calls this too). `w` is (in, out / groups, k...), `out_pad`
/// adds that many rows at the high end of each output dimension.
///
/// ```
/// use flux_core::{DType, Tensor, nn::{conv::conv_transpose_layer, Activation}, tensor::conv::ConvSpec};
/// let x = Tensor::ones(&[1, 1, 2, 2], DType::F32);
/// let w = Tensor::ones(&[1, 1, 2, 2], DType::F32);
/// let y = conv_transpose_layer(&x, &w, None, &ConvSpec::new(2).with_stride(2), &[0, 0], Activation::Identity).unwrap();
/// assert_eq!(y.shape(), &[1, 1, 4, 4]);
/// assert_eq!(y.sum_all().unwrap().item().unwrap(), 16.0);
/// ```
pub fn conv_transpose_layer(x: &Tensor, w: &Tensor, b: Option<&Tensor>, spec: &ConvSpec, out_pad: &[usize], act: Activation) -> Result<Tensor> {
    act.apply(&conv_transpose(x, w, b, spec, out_pad)?)
}

/// The transposed convolution layer (PyTorch's `ConvTranspose2d`, Flux's
/// `ConvTranspose`): weight (in, out / groups, k...), output size per dimension
/// `(n − 1)·stride + dilation·(k − 1) + 1 − pad_lo − pad_hi + out_pad`.
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Module, conv::ConvTranspose}};
/// let up = ConvTranspose::new(&[2, 2], 3, 1).stride(2);
/// assert_eq!(up.forward(&Tensor::zeros(&[1, 3, 4, 4], DType::F32)).unwrap().shape(), &[1, 1, 8, 8]);
/// ```
pub struct ConvTranspose {
    /// The kernel, shape (in, out / groups, k...).
    pub weight: Tensor,
    /// The bias, shape (out,).
    pub bias: Tensor,
    /// Stride, padding (cropped from the output), dilation and groups.
    pub spec: ConvSpec,
    /// Extra rows at the high end of each output dimension (less than the stride).
    pub out_pad: Vec<usize>,
    /// The activation applied after the bias.
    pub act: Activation,
}

/// Constructors and builders.
///
/// ```
/// use flux_core::nn::conv::ConvTranspose;
/// assert_eq!(ConvTranspose::new(&[2, 2], 3, 5).weight.shape(), &[3, 5, 2, 2]);
/// ```
impl ConvTranspose {
    /// A float32 layer with window `k`, a Glorot-uniform weight from the global generator,
    /// zero bias, stride 1, no padding.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Activation, Module, conv::ConvTranspose}};
    /// // (n − 1)·2 + 3 − 2·1 = 2n − 1
    /// let up = ConvTranspose::new(&[3, 3], 4, 2).stride(2).pad(1).activation(Activation::Relu);
    /// assert_eq!(up.weight.shape(), &[4, 2, 3, 3]);
    /// assert_eq!(up.forward(&Tensor::zeros(&[1, 4, 5, 5], DType::F32)).unwrap().shape(), &[1, 2, 9, 9]);
    /// ```
    pub fn new(k: &[usize], inp: usize, out: usize) -> ConvTranspose {
        crate::tensor::random::with_global(|r| ConvTranspose::with_rng(k, inp, out, DType::F32, r))
    }
    /// A layer of `dtype` whose weight is drawn from `rng`. The Glorot fans are Flux's:
    /// the kernel is seen as (k..., out, in), so fan-in is `∏k·out`.
    ///
    /// ```
    /// use flux_core::{DType, nn::conv::ConvTranspose, tensor::random::Rng};
    /// let c = ConvTranspose::with_rng(&[3], 4, 2, DType::F64, &mut Rng::seed(0));
    /// assert_eq!(c.weight.shape(), &[4, 2, 3]);
    /// ```
    pub fn with_rng(k: &[usize], inp: usize, out: usize, dtype: DType, rng: &mut Rng) -> ConvTranspose {
        let mut shape = vec![inp, out];
        shape.extend(k);
        ConvTranspose {
            weight: super::init::glorot_uniform(&shape, 1.0, dtype, rng),
            bias: Tensor::zeros(&[out], dtype),
            spec: ConvSpec::new(k.len()),
            out_pad: vec![0; k.len()],
            act: Activation::Identity,
        }
    }
    /// The same layer with activation `act`.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Activation, Module, conv::ConvTranspose}};
    /// let mut up = ConvTranspose::new(&[1], 1, 1).activation(Activation::Relu);
    /// up.weight = Tensor::full(&[1, 1, 1], -1.0, DType::F32);
    /// assert_eq!(up.forward(&Tensor::ones(&[1, 1, 3], DType::F32)).unwrap().to_vec_f64().unwrap(), vec![0.0; 3]);
    /// ```
    pub fn activation(mut self, act: Activation) -> ConvTranspose {
        self.act = act;
        self
    }
    /// The same layer with stride `s` in every spatial dimension.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, conv::ConvTranspose}};
    /// // (n − 1)·3 + 2
    /// let up = ConvTranspose::new(&[2], 1, 1).stride(3);
    /// assert_eq!(up.forward(&Tensor::zeros(&[1, 1, 4], DType::F32)).unwrap().shape(), &[1, 1, 11]);
    /// ```
    pub fn stride(mut self, s: usize) -> ConvTranspose {
        self.spec = self.spec.with_stride(s);
        self
    }
    /// The same layer cropping `p` from both ends of every output dimension.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, conv::ConvTranspose}};
    /// // (4 − 1) + 3 − 2·1: the padding is cropped from the output
    /// let c = ConvTranspose::new(&[3], 1, 1).pad(1);
    /// assert_eq!(c.forward(&Tensor::zeros(&[1, 1, 4], DType::F32)).unwrap().shape(), &[1, 1, 4]);
    /// ```
    pub fn pad(mut self, p: usize) -> ConvTranspose {
        self.spec = self.spec.with_pad(p);
        self
    }
    /// The same layer with `p` extra rows at the high end of every output dimension.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, conv::ConvTranspose}};
    /// let up = ConvTranspose::new(&[3, 3], 1, 1).stride(2).pad(1).out_pad(1);
    /// assert_eq!(up.forward(&Tensor::zeros(&[1, 1, 4, 4], DType::F32)).unwrap().shape(), &[1, 1, 8, 8]);
    /// ```
    pub fn out_pad(mut self, p: usize) -> ConvTranspose {
        self.out_pad = vec![p; self.out_pad.len()];
        self
    }
    /// The same layer with dilation `d` in every spatial dimension.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, conv::ConvTranspose}};
    /// // (4 − 1) + 2·(3 − 1) + 1 = 8
    /// let c = ConvTranspose::new(&[3], 1, 1).dilation(2);
    /// assert_eq!(c.forward(&Tensor::zeros(&[1, 1, 4], DType::F32)).unwrap().shape(), &[1, 1, 8]);
    /// ```
    pub fn dilation(mut self, d: usize) -> ConvTranspose {
        self.spec.dilation = vec![d; self.spec.dilation.len()];
        self
    }
    /// The same layer with its channels in `n` groups (in and out must both divide by
    /// `n`): weight (in, out / n, k...), each group of out / n outputs reading its own
    /// in / n inputs. As for [`Conv::groups`], the grouped weight keeps part of the one
    /// drawn by the constructor, rescaled to the grouped shape's Glorot bound.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, conv::ConvTranspose}};
    /// let up = ConvTranspose::new(&[2, 2], 4, 6).stride(2).groups(2).unwrap();
    /// assert_eq!(up.weight.shape(), &[4, 3, 2, 2]);
    /// assert_eq!(up.forward(&Tensor::zeros(&[1, 4, 3, 3], DType::F32)).unwrap().shape(), &[1, 6, 6, 6]);
    /// assert!(ConvTranspose::new(&[2, 2], 4, 6).groups(4).is_err()); // 6 outputs do not split in 4
    /// ```
    pub fn groups(mut self, n: usize) -> Result<ConvTranspose> {
        let ws = self.weight.shape().to_vec();
        let (inp, out) = (ws[0], ws[1] * self.spec.groups);
        if n == 0 || inp % n != 0 || out % n != 0 {
            return Err(crate::error::value_err!("ConvTranspose groups must divide both channel counts, got groups {n} for {inp} => {out}"));
        }
        if n < self.spec.groups {
            return Err(crate::error::value_err!("ConvTranspose with groups {} cannot be regrouped into fewer groups ({n})", self.spec.groups));
        }
        self.weight = regroup(&self.weight, out / n)?;
        self.spec.groups = n;
        Ok(self)
    }
}

impl Module for ConvTranspose {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        conv_transpose_layer(x, &self.weight, Some(&self.bias), &self.spec, &self.out_pad, self.act)
    }
    crate::module_params!(weight, bias);
}

/// `w` (a, b, k...) cut to (a, b′, k...): the first b′ entries along dimension 1, rescaled
/// to the Glorot bound of the new shape (the same distribution as a fresh draw, without
/// drawing from the generator again). How [`Conv::groups`] and [`ConvTranspose::groups`]
/// turn a layer's weight into its grouped shape.
fn regroup(w: &Tensor, b_new: usize) -> Result<Tensor> {
    let ws = w.shape().to_vec();
    let mut shape = ws.clone();
    shape[1] = b_new;
    let (old, new) = (super::init::fans(&ws), super::init::fans(&shape));
    let rescale = ((old.0 + old.1) / (new.0 + new.1)).sqrt();
    let k: usize = ws[2..].iter().product();
    let (row, keep) = (ws[1] * k, b_new * k);
    let kept: Vec<f64> = w.to_vec_f64()?.chunks(row.max(1)).flat_map(|r| r[..keep].iter().map(|v| v * rescale)).collect();
    Tensor::from_vec(kept, &shape)?.cast(w.dtype())
}

/// Max or mean pooling (stride = window unless the spec says otherwise).
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Module, conv::Pool}};
/// let p = Pool::max(&[2, 2]);
/// assert_eq!(p.forward(&Tensor::zeros(&[1, 3, 8, 8], DType::F32)).unwrap().shape(), &[1, 3, 4, 4]);
/// ```
pub struct Pool {
    /// Max or mean.
    pub mode: PoolMode,
    /// Window, stride and padding.
    pub spec: PoolSpec,
}

/// Constructors.
///
/// ```
/// use flux_core::{nn::conv::Pool, tensor::pool::PoolMode};
/// assert!(matches!(Pool::mean(&[2]).mode, PoolMode::Mean));
/// ```
impl Pool {
    /// Max pooling over `window`, stride = window.
    ///
    /// ```
    /// use flux_core::{Tensor, nn::{Module, conv::Pool}};
    /// let x = Tensor::from_vec(vec![1.0f32, 5.0, 2.0, 3.0], &[1, 1, 2, 2]).unwrap();
    /// assert_eq!(Pool::max(&[2, 2]).forward(&x).unwrap().to_vec_f64().unwrap(), vec![5.0]);
    /// assert_eq!(Pool::mean(&[2, 2]).forward(&x).unwrap().to_vec_f64().unwrap(), vec![2.75]);
    /// ```
    pub fn max(window: &[usize]) -> Pool { Pool { mode: PoolMode::Max, spec: PoolSpec::new(window) } }
    /// Mean pooling over `window`, stride = window.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, conv::Pool}};
    /// let y = Pool::mean(&[2]).forward(&Tensor::ones(&[1, 1, 4], DType::F64)).unwrap();
    /// assert_eq!(y.to_vec_f64().unwrap(), vec![1.0, 1.0]);
    /// ```
    pub fn mean(window: &[usize]) -> Pool { Pool { mode: PoolMode::Mean, spec: PoolSpec::new(window) } }
}

impl Module for Pool {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> { pool(x, self.mode, &self.spec) }
    crate::module_params!();
}

/// (batch, ...) → (batch, features).
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Module, conv::Flatten}};
/// assert_eq!(Flatten.forward(&Tensor::zeros(&[2, 3, 4], DType::F32)).unwrap().shape(), &[2, 12]);
/// ```
pub struct Flatten;

impl Module for Flatten {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        let n = x.shape().first().copied().unwrap_or(1);
        x.reshape(&[n, x.numel() / n.max(1)])
    }
    crate::module_params!();
}
