//! Recurrent sequences on the GPU (`kernels/recurrent.wgsl`): the input projection of
//! every step as one GEMM (bias added), then per step one GEMM with the recurrent kernel
//! (`h·Whᵀ`, the previous state read in place from the states written so far) and one
//! fused gate kernel; the whole time loop is submitted without reading anything back.
//! Backpropagation through time walks the steps in reverse, per step one gate-gradient
//! kernel and one GEMM (`dgates·Wh`, the gradient reaching the previous state); the
//! gradients of `x`, `Wi`, `Wh` and the bias are then one GEMM (or sum) each over the
//! gate gradients of all steps. The CPU's kernels are [`crate::ops::lstm`],
//! [`crate::ops::gru`] and [`crate::ops::rnn`]; the gate order and the saved
//! activations are theirs.
use super::elementwise::{self as ew, family_with_activations, unary_code, word, WG};
use super::kernel::{f32_bits, groups_1d, launch, Kernel};
use super::matmul::{matmul, MatLayout};
use super::pool::GpuBuffer;
use super::tensors::{buffer, dense, wrap};
use crate::autodiff::Backward;
use crate::error::Result;
use crate::ops::recurrent::{Cell, Dims};
use crate::tensor::movement::SliceDim;
use crate::tensor::{Layout, Tensor};

/// The op's name in errors.
const OP: &str = "recurrent sequence";

const RECURRENT: Kernel = family_with_activations!("recurrent");

/// Rows `B` of step `t` in a batch-major (B·T, `width`) buffer, from column `col`, as a
/// (B, `cols`) GEMM operand read in place.
fn step_rows(d: &Dims, t: usize, width: usize, col: usize, cols: usize) -> MatLayout {
    MatLayout { rows: d.b, cols, offset: t * width + col, batch_stride: 0, row_stride: d.t * width, col_stride: 1 }
}

/// Run one step's kernel `entry` over the (B, H) grid of (sequence, unit).
fn step(entry: &str, d: &Dims, t: usize, consts: &[(&str, f64)], alpha: f32, bufs: &[&GpuBuffer]) -> Result<()> {
    let w = [word(d.b, "the batch")?, word(d.t, "the sequence length")?, word(d.h, "the hidden width")?, t as u32, f32_bits(alpha)];
    launch(&RECURRENT, entry, consts, bufs, &w, groups_1d(d.b * d.h, WG))
}

