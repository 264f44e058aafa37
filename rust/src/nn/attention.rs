//! Multi-head attention, batch first: Flux's `MultiHeadAttention` with PyTorch's layouts.
//!
//! Queries (batch, q_len, q_in), keys (batch, kv_len, k_in), values (batch, kv_len,
//! v_in) are projected to (…, qk), (…, qk) and (…, v) by bias-optional linear maps,
//! attended over `nheads` heads by the fused [`Sdpa`] op (mask, additive bias, softmax
//! and dropout in one tape node) and projected to `out`. The attention weights come back
//! with the output. Python's `fx.MultiHeadAttention` is a shell over exactly this.
//!
//! Self-attention (one tensor as queries, keys and values) projects with one GEMM by the
//! stacked weights (wq; wk; wv), whose output the fused op reads in place: one wide
//! product instead of three narrow ones, one gradient for the input instead of three
//! summed. The parameters stay the four projections, as in Flux.
//!
//! ```
//! use flux_core::nn::attention::{AttendOptions, MultiHeadAttention};
//! use flux_core::ops::attention::Mask;
//! use flux_core::tensor::random::Rng;
//! use flux_core::{DType, Tensor};
//! let mha = MultiHeadAttention::config(8).nheads(2).bias(true).build(&mut Rng::seed(0)).unwrap();
//! let x = Tensor::ones(&[3, 5, 8], DType::F32);
//! let (y, a) = mha.forward_qkv(&x, &x, &x, AttendOptions { mask: Mask::Causal, ..Default::default() }).unwrap();
//! assert_eq!((y.shape(), a.shape()), (&[3, 5, 8][..], &[3, 2, 5, 5][..]));
//! ```
use super::{init::glorot_uniform, linear, Activation, Module, ParamPath};
use crate::error::{shape_err, value_err, Result};
use crate::ops::attention::{Mask, Sdpa};
use crate::tensor::random::Rng;
use crate::tensor::{DType, Tensor};

/// A linear map `x·Wᵀ (+ b)` with weight (out, in) and an optional bias: one of the
/// attention's four projections.
///
/// ```
/// use flux_core::{nn::attention::Projection, DType, Tensor};
/// let p = Projection { weight: Tensor::ones(&[2, 3], DType::F32), bias: None };
/// assert_eq!(p.forward(&Tensor::ones(&[1, 3], DType::F32)).unwrap().to_vec_f64().unwrap(), vec![3.0, 3.0]);
/// ```
#[derive(Clone, Debug)]
pub struct Projection {
    /// (out, in), as `Dense`.
    pub weight: Tensor,
    /// (out,), or none.
    pub bias: Option<Tensor>,
}

/// The projection applied.
///
/// ```
/// use flux_core::{nn::attention::Projection, DType, Tensor};
/// let p = Projection { weight: Tensor::ones(&[2, 3], DType::F32), bias: None };
/// assert_eq!(p.forward(&Tensor::ones(&[4, 3], DType::F32)).unwrap().shape(), &[4, 2]);
/// ```
impl Projection {
    fn new(inp: usize, out: usize, bias: bool, dtype: DType, rng: &mut Rng) -> Projection {
        Projection { weight: glorot_uniform(&[out, inp], 1.0, dtype, rng), bias: bias.then(|| Tensor::zeros(&[out], dtype)) }
    }
    /// `x·Wᵀ (+ b)` over the last dimension of `x`.
    ///
    /// ```
    /// use flux_core::{nn::attention::Projection, DType, Tensor};
    /// let p = Projection { weight: Tensor::ones(&[1, 2], DType::F64), bias: Some(Tensor::ones(&[1], DType::F64)) };
    /// assert_eq!(p.forward(&Tensor::ones(&[2], DType::F64)).unwrap().to_vec_f64().unwrap(), vec![3.0]);
    /// ```
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> { linear(x, &self.weight, self.bias.as_ref(), Activation::Identity) }
    /// Visit the weight and (if any) the bias with `name` pushed onto the path.
    fn visit<'a>(&'a self, name: &'static str, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a Tensor)) {
        path.within(name, |p| {
            p.visit("weight", &self.weight, f);
            if let Some(b) = &self.bias {
                p.visit("bias", b, f);
            }
        })
    }
    fn visit_mut<'a>(&'a mut self, name: &'static str, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a mut Tensor)) {
        path.within(name, |p| {
            p.visit_mut("weight", &mut self.weight, f);
            if let Some(b) = &mut self.bias {
                p.visit_mut("bias", b, f);
            }
        })
    }
}

