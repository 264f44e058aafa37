//! Element types. Every kernel is generic over [`Float`]; `dispatch!` picks the
//! instantiation from a storage's runtime dtype.
use std::fmt::Debug;

/// The element type of a tensor.
///
/// ```
/// use flux_core::DType;
/// assert_eq!((DType::F32.name(), DType::F64.size()), ("float32", 8));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float (the default).
    F32,
    /// 64-bit float.
    F64,
}

/// Names, sizes and promotion.
///
/// ```
/// use flux_core::DType;
/// assert_eq!(DType::promote(DType::F32, DType::F32).size(), 4);
/// ```
impl DType {
    /// numpy's name: `"float32"` or `"float64"`.
    ///
    /// ```
    /// use flux_core::DType;
    /// assert_eq!((DType::F32.name(), DType::F64.name()), ("float32", "float64"));
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }
    /// Bytes per element.
    ///
    /// ```
    /// use flux_core::DType;
    /// assert_eq!((DType::F32.size(), DType::F64.size()), (4, 8));
    /// ```
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }
    /// numpy's promotion between two float dtypes.
    ///
    /// ```
    /// use flux_core::DType;
    /// assert_eq!(DType::promote(DType::F32, DType::F64), DType::F64);
    /// assert_eq!(DType::promote(DType::F32, DType::F32), DType::F32);
    /// ```
    pub fn promote(a: DType, b: DType) -> DType {
        if a == DType::F64 || b == DType::F64 { DType::F64 } else { DType::F32 }
    }
}

/// The float types a tensor can hold.
///
/// ```
/// use flux_core::{DType, Float};
/// fn total<T: Float>(xs: &[T]) -> f64 { xs.iter().copied().sum::<T>().to_f64() }
/// assert_eq!(total(&[1.5f32, 2.0]), 3.5);
/// assert_eq!(<f64 as Float>::DTYPE, DType::F64);
/// ```
pub trait Float:
    num_traits::Float
    + num_traits::FromPrimitive
    + num_traits::NumAssign
    + std::iter::Sum
    + Default
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The [`DType`] of this type.
    const DTYPE: DType;
    /// The number `v` in this type.
    ///
    /// ```
    /// use flux_core::Float;
    /// assert_eq!(<f32 as Float>::f(0.5), 0.5f32);
    /// ```
    fn f(v: f64) -> Self;
    /// This number as f64.
    ///
    /// ```
    /// use flux_core::Float;
    /// assert_eq!(Float::to_f64(0.25f32), 0.25);
    /// ```
    fn to_f64(self) -> f64;
    /// A buffer of this type as CPU storage.
    ///
    /// ```
    /// use flux_core::{tensor::CpuStorage, Float};
    /// assert!(matches!(f32::vec_into(vec![1.0]), CpuStorage::F32(v) if v == vec![1.0]));
    /// ```
    fn vec_into(v: Vec<Self>) -> super::storage::CpuStorage;
    /// The storage's buffer, if it holds this type.
    ///
    /// ```
    /// use flux_core::{tensor::CpuStorage, Float};
    /// let s = CpuStorage::F64(vec![1.0, 2.0]);
    /// assert_eq!(f64::slice(&s), Some(&[1.0, 2.0][..]));
    /// assert_eq!(f32::slice(&s), None);
    /// ```
    fn slice(s: &super::storage::CpuStorage) -> Option<&[Self]>;
    /// The storage's buffer, mutably, if it holds this type.
    ///
    /// ```
    /// use flux_core::{tensor::CpuStorage, Float};
    /// let mut s = CpuStorage::F32(vec![1.0]);
    /// f32::slice_mut(&mut s).unwrap()[0] = 3.0;
    /// assert_eq!(f32::slice(&s), Some(&[3.0f32][..]));
    /// ```
    fn slice_mut(s: &mut super::storage::CpuStorage) -> Option<&mut [Self]>;
}

macro_rules! impl_float {
    ($t:ty, $d:ident) => {
        impl Float for $t {
            const DTYPE: DType = DType::$d;
            #[inline(always)]
            fn f(v: f64) -> Self { v as $t }
            #[inline(always)]
            fn to_f64(self) -> f64 { self as f64 }
            fn vec_into(v: Vec<Self>) -> super::storage::CpuStorage { super::storage::CpuStorage::$d(v) }
            fn slice(s: &super::storage::CpuStorage) -> Option<&[Self]> {
                match s { super::storage::CpuStorage::$d(v) => Some(v), _ => None }
            }
            fn slice_mut(s: &mut super::storage::CpuStorage) -> Option<&mut [Self]> {
                match s { super::storage::CpuStorage::$d(v) => Some(v), _ => None }
            }
        }
    };
}
impl_float!(f32, F32);
impl_float!(f64, F64);

/// Run `$body` with `$T` bound to the Rust type of `$dtype`.
///
/// ```
/// use flux_core::{DType, Float, Tensor};
/// fn first(t: &Tensor) -> f64 {
///     flux_core::dispatch!(t.dtype(), T => t.as_slice::<T>().unwrap()[0].to_f64())
/// }
/// assert_eq!(first(&Tensor::full(&[2], 1.5, DType::F32)), 1.5);
/// assert_eq!(first(&Tensor::full(&[2], 2.5, DType::F64)), 2.5);
/// ```
#[macro_export]
macro_rules! dispatch {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::tensor::DType::F32 => { type $T = f32; #[allow(unused_imports)] use $crate::tensor::dtype::prelude::*; $body }
            $crate::tensor::DType::F64 => { type $T = f64; #[allow(unused_imports)] use $crate::tensor::dtype::prelude::*; $body }
        }
    };
}

/// Traits that concrete-type code inside `dispatch!` needs in scope.
pub mod prelude {
    pub use super::Float as _;
    pub use num_traits::{One as _, Zero as _};
}
