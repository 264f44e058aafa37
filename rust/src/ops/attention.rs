//! Scaled dot-product attention as one fused op.
//!
//! `y = dropout(softmax(q·kᵀ/√d + bias, masked)) · v`, over `nheads` heads that split the
//! feature dimension, batch first: queries (batch, q_len, qk_dim), keys (batch, kv_len,
//! qk_dim), values (batch, kv_len, v_dim). Each (batch, head) pair is three small GEMMs
//! that read their head's columns in place through strides (no permuted copies), with the
//! scale, bias, mask and softmax in one pass over the scores between them. The backward
//! is written by hand: four GEMMs per pair and one pass for the softmax's Jacobian.
//!
//! Self-attention may pass q, k and v as column blocks of one (batch, len, 2·qk + v)
//! tensor ([`Sdpa::forward_packed`]): the output of one packed projection GEMM, read in
//! place, whose gradient comes back as one tensor of the same layout.
//!
//! The attention weights α (batch, nheads, q_len, kv_len) come back too, as Flux's
//! `MultiHeadAttention` returns them; they are a second tape node sharing the forward's
//! saved tensors, so a loss may use α as well as `y`.
//!
//! ```
//! use flux_core::ops::attention::{Mask, Sdpa};
//! use flux_core::{autodiff, DType, Tensor};
//! let q = Tensor::ones(&[2, 3, 8], DType::F32);
//! let kv = Tensor::ones(&[2, 5, 8], DType::F32);
//! let (y, a) = Sdpa::new(2).mask(Mask::Causal).forward(&q, &kv, &kv).unwrap();
//! assert_eq!((y.shape(), a.shape()), (&[2, 3, 8][..], &[2, 2, 3, 5][..]));
//! // query 0 sees key 0 alone
//! assert_eq!(a.to_vec_f64().unwrap()[..5], [1.0, 0.0, 0.0, 0.0, 0.0]);
//! let (_, g) = autodiff::value_and_grad(&[&q], || Sdpa::new(2).forward(&q, &kv, &kv)?.0.sum_all()).unwrap();
//! assert_eq!(g[0].as_ref().unwrap().shape(), &[2, 3, 8]);
//! ```
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::{apply, FusedOp};
use crate::autodiff::{record, Backward, Op};
use crate::error::{shape_err, value_err, Error, Result};
use crate::tensor::dropout::dropout_mask;
use crate::tensor::elementwise::{exp_fast, wide_fn};
use crate::tensor::layout::broadcast_shapes;
use crate::tensor::matmul::{gemm_into, gemm_into_ld, gemm_scaled_ld, Mat};
use crate::tensor::random::{self, Rng};
use crate::tensor::{DType, Device, Float, Tensor};

/// Which keys each query may attend to.
///
/// ```
/// use flux_core::ops::attention::{Mask, Sdpa};
/// use flux_core::{DType, Tensor};
/// let x = Tensor::ones(&[1, 3, 2], DType::F64);
/// let (_, a) = Sdpa::new(1).mask(Mask::Causal).forward(&x, &x, &x).unwrap();
/// // the first query sees only the first key; the last sees all three
/// assert_eq!(a.to_vec_f64().unwrap()[..3], [1.0, 0.0, 0.0]);
/// assert!(a.to_vec_f64().unwrap()[6..].iter().all(|&w| (w - 1.0 / 3.0).abs() < 1e-12));
/// ```
#[derive(Clone, Debug, Default)]
pub enum Mask {
    /// Every query sees every key.
    #[default]
    None,
    /// Query `i` sees keys `j ≤ i` (NNlib's `make_causal_mask`, `tril` of q_len × kv_len).
    Causal,
    /// Non-zero where a query may attend; broadcast to (batch, nheads, q_len, kv_len).
    Keep(Tensor),
}

/// Scaled dot-product attention, configured builder-style and applied with
/// [`Sdpa::forward`] (or [`Sdpa::forward_with_rng`] for reproducible dropout).
///
/// ```
/// use flux_core::ops::attention::Sdpa;
/// use flux_core::{DType, Tensor};
/// let x = Tensor::ones(&[1, 4, 6], DType::F64);
/// let bias = Tensor::zeros(&[4, 4], DType::F64); // additive, broadcast to (1, 3, 4, 4)
/// let (y, a) = Sdpa::new(3).bias(bias).forward(&x, &x, &x).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![1.0; 24]);
/// assert_eq!(a.to_vec_f64().unwrap(), vec![0.25; 48]);
/// ```
#[derive(Clone, Debug)]
pub struct Sdpa {
    nheads: usize,
    mask: Mask,
    bias: Option<Tensor>,
    dropout: f64,
}

