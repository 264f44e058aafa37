//! Python values ↔ tensors: numpy arrays, numbers and lists in; numpy arrays out.
use flux_core::{DType, Tensor};
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayDescrMethods, PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::errors::IntoPyResult;
use crate::tensor::PyTensor;

/// Run `f` without the GIL when the work is big enough for that to pay.
pub fn maybe_detach<R: Send>(py: Python<'_>, work: usize, f: impl FnOnce() -> R + Send) -> R {
    if work >= 1 << 14 { py.detach(f) } else { f() }
}

fn from_numpy_f<T: flux_core::Float + numpy::Element>(a: PyReadonlyArrayDyn<'_, T>) -> flux_core::Result<Tensor> {
    let v = a.as_array();
    let shape = v.shape().to_vec();
    let data = match v.as_slice() {
        Some(s) => s.to_vec(),
        None => v.iter().copied().collect(),
    };
    Tensor::from_vec(data, &shape)
}

/// A dtype given as a name (`"float32"`) or as anything numpy's `np.dtype` takes
/// (`np.float64`, `np.dtype("f4")`).
pub fn dtype_arg(d: &Bound<'_, PyAny>) -> PyResult<DType> {
    if let Ok(s) = d.extract::<String>() {
        return dtype_from_name(&s);
    }
    let name: String = d
        .py()
        .import("numpy")?
        .getattr("dtype")?
        .call1((d,))
        .map_err(|_| PyTypeError::new_err(format!("dtype must be float32 or float64 (a name or a numpy dtype), got {}", d.repr().map(|r| r.to_string()).unwrap_or_default())))?
        .getattr("name")?
        .extract()?;
    dtype_from_name(&name)
}

/// A random seed: a non-negative integer (bools and floats are a TypeError, not converted).
pub fn seed_arg(v: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    let is_int = !v.is_instance_of::<pyo3::types::PyBool>()
        && (v.is_instance_of::<pyo3::types::PyInt>() || is_numpy_kind(v, b"iu"));
    if !is_int {
        return Err(PyTypeError::new_err(format!("{name} must be an integer, got {}", v.get_type().name()?)));
    }
    let i: i128 = v.call_method0("__index__")?.extract().map_err(|_| PyValueError::new_err(format!("{name} must be below 2**64, got {v}")))?;
    if i < 0 {
        return Err(PyValueError::new_err(format!("{name} must be a non-negative integer, got {i}")));
    }
    u64::try_from(i).map_err(|_| PyValueError::new_err(format!("{name} must be below 2**64, got {i}")))
}

/// Is `v` a numpy scalar (`np.float32(1)`, `np.int64(1)`, `np.bool_(True)`) whose dtype
/// kind is one of `kinds`?
pub fn is_numpy_kind(v: &Bound<'_, PyAny>, kinds: &[u8]) -> bool {
    let t = v.get_type();
    if v.cast::<PyUntypedArray>().is_ok() || !t.module().is_ok_and(|m| m == "numpy") {
        return false;
    }
    v.getattr("dtype")
        .and_then(|d| d.getattr("kind"))
        .and_then(|k| k.extract::<String>())
        .is_ok_and(|k| k.len() == 1 && kinds.contains(&k.as_bytes()[0]))
}

pub fn dtype_from_name(name: &str) -> PyResult<DType> {
    match name {
        "float32" | "f32" => Ok(DType::F32),
        "float64" | "f64" => Ok(DType::F64),
        _ => Err(PyTypeError::new_err(format!("flux_rs tensors hold float32 or float64, not {name}"))),
    }
}

/// `t`, made from host data (a number, a numpy array, a list), on `to`'s device: as is
/// on the CPU; on the GPU converted to `to`'s dtype first (the GPU computes in float32,
/// so a float64 array joins a float32 GPU tensor as float32, as `fx.gpu` converts).
pub fn host_onto(t: Tensor, to: &Tensor) -> PyResult<Tensor> {
    if t.device() == to.device() {
        return Ok(t);
    }
    t.cast(to.dtype()).py()?.to_device(to.device()).py()
}

