//! Fused ops: one forward per device, one backward for all devices.
//!
//! A fused op (a whole LSTM sequence, scaled-dot-product attention, a normalisation)
//! is one node on the tape instead of dozens of primitives. Each op is declared once as
//! a [`FusedOp`]: its checks and its backward rule are device-free; its forward is
//! chosen by the device its inputs live on. Today the only device is the CPU; the wgpu
//! backend adds a `wgpu_fwd` to exactly these ops, and a device without a forward
//! returns [`Error::Device`](crate::Error::Device) naming the op — never a panic (the pattern of candle's
//! `CustomOp1 { cpu_fwd, cuda_fwd, metal_fwd, bwd }`).
//!
//! Each op lives in its own file here, forward kernel and backward rule side by side.
//!
//! ```
//! use flux_core::ops::{apply, FusedOp};
//! use flux_core::autodiff::{self, Backward};
//! use flux_core::{Result, Tensor};
//!
//! /// y = 2x, as a (trivially) fused op.
//! #[derive(Debug)]
//! struct Double;
//! #[derive(Debug)]
//! struct DoubleBackward;
//! impl Backward for DoubleBackward {
//!     fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
//!         Ok(vec![Some(g.mul_scalar(2.0)?)])
//!     }
//! }
//! impl FusedOp for Double {
//!     fn name(&self) -> &'static str { "double" }
//!     fn cpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
//!         Ok((xs[0].mul_scalar(2.0)?, Box::new(DoubleBackward)))
//!     }
//! }
//! let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
//! let (_, g) = autodiff::value_and_grad(&[&x], || apply(&Double, &[&x])?.sum_all()).unwrap();
//! assert_eq!(g[0].as_ref().unwrap().to_vec_f64().unwrap(), vec![2.0, 2.0]);
//! ```
pub mod attention;
pub mod bilinear;
pub mod dense;
pub mod dropout;
pub mod embedding;
pub mod maxout;
pub mod mse;
pub mod norm;
pub mod scale;

use std::fmt::Debug;

use crate::autodiff::{record, Backward, Op};
use crate::error::Result;
use crate::tensor::{Device, Tensor};

/// An op with a forward per device and one backward rule.
///
/// `cpu_fwd` computes the output and returns the backward rule holding whatever it
/// saved (inputs, activations, statistics); the rule is only kept when a gradient is
/// being recorded. Shape and dtype checks belong in the op's constructor or in
/// `cpu_fwd` before any work, so every device gets the same errors.
///
/// ```
/// use flux_core::ops::{recurrent::{Cell, Sequence}, FusedOp};
/// // the fused op of a whole GRU sequence
/// assert_eq!(Sequence { cell: Cell::Gru }.name(), "gru_sequence");
/// ```
pub trait FusedOp: Send + Sync + Debug {
    /// The op's name in error messages, e.g. `"lstm_sequence"`.
    ///
    /// ```
    /// use flux_core::ops::{recurrent::{Cell, Sequence}, FusedOp};
    /// assert_eq!(Sequence { cell: Cell::Lstm }.name(), "lstm_sequence");
    /// ```
    fn name(&self) -> &'static str;
    /// The CPU forward: output and backward rule.
    ///
    /// ```
    /// use flux_core::ops::{recurrent::{Cell, Sequence}, FusedOp};
    /// use flux_core::{DType, Tensor};
    /// // a GRU with zero kernels and bias: r = z = ½, h̃ = 0, so each step halves h
    /// let x = Tensor::ones(&[1, 2, 3], DType::F64);
    /// let (wi, wh, b) = (Tensor::zeros(&[6, 3], DType::F64), Tensor::zeros(&[6, 2], DType::F64), Tensor::zeros(&[6], DType::F64));
    /// let h0 = Tensor::ones(&[1, 2], DType::F64);
    /// let (ys, _backward) = Sequence { cell: Cell::Gru }.cpu_fwd(&[&x, &wi, &wh, &b, &h0]).unwrap();
    /// assert_eq!(ys.to_vec_f64().unwrap(), vec![0.5, 0.5, 0.25, 0.25]);
    /// ```
    fn cpu_fwd(&self, inputs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)>;
    /// The GPU forward (inputs on [`Device::Wgpu`]); by default an [`Error::Device`](crate::Error::Device)
    /// naming the op, until the wgpu backend gives this op a kernel.
    ///
    /// ```
    /// use flux_core::{autodiff::Backward, ops::{apply, FusedOp}, Error, Result, Tensor};
    /// /// The identity: its gradient passes through.
    /// #[derive(Debug)]
    /// struct PassBack;
    /// impl Backward for PassBack {
    ///     fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> { Ok(vec![Some(g.clone())]) }
    /// }
    /// #[derive(Debug)]
    /// struct CpuOnly;
    /// impl FusedOp for CpuOnly {
    ///     fn name(&self) -> &'static str { "cpu_only" }
    ///     fn cpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> { Ok((xs[0].clone(), Box::new(PassBack))) }
    /// }
    /// let x = Tensor::from_vec(vec![1.0f32], &[1]).unwrap();
    /// assert_eq!(apply(&CpuOnly, &[&x]).unwrap().to_vec_f64().unwrap(), vec![1.0]);
    /// // an op without a GPU kernel says so, naming itself
    /// assert!(matches!(CpuOnly.wgpu_fwd(&[&x]), Err(Error::Device(m)) if m.contains("cpu_only")));
    /// ```
    fn wgpu_fwd(&self, inputs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let _ = inputs;
        Err(crate::backend::no_kernel(Device::Wgpu, self.name()))
    }
}

/// Run `op` on `inputs`: check they share a device, run that device's forward, and
/// record one node on the tape whose backward is the op's rule.
///
/// ```
/// use flux_core::{autodiff, ops::{apply, recurrent::{Cell, Sequence}}, DType, Tensor};
/// let x = Tensor::ones(&[1, 2, 3], DType::F64);
/// let (wi, wh, b) = (Tensor::zeros(&[6, 3], DType::F64), Tensor::zeros(&[6, 2], DType::F64), Tensor::zeros(&[6], DType::F64));
/// let h0 = Tensor::ones(&[1, 2], DType::F64);
/// // one tape node: the gradient reaches h0 through both steps (∂h₂/∂h₀ = ¼ for each unit)
/// let (_, g) = autodiff::value_and_grad(&[&h0], || apply(&Sequence { cell: Cell::Gru }, &[&x, &wi, &wh, &b, &h0])?.sum_all()).unwrap();
/// assert_eq!(g[0].as_ref().unwrap().to_vec_f64().unwrap(), vec![0.75, 0.75]);
/// ```
pub fn apply(op: &dyn FusedOp, inputs: &[&Tensor]) -> Result<Tensor> {
    let device = inputs.first().map(|x| x.device()).unwrap_or(Device::Cpu);
    if let Some(x) = inputs.iter().find(|x| x.device() != device) {
        return Err(crate::backend::mixed_devices(op.name(), device, x.device()));
    }
    let (out, bwd) = match device {
        Device::Cpu => op.cpu_fwd(inputs)?,
        Device::Wgpu => op.wgpu_fwd(inputs)?,
    };
    record(inputs, &out, || Op::Custom(bwd));
    Ok(out)
}

mod gates;
pub mod gru;
pub mod lstm;
pub mod recurrent;
pub mod rnn;
