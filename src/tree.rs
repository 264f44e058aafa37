//! The per-step tree walks of `fx.gradient` and `fx.update_`, done here rather than in
//! Python because on small models they were most of a step (W2: 38 of 47 µs).
//!
//! The rules of what a tree is stay in Python (`flux_rs._tree`): this module walks the
//! shapes it knows cheaply (Tensor, tuple, list, dict, `Node`, and the "plain" classes
//! that `_tree.children` has registered as walked through their `__dict__`) and calls
//! back into Python for anything else, so both walks agree with `children` exactly.
use pyo3::exceptions::{PyAttributeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use rustc_hash::FxHashMap as HashMap;
use pyo3::types::{PyDict, PyIterator, PyList, PyString, PyTuple, PyType};

use crate::optim::{step_leaves, PyLeaf};
use crate::convert::to_tensor;
use crate::errors::IntoPyResult;
use crate::tensor::PyTensor;

/// One level of a recursive walk, counted against Python's recursion limit: a tree
/// nested deeper than that raises RecursionError (as `fx.setup`'s Python walk does)
/// instead of overflowing the Rust stack.
struct Depth;

impl Depth {
    fn enter(py: Python<'_>) -> PyResult<Depth> {
        // SAFETY: the GIL is held (we have `py`); the message is a static C string
        if unsafe { pyo3::ffi::Py_EnterRecursiveCall(c" while walking a flux_rs tree".as_ptr()) } != 0 {
            return Err(PyErr::fetch(py));
        }
        Ok(Depth)
    }
}

impl Drop for Depth {
    fn drop(&mut self) {
        // SAFETY: paired with the successful Py_EnterRecursiveCall of `enter`, GIL held
        unsafe { pyo3::ffi::Py_LeaveRecursiveCall() }
    }
}

/// A container's `[(key, child)]`.
type Kids<'py> = Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>;

/// What both walks need from `flux_rs._tree`: the plain-class registry (a dict that
/// `children` adds to, never rebinds), the Python fallbacks, and `Node`'s equality rule.
struct TreeRefs {
    plain: Py<PyDict>,
    children: Py<PyAny>,
    rebuild_like: Py<PyAny>,
    tree_eq: Py<PyAny>,
}

static REFS: PyOnceLock<TreeRefs> = PyOnceLock::new();

fn refs(py: Python<'_>) -> PyResult<&'static TreeRefs> {
    REFS.get_or_try_init(py, || -> PyResult<TreeRefs> {
        let m = py.import("flux_rs._tree")?;
        Ok(TreeRefs {
            plain: m.getattr("_PLAIN_TYPES")?.cast_into::<PyDict>()?.unbind(),
            children: m.getattr("children")?.unbind(),
            rebuild_like: m.getattr("rebuild_like")?.unbind(),
            tree_eq: m.getattr("_tree_eq")?.unbind(),
        })
    })
}

/// The walks' view of [`TreeRefs`] while the GIL is held.
struct Walk<'py> {
    py: Python<'py>,
    r: &'static TreeRefs,
}

impl<'py> Walk<'py> {
    fn get(py: Python<'py>) -> PyResult<Self> { Ok(Walk { py, r: refs(py)? }) }

    fn is_plain(&self, t: &Bound<'py, PyType>) -> PyResult<bool> { self.r.plain.bind(self.py).contains(t) }

    /// For a plain class, its `@fx.layer(trainable=...)` names (None: all fields).
    fn trainable_names(&self, t: &Bound<'py, PyType>) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(self.r.plain.bind(self.py).get_item(t)?.filter(|n| !n.is_none()))
    }

    /// `children(x)` as `[(key, child)]`, None for a leaf: natively for the common
    /// shapes, through `_tree.children` otherwise.
    fn kids(&self, x: &Bound<'py, PyAny>) -> PyResult<Option<Kids<'py>>> {
        let py = x.py();
        if x.is_none() || x.is_instance_of::<PyTensor>() {
            return Ok(None);
        }
        if let Ok(tup) = x.cast_exact::<PyTuple>() {
            return Ok(Some(tup.iter().enumerate().map(|(i, v)| Ok((i.into_pyobject(py)?.into_any(), v))).collect::<PyResult<_>>()?));
        }
        if let Ok(l) = x.cast_exact::<PyList>() {
            return Ok(Some(l.iter().enumerate().map(|(i, v)| Ok((i.into_pyobject(py)?.into_any(), v))).collect::<PyResult<_>>()?));
        }
        if let Ok(d) = x.cast_exact::<PyDict>() {
            return Ok(Some(d.iter().collect()));
        }
        if let Ok(n) = x.cast::<Node>() {
            let n = n.get();
            return Ok(Some(n.fields.bind(py).iter().zip(n.values.bind(py).iter()).collect()));
        }
        let t = x.get_type();
        if self.is_plain(&t)? {
            return Ok(Some(public_fields(x)?));
        }
        let ch = self.r.children.bind(self.py).call1((x,))?;
        if ch.is_none() {
            return Ok(None);
        }
        Ok(Some(ch.try_iter()?.map(|kv| kv?.extract()).collect::<PyResult<_>>()?))
    }
}

/// `k[0] == "_"` without converting the string (abi3 on Python 3.9 has no cheap UTF-8 view).
fn starts_with_underscore(k: &Bound<'_, PyString>) -> bool {
    // SAFETY: `k` is a live str; ReadChar is in the stable ABI and only reads it.
    unsafe { pyo3::ffi::PyUnicode_GetLength(k.as_ptr()) > 0 && pyo3::ffi::PyUnicode_ReadChar(k.as_ptr(), 0) == '_' as u32 }
}

/// An object's instance attributes not starting with "_", in definition order.
fn public_fields<'py>(x: &Bound<'py, PyAny>) -> PyResult<Kids<'py>> {
    let d = x.getattr(intern!(x.py(), "__dict__"))?.cast_into::<PyDict>()?;
    let mut out = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        if !k.cast::<PyString>().is_ok_and(starts_with_underscore) {
            out.push((k, v));
        }
    }
    Ok(out)
}

// ---- Node: the object nodes of gradient and state trees ------------------------------

/// A namedtuple-like node of a gradient or state tree: attribute access by field name,
/// indexing by position, ``None`` for fields with nothing; immutable. Built here
/// because every gradient makes one per layer and every update_ reads them.
///
/// >>> import flux_rs as fx
/// >>> n = fx.Node("Dense", ("weight", "bias"), (1, None))
/// >>> n.weight, n[1], n
/// (1, None, Dense(weight=1, bias=None))
#[pyclass(name = "Node", module = "flux_rs", frozen)]
pub struct Node {
    name: Py<PyString>,
    fields: Py<PyTuple>,
    values: Py<PyTuple>,
}

fn tuple_of<'py>(x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    match x.cast::<PyTuple>() {
        Ok(t) if x.is_exact_instance_of::<PyTuple>() => Ok(t.clone()),
        _ => PyTuple::new(x.py(), x.try_iter()?.collect::<PyResult<Vec<_>>>()?),
    }
}

