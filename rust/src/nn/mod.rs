//! Layers, activations, initialisers and losses.
//!
//! Layouts follow PyTorch: batch first, `Dense` weight `(out, in)`, `y = σ(x·Wᵀ + b)`.
//!
//! ```
//! use flux_core::nn::{Activation, Chain, Dense, Module};
//! use flux_core::{DType, Tensor};
//! let model = Chain::new(vec![
//!     Box::new(Dense::new(2, 16).activation(Activation::Tanh)),
//!     Box::new(Dense::new(16, 1).activation(Activation::Sigmoid)),
//! ]);
//! let y = model.forward(&Tensor::zeros(&[4, 2], DType::F32)).unwrap();
//! assert_eq!(y.shape(), &[4, 1]);
//! assert_eq!(model.parameters()[2].0, "layers.1.weight");
//! ```
pub mod activation;
pub mod attention;
pub mod bilinear;
pub mod combinators;
pub mod conv;
pub mod dense;
pub mod dropout;
pub mod embedding;
pub mod init;
pub mod losses;
pub mod norm;
pub mod recurrent;
pub mod resample;
pub mod scale;

use std::fmt;

pub use activation::Activation;
pub use dense::{linear, Dense};
pub use recurrent::{GRUCell, LSTMCell, RNNCell, GRU, LSTM, RNN};

use crate::error::Result;
use crate::tensor::Tensor;

/// One step of a parameter's path: a field name or a position in a list.
///
/// ```
/// use flux_core::nn::{ParamPath, Seg};
/// let mut p = ParamPath::new();
/// p.push("layers");
/// p.push(1);
/// assert_eq!(p.segments(), &[Seg::Field("layers"), Seg::Index(1)]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seg {
    /// A named field, e.g. `weight` or `layers`.
    Field(&'static str),
    /// A position in a list, e.g. the `0` of `layers.0`.
    Index(usize),
}

impl From<&'static str> for Seg {
    fn from(s: &'static str) -> Seg { Seg::Field(s) }
}
impl From<usize> for Seg {
    fn from(i: usize) -> Seg { Seg::Index(i) }
}

/// Where a parameter sits in a model, as a stack of [`Seg`]s that modules push and pop
/// while they are visited. Nothing is formatted unless asked (`to_string()` gives
/// `"layers.0.weight"`), so visiting every parameter of a model on every batch builds
/// no strings.
///
/// ```
/// use flux_core::nn::ParamPath;
/// let mut p = ParamPath::new();
/// p.push("layers");
/// p.push(0);
/// p.push("weight");
/// assert_eq!(p.to_string(), "layers.0.weight");
/// p.pop();
/// assert_eq!(p.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamPath {
    segs: Vec<Seg>,
}