/// The sizes and options of a [`MultiHeadAttention`], builder-style. Defaults as Flux:
/// 8 heads, no bias, no dropout; float32.
///
/// ```
/// use flux_core::{nn::attention::MultiHeadAttention, tensor::random::Rng, DType};
/// // queries of width 6, keys and values of width 4; qk width 8, v width 4, output 5
/// let mha = MultiHeadAttention::config(6).inputs(6, 4, 4).qk_dim(8).v_dim(4).out_dim(5)
///     .nheads(2).dtype(DType::F64).build(&mut Rng::seed(1)).unwrap();
/// assert_eq!(mha.k_proj.weight.shape(), &[8, 4]);
/// ```
#[derive(Clone, Debug)]
pub struct MhaConfig {
    inputs: [usize; 3],
    qk: usize,
    v: usize,
    out: usize,
    nheads: usize,
    bias: bool,
    dropout: f64,
    dtype: DType,
}

/// Widths, heads, bias, dropout and dtype, builder-style; `build` makes the layer.
///
/// ```
/// use flux_core::{nn::attention::MhaConfig, tensor::random::Rng};
/// let mha = MhaConfig::new(8).nheads(2).bias(true).build(&mut Rng::seed(0)).unwrap();
/// assert_eq!(flux_core::nn::Module::params(&mha).len(), 8); // four projections with bias
/// ```
impl MhaConfig {
    /// Every width `dim`; 8 heads, no bias, no dropout, float32.
    ///
    /// ```
    /// use flux_core::{nn::attention::MhaConfig, tensor::random::Rng};
    /// let m = MhaConfig::new(16).build(&mut Rng::seed(0)).unwrap();
    /// assert_eq!((m.nheads, m.q_proj.weight.shape(), m.out_proj.bias.is_none()), (8, &[16, 16][..], true));
    /// ```
    pub fn new(dim: usize) -> MhaConfig {
        MhaConfig { inputs: [dim; 3], qk: dim, v: dim, out: dim, nheads: 8, bias: false, dropout: 0.0, dtype: DType::F32 }
    }
    /// The widths of queries, keys and values as they come in.
    ///
    /// ```
    /// use flux_core::{nn::attention::MhaConfig, tensor::random::Rng};
    /// let m = MhaConfig::new(16).inputs(16, 32, 24).build(&mut Rng::seed(0)).unwrap();
    /// assert_eq!((m.k_proj.weight.shape(), m.v_proj.weight.shape()), (&[16, 32][..], &[16, 24][..]));
    /// ```
    pub fn inputs(mut self, q: usize, k: usize, v: usize) -> MhaConfig {
        self.inputs = [q, k, v];
        self
    }
    /// The width queries and keys are projected to (split over the heads).
    ///
    /// ```
    /// use flux_core::{nn::attention::MhaConfig, tensor::random::Rng};
    /// let m = MhaConfig::new(16).qk_dim(32).build(&mut Rng::seed(0)).unwrap();
    /// assert_eq!((m.q_proj.weight.shape(), m.k_proj.weight.shape()), (&[32, 16][..], &[32, 16][..]));
    /// ```
    pub fn qk_dim(mut self, n: usize) -> MhaConfig {
        self.qk = n;
        self
    }
    /// The width values are projected to (split over the heads).
    ///
    /// ```
    /// use flux_core::{nn::attention::MhaConfig, tensor::random::Rng};
    /// let m = MhaConfig::new(16).v_dim(32).build(&mut Rng::seed(0)).unwrap();
    /// assert_eq!((m.v_proj.weight.shape(), m.out_proj.weight.shape()), (&[32, 16][..], &[16, 32][..]));
    /// ```
    pub fn v_dim(mut self, n: usize) -> MhaConfig {
        self.v = n;
        self
    }
    /// The output's width.
    ///
    /// ```
    /// use flux_core::{nn::attention::MhaConfig, tensor::random::Rng};
    /// assert_eq!(MhaConfig::new(16).out_dim(4).build(&mut Rng::seed(0)).unwrap().out_proj.weight.shape(), &[4, 16]);
    /// ```
    pub fn out_dim(mut self, n: usize) -> MhaConfig {
        self.out = n;
        self
    }
    /// The number of heads (≥ 1, dividing the qk and v widths).
    ///
    /// ```
    /// use flux_core::{nn::attention::MhaConfig, tensor::random::Rng};
    /// assert_eq!(MhaConfig::new(16).nheads(4).build(&mut Rng::seed(0)).unwrap().nheads, 4);
    /// assert!(MhaConfig::new(16).nheads(3).build(&mut Rng::seed(0)).is_err()); // 3 does not divide 16
    /// ```
    pub fn nheads(mut self, n: usize) -> MhaConfig {
        self.nheads = n;
        self
    }
    /// Whether the four projections have biases (zeros at first).
    ///
    /// ```
    /// use flux_core::{nn::attention::MhaConfig, tensor::random::Rng};
    /// let m = MhaConfig::new(16).bias(true).build(&mut Rng::seed(0)).unwrap();
    /// assert_eq!(m.q_proj.bias.unwrap().to_vec_f64().unwrap(), vec![0.0; 16]);
    /// ```
    pub fn bias(mut self, on: bool) -> MhaConfig {
        self.bias = on;
        self
    }
    /// Dropout probability on the attention weights while training.
    ///
    /// ```
    /// use flux_core::{nn::attention::MhaConfig, tensor::random::Rng};
    /// assert_eq!(MhaConfig::new(16).dropout(0.1).build(&mut Rng::seed(0)).unwrap().dropout, 0.1);
    /// ```
    pub fn dropout(mut self, p: f64) -> MhaConfig {
        self.dropout = p;
        self
    }
    /// The parameters' dtype.
    ///
    /// ```
    /// use flux_core::{nn::attention::MhaConfig, tensor::random::Rng, DType};
    /// assert_eq!(MhaConfig::new(16).dtype(DType::F64).build(&mut Rng::seed(0)).unwrap().v_proj.weight.dtype(), DType::F64);
    /// ```
    pub fn dtype(mut self, d: DType) -> MhaConfig {
        self.dtype = d;
        self
    }
    /// The layer, its weights Glorot-uniform from `rng` (q, k, v, then out) and its
    /// biases zero.
    ///
    /// ```
    /// use flux_core::{nn::attention::MhaConfig, tensor::random::Rng};
    /// assert!(MhaConfig::new(6).nheads(4).build(&mut Rng::seed(0)).is_err()); // 4 does not divide 6
    /// ```
    pub fn build(&self, rng: &mut Rng) -> Result<MultiHeadAttention> {
        check_heads(self.nheads, self.qk, self.v)?;
        if !(0.0..=1.0).contains(&self.dropout) {
            return Err(value_err!("MultiHeadAttention: dropout probability must be in [0, 1], got {}", self.dropout));
        }
        let [qi, ki, vi] = self.inputs;
        let (b, dt) = (self.bias, self.dtype);
        Ok(MultiHeadAttention {
            nheads: self.nheads,
            q_proj: Projection::new(qi, self.qk, b, dt, rng),
            k_proj: Projection::new(ki, self.qk, b, dt, rng),
            v_proj: Projection::new(vi, self.v, b, dt, rng),
            out_proj: Projection::new(self.v, self.out, b, dt, rng),
            dropout: self.dropout,
        })
    }
}

