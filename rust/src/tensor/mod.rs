//! The n-d array of flux-core.
//!
//! A [`Tensor`] is a [`Layout`] (shape, strides, offset) over an `Arc`-shared
//! [`Storage`]. Views (transpose, slices, broadcasts) share storage; writes go through
//! `Arc::make_mut`, so they are in place when the buffer is uniquely owned and copy
//! first otherwise. Kernels take contiguous fast paths and fall back to strided walks;
//! large ones run on rayon.
//!
//! Ops live by family: [`elementwise`], [`reduce`], [`matmul`], [`movement`],
//! [`softmax`]; random constructors in [`random`]. Every op that a gradient can flow
//! through records itself on the autodiff tape (see [`crate::autodiff`]).
pub mod alloc;
pub mod conv;
pub mod dropout;
pub mod dtype;
pub mod elementwise;
pub mod gather;
pub mod layout;
pub mod matmul;
pub mod misc;
pub mod movement;
pub mod norm;
pub mod pool;
pub mod random;
pub mod reduce;
pub mod softmax;
pub mod storage;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use dtype::{DType, Float};
pub use layout::Layout;
pub use storage::{CpuStorage, Device, Storage};

use crate::error::{shape_err, Error, Result};

/// Identity of a tensor value for the tape. Fresh for every op output; kept by clones
/// and by in-place updates.
pub type TensorId = u64;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
fn next_id() -> TensorId { NEXT_ID.fetch_add(1, Ordering::Relaxed) }

/// Elements above which a kernel splits its work over rayon's threads.
pub const PAR_THRESHOLD: usize = 1 << 15;

/// An n-d array of f32 or f64 with copy-on-write storage.
///
/// ```
/// use flux_core::Tensor;
/// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
/// assert_eq!(t.t().unwrap().to_vec_f64().unwrap(), vec![1.0, 3.0, 2.0, 4.0]);
/// ```
#[derive(Clone, Debug)]
pub struct Tensor {
    id: TensorId,
    storage: Arc<Storage>,
    layout: Layout,
}

/// Construction, inspection, host access, layout copies, casts and in-place updates.
///
/// ```
/// use flux_core::{DType, Tensor};
/// let t = Tensor::zeros(&[2, 3], DType::F64);
/// assert_eq!((t.ndim(), t.numel(), t.dtype()), (2, 6, DType::F64));
/// ```
impl Tensor {
    // ---- construction ----------------------------------------------------------

