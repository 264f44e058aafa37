//! Weight initialisers (spec §9.1) for PyTorch-layout shapes.
use crate::tensor::random::Rng;
use crate::tensor::{DType, Tensor};

/// (fan_in, fan_out): vector (n,) → (1, n); matrix (out, in) → (in, out);
/// conv kernel (out, in, k...) → (in·∏k, out·∏k).
pub fn fans(shape: &[usize]) -> (f64, f64) {
    match shape.len() {
        0 => (1.0, 1.0),
        1 => (1.0, shape[0] as f64),
        2 => (shape[1] as f64, shape[0] as f64),
        _ => {
            let k: usize = shape[2..].iter().product();
            ((shape[1] * k) as f64, (shape[0] * k) as f64)
        }
    }
}

/// U(−a, a) with a = gain·√(6/(fan_in + fan_out)).
pub fn glorot_uniform(shape: &[usize], gain: f64, dtype: DType, rng: &mut Rng) -> Tensor {
    let (i, o) = fans(shape);
    let a = gain * (6.0 / (i + o)).sqrt();
    rng.uniform_tensor(shape, -a, a, dtype)
}
/// N(0, σ) with σ = gain·√(2/(fan_in + fan_out)).
pub fn glorot_normal(shape: &[usize], gain: f64, dtype: DType, rng: &mut Rng) -> Tensor {
    let (i, o) = fans(shape);
    rng.normal_tensor(shape, 0.0, gain * (2.0 / (i + o)).sqrt(), dtype)
}
/// U(−b, b) with b = gain·√(3/fan_in).
pub fn kaiming_uniform(shape: &[usize], gain: f64, dtype: DType, rng: &mut Rng) -> Tensor {
    let (i, _) = fans(shape);
    let b = gain * (3.0 / i).sqrt();
    rng.uniform_tensor(shape, -b, b, dtype)
}
/// N(0, σ) with σ = gain/√fan_in.
pub fn kaiming_normal(shape: &[usize], gain: f64, dtype: DType, rng: &mut Rng) -> Tensor {
    let (i, _) = fans(shape);
    rng.normal_tensor(shape, 0.0, gain / i.sqrt(), dtype)
}
