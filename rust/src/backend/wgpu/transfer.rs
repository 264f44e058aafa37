//! Host ↔ device copies: upload into a pooled buffer, download through a pooled
//! read-back buffer (the only place the host waits for the GPU, after submitting the
//! pending batch of kernels).
use super::device::context;
use super::pool::{GpuBuffer, READBACK};
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};

// every device → host read, counted (a training step should read back only its loss)
static READS: AtomicU64 = AtomicU64::new(0);
static READ_BYTES: AtomicU64 = AtomicU64::new(0);

/// Device → host reads so far in this process: `(reads, bytes)`. A GPU training step
/// reads back its loss (one f32) and nothing else; tests compare two snapshots.
///
/// ```
/// # use flux_core::backend::wgpu::{gpu_available, transfer};
/// if gpu_available() {
///     let b = transfer::upload(&[1.0, 2.0]).unwrap();
///     let (n0, b0) = transfer::reads();
///     transfer::download(&b).unwrap();
///     let (n1, b1) = transfer::reads();
///     assert!(n1 >= n0 + 1 && b1 >= b0 + 8);
/// }
/// ```
pub fn reads() -> (u64, u64) { (READS.load(Ordering::Relaxed), READ_BYTES.load(Ordering::Relaxed)) }

/// A new device buffer holding `data`.
///
/// ```
/// # use flux_core::backend::wgpu::{gpu_available, transfer};
/// if gpu_available() {
///     let b = transfer::upload(&[1.0, 2.0, 3.0]).unwrap();
///     assert_eq!(transfer::download(&b).unwrap(), vec![1.0, 2.0, 3.0]);
/// }
/// ```
pub fn upload(data: &[f32]) -> Result<GpuBuffer> {
    let b = GpuBuffer::new(data.len())?;
    write_fresh(&b, 0, bytemuck::cast_slice(data))?;
    Ok(b)
}

/// A new device buffer holding the u32 values `data` (indices, shapes and other
/// parameters of kernels).
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, transfer};
/// if gpu_available() {
///     let b = transfer::upload_u32(&[1, 2, u32::MAX]).unwrap();
///     assert_eq!(transfer::download_u32(&b).unwrap(), vec![1, 2, u32::MAX]);
/// }
/// ```
pub fn upload_u32(data: &[u32]) -> Result<GpuBuffer> {
    let b = GpuBuffer::new(data.len())?;
    write_fresh(&b, 0, bytemuck::cast_slice(data))?;
    Ok(b)
}

/// Overwrite the bytes of `buf` from byte `offset` on with `bytes` (a multiple of 4 long).
/// The write lands before any work submitted after this call and after all work
/// submitted before it (pending batched work is submitted first, as it may use `buf`).
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, transfer};
/// if gpu_available() {
///     let b = transfer::upload(&[0.0, 0.0]).unwrap();
///     transfer::write(&b, 4, &2.5f32.to_le_bytes()).unwrap(); // the second element
///     assert_eq!(transfer::download(&b).unwrap(), vec![0.0, 2.5]);
///     assert!(transfer::write(&b, 2, &[0; 4]).is_err()); // not 4-byte aligned
/// }
/// ```
pub fn write(buf: &GpuBuffer, offset: u64, bytes: &[u8]) -> Result<()> {
    if !bytes.is_empty() {
        super::batch::flush()?;
    }
    write_fresh(buf, offset, bytes)
}

/// [`write`] into a buffer just taken from the pool, which no pending work uses (the
/// pool holds back buffers dropped while work is pending): no flush needed, the write
/// lands before any work recorded after this call.
fn write_fresh(buf: &GpuBuffer, offset: u64, bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    if offset + bytes.len() as u64 > buf.raw().size() || bytes.len() % 4 != 0 || offset % 4 != 0 {
        return Err(Error::Device(format!(
            "cannot write {} bytes at byte {offset} of a GPU buffer of {} bytes",
            bytes.len(),
            buf.raw().size()
        )));
    }
    let ctx = context()?;
    ctx.queue.write_buffer(buf.raw(), offset, bytes);
    ctx.check("writing a GPU buffer")
}

/// The first `buf.len()` elements of `buf` as f32, after all submitted work is done.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, transfer};
/// if gpu_available() {
///     assert_eq!(transfer::download(&transfer::upload(&[4.0, 5.0]).unwrap()).unwrap(), vec![4.0, 5.0]);
/// }
/// ```
pub fn download(buf: &GpuBuffer) -> Result<Vec<f32>> { download_range(buf, 0, buf.len()) }

/// Elements `start..start + len` of `buf` as f32.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, transfer};
/// if gpu_available() {
///     let b = transfer::upload(&[1.0, 2.0, 3.0, 4.0]).unwrap();
///     assert_eq!(transfer::download_range(&b, 1, 2).unwrap(), vec![2.0, 3.0]);
/// }
/// ```
pub fn download_range(buf: &GpuBuffer, start: usize, len: usize) -> Result<Vec<f32>> {
    // the bytes of a Vec<u8> need not be aligned for f32: copy them out element by element
    Ok(bytemuck::pod_collect_to_vec(&download_bytes(buf, 4 * start as u64, 4 * len as u64)?))
}

/// The first `buf.len()` elements of `buf` as u32.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, transfer};
/// if gpu_available() {
///     assert_eq!(transfer::download_u32(&transfer::upload_u32(&[7, 8]).unwrap()).unwrap(), vec![7, 8]);
/// }
/// ```
pub fn download_u32(buf: &GpuBuffer) -> Result<Vec<u32>> {
    Ok(bytemuck::pod_collect_to_vec(&download_bytes(buf, 0, buf.bytes())?))
}

fn download_bytes(buf: &GpuBuffer, offset: u64, bytes: u64) -> Result<Vec<u8>> {
    if bytes == 0 {
        return Ok(Vec::new());
    }
    if offset + bytes > buf.raw().size() {
        return Err(Error::Device(format!("cannot read {bytes} bytes at byte {offset} of a GPU buffer of {} bytes", buf.raw().size())));
    }
    READS.fetch_add(1, Ordering::Relaxed);
    READ_BYTES.fetch_add(bytes, Ordering::Relaxed);
    let ctx = context()?;
    let staging = GpuBuffer::with_usage((bytes / 4) as usize, READBACK)?;
    // the copy follows the pending work in the batch, which is submitted with it
    super::batch::copy_and_flush(buf.raw(), offset, staging.raw(), bytes)?;
    let (tx, rx) = std::sync::mpsc::channel();
    staging.raw().map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
        let _ = tx.send(r);
    });
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| Error::Device(format!("waiting for the GPU: {e}")))?;
    let mapped = rx.recv().map_err(|_| Error::Device("the GPU read-back never finished".into()))?;
    ctx.check("reading a GPU buffer back")?;
    mapped.map_err(|e| Error::Device(format!("mapping a GPU buffer for reading: {e}")))?;
    let out = {
        let view = staging.raw().get_mapped_range(0..bytes).map_err(|e| Error::Device(format!("reading a mapped GPU buffer: {e}")))?;
        view.to_vec()
    };
    staging.raw().unmap();
    Ok(out)
}
