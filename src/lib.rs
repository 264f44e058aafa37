//! `flux_rs._core`: the PyO3 face of flux-core. This crate converts arguments, checks
//! them, maps errors to Python exceptions and releases the GIL around kernels; every
//! number is computed in `flux_core`.
use pyo3::prelude::*;

mod autodiff;
mod convert;
mod data;
mod errors;
mod io;
mod layers;
mod nn;
mod optim;
mod tensor;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    tensor::register(m)?;
    autodiff::register(m)?;
    nn::register(m)?;
    optim::register(m)?;
    data::register(m)?;
    io::register(m)?;
    layers::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
