//! The fully connected layer's fused op, `σ(x·Wᵀ + b)` for `x` of shape (rows, in).
//!
//! On the CPU it is a single GEMM whose output starts as the bias rows, then the
//! activation in place; the backward pass is one elementwise sweep (`g ⊙ σ′`) and two
//! GEMMs that read `W` and `x` through strides (no transposed copies), with the bias
//! gradient as column sums. On the GPU the forward is one kernel (the matrix product with
//! the bias and the activation applied as its tiles are stored) and the backward the
//! same steps as device kernels (σ′, two products, a column sum), so a GPU model trains
//! without its tensors leaving the device.
use crate::autodiff::Backward;
use crate::error::Result;
use crate::nn::Activation;
use crate::ops::FusedOp;
use crate::tensor::elementwise::{mul_deriv_map, unary_backward, unary_inplace, unary_map};
use crate::tensor::matmul::{gemm_into, gemm_new, Mat};
use crate::tensor::{Device, Float, Tensor};

/// `σ(x·Wᵀ + b)`: inputs `x` (rows, in), `W` (out, in) and optionally `b` (out,), all of
/// one dtype (checked and cast by [`crate::nn::linear`], which is the public entry).
///
/// ```
/// use flux_core::{nn::Activation, ops::{apply, dense::DenseOp}, Tensor};
/// let x = Tensor::from_vec(vec![1.0f32, -2.0], &[1, 2]).unwrap();
/// let w = Tensor::from_vec(vec![1.0f32, 1.0, 0.0, 1.0], &[2, 2]).unwrap();
/// let y = apply(&DenseOp { act: Activation::Identity }, &[&x, &w]).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![-1.0, -2.0]);
/// ```
#[derive(Debug)]
pub struct DenseOp {
    /// The activation σ.
    pub act: Activation,
}

impl FusedOp for DenseOp {
    fn name(&self) -> &'static str { "dense" }
    fn cpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let (x, w, b) = (xs[0], xs[1], xs.get(2).copied());
        let (rows, inp, out) = (x.shape()[0], x.shape()[1], w.shape()[0]);
        let (y, z) = crate::dispatch!(x.dtype(), T => forward::<T>(x, w, b, self.act, rows, inp, out)?);
        let bwd = DenseBackward { x: x.detach(), w: w.detach(), y: y.detach(), z, act: self.act, bias: b.is_some() };
        Ok((y, Box::new(bwd)))
    }
    fn wgpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        // detached: the op is one node on the tape, its steps are not recorded
        let (x, w, b) = (xs[0].detach(), xs[1].detach(), xs.get(2).map(|b| b.detach()));
        // one dispatch: the product with the bias and the activation as its epilogue;
        // as on the CPU, z is kept only where σ′ needs it (relu, tanh, sigmoid read y)
        let (y, z) = gpu_forward(&x, &w, b.as_ref(), self.act)?;
        let bwd = DenseBackward { x, w, y: y.clone(), z, act: self.act, bias: xs.len() > 2 };
        Ok((y, Box::new(bwd)))
    }
}

/// (y, z) on the GPU: `act(x·Wᵀ + b)` by the matrix-product kernel with its epilogue,
/// reading `x` and `W` through their strides; z only when σ′ needs it.
#[cfg(feature = "wgpu")]
fn gpu_forward(x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Activation) -> Result<(Tensor, Option<Tensor>)> {
    use crate::backend::wgpu::matmul::{matmul_bias_act, MatLayout};
    use crate::backend::wgpu::tensors::{buffer, dense, wrap};
    let mat = |t: &Tensor| {
        let l = t.layout();
        MatLayout { rows: t.shape()[0], cols: t.shape()[1], offset: l.offset, batch_stride: 0, row_stride: l.strides[0], col_stride: l.strides[1] }
    };
    let (rows, out) = (x.shape()[0], w.shape()[0]);
    let bd = b.map(dense).transpose()?;
    let bias = bd.as_ref().map(|b| buffer(b, "dense")).transpose()?;
    let (y, z) = matmul_bias_act(buffer(x, "dense")?, mat(x), buffer(w, "dense")?, mat(w).t(), bias, act.unary_op(), needs_z(act))?;
    Ok((wrap(y, &[rows, out]), z.map(|z| wrap(z, &[rows, out]))))
}

/// Without the wgpu feature no tensor is on the GPU: the device ops (never reached).
#[cfg(not(feature = "wgpu"))]
fn gpu_forward(x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Activation) -> Result<(Tensor, Option<Tensor>)> {
    let mut z = x.matmul(&w.t()?)?;
    if let Some(b) = b {
        z = z.add(b)?;
    }
    Ok((act.apply(&z)?, needs_z(act).then_some(z)))
}

