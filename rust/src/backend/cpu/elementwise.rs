//! The CPU's elementwise kernels: unary maps with their derivatives side by side
//! (`fwd` / `deriv`, so a backward pass is one fused kernel `g · f′(x, y)`),
//! numpy-broadcasting binary ops and comparisons, over host slices.
use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::backend::{BinaryOp, CmpOp, UnaryOp};
use crate::tensor::layout::{for_each_offset2, Layout};
use crate::tensor::{DType, Float};
/// The logistic function of one number, without overflow for large |x|.
///
/// ```
/// use flux_core::tensor::elementwise::sigmoid;
/// assert_eq!(sigmoid(0.0f64), 0.5);
/// assert_eq!(sigmoid(-800.0f64), 0.0); // no overflow of e^800
/// assert!((sigmoid(2.0f64) + sigmoid(-2.0f64) - 1.0).abs() < 1e-15);
/// ```
#[inline(always)]
pub fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}
/// `log(1 + eˣ)` of one number, without overflow.
///
/// ```
/// use flux_core::tensor::elementwise::softplus;
/// assert!((softplus(0.0f64) - 2f64.ln()).abs() < 1e-15);
/// assert_eq!(softplus(1000.0f64), 1000.0); // no overflow of e^1000
/// ```
#[inline(always)]
pub fn softplus<T: Float>(x: T) -> T { x.max(T::zero()) + (-x.abs()).exp().ln_1p() }

const GELU_C: f64 = 0.7978845608028654; // sqrt(2/pi)
const GELU_A: f64 = 0.044715;

/// `eˣ`: in f32 Cephes' `expf` (range reduction by ln 2, a degree-6 polynomial, the
/// exponent set by bits; within 1 ulp), which the compiler vectorises where libm's is a
/// call per element (glibc's `expf` and `tanhf` were a third of a transformer block's
/// step); 0 below −87.3, ∞ above 88.7, NaN kept. f64 keeps libm's.
#[inline(always)]
pub(crate) fn exp_fast<T: Float>(x: T) -> T {
    if T::DTYPE != DType::F32 {
        return x.exp();
    }
    let x = x.to_f64() as f32;
    let xc = x.clamp(-87.0, 88.0);
    // n = round(x·log2 e) by adding and removing 1.5·2²³, which leaves n in the low
    // mantissa bits of `t`: no `floor` (a libm call without SSE4.1) and no saturating
    // float→int cast (scalar per lane), so the loop stays in vector registers
    const MAGIC: f32 = 12_582_912.0;
    let t = xc * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = xc - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 5.000_000_1e-1;
    // 2ⁿ: n + 127 in the exponent field (t's bits are 0x4B40_0000 + n)
    let y = (p * r * r + r + 1.0) * f32::from_bits(t.to_bits().wrapping_sub(0x4B40_0000 - 127) << 23);
    T::f(if x < -87.3 { 0.0 } else if x > 88.72 { f64::INFINITY } else { y as f64 })
}

/// GELU's gate `½(1 + tanh u)`, written as the logistic `1/(1 + e^(−2u))`: the same
/// number without the cancellation of `1 + tanh u` where tanh u ≈ −1, and vectorised
/// through [`exp_fast`].
#[inline(always)]
fn gelu_gate<T: Float>(u: T) -> T { T::one() / (T::one() + exp_fast(T::f(-2.0) * u)) }

