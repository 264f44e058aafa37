//! Rules and optimiser state as Python sees them. A Python rule object (`fx.Adam(...)`)
//! carries a compiled `RuleCore`; an `fx.Leaf` holds the Python rule, the Rust state
//! and the frozen flag; `update_many` steps every leaf of a model in one call.
use flux_core::optim::{self, Hyper, Rule, State};
use flux_core::error::py_shape;
use flux_core::{DType, Tensor};
use pyo3::exceptions::{PyTypeError, PyValueError};
use numpy::PyArrayMethods;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyTuple};

use crate::convert::{dtype_from_name, host_onto, maybe_detach, to_tensor};
use crate::errors::IntoPyResult;
use crate::tensor::PyTensor;

/// The compiled form of a rule; Python rule classes build one in their constructor.
#[pyclass(name = "RuleCore", module = "flux_rs._core", frozen)]
pub struct RuleCore {
    pub r: Box<dyn Rule>,
}

pub(crate) fn hyper_from_py(v: &Bound<'_, PyAny>) -> PyResult<Hyper> {
    if v.is_instance_of::<PyBool>() {
        return Ok(Hyper::Bool(v.extract()?));
    }
    if v.is_instance_of::<PyInt>() {
        return Ok(Hyper::Int(v.extract()?));
    }
    if v.is_instance_of::<PyFloat>() {
        return Ok(Hyper::Float(v.extract()?));
    }
    if let Ok(c) = v.getattr("_core") {
        if let Ok(rc) = c.cast::<RuleCore>() {
            return Ok(Hyper::Rule(rc.get().r.clone()));
        }
    }
    if v.is_instance_of::<PyTuple>() || v.is_instance_of::<PyList>() {
        let items: Vec<Bound<'_, PyAny>> = v.try_iter()?.collect::<PyResult<_>>()?;
        let all_rules = !items.is_empty() && items.iter().all(|i| i.getattr("_core").is_ok());
        if all_rules || items.is_empty() && v.is_instance_of::<PyList>() {
            let rs = items.iter().map(|i| match hyper_from_py(i)? {
                Hyper::Rule(r) => Ok(r),
                _ => Err(PyTypeError::new_err("expected a rule")),
            });
            return Ok(Hyper::Rules(rs.collect::<PyResult<_>>()?));
        }
        if items.len() == 2 {
            if let (Ok(a), Ok(b)) = (items[0].extract::<f64>(), items[1].extract::<f64>()) {
                return Ok(Hyper::Pair(a, b));
            }
        }
        return Err(PyTypeError::new_err(format!("expected a tuple of two numbers, got {}", v.repr()?)));
    }
    if let Ok(f) = v.extract::<f64>() {
        return Ok(Hyper::Float(f));
    }
    Err(PyTypeError::new_err(format!("a hyperparameter must be a number, a bool or a tuple, got {}", v.get_type().name()?)))
}

pub fn hyper_to_py<'py>(py: Python<'py>, h: &Hyper) -> PyResult<Bound<'py, PyAny>> {
    Ok(match h {
        Hyper::Float(v) => v.into_pyobject(py)?.into_any(),
        Hyper::Int(v) => v.into_pyobject(py)?.into_any(),
        Hyper::Bool(v) => PyBool::new(py, *v).to_owned().into_any(),
        Hyper::Pair(a, b) => PyTuple::new(py, [*a, *b])?.into_any(),
        Hyper::Rule(r) => RuleCore { r: r.clone() }.into_pyobject(py)?.into_any(),
        Hyper::Rules(rs) => PyTuple::new(py, rs.iter().map(|r| RuleCore { r: r.clone() }))?.into_any(),
    })
}

