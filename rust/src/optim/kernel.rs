//! The single-pass driver every elementwise rule runs through.
//!
//! A rule supplies `f(x, g, s) -> dx′` for one element, where `s` holds that element of
//! each of its K state arrays (updated in place). [`elementwise`] walks all arrays once,
//! either subtracting dx′ from the parameter (the fused update) or writing dx′ over the
//! gradient (the pure `apply`), in parallel above a size threshold.
//!
//! The same step for tensors on a GPU is the rule's WGSL twin of that closure, named by
//! the [`OptimStep`] the rule passes beside it (one file per rule in
//! rust/src/backend/wgpu/rules/, made with the `wgsl!` macro); [`elementwise`] hands such
//! tensors to [`device_step`], which runs it in one in-place pass on the device.
use rayon::prelude::*;

use crate::backend::OptimStep;
use crate::error::{Error, Result};
use crate::tensor::{DType, Device, Float, Tensor, PAR_THRESHOLD};

/// Where the step goes.
///
/// ```
/// use flux_core::optim::kernel::Target;
/// use flux_core::Tensor;
/// let (mut x, g) = (Tensor::from_vec(vec![1.0f32], &[1]).unwrap(), Tensor::from_vec(vec![0.5f32], &[1]).unwrap());
/// let t = Target::Param { x: &mut x, g: &g };
/// assert_eq!(t.g().to_vec_f64().unwrap(), vec![0.5]);
/// ```
pub enum Target<'a> {
    /// `x ← x − dx′`, reading `g`.
    Param {
        /// The parameter, updated in place.
        x: &'a mut Tensor,
        /// The gradient.
        g: &'a Tensor,
    },
    /// `g ← dx′`, reading `x`.
    Grad {
        /// The parameter.
        x: &'a Tensor,
        /// The gradient, overwritten with the step.
        g: &'a mut Tensor,
    },
}

/// The operands, whichever way the step goes.
///
/// ```
/// use flux_core::optim::kernel::Target;
/// use flux_core::{DType, Tensor};
/// let (x, mut g) = (Tensor::zeros(&[2], DType::F64), Tensor::ones(&[2], DType::F64));
/// let t = Target::Grad { x: &x, g: &mut g };
/// assert_eq!((t.dtype(), t.x().shape()), (DType::F64, &[2][..]));
/// ```
impl Target<'_> {
    /// The dtype of the parameter.
    ///
    /// ```
    /// use flux_core::optim::kernel::Target;
    /// use flux_core::{DType, Tensor};
    /// let (mut x, g) = (Tensor::zeros(&[2], DType::F32), Tensor::ones(&[2], DType::F32));
    /// assert_eq!(Target::Param { x: &mut x, g: &g }.dtype(), DType::F32);
    /// ```
    pub fn dtype(&self) -> DType {
        match self {
            Target::Param { x, .. } => x.dtype(),
            Target::Grad { x, .. } => x.dtype(),
        }
    }
    /// The parameter.
    ///
    /// ```
    /// use flux_core::optim::kernel::Target;
    /// use flux_core::{DType, Tensor};
    /// let (x, mut g) = (Tensor::full(&[1], 3.0, DType::F32), Tensor::ones(&[1], DType::F32));
    /// assert_eq!(Target::Grad { x: &x, g: &mut g }.x().item().unwrap(), 3.0);
    /// ```
    pub fn x(&self) -> &Tensor {
        match self {
            Target::Param { x, .. } => x,
            Target::Grad { x, .. } => x,
        }
    }
    /// The gradient.
    ///
    /// ```
    /// use flux_core::optim::kernel::Target;
    /// use flux_core::{DType, Tensor};
    /// let (x, mut g) = (Tensor::zeros(&[1], DType::F32), Tensor::full(&[1], 2.0, DType::F32));
    /// assert_eq!(Target::Grad { x: &x, g: &mut g }.g().item().unwrap(), 2.0);
    /// ```
    pub fn g(&self) -> &Tensor {
        match self {
            Target::Param { g, .. } => g,
            Target::Grad { g, .. } => g,
        }
    }
}