/// Each op on one number, and its derivative.
///
/// ```
/// use flux_core::backend::UnaryOp;
/// assert_eq!(UnaryOp::Square.fwd(3.0f64), 9.0);
/// assert_eq!(UnaryOp::Square.deriv(3.0f64, 9.0), 6.0);
/// ```
impl UnaryOp {
    /// y = f(x)
    ///
    /// ```
    /// use flux_core::backend::UnaryOp;
    /// assert_eq!(UnaryOp::Relu.fwd(-2.0f32), 0.0);
    /// assert_eq!(UnaryOp::LeakyRelu(0.5).fwd(-2.0f64), -1.0);
    /// assert!(UnaryOp::Relu.fwd(f64::NAN).is_nan()); // NaN propagates
    /// ```
    #[inline(always)]
    pub fn fwd<T: Float>(self, x: T) -> T {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Sigmoid => sigmoid(x),
            // `x > 0 ? x : 0` lets NaN propagate, as NNlib's relu does
            UnaryOp::Relu => if x < T::zero() { T::zero() } else { x },
            UnaryOp::LeakyRelu(a) => if x > T::zero() { x } else { T::f(a) * x },
            UnaryOp::Elu(a) => if x >= T::zero() { x } else { T::f(a) * x.exp_m1() },
            UnaryOp::Gelu => {
                x * gelu_gate(T::f(GELU_C) * (x + T::f(GELU_A) * x * x * x))
            }
            UnaryOp::Swish => x * sigmoid(x),
            UnaryOp::Softplus => softplus(x),
            UnaryOp::Square => x * x,
            UnaryOp::Sign => if x > T::zero() { T::one() } else if x < T::zero() { -T::one() } else { x * T::zero() },
        }
    }
    /// dy/dx, given the input x and the output y.
    ///
    /// ```
    /// use flux_core::backend::UnaryOp;
    /// let y = UnaryOp::Tanh.fwd(0.5f64);
    /// assert_eq!(UnaryOp::Tanh.deriv(0.5, y), 1.0 - y * y);
    /// assert_eq!(UnaryOp::Exp.deriv(2.0f64, 7.0), 7.0); // d eˣ/dx = y
    /// ```
    #[inline(always)]
    pub fn deriv<T: Float>(self, x: T, y: T) -> T {
        let one = T::one();
        match self {
            UnaryOp::Neg => -one,
            UnaryOp::Exp => y,
            UnaryOp::Log => one / x,
            UnaryOp::Sqrt => T::f(0.5) / y,
            UnaryOp::Abs => if x > T::zero() { one } else if x < T::zero() { -one } else { T::zero() },
            UnaryOp::Tanh => one - y * y,
            UnaryOp::Sigmoid => y * (one - y),
            UnaryOp::Relu => if x > T::zero() { one } else { T::zero() },
            UnaryOp::LeakyRelu(a) => if x > T::zero() { one } else { T::f(a) },
            UnaryOp::Elu(a) => if x >= T::zero() { one } else { y + T::f(a) },
            UnaryOp::Gelu => {
                let x2 = x * x;
                // d/dx x·σ(2u) = σ + x·σ(1 − σ)·2u′
                let s = gelu_gate(T::f(GELU_C) * (x + T::f(GELU_A) * x2 * x));
                s + x * s * (one - s) * T::f(2.0 * GELU_C) * (one + T::f(3.0 * GELU_A) * x2)
            }
            UnaryOp::Swish => {
                let s = sigmoid(x);
                s + x * s * (one - s)
            }
            UnaryOp::Softplus => sigmoid(x),
            UnaryOp::Square => T::f(2.0) * x,
            UnaryOp::Sign => T::zero(),
        }
    }
}

/// Each op on one pair of numbers.
///
/// ```
/// use flux_core::backend::BinaryOp;
/// assert_eq!(BinaryOp::Sub.fwd(5.0f64, 2.0), 3.0);
/// ```
impl BinaryOp {
    /// The op applied to one pair of numbers.
    ///
    /// ```
    /// use flux_core::backend::BinaryOp;
    /// assert_eq!(BinaryOp::Pow.fwd(2.0f64, 10.0), 1024.0);
    /// assert!(BinaryOp::Max.fwd(f64::NAN, 1.0).is_nan() && BinaryOp::Max.fwd(1.0, f64::NAN).is_nan());
    /// ```
    #[inline(always)]
    pub fn fwd<T: Float>(self, a: T, b: T) -> T {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
            // NaN-propagating, like numpy's maximum
            BinaryOp::Max => if a.is_nan() || a >= b { a } else { b },
            BinaryOp::Min => if a.is_nan() || a <= b { a } else { b },
        }
    }
}