/// Whether σ′ needs the pre-activation `z`; relu, tanh and sigmoid read it off `y`.
fn needs_z(act: Activation) -> bool {
    !matches!(act, Activation::Identity | Activation::Relu | Activation::Tanh | Activation::Sigmoid)
}

/// (y, z): the output and, when σ′ needs it, the pre-activation.
fn forward<T: Float>(x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Activation, rows: usize, inp: usize, out: usize) -> Result<(Tensor, Option<Tensor>)> {
    let (xm, wm) = (Mat::of(x, false)?, Mat::of(w, true)?);
    let mut z = match b {
        Some(b) => {
            // the bias rows first, then the product added onto them
            let b = b.as_contiguous::<T>()?;
            let bv = b.as_slice::<T>()?;
            let mut z = Vec::with_capacity(rows * out);
            (0..rows).for_each(|_| z.extend_from_slice(bv));
            gemm_into(rows, out, inp, xm, wm, &mut z, true);
            z
        }
        None => gemm_new(rows, out, inp, xm, wm),
    };
    let Some(op) = act.unary_op() else {
        return Ok((Tensor::from_vec(z, &[rows, out])?, None));
    };
    if needs_z(act) {
        let y = unary_map(op, &z);
        return Ok((Tensor::from_vec(y, &[rows, out])?, Some(Tensor::from_vec(z, &[rows, out])?)));
    }
    unary_inplace(op, &mut z);
    Ok((Tensor::from_vec(z, &[rows, out])?, None))
}

/// The backward rule of [`linear`]'s fused op (inputs x, W and, if any, b).
#[derive(Debug)]
struct DenseBackward {
    x: Tensor,
    w: Tensor,
    y: Tensor,
    z: Option<Tensor>,
    act: Activation,
    bias: bool,
}

impl DenseBackward {
    fn run<T: Float>(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let (rows, inp) = (self.x.shape()[0], self.x.shape()[1]);
        let out = self.w.shape()[0];
        let g = g.as_contiguous::<T>()?;
        let gs = g.as_slice::<T>()?;
        // dz = g ⊙ σ′(z, y), or g itself for the identity
        let dz_own;
        let dz: &[T] = match self.act.unary_op() {
            None => gs,
            Some(op) => {
                let y = self.y.as_slice::<T>()?;
                let z = match &self.z {
                    Some(z) => z.as_slice::<T>()?,
                    None => y, // relu: y > 0 exactly where z > 0
                };
                dz_own = mul_deriv_map(op, gs, z, y);
                &dz_own
            }
        };
        let dzm = Mat { data: dz, off: 0, rs: out as isize, cs: 1 };
        let gx = if needs[0] {
            Some(Tensor::from_vec(gemm_new(rows, inp, out, dzm, Mat::of(&self.w, false)?), &[rows, inp])?)
        } else {
            None
        };
        let gw = if needs[1] {
            Some(Tensor::from_vec(gemm_new(out, inp, rows, dzm.t(), Mat::of(&self.x, false)?), &[out, inp])?)
        } else {
            None
        };
        let mut res = vec![gx, gw];
        if self.bias {
            res.push(if needs.get(2).copied().unwrap_or(false) {
                let mut s = vec![T::zero(); out];
                for r in dz.chunks_exact(out.max(1)) {
                    s.iter_mut().zip(r).for_each(|(a, &v)| *a += v);
                }
                Some(Tensor::from_vec(s, &[out])?)
            } else {
                None
            });
        }
        Ok(res)
    }
}

impl DenseBackward {
    /// The same steps as device ops (any backend): dz = g ⊙ σ′, gx = dz·W, gW = dzᵀ·x,
    /// gb = Σ_rows dz.
    fn run_device(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let g = g.cast(self.x.dtype())?;
        let dz = match self.act.unary_op() {
            None => g,
            // relu, tanh and sigmoid read σ′ off y; the others need z
            Some(op) => unary_backward(op, self.z.as_ref().unwrap_or(&self.y), &self.y, &g)?,
        };
        let gx = needs[0].then(|| dz.matmul(&self.w)).transpose()?;
        let gw = needs[1].then(|| dz.t()?.matmul(&self.x)).transpose()?;
        let mut res = vec![gx, gw];
        if self.bias {
            res.push(needs.get(2).copied().unwrap_or(false).then(|| dz.sum(Some(&[0]), false)).transpose()?);
        }
        Ok(res)
    }
}

impl Backward for DenseBackward {
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        if self.x.device() != Device::Cpu {
            return self.run_device(g, needs);
        }
        crate::dispatch!(self.x.dtype(), T => self.run::<T>(g, needs))
    }
}