#[derive(Clone, Copy)]
struct Ptr<T>(*mut T);
// SAFETY: each parallel task touches a disjoint index range of every buffer.
unsafe impl<T> Send for Ptr<T> {}
unsafe impl<T> Sync for Ptr<T> {}

const CHUNK: usize = 1 << 14;

/// The [`OptimStep`] naming the rule kernel `rust/src/backend/wgpu/rules/<name>.wgsl`
/// and the scalars it reads as `p(0)`, `p(1)`, … (each a `Float` of the parameter's
/// precision, computed on the host exactly as the CPU closure uses them).
macro_rules! wgsl {
    ($name:literal, [$($p:expr),* $(,)?]) => {
        $crate::backend::OptimStep { rule: $name, hyper: &[$($crate::tensor::Float::to_f64($p)),*], t: 0, into_x: true }
    };
}
pub(crate) use wgsl;

/// Is any operand of the step off the CPU? (Then the step is the device's, which
/// reports mixed devices naming them.)
fn off_cpu<'a>(t: &Target, mut states: impl Iterator<Item = &'a Tensor>) -> bool {
    t.x().device() != Device::Cpu || t.g().device() != Device::Cpu || states.any(|s| s.device() != Device::Cpu)
}

/// Run `f` over every element of the target and the K state arrays (all of `x`'s shape
/// and dtype `T`); on a GPU, run `gpu`, the rule's WGSL twin of `f`, instead.
///
/// ```
/// use flux_core::backend::OptimStep;
/// use flux_core::optim::kernel::{elementwise, Target};
/// use flux_core::Tensor;
/// // momentum by hand: v ← 0.9·v + g, dx′ = 0.1·v, with one state array
/// let mut x = Tensor::from_vec(vec![1.0f64, 2.0], &[2]).unwrap();
/// let g = Tensor::from_vec(vec![1.0f64, -1.0], &[2]).unwrap();
/// let mut v = Tensor::from_vec(vec![1.0f64, 1.0], &[2]).unwrap();
/// let gpu = OptimStep { rule: "none", hyper: &[], t: 0, into_x: true }; // used only on a GPU
/// elementwise::<f64, 1>(Target::Param { x: &mut x, g: &g }, [&mut v], gpu, |_x, g, [v]| {
///     *v = 0.9 * *v + g;
///     0.1 * *v
/// }).unwrap();
/// let close = |a: Vec<f64>, b: [f64; 2]| a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-12);
/// assert!(close(v.to_vec_f64().unwrap(), [1.9, -0.1]));
/// assert!(close(x.to_vec_f64().unwrap(), [0.81, 2.01]));
/// ```
pub fn elementwise<T: Float, const K: usize>(
    target: Target,
    mut states: [&mut Tensor; K],
    gpu: OptimStep<'_>,
    f: impl Fn(T, T, &mut [T; K]) -> T + Sync + Send,
) -> Result<()> {
    check(&target, states.iter().map(|s| &**s))?;
    if off_cpu(&target, states.iter().map(|s| &**s)) {
        return device_step(target, &mut states, gpu);
    }
    let n = target.x().numel();
    let sp: Vec<Ptr<T>> = states.into_iter().map(|s| s.data_mut::<T>().map(|v| Ptr(v.as_mut_ptr()))).collect::<Result<_>>()?;
    let sp: [Ptr<T>; K] = sp.try_into().unwrap_or_else(|_| unreachable!());
    // x and g as raw pointers; `into_x` says whether dx′ is subtracted from x or stored in g.
    // the read-only operand (g, or x for the pure apply) is read in place when it already
    // is contiguous T (the usual case): no copy, and no clone of its header either
    let (xp, gp, into_x, _keep): (Ptr<T>, Ptr<T>, bool, std::borrow::Cow<'_, Tensor>) = match target {
        Target::Param { x, g } => {
            let gc = g.as_contiguous::<T>()?;
            let gp = Ptr(gc.as_slice::<T>()?.as_ptr() as *mut T);
            (Ptr(x.data_mut::<T>()?.as_mut_ptr()), gp, true, gc)
        }
        Target::Grad { x, g } => {
            let xc = x.as_contiguous::<T>()?;
            let xp = Ptr(xc.as_slice::<T>()?.as_ptr() as *mut T);
            (xp, Ptr(g.data_mut::<T>()?.as_mut_ptr()), false, xc)
        }
    };
    let wide = has_avx2();
    let run = |lo: usize, hi: usize| {
        let (xp, gp, sp) = (xp, gp, sp);
        let len = hi - lo;
        // SAFETY: [lo, hi) lies within every buffer; parallel tasks get disjoint ranges;
        // the five buffers are distinct allocations (x, g and each state array), so the
        // slices do not alias, which is what lets the compiler vectorise the loop.
        unsafe {
            let states: [&mut [T]; K] = std::array::from_fn(|k| std::slice::from_raw_parts_mut(sp[k].0.add(lo), len));
            if into_x {
                let (x, g) = (std::slice::from_raw_parts_mut(xp.0.add(lo), len), std::slice::from_raw_parts(gp.0.add(lo), len));
                #[cfg(target_arch = "x86_64")]
                if wide {
                    return run_param_avx2(x, g, states, &f);
                }
                run_param(x, g, states, &f);
            } else {
                let (x, g) = (std::slice::from_raw_parts(xp.0.add(lo), len), std::slice::from_raw_parts_mut(gp.0.add(lo), len));
                #[cfg(target_arch = "x86_64")]
                if wide {
                    return run_grad_avx2(x, g, states, &f);
                }
                run_grad(x, g, states, &f);
            }
        }
    };
    if n >= PAR_THRESHOLD {
        crate::parallel::warm();
        (0..n.div_ceil(CHUNK)).into_par_iter().for_each(|c| run(c * CHUNK, ((c + 1) * CHUNK).min(n)));
    } else {
        run(0, n);
    }
    Ok(())
}