impl Default for Sdpa {
    /// One head, no mask, no bias, no dropout.
    fn default() -> Self { Sdpa::new(1) }
}

/// Configuration, builder-style, and the forward passes.
///
/// ```
/// use flux_core::ops::attention::{Mask, Sdpa};
/// use flux_core::{DType, Tensor};
/// let x = Tensor::ones(&[2, 5, 4], DType::F32);
/// let (y, a) = Sdpa::new(2).mask(Mask::Causal).forward(&x, &x, &x).unwrap();
/// assert_eq!((y.shape(), a.shape()), (&[2, 5, 4][..], &[2, 2, 5, 5][..]));
/// ```
impl Sdpa {
    /// Attention over `nheads` heads, no mask, bias or dropout.
    ///
    /// ```
    /// use flux_core::{ops::attention::Sdpa, DType, Tensor};
    /// let x = Tensor::ones(&[2, 3, 8], DType::F32);
    /// let (y, a) = Sdpa::new(4).forward(&x, &x, &x).unwrap();
    /// assert_eq!((y.shape(), a.shape()), (&[2, 3, 8][..], &[2, 4, 3, 3][..]));
    /// assert!(Sdpa::new(3).forward(&x, &x, &x).is_err()); // 3 heads do not divide 8
    /// ```
    pub fn new(nheads: usize) -> Sdpa { Sdpa { nheads, mask: Mask::None, bias: None, dropout: 0.0 } }
    /// Restrict which keys each query sees.
    ///
    /// ```
    /// use flux_core::ops::attention::{Mask, Sdpa};
    /// use flux_core::{DType, Tensor};
    /// let x = Tensor::ones(&[1, 2, 4], DType::F64);
    /// let (_, a) = Sdpa::new(2).mask(Mask::Causal).forward(&x, &x, &x).unwrap();
    /// assert_eq!(a.to_vec_f64().unwrap()[..2], [1.0, 0.0]); // query 0 sees key 0 only
    /// ```
    pub fn mask(mut self, mask: Mask) -> Sdpa {
        self.mask = mask;
        self
    }
    /// Add `bias` (broadcast to (batch, nheads, q_len, kv_len)) to the scaled scores
    /// before the softmax; it is differentiated like the other inputs.
    ///
    /// ```
    /// use flux_core::{ops::attention::Sdpa, DType, Tensor};
    /// let x = Tensor::ones(&[1, 2, 2], DType::F64);
    /// // a bias of −∞ hides key 1 from every query
    /// let bias = Tensor::from_vec(vec![0.0, f64::NEG_INFINITY], &[1, 2]).unwrap();
    /// let (_, a) = Sdpa::new(1).bias(bias).forward(&x, &x, &x).unwrap();
    /// assert_eq!(a.to_vec_f64().unwrap(), vec![1.0, 0.0, 1.0, 0.0]);
    /// ```
    pub fn bias(mut self, bias: Tensor) -> Sdpa {
        self.bias = Some(bias);
        self
    }
    /// Drop attention weights with probability `p` (scaling the rest by 1/(1−p)) before
    /// they weigh the values; the returned α is without dropout, as in NNlib.
    ///
    /// ```
    /// use flux_core::{ops::attention::Sdpa, tensor::random::Rng, DType, Tensor};
    /// let x = Tensor::ones(&[1, 4, 2], DType::F64);
    /// // every weight dropped: the output is zero; α is returned without dropout
    /// let (y, a) = Sdpa::new(1).dropout(1.0).forward_with_rng(&x, &x, &x, &mut Rng::seed(0)).unwrap();
    /// assert_eq!((y.to_vec_f64().unwrap(), a.to_vec_f64().unwrap()), (vec![0.0; 8], vec![0.25; 16]));
    /// ```
    pub fn dropout(mut self, p: f64) -> Sdpa {
        self.dropout = p;
        self
    }
    /// `(y, α)`: y (batch, q_len, v_dim) and the weights α (batch, nheads, q_len,
    /// kv_len). Dropout, if any, draws from the global generator.
    ///
    /// ```
    /// use flux_core::{ops::attention::Sdpa, DType, Tensor};
    /// let x = Tensor::ones(&[2, 3, 4], DType::F32);
    /// let (y, a) = Sdpa::new(2).forward(&x, &x, &x).unwrap();
    /// assert_eq!(a.shape(), &[2, 2, 3, 3]);
    /// ```
    pub fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        self.run(Operands::Separate(q, k, v), |shape, p, dt, dev| random::with_global(|r| mask_on(shape, p, dt, dev, r)))
    }
    /// [`Sdpa::forward`] with dropout's mask drawn from `rng`.
    ///
    /// ```
    /// use flux_core::{ops::attention::Sdpa, tensor::random::Rng, DType, Tensor};
    /// let x = Tensor::ones(&[1, 2, 2], DType::F32);
    /// let (y, _) = Sdpa::new(1).dropout(1.0).forward_with_rng(&x, &x, &x, &mut Rng::seed(0)).unwrap();
    /// assert_eq!(y.to_vec_f64().unwrap(), vec![0.0; 4]);
    /// ```
    pub fn forward_with_rng(&self, q: &Tensor, k: &Tensor, v: &Tensor, rng: &mut Rng) -> Result<(Tensor, Tensor)> {
        self.run(Operands::Separate(q, k, v), |shape, p, dt, dev| mask_on(shape, p, dt, dev, rng))
    }
    /// Self-attention on q, k and v packed side by side in `qkv` (batch, len, 2·qk_dim +
    /// v_dim): queries in columns `..qk_dim`, keys in the next `qk_dim`, values after,
    /// as one projection by the stacked weights (wq; wk; wv) makes them. The same `(y, α)`
    /// as [`Sdpa::forward_with_rng`] on the three blocks (the global generator when `rng`
    /// is `None`); the gradient of `qkv` comes back as one tensor.
    ///
    /// ```
    /// use flux_core::{ops::attention::Sdpa, DType, Tensor};
    /// let qkv = Tensor::ones(&[2, 3, 4 + 4 + 6], DType::F32); // qk width 4, v width 6
    /// let (y, a) = Sdpa::new(2).forward_packed(&qkv, 4, None).unwrap();
    /// assert_eq!((y.shape(), a.shape()), (&[2, 3, 6][..], &[2, 2, 3, 3][..]));
    /// ```
    pub fn forward_packed(&self, qkv: &Tensor, qk_dim: usize, rng: Option<&mut Rng>) -> Result<(Tensor, Tensor)> {
        let ops = Operands::Packed(qkv, qk_dim);
        match rng {
            Some(r) => self.run(ops, |shape, p, dt, dev| mask_on(shape, p, dt, dev, r)),
            None => self.run(ops, |shape, p, dt, dev| random::with_global(|r| mask_on(shape, p, dt, dev, r))),
        }
    }
    /// The checks, dropout's mask (drawn by `draw` on the operands' device, only when
    /// needed), the fused op and α's node.
    pub(crate) fn run(&self, ops: Operands<'_>, draw: impl FnOnce(&[usize], f64, DType, Device) -> Result<Tensor>) -> Result<(Tensor, Tensor)> {
        let d = Dims::check(ops, self.nheads)?;
        let full = [d.b, d.h, d.lq, d.lk];
        let fits = |t: &Tensor| broadcast_shapes(t.shape(), &full).ok().as_deref() == Some(&full[..]);
        if let Some(b) = &self.bias {
            if !fits(b) {
                return Err(shape_err!("attention: bias of shape {:?} does not broadcast to the scores' shape {:?} (batch, nheads, q_len, kv_len)", b.shape(), full));
            }
        }
        if let Mask::Keep(m) = &self.mask {
            if !fits(m) {
                return Err(shape_err!("attention: mask of shape {:?} does not broadcast to the scores' shape {:?} (batch, nheads, q_len, kv_len)", m.shape(), full));
            }
        }
        if !(0.0..=1.0).contains(&self.dropout) {
            return Err(value_err!("attention: dropout probability must be in [0, 1], got {}", self.dropout));
        }
        let mut ins = match ops {
            Operands::Separate(q, k, v) => vec![q, k, v],
            Operands::Packed(qkv, _) => vec![qkv],
        };
        let dt = ins[0].dtype();
        let (k, v) = (ins.get(1).copied(), ins.get(2).copied());
        for (name, t) in [("key", k), ("value", v), ("bias", self.bias.as_ref())] {
            if let Some(t) = t {
                if t.dtype() != dt {
                    return Err(Error::DType(format!("attention: query is {} but {name} is {}", dt.name(), t.dtype().name())));
                }
            }
        }
        let keep = match &self.mask {
            Mask::Keep(m) => Some(m.cast(dt)?),
            _ => None,
        };
        let drop = (self.dropout > 0.0).then(|| draw(&full, self.dropout, dt, ins[0].device())).transpose()?;
        let op = SdpaOp { d, causal: matches!(self.mask, Mask::Causal), keep, drop, weights: Mutex::new(None) };
        if let Some(b) = &self.bias {
            ins.push(b);
        }
        let y = apply(&op, &ins)?;
        let (alpha, saved) = op.weights.into_inner().unwrap_or_else(|e| e.into_inner()).expect("the forward saved α");
        record(&ins, &alpha, || Op::Custom(Box::new(SdpaBackward { s: saved, of_weights: true })));
        Ok((y, alpha))
    }
}