/// Building a path while visiting, and reading it.
///
/// ```
/// use flux_core::nn::ParamPath;
/// let mut p = ParamPath::new();
/// p.within("encoder", |p| p.within(0, |p| assert_eq!(p.to_string(), "encoder.0")));
/// assert!(p.is_empty());
/// ```
impl ParamPath {
    /// The empty path (the model itself).
    ///
    /// ```
    /// use flux_core::nn::ParamPath;
    /// let p = ParamPath::new();
    /// assert!(p.is_empty() && p.segments().is_empty());
    /// assert_eq!(p.to_string(), "");
    /// ```
    pub fn new() -> ParamPath { ParamPath { segs: Vec::with_capacity(8) } }
    /// Step into a field or list position.
    ///
    /// ```
    /// use flux_core::nn::{ParamPath, Seg};
    /// let mut p = ParamPath::new();
    /// p.push("layers");
    /// p.push(2);
    /// assert_eq!(p.segments(), &[Seg::Field("layers"), Seg::Index(2)]);
    /// p.pop();
    /// assert_eq!((p.len(), p.to_string()), (1, "layers".to_string()));
    /// ```
    pub fn push(&mut self, seg: impl Into<Seg>) { self.segs.push(seg.into()); }
    /// Step back out.
    ///
    /// ```
    /// use flux_core::nn::ParamPath;
    /// let mut p = ParamPath::new();
    /// p.push("a");
    /// p.push("b");
    /// p.pop();
    /// assert_eq!(p.to_string(), "a");
    /// ```
    pub fn pop(&mut self) { self.segs.pop(); }
    /// The steps from the model down to here.
    ///
    /// ```
    /// use flux_core::nn::{ParamPath, Seg};
    /// let mut p = ParamPath::new();
    /// p.push("weight");
    /// assert_eq!(p.segments(), &[Seg::Field("weight")]);
    /// ```
    pub fn segments(&self) -> &[Seg] { &self.segs }
    /// How many steps deep this is.
    ///
    /// ```
    /// use flux_core::nn::ParamPath;
    /// let mut p = ParamPath::new();
    /// p.push("layers");
    /// p.push(3);
    /// assert_eq!(p.len(), 2);
    /// ```
    pub fn len(&self) -> usize { self.segs.len() }
    /// Is this the model itself?
    ///
    /// ```
    /// use flux_core::nn::ParamPath;
    /// let mut p = ParamPath::new();
    /// assert!(p.is_empty());
    /// p.push("bias");
    /// assert!(!p.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool { self.segs.is_empty() }
    /// Run `f` with `seg` pushed for the duration: how a container reports a member's
    /// parameters under the member's name.
    ///
    /// ```
    /// use flux_core::nn::{Dense, Module, ParamPath};
    /// let d = Dense::new(2, 3);
    /// let mut seen = vec![];
    /// ParamPath::new().within("head", |p| d.visit_params(p, &mut |p, _| seen.push(p.to_string())));
    /// assert_eq!(seen, vec!["head.weight", "head.bias"]);
    /// ```
    pub fn within<R>(&mut self, seg: impl Into<Seg>, f: impl FnOnce(&mut ParamPath) -> R) -> R {
        self.push(seg);
        let r = f(self);
        self.pop();
        r
    }
    /// Call `f` on `t` with `name` pushed for the duration: how a layer reports a field.
    ///
    /// ```
    /// use flux_core::{nn::ParamPath, DType, Tensor};
    /// let w = Tensor::zeros(&[2], DType::F32);
    /// let mut seen = vec![];
    /// ParamPath::new().visit("weight", &w, &mut |p, _| seen.push(p.to_string()));
    /// assert_eq!(seen, vec!["weight"]);
    /// ```
    pub fn visit<'a>(&mut self, name: &'static str, t: &'a Tensor, f: &mut dyn FnMut(&ParamPath, &'a Tensor)) { self.within(name, |p| f(p, t)) }
    /// [`ParamPath::visit`] for a mutable parameter.
    ///
    /// ```
    /// use flux_core::{nn::ParamPath, DType, Tensor};
    /// let mut w = Tensor::zeros(&[2], DType::F32);
    /// ParamPath::new().visit_mut("weight", &mut w, &mut |_, t| *t = t.add_scalar(1.0).unwrap());
    /// assert_eq!(w.to_vec_f64().unwrap(), vec![1.0, 1.0]);
    /// ```
    pub fn visit_mut<'a>(&mut self, name: &'static str, t: &'a mut Tensor, f: &mut dyn FnMut(&ParamPath, &'a mut Tensor)) { self.within(name, |p| f(p, t)) }
}

impl fmt::Display for ParamPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.segs.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            match s {
                Seg::Field(n) => f.write_str(n)?,
                Seg::Index(k) => write!(f, "{k}")?,
            }
        }
        Ok(())
    }
}

/// `visit_params` and `visit_params_mut` of a [`Module`] whose parameters are plain
/// `Tensor` fields, in the order given; fields after `; optional` are
/// `Option<Tensor>` (a layer built without bias), visited when present.
///
/// ```
/// use flux_core::{nn::Module, Result, Tensor, DType};
/// struct Affine { scale: Tensor, shift: Option<Tensor> }
/// impl Module for Affine {
///     fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
///         let y = x.mul(&self.scale)?;
///         match &self.shift { Some(b) => y.add(b), None => Ok(y) }
///     }
///     flux_core::module_params!(scale; optional shift);
/// }
/// let m = Affine { scale: Tensor::ones(&[2], DType::F32), shift: Some(Tensor::zeros(&[2], DType::F32)) };
/// let names: Vec<String> = m.parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, vec!["scale", "shift"]);
/// ```
#[macro_export]
macro_rules! module_params {
    ($($field:ident),* $(; optional $($opt:ident),*)? $(,)?) => {
        fn visit_params<'a>(&'a self, _path: &mut $crate::nn::ParamPath, _f: &mut dyn FnMut(&$crate::nn::ParamPath, &'a $crate::Tensor)) {
            $( _path.visit(stringify!($field), &self.$field, _f); )*
            $($( if let Some(t) = &self.$opt { _path.visit(stringify!($opt), t, _f); } )*)?
        }
        fn visit_params_mut<'a>(&'a mut self, _path: &mut $crate::nn::ParamPath, _f: &mut dyn FnMut(&$crate::nn::ParamPath, &'a mut $crate::Tensor)) {
            $( _path.visit_mut(stringify!($field), &mut self.$field, _f); )*
            $($( if let Some(t) = &mut self.$opt { _path.visit_mut(stringify!($opt), t, _f); } )*)?
        }
    };
}

