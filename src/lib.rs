//! `flux_rs._core`: the PyO3 face of flux-core. This crate converts arguments, checks
//! them, maps errors to Python exceptions and releases the GIL around kernels; every
//! number is computed in `flux_core`.
use pyo3::prelude::*;

mod alloc;

#[global_allocator]
static GLOBAL: alloc::SplitAlloc = alloc::SplitAlloc;

mod attention;
mod autodiff;
mod convert;
mod data;
mod device;
mod distributed;
mod errors;
mod io;
mod layers;
mod layers_misc;
mod nn;
mod norm;
mod optim;
mod pyrule;
mod recurrent;
mod tensor;
mod tree;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The importing thread (Python's main thread, as a rule) joins rayon's pool as worker
    // 0, as OpenMP's master thread does: with N threads a parallel op runs on the caller
    // and N−1 workers instead of blocking the caller while N workers run. That leaves no
    // thread more than cores, and when a sleeping worker wakes late (a VM's idle vCPU)
    // the caller does the work itself instead of waiting. Fails harmlessly when the pool
    // already exists (another extension built it first): it is then used as it is.
    alloc::keep_freed_memory();
    let _ = rayon::ThreadPoolBuilder::new().use_current_thread().build_global();
    flux_core::tensor::matmul::prepare();
    tensor::register(m)?;
    autodiff::register(m)?;
    attention::register(m)?;
    nn::register(m)?;
    optim::register(m)?;
    data::register(m)?;
    device::register(m)?;
    distributed::register(m)?;
    io::register(m)?;
    layers::register(m)?;
    layers_misc::register(m)?;
    norm::register(m)?;
    tree::register(m)?;
    recurrent::register(m)?;
    errors::install_panic_net(m.py())?;
    m.add_function(wrap_pyfunction!(errors::_panic_for_test, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
