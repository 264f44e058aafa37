//! float16 storage on the GPU, where the adapter has `shader-f16`: a [`HalfBuffer`]
//! holds `n` f16 values packed two to a 4-byte word (half the memory of f32), made from
//! and widened back to f32 buffers by the kernels of `kernels/half.wgsl`.
//!
//! Tensors have no float16 dtype (the CPU has no f16 kernels), so the f16 data lives in
//! these buffers, behind the tensor API: `MixedPrecision` on a GPU parameter rounds its
//! float32 master copy through float16 with [`round_f16`]. An adapter without
//! `shader-f16` gives `Error::Device` naming the adapter and the feature, never a
//! silently different result.
use super::device::context;
use super::elementwise::{word, WG};
use super::kernel::{groups_1d, launch, Kernel};
use super::pool::GpuBuffer;
use crate::error::{Error, Result};

const HALF: Kernel = Kernel {
    name: "half",
    source: concat!("enable f16;\n", include_str!("kernels/layout.wgsl"), include_str!("kernels/half.wgsl")),
};

/// `Ok` when the adapter can store and compute float16 (`shader-f16`), else
/// `Error::Device` saying which adapter lacks it.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, half};
/// if gpu_available() {
///     match half::f16_supported() {
///         Ok(()) => println!("float16 storage available"),
///         Err(e) => println!("{e}"),
///     }
/// }
/// ```
pub fn f16_supported() -> Result<()> {
    let ctx = context()?;
    if ctx.info.shader_f16 {
        return Ok(());
    }
    Err(Error::Device(format!(
        "float16 on the GPU needs the shader-f16 feature, which the adapter {:?} ({}) lacks; keep float32 \
         (e.g. MixedPrecision with a float32 parameter on this GPU, or on the CPU)",
        ctx.info.name, ctx.info.backend
    )))
}

/// `n` float16 values on the GPU (packed two to a word of its buffer).
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, half, transfer};
/// if gpu_available() && half::f16_supported().is_ok() {
///     let h = half::to_f16(&transfer::upload(&[1.0, 2.0, 3.0]).unwrap(), 3).unwrap();
///     assert_eq!((h.len(), h.buffer().len()), (3, 2)); // two values a word
/// }
/// ```
#[derive(Debug)]
pub struct HalfBuffer {
    buf: GpuBuffer,
    len: usize,
}

/// Its size and buffer.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, half, transfer};
/// if gpu_available() && half::f16_supported().is_ok() {
///     assert!(!half::to_f16(&transfer::upload(&[1.0]).unwrap(), 1).unwrap().is_empty());
/// }
/// ```
impl HalfBuffer {
    /// The number of f16 values.
    ///
    /// ```
    /// use flux_core::backend::wgpu::{gpu_available, half, transfer};
    /// if gpu_available() && half::f16_supported().is_ok() {
    ///     assert_eq!(half::to_f16(&transfer::upload(&[1.0, 2.0]).unwrap(), 2).unwrap().len(), 2);
    /// }
    /// ```
    pub fn len(&self) -> usize { self.len }
    /// Does it hold no values?
    ///
    /// ```
    /// use flux_core::backend::wgpu::{gpu_available, half, transfer};
    /// if gpu_available() && half::f16_supported().is_ok() {
    ///     assert!(!half::to_f16(&transfer::upload(&[1.0]).unwrap(), 1).unwrap().is_empty());
    /// }
    /// ```
    pub fn is_empty(&self) -> bool { self.len == 0 }
    /// The device buffer (`len.div_ceil(2)` words).
    ///
    /// ```
    /// use flux_core::backend::wgpu::{gpu_available, half, transfer};
    /// if gpu_available() && half::f16_supported().is_ok() {
    ///     assert_eq!(half::to_f16(&transfer::upload(&[1.0; 5]).unwrap(), 5).unwrap().buffer().len(), 3);
    /// }
    /// ```
    pub fn buffer(&self) -> &GpuBuffer { &self.buf }
}

fn run(entry: &str, bufs: &[&GpuBuffer], n: usize) -> Result<()> {
    f16_supported()?;
    launch(&HALF, entry, &[], bufs, &[word(n, "elements")?], groups_1d(n, WG))
}

/// The first `n` f32 of `src` narrowed to float16 (rounded to nearest; beyond ±65504
/// they become ±∞).
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, half, transfer};
/// if gpu_available() && half::f16_supported().is_ok() {
///     let x = transfer::upload(&[1.0, 0.1, 3.0]).unwrap();
///     let h = half::to_f16(&x, 3).unwrap();
///     let back = transfer::download(&half::to_f32(&h).unwrap()).unwrap();
///     assert_eq!(back[0], 1.0);
///     assert!((back[1] - 0.1).abs() < 1e-4 && back[1] != 0.1);
/// }
/// ```
pub fn to_f16(src: &GpuBuffer, n: usize) -> Result<HalfBuffer> {
    if n > src.len() {
        return Err(Error::Device(format!("to_f16: {n} values asked of a GPU buffer of {}", src.len())));
    }
    let out = GpuBuffer::new(n.div_ceil(2))?;
    run("to_f16", &[src, &out], n)?;
    Ok(HalfBuffer { buf: out, len: n })
}

/// The values of `h` widened to f32 (exactly: every f16 is an f32).
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, half, transfer};
/// if gpu_available() && half::f16_supported().is_ok() {
///     let h = half::to_f16(&transfer::upload(&[1.0, 2.0, 0.5]).unwrap(), 3).unwrap();
///     assert_eq!(transfer::download(&half::to_f32(&h).unwrap()).unwrap(), vec![1.0, 2.0, 0.5]); // exact in f16
/// }
/// ```
pub fn to_f32(h: &HalfBuffer) -> Result<GpuBuffer> {
    let out = GpuBuffer::new(h.len)?;
    run("to_f32", &[&out, &h.buf], h.len)?;
    Ok(out)
}

/// `dst[i] = f32(f16(src[i]))` for the first `n` elements: what a float16 copy of `src`
/// holds, in f32 storage that every f32 kernel can read.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, half, transfer};
/// if gpu_available() && half::f16_supported().is_ok() {
///     let (src, dst) = (transfer::upload(&[1.0, 0.1]).unwrap(), transfer::upload(&[0.0, 0.0]).unwrap());
///     half::round_f16(&src, &dst, 2).unwrap();
///     let d = transfer::download(&dst).unwrap();
///     assert!(d[0] == 1.0 && (d[1] - 0.1).abs() < 1e-4 && d[1] != 0.1);
/// }
/// ```
pub fn round_f16(src: &GpuBuffer, dst: &GpuBuffer, n: usize) -> Result<()> {
    if n > src.len() || n > dst.len() {
        return Err(Error::Device(format!("round_f16: {n} values asked of GPU buffers of {} and {}", src.len(), dst.len())));
    }
    run("round_f16", &[src, dst], n)
}