    /// A contiguous tensor from row-major data.
    ///
    /// ```
    /// let t = flux_core::Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    /// assert_eq!(t.shape(), &[2, 2]);
    /// ```
    pub fn from_vec<T: Float>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(shape_err!("{} values do not fill a tensor of shape {:?}", data.len(), shape));
        }
        Ok(Self::from_storage(Storage::Cpu(T::vec_into(data)), Layout::contiguous(shape)))
    }
    pub(crate) fn from_storage(storage: Storage, layout: Layout) -> Tensor {
        Tensor { id: next_id(), storage: Arc::new(storage), layout }
    }
    pub(crate) fn from_cpu(c: CpuStorage, shape: &[usize]) -> Tensor {
        Self::from_storage(Storage::Cpu(c), Layout::contiguous(shape))
    }
    /// A view of the same storage under another layout (a fresh id).
    pub(crate) fn view(&self, layout: Layout) -> Tensor {
        Tensor { id: next_id(), storage: self.storage.clone(), layout }
    }
    /// Every element `v`.
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// let t = Tensor::full(&[2], 3.0, DType::F32);
    /// assert_eq!(t.to_vec_f64().unwrap(), vec![3.0, 3.0]);
    /// ```
    pub fn full(shape: &[usize], v: f64, dtype: DType) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_cpu(crate::backend::cpu::full(n, v, dtype), shape)
    }
    /// Every element `v`, on `device`.
    ///
    /// ```
    /// use flux_core::{DType, Device, Tensor};
    /// let t = Tensor::full_on(&[2], 3.0, DType::F32, Device::Cpu).unwrap();
    /// assert_eq!(t.to_vec_f64().unwrap(), vec![3.0, 3.0]);
    /// ```
    pub fn full_on(shape: &[usize], v: f64, dtype: DType, device: Device) -> Result<Tensor> {
        if device == Device::Cpu {
            return Ok(Self::full(shape, v, dtype));
        }
        Ok(Self::from_storage(Storage::full(shape.iter().product(), v, dtype, device)?, Layout::contiguous(shape)))
    }
    /// Zeros.
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// assert_eq!(Tensor::zeros(&[2, 1], DType::F64).to_vec_f64().unwrap(), vec![0.0, 0.0]);
    /// ```
    pub fn zeros(shape: &[usize], dtype: DType) -> Tensor { Self::full(shape, 0.0, dtype) }
    /// Ones.
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// assert_eq!(Tensor::ones(&[3], DType::F32).sum_all().unwrap().item().unwrap(), 3.0);
    /// ```
    pub fn ones(shape: &[usize], dtype: DType) -> Tensor { Self::full(shape, 1.0, dtype) }
    /// A 0-d tensor holding `v`.
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// let s = Tensor::scalar(2.5, DType::F64);
    /// assert_eq!((s.ndim(), s.item().unwrap()), (0, 2.5));
    /// ```
    pub fn scalar(v: f64, dtype: DType) -> Tensor { Self::full(&[], v, dtype) }
    /// Zeros of this shape and dtype.
    /// Zeros of this shape and dtype, on this tensor's device (on the CPU if that
    /// device cannot make them, so the next op reports the mixed devices).
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// let z = Tensor::ones(&[2, 2], DType::F64).zeros_like();
    /// assert_eq!((z.shape(), z.dtype()), (&[2usize, 2][..], DType::F64));
    /// assert_eq!(z.to_vec_f64().unwrap(), vec![0.0; 4]);
    /// ```
    pub fn zeros_like(&self) -> Tensor {
        self.full_beside(self.shape(), 0.0, self.dtype()).unwrap_or_else(|_| Self::zeros(self.shape(), self.dtype()))
    }
    /// Every element `v`, on this tensor's device (made by its backend).
    #[inline]
    pub(crate) fn full_beside(&self, shape: &[usize], v: f64, dtype: DType) -> Result<Tensor> {
        if self.device() == Device::Cpu {
            return Ok(Self::full(shape, v, dtype));
        }
        Ok(Self::from_storage(self.storage.full_like(shape.iter().product(), v, dtype)?, Layout::contiguous(shape)))
    }
    /// The same values under a new identity (a copy-on-write share, no data copied).
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// let x = Tensor::ones(&[2], DType::F32);
    /// let d = x.detach();
    /// assert_ne!(d.id(), x.id());
    /// assert!(d.is_shared()); // same buffer, no copy
    /// ```
    pub fn detach(&self) -> Tensor { self.view(self.layout.clone()) }

    // ---- inspection --------------------------------------------------------------

    /// This value's identity on the autodiff tape.
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// let x = Tensor::ones(&[2], DType::F32);
    /// assert_eq!(x.clone().id(), x.id());
    /// assert_ne!(x.neg().unwrap().id(), x.id());
    /// ```
    pub fn id(&self) -> TensorId { self.id }
    /// The size of each dimension.
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// assert_eq!(Tensor::zeros(&[2, 3], DType::F32).shape(), &[2, 3]);
    /// ```
    pub fn shape(&self) -> &[usize] { &self.layout.shape }
    /// Shape, strides and offset.
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// let t = Tensor::zeros(&[2, 3], DType::F32).t().unwrap();
    /// assert_eq!(t.layout().strides, vec![1, 3]);
    /// ```
    pub fn layout(&self) -> &Layout { &self.layout }
    /// The number of dimensions.
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// assert_eq!(Tensor::zeros(&[2, 3, 4], DType::F32).ndim(), 3);
    /// ```
    pub fn ndim(&self) -> usize { self.layout.ndim() }
    /// The number of elements.
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// assert_eq!(Tensor::zeros(&[2, 3, 4], DType::F32).numel(), 24);
    /// ```
    pub fn numel(&self) -> usize { self.layout.numel() }
    /// The element type.
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// assert_eq!(Tensor::from_vec(vec![1.0f64], &[1]).unwrap().dtype(), DType::F64);
    /// ```
    pub fn dtype(&self) -> DType { self.storage.dtype() }
    /// Where the data lives.
    ///
    /// ```
    /// use flux_core::{DType, Device, Tensor};
    /// assert_eq!(Tensor::zeros(&[1], DType::F32).device(), Device::Cpu);
    /// ```
    pub fn device(&self) -> Device { self.storage.device() }
    /// Is the layout plain row-major?
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// let x = Tensor::zeros(&[2, 3], DType::F32);
    /// assert!(x.is_contiguous());
    /// assert!(!x.t().unwrap().is_contiguous());
    /// ```
    pub fn is_contiguous(&self) -> bool { self.layout.is_contiguous() }
    /// The host buffer; an [`Error::Device`] for a tensor on another device.
    #[inline]
    pub(crate) fn cpu(&self) -> Result<&CpuStorage> { self.storage.cpu() }
    /// The buffer, on whatever device it is (the backend seam's entry point).
    #[inline]
    pub(crate) fn storage(&self) -> &Storage { &self.storage }
    /// Does this tensor share its buffer with another handle?
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// let x = Tensor::zeros(&[2], DType::F32);
    /// assert!(!x.is_shared());
    /// let y = x.clone();
    /// assert!(x.is_shared() && y.is_shared());
    /// ```
    pub fn is_shared(&self) -> bool { Arc::strong_count(&self.storage) > 1 }

    /// The whole storage buffer (not just this view's part).
    pub(crate) fn raw<T: Float>(&self) -> Result<&[T]> {
        T::slice(self.cpu()?).ok_or_else(|| Error::DType(format!("expected {}, got {}", T::DTYPE.name(), self.dtype().name())))
    }
    /// This tensor's elements as a slice; requires a contiguous layout.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    /// assert_eq!(x.as_slice::<f32>().unwrap(), &[1.0, 2.0, 3.0, 4.0]);
    /// assert!(x.t().unwrap().as_slice::<f32>().is_err()); // not contiguous
    /// assert!(x.as_slice::<f64>().is_err()); // wrong dtype
    /// ```
    pub fn as_slice<T: Float>(&self) -> Result<&[T]> {
        let raw = self.raw::<T>()?;
        if !self.is_contiguous() {
            return Err(Error::Value("as_slice needs a contiguous tensor; call contiguous() first".into()));
        }
        let (off, n) = (self.layout.offset, self.numel());
        if n == 0 {
            // an empty view may sit past the end of its buffer (a slice at the end of
            // an axis, a zero-size batch of a sequence)
            return Ok(&raw[..0]);
        }
        Ok(&raw[off..off + n])
    }
    /// Mutable access to the elements, copying first if the buffer is shared or the
    /// layout is not plain contiguous. Keeps the tensor's identity.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let mut x = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
    /// let y = x.clone(); // shares the buffer: written copies first
    /// x.data_mut::<f32>().unwrap()[0] = 5.0;
    /// assert_eq!((x.to_vec_f64().unwrap(), y.to_vec_f64().unwrap()), (vec![5.0, 2.0], vec![1.0, 2.0]));
    /// ```
    pub fn data_mut<T: Float>(&mut self) -> Result<&mut [T]> {
        if T::DTYPE != self.dtype() {
            return Err(Error::DType(format!("expected {}, got {}", T::DTYPE.name(), self.dtype().name())));
        }
        let n = self.numel();
        if !self.is_contiguous() || self.layout.offset != 0 || self.cpu()?.len() != n {
            let c = self.try_contiguous_copy()?;
            self.storage = c.storage;
            self.layout = c.layout;
        }
        let s = Arc::make_mut(&mut self.storage);
        T::slice_mut(s.cpu_mut()?).ok_or_else(|| Error::DType(format!("expected {}", T::DTYPE.name())))
    }
    /// The elements in row-major order as `T` (which must be this dtype).
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    /// assert_eq!(x.t().unwrap().to_vec::<f32>().unwrap(), vec![1.0, 3.0, 2.0, 4.0]);
    /// ```
    pub fn to_vec<T: Float>(&self) -> Result<Vec<T>> {
        if self.device() != Device::Cpu {
            // reading values out is the one place a device tensor is copied to the host
            return self.to_device(Device::Cpu)?.to_vec::<T>();
        }
        Ok(self.contiguous()?.as_slice::<T>()?.to_vec())
    }
    /// All elements converted to f64, in row-major order.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let x = Tensor::from_vec(vec![0.5f32, 2.0], &[2]).unwrap();
    /// assert_eq!(x.to_vec_f64().unwrap(), vec![0.5, 2.0]);
    /// ```
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        crate::dispatch!(self.dtype(), T => Ok(self.to_vec::<T>()?.into_iter().map(|v| v.to_f64()).collect()))
    }
    /// The value of a one-element tensor.
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// assert_eq!(Tensor::full(&[1, 1], 4.0, DType::F32).item().unwrap(), 4.0);
    /// assert!(Tensor::zeros(&[2], DType::F32).item().is_err());
    /// ```
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(shape_err!("item() needs a tensor with one element, got shape {:?}", self.shape()));
        }
        Ok(self.to_vec_f64()?[0])
    }

    // ---- layout changes that copy ------------------------------------------------

    /// This tensor if already contiguous, else a contiguous copy (same identity either way
    /// is not promised: the copy gets a fresh id).
    /// This tensor as `dtype`: borrowed when it already has it, a converted copy otherwise.
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// use std::borrow::Cow;
    /// let x = Tensor::ones(&[2], DType::F32);
    /// assert!(matches!(x.cast_cow(DType::F32).unwrap(), Cow::Borrowed(_)));
    /// assert_eq!(x.cast_cow(DType::F64).unwrap().dtype(), DType::F64);
    /// ```
    pub fn cast_cow(&self, dtype: DType) -> Result<std::borrow::Cow<'_, Tensor>> {
        Ok(if dtype == self.dtype() { std::borrow::Cow::Borrowed(self) } else { std::borrow::Cow::Owned(self.cast(dtype)?) })
    }
    /// This tensor as dtype `T` and contiguous, borrowed when it already is (the usual
    /// case) and copied otherwise: kernels call this instead of `cast(..).contiguous()`,
    /// whose two clones of the header were a measurable part of a small model's step.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// use std::borrow::Cow;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    /// assert!(matches!(x.as_contiguous::<f32>().unwrap(), Cow::Borrowed(_)));
    /// let t = x.t().unwrap();
    /// let c = t.as_contiguous::<f64>().unwrap();
    /// assert_eq!(c.as_slice::<f64>().unwrap(), &[1.0, 3.0, 2.0, 4.0]);
    /// ```
    pub fn as_contiguous<T: Float>(&self) -> Result<std::borrow::Cow<'_, Tensor>> {
        if self.dtype() == T::DTYPE && self.is_contiguous() {
            return Ok(std::borrow::Cow::Borrowed(self));
        }
        Ok(std::borrow::Cow::Owned(self.cast(T::DTYPE)?.contiguous()?))
    }
    /// This tensor if already contiguous, else a contiguous copy (recorded on the tape).
    /// A device without the copy kernel is an [`Error::Device`], never the view
    /// returned unchanged.
    ///
    /// ```
    /// let x = flux_core::Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    /// let c = x.t().unwrap().contiguous().unwrap();
    /// assert!(c.is_contiguous());
    /// assert_eq!(c.to_vec_f64().unwrap(), vec![1.0, 3.0, 2.0, 4.0]);
    /// ```
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        let out = self.try_contiguous_copy()?;
        // The copy has a fresh id, so it must be on the tape (as a same-shape reshape):
        // otherwise the gradient of `x.t().contiguous()`, or of ops that copy their
        // operands before recording (concat), never reached `x`.
        crate::autodiff::record(&[self], &out, || crate::autodiff::Op::Reshape { in_shape: self.shape().to_vec() });
        Ok(out)
    }
    /// The buffer holding exactly this tensor's row-major elements from offset 0: its
    /// own, borrowed, when the view already is that (a GPU storage's clone would be a
    /// device copy), else a packed copy made by its device (not recorded: for kernels
    /// that read whole buffers, whose op records itself against `self`). A contiguous
    /// view at offset 0 of a longer buffer (the first rows of a stacked q/k/v gradient)
    /// is copied too: a whole-buffer kernel would read past it.
    pub(crate) fn packed_storage_ref(&self) -> Result<std::borrow::Cow<'_, Storage>> {
        if self.layout.is_contiguous() && self.layout.offset == 0 && self.storage.len() == self.numel() {
            return Ok(std::borrow::Cow::Borrowed(&*self.storage));
        }
        Ok(std::borrow::Cow::Owned(self.storage.copy_strided(&self.layout)?))
    }
    /// The former name of [`contiguous`](Self::contiguous) (which now returns the
    /// error itself), kept for code written against it.
    #[doc(hidden)]
    pub fn try_contiguous(&self) -> Result<Tensor> { self.contiguous() }
    fn try_contiguous_copy(&self) -> Result<Tensor> {
        Ok(Tensor::from_storage(self.storage.copy_strided(&self.layout)?, Layout::contiguous(self.shape())))
    }

    /// This tensor on `device`: itself when already there, else a copy (recorded on
    /// the tape, so a gradient flows back to the source device).
    ///
    /// ```
    /// use flux_core::{Device, Tensor};
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
    /// assert_eq!(x.to_device(Device::Cpu).unwrap().to_vec_f64().unwrap(), vec![1.0, 2.0]);
    /// assert!(Tensor::zeros(&[1], flux_core::DType::F32).to_device(Device::Wgpu).is_err() || Device::wgpu().is_ok());
    /// ```
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        let from = self.device();
        if device == from {
            return Ok(self.clone());
        }
        // the view's elements, contiguous, in host memory, then onto the target device
        let host = match self.storage.as_ref() {
            Storage::Cpu(c) => crate::backend::BackendStorage::copy_strided(c, &self.layout)?,
            #[allow(unreachable_patterns)]
            other => {
                let c = other.to_cpu()?;
                crate::backend::BackendStorage::copy_strided(&c, &self.layout)?
            }
        };
        let out = Tensor::from_storage(Storage::from_cpu(host, device)?, Layout::contiguous(self.shape()));
        crate::autodiff::record(&[self], &out, || crate::autodiff::Op::Custom(Box::new(ToDeviceBackward { device: from })));
        Ok(out)
    }

    /// Convert to another dtype (recorded on the tape).
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// let x = Tensor::from_vec(vec![0.1f64], &[1]).unwrap().cast(DType::F32).unwrap();
    /// assert_eq!(x.dtype(), DType::F32);
    /// assert_eq!(x.to_vec_f64().unwrap(), vec![0.1f32 as f64]);
    /// ```
    pub fn cast(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let out = Tensor::from_storage(self.storage.cast(&self.layout, dtype)?, Layout::contiguous(self.shape()));
        crate::autodiff::record(&[self], &out, || crate::autodiff::Op::Cast { from: self.dtype() });
        Ok(out)
    }

    // ---- in-place updates (never recorded) -----------------------------------------

    /// `self ← self − other` in place (same shape, broadcasting allowed for `other`).
    ///
    /// ```
    /// let mut x = flux_core::Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
    /// x.sub_assign_(&flux_core::Tensor::scalar(0.5, flux_core::DType::F32)).unwrap();
    /// assert_eq!(x.to_vec_f64().unwrap(), vec![0.5, 1.5]);
    /// ```
    pub fn sub_assign_(&mut self, other: &Tensor) -> Result<()> {
        let o = other.detach().cast(self.dtype())?.broadcast_to(self.shape())?;
        if self.device() != Device::Cpu {
            // the device computes `self − other` into a fresh buffer, which replaces this
            // handle's (the old one goes back to the device's pool)
            let d = self.detach().sub(&o)?;
            self.storage = d.storage;
            self.layout = d.layout;
            return Ok(());
        }
        let o = o.contiguous()?;
        crate::dispatch!(self.dtype(), T => {
            let src = o.as_slice::<T>()?;
            let dst = self.data_mut::<T>()?;
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d -= s);
        });
        Ok(())
    }
    /// Overwrite the values with `src`'s (converted to this dtype and moved to this
    /// tensor's device), keeping identity.
    ///
    /// ```
    /// let mut x = flux_core::Tensor::zeros(&[2], flux_core::DType::F32);
    /// x.assign_(&flux_core::Tensor::from_vec(vec![1.0f64, 2.0], &[2]).unwrap()).unwrap();
    /// assert_eq!((x.to_vec_f64().unwrap(), x.dtype()), (vec![1.0, 2.0], flux_core::DType::F32));
    /// ```
    pub fn assign_(&mut self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() {
            return Err(shape_err!("cannot assign a tensor of shape {:?} into one of shape {:?}", src.shape(), self.shape()));
        }
        let s = src.detach().to_device(self.device())?.cast(self.dtype())?;
        if self.device() != Device::Cpu {
            // a contiguous copy of its own on the device replaces this handle's buffer
            let c = s.detach_copy()?;
            self.storage = c.storage;
            self.layout = c.layout;
            return Ok(());
        }
        let s = s.contiguous()?;
        crate::dispatch!(self.dtype(), T => self.data_mut::<T>()?.copy_from_slice(s.as_slice::<T>()?));
        Ok(())
    }
    /// The buffer for an in-place kernel: contiguous from offset 0 and owned by this
    /// handle alone (copied first otherwise), keeping the tensor's identity.
    pub(crate) fn storage_mut(&mut self) -> Result<&mut Storage> {
        if !self.is_contiguous() || self.layout.offset != 0 || self.storage.len() != self.numel() {
            let c = self.try_contiguous_copy()?;
            self.storage = c.storage;
            self.layout = c.layout;
        }
        Ok(Arc::make_mut(&mut self.storage))
    }
    /// Replace storage and layout with `src`'s wholesale (sharing, no copy), keeping identity.
    ///
    /// ```
    /// use flux_core::{DType, Tensor};
    /// let mut x = Tensor::zeros(&[2], DType::F32);
    /// let id = x.id();
    /// x.replace_data_(&Tensor::ones(&[3], DType::F64));
    /// assert_eq!((x.id(), x.shape(), x.dtype()), (id, &[3usize][..], DType::F64));
    /// ```
    pub fn replace_data_(&mut self, src: &Tensor) {
        self.storage = src.storage.clone();
        self.layout = src.layout.clone();
    }
}

/// The backward of [`Tensor::to_device`]: the gradient moved back.
#[derive(Debug)]
struct ToDeviceBackward {
    device: Device,
}

impl crate::autodiff::Backward for ToDeviceBackward {
    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> { Ok(vec![Some(g.to_device(self.device)?)]) }
}
