//! The device seam: every tensor op checks its arguments (device-free, in
//! [`crate::tensor`]), asks its storage's backend to compute, and records itself on the
//! tape. A backend is a storage type that implements [`BackendStorage`]: the CPU's
//! ([`CpuStorage`], kernels in `backend/cpu/`) and, with the `wgpu` feature, the GPU's
//! (`backend/wgpu/`). [`Storage`](crate::tensor::Storage) is the enum over them; its
//! methods match on the variant (static dispatch: no trait objects, nothing boxed per
//! op).
//!
//! Every kernel method has a default body that returns [`Error::Device`] naming the op
//! and the device, so a backend grows op by op and a missing kernel is an error, never
//! a panic (the shape of candle's `BackendStorage`).
//!
//! Kernels take the operands' [`Layout`]s (shape, strides, offset) and return a new
//! contiguous buffer in row-major order; shapes are already checked by the caller.
//!
//! ```
//! use flux_core::backend::{BackendStorage, UnaryOp};
//! use flux_core::tensor::{CpuStorage, Layout};
//! let x = CpuStorage::F32(vec![-1.0, 2.0]);
//! let y = x.unary(&Layout::contiguous(&[2]), UnaryOp::Relu).unwrap();
//! assert!(matches!(y, CpuStorage::F32(v) if v == vec![0.0, 2.0]));
//! ```
pub mod cpu;
#[cfg(test)]
pub(crate) mod null;
#[cfg(test)]
mod tests;
#[cfg(feature = "wgpu")]
pub mod wgpu;

use std::fmt::Debug;

use crate::error::{Error, Result};
use crate::tensor::conv::Geom;
use crate::tensor::pool::{PGeom, PoolMode};
use crate::tensor::{CpuStorage, DType, Device, Layout};

/// An elementwise function of one tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// `−x`.
    Neg,
    /// `eˣ`.
    Exp,
    /// The natural logarithm.
    Log,
    /// `√x`.
    Sqrt,
    /// `|x|`.
    Abs,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e⁻ˣ)`.
    Sigmoid,
    /// `max(0, x)`.
    Relu,
    /// `x` if `x > 0`, else `a·x`.
    LeakyRelu(f64),
    /// `x` if `x > 0`, else `α·(eˣ − 1)`.
    Elu(f64),
    /// The Gaussian error linear unit (tanh approximation).
    Gelu,
    /// `x·σ(x)`.
    Swish,
    /// `log(1 + eˣ)`, computed stably.
    Softplus,
    /// `x²`.
    Square,
    /// −1, 0 or 1.
    Sign,
}

/// An elementwise function of two broadcast tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a − b`.
    Sub,
    /// `a · b`.
    Mul,
    /// `a / b`.
    Div,
    /// `aᵇ`.
    Pow,
    /// The larger of `a` and `b` (a tie shares the gradient).
    Max,
    /// The smaller of `a` and `b` (a tie shares the gradient).
    Min,
}

/// A comparison; the result is 1.0 where it holds and 0.0 elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `a > b`.
    Gt,
    /// `a ≥ b`.
    Ge,
    /// `a < b`.
    Lt,
    /// `a ≤ b`.
    Le,
    /// `a == b`.
    Eq,
    /// `a ≠ b`.
    Ne,
}

/// A reduction over some dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// The sum.
    Sum,
    /// The maximum.
    Max,
    /// The minimum.
    Min,
}

/// One optimiser rule's fused in-place step as a backend sees it: the rule's name (as
/// `optim::build` spells it), its hyperparameters in the order the rule's file
/// declares them, and the step count. The CPU runs rules as closures through
/// `optim::kernel::elementwise`; a GPU backend implements
/// [`BackendStorage::optim_step`] by matching on `rule`.
#[derive(Clone, Copy, Debug)]
pub struct OptimStep<'a> {
    /// The rule, e.g. `"adam"`.
    pub rule: &'static str,
    /// Its hyperparameters.
    pub hyper: &'a [f64],
    /// The step number (1 on the first update).
    pub t: u64,
    /// `true`: `x ← x − dx′` (the fused update); `false`: `g ← dx′` (the pure apply).
    pub into_x: bool,
}

/// The error of a backend without a kernel for `op`.
///
/// ```
/// use flux_core::{backend::no_kernel, Device, Error};
/// let e = no_kernel(Device::Wgpu, "matmul");
/// assert!(matches!(&e, Error::Device(m) if m.contains("matmul") && m.contains("gpu")));
/// ```
pub fn no_kernel(device: Device, op: &str) -> Error {
    Error::Device(format!(
        "{op}: no kernel for the {} device yet; move the tensors to the CPU with to_device(Device::Cpu) (Python: fx.cpu)",
        device.name()
    ))
}

/// The error of an op given tensors on two devices.
pub fn mixed_devices(op: &str, a: Device, b: Device) -> Error {
    Error::Device(format!("{op}: tensors on different devices ({} and {}); move one with to_device", a.name(), b.name()))
}