/// A layer or model: a forward pass and its parameters, visited by path.
///
/// `forward_t(x, train)` is the pass with an explicit mode (candle's `ModuleT`):
/// Dropout drops and BatchNorm uses batch statistics only when `train` is true.
/// `forward` follows Flux's automatic mode: training while a gradient is recorded.
///
/// Parameters are reported by `visit_params` (and `visit_params_mut`) in a fixed order,
/// each with its [`ParamPath`]; [`module_params!`](crate::module_params) writes both for
/// layers whose parameters are plain fields. The provided `params`,
/// `params_mut`, `parameters` and `parameters_mut` collect them.
///
/// ```
/// use flux_core::{nn::{Dense, Module}, DType, Tensor};
/// let d = Dense::new(3, 2);
/// assert_eq!(d.params().len(), 2);
/// assert_eq!(d.forward_t(&Tensor::zeros(&[1, 3], DType::F32), false).unwrap().shape(), &[1, 2]);
/// ```
pub trait Module: Send {
    /// The forward pass in the automatic mode (training iff a gradient is recorded).
    ///
    /// ```
    /// use flux_core::{autodiff, nn::{dropout::Dropout, Module}, DType, Tensor};
    /// let d = Dropout::new(0.5).unwrap();
    /// let x = Tensor::ones(&[1000], DType::F32);
    /// // not recording a gradient: test mode, the identity
    /// assert_eq!(d.forward(&x).unwrap().to_vec_f64().unwrap(), x.to_vec_f64().unwrap());
    /// // inside value_and_grad: training mode, about half the entries dropped
    /// let (zeros, _) = autodiff::value_and_grad(&[&x], || {
    ///     let y = d.forward(&x)?;
    ///     let n = y.to_vec_f64()?.iter().filter(|&&v| v == 0.0).count();
    ///     Ok(Tensor::scalar(n as f64, DType::F32))
    /// }).unwrap();
    /// assert!((300.0..700.0).contains(&zeros.item().unwrap()));
    /// ```
    fn forward(&self, x: &Tensor) -> Result<Tensor> { self.forward_t(x, crate::autodiff::is_recording()) }
    /// The forward pass in an explicit mode. Layers without a mode ignore `train`.
    ///
    /// ```
    /// use flux_core::{nn::{dropout::Dropout, Module}, DType, Tensor};
    /// let d = Dropout::new(0.5).unwrap();
    /// let x = Tensor::ones(&[100], DType::F32);
    /// assert_eq!(d.forward_t(&x, false).unwrap().sum_all().unwrap().item().unwrap(), 100.0);
    /// assert!(d.forward_t(&x, true).unwrap().to_vec_f64().unwrap().iter().any(|&v| v == 0.0));
    /// ```
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor>;
    /// Call `f` on every parameter, in a fixed order, with its path below `path`
    /// (push a segment, report or recurse, pop).
    ///
    /// ```
    /// use flux_core::nn::{Dense, Module, ParamPath};
    /// let d = Dense::new(2, 3);
    /// let mut shapes = vec![];
    /// d.visit_params(&mut ParamPath::new(), &mut |p, t| shapes.push((p.to_string(), t.shape().to_vec())));
    /// assert_eq!(shapes, vec![("weight".to_string(), vec![3, 2]), ("bias".to_string(), vec![3])]);
    /// ```
    fn visit_params<'a>(&'a self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a Tensor));
    /// [`Module::visit_params`] with mutable access, in the same order.
    ///
    /// ```
    /// use flux_core::nn::{Dense, Module, ParamPath};
    /// use flux_core::{DType, Tensor};
    /// let mut d = Dense::new(2, 3);
    /// d.visit_params_mut(&mut ParamPath::new(), &mut |_, t| *t = Tensor::zeros(t.shape(), DType::F32));
    /// assert_eq!(d.weight.to_vec_f64().unwrap(), vec![0.0; 6]);
    /// ```
    fn visit_params_mut<'a>(&'a mut self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a mut Tensor));

    /// Every parameter in visiting order, without their paths (no strings built).
    ///
    /// ```
    /// use flux_core::nn::{Chain, Dense, Module};
    /// let c = Chain::new(vec![Box::new(Dense::new(2, 3)), Box::new(Dense::new(3, 1).bias(false))]);
    /// let shapes: Vec<Vec<usize>> = c.params().iter().map(|p| p.shape().to_vec()).collect();
    /// assert_eq!(shapes, vec![vec![3, 2], vec![3], vec![1, 3]]);
    /// ```
    fn params(&self) -> Vec<&Tensor> {
        let mut out = Vec::new();
        self.visit_params(&mut ParamPath::new(), &mut |_, t| out.push(t));
        out
    }
    /// Every parameter, mutably, in visiting order (no strings built).
    ///
    /// ```
    /// use flux_core::nn::{Dense, Module};
    /// let mut d = Dense::new(2, 1);
    /// for p in d.params_mut() {
    ///     p.assign_(&p.zeros_like()).unwrap();
    /// }
    /// assert!(d.params().iter().all(|p| p.to_vec_f64().unwrap().iter().all(|&v| v == 0.0)));
    /// ```
    fn params_mut(&mut self) -> Vec<&mut Tensor> {
        let mut out = Vec::new();
        self.visit_params_mut(&mut ParamPath::new(), &mut |_, t| out.push(t));
        out
    }
    /// `(path, parameter)` pairs in visiting order, e.g. `("layers.0.weight", …)`: the
    /// paths are formatted here, so prefer [`Module::params`] in a training loop.
    ///
    /// ```
    /// use flux_core::nn::{Chain, Dense, Module};
    /// let c = Chain::new(vec![Box::new(Dense::new(2, 3)), Box::new(Dense::new(3, 1))]);
    /// let names: Vec<String> = c.parameters().into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]);
    /// ```
    fn parameters(&self) -> Vec<(String, &Tensor)> {
        let mut out = Vec::new();
        self.visit_params(&mut ParamPath::new(), &mut |p, t| out.push((p.to_string(), t)));
        out
    }
    /// [`Module::parameters`] with mutable access.
    ///
    /// ```
    /// use flux_core::nn::{Dense, Module};
    /// use flux_core::{DType, Tensor};
    /// let mut d = Dense::new(2, 1);
    /// for (name, p) in d.parameters_mut() {
    ///     if name == "bias" {
    ///         p.assign_(&Tensor::full(&[1], 0.5, DType::F32)).unwrap();
    ///     }
    /// }
    /// assert_eq!(d.bias.unwrap().to_vec_f64().unwrap(), vec![0.5]);
    /// ```
    fn parameters_mut(&mut self) -> Vec<(String, &mut Tensor)> {
        let mut out = Vec::new();
        self.visit_params_mut(&mut ParamPath::new(), &mut |p, t| out.push((p.to_string(), t)));
        out
    }
    /// Non-trainable state saved with the model, e.g. BatchNorm's
    /// `("μ", …)`, by path (cheap clones sharing storage). Default: none.
    ///
    /// ```
    /// use flux_core::nn::{norm::BatchNorm, Dense, Module};
    /// let names: Vec<String> = BatchNorm::new(3).buffers().into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["μ", "σ2"]); // Flux's and Python's names
    /// assert!(Dense::new(2, 2).buffers().is_empty());
    /// ```
    fn buffers(&self) -> Vec<(String, Tensor)> { Vec::new() }
    /// Overwrite the buffer at `path` (restoring a checkpoint); `Ok(false)` if there is
    /// no such buffer.
    ///
    /// ```
    /// use flux_core::{nn::{norm::BatchNorm, Module}, DType, Tensor};
    /// let bn = BatchNorm::new(2);
    /// assert!(bn.set_buffer("μ", &Tensor::full(&[2], 3.0, DType::F32)).unwrap());
    /// assert_eq!(bn.running_stats().unwrap().0.to_vec_f64().unwrap(), vec![3.0, 3.0]);
    /// assert!(!bn.set_buffer("no_such_buffer", &Tensor::zeros(&[2], DType::F32)).unwrap());
    /// ```
    fn set_buffer(&self, _path: &str, _value: &Tensor) -> Result<bool> { Ok(false) }
    /// Call `f` on every non-trainable tensor the module holds (its buffers: BatchNorm's
    /// running `μ` and `σ2`, …), mutably, with its path below `path`, in the order of
    /// [`Module::buffers`]; how [`to_device_`] moves a whole model. Default: none.
    /// Containers visit their members' buffers under the members' paths.
    ///
    /// ```
    /// use flux_core::nn::{norm::BatchNorm, Chain, Dense, Module, ParamPath};
    /// let mut c = Chain::new(vec![Box::new(Dense::new(2, 3)), Box::new(BatchNorm::new(3))]);
    /// let mut seen = vec![];
    /// c.visit_buffers_mut(&mut ParamPath::new(), &mut |p, t| seen.push((p.to_string(), t.shape().to_vec())));
    /// assert_eq!(seen, [("layers.1.μ".to_string(), vec![3]), ("layers.1.σ2".to_string(), vec![3])]);
    /// ```
    fn visit_buffers_mut(&mut self, _path: &mut ParamPath, _f: &mut dyn FnMut(&ParamPath, &mut Tensor)) {}
}