/// Dropout's mask over the attention weights, drawn where the operands are: on the GPU
/// by the counter-based hash keyed by one draw of `rng` (as [`crate::ops::dropout`]
/// does there: nothing crosses the bus), on the CPU by `dropout_mask`.
fn mask_on(shape: &[usize], p: f64, dt: DType, dev: Device, rng: &mut Rng) -> Result<Tensor> {
    #[cfg(feature = "wgpu")]
    if dev == Device::Wgpu {
        use crate::backend::wgpu::{random::keep_mask, tensors::wrap};
        let keep = if p >= 1.0 { 0.0 } else { 1.0 / (1.0 - p) };
        return Ok(wrap(keep_mask(shape.iter().product(), rng.key(), p as f32, keep as f32)?, shape));
    }
    let _ = dev;
    dropout_mask(shape, p, dt, rng)
}

/// What the attention reads: three tensors, or one holding q, k and v side by side along
/// its last dimension (the first `usize` columns queries, as many keys, the rest values).
#[derive(Clone, Copy)]
pub(crate) enum Operands<'a> {
    Separate(&'a Tensor, &'a Tensor, &'a Tensor),
    Packed(&'a Tensor, usize),
}

/// The sizes of one call: batch, heads, query and key lengths, per-head qk and v widths;
/// and where q, k and v (0, 1, 2) sit in their buffers: row stride and first column.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub(crate) b: usize,
    pub(crate) h: usize,
    pub(crate) lq: usize,
    pub(crate) lk: usize,
    pub(crate) hq: usize,
    pub(crate) hv: usize,
    pub(crate) packed: bool,
    pub(crate) ld: [usize; 3],
    pub(crate) col: [usize; 3],
}