/// Matrix-product dimensions: `batch` products of `[m, k] · [k, n]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulDims {
    /// Number of products (the broadcast batch dimensions, multiplied out).
    pub batch: usize,
    /// Rows of the left operand.
    pub m: usize,
    /// Columns of the right operand.
    pub n: usize,
    /// The shared dimension.
    pub k: usize,
}

/// A buffer on one device, and the kernels that device runs on it.
///
/// Required: identity ([`device`](Self::device), [`dtype`](Self::dtype),
/// [`len`](Self::len)) and the transfers ([`to_cpu`](Self::to_cpu),
/// [`from_cpu`](Self::from_cpu)). Every kernel defaults to [`no_kernel`].
///
/// Layout conventions: each operand comes with its own [`Layout`] (any strides,
/// broadcast dims have stride 0); results are contiguous row-major buffers of the
/// output shape. Two-operand kernels get operands of one dtype (the caller promotes).
pub trait BackendStorage: Sized + Clone + Debug + Send + Sync {
    /// Where the buffer lives.
    fn device(&self) -> Device;
    /// The element type.
    fn dtype(&self) -> DType;
    /// The number of elements in the buffer.
    fn len(&self) -> usize;
    /// Is the buffer empty?
    fn is_empty(&self) -> bool { self.len() == 0 }
    /// The whole buffer copied to host memory.
    fn to_cpu(&self) -> Result<CpuStorage>;
    /// A buffer on this backend's device holding `c`'s values.
    fn from_cpu(c: &CpuStorage) -> Result<Self>;
    /// `n` elements all equal to `v` (default: made on the host and uploaded).
    fn full(n: usize, v: f64, dtype: DType) -> Result<Self> { Self::from_cpu(&cpu::full(n, v, dtype)) }

