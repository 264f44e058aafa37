//! Convolution, pooling and flatten layers for Rust users (the Python layers call the
//! same ops in [`crate::tensor::conv`] and [`crate::tensor::pool`]).
use super::{Activation, Module};
use crate::error::Result;
use crate::tensor::conv::{conv, ConvSpec};
use crate::tensor::pool::{pool, PoolMode, PoolSpec};
use crate::tensor::random::Rng;
use crate::tensor::{DType, Tensor};

/// `act(conv(x, weight) + bias)` with weight (out, in / groups, k...), input NCHW.
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Module, conv::Conv}, tensor::random::Rng};
/// let c = Conv::new(&[5, 5], 1, 6, None, DType::F32, &mut Rng::seed(0));
/// assert_eq!(c.forward(&Tensor::zeros(&[2, 1, 28, 28], DType::F32)).unwrap().shape(), &[2, 6, 24, 24]);
/// ```
pub struct Conv {
    pub weight: Tensor,
    pub bias: Tensor,
    pub spec: ConvSpec,
    pub act: Activation,
}

impl Conv {
    /// Glorot-uniform weight, zero bias, stride 1, no padding.
    pub fn new(k: &[usize], inp: usize, out: usize, act: Option<Activation>, dtype: DType, rng: &mut Rng) -> Conv {
        let mut shape = vec![out, inp];
        shape.extend(k);
        Conv {
            weight: super::init::glorot_uniform(&shape, 1.0, dtype, rng),
            bias: Tensor::zeros(&[out], dtype),
            spec: ConvSpec::new(k.len()),
            act: act.unwrap_or(Activation::Identity),
        }
    }
}

impl Module for Conv {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> { self.act.apply(&conv(x, &self.weight, Some(&self.bias), &self.spec)?) }
    fn parameters(&self) -> Vec<(String, &Tensor)> { vec![("weight".into(), &self.weight), ("bias".into(), &self.bias)] }
    fn parameters_mut(&mut self) -> Vec<(String, &mut Tensor)> { vec![("weight".into(), &mut self.weight), ("bias".into(), &mut self.bias)] }
}

/// Max or mean pooling (stride = window unless the spec says otherwise).
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Module, conv::Pool}};
/// let p = Pool::max(&[2, 2]);
/// assert_eq!(p.forward(&Tensor::zeros(&[1, 3, 8, 8], DType::F32)).unwrap().shape(), &[1, 3, 4, 4]);
/// ```
pub struct Pool {
    pub mode: PoolMode,
    pub spec: PoolSpec,
}

impl Pool {
    pub fn max(window: &[usize]) -> Pool { Pool { mode: PoolMode::Max, spec: PoolSpec::new(window) } }
    pub fn mean(window: &[usize]) -> Pool { Pool { mode: PoolMode::Mean, spec: PoolSpec::new(window) } }
}

impl Module for Pool {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> { pool(x, self.mode, &self.spec) }
    fn parameters(&self) -> Vec<(String, &Tensor)> { vec![] }
    fn parameters_mut(&mut self) -> Vec<(String, &mut Tensor)> { vec![] }
}

/// (batch, ...) → (batch, features).
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Module, conv::Flatten}};
/// assert_eq!(Flatten.forward(&Tensor::zeros(&[2, 3, 4], DType::F32)).unwrap().shape(), &[2, 12]);
/// ```
pub struct Flatten;

impl Module for Flatten {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        let n = x.shape().first().copied().unwrap_or(1);
        x.reshape(&[n, x.numel() / n.max(1)])
    }
    fn parameters(&self) -> Vec<(String, &Tensor)> { vec![] }
    fn parameters_mut(&mut self) -> Vec<(String, &mut Tensor)> { vec![] }
}