impl Node {
    pub(crate) fn make<'py>(name: &Bound<'py, PyAny>, fields: &Bound<'py, PyTuple>, values: Vec<Bound<'py, PyAny>>) -> PyResult<Bound<'py, Node>> {
        let py = name.py();
        Bound::new(py, Node { name: name.clone().cast_into::<PyString>()?.unbind(), fields: fields.clone().unbind(), values: PyTuple::new(py, values)?.unbind() })
    }
    fn field<'py>(&self, py: Python<'py>, k: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let (fs, vs) = (self.fields.bind(py), self.values.bind(py));
        for (i, f) in fs.iter().enumerate() {
            if f.is(k) || f.eq(k)? {
                return vs.get_item(i);
            }
        }
        Err(PyAttributeError::new_err(format!("{} node has no field {}; fields are {}", self.name.bind(py), k.repr()?, fs.repr()?)))
    }
}

#[pymethods]
impl Node {
    #[new]
    fn new(name: &Bound<'_, PyString>, fields: &Bound<'_, PyAny>, values: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Node { name: name.clone().unbind(), fields: tuple_of(fields)?.unbind(), values: tuple_of(values)?.unbind() })
    }
    #[getter]
    fn _name(&self, py: Python<'_>) -> Py<PyString> { self.name.clone_ref(py) }
    #[getter]
    fn _fields(&self, py: Python<'_>) -> Py<PyTuple> { self.fields.clone_ref(py) }
    #[getter]
    fn _values(&self, py: Python<'_>) -> Py<PyTuple> { self.values.clone_ref(py) }
    fn __getattr__<'py>(&self, py: Python<'py>, k: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>> { self.field(py, k.as_any()) }
    fn __setattr__(&self, _k: &Bound<'_, PyAny>, _v: &Bound<'_, PyAny>) -> PyResult<()> { Err(PyAttributeError::new_err("tree nodes are immutable")) }
    fn __delattr__(&self, _k: &Bound<'_, PyAny>) -> PyResult<()> { Err(PyAttributeError::new_err("tree nodes are immutable")) }
    fn __getitem__<'py>(&self, py: Python<'py>, i: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if i.is_instance_of::<PyString>() {
            return self.field(py, i);
        }
        self.values.bind(py).as_any().get_item(i)
    }
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyIterator>> { self.values.bind(py).as_any().try_iter() }
    fn __len__(&self, py: Python<'_>) -> usize { self.values.bind(py).len() }
    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(o) = other.cast::<Node>() else { return Ok(false) };
        let o = o.get();
        if !self.fields.bind(py).eq(o.fields.bind(py))? {
            return Ok(false);
        }
        let eq = refs(py)?.tree_eq.bind(py);
        for (a, b) in self.values.bind(py).iter().zip(o.values.bind(py).iter()) {
            if !eq.call1((a, b))?.is_truthy()? {
                return Ok(false);
            }
        }
        Ok(true)
    }
    fn __hash__(&self) -> PyResult<isize> { Err(PyTypeError::new_err("unhashable type: 'Node'")) }
    /// The fields first (what tab completion offers on `opt_state.` and `grads.`),
    /// then the methods.
    fn __dir__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyList>> {
        let py = slf.py();
        let out = PyList::empty(py);
        for f in slf.get().fields.bind(py).iter() {
            if f.is_instance_of::<PyString>() {
                out.append(f)?;
            }
        }
        let base = py.import("builtins")?.getattr("object")?.getattr("__dir__")?.call1((slf,))?;
        for k in base.try_iter()? {
            out.append(k?)?;
        }
        Ok(out)
    }
    /// The fields as a dict.
    fn _asdict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.fields.bind(py).iter().zip(self.values.bind(py).iter()) {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let inner = self
            .fields
            .bind(py)
            .iter()
            .zip(self.values.bind(py).iter())
            .map(|(k, v)| Ok(format!("{}={}", k.str()?, v.repr()?)))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(format!("{}({})", self.name.bind(py), inner.join(", ")))
    }
    /// Pickling: `Node(name, fields, values)` again.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let n = slf.get();
        let args = PyTuple::new(py, [n.name.clone_ref(py).into_any(), n.fields.clone_ref(py).into_any(), n.values.clone_ref(py).into_any()])?;
        PyTuple::new(py, [slf.get_type().into_any(), args.into_any()])
    }
}

// ---- fx.gradient: the plan of an argument and the gradient tree rebuilt from it ------

enum Kind {
    Tuple,
    List,
    Dict,
    /// An object walked through its `__dict__`: its gradient is a `Node` named after its type.
    Plain(Py<PyAny>),
    /// Anything else: `_tree.rebuild_like(x, keys, values)` makes its gradient.
    Other(Py<PyAny>),
}

enum Plan {
    Nothing,
    Param(usize),
    Node { kind: Kind, keys: Py<PyTuple>, subs: Vec<Plan> },
}

/// The tree of one argument of `fx.gradient`, remembered so that its gradient is built
/// without walking the model again.
pub(crate) struct TreePlan {
    plan: Plan,
}

/// The tensors met by the walks of one gradient call, each once, and where each is.
pub(crate) struct Params<'py> {
    pub list: Vec<Bound<'py, PyTensor>>,
    index: HashMap<usize, usize>,
}

