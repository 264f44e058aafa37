//! Dropout and alpha dropout with an explicit generator. The random mask is drawn here
//! and applied with ordinary broadcast multiply/add, so the gradient is the tape's
//! usual product rule (zero where dropped, scaled by 1/(1−p) where kept).
use super::random::Rng;
use super::{DType, Tensor};
use crate::error::{shape_err, value_err, Result};

/// SELU's negative saturation value −λα (NNlib's `α′` in AlphaDropout).
pub const ALPHA_PRIME: f64 = -1.7580993408473766;

fn check_p(p: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(value_err!("dropout probability must be in [0, 1], got {p}"));
    }
    Ok(())
}

/// A mask of `shape` whose entries are 0 with probability `p` and 1/(1−p) otherwise
/// (element kept iff a uniform draw exceeds `p`, as Flux).
///
/// ```
/// use flux_core::{DType, tensor::{random::Rng, dropout::dropout_mask}};
/// let m = dropout_mask(&[1000], 0.5, DType::F32, &mut Rng::seed(0)).unwrap();
/// assert!(m.to_vec_f64().unwrap().iter().all(|&v| v == 0.0 || v == 2.0));
/// ```
pub fn dropout_mask(shape: &[usize], p: f64, dtype: DType, rng: &mut Rng) -> Result<Tensor> {
    check_p(p)?;
    let n: usize = shape.iter().product();
    let keep = if p >= 1.0 { 0.0 } else { 1.0 / (1.0 - p) };
    let v: Vec<f64> = (0..n).map(|_| if rng.uniform() > p { keep } else { 0.0 }).collect();
    Tensor::from_vec(v, shape)?.cast(dtype)
}

/// `x ⊙ mask` with a mask of `mask_shape` (which broadcasts to `x`'s shape: size 1 on
/// the dimensions where the same decision is shared).
///
/// ```
/// use flux_core::{DType, Tensor, tensor::{random::Rng, dropout::dropout}};
/// let x = Tensor::ones(&[4, 3], DType::F32);
/// let y = dropout(&x, 0.5, &[4, 1], &mut Rng::seed(1)).unwrap();   // whole rows kept or dropped
/// let v = y.to_vec_f64().unwrap();
/// assert!(v.chunks(3).all(|r| r.iter().all(|&a| a == r[0])));
/// ```
pub fn dropout(x: &Tensor, p: f64, mask_shape: &[usize], rng: &mut Rng) -> Result<Tensor> {
    check_p(p)?;
    if super::layout::broadcast_shapes(mask_shape, x.shape()).ok().as_deref() != Some(x.shape()) {
        return Err(shape_err!("dropout mask of shape {:?} does not broadcast to the input shape {:?}", mask_shape, x.shape()));
    }
    if p == 0.0 {
        return Ok(x.clone());
    }
    let m = dropout_mask(mask_shape, p, x.dtype(), rng)?;
    x.mul(&m)
}

/// Alpha dropout (SELU-preserving): `A·(x if kept else α′) + B` with
/// `A = 1/√((1−p)(1 + p·α′²))`, `B = −A·α′·p`; an element is kept iff a uniform draw
/// exceeds `p`. `p = 0` is the identity, `p = 1` gives zeros.
///
/// ```
/// use flux_core::{DType, Tensor, tensor::{random::Rng, dropout::alpha_dropout}};
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
    let a = 1.0 / ((1.0 - p) * (1.0 + p * ALPHA_PRIME * ALPHA_PRIME)).sqrt();
    let b = -a * ALPHA_PRIME * p;
    let n = x.numel();
    let (mut m1, mut m2) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        if rng.uniform() > p {
            m1.push(a);
            m2.push(b);
        } else {
            m1.push(0.0);
            m2.push(a * ALPHA_PRIME + b);
        }
    }
    let m1 = Tensor::from_vec(m1, x.shape())?.cast(x.dtype())?;
    let m2 = Tensor::from_vec(m2, x.shape())?.cast(x.dtype())?;
    x.mul(&m1)?.add(&m2)
}