impl Dims {
    fn check(ops: Operands<'_>, h: usize) -> Result<Dims> {
        if h == 0 {
            return Err(value_err!("attention: nheads must be at least 1, got 0"));
        }
        let (q, k, v) = match ops {
            Operands::Separate(q, k, v) => (q, k, v),
            Operands::Packed(x, qk) => {
                let s = x.shape();
                if x.ndim() != 3 || s[2] < 2 * qk {
                    return Err(shape_err!("attention: packed q, k, v of shape {s:?} must be (batch, len, 2·{qk} + v_dim)"));
                }
                let dv = s[2] - 2 * qk;
                if qk % h != 0 || dv % h != 0 {
                    return Err(shape_err!("attention: query/key dimension {qk} and value dimension {dv} must be divisible by nheads={h}"));
                }
                let w = s[2];
                let d = Dims { b: s[0], h, lq: s[1], lk: s[1], hq: qk / h, hv: dv / h, packed: true, ld: [w; 3], col: [0, qk, 2 * qk] };
                crate::tensor::alloc::reserve(&[d.b, d.h, d.lq, d.lk], x.dtype())?;
                return Ok(d);
            }
        };
        for (name, t) in [("query", q), ("key", k), ("value", v)] {
            if t.ndim() != 3 {
                return Err(shape_err!("attention expects {name} of shape (batch, len, dim), got {:?}", t.shape()));
            }
        }
        let (sq, sk, sv) = (q.shape(), k.shape(), v.shape());
        if sq[0] != sk[0] || sk[0] != sv[0] || sk[1] != sv[1] || sq[2] != sk[2] {
            return Err(shape_err!("attention: query {:?}, key {:?} and value {:?} do not fit (same batch; keys and values of one length; queries and keys of one width)", sq, sk, sv));
        }
        if sq[2] % h != 0 || sv[2] % h != 0 {
            return Err(shape_err!("attention: query/key dimension {} and value dimension {} must be divisible by nheads={h}", sq[2], sv[2]));
        }
        let d = Dims { b: sq[0], h, lq: sq[1], lk: sk[1], hq: sq[2] / h, hv: sv[2] / h, packed: false, ld: [sq[2], sk[2], sv[2]], col: [0; 3] };
        crate::tensor::alloc::reserve(&[d.b, d.h, d.lq, d.lk], q.dtype())?;
        Ok(d)
    }
    fn dq(&self) -> usize { self.h * self.hq }
    pub(crate) fn dv(&self) -> usize { self.h * self.hv }
    pub(crate) fn scale(&self) -> f64 { 1.0 / (self.hq as f64).sqrt() }
    /// How many tensors hold q, k and v.
    pub(crate) fn n_in(&self) -> usize { if self.packed { 1 } else { 3 } }
    /// Operand `which` (q 0, k 1, v 2) of batch entry `b`, head `h`: its rows × per-head
    /// columns read in place from `data` (that operand's buffer, or its gradient's).
    fn part<'a, T>(&self, data: &'a [T], which: usize, b: usize, h: usize) -> Mat<'a, T> {
        let (len, per) = match which {
            0 => (self.lq, self.hq),
            1 => (self.lk, self.hq),
            _ => (self.lk, self.hv),
        };
        Mat { data, off: b * len * self.ld[which] + self.col[which] + h * per, rs: self.ld[which] as isize, cs: 1 }
    }
    /// Where operand `which`'s head `h` starts within one batch entry's rows.
    fn start(&self, which: usize, h: usize) -> usize { self.col[which] + h * if which == 2 { self.hv } else { self.hq } }
    /// Whether to spread the batch over rayon's threads: enough work and more than one entry.
    fn par(&self) -> bool {
        let flops = self.b * self.h * self.lq * self.lk * (self.hq + self.hv);
        self.b > 1 && flops >= 1 << 16 && rayon::current_num_threads() > 1
    }
}

