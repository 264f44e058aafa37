//! Layers made of layers: [`SkipConnection`], [`Parallel`] and [`Maxout`].
//!
//! They hold their members as `Box<dyn Module>` and combine the members' outputs with a
//! Rust function. (The Python layers of the same names call Python callables for
//! the members and the connection, since those may be any user function; `Maxout`'s
//! maximum is one Rust call, [`maxout`].)
use super::{Module, ParamPath};
use crate::error::{value_err, Result};
use crate::tensor::Tensor;

/// How [`SkipConnection`] joins a layer's output with its input: `connection(layer(x), x)`.
pub type Connection = Box<dyn Fn(&Tensor, &Tensor) -> Result<Tensor> + Send + Sync>;

/// How [`Parallel`] joins its branches' outputs: `connection(&[y1, y2, …])`.
pub type Combine = Box<dyn Fn(&[Tensor]) -> Result<Tensor> + Send + Sync>;

/// `connection(layer(x), x)`: a residual block with [`SkipConnection::add`], a
/// DenseNet-style one with [`SkipConnection::cat`].
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Dense, Module, combinators::SkipConnection}};
/// let block = SkipConnection::add(Box::new(Dense::new(2, 2)));
/// assert_eq!(block.forward(&Tensor::ones(&[3, 2], DType::F32)).unwrap().shape(), &[3, 2]);
/// let grow = SkipConnection::cat(Box::new(Dense::new(2, 5)), -1);
/// assert_eq!(grow.forward(&Tensor::ones(&[3, 2], DType::F32)).unwrap().shape(), &[3, 7]);
/// assert_eq!(grow.parameters()[0].0, "layers.weight");
/// ```
pub struct SkipConnection {
    /// The wrapped layer.
    pub layers: Box<dyn Module>,
    /// Joins the layer's output (first) and the input (second).
    pub connection: Connection,
}

/// Constructors for any join, a sum, or a concatenation.
///
/// ```
/// use flux_core::nn::{combinators::SkipConnection, Dense};
/// assert_eq!(SkipConnection::add(Box::new(Dense::new(2, 2))).layers.params().len(), 2);
/// ```
impl SkipConnection {
    /// `connection(layer(x), x)` for any joining function.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Dense, Module, combinators::SkipConnection}};
    /// // x ⊙ layer(x), a gate
    /// let gate = SkipConnection::new(Box::new(Dense::new(3, 3)), Box::new(|y, x| y.mul(x)));
    /// assert_eq!(gate.forward(&Tensor::ones(&[2, 3], DType::F32)).unwrap().shape(), &[2, 3]);
    /// ```
    pub fn new(layer: Box<dyn Module>, connection: Connection) -> SkipConnection { SkipConnection { layers: layer, connection } }
    /// `layer(x) + x`.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Dense, Module, combinators::SkipConnection}};
    /// let mut d = Dense::new(2, 2);
    /// d.weight = Tensor::zeros(&[2, 2], DType::F32);  // layer(x) = 0: the block is the identity
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[1, 2]).unwrap();
    /// assert_eq!(SkipConnection::add(Box::new(d)).forward(&x).unwrap().to_vec_f64().unwrap(), vec![1.0, 2.0]);
    /// ```
    pub fn add(layer: Box<dyn Module>) -> SkipConnection { Self::new(layer, Box::new(|y, x| y.add(x))) }
    /// `layer(x)` and `x` concatenated along `axis` (negative counts from the end).
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Dense, Module, combinators::SkipConnection}};
    /// let mut d = Dense::new(2, 1);
    /// d.weight = Tensor::ones(&[1, 2], DType::F32);
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[1, 2]).unwrap();
    /// // [layer(x), x] along the last axis: [1 + 2, 1, 2]
    /// assert_eq!(SkipConnection::cat(Box::new(d), -1).forward(&x).unwrap().to_vec_f64().unwrap(), vec![3.0, 1.0, 2.0]);
    /// ```
    pub fn cat(layer: Box<dyn Module>, axis: isize) -> SkipConnection { Self::new(layer, Box::new(move |y, x| Tensor::concat(&[y, x], axis))) }
}

