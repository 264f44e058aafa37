//! Recurrent sequences as fused ops: a whole RNN, LSTM or GRU pass over (batch, time,
//! features) is one tape node.
//!
//! The batch is cut into chunks of whole sequences, one per thread, and each chunk runs
//! its time loop alone: the input of every step projected at once (one GEMM,
//! `x·Wiᵀ + b`), then per step one GEMM with the recurrent kernel (`h·Whᵀ`) and one fused
//! sweep over the gates. The backward pass (BPTT) walks the steps in reverse, again per
//! chunk, with one GEMM per step (`dgates·Wh`, the gradient reaching the previous state),
//! and collects the gate gradients of all steps, so that the gradients of `Wi`, `Wh`, `b`
//! and `x` are one (threaded) GEMM each after the loop. The gate kernels of each cell live beside this file:
//! [`super::lstm`], [`super::gru`], [`super::rnn`].
//!
//! Layouts (Flux's gate order, PyTorch's weight shapes): `x` (B, T, I), `Wi` (G·H, I),
//! `Wh` (G·H, H), `b` (G·H), states (B, H); G is 1 (RNN), 4 (LSTM: input, forget, cell,
//! output) or 3 (GRU: reset, update, candidate).
//!
//! ```
//! use flux_core::ops::recurrent::lstm;
//! use flux_core::Tensor;
//! let (b, t, i, h) = (2, 5, 3, 4);
//! let x = Tensor::ones(&[b, t, i], flux_core::DType::F32);
//! let wi = Tensor::full(&[4 * h, i], 0.1, flux_core::DType::F32);
//! let wh = Tensor::full(&[4 * h, h], 0.1, flux_core::DType::F32);
//! let (ys, (h_last, c_last)) = lstm(&x, &wi, &wh, None, None).unwrap();
//! assert_eq!((ys.shape(), h_last.shape(), c_last.shape()), (&[2, 5, 4][..], &[2, 4][..], &[2, 4][..]));
//! ```
use super::{apply, FusedOp};
use crate::autodiff::Backward;
use crate::error::{shape_err, Result};
use crate::nn::Activation;
use crate::tensor::matmul::{gemm_into, gemm_into_ld, gemm_new, gemm_threads, Mat};
use crate::tensor::movement::SliceDim;
use crate::tensor::{DType, Float, Tensor};
use rayon::prelude::*;
use std::ops::Range;

/// Which recurrence a sequence op runs.
///
/// ```
/// use flux_core::{nn::Activation, ops::recurrent::Cell};
/// assert_eq!((Cell::Rnn(Activation::Tanh).gates(), Cell::Lstm.gates(), Cell::Gru.gates()), (1, 4, 3));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell {
    /// `h′ = σ(Wi·x + Wh·h + b)` (Elman).
    Rnn(Activation),
    /// Flux's LSTM, gate blocks input, forget, cell, output; state (h, c).
    Lstm,
    /// Flux's GRU (the v1 variant, PyTorch's too): gate blocks reset, update, candidate;
    /// `h̃ = tanh(Wi_h·x + b_h + r ⊙ (Wh_h·h))`, `h′ = (1 − z)·h̃ + z·h`.
    Gru,
}

/// Sizes and names.
///
/// ```
/// use flux_core::ops::recurrent::Cell;
/// assert_eq!(Cell::Lstm.name(), "LSTM");
/// ```
impl Cell {
    /// Gate blocks per hidden unit: 1, 4 or 3.
    ///
    /// ```
    /// use flux_core::{nn::Activation, ops::recurrent::Cell};
    /// assert_eq!(Cell::Gru.gates(), 3);
    /// assert_eq!(Cell::Rnn(Activation::Relu).gates(), 1);
    /// ```
    pub fn gates(self) -> usize {
        match self {
            Cell::Rnn(_) => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }
    /// The layer's name in messages: `"RNN"`, `"LSTM"`, `"GRU"`.
    ///
    /// ```
    /// use flux_core::{nn::Activation, ops::recurrent::Cell};
    /// assert_eq!((Cell::Rnn(Activation::Tanh).name(), Cell::Gru.name()), ("RNN", "GRU"));
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Cell::Rnn(_) => "RNN",
            Cell::Lstm => "LSTM",
            Cell::Gru => "GRU",
        }
    }
}

