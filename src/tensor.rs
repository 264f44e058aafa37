//! `fx.Tensor`: a Rust-owned n-d array with numpy interop and operators.
use flux_core::tensor::elementwise::{BinaryOp, CmpOp};
use flux_core::tensor::movement::SliceDim;
use flux_core::{DType, Tensor};
use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PySlice, PySliceMethods, PyTuple};

use crate::convert::{maybe_detach, shape_arg, to_numpy, to_tensor};
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
            } else {
                Ok(Some(d.extract::<Vec<isize>>()?))
            }
        }
    }
}

impl PyTensor {
    fn other(&self, o: &Bound<'_, PyAny>) -> PyResult<Tensor> { to_tensor(o, Some(self.t.dtype())) }
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
    fn py_new(data: &Bound<'_, PyAny>, dtype: Option<&str>) -> PyResult<Self> { tensor(data, dtype) }

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

/// numpy-style indexing: ints, slices (positive steps), `None`, `...`, and one integer
/// array (or list) selecting along its dimension.
fn index(t: &Tensor, key: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    let items: Vec<Bound<'_, PyAny>> = match key.cast::<PyTuple>() {
        Ok(tup) => tup.iter().collect(),
        Err(_) => vec![key.clone()],
    };
    let ellipsis = key.py().Ellipsis();
    let used = items.iter().filter(|k| !k.is_none() && !k.is(&ellipsis)).count();
    if used > t.ndim() {
        return Err(PyIndexError::new_err(format!("too many indices for a tensor of shape {:?}", t.shape())));
    }
    let mut dims: Vec<SliceDim> = Vec::new();
    let mut out_shape: Vec<usize> = Vec::new(); // final shape after slicing, with None axes
    let mut array_ix: Option<(usize, Vec<usize>, usize)> = None; // (dim, idx, position in out_shape)
    let mut d = 0;
    let full = |n: usize| SliceDim { start: 0, len: n, step: 1 };
    for k in &items {
        if k.is_none() {
            out_shape.push(1);
        } else if k.is(&ellipsis) {
            for _ in 0..(t.ndim() - used) {
                dims.push(full(t.shape()[d]));
                out_shape.push(t.shape()[d]);
                d += 1;
            }
        } else if let Ok(s) = k.cast::<PySlice>() {
            let n = t.shape()[d];
            let ind = s.indices(n as isize)?;
            if ind.step <= 0 {
                return Err(PyValueError::new_err("slices with a negative step are not supported"));
            }
            let len = ind.slicelength;
            dims.push(SliceDim { start: if len == 0 { 0 } else { ind.start as usize }, len, step: ind.step as usize });
            out_shape.push(len);
            d += 1;
        } else if let Ok(i) = k.extract::<isize>() {
            let n = t.shape()[d] as isize;
            let j = if i < 0 { i + n } else { i };
            if j < 0 || j >= n {
                return Err(PyIndexError::new_err(format!("index {i} is out of bounds for dimension {d} with size {n}")));
            }
            dims.push(SliceDim { start: j as usize, len: 1, step: 1 });
            d += 1;
        } else {
            let idx: Vec<isize> = k
                .extract::<Vec<isize>>()
                .or_else(|_| k.call_method0("tolist").and_then(|l| l.extract::<Vec<isize>>()))
                .map_err(|_| PyTypeError::new_err(format!("cannot index a tensor with {}", k.get_type().name().map(|n| n.to_string()).unwrap_or_default())))?;
            if array_ix.is_some() {
                return Err(PyIndexError::new_err("only one integer-array index is supported"));
            }
            let n = t.shape()[d] as isize;
            let mut u = Vec::with_capacity(idx.len());
            for i in idx {
                let j = if i < 0 { i + n } else { i };
                if j < 0 || j >= n {
                    return Err(PyIndexError::new_err(format!("index {i} is out of bounds for dimension {d} with size {n}")));
                }
                u.push(j as usize);
            }
            array_ix = Some((d, u.clone(), out_shape.len()));
            dims.push(full(t.shape()[d]));
            out_shape.push(u.len());
            d += 1;
        }
    }
    while d < t.ndim() {
        dims.push(full(t.shape()[d]));
        out_shape.push(t.shape()[d]);
        d += 1;
    }
    let mut r = t.slice(&dims).py()?;
    if let Some((dim, idx, _)) = array_ix {
        r = r.index_select(dim as isize, &idx).py()?;
    }
    if r.shape() != out_shape.as_slice() {
        r = r.reshape(&out_shape).py()?;
    }
    Ok(r)
}

/// `fx.tensor(data, dtype=None)`: float32 unless given float64 numpy data or dtype.
#[pyfunction]
#[pyo3(signature = (data, dtype=None))]
pub fn tensor(data: &Bound<'_, PyAny>, dtype: Option<&str>) -> PyResult<PyTensor> {
    let want = dtype.map(crate::convert::dtype_from_name).transpose()?;
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
    let v: Vec<Tensor> = ts.iter().map(|t| to_tensor(t, None)).collect::<PyResult<_>>()?;
    Ok(PyTensor::new(Tensor::concat(&v.iter().collect::<Vec<_>>(), dim).py()?))
}
/// Stack equally shaped tensors along a new dimension `dim`.
#[pyfunction]
#[pyo3(signature = (ts, dim=0))]
fn stack(ts: Vec<Bound<'_, PyAny>>, dim: isize) -> PyResult<PyTensor> {
    let v: Vec<Tensor> = ts.iter().map(|t| to_tensor(t, None)).collect::<PyResult<_>>()?;
    Ok(PyTensor::new(Tensor::stack(&v.iter().collect::<Vec<_>>(), dim).py()?))
}
/// Elementwise maximum with broadcasting (NaN propagates).
#[pyfunction]
fn maximum(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
    Ok(PyTensor::new(to_tensor(a, None)?.maximum(&to_tensor(b, None)?).py()?))
}
/// Elementwise minimum with broadcasting (NaN propagates).
#[pyfunction]
fn minimum(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
    Ok(PyTensor::new(to_tensor(a, None)?.minimum(&to_tensor(b, None)?).py()?))
}
/// A tensor filled with `value`.
#[pyfunction]
fn full(shape: Vec<usize>, value: f64, dtype: &str) -> PyResult<PyTensor> {
    Ok(PyTensor::new(Tensor::full(&shape, value, crate::convert::dtype_from_name(dtype)?)))
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