impl Module for SkipConnection {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> { (self.connection)(&self.layers.forward_t(x, train)?, x) }
    fn visit_params<'a>(&'a self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a Tensor)) {
        path.within("layers", |p| self.layers.visit_params(p, f))
    }
    fn visit_params_mut<'a>(&'a mut self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a mut Tensor)) {
        path.within("layers", |p| self.layers.visit_params_mut(p, f))
    }
    fn buffers(&self) -> Vec<(String, Tensor)> { self.layers.buffers().into_iter().map(|(p, t)| (format!("layers.{p}"), t)).collect() }
    fn set_buffer(&self, path: &str, value: &Tensor) -> Result<bool> {
        match path.strip_prefix("layers.") {
            Some(rest) => self.layers.set_buffer(rest, value),
            None => Ok(false),
        }
    }
    fn visit_buffers_mut(&mut self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &mut Tensor)) {
        path.within("layers", |p| self.layers.visit_buffers_mut(p, f))
    }
}

/// `connection(f1(x), f2(x), …)` for one input ([`Module::forward_t`]); with k inputs
/// and k layers `connection(f1(x1), …, fk(xk))`, and one layer with k inputs applies
/// it to each ([`Parallel::forward_many`]), as Flux's `Parallel`.
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Dense, Module, combinators::Parallel}};
/// let p = Parallel::cat(vec![Box::new(Dense::new(2, 3)), Box::new(Dense::new(2, 1))], -1);
/// assert_eq!(p.forward(&Tensor::ones(&[4, 2], DType::F32)).unwrap().shape(), &[4, 4]);
/// let two = p.forward_many(&[Tensor::ones(&[4, 2], DType::F32), Tensor::ones(&[4, 2], DType::F32)], false).unwrap();
/// assert_eq!(two.shape(), &[4, 4]);
/// ```
pub struct Parallel {
    /// Joins the branches' outputs, in order.
    pub connection: Combine,
    /// The branches.
    pub layers: Vec<Box<dyn Module>>,
}

/// Constructors, and the forward pass over several inputs.
///
/// ```
/// use flux_core::nn::{combinators::Parallel, Dense};
/// assert_eq!(Parallel::sum(vec![Box::new(Dense::new(2, 2)), Box::new(Dense::new(2, 2))]).layers.len(), 2);
/// ```
impl Parallel {
    /// Branches `layers` joined by `connection`.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Dense, Module, combinators::Parallel}};
    /// // the elementwise product of two branches
    /// let p = Parallel::new(Box::new(|ys| ys[0].mul(&ys[1])), vec![Box::new(Dense::new(2, 4)), Box::new(Dense::new(2, 4))]);
    /// assert_eq!(p.forward(&Tensor::ones(&[3, 2], DType::F32)).unwrap().shape(), &[3, 4]);
    /// ```
    pub fn new(connection: Combine, layers: Vec<Box<dyn Module>>) -> Parallel { Parallel { connection, layers } }
    /// Branches whose outputs are summed.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Module, combinators::Parallel, resample::PixelShuffle}};
    /// let p = Parallel::sum(vec![Box::new(PixelShuffle(1)), Box::new(PixelShuffle(1))]);
    /// let y = p.forward(&Tensor::ones(&[1, 1, 2, 2], DType::F64)).unwrap();
    /// assert_eq!(y.to_vec_f64().unwrap(), vec![2.0; 4]);
    /// ```
    pub fn sum(layers: Vec<Box<dyn Module>>) -> Parallel {
        Self::new(
            Box::new(|ys| {
                let (first, rest) = ys.split_first().ok_or_else(|| value_err!("Parallel needs at least one layer"))?;
                rest.iter().try_fold(first.clone(), |acc, y| acc.add(y))
            }),
            layers,
        )
    }
    /// Branches whose outputs are concatenated along `axis`.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{Dense, Module, combinators::Parallel}};
    /// let p = Parallel::cat(vec![Box::new(Dense::new(2, 3)), Box::new(Dense::new(2, 3))], 0);
    /// // along the first axis: 4 + 4 rows
    /// assert_eq!(p.forward(&Tensor::ones(&[4, 2], DType::F32)).unwrap().shape(), &[8, 3]);
    /// ```
    pub fn cat(layers: Vec<Box<dyn Module>>, axis: isize) -> Parallel {
        Self::new(Box::new(move |ys| Tensor::concat(&ys.iter().collect::<Vec<_>>(), axis)), layers)
    }
    /// The layer on several inputs: branch i on input i (as many inputs as branches), or
    /// the one branch on every input; one input goes to every branch.
    ///
    /// ```
    /// use flux_core::{DType, Tensor, nn::{combinators::Parallel, resample::PixelShuffle}};
    /// let p = Parallel::sum(vec![Box::new(PixelShuffle(1)), Box::new(PixelShuffle(1))]);
    /// let (a, b) = (Tensor::ones(&[1, 1, 1, 2], DType::F64), Tensor::full(&[1, 1, 1, 2], 3.0, DType::F64));
    /// // branch i on input i, then summed
    /// assert_eq!(p.forward_many(&[a.clone(), b], false).unwrap().to_vec_f64().unwrap(), vec![4.0, 4.0]);
    /// assert!(p.forward_many(&[a.clone(), a.clone(), a], false).is_err()); // 3 inputs, 2 branches
    /// ```
    pub fn forward_many(&self, xs: &[Tensor], train: bool) -> Result<Tensor> {
        if self.layers.is_empty() {
            return Err(value_err!("Parallel needs at least one layer"));
        }
        let ys: Vec<Tensor> = match (xs.len(), self.layers.len()) {
            (1, _) => self.layers.iter().map(|l| l.forward_t(&xs[0], train)).collect::<Result<_>>()?,
            (_, 1) => xs.iter().map(|x| self.layers[0].forward_t(x, train)).collect::<Result<_>>()?,
            (a, b) if a == b => self.layers.iter().zip(xs).map(|(l, x)| l.forward_t(x, train)).collect::<Result<_>>()?,
            (a, b) => return Err(value_err!("Parallel with {b} layers cannot take {a} inputs")),
        };
        (self.connection)(&ys)
    }
}

