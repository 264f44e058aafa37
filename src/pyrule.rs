//! Optimisation rules written in Python: `class MyRule(fx.Rule)` with `init(self, x)`
//! and `apply(self, state, x, dx) -> (state, dx)`. [`PyRule`] is a flux-core [`Rule`]
//! that calls those two methods, so a Python rule goes everywhere a built-in one does
//! (the Rust walk of `update_`, `OptimiserChain`, `MixedPrecision`, the pure
//! `init`/`apply`) and built-in rules keep their fused Rust step untouched.
//!
//! Its state is made of what a built-in state is made of (arrays, numbers, tuples,
//! None), converted on the way in and out, so that checkpoints store it the same way.
//! A Python exception raised by the rule reaches the caller unchanged: it travels
//! through flux-core's `Error` as a numbered placeholder (see [`stash`]).
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use flux_core::optim::{Hyper, Rule, State};
use flux_core::{Error, Result, Tensor};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::convert::to_tensor;
use crate::optim::{hyper_from_py, state_from_py, state_to_py};
use crate::tensor::PyTensor;

/// A rule object of a Python class overriding `fx.Rule.apply`.
#[derive(Clone)]
pub struct PyRule {
    obj: Arc<Py<PyAny>>,
    name: &'static str,
}

impl std::fmt::Debug for PyRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{}(<Python rule>)", self.name) }
}

/// `name` as a `&'static str` (the trait's names are static): each distinct name is
/// leaked once, and a program defines few rule classes.
fn intern_name(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashMap<String, &'static str>>> = Mutex::new(None);
    let mut g = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let m = g.get_or_insert_with(HashMap::new);
    if let Some(s) = m.get(name) {
        return s;
    }
    let s: &'static str = Box::leak(name.to_owned().into_boxed_str());
    m.insert(name.to_owned(), s);
    s
}

// ---- Python exceptions through flux-core's Error ------------------------------------

const MARK: &str = "\u{1}flux_rs: a Python rule raised #";
static PENDING: Mutex<Vec<(u64, PyErr)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Keep `e` and return the placeholder error that names it; `errors::to_py` gives `e`
/// back when the placeholder reaches Python.
fn stash(e: PyErr) -> Error {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut p = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    if p.len() >= 64 {
        p.remove(0); // placeholders dropped on the way (never converted) do not pile up
    }
    p.push((id, e));
    Error::Value(format!("{MARK}{id}"))
}

/// The Python exception behind a placeholder message, if it is one.
pub fn take_stashed(msg: &str) -> Option<PyErr> {
    let id: u64 = msg.strip_prefix(MARK)?.parse().ok()?;
    let mut p = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    let i = p.iter().position(|(k, _)| *k == id)?;
    Some(p.remove(i).1)
}

impl PyRule {
    pub fn new(obj: &Bound<'_, PyAny>) -> PyResult<PyRule> {
        let name = obj.get_type().name()?.to_string();
        Ok(PyRule { obj: Arc::new(obj.clone().unbind()), name: intern_name(&name) })
    }

    /// A state returned by the rule, as flux-core keeps it.
    fn state_in(&self, s: &Bound<'_, PyAny>, method: &str) -> PyResult<State> {
        state_from_py(s).map_err(|_| {
            let got = s.get_type().name().map(|n| n.to_string()).unwrap_or_default();
            PyTypeError::new_err(format!(
                "{}.{method} must give its state as arrays (Tensors or numpy), numbers, tuples or None \
                 (what update_ and checkpoints keep), got {got}",
                self.name
            ))
        })
    }

    fn call_init(&self, py: Python<'_>, x: &Tensor) -> PyResult<State> {
        let xt = Py::new(py, PyTensor::new(x.detach()))?;
        let s = self.obj.bind(py).call_method1(intern!(py, "init"), (xt,))?;
        self.state_in(&s, "init")
    }

    fn call_apply(&self, py: Python<'_>, state: &mut State, x: &Tensor, g: &mut Tensor) -> PyResult<bool> {
        let s = state_to_py(py, state)?;
        let xt = Py::new(py, PyTensor::new(x.detach()))?;
        let gt = Py::new(py, PyTensor::new(g.detach()))?;
        let out = self.obj.bind(py).call_method1(intern!(py, "apply"), (s, xt, gt))?;
        let pair = out.cast::<PyTuple>().ok().filter(|t| t.len() == 2).ok_or_else(|| {
            PyTypeError::new_err(format!(
                "{}.apply must return (state, dx), a tuple of two, got {}",
                self.name,
                out.get_type().name().map(|n| n.to_string()).unwrap_or_default()
            ))
        })?;
        *state = self.state_in(&pair.get_item(0)?, "apply")?;
        let dx = pair.get_item(1)?;
        if dx.is_none() {
            return Ok(false); // no step this time, as AccumGrad between its n-th gradients
        }
        let d = to_tensor(&dx, Some(x.dtype()))?;
        if d.shape() != x.shape() {
            return Err(PyValueError::new_err(format!(
                "{}.apply returned a step of shape {:?} for a parameter of shape {:?}",
                self.name,
                d.shape(),
                x.shape()
            )));
        }
        // a step computed with numpy is a host array: it goes to the parameter's device
        // (tensor ops on a GPU parameter's dx already ran there)
        let d = if d.device() == x.device() { d } else { d.to_device(x.device()).map_err(crate::errors::to_py)? };
        *g = if d.dtype() == x.dtype() { d.detach() } else { d.cast(x.dtype()).map_err(crate::errors::to_py)? };
        Ok(true)
    }
}

impl Rule for PyRule {
    fn name(&self) -> &'static str { self.name }
    /// The public attributes that are numbers, pairs, bools or rules (for messages).
    fn fields(&self) -> Vec<(&'static str, Hyper)> {
        Python::attach(|py| {
            let Ok(vals) = self.obj.bind(py).call_method0(intern!(py, "_values")) else { return vec![] };
            let Ok(items) = vals.call_method0(intern!(py, "items")).and_then(|i| i.try_iter()) else { return vec![] };
            items
                .filter_map(|kv| {
                    let (k, v): (String, Bound<'_, PyAny>) = kv.ok()?.extract().ok()?;
                    Some((intern_name(&k), hyper_from_py(&v).ok()?))
                })
                .collect()
        })
    }
    fn set(&mut self, field: &str, _value: Hyper) -> Result<()> {
        Err(Error::DType(format!("{} is a Python rule: change its {field} with fx.adjust_ or fx.adjust", self.name)))
    }
    fn init(&self, x: &Tensor) -> Result<State> { Python::attach(|py| self.call_init(py, x).map_err(stash)) }
    fn apply_(&self, state: &mut State, x: &Tensor, g: &mut Tensor) -> Result<bool> {
        Python::attach(|py| self.call_apply(py, state, x, g).map_err(stash))
    }
    fn box_clone(&self) -> Box<dyn Rule> { Box::new(self.clone()) }
}
