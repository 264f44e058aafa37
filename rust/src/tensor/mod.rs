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
    pub fn full(shape: &[usize], v: f64, dtype: DType) -> Tensor {
        let n = shape.iter().product();
        crate::dispatch!(dtype, T => Tensor::from_cpu(T::vec_into(vec![T::f(v); n]), shape))
    }
    /// Zeros.
    pub fn zeros(shape: &[usize], dtype: DType) -> Tensor { Self::full(shape, 0.0, dtype) }
    /// Ones.
    pub fn ones(shape: &[usize], dtype: DType) -> Tensor { Self::full(shape, 1.0, dtype) }
    /// A 0-d tensor holding `v`.
    pub fn scalar(v: f64, dtype: DType) -> Tensor { Self::full(&[], v, dtype) }
    /// Zeros of this shape and dtype.
    pub fn zeros_like(&self) -> Tensor { Self::zeros(self.shape(), self.dtype()) }
    /// The same values under a new identity (a copy-on-write share, no data copied).
    pub fn detach(&self) -> Tensor { self.view(self.layout.clone()) }

    // ---- inspection --------------------------------------------------------------

    /// This value's identity on the autodiff tape.
    pub fn id(&self) -> TensorId { self.id }
    /// The size of each dimension.
    pub fn shape(&self) -> &[usize] { &self.layout.shape }
    /// Shape, strides and offset.
    pub fn layout(&self) -> &Layout { &self.layout }
    /// The number of dimensions.
    pub fn ndim(&self) -> usize { self.layout.ndim() }
    /// The number of elements.
    pub fn numel(&self) -> usize { self.layout.numel() }
    /// The element type.
    pub fn dtype(&self) -> DType { self.storage.dtype() }
    /// Where the data lives.
    pub fn device(&self) -> Device { self.storage.device() }
    /// Is the layout plain row-major?
    pub fn is_contiguous(&self) -> bool { self.layout.is_contiguous() }
    pub(crate) fn cpu(&self) -> &CpuStorage { self.storage.cpu() }
    /// Does this tensor share its buffer with another handle?
    pub fn is_shared(&self) -> bool { Arc::strong_count(&self.storage) > 1 }

    /// The whole storage buffer (not just this view's part).
    pub(crate) fn raw<T: Float>(&self) -> Result<&[T]> {
        T::slice(self.cpu()).ok_or_else(|| Error::DType(format!("expected {}, got {}", T::DTYPE.name(), self.dtype().name())))
    }
    /// This tensor's elements as a slice; requires a contiguous layout.
    pub fn as_slice<T: Float>(&self) -> Result<&[T]> {
        if !self.is_contiguous() {
            return Err(Error::Value("as_slice needs a contiguous tensor; call contiguous() first".into()));
        }
        let (off, n) = (self.layout.offset, self.numel());
        if n == 0 {
            // an empty view may sit past the end of its buffer (a slice at the end of
            // an axis, a zero-size batch of a sequence)
            return Ok(&self.raw::<T>()?[..0]);
        }
        Ok(&self.raw::<T>()?[off..off + n])
    }
    /// Mutable access to the elements, copying first if the buffer is shared or the
    /// layout is not plain contiguous. Keeps the tensor's identity.
    pub fn data_mut<T: Float>(&mut self) -> Result<&mut [T]> {
        if T::DTYPE != self.dtype() {
            return Err(Error::DType(format!("expected {}, got {}", T::DTYPE.name(), self.dtype().name())));
        }
        let n = self.numel();
        if !self.is_contiguous() || self.layout.offset != 0 || self.cpu().len() != n {
            let c = self.contiguous_copy();
            self.storage = c.storage;
            self.layout = c.layout;
        }
        let s = Arc::make_mut(&mut self.storage);
        Ok(T::slice_mut(s.cpu_mut()).expect("dtype checked"))
    }
    /// The elements in row-major order as `T` (which must be this dtype).
    pub fn to_vec<T: Float>(&self) -> Result<Vec<T>> {
        Ok(self.contiguous().as_slice::<T>()?.to_vec())
    }
    /// All elements converted to f64, in row-major order.
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        crate::dispatch!(self.dtype(), T => Ok(self.to_vec::<T>()?.into_iter().map(|v| v.to_f64()).collect()))
    }
    /// The value of a one-element tensor.
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
    pub fn cast_cow(&self, dtype: DType) -> Result<std::borrow::Cow<'_, Tensor>> {
        Ok(if dtype == self.dtype() { std::borrow::Cow::Borrowed(self) } else { std::borrow::Cow::Owned(self.cast(dtype)?) })
    }
    /// This tensor as dtype `T` and contiguous, borrowed when it already is (the usual
    /// case) and copied otherwise: kernels call this instead of `cast(..).contiguous()`,
    /// whose two clones of the header were a measurable part of a small model's step.
    pub fn as_contiguous<T: Float>(&self) -> Result<std::borrow::Cow<'_, Tensor>> {
        if self.dtype() == T::DTYPE && self.is_contiguous() {
            return Ok(std::borrow::Cow::Borrowed(self));
        }
        Ok(std::borrow::Cow::Owned(self.cast(T::DTYPE)?.contiguous()))
    }
    /// This tensor if already contiguous, else a contiguous copy (recorded on the tape).
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            return self.clone();
        }
        let out = self.contiguous_copy();
        // The copy has a fresh id, so it must be on the tape (as a same-shape reshape):
        // otherwise the gradient of `x.t().contiguous()`, or of ops that copy their
        // operands before recording (concat), never reached `x`.
        crate::autodiff::record(&[self], &out, || crate::autodiff::Op::Reshape { in_shape: self.shape().to_vec() });
        out
    }
    fn contiguous_copy(&self) -> Tensor {
        let l = &self.layout;
        crate::dispatch!(self.dtype(), T => {
            let src = self.raw::<T>().expect("dtype");
            let mut out = Vec::with_capacity(l.numel());
            layout::for_each_offset(&l.shape, &l.strides, l.offset, |_, o| out.push(src[o]));
            Tensor::from_cpu(T::vec_into(out), &l.shape)
        })
    }

    /// Convert to another dtype (recorded on the tape).
    pub fn cast(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let c = self.contiguous();
        let out = crate::dispatch!(self.dtype(), S => {
            let src = c.as_slice::<S>()?;
            crate::dispatch!(dtype, D => Tensor::from_cpu(D::vec_into(src.iter().map(|&v| D::f(v.to_f64())).collect()), self.shape()))
        });
        crate::autodiff::record(&[self], &out, || crate::autodiff::Op::Cast { from: self.dtype() });
        Ok(out)
    }

    // ---- in-place updates (never recorded) -----------------------------------------

    /// `self ← self − other` in place (same shape, broadcasting allowed for `other`).
    pub fn sub_assign_(&mut self, other: &Tensor) -> Result<()> {
        let o = other.cast(self.dtype())?.broadcast_to(self.shape())?.contiguous();
        crate::dispatch!(self.dtype(), T => {
            let src = o.as_slice::<T>()?;
            let dst = self.data_mut::<T>()?;
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d -= s);
        });
        Ok(())
    }
    /// Overwrite the values with `src`'s (converted to this dtype), keeping identity.
    pub fn assign_(&mut self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() {
            return Err(shape_err!("cannot assign a tensor of shape {:?} into one of shape {:?}", src.shape(), self.shape()));
        }
        let s = src.cast(self.dtype())?.contiguous();
        crate::dispatch!(self.dtype(), T => self.data_mut::<T>()?.copy_from_slice(s.as_slice::<T>()?));
        Ok(())
    }
    /// Replace storage and layout with `src`'s wholesale (sharing, no copy), keeping identity.
    pub fn replace_data_(&mut self, src: &Tensor) {
        self.storage = src.storage.clone();
        self.layout = src.layout.clone();
    }
}
