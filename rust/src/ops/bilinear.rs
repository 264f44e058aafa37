//! The Bilinear layer as a fused op: `z[r, o] = σ(Σᵢⱼ x[r, i]·W[o, i, j]·y[r, j] + b[o])`.
//!
//! Forward: one GEMM `U = x · W'` with `W'` the weight as (in1, out·in2), then `z = Σⱼ U ⊙ y`.
//! Backward, with `V[r, o, j] = gz[r, o]·y[r, j]`: `dx = V · W'ᵀ` and `dW' = xᵀ · V` (one
//! GEMM each), `dy = Σₒ gz ⊙ U`, `db = Σᵣ gz`.
use super::{apply, FusedOp};
use crate::autodiff::Backward;
use crate::error::{py_shape, shape_err, Result};
use crate::nn::Activation;
use crate::tensor::elementwise::{mul_deriv_inplace, unary_backward, unary_inplace, UnaryOp};
use crate::tensor::matmul::{gemm_new, Mat};
use crate::tensor::{DType, Device, Tensor};

/// The sizes: rows (all leading dims together), in1, in2, out.
#[derive(Clone, Copy, Debug)]
struct Dims {
    rows: usize,
    in1: usize,
    in2: usize,
    out: usize,
}

#[derive(Debug)]
struct BilinearOp {
    d: Dims,
    out_shape: Vec<usize>,
    act: Activation,
}

#[derive(Debug)]
struct BilinearBackward {
    d: Dims,
    /// x (rows, in1), y (rows, in2), W' (in1, out·in2) and U = x·W' (rows, out·in2), contiguous.
    x: Tensor,
    y: Tensor,
    wp: Tensor,
    u: Tensor,
    shapes: [Vec<usize>; 3],
    has_bias: bool,
    /// The activation with its input and output, when it is not the identity.
    act: Option<(UnaryOp, Tensor, Tensor)>,
}

/// A row-major (rows, cols) matrix read in place.
fn mat<T>(data: &[T], cols: usize) -> Mat<'_, T> { Mat { data, off: 0, rs: cols as isize, cs: 1 } }

/// `w` (out, in1, in2) ↔ `w'` (in1, out, in2): the same permutation both ways round
/// when `a`, `b` are (out, in1) or (in1, out).
fn swap01<T: Copy>(w: &[T], a: usize, b: usize, c: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(w.len());
    for i in 0..b {
        for o in 0..a {
            out.extend_from_slice(&w[(o * b + i) * c..(o * b + i + 1) * c]);
        }
    }
    out
}

impl FusedOp for BilinearOp {
    fn name(&self) -> &'static str { "bilinear" }
    fn cpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let Dims { rows, in1, in2, out } = self.d;
        crate::tensor::alloc::reserve(&[rows, out, in2], xs[0].dtype())?;
        crate::dispatch!(xs[0].dtype(), T => {
            let (xc, yc, wc) = (xs[0].as_contiguous::<T>()?, xs[1].as_contiguous::<T>()?, xs[2].as_contiguous::<T>()?);
            let (xv, yv) = (xc.as_slice::<T>()?, yc.as_slice::<T>()?);
            let wp = swap01(wc.as_slice::<T>()?, out, in1, in2);
            let u = gemm_new(rows, out * in2, in1, mat(xv, in1), mat(&wp, out * in2));
            let mut z: Vec<T> = Vec::with_capacity(rows * out);
            for r in 0..rows {
                let yr = &yv[r * in2..(r + 1) * in2];
                let ur = &u[r * out * in2..(r + 1) * out * in2];
                z.extend((0..out).map(|o| ur[o * in2..(o + 1) * in2].iter().zip(yr).map(|(&a, &b)| a * b).sum::<T>()));
            }
            if let Some(b) = xs.get(3) {
                let bc = b.as_contiguous::<T>()?;
                let bv = bc.as_slice::<T>()?;
                z.chunks_mut(out.max(1)).for_each(|zr| zr.iter_mut().zip(bv).for_each(|(a, &c)| *a += c));
            }
            let (y, act) = match self.act.unary_op() {
                None => (Tensor::from_vec(z, &self.out_shape)?, None),
                Some(op) => {
                    let mut y = z.clone();
                    unary_inplace(op, &mut y);
                    let y = Tensor::from_vec(y, &self.out_shape)?;
                    (y.clone(), Some((op, Tensor::from_vec(z, &self.out_shape)?, y)))
                }
            };
            let bwd = BilinearBackward {
                d: self.d,
                x: xc.into_owned(),
                y: yc.into_owned(),
                wp: Tensor::from_vec(wp, &[in1, out * in2])?,
                u: Tensor::from_vec(u, &[rows, out * in2])?,
                shapes: [xs[0].shape().to_vec(), xs[1].shape().to_vec(), xs[2].shape().to_vec()],
                has_bias: xs.len() > 3,
                act,
            };
            Ok((y, Box::new(bwd) as Box<dyn Backward>))
        })
    }
    /// The same GEMM and row sums with the device's kernels.
    fn wgpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let Dims { rows, in1, in2, out } = self.d;
        crate::autodiff::unrecorded(|| {
            let x = xs[0].reshape(&[rows, in1])?.contiguous()?;
            let y = xs[1].reshape(&[rows, in2])?.contiguous()?;
            let wp = xs[2].permute(&[1, 0, 2])?.contiguous()?.reshape(&[in1, out * in2])?;
            let u = x.matmul(&wp)?;
            let z = u.reshape(&[rows, out, in2])?.mul(&y.reshape(&[rows, 1, in2])?)?.sum(Some(&[2]), false)?;
            let z = match xs.get(3) {
                Some(b) => z.add(b)?,
                None => z,
            }
            .reshape(&self.out_shape)?;
            let (out_t, act) = match self.act.unary_op() {
                None => (z, None),
                Some(op) => {
                    let a = z.unary(op)?;
                    (a.clone(), Some((op, z, a)))
                }
            };
            let shapes = [xs[0].shape().to_vec(), xs[1].shape().to_vec(), xs[2].shape().to_vec()];
            let bwd = BilinearBackward { d: self.d, x, y, wp, u, shapes, has_bias: xs.len() > 3, act };
            Ok((out_t, Box::new(bwd) as Box<dyn Backward>))
        })
    }
}