fn check_heads(nheads: usize, qk: usize, v: usize) -> Result<()> {
    if nheads == 0 {
        return Err(value_err!("nheads must be at least 1, got 0"));
    }
    if qk % nheads != 0 || v % nheads != 0 {
        return Err(value_err!("qk dimension {qk} and v dimension {v} must be divisible by nheads={nheads}"));
    }
    Ok(())
}

/// Multi-head attention (see the [module](self) docs). Build with
/// [`MultiHeadAttention::config`]; as a [`Module`] it is self-attention returning the
/// output alone, and [`MultiHeadAttention::forward_qkv`] takes separate keys and values,
/// a mask and a bias and returns the weights too.
///
/// ```
/// use flux_core::nn::{attention::MultiHeadAttention, Module};
/// use flux_core::{tensor::random::Rng, DType, Tensor};
/// let mha = MultiHeadAttention::config(4).nheads(2).build(&mut Rng::seed(0)).unwrap();
/// assert_eq!(mha.forward(&Tensor::ones(&[1, 3, 4], DType::F32)).unwrap().shape(), &[1, 3, 4]);
/// assert_eq!(mha.parameters().len(), 4); // four weights, no biases
/// ```
#[derive(Clone, Debug)]
pub struct MultiHeadAttention {
    /// The number of heads.
    pub nheads: usize,
    /// Queries' projection, (qk, q_in).
    pub q_proj: Projection,
    /// Keys' projection, (qk, k_in).
    pub k_proj: Projection,
    /// Values' projection, (v, v_in).
    pub v_proj: Projection,
    /// The output projection, (out, v).
    pub out_proj: Projection,
    /// Dropout probability on the attention weights while training.
    pub dropout: f64,
}