    /// `f(x)` for every element of the view `l`.
    fn unary(&self, l: &Layout, op: UnaryOp) -> Result<Self> {
        let _ = (l, op);
        Err(no_kernel(self.device(), "unary"))
    }
    /// The backward of a unary op, `g · f′(x, y)`, for `x = self` and its output `y`
    /// (all three of one shape).
    fn unary_backward(&self, l: &Layout, y: &Self, yl: &Layout, g: &Self, gl: &Layout, op: UnaryOp) -> Result<Self> {
        let _ = (l, y, yl, g, gl, op);
        Err(no_kernel(self.device(), "unary backward"))
    }
    /// `a op b` with numpy broadcasting to `shape` (the operands' layouts are their own).
    fn binary(&self, l: &Layout, rhs: &Self, rl: &Layout, shape: &[usize], op: BinaryOp) -> Result<Self> {
        let _ = (l, rhs, rl, shape, op);
        Err(no_kernel(self.device(), "binary"))
    }
    /// A comparison with broadcasting to `shape`: 1.0 where it holds, 0.0 elsewhere.
    fn cmp(&self, l: &Layout, rhs: &Self, rl: &Layout, shape: &[usize], op: CmpOp) -> Result<Self> {
        let _ = (l, rhs, rl, shape, op);
        Err(no_kernel(self.device(), "compare"))
    }
    /// `self · mul + add` for every element (a mean's scaling, a scalar shift).
    fn affine(&self, l: &Layout, mul: f64, add: f64) -> Result<Self> {
        let _ = (l, mul, add);
        Err(no_kernel(self.device(), "affine"))
    }
    /// Reduce over the sorted, distinct dims `dims`; the result has `l.shape` with
    /// those dims set to 1.
    fn reduce(&self, l: &Layout, dims: &[usize], op: ReduceOp) -> Result<Self> {
        let _ = (l, dims, op);
        Err(no_kernel(self.device(), "reduce"))
    }
    /// Softmax (or logsoftmax with `log`) along `dim` of the view `l`.
    fn softmax(&self, l: &Layout, dim: usize, log: bool) -> Result<Self> {
        let _ = (l, dim, log);
        Err(no_kernel(self.device(), if log { "logsoftmax" } else { "softmax" }))
    }
    /// Batched matrix product. `l` and `rl` are already broadcast to `(batch…, m, k)`
    /// and `(batch…, k, n)`; the result is `(batch…, m, n)` row-major.
    fn matmul(&self, l: &Layout, rhs: &Self, rl: &Layout, dims: MatmulDims) -> Result<Self> {
        let _ = (l, rhs, rl, dims);
        Err(no_kernel(self.device(), "matmul"))
    }
    /// The view `l` converted to `dtype`, contiguous.
    fn cast(&self, l: &Layout, dtype: DType) -> Result<Self> {
        let _ = (l, dtype);
        Err(no_kernel(self.device(), "cast"))
    }
    /// The view `l` copied into a contiguous buffer.
    fn copy_strided(&self, l: &Layout) -> Result<Self> {
        let _ = l;
        Err(no_kernel(self.device(), "contiguous"))
    }
    /// The entries `idx` along `axis` of the view `l` (the output has `idx.len()` there).
    fn index_select(&self, l: &Layout, axis: usize, idx: &[usize]) -> Result<Self> {
        let _ = (l, axis, idx);
        Err(no_kernel(self.device(), "index_select"))
    }
    /// `out[.., idx[i], ..] += self[.., i, ..]` along `axis` into `n` zeroed slots (the
    /// backward of `index_select`).
    fn index_add(&self, l: &Layout, axis: usize, idx: &[usize], n: usize) -> Result<Self> {
        let _ = (l, axis, idx, n);
        Err(no_kernel(self.device(), "index_add"))
    }
    /// Rows `idx` of the view `l` read as `[rows, row_len]` (an embedding lookup).
    fn gather_rows(&self, l: &Layout, idx: &[usize]) -> Result<Self> {
        let _ = (l, idx);
        Err(no_kernel(self.device(), "gather"))
    }
    /// `out[idx[i]] += self[i]` row by row into `n` zeroed rows (gather's backward).
    fn scatter_add_rows(&self, l: &Layout, idx: &[usize], n: usize) -> Result<Self> {
        let _ = (l, idx, n);
        Err(no_kernel(self.device(), "scatter_add"))
    }
    /// The views `parts` joined along `axis` (all of one dtype, equal elsewhere).
    fn concat(&self, parts: &[(&Self, &Layout)], axis: usize) -> Result<Self> {
        let _ = (parts, axis);
        Err(no_kernel(self.device(), "concat"))
    }
    /// `cond ≠ 0 ? a : b` with all three broadcast to `shape` (`self` is `cond`).
    #[allow(clippy::too_many_arguments)]
    fn where_cond(&self, l: &Layout, a: &Self, al: &Layout, b: &Self, bl: &Layout, shape: &[usize]) -> Result<Self> {
        let _ = (l, a, al, b, bl, shape);
        Err(no_kernel(self.device(), "where"))
    }
    /// A convolution's forward, `small = W · cols(big)` (+ bias, then relu when `relu`):
    /// `self` is the input (n, cb, big…), `w` the weight (cs, cb / groups, k…), `bias`
    /// (cs,); all contiguous from offset 0. The result is (n, cs, small…).
    fn conv_fwd(&self, w: &Self, bias: Option<&Self>, g: &Geom, relu: bool) -> Result<Self> {
        let _ = (w, bias, g, relu);
        Err(no_kernel(self.device(), "conv"))
    }
    /// A convolution's input gradient (and a transposed convolution's forward):
    /// `self` is the output gradient (n, cs, small…), `w` the weight; the result is
    /// (n, cb, big…). Contiguous operands.
    fn conv_bwd_data(&self, w: &Self, g: &Geom) -> Result<Self> {
        let _ = (w, g);
        Err(no_kernel(self.device(), "conv backward (input)"))
    }
    /// A convolution's filter gradient, `Σₙ dy[n] · cols(x[n])ᵀ`: `self` is the input
    /// (n, cb, big…), `dy` the output gradient (n, cs, small…); the result has the
    /// weight's shape (cs, cb / groups, k…). Contiguous operands.
    fn conv_bwd_filter(&self, dy: &Self, g: &Geom) -> Result<Self> {
        let _ = (dy, g);
        Err(no_kernel(self.device(), "conv backward (filter)"))
    }
    /// Max or mean pooling of the contiguous `self` (planes, big…): the output (planes,
    /// small…) and, for max, the window winners in the backend's own encoding (read only
    /// by [`pool_bwd`](Self::pool_bwd)).
    fn pool_fwd(&self, g: &PGeom, mode: PoolMode) -> Result<(Self, Option<Self>)> {
        let _ = (g, mode);
        Err(no_kernel(self.device(), "pool"))
    }
    /// The gradient of [`pool_fwd`](Self::pool_fwd): `self` is the contiguous output
    /// gradient, `arg` the winners it returned (max); the result has the input's shape.
    fn pool_bwd(&self, arg: Option<&Self>, g: &PGeom, mode: PoolMode) -> Result<Self> {
        let _ = (arg, g, mode);
        Err(no_kernel(self.device(), "pool backward"))
    }
    /// One optimiser rule's fused in-place step. `self` is the buffer written: the
    /// parameter `x` when `step.into_x` (`x ← x − dx′`, `read` is the gradient), else
    /// the gradient (`g ← dx′`, `read` is the parameter); `states` are the rule's state
    /// arrays, updated in place. All contiguous, of one length.
    fn optim_step(&mut self, read: &Self, states: &mut [&mut Self], step: OptimStep<'_>) -> Result<()> {
        let _ = (read, states);
        Err(no_kernel(self.device(), step.rule))
    }
}