impl Default for Params<'_> {
    // sized for a typical model, so that the walk does not rehash as it goes
    fn default() -> Self { Params { list: Vec::with_capacity(16), index: HashMap::with_capacity_and_hasher(16, Default::default()) } }
}

fn plan_of<'py>(w: &Walk<'py>, x: &Bound<'py, PyAny>, visiting: &mut Vec<usize>, params: &mut Params<'py>) -> PyResult<Plan> {
    if let Ok(t) = x.cast::<PyTensor>() {
        let id = x.as_ptr() as usize;
        let n = params.list.len();
        let i = *params.index.entry(id).or_insert(n);
        if i == n {
            params.list.push(t.clone());
        }
        return Ok(Plan::Param(i));
    }
    let id = x.as_ptr() as usize;
    let _depth = Depth::enter(x.py())?;
    let Some(ch) = w.kids(x)? else { return Ok(Plan::Nothing) };
    if visiting.contains(&id) {
        return Ok(Plan::Nothing); // a reference cycle is cut at its second visit
    }
    visiting.push(id);
    let subs = ch
        .iter()
        .map(|(_, v)| if v.is_none() { Ok(Plan::Nothing) } else { plan_of(w, v, visiting, params) })
        .collect::<PyResult<Vec<_>>>();
    visiting.pop();
    let subs = subs?;
    if subs.iter().all(|s| matches!(s, Plan::Nothing)) {
        return Ok(Plan::Nothing);
    }
    let py = x.py();
    let kind = if x.is_exact_instance_of::<PyTuple>() {
        Kind::Tuple
    } else if x.is_exact_instance_of::<PyList>() {
        Kind::List
    } else if x.is_exact_instance_of::<PyDict>() {
        Kind::Dict
    } else if w.is_plain(&x.get_type())? {
        Kind::Plain(x.get_type().name()?.into_any().unbind())
    } else {
        Kind::Other(x.clone().unbind())
    };
    let keys = PyTuple::new(py, ch.iter().map(|(k, _)| k))?.unbind();
    Ok(Plan::Node { kind, keys, subs })
}

