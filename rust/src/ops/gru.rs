//! The GRU sequence kernel (Flux's v1 variant, as PyTorch's): gate blocks reset `r`,
//! update `z`, candidate `h̃`, with the recurrent product of the candidate gated by `r`:
//! `h̃ = tanh(gx_h + r ⊙ gh_h)`, `h′ = (1 − z)·h̃ + z·h`. Per step one GEMM and one sweep;
//! BPTT in reverse with one GEMM per step. Shared machinery: [`super::recurrent`].
use super::gates::{block, sigmoid, tanh, wide, wide_or_not};
use super::recurrent::{batch_chunks, gemm_here, run_chunks, split_by, Dims, Inputs, Saved, ToWh};
use crate::autodiff::Backward;
use crate::error::Result;
use crate::tensor::matmul::Mat;
use crate::tensor::{Float, Tensor};

/// One step of one sequence: the input projection `ga` (3H, `x·Wiᵀ + b`) becomes the
/// activations (r, z, h̃) in place; `gn` keeps the candidate's recurrent product `gh_h`
/// for the backward pass.
#[inline(always)]
fn step_fwd_body<T: Float>(h: usize, ga: &mut [T], gh: &[T], hp: &[T], gn: &mut [T], y: &mut [T]) {
    // one slice of length h per gate, so that the loop has no bounds checks and vectorises
    let q = |v, k| block(v, k, h);
    let (hr, hz, hn) = (q(gh, 0), q(gh, 1), q(gh, 2));
    let (ar, rest) = ga[..3 * h].split_at_mut(h);
    let (az, an) = rest.split_at_mut(h);
    let (hp, gn, y) = (&hp[..h], &mut gn[..h], &mut y[..h]);
    let one = T::one();
    for j in 0..h {
        let r = sigmoid(ar[j] + hr[j]);
        let z = sigmoid(az[j] + hz[j]);
        let c = tanh(an[j] + r * hn[j]);
        ar[j] = r;
        az[j] = z;
        an[j] = c;
        gn[j] = hn[j];
        y[j] = (one - z) * c + z * hp[j];
    }
}

wide_or_not!(step_fwd_wide, <T>(h: usize, ga: &mut [T], gh: &[T], hp: &[T], gn: &mut [T], y: &mut [T]) {
    step_fwd_body(h, ga, gh, hp, gn, y)
});

fn step_fwd<T: Float>(h: usize, ga: &mut [T], gh: &[T], hp: &[T], gn: &mut [T], y: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: the CPU has AVX2 and FMA (checked by `wide`).
        return unsafe { step_fwd_wide(h, ga, gh, hp, gn, y) };
    }
    step_fwd_body(h, ga, gh, hp, gn, y)
}

/// One step back: `dh` holds the gradient reaching this step's output from later steps
/// and becomes the direct part (through `z`) of the previous state's; `dgx` (3H) is the
/// gradient reaching `x·Wiᵀ + b`, `dgh` (3H) the one reaching `h·Whᵀ`, whose candidate
/// block is also kept in `dgn` for `dWh`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn step_bwd<T: Float>(h: usize, gy: &[T], dh: &mut [T], hp: &[T], a: &[T], gn: &[T], dgx: &mut [T], dgh: &mut [T], dgn: &mut [T]) {
    let (gy, dh, hp, a, gn) = (&gy[..h], &mut dh[..h], &hp[..h], &a[..3 * h], &gn[..h]);
    let (dgx, dgh, dgn) = (&mut dgx[..3 * h], &mut dgh[..3 * h], &mut dgn[..h]);
    let one = T::one();
    for j in 0..h {
        let (r, z, c, ghn) = (a[j], a[h + j], a[2 * h + j], gn[j]);
        let dy = gy[j] + dh[j];
        let dc = dy * (one - z) * (one - c * c);
        let dr = dc * ghn * r * (one - r);
        let dz = dy * (hp[j] - c) * z * (one - z);
        (dgx[j], dgx[h + j], dgx[2 * h + j]) = (dr, dz, dc);
        (dgh[j], dgh[h + j], dgh[2 * h + j]) = (dr, dz, dc * r);
        dgn[j] = dc * r;
        dh[j] = dy * z;
    }
}