/// A comparison of two numbers (crate-internal; tensors compare through
/// [`Tensor::compare`](crate::Tensor::compare)).
///
/// ```
/// use flux_core::{backend::CmpOp, Tensor};
/// let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
/// assert_eq!(a.compare(&a, CmpOp::Eq).unwrap().to_vec_f64().unwrap(), vec![1.0, 1.0]);
/// ```
impl CmpOp {
    #[inline(always)]
    pub(crate) fn test<T: Float>(self, a: T, b: T) -> bool {
        match self {
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
        }
    }
}

/// Elements above which a cheap kernel (a vector instruction or two per element) is
/// split over rayon's threads: below it, waking the pool costs more than the loop.
pub(crate) const PAR_CHEAP: usize = 1 << 18;
/// The same for kernels that call libm (exp, tanh, log…) at 10–20 ns an element.
pub(crate) const PAR_COSTLY: usize = 1 << 14;
/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// How a unary kernel is split over threads (crate-internal).
///
/// ```
/// use flux_core::{backend::UnaryOp, DType, Tensor};
/// // the same numbers whether or not the kernel is split over threads
/// let x = Tensor::full(&[1 << 19], -1.5, DType::F32);
/// assert_eq!(x.unary(UnaryOp::Abs).unwrap().max(None, false).unwrap().item().unwrap(), 1.5);
/// ```
impl UnaryOp {
    /// Cheap enough that only big arrays are worth splitting over threads.
    fn is_cheap(self) -> bool {
        matches!(self, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Relu | UnaryOp::LeakyRelu(_) | UnaryOp::Square | UnaryOp::Sign | UnaryOp::Sqrt)
    }
    pub(crate) fn par_min(self) -> usize { if self.is_cheap() { PAR_CHEAP } else { PAR_COSTLY } }
}

