//! GPU buffers pooled by size class, so that a steady training step, which asks for the
//! same sizes every step, creates no new GPU buffers after its first.
//!
//! A [`GpuBuffer`] goes back to its free list when dropped, or, while recorded work is
//! pending ([`super::batch`]), when that work is submitted: from then on every later
//! use of the buffer reaches the one queue after its last reader and writer. Handing it
//! out earlier would let an upload into it (`queue.write_buffer`, which lands before the
//! pending work) overwrite what a pending kernel has yet to read.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::device::{context, Context};
use crate::error::{Error, Result};

/// The usage of every compute buffer: bound to shaders, copied from and to.
pub const STORAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);
/// The usage of a read-back buffer: mapped by the host, copied into.
pub const READBACK: wgpu::BufferUsages = wgpu::BufferUsages::MAP_READ.union(wgpu::BufferUsages::COPY_DST);

/// The smallest buffer handed out, in bytes (a 0-element tensor still gets a bindable buffer).
const MIN_BYTES: u64 = 256;

/// The size class of a request of `bytes`: the next of 2^k, 1.25·2^k, 1.5·2^k and
/// 1.75·2^k (at most a quarter wasted), never below `MIN_BYTES` (256 bytes).
///
/// ```
/// use flux_core::backend::wgpu::pool::size_class;
/// assert_eq!(size_class(1), 256);
/// assert_eq!(size_class(1024), 1024);
/// assert_eq!(size_class(1025), 1280);
/// assert_eq!(size_class(1700), 1792);
/// ```
pub fn size_class(bytes: u64) -> u64 {
    let b = bytes.max(MIN_BYTES);
    let top = 63 - b.leading_zeros(); // 2^top <= b
    let quarter = 1u64 << (top - 2);
    b.div_ceil(quarter) * quarter
}

/// How many buffers the pool has created and reused since the process began.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, pool::{stats, GpuBuffer}};
/// if gpu_available() {
///     drop(GpuBuffer::new(3_333_333).unwrap()); // back to the pool
///     let before = stats();
///     let _b = GpuBuffer::new(3_333_333).unwrap(); // served from the free list
///     assert!(stats().reused > before.reused);
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers created on the device (each a real GPU allocation).
    pub created: u64,
    /// Requests served from a free list.
    pub reused: u64,
    /// Bytes held in free lists now.
    pub idle_bytes: u64,
}

#[derive(Default)]
struct Pool {
    free: HashMap<(u32, u64), Vec<wgpu::Buffer>>,
    idle_bytes: u64,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);
static CREATED: AtomicU64 = AtomicU64::new(0);
static REUSED: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static CREATED_HERE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many GPU buffers this thread's requests have created (for checking that a
/// steady loop allocates nothing while other threads use the GPU too).
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, pool::{created_on_this_thread, GpuBuffer}};
/// if gpu_available() {
///     let n = created_on_this_thread();
///     let _b = GpuBuffer::new(12_345_678).unwrap(); // an odd size class: a fresh buffer
///     assert!(created_on_this_thread() >= n);
///     let again = created_on_this_thread();
///     drop(_b);
///     let _c = GpuBuffer::new(12_345_678).unwrap(); // reused: nothing created
///     assert_eq!(created_on_this_thread(), again);
/// }
/// ```
pub fn created_on_this_thread() -> u64 { CREATED_HERE.with(|c| c.get()) }

fn with_pool<R>(f: impl FnOnce(&mut Pool) -> R) -> R {
    let mut g = POOL.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(Pool::default))
}

/// The pool's counters now.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, pool::{stats, GpuBuffer}};
/// let before = stats();
/// if gpu_available() {
///     let _b = GpuBuffer::new(5_555_555).unwrap();
///     let after = stats();
///     assert!(after.created + after.reused > before.created + before.reused); // one more request
/// }
/// ```
pub fn stats() -> PoolStats {
    PoolStats {
        created: CREATED.load(Ordering::Relaxed),
        reused: REUSED.load(Ordering::Relaxed),
        idle_bytes: with_pool(|p| p.idle_bytes),
    }
}

/// Free every idle buffer (the device memory goes back to the driver).
///
/// ```
/// flux_core::backend::wgpu::pool::trim();
/// assert_eq!(flux_core::backend::wgpu::pool::stats().idle_bytes, 0);
/// ```
pub fn trim() {
    with_pool(|p| {
        p.free.clear();
        p.idle_bytes = 0;
    });
}

/// A device buffer of `len` f32-sized (4-byte) elements from the pool; its capacity is
/// its size class. Dropping it returns it to the pool.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, pool::GpuBuffer, transfer};
/// if gpu_available() {
///     let b = transfer::upload(&[1.0, 2.0]).unwrap();
///     assert_eq!((b.len(), b.bytes()), (2, 8));
///     assert!(b.raw().size() >= b.bytes()); // the size class
/// }
/// ```
pub struct GpuBuffer {
    buf: Option<wgpu::Buffer>,
    usage: wgpu::BufferUsages,
    class: u64,
    len: usize,
}

