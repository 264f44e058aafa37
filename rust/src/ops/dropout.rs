//! Dropout and alpha dropout as fused ops: the random draw and the scaling are one
//! pass and one tape node whose backward multiplies by the same mask.
//!
//! The draws are those of [`crate::tensor::dropout::dropout_mask`] (one uniform per
//! mask element in row-major order, kept iff it exceeds `p`), so a seeded generator
//! gives the same mask as before the ops were fused.
//!
//! On the GPU the mask is drawn there ([`crate::backend::wgpu::random`]), keyed by a
//! seed taken from the same generator on each call: a seeded generator gives the same
//! GPU masks run after run, but not the CPU's masks — the same keep probability and
//! scale, not the same elements.
use super::{apply, FusedOp};
use crate::autodiff::Backward;
use crate::error::{shape_err, value_err, Result};
use crate::tensor::dropout::{check_p, ALPHA_PRIME};
use crate::tensor::layout::{broadcast_shapes, for_each_offset, row_major_strides, Layout};
use crate::tensor::random::Rng;
#[cfg(feature = "wgpu")]
use crate::backend::wgpu as gpu;
use crate::tensor::{Device, Float, Tensor};

/// `x ⊙ m` with `m` broadcast from `mask` (shape `mask_shape`) to `x`'s shape.
fn scale_by<T: Float>(x: &[T], shape: &[usize], mask: &[T], mask_shape: &[usize]) -> Vec<T> {
    if mask.len() == x.len() {
        return x.iter().zip(mask).map(|(&a, &m)| a * m).collect();
    }
    let ml = Layout { shape: mask_shape.to_vec(), strides: row_major_strides(mask_shape), offset: 0 };
    let bl = ml.broadcast_to(shape).expect("checked by the caller");
    let mut out = Vec::with_capacity(x.len());
    for_each_offset(&bl.shape, &bl.strides, 0, |i, o| out.push(x[i] * mask[o]));
    out
}

/// `dropout`'s op: input `x`; the mask is drawn in the forward.
struct DropoutOp<'a> {
    p: f64,
    mask_shape: &'a [usize],
    rng: std::sync::Mutex<&'a mut Rng>,
}

impl std::fmt::Debug for DropoutOp<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "DropoutOp(p={}, mask {:?})", self.p, self.mask_shape) }
}

#[derive(Debug)]
struct DropoutBackward {
    mask: Tensor,
}

impl Backward for DropoutBackward {
    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let m = &self.mask;
        if m.device() != Device::Cpu {
            // the mask was drawn where g is: the same mask, by the device's kernels
            return Ok(vec![Some(g.mul(m)?)]);
        }
        crate::dispatch!(m.dtype(), T => {
            let gc = g.as_contiguous::<T>()?;
            let v = scale_by(gc.as_slice::<T>()?, g.shape(), m.as_slice::<T>()?, m.shape());
            Ok(vec![Some(Tensor::from_vec(v, g.shape())?)])
        })
    }
}

impl FusedOp for DropoutOp<'_> {
    fn name(&self) -> &'static str { "dropout" }
    fn cpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let x = xs[0];
        let mut rng = self.rng.lock().map_err(|_| value_err!("dropout: generator poisoned by a panic"))?;
        crate::dispatch!(x.dtype(), T => {
            let n: usize = self.mask_shape.iter().product();
            let keep = T::f(if self.p >= 1.0 { 0.0 } else { 1.0 / (1.0 - self.p) });
            let mask: Vec<T> = (0..n).map(|_| if rng.uniform() > self.p { keep } else { T::zero() }).collect();
            let xc = x.as_contiguous::<T>()?;
            let y = scale_by(xc.as_slice::<T>()?, x.shape(), &mask, self.mask_shape);
            Ok((Tensor::from_vec(y, x.shape())?, Box::new(DropoutBackward { mask: Tensor::from_vec(mask, self.mask_shape)? })))
        })
    }
    #[cfg(feature = "wgpu")]
    fn wgpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let seed = self.rng.lock().map_err(|_| value_err!("dropout: generator poisoned by a panic"))?.key();
        let keep = if self.p >= 1.0 { 0.0 } else { 1.0 / (1.0 - self.p) };
        let n = self.mask_shape.iter().product();
        let mask = gpu::tensors::wrap(gpu::random::keep_mask(n, seed, self.p as f32, keep as f32)?, self.mask_shape);
        let y = crate::autodiff::unrecorded(|| xs[0].mul(&mask))?;
        Ok((y, Box::new(DropoutBackward { mask })))
    }
}