#[pymethods]
impl RuleCore {
    /// Build `name` (an Optimisers.jl rule name) from keyword hyperparameters.
    /// MixedPrecision also takes `master`, the dtype name of its master copy.
    #[new]
    fn new(name: &str, fields: &Bound<'_, PyDict>) -> PyResult<Self> {
        let mut f = Vec::new();
        let mut master = None;
        for (k, v) in fields.iter() {
            let k = k.extract::<String>()?;
            if name == "MixedPrecision" && k == "master" {
                master = Some(dtype_from_name(&v.extract::<String>()?)?);
                continue;
            }
            f.push((k, hyper_from_py(&v)?));
        }
        let r = optim::build(name, &f).py()?;
        Ok(RuleCore { r: match master {
            // `build` makes the f64-master form; rebuild it around the same inner rule
            Some(m) => match r.fields().into_iter().next() {
                Some((_, Hyper::Rule(inner))) => Box::new(optim::MixedPrecision::with_master(m, inner).py()?),
                _ => r,
            },
            None => r,
        } })
    }
    /// The compiled form of a rule written in Python (a subclass of `fx.Rule` with its
    /// own `apply`): its steps call the object's `init` and `apply`.
    #[staticmethod]
    fn python(obj: &Bound<'_, PyAny>) -> PyResult<Self> { Ok(RuleCore { r: Box::new(crate::pyrule::PyRule::new(obj)?) }) }
    /// `Momentum(eta=0.01, rho=0.9)`
    fn describe(&self) -> String { optim::describe(self.r.as_ref()) }
    #[getter]
    fn name(&self) -> &'static str { self.r.name() }
    /// The hyperparameters as (name, value) pairs, in constructor order.
    fn fields<'py>(&self, py: Python<'py>) -> PyResult<Vec<(&'static str, Bound<'py, PyAny>)>> {
        self.r.fields().iter().map(|(k, v)| Ok((*k, hyper_to_py(py, v)?))).collect()
    }
}

/// Optimiser state as Python values: arrays as Tensors, numbers, tuples, None.
pub fn state_to_py<'py>(py: Python<'py>, s: &State) -> PyResult<Bound<'py, PyAny>> {
    Ok(match s {
        State::Empty => py.None().into_bound(py),
        State::Tensor(t) => PyTensor::new(t.clone()).into_pyobject(py)?.into_any(),
        State::Scalar(v) => v.into_pyobject(py)?.into_any(),
        State::Int(i) => i.into_pyobject(py)?.into_any(),
        State::Tuple(v) => PyTuple::new(py, v.iter().map(|x| state_to_py(py, x)).collect::<PyResult<Vec<_>>>()?)?.into_any(),
    })
}

pub fn state_from_py(v: &Bound<'_, PyAny>) -> PyResult<State> {
    if v.is_none() {
        return Ok(State::Empty);
    }
    if v.is_instance_of::<PyBool>() {
        return Ok(State::Int(v.extract::<bool>()? as i64));
    }
    if v.is_instance_of::<PyInt>() {
        return Ok(State::Int(v.extract()?));
    }
    if v.is_instance_of::<PyFloat>() {
        return Ok(State::Scalar(v.extract()?));
    }
    if v.is_instance_of::<PyTuple>() || v.is_instance_of::<PyList>() {
        let items: Vec<State> = v.try_iter()?.map(|i| state_from_py(&i?)).collect::<PyResult<_>>()?;
        return Ok(State::Tuple(items));
    }
    // tensors and arrays first: a one-element tensor also converts to float
    if v.cast::<PyTensor>().is_err() && v.cast::<numpy::PyUntypedArray>().is_err() {
        if let Ok(f) = v.extract::<f64>() {
            return Ok(State::Scalar(f));
        }
    }
    Ok(State::Tensor(to_tensor(v, None)?.detach_copy().py()?))
}

/// The optimiser state of one parameter: `rule`, `state` and `frozen`, as in
/// Optimisers.jl. Made by `fx.setup`; mutated by `fx.update_`, `fx.adjust_`, `fx.freeze_`.
#[pyclass(name = "Leaf", module = "flux_rs")]
pub struct PyLeaf {
    rule: Py<PyAny>,
    core: Box<dyn Rule>,
    pub state: State,
    /// The Tensors `leaf.state` hands out, one per array of `state` in walking order,
    /// made on its first access and kept: `update_` steps their buffers in place, so a
    /// handle taken before a step sees it (Optimisers.jl mutates state arrays in place).
    /// While they exist they hold the arrays and `state` holds empty placeholders in
    /// their places; the two are swapped for a step (see [`swap_arrays`]).
    views: Option<Vec<Py<PyTensor>>>,
    #[pyo3(get, set)]
    frozen: bool,
}

/// The arrays of a state, depth first.
fn state_tensors_mut<'a>(s: &'a mut State, out: &mut Vec<&'a mut Tensor>) {
    match s {
        State::Tensor(t) => out.push(t),
        State::Tuple(v) => v.iter_mut().for_each(|x| state_tensors_mut(x, out)),
        _ => {}
    }
}

/// `s` as Python values, its arrays taken in order from `views`.
fn state_to_py_with<'py>(py: Python<'py>, s: &State, views: &mut std::slice::Iter<'_, Py<PyTensor>>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match s {
        State::Tensor(_) => views.next().expect("one view per array").clone_ref(py).into_bound(py).into_any(),
        State::Tuple(v) => PyTuple::new(py, v.iter().map(|x| state_to_py_with(py, x, views)).collect::<PyResult<Vec<_>>>()?)?.into_any(),
        s => state_to_py(py, s)?,
    })
}

