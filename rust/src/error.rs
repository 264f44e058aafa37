//! One error type for the whole engine; the Python layer maps each variant to an exception.
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// Shapes that do not fit together (Python: ValueError).
    #[error("{0}")]
    Shape(String),
    /// An operation on a dtype it does not support (Python: TypeError).
    #[error("{0}")]
    DType(String),
    /// A bad argument value (Python: ValueError).
    #[error("{0}")]
    Value(String),
    /// A tensor on the wrong device.
    #[error("{0}")]
    Device(String),
    /// Misuse of the autodiff tape (Python: RuntimeError).
    #[error("{0}")]
    Autodiff(String),
    /// `train` met a loss that is Inf or NaN at the 0-based batch `index`.
    #[error("loss is {value} on batch {index}, stopping training")]
    NonFiniteLoss { value: f64, index: usize },
    /// A gradient norm that is not finite where the rule is told to throw (ClipNorm).
    #[error("{0}")]
    Domain(String),
    #[error("{0}")]
    Io(String),
    /// A buffer that cannot be allocated (Python: MemoryError). Raised before the
    /// allocation is tried for real, so the process never aborts on it.
    #[error("{0}")]
    OutOfMemory(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! shape_err { ($($t:tt)*) => { $crate::error::Error::Shape(format!($($t)*)) } }
macro_rules! value_err { ($($t:tt)*) => { $crate::error::Error::Value(format!($($t)*)) } }
pub(crate) use shape_err;
pub(crate) use value_err;