impl Module for Parallel {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> { self.forward_many(std::slice::from_ref(x), train) }
    super::members_module!();
}

/// The elementwise maximum of the members' outputs in one call (one fused op; the
/// Python layer calls it too).
pub use crate::ops::maxout::maxout;

/// The elementwise maximum of several layers' outputs (Flux's `Maxout`).
///
/// ```
/// use flux_core::{DType, Tensor, nn::{Dense, Module, combinators::Maxout}};
/// let m = Maxout::from_fn(|| Box::new(Dense::new(3, 2)), 4);
/// assert_eq!(m.forward(&Tensor::ones(&[5, 3], DType::F32)).unwrap().shape(), &[5, 2]);
/// assert_eq!(m.parameters().len(), 8);
/// ```
pub struct Maxout {
    /// The layers whose outputs compete.
    pub layers: Vec<Box<dyn Module>>,
}

/// Constructors.
///
/// ```
/// use flux_core::nn::{combinators::Maxout, Dense};
/// assert_eq!(Maxout::from_fn(|| Box::new(Dense::new(2, 2)), 3).layers.len(), 3);
/// ```
impl Maxout {
    /// The maximum over `layers`.
    ///
    /// ```
    /// use flux_core::nn::{Dense, Module, combinators::Maxout};
    /// let m = Maxout::new(vec![Box::new(Dense::new(2, 3)), Box::new(Dense::new(2, 3))]);
    /// assert_eq!(m.parameters()[2].0, "layers.1.weight");
    /// ```
    pub fn new(layers: Vec<Box<dyn Module>>) -> Maxout { Maxout { layers } }
    /// The maximum over `n` layers made by `make`.
    ///
    /// ```
    /// use flux_core::nn::{Dense, Module, combinators::Maxout};
    /// let m = Maxout::from_fn(|| Box::new(Dense::new(4, 2)), 3);
    /// assert_eq!((m.layers.len(), m.parameters().len()), (3, 6));
    /// ```
    pub fn from_fn(mut make: impl FnMut() -> Box<dyn Module>, n: usize) -> Maxout { Maxout { layers: (0..n).map(|_| make()).collect() } }
}

impl Module for Maxout {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let ys: Vec<Tensor> = self.layers.iter().map(|l| l.forward_t(x, train)).collect::<Result<_>>()?;
        maxout(&ys)
    }
    super::members_module!();
}
