//! Batching behind `DataLoader`: which observations form each batch, and gathering
//! them (rows along the first dimension) into a new buffer.
use rayon::prelude::*;

use crate::error::{value_err, Result};
use crate::tensor::random::Rng;
use crate::tensor::Tensor;

/// The observation indices of each batch, in order. `order` is the (possibly shuffled)
/// sequence of observations; a batch size larger than `n` becomes `n` (MLUtils).
///
/// ```
/// use flux_core::data::batches;
/// let order = [4, 0, 3, 1, 2];
/// assert_eq!(batches(&order, 2, true), vec![&[4, 0][..], &[3, 1], &[2]]);
/// assert_eq!(batches(&order, 2, false).len(), 2);  // the last, smaller batch dropped
/// ```
pub fn batches(order: &[usize], batchsize: usize, partial: bool) -> Vec<&[usize]> {
    let n = order.len();
    if n == 0 || batchsize == 0 {
        return vec![];
    }
    let bs = batchsize.min(n);
    order.chunks(bs).filter(|c| partial || c.len() == bs).collect()
}

/// Rank `rank`'s batches of one epoch when `size` ranks train one model on `order`
/// (the epoch's permutation, the same on every rank), each with batches of
/// `batchsize`. The epoch is cut into global batches of `batchsize × size`
/// observations and rank `r` takes the `r`-th slice of each, so the ranks together see
/// what one process with batch `batchsize × size` sees, split without overlap. A last
/// incomplete global batch (kept when `partial`) is shared out in equal slices of
/// `⌈rest / size⌉`, wrapping around to the start of `order` for the few missing ones
/// (as PyTorch's `DistributedSampler` pads): every rank gets the same number of
/// batches, so none waits for good in a collective, and every observation is seen
/// exactly once whenever `size` divides the number of observations.
///
/// ```
/// use flux_core::data::shard_batches;
/// let order: Vec<usize> = (0..10).collect();
/// assert_eq!(shard_batches(&order, 2, true, 0, 2).unwrap(), vec![vec![0, 1], vec![4, 5], vec![8]]);
/// assert_eq!(shard_batches(&order, 2, true, 1, 2).unwrap(), vec![vec![2, 3], vec![6, 7], vec![9]]);
/// assert_eq!(shard_batches(&order, 2, false, 1, 2).unwrap(), vec![vec![2, 3], vec![6, 7]]);
/// ```
pub fn shard_batches(order: &[usize], batchsize: usize, partial: bool, rank: usize, size: usize) -> Result<Vec<Vec<usize>>> {
    if size == 0 || rank >= size {
        return Err(value_err!("shard=(rank, size) needs 0 <= rank < size, got ({rank}, {size})"));
    }
    if batchsize == 0 {
        return Err(value_err!("a sharded batch size must be positive, got 0"));
    }
    let n = order.len();
    let global = batchsize.checked_mul(size).ok_or_else(|| value_err!("batchsize × size overflows: {batchsize} × {size}"))?;
    let full = n / global;
    let mut out: Vec<Vec<usize>> = (0..full).map(|j| order[j * global + rank * batchsize..][..batchsize].to_vec()).collect();
    let rest = n - full * global;
    if rest > 0 && partial {
        let per = rest.div_ceil(size);
        let start = full * global + rank * per;
        // positions past the end wrap to the start of the epoch
        out.push((start..start + per).map(|k| order[k % n]).collect());
    }
    Ok(out)
}

/// Copy rows `idx` of a row-major buffer with `row_bytes` bytes per row into `dst`
/// (which holds `idx.len()` rows). Parallel when there is enough to copy.
///
/// ```
/// use flux_core::data::gather_rows;
/// let src = [1u8, 2, 3, 4, 5, 6];  // three rows of two bytes
/// let mut dst = [0u8; 4];
/// gather_rows(&src, 2, &[2, 0], &mut dst).unwrap();
/// assert_eq!(dst, [5, 6, 1, 2]);
/// assert!(gather_rows(&src, 2, &[3], &mut [0u8; 2]).is_err());
/// ```
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

