//! Element types. Every kernel is generic over [`Float`]; `dispatch!` picks the
//! instantiation from a storage's runtime dtype.
use std::fmt::Debug;

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float (the default).
    F32,
    /// 64-bit float.
    F64,
}

impl DType {
    /// numpy's name: `"float32"` or `"float64"`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }
    /// numpy's promotion between two float dtypes.
    pub fn promote(a: DType, b: DType) -> DType {
        if a == DType::F64 || b == DType::F64 { DType::F64 } else { DType::F32 }
    }
}

/// The float types a tensor can hold.
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
    fn f(v: f64) -> Self;
    /// This number as f64.
    fn to_f64(self) -> f64;
    /// A buffer of this type as CPU storage.
    fn vec_into(v: Vec<Self>) -> super::storage::CpuStorage;
    /// The storage's buffer, if it holds this type.
    fn slice(s: &super::storage::CpuStorage) -> Option<&[Self]>;
    /// The storage's buffer, mutably, if it holds this type.
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