/// Sizes of one sequence op: batch, time, input features, hidden units, gates.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    /// Batch size.
    pub b: usize,
    /// Sequence length (time steps).
    pub t: usize,
    /// Input width.
    pub i: usize,
    /// Hidden width.
    pub h: usize,
    /// Gate blocks per step (1 RNN, 3 GRU, 4 LSTM).
    pub g: usize,
}

impl Dims {
    /// Row of step `t` of sequence `b` in the (B·T, ·) matrices (batch-major, as `x`).
    #[inline(always)]
    pub fn row(&self, b: usize, t: usize) -> usize { b * self.t + t }
    /// The states before step `t` as a (B, H) operand: `h0` at t = 0, else the outputs of
    /// step t − 1 read in place from `ys` (B, T, H).
    pub fn h_prev<'a, T: Float>(&self, t: usize, h0: &'a [T], ys: &'a [T]) -> Mat<'a, T> {
        if t == 0 {
            Mat { data: h0, off: 0, rs: self.h as isize, cs: 1 }
        } else {
            Mat { data: ys, off: (t - 1) * self.h, rs: (self.t * self.h) as isize, cs: 1 }
        }
    }
    /// The same sizes for a chunk of `rows` sequences.
    pub fn chunk(&self, rows: &Range<usize>) -> Dims { Dims { b: rows.len(), ..*self } }
    /// Rows of step `t` of a (B, T, n) buffer as a (B, n) operand.
    pub fn step_rows<'a, T: Float>(&self, t: usize, buf: &'a [T], n: usize) -> Mat<'a, T> {
        Mat { data: buf, off: t * n, rs: (self.t * n) as isize, cs: 1 }
    }
}

/// The fused op of a whole sequence. Inputs: `x` (B, T, I), `Wi`, `Wh`, `b`, `h0` (B, H)
/// and, for the LSTM, `c0` (B, H). Output: the states `ys` (B, T, H); for the LSTM the
/// flat buffer `[ys…, c_T…]` (B·T·H + B·H), split by [`lstm`] into views.
///
/// ```
/// use flux_core::ops::{apply, recurrent::{Cell, Sequence}};
/// use flux_core::{nn::Activation, DType, Tensor};
/// // an identity-activated RNN with Wi = 1, Wh = 0: each state is the step's input sum
/// let x = Tensor::ones(&[1, 2, 3], DType::F64);
/// let (wi, wh, b, h0) = (Tensor::ones(&[1, 3], DType::F64), Tensor::zeros(&[1, 1], DType::F64), Tensor::zeros(&[1], DType::F64), Tensor::zeros(&[1, 1], DType::F64));
/// let ys = apply(&Sequence { cell: Cell::Rnn(Activation::Identity) }, &[&x, &wi, &wh, &b, &h0]).unwrap();
/// assert_eq!(ys.to_vec_f64().unwrap(), vec![3.0, 3.0]);
/// ```
#[derive(Debug)]
pub struct Sequence {
    /// The recurrence.
    pub cell: Cell,
}

impl FusedOp for Sequence {
    fn name(&self) -> &'static str {
        match self.cell {
            Cell::Rnn(_) => "rnn_sequence",
            Cell::Lstm => "lstm_sequence",
            Cell::Gru => "gru_sequence",
        }
    }
    fn cpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let d = check(self.cell, xs)?;
        crate::dispatch!(xs[0].dtype(), T => match self.cell {
            Cell::Lstm => super::lstm::forward::<T>(d, xs),
            Cell::Gru => super::gru::forward::<T>(d, xs),
            Cell::Rnn(act) => super::rnn::forward::<T>(d, act, xs),
        })
    }
    #[cfg(feature = "wgpu")]
    fn wgpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let d = check(self.cell, xs)?;
        crate::backend::wgpu::recurrent::forward(self.cell, d, xs)
    }
}