/// Walk `x`, adding every Tensor met to `params` once (shared across the arguments of
/// one gradient call).
pub(crate) fn plan<'py>(x: &Bound<'py, PyAny>, params: &mut Params<'py>) -> PyResult<TreePlan> {
    let w = Walk::get(x.py())?;
    Ok(TreePlan { plan: plan_of(&w, x, &mut Vec::new(), params)? })
}

fn rebuild<'py>(py: Python<'py>, w: &Walk<'py>, plan: &Plan, grads: &Bound<'py, PyList>, done: &mut [bool]) -> PyResult<Bound<'py, PyAny>> {
    match plan {
        Plan::Nothing => Ok(py.None().into_bound(py)),
        Plan::Param(i) => {
            // a tensor reached twice gets its whole gradient at its first place and None
            // after, so that update_, which sums over places, counts it once
            if std::mem::replace(&mut done[*i], true) {
                return Ok(py.None().into_bound(py));
            }
            grads.get_item(*i)
        }
        Plan::Node { kind, keys, subs } => {
            let _depth = Depth::enter(py)?;
            let vals = subs.iter().map(|s| rebuild(py, w, s, grads, done)).collect::<PyResult<Vec<_>>>()?;
            if vals.iter().all(|v| v.is_none()) {
                return Ok(py.None().into_bound(py)); // as Zygote's `nothing`
            }
            let keys = keys.bind(py);
            match kind {
                Kind::Tuple => Ok(PyTuple::new(py, vals)?.into_any()),
                Kind::List => Ok(PyList::new(py, vals)?.into_any()),
                Kind::Dict => {
                    let d = PyDict::new(py);
                    for (k, v) in keys.iter().zip(vals) {
                        d.set_item(k, v)?;
                    }
                    Ok(d.into_any())
                }
                Kind::Plain(name) => Ok(Node::make(name.bind(py), keys, vals)?.into_any()),
                Kind::Other(x) => w.r.rebuild_like.bind(py).call1((x.bind(py), PyList::new(py, keys)?, PyList::new(py, vals)?)),
            }
        }
    }
}