/// How a [`DataLoader`] batches: MLUtils' keywords as named fields.
///
/// ```
/// use flux_core::data::LoaderOptions;
/// let o = LoaderOptions { batchsize: 32, shuffle: true, ..Default::default() };
/// assert!(o.partial);
/// assert_eq!(LoaderOptions::default().batchsize, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoaderOptions {
    /// Observations per batch (a size above the number of observations means all of them).
    pub batchsize: usize,
    /// A fresh random order every epoch.
    pub shuffle: bool,
    /// Keep the last, smaller batch (`true`) or drop it.
    pub partial: bool,
    /// The seed of the shuffling generator.
    pub seed: u64,
}

impl Default for LoaderOptions {
    /// Flux's defaults: batch size 1, no shuffling, partial batches kept, seed 0.
    fn default() -> Self { LoaderOptions { batchsize: 1, shuffle: false, partial: true, seed: 0 } }
}

/// Builders, one per option.
///
/// ```
/// use flux_core::data::LoaderOptions;
/// assert_eq!(LoaderOptions::default().batchsize(32).batchsize, 32);
/// ```
impl LoaderOptions {
    /// The same options with batch size `n`.
    ///
    /// ```
    /// use flux_core::data::LoaderOptions;
    /// let o = LoaderOptions::default().batchsize(64).shuffle(true).partial(false).seed(7);
    /// assert_eq!((o.batchsize, o.shuffle, o.partial, o.seed), (64, true, false, 7));
    /// ```
    pub fn batchsize(mut self, n: usize) -> Self {
        self.batchsize = n;
        self
    }
    /// The same options with shuffling on or off.
    ///
    /// ```
    /// use flux_core::{data::{DataLoader, LoaderOptions}, Tensor};
    /// let x = Tensor::from_vec((0..8).map(|v| v as f32).collect(), &[8, 1]).unwrap();
    /// let mut dl = DataLoader::new(x.clone(), x, LoaderOptions::default().batchsize(8).shuffle(true).seed(3)).unwrap();
    /// let a = dl.epoch().next().unwrap().unwrap().0.to_vec_f64().unwrap();
    /// let b = dl.epoch().next().unwrap().unwrap().0.to_vec_f64().unwrap();
    /// assert_ne!(a, b);  // a fresh order every epoch
    /// ```
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }
    /// The same options keeping (`true`) or dropping the last, smaller batch.
    ///
    /// ```
    /// use flux_core::{data::{DataLoader, LoaderOptions}, DType, Tensor};
    /// let x = Tensor::zeros(&[5, 1], DType::F32);
    /// let mut dl = DataLoader::new(x.clone(), x, LoaderOptions::default().batchsize(2).partial(false)).unwrap();
    /// assert_eq!(dl.epoch().count(), 2);  // the fifth observation is left out
    /// ```
    pub fn partial(mut self, keep: bool) -> Self {
        self.partial = keep;
        self
    }
    /// The same options with the shuffling generator seeded by `seed`.
    ///
    /// ```
    /// use flux_core::{data::{DataLoader, LoaderOptions}, Tensor};
    /// let x = Tensor::from_vec((0..16).map(|v| v as f32).collect(), &[16, 1]).unwrap();
    /// let first = |seed| {
    ///     let o = LoaderOptions::default().batchsize(16).shuffle(true).seed(seed);
    ///     let mut dl = DataLoader::new(x.clone(), x.clone(), o).unwrap();
    ///     let b = dl.epoch().next().unwrap().unwrap().0.to_vec_f64().unwrap();
    ///     b
    /// };
    /// assert_eq!(first(5), first(5)); // the same seed, the same order
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// Mini-batches of `(x, y)` tensors, observation dimension first, for native training.
///
/// ```
/// use flux_core::{data::{DataLoader, LoaderOptions}, Tensor};
/// let x = Tensor::from_vec((0..10).map(|v| v as f32).collect(), &[5, 2]).unwrap();
/// let y = Tensor::from_vec(vec![0f32; 5], &[5]).unwrap();
/// let mut dl = DataLoader::new(x, y, LoaderOptions::default().batchsize(2)).unwrap();
/// let sizes: Vec<usize> = dl.epoch().map(|b| b.unwrap().0.shape()[0]).collect();
/// assert_eq!(sizes, vec![2, 2, 1]);
/// ```
pub struct DataLoader {
    /// The inputs, observations along the first dimension.
    pub x: Tensor,
    /// The targets, as many observations as `x`.
    pub y: Tensor,
    /// How batches are formed.
    pub options: LoaderOptions,
    rng: Rng,
}

