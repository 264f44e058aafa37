//! Resampling layers: [`Upsample`] (nearest or (bi/tri)linear) and [`PixelShuffle`],
//! as Rust modules over the kernels in [`crate::tensor::misc`] (which the Python
//! layers call too).
use super::Module;
use crate::error::{py_shape, value_err, Result};
use crate::tensor::misc::{pixel_shuffle, upsample_linear, upsample_nearest};
use crate::tensor::Tensor;

/// How [`Upsample`] fills the new positions.
///
/// ```
/// use flux_core::{Tensor, nn::{Module, resample::{Upsample, UpsampleMode}}};
/// let x = Tensor::from_vec(vec![0.0f64, 2.0], &[1, 1, 2]).unwrap();
/// let y = Upsample::size(&[3]).mode(UpsampleMode::Linear).forward(&x).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![0.0, 1.0, 2.0]); // corners aligned: the midpoint is interpolated
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpsampleMode {
    /// Repeat the nearest input (PyTorch's `nearest`).
    #[default]
    Nearest,
    /// Interpolate linearly along every spatial axis (bilinear in 2-D, trilinear in 3-D).
    Linear,
}

/// Parsing a mode's name.
///
/// ```
/// use flux_core::nn::resample::UpsampleMode;
/// assert_eq!(UpsampleMode::parse("nearest").unwrap(), UpsampleMode::default());
/// ```
impl UpsampleMode {
    /// The mode called `name`: `"nearest"`, or `"linear"`, `"bilinear"`, `"trilinear"`
    /// (one linear mode for any number of spatial dimensions; a leading `:` as in
    /// Flux's `:bilinear` is accepted).
    ///
    /// ```
    /// use flux_core::nn::resample::UpsampleMode;
    /// assert_eq!(UpsampleMode::parse(":bilinear").unwrap(), UpsampleMode::Linear);
    /// assert!(UpsampleMode::parse("cubic").is_err());
    /// ```
    pub fn parse(name: &str) -> Result<UpsampleMode> {
        match name.trim_start_matches(':') {
            "nearest" => Ok(UpsampleMode::Nearest),
            "linear" | "bilinear" | "trilinear" => Ok(UpsampleMode::Linear),
            other => Err(value_err!("Upsample mode must be nearest, linear, bilinear or trilinear, got {other:?}")),
        }
    }
}

/// The output size of [`Upsample`]: a factor per spatial dimension, or the size itself.
///
/// ```
/// use flux_core::nn::resample::{Resize, Upsample};
/// assert_eq!(Upsample::scale(2.0).resize, Resize::Scale(vec![2.0]));
/// assert_eq!(Upsample::size(&[4, 4]).resize, Resize::Size(vec![4, 4]));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Resize {
    /// Multiply each spatial size by a factor (one factor for all, or one per dimension);
    /// the result is rounded down, as in Flux.
    Scale(Vec<f64>),
    /// The output's spatial sizes (one for all, or one per dimension).
    Size(Vec<usize>),
}

/// Building one from Python's keywords.
///
/// ```
/// use flux_core::nn::resample::Resize;
/// assert_eq!(Resize::one_of(None, Some(vec![8])).unwrap(), Resize::Size(vec![8]));
/// ```
impl Resize {
    /// The resize given as Python and Flux spell it: exactly one of `scale` and `size`.
    ///
    /// ```
    /// use flux_core::nn::resample::Resize;
    /// assert_eq!(Resize::one_of(Some(vec![2.0]), None).unwrap(), Resize::Scale(vec![2.0]));
    /// assert!(Resize::one_of(Some(vec![2.0]), Some(vec![3])).is_err());
    /// assert!(Resize::one_of(None, None).is_err());
    /// ```
    pub fn one_of(scale: Option<Vec<f64>>, size: Option<Vec<usize>>) -> Result<Resize> {
        match (scale, size) {
            (Some(s), None) => Ok(Resize::Scale(s)),
            (None, Some(z)) => Ok(Resize::Size(z)),
            _ => Err(value_err!("upsampling needs exactly one of scale and size")),
        }
    }

    /// The spatial output size for an input of shape `shape` (batch, channels, spatial...).
    ///
    /// ```
    /// use flux_core::nn::resample::Resize;
    /// assert_eq!(Resize::Scale(vec![1.5]).output_size(&[1, 1, 4, 5]).unwrap(), vec![6, 7]);
    /// assert_eq!(Resize::Size(vec![3, 2]).output_size(&[1, 1, 4, 5]).unwrap(), vec![3, 2]);
    /// ```
    pub fn output_size(&self, shape: &[usize]) -> Result<Vec<usize>> {
        if shape.len() < 3 {
            return Err(crate::error::shape_err!("upsampling expects (batch, channels, spatial...), got shape {}", crate::error::py_shape(shape)));
        }
        let n = shape.len() - 2;
        let per_dim = |len: usize, what: &str| {
            if len == 1 || len == n {
                Ok(())
            } else {
                Err(value_err!("{what} needs 1 or {n} entries, got {len}"))
            }
        };
        let out: Vec<usize> = match self {
            Resize::Scale(s) => {
                per_dim(s.len(), "scale")?;
                if let Some(bad) = s.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                    return Err(value_err!("scale must be positive and finite, got {bad}"));
                }
                (0..n).map(|i| (shape[2 + i] as f64 * s[if s.len() == 1 { 0 } else { i }]).floor() as usize).collect()
            }
            Resize::Size(z) => {
                per_dim(z.len(), "size")?;
                (0..n).map(|i| z[if z.len() == 1 { 0 } else { i }]).collect()
            }
        };
        // a scale below 1 can round a size down to nothing
        if out.contains(&0) && !shape[2..].contains(&0) {
            let by = match self {
                Resize::Scale(s) => format!("scale {s:?}"),
                Resize::Size(z) => format!("size {z:?}"),
            };
            return Err(value_err!("upsampling spatial size {} by {by} gives the empty size {}", py_shape(&shape[2..]), py_shape(&out)));
        }
        Ok(out)
    }
}