/// Layers applied in order.
///
/// ```
/// use flux_core::nn::{Chain, Dense, Module};
/// let c = Chain::new(vec![Box::new(Dense::new(4, 3)), Box::new(Dense::new(3, 2))]);
/// assert_eq!(c.parameters().len(), 4);
/// ```
pub struct Chain {
    /// The layers, applied first to last.
    pub layers: Vec<Box<dyn Module>>,
}

/// The constructor.
///
/// ```
/// use flux_core::nn::{Chain, Dense};
/// assert_eq!(Chain::new(vec![Box::new(Dense::new(1, 1))]).layers.len(), 1);
/// ```
impl Chain {
    /// A chain of `layers`.
    ///
    /// ```
    /// use flux_core::nn::{Activation, Chain, Dense, Module};
    /// use flux_core::{DType, Tensor};
    /// let mut first = Dense::new(2, 2).activation(Activation::Relu);
    /// first.weight = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, -1.0], &[2, 2]).unwrap();
    /// let c = Chain::new(vec![Box::new(first)]);
    /// // relu(W·x + 0), W = diag(1, −1)
    /// assert_eq!(c.forward(&Tensor::ones(&[1, 2], DType::F32)).unwrap().to_vec_f64().unwrap(), vec![1.0, 0.0]);
    /// ```
    pub fn new(layers: Vec<Box<dyn Module>>) -> Self { Chain { layers } }
}