/// A number of the state as its parameter's precision prints it (βt of a float32
/// parameter is 0.9, not 0.8999999761581421), in Python's float notation.
fn number_repr(py: Python<'_>, v: f64, dt: DType) -> PyResult<String> {
    let v = match dt {
        // the shortest decimal that reads back as this float32, as numpy prints it
        DType::F32 => format!("{:?}", v as f32).parse::<f64>().unwrap_or(v),
        DType::F64 => v,
    };
    Ok(PyFloat::new(py, v).repr()?.to_string())
}

/// An array summarised as Optimisers.jl shows one inside a tree: `Float32[0.0, 0.5]`
/// when it has at most 4 elements, else its first two and last elements and its shape,
/// `Float32[0.0, 0.5 … 1.0] (3, 4)`.
fn array_repr(py: Python<'_>, t: &Tensor) -> PyResult<String> {
    let dt = t.dtype();
    let name = match dt {
        DType::F32 => "Float32",
        DType::F64 => "Float64",
    };
    let n = t.numel();
    // shown from host memory (a GPU state's arrays are read back to print them)
    let c = t.to_device(flux_core::Device::Cpu).py()?.contiguous().py()?;
    let pick = |i: usize| -> PyResult<String> {
        let v = match dt {
            DType::F32 => c.as_slice::<f32>().py()?[i] as f64,
            DType::F64 => c.as_slice::<f64>().py()?[i],
        };
        number_repr(py, v, dt)
    };
    let shape = || py_shape(t.shape());
    if n <= 4 {
        let vals = (0..n).map(pick).collect::<PyResult<Vec<_>>>()?.join(", ");
        return Ok(if t.ndim() == 1 { format!("{name}[{vals}]") } else { format!("{name}[{vals}] {}", shape()) });
    }
    Ok(format!("{name}[{}, {} … {}] {}", pick(0)?, pick(1)?, pick(n - 1)?, shape()))
}

/// A state in the compact form of a Leaf's repr.
fn state_repr(py: Python<'_>, s: &State, dt: DType) -> PyResult<String> {
    Ok(match s {
        State::Empty => "None".into(),
        State::Tensor(t) => array_repr(py, t)?,
        State::Scalar(v) => number_repr(py, *v, dt)?,
        State::Int(i) => i.to_string(),
        State::Tuple(v) => {
            let parts = v.iter().map(|x| state_repr(py, x, dt)).collect::<PyResult<Vec<_>>>()?;
            if parts.len() == 1 { format!("({},)", parts[0]) } else { format!("({})", parts.join(", ")) }
        }
    })
}

/// The dtype a state's numbers are kept in: that of its first array (f64 without one).
fn state_dtype(s: &State) -> DType {
    match s {
        State::Tensor(t) => t.dtype(),
        State::Tuple(v) => v.iter().find(|x| contains_tensor(x)).map_or(DType::F64, state_dtype),
        _ => DType::F64,
    }
}

fn contains_tensor(s: &State) -> bool {
    match s {
        State::Tensor(_) => true,
        State::Tuple(v) => v.iter().any(contains_tensor),
        _ => false,
    }
}

fn core_of(rule: &Bound<'_, PyAny>) -> PyResult<Box<dyn Rule>> {
    let c = rule
        .getattr("_core")
        .map_err(|_| PyTypeError::new_err(format!("expected an optimisation rule such as fx.Adam(), got {}", rule.get_type().name().map(|n| n.to_string()).unwrap_or_default())))?;
    Ok(c.cast::<RuleCore>()?.get().r.clone())
}