/// What a call of [`MultiHeadAttention::forward_qkv`] adds to its inputs; the default is
/// no bias, no mask, inference mode, the global generator.
///
/// ```
/// use flux_core::{nn::attention::{AttendOptions, MultiHeadAttention}, ops::attention::Mask};
/// use flux_core::{tensor::random::Rng, DType, Tensor};
/// let mha = MultiHeadAttention::config(4).nheads(1).build(&mut Rng::seed(0)).unwrap();
/// let x = Tensor::ones(&[1, 3, 4], DType::F32);
/// let o = AttendOptions { mask: Mask::Causal, ..Default::default() };
/// let (_, a) = mha.forward_qkv(&x, &x, &x, o).unwrap();
/// assert_eq!(a.to_vec_f64().unwrap()[..3], [1.0, 0.0, 0.0]); // the first query sees the first key only
/// ```
#[derive(Debug, Default)]
pub struct AttendOptions<'a> {
    /// Added to the scaled scores, broadcast to (batch, nheads, q_len, kv_len).
    pub bias: Option<&'a Tensor>,
    /// Which keys each query sees.
    pub mask: Mask,
    /// Training mode: dropout acts (when the layer has any).
    pub train: bool,
    /// The generator for dropout's mask (the global one when `None`).
    pub rng: Option<&'a mut Rng>,
}

/// The builder and the forward pass.
///
/// ```
/// use flux_core::{nn::{attention::MultiHeadAttention, Module}, tensor::random::Rng};
/// let mha = MultiHeadAttention::config(8).nheads(2).build(&mut Rng::seed(0)).unwrap();
/// assert_eq!(mha.params().len(), 4); // q, k, v and out projections, no bias
/// ```
impl MultiHeadAttention {
    /// The builder for a layer whose widths are all `dim`.
    ///
    /// ```
    /// use flux_core::{nn::attention::MultiHeadAttention, tensor::random::Rng};
    /// let mha = MultiHeadAttention::config(16).nheads(4).build(&mut Rng::seed(0)).unwrap();
    /// assert_eq!((mha.nheads, mha.out_proj.weight.shape()), (4, &[16, 16][..]));
    /// ```
    pub fn config(dim: usize) -> MhaConfig { MhaConfig::new(dim) }