/// The shapes of the target and its states agree.
fn check<'a>(target: &Target, states: impl Iterator<Item = &'a Tensor>) -> Result<()> {
    let n = target.x().numel();
    if target.g().numel() != n {
        return Err(Error::mismatch("update", target.g().shape(), target.x().shape()));
    }
    for s in states {
        if s.numel() != n {
            return Err(Error::Shape(format!("optimiser state of shape {:?} does not match parameter {:?}", s.shape(), target.x().shape())));
        }
    }
    Ok(())
}

/// The fused step of one rule on the tensors' own device (the GPU's entry point; the
/// CPU runs rules through [`elementwise`]): the backend's
/// [`optim_step`](crate::backend::BackendStorage::optim_step) gets the rule's name and
/// hyperparameters and updates the parameter (or, for the pure apply, the gradient)
/// and the state arrays in place. A device without a kernel for the rule is an
/// [`Error::Device`] naming it.
///
/// ```
/// use flux_core::backend::OptimStep;
/// use flux_core::optim::kernel::{device_step, Target};
/// use flux_core::Tensor;
/// let mut x = Tensor::from_vec(vec![1.0f32], &[1]).unwrap();
/// let g = Tensor::from_vec(vec![0.5f32], &[1]).unwrap();
/// // the CPU runs rules as closures, so it has no kernel behind this entry point
/// let step = OptimStep { rule: "descent", hyper: &[0.1], t: 1, into_x: true };
/// assert!(matches!(device_step(Target::Param { x: &mut x, g: &g }, &mut [], step), Err(flux_core::Error::Device(_))));
/// ```
pub fn device_step(target: Target, states: &mut [&mut Tensor], step: OptimStep<'_>) -> Result<()> {
    check(&target, states.iter().map(|s| &**s))?;
    let mut st: Vec<&mut crate::tensor::Storage> = Vec::with_capacity(states.len());
    for s in states.iter_mut() {
        st.push(s.storage_mut()?);
    }
    match target {
        Target::Param { x, g } => {
            // packed: the kernel reads whole buffers, and a gradient may be a view into a
            // longer one (a slice of the stacked q/k/v projection's gradient)
            let g = g.cast(x.dtype())?;
            let g = g.packed_storage_ref()?;
            x.storage_mut()?.optim_step(&g, &mut st, OptimStep { into_x: true, ..step })
        }
        Target::Grad { x, g } => {
            let x = x.cast(g.dtype())?;
            let x = x.packed_storage_ref()?;
            g.storage_mut()?.optim_step(&x, &mut st, OptimStep { into_x: false, ..step })
        }
    }
}

