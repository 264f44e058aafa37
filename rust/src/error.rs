//! One error type for the whole engine; the Python layer maps each variant to an exception.
//!
//! Variants carry structure where a caller can act on it: a [`Error::ShapeMismatch`]
//! holds the op and both shapes, an [`Error::Io`] keeps the `std::io::Error` that caused
//! it (reachable through [`std::error::Error::source`]).
//!
//! ```
//! use flux_core::{Error, Tensor};
//! let a = Tensor::zeros(&[2, 3], flux_core::DType::F32);
//! let b = Tensor::zeros(&[4], flux_core::DType::F32);
//! match a.add(&b) {
//!     Err(Error::ShapeMismatch { op, lhs, rhs }) => {
//!         assert_eq!((op, lhs, rhs), ("broadcast", vec![2, 3], vec![4]));
//!     }
//!     other => panic!("expected a shape mismatch, got {other:?}"),
//! }
//! ```
use std::sync::Arc;

use thiserror::Error;

/// Everything that can go wrong in flux-core. Never a panic: every fallible path
/// returns one of these.
///
/// ```
/// use flux_core::{DType, Error, Tensor};
/// let (a, b) = (Tensor::zeros(&[2, 3], DType::F32), Tensor::zeros(&[4, 5], DType::F32));
/// match a.matmul(&b) {
///     Err(Error::ShapeMismatch { op, lhs, rhs }) => assert_eq!((op, lhs, rhs), ("matmul", vec![2, 3], vec![4, 5])),
///     other => panic!("expected a shape mismatch, got {other:?}"),
/// }
/// ```
#[derive(Debug, Error, Clone)]
pub enum Error {
    /// Shapes that do not fit together (Python: ValueError).
    #[error("{0}")]
    Shape(String),
    /// Two shapes that `op` cannot combine, e.g. operands that do not broadcast or a
    /// gradient whose shape differs from its parameter's (Python: ValueError).
    #[error("{op}: shapes {lhs:?} and {rhs:?} do not fit together")]
    ShapeMismatch {
        /// The operation that refused them (`"broadcast"`, `"matmul"`, `"update"`, …).
        op: &'static str,
        /// The first operand's shape (the gradient's, for `"update"`).
        lhs: Vec<usize>,
        /// The second operand's shape (the parameter's, for `"update"`).
        rhs: Vec<usize>,
    },
    /// An operation on a dtype it does not support (Python: TypeError).
    #[error("{0}")]
    DType(String),
    /// A bad argument value (Python: ValueError).
    #[error("{0}")]
    Value(String),
    /// A tensor on the wrong device (Python: ValueError).
    #[error("{0}")]
    Device(String),
    /// Misuse of the autodiff tape (Python: RuntimeError).
    #[error("{0}")]
    Autodiff(String),
    /// `train` met a loss that is Inf or NaN at the 0-based batch `index`
    /// (Python: FloatingPointError).
    #[error("loss is {value} on batch {index}, stopping training")]
    NonFiniteLoss {
        /// The loss value (Inf or NaN).
        value: f64,
        /// The 0-based index of the batch that gave it.
        index: usize,
    },
    /// A gradient norm that is not finite where the rule is told to throw (ClipNorm;
    /// Python: FloatingPointError).
    #[error("{0}")]
    Domain(String),
    /// A file that cannot be read or written (Python: OSError). `source` is the
    /// underlying I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, and to which file.
        context: String,
        /// The error the operating system (or a decoder) reported.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A buffer that cannot be allocated (Python: MemoryError). Raised before the
    /// allocation is tried for real, so the process never aborts on it.
    #[error("{0}")]
    OutOfMemory(String),
}

/// Constructors for the structured variants.
///
/// ```
/// use flux_core::Error;
/// assert!(Error::mismatch("add", &[2], &[3]).to_string().contains("add"));
/// ```
impl Error {
    /// An [`Error::Io`] from what was being done and the error that stopped it; `source`
    /// may be any error (a zip or npy decoder's, say), wrapped as an `std::io::Error`.
    ///
    /// ```
    /// use std::error::Error as _;
    /// let e = flux_core::Error::io("cannot read data.npz", std::io::Error::from(std::io::ErrorKind::NotFound));
    /// assert!(e.to_string().starts_with("cannot read data.npz: "));
    /// assert!(e.source().is_some());
    /// ```
    pub fn io(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        let source = source.into();
        let source = match source.downcast::<std::io::Error>() {
            Ok(e) => *e,
            Err(other) => std::io::Error::other(other),
        };
        Error::Io { context: context.into(), source: Arc::new(source) }
    }

    /// An [`Error::ShapeMismatch`] for `op` and the two shapes it could not combine.
    ///
    /// ```
    /// let e = flux_core::Error::mismatch("matmul", &[2, 3], &[4, 5]);
    /// assert_eq!(e.to_string(), "matmul: shapes [2, 3] and [4, 5] do not fit together");
    /// ```
    pub fn mismatch(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Error {
        Error::ShapeMismatch { op, lhs: lhs.to_vec(), rhs: rhs.to_vec() }
    }
}

/// Errors are equal when they are the same variant with the same message (an I/O
/// error's source compares by its text, as `std::io::Error` has no equality).
impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other) && self.to_string() == other.to_string()
    }
}

/// `Result` with flux-core's [`Error`](enum@Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A shape as Python writes a tuple, `(3, 4)`, `(3,)`, `()`: for messages that reach
/// Python users (who passed the shape as a tuple).
///
/// ```
/// use flux_core::error::py_shape;
/// assert_eq!((py_shape(&[3, 4]), py_shape(&[3]), py_shape(&[])), ("(3, 4)".into(), "(3,)".into(), "()".into()));
/// ```
pub fn py_shape(s: &[usize]) -> String {
    match s {
        [a] => format!("({a},)"),
        _ => format!("({})", s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

macro_rules! shape_err { ($($t:tt)*) => { $crate::error::Error::Shape(format!($($t)*)) } }
macro_rules! value_err { ($($t:tt)*) => { $crate::error::Error::Value(format!($($t)*)) } }
pub(crate) use shape_err;
pub(crate) use value_err;