// The kernels below are written once, generically over a closure, and instantiated once
// per op by these macros: each arm's closure names its op as a constant, so the match
// in `fwd`/`deriv` folds away and the loop vectorises (a closure capturing the op at
// run time kept a 15-way branch in every iteration, ~15× slower).
macro_rules! with_unary {
    ($T:ty, $op:expr, |$f:ident| $body:expr) => {
        match $op {
            UnaryOp::Neg => { let $f = |v: $T| UnaryOp::Neg.fwd(v); $body }
            UnaryOp::Exp => { let $f = |v: $T| UnaryOp::Exp.fwd(v); $body }
            UnaryOp::Log => { let $f = |v: $T| UnaryOp::Log.fwd(v); $body }
            UnaryOp::Sqrt => { let $f = |v: $T| UnaryOp::Sqrt.fwd(v); $body }
            UnaryOp::Abs => { let $f = |v: $T| UnaryOp::Abs.fwd(v); $body }
            UnaryOp::Tanh => { let $f = |v: $T| UnaryOp::Tanh.fwd(v); $body }
            UnaryOp::Sigmoid => { let $f = |v: $T| UnaryOp::Sigmoid.fwd(v); $body }
            UnaryOp::Relu => { let $f = |v: $T| UnaryOp::Relu.fwd(v); $body }
            UnaryOp::LeakyRelu(a) => { let $f = move |v: $T| UnaryOp::LeakyRelu(a).fwd(v); $body }
            UnaryOp::Elu(a) => { let $f = move |v: $T| UnaryOp::Elu(a).fwd(v); $body }
            UnaryOp::Gelu => { let $f = |v: $T| UnaryOp::Gelu.fwd(v); $body }
            UnaryOp::Swish => { let $f = |v: $T| UnaryOp::Swish.fwd(v); $body }
            UnaryOp::Softplus => { let $f = |v: $T| UnaryOp::Softplus.fwd(v); $body }
            UnaryOp::Square => { let $f = |v: $T| UnaryOp::Square.fwd(v); $body }
            UnaryOp::Sign => { let $f = |v: $T| UnaryOp::Sign.fwd(v); $body }
        }
    };
}
macro_rules! with_deriv {
    ($T:ty, $op:expr, |$f:ident| $body:expr) => {
        match $op {
            UnaryOp::Neg => { let $f = |x: $T, y: $T| UnaryOp::Neg.deriv(x, y); $body }
            UnaryOp::Exp => { let $f = |x: $T, y: $T| UnaryOp::Exp.deriv(x, y); $body }
            UnaryOp::Log => { let $f = |x: $T, y: $T| UnaryOp::Log.deriv(x, y); $body }
            UnaryOp::Sqrt => { let $f = |x: $T, y: $T| UnaryOp::Sqrt.deriv(x, y); $body }
            UnaryOp::Abs => { let $f = |x: $T, y: $T| UnaryOp::Abs.deriv(x, y); $body }
            UnaryOp::Tanh => { let $f = |x: $T, y: $T| UnaryOp::Tanh.deriv(x, y); $body }
            UnaryOp::Sigmoid => { let $f = |x: $T, y: $T| UnaryOp::Sigmoid.deriv(x, y); $body }
            UnaryOp::Relu => { let $f = |x: $T, y: $T| UnaryOp::Relu.deriv(x, y); $body }
            UnaryOp::LeakyRelu(a) => { let $f = move |x: $T, y: $T| UnaryOp::LeakyRelu(a).deriv(x, y); $body }
            UnaryOp::Elu(a) => { let $f = move |x: $T, y: $T| UnaryOp::Elu(a).deriv(x, y); $body }
            UnaryOp::Gelu => { let $f = |x: $T, y: $T| UnaryOp::Gelu.deriv(x, y); $body }
            UnaryOp::Swish => { let $f = |x: $T, y: $T| UnaryOp::Swish.deriv(x, y); $body }
            UnaryOp::Softplus => { let $f = |x: $T, y: $T| UnaryOp::Softplus.deriv(x, y); $body }
            UnaryOp::Square => { let $f = |x: $T, y: $T| UnaryOp::Square.deriv(x, y); $body }
            UnaryOp::Sign => { let $f = |x: $T, y: $T| UnaryOp::Sign.deriv(x, y); $body }
        }
    };
}
macro_rules! with_binary {
    ($T:ty, $op:expr, |$f:ident| $body:expr) => {
        match $op {
            BinaryOp::Add => { let $f = |a: $T, b: $T| BinaryOp::Add.fwd(a, b); $body }
            BinaryOp::Sub => { let $f = |a: $T, b: $T| BinaryOp::Sub.fwd(a, b); $body }
            BinaryOp::Mul => { let $f = |a: $T, b: $T| BinaryOp::Mul.fwd(a, b); $body }
            BinaryOp::Div => { let $f = |a: $T, b: $T| BinaryOp::Div.fwd(a, b); $body }
            BinaryOp::Pow => { let $f = |a: $T, b: $T| BinaryOp::Pow.fwd(a, b); $body }
            BinaryOp::Max => { let $f = |a: $T, b: $T| BinaryOp::Max.fwd(a, b); $body }
            BinaryOp::Min => { let $f = |a: $T, b: $T| BinaryOp::Min.fwd(a, b); $body }
        }
    };
}
macro_rules! with_cmp {
    ($T:ty, $op:expr, |$f:ident| $body:expr) => {
        match $op {
            CmpOp::Gt => { let $f = |a: $T, b: $T| if CmpOp::Gt.test(a, b) { <$T>::one() } else { <$T>::zero() }; $body }
            CmpOp::Ge => { let $f = |a: $T, b: $T| if CmpOp::Ge.test(a, b) { <$T>::one() } else { <$T>::zero() }; $body }
            CmpOp::Lt => { let $f = |a: $T, b: $T| if CmpOp::Lt.test(a, b) { <$T>::one() } else { <$T>::zero() }; $body }
            CmpOp::Le => { let $f = |a: $T, b: $T| if CmpOp::Le.test(a, b) { <$T>::one() } else { <$T>::zero() }; $body }
            CmpOp::Eq => { let $f = |a: $T, b: $T| if CmpOp::Eq.test(a, b) { <$T>::one() } else { <$T>::zero() }; $body }
            CmpOp::Ne => { let $f = |a: $T, b: $T| if CmpOp::Ne.test(a, b) { <$T>::one() } else { <$T>::zero() }; $body }
        }
    };
}