#[pymethods]
impl PyLeaf {
    /// `Leaf(rule, state, frozen=False)`; `fx.setup` builds these for you.
    #[new]
    #[pyo3(signature = (rule, state, frozen=false))]
    fn new(rule: &Bound<'_, PyAny>, state: &Bound<'_, PyAny>, frozen: bool) -> PyResult<Self> {
        Ok(PyLeaf { core: core_of(rule)?, rule: rule.clone().unbind(), state: state_from_py(state)?, views: None, frozen })
    }
    #[getter]
    fn rule(&self, py: Python<'_>) -> Py<PyAny> { self.rule.clone_ref(py) }
    /// Replacing the rule keeps the state (this is how `adjust_` works).
    #[setter(rule)]
    fn set_rule(&mut self, rule: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core = core_of(rule)?;
        self.rule = rule.clone().unbind();
        Ok(())
    }
    /// The state as Python values. Its arrays are the same Tensor objects on every
    /// access, and `update_` changes their values in place.
    #[getter]
    fn state<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if self.views.is_none() {
            let mut ts = Vec::new();
            state_tensors_mut(&mut self.state, &mut ts);
            let mut views = Vec::with_capacity(ts.len());
            for t in ts {
                let placeholder = Tensor::zeros(&[0], t.dtype());
                views.push(Py::new(py, PyTensor::new(std::mem::replace(t, placeholder)))?);
            }
            self.views = Some(views);
        }
        state_to_py_with(py, &self.state, &mut self.views.as_ref().expect("made above").iter())
    }
    #[setter(state)]
    fn set_state(&mut self, s: &Bound<'_, PyAny>) -> PyResult<()> {
        self.state = state_from_py(s)?;
        self.views = None;
        Ok(())
    }
    /// Move the state's arrays to `device` ("cpu" or "gpu") in place, float64 ones made
    /// float32 on the GPU (as the parameters are). MixedPrecision keeps a float64 master
    /// copy and its inner state on the host whatever the device (a float32 master moves,
    /// and on the GPU rounds the parameter to float16).
    fn _to_device_(&mut self, py: Python<'_>, device: &str) -> PyResult<()> {
        let d = crate::device::parse(device)?;
        let mixed = self.core.name() == "MixedPrecision";
        self.with_arrays_mut(py, |s| -> flux_core::Result<()> {
            if mixed {
                if let flux_core::optim::State::Tuple(v) = &*s {
                    if v.first().and_then(|m| m.tensor().ok()).is_some_and(|m| m.dtype() == flux_core::DType::F64) {
                        return Ok(());
                    }
                }
            }
            let mut ts = Vec::new();
            state_tensors_mut(s, &mut ts);
            for t in ts {
                if t.device() != d {
                    let moved = crate::device::moved(t, d)?;
                    t.replace_data_(&moved);
                }
            }
            Ok(())
        })?
        .py()
    }
    /// A copy whose state arrays are independent of this leaf's.
    fn _copy(&mut self, py: Python<'_>) -> PyResult<PyLeaf> {
        let state = self.with_arrays(py, |s| s.deep_clone())?.py()?;
        Ok(PyLeaf { rule: self.rule.clone_ref(py), core: self.core.clone(), state, views: None, frozen: self.frozen })
    }
    /// `Leaf(Adam(eta=0.001, …), (Float32[0.0, 0.0 … 0.0] (3, 4), …, (0.9, 0.999)))`:
    /// the rule, and the state with its arrays summarised and its numbers printed in
    /// the parameter's precision.
    fn __repr__(&mut self, py: Python<'_>) -> PyResult<String> {
        let r = self.rule.bind(py).repr()?.to_string();
        let s = self.with_arrays(py, |s| state_repr(py, s, state_dtype(s)))??;
        Ok(if self.frozen { format!("Leaf({r}, {s}, frozen=True)") } else { format!("Leaf({r}, {s})") })
    }
}

/// A leaf's views, borrowed for writing: all of them (none when it has none), or an
/// error when one is in use elsewhere (another thread).
fn borrow_views<'py>(py: Python<'py>, views: &Option<Vec<Py<PyTensor>>>) -> PyResult<Vec<PyRefMut<'py, PyTensor>>> {
    let Some(views) = views else { return Ok(Vec::new()) };
    views
        .iter()
        .map(|v| v.bind(py).try_borrow_mut())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| PyValueError::new_err("an optimiser state array is in use elsewhere (another thread?)"))
}