/// `x ← x − f(x, g, s)` over one run of elements. Slices (not pointers) carry the
/// no-alias facts the vectoriser needs.
#[inline(always)]
fn run_param<T: Float, const K: usize>(x: &mut [T], g: &[T], mut s: [&mut [T]; K], f: &impl Fn(T, T, &mut [T; K]) -> T) {
    let n = x.len();
    let g = &g[..n];
    for v in s.iter_mut() {
        assert_eq!(v.len(), n);
    }
    for i in 0..n {
        let mut e: [T; K] = std::array::from_fn(|k| s[k][i]);
        let d = f(x[i], g[i], &mut e);
        for k in 0..K {
            s[k][i] = e[k];
        }
        x[i] -= d;
    }
}

/// `g ← f(x, g, s)` over one run of elements.
#[inline(always)]
fn run_grad<T: Float, const K: usize>(x: &[T], g: &mut [T], mut s: [&mut [T]; K], f: &impl Fn(T, T, &mut [T; K]) -> T) {
    let n = g.len();
    let x = &x[..n];
    for v in s.iter_mut() {
        assert_eq!(v.len(), n);
    }
    for i in 0..n {
        let mut e: [T; K] = std::array::from_fn(|k| s[k][i]);
        g[i] = f(x[i], g[i], &mut e);
        for k in 0..K {
            s[k][i] = e[k];
        }
    }
}

/// Can this CPU run the AVX2+FMA builds of the loops? (Checked once; the library itself
/// is compiled for baseline x86-64 so that it runs everywhere.)
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static WIDE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *WIDE.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

// The same loops compiled with 256-bit vectors. Rust never contracts a·b + c into an FMA
// on its own, so the results are bit-identical to the baseline build.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_param_avx2<T: Float, const K: usize>(x: &mut [T], g: &[T], s: [&mut [T]; K], f: &impl Fn(T, T, &mut [T; K]) -> T) {
    run_param(x, g, s, f)
}
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_grad_avx2<T: Float, const K: usize>(x: &[T], g: &mut [T], s: [&mut [T]; K], f: &impl Fn(T, T, &mut [T; K]) -> T) {
    run_grad(x, g, s, f)
}

/// Julia's `sign`: ±1, and 0 (keeping its sign) or NaN passed through. (`f64::signum`
/// gives 1 for +0.)
///
/// ```
/// use flux_core::optim::kernel::sign;
/// assert_eq!((sign(2.5f64), sign(-0.1f64)), (1.0, -1.0));
/// assert!(sign(-0.0f64) == 0.0 && sign(-0.0f64).is_sign_negative()); // zero keeps its sign
/// assert!(sign(f64::NAN).is_nan());
/// ```
#[inline(always)]
pub fn sign<T: Float>(x: T) -> T {
    if x > T::zero() {
        T::one()
    } else if x < T::zero() {
        -T::one()
    } else {
        x
    }
}

/// Julia's `max` for floats: NaN if either argument is NaN.
///
/// ```
/// use flux_core::optim::kernel::jmax;
/// assert_eq!(jmax(1.0f32, 2.0), 2.0);
/// assert!(jmax(1.0f32, f32::NAN).is_nan() && jmax(f32::NAN, 1.0).is_nan());
/// ```
#[inline(always)]
pub fn jmax<T: Float>(a: T, b: T) -> T {
    if a.is_nan() || b.is_nan() {
        T::nan()
    } else if a > b {
        a
    } else {
        b
    }
}

/// Julia's `min` for floats: NaN if either argument is NaN.
///
/// ```
/// use flux_core::optim::kernel::jmin;
/// assert_eq!(jmin(1.0f32, 2.0), 1.0);
/// assert!(jmin(f32::NAN, 1.0f32).is_nan());
/// ```
#[inline(always)]
pub fn jmin<T: Float>(a: T, b: T) -> T {
    if a.is_nan() || b.is_nan() {
        T::nan()
    } else if a < b {
        a
    } else {
        b
    }
}
