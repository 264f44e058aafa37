//! Where a tensor's numbers live. Storage is shared through an `Arc`; writers call
//! `Arc::make_mut`, so a uniquely owned buffer is updated in place and a shared one is
//! copied first (copy-on-write).
//!
//! [`Storage`] is the enum over the backends' buffers; each of its kernel methods
//! matches on the variant and calls that backend's
//! [`BackendStorage`] method (static dispatch). Two
//! operands on different devices are an [`Error::Device`] naming both.
use super::conv::Geom;
use super::dtype::DType;
use super::pool::{PGeom, PoolMode};
use super::layout::Layout;
use crate::backend::{mixed_devices, BackendStorage, BinaryOp, CmpOp, MatmulDims, ReduceOp, UnaryOp};
use crate::error::{Error, Result};

/// The device a storage lives on.
///
/// `Wgpu` is always a variant (so code matching on devices needs no `cfg`); tensors can
/// only be put there when the crate is built with the `wgpu` feature and an adapter is
/// found, see [`Device::wgpu`].
///
/// ```
/// use flux_core::Device;
/// assert_eq!(Device::Cpu.name(), "cpu");
/// assert_eq!(Device::Wgpu.name(), "gpu");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// Host memory.
    Cpu,
    /// A GPU through wgpu (Vulkan, Metal, DX12 or GL).
    Wgpu,
}

/// Names and the GPU's lookup.
///
/// ```
/// use flux_core::Device;
/// assert_eq!(Device::Cpu.to_string(), Device::Cpu.name());
/// ```
impl Device {
    /// The name Python shows (`Tensor.device`): `"cpu"` or `"gpu"`.
    ///
    /// ```
    /// use flux_core::Device;
    /// assert_eq!((Device::Cpu.name(), Device::Wgpu.name()), ("cpu", "gpu"));
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Wgpu => "gpu",
        }
    }
    /// The GPU, if this build has the `wgpu` feature and an adapter can be had.
    ///
    /// ```
    /// // without the feature (or without an adapter) this is an Error::Device, never a panic
    /// match flux_core::Device::wgpu() {
    ///     Ok(d) => assert_eq!(d.name(), "gpu"),
    ///     Err(e) => assert!(matches!(e, flux_core::Error::Device(_))),
    /// }
    /// ```
    pub fn wgpu() -> Result<Device> {
        #[cfg(feature = "wgpu")]
        {
            crate::backend::wgpu::available()?;
            Ok(Device::Wgpu)
        }
        #[cfg(not(feature = "wgpu"))]
        Err(Error::Device("no GPU: flux-core was built without the wgpu feature".into()))
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.name()) }
}

/// A host buffer of one dtype.
///
/// ```
/// use flux_core::{tensor::CpuStorage, DType};
/// let s = CpuStorage::F64(vec![1.0, 2.0]);
/// assert_eq!((s.dtype(), s.len()), (DType::F64, 2));
/// ```
#[derive(Clone, Debug)]
pub enum CpuStorage {
    /// f32 elements.
    F32(Vec<f32>),
    /// f64 elements.
    F64(Vec<f64>),
}

/// What a host buffer holds.
///
/// ```
/// use flux_core::tensor::CpuStorage;
/// assert!(CpuStorage::F32(vec![]).is_empty());
/// ```
impl CpuStorage {
    /// The element type.
    ///
    /// ```
    /// use flux_core::{tensor::CpuStorage, DType};
    /// assert_eq!(CpuStorage::F32(vec![0.0]).dtype(), DType::F32);
    /// ```
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
        }
    }
    /// The number of elements.
    ///
    /// ```
    /// use flux_core::tensor::CpuStorage;
    /// assert_eq!(CpuStorage::F32(vec![0.0; 3]).len(), 3);
    /// ```
    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
        }
    }
    /// Does it hold no elements?
    ///
    /// ```
    /// use flux_core::tensor::CpuStorage;
    /// assert!(CpuStorage::F64(vec![]).is_empty() && !CpuStorage::F64(vec![1.0]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool { self.len() == 0 }
}

/// A buffer on some device.
///
/// ```
/// use flux_core::{tensor::{CpuStorage, Storage}, Device};
/// let s = Storage::Cpu(CpuStorage::F32(vec![1.0, 2.0]));
/// assert_eq!((s.device(), s.len()), (Device::Cpu, 2));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Storage {
    /// A host buffer.
    Cpu(CpuStorage),
    /// A GPU buffer.
    #[cfg(feature = "wgpu")]
    Wgpu(crate::backend::wgpu::WgpuStorage),
    /// A device with transfers and no kernels (tests of the seam's errors).
    #[cfg(test)]
    Null(crate::backend::null::NullStorage),
}