/// Shapes and dtypes of the op's inputs, checked before any work.
fn check(cell: Cell, xs: &[&Tensor]) -> Result<Dims> {
    let want = if cell == Cell::Lstm { 6 } else { 5 };
    if xs.len() != want {
        return Err(shape_err!("{}: expected {want} inputs, got {}", cell.name(), xs.len()));
    }
    let (x, wi, wh, b, h0) = (xs[0], xs[1], xs[2], xs[3], xs[4]);
    if x.ndim() != 3 || wi.ndim() != 2 || wh.ndim() != 2 {
        return Err(shape_err!(
            "{}: expected x (batch, time, in), Wi (gates·out, in), Wh (gates·out, out); got shapes {:?}, {:?}, {:?}",
            cell.name(), x.shape(), wi.shape(), wh.shape()
        ));
    }
    let g = cell.gates();
    let (bs, t, i) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let h = wh.shape()[1];
    if wh.shape()[0] != g * h || wi.shape() != [g * h, i] || b.shape() != [g * h] {
        return Err(shape_err!(
            "{}: weights do not fit {} gates of {h} units and {i} inputs: Wi {:?}, Wh {:?}, b {:?}",
            cell.name(), g, wi.shape(), wh.shape(), b.shape()
        ));
    }
    for s in &xs[4..] {
        if s.shape() != [bs, h] {
            return Err(shape_err!("{}: expected a state of shape {:?}, got {:?}", cell.name(), [bs, h], s.shape()));
        }
    }
    if let Some(o) = xs.iter().find(|o| o.dtype() != x.dtype()) {
        return Err(crate::Error::DType(format!("{}: mixed dtypes {} and {}", cell.name(), x.dtype().name(), o.dtype().name())));
    }
    let _ = h0;
    Ok(Dims { b: bs, t, i, h, g })
}

/// Fewest sequences per chunk: below this a chunk's per-step GEMMs are too thin to be
/// worth a thread of their own.
const MIN_CHUNK: usize = 8;

/// The batch cut into chunks of whole sequences, one per thread. The sequences of a batch
/// never meet in the recurrence, so each chunk runs its whole time loop (projection, every
/// step's GEMM and gate sweep, BPTT) without waiting for another thread; a parallel GEMM
/// per step instead paid a hand-off 100 times a pass for products of 32×512×128.
pub(crate) fn batch_chunks(d: Dims) -> Vec<Range<usize>> {
    let b = d.b;
    if b == 0 || d.h == 0 {
        // an empty batch has no sequence to run, zero hidden units no state to compute:
        // no chunk (a chunk of none would still index its time steps, and rows of zero
        // units cannot be cut into rows); the zero-filled outputs and gradients stand
        return Vec::new();
    }
    let n = rayon::current_num_threads().min(b / MIN_CHUNK).max(1);
    (0..n).map(|k| k * b / n..(k + 1) * b / n).collect()
}

/// A batch-major buffer (`per` elements per sequence) cut at the chunks' bounds.
pub(crate) fn split_by<'a, T>(mut buf: &'a mut [T], chunks: &[Range<usize>], per: usize) -> Vec<&'a mut [T]> {
    let mut parts = Vec::with_capacity(chunks.len());
    for c in chunks {
        let (head, rest) = std::mem::take(&mut buf).split_at_mut(c.len() * per);
        parts.push(head);
        buf = rest;
    }
    parts
}

/// Run `f` on every chunk's job, each on a thread of its own (inline when there is one).
pub(crate) fn run_chunks<J: Send>(jobs: Vec<J>, f: impl Fn(J) + Sync + Send) {
    if jobs.len() <= 1 {
        jobs.into_iter().for_each(f);
    } else {
        crate::parallel::warm();
        jobs.into_par_iter().for_each(f);
    }
}

/// `C[m,n] (+)= A·B` into `c` with rows `ldc` apart, on the calling thread only: a chunk
/// already has a thread of its own. Products small enough that `gemm_into_ld` would not
/// thread them go through it (the same arithmetic as before, its plain loop for tiny ones).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_here<T: Float>(m: usize, n: usize, k: usize, a: Mat<'_, T>, b: Mat<'_, T>, c: &mut [T], ldc: usize, accumulate: bool) {
    if m * n * k < 1 << 18 || k == 0 || m == 0 || n == 0 {
        return gemm_into_ld(m, n, k, a, b, c, ldc, accumulate);
    }
    // every element the strides reach lies inside the buffers, so the unchecked reads and
    // writes of the kernel are sound
    let last = |x: &Mat<'_, T>, r: usize, q: usize| x.off as isize + (r as isize - 1) * x.rs + (q as isize - 1) * x.cs;
    assert!(a.rs >= 0 && a.cs >= 0 && b.rs >= 0 && b.cs >= 0, "gemm_here: negative strides");
    assert!((last(&a, m, k) as usize) < a.data.len() && (last(&b, k, n) as usize) < b.data.len(), "gemm_here: operand out of bounds");
    assert!(ldc >= n && c.len() >= (m - 1) * ldc + n, "gemm_here: output too small");
    // SAFETY: bounds checked above; `c` is an exclusive borrow.
    unsafe { gemm_threads(m, n, k, a, b, c.as_mut_ptr(), ldc, accumulate, T::one(), 1) }
}

