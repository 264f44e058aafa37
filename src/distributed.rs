//! The Rust half of `flux_rs.distributed`: tensors planned into buckets, packed into
//! numpy buffers (which mpi4py hands to MPI without a copy) and unpacked back into
//! the same tensors. The GIL is released around every copy.
use flux_core::distributed::{self as dist, Bucket};
use flux_core::{DType, Float, Tensor};
use numpy::{Element, PyReadonlyArray1, PyReadwriteArray1};
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;

use crate::errors::IntoPyResult;
use crate::tensor::PyTensor;

/// The tensors of a tree, in tree order, grouped into buckets of one dtype and at most
/// `cap_bytes` each (`0`: one bucket per dtype). `pack(i, buf)` copies bucket `i` into a
/// 1-d C-contiguous numpy array of its dtype and `sizes[i]` elements; `unpack(i, buf,
/// scale)` writes it back into the tensors in place, times `scale`.
///
/// >>> import flux_rs as fx, numpy as np
/// >>> a, b = fx.tensor([1.0, 2.0]), fx.tensor([[3.0]])
/// >>> bk = fx._core.Buckets([a, b], 0)
/// >>> buf = np.empty(bk.sizes[0], dtype=bk.dtypes[0]); bk.pack(0, buf); buf.tolist()
/// [1.0, 2.0, 3.0]
/// >>> bk.unpack(0, buf * 2, 0.5); b.tolist()
/// [[3.0]]
#[pyclass(name = "Buckets", module = "flux_rs._core", frozen)]
pub struct PyBuckets {
    tensors: Vec<Py<PyTensor>>,
    plan: Vec<Bucket>,
}

impl PyBuckets {
    fn bucket(&self, i: usize) -> PyResult<&Bucket> {
        self.plan.get(i).ok_or_else(|| PyIndexError::new_err(format!("bucket {i} out of range for {} buckets", self.plan.len())))
    }
}

fn buffer_err<T: Float>(b: &Bucket) -> PyErr {
    PyValueError::new_err(format!("the buffer of this bucket must be a 1-d C-contiguous writable numpy array of {} with {} elements", T::DTYPE.name(), b.len))
}

fn pack_into<T: Float + Element>(py: Python<'_>, b: &Bucket, ts: Vec<Tensor>, out: &Bound<'_, PyAny>) -> PyResult<()> {
    let mut arr: PyReadwriteArray1<'_, T> = out.extract().map_err(|_| buffer_err::<T>(b))?;
    let dst = arr.as_slice_mut().map_err(|_| buffer_err::<T>(b))?;
    let refs: Vec<&Tensor> = ts.iter().collect();
    py.detach(|| dist::pack(&refs, dst)).py()
}

fn unpack_from<T: Float + Element>(py: Python<'_>, b: &Bucket, ts: &mut [&mut Tensor], src: &Bound<'_, PyAny>, scale: f64) -> PyResult<()> {
    let arr: PyReadonlyArray1<'_, T> = src.extract().map_err(|_| buffer_err::<T>(b))?;
    let s = arr.as_slice().map_err(|_| buffer_err::<T>(b))?;
    py.detach(|| dist::unpack(s, ts, scale)).py()
}

#[pymethods]
impl PyBuckets {
    #[new]
    fn new(tensors: Vec<Bound<'_, PyTensor>>, cap_bytes: usize) -> PyResult<Self> {
        let items: Vec<(DType, usize)> = tensors
            .iter()
            .map(|t| t.try_borrow().map(|t| (t.t.dtype(), t.t.numel())).map_err(|_| PyValueError::new_err("a tensor is being written by another call")))
            .collect::<PyResult<_>>()?;
        Ok(PyBuckets { tensors: tensors.into_iter().map(Bound::unbind).collect(), plan: dist::plan(&items, cap_bytes) })
    }
    fn __len__(&self) -> usize { self.plan.len() }
    /// Elements in each bucket.
    #[getter]
    fn sizes(&self) -> Vec<usize> { self.plan.iter().map(|b| b.len).collect() }
    /// The dtype name of each bucket (`"float32"` or `"float64"`).
    #[getter]
    fn dtypes(&self) -> Vec<&'static str> { self.plan.iter().map(|b| b.dtype.name()).collect() }
    /// Indices (into the planned list) of the tensors in each bucket.
    #[getter]
    fn members(&self) -> Vec<Vec<usize>> { self.plan.iter().map(|b| b.members.clone()).collect() }
    /// Copy bucket `i`'s tensors end to end into `out`.
    fn pack(&self, py: Python<'_>, i: usize, out: &Bound<'_, PyAny>) -> PyResult<()> {
        let b = self.bucket(i)?;
        // cheap handles (shared storage): the copy itself runs without the GIL
        let ts: Vec<Tensor> = b.members.iter().map(|&m| self.tensors[m].bind(py).borrow().t.clone()).collect();
        match b.dtype {
            DType::F32 => pack_into::<f32>(py, b, ts, out),
            DType::F64 => pack_into::<f64>(py, b, ts, out),
        }
    }
    /// Overwrite bucket `i`'s tensors in place with their parts of `src`, times `scale`.
    #[pyo3(signature = (i, src, scale=1.0))]
    fn unpack(&self, py: Python<'_>, i: usize, src: &Bound<'_, PyAny>, scale: f64) -> PyResult<()> {
        let b = self.bucket(i)?;
        let mut refs: Vec<PyRefMut<'_, PyTensor>> = b
            .members
            .iter()
            .map(|&m| {
                self.tensors[m]
                    .bind(py)
                    .try_borrow_mut()
                    .map_err(|_| PyValueError::new_err("a tensor appears twice in one bucket (or is in use elsewhere); list each tensor once"))
            })
            .collect::<PyResult<_>>()?;
        let mut ts: Vec<&mut Tensor> = refs.iter_mut().map(|r| &mut r.t).collect();
        match b.dtype {
            DType::F32 => unpack_from::<f32>(py, b, &mut ts, src, scale),
            DType::F64 => unpack_from::<f64>(py, b, &mut ts, src, scale),
        }
    }
    fn __repr__(&self) -> String {
        let parts: Vec<String> = self.plan.iter().map(|b| format!("{}×{}", b.len, b.dtype.name())).collect();
        format!("Buckets([{}])", parts.join(", "))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBuckets>()?;
    Ok(())
}