impl TreePlan {
    /// The gradient tree, with `grads[i]` for the i-th parameter of the plan.
    pub(crate) fn rebuild<'py>(&self, py: Python<'py>, grads: &Bound<'py, PyList>) -> PyResult<Bound<'py, PyAny>> {
        let w = Walk::get(py)?;
        let mut done = vec![false; grads.len()];
        rebuild(py, &w, &self.plan, grads, &mut done)
    }
}

// ---- fx.update_: state, model and gradient walked together --------------------------

struct Gathered<'py> {
    at: HashMap<usize, usize>,
    leaves: Vec<Bound<'py, PyLeaf>>,
    xs: Vec<Bound<'py, PyTensor>>,
    gs: Vec<Bound<'py, PyAny>>,
}

/// The model's trainable children: `children`, restricted by `@fx.layer(trainable=...)`
/// (other fields reported as None so the keys still line up).
fn trainable_kids<'py>(w: &Walk<'py>, m: &Bound<'py, PyAny>) -> PyResult<Option<Kids<'py>>> {
    let Some(mut ch) = w.kids(m)? else { return Ok(None) };
    let names = if w.is_plain(&m.get_type())? {
        w.trainable_names(&m.get_type())?
    } else if m.is_instance_of::<PyTuple>() || m.is_instance_of::<PyList>() || m.is_instance_of::<PyDict>() || m.is_instance_of::<Node>() {
        None
    } else {
        m.get_type().getattr_opt(intern!(m.py(), "__flux_trainable__"))?.filter(|n| !n.is_none())
    };
    if let Some(names) = names {
        let py = m.py();
        for (k, v) in ch.iter_mut() {
            if !names.contains(&*k)? {
                *v = py.None().into_bound(py);
            }
        }
    }
    Ok(Some(ch))
}

/// The child under `key`, trying the same position first (keys almost always line up).
fn find<'py>(ch: &Option<Kids<'py>>, pos: usize, key: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Some(ch) = ch else { return Ok(None) };
    if let Some((k, v)) = ch.get(pos) {
        if k.is(key) || k.eq(key)? {
            return Ok(Some(v.clone()));
        }
    }
    for (k, v) in ch {
        if k.eq(key)? {
            return Ok(Some(v.clone()));
        }
    }
    Ok(None)
}

fn not_a_state(x: &Bound<'_, PyAny>) -> PyResult<PyErr> {
    Ok(PyTypeError::new_err(format!(
        "update_(opt_state, model, grad): the first argument must be the optimiser state from fx.setup(rule, model), got {}",
        x.get_type().name()?
    )))
}

/// A path of keys as `layers[0].weight` ("the root" when empty).
fn path_str(path: &[Bound<'_, PyAny>]) -> PyResult<String> {
    if path.is_empty() {
        return Ok("the root".into());
    }
    let mut s = String::new();
    for k in path {
        if k.is_instance_of::<pyo3::types::PyInt>() {
            s.push_str(&format!("[{k}]"));
        } else {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(&k.str()?.to_string());
        }
    }
    Ok(s)
}

/// The error for a model or gradient (`what`) that lacks `key` (or is no container)
/// where the state has it.
fn mismatch<'py>(
    path: &mut Vec<Bound<'py, PyAny>>, key: &Bound<'py, PyAny>, g: &Bound<'py, PyAny>, gc: &Option<Kids<'py>>, what: &str, hint: &str,
) -> PyResult<PyErr> {
    let at = path_str(path)?;
    path.push(key.clone());
    let want = path_str(path)?;
    path.pop();
    let has = match gc {
        Some(kids) => format!(
            "has only {}",
            kids.iter().map(|(k, _)| k.repr().map(|r| r.to_string())).collect::<PyResult<Vec<_>>>()?.join(", ")
        ),
        None => format!("is a {}", g.get_type().name()?),
    };
    Ok(PyValueError::new_err(format!(
        "update_(opt_state, model, grad): the state has {want} but the {what} at {at} {has}; {hint}"
    )))
}

