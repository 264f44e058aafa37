//! [`Embedding`]: a lookup table, one fused gather whose backward is a scatter-add
//! ([`crate::ops::embedding`]).
use super::Module;
use crate::error::{shape_err, Result};
use crate::ops::embedding::embedding;
use crate::tensor::random::Rng;
use crate::tensor::{DType, Tensor};

/// `Embedding::new(n, d)` maps indices in `0..n` (any index shape) to rows of `weight`
/// (n, d): the output has shape `idx_shape + (d,)`. Row `padding` (if set) starts at
/// zero, reads as zeros and gets no gradient. Init: standard normal.
///
/// ```
/// use flux_core::{DType, nn::embedding::Embedding, tensor::random::Rng};
/// let e = Embedding::new(10, 3, DType::F32, &mut Rng::seed(0));
/// let y = e.lookup(&[1, 2, 3, 4], &[2, 2]).unwrap();
/// assert_eq!(y.shape(), &[2, 2, 3]);
/// ```
#[derive(Debug)]
pub struct Embedding {
    /// The table (n, d).
    pub weight: Tensor,
    /// A row that reads as zeros and is not trained.
    pub padding: Option<usize>,
}

/// Constructor, padding and look-up.
///
/// ```
/// use flux_core::{DType, nn::embedding::Embedding, tensor::random::Rng};
/// let e = Embedding::new(10, 4, DType::F32, &mut Rng::seed(0));
/// assert_eq!(e.lookup(&[1, 2, 3], &[3]).unwrap().shape(), &[3, 4]);
/// ```
impl Embedding {
    /// An (n, d) table of standard-normal values.
    ///
    /// ```
    /// use flux_core::{DType, nn::embedding::Embedding, tensor::random::Rng};
    /// let e = Embedding::new(1000, 8, DType::F64, &mut Rng::seed(0));
    /// assert_eq!((e.weight.shape(), e.padding), (&[1000, 8][..], None));
    /// let mean = e.weight.mean(None, false).unwrap().item().unwrap();
    /// assert!(mean.abs() < 0.05); // standard normal
    /// ```
    pub fn new(n: usize, d: usize, dtype: DType, rng: &mut Rng) -> Embedding {
        Embedding { weight: rng.normal_tensor(&[n, d], 0.0, 1.0, dtype), padding: None }
    }
    /// Make row `i` the padding row (zeroed now, no gradient later).
    ///
    /// ```
    /// use flux_core::{DType, nn::embedding::Embedding, tensor::random::Rng};
    /// let e = Embedding::new(4, 2, DType::F32, &mut Rng::seed(0)).padding(0).unwrap();
    /// assert_eq!(e.lookup(&[0], &[1]).unwrap().to_vec_f64().unwrap(), vec![0.0, 0.0]);
    /// assert!(Embedding::new(4, 2, DType::F32, &mut Rng::seed(0)).padding(4).is_err());
    /// ```
    pub fn padding(mut self, i: usize) -> Result<Self> {
        let (n, d) = (self.weight.shape()[0], self.weight.numel() / self.weight.shape()[0].max(1));
        if i >= n {
            return Err(shape_err!("padding index {i} is out of range for {n} rows"));
        }
        let mut v = self.weight.to_vec_f64()?;
        v[i * d..(i + 1) * d].iter_mut().for_each(|a| *a = 0.0);
        self.weight.assign_(&Tensor::from_vec(v, self.weight.shape())?)?;
        self.padding = Some(i);
        Ok(self)
    }
    /// Rows for the indices `idx` laid out as `idx_shape`.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::embedding::Embedding, tensor::random::Rng};
    /// let mut e = Embedding::new(3, 2, DType::F64, &mut Rng::seed(0));
    /// e.weight = Tensor::from_vec(vec![0.0, 1.0, 10.0, 11.0, 20.0, 21.0], &[3, 2]).unwrap();
    /// assert_eq!(e.lookup(&[2, 0], &[2]).unwrap().to_vec_f64().unwrap(), vec![20.0, 21.0, 0.0, 1.0]);
    /// assert!(e.lookup(&[3], &[1]).is_err());
    /// ```
    pub fn lookup(&self, idx: &[usize], idx_shape: &[usize]) -> Result<Tensor> { embedding(&self.weight, idx, idx_shape, self.padding) }
}

impl Module for Embedding {
    /// Indices given as a float tensor of whole numbers (the `Module` interface takes
    /// tensors); [`Embedding::lookup`] takes them directly.
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        let v = x.to_vec_f64()?;
        let idx: Vec<usize> = v
            .iter()
            .map(|&f| if f >= 0.0 && f.fract() == 0.0 && f < usize::MAX as f64 { Ok(f as usize) } else { Err(shape_err!("Embedding: index {f} is not a non-negative whole number")) })
            .collect::<Result<_>>()?;
        self.lookup(&idx, x.shape())
    }
    crate::module_params!(weight);
}