/// The parameter and buffer methods of [`Module`] for a container of members in
/// `self.layers: Vec<Box<dyn Module>>` (Chain, Parallel, Maxout): member `i`'s under
/// `layers.<i>.`.
macro_rules! members_module {
    () => {
        fn visit_params<'a>(&'a self, path: &mut $crate::nn::ParamPath, f: &mut dyn FnMut(&$crate::nn::ParamPath, &'a $crate::Tensor)) {
            $crate::nn::visit_members(&self.layers, path, f)
        }
        fn visit_params_mut<'a>(&'a mut self, path: &mut $crate::nn::ParamPath, f: &mut dyn FnMut(&$crate::nn::ParamPath, &'a mut $crate::Tensor)) {
            $crate::nn::visit_members_mut(&mut self.layers, path, f)
        }
        fn buffers(&self) -> Vec<(String, $crate::Tensor)> { $crate::nn::members_buffers(&self.layers) }
        fn set_buffer(&self, path: &str, value: &$crate::Tensor) -> $crate::error::Result<bool> { $crate::nn::members_set_buffer(&self.layers, path, value) }
        fn visit_buffers_mut(&mut self, path: &mut $crate::nn::ParamPath, f: &mut dyn FnMut(&$crate::nn::ParamPath, &mut $crate::Tensor)) {
            $crate::nn::visit_members_buffers_mut(&mut self.layers, path, f)
        }
    };
}
pub(crate) use members_module;