/// `f` over a slice into a new vector, on rayon from `par_min` elements.
pub(crate) fn map_slice_par<T: Float>(src: &[T], par_min: usize, f: impl Fn(T) -> T + Sync + Send) -> Vec<T> {
    let n = src.len();
    if n < par_min || rayon::current_num_threads() < 2 {
        return src.iter().map(|&v| f(v)).collect();
    }
    crate::parallel::warm();
    let mut out: Vec<T> = Vec::with_capacity(n);
    out.spare_capacity_mut()[..n].par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(|(d, s)| {
        d.iter_mut().zip(s).for_each(|(d, &v)| {
            d.write(f(v));
        })
    });
    // SAFETY: the chunks cover 0..n and every element was written above.
    unsafe { out.set_len(n) };
    out
}

/// Map a contiguous slice with a cheap function, on rayon for big slices.
pub(crate) fn map_slice<T: Float>(src: &[T], f: impl Fn(T) -> T + Sync + Send) -> Vec<T> { map_slice_par(src, PAR_CHEAP, f) }

/// Combine two equally long slices, on rayon from `par_min` elements.
pub(crate) fn zip_slices<T: Float>(a: &[T], b: &[T], par_min: usize, f: impl Fn(T, T) -> T + Sync + Send) -> Vec<T> {
    let n = a.len().min(b.len());
    if n < par_min || rayon::current_num_threads() < 2 {
        return a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
    }
    crate::parallel::warm();
    let mut out: Vec<T> = Vec::with_capacity(n);
    out.spare_capacity_mut()[..n].par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK))).for_each(|(d, (a, b))| {
        d.iter_mut().zip(a.iter().zip(b)).for_each(|(d, (&x, &y))| {
            d.write(f(x, y));
        })
    });
    // SAFETY: the chunks cover 0..n and every element was written above.
    unsafe { out.set_len(n) };
    out
}

/// `f(a, b, c)` over three equally long slices, on rayon from `par_min` elements.
pub(crate) fn zip3_slices<T: Float>(a: &[T], b: &[T], c: &[T], par_min: usize, f: impl Fn(T, T, T) -> T + Sync + Send) -> Vec<T> {
    let n = a.len().min(b.len()).min(c.len());
    if n < par_min || rayon::current_num_threads() < 2 {
        return a.iter().zip(b).zip(c).map(|((&x, &y), &z)| f(x, y, z)).collect();
    }
    crate::parallel::warm();
    let mut out: Vec<T> = Vec::with_capacity(n);
    out.spare_capacity_mut()[..n]
        .par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)).zip(c.par_chunks(CHUNK)))
        .for_each(|(d, ((a, b), c))| {
            d.iter_mut().zip(a.iter().zip(b).zip(c)).for_each(|(d, ((&x, &y), &z))| {
                d.write(f(x, y, z));
            })
        });
    // SAFETY: the chunks cover 0..n and every element was written above.
    unsafe { out.set_len(n) };
    out
}

/// Define `fn $name` whose body is compiled three times, for AVX-512, for AVX2 + FMA and
/// for the baseline, the widest the CPU has chosen at run time (as gemm chooses its
/// kernels): loops of costly elementwise math (GELU, swish, `exp_fast`'s polynomial)
/// then run 16 or 8 lanes wide instead of SSE2's 4. The same operations in the same
/// order, so every path gives the same numbers.
macro_rules! wide_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident[$($gen:tt)*]($($a:ident: $t:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name<$($gen)*>($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn v4<$($gen)*>($($a: $t),*) $body
                #[target_feature(enable = "avx2,fma")]
                fn v3<$($gen)*>($($a: $t),*) $body
                if is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the features `v4` is compiled for.
                    return unsafe { v4($($a),*) };
                }
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has the features `v3` is compiled for.
                    return unsafe { v3($($a),*) };
                }
            }
            $body
        }
    };
}
pub(crate) use wide_fn;

wide_fn! {
    /// `v ← f(v)`, wide.
    fn map_wide[T: Float, F: Fn(T) -> T](v: &mut [T], f: &F) { v.iter_mut().for_each(|x| *x = f(*x)) }
}

