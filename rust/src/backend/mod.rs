//! Where tensors' numbers are computed: one backend per device.
#[cfg(feature = "wgpu")]
pub mod wgpu;