/// An op's arguments `objs`, converted to `ts`, with the numbers and host arrays among
/// them made on the device of the first Tensor argument (as `gpu_tensor + array` does);
/// Tensors stay where they are, so two devices remain the op's error, naming both.
pub fn join_device(objs: &[&Bound<'_, PyAny>], mut ts: Vec<Tensor>) -> PyResult<Vec<Tensor>> {
    let Some(to) = objs.iter().zip(&ts).find(|(o, _)| o.is_instance_of::<PyTensor>()).map(|(_, t)| t.clone()) else {
        return Ok(ts);
    };
    for (o, t) in objs.iter().zip(ts.iter_mut()) {
        if !o.is_instance_of::<PyTensor>() {
            *t = host_onto(t.clone(), &to)?;
        }
    }
    Ok(ts)
}

/// Any tensor-like value as a Tensor. Numbers take `like` (default float32); numpy
/// float arrays keep their dtype; other arrays and lists become `like` or float32.
pub fn to_tensor(obj: &Bound<'_, PyAny>, like: Option<DType>) -> PyResult<Tensor> {
    if let Ok(t) = obj.cast::<PyTensor>() {
        // try_borrow: a tensor being written by this very call (a parameter passed as its
        // own gradient, say) is an error to report, not a panic
        let t = t.try_borrow().map_err(|_| PyValueError::new_err("a tensor is read while this same call writes it (is a parameter passed as its own gradient?)"))?;
        return Ok(t.t.clone());
    }
    if obj.is_instance_of::<pyo3::types::PyFloat>() || obj.is_instance_of::<pyo3::types::PyInt>() {
        let v: f64 = obj.extract()?;
        return Ok(Tensor::scalar(v, like.unwrap_or(DType::F32)));
    }
    if is_numpy_kind(obj, b"fiub") {
        // a numpy scalar works wherever a Python number does
        let v: f64 = obj.call_method0("__float__")?.extract()?;
        return Ok(Tensor::scalar(v, like.unwrap_or(DType::F32)));
    }
    if let Ok(a) = obj.cast::<PyUntypedArray>() {
        let kind = a.dtype().kind();
        if kind == b'f' {
            if let Ok(x) = obj.extract::<PyReadonlyArrayDyn<'_, f32>>() {
                return from_numpy_f(x).py();
            }
            if let Ok(x) = obj.extract::<PyReadonlyArrayDyn<'_, f64>>() {
                return from_numpy_f(x).py();
            }
        }
        if !matches!(kind, b'f' | b'i' | b'u' | b'b') {
            return Err(PyTypeError::new_err(format!("cannot make a tensor from a numpy array of dtype {}", a.dtype())));
        }
    } else if !(obj.is_instance_of::<pyo3::types::PyList>() || obj.is_instance_of::<pyo3::types::PyTuple>()) {
        return Err(PyTypeError::new_err(format!(
            "expected a Tensor, a numpy array, a list or a number, got {}",
            obj.get_type().name()?
        )));
    }
    // integer/bool arrays, float16, lists: let numpy convert to the target float type
    let np = obj.py().import("numpy")?;
    let dt = like.unwrap_or(DType::F32).name();
    let arr = np.call_method1("asarray", (obj, dt))?;
    match like.unwrap_or(DType::F32) {
        DType::F32 => from_numpy_f(arr.extract::<PyReadonlyArrayDyn<'_, f32>>()?).py(),
        DType::F64 => from_numpy_f(arr.extract::<PyReadonlyArrayDyn<'_, f64>>()?).py(),
    }
}

/// A tensor's values as a new numpy array.
pub fn to_numpy<'py>(py: Python<'py>, t: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    let shape = IxDyn(t.shape());
    Ok(match t.dtype() {
        DType::F32 => ArrayD::from_shape_vec(shape, t.to_vec::<f32>().py()?).expect("shape").into_pyarray(py).into_any(),
        DType::F64 => ArrayD::from_shape_vec(shape, t.to_vec::<f64>().py()?).expect("shape").into_pyarray(py).into_any(),
    })
}

/// A shape given as ints, a tuple or a list.
pub fn shape_arg(args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<Vec<isize>> {
    if args.len() == 1 {
        let a = args.get_item(0)?;
        if let Ok(v) = a.extract::<Vec<isize>>() {
            return Ok(v);
        }
    }
    args.extract::<Vec<isize>>()
}
