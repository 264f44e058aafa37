//! The GRU sequence kernel (Flux's v1 variant, as PyTorch's): gate blocks reset `r`,
//! update `z`, candidate `h̃`, with the recurrent product of the candidate gated by `r`:
//! `h̃ = tanh(gx_h + r ⊙ gh_h)`, `h′ = (1 − z)·h̃ + z·h`. Per step one GEMM and one sweep;
//! BPTT in reverse with one GEMM per step. Shared machinery: [`super::recurrent`].
use super::gates::{block, sigmoid, tanh, wide, wide_or_not};
use super::recurrent::{input_projection, through_wh, Dims, Saved};
use crate::autodiff::Backward;
use crate::error::Result;
use crate::tensor::matmul::{gemm_into, Mat};
use crate::tensor::{Float, Tensor};

/// One step of one sequence: `a` holds (r, z, h̃, gh_h), each H, for the backward pass.
#[inline(always)]
fn step_fwd_body<T: Float>(h: usize, gx: &[T], gh: &[T], hp: &[T], a: &mut [T], y: &mut [T]) {
    // one slice of length h per gate, so that the loop has no bounds checks and vectorises
    let q = |v, k| block(v, k, h);
    let (xr, xz, xn, hr, hz, hn) = (q(gx, 0), q(gx, 1), q(gx, 2), q(gh, 0), q(gh, 1), q(gh, 2));
    let (ar, rest) = a[..4 * h].split_at_mut(h);
    let (az, rest) = rest.split_at_mut(h);
    let (an, ag) = rest.split_at_mut(h);
    let (hp, y) = (&hp[..h], &mut y[..h]);
    let one = T::one();
    for j in 0..h {
        let r = sigmoid(xr[j] + hr[j]);
        let z = sigmoid(xz[j] + hz[j]);
        let c = tanh(xn[j] + r * hn[j]);
        ar[j] = r;
        az[j] = z;
        an[j] = c;
        ag[j] = hn[j];
        y[j] = (one - z) * c + z * hp[j];
    }
}

wide_or_not!(step_fwd_wide, <T>(h: usize, gx: &[T], gh: &[T], hp: &[T], a: &mut [T], y: &mut [T]) {
    step_fwd_body(h, gx, gh, hp, a, y)
});

fn step_fwd<T: Float>(h: usize, gx: &[T], gh: &[T], hp: &[T], a: &mut [T], y: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: the CPU has AVX2 and FMA (checked by `wide`).
        return unsafe { step_fwd_wide(h, gx, gh, hp, a, y) };
    }
    step_fwd_body(h, gx, gh, hp, a, y)
}

/// One step back: `dh` holds the gradient reaching this step's output from later steps
/// and becomes the direct part (through `z`) of the previous state's; `dgx` and `dgh` are
/// the gradients reaching `x·Wiᵀ + b` and `h·Whᵀ`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn step_bwd<T: Float>(h: usize, gy: &[T], dh: &mut [T], hp: &[T], a: &[T], dgx: &mut [T], dgh: &mut [T]) {
    let (gy, dh, hp, a, dgx, dgh) = (&gy[..h], &mut dh[..h], &hp[..h], &a[..4 * h], &mut dgx[..3 * h], &mut dgh[..3 * h]);
    let one = T::one();
    for j in 0..h {
        let (r, z, c, ghn) = (a[j], a[h + j], a[2 * h + j], a[3 * h + j]);
        let dy = gy[j] + dh[j];
        let dc = dy * (one - z) * (one - c * c);
        let dr = dc * ghn * r * (one - r);
        let dz = dy * (hp[j] - c) * z * (one - z);
        (dgx[j], dgx[h + j], dgx[2 * h + j]) = (dr, dz, dc);
        (dgh[j], dgh[h + j], dgh[2 * h + j]) = (dr, dz, dc * r);
        dh[j] = dy * z;
    }
}

/// The forward pass of [`super::recurrent::Sequence`] for the GRU: output `ys` (B, T, H).
pub(super) fn forward<T: Float>(d: Dims, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
    let gx = input_projection::<T>(d, xs[0], xs[1], xs[3])?;
    let h0 = xs[4].as_slice::<T>()?;
    let (b, h, h3) = (d.b, d.h, 3 * d.h);
    let n = b * d.t * h;
    let mut out = vec![T::zero(); n];
    let mut acts = vec![T::zero(); 4 * n];
    let mut gh = vec![T::zero(); b * h3];
    let whm = Mat::of(xs[2], true)?;
    for t in 0..d.t {
        gemm_into(b, h3, h, d.h_prev(t, h0, &out), whm, &mut gh, false);
        for bi in 0..b {
            let r = d.row(bi, t);
            let (done, now) = out.split_at_mut(r * h);
            let hp = if t == 0 { &h0[bi * h..] } else { &done[(r - 1) * h..] };
            step_fwd(h, &gx[r * h3..], &gh[bi * h3..], hp, &mut acts[r * 4 * h..], now);
        }
    }
    let y = Tensor::from_vec(out, &[b, d.t, h])?;
    let bwd = GruBackward { s: Saved::new(d, xs), y: y.clone(), acts: Tensor::from_vec(acts, &[4 * n])? };
    Ok((y, Box::new(bwd)))
}

/// What the GRU's backward pass reads: the inputs, the output and per step the gates.
#[derive(Debug)]
struct GruBackward {
    s: Saved,
    y: Tensor,
    acts: Tensor,
}

impl GruBackward {
    fn run<T: Float>(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let d = self.s.d;
        let (b, h, h3) = (d.b, d.h, 3 * d.h);
        let g = g.as_contiguous::<T>()?;
        let gy = g.as_slice::<T>()?;
        let (acts, ys, h0) = (self.acts.as_slice::<T>()?, self.y.as_slice::<T>()?, self.s.h0.as_slice::<T>()?);
        let mut dgx = vec![T::zero(); b * d.t * h3];
        let mut dgh = vec![T::zero(); b * d.t * h3];
        let mut dh = vec![T::zero(); b * h];
        for t in (0..d.t).rev() {
            for bi in 0..b {
                let r = d.row(bi, t);
                let hp = if t == 0 { &h0[bi * h..] } else { &ys[(r - 1) * h..] };
                step_bwd(h, &gy[r * h..], &mut dh[bi * h..], hp, &acts[r * 4 * h..], &mut dgx[r * h3..], &mut dgh[r * h3..]);
            }
            through_wh(d, d.step_rows(t, &dgh, h3), &self.s.wh, &mut dh, true)?;
        }
        let mut res = self.s.weight_grads(&dgx, &dgh, ys, needs)?;
        res.push(needs[4].then(|| Tensor::from_vec(dh, &[b, h])).transpose()?);
        Ok(res)
    }
}

impl Backward for GruBackward {
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        crate::dispatch!(self.y.dtype(), T => self.run::<T>(g, needs))
    }
}