/// A tensor broadcast to (batch, nheads, q_len, kv_len), read in place.
struct Bcast<'a, T> {
    data: &'a [T],
    off: usize,
    st: [usize; 4],
}

impl<'a, T: Float> Bcast<'a, T> {
    fn of(t: &'a Tensor, d: &Dims) -> Result<Bcast<'a, T>> {
        let l = t.layout().broadcast_to(&[d.b, d.h, d.lq, d.lk])?;
        Ok(Bcast { data: t.raw::<T>()?, off: l.offset, st: [l.strides[0], l.strides[1], l.strides[2], l.strides[3]] })
    }
    /// The offset of row (b, h, i) and the stride along kv_len.
    #[inline]
    fn row(&self, b: usize, h: usize, i: usize) -> (usize, usize) {
        (self.off + b * self.st[0] + h * self.st[1] + i * self.st[2], self.st[3])
    }
}

/// `buf` cut into `parts` equal consecutive pieces (empty pieces when `buf` is empty).
fn split<T>(mut buf: &mut [T], parts: usize) -> Vec<&mut [T]> {
    let n = if parts == 0 { 0 } else { buf.len() / parts };
    let mut out = Vec::with_capacity(parts);
    for _ in 0..parts {
        let (a, rest) = std::mem::take(&mut buf).split_at_mut(n);
        out.push(a);
        buf = rest;
    }
    out
}

/// Run `f` on each item, on rayon's threads when `par`.
fn run_each<I: Send>(items: Vec<I>, par: bool, f: impl Fn(I) + Sync + Send) {
    if par {
        crate::parallel::warm();
        items.into_par_iter().for_each(f);
    } else {
        items.into_iter().for_each(f);
    }
}

/// One head's columns of the (batch, q_len, v) output (or its gradient).
fn out_head<'a, T>(data: &'a [T], d: &Dims, b: usize, h: usize) -> Mat<'a, T> {
    Mat { data, off: (b * d.lq) * d.dv() + h * d.hv, rs: d.dv() as isize, cs: 1 }
}

