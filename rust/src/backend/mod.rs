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
///
/// ```
/// use flux_core::{backend::UnaryOp, Tensor};
/// let x = Tensor::from_vec(vec![-1.0f64, 4.0], &[2]).unwrap();
/// assert_eq!(x.unary(UnaryOp::Relu).unwrap().to_vec_f64().unwrap(), vec![0.0, 4.0]);
/// assert_eq!(UnaryOp::Sqrt.fwd(4.0f64), 2.0);
/// ```
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
///
/// ```
/// use flux_core::{backend::BinaryOp, Tensor};
/// let a = Tensor::from_vec(vec![1.0f64, 5.0], &[2]).unwrap();
/// let b = Tensor::from_vec(vec![3.0f64], &[1]).unwrap();
/// assert_eq!(a.binary(&b, BinaryOp::Max).unwrap().to_vec_f64().unwrap(), vec![3.0, 5.0]);
/// ```
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
///
/// ```
/// use flux_core::{backend::CmpOp, Tensor};
/// let a = Tensor::from_vec(vec![1.0f64, 5.0], &[2]).unwrap();
/// let b = Tensor::from_vec(vec![5.0f64], &[1]).unwrap();
/// assert_eq!(a.compare(&b, CmpOp::Ne).unwrap().to_vec_f64().unwrap(), vec![1.0, 0.0]);
/// ```
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
///
/// ```
/// use flux_core::{backend::{BackendStorage, ReduceOp}, tensor::{CpuStorage, Layout}};
/// let s = CpuStorage::F64(vec![1.0, 5.0, 3.0, 4.0]);
/// let sums = s.reduce(&Layout::contiguous(&[2, 2]), &[0], ReduceOp::Sum).unwrap();
/// assert!(matches!(sums, CpuStorage::F64(v) if v == vec![4.0, 9.0]));
/// ```
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
///
/// ```
/// use flux_core::{backend::OptimStep, optim::{Adam, Rule}};
/// // what a GPU backend is handed for one Adam step: the rule's name and its numbers
/// let step = OptimStep { rule: "adam", hyper: &[0.9, 0.999, 0.1, 0.001, 1e-3, 1e-8], t: 1, into_x: true };
/// assert_eq!((step.rule, step.hyper.len(), Adam::default().name()), ("adam", 6, "Adam"));
/// ```
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
///
/// ```
/// use flux_core::{backend::mixed_devices, Device, Error};
/// let e = mixed_devices("add", Device::Cpu, Device::Wgpu);
/// assert!(matches!(&e, Error::Device(m) if m.contains("add") && m.contains("cpu and gpu")));
/// ```
pub fn mixed_devices(op: &str, a: Device, b: Device) -> Error {
    Error::Device(format!("{op}: tensors on different devices ({} and {}); move one with to_device", a.name(), b.name()))
}