fn gather<'py>(w: &Walk<'py>, t: &Bound<'py, PyAny>, m: Option<Bound<'py, PyAny>>, g: Option<Bound<'py, PyAny>>, path: &mut Vec<Bound<'py, PyAny>>, acc: &mut Gathered<'py>) -> PyResult<()> {
    let Some(g) = g.filter(|g| !g.is_none()) else { return Ok(()) };
    if t.is_none() {
        return Ok(());
    }
    if let Ok(leaf) = t.cast::<PyLeaf>() {
        let Some(x) = m.as_ref().and_then(|m| m.cast::<PyTensor>().ok()) else {
            let where_ = path_str(path)?;
            let got = match &m {
                Some(m) => m.get_type().name()?.to_string(),
                None => "NoneType".into(),
            };
            return Err(PyTypeError::new_err(format!(
                "the state has a Leaf at {where_} but the model has {got} there; is the state from fx.setup of this model?"
            )));
        };
        match acc.at.get(&(leaf.as_ptr() as usize)).copied() {
            None => {
                acc.at.insert(leaf.as_ptr() as usize, acc.leaves.len());
                acc.leaves.push(leaf.clone());
                acc.xs.push(x.clone());
                acc.gs.push(g);
            }
            Some(i) => {
                // tied parameters: one Leaf, the gradients summed
                let dt = x.borrow().t.dtype();
                let sum = to_tensor(&acc.gs[i], Some(dt))?.add(&to_tensor(&g, Some(dt))?).py()?;
                acc.gs[i] = Bound::new(t.py(), PyTensor::new(sum))?.into_any();
            }
        }
        return Ok(());
    }
    if t.is_instance_of::<PyTensor>() {
        return Err(PyTypeError::new_err(format!(
            "update_(opt_state, model, grad): the first argument has a Tensor at {} where an optimiser state has a Leaf; \
             are the arguments swapped? opt_state is what fx.setup(rule, model) returns",
            path_str(path)?
        )));
    }
    let _depth = Depth::enter(t.py())?;
    let Some(tc) = w.kids(t)? else {
        return if path.is_empty() { Err(not_a_state(t)?) } else { Ok(()) };
    };
    let mc = match &m {
        Some(m) => trainable_kids(w, m)?,
        None => None,
    };
    if mc.is_none() {
        return Err(PyValueError::new_err(format!(
            "update_(opt_state, model, grad): the state has a {} at {} but the model has {} there; \
             was the state made by fx.setup for another model?",
            t.get_type().name()?,
            path_str(path)?,
            match &m { Some(m) => format!("a {}", m.get_type().name()?), None => "nothing".into() },
        )));
    }
    let gc = w.kids(&g)?;
    for (pos, (k, sub)) in tc.iter().enumerate() {
        if sub.is_none() {
            continue;
        }
        let mk = find(&mc, pos, k)?;
        if mk.is_none() {
            let m = m.as_ref().expect("mc is Some only when m is");
            return Err(mismatch(path, k, m, &mc, "model", "was the state made by fx.setup for another model?")?);
        }
        let gk = find(&gc, pos, k)?;
        if gk.is_none() {
            return Err(mismatch(
                path, k, &g, &gc, "gradient",
                "is the gradient of another model, or of a part of it? (use the gradient of the whole model: fx.gradient(loss, model, ...)[0])",
            )?);
        }
        path.push(k.clone());
        let r = gather(w, sub, mk, gk, path, acc);
        path.pop();
        r?;
    }
    Ok(())
}

/// `fx.update_` after its argument checks: collect `(leaf, parameter, gradient)` over
/// the three trees and take one fused step for every leaf that is not frozen.
#[pyfunction]
fn update_tree(py: Python<'_>, tree: &Bound<'_, PyAny>, model: &Bound<'_, PyAny>, grads: &Bound<'_, PyAny>) -> PyResult<()> {
    let w = Walk::get(py)?;
    if tree.is_none() || tree.is_instance_of::<PyTensor>() {
        return Err(not_a_state(tree)?);
    }
    let mut acc = Gathered { at: HashMap::with_capacity_and_hasher(16, Default::default()), leaves: Vec::with_capacity(16), xs: Vec::with_capacity(16), gs: Vec::with_capacity(16) };
    gather(&w, tree, Some(model.clone()), Some(grads.clone()), &mut Vec::new(), &mut acc)?;
    step_leaves(py, &acc.leaves, &acc.xs, &acc.gs)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Node>()?;
    m.add_function(wrap_pyfunction!(update_tree, m)?)?;
    Ok(())
}