/// One batch entry's gradient buffers: q's, k's and v's, or the one packed buffer.
enum Grads<'a, T> {
    Separate([&'a mut [T]; 3]),
    Packed(&'a mut [T]),
}

impl<T> Grads<'_, T> {
    /// The buffer that holds operand `which`'s gradient.
    fn of(&mut self, which: usize) -> &mut [T] {
        match self {
            Grads::Separate(p) => &mut *p[which],
            Grads::Packed(g) => &mut **g,
        }
    }
}

/// What the forward keeps for both backward rules.
#[derive(Debug)]
pub(crate) struct Saved {
    pub(crate) d: Dims,
    pub(crate) q: Tensor,
    pub(crate) k: Tensor,
    pub(crate) v: Tensor,
    pub(crate) alpha: Tensor,
    pub(crate) drop: Option<Tensor>,
    pub(crate) bias_shape: Option<Vec<usize>>,
}

#[derive(Debug)]
pub(crate) struct SdpaOp {
    pub(crate) d: Dims,
    pub(crate) causal: bool,
    pub(crate) keep: Option<Tensor>,
    pub(crate) drop: Option<Tensor>,
    /// α and the saved tensors, handed back to [`Sdpa::forward_with_rng`] for α's own node.
    pub(crate) weights: Mutex<Option<(Tensor, Arc<Saved>)>>,
}

impl FusedOp for SdpaOp {
    fn name(&self) -> &'static str { "scaled_dot_product_attention" }
    fn cpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        crate::dispatch!(xs[0].dtype(), T => self.cpu::<T>(xs))
    }
    #[cfg(feature = "wgpu")]
    fn wgpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        crate::backend::wgpu::attention::forward(self, xs)
    }
}

impl SdpaOp {
    fn cpu<T: Float>(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let d = self.d;
        let n = d.n_in();
        let (q, k, v) = (xs[0].as_contiguous::<T>()?, xs[(n - 1).min(1)].as_contiguous::<T>()?, xs[n - 1].as_contiguous::<T>()?);
        let (qs, ks, vs) = (q.as_slice::<T>()?, k.as_slice::<T>()?, v.as_slice::<T>()?);
        let bias = xs.get(n).map(|b| Bcast::<T>::of(b, &d)).transpose()?;
        let keep = self.keep.as_ref().map(|m| Bcast::<T>::of(m, &d)).transpose()?;
        let drop = self.drop.as_ref().map(|m| m.as_slice::<T>()).transpose()?;
        let (scale, dv, ll) = (T::f(d.scale()), d.dv(), d.lq * d.lk);
        let mut y = vec![T::zero(); d.b * d.lq * dv];
        let mut alpha = vec![T::zero(); d.b * d.h * ll];
        let items: Vec<_> = split(&mut y, d.b).into_iter().zip(split(&mut alpha, d.b)).enumerate().collect();
        run_each(items, d.par(), |(b, (yb, ab))| {
            let mut p = if drop.is_some() { vec![T::zero(); ll] } else { Vec::new() };
            for h in 0..d.h {
                let s = &mut ab[h * ll..(h + 1) * ll];
                // scores = q·kᵀ/√d (the scale applied by the GEMM), then bias, mask and
                // softmax row by row
                gemm_scaled_ld(d.lq, d.lk, d.hq, d.part(qs, 0, b, h), d.part(ks, 1, b, h).t(), s, d.lk, scale);
                for (i, row) in s.chunks_exact_mut(d.lk.max(1)).enumerate() {
                    if bias.is_none() && keep.is_none() {
                        // no bias and at most the causal mask: softmax over the keys seen
                        let seen = if self.causal { (i + 1).min(d.lk) } else { d.lk };
                        let (live, masked) = row.split_at_mut(seen);
                        softmax_row(live);
                        masked.fill(T::zero());
                        continue;
                    }
                    let br = bias.as_ref().map(|x| x.row(b, h, i));
                    let kr = keep.as_ref().map(|x| x.row(b, h, i));
                    for (j, x) in row.iter_mut().enumerate() {
                        let mut z = *x;
                        if let (Some(bias), Some((o, st))) = (&bias, br) {
                            z += bias.data[o + j * st];
                        }
                        let masked = (self.causal && j > i) || matches!((&keep, kr), (Some(m), Some((o, st))) if m.data[o + j * st] == T::zero());
                        *x = if masked { T::neg_infinity() } else { z };
                    }
                    softmax_row(row);
                }
                // y_h = dropout(α_h) · v_h, into this head's columns of y
                let pa: &[T] = match drop {
                    Some(m) => {
                        let mh = &m[(b * d.h + h) * ll..][..ll];
                        p.iter_mut().zip(s.iter().zip(mh)).for_each(|(o, (&a, &k))| *o = a * k);
                        &p
                    }
                    None => s,
                };
                let pm = Mat { data: pa, off: 0, rs: d.lk as isize, cs: 1 };
                if d.lq > 0 {
                    gemm_into_ld(d.lq, d.hv, d.lk, pm, d.part(vs, 2, b, h), &mut yb[h * d.hv..], dv, false);
                }
            }
        });
        let alpha = Tensor::from_vec(alpha, &[d.b, d.h, d.lq, d.lk])?;
        let saved = Arc::new(Saved {
            d,
            q: q.into_owned(),
            k: k.into_owned(),
            v: v.into_owned(),
            alpha: alpha.clone(),
            drop: self.drop.clone(),
            bias_shape: xs.get(n).map(|b| b.shape().to_vec()),
        });
        *self.weights.lock().unwrap_or_else(|e| e.into_inner()) = Some((alpha, saved.clone()));
        Ok((Tensor::from_vec(y, &[d.b, d.lq, dv])?, Box::new(SdpaBackward { s: saved, of_weights: false })))
    }
}

