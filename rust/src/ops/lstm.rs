//! The LSTM sequence kernel: per step one GEMM with the recurrent kernel and one sweep
//! over the four gates (Flux's order: input, forget, cell, output); BPTT in reverse with
//! one GEMM per step. The sequence machinery it shares with the GRU and RNN is in
//! [`super::recurrent`].
use super::recurrent::{batch_chunks, gemm_here, run_chunks, split_by, Dims, Inputs, Saved, ToWh};
use crate::autodiff::Backward;
use crate::error::Result;
use crate::tensor::matmul::Mat;
use crate::tensor::{Float, Tensor};

use super::gates::{sigmoid, tanh, wide, wide_or_not};

/// One step of one sequence: the gate pre-activations in `ga` (4H, `x·Wiᵀ + b + h·Whᵀ`)
/// become the activations, in place; the cell state `c` and the output `y` from the
/// previous cell state `cp`.
#[inline(always)]
fn step_fwd_body<T: Float>(h: usize, ga: &mut [T], cp: &[T], c: &mut [T], y: &mut [T]) {
    // one slice of length h per gate, so that the loop has no bounds checks and vectorises
    let (ai, rest) = ga[..4 * h].split_at_mut(h);
    let (af, rest) = rest.split_at_mut(h);
    let (ag, ao) = rest.split_at_mut(h);
    let (cp, c, y) = (&cp[..h], &mut c[..h], &mut y[..h]);
    for j in 0..h {
        let i = sigmoid(ai[j]);
        let f = sigmoid(af[j]);
        let g = tanh(ag[j]);
        let o = sigmoid(ao[j]);
        let cn = f * cp[j] + i * g;
        ai[j] = i;
        af[j] = f;
        ag[j] = g;
        ao[j] = o;
        c[j] = cn;
        y[j] = o * tanh(cn);
    }
}

wide_or_not!(step_fwd_wide, <T>(h: usize, ga: &mut [T], cp: &[T], c: &mut [T], y: &mut [T]) {
    step_fwd_body(h, ga, cp, c, y)
});

fn step_fwd<T: Float>(h: usize, ga: &mut [T], cp: &[T], c: &mut [T], y: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: the CPU has AVX2 and FMA (checked by `wide`).
        return unsafe { step_fwd_wide(h, ga, cp, c, y) };
    }
    step_fwd_body(h, ga, cp, c, y)
}

/// One step back: from the gradient reaching this step's output (`gy + dh`) and cell
/// state (`dc`, updated in place to the previous cell state's), the gradients of the four
/// gate pre-activations `dg`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn step_bwd_body<T: Float>(h: usize, gy: &[T], dh: &[T], dc: &mut [T], a: &[T], cp: &[T], cs: &[T], dg: &mut [T]) {
    let (gy, dh, dc, a, cp, cs, dg) = (&gy[..h], &dh[..h], &mut dc[..h], &a[..4 * h], &cp[..h], &cs[..h], &mut dg[..4 * h]);
    let one = T::one();
    let (di, rest) = dg.split_at_mut(h);
    let (df, rest) = rest.split_at_mut(h);
    let (dgg, dout) = rest.split_at_mut(h);
    for j in 0..h {
        let (i, f, g, o) = (a[j], a[h + j], a[2 * h + j], a[3 * h + j]);
        let dy = gy[j] + dh[j];
        let t = tanh(cs[j]); // as the forward pass computed it (same function, same bits)
        let dcc = dc[j] + dy * o * (one - t * t);
        di[j] = dcc * g * i * (one - i);
        df[j] = dcc * cp[j] * f * (one - f);
        dgg[j] = dcc * i * (one - g * g);
        dout[j] = dy * t * o * (one - o);
        dc[j] = dcc * f;
    }
}

wide_or_not!(step_bwd_wide, <T>(h: usize, gy: &[T], dh: &[T], dc: &mut [T], a: &[T], cp: &[T], cs: &[T], dg: &mut [T]) {
    step_bwd_body(h, gy, dh, dc, a, cp, cs, dg)
});

#[allow(clippy::too_many_arguments)]
fn step_bwd<T: Float>(h: usize, gy: &[T], dh: &[T], dc: &mut [T], a: &[T], cp: &[T], cs: &[T], dg: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: the CPU has AVX2 and FMA (checked by `wide`).
        return unsafe { step_bwd_wide(h, gy, dh, dc, a, cp, cs, dg) };
    }
    step_bwd_body(h, gy, dh, dc, a, cp, cs, dg)
}