impl BilinearBackward {
    /// The rule with the device's kernels (a GPU forward's backward).
    fn on_device(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let Dims { rows, in1, in2, out } = self.d;
        let gz = match &self.act {
            Some((op, z, y)) => unary_backward(*op, z, y, g)?,
            None => g.clone(),
        };
        let gz = gz.reshape(&[rows, out, 1])?;
        let need = |i: usize| needs.get(i).copied().unwrap_or(false);
        // V[r, o, j] = gz[r, o]·y[r, j]
        let v = gz.mul(&self.y.reshape(&[rows, 1, in2])?)?.reshape(&[rows, out * in2])?;
        let dx = need(0).then(|| v.matmul(&self.wp.t()?)?.reshape(&self.shapes[0])).transpose()?;
        let dy = need(1)
            .then(|| gz.mul(&self.u.reshape(&[rows, out, in2])?)?.sum(Some(&[1]), false)?.reshape(&self.shapes[1]))
            .transpose()?;
        let dw = need(2)
            .then(|| self.x.t()?.matmul(&v)?.reshape(&[in1, out, in2])?.permute(&[1, 0, 2])?.contiguous()?.reshape(&self.shapes[2]))
            .transpose()?;
        let mut grads = vec![dx, dy, dw];
        if self.has_bias {
            grads.push(need(3).then(|| gz.reshape(&[rows, out])?.sum(Some(&[0]), false)).transpose()?);
        }
        Ok(grads)
    }
}

impl Backward for BilinearBackward {
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        if self.x.device() != Device::Cpu {
            return self.on_device(g, needs);
        }
        let Dims { rows, in1, in2, out } = self.d;
        crate::dispatch!(self.x.dtype(), T => {
            let gc = g.as_contiguous::<T>()?;
            let mut gz = gc.as_slice::<T>()?.to_vec();
            if let Some((op, z, y)) = &self.act {
                mul_deriv_inplace(*op, &mut gz, z.as_slice::<T>()?, y.as_slice::<T>()?);
            }
            let (xv, yv, wp, u) = (self.x.as_slice::<T>()?, self.y.as_slice::<T>()?, self.wp.as_slice::<T>()?, self.u.as_slice::<T>()?);
            let oi = out * in2;
            // V[r, o, j] = gz[r, o]·y[r, j]
            let mut v: Vec<T> = Vec::with_capacity(rows * oi);
            for r in 0..rows {
                for o in 0..out {
                    let a = gz[r * out + o];
                    v.extend(yv[r * in2..(r + 1) * in2].iter().map(|&b| a * b));
                }
            }
            let dx = needs[0]
                .then(|| Tensor::from_vec(gemm_new(rows, in1, oi, mat(&v, oi), mat(wp, oi).t()), &self.shapes[0]))
                .transpose()?;
            let dy = needs[1]
                .then(|| {
                    let mut d = vec![T::zero(); rows * in2];
                    for r in 0..rows {
                        for o in 0..out {
                            let a = gz[r * out + o];
                            let ur = &u[r * oi + o * in2..r * oi + (o + 1) * in2];
                            d[r * in2..(r + 1) * in2].iter_mut().zip(ur).for_each(|(acc, &b)| *acc += a * b);
                        }
                    }
                    Tensor::from_vec(d, &self.shapes[1])
                })
                .transpose()?;
            let dw = needs[2]
                .then(|| {
                    let dwp = gemm_new(in1, oi, rows, mat(xv, in1).t(), mat(&v, oi));
                    Tensor::from_vec(swap01(&dwp, in1, out, in2), &self.shapes[2])
                })
                .transpose()?;
            let mut grads = vec![dx, dy, dw];
            if self.has_bias {
                let db = needs[3]
                    .then(|| {
                        let mut d = vec![T::zero(); out];
                        gz.chunks(out.max(1)).for_each(|row| d.iter_mut().zip(row).for_each(|(acc, &a)| *acc += a));
                        Tensor::from_vec(d, &[out])
                    })
                    .transpose()?;
                grads.push(db);
            }
            Ok(grads)
        })
    }
}