impl std::fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuffer({} elements, {} bytes)", self.len, self.class)
    }
}

/// Buffers from the pool, and their sizes.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, pool::GpuBuffer};
/// if gpu_available() {
///     assert!(GpuBuffer::new(0).unwrap().is_empty());
/// }
/// ```
impl GpuBuffer {
    /// A buffer of `len` 4-byte elements for compute (contents undefined: a reused buffer
    /// keeps what its last user wrote).
    ///
    /// ```
    /// # use flux_core::backend::wgpu::{gpu_available, pool::GpuBuffer};
    /// if gpu_available() {
    ///     let b = GpuBuffer::new(1000).unwrap();
    ///     assert_eq!(b.len(), 1000);
    /// }
    /// ```
    pub fn new(len: usize) -> Result<GpuBuffer> { Self::with_usage(len, STORAGE) }

    /// A buffer of `len` 4-byte elements with the given usage (pooled per usage).
    ///
    /// ```
    /// use flux_core::backend::wgpu::{gpu_available, pool::{GpuBuffer, READBACK}};
    /// if gpu_available() {
    ///     let b = GpuBuffer::with_usage(16, READBACK).unwrap();
    ///     assert!(b.raw().usage().contains(READBACK));
    /// }
    /// ```
    pub fn with_usage(len: usize, usage: wgpu::BufferUsages) -> Result<GpuBuffer> {
        let ctx = context()?;
        let bytes = (len as u64).checked_mul(4).ok_or_else(|| Error::Device(format!("{len} elements overflow a GPU buffer")))?;
        let class = size_class(bytes);
        if class > ctx.limits.max_buffer_size {
            return Err(Error::Device(format!(
                "a GPU buffer of {bytes} bytes exceeds the adapter's limit of {} bytes",
                ctx.limits.max_buffer_size
            )));
        }
        let cached = with_pool(|p| {
            let b = p.free.get_mut(&(usage.bits(), class)).and_then(|v| v.pop());
            if b.is_some() {
                p.idle_bytes -= class;
            }
            b
        });
        let buf = match cached {
            Some(b) => {
                REUSED.fetch_add(1, Ordering::Relaxed);
                b
            }
            None => create(ctx, class, usage)?,
        };
        Ok(GpuBuffer { buf: Some(buf), usage, class, len })
    }

    /// The number of 4-byte elements asked for.
    ///
    /// ```
    /// use flux_core::backend::wgpu::{gpu_available, pool::GpuBuffer};
    /// if gpu_available() {
    ///     assert_eq!(GpuBuffer::new(7).unwrap().len(), 7);
    /// }
    /// ```
    pub fn len(&self) -> usize { self.len }
    /// Was it asked for with no elements?
    ///
    /// ```
    /// use flux_core::backend::wgpu::{gpu_available, pool::GpuBuffer};
    /// if gpu_available() {
    ///     assert!(!GpuBuffer::new(1).unwrap().is_empty());
    /// }
    /// ```
    pub fn is_empty(&self) -> bool { self.len == 0 }
    /// The bytes the elements take (`4 * len`).
    ///
    /// ```
    /// use flux_core::backend::wgpu::{gpu_available, pool::GpuBuffer};
    /// if gpu_available() {
    ///     assert_eq!(GpuBuffer::new(10).unwrap().bytes(), 40);
    /// }
    /// ```
    pub fn bytes(&self) -> u64 { 4 * self.len as u64 }
    /// The wgpu buffer (its size is the size class, at least [`Self::bytes`]).
    ///
    /// ```
    /// use flux_core::backend::wgpu::{gpu_available, pool::GpuBuffer};
    /// if gpu_available() {
    ///     let b = GpuBuffer::new(10).unwrap();
    ///     assert!(b.raw().size() >= 40);
    /// }
    /// ```
    pub fn raw(&self) -> &wgpu::Buffer { self.buf.as_ref().expect("a GpuBuffer holds its buffer until dropped") }
}

fn create(ctx: &Context, class: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
    let b = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("flux_rs pool"),
        size: class,
        usage,
        mapped_at_creation: false,
    });
    ctx.check("creating a GPU buffer")?;
    CREATED.fetch_add(1, Ordering::Relaxed);
    CREATED_HERE.with(|c| c.set(c.get() + 1));
    Ok(b)
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            let key = (self.usage.bits(), self.class);
            // (the batch's lock is taken and released before the pool's: never nested the other way)
            if let Some(b) = super::batch::retire(key, b) {
                release(vec![(key, b)]);
            }
        }
    }
}

/// Put buffers (with their `(usage bits, size class)` keys) on the free lists.
pub(super) fn release(bufs: Vec<((u32, u64), wgpu::Buffer)>) {
    if bufs.is_empty() {
        return;
    }
    with_pool(|p| {
        for (key, b) in bufs {
            p.free.entry(key).or_default().push(b);
            p.idle_bytes += key.1;
        }
    });
}
