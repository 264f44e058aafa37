//! The wgpu backend (crate feature `wgpu`): one GPU, found at first use, computing in
//! f32 with WGSL kernels on Vulkan, Metal or DX12 (Mesa's lavapipe on a machine with
//! no GPU).
//!
//! - [`device`]: the global context and what adapter it runs on ([`gpu_available`]),
//! - [`pool`]: device buffers pooled by size class,
//! - [`transfer`]: uploads and downloads,
//! - [`half`]: float16 storage and casts (adapters with `shader-f16`),
//! - [`kernel`]: running a WGSL kernel over buffers with a pipeline cache,
//! - [`batch`]: the pending command buffer kernels are recorded into, submitted when the
//!   host needs data (a few submits per training step, not one per kernel),
//! - the kernel families, each a WGSL file under `kernels/` and the Rust that launches it.
pub mod argmax;
pub mod attention;
pub mod batch;
pub(crate) mod ctc; // ctc_loss's recursions
pub mod conv; // convolutions as implicit GEMMs, forward and gradients (helper gpuconv)
pub mod device;
pub mod elementwise;
pub mod gather;
pub mod half;
pub mod kernel;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod random;
pub mod pooling; // max and mean pooling, forward and backward (helper gpuconv)
pub mod recurrent;
pub mod reduce;
pub mod rules; // the 23 optimisation rules as WGSL kernels (helper gpurules)
pub(crate) mod tensors;
pub mod transfer;

pub use device::{context, gpu_available, gpu_info, GpuInfo};
pub use pool::GpuBuffer;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_seq;

pub mod storage;
pub use storage::{available, WgpuStorage};