/// `$body` with `$s` bound to the backend storage inside `$x`, its result wrapped in
/// the same variant (one arm per backend; the CPU's is the only one without a feature).
macro_rules! each {
    ($x:expr, |$s:ident| $body:expr) => {
        match $x {
            Storage::Cpu($s) => Storage::Cpu($body),
            #[cfg(feature = "wgpu")]
            Storage::Wgpu($s) => Storage::Wgpu($body),
            #[cfg(test)]
            Storage::Null($s) => Storage::Null($body),
        }
    };
}
/// Like [`each!`] for two operands that must share a device.
macro_rules! each2 {
    ($op:expr, $x:expr, $y:expr, |$a:ident, $b:ident| $body:expr) => {
        match ($x, $y) {
            (Storage::Cpu($a), Storage::Cpu($b)) => Storage::Cpu($body),
            #[cfg(feature = "wgpu")]
            (Storage::Wgpu($a), Storage::Wgpu($b)) => Storage::Wgpu($body),
            #[cfg(test)]
            (Storage::Null($a), Storage::Null($b)) => Storage::Null($body),
            #[allow(unreachable_patterns)]
            (a, b) => return Err(mixed_devices($op, a.device(), b.device())),
        }
    };
}

/// A backend's buffer type as one variant of [`Storage`] (to take an extra operand out
/// of the same variant as the first).
trait Variant: BackendStorage {
    fn of(s: &Storage) -> Option<&Self>;
}
impl Variant for CpuStorage {
    fn of(s: &Storage) -> Option<&Self> {
        #[allow(unreachable_patterns)]
        match s {
            Storage::Cpu(c) => Some(c),
            _ => None,
        }
    }
}
#[cfg(feature = "wgpu")]
impl Variant for crate::backend::wgpu::WgpuStorage {
    fn of(s: &Storage) -> Option<&Self> {
        match s {
            Storage::Wgpu(c) => Some(c),
            _ => None,
        }
    }
}
#[cfg(test)]
impl Variant for crate::backend::null::NullStorage {
    fn of(s: &Storage) -> Option<&Self> {
        match s {
            Storage::Null(c) => Some(c),
            _ => None,
        }
    }
}

/// The optional operand `o` as a buffer of `like`'s backend, or the error of mixed devices.
fn same_opt<'a, S: Variant>(op: &str, like: &S, o: Option<&'a Storage>) -> Result<Option<&'a S>> {
    match o {
        None => Ok(None),
        Some(o) => S::of(o).map(Some).ok_or_else(|| mixed_devices(op, like.device(), o.device())),
    }
}