/// The forward pass of [`super::recurrent::Sequence`] for the LSTM: output `[ys…, c_T…]`.
pub(super) fn forward<T: Float>(d: Dims, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
    let ins = Inputs::<T>::new(d, xs)?;
    let (h0, c0) = (xs[4].as_slice::<T>()?, xs[5].as_slice::<T>()?);
    let (b, h, h4) = (d.b, d.h, 4 * d.h);
    let n = b * d.t * h;
    // per step: the input projection, then h·Whᵀ added in place, then the activations
    let mut acts = vec![T::zero(); b * d.t * h4];
    let mut out = vec![T::zero(); n + b * h];
    let mut cs = vec![T::zero(); n];
    let chunks = batch_chunks(d);
    let (ys, _) = out.split_at_mut(n);
    let jobs = chunks.iter().zip(split_by(&mut acts, &chunks, d.t * h4)).zip(split_by(ys, &chunks, d.t * h)).zip(split_by(&mut cs, &chunks, d.t * h));
    run_chunks(jobs.collect(), |(((rows, acts), ys), cs)| {
        let dc = d.chunk(rows);
        ins.project(rows, acts);
        let (h0, c0) = (&h0[rows.start * h..], &c0[rows.start * h..]);
        for t in 0..d.t {
            gemm_here(dc.b, h4, h, dc.h_prev(t, h0, ys), ins.wht(), &mut acts[t * h4..], d.t * h4, true);
            for bi in 0..dc.b {
                let r = dc.row(bi, t);
                let (done, now) = cs.split_at_mut(r * h);
                let cp = if t == 0 { &c0[bi * h..] } else { &done[(r - 1) * h..] };
                step_fwd(h, &mut acts[r * h4..], cp, now, &mut ys[r * h..]);
            }
        }
    });
    for bi in 0..b {
        let last = d.row(bi, d.t - 1) * h;
        out[n + bi * h..n + (bi + 1) * h].copy_from_slice(&cs[last..last + h]);
    }
    let y = Tensor::from_vec(out, &[n + b * h])?;
    let bwd = LstmBackward { s: Saved::new(d, xs), c0: xs[5].clone(), y: y.clone(), acts: Tensor::from_vec(acts, &[n * 4])?, cs: Tensor::from_vec(cs, &[n])? };
    Ok((y, Box::new(bwd)))
}

/// What the LSTM's backward pass reads: the inputs, the output and per step the gate
/// activations and cell states.
#[derive(Debug)]
struct LstmBackward {
    s: Saved,
    c0: Tensor,
    y: Tensor,
    acts: Tensor,
    cs: Tensor,
}

impl LstmBackward {
    fn run<T: Float>(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let d = self.s.d;
        let (b, h, h4) = (d.b, d.h, 4 * d.h);
        let n = b * d.t * h;
        let g = g.as_contiguous::<T>()?;
        let (gy, gc) = g.as_slice::<T>()?.split_at(n);
        let (acts, cs) = (self.acts.as_slice::<T>()?, self.cs.as_slice::<T>()?);
        let c0 = self.c0.as_slice::<T>()?;
        let whm = Mat::of(&self.s.wh, false)?;
        let mut dg = vec![T::zero(); b * d.t * h4];
        let mut dh = vec![T::zero(); b * h];
        let mut dc = gc.to_vec();
        let chunks = batch_chunks(d);
        let jobs = chunks.iter().zip(split_by(&mut dg, &chunks, d.t * h4)).zip(split_by(&mut dh, &chunks, h)).zip(split_by(&mut dc, &chunks, h));
        run_chunks(jobs.collect(), |(((rows, dg), dh), dc)| {
            let dn = d.chunk(rows);
            let (s, c) = (rows.start * d.t, rows.start);
            let (gy, acts, cs, c0) = (&gy[s * h..], &acts[s * h4..], &cs[s * h..], &c0[c * h..]);
            for t in (0..d.t).rev() {
                for bi in 0..dn.b {
                    let r = dn.row(bi, t);
                    let cp = if t == 0 { &c0[bi * h..] } else { &cs[(r - 1) * h..] };
                    step_bwd(h, &gy[r * h..], &dh[bi * h..], &mut dc[bi * h..], &acts[r * h4..], cp, &cs[r * h..], &mut dg[r * h4..]);
                }
                if t > 0 || needs[4] {
                    gemm_here(dn.b, h, h4, dn.step_rows(t, dg, h4), whm, dh, h, false);
                }
            }
        });
        let to_wh = ToWh { dg: Mat { data: &dg, off: 0, rs: h4 as isize, cs: 1 }, first: 0, rows: h4 };
        let mut res = self.s.weight_grads(&dg, &[to_wh], &self.y.as_slice::<T>()?[..n], needs)?;
        res.push(needs[4].then(|| Tensor::from_vec(dh, &[b, h])).transpose()?);
        res.push(needs[5].then(|| Tensor::from_vec(dc, &[b, h])).transpose()?);
        Ok(res)
    }
}

impl Backward for LstmBackward {
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        crate::dispatch!(self.y.dtype(), T => self.run::<T>(g, needs))
    }
}
