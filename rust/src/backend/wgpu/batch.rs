//! The pending command buffer: [`launch`](super::kernel::launch) records each dispatch
//! into one shared command encoder instead of submitting it alone, and the encoder is
//! submitted (flushed) only when it must be:
//!
//! - the host needs data: a download ([`transfer::download`](super::transfer::download))
//!   records its copy here and flushes before mapping;
//! - a queue write to a buffer that pending work may use ([`transfer::write`](super::transfer::write));
//! - [`MAX_DISPATCHES`] dispatches, a full parameter arena, or [`MAX_RETIRED_BYTES`] of
//!   buffers held back (below);
//! - an explicit [`flush`].
//!
//! A training step thus becomes a few submits instead of one per kernel.
//!
//! Why this stays correct:
//! - Dispatches recorded into one encoder run in recording order (wgpu puts a barrier
//!   between passes that share a buffer), just as separate submits did.
//! - `queue.write_buffer` is the one operation that does NOT follow recording order:
//!   it lands before every command buffer of the next submit, i.e. before pending
//!   dispatches recorded earlier. So (a) a buffer dropped while a batch is pending is
//!   not handed out again until the batch is submitted (`retire`): an upload into a
//!   buffer fresh from the pool can never overtake a pending reader or writer of it,
//!   and (b) a write into a live buffer flushes first.
//! - Kernel parameters go into one arena buffer per batch at aligned offsets: the host
//!   copy is written with one `write_buffer` just before the submit, which lands before
//!   the batch's dispatches, as they need. The arena is reused by the next batch only
//!   through a later `write_buffer`, which the queue orders after this submit.
//! - The lock is held across `finish` and `submit`, so batches reach the queue in the
//!   order their work was recorded, whatever the thread.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::device::{context, Context};
use crate::error::{Error, Result};

/// Dispatches recorded before the batch is submitted regardless.
pub const MAX_DISPATCHES: u32 = 256;
/// Bytes of dropped buffers held back from the pool before the batch is submitted
/// regardless (bounds the memory a batch can pin).
pub const MAX_RETIRED_BYTES: u64 = 256 << 20;
/// Bytes of kernel parameters one batch holds (the arena); more flushes.
pub(crate) const ARENA_BYTES: u64 = 64 << 10;

static SUBMITS: AtomicU64 = AtomicU64::new(0);
static UNBATCHED: AtomicBool = AtomicBool::new(false);

/// Submit every dispatch alone, as before batching (a diagnostic: results must not
/// change, only the number of submits).
#[doc(hidden)]
pub fn set_unbatched(on: bool) { UNBATCHED.store(on, Ordering::Relaxed) }
static DISPATCHES: AtomicU64 = AtomicU64::new(0);

/// How many command buffers have been submitted to the queue since the process began
/// (a diagnostic: a training step should take a few, not one per kernel).
#[doc(hidden)]
pub fn submits() -> u64 { SUBMITS.load(Ordering::Relaxed) }

/// How many kernel dispatches have been recorded since the process began.
#[doc(hidden)]
pub fn dispatches() -> u64 { DISPATCHES.load(Ordering::Relaxed) }

struct Batch {
    enc: wgpu::CommandEncoder,
    dispatches: u32,
    /// the host copy of the parameter arena, up to the last launch's parameters
    params: Vec<u8>,
    /// buffers dropped while this batch was pending: (pool key, buffer)
    retired: Vec<((u32, u64), wgpu::Buffer)>,
    retired_bytes: u64,
    /// the last kernel recorded, to name in an error at submit
    last: &'static str,
}

struct State {
    batch: Option<Batch>,
    // the parameter arena, made once and reused by every batch
    arena: Option<wgpu::Buffer>,
}

static STATE: Mutex<State> = Mutex::new(State { batch: None, arena: None });

fn lock() -> std::sync::MutexGuard<'static, State> { STATE.lock().unwrap_or_else(|e| e.into_inner()) }

/// Where a launch's parameters lie in the arena.
pub(crate) struct ArenaSlot<'a> {
    /// the arena buffer
    pub buffer: &'a wgpu::Buffer,
    /// byte offset of the parameters
    pub offset: u64,
}