wide_fn! {
    /// Softmax of one row in place, as [`Tensor::softmax`] computes it but with the
    /// vectorised `exp` (a row that is all −∞, every key masked, becomes NaN as there);
    /// max and sum in eight interleaved lanes, which vectorise (one running value does not).
    fn softmax_row[T: Float](row: &mut [T]) {
        let mut mx = lanes(row, T::neg_infinity(), |m, x| m.max(x));
        if !mx.is_finite() {
            mx = T::zero();
        }
        row.iter_mut().for_each(|x| *x = exp_fast(*x - mx));
        let r = T::one() / lanes(row, T::zero(), |a, x| a + x);
        row.iter_mut().for_each(|x| *x *= r);
    }
}

/// Σ aᵢbᵢ in eight interleaved lanes (as [`lanes`]).
#[inline(always)]
fn dot8<T: Float>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let rest = ca.remainder().iter().zip(cb.remainder()).fold(T::zero(), |s, (&x, &y)| s + x * y);
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().fold(rest, |s, &v| s + v)
}

/// `f` folded over `xs` in eight interleaved lanes, then the lanes folded in order.
#[inline(always)]
fn lanes<T: Float>(xs: &[T], init: T, f: impl Fn(T, T) -> T) -> T {
    let mut acc = [init; 8];
    let mut it = xs.chunks_exact(8);
    for c in &mut it {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = f(*a, x);
        }
    }
    it.remainder().iter().fold(acc.iter().fold(init, |a, &x| f(a, x)), |a, &x| f(a, x))
}

/// The gradients of q, k, v and bias, from the output's gradient (`of_weights` false)
/// or from α's (true).
#[derive(Debug)]
pub(crate) struct SdpaBackward {
    pub(crate) s: Arc<Saved>,
    pub(crate) of_weights: bool,
}

impl Backward for SdpaBackward {
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        #[cfg(feature = "wgpu")]
        if self.s.q.device() == crate::tensor::Device::Wgpu {
            return crate::backend::wgpu::attention::backward(&self.s, self.of_weights, g, needs);
        }
        crate::dispatch!(self.s.q.dtype(), T => self.run::<T>(g, needs))
    }
}