/// Matrix-product dimensions: `batch` products of `[m, k] · [k, n]`.
///
/// ```
/// use flux_core::{backend::{BackendStorage, MatmulDims}, tensor::{CpuStorage, Layout}};
/// // two products of (1, 2)·(2, 1)
/// let a = CpuStorage::F64(vec![1.0, 2.0, 3.0, 4.0]);
/// let b = CpuStorage::F64(vec![1.0, 1.0, 2.0, 2.0]);
/// let c = a.matmul(&Layout::contiguous(&[2, 1, 2]), &b, &Layout::contiguous(&[2, 2, 1]), MatmulDims { batch: 2, m: 1, n: 1, k: 2 }).unwrap();
/// assert!(matches!(c, CpuStorage::F64(v) if v == vec![3.0, 14.0]));
/// ```
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
///
/// ```
/// use flux_core::{backend::{BackendStorage, UnaryOp}, tensor::{CpuStorage, Layout}, DType, Device};
/// // the CPU's buffers implement the seam; a GPU backend's do too
/// let x = CpuStorage::full(3, -2.0, DType::F32).unwrap();
/// assert_eq!((x.device(), x.dtype(), x.len()), (Device::Cpu, DType::F32, 3));
/// let y = x.unary(&Layout::contiguous(&[3]), UnaryOp::Abs).unwrap();
/// assert!(matches!(y.to_cpu().unwrap(), CpuStorage::F32(v) if v == vec![2.0; 3]));
/// ```
pub trait BackendStorage: Sized + Clone + Debug + Send + Sync {
    /// Where the buffer lives.
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::CpuStorage, Device};
    /// assert_eq!(BackendStorage::device(&CpuStorage::F32(vec![1.0])), Device::Cpu);
    /// ```
    fn device(&self) -> Device;
    /// The element type.
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::CpuStorage, DType};
    /// assert_eq!(BackendStorage::dtype(&CpuStorage::F64(vec![1.0])), DType::F64);
    /// ```
    fn dtype(&self) -> DType;
    /// The number of elements in the buffer.
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::CpuStorage};
    /// assert_eq!(BackendStorage::len(&CpuStorage::F64(vec![1.0, 2.0])), 2);
    /// ```
    fn len(&self) -> usize;
    /// Is the buffer empty?
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::CpuStorage};
    /// assert!(BackendStorage::is_empty(&CpuStorage::F32(vec![])));
    /// ```
    fn is_empty(&self) -> bool { self.len() == 0 }
    /// The whole buffer copied to host memory.
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::CpuStorage};
    /// assert!(matches!(CpuStorage::F32(vec![1.5]).to_cpu().unwrap(), CpuStorage::F32(v) if v == vec![1.5]));
    /// ```
    fn to_cpu(&self) -> Result<CpuStorage>;
    /// A buffer on this backend's device holding `c`'s values.
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::CpuStorage};
    /// let c = CpuStorage::F64(vec![1.0, 2.0]);
    /// assert_eq!(<CpuStorage as BackendStorage>::from_cpu(&c).unwrap().len(), 2);
    /// ```
    fn from_cpu(c: &CpuStorage) -> Result<Self>;
    /// `n` elements all equal to `v` (default: made on the host and uploaded).
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::CpuStorage, DType};
    /// assert!(matches!(<CpuStorage as BackendStorage>::full(2, 7.0, DType::F64).unwrap(), CpuStorage::F64(v) if v == vec![7.0; 2]));
    /// ```
    fn full(n: usize, v: f64, dtype: DType) -> Result<Self> { Self::from_cpu(&cpu::full(n, v, dtype)) }

    /// `f(x)` for every element of the view `l`.
    ///
    /// ```
    /// use flux_core::{backend::{BackendStorage, UnaryOp}, tensor::{CpuStorage, Layout}};
    /// let x = CpuStorage::F64(vec![1.0, 2.0, 3.0, 4.0]);
    /// // through a transposed view
    /// let t = Layout { shape: vec![2, 2], strides: vec![1, 2], offset: 0 };
    /// assert!(matches!(x.unary(&t, UnaryOp::Neg).unwrap(), CpuStorage::F64(v) if v == vec![-1.0, -3.0, -2.0, -4.0]));
    /// ```
    fn unary(&self, l: &Layout, op: UnaryOp) -> Result<Self> {
        let _ = (l, op);
        Err(no_kernel(self.device(), "unary"))
    }
    /// The backward of a unary op, `g · f′(x, y)`, for `x = self` and its output `y`
    /// (all three of one shape).
    ///
    /// ```
    /// use flux_core::{backend::{BackendStorage, UnaryOp}, tensor::{CpuStorage, Layout}};
    /// let l = Layout::contiguous(&[2]);
    /// let (x, y, g) = (CpuStorage::F64(vec![-1.0, 2.0]), CpuStorage::F64(vec![0.0, 2.0]), CpuStorage::F64(vec![5.0, 5.0]));
    /// // relu′ is 0 below zero, 1 above
    /// assert!(matches!(x.unary_backward(&l, &y, &l, &g, &l, UnaryOp::Relu).unwrap(), CpuStorage::F64(v) if v == vec![0.0, 5.0]));
    /// ```
    fn unary_backward(&self, l: &Layout, y: &Self, yl: &Layout, g: &Self, gl: &Layout, op: UnaryOp) -> Result<Self> {
        let _ = (l, y, yl, g, gl, op);
        Err(no_kernel(self.device(), "unary backward"))
    }
    /// `a op b` with numpy broadcasting to `shape` (the operands' layouts are their own).
    ///
    /// ```
    /// use flux_core::{backend::{BackendStorage, BinaryOp}, tensor::{CpuStorage, Layout}};
    /// let a = CpuStorage::F64(vec![1.0, 2.0, 3.0, 4.0]);
    /// let b = CpuStorage::F64(vec![1.0, 2.0]);
    /// // (2, 1) against (2,): broadcast to (2, 2)
    /// let c = a.binary(&Layout { shape: vec![2, 1], strides: vec![2, 1], offset: 0 }, &b, &Layout::contiguous(&[2]), &[2, 2], BinaryOp::Sub).unwrap();
    /// assert!(matches!(c, CpuStorage::F64(v) if v == vec![0.0, -1.0, 2.0, 1.0]));
    /// ```
    fn binary(&self, l: &Layout, rhs: &Self, rl: &Layout, shape: &[usize], op: BinaryOp) -> Result<Self> {
        let _ = (l, rhs, rl, shape, op);
        Err(no_kernel(self.device(), "binary"))
    }
    /// A comparison with broadcasting to `shape`: 1.0 where it holds, 0.0 elsewhere.
    ///
    /// ```
    /// use flux_core::{backend::{BackendStorage, CmpOp}, tensor::{CpuStorage, Layout}};
    /// let (a, b) = (CpuStorage::F32(vec![1.0, 2.0]), CpuStorage::F32(vec![2.0, 2.0]));
    /// let l = Layout::contiguous(&[2]);
    /// assert!(matches!(a.cmp(&l, &b, &l, &[2], CmpOp::Le).unwrap(), CpuStorage::F32(v) if v == vec![1.0, 1.0]));
    /// ```
    fn cmp(&self, l: &Layout, rhs: &Self, rl: &Layout, shape: &[usize], op: CmpOp) -> Result<Self> {
        let _ = (l, rhs, rl, shape, op);
        Err(no_kernel(self.device(), "compare"))
    }
    /// `self · mul + add` for every element (a mean's scaling, a scalar shift).
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::{CpuStorage, Layout}};
    /// let x = CpuStorage::F64(vec![2.0, 4.0]);
    /// assert!(matches!(x.affine(&Layout::contiguous(&[2]), 0.5, -1.0).unwrap(), CpuStorage::F64(v) if v == vec![0.0, 1.0]));
    /// ```
    fn affine(&self, l: &Layout, mul: f64, add: f64) -> Result<Self> {
        let _ = (l, mul, add);
        Err(no_kernel(self.device(), "affine"))
    }
    /// Reduce over the sorted, distinct dims `dims`; the result has `l.shape` with
    /// those dims set to 1.
    ///
    /// ```
    /// use flux_core::{backend::{BackendStorage, ReduceOp}, tensor::{CpuStorage, Layout}};
    /// let x = CpuStorage::F64(vec![1.0, 5.0, 3.0, 4.0]);
    /// assert!(matches!(x.reduce(&Layout::contiguous(&[2, 2]), &[0, 1], ReduceOp::Min).unwrap(), CpuStorage::F64(v) if v == vec![1.0]));
    /// ```
    fn reduce(&self, l: &Layout, dims: &[usize], op: ReduceOp) -> Result<Self> {
        let _ = (l, dims, op);
        Err(no_kernel(self.device(), "reduce"))
    }
    /// Softmax (or logsoftmax with `log`) along `dim` of the view `l`.
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::{CpuStorage, Layout}};
    /// let x = CpuStorage::F64(vec![0.0, 0.0]);
    /// let p = x.softmax(&Layout::contiguous(&[2]), 0, true).unwrap(); // log-softmax
    /// assert!(matches!(p, CpuStorage::F64(v) if v.iter().all(|l| (l + 2f64.ln()).abs() < 1e-15)));
    /// ```
    fn softmax(&self, l: &Layout, dim: usize, log: bool) -> Result<Self> {
        let _ = (l, dim, log);
        Err(no_kernel(self.device(), if log { "logsoftmax" } else { "softmax" }))
    }
    /// Batched matrix product. `l` and `rl` are already broadcast to `(batch…, m, k)`
    /// and `(batch…, k, n)`; the result is `(batch…, m, n)` row-major.
    ///
    /// ```
    /// use flux_core::{backend::{BackendStorage, MatmulDims}, tensor::{CpuStorage, Layout}};
    /// let a = CpuStorage::F32(vec![1.0, 2.0, 3.0, 4.0]);
    /// let l = Layout::contiguous(&[2, 2]);
    /// let t = Layout { shape: vec![2, 2], strides: vec![1, 2], offset: 0 }; // aᵀ, read in place
    /// let c = a.matmul(&t, &a, &l, MatmulDims { batch: 1, m: 2, n: 2, k: 2 }).unwrap();
    /// assert!(matches!(c, CpuStorage::F32(v) if v == vec![10.0, 14.0, 14.0, 20.0]));
    /// ```
    fn matmul(&self, l: &Layout, rhs: &Self, rl: &Layout, dims: MatmulDims) -> Result<Self> {
        let _ = (l, rhs, rl, dims);
        Err(no_kernel(self.device(), "matmul"))
    }
    /// The view `l` converted to `dtype`, contiguous.
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::{CpuStorage, Layout}, DType};
    /// let x = CpuStorage::F32(vec![0.5, 1.5]);
    /// assert!(matches!(x.cast(&Layout::contiguous(&[2]), DType::F64).unwrap(), CpuStorage::F64(v) if v == vec![0.5, 1.5]));
    /// ```
    fn cast(&self, l: &Layout, dtype: DType) -> Result<Self> {
        let _ = (l, dtype);
        Err(no_kernel(self.device(), "cast"))
    }
    /// The view `l` copied into a contiguous buffer.
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::{CpuStorage, Layout}};
    /// let x = CpuStorage::F64(vec![1.0, 2.0, 3.0, 4.0]);
    /// // every other element, from the second
    /// let v = Layout { shape: vec![2], strides: vec![2], offset: 1 };
    /// assert!(matches!(x.copy_strided(&v).unwrap(), CpuStorage::F64(v) if v == vec![2.0, 4.0]));
    /// ```
    fn copy_strided(&self, l: &Layout) -> Result<Self> {
        let _ = l;
        Err(no_kernel(self.device(), "contiguous"))
    }
    /// The entries `idx` along `axis` of the view `l` (the output has `idx.len()` there).
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::{CpuStorage, Layout}};
    /// let x = CpuStorage::F64(vec![1.0, 2.0, 3.0, 4.0]);
    /// let rows = x.index_select(&Layout::contiguous(&[2, 2]), 0, &[1, 1]).unwrap();
    /// assert!(matches!(rows, CpuStorage::F64(v) if v == vec![3.0, 4.0, 3.0, 4.0]));
    /// ```
    fn index_select(&self, l: &Layout, axis: usize, idx: &[usize]) -> Result<Self> {
        let _ = (l, axis, idx);
        Err(no_kernel(self.device(), "index_select"))
    }
    /// `out[.., idx[i], ..] += self[.., i, ..]` along `axis` into `n` zeroed slots (the
    /// backward of `index_select`).
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::{CpuStorage, Layout}};
    /// let g = CpuStorage::F64(vec![1.0, 2.0, 3.0, 4.0]);
    /// // the rows of g added into row 1 of a zeroed (2, 2)
    /// let out = g.index_add(&Layout::contiguous(&[2, 2]), 0, &[1, 1], 2).unwrap();
    /// assert!(matches!(out, CpuStorage::F64(v) if v == vec![0.0, 0.0, 4.0, 6.0]));
    /// ```
    fn index_add(&self, l: &Layout, axis: usize, idx: &[usize], n: usize) -> Result<Self> {
        let _ = (l, axis, idx, n);
        Err(no_kernel(self.device(), "index_add"))
    }
    /// Rows `idx` of the view `l` read as `[rows, row_len]` (an embedding lookup).
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::{CpuStorage, Layout}};
    /// // the CPU looks rows up in its embedding kernel: its buffers keep the default
    /// let table = CpuStorage::F32(vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5]); // 3 rows of 2
    /// let e = table.gather_rows(&Layout::contiguous(&[3, 2]), &[2, 0]);
    /// assert!(matches!(e, Err(flux_core::Error::Device(m)) if m.contains("gather")));
    /// ```
    fn gather_rows(&self, l: &Layout, idx: &[usize]) -> Result<Self> {
        let _ = (l, idx);
        Err(no_kernel(self.device(), "gather"))
    }
    /// `out[idx[i]] += self[i]` row by row into `n` zeroed rows (gather's backward).
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::{CpuStorage, Layout}};
    /// let g = CpuStorage::F32(vec![1.0, 1.0, 2.0, 2.0]); // two rows of 2
    /// // the CPU's embedding backward is its own kernel: its buffers keep the default
    /// let dt = g.scatter_add_rows(&Layout::contiguous(&[2, 2]), &[2, 2], 3);
    /// assert!(matches!(dt, Err(flux_core::Error::Device(m)) if m.contains("scatter_add")));
    /// ```
    fn scatter_add_rows(&self, l: &Layout, idx: &[usize], n: usize) -> Result<Self> {
        let _ = (l, idx, n);
        Err(no_kernel(self.device(), "scatter_add"))
    }
    /// The views `parts` joined along `axis` (all of one dtype, equal elsewhere).
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::{CpuStorage, Layout}};
    /// let (a, b) = (CpuStorage::F64(vec![1.0, 2.0]), CpuStorage::F64(vec![3.0, 4.0]));
    /// let l = Layout::contiguous(&[2, 1]);
    /// // `self` only names the backend; the parts are joined along axis 1
    /// let c = a.concat(&[(&a, &l), (&b, &l)], 1).unwrap();
    /// assert!(matches!(c, CpuStorage::F64(v) if v == vec![1.0, 3.0, 2.0, 4.0]));
    /// ```
    fn concat(&self, parts: &[(&Self, &Layout)], axis: usize) -> Result<Self> {
        let _ = (parts, axis);
        Err(no_kernel(self.device(), "concat"))
    }
    /// `cond ≠ 0 ? a : b` with all three broadcast to `shape` (`self` is `cond`).
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::{CpuStorage, Layout}};
    /// let c = CpuStorage::F64(vec![1.0, 0.0, 1.0]);
    /// let (a, b) = (CpuStorage::F64(vec![1.0, 2.0, 3.0]), CpuStorage::F64(vec![0.0]));
    /// let (l, s) = (Layout::contiguous(&[3]), Layout::contiguous(&[1]));
    /// assert!(matches!(c.where_cond(&l, &a, &l, &b, &s, &[3]).unwrap(), CpuStorage::F64(v) if v == vec![1.0, 0.0, 3.0]));
    /// ```
    #[allow(clippy::too_many_arguments)]
    fn where_cond(&self, l: &Layout, a: &Self, al: &Layout, b: &Self, bl: &Layout, shape: &[usize]) -> Result<Self> {
        let _ = (l, a, al, b, bl, shape);
        Err(no_kernel(self.device(), "where"))
    }
    /// A convolution's forward, `small = W · cols(big)` (+ bias, then relu when `relu`):
    /// `self` is the input (n, cb, big…), `w` the weight (cs, cb / groups, k…), `bias`
    /// (cs,); all contiguous from offset 0. The result is (n, cs, small…).
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::{conv::Geom, CpuStorage}};
    /// // a 1-D convolution of length 3 with a window of 2 (spatial sizes padded to three)
    /// let g = Geom { n: 1, cb: 1, cs: 1, groups: 1, big: [1, 1, 3], small: [1, 1, 2], k: [1, 1, 2], stride: [1; 3], pad: [0; 3], dil: [1; 3] };
    /// // the CPU convolves in tensor::conv (im2col and GEMM): its buffers keep the default
    /// let x = CpuStorage::F32(vec![1.0, 2.0, 3.0]);
    /// assert!(x.conv_fwd(&CpuStorage::F32(vec![1.0, 1.0]), None, &g, false).is_err());
    /// ```
    fn conv_fwd(&self, w: &Self, bias: Option<&Self>, g: &Geom, relu: bool) -> Result<Self> {
        let _ = (w, bias, g, relu);
        Err(no_kernel(self.device(), "conv"))
    }
    /// A convolution's input gradient (and a transposed convolution's forward):
    /// `self` is the output gradient (n, cs, small…), `w` the weight; the result is
    /// (n, cb, big…). Contiguous operands.
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::{conv::Geom, CpuStorage}};
    /// let g = Geom { n: 1, cb: 1, cs: 1, groups: 1, big: [1, 1, 3], small: [1, 1, 2], k: [1, 1, 2], stride: [1; 3], pad: [0; 3], dil: [1; 3] };
    /// let dy = CpuStorage::F32(vec![1.0, 1.0]);
    /// assert!(dy.conv_bwd_data(&CpuStorage::F32(vec![1.0, 1.0]), &g).is_err()); // a GPU backend's kernel
    /// ```
    fn conv_bwd_data(&self, w: &Self, g: &Geom) -> Result<Self> {
        let _ = (w, g);
        Err(no_kernel(self.device(), "conv backward (input)"))
    }
    /// A convolution's filter gradient, `Σₙ dy[n] · cols(x[n])ᵀ`: `self` is the input
    /// (n, cb, big…), `dy` the output gradient (n, cs, small…); the result has the
    /// weight's shape (cs, cb / groups, k…). Contiguous operands.
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::{conv::Geom, CpuStorage}};
    /// let g = Geom { n: 1, cb: 1, cs: 1, groups: 1, big: [1, 1, 3], small: [1, 1, 2], k: [1, 1, 2], stride: [1; 3], pad: [0; 3], dil: [1; 3] };
    /// let x = CpuStorage::F32(vec![1.0, 2.0, 3.0]);
    /// assert!(x.conv_bwd_filter(&CpuStorage::F32(vec![1.0, 1.0]), &g).is_err()); // a GPU backend's kernel
    /// ```
    fn conv_bwd_filter(&self, dy: &Self, g: &Geom) -> Result<Self> {
        let _ = (dy, g);
        Err(no_kernel(self.device(), "conv backward (filter)"))
    }
    /// Max or mean pooling of the contiguous `self` (planes, big…): the output (planes,
    /// small…) and, for max, the window winners in the backend's own encoding (read only
    /// by [`pool_bwd`](Self::pool_bwd)).
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::{pool::{PGeom, PoolMode}, CpuStorage}};
    /// let g = PGeom { planes: 1, big: [1, 1, 4], small: [1, 1, 2], k: [1, 1, 2], stride: [1, 1, 2], pad: [0; 3] };
    /// // the CPU pools in tensor::pool: its buffers keep the default
    /// assert!(CpuStorage::F32(vec![1.0, 3.0, 2.0, 6.0]).pool_fwd(&g, PoolMode::Max).is_err());
    /// ```
    fn pool_fwd(&self, g: &PGeom, mode: PoolMode) -> Result<(Self, Option<Self>)> {
        let _ = (g, mode);
        Err(no_kernel(self.device(), "pool"))
    }
    /// The gradient of [`pool_fwd`](Self::pool_fwd): `self` is the contiguous output
    /// gradient, `arg` the winners it returned (max); the result has the input's shape.
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::{pool::{PGeom, PoolMode}, CpuStorage}};
    /// let g = PGeom { planes: 1, big: [1, 1, 4], small: [1, 1, 2], k: [1, 1, 2], stride: [1, 1, 2], pad: [0; 3] };
    /// assert!(CpuStorage::F32(vec![1.0, 1.0]).pool_bwd(None, &g, PoolMode::Mean).is_err()); // a GPU backend's kernel
    /// ```
    fn pool_bwd(&self, arg: Option<&Self>, g: &PGeom, mode: PoolMode) -> Result<Self> {
        let _ = (arg, g, mode);
        Err(no_kernel(self.device(), "pool backward"))
    }
    /// `min(max(x, lo), hi)` for every element of the view `l` (NaN passes through).
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::{CpuStorage, Layout}};
    /// let y = CpuStorage::F32(vec![-2.0, 0.5, f32::NAN, 9.0]).clamp(&Layout::contiguous(&[4]), -1.0, 1.0).unwrap();
    /// assert!(matches!(y, CpuStorage::F32(v) if v[..2] == [-1.0, 0.5] && v[2].is_nan() && v[3] == 1.0));
    /// ```
    fn clamp(&self, l: &Layout, lo: f64, hi: f64) -> Result<Self> {
        let _ = (l, lo, hi);
        Err(no_kernel(self.device(), "clamp"))
    }
    /// For each row of the view `l` along its last dim, the index of its largest value
    /// (the first on ties; NaN counts as the largest). Indices come back to the host.
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::{CpuStorage, Layout}};
    /// let x = CpuStorage::F64(vec![1.0, 3.0, 3.0, f64::NAN, 0.0, 2.0]);
    /// assert_eq!(x.argmax_last(&Layout::contiguous(&[2, 3])).unwrap(), vec![1, 0]);
    /// ```
    fn argmax_last(&self, l: &Layout) -> Result<Vec<usize>> {
        let _ = l;
        Err(no_kernel(self.device(), "argmax"))
    }
    /// `n` zeros with the view `l` of `self` written at the positions of `dst` (a view
    /// of the same shape into the `n` elements, no two positions equal): the backward of
    /// slicing.
    ///
    /// ```
    /// use flux_core::{backend::BackendStorage, tensor::{CpuStorage, Layout}};
    /// // the gradient of x[1::2] for a 4-element x: zeros except at positions 1 and 3
    /// let dst = Layout { shape: vec![2], strides: vec![2], offset: 1 };
    /// let g = CpuStorage::F64(vec![5.0, 6.0]).scatter_strided(&Layout::contiguous(&[2]), 4, &dst).unwrap();
    /// assert!(matches!(g, CpuStorage::F64(v) if v == vec![0.0, 5.0, 0.0, 6.0]));
    /// ```
    fn scatter_strided(&self, l: &Layout, n: usize, dst: &Layout) -> Result<Self> {
        let _ = (l, n, dst);
        Err(no_kernel(self.device(), "slice backward"))
    }
    /// One optimiser rule's fused in-place step. `self` is the buffer written: the
    /// parameter `x` when `step.into_x` (`x ← x − dx′`, `read` is the gradient), else
    /// the gradient (`g ← dx′`, `read` is the parameter); `states` are the rule's state
    /// arrays, updated in place. All contiguous, of one length.
    ///
    /// ```
    /// use flux_core::{backend::{BackendStorage, OptimStep}, tensor::CpuStorage, Error};
    /// // the CPU steps rules through optim::kernel::elementwise, so its buffers have no kernel here
    /// let mut x = CpuStorage::F32(vec![1.0]);
    /// let step = OptimStep { rule: "descent", hyper: &[0.1], t: 1, into_x: true };
    /// assert!(matches!(x.optim_step(&CpuStorage::F32(vec![1.0]), &mut [], step), Err(Error::Device(_))));
    /// ```
    fn optim_step(&mut self, read: &Self, states: &mut [&mut Self], step: OptimStep<'_>) -> Result<()> {
        let _ = (read, states);
        Err(no_kernel(self.device(), step.rule))
    }
}