wide_fn! {
    /// `g ← g · d(x, y)`, wide.
    fn deriv_wide[T: Float, F: Fn(T, T) -> T](g: &mut [T], x: &[T], y: &[T], d: &F) {
        g.iter_mut().zip(x.iter().zip(y)).for_each(|(g, (&a, &b))| *g *= d(a, b))
    }
}

wide_fn! {
    /// `d ← f(s)` into uninitialised `d`, wide.
    fn map_into_wide[T: Float, F: Fn(T) -> T](d: &mut [MaybeUninit<T>], s: &[T], f: &F) {
        d.iter_mut().zip(s).for_each(|(d, &v)| {
            d.write(f(v));
        })
    }
}

wide_fn! {
    /// `o ← g · d(x, y)` into uninitialised `o`, wide.
    fn deriv_into_wide[T: Float, F: Fn(T, T) -> T](o: &mut [MaybeUninit<T>], g: &[T], x: &[T], y: &[T], d: &F) {
        o.iter_mut().zip(g.iter().zip(x.iter().zip(y))).for_each(|(o, (&g, (&a, &b)))| {
            o.write(g * d(a, b));
        })
    }
}

/// `σ(src)` into a new vector (the fused layers' forward when the pre-activation is kept
/// too: one pass instead of a copy and a pass).
pub(crate) fn unary_map<T: Float>(op: UnaryOp, src: &[T]) -> Vec<T> {
    let n = src.len();
    let mut out: Vec<T> = Vec::with_capacity(n);
    with_unary!(T, op, |f| {
        let dst = &mut out.spare_capacity_mut()[..n];
        if n >= op.par_min() && rayon::current_num_threads() > 1 {
            crate::parallel::warm();
            dst.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(|(d, s)| map_into_wide(d, s, &f));
        } else {
            map_into_wide(dst, src, &f);
        }
    });
    // SAFETY: every element of 0..n was written above.
    unsafe { out.set_len(n) };
    out
}

/// `g · σ′(x, y)` into a new vector (the fused layers' backward sweep).
pub(crate) fn mul_deriv_map<T: Float>(op: UnaryOp, g: &[T], x: &[T], y: &[T]) -> Vec<T> {
    let n = g.len();
    assert!(x.len() == n && y.len() == n, "mul_deriv_map: lengths differ");
    let mut out: Vec<T> = Vec::with_capacity(n);
    with_deriv!(T, op, |d| {
        let dst = &mut out.spare_capacity_mut()[..n];
        if n >= op.par_min() && rayon::current_num_threads() > 1 {
            crate::parallel::warm();
            dst.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK).zip(x.par_chunks(CHUNK).zip(y.par_chunks(CHUNK))))
                .for_each(|(o, (g, (x, y)))| deriv_into_wide(o, g, x, y, &d));
        } else {
            deriv_into_wide(dst, g, x, y, &d);
        }
    });
    // SAFETY: every element of 0..n was written above.
    unsafe { out.set_len(n) };
    out
}

/// `σ(v)` for every element of `v`, in place (the fused layers' activation pass).
pub(crate) fn unary_inplace<T: Float>(op: UnaryOp, v: &mut [T]) {
    with_unary!(T, op, |f| {
        if v.len() >= op.par_min() && rayon::current_num_threads() > 1 {
            crate::parallel::warm();
            v.par_chunks_mut(CHUNK).for_each(|c| map_wide(c, &f));
        } else {
            map_wide(v, &f);
        }
    })
}

/// `g ← g · σ′(x, y)` in place (the fused layers' backward sweep).
pub(crate) fn mul_deriv_inplace<T: Float>(op: UnaryOp, g: &mut [T], x: &[T], y: &[T]) {
    with_deriv!(T, op, |d| {
        if g.len() >= op.par_min() && rayon::current_num_threads() > 1 {
            crate::parallel::warm();
            g.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK).zip(y.par_chunks(CHUNK))).for_each(|(g, (x, y))| deriv_wide(g, x, y, &d));
        } else {
            deriv_wide(g, x, y, &d);
        }
    })
}


/// The elements of a contiguous view `l` of `raw`.
#[inline]
pub(crate) fn contig<'a, T>(raw: &'a [T], l: &Layout) -> &'a [T] {
    let n = l.numel();
    // an empty view may sit past the end of its buffer
    if n == 0 { &raw[..0] } else { &raw[l.offset..l.offset + n] }
}