/// Exchange the arrays of a leaf's state with those its views hold: once before a step
/// (so the step owns each buffer alone and writes it in place) and once after.
fn swap_arrays(state: &mut State, vs: &mut [PyRefMut<'_, PyTensor>]) {
    let mut ts = Vec::new();
    state_tensors_mut(state, &mut ts);
    for (t, v) in ts.into_iter().zip(vs.iter_mut()) {
        std::mem::swap(t, &mut v.t);
    }
}

impl PyLeaf {
    /// `f` of the state with its arrays in place, allowed to change them.
    fn with_arrays_mut<R>(&mut self, py: Python<'_>, f: impl FnOnce(&mut State) -> R) -> PyResult<R> {
        let mut vs = borrow_views(py, &self.views)?;
        swap_arrays(&mut self.state, &mut vs);
        let r = f(&mut self.state);
        swap_arrays(&mut self.state, &mut vs);
        Ok(r)
    }
    /// `f` of the state with its arrays in place.
    fn with_arrays<R>(&mut self, py: Python<'_>, f: impl FnOnce(&State) -> R) -> PyResult<R> {
        let mut vs = borrow_views(py, &self.views)?;
        swap_arrays(&mut self.state, &mut vs);
        let r = f(&self.state);
        swap_arrays(&mut self.state, &mut vs);
        Ok(r)
    }
}

/// One fused step for every leaf: `xs[i] ← xs[i] − dx′` with `gs[i]`, in one trip into
/// Rust (the Python layer has already summed tied gradients and dropped frozen leaves).
#[pyfunction]
fn update_many(py: Python<'_>, leaves: Vec<Bound<'_, PyLeaf>>, xs: Vec<Bound<'_, PyTensor>>, gs: Vec<Bound<'_, PyAny>>) -> PyResult<()> {
    if leaves.len() != xs.len() || xs.len() != gs.len() {
        return Err(PyValueError::new_err("update_many: lengths differ"));
    }
    step_leaves(py, &leaves, &xs, &gs)
}

/// One fused step per leaf (frozen ones skipped) after every gradient's shape is checked,
/// with the GIL released when the work is large.
pub(crate) fn step_leaves(py: Python<'_>, leaves: &[Bound<'_, PyLeaf>], xs: &[Bound<'_, PyTensor>], gs: &[Bound<'_, PyAny>]) -> PyResult<()> {
    // the gradients first, before any parameter is borrowed for writing: a parameter may
    // be its own gradient (the step then reads the old values: copy-on-write)
    let busy = || PyValueError::new_err("a parameter is being updated by another call (another thread?)");
    // a host array (numpy) given for a parameter on the GPU goes up to it; a Tensor on
    // another device than its parameter is the step's error, naming both
    let gts: Vec<Tensor> = xs
        .iter()
        .zip(gs)
        .map(|(x, g)| {
            let x = x.try_borrow().map_err(|_| busy())?;
            let t = to_tensor(g, Some(x.t.dtype()))?;
            if g.is_instance_of::<PyTensor>() { Ok(t) } else { host_onto(t, &x.t) }
        })
        .collect::<PyResult<_>>()?;
    let mut lrefs: Vec<PyRefMut<'_, PyLeaf>> = leaves.iter().map(|l| l.borrow_mut()).collect();
    let mut xrefs: Vec<PyRefMut<'_, PyTensor>> = xs
        .iter()
        .map(|x| x.try_borrow_mut().map_err(|_| PyValueError::new_err("a parameter appears twice in one update")))
        .collect::<PyResult<_>>()?;
    if lrefs.iter().any(|l| l.views.is_some() && !l.frozen) {
        return step_leaves_holding_views(py, &mut lrefs, &mut xrefs, gts);
    }
    let mut work = Vec::with_capacity(lrefs.len());
    let mut total = 0;
    for ((l, x), g) in lrefs.iter_mut().zip(xrefs.iter_mut()).zip(gts) {
        check_shapes(&x.t, &g)?;
        total += g.numel();
        let l: &mut PyLeaf = l;
        if l.frozen {
            continue;
        }
        work.push((l.core.as_ref(), &mut l.state, &mut x.t, g));
    }
    maybe_detach(py, total, || step_all(work.iter_mut().map(|(r, s, x, g)| (*r, &mut **s, &mut **x, g)))).py()
}

fn check_shapes(x: &Tensor, g: &Tensor) -> PyResult<()> {
    if g.shape() != x.shape() {
        return Err(PyValueError::new_err(format!("gradient of shape {:?} does not match parameter of shape {:?}", g.shape(), x.shape())));
    }
    Ok(())
}

/// The steps themselves, with no Python in sight (so the GIL may be released).
fn step_all<'a>(work: impl Iterator<Item = (&'a dyn Rule, &'a mut State, &'a mut Tensor, &'a mut Tensor)>) -> flux_core::Result<()> {
    for (rule, state, x, g) in work {
        check_gradient_device(x, g)?;
        if g.dtype() != x.dtype() {
            *g = g.cast(x.dtype())?; // a float64 gradient for a float32 parameter
        }
        rule.step_(state, x, g).map_err(|e| state_device_error(e, state, x))?;
    }
    Ok(())
}

/// A gradient on another device than its parameter, named as such (the rule's own check
/// would only say "tensors on different devices").
fn check_gradient_device(x: &Tensor, g: &Tensor) -> flux_core::Result<()> {
    if g.device() == x.device() {
        return Ok(());
    }
    let (shape, xd) = (py_shape(x.shape()), x.device().name());
    Err(flux_core::Error::Device(format!(
        "update_: the gradient is on the {} but its parameter of shape {shape} is on the {xd}; take the gradient of the model on the {xd}",
        g.device().name()
    )))
}

