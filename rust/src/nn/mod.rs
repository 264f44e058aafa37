//! Layers, activations, initialisers and losses.
//!
//! Layouts follow PyTorch: batch first, `Dense` weight `(out, in)`, `y = σ(x·Wᵀ + b)`.
pub mod activation;
pub mod attention;
pub mod conv;
pub mod dense;
pub mod init;
pub mod losses;
pub mod recurrent;

pub use activation::Activation;
pub use dense::{linear, Dense};
pub use recurrent::{GRUCell, LSTMCell, RNNCell, GRU, LSTM, RNN};

use crate::error::Result;
use crate::tensor::Tensor;

/// A layer or model: a forward pass and its parameters, visited by path.
///
/// `forward_t(x, train)` is the pass with an explicit mode (candle's `ModuleT`):
/// Dropout drops and BatchNorm uses batch statistics only when `train` is true.
/// `forward` follows Flux's automatic mode: training while a gradient is recorded.
pub trait Module: Send {
    /// The forward pass in the automatic mode (training iff a gradient is recorded).
    fn forward(&self, x: &Tensor) -> Result<Tensor> { self.forward_t(x, crate::autodiff::is_recording()) }
    /// The forward pass in an explicit mode. Layers without a mode ignore `train`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor>;
    /// `(path, parameter)` pairs in a fixed order, e.g. `("layers.0.weight", …)`.
    fn parameters(&self) -> Vec<(String, &Tensor)>;
    fn parameters_mut(&mut self) -> Vec<(String, &mut Tensor)>;
}

/// Layers applied in order.
pub struct Chain {
    pub layers: Vec<Box<dyn Module>>,
}

impl Chain {
    pub fn new(layers: Vec<Box<dyn Module>>) -> Self { Chain { layers } }
}

impl Module for Chain {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = x.clone();
        for l in &self.layers {
            h = l.forward_t(&h, train)?;
        }
        Ok(h)
    }
    fn parameters(&self) -> Vec<(String, &Tensor)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| l.parameters().into_iter().map(move |(p, t)| (format!("layers.{i}.{p}"), t)))
            .collect()
    }
    fn parameters_mut(&mut self) -> Vec<(String, &mut Tensor)> {
        self.layers
            .iter_mut()
            .enumerate()
            .flat_map(|(i, l)| l.parameters_mut().into_iter().map(move |(p, t)| (format!("layers.{i}.{p}"), t)))
            .collect()
    }
}
