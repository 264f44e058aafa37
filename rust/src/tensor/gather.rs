//! Row gather and scatter (NNlib's `gather`/`scatter` in batch-first form): `gather`
//! picks rows of `src` by an index array (embedding lookup), `scatter_add` adds rows of
//! `src` into the rows of a new tensor named by the index. Each is the other's adjoint.
use std::sync::Arc;

use super::Tensor;
use crate::autodiff::{record, Backward, Op};
use crate::error::{shape_err, Result};

/// `out[i..., :] = src[idx[i...], :]`: shape `idx_shape + src.shape[1:]`.
///
/// ```
/// use flux_core::{Tensor, tensor::gather::gather};
/// let w = Tensor::from_vec(vec![0.0f32, 1.0, 10.0, 11.0, 20.0, 21.0], &[3, 2]).unwrap();
/// let y = gather(&w, &[2, 0, 2, 1], &[2, 2]).unwrap();
/// assert_eq!(y.shape(), &[2, 2, 2]);
/// assert_eq!(y.to_vec_f64().unwrap(), vec![20.0, 21.0, 0.0, 1.0, 20.0, 21.0, 10.0, 11.0]);
/// ```
pub fn gather(src: &Tensor, idx: &[usize], idx_shape: &[usize]) -> Result<Tensor> {
    if idx.len() != idx_shape.iter().product::<usize>() {
        return Err(shape_err!("gather: {} indices do not fill the index shape {:?}", idx.len(), idx_shape));
    }
    if src.ndim() == 0 {
        return Err(shape_err!("gather needs a source with at least one dimension"));
    }
    let rows = src.index_select(0, idx)?;
    let mut shape = idx_shape.to_vec();
    shape.extend(&src.shape()[1..]);
    rows.reshape(&shape)
}

#[derive(Debug)]
struct ScatterBackward {
    idx: Arc<Vec<usize>>,
    src_shape: Vec<usize>,
}

impl Backward for ScatterBackward {
    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let r = g.index_select(0, &self.idx)?.reshape(&self.src_shape)?;
        Ok(vec![Some(r)])
    }
}

/// `out[idx[i...], :] += src[i..., :]` into zeros of `n` rows: `src` has shape
/// `idx_shape + rest`, the result `(n,) + rest`.
///
/// ```
/// use flux_core::{Tensor, tensor::gather::scatter_add};
/// let src = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]).unwrap();
/// let y = scatter_add(&src, &[1, 1, 0], &[3], 2).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![3.0, 3.0]);
/// ```
pub fn scatter_add(src: &Tensor, idx: &[usize], idx_shape: &[usize], n: usize) -> Result<Tensor> {
    let k = idx_shape.len();
    if idx.len() != idx_shape.iter().product::<usize>() || src.ndim() < k || &src.shape()[..k] != idx_shape {
        return Err(shape_err!("scatter: source of shape {:?} does not start with the index shape {:?}", src.shape(), idx_shape));
    }
    if let Some(&bad) = idx.iter().find(|&&i| i >= n) {
        return Err(shape_err!("scatter: index {bad} is out of bounds for {n} rows"));
    }
    let rest = &src.shape()[k..];
    let inner: usize = rest.iter().product();
    let mut oshape = vec![n];
    oshape.extend(rest);
    // the source read as [rows, inner] (a view when it is contiguous), scattered by row
    let s = src.contiguous()?.reshape_view(&[idx.len(), inner])?;
    let out = Tensor::from_storage(s.storage().index_add(s.layout(), 0, idx, n)?, super::Layout::contiguous(&oshape));
    record(&[src], &out, || Op::Custom(Box::new(ScatterBackward { idx: Arc::new(idx.to_vec()), src_shape: src.shape().to_vec() })));
    Ok(out)
}