/// `x` resampled to the size `resize` gives, by `mode` (`align_corners` as NNlib's
/// default when true, PyTorch's when false; linear mode only).
///
/// ```
/// use flux_core::{Tensor, nn::resample::{upsample, Resize, UpsampleMode}};
/// let x = Tensor::from_vec(vec![0.0f64, 3.0], &[1, 1, 2]).unwrap();
/// let y = upsample(&x, UpsampleMode::Linear, &Resize::Size(vec![4]), true).unwrap();
/// assert_eq!(y.to_vec_f64().unwrap(), vec![0.0, 1.0, 2.0, 3.0]);
/// ```
pub fn upsample(x: &Tensor, mode: UpsampleMode, resize: &Resize, align_corners: bool) -> Result<Tensor> {
    let size = resize.output_size(x.shape())?;
    match mode {
        UpsampleMode::Nearest => upsample_nearest(x, &size),
        UpsampleMode::Linear => upsample_linear(x, &size, align_corners),
    }
}

/// The upsampling layer (Flux's `Upsample`).
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Module, resample::{Upsample, UpsampleMode}}};
/// let up = Upsample::scale(2.0);
/// assert_eq!(up.forward(&Tensor::zeros(&[1, 1, 3, 3], DType::F32)).unwrap().shape(), &[1, 1, 6, 6]);
/// let bi = Upsample::size(&[5, 4]).mode(UpsampleMode::Linear).align_corners(false);
/// assert_eq!(bi.forward(&Tensor::zeros(&[1, 2, 3, 3], DType::F32)).unwrap().shape(), &[1, 2, 5, 4]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Upsample {
    /// Nearest or linear.
    pub mode: UpsampleMode,
    /// A scale factor or an output size.
    pub resize: Resize,
    /// Linear mode: corners of input and output aligned (NNlib) or pixel centres (PyTorch).
    pub align_corners: bool,
}

/// Constructors and builders.
///
/// ```
/// use flux_core::nn::resample::{Upsample, UpsampleMode};
/// assert_eq!(Upsample::scale(2.0).mode, UpsampleMode::Nearest);
/// ```
impl Upsample {
    /// Nearest-neighbour upsampling by `factor` in every spatial dimension.
    ///
    /// ```
    /// use flux_core::{Tensor, nn::{Module, resample::Upsample}};
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[1, 1, 2]).unwrap();
    /// assert_eq!(Upsample::scale(2.0).forward(&x).unwrap().to_vec_f64().unwrap(), vec![1.0, 1.0, 2.0, 2.0]);
    /// ```
    pub fn scale(factor: f64) -> Upsample { Upsample { mode: UpsampleMode::Nearest, resize: Resize::Scale(vec![factor]), align_corners: true } }
    /// Nearest-neighbour upsampling to `size` (one entry for all dimensions, or one each).
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, resample::Upsample}};
    /// let up = Upsample::size(&[4, 6]);
    /// assert_eq!(up.forward(&Tensor::zeros(&[1, 1, 2, 3], DType::F32)).unwrap().shape(), &[1, 1, 4, 6]);
    /// ```
    pub fn size(size: &[usize]) -> Upsample { Upsample { mode: UpsampleMode::Nearest, resize: Resize::Size(size.to_vec()), align_corners: true } }
    /// The same layer with resampling mode `mode`.
    ///
    /// ```
    /// use flux_core::{Tensor, nn::{Module, resample::{Upsample, UpsampleMode}}};
    /// let x = Tensor::from_vec(vec![0.0f64, 3.0], &[1, 1, 2]).unwrap();
    /// let up = Upsample::size(&[4]).mode(UpsampleMode::Linear);
    /// assert_eq!(up.forward(&x).unwrap().to_vec_f64().unwrap(), vec![0.0, 1.0, 2.0, 3.0]);
    /// ```
    pub fn mode(mut self, mode: UpsampleMode) -> Upsample {
        self.mode = mode;
        self
    }
    /// The same layer with `align_corners` set (linear mode only).
    ///
    /// ```
    /// use flux_core::{Tensor, nn::{Module, resample::{Upsample, UpsampleMode}}};
    /// let x = Tensor::from_vec(vec![0.0f64, 4.0], &[1, 1, 2]).unwrap();
    /// let up = |on| Upsample::scale(2.0).mode(UpsampleMode::Linear).align_corners(on).forward(&x).unwrap().to_vec_f64().unwrap();
    /// assert_eq!(up(false), vec![0.0, 1.0, 3.0, 4.0]);  // PyTorch's pixel centres
    /// assert_eq!(up(true)[0], 0.0);
    /// ```
    pub fn align_corners(mut self, on: bool) -> Upsample {
        self.align_corners = on;
        self
    }
}

impl Module for Upsample {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> { upsample(x, self.mode, &self.resize, self.align_corners) }
    crate::module_params!();
}

/// (N, C·r², H, W) → (N, C, H·r, W·r) with PyTorch's channel order (Flux's `PixelShuffle`).
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Module, resample::PixelShuffle}};
/// assert_eq!(PixelShuffle(3).forward(&Tensor::zeros(&[1, 9, 2, 2], DType::F32)).unwrap().shape(), &[1, 1, 6, 6]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelShuffle(pub usize);

impl Module for PixelShuffle {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> { pixel_shuffle(x, self.0) }
    crate::module_params!();
}