/// A rule's device error when the optimiser state is on another device than its
/// parameter, said as such: the usual cause is a model moved with fx.gpu / fx.cpu after
/// `fx.setup`. Checked only once the rule has failed, since some states live on the host
/// beside a GPU parameter by design (MixedPrecision's float64 master copy).
fn state_device_error(e: flux_core::Error, state: &State, x: &Tensor) -> flux_core::Error {
    fn device_of(s: &State) -> Option<flux_core::Device> {
        match s {
            State::Tensor(t) => Some(t.device()),
            State::Tuple(v) => v.iter().find_map(device_of),
            _ => None,
        }
    }
    match (&e, device_of(state)) {
        (flux_core::Error::Device(_), Some(d)) if d != x.device() => {
            let (shape, xd) = (py_shape(x.shape()), x.device().name());
            flux_core::Error::Device(format!(
                "update_: the optimiser state is on the {} but its parameter of shape {shape} is on the {xd} (was the model moved after fx.setup?); move the state with fx.{xd}(state) or call fx.setup(rule, model) again",
                d.name()
            ))
        }
        _ => e,
    }
}

/// [`step_leaves`] when some leaf's state was read (`leaf.state`): such a leaf keeps
/// its arrays in those Tensors, which are swapped in for the step and held so that no
/// other thread sees them meanwhile. (A path of its own, so that the common case pays
/// nothing for it.)
fn step_leaves_holding_views(
    py: Python<'_>, lrefs: &mut [PyRefMut<'_, PyLeaf>], xrefs: &mut [PyRefMut<'_, PyTensor>], gts: Vec<Tensor>,
) -> PyResult<()> {
    let mut work = Vec::with_capacity(lrefs.len());
    let mut total = 0;
    for ((l, x), g) in lrefs.iter_mut().zip(xrefs.iter_mut()).zip(gts) {
        check_shapes(&x.t, &g)?;
        total += g.numel();
        let l: &mut PyLeaf = l;
        if l.frozen {
            continue;
        }
        let PyLeaf { ref core, ref mut state, ref views, .. } = *l;
        work.push((core.as_ref(), state, views, &mut x.t, g));
    }
    let mut lent = Vec::new();
    for (i, (_, state, views, _, _)) in work.iter_mut().enumerate() {
        if views.is_none() {
            continue;
        }
        match borrow_views(py, views) {
            Ok(mut vs) => {
                swap_arrays(state, &mut vs);
                lent.push((i, vs));
            }
            Err(e) => {
                for (j, vs) in lent.iter_mut() {
                    swap_arrays(work[*j].1, vs);
                }
                return Err(e);
            }
        }
    }
    let r = maybe_detach(py, total, || step_all(work.iter_mut().map(|(r, s, _, x, g)| (*r, &mut **s, &mut **x, g))));
    for (i, vs) in lent.iter_mut() {
        swap_arrays(work[*i].1, vs);
    }
    r.py()
}

/// The pure rule interface: the initial state for parameter `x`.
#[pyfunction]
fn rule_init<'py>(py: Python<'py>, rule: &Bound<'py, PyAny>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let r = core_of(rule)?;
    let x = to_tensor(x, None)?;
    state_to_py(py, &r.init_on_device(&x).py()?)
}

/// The pure rule interface: `(new_state, dx)` for state, parameter `x` and gradient `g`;
/// the inputs are not modified. `dx` is None when the rule makes no step (AccumGrad).
/// `check_form`: compare the state's form with `init`'s first (off for rules written in
/// Python, whose state may change form from step to step).
#[pyfunction]
#[pyo3(signature = (rule, state, x, g, check_form=true))]
fn rule_apply<'py>(py: Python<'py>, rule: &Bound<'py, PyAny>, state: &Bound<'py, PyAny>, x: &Bound<'py, PyAny>, g: &Bound<'py, PyAny>, check_form: bool) -> PyResult<(Bound<'py, PyAny>, Option<PyTensor>)> {
    let r = core_of(rule)?;
    let x = to_tensor(x, None)?;
    let mut g = to_tensor(g, Some(x.dtype()))?.cast(x.dtype()).py()?.detach_copy().py()?;
    check_shapes(&x, &g)?;
    let mut s = state_from_py(state)?.deep_clone().py()?;
    // a state of another form would fail deep inside the rule with the rule's own words
    let want = if check_form { Some(r.init(&x).py()?) } else { None };
    if let Some(want) = want.filter(|w| !s.same_form(w)) {
        return Err(PyValueError::new_err(format!(
            "{}: this state does not fit the rule and a parameter of shape {:?}: expected {}, got {}; \
             pass the state from fx.optimise.init(rule, x) or from the previous apply",
            optim::describe(r.as_ref()), x.shape(), want.describe(), s.describe()
        )));
    }
    let stepped = r.apply_(&mut s, &x, &mut g).py()?;
    Ok((state_to_py(py, &s)?, stepped.then(|| PyTensor::new(g))))
}

