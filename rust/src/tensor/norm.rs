//! Normalisation as one fused op: batch, layer, group and instance norm all view the
//! input as (P, C, Q) and standardise each of the C slices over its P·Q values,
//! `x̂ = (x − μ) / √(σ² + ε)` with the uncorrected variance (as Flux does):
//!
//! | norm | input | (P, C, Q) |
//! |---|---|---|
//! | batch | (N, C, spatial...) | (N, C, ∏spatial) |
//! | layer over the last dims of size R | (..., R) | (1, M, R) |
//! | group (G groups) | (N, C, spatial...) | (1, N·G, C/G·∏spatial) |
//! | instance | (N, C, spatial...) | (1, N·C, ∏spatial) |
//!
//! The affine part (γ, β) is an ordinary broadcast multiply-add in the layer, because
//! its shape differs between the norms. The backward rule is the closed form
//! `dx = (g − mean(g) − x̂·mean(g·x̂)) / √(σ² + ε)` with means over each slice.
use rayon::prelude::*;

use super::{Float, Tensor, PAR_THRESHOLD};
use crate::autodiff::{record, Backward, Op};
use crate::error::{shape_err, value_err, Result};

/// Per-slice mean and (uncorrected) variance, two-pass for accuracy.
fn stats<T: Float>(x: &[T], p: usize, c: usize, q: usize) -> (Vec<T>, Vec<T>) {
    let m = T::f((p * q) as f64);
    let one = |ci: usize| {
        let mut s = T::zero();
        for pi in 0..p {
            s += x[(pi * c + ci) * q..][..q].iter().copied().sum::<T>();
        }
        let mu = s / m;
        let mut v = T::zero();
        for pi in 0..p {
            v += x[(pi * c + ci) * q..][..q].iter().map(|&a| (a - mu) * (a - mu)).sum::<T>();
        }
        (mu, v / m)
    };
    let r: Vec<(T, T)> = if x.len() >= PAR_THRESHOLD && c > 1 { (0..c).into_par_iter().map(one).collect() } else { (0..c).map(one).collect() };
    r.into_iter().unzip()
}

/// Apply `f(slice index, chunk of q)` over the (P·C) chunks of a (P, C, Q) buffer.
fn for_chunks<T: Float>(out: &mut [T], c: usize, q: usize, f: impl Fn(usize, usize, &mut [T]) + Sync + Send) {
    if q == 0 {
        return;
    }
    if out.len() >= PAR_THRESHOLD {
        out.par_chunks_exact_mut(q).enumerate().for_each(|(k, ch)| f(k, k % c, ch));
    } else {
        out.chunks_exact_mut(q).enumerate().for_each(|(k, ch)| f(k, k % c, ch));
    }
}

#[derive(Debug)]
struct NormBackward {
    y: Tensor,
    invstd: Tensor,
    p: usize,
    c: usize,
    q: usize,
}

impl Backward for NormBackward {
    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let g = g.cast(self.y.dtype())?.contiguous();
        let (p, c, q) = (self.p, self.c, self.q);
        crate::dispatch!(self.y.dtype(), T => {
            let (ys, gs, inv) = (self.y.as_slice::<T>()?, g.as_slice::<T>()?, self.invstd.as_slice::<T>()?);
            let m = T::f((p * q) as f64);
            // per slice: mean(g) and mean(g·x̂)
            let one = |ci: usize| {
                let (mut a, mut b) = (T::zero(), T::zero());
                for pi in 0..p {
                    let o = (pi * c + ci) * q;
                    for (&gv, &yv) in gs[o..o + q].iter().zip(&ys[o..o + q]) {
                        a += gv;
                        b += gv * yv;
                    }
                }
                (a / m, b / m)
            };
            let mg: Vec<(T, T)> = if gs.len() >= PAR_THRESHOLD && c > 1 { (0..c).into_par_iter().map(one).collect() } else { (0..c).map(one).collect() };
            let mut dx = vec![T::zero(); gs.len()];
            for_chunks(&mut dx, c, q, |k, ci, ch| {
                let (a, b) = mg[ci];
                let s = inv[ci];
                let o = k * q;
                for ((d, &gv), &yv) in ch.iter_mut().zip(&gs[o..o + q]).zip(&ys[o..o + q]) {
                    *d = (gv - a - yv * b) * s;
                }
            });
            Ok(vec![Some(Tensor::from_cpu(T::vec_into(dx), self.y.shape()))])
        })
    }
}

/// Standardise `x` viewed as (p, c, q) over p and q for each of the c slices. Returns
/// `(x̂, mean, var)` with `mean`, `var` of shape (c,) (not differentiable; BatchNorm
/// feeds them to its running statistics).
///
/// ```
/// use flux_core::{Tensor, tensor::norm::normalize};
/// let x = Tensor::from_vec(vec![1.0f64, 3.0, 10.0, 30.0], &[2, 2]).unwrap();
/// let (y, mean, var) = normalize(&x, 1, 2, 2, 0.0).unwrap();   // two rows, each over its 2 values
/// assert_eq!(y.to_vec_f64().unwrap(), vec![-1.0, 1.0, -1.0, 1.0]);
/// assert_eq!((mean.to_vec_f64().unwrap(), var.to_vec_f64().unwrap()), (vec![2.0, 20.0], vec![1.0, 100.0]));
/// ```
pub fn normalize(x: &Tensor, p: usize, c: usize, q: usize, eps: f64) -> Result<(Tensor, Tensor, Tensor)> {
    if p * c * q != x.numel() {
        return Err(shape_err!("normalize: a tensor of shape {:?} cannot be viewed as ({p}, {c}, {q})", x.shape()));
    }
    if p * q == 0 && c > 0 {
        return Err(value_err!("normalize: each slice needs at least one value, got shape {:?}", x.shape()));
    }
    if !(eps >= 0.0) {
        return Err(value_err!("normalize: eps must be non-negative, got {eps}"));
    }
    let xc = x.contiguous();
    let (y, mean, var, invstd) = crate::dispatch!(x.dtype(), T => {
        let xs = xc.as_slice::<T>()?;
        let (mu, var) = stats(xs, p, c, q);
        let inv: Vec<T> = var.iter().map(|&v| T::one() / (v + T::f(eps)).sqrt()).collect();
        let mut y = vec![T::zero(); xs.len()];
        for_chunks(&mut y, c, q, |k, ci, ch| {
            let (m, s) = (mu[ci], inv[ci]);
            ch.iter_mut().zip(&xs[k * q..(k + 1) * q]).for_each(|(d, &v)| *d = (v - m) * s);
        });
        (
            Tensor::from_cpu(T::vec_into(y), x.shape()),
            Tensor::from_cpu(T::vec_into(mu), &[c]),
            Tensor::from_cpu(T::vec_into(var), &[c]),
            Tensor::from_cpu(T::vec_into(inv), &[c]),
        )
    });
    record(&[&xc], &y, || Op::Custom(Box::new(NormBackward { y: y.clone(), invstd, p, c, q })));
    Ok((y, mean, var))
}
