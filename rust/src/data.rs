//! Batching behind `DataLoader`: which observations form each batch, and gathering
//! them (rows along the first dimension) into a new buffer.
use rayon::prelude::*;

use crate::error::{value_err, Result};
use crate::tensor::random::Rng;
use crate::tensor::Tensor;

/// The observation indices of each batch, in order. `order` is the (possibly shuffled)
/// sequence of observations; a batch size larger than `n` becomes `n` (MLUtils).
pub fn batches(order: &[usize], batchsize: usize, partial: bool) -> Vec<&[usize]> {
    let n = order.len();
    if n == 0 || batchsize == 0 {
        return vec![];
    }
    let bs = batchsize.min(n);
    order.chunks(bs).filter(|c| partial || c.len() == bs).collect()
}

/// Copy rows `idx` of a row-major buffer with `row_bytes` bytes per row into `dst`
/// (which holds `idx.len()` rows). Parallel when there is enough to copy.
pub fn gather_rows(src: &[u8], row_bytes: usize, idx: &[usize], dst: &mut [u8]) -> Result<()> {
    let nrows = src.len().checked_div(row_bytes).unwrap_or(0);
    if let Some(&bad) = idx.iter().find(|&&i| i >= nrows) {
        return Err(value_err!("observation index {bad} is out of range for {nrows} observations"));
    }
    if dst.len() != idx.len() * row_bytes {
        return Err(value_err!("gather destination holds {} bytes, needs {}", dst.len(), idx.len() * row_bytes));
    }
    if row_bytes == 0 {
        return Ok(());
    }
    let copy = |(d, &i): (&mut [u8], &usize)| d.copy_from_slice(&src[i * row_bytes..(i + 1) * row_bytes]);
    if dst.len() >= 1 << 20 {
        dst.par_chunks_mut(row_bytes).zip(idx.par_iter()).for_each(copy);
    } else {
        dst.chunks_mut(row_bytes).zip(idx.iter()).for_each(copy);
    }
    Ok(())
}

/// One-hot rows: `out[i, labels[i]] = 1` for `n` classes (class dimension last).
///
/// ```
/// let y = flux_core::data::onehot(&[2, 0], 3, flux_core::DType::F32).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![0., 0., 1., 1., 0., 0.]);
/// ```
pub fn onehot(labels: &[usize], n: usize, dtype: crate::DType) -> Result<Tensor> {
    // built in f64, then cast: reserve that much first
    crate::tensor::alloc::reserve(&[labels.len(), n], crate::DType::F64)?;
    let mut v = vec![0f64; labels.len() * n];
    for (row, &l) in labels.iter().enumerate() {
        if l >= n {
            return Err(value_err!("label {l} is out of range for {n} classes"));
        }
        v[row * n + l] = 1.0;
    }
    Tensor::from_vec(v, &[labels.len(), n])?.cast(dtype)
}

/// Mini-batches of `(x, y)` tensors, observation dimension first, for native training.
///
/// ```
/// use flux_core::{data::DataLoader, Tensor};
/// let x = Tensor::from_vec((0..10).map(|v| v as f32).collect(), &[5, 2]).unwrap();
/// let y = Tensor::from_vec(vec![0f32; 5], &[5]).unwrap();
/// let mut dl = DataLoader::new(x, y, 2, false, true, 0).unwrap();
/// let sizes: Vec<usize> = dl.epoch().map(|b| b.unwrap().0.shape()[0]).collect();
/// assert_eq!(sizes, vec![2, 2, 1]);
/// ```
pub struct DataLoader {
    pub x: Tensor,
    pub y: Tensor,
    pub batchsize: usize,
    pub shuffle: bool,
    pub partial: bool,
    rng: Rng,
}

impl DataLoader {
    pub fn new(x: Tensor, y: Tensor, batchsize: usize, shuffle: bool, partial: bool, seed: u64) -> Result<Self> {
        if x.ndim() == 0 || y.ndim() == 0 || x.shape()[0] != y.shape()[0] {
            return Err(value_err!("x of shape {:?} and y of shape {:?} must have the same number of observations (first dimension)", x.shape(), y.shape()));
        }
        Ok(DataLoader { x, y, batchsize, shuffle, partial, rng: Rng::seed(seed) })
    }
    /// One pass over the data (a fresh permutation each call when shuffling).
    pub fn epoch(&mut self) -> impl Iterator<Item = Result<(Tensor, Tensor)>> + '_ {
        let n = self.x.shape()[0];
        let order = if self.shuffle { self.rng.permutation(n) } else { (0..n).collect() };
        let idx: Vec<Vec<usize>> = batches(&order, self.batchsize, self.partial).into_iter().map(<[usize]>::to_vec).collect();
        idx.into_iter().map(move |b| Ok((self.x.index_select(0, &b)?, self.y.index_select(0, &b)?)))
    }
}