impl Module for Chain {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = x.clone();
        for l in &self.layers {
            h = l.forward_t(&h, train)?;
        }
        Ok(h)
    }
    members_module!();
}

/// The buffers of `layers`, member `i`'s under `layers.<i>.` (how [`Chain`] and the
/// other containers report their members' buffers).
pub(crate) fn members_buffers(layers: &[Box<dyn Module>]) -> Vec<(String, Tensor)> {
    layers.iter().enumerate().flat_map(|(i, l)| l.buffers().into_iter().map(move |(p, t)| (format!("layers.{i}.{p}"), t))).collect()
}

/// Set the buffer `layers.<i>.<rest>` of member `i`; `Ok(false)` if there is none.
pub(crate) fn members_set_buffer(layers: &[Box<dyn Module>], path: &str, value: &Tensor) -> Result<bool> {
    let Some((i, rest)) = path.strip_prefix("layers.").and_then(|r| r.split_once('.')) else { return Ok(false) };
    match i.parse::<usize>().ok().and_then(|i| layers.get(i)) {
        Some(l) => l.set_buffer(rest, value),
        None => Ok(false),
    }
}

/// [`Module::visit_buffers_mut`] over `layers` with the path `layers.<i>` pushed for member `i`.
pub(crate) fn visit_members_buffers_mut(layers: &mut [Box<dyn Module>], path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &mut Tensor)) {
    path.within("layers", |p| layers.iter_mut().enumerate().for_each(|(i, l)| p.within(i, |p| l.visit_buffers_mut(p, f))))
}

/// Visit the parameters of `layers` with the path `layers.<i>` pushed for member `i`
/// (how [`Chain`] and the other containers report their members).
pub(crate) fn visit_members<'a>(layers: &'a [Box<dyn Module>], path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a Tensor)) {
    path.within("layers", |p| layers.iter().enumerate().for_each(|(i, l)| p.within(i, |p| l.visit_params(p, f))))
}

/// [`visit_members`] with mutable access.
pub(crate) fn visit_members_mut<'a>(layers: &'a mut [Box<dyn Module>], path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a mut Tensor)) {
    path.within("layers", |p| layers.iter_mut().enumerate().for_each(|(i, l)| p.within(i, |p| l.visit_params_mut(p, f))))
}

/// Move every tensor of `model` to `device` in place (Flux's `gpu`/`cpu` for a Rust
/// model): its parameters ([`Module::visit_params_mut`]) and its buffers, such as
/// BatchNorm's running statistics ([`Module::visit_buffers_mut`]). An optimiser state set
/// up afterwards (`optim::setup`) lives there too; a state set up before moves with
/// `State::to_device`.
///
/// To build a model on the GPU, build it on the CPU (seeded initialisers draw there:
/// `Rng::uniform_tensor` makes host tensors) and move it once; the weights are the same
/// numbers on either device, so a seed gives the same model on both.
///
/// ```
/// use flux_core::{nn::{norm::BatchNorm, to_device_, Chain, Dense, Module}, Device};
/// let mut m = Chain::new(vec![Box::new(Dense::new(2, 3)), Box::new(BatchNorm::new(3))]);
/// to_device_(&mut m, Device::Cpu).unwrap();
/// assert!(m.params().iter().all(|p| p.device() == Device::Cpu));
/// if let Ok(gpu) = Device::wgpu() {
///     to_device_(&mut m, gpu).unwrap();
///     // the running statistics move too, not only the parameters
///     let bufs = m.buffers();
///     assert!(m.params().into_iter().chain(bufs.iter().map(|(_, t)| t)).all(|t| t.device() == gpu));
/// }
/// ```
pub fn to_device_(model: &mut dyn Module, device: crate::tensor::Device) -> Result<()> {
    let mv = |t: &mut Tensor| -> Result<()> {
        if t.device() != device {
            *t = t.to_device(device)?.detach();
        }
        Ok(())
    };
    for p in model.params_mut() {
        mv(p)?;
    }
    // the visitor cannot return an error: keep the first one
    let mut res = Ok(());
    model.visit_buffers_mut(&mut ParamPath::new(), &mut |_, t| {
        if res.is_ok() {
            res = mv(t);
        }
    });
    res
}