/// Queries, transfers, and one method per kernel of [`BackendStorage`], each dispatched
/// to the buffer's backend (two buffers on different devices are an error).
///
/// ```
/// use flux_core::{tensor::{CpuStorage, Layout, Storage}, backend::UnaryOp};
/// let s = Storage::Cpu(CpuStorage::F64(vec![-1.0, 2.0]));
/// let y = s.unary(&Layout::contiguous(&[2]), UnaryOp::Abs).unwrap();
/// assert!(matches!(y.cpu().unwrap(), CpuStorage::F64(v) if v == &[1.0, 2.0]));
/// ```
impl Storage {
    /// Where the buffer lives.
    ///
    /// ```
    /// use flux_core::{tensor::{CpuStorage, Storage}, Device};
    /// assert_eq!(Storage::Cpu(CpuStorage::F32(vec![])).device(), Device::Cpu);
    /// ```
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
            #[cfg(feature = "wgpu")]
            Storage::Wgpu(s) => s.device(),
            #[cfg(test)]
            Storage::Null(s) => s.device(),
        }
    }
    /// The element type.
    ///
    /// ```
    /// use flux_core::{tensor::{CpuStorage, Storage}, DType};
    /// assert_eq!(Storage::Cpu(CpuStorage::F64(vec![1.0])).dtype(), DType::F64);
    /// ```
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(c) => c.dtype(),
            #[cfg(feature = "wgpu")]
            Storage::Wgpu(s) => s.dtype(),
            #[cfg(test)]
            Storage::Null(s) => s.dtype(),
        }
    }
    /// The number of elements in the buffer.
    ///
    /// ```
    /// use flux_core::tensor::{CpuStorage, Storage};
    /// assert_eq!(Storage::Cpu(CpuStorage::F64(vec![1.0; 4])).len(), 4);
    /// ```
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(c) => c.len(),
            #[cfg(feature = "wgpu")]
            Storage::Wgpu(s) => s.len(),
            #[cfg(test)]
            Storage::Null(s) => s.len(),
        }
    }
    /// Does the buffer hold no elements?
    ///
    /// ```
    /// use flux_core::tensor::{CpuStorage, Storage};
    /// assert!(Storage::Cpu(CpuStorage::F64(vec![])).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool { self.len() == 0 }
    /// The host buffer; an [`Error::Device`] when the buffer is on another device (the
    /// CPU-only paths read memory through this, so they refuse GPU tensors instead of
    /// panicking or copying behind the caller's back).
    ///
    /// ```
    /// use flux_core::tensor::{CpuStorage, Storage};
    /// let s = Storage::Cpu(CpuStorage::F32(vec![1.0]));
    /// assert!(matches!(s.cpu().unwrap(), CpuStorage::F32(v) if v == &[1.0]));
    /// ```
    #[inline]
    pub fn cpu(&self) -> Result<&CpuStorage> {
        match self {
            Storage::Cpu(c) => Ok(c),
            #[allow(unreachable_patterns)]
            other => Err(host_only(other.device())),
        }
    }
    /// The host buffer, mutably (see [`Storage::cpu`]).
    ///
    /// ```
    /// use flux_core::tensor::{CpuStorage, Storage};
    /// let mut s = Storage::Cpu(CpuStorage::F32(vec![1.0]));
    /// if let CpuStorage::F32(v) = s.cpu_mut().unwrap() { v[0] = 2.0 }
    /// assert!(matches!(s.cpu().unwrap(), CpuStorage::F32(v) if v == &[2.0]));
    /// ```
    #[inline]
    pub fn cpu_mut(&mut self) -> Result<&mut CpuStorage> {
        match self {
            Storage::Cpu(c) => Ok(c),
            #[allow(unreachable_patterns)]
            other => Err(host_only(other.device())),
        }
    }
    /// The whole buffer copied to host memory.
    ///
    /// ```
    /// use flux_core::tensor::{CpuStorage, Storage};
    /// let s = Storage::Cpu(CpuStorage::F64(vec![1.0, 2.0]));
    /// assert!(matches!(s.to_cpu().unwrap(), CpuStorage::F64(v) if v == vec![1.0, 2.0]));
    /// ```
    pub fn to_cpu(&self) -> Result<CpuStorage> {
        match self {
            Storage::Cpu(c) => Ok(c.clone()),
            #[cfg(feature = "wgpu")]
            Storage::Wgpu(s) => s.to_cpu(),
            #[cfg(test)]
            Storage::Null(s) => s.to_cpu(),
        }
    }
    /// `c` put on `device`.
    ///
    /// ```
    /// use flux_core::{tensor::{CpuStorage, Storage}, Device};
    /// let s = Storage::from_cpu(CpuStorage::F32(vec![1.0]), Device::Cpu).unwrap();
    /// assert_eq!(s.device(), Device::Cpu);
    /// // on the GPU when there is one (the `wgpu` feature and an adapter), an error otherwise
    /// match Storage::from_cpu(CpuStorage::F32(vec![1.0]), Device::Wgpu) {
    ///     Ok(g) => assert_eq!(g.to_cpu().unwrap().len(), 1),
    ///     Err(e) => assert!(matches!(e, flux_core::Error::Device(_))),
    /// }
    /// ```
    pub fn from_cpu(c: CpuStorage, device: Device) -> Result<Storage> {
        match device {
            Device::Cpu => Ok(Storage::Cpu(c)),
            #[cfg(feature = "wgpu")]
            Device::Wgpu => Ok(Storage::Wgpu(crate::backend::wgpu::WgpuStorage::from_cpu(&c)?)),
            #[cfg(not(feature = "wgpu"))]
            Device::Wgpu => Device::wgpu().map(|_| unreachable!("wgpu() errs without the feature")),
        }
    }
    /// `n` elements equal to `v` on `device`.
    ///
    /// ```
    /// use flux_core::{tensor::{CpuStorage, Storage}, DType, Device};
    /// let s = Storage::full(3, 2.0, DType::F32, Device::Cpu).unwrap();
    /// assert!(matches!(s.cpu().unwrap(), CpuStorage::F32(v) if v == &[2.0; 3]));
    /// ```
    pub fn full(n: usize, v: f64, dtype: DType, device: Device) -> Result<Storage> {
        match device {
            Device::Cpu => Ok(Storage::Cpu(crate::backend::cpu::full(n, v, dtype))),
            #[cfg(feature = "wgpu")]
            Device::Wgpu => Ok(Storage::Wgpu(crate::backend::wgpu::WgpuStorage::full(n, v, dtype)?)),
            #[cfg(not(feature = "wgpu"))]
            Device::Wgpu => Device::wgpu().map(|_| unreachable!("wgpu() errs without the feature")),
        }
    }

    /// `n` elements equal to `v` on this storage's device (made by its backend).
    ///
    /// ```
    /// use flux_core::{tensor::{CpuStorage, Storage}, DType, Device};
    /// let s = Storage::Cpu(CpuStorage::F32(vec![1.0]));
    /// let z = s.full_like(2, 0.0, DType::F64).unwrap();
    /// assert_eq!((z.device(), z.dtype(), z.len()), (Device::Cpu, DType::F64, 2));
    /// ```
    pub fn full_like(&self, n: usize, v: f64, dtype: DType) -> Result<Storage> {
        fn full_as<S: BackendStorage>(_: &S, n: usize, v: f64, dtype: DType) -> Result<S> { S::full(n, v, dtype) }
        Ok(each!(self, |s| full_as(s, n, v, dtype)?))
    }

    // ---- kernels: one line each, through the backend ------------------------------

    /// See [`BackendStorage::unary`].
    ///
    /// ```
    /// use flux_core::{tensor::{CpuStorage, Layout, Storage}, backend::UnaryOp};
    /// let s = Storage::Cpu(CpuStorage::F64(vec![1.0, -2.0]));
    /// let y = s.unary(&Layout::contiguous(&[2]), UnaryOp::Neg).unwrap();
    /// assert!(matches!(y.cpu().unwrap(), CpuStorage::F64(v) if v == &[-1.0, 2.0]));
    /// ```
    #[inline]
    pub fn unary(&self, l: &Layout, op: UnaryOp) -> Result<Storage> { Ok(each!(self, |s| s.unary(l, op)?)) }
    /// See [`BackendStorage::unary_backward`].
    ///
    /// ```
    /// use flux_core::{tensor::{CpuStorage, Layout, Storage}, backend::UnaryOp};
    /// let l = Layout::contiguous(&[2]);
    /// let x = Storage::Cpu(CpuStorage::F64(vec![3.0, -1.0]));
    /// let y = x.unary(&l, UnaryOp::Square).unwrap();
    /// let g = Storage::Cpu(CpuStorage::F64(vec![1.0, 1.0]));
    /// let dx = x.unary_backward(&l, &y, &l, &g, &l, UnaryOp::Square).unwrap(); // 2x
    /// assert!(matches!(dx.cpu().unwrap(), CpuStorage::F64(v) if v == &[6.0, -2.0]));
    /// ```
    pub fn unary_backward(&self, l: &Layout, y: &Storage, yl: &Layout, g: &Storage, gl: &Layout, op: UnaryOp) -> Result<Storage> {
        let name = "unary backward";
        if y.device() != self.device() {
            return Err(mixed_devices(name, self.device(), y.device()));
        }
        Ok(match (self, y, g) {
            (Storage::Cpu(x), Storage::Cpu(y), Storage::Cpu(g)) => Storage::Cpu(x.unary_backward(l, y, yl, g, gl, op)?),
            #[cfg(feature = "wgpu")]
            (Storage::Wgpu(x), Storage::Wgpu(y), Storage::Wgpu(g)) => Storage::Wgpu(x.unary_backward(l, y, yl, g, gl, op)?),
            #[cfg(test)]
            (Storage::Null(x), Storage::Null(y), Storage::Null(g)) => Storage::Null(x.unary_backward(l, y, yl, g, gl, op)?),
            #[allow(unreachable_patterns)]
            (x, _, g) => return Err(mixed_devices(name, x.device(), g.device())),
        })
    }
    /// See [`BackendStorage::binary`].
    ///
    /// ```
    /// use flux_core::{tensor::{CpuStorage, Layout, Storage}, backend::BinaryOp};
    /// let a = Storage::Cpu(CpuStorage::F64(vec![1.0, 2.0, 3.0, 4.0]));
    /// let b = Storage::Cpu(CpuStorage::F64(vec![10.0, 20.0]));
    /// let c = a.binary(&Layout::contiguous(&[2, 2]), &b, &Layout::contiguous(&[2]), &[2, 2], BinaryOp::Mul).unwrap();
    /// assert!(matches!(c.cpu().unwrap(), CpuStorage::F64(v) if v == &[10.0, 40.0, 30.0, 80.0]));
    /// ```
    #[inline]
    pub fn binary(&self, l: &Layout, rhs: &Storage, rl: &Layout, shape: &[usize], op: BinaryOp) -> Result<Storage> {
        Ok(each2!("binary", self, rhs, |a, b| a.binary(l, b, rl, shape, op)?))
    }
    /// See [`BackendStorage::cmp`].
    ///
    /// ```
    /// use flux_core::{tensor::{CpuStorage, Layout, Storage}, backend::CmpOp};
    /// let a = Storage::Cpu(CpuStorage::F64(vec![1.0, 3.0]));
    /// let b = Storage::Cpu(CpuStorage::F64(vec![2.0]));
    /// let c = a.cmp(&Layout::contiguous(&[2]), &b, &Layout::contiguous(&[1]), &[2], CmpOp::Gt).unwrap();
    /// assert!(matches!(c.cpu().unwrap(), CpuStorage::F64(v) if v == &[0.0, 1.0]));
    /// ```
    pub fn cmp(&self, l: &Layout, rhs: &Storage, rl: &Layout, shape: &[usize], op: CmpOp) -> Result<Storage> {
        Ok(each2!("compare", self, rhs, |a, b| a.cmp(l, b, rl, shape, op)?))
    }
    /// See [`BackendStorage::affine`].
    ///
    /// ```
    /// use flux_core::tensor::{CpuStorage, Layout, Storage};
    /// let s = Storage::Cpu(CpuStorage::F32(vec![1.0, 2.0]));
    /// let y = s.affine(&Layout::contiguous(&[2]), 2.0, 1.0).unwrap();
    /// assert!(matches!(y.cpu().unwrap(), CpuStorage::F32(v) if v == &[3.0, 5.0]));
    /// ```
    pub fn affine(&self, l: &Layout, mul: f64, add: f64) -> Result<Storage> { Ok(each!(self, |s| s.affine(l, mul, add)?)) }
    /// See [`BackendStorage::reduce`].
    ///
    /// ```
    /// use flux_core::{tensor::{CpuStorage, Layout, Storage}, backend::ReduceOp};
    /// let s = Storage::Cpu(CpuStorage::F64(vec![1.0, 5.0, 3.0, 4.0]));
    /// let m = s.reduce(&Layout::contiguous(&[2, 2]), &[1], ReduceOp::Max).unwrap();
    /// assert!(matches!(m.cpu().unwrap(), CpuStorage::F64(v) if v == &[5.0, 4.0]));
    /// ```
    pub fn reduce(&self, l: &Layout, dims: &[usize], op: ReduceOp) -> Result<Storage> { Ok(each!(self, |s| s.reduce(l, dims, op)?)) }
    /// See [`BackendStorage::softmax`].
    ///
    /// ```
    /// use flux_core::tensor::{CpuStorage, Layout, Storage};
    /// let s = Storage::Cpu(CpuStorage::F64(vec![1.0, 1.0, 0.0, 0.0]));
    /// let p = s.softmax(&Layout::contiguous(&[2, 2]), 1, false).unwrap();
    /// assert!(matches!(p.cpu().unwrap(), CpuStorage::F64(v) if v == &[0.5; 4]));
    /// ```
    pub fn softmax(&self, l: &Layout, dim: usize, log: bool) -> Result<Storage> { Ok(each!(self, |s| s.softmax(l, dim, log)?)) }
    /// See [`BackendStorage::matmul`].
    ///
    /// ```
    /// use flux_core::{tensor::{CpuStorage, Layout, Storage}, backend::MatmulDims};
    /// let a = Storage::Cpu(CpuStorage::F64(vec![1.0, 2.0, 3.0, 4.0]));
    /// let l = Layout::contiguous(&[2, 2]);
    /// let c = a.matmul(&l, &a, &l, MatmulDims { batch: 1, m: 2, n: 2, k: 2 }).unwrap();
    /// assert!(matches!(c.cpu().unwrap(), CpuStorage::F64(v) if v == &[7.0, 10.0, 15.0, 22.0]));
    /// ```
    pub fn matmul(&self, l: &Layout, rhs: &Storage, rl: &Layout, dims: MatmulDims) -> Result<Storage> {
        Ok(each2!("matmul", self, rhs, |a, b| a.matmul(l, b, rl, dims)?))
    }
    /// See [`BackendStorage::cast`].
    ///
    /// ```
    /// use flux_core::{tensor::{CpuStorage, Layout, Storage}, DType};
    /// let s = Storage::Cpu(CpuStorage::F64(vec![0.5]));
    /// let c = s.cast(&Layout::contiguous(&[1]), DType::F32).unwrap();
    /// assert!(matches!(c.cpu().unwrap(), CpuStorage::F32(v) if v == &[0.5]));
    /// ```
    pub fn cast(&self, l: &Layout, dtype: DType) -> Result<Storage> { Ok(each!(self, |s| s.cast(l, dtype)?)) }
    /// See [`BackendStorage::copy_strided`].
    ///
    /// ```
    /// use flux_core::tensor::{CpuStorage, Layout, Storage};
    /// let s = Storage::Cpu(CpuStorage::F64(vec![1.0, 2.0, 3.0, 4.0]));
    /// let t = Layout { shape: vec![2, 2], strides: vec![1, 2], offset: 0 }; // the transpose
    /// assert!(matches!(s.copy_strided(&t).unwrap().cpu().unwrap(), CpuStorage::F64(v) if v == &[1.0, 3.0, 2.0, 4.0]));
    /// ```
    pub fn copy_strided(&self, l: &Layout) -> Result<Storage> { Ok(each!(self, |s| s.copy_strided(l)?)) }
    /// See [`BackendStorage::index_select`].
    ///
    /// ```
    /// use flux_core::tensor::{CpuStorage, Layout, Storage};
    /// let s = Storage::Cpu(CpuStorage::F64(vec![1.0, 2.0, 3.0]));
    /// let y = s.index_select(&Layout::contiguous(&[3]), 0, &[2, 2, 0]).unwrap();
    /// assert!(matches!(y.cpu().unwrap(), CpuStorage::F64(v) if v == &[3.0, 3.0, 1.0]));
    /// ```
    pub fn index_select(&self, l: &Layout, axis: usize, idx: &[usize]) -> Result<Storage> {
        Ok(each!(self, |s| s.index_select(l, axis, idx)?))
    }
    /// See [`BackendStorage::index_add`].
    ///
    /// ```
    /// use flux_core::tensor::{CpuStorage, Layout, Storage};
    /// let g = Storage::Cpu(CpuStorage::F64(vec![1.0, 2.0, 4.0]));
    /// let y = g.index_add(&Layout::contiguous(&[3]), 0, &[2, 2, 0], 3).unwrap();
    /// assert!(matches!(y.cpu().unwrap(), CpuStorage::F64(v) if v == &[4.0, 0.0, 3.0]));
    /// ```
    pub fn index_add(&self, l: &Layout, axis: usize, idx: &[usize], n: usize) -> Result<Storage> {
        Ok(each!(self, |s| s.index_add(l, axis, idx, n)?))
    }
    /// See [`BackendStorage::clamp`].
    ///
    /// ```
    /// use flux_core::tensor::{CpuStorage, Layout, Storage};
    /// let y = Storage::Cpu(CpuStorage::F64(vec![-2.0, 3.0])).clamp(&Layout::contiguous(&[2]), 0.0, 1.0).unwrap();
    /// assert!(matches!(y.cpu().unwrap(), CpuStorage::F64(v) if v == &[0.0, 1.0]));
    /// ```
    pub fn clamp(&self, l: &Layout, lo: f64, hi: f64) -> Result<Storage> { Ok(each!(self, |s| s.clamp(l, lo, hi)?)) }
    /// See [`BackendStorage::argmax_last`].
    ///
    /// ```
    /// use flux_core::tensor::{CpuStorage, Layout, Storage};
    /// let x = Storage::Cpu(CpuStorage::F32(vec![0.0, 2.0, 1.0, 7.0]));
    /// assert_eq!(x.argmax_last(&Layout::contiguous(&[2, 2])).unwrap(), vec![1, 1]);
    /// ```
    pub fn argmax_last(&self, l: &Layout) -> Result<Vec<usize>> {
        match self {
            Storage::Cpu(s) => s.argmax_last(l),
            #[cfg(feature = "wgpu")]
            Storage::Wgpu(s) => s.argmax_last(l),
            #[cfg(test)]
            Storage::Null(s) => s.argmax_last(l),
        }
    }
    /// See [`BackendStorage::scatter_strided`].
    ///
    /// ```
    /// use flux_core::tensor::{CpuStorage, Layout, Storage};
    /// let dst = Layout { shape: vec![1], strides: vec![1], offset: 2 };
    /// let g = Storage::Cpu(CpuStorage::F32(vec![4.0])).scatter_strided(&Layout::contiguous(&[1]), 3, &dst).unwrap();
    /// assert!(matches!(g.cpu().unwrap(), CpuStorage::F32(v) if v == &[0.0, 0.0, 4.0]));
    /// ```
    pub fn scatter_strided(&self, l: &Layout, n: usize, dst: &Layout) -> Result<Storage> {
        Ok(each!(self, |s| s.scatter_strided(l, n, dst)?))
    }
    /// See [`BackendStorage::where_cond`].
    ///
    /// ```
    /// use flux_core::tensor::{CpuStorage, Layout, Storage};
    /// let l = Layout::contiguous(&[2]);
    /// let cond = Storage::Cpu(CpuStorage::F64(vec![1.0, 0.0]));
    /// let a = Storage::Cpu(CpuStorage::F64(vec![1.0, 2.0]));
    /// let b = Storage::Cpu(CpuStorage::F64(vec![-1.0, -2.0]));
    /// let y = cond.where_cond(&l, &a, &l, &b, &l, &[2]).unwrap();
    /// assert!(matches!(y.cpu().unwrap(), CpuStorage::F64(v) if v == &[1.0, -2.0]));
    /// ```
    pub fn where_cond(&self, l: &Layout, a: &Storage, al: &Layout, b: &Storage, bl: &Layout, shape: &[usize]) -> Result<Storage> {
        let name = "where";
        Ok(match (self, a, b) {
            (Storage::Cpu(c), Storage::Cpu(a), Storage::Cpu(b)) => Storage::Cpu(c.where_cond(l, a, al, b, bl, shape)?),
            #[cfg(feature = "wgpu")]
            (Storage::Wgpu(c), Storage::Wgpu(a), Storage::Wgpu(b)) => Storage::Wgpu(c.where_cond(l, a, al, b, bl, shape)?),
            #[cfg(test)]
            (Storage::Null(c), Storage::Null(a), Storage::Null(b)) => Storage::Null(c.where_cond(l, a, al, b, bl, shape)?),
            #[allow(unreachable_patterns)]
            (c, a, b) => {
                let other = if a.device() != c.device() { a.device() } else { b.device() };
                return Err(mixed_devices(name, c.device(), other));
            }
        })
    }
    /// See [`BackendStorage::optim_step`]; all buffers on this storage's device.
    ///
    /// ```
    /// use flux_core::{tensor::{CpuStorage, Storage}, backend::OptimStep};
    /// // the CPU runs rules through `optim::kernel::elementwise` instead: no kernel here
    /// let mut x = Storage::Cpu(CpuStorage::F32(vec![1.0]));
    /// let g = Storage::Cpu(CpuStorage::F32(vec![0.5]));
    /// let step = OptimStep { rule: "descent", hyper: &[0.1], t: 1, into_x: true };
    /// assert!(x.optim_step(&g, &mut [], step).is_err());
    /// ```
    pub fn optim_step(&mut self, read: &Storage, states: &mut [&mut Storage], step: crate::backend::OptimStep<'_>) -> Result<()> {
        let device = self.device();
        let mixed = |d: Device| mixed_devices(step.rule, device, d);
        macro_rules! run {
            ($V:ident, $x:expr) => {{
                #[allow(unreachable_patterns, irrefutable_let_patterns)]
                let Storage::$V(g) = read else { return Err(mixed(read.device())) };
                let mut st = Vec::with_capacity(states.len());
                for s in states.iter_mut() {
                    let d = s.device();
                    #[allow(unreachable_patterns, irrefutable_let_patterns)]
                    let Storage::$V(s) = &mut **s else { return Err(mixed(d)) };
                    st.push(s);
                }
                $x.optim_step(g, &mut st, step)
            }};
        }
        match self {
            Storage::Cpu(x) => run!(Cpu, x),
            #[cfg(feature = "wgpu")]
            Storage::Wgpu(x) => run!(Wgpu, x),
            #[cfg(test)]
            Storage::Null(x) => run!(Null, x),
        }
    }
    /// See [`BackendStorage::conv_fwd`].
    ///
    /// ```
    /// use flux_core::{tensor::{conv::Geom, CpuStorage, Storage}, Device};
    /// let g = Geom { n: 1, cb: 1, cs: 1, groups: 1, big: [1, 1, 3], small: [1, 1, 2], k: [1, 1, 2], stride: [1; 3], pad: [0; 3], dil: [1; 3] };
    /// let gpu = |v: Vec<f32>| Storage::from_cpu(CpuStorage::F32(v), Device::Wgpu);
    /// // on a GPU (the CPU convolves in tensor::conv instead)
    /// if let (Ok(x), Ok(w)) = (gpu(vec![1.0, 2.0, 3.0]), gpu(vec![1.0, 1.0])) {
    ///     let y = x.conv_fwd(&w, None, &g, false).unwrap();
    ///     assert!(matches!(y.to_cpu().unwrap(), CpuStorage::F32(v) if v == vec![3.0, 5.0]));
    /// }
    /// ```
    pub fn conv_fwd(&self, w: &Storage, bias: Option<&Storage>, g: &Geom, relu: bool) -> Result<Storage> {
        Ok(each2!("conv", self, w, |x, w| x.conv_fwd(w, same_opt("conv", x, bias)?, g, relu)?))
    }
    /// See [`BackendStorage::conv_bwd_data`].
    ///
    /// ```
    /// use flux_core::{tensor::{conv::Geom, CpuStorage, Storage}, Device};
    /// let g = Geom { n: 1, cb: 1, cs: 1, groups: 1, big: [1, 1, 3], small: [1, 1, 2], k: [1, 1, 2], stride: [1; 3], pad: [0; 3], dil: [1; 3] };
    /// let gpu = |v: Vec<f32>| Storage::from_cpu(CpuStorage::F32(v), Device::Wgpu);
    /// if let (Ok(dy), Ok(w)) = (gpu(vec![1.0, 1.0]), gpu(vec![1.0, 1.0])) {
    ///     let dx = dy.conv_bwd_data(&w, &g).unwrap(); // the middle input feeds both outputs
    ///     assert!(matches!(dx.to_cpu().unwrap(), CpuStorage::F32(v) if v == vec![1.0, 2.0, 1.0]));
    /// }
    /// ```
    pub fn conv_bwd_data(&self, w: &Storage, g: &Geom) -> Result<Storage> {
        Ok(each2!("conv backward", self, w, |dy, w| dy.conv_bwd_data(w, g)?))
    }
    /// See [`BackendStorage::conv_bwd_filter`].
    ///
    /// ```
    /// use flux_core::{tensor::{conv::Geom, CpuStorage, Storage}, Device};
    /// let g = Geom { n: 1, cb: 1, cs: 1, groups: 1, big: [1, 1, 3], small: [1, 1, 2], k: [1, 1, 2], stride: [1; 3], pad: [0; 3], dil: [1; 3] };
    /// let gpu = |v: Vec<f32>| Storage::from_cpu(CpuStorage::F32(v), Device::Wgpu);
    /// if let (Ok(x), Ok(dy)) = (gpu(vec![1.0, 2.0, 3.0]), gpu(vec![1.0, 1.0])) {
    ///     let dw = x.conv_bwd_filter(&dy, &g).unwrap(); // [1 + 2, 2 + 3]
    ///     assert!(matches!(dw.to_cpu().unwrap(), CpuStorage::F32(v) if v == vec![3.0, 5.0]));
    /// }
    /// ```
    pub fn conv_bwd_filter(&self, dy: &Storage, g: &Geom) -> Result<Storage> {
        Ok(each2!("conv backward", self, dy, |x, dy| x.conv_bwd_filter(dy, g)?))
    }
    /// See [`BackendStorage::pool_fwd`].
    ///
    /// ```
    /// use flux_core::{tensor::{pool::{PGeom, PoolMode}, CpuStorage, Storage}, Device};
    /// let g = PGeom { planes: 1, big: [1, 1, 4], small: [1, 1, 2], k: [1, 1, 2], stride: [1, 1, 2], pad: [0; 3] };
    /// if let Ok(x) = Storage::from_cpu(CpuStorage::F32(vec![1.0, 3.0, 2.0, 6.0]), Device::Wgpu) {
    ///     let (y, winners) = x.pool_fwd(&g, PoolMode::Max).unwrap();
    ///     assert!(matches!(y.to_cpu().unwrap(), CpuStorage::F32(v) if v == vec![3.0, 6.0]));
    ///     assert!(winners.is_some());
    /// }
    /// ```
    pub fn pool_fwd(&self, g: &PGeom, mode: PoolMode) -> Result<(Storage, Option<Storage>)> {
        macro_rules! run {
            ($V:ident, $s:expr) => {{
                let (y, arg) = $s.pool_fwd(g, mode)?;
                (Storage::$V(y), arg.map(Storage::$V))
            }};
        }
        Ok(match self {
            Storage::Cpu(s) => run!(Cpu, s),
            #[cfg(feature = "wgpu")]
            Storage::Wgpu(s) => run!(Wgpu, s),
            #[cfg(test)]
            Storage::Null(s) => run!(Null, s),
        })
    }
    /// See [`BackendStorage::pool_bwd`].
    ///
    /// ```
    /// use flux_core::{tensor::{pool::{PGeom, PoolMode}, CpuStorage, Storage}, Device};
    /// let g = PGeom { planes: 1, big: [1, 1, 4], small: [1, 1, 2], k: [1, 1, 2], stride: [1, 1, 2], pad: [0; 3] };
    /// if let Ok(gy) = Storage::from_cpu(CpuStorage::F32(vec![1.0, 1.0]), Device::Wgpu) {
    ///     let dx = gy.pool_bwd(None, &g, PoolMode::Mean).unwrap(); // each window's mean spreads its gradient
    ///     assert!(matches!(dx.to_cpu().unwrap(), CpuStorage::F32(v) if v == vec![0.5; 4]));
    /// }
    /// ```
    pub fn pool_bwd(&self, arg: Option<&Storage>, g: &PGeom, mode: PoolMode) -> Result<Storage> {
        Ok(each!(self, |gy| gy.pool_bwd(same_opt("pool backward", gy, arg)?, g, mode)?))
    }
    /// See [`BackendStorage::concat`]; `parts` must all be on this storage's device.
    ///
    /// ```
    /// use flux_core::tensor::{CpuStorage, Layout, Storage};
    /// let a = Storage::Cpu(CpuStorage::F64(vec![1.0, 2.0]));
    /// let b = Storage::Cpu(CpuStorage::F64(vec![3.0]));
    /// let (la, lb) = (Layout::contiguous(&[2]), Layout::contiguous(&[1]));
    /// let c = Storage::concat(&[(&a, &la), (&b, &lb)], 0).unwrap();
    /// assert!(matches!(c.cpu().unwrap(), CpuStorage::F64(v) if v == &[1.0, 2.0, 3.0]));
    /// ```
    pub fn concat(parts: &[(&Storage, &Layout)], axis: usize) -> Result<Storage> {
        let (first, _) = *parts.first().ok_or_else(|| Error::Shape("concat needs at least one tensor".into()))?;
        macro_rules! gather_parts {
            ($V:ident) => {{
                let mut v = Vec::with_capacity(parts.len());
                for (p, l) in parts {
                    match p {
                        Storage::$V(s) => v.push((s, *l)),
                        #[allow(unreachable_patterns)]
                        other => return Err(mixed_devices("concat", first.device(), other.device())),
                    }
                }
                v
            }};
        }
        Ok(match first {
            Storage::Cpu(s) => Storage::Cpu(s.concat(&gather_parts!(Cpu), axis)?),
            #[cfg(feature = "wgpu")]
            Storage::Wgpu(s) => Storage::Wgpu(s.concat(&gather_parts!(Wgpu), axis)?),
            #[cfg(test)]
            Storage::Null(s) => Storage::Null(s.concat(&gather_parts!(Null), axis)?),
        })
    }
}

/// The error of a CPU-only path given a tensor on another device.
pub(crate) fn host_only(device: Device) -> Error {
    Error::Device(format!(
        "this operation runs only on the CPU, and its tensor is on the {device} device; move it with to_device(Device::Cpu) (Python: fx.cpu)"
    ))
}