/// Dropout: `x ⊙ mask` where the mask, of `mask_shape` (broadcasting to `x`: size 1 on
/// the dimensions that share one decision), is 0 with probability `p` and 1/(1−p)
/// otherwise. One tape node; its gradient is `g ⊙ mask`.
///
/// ```
/// use flux_core::{DType, Tensor, ops::dropout::dropout, tensor::random::Rng};
/// let x = Tensor::ones(&[4, 3], DType::F32);
/// let y = dropout(&x, 0.5, &[4, 1], &mut Rng::seed(1)).unwrap();   // whole rows kept or dropped
/// let v = y.to_vec_f64().unwrap();
/// assert!(v.chunks(3).all(|r| r.iter().all(|&a| a == r[0]) && (r[0] == 0.0 || r[0] == 2.0)));
/// ```
pub fn dropout(x: &Tensor, p: f64, mask_shape: &[usize], rng: &mut Rng) -> Result<Tensor> {
    check_p(p)?;
    if broadcast_shapes(mask_shape, x.shape()).ok().as_deref() != Some(x.shape()) {
        return Err(shape_err!("dropout mask of shape {:?} does not broadcast to the input shape {:?}", mask_shape, x.shape()));
    }
    if p == 0.0 {
        return Ok(x.clone());
    }
    apply(&DropoutOp { p, mask_shape, rng: std::sync::Mutex::new(rng) }, &[x])
}

/// `alpha_dropout`'s op: `y = x·a + b` per element, (a, b) = (A, B) if kept, else (0, A·α′ + B).
struct AlphaDropoutOp<'a> {
    p: f64,
    rng: std::sync::Mutex<&'a mut Rng>,
}

impl std::fmt::Debug for AlphaDropoutOp<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "AlphaDropoutOp(p={})", self.p) }
}

impl FusedOp for AlphaDropoutOp<'_> {
    fn name(&self) -> &'static str { "alpha_dropout" }
    fn cpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let x = xs[0];
        let p = self.p;
        let mut rng = self.rng.lock().map_err(|_| value_err!("alpha_dropout: generator poisoned by a panic"))?;
        let a = 1.0 / ((1.0 - p) * (1.0 + p * ALPHA_PRIME * ALPHA_PRIME)).sqrt();
        let b = -a * ALPHA_PRIME * p;
        crate::dispatch!(x.dtype(), T => {
            let (ka, kb, da, db) = (T::f(a), T::f(b), T::zero(), T::f(a * ALPHA_PRIME + b));
            let xc = x.as_contiguous::<T>()?;
            let mut mask = Vec::with_capacity(x.numel());
            let y: Vec<T> = xc
                .as_slice::<T>()?
                .iter()
                .map(|&v| {
                    let (m1, m2) = if rng.uniform() > p { (ka, kb) } else { (da, db) };
                    mask.push(m1);
                    v * m1 + m2
                })
                .collect();
            Ok((Tensor::from_vec(y, x.shape())?, Box::new(DropoutBackward { mask: Tensor::from_vec(mask, x.shape())? })))
        })
    }
    /// With the mask `m` ∈ {0, A} drawn on the GPU, `y = x·m + B′ + (B − B′)·m/A`, where
    /// `B′ = A·α′ + B` is a dropped element's value.
    #[cfg(feature = "wgpu")]
    fn wgpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let p = self.p;
        let seed = self.rng.lock().map_err(|_| value_err!("alpha_dropout: generator poisoned by a panic"))?.key();
        let a = 1.0 / ((1.0 - p) * (1.0 + p * ALPHA_PRIME * ALPHA_PRIME)).sqrt();
        let b = -a * ALPHA_PRIME * p;
        let dropped = a * ALPHA_PRIME + b;
        let x = xs[0];
        let mask = gpu::tensors::wrap(gpu::random::keep_mask(x.numel(), seed, p as f32, a as f32)?, x.shape());
        let y = crate::autodiff::unrecorded(|| x.mul(&mask)?.add(&mask.mul_scalar((b - dropped) / a)?.add_scalar(dropped)?))?;
        Ok((y, Box::new(DropoutBackward { mask })))
    }
}

/// Alpha dropout (SELU-preserving): `A·(x if kept else α′) + B` with
/// `A = 1/√((1−p)(1 + p·α′²))`, `B = −A·α′·p`; an element is kept iff a uniform draw
/// exceeds `p`. `p = 0` is the identity, `p = 1` gives zeros. One tape node.
///
/// ```
/// use flux_core::{DType, Tensor, ops::dropout::alpha_dropout, tensor::random::Rng};
/// let x = Tensor::ones(&[3], DType::F64);
/// assert_eq!(alpha_dropout(&x, 1.0, &mut Rng::seed(0)).unwrap().to_vec_f64().unwrap(), vec![0.0; 3]);
/// ```
pub fn alpha_dropout(x: &Tensor, p: f64, rng: &mut Rng) -> Result<Tensor> {
    check_p(p)?;
    if p == 0.0 {
        return Ok(x.clone());
    }
    if p >= 1.0 {
        return x.mul_scalar(0.0);
    }
    apply(&AlphaDropoutOp { p, rng: std::sync::Mutex::new(rng) }, &[x])
}