/// The forward pass of [`super::recurrent::Sequence`] for the GRU: output `ys` (B, T, H).
pub(super) fn forward<T: Float>(d: Dims, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
    let ins = Inputs::<T>::new(d, xs)?;
    let h0 = xs[4].as_slice::<T>()?;
    let (b, h, h3) = (d.b, d.h, 3 * d.h);
    let n = b * d.t * h;
    // the input projection, overwritten step by step with (r, z, h̃); `gn` keeps gh_h
    let mut acts = vec![T::zero(); 3 * n];
    let mut gn = vec![T::zero(); n];
    let mut out = vec![T::zero(); n];
    let chunks = batch_chunks(d);
    let jobs = chunks.iter().zip(split_by(&mut acts, &chunks, d.t * h3)).zip(split_by(&mut gn, &chunks, d.t * h)).zip(split_by(&mut out, &chunks, d.t * h));
    run_chunks(jobs.collect(), |(((rows, acts), gn), ys)| {
        let dc = d.chunk(rows);
        ins.project(rows, acts);
        let h0 = &h0[rows.start * h..];
        let mut gh = vec![T::zero(); dc.b * h3];
        for t in 0..d.t {
            gemm_here(dc.b, h3, h, dc.h_prev(t, h0, ys), ins.wht(), &mut gh, h3, false);
            for bi in 0..dc.b {
                let r = dc.row(bi, t);
                let (done, now) = ys.split_at_mut(r * h);
                let hp = if t == 0 { &h0[bi * h..] } else { &done[(r - 1) * h..] };
                step_fwd(h, &mut acts[r * h3..], &gh[bi * h3..], hp, &mut gn[r * h..], now);
            }
        }
    });
    let y = Tensor::from_vec(out, &[b, d.t, h])?;
    let bwd = GruBackward { s: Saved::new(d, xs), y: y.clone(), acts: Tensor::from_vec(acts, &[3 * n])?, gn: Tensor::from_vec(gn, &[n])? };
    Ok((y, Box::new(bwd)))
}

/// What the GRU's backward pass reads: the inputs, the output and per step the gates and
/// the candidate's recurrent product.
#[derive(Debug)]
struct GruBackward {
    s: Saved,
    y: Tensor,
    acts: Tensor,
    gn: Tensor,
}

impl GruBackward {
    fn run<T: Float>(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let d = self.s.d;
        let (b, h, h3) = (d.b, d.h, 3 * d.h);
        let g = g.as_contiguous::<T>()?;
        let gy = g.as_slice::<T>()?;
        let (acts, gn, ys, h0) = (self.acts.as_slice::<T>()?, self.gn.as_slice::<T>()?, self.y.as_slice::<T>()?, self.s.h0.as_slice::<T>()?);
        let whm = Mat::of(&self.s.wh, false)?;
        let mut dgx = vec![T::zero(); b * d.t * h3];
        let mut dgn = vec![T::zero(); b * d.t * h];
        let mut dh = vec![T::zero(); b * h];
        let chunks = batch_chunks(d);
        let jobs = chunks.iter().zip(split_by(&mut dgx, &chunks, d.t * h3)).zip(split_by(&mut dgn, &chunks, d.t * h)).zip(split_by(&mut dh, &chunks, h));
        run_chunks(jobs.collect(), |(((rows, dgx), dgn), dh)| {
            let dn = d.chunk(rows);
            let s = rows.start * d.t;
            let (gy, acts, gn, ys, h0) = (&gy[s * h..], &acts[s * h3..], &gn[s * h..], &ys[s * h..], &h0[rows.start * h..]);
            // this step's gradient reaching h·Whᵀ, one row per sequence
            let mut dgh = vec![T::zero(); dn.b * h3];
            for t in (0..d.t).rev() {
                for bi in 0..dn.b {
                    let r = dn.row(bi, t);
                    let hp = if t == 0 { &h0[bi * h..] } else { &ys[(r - 1) * h..] };
                    step_bwd(h, &gy[r * h..], &mut dh[bi * h..], hp, &acts[r * h3..], &gn[r * h..], &mut dgx[r * h3..], &mut dgh[bi * h3..], &mut dgn[r * h..]);
                }
                let dghm = Mat { data: &dgh, off: 0, rs: h3 as isize, cs: 1 };
                gemm_here(dn.b, h, h3, dghm, whm, dh, h, true);
            }
        });
        // dWh: the reset and update blocks see what x·Wiᵀ + b sees, the candidate's is gated by r
        let to_wh = [
            ToWh { dg: Mat { data: &dgx, off: 0, rs: h3 as isize, cs: 1 }, first: 0, rows: 2 * h },
            ToWh { dg: Mat { data: &dgn, off: 0, rs: h as isize, cs: 1 }, first: 2 * h, rows: h },
        ];
        let mut res = self.s.weight_grads(&dgx, &to_wh, ys, needs)?;
        res.push(needs[4].then(|| Tensor::from_vec(dh, &[b, h])).transpose()?);
        Ok(res)
    }
}

impl Backward for GruBackward {
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        crate::dispatch!(self.y.dtype(), T => self.run::<T>(g, needs))
    }
}
