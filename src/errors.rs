//! flux-core errors as Python exceptions: shapes and values → ValueError, dtypes and
//! wrong types → TypeError, a non-finite ClipNorm → FloatingPointError.
use flux_core::Error;
use pyo3::exceptions::{PyFloatingPointError, PyIOError, PyMemoryError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::PyErr;

pub fn to_py(e: Error) -> PyErr {
    if let Error::Value(m) = &e {
        if let Some(err) = crate::pyrule::take_stashed(m) {
            return err; // raised by a rule written in Python: given back as it was
        }
    }
    let mut msg = e.to_string();
    if let Error::Device(m) = &e {
        // flux-core names Rust's remedy; a Python user moves tensors with fx.gpu / fx.cpu
        if let Some(head) = m.strip_suffix("; move one with to_device") {
            msg = format!("{head}; move one with fx.gpu or fx.cpu (fx.DataLoader(..., device=\"gpu\") delivers batches on the GPU)");
        }
    }
    match e {
        Error::Shape(_) | Error::ShapeMismatch { .. } | Error::Value(_) | Error::Device(_) => PyValueError::new_err(msg),
        Error::DType(_) => PyTypeError::new_err(msg),
        Error::Autodiff(_) => PyRuntimeError::new_err(msg),
        Error::NonFiniteLoss { .. } | Error::Domain(_) => PyFloatingPointError::new_err(msg),
        Error::Io { .. } => PyIOError::new_err(msg),
        Error::OutOfMemory(_) => PyMemoryError::new_err(msg),
    }
}

/// `result.py()?` turns a flux-core result into a PyResult.
pub trait IntoPyResult<T> {
    fn py(self) -> pyo3::PyResult<T>;
}
impl<T> IntoPyResult<T> for flux_core::Result<T> {
    fn py(self) -> pyo3::PyResult<T> { self.map_err(to_py) }
}

/// The last line of defence against a Rust panic reaching Python as pyo3's
/// `PanicException`, which derives from BaseException (so `except Exception` misses it)
/// and reads like a crash. Every flux-core error is a `Result`; a panic is a bug. This
/// makes this extension's PanicException a RuntimeError (its class is private to this
/// extension: other PyO3 extensions have their own) whose message asks for a report.
/// Patching the class once costs nothing per call, where a `catch_unwind` in each of
/// the bindings would be one more wrapper on every hot method.
pub fn install_panic_net(py: pyo3::Python<'_>) -> pyo3::PyResult<()> {
    use pyo3::prelude::*;
    let p = py.get_type::<pyo3::panic::PanicException>();
    p.setattr("__bases__", (py.get_type::<PyRuntimeError>(),))?;
    let code = c"def __str__(self):\n    what = self.args[0] if self.args else 'unknown'\n    return ('internal error in flux_rs (a Rust panic: ' + str(what) + '). This is a bug in flux_rs: please report it with the code that raised it')\n";
    let m = PyModule::from_code(py, code, c"flux_rs_panic_net.py", c"flux_rs_panic_net")?;
    p.setattr("__str__", m.getattr("__str__")?)?;
    p.setattr("__module__", "flux_rs")?;
    Ok(())
}

/// Panic on purpose, so that a test can check the net above.
#[pyo3::pyfunction]
pub fn _panic_for_test(msg: &str) {
    panic!("{msg}");
}
