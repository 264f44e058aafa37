//! The activations inside the recurrent gate kernels.
use crate::tensor::Float;

/// The logistic function, overflow-free for either sign.
#[inline(always)]
pub(crate) fn sigmoid<T: Float>(x: T) -> T { crate::tensor::elementwise::sigmoid(x) }

/// The hyperbolic tangent.
#[inline(always)]
pub(crate) fn tanh<T: Float>(x: T) -> T { x.tanh() }
