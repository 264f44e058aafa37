//! Running a WGSL compute kernel over pooled buffers, with one compiled pipeline per
//! kernel, entry point and specialisation, made on first use and cached.
//!
//! The binding convention every kernel follows: the buffers at `@group(0)`, bindings
//! `0, 1, 2, …` in the order given to [`launch`], and, when `params` is not empty, the
//! parameters as `@group(1) @binding(0) var<storage, read> p: array<u32>` (f32 values
//! go in bit-cast with [`f32_bits`] and come out with `bitcast<f32>(p[i])`).
//! Specialisations are WGSL `override` constants (e.g. the op of an elementwise
//! kernel), so one source gives one pipeline per op with no branch at run time.
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::batch;
use super::device::{context, Context};
use super::pool::GpuBuffer;
use super::transfer;
use crate::error::{Error, Result};

/// A WGSL source: `name` labels its pipelines and keys the cache; `source` is the
/// whole module text (usually `include_str!` of a file under `kernels/`).
///
/// ```
/// use flux_core::backend::wgpu::kernel::Kernel;
/// const DOUBLE: Kernel = Kernel { name: "double", source: "@group(0) @binding(0) var<storage, read_write> x: array<f32>;" };
/// assert_eq!(DOUBLE.name, "double");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    /// A unique name for the source.
    pub name: &'static str,
    /// The WGSL module.
    pub source: &'static str,
}

type Key = (&'static str, String, Vec<(String, u64)>);

static PIPELINES: Mutex<Option<HashMap<Key, Arc<wgpu::ComputePipeline>>>> = Mutex::new(None);
static COMPILED: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static COMPILED_HERE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many pipelines have been compiled since the process began (each kernel, entry
/// and specialisation once).
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, kernel::pipelines_compiled, transfer};
/// use flux_core::{DType, Device, Tensor};
/// if gpu_available() {
///     let x = Tensor::ones(&[4], DType::F32).to_device(Device::Wgpu).unwrap();
///     x.neg().unwrap(); // compiles the kernel on first use
///     let n = pipelines_compiled();
///     assert!(n > 0);
///     x.neg().unwrap(); // cached (other threads may compile theirs meanwhile)
///     assert!(pipelines_compiled() >= n);
/// }
/// ```
pub fn pipelines_compiled() -> u64 { COMPILED.load(Ordering::Relaxed) }

/// How many of them this thread compiled.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, kernel::pipelines_compiled_on_this_thread};
/// use flux_core::{DType, Device, Tensor};
/// if gpu_available() {
///     let x = Tensor::ones(&[4], DType::F32).to_device(Device::Wgpu).unwrap();
///     x.abs().unwrap();
///     let n = pipelines_compiled_on_this_thread();
///     x.abs().unwrap();
///     assert_eq!(pipelines_compiled_on_this_thread(), n);
/// }
/// ```
pub fn pipelines_compiled_on_this_thread() -> u64 { COMPILED_HERE.with(|c| c.get()) }

/// The bits of an f32, for a kernel's `params`.
///
/// ```
/// assert_eq!(flux_core::backend::wgpu::kernel::f32_bits(1.0), 0x3f80_0000);
/// ```
pub fn f32_bits(x: f32) -> u32 { x.to_bits() }

/// Workgroups for `n` invocations of a kernel whose workgroup holds `wg` invocations:
/// spread over x and y when x alone would pass the 65535 limit (the kernel computes its
/// index as `gid.x + gid.y * num_workgroups.x * wg`).
///
/// ```
/// use flux_core::backend::wgpu::kernel::groups_1d;
/// assert_eq!(groups_1d(1000, 256), [4, 1, 1]);
/// assert_eq!(groups_1d(256 * 70000, 256), [35000, 2, 1]);
/// ```
pub fn groups_1d(n: usize, wg: u32) -> [u32; 3] {
    let g = n.div_ceil(wg as usize).max(1);
    if g <= 65535 {
        return [g as u32, 1, 1];
    }
    let y = g.div_ceil(65535);
    [g.div_ceil(y) as u32, y as u32, 1]
}

fn pipeline(ctx: &Context, k: &Kernel, entry: &str, consts: &[(&str, f64)]) -> Result<Arc<wgpu::ComputePipeline>> {
    let key: Key = (k.name, entry.to_string(), consts.iter().map(|(n, v)| (n.to_string(), v.to_bits())).collect());
    let mut guard = PIPELINES.lock().unwrap_or_else(|e| e.into_inner());
    let cache = guard.get_or_insert_with(HashMap::new);
    if let Some(p) = cache.get(&key) {
        return Ok(p.clone());
    }
    ctx.check("an earlier GPU call")?;
    let module = ctx.device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(k.name),
        source: wgpu::ShaderSource::Wgsl(k.source.into()),
    });
    let p = ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(k.name),
        layout: None,
        module: &module,
        entry_point: Some(entry),
        compilation_options: wgpu::PipelineCompilationOptions { constants: consts, zero_initialize_workgroup_memory: false },
        cache: None,
    });
    ctx.check(&format!("compiling the GPU kernel {}::{entry}", k.name))?;
    COMPILED.fetch_add(1, Ordering::Relaxed);
    COMPILED_HERE.with(|c| c.set(c.get() + 1));
    let p = Arc::new(p);
    cache.insert(key, p.clone());
    Ok(p)
}