/// The constructor and the epochs.
///
/// ```
/// use flux_core::{data::{DataLoader, LoaderOptions}, DType, Tensor};
/// let x = Tensor::zeros(&[6, 2], DType::F32);
/// let mut dl = DataLoader::new(x.clone(), x, LoaderOptions::default().batchsize(4)).unwrap();
/// assert_eq!(dl.epoch().count(), 2);
/// ```
impl DataLoader {
    /// A loader over `x` and `y` (the same number of observations, first dimension).
    ///
    /// ```
    /// use flux_core::{data::{DataLoader, LoaderOptions}, DType, Tensor};
    /// let (x, y) = (Tensor::zeros(&[4, 2], DType::F32), Tensor::zeros(&[3], DType::F32));
    /// assert!(DataLoader::new(x, y, LoaderOptions::default()).is_err());  // 4 and 3 observations
    /// ```
    pub fn new(x: Tensor, y: Tensor, options: LoaderOptions) -> Result<Self> {
        if x.ndim() == 0 || y.ndim() == 0 || x.shape()[0] != y.shape()[0] {
            return Err(value_err!("x of shape {:?} and y of shape {:?} must have the same number of observations (first dimension)", x.shape(), y.shape()));
        }
        let rng = Rng::seed(options.seed);
        Ok(DataLoader { x, y, options, rng })
    }
    /// One pass over the data (a fresh permutation each call when shuffling).
    ///
    /// ```
    /// use flux_core::{data::{DataLoader, LoaderOptions}, Tensor};
    /// let x = Tensor::from_vec((0..6).map(|v| v as f64).collect(), &[6, 1]).unwrap();
    /// let mut dl = DataLoader::new(x.clone(), x, LoaderOptions::default().batchsize(3).shuffle(true).seed(1)).unwrap();
    /// let mut seen: Vec<f64> = dl.epoch().flat_map(|b| b.unwrap().0.to_vec_f64().unwrap()).collect();
    /// seen.sort_by(f64::total_cmp);
    /// assert_eq!(seen, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);  // every observation once per epoch
    /// ```
    pub fn epoch(&mut self) -> impl Iterator<Item = Result<(Tensor, Tensor)>> + '_ {
        let n = self.x.shape()[0];
        let order = if self.options.shuffle { self.rng.permutation(n) } else { (0..n).collect() };
        let idx: Vec<Vec<usize>> = batches(&order, self.options.batchsize, self.options.partial).into_iter().map(<[usize]>::to_vec).collect();
        idx.into_iter().map(move |b| Ok((self.x.index_select(0, &b)?, self.y.index_select(0, &b)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_each_epoch_once_with_equal_batch_counts() {
        for (n, b, size) in [(12, 2, 2), (12, 5, 3), (7, 3, 7), (100, 8, 4), (1, 4, 1)] {
            let order: Vec<usize> = (0..n).rev().collect();
            let parts: Vec<Vec<Vec<usize>>> = (0..size).map(|r| shard_batches(&order, b, true, r, size).unwrap()).collect();
            assert!(parts.iter().all(|p| p.len() == parts[0].len()), "n={n} b={b} size={size}");
            let mut seen: Vec<usize> = parts.iter().flatten().flatten().copied().collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "n={n} b={b} size={size}");
        }
    }

    #[test]
    fn uneven_tails_pad_from_the_start_and_bad_ranks_fail() {
        let order: Vec<usize> = (0..5).collect();
        let parts: Vec<Vec<Vec<usize>>> = (0..2).map(|r| shard_batches(&order, 2, true, r, 2).unwrap()).collect();
        assert_eq!(parts[0], vec![vec![0, 1], vec![4]]);
        assert_eq!(parts[1], vec![vec![2, 3], vec![0]]);
        assert!(shard_batches(&order, 2, true, 2, 2).is_err());
        assert!(shard_batches(&order, 0, true, 0, 2).is_err());
        assert!(shard_batches(&[], 2, true, 0, 2).unwrap().is_empty());
    }
}