/// What every chunk of a forward pass reads: the input, the input kernel and bias, and
/// the recurrent kernel transposed once per pass (`h·Whᵀ` with a row-major right operand
/// runs about 1.4× faster in gemm than through the transposed view, 50 times a pass).
pub(crate) struct Inputs<'a, T> {
    d: Dims,
    x: &'a [T],
    wi: Mat<'a, T>,
    bias: &'a [T],
    wht: Vec<T>,
}

impl<'a, T: Float> Inputs<'a, T> {
    /// From the op's inputs `x`, `Wi`, `Wh`, `b` (contiguous, checked by the op).
    pub fn new(d: Dims, xs: &[&'a Tensor]) -> Result<Self> {
        let (wh, gh) = (xs[2].as_slice::<T>()?, d.g * d.h);
        let mut wht = Vec::with_capacity(gh * d.h);
        (0..d.h).for_each(|j| wht.extend((0..gh).map(|r| wh[r * d.h + j])));
        Ok(Inputs { d, x: xs[0].as_slice::<T>()?, wi: Mat::of(xs[1], true)?, bias: xs[3].as_slice::<T>()?, wht })
    }
    /// `Whᵀ` (H, G·H), row-major.
    pub fn wht(&self) -> Mat<'_, T> { Mat { data: &self.wht, off: 0, rs: (self.d.g * self.d.h) as isize, cs: 1 } }
    /// `dst ← x·Wiᵀ + b` for the sequences of `chunk`: (B_c·T, G·H), batch-major rows.
    pub fn project(&self, chunk: &Range<usize>, dst: &mut [T]) {
        let d = self.d;
        let (rows, gh) = (chunk.len() * d.t, d.g * d.h);
        dst[..rows * gh].chunks_exact_mut(gh).for_each(|r| r.copy_from_slice(self.bias));
        let xm = Mat { data: self.x, off: chunk.start * d.t * d.i, rs: d.i as isize, cs: 1 };
        gemm_here(rows, gh, d.i, xm, self.wi, dst, gh, true);
    }
}

/// The gate-gradient columns of all steps that reach `Wh` (B·T, `rows` gate rows), the
/// `rows` rows of `dWh` from `first`: all of them for the LSTM and RNN, two blocks for the
/// GRU (whose candidate block reaches `Wh` gated by `r`).
pub(crate) struct ToWh<'a, T> {
    /// The gradients (B·T rows, `rows` columns).
    pub dg: Mat<'a, T>,
    /// First gate row of `Wh` they reach.
    pub first: usize,
    /// Gate rows.
    pub rows: usize,
}

/// The inputs of a recorded sequence, kept for its backward pass.
#[derive(Debug)]
pub(crate) struct Saved {
    /// The sizes.
    pub d: Dims,
    /// The input sequence.
    pub x: Tensor,
    /// The input kernel.
    pub wi: Tensor,
    /// The recurrent kernel.
    pub wh: Tensor,
    /// The initial state.
    pub h0: Tensor,
}

impl Saved {
    /// What the backward pass keeps of the inputs `xs` (x, Wi, Wh, bias, h0, …).
    pub fn new(d: Dims, xs: &[&Tensor]) -> Saved {
        Saved { d, x: xs[0].clone(), wi: xs[1].clone(), wh: xs[2].clone(), h0: xs[4].clone() }
    }