fn binding(b: &GpuBuffer) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer: b.raw(),
        offset: 0,
        // exactly the elements asked for, so that arrayLength() in WGSL is the length
        size: NonZeroU64::new(b.bytes().max(4)),
    })
}

/// Run `entry` of `kernel`, specialised by the `override` constants `consts`, over
/// `buffers` (bindings 0.. of group 0) and `params` (group 1), on `groups` workgroups.
/// The dispatch is recorded into the pending batch ([`batch`]) and runs, in recording
/// order, when the batch is submitted: at the latest when the host reads a buffer back.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, kernel::{groups_1d, launch, Kernel}, transfer};
/// const AXPY: Kernel = Kernel { name: "doc_axpy", source: "
///     @group(0) @binding(0) var<storage, read> x: array<f32>;
///     @group(0) @binding(1) var<storage, read_write> y: array<f32>;
///     @group(1) @binding(0) var<storage, read> p: array<u32>;
///     @compute @workgroup_size(64)
///     fn main(@builtin(global_invocation_id) g: vec3<u32>) {
///         if g.x < p[0] { y[g.x] += bitcast<f32>(p[1]) * x[g.x]; }
///     }" };
/// if gpu_available() {
///     let x = transfer::upload(&[1.0, 2.0, 3.0]).unwrap();
///     let y = transfer::upload(&[1.0, 1.0, 1.0]).unwrap();
///     launch(&AXPY, "main", &[], &[&x, &y], &[3, 2.0f32.to_bits()], groups_1d(3, 64)).unwrap();
///     assert_eq!(transfer::download(&y).unwrap(), vec![3.0, 5.0, 7.0]);
/// }
/// ```
pub fn launch(
    kernel: &Kernel,
    entry: &str,
    consts: &[(&str, f64)],
    buffers: &[&GpuBuffer],
    params: &[u32],
    groups: [u32; 3],
) -> Result<()> {
    let ctx = context()?;
    let max = ctx.limits.max_compute_workgroups_per_dimension;
    if groups.iter().any(|&g| g > max) {
        return Err(Error::Device(format!("{}::{entry}: {groups:?} workgroups exceed the adapter's {max} per dimension", kernel.name)));
    }
    if groups.contains(&0) {
        return Ok(());
    }
    let pipe = pipeline(ctx, kernel, entry, consts)?;
    let entries: Vec<wgpu::BindGroupEntry> =
        buffers.iter().enumerate().map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: binding(b) }).collect();
    let g0 = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(kernel.name),
        layout: &pipe.get_bind_group_layout(0),
        entries: &entries,
    });
    let groups_layout = (!params.is_empty()).then(|| pipe.get_bind_group_layout(1));
    let params_group = |buffer: &wgpu::Buffer, offset: u64| {
        ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("params"),
            layout: groups_layout.as_ref().expect("parameters were given"),
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset,
                    size: NonZeroU64::new(4 * params.len() as u64),
                }),
            }],
        })
    };
    // parameters too many for the batch's arena get a buffer of their own (fresh from
    // the pool, so its upload cannot overtake pending work; dropped after the lock)
    let own = if 4 * params.len() as u64 > batch::ARENA_BYTES { Some(transfer::upload_u32(params)?) } else { None };
    batch::record(ctx, kernel.name, params, |enc, slot| {
        let g1 = match (&own, slot) {
            (Some(b), _) => Some(params_group(b.raw(), 0)),
            (None, Some(s)) => Some(params_group(s.buffer, s.offset)),
            (None, None) => None,
        };
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(kernel.name), timestamp_writes: None });
        pass.set_pipeline(&pipe);
        pass.set_bind_group(0, &g0, &[]);
        if let Some(g1) = &g1 {
            pass.set_bind_group(1, g1, &[]);
        }
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    })?;
    drop(own);
    ctx.check(&format!("running the GPU kernel {}::{entry}", kernel.name))
}