/// Running p-norm accumulator over several arrays (Julia's `norm(g, p)` of the
/// concatenation); f64 accumulation so float32 gradients cannot overflow.
struct NormAcc {
    p: f64,
    acc: f64,
    maxabs: f64,
}

impl NormAcc {
    fn new(p: f64) -> Self {
        NormAcc { p, acc: if p == f64::NEG_INFINITY { f64::INFINITY } else { 0.0 }, maxabs: 0.0 }
    }
    /// `acc` with one more entry of absolute value `a`.
    #[inline]
    fn fold(p: f64, acc: f64, a: f64) -> f64 {
        if p == 2.0 {
            acc + a * a
        } else if p == 1.0 {
            acc + a
        } else if p == f64::INFINITY {
            // NaN must win the max (and the min) so that a NaN gradient gives a NaN norm
            if a.is_nan() || a > acc { a } else { acc }
        } else if p == f64::NEG_INFINITY {
            if a.is_nan() || a < acc { a } else { acc }
        } else if p == 0.0 {
            acc + (a != 0.0) as u8 as f64
        } else {
            acc + a.powf(p)
        }
    }
    /// The entries of one array.
    fn add<T: flux_core::Float>(&mut self, xs: &[T]) {
        let p = self.p;
        let mut acc = self.acc;
        let mut mx = self.maxabs;
        for &v in xs {
            let a = v.to_f64().abs();
            mx = if a.is_nan() || a > mx { a } else { mx };
            acc = Self::fold(p, acc, a);
        }
        self.acc = acc;
        self.maxabs = mx;
    }
    /// An array whose own p-norm `n` was reduced elsewhere (on a GPU): ‖(a, b)‖_p from
    /// ‖b‖_p. `n` bounds its entries, so it stands in for them in `maxabs`.
    fn add_norm(&mut self, n: f64) {
        // with p = 0 the "norm" is a count of non-zeros, which adds up
        self.acc = if self.p == 0.0 { self.acc + n } else { Self::fold(self.p, self.acc, n) };
        self.maxabs = if n.is_nan() || n > self.maxabs { n } else { self.maxabs };
    }
    fn finish(&self) -> f64 {
        let p = self.p;
        if p == 1.0 || p == 0.0 || p.is_infinite() {
            self.acc
        } else if p == 2.0 {
            self.acc.sqrt()
        } else {
            self.acc.powf(1.0 / p)
        }
    }
}

fn scale_slice<T: flux_core::Float>(xs: &mut [T], lambda: f64) {
    let l = T::f(lambda);
    xs.iter_mut().for_each(|v| *v *= l);
}

/// One gradient array, Rust- or numpy-owned, borrowed for writing.
enum GradBuf<'py> {
    T(PyRefMut<'py, PyTensor>),
    F32(numpy::PyReadwriteArrayDyn<'py, f32>),
    F64(numpy::PyReadwriteArrayDyn<'py, f64>),
}

enum SliceMut<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
}

impl GradBuf<'_> {
    fn slice(&mut self) -> PyResult<SliceMut<'_>> {
        let contig = || PyValueError::new_err("clip_norm_ needs contiguous numpy gradient arrays");
        Ok(match self {
            GradBuf::T(t) => match t.t.dtype() {
                flux_core::DType::F32 => SliceMut::F32(t.t.data_mut::<f32>().py()?),
                flux_core::DType::F64 => SliceMut::F64(t.t.data_mut::<f64>().py()?),
            },
            GradBuf::F32(a) => SliceMut::F32(a.as_slice_mut().map_err(|_| contig())?),
            GradBuf::F64(a) => SliceMut::F64(a.as_slice_mut().map_err(|_| contig())?),
        })
    }
}