/// Combine views `a` (layout `la`) and `b` (layout `lb`) broadcast to `shape`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn broadcast_zip<T: Float>(ra: &[T], la: &Layout, rb: &[T], lb: &Layout, shape: &[usize], par_min: usize, f: impl Fn(T, T) -> T + Sync + Send) -> crate::error::Result<Vec<T>> {
    crate::tensor::alloc::reserve(shape, T::DTYPE)?;
    let (ac, bc) = (la.is_contiguous(), lb.is_contiguous());
    if la.shape == lb.shape && ac && bc {
        return Ok(zip_slices(contig(ra, la), contig(rb, lb), par_min, f));
    }
    if lb.numel() == 1 && la.shape == shape && ac {
        let bv = rb[lb.offset];
        return Ok(map_slice_par(contig(ra, la), par_min, |x| f(x, bv)));
    }
    if la.numel() == 1 && lb.shape == shape && bc {
        let av = ra[la.offset];
        return Ok(map_slice_par(contig(rb, lb), par_min, |y| f(av, y)));
    }
    let (la, lb) = (la.broadcast_to(shape)?, lb.broadcast_to(shape)?);
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let nd = shape.len();
    // Row by row when the last dimension is contiguous or broadcast in both operands
    // (bias rows, keepdims reductions): a vectorised inner loop per row instead of a
    // closure call per element.
    if nd >= 1 && shape[nd - 1] >= 8 && la.strides[nd - 1] <= 1 && lb.strides[nd - 1] <= 1 {
        let (len, sa, sb) = (shape[nd - 1], la.strides[nd - 1], lb.strides[nd - 1]);
        for_each_offset2(&shape[..nd - 1], &la.strides[..nd - 1], la.offset, &lb.strides[..nd - 1], lb.offset, |_, i, j| match (sa, sb) {
            (1, 1) => out.extend(ra[i..i + len].iter().zip(&rb[j..j + len]).map(|(&x, &y)| f(x, y))),
            (1, _) => {
                let y = rb[j];
                out.extend(ra[i..i + len].iter().map(|&x| f(x, y)))
            }
            (_, 1) => {
                let x = ra[i];
                out.extend(rb[j..j + len].iter().map(|&y| f(x, y)))
            }
            _ => out.extend(std::iter::repeat_n(f(ra[i], rb[j]), len)),
        });
        return Ok(out);
    }
    for_each_offset2(shape, &la.strides, la.offset, &lb.strides, lb.offset, |_, i, j| out.push(f(ra[i], rb[j])));
    Ok(out)
}

/// `f(x)` over the contiguous slice `xs`.
pub(crate) fn unary<T: Float>(xs: &[T], op: UnaryOp) -> Vec<T> {
    with_unary!(T, op, |f| map_slice_par(xs, op.par_min(), f))
}
/// `g · f′(x, y)` over three contiguous slices.
pub(crate) fn unary_backward<T: Float>(xs: &[T], ys: &[T], gs: &[T], op: UnaryOp) -> Vec<T> {
    with_deriv!(T, op, |d| zip3_slices(xs, ys, gs, op.par_min(), move |a, b, c| c * d(a, b)))
}
/// `a op b`, broadcast.
pub(crate) fn binary<T: Float>(ra: &[T], la: &Layout, rb: &[T], lb: &Layout, shape: &[usize], op: BinaryOp) -> crate::error::Result<Vec<T>> {
    let par = if op == BinaryOp::Pow { PAR_COSTLY } else { PAR_CHEAP };
    with_binary!(T, op, |f| broadcast_zip::<T>(ra, la, rb, lb, shape, par, f))
}
/// `a op b ? 1 : 0`, broadcast.
pub(crate) fn cmp<T: Float>(ra: &[T], la: &Layout, rb: &[T], lb: &Layout, shape: &[usize], op: CmpOp) -> crate::error::Result<Vec<T>> {
    with_cmp!(T, op, |f| broadcast_zip::<T>(ra, la, rb, lb, shape, PAR_CHEAP, f))
}