    /// `(y, α)` for queries `q`, keys `k` and values `v`: y (batch, q_len, out) and the
    /// attention weights α (batch, nheads, q_len, kv_len).
    ///
    /// ```
    /// use flux_core::nn::attention::{AttendOptions, MultiHeadAttention};
    /// use flux_core::{tensor::random::Rng, DType, Tensor};
    /// let mha = MultiHeadAttention::config(4).inputs(4, 6, 6).nheads(2).build(&mut Rng::seed(0)).unwrap();
    /// let (q, kv) = (Tensor::ones(&[2, 3, 4], DType::F32), Tensor::ones(&[2, 7, 6], DType::F32));
    /// let (y, a) = mha.forward_qkv(&q, &kv, &kv, AttendOptions::default()).unwrap(); // cross attention
    /// assert_eq!((y.shape(), a.shape()), (&[2, 3, 4][..], &[2, 2, 3, 7][..]));
    /// ```
    pub fn forward_qkv(&self, q: &Tensor, k: &Tensor, v: &Tensor, opts: AttendOptions<'_>) -> Result<(Tensor, Tensor)> {
        for (name, t) in [("query", q), ("key", k), ("value", v)] {
            if t.ndim() != 3 {
                return Err(shape_err!("MultiHeadAttention expects {name} of shape (batch, len, dim), got {:?}", t.shape()));
            }
        }
        if k.shape()[..2] != v.shape()[..2] || q.shape()[0] != k.shape()[0] {
            return Err(shape_err!("MultiHeadAttention: query {:?}, key {:?} and value {:?} do not fit", q.shape(), k.shape(), v.shape()));
        }
        let mut sdpa = Sdpa::new(self.nheads).mask(opts.mask).dropout(if opts.train { self.dropout } else { 0.0 });
        if let Some(b) = opts.bias {
            sdpa = sdpa.bias(b.clone());
        }
        let (y, a) = match self.packed(q, k, v)? {
            Some(p) => sdpa.forward_packed(&p.forward(q)?, self.q_proj.weight.shape()[0], opts.rng)?,
            None => {
                let (qp, kp, vp) = (self.q_proj.forward(q)?, self.k_proj.forward(k)?, self.v_proj.forward(v)?);
                match opts.rng {
                    Some(r) => sdpa.forward_with_rng(&qp, &kp, &vp, r)?,
                    None => sdpa.forward(&qp, &kp, &vp)?,
                }
            }
        };
        Ok((self.out_proj.forward(&y)?, a))
    }

    /// For self-attention (`q`, `k` and `v` one tensor), the q, k and v projections
    /// stacked into one (qk + qk + v, in), on the tape so that each weight gets its own
    /// slice of the gradient; `None` when the inputs differ or the projections do not
    /// stack (inputs of different widths or dtypes, biases on some only).
    fn packed(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Option<Projection>> {
        let ps = [&self.q_proj, &self.k_proj, &self.v_proj];
        let same_input = q.id() == k.id() && k.id() == v.id();
        let w0 = &self.q_proj.weight;
        let stackable = ps.iter().all(|p| {
            p.weight.ndim() == 2
                && p.weight.shape()[1] == w0.shape()[1]
                && p.weight.dtype() == w0.dtype()
                && p.bias.is_some() == self.q_proj.bias.is_some()
                && p.bias.as_ref().is_none_or(|b| b.shape() == [p.weight.shape()[0]] && b.dtype() == w0.dtype())
        });
        if !same_input || !stackable {
            return Ok(None);
        }
        let weight = Tensor::concat(&ps.map(|p| &p.weight), 0)?;
        let bias = match ps.map(|p| p.bias.as_ref()) {
            [Some(a), Some(b), Some(c)] => Some(Tensor::concat(&[a, b, c], 0)?),
            _ => None,
        };
        Ok(Some(Projection { weight, bias }))
    }
}

impl Module for MultiHeadAttention {
    /// Self-attention: the output of `forward_qkv(x, x, x)` without mask or bias.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.forward_qkv(x, x, x, AttendOptions { train, ..Default::default() })?.0)
    }
    fn visit_params<'a>(&'a self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a Tensor)) {
        for (name, p) in [("q_proj", &self.q_proj), ("k_proj", &self.k_proj), ("v_proj", &self.v_proj), ("out_proj", &self.out_proj)] {
            p.visit(name, path, f);
        }
    }
    fn visit_params_mut<'a>(&'a mut self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a mut Tensor)) {
        let MultiHeadAttention { q_proj, k_proj, v_proj, out_proj, .. } = self;
        for (name, p) in [("q_proj", q_proj), ("k_proj", k_proj), ("v_proj", v_proj), ("out_proj", out_proj)] {
            p.visit_mut(name, path, f);
        }
    }
}
