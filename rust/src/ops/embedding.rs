//! Embedding lookup as a fused op: a row gather whose backward is a scatter-add of the
//! output gradient into the table's rows, with a padding row that reads as zeros and
//! receives no gradient.
use std::sync::Arc;

use super::{apply, FusedOp};
use crate::autodiff::Backward;
use crate::error::{shape_err, Result};
use crate::tensor::misc::where_;
use crate::tensor::movement::index_add;
use crate::tensor::{Float, Tensor};

#[derive(Debug)]
struct EmbeddingOp<'a> {
    idx: &'a [usize],
    idx_shape: &'a [usize],
    padding: Option<usize>,
}

#[derive(Debug)]
struct EmbeddingBackward {
    idx: Arc<Vec<usize>>,
    padding: Option<usize>,
    table: Vec<usize>,
}

/// `out[j] = w[idx[j]]` (zeros for the padding row), rows of `d` values.
fn gather_rows<T: Float>(w: &[T], idx: &[usize], d: usize, padding: Option<usize>) -> Vec<T> {
    let mut out = Vec::with_capacity(idx.len() * d);
    for &i in idx {
        if Some(i) == padding {
            out.resize(out.len() + d, T::zero());
        } else {
            out.extend_from_slice(&w[i * d..(i + 1) * d]);
        }
    }
    out
}

impl Backward for EmbeddingBackward {
    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let (n, d) = (self.table[0], self.table[1..].iter().product::<usize>());
        crate::dispatch!(g.dtype(), T => {
            let gc = g.as_contiguous::<T>()?;
            let gs = gc.as_slice::<T>()?;
            let mut dw = vec![T::zero(); n * d];
            for (j, &i) in self.idx.iter().enumerate() {
                if Some(i) != self.padding {
                    dw[i * d..(i + 1) * d].iter_mut().zip(&gs[j * d..(j + 1) * d]).for_each(|(a, &v)| *a += v);
                }
            }
            Ok(vec![Some(Tensor::from_vec(dw, &self.table)?)])
        })
    }
}

impl FusedOp for EmbeddingOp<'_> {
    fn name(&self) -> &'static str { "embedding" }
    fn cpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let w = xs[0];
        let d: usize = w.shape()[1..].iter().product();
        let mut shape = self.idx_shape.to_vec();
        shape.extend(&w.shape()[1..]);
        crate::tensor::alloc::reserve(&shape, w.dtype())?;
        let y = crate::dispatch!(w.dtype(), T => {
            let wc = w.as_contiguous::<T>()?;
            Tensor::from_vec(gather_rows(wc.as_slice::<T>()?, self.idx, d, self.padding), &shape)?
        });
        let bwd = EmbeddingBackward { idx: Arc::new(self.idx.to_vec()), padding: self.padding, table: w.shape().to_vec() };
        Ok((y, Box::new(bwd)))
    }
    /// A row gather on the device; the padding rows are zeroed by a `where` on a
    /// per-index mask.
    fn wgpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
        let w = xs[0];
        let mut shape = self.idx_shape.to_vec();
        shape.extend(&w.shape()[1..]);
        let keep = padding_mask(self.idx, self.padding, w)?;
        let y = crate::autodiff::unrecorded(|| -> Result<Tensor> {
            let rows = w.index_select(0, self.idx)?;
            match &keep {
                Some(k) => where_(k, &rows, &rows.full_beside(&[], 0.0, rows.dtype())?)?.reshape(&shape),
                None => rows.reshape(&shape),
            }
        })?;
        Ok((y, Box::new(EmbeddingDeviceBackward { idx: self.idx.to_vec(), keep, table: w.shape().to_vec() })))
    }
}

/// 1 for the indices that read a row, 0 for the padding ones, shaped (k, 1, …) to
/// broadcast over the gathered rows of `w`; `None` when no index is the padding row.
fn padding_mask(idx: &[usize], padding: Option<usize>, w: &Tensor) -> Result<Option<Tensor>> {
    let Some(pad) = padding.filter(|p| idx.contains(p)) else { return Ok(None) };
    let mut shape = vec![idx.len()];
    shape.resize(w.ndim(), 1);
    let m: Vec<f32> = idx.iter().map(|&i| if i == pad { 0.0 } else { 1.0 }).collect();
    Ok(Some(Tensor::from_vec(m, &shape)?.to_device(w.device())?))
}

/// The embedding's backward on a device other than the CPU: a scatter-add of the
/// (padding-masked) output gradient into the table's rows, by the device's kernels.
#[derive(Debug)]
struct EmbeddingDeviceBackward {
    idx: Vec<usize>,
    keep: Option<Tensor>,
    table: Vec<usize>,
}

impl Backward for EmbeddingDeviceBackward {
    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let mut rows = vec![self.idx.len()];
        rows.extend(&self.table[1..]);
        let g = g.reshape(&rows)?;
        let g = match &self.keep {
            Some(k) => where_(k, &g, &g.full_beside(&[], 0.0, g.dtype())?)?,
            None => g,
        };
        Ok(vec![Some(index_add(&self.table, 0, &self.idx, &g)?)])
    }
}

/// Rows of the table `w` (n, d...) picked by the indices `idx` (of shape `idx_shape`):
/// shape `idx_shape + w.shape[1:]`. Rows indexed `padding` are zeros and send no
/// gradient to `w`; the gradient of `w` is the scatter-add of the output gradient.
///
/// ```
/// use flux_core::{Tensor, ops::embedding::embedding};
/// let w = Tensor::from_vec(vec![0.0f32, 1.0, 10.0, 11.0, 20.0, 21.0], &[3, 2]).unwrap();
/// let y = embedding(&w, &[2, 0, 2, 1], &[2, 2], None).unwrap();
/// assert_eq!(y.shape(), &[2, 2, 2]);
/// assert_eq!(y.to_vec_f64().unwrap(), vec![20.0, 21.0, 0.0, 1.0, 20.0, 21.0, 10.0, 11.0]);
/// let y = embedding(&w, &[1, 2], &[2], Some(2)).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![10.0, 11.0, 0.0, 0.0]);
/// ```
pub fn embedding(w: &Tensor, idx: &[usize], idx_shape: &[usize], padding: Option<usize>) -> Result<Tensor> {
    if w.ndim() == 0 {
        return Err(shape_err!("embedding needs a table with at least one dimension, got a 0-d tensor"));
    }
    if idx.len() != idx_shape.iter().product::<usize>() {
        return Err(shape_err!("embedding: {} indices do not fill the index shape {:?}", idx.len(), idx_shape));
    }
    let n = w.shape()[0];
    if let Some(&bad) = idx.iter().find(|&&i| i >= n) {
        return Err(shape_err!("index {bad} is out of bounds for {n} rows"));
    }
    apply(&EmbeddingOp { idx, idx_shape, padding }, &[w])
}
