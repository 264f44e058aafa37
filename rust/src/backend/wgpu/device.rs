//! The one wgpu context of the process: instance → adapter → device and queue, made on
//! first use and kept for the life of the process.
//!
//! The adapter is the best one found: a discrete GPU before an integrated one, before a
//! virtual one, before a CPU implementation (Mesa's lavapipe). `FLUX_GPU_ADAPTER=<text>`
//! picks the first adapter whose name contains `<text>` (case-insensitive) instead;
//! wgpu's own `WGPU_BACKEND` (e.g. `vulkan`) narrows the backends searched.
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, Result};

/// What the adapter in use is, for users to print (`fx.gpu_info()` in Python).
///
/// ```
/// use flux_core::backend::wgpu::gpu_info;
/// if let Ok(info) = gpu_info() {
///     assert!(!info.name.is_empty());
///     assert!(["vulkan", "metal", "dx12"].contains(&info.backend.as_str()));
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuInfo {
    /// The adapter's name, e.g. `"NVIDIA H100"` or `"llvmpipe (LLVM 19.1.7, 256 bits)"`.
    pub name: String,
    /// The graphics API wgpu drives it with: `"vulkan"`, `"metal"` or `"dx12"`.
    pub backend: String,
    /// `"discrete"`, `"integrated"`, `"virtual"`, `"cpu"` or `"other"`.
    pub device_type: String,
    /// The driver and its version, as the driver reports them.
    pub driver: String,
    /// Can shaders compute in f16 (the `shader-f16` feature, for float16 storage)?
    pub shader_f16: bool,
}

/// The process-wide device and queue, with what they were made from.
///
/// ```
/// use flux_core::backend::wgpu::context;
/// if let Ok(ctx) = context() {
///     assert!(ctx.limits.max_buffer_size > 0);
///     assert_eq!(ctx.info.name, ctx.adapter.get_info().name);
/// }
/// ```
pub struct Context {
    /// The adapter the device was requested from.
    pub adapter: wgpu::Adapter,
    /// The logical device: creates buffers, pipelines and command encoders.
    pub device: wgpu::Device,
    /// The queue every command is submitted to (one queue: commands run in order).
    pub queue: wgpu::Queue,
    /// The adapter's description.
    pub info: GpuInfo,
    /// The limits the device was created with (the adapter's own).
    pub limits: wgpu::Limits,
    // wgpu reports validation errors through a callback; they are kept here and turned
    // into `Error::Device` by the next call that checks (instead of wgpu's default panic)
    errors: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("info", &self.info).finish_non_exhaustive()
    }
}

/// Error reporting.
///
/// ```
/// use flux_core::backend::wgpu::context;
/// if let Ok(ctx) = context() {
///     assert!(ctx.check("nothing").is_ok());
/// }
/// ```
impl Context {
    /// Return (and clear) the errors wgpu reported since the last check, as one
    /// `Error::Device` naming `what` was being done.
    ///
    /// ```
    /// use flux_core::backend::wgpu::context;
    /// if let Ok(ctx) = context() {
    ///     // nothing went wrong since the last check
    ///     assert!(ctx.check("an idle moment").is_ok());
    /// }
    /// ```
    pub fn check(&self, what: &str) -> Result<()> {
        let mut errs = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errs.is_empty() {
            return Ok(());
        }
        let msg = errs.join("; ");
        errs.clear();
        Err(Error::Device(format!("GPU error in {what}: {msg}")))
    }

    /// Keep an error message for the next [`Context::check`].
    pub(crate) fn push_error(&self, msg: String) { self.errors.lock().unwrap_or_else(|e| e.into_inner()).push(msg) }
}

static CONTEXT: OnceLock<std::result::Result<Context, String>> = OnceLock::new();

/// The global context, created on first call. No adapter (or a device that cannot be
/// made) gives `Error::Device` saying why, every time it is asked.
///
/// ```
/// # use flux_core::backend::wgpu::device;
/// match device::context() {
///     Ok(ctx) => assert!(!ctx.info.name.is_empty()),
///     Err(e) => assert!(e.to_string().len() > 0), // why there is none
/// }
/// ```
pub fn context() -> Result<&'static Context> {
    CONTEXT.get_or_init(create).as_ref().map_err(|e| Error::Device(e.clone()))
}

/// Is there a GPU adapter (lavapipe counts) that flux_rs can compute on?
///
/// ```
/// use flux_core::{Device, DType, Tensor};
/// // with an adapter, tensors can go to the GPU; without, that is an error (no panic)
/// let on_gpu = Tensor::ones(&[2], DType::F32).to_device(Device::Wgpu);
/// assert_eq!(flux_core::backend::wgpu::gpu_available(), on_gpu.is_ok());
/// ```
pub fn gpu_available() -> bool { context().is_ok() }

/// The adapter in use, or why there is none.
///
/// ```
/// if let Ok(info) = flux_core::backend::wgpu::gpu_info() {
///     assert!(!info.name.is_empty());
/// }
/// ```
pub fn gpu_info() -> Result<GpuInfo> { context().map(|c| c.info.clone()) }

// discrete first; a CPU implementation last but still taken
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete",
        wgpu::DeviceType::IntegratedGpu => "integrated",
        wgpu::DeviceType::VirtualGpu => "virtual",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    }
}

fn choose(adapters: Vec<wgpu::Adapter>) -> std::result::Result<wgpu::Adapter, String> {
    if adapters.is_empty() {
        return Err("no GPU adapter found (wgpu saw no Vulkan, Metal or DX12 device; on Linux \
                    without a GPU, Mesa's lavapipe gives one: apt-get install mesa-vulkan-drivers)"
            .into());
    }
    if let Ok(want) = std::env::var("FLUX_GPU_ADAPTER") {
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        return adapters
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&want.to_lowercase()))
            .ok_or_else(|| format!("FLUX_GPU_ADAPTER={want:?} matches none of the adapters {names:?}"));
    }
    let mut adapters = adapters;
    adapters.sort_by_key(|a| rank(a.get_info().device_type));
    Ok(adapters.remove(0))
}

fn create() -> std::result::Result<Context, String> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    let adapter = choose(pollster::block_on(instance.enumerate_adapters(backends)))?;
    let ai = adapter.get_info();
    let f16 = adapter.features().contains(wgpu::Features::SHADER_F16);
    let limits = adapter.limits();
    let desc = wgpu::DeviceDescriptor {
        label: Some("flux_rs"),
        required_features: if f16 { wgpu::Features::SHADER_F16 } else { wgpu::Features::empty() },
        required_limits: limits.clone(),
        ..Default::default()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&desc))
        .map_err(|e| format!("the GPU adapter {:?} would not give a device: {e}", ai.name))?;
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = errors.clone();
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
        sink.lock().unwrap_or_else(|p| p.into_inner()).push(e.to_string());
    }));
    let info = GpuInfo {
        name: ai.name.clone(),
        backend: ai.backend.to_str().to_string(),
        device_type: type_name(ai.device_type).to_string(),
        driver: format!("{} {}", ai.driver, ai.driver_info).trim().to_string(),
        shader_f16: f16,
    };
    Ok(Context { adapter, device, queue, info, limits, errors })
}