/// Global-norm clipping of many gradient arrays (PyTorch's `clip_grad_norm_`): the
/// p-norm `n` of all of them together; when `n > omega` each is scaled in place by
/// `omega / n` (ClipNorm's rule applied to the whole tree). Returns `n`.
#[pyfunction]
#[pyo3(signature = (grads, omega, p=2.0, throw=true))]
fn clip_global_norm_(grads: Vec<Bound<'_, PyAny>>, omega: f64, p: f64, throw: bool) -> PyResult<f64> {
    if omega.is_nan() || omega < 0.0 {
        return Err(PyValueError::new_err(format!("omega must be a non-negative number, got {omega}")));
    }
    if p.is_nan() {
        return Err(PyValueError::new_err("p must be a number, got nan"));
    }
    // gradients on a GPU are reduced there (one float back each) and scaled there
    let mut on_device = Vec::new();
    let mut bufs = Vec::with_capacity(grads.len());
    for g in &grads {
        if let Ok(t) = g.cast::<PyTensor>() {
            let t = t.try_borrow_mut().map_err(|_| PyValueError::new_err("a gradient appears twice in clip_norm_"))?;
            if t.t.device() == flux_core::Device::Cpu {
                bufs.push(GradBuf::T(t));
            } else {
                on_device.push(t);
            }
        } else if let Ok(a) = g.cast::<numpy::PyArrayDyn<f32>>() {
            bufs.push(GradBuf::F32(a.try_readwrite().map_err(|e| PyValueError::new_err(format!("cannot write this gradient array: {e}")))?));
        } else if let Ok(a) = g.cast::<numpy::PyArrayDyn<f64>>() {
            bufs.push(GradBuf::F64(a.try_readwrite().map_err(|e| PyValueError::new_err(format!("cannot write this gradient array: {e}")))?));
        } else {
            return Err(PyTypeError::new_err(format!(
                "clip_norm_ needs gradients as fx.Tensor or float32/float64 numpy arrays, got {}",
                g.get_type().name()?
            )));
        }
    }
    let device_norms = on_device.iter().map(|t| optim::clip::device_pnorm(&t.t, p).py()).collect::<PyResult<Vec<f64>>>()?;
    let mut acc = NormAcc::new(p);
    for b in bufs.iter_mut() {
        match b.slice()? {
            SliceMut::F32(s) => acc.add(s),
            SliceMut::F64(s) => acc.add(s),
        }
    }
    device_norms.iter().for_each(|&n| acc.add_norm(n));
    let mut n = acc.finish();
    if p == 2.0 && n.is_infinite() && acc.maxabs.is_finite() && acc.maxabs > 0.0 {
        // the sum of squares overflowed: redo it on values scaled by the largest
        let mx = acc.maxabs;
        let mut ss: f64 = device_norms.iter().map(|v| (v / mx).powi(2)).sum();
        for b in bufs.iter_mut() {
            match b.slice()? {
                SliceMut::F32(s) => s.iter().for_each(|v| ss += (*v as f64 / mx).powi(2)),
                SliceMut::F64(s) => s.iter().for_each(|v| ss += (v / mx).powi(2)),
            }
        }
        n = mx * ss.sqrt();
    }
    if throw && !n.is_finite() {
        return Err(PyValueError::new_err(format!("gradient has {p}-norm {n}; pass throw=False to clip it anyway")));
    }
    // Julia's min(ω/n, 1): a NaN norm gives NaN, an infinite one 0 (so Inf entries become NaN)
    let lambda = if n.is_nan() { f64::NAN } else { (omega / n).min(1.0) };
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // NaN must take this branch
    if !(lambda >= 1.0) {
        for b in bufs.iter_mut() {
            match b.slice()? {
                SliceMut::F32(s) => scale_slice(s, lambda),
                SliceMut::F64(s) => scale_slice(s, lambda),
            }
        }
        for t in on_device.iter_mut() {
            let scaled = t.t.detach().mul_scalar(lambda).py()?;
            t.t.assign_(&scaled).py()?;
        }
    }
    Ok(n)
}

/// Every rule's default hyperparameters, `{rule name: {field: default}}` in constructor
/// order, as Rust's `optim::defaults` gives them (the Python rules' signatures are built
/// from this; fields without a default are absent). MixedPrecision's `master` is the
/// dtype name of its master copy.
#[pyfunction]
fn rule_defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    for &name in optim::RULES {
        let d = PyDict::new(py);
        for (k, v) in optim::defaults(name).py()? {
            d.set_item(k, hyper_to_py(py, &v)?)?;
        }
        if name == "MixedPrecision" {
            let m = optim::MixedPrecision::new(Box::new(optim::Descent::new(0.0))).py()?;
            d.set_item("master", m.master.name())?;
        }
        out.set_item(name, d)?;
    }
    Ok(out)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(clip_global_norm_, m)?)?;
    m.add_class::<RuleCore>()?;
    m.add_class::<PyLeaf>()?;
    m.add_function(wrap_pyfunction!(update_many, m)?)?;
    m.add_function(wrap_pyfunction!(rule_init, m)?)?;
    m.add_function(wrap_pyfunction!(rule_apply, m)?)?;
    m.add_function(wrap_pyfunction!(rule_defaults, m)?)?;
    let _ = std::marker::PhantomData::<Tensor>;
    Ok(())
}
