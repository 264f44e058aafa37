//! The activations inside the recurrent gate kernels, and the dispatch of those kernels
//! to an AVX2+FMA build where the CPU has one.
//!
//! In f32 the gates use a branch-free exponential (Cephes' `expf` polynomial, about
//! 2 ulp) that the compiler vectorises, where the C library's `expf`/`tanhf` cost
//! 10–20 ns per call one at a time and were most of an LSTM step. f64 keeps the C
//! library's functions (the reference tests compare at 1e-12).
use crate::tensor::{DType, Float};

/// `e^x` for f32 without branches or calls: `2^n · p(r)` with `x = n·ln2 + r`.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_66;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // the integer n sits in t's low mantissa bits: 2^n from the exponent field
    let k = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    y * f32::from_bits((k.wrapping_add(127) << 23) as u32)
}

/// The logistic function (overflow-free for either sign).
#[inline(always)]
pub(crate) fn sigmoid<T: Float>(x: T) -> T {
    if T::DTYPE == DType::F32 {
        let x = x.to_f64() as f32;
        return T::f((1.0 / (1.0 + exp_f32(-x))) as f64);
    }
    crate::tensor::elementwise::sigmoid(x)
}

/// The hyperbolic tangent, `1 − 2/(e^{2x} + 1)` in f32 (absolute error about 1e-7).
#[inline(always)]
pub(crate) fn tanh<T: Float>(x: T) -> T {
    if T::DTYPE == DType::F32 {
        let x = x.to_f64() as f32;
        return T::f((1.0 - 2.0 / (exp_f32(2.0 * x) + 1.0)) as f64);
    }
    x.tanh()
}

/// Gate block `k` (of `h` units) of a row of gates.
#[inline(always)]
pub(crate) fn block<T>(v: &[T], k: usize, h: usize) -> &[T] { &v[k * h..(k + 1) * h] }

/// Run `$body` (a call of an `#[inline(always)]` generic kernel) compiled for AVX2+FMA
/// when the CPU has them, else for baseline x86-64. Rust never contracts `a·b + c` into
/// an FMA on its own, so both builds give the same bits.
macro_rules! wide_or_not {
    ($name:ident, <$T:ident>($($arg:ident: $ty:ty),*) $body:block) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $name<$T: Float>($($arg: $ty),*) $body
    };
}
pub(crate) use wide_or_not;

/// Can this CPU run the AVX2+FMA builds of the gate loops? (Checked once; the crate is
/// compiled for baseline x86-64.)
#[inline]
pub(crate) fn wide() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static WIDE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *WIDE.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_f32_activations_are_close_to_libm() {
        let mut worst = (0f64, 0f64);
        for i in -4000..=4000 {
            let x = i as f32 * 0.005;
            let s = (sigmoid(x) as f64 - 1.0 / (1.0 + (-(x as f64)).exp())).abs();
            let t = (tanh(x) as f64 - (x as f64).tanh()).abs();
            worst = (worst.0.max(s), worst.1.max(t));
        }
        assert!(worst.0 < 2e-7 && worst.1 < 3e-7, "{worst:?}");
        // saturation, no NaN or Inf at the extremes
        assert_eq!((sigmoid(1e4f32), tanh(-1e4f32), tanh(1e4f32)), (1.0, -1.0, 1.0));
        assert!((0.0..1e-37).contains(&sigmoid(-1e4f32)));
        assert!(sigmoid(f32::NAN).is_nan() || sigmoid(f32::NAN) >= 0.0);
    }
}