/// The RNN activation's specialisation (`IDENTITY`, `OP`) and its argument.
fn activation(cell: Cell) -> (Vec<(&'static str, f64)>, f32) {
    match cell {
        Cell::Rnn(act) => match act.unary_op() {
            None => (vec![("IDENTITY", 1.0)], 0.0),
            Some(op) => {
                let (code, a, _) = unary_code(op);
                (vec![("IDENTITY", 0.0), ("OP", code)], a)
            }
        },
        _ => (Vec::new(), 0.0),
    }
}

/// The states each step started from, (B·T, H): `s0` (B, H), then `ys` (B, T, H) shifted
/// by one step.
fn shifted(s0: &Tensor, ys: &Tensor, d: &Dims) -> Result<Tensor> {
    if d.t == 1 {
        return dense(&s0.reshape(&[d.b, d.h])?);
    }
    let all = |n| SliceDim { start: 0, len: n, step: 1 };
    let before = ys.slice(&[all(d.b), SliceDim { start: 0, len: d.t - 1, step: 1 }, all(d.h)])?;
    dense(&Tensor::concat(&[&s0.reshape(&[d.b, 1, d.h])?, &before], 1)?.reshape(&[d.b * d.t, d.h])?)
}

/// The GPU forward of [`crate::ops::recurrent::Sequence`]: the same output as the CPU's
/// (`ys`, for the LSTM `[ys…, c_T…]`) and a backward pass that runs on the GPU.
pub(crate) fn forward(cell: Cell, d: Dims, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
    // the tensor ops inside are one node on the tape, recorded by ops::apply
    crate::autodiff::unrecorded(|| run(cell, d, xs))
}

fn run(cell: Cell, d: Dims, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
    let ins = xs.iter().map(|x| dense(x)).collect::<Result<Vec<_>>>()?;
    let (x, wi, wh, bias, h0) = (&ins[0], &ins[1], &ins[2], &ins[3], &ins[4]);
    let (rows, gh, h) = (d.b * d.t, d.g * d.h, d.h);
    // every step's input projection at once, the bias folded in
    let xp = dense(&x.reshape(&[rows, d.i])?.matmul(&wi.t()?)?.add(bias)?)?;
    let xpb = buffer(&xp, OP)?;
    let (whb, wht) = (buffer(wh, OP)?, MatLayout::contiguous(gh, h).t());
    // the state before step t: h0, else the states written so far, read in place
    let h_prev = |t: usize, ys: &GpuBuffer| -> Result<GpuBuffer> {
        let (src, l) = if t == 0 { (buffer(h0, OP)?, MatLayout::contiguous(d.b, h)) } else { (ys, step_rows(&d, t - 1, h, 0, h)) };
        matmul(src, l, whb, wht, 1)
    };
    let (consts, alpha) = activation(cell);
    let n = rows * h;
    let (out, saved) = match cell {
        Cell::Lstm => {
            let (out, acts, cs) = (GpuBuffer::new(n + d.b * h)?, GpuBuffer::new(rows * gh)?, GpuBuffer::new(n)?);
            let c0 = buffer(&ins[5], OP)?;
            for t in 0..d.t {
                let g = h_prev(t, &out)?;
                step("lstm_step", &d, t, &[], 0.0, &[xpb, &g, c0, &acts, &cs, &out])?;
            }
            (wrap(out, &[n + d.b * h]), vec![wrap(acts, &[rows, gh]), wrap(cs, &[d.b, d.t, h]), ins[5].clone()])
        }
        Cell::Gru => {
            let (ys, acts, gn) = (GpuBuffer::new(n)?, GpuBuffer::new(rows * gh)?, GpuBuffer::new(n)?);
            for t in 0..d.t {
                let g = h_prev(t, &ys)?;
                step("gru_step", &d, t, &[], 0.0, &[xpb, &g, buffer(h0, OP)?, &acts, &gn, &ys])?;
            }
            (wrap(ys, &[d.b, d.t, h]), vec![wrap(acts, &[rows, gh]), wrap(gn, &[n])])
        }
        Cell::Rnn(_) => {
            let (ys, pre) = (GpuBuffer::new(n)?, GpuBuffer::new(n)?);
            for t in 0..d.t {
                let g = h_prev(t, &ys)?;
                step("rnn_step", &d, t, &consts, alpha, &[xpb, &g, &pre, &ys])?;
            }
            (wrap(ys, &[d.b, d.t, h]), vec![wrap(pre, &[n])])
        }
    };
    let bwd = SequenceBackward { cell, d, x: x.clone(), wi: wi.clone(), wh: wh.clone(), h0: h0.clone(), y: out.clone(), saved };
    Ok((out, Box::new(bwd)))
}

/// What the GPU backward pass reads: the inputs, the output and what each cell saved per
/// step (LSTM: gate activations, cell states, c0; GRU: gates, the candidate's `h·Whᵀ`;
/// RNN: the pre-activations).
#[derive(Debug)]
struct SequenceBackward {
    cell: Cell,
    d: Dims,
    x: Tensor,
    wi: Tensor,
    wh: Tensor,
    h0: Tensor,
    y: Tensor,
    saved: Vec<Tensor>,
}

impl Backward for SequenceBackward {
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let d = self.d;
        let (rows, gh, h, n) = (d.b * d.t, d.g * d.h, d.h, d.b * d.t * d.h);
        let g = dense(g)?;
        let gb = buffer(&g, OP)?;
        let whb = buffer(&self.wh, OP)?;
        let whl = MatLayout::contiguous(gh, h);
        let ys = self.y.view(Layout::contiguous(&[d.b, d.t, h]));
        let prev = shifted(&self.h0, &ys, &d)?;
        let zeros = || ew::full(d.b * h, 0.0);
        let (consts, alpha) = activation(self.cell);
        // the gate gradients of every step, (B·T, width): the GRU keeps the ones reaching
        // x·Wiᵀ + b (3H) and then the ones reaching h·Whᵀ (3H)
        let width = if self.cell == Cell::Gru { 2 * gh } else { gh };
        let dg = GpuBuffer::new(rows * width)?;
        let mut states = Vec::new();
        match self.cell {
            Cell::Lstm => {
                let (acts, cs, c0) = (buffer(&self.saved[0], OP)?, &self.saved[1], &self.saved[2]);
                let cprev = shifted(c0, cs, &d)?;
                let dc = ew::contiguous(gb, &Layout { shape: vec![d.b * h], strides: vec![1], offset: n })?;
                let mut dh = zeros()?;
                for t in (0..d.t).rev() {
                    step("lstm_step_bwd", &d, t, &[], 0.0, &[gb, &dh, &dc, acts, buffer(&cprev, OP)?, buffer(cs, OP)?, &dg])?;
                    if t > 0 || needs[4] {
                        dh = matmul(&dg, step_rows(&d, t, gh, 0, gh), whb, whl, 1)?;
                    }
                }
                states.push(needs[4].then(|| wrap(dh, &[d.b, h])));
                states.push(needs[5].then(|| wrap(dc, &[d.b, h])));
            }
            Cell::Gru => {
                let (acts, gn) = (buffer(&self.saved[0], OP)?, buffer(&self.saved[1], OP)?);
                let (mut dm, dz) = (zeros()?, zeros()?);
                for t in (0..d.t).rev() {
                    step("gru_step_bwd", &d, t, &[], 0.0, &[gb, &dm, &dz, buffer(&prev, OP)?, acts, gn, &dg])?;
                    dm = matmul(&dg, step_rows(&d, t, width, gh, gh), whb, whl, 1)?;
                }
                let dh0 = needs[4].then(|| wrap(dm, &[d.b, h]).add(&wrap(dz, &[d.b, h]))).transpose()?;
                states.push(dh0);
            }
            Cell::Rnn(_) => {
                let pre = buffer(&self.saved[0], OP)?;
                let mut dh = zeros()?;
                for t in (0..d.t).rev() {
                    step("rnn_step_bwd", &d, t, &consts, alpha, &[gb, &dh, pre, buffer(&ys, OP)?, &dg])?;
                    if t > 0 || needs[4] {
                        dh = matmul(&dg, step_rows(&d, t, gh, 0, gh), whb, whl, 1)?;
                    }
                }
                states.push(needs[4].then(|| wrap(dh, &[d.b, h])));
            }
        }
        // the weights' gradients from every step's gate gradients at once
        let dg = wrap(dg, &[rows, width]);
        let dgx = dg.view(Layout { shape: vec![rows, gh], strides: vec![width, 1], offset: 0 });
        let dgh = dg.view(Layout { shape: vec![rows, gh], strides: vec![width, 1], offset: width - gh });
        let x2 = self.x.reshape(&[rows, d.i])?;
        let mut res = vec![
            needs[0].then(|| dgx.matmul(&self.wi)?.reshape(&[d.b, d.t, d.i])).transpose()?,
            needs[1].then(|| dgx.t()?.matmul(&x2)).transpose()?,
            needs[2].then(|| dgh.t()?.matmul(&prev)).transpose()?,
            needs[3].then(|| dgx.sum(Some(&[0]), false)).transpose()?,
        ];
        res.extend(states);
        Ok(res)
    }
}
