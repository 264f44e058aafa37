//! flux-core errors as Python exceptions: shapes and values → ValueError, dtypes and
//! wrong types → TypeError, a non-finite ClipNorm → FloatingPointError.
use flux_core::Error;
use pyo3::exceptions::{PyFloatingPointError, PyIOError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::PyErr;

pub fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Shape(_) | Error::Value(_) | Error::Device(_) => PyValueError::new_err(msg),
        Error::DType(_) => PyTypeError::new_err(msg),
        Error::Autodiff(_) => PyRuntimeError::new_err(msg),
        Error::NonFiniteLoss { .. } | Error::Domain(_) => PyFloatingPointError::new_err(msg),
        Error::Io(_) => PyIOError::new_err(msg),
    }
}

/// `result.py()?` turns a flux-core result into a PyResult.
pub trait IntoPyResult<T> {
    fn py(self) -> pyo3::PyResult<T>;
}
impl<T> IntoPyResult<T> for flux_core::Result<T> {
    fn py(self) -> pyo3::PyResult<T> { self.map_err(to_py) }
}
