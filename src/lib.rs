//! `flux_rs._core`: the PyO3 face of flux-core. This crate converts arguments, checks
//! them, maps errors to Python exceptions and releases the GIL around kernels; every
//! number is computed in `flux_core`.
use pyo3::prelude::*;

// Small steps allocate and free many small buffers (tensor headers, tape nodes, shapes);
// mimalloc's thread-local free lists halve what glibc's malloc costs there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod autodiff;
mod convert;
mod data;
mod errors;
mod io;
mod layers;
mod nn;
mod optim;
mod tensor;
mod tree;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    tensor::register(m)?;
    autodiff::register(m)?;
    nn::register(m)?;
    optim::register(m)?;
    data::register(m)?;
    io::register(m)?;
    layers::register(m)?;
    tree::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