    /// The gradients of `x`, `Wi`, `Wh`, `b` from the gate gradients of all steps: `dgx`
    /// (what reaches `x·Wiᵀ + b`, (B·T, G·H)) and `dgh` (what reaches `h·Whᵀ`, in blocks of
    /// gate rows). `ys` are the states (B, T, H), shifted by one step to give the state
    /// each step started from.
    pub fn weight_grads<T: Float>(&self, dgx: &[T], dgh: &[ToWh<'_, T>], ys: &[T], needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let d = self.d;
        let (rows, gh) = (d.b * d.t, d.g * d.h);
        let dgxm = Mat { data: dgx, off: 0, rs: gh as isize, cs: 1 };
        let gx = if needs[0] {
            Some(Tensor::from_vec(gemm_new(rows, d.i, gh, dgxm, Mat::of(&self.wi, false)?), &[d.b, d.t, d.i])?)
        } else {
            None
        };
        let gwi = if needs[1] {
            let xm = Mat { data: self.x.as_slice::<T>()?, off: 0, rs: d.i as isize, cs: 1 };
            Some(Tensor::from_vec(gemm_new(gh, d.i, rows, dgxm.t(), xm), &[gh, d.i])?)
        } else {
            None
        };
        let gwh = if needs[2] {
            // the state each step started from: h0, then the outputs shifted by one step
            let h0 = self.h0.as_slice::<T>()?;
            let mut prev = Vec::with_capacity(rows * d.h);
            for b in 0..d.b {
                prev.extend_from_slice(&h0[b * d.h..(b + 1) * d.h]);
                prev.extend_from_slice(&ys[b * d.t * d.h..(b * d.t + d.t - 1) * d.h]);
            }
            let pm = Mat { data: &prev, off: 0, rs: d.h as isize, cs: 1 };
            let mut gwh = vec![T::zero(); gh * d.h];
            for p in dgh {
                gemm_into(p.rows, d.h, rows, p.dg.t(), pm, &mut gwh[p.first * d.h..], false);
            }
            Some(Tensor::from_vec(gwh, &[gh, d.h])?)
        } else {
            None
        };
        let gb = if needs[3] {
            let mut s = vec![T::zero(); gh];
            for r in dgx.chunks_exact(gh.max(1)) {
                s.iter_mut().zip(r).for_each(|(a, &v)| *a += v);
            }
            Some(Tensor::from_vec(s, &[gh])?)
        } else {
            None
        };
        Ok(vec![gx, gwi, gwh, gb])
    }
}

/// Every input as `dtype` and contiguous, with a missing bias or state as zeros (not on
/// the tape) and a state of shape (H,) broadcast to (B, H), as Flux does.
fn prepare(cell: Cell, x: &Tensor, wi: &Tensor, wh: &Tensor, b: Option<&Tensor>, states: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    if x.ndim() != 3 || wh.ndim() != 2 {
        return Err(shape_err!("{}: expected x (batch, time, in) and Wh (gates·out, out), got shapes {:?} and {:?}", cell.name(), x.shape(), wh.shape()));
    }
    let dt = wi.dtype();
    let (bs, h, gh) = (x.shape()[0], wh.shape()[1], wh.shape()[0]);
    let mut v = vec![x.cast(dt)?.contiguous()?, wi.contiguous()?, wh.cast(dt)?.contiguous()?];
    v.push(match b {
        Some(b) => b.cast(dt)?.contiguous()?,
        None => wi.full_beside(&[gh], 0.0, dt)?,
    });
    for s in states {
        v.push(match s {
            None => wi.full_beside(&[bs, h], 0.0, dt)?,
            Some(s) if s.shape() == [h] => s.cast(dt)?.broadcast_to(&[bs, h])?.contiguous()?,
            Some(s) => s.cast(dt)?.contiguous()?,
        });
    }
    Ok(v)
}

/// The empty output of a sequence of length 0: no steps, the state unchanged.
fn no_steps(x: &Tensor, h: usize, dt: DType) -> Result<Tensor> { x.full_beside(&[x.shape()[0], 0, h], 0.0, dt) }

/// The last step's rows of `ys` (B, T, H) as (B, H) (a view on the tape).
fn last_step(ys: &Tensor) -> Result<Tensor> {
    let s = ys.shape();
    let (b, t, h) = (s[0], s[1], s[2]);
    ys.slice(&[SliceDim { start: 0, len: b, step: 1 }, SliceDim { start: t - 1, len: 1, step: 1 }, SliceDim { start: 0, len: h, step: 1 }])?
        .reshape(&[b, h])
}

/// An Elman RNN over `x` (B, T, I): the states of every step (B, T, H) and the last one
/// (B, H). `h0` defaults to zeros; one tape node.
///
/// ```
/// use flux_core::{ops::recurrent::rnn, nn::Activation, DType, Tensor};
/// let x = Tensor::ones(&[1, 3, 2], DType::F64);
/// let wi = Tensor::full(&[4, 2], 0.5, DType::F64);
/// let wh = Tensor::zeros(&[4, 4], DType::F64);
/// let (ys, h) = rnn(&x, &wi, &wh, None, None, Activation::Identity).unwrap();
/// assert_eq!(h.to_vec_f64().unwrap(), vec![1.0; 4]);
/// assert_eq!(ys.shape(), &[1, 3, 4]);
/// ```
pub fn rnn(x: &Tensor, wi: &Tensor, wh: &Tensor, b: Option<&Tensor>, h0: Option<&Tensor>, act: Activation) -> Result<(Tensor, Tensor)> {
    hidden_only(Cell::Rnn(act), x, wi, wh, b, h0)
}

/// A GRU over `x` (B, T, I) (see [`Cell::Gru`]): the states of every step (B, T, H) and
/// the last one (B, H). `h0` defaults to zeros; one tape node.
///
/// ```
/// use flux_core::{ops::recurrent::gru, DType, Tensor};
/// let x = Tensor::ones(&[2, 4, 3], DType::F32);
/// let (ys, h) = gru(&x, &Tensor::full(&[6, 3], 0.1, DType::F32), &Tensor::zeros(&[6, 2], DType::F32), None, None).unwrap();
/// assert_eq!((ys.shape(), h.shape()), (&[2, 4, 2][..], &[2, 2][..]));
/// ```
pub fn gru(x: &Tensor, wi: &Tensor, wh: &Tensor, b: Option<&Tensor>, h0: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
    hidden_only(Cell::Gru, x, wi, wh, b, h0)
}

fn hidden_only(cell: Cell, x: &Tensor, wi: &Tensor, wh: &Tensor, b: Option<&Tensor>, h0: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
    let v = prepare(cell, x, wi, wh, b, &[h0])?;
    let refs: Vec<&Tensor> = v.iter().collect();
    if x.shape()[1] == 0 {
        check(cell, &refs)?;
        return Ok((no_steps(x, wh.shape()[1], wi.dtype())?, v[4].clone()));
    }
    let ys = apply(&Sequence { cell }, &refs)?;
    let h = last_step(&ys)?;
    Ok((ys, h))
}

/// An LSTM over `x` (B, T, I) with Flux's gate order: the states `h` of every step
/// (B, T, H) and the last state `(h, c)`, each (B, H). The state defaults to zeros; one
/// tape node.
///
/// ```
/// use flux_core::{ops::recurrent::lstm, DType, Tensor};
/// let x = Tensor::ones(&[2, 5, 3], DType::F32);
/// let (wi, wh) = (Tensor::full(&[8, 3], 0.1, DType::F32), Tensor::zeros(&[8, 2], DType::F32));
/// let (ys, (h, c)) = lstm(&x, &wi, &wh, None, None).unwrap();
/// assert_eq!((ys.shape(), h.shape(), c.shape()), (&[2, 5, 2][..], &[2, 2][..], &[2, 2][..]));
/// assert!(lstm(&x, &wi, &Tensor::zeros(&[8, 3], DType::F32), None, None).is_err()); // Wh is (4H, H)
/// ```
pub fn lstm(x: &Tensor, wi: &Tensor, wh: &Tensor, b: Option<&Tensor>, state: Option<(&Tensor, &Tensor)>) -> Result<(Tensor, (Tensor, Tensor))> {
    let (h0, c0) = (state.map(|s| s.0), state.map(|s| s.1));
    let v = prepare(Cell::Lstm, x, wi, wh, b, &[h0, c0])?;
    let refs: Vec<&Tensor> = v.iter().collect();
    let d = check(Cell::Lstm, &refs)?;
    if d.t == 0 {
        return Ok((no_steps(x, d.h, wi.dtype())?, (v[4].clone(), v[5].clone())));
    }
    let flat = apply(&Sequence { cell: Cell::Lstm }, &refs)?;
    let n = d.b * d.t * d.h;
    let ys = flat.slice(&[SliceDim { start: 0, len: n, step: 1 }])?.reshape(&[d.b, d.t, d.h])?;
    let c = flat.slice(&[SliceDim { start: n, len: d.b * d.h, step: 1 }])?.reshape(&[d.b, d.h])?;
    let h = last_step(&ys)?;
    Ok((ys, (h, c)))
}