impl SdpaBackward {
    fn run<T: Float>(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let s = &*self.s;
        let d = s.d;
        let g = g.as_contiguous::<T>()?;
        let gs = g.as_slice::<T>()?;
        let (qs, ks, vs, al) = (s.q.as_slice::<T>()?, s.k.as_slice::<T>()?, s.v.as_slice::<T>()?, s.alpha.as_slice::<T>()?);
        let drop = s.drop.as_ref().map(|m| m.as_slice::<T>()).transpose()?;
        let (dq, dv, ll, scale) = (d.dq(), d.dv(), d.lq * d.lk, T::f(d.scale()));
        let need = |i: usize| needs.get(i).copied().unwrap_or(false);
        let n = d.n_in();
        // packed: one buffer takes all three gradients (v's columns stay zero for α's node)
        let need_q = need(0);
        let need_k = if d.packed { need(0) } else { need(1) };
        let need_v = (if d.packed { need(0) } else { need(2) }) && !self.of_weights;
        let need_bias = s.bias_shape.is_some() && need(n);
        let w = d.ld[0];
        let mut gp = vec![T::zero(); if d.packed && need_q { d.b * d.lq * w } else { 0 }];
        let mut gq = vec![T::zero(); if !d.packed && need_q { d.b * d.lq * dq } else { 0 }];
        let mut gk = vec![T::zero(); if !d.packed && need_k { d.b * d.lk * dq } else { 0 }];
        let mut gv = vec![T::zero(); if !d.packed && need_v { d.b * d.lk * dv } else { 0 }];
        let mut gb = vec![T::zero(); if need_bias { d.b * d.h * ll } else { 0 }];
        let grads: Vec<Grads<'_, T>> = if d.packed {
            split(&mut gp, d.b).into_iter().map(Grads::Packed).collect()
        } else {
            split(&mut gq, d.b)
                .into_iter()
                .zip(split(&mut gk, d.b))
                .zip(split(&mut gv, d.b))
                .map(|((a, b), c)| Grads::Separate([a, b, c]))
                .collect()
        };
        let items: Vec<_> = grads.into_iter().zip(split(&mut gb, d.b)).enumerate().collect();
        run_each(items, d.par(), |(b, (mut gr, gbb))| {
            let mut ds = vec![T::zero(); ll];
            let mut p = if drop.is_some() && need_v { vec![T::zero(); ll] } else { Vec::new() };
            for h in 0..d.h {
                let a = &al[(b * d.h + h) * ll..][..ll];
                let mh = drop.map(|m| &m[(b * d.h + h) * ll..][..ll]);
                // dα: from α's own gradient, or g_y·vᵀ (through the dropout mask)
                if self.of_weights {
                    ds.copy_from_slice(&gs[(b * d.h + h) * ll..][..ll]);
                } else {
                    let gy = out_head(gs, &d, b, h);
                    gemm_into(d.lq, d.lk, d.hv, gy, d.part(vs, 2, b, h).t(), &mut ds, false);
                    if let Some(mh) = mh {
                        ds.iter_mut().zip(mh).for_each(|(x, &k)| *x *= k);
                    }
                    if need_v && d.lk > 0 {
                        // g_v = dropout(α)ᵀ · g_y
                        let pa: &[T] = match mh {
                            Some(mh) => {
                                p.iter_mut().zip(a.iter().zip(mh)).for_each(|(o, (&x, &k))| *o = x * k);
                                &p
                            }
                            None => a,
                        };
                        let pm = Mat { data: pa, off: 0, rs: d.lk as isize, cs: 1 };
                        gemm_into_ld(d.lk, d.hv, d.lq, pm.t(), gy, &mut gr.of(2)[d.start(2, h)..], d.ld[2], false);
                    }
                }
                // through the softmax: dS = α ⊙ (dα − Σ_j dα⊙α)
                for (dr, ar) in ds.chunks_exact_mut(d.lk.max(1)).zip(a.chunks_exact(d.lk.max(1))) {
                    let dot = dot8(dr, ar);
                    dr.iter_mut().zip(ar).for_each(|(x, &y)| *x = y * (*x - dot));
                }
                if need_bias {
                    gbb[h * ll..(h + 1) * ll].copy_from_slice(&ds);
                }
                // through the scaled product: g_q = s·dS·k, g_k = s·dSᵀ·q (s by the GEMMs)
                let dsm = Mat { data: &ds[..], off: 0, rs: d.lk as isize, cs: 1 };
                if need_q && d.lq > 0 {
                    gemm_scaled_ld(d.lq, d.hq, d.lk, dsm, d.part(ks, 1, b, h), &mut gr.of(0)[d.start(0, h)..], d.ld[0], scale);
                }
                if need_k && d.lk > 0 {
                    gemm_scaled_ld(d.lk, d.hq, d.lq, dsm.t(), d.part(qs, 0, b, h), &mut gr.of(1)[d.start(1, h)..], d.ld[1], scale);
                }
            }
        });
        let mut out = if d.packed {
            vec![need_q.then(|| Tensor::from_vec(gp, &[d.b, d.lq, w])).transpose()?]
        } else {
            vec![
                need_q.then(|| Tensor::from_vec(gq, &[d.b, d.lq, dq])).transpose()?,
                need_k.then(|| Tensor::from_vec(gk, &[d.b, d.lk, dq])).transpose()?,
                need_v.then(|| Tensor::from_vec(gv, &[d.b, d.lk, dv])).transpose()?,
            ]
        };
        if let Some(bs) = &s.bias_shape {
            out.push(need_bias.then(|| Tensor::from_vec(gb, &[d.b, d.h, d.lq, d.lk])?.sum_to_shape(bs)).transpose()?);
        }
        Ok(out)
    }
}