/// `σ(xᵀ W[o] y + b[o])` for every leading index, with `x` (..., in1), `y` (..., in2)
/// and `W` (out, in1, in2): the whole Bilinear layer as one node on the tape, with one
/// hand-written backward. Inputs of mixed float types are promoted.
///
/// ```
/// use flux_core::{Tensor, nn::Activation, ops::bilinear::bilinear};
/// let x = Tensor::from_vec(vec![1.0f64, 2.0], &[1, 2]).unwrap();
/// let y = Tensor::from_vec(vec![3.0f64], &[1, 1]).unwrap();
/// let w = Tensor::from_vec(vec![1.0f64, 1.0], &[1, 2, 1]).unwrap();  // z = (x₀ + x₁)·y₀
/// assert_eq!(bilinear(&x, &y, &w, None, Activation::Identity).unwrap().to_vec_f64().unwrap(), vec![9.0]);
/// ```
pub fn bilinear(x: &Tensor, y: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Activation) -> Result<Tensor> {
    if w.ndim() != 3 {
        return Err(shape_err!("Bilinear weight must be 3-D (out, in1, in2), got shape {}", py_shape(w.shape())));
    }
    let (out, in1, in2) = (w.shape()[0], w.shape()[1], w.shape()[2]);
    let fits = x.ndim() > 0 && y.ndim() > 0 && x.shape()[x.ndim() - 1] == in1 && y.shape()[y.ndim() - 1] == in2;
    if !fits || x.shape()[..x.ndim() - 1] != y.shape()[..y.ndim() - 1] {
        return Err(shape_err!(
            "Bilinear(({in1}, {in2}) => {out}) expects inputs (..., {in1}) and (..., {in2}) with equal leading dims, got shapes {} and {}",
            py_shape(x.shape()),
            py_shape(y.shape())
        ));
    }
    if let Some(b) = b {
        if b.shape() != [out] {
            return Err(shape_err!("Bilinear: bias must have shape ({out},), got {}", py_shape(b.shape())));
        }
    }
    let lead = &x.shape()[..x.ndim() - 1];
    let mut out_shape = lead.to_vec();
    out_shape.push(out);
    let d = Dims { rows: lead.iter().product(), in1, in2, out };
    let dt = b.iter().fold(DType::promote(DType::promote(x.dtype(), y.dtype()), w.dtype()), |d, b| DType::promote(d, b.dtype()));
    let (x, y, w, b) = (x.cast(dt)?, y.cast(dt)?, w.cast(dt)?, b.map(|b| b.cast(dt)).transpose()?);
    let mut inputs = vec![&x, &y, &w];
    inputs.extend(b.as_ref());
    apply(&BilinearOp { d, out_shape, act }, &inputs)
}

#[cfg(test)]
mod tests {
    // forward against loops and gradients against finite differences (f64, and f32
    // against f64): rust/tests/layers_misc.rs
    use super::*;

    #[test]
    fn the_weight_permutation_is_its_own_inverse() {
        let w: Vec<u32> = (0..24).collect();
        let p = swap01(&w, 2, 3, 4);
        assert_eq!(&p[..8], &[0, 1, 2, 3, 12, 13, 14, 15]);
        assert_eq!(swap01(&p, 3, 2, 4), w);
    }
}