/// Record one dispatch into the pending batch (starting one if none): `record` gets the
/// encoder and, when `params` is not empty and fits the arena, the parameters' slot in
/// it (else `None`, and the caller binds its own buffer). Flushes when a limit is hit.
pub(crate) fn record(
    ctx: &Context,
    name: &'static str,
    params: &[u32],
    record: impl FnOnce(&mut wgpu::CommandEncoder, Option<ArenaSlot<'_>>),
) -> Result<()> {
    let mut st = lock();
    let align = u64::from(ctx.limits.min_storage_buffer_offset_alignment).max(4);
    let bytes = 4 * params.len() as u64;
    let used = st.batch.as_ref().map_or(0, |b| b.params.len() as u64);
    let at = used.next_multiple_of(align);
    let in_arena = !params.is_empty() && bytes <= ARENA_BYTES;
    if in_arena && at + bytes > ARENA_BYTES {
        submit(ctx, &mut st)?;
    }
    let State { batch, arena } = &mut *st;
    let b = batch.get_or_insert_with(|| Batch {
        enc: ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("flux_rs batch") }),
        dispatches: 0,
        params: Vec::new(),
        retired: Vec::new(),
        retired_bytes: 0,
        last: name,
    });
    let slot = if in_arena {
        let arena = arena.get_or_insert_with(|| {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("flux_rs kernel parameters"),
                size: ARENA_BYTES,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        let at = (b.params.len() as u64).next_multiple_of(align);
        b.params.resize(at as usize, 0);
        b.params.extend_from_slice(bytemuck::cast_slice(params));
        Some(ArenaSlot { buffer: &*arena, offset: at })
    } else {
        None
    };
    record(&mut b.enc, slot);
    b.dispatches += 1;
    b.last = name;
    DISPATCHES.fetch_add(1, Ordering::Relaxed);
    if b.dispatches >= MAX_DISPATCHES || UNBATCHED.load(Ordering::Relaxed) {
        submit(ctx, &mut st)?;
    }
    Ok(())
}

/// Record a buffer copy into the pending batch and submit it (for a read-back, which
/// maps the destination next).
pub(crate) fn copy_and_flush(src: &wgpu::Buffer, offset: u64, dst: &wgpu::Buffer, bytes: u64) -> Result<()> {
    let ctx = context()?;
    let mut st = lock();
    let b = st.batch.get_or_insert_with(|| Batch {
        enc: ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("flux_rs batch") }),
        dispatches: 0,
        params: Vec::new(),
        retired: Vec::new(),
        retired_bytes: 0,
        last: "a read-back copy",
    });
    b.enc.copy_buffer_to_buffer(src, offset, dst, 0, bytes);
    submit(ctx, &mut st)
}

/// Submit the pending work, if any. Every read-back does this itself; call it to make
/// queued GPU work start now (before timing, or before handing the GPU to other code).
///
/// ```
/// flux_core::backend::wgpu::batch::flush().unwrap();
/// ```
pub fn flush() -> Result<()> {
    let Ok(ctx) = context() else { return Ok(()) };
    submit(ctx, &mut lock())
}

/// Is there recorded work not yet submitted?
#[doc(hidden)]
pub fn pending() -> bool { lock().batch.is_some() }

fn submit(ctx: &Context, st: &mut State) -> Result<()> {
    let Some(b) = st.batch.take() else { return Ok(()) };
    if !b.params.is_empty() {
        let arena = st.arena.as_ref().expect("an arena exists once parameters were recorded");
        ctx.queue.write_buffer(arena, 0, &b.params);
    }
    ctx.queue.submit([b.enc.finish()]);
    SUBMITS.fetch_add(1, Ordering::Relaxed);
    // the retired buffers' last users are on the queue now: later work runs after them
    super::pool::release(b.retired);
    ctx.check(&format!("running {} batched GPU kernels (the last {})", b.dispatches, b.last))
}

/// Called by a dropped pool buffer: while a batch is pending, keep the buffer out of the
/// pool until the batch is submitted (it may be pending work's operand); else give it
/// back to the caller to return to the pool at once.
pub(crate) fn retire(key: (u32, u64), buf: wgpu::Buffer) -> Option<wgpu::Buffer> {
    let mut st = lock();
    let Some(b) = st.batch.as_mut() else { return Some(buf) };
    b.retired.push((key, buf));
    b.retired_bytes += key.1;
    if b.retired_bytes >= MAX_RETIRED_BYTES {
        if let Ok(ctx) = context() {
            // an error here resurfaces at the next check (a drop cannot return it)
            if let Err(e) = submit(ctx, &mut st) {
                ctx.defer_error(e);
            }
        }
    }
    None
}

/// Errors from places that cannot return them (crate-internal), reported by the next
/// [`Context::check`].
///
/// ```
/// use flux_core::backend::wgpu::context;
/// if let Ok(ctx) = context() {
///     assert!(ctx.check("a quiet moment").is_ok()); // nothing deferred
/// }
/// ```
impl Context {
    /// Keep an error to be returned by the next [`Context::check`] (for places that
    /// cannot return one, like a drop).
    pub(crate) fn defer_error(&self, e: Error) { self.push_error(e.to_string()) }
}
