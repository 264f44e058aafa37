//! `fx.Tensor`: a Rust-owned n-d array with numpy interop and operators.
use flux_core::tensor::elementwise::{BinaryOp, CmpOp};
use flux_core::tensor::movement::SliceDim;
use flux_core::{DType, Tensor};
use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PySlice, PySliceMethods, PyTuple};

use crate::convert::{host_onto, join_device, maybe_detach, shape_arg, to_numpy, to_tensor};
use crate::errors::IntoPyResult;

/// An n-d array of float32 or float64 computed in Rust. Operators broadcast like numpy;
/// `np.asarray(t)` gives a numpy copy.
///
/// >>> import flux_rs as fx
/// >>> t = fx.tensor([[1.0, 2.0], [3.0, 4.0]])
/// >>> (t @ t.T).sum().item()
/// 52.0
#[pyclass(name = "Tensor", module = "flux_rs", weakref)]
pub struct PyTensor {
    pub t: Tensor,
}

impl PyTensor {
    pub fn new(t: Tensor) -> Self { PyTensor { t } }
}

fn dims_arg(dims: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<isize>>> {
    match dims {
        None => Ok(None),
        Some(d) if d.is_none() => Ok(None),
        Some(d) => {
            if let Ok(i) = d.extract::<isize>() {
                Ok(Some(vec![i]))
            } else if d.is_instance_of::<pyo3::types::PyString>() {
                Err(PyTypeError::new_err(format!("dims must be an int, a tuple of ints or None, got {}", d.repr()?)))
            } else {
                d.extract::<Vec<isize>>().map(Some).map_err(|_| {
                    PyTypeError::new_err(format!(
                        "dims must be an int, a tuple of ints or None, got {}",
                        d.repr().map(|r| r.to_string()).unwrap_or_default()
                    ))
                })
            }
        }
    }
}

impl PyTensor {
    /// The other operand: a Tensor as it is (another device's is the op's error, naming
    /// both), a number or host array made on this tensor's device, as torch does.
    fn other(&self, o: &Bound<'_, PyAny>) -> PyResult<Tensor> {
        let t = to_tensor(o, Some(self.t.dtype()))?;
        if o.is_instance_of::<PyTensor>() {
            return Ok(t);
        }
        host_onto(t, &self.t)
    }
    fn bin(&self, py: Python<'_>, o: &Bound<'_, PyAny>, op: BinaryOp, reflected: bool) -> PyResult<PyTensor> {
        let o = self.other(o)?;
        let (a, b) = if reflected { (&o, &self.t) } else { (&self.t, &o) };
        let n = a.numel().max(b.numel());
        Ok(PyTensor::new(maybe_detach(py, n, || a.binary(b, op)).py()?))
    }
    fn cmp(&self, o: &Bound<'_, PyAny>, op: CmpOp) -> PyResult<PyTensor> {
        Ok(PyTensor::new(self.t.compare(&self.other(o)?, op).py()?))
    }
    fn un(&self, py: Python<'_>, f: impl FnOnce(&Tensor) -> flux_core::Result<Tensor> + Send) -> PyResult<PyTensor> {
        let t = &self.t;
        Ok(PyTensor::new(maybe_detach(py, t.numel(), || f(t)).py()?))
    }
}

#[pymethods]
impl PyTensor {
    /// Use `fx.tensor(data, dtype=None)`; this constructor does the same.
    #[new]
    #[pyo3(signature = (data, dtype=None))]
    fn py_new(data: &Bound<'_, PyAny>, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<Self> { tensor(data, dtype) }

    // numpy must hand binary ops with a Tensor back to the Tensor's reflected methods
    #[classattr]
    fn __array_ufunc__() -> Option<i32> { None }
    #[classattr]
    fn __array_priority__() -> f64 { 1000.0 }

    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> { PyTuple::new(py, self.t.shape()) }
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // numpy's builtin dtypes are singletons: made once, so that the getter is cheap
        // on the hot path of every layer call (`x.dtype is w.dtype`)
        static F32: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        static F64: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let cell = match self.t.dtype() { DType::F32 => &F32, DType::F64 => &F64 };
        let d = cell.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
            Ok(py.import("numpy")?.getattr("dtype")?.call1((self.t.dtype().name(),))?.unbind())
        })?;
        Ok(d.bind(py).clone())
    }
    /// Where the values live: `"cpu"` or `"gpu"`.
    #[getter]
    fn device(&self) -> &'static str { self.t.device().name() }
    /// Move the values to `device` ("cpu" or "gpu") in place, keeping this Tensor's
    /// identity (so models and optimiser states holding it follow). A float64 Tensor
    /// becomes float32 on the GPU, as Flux's `gpu` does.
    fn _to_device_(&mut self, device: &str) -> PyResult<()> {
        let d = crate::device::parse(device)?;
        if self.t.device() == d {
            return Ok(());
        }
        let moved = crate::device::moved(&self.t, d).py()?;
        self.t.replace_data_(&moved);
        Ok(())
    }
    #[getter]
    fn ndim(&self) -> usize { self.t.ndim() }
    #[getter]
    fn size(&self) -> usize { self.t.numel() }
    #[getter(T)]
    fn transposed(&self) -> PyResult<PyTensor> {
        let nd = self.t.ndim() as isize;
        let perm: Vec<isize> = (0..nd).rev().collect();
        Ok(PyTensor::new(self.t.permute(&perm).py()?))
    }
    fn __len__(&self) -> PyResult<usize> {
        self.t.shape().first().copied().ok_or_else(|| PyTypeError::new_err("len() of a 0-d tensor"))
    }
    /// A numpy copy of the values.
    fn numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> { to_numpy(py, &self.t) }
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(&self, py: Python<'py>, dtype: Option<&Bound<'py, PyAny>>, copy: Option<bool>) -> PyResult<Bound<'py, PyAny>> {
        let _ = copy;
        let a = to_numpy(py, &self.t)?;
        match dtype {
            Some(d) if !d.is_none() => a.call_method1("astype", (d,)),
            _ => Ok(a),
        }
    }
    /// The value of a one-element tensor as a Python float.
    fn item(&self) -> PyResult<f64> { self.t.item().py() }
    fn __float__(&self) -> PyResult<f64> { self.t.item().py() }
    fn tolist<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> { to_numpy(py, &self.t)?.call_method0("tolist") }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let np = to_numpy(py, &self.t)?;
        let body: String = py.import("numpy")?.call_method1("array2string", (np, ))?.extract()?;
        let body = body.replace('\n', "\n       ");
        Ok(format!("Tensor({}, dtype={})", body, self.t.dtype().name()))
    }
    fn __copy__(&self) -> PyTensor { PyTensor::new(self.t.detach()) }
    fn __deepcopy__(&self, _memo: &Bound<'_, PyAny>) -> PyTensor { PyTensor::new(self.t.detach()) }
    /// A copy with its own identity (shares memory until either is written).
    fn copy(&self) -> PyTensor { PyTensor::new(self.t.detach()) }
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyAny>,))> {
        Ok((py.import("flux_rs")?.getattr("tensor")?, (to_numpy(py, &self.t)?,)))
    }
    fn astype(&self, dtype: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let name: String = dtype.py().import("numpy")?.getattr("dtype")?.call1((dtype,))?.getattr("name")?.extract()?;
        Ok(PyTensor::new(self.t.cast(crate::convert::dtype_from_name(&name)?).py()?))
    }

    fn __add__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> { self.bin(py, o, BinaryOp::Add, false) }
    fn __radd__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> { self.bin(py, o, BinaryOp::Add, true) }
    fn __sub__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> { self.bin(py, o, BinaryOp::Sub, false) }
    fn __rsub__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> { self.bin(py, o, BinaryOp::Sub, true) }
    fn __mul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> { self.bin(py, o, BinaryOp::Mul, false) }
    fn __rmul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> { self.bin(py, o, BinaryOp::Mul, true) }
    fn __truediv__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> { self.bin(py, o, BinaryOp::Div, false) }
    fn __rtruediv__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> { self.bin(py, o, BinaryOp::Div, true) }
    fn __pow__(&self, py: Python<'_>, o: &Bound<'_, PyAny>, _m: Option<&Bound<'_, PyAny>>) -> PyResult<PyTensor> {
        if let Ok(p) = o.extract::<f64>() {
            if !o.is_instance_of::<PyTensor>() {
                return self.un(py, move |t| t.powf(p));
            }
        }
        self.bin(py, o, BinaryOp::Pow, false)
    }
    fn __rpow__(&self, py: Python<'_>, o: &Bound<'_, PyAny>, _m: Option<&Bound<'_, PyAny>>) -> PyResult<PyTensor> { self.bin(py, o, BinaryOp::Pow, true) }
    fn __matmul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let o = self.other(o)?;
        let t = &self.t;
        Ok(PyTensor::new(maybe_detach(py, t.numel() * o.shape().last().copied().unwrap_or(1), || t.matmul(&o)).py()?))
    }
    fn __rmatmul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let o = self.other(o)?;
        let t = &self.t;
        Ok(PyTensor::new(maybe_detach(py, t.numel() * o.numel(), || o.matmul(t)).py()?))
    }
    fn __neg__(&self, py: Python<'_>) -> PyResult<PyTensor> { self.un(py, |t| t.neg()) }
    fn __pos__(&self) -> PyTensor { PyTensor::new(self.t.clone()) }
    fn __abs__(&self, py: Python<'_>) -> PyResult<PyTensor> { self.un(py, |t| t.abs()) }
    fn __lt__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> { self.cmp(o, CmpOp::Lt) }
    fn __le__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> { self.cmp(o, CmpOp::Le) }
    fn __gt__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> { self.cmp(o, CmpOp::Gt) }
    fn __ge__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> { self.cmp(o, CmpOp::Ge) }
    /// Identity, as for any Python object: a Tensor is a dict key and `in` works on
    /// lists of parameters. Elementwise equality is `t.eq(u)`.
    fn __eq__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> bool { slf.is(other) }
    fn __ne__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> bool { !slf.is(other) }
    fn __hash__(slf: &Bound<'_, Self>) -> isize { slf.as_ptr() as isize }
    /// Elementwise equality as a 1.0/0.0 tensor (`==` keeps Python identity semantics).
    fn eq(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> { self.cmp(o, CmpOp::Eq) }
    fn __bool__(&self) -> PyResult<bool> {
        if self.t.numel() != 1 {
            return Err(PyValueError::new_err(format!(
                "the truth value of a tensor with {} elements is ambiguous",
                self.t.numel()
            )));
        }
        Ok(self.t.item().py()? != 0.0)
    }

    /// Sum over `dims` (an int, a tuple, or None for all).
    #[pyo3(signature = (dims=None, keepdims=false))]
    fn sum(&self, py: Python<'_>, dims: Option<&Bound<'_, PyAny>>, keepdims: bool) -> PyResult<PyTensor> {
        let d = dims_arg(dims)?;
        self.un(py, move |t| t.sum(d.as_deref(), keepdims))
    }
    #[pyo3(signature = (dims=None, keepdims=false))]
    fn mean(&self, py: Python<'_>, dims: Option<&Bound<'_, PyAny>>, keepdims: bool) -> PyResult<PyTensor> {
        let d = dims_arg(dims)?;
        self.un(py, move |t| t.mean(d.as_deref(), keepdims))
    }
    #[pyo3(signature = (dims=None, keepdims=false))]
    fn max(&self, py: Python<'_>, dims: Option<&Bound<'_, PyAny>>, keepdims: bool) -> PyResult<PyTensor> {
        let d = dims_arg(dims)?;
        self.un(py, move |t| t.max(d.as_deref(), keepdims))
    }
    #[pyo3(signature = (dims=None, keepdims=false))]
    fn min(&self, py: Python<'_>, dims: Option<&Bound<'_, PyAny>>, keepdims: bool) -> PyResult<PyTensor> {
        let d = dims_arg(dims)?;
        self.un(py, move |t| t.min(d.as_deref(), keepdims))
    }
    fn exp(&self, py: Python<'_>) -> PyResult<PyTensor> { self.un(py, |t| t.exp()) }
    fn log(&self, py: Python<'_>) -> PyResult<PyTensor> { self.un(py, |t| t.log()) }
    fn sqrt(&self, py: Python<'_>) -> PyResult<PyTensor> { self.un(py, |t| t.sqrt()) }
    fn abs(&self, py: Python<'_>) -> PyResult<PyTensor> { self.un(py, |t| t.abs()) }
    fn tanh(&self, py: Python<'_>) -> PyResult<PyTensor> { self.un(py, |t| t.tanh()) }
    fn sigmoid(&self, py: Python<'_>) -> PyResult<PyTensor> { self.un(py, |t| t.sigmoid()) }
    fn relu(&self, py: Python<'_>) -> PyResult<PyTensor> { self.un(py, |t| t.relu()) }
    /// Index of the largest entry along `dim`, as a numpy int64 array.
    #[pyo3(signature = (dim=-1))]
    fn argmax<'py>(&self, py: Python<'py>, dim: isize) -> PyResult<Bound<'py, PyAny>> {
        let (idx, shape) = self.t.argmax(dim).py()?;
        let v: Vec<i64> = idx.into_iter().map(|i| i as i64).collect();
        Ok(numpy::ndarray::ArrayD::from_shape_vec(numpy::ndarray::IxDyn(&shape), v).expect("shape").into_pyarray_any(py))
    }
    /// `t.reshape(2, 3)` or `t.reshape((2, 3))`; one entry may be -1.
    #[pyo3(signature = (*shape))]
    fn reshape(&self, shape: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        Ok(PyTensor::new(self.t.reshape_infer(&shape_arg(shape)?).py()?))
    }
    /// Reverse the dimensions, or permute them: `t.transpose(1, 0, 2)`.
    #[pyo3(signature = (*perm))]
    fn transpose(&self, perm: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let p = if perm.is_empty() { (0..self.t.ndim() as isize).rev().collect() } else { shape_arg(perm)? };
        Ok(PyTensor::new(self.t.permute(&p).py()?))
    }
    #[pyo3(signature = (*perm))]
    fn permute(&self, perm: &Bound<'_, PyTuple>) -> PyResult<PyTensor> { self.transpose(perm) }
    fn __getitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<PyTensor> { index(&self.t, key).map(PyTensor::new) }
}

trait IntoPyArrayAny {
    fn into_pyarray_any(self, py: Python<'_>) -> Bound<'_, PyAny>;
}
impl IntoPyArrayAny for numpy::ndarray::ArrayD<i64> {
    fn into_pyarray_any(self, py: Python<'_>) -> Bound<'_, PyAny> {
        use numpy::IntoPyArray;
        self.into_pyarray(py).into_any()
    }
}

/// One entry of an index expression, classified as numpy classifies it.
enum Ix<'py> {
    NewAxis,
    Ellipsis,
    Int(isize),
    Slice(Bound<'py, PySlice>),
    /// An integer array: its values (row-major) and shape.
    Arr(Vec<isize>, Vec<usize>),
    /// A boolean array: it selects over as many dimensions as it has.
    Mask(Vec<bool>, Vec<usize>),
    /// `True`/`False`: a new axis of length 1 or 0 that takes part in advanced indexing.
    Bool(bool),
}

fn index_err(msg: impl Into<String>) -> PyErr { PyIndexError::new_err(msg.into()) }

const VALID: &str = "only integers, slices (`:`), ellipsis (`...`), None and integer or boolean arrays are valid indices";

fn classify<'py>(k: &Bound<'py, PyAny>) -> PyResult<Ix<'py>> {
    let py = k.py();
    if k.is_none() {
        return Ok(Ix::NewAxis);
    }
    if k.is(py.Ellipsis()) {
        return Ok(Ix::Ellipsis);
    }
    if let Ok(s) = k.cast::<PySlice>() {
        return Ok(Ix::Slice(s.clone()));
    }
    if k.is_instance_of::<pyo3::types::PyBool>() || crate::convert::is_numpy_kind(k, b"b") {
        return Ok(Ix::Bool(k.is_truthy()?));
    }
    if k.is_instance_of::<pyo3::types::PyInt>() || crate::convert::is_numpy_kind(k, b"iu") {
        return k.extract::<isize>().map(Ix::Int).map_err(|_| index_err(format!("index {k} does not fit an index")));
    }
    let arraylike = k.is_instance_of::<pyo3::types::PyList>()
        || k.is_instance_of::<PyTuple>()
        || k.cast::<numpy::PyUntypedArray>().is_ok()
        || k.is_instance_of::<PyTensor>();
    if !arraylike {
        return Err(index_err(format!("{VALID}, not {}", k.get_type().name()?)));
    }
    let np = py.import("numpy")?;
    let a = np.call_method1("asarray", (k,)).map_err(|_| index_err(VALID))?;
    let kind: String = a.getattr("dtype")?.getattr("kind")?.extract()?;
    let shape: Vec<usize> = a.getattr("shape")?.extract()?;
    let flat = a.call_method0("ravel")?;
    match kind.as_str() {
        "b" => Ok(Ix::Mask(flat.call_method0("tolist")?.extract()?, shape)),
        "i" | "u" => Ok(Ix::Arr(
            flat.call_method0("tolist")?.extract().map_err(|_| index_err("an index in this array does not fit an index"))?,
            shape,
        )),
        // an empty list is an empty integer index, as in numpy
        _ if shape.contains(&0) && k.cast::<numpy::PyUntypedArray>().is_err() && !k.is_instance_of::<PyTensor>() => Ok(Ix::Arr(vec![], shape)),
        _ => Err(index_err(format!("arrays used as indices must be of integer (or boolean) type, got dtype {}", a.getattr("dtype")?))),
    }
}

fn wrap_index(i: isize, n: usize, axis: usize) -> PyResult<usize> {
    let j = if i < 0 { i + n as isize } else { i };
    if j < 0 || j >= n as isize {
        return Err(index_err(format!("index {i} is out of bounds for axis {axis} with size {n}")));
    }
    Ok(j as usize)
}

/// numpy's broadcast of index shapes (an IndexError when they do not fit).
fn broadcast_index_shapes(shapes: &[&[usize]]) -> PyResult<Vec<usize>> {
    let mut out: Vec<usize> = vec![];
    for s in shapes {
        out = flux_core::tensor::layout::broadcast_shapes(&out, s).map_err(|_| {
            let all: Vec<String> = shapes.iter().map(|s| format!("{s:?}")).collect();
            index_err(format!("shape mismatch: indexing arrays could not be broadcast together with shapes {}", all.join(" ")))
        })?;
    }
    Ok(out)
}

/// The values of an index array of shape `shape` broadcast to `to`, row-major.
fn broadcast_values(vals: &[isize], shape: &[usize], to: &[usize]) -> Vec<isize> {
    let n: usize = to.iter().product();
    let off = to.len() - shape.len();
    // the array's strides, 0 along broadcast dimensions
    let mut strides = vec![0usize; to.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        strides[off + i] = if shape[i] == 1 { 0 } else { acc };
        acc *= shape[i];
    }
    let mut out = Vec::with_capacity(n);
    let mut ix = vec![0usize; to.len()];
    for _ in 0..n {
        out.push(vals[ix.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()]);
        for d in (0..to.len()).rev() {
            ix[d] += 1;
            if ix[d] < to[d] {
                break;
            }
            ix[d] = 0;
        }
    }
    out
}

/// Where a dimension of the result comes from, in the order of the index expression.
enum Out {
    /// dimension `d` of the sliced tensor
    Keep(usize),
    NewAxis,
    /// the place of the first advanced index
    Adv,
}

/// numpy's indexing, exactly: integers, slices of any step, `None`, `...`, integer
/// arrays and boolean masks, with numpy's rule for where the dimensions of advanced
/// indices go (in place when the advanced indices are next to each other, first
/// otherwise). Anything else, or an index out of range, is an IndexError. Built from
/// recorded ops (slice, index_select, permute, reshape), so gradients flow through.
fn index(t: &Tensor, key: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    let raw: Vec<Bound<'_, PyAny>> = match key.cast::<PyTuple>() {
        Ok(tup) => tup.iter().collect(),
        Err(_) => vec![key.clone()],
    };
    let items = raw.iter().map(classify).collect::<PyResult<Vec<_>>>()?;
    let nd = t.ndim();
    let consumed: usize = items
        .iter()
        .map(|k| match k {
            Ix::Int(_) | Ix::Slice(_) | Ix::Arr(..) => 1,
            Ix::Mask(_, s) => s.len(),
            _ => 0,
        })
        .sum();
    if consumed > nd {
        return Err(index_err(format!("too many indices for array: array is {nd}-dimensional, but {consumed} were indexed")));
    }
    if items.iter().filter(|k| matches!(k, Ix::Ellipsis)).count() > 1 {
        return Err(index_err("an index can only have a single ellipsis ('...')"));
    }
    let has_adv = items.iter().any(|k| matches!(k, Ix::Arr(..) | Ix::Mask(..) | Ix::Bool(_)));
    let is_adv = |k: &Ix<'_>| matches!(k, Ix::Arr(..) | Ix::Mask(..) | Ix::Bool(_)) || (has_adv && matches!(k, Ix::Int(_)));
    // numpy: advanced indices next to each other keep their place; an ellipsis between
    // them separates them even when it stands for no dimension
    let adv_pos: Vec<usize> = items.iter().enumerate().filter(|(_, k)| is_adv(k)).map(|(i, _)| i).collect();
    let adjacent = adv_pos.windows(2).all(|w| w[1] == w[0] + 1);

    let shape = t.shape();
    let full = |n: usize| SliceDim { start: 0, len: n, step: 1 };
    let mut dims: Vec<SliceDim> = Vec::with_capacity(nd);
    let mut flips: Vec<usize> = Vec::new();
    let mut out: Vec<Out> = Vec::new();
    // advanced indices: (dimension or None for a bool scalar, values, shape)
    let mut adv: Vec<(Option<usize>, Vec<isize>, Vec<usize>)> = Vec::new();
    let mut d = 0;
    for k in &items {
        if is_adv(k) && !out.iter().any(|o| matches!(o, Out::Adv)) {
            out.push(Out::Adv);
        }
        match k {
            Ix::NewAxis => out.push(Out::NewAxis),
            Ix::Ellipsis => {
                for _ in 0..nd - consumed {
                    dims.push(full(shape[d]));
                    out.push(Out::Keep(d));
                    d += 1;
                }
            }
            Ix::Slice(s) => {
                let ind = s.indices(shape[d] as isize)?;
                let len = ind.slicelength;
                if len == 0 {
                    dims.push(SliceDim { start: 0, len: 0, step: 1 });
                } else if ind.step > 0 {
                    dims.push(SliceDim { start: ind.start as usize, len, step: ind.step as usize });
                } else {
                    // a negative step: the same elements taken forwards, then reversed
                    let last = ind.start + (len as isize - 1) * ind.step;
                    dims.push(SliceDim { start: last as usize, len, step: (-ind.step) as usize });
                    flips.push(d);
                }
                out.push(Out::Keep(d));
                d += 1;
            }
            Ix::Int(i) if !has_adv => {
                dims.push(SliceDim { start: wrap_index(*i, shape[d], d)?, len: 1, step: 1 });
                d += 1;
            }
            Ix::Int(i) => {
                dims.push(full(shape[d]));
                adv.push((Some(d), vec![*i], vec![]));
                d += 1;
            }
            Ix::Arr(v, s) => {
                dims.push(full(shape[d]));
                adv.push((Some(d), v.clone(), s.clone()));
                d += 1;
            }
            Ix::Mask(m, s) => {
                let k = s.len();
                for (j, &n) in s.iter().enumerate() {
                    if n != shape[d + j] {
                        return Err(index_err(format!(
                            "boolean index did not match indexed array along axis {}; size of axis is {} but size of corresponding boolean axis is {n}",
                            d + j, shape[d + j]
                        )));
                    }
                }
                // the mask's nonzero coordinates, one index array per dimension it spans
                let mut coords: Vec<Vec<isize>> = vec![Vec::new(); k];
                let mut ix = vec![0usize; k];
                for &b in m {
                    if b {
                        for j in 0..k {
                            coords[j].push(ix[j] as isize);
                        }
                    }
                    for j in (0..k).rev() {
                        ix[j] += 1;
                        if ix[j] < s[j] {
                            break;
                        }
                        ix[j] = 0;
                    }
                }
                let nnz = coords.first().map_or(usize::from(m.first().copied().unwrap_or(false)), |c| c.len());
                if k == 0 {
                    // a 0-d mask is a bool scalar
                    adv.push((None, vec![0; nnz], vec![nnz]));
                }
                for (j, c) in coords.into_iter().enumerate() {
                    dims.push(full(shape[d + j]));
                    adv.push((Some(d + j), c, vec![nnz]));
                }
                d += k;
            }
            Ix::Bool(b) => adv.push((None, vec![0; usize::from(*b)], vec![usize::from(*b)])),
        }
    }
    while d < nd {
        dims.push(full(shape[d]));
        out.push(Out::Keep(d));
        d += 1;
    }
    let mut r = t.slice(&dims).py()?;
    for &f in &flips {
        let n = r.shape()[f];
        r = r.index_select(f as isize, &(0..n).rev().collect::<Vec<_>>()).py()?;
    }
    let keep: Vec<usize> = out.iter().filter_map(|o| if let Out::Keep(d) = o { Some(*d) } else { None }).collect();
    if !has_adv {
        let final_shape: Vec<usize> = out.iter().map(|o| if let Out::Keep(d) = o { r.shape()[*d] } else { 1 }).collect();
        return if r.shape() == final_shape.as_slice() { Ok(r) } else { r.reshape(&final_shape).py() };
    }
    // advanced: broadcast the index arrays, move their dimensions first, flatten them
    // into one and gather along it
    let b = broadcast_index_shapes(&adv.iter().map(|(_, _, s)| s.as_slice()).collect::<Vec<_>>())?;
    let nb: usize = flux_core::tensor::alloc::numel(&b).py()?;
    let adims: Vec<usize> = adv.iter().filter_map(|(d, _, _)| *d).collect();
    let asizes: Vec<usize> = adims.iter().map(|&d| r.shape()[d]).collect();
    let mut flat = vec![0usize; nb];
    let mut stride = 1usize;
    for (dd, vals, s) in adv.iter().rev() {
        let Some(dd) = dd else { continue };
        let n = r.shape()[*dd];
        let bv = broadcast_values(vals, s, &b);
        for (f, &i) in flat.iter_mut().zip(&bv) {
            *f += wrap_index(i, n, *dd)? * stride;
        }
        stride *= n;
    }
    let perm: Vec<isize> = adims.iter().chain(&keep).map(|&d| d as isize).collect();
    let rest: Vec<usize> = keep.iter().map(|&d| r.shape()[d]).collect();
    let mut merged = vec![asizes.iter().product::<usize>()];
    merged.extend(&rest);
    r = r.permute(&perm).py()?.reshape(&merged).py()?;
    r = r.index_select(0, &flat).py()?;
    // where the advanced dimensions go: in place of the first advanced index when they
    // are next to each other, else first
    let q = if adjacent { out.iter().take_while(|o| !matches!(o, Out::Adv)).filter(|o| matches!(o, Out::Keep(_))).count() } else { 0 };
    let nbd = b.len();
    let mut shape2 = b.clone();
    shape2.extend(&rest);
    r = r.reshape(&shape2).py()?;
    if q > 0 {
        let p: Vec<isize> = (nbd..nbd + q).chain(0..nbd).chain(nbd + q..nbd + rest.len()).map(|i| i as isize).collect();
        r = r.permute(&p).py()?;
    }
    let mut final_shape = Vec::new();
    let mut ri = rest.iter();
    if !adjacent {
        final_shape.extend(&b);
    }
    for o in &out {
        match o {
            Out::Keep(_) => final_shape.push(*ri.next().expect("one size per kept dimension")),
            Out::NewAxis => final_shape.push(1),
            Out::Adv if adjacent => final_shape.extend(&b),
            Out::Adv => {}
        }
    }
    if r.shape() != final_shape.as_slice() {
        r = r.reshape(&final_shape).py()?;
    }
    Ok(r)
}

/// `fx.tensor(data, dtype=None)`: float32 unless given float64 numpy data or dtype.
#[pyfunction]
#[pyo3(signature = (data, dtype=None))]
pub fn tensor(data: &Bound<'_, PyAny>, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<PyTensor> {
    let want = dtype.filter(|d| !d.is_none()).map(crate::convert::dtype_arg).transpose()?;
    let t = to_tensor(data, want)?;
    let t = match want {
        Some(d) if d != t.dtype() => t.cast(d).py()?,
        _ => t,
    };
    // a new tensor never aliases the identity of its source
    Ok(PyTensor::new(t.detach()))
}

/// Concatenate tensors along `dim`.
#[pyfunction]
#[pyo3(signature = (ts, dim=0))]
fn cat(ts: Vec<Bound<'_, PyAny>>, dim: isize) -> PyResult<PyTensor> {
    let v = joined(&ts)?;
    Ok(PyTensor::new(Tensor::concat(&v.iter().collect::<Vec<_>>(), dim).py()?))
}
/// Stack equally shaped tensors along a new dimension `dim`.
#[pyfunction]
#[pyo3(signature = (ts, dim=0))]
fn stack(ts: Vec<Bound<'_, PyAny>>, dim: isize) -> PyResult<PyTensor> {
    let v = joined(&ts)?;
    Ok(PyTensor::new(Tensor::stack(&v.iter().collect::<Vec<_>>(), dim).py()?))
}
/// Elementwise maximum with broadcasting (NaN propagates).
#[pyfunction]
fn maximum(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
    let v = joined(&[a.clone(), b.clone()])?;
    Ok(PyTensor::new(v[0].maximum(&v[1]).py()?))
}
/// Elementwise minimum with broadcasting (NaN propagates).
#[pyfunction]
fn minimum(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
    let v = joined(&[a.clone(), b.clone()])?;
    Ok(PyTensor::new(v[0].minimum(&v[1]).py()?))
}

/// Tensor-like arguments as tensors, host data on the first Tensor's device.
fn joined(objs: &[Bound<'_, PyAny>]) -> PyResult<Vec<Tensor>> {
    let ts = objs.iter().map(|t| to_tensor(t, None)).collect::<PyResult<_>>()?;
    join_device(&objs.iter().collect::<Vec<_>>(), ts)
}
/// A tensor filled with `value`.
#[pyfunction]
fn full(shape: Vec<usize>, value: f64, dtype: &str) -> PyResult<PyTensor> {
    let dt = crate::convert::dtype_from_name(dtype)?;
    flux_core::tensor::alloc::reserve(&shape, dt).py()?;
    Ok(PyTensor::new(Tensor::full(&shape, value, dt)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTensor>()?;
    m.add_function(wrap_pyfunction!(tensor, m)?)?;
    m.add_function(wrap_pyfunction!(cat, m)?)?;
    m.add_function(wrap_pyfunction!(stack, m)?)?;
    m.add_function(wrap_pyfunction!(maximum, m)?)?;
    m.add_function(wrap_pyfunction!(minimum, m)?)?;
    m.add_function(wrap_pyfunction!(full, m)?)?;
    let _ = DType::F32;
    Ok(())
}
