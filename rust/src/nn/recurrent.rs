//! Recurrent layers with Flux's gate order: the cells [`RNNCell`], [`LSTMCell`],
//! [`GRUCell`] (one time step) and the sequence layers [`RNN`], [`LSTM`], [`GRU`].
//!
//! Inputs are batch first: a sequence is (batch, time, features), or (time, features)
//! for one sequence; a cell step takes (batch, features) or (features,). A whole sequence
//! is one fused op ([`crate::ops::recurrent`]); a cell step is the same op with one step.
//! Parameters as in Flux and PyTorch: `Wi` (gates·out, in), `Wh` (gates·out, out), `bias`
//! (gates·out), visited as `Wi`, `Wh`, `bias` (prefixed `cell.` in a sequence layer).
//!
//! ```
//! use flux_core::nn::{Module, LSTM};
//! use flux_core::{autodiff, DType, Tensor};
//! let lstm = LSTM::new(3, 8);
//! let x = Tensor::ones(&[2, 5, 3], DType::F32);           // (batch, time, features)
//! let (ys, (h, c)) = lstm.forward_state(&x, None).unwrap();
//! assert_eq!((ys.shape(), h.shape(), c.shape()), (&[2, 5, 8][..], &[2, 8][..], &[2, 8][..]));
//! // a gradient flows to every parameter through the one fused node
//! let ps: Vec<&Tensor> = lstm.parameters().into_iter().map(|(_, p)| p).collect();
//! let (_, g) = autodiff::value_and_grad(&ps, || lstm.forward(&x)?.sum_all()).unwrap();
//! assert!(g.iter().all(|g| g.is_some()));
//! ```
use super::{init, Activation, Module, ParamPath};
use crate::error::{shape_err, Result};
use crate::ops::recurrent::{self as seq, Cell};
use crate::tensor::random::{with_global, Rng};
use crate::tensor::{DType, Tensor};

/// A recurrent state: `[h]` for the RNN and GRU, `[h, c]` for the LSTM.
pub type State = Vec<Tensor>;

/// The name of a layer in messages, e.g. `LSTM(2 => 3)` or `GRUCell(4 => 8)`.
fn label(cell: Cell, step: bool, wi: &Tensor, wh: &Tensor) -> String {
    let (i, h) = (wi.shape().get(1).copied().unwrap_or(0), wh.shape().get(1).copied().unwrap_or(0));
    format!("{}{}({i} => {h})", cell.name(), if step { "Cell" } else { "" })
}

fn check_features(cell: Cell, step: bool, x: &Tensor, wi: &Tensor, wh: &Tensor) -> Result<()> {
    let i = wi.shape().get(1).copied().unwrap_or(0);
    if x.ndim() == 0 || x.shape()[x.ndim() - 1] != i {
        return Err(shape_err!("{} expects input with last dimension {i}, got shape {:?}", label(cell, step, wi, wh), x.shape()));
    }
    Ok(())
}

fn state_arity(cell: Cell, state: &[Tensor]) -> Result<()> {
    let want = if cell == Cell::Lstm { 2 } else { 1 };
    if state.len() != want {
        return Err(shape_err!("{}: expected a state of {want} tensor(s), got {}", cell.name(), state.len()));
    }
    Ok(())
}

/// Run `cell` over a sequence `x` (batch, time, in) or (time, in): the states of every
/// step (batch, time, out) or (time, out), and the last state. `state` defaults to zeros;
/// a state of shape (out,) applies to every sequence of the batch. One fused op.
///
/// ```
/// use flux_core::nn::recurrent::sequence;
/// use flux_core::ops::recurrent::Cell;
/// use flux_core::{DType, Tensor};
/// let (wi, wh) = (Tensor::full(&[6, 2], 0.1, DType::F64), Tensor::zeros(&[6, 2], DType::F64));
/// let (ys, state) = sequence(Cell::Gru, &Tensor::ones(&[7, 2], DType::F64), &wi, &wh, None, None).unwrap();
/// assert_eq!((ys.shape(), state[0].shape()), (&[7, 2][..], &[2][..]));
/// ```
pub fn sequence(cell: Cell, x: &Tensor, wi: &Tensor, wh: &Tensor, b: Option<&Tensor>, state: Option<&[Tensor]>) -> Result<(Tensor, State)> {
    check_features(cell, false, x, wi, wh)?;
    if x.ndim() != 2 && x.ndim() != 3 {
        return Err(shape_err!("{} expects input (batch, time, features) or (time, features), got shape {:?}", label(cell, false, wi, wh), x.shape()));
    }
    if let Some(s) = state {
        state_arity(cell, s)?;
    }
    let unbatched = x.ndim() == 2;
    let x3 = if unbatched { x.reshape(&[1, x.shape()[0], x.shape()[1]])? } else { x.clone() };
    let (ys, st) = run(cell, &x3, wi, wh, b, state)?;
    if !unbatched {
        return Ok((ys, st));
    }
    let h = wh.shape()[1];
    let ys = ys.reshape(&[x.shape()[0], h])?;
    let st = st.iter().map(|s| s.reshape(&[h])).collect::<Result<State>>()?;
    Ok((ys, st))
}

/// One time step of `cell` for `x` (batch, in) or (in,): the new state (whose first
/// tensor, `h`, is also the step's output). `state` defaults to zeros.
///
/// ```
/// use flux_core::nn::recurrent::step;
/// use flux_core::ops::recurrent::Cell;
/// use flux_core::{DType, Tensor};
/// let (wi, wh) = (Tensor::full(&[8, 3], 0.1, DType::F32), Tensor::zeros(&[8, 2], DType::F32));
/// let s = step(Cell::Lstm, &Tensor::ones(&[5, 3], DType::F32), &wi, &wh, None, None).unwrap();
/// assert_eq!((s[0].shape(), s[1].shape()), (&[5, 2][..], &[5, 2][..]));
/// ```
pub fn step(cell: Cell, x: &Tensor, wi: &Tensor, wh: &Tensor, b: Option<&Tensor>, state: Option<&[Tensor]>) -> Result<State> {
    check_features(cell, true, x, wi, wh)?;
    if x.ndim() != 1 && x.ndim() != 2 {
        return Err(shape_err!("{} expects input (batch, features) or (features,), got shape {:?}", label(cell, true, wi, wh), x.shape()));
    }
    if let Some(s) = state {
        state_arity(cell, s)?;
    }
    let (bs, i) = if x.ndim() == 1 { (1, x.shape()[0]) } else { (x.shape()[0], x.shape()[1]) };
    let (_, st) = run(cell, &x.reshape(&[bs, 1, i])?, wi, wh, b, state)?;
    if x.ndim() == 2 {
        return Ok(st);
    }
    let h = wh.shape()[1];
    st.iter().map(|s| s.reshape(&[h])).collect()
}

fn run(cell: Cell, x: &Tensor, wi: &Tensor, wh: &Tensor, b: Option<&Tensor>, state: Option<&[Tensor]>) -> Result<(Tensor, State)> {
    let x = x.cast_cow(wi.dtype())?;
    Ok(match cell {
        Cell::Lstm => {
            let st = state.map(|s| (&s[0], &s[1]));
            let (ys, (h, c)) = seq::lstm(&x, wi, wh, b, st)?;
            (ys, vec![h, c])
        }
        Cell::Gru => {
            let (ys, h) = seq::gru(&x, wi, wh, b, state.map(|s| &s[0]))?;
            (ys, vec![h])
        }
        Cell::Rnn(act) => {
            let (ys, h) = seq::rnn(&x, wi, wh, b, state.map(|s| &s[0]), act)?;
            (ys, vec![h])
        }
    })
}

/// Glorot-uniform `Wi` and `Wh` for `gates` blocks of `out` units, from `rng`.
fn draw(gates: usize, inp: usize, out: usize, dtype: DType, rng: &mut Rng) -> (Tensor, Tensor) {
    (init::glorot_uniform(&[gates * out, inp], 1.0, dtype, rng), init::glorot_uniform(&[gates * out, out], 1.0, dtype, rng))
}

macro_rules! cell_layer {
    ($(#[$doc:meta])* $name:ident, $gates:expr $(, $(#[$fdoc:meta])* $field:ident: $fty:ty = $default:expr)*) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name {
            /// Input kernel (gates·out, in).
            pub wi: Tensor,
            /// Recurrent kernel (gates·out, out).
            pub wh: Tensor,
            /// Bias (gates·out), or none.
            pub bias: Option<Tensor>,
            $($(#[$fdoc])* pub $field: $fty,)*
        }

        #[doc = concat!("Construction and configuration.\n\n```\n",
            "use flux_core::nn::", stringify!($name), ";\n",
            "let cell = ", stringify!($name), "::new(3, 5).bias(false);\n",
            "assert_eq!((cell.in_features(), cell.out_features(), cell.bias.is_none()), (3, 5, true));\n```")]
        impl $name {
            /// Gate blocks per unit.
            pub const GATES: usize = $gates;

            #[doc = concat!("`in → out` with float32 Glorot-uniform kernels drawn from the global\n",
                "generator (`flux_core::tensor::random::seed`) and a zero bias.\n\n```\n",
                "use flux_core::nn::", stringify!($name), ";\n",
                "let cell = ", stringify!($name), "::new(3, 5);\n",
                "let g = ", stringify!($name), "::GATES;\n",
                "assert_eq!((cell.wi.shape(), cell.wh.shape()), (&[g * 5, 3][..], &[g * 5, 5][..]));\n",
                "assert_eq!(cell.bias.unwrap().to_vec_f64().unwrap(), vec![0.0; g * 5]);\n```")]
            pub fn new(inp: usize, out: usize) -> Self {
                let (wi, wh) = with_global(|r| draw($gates, inp, out, DType::F32, r));
                $name { wi, wh, bias: Some(Tensor::zeros(&[$gates * out], DType::F32)), $($field: $default,)* }
            }
            #[doc = concat!("Redraw the kernels (Glorot uniform) from `rng`, keeping the dtype.\n\n```\n",
                "use flux_core::{nn::", stringify!($name), ", tensor::random::Rng, DType};\n",
                "let a = ", stringify!($name), "::new(2, 3).init(&mut Rng::seed(1));\n",
                "let b = ", stringify!($name), "::new(2, 3).init(&mut Rng::seed(1));\n",
                "assert_eq!(a.wh.to_vec::<f32>().unwrap(), b.wh.to_vec::<f32>().unwrap()); // the same draw\n",
                "assert_eq!(", stringify!($name), "::new(2, 3).dtype(DType::F64).init(&mut Rng::seed(1)).wi.dtype(), DType::F64);\n```")]
            pub fn init(mut self, rng: &mut Rng) -> Self {
                let (o, i) = (self.wh.shape()[1], self.wi.shape()[1]);
                (self.wi, self.wh) = draw($gates, i, o, self.wi.dtype(), rng);
                self
            }
            #[doc = concat!("The parameters converted to `dtype`.\n\n```\n",
                "use flux_core::{nn::", stringify!($name), ", DType};\n",
                "let cell = ", stringify!($name), "::new(2, 3).dtype(DType::F64);\n",
                "assert_eq!((cell.wi.dtype(), cell.wh.dtype(), cell.bias.unwrap().dtype()), (DType::F64, DType::F64, DType::F64));\n```")]
            pub fn dtype(mut self, dtype: DType) -> Self {
                let c = |t: &Tensor| t.cast(dtype).expect("a cast between float dtypes cannot fail");
                self.wi = c(&self.wi);
                self.wh = c(&self.wh);
                self.bias = self.bias.as_ref().map(c);
                self
            }
            #[doc = concat!("With a (zero) bias or without one.\n\n```\n",
                "use flux_core::nn::", stringify!($name), ";\n",
                "assert!(", stringify!($name), "::new(2, 3).bias(false).bias.is_none());\n",
                "assert_eq!(", stringify!($name), "::new(2, 3).bias(false).bias(true).bias.unwrap().shape(), &[", stringify!($name), "::GATES * 3]);\n```")]
            pub fn bias(mut self, on: bool) -> Self {
                self.bias = on.then(|| Tensor::zeros(&[self.wh.shape()[0]], self.wi.dtype()));
                self
            }
            #[doc = concat!("Input features.\n\n```\n",
                "assert_eq!(flux_core::nn::", stringify!($name), "::new(2, 3).in_features(), 2);\n```")]
            pub fn in_features(&self) -> usize { self.wi.shape()[1] }
            #[doc = concat!("Hidden units.\n\n```\n",
                "assert_eq!(flux_core::nn::", stringify!($name), "::new(2, 3).out_features(), 3);\n```")]
            pub fn out_features(&self) -> usize { self.wh.shape()[1] }
        }
    };
}

cell_layer!(
    /// One step of an Elman RNN, `h′ = σ(Wi·x + Wh·h + b)`; σ is tanh unless set with
    /// [`RNNCell::activation`].
    ///
    /// ```
    /// use flux_core::nn::{Activation, RNNCell};
    /// use flux_core::{DType, Tensor};
    /// let cell = RNNCell::new(3, 5).activation(Activation::Relu);
    /// let h = cell.step(&Tensor::ones(&[2, 3], DType::F32), None).unwrap();
    /// assert_eq!(h.shape(), &[2, 5]);
    /// ```
    RNNCell, 1,
    /// The activation σ.
    act: Activation = Activation::Tanh
);
cell_layer!(
    /// One LSTM step with gate blocks in Flux's order: input, forget, cell, output.
    ///
    /// ```
    /// use flux_core::nn::LSTMCell;
    /// use flux_core::{DType, Tensor};
    /// let cell = LSTMCell::new(3, 4);
    /// let (h, c) = cell.step(&Tensor::ones(&[2, 3], DType::F32), None).unwrap();
    /// let (h2, _) = cell.step(&Tensor::ones(&[2, 3], DType::F32), Some((&h, &c))).unwrap();
    /// assert_eq!(h2.shape(), &[2, 4]);
    /// ```
    LSTMCell, 4
);
cell_layer!(
    /// One GRU step (Flux's v1 variant), gate blocks reset, update, candidate:
    /// `h̃ = tanh(Wxh·x + r ⊙ (Whh·h) + bh)`, `h′ = (1 − z)·h̃ + z·h`.
    ///
    /// ```
    /// use flux_core::nn::GRUCell;
    /// use flux_core::{DType, Tensor};
    /// let h = GRUCell::new(3, 4).step(&Tensor::ones(&[3], DType::F32), None).unwrap();
    /// assert_eq!(h.shape(), &[4]);
    /// ```
    GRUCell, 3
);

/// The activation, and a step.
///
/// ```
/// use flux_core::nn::{Activation, RNNCell};
/// assert_eq!(RNNCell::new(2, 3).activation(Activation::Relu).act, Activation::Relu);
/// ```
impl RNNCell {
    /// With activation `act` instead of tanh.
    ///
    /// ```
    /// use flux_core::nn::{Activation, RNNCell};
    /// use flux_core::{DType, Tensor};
    /// let cell = RNNCell::new(2, 3).activation(Activation::Relu);
    /// let h = cell.step(&Tensor::full(&[4, 2], -5.0, DType::F32), None).unwrap();
    /// assert!(h.to_vec_f64().unwrap().iter().all(|&v| v >= 0.0));
    /// ```
    pub fn activation(mut self, act: Activation) -> Self {
        self.act = act;
        self
    }
    /// One step from `h` (zeros when `None`): the new state, which is also the output.
    ///
    /// ```
    /// use flux_core::nn::RNNCell;
    /// use flux_core::{DType, Tensor};
    /// let mut cell = RNNCell::new(2, 3);
    /// cell.wh = Tensor::zeros(&[3, 3], DType::F32); // no recurrence: h′ = tanh(Wi·x)
    /// let x = Tensor::ones(&[2], DType::F32);
    /// let h = cell.step(&x, None).unwrap();
    /// let want = cell.wi.matmul(&x).unwrap().tanh().unwrap();
    /// let err = h.sub(&want).unwrap().abs().unwrap().max(None, false).unwrap().item().unwrap();
    /// assert!(err < 1e-6);
    /// assert!(cell.step(&Tensor::ones(&[3], DType::F32), None).is_err()); // 3 features, not 2
    /// ```
    pub fn step(&self, x: &Tensor, h: Option<&Tensor>) -> Result<Tensor> {
        let st = h.map(|h| vec![h.clone()]);
        Ok(step(Cell::Rnn(self.act), x, &self.wi, &self.wh, self.bias.as_ref(), st.as_deref())?.remove(0))
    }
}

/// A step.
///
/// ```
/// use flux_core::nn::LSTMCell;
/// use flux_core::{DType, Tensor};
/// let (h, c) = LSTMCell::new(2, 3).step(&Tensor::ones(&[2], DType::F32), None).unwrap();
/// assert_eq!((h.shape(), c.shape()), (&[3][..], &[3][..]));
/// ```
impl LSTMCell {
    /// One step from `(h, c)` (zeros when `None`): the new `(h, c)`; `h` is the output.
    ///
    /// ```
    /// use flux_core::nn::LSTMCell;
    /// use flux_core::{DType, Tensor};
    /// let cell = LSTMCell::new(2, 3);
    /// let x = Tensor::ones(&[4, 2], DType::F32);
    /// let (h, c) = cell.step(&x, None).unwrap();
    /// let (h2, c2) = cell.step(&x, Some((&h, &c))).unwrap();
    /// assert_eq!((h2.shape(), c2.shape()), (&[4, 3][..], &[4, 3][..]));
    /// // |h| = |o · tanh(c)| < 1
    /// assert!(h2.to_vec_f64().unwrap().iter().all(|v| v.abs() < 1.0));
    /// ```
    pub fn step(&self, x: &Tensor, state: Option<(&Tensor, &Tensor)>) -> Result<(Tensor, Tensor)> {
        let st = state.map(|(h, c)| vec![h.clone(), c.clone()]);
        let mut s = step(Cell::Lstm, x, &self.wi, &self.wh, self.bias.as_ref(), st.as_deref())?;
        let c = s.pop().expect("two states");
        Ok((s.pop().expect("two states"), c))
    }
}

/// A step.
///
/// ```
/// use flux_core::nn::GRUCell;
/// use flux_core::{DType, Tensor};
/// assert_eq!(GRUCell::new(2, 3).step(&Tensor::ones(&[5, 2], DType::F32), None).unwrap().shape(), &[5, 3]);
/// ```
impl GRUCell {
    /// One step from `h` (zeros when `None`): the new state, which is also the output.
    ///
    /// ```
    /// use flux_core::nn::GRUCell;
    /// use flux_core::{DType, Tensor};
    /// let mut cell = GRUCell::new(2, 3);
    /// cell.wi = Tensor::zeros(&[9, 2], DType::F32); // no input, no recurrence: z = 1/2, h̃ = 0
    /// cell.wh = Tensor::zeros(&[9, 3], DType::F32);
    /// let h = Tensor::ones(&[3], DType::F32);
    /// let h2 = cell.step(&Tensor::ones(&[2], DType::F32), Some(&h)).unwrap();
    /// assert_eq!(h2.to_vec_f64().unwrap(), vec![0.5; 3]); // (1 − z)·h̃ + z·h
    /// ```
    pub fn step(&self, x: &Tensor, h: Option<&Tensor>) -> Result<Tensor> {
        let st = h.map(|h| vec![h.clone()]);
        Ok(step(Cell::Gru, x, &self.wi, &self.wh, self.bias.as_ref(), st.as_deref())?.remove(0))
    }
}

/// A cell's kernels and bias as Flux names them (`Wi`, `Wh`, `bias`).
fn visit_cell<'a>(wi: &'a Tensor, wh: &'a Tensor, b: &'a Option<Tensor>, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a Tensor)) {
    path.visit("Wi", wi, f);
    path.visit("Wh", wh, f);
    if let Some(b) = b {
        path.visit("bias", b, f);
    }
}

fn visit_cell_mut<'a>(wi: &'a mut Tensor, wh: &'a mut Tensor, b: &'a mut Option<Tensor>, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a mut Tensor)) {
    path.visit_mut("Wi", wi, f);
    path.visit_mut("Wh", wh, f);
    if let Some(b) = b {
        path.visit_mut("bias", b, f);
    }
}

macro_rules! cell_visits {
    () => {
        fn visit_params<'a>(&'a self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a Tensor)) { visit_cell(&self.wi, &self.wh, &self.bias, path, f) }
        fn visit_params_mut<'a>(&'a mut self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a mut Tensor)) {
            visit_cell_mut(&mut self.wi, &mut self.wh, &mut self.bias, path, f)
        }
    };
}

impl Module for RNNCell {
    /// One step from a zero state.
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> { self.step(x, None) }
    cell_visits!();
}

impl Module for LSTMCell {
    /// One step from a zero state: the new `h`.
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> { Ok(self.step(x, None)?.0) }
    cell_visits!();
}

impl Module for GRUCell {
    /// One step from a zero state.
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> { self.step(x, None) }
    cell_visits!();
}

macro_rules! sequence_layer {
    ($(#[$doc:meta])* $name:ident, $cell:ident, $state:ty) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name {
            /// The cell run at every step (its parameters are the layer's).
            pub cell: $cell,
        }

        #[doc = concat!("Construction and configuration, passed on to the cell.\n\n```\n",
            "use flux_core::{nn::", stringify!($name), ", DType};\n",
            "let l = ", stringify!($name), "::new(3, 5).bias(false).dtype(DType::F64);\n",
            "assert_eq!((l.cell.bias.is_none(), l.cell.wi.dtype()), (true, DType::F64));\n```")]
        impl $name {
            #[doc = concat!("`in → out` with the cell's defaults (see [`", stringify!($cell), "`]).\n\n```\n",
                "use flux_core::nn::", stringify!($name), ";\n",
                "let l = ", stringify!($name), "::new(3, 5);\n",
                "assert_eq!((l.cell.in_features(), l.cell.out_features()), (3, 5));\n```")]
            pub fn new(inp: usize, out: usize) -> Self { $name { cell: $cell::new(inp, out) } }
            #[doc = concat!("Redraw the kernels (Glorot uniform) from `rng`, keeping the dtype.\n\n```\n",
                "use flux_core::{nn::", stringify!($name), ", tensor::random::Rng};\n",
                "let a = ", stringify!($name), "::new(2, 3).init(&mut Rng::seed(5));\n",
                "let b = ", stringify!($name), "::new(2, 3).init(&mut Rng::seed(5));\n",
                "assert_eq!(a.cell.wi.to_vec::<f32>().unwrap(), b.cell.wi.to_vec::<f32>().unwrap());\n```")]
            pub fn init(self, rng: &mut Rng) -> Self { $name { cell: self.cell.init(rng) } }
            #[doc = concat!("The parameters converted to `dtype`.\n\n```\n",
                "use flux_core::{nn::", stringify!($name), ", DType};\n",
                "assert_eq!(", stringify!($name), "::new(2, 3).dtype(DType::F64).cell.wh.dtype(), DType::F64);\n```")]
            pub fn dtype(self, dtype: DType) -> Self { $name { cell: self.cell.dtype(dtype) } }
            #[doc = concat!("With a (zero) bias or without one.\n\n```\n",
                "use flux_core::nn::", stringify!($name), ";\n",
                "assert!(", stringify!($name), "::new(2, 3).bias(false).cell.bias.is_none());\n```")]
            pub fn bias(self, on: bool) -> Self { $name { cell: self.cell.bias(on) } }
        }

        impl Module for $name {
            /// The states of every step: (batch, time, out) or (time, out).
            fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> { Ok(self.forward_state(x, None)?.0) }
            fn visit_params<'a>(&'a self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a Tensor)) {
                path.within("cell", |p| self.cell.visit_params(p, f))
            }
            fn visit_params_mut<'a>(&'a mut self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a mut Tensor)) {
                path.within("cell", |p| self.cell.visit_params_mut(p, f))
            }
        }
    };
}

sequence_layer!(
    /// An Elman RNN over a sequence.
    ///
    /// ```
    /// use flux_core::nn::{Module, RNN};
    /// use flux_core::{DType, Tensor};
    /// assert_eq!(RNN::new(3, 5).forward(&Tensor::ones(&[2, 7, 3], DType::F32)).unwrap().shape(), &[2, 7, 5]);
    /// ```
    RNN, RNNCell, Tensor
);
sequence_layer!(
    /// An LSTM over a sequence (Flux's gate order); the state is `(h, c)`.
    ///
    /// ```
    /// use flux_core::nn::{Module, LSTM};
    /// use flux_core::{DType, Tensor};
    /// let lstm = LSTM::new(3, 4).dtype(DType::F64);
    /// let (ys, (h, c)) = lstm.forward_state(&Tensor::ones(&[5, 3], DType::F64), None).unwrap();
    /// assert_eq!((ys.shape(), h.shape(), c.shape()), (&[5, 4][..], &[4][..], &[4][..]));
    /// ```
    LSTM, LSTMCell, (Tensor, Tensor)
);
sequence_layer!(
    /// A GRU over a sequence (Flux's v1 variant).
    ///
    /// ```
    /// use flux_core::nn::{Module, GRU};
    /// use flux_core::{DType, Tensor};
    /// assert_eq!(GRU::new(3, 4).forward(&Tensor::ones(&[6, 3], DType::F32)).unwrap().shape(), &[6, 4]);
    /// ```
    GRU, GRUCell, Tensor
);

/// The activation, and a run that returns the last state too.
///
/// ```
/// use flux_core::nn::{Activation, RNN};
/// assert_eq!(RNN::new(2, 3).activation(Activation::Relu).cell.act, Activation::Relu);
/// ```
impl RNN {
    /// With activation `act` instead of tanh.
    ///
    /// ```
    /// use flux_core::nn::{Activation, Module, RNN};
    /// use flux_core::{DType, Tensor};
    /// let rnn = RNN::new(2, 3).activation(Activation::Relu);
    /// let ys = rnn.forward(&Tensor::full(&[4, 2], -1.0, DType::F32)).unwrap();
    /// assert!(ys.to_vec_f64().unwrap().iter().all(|&v| v >= 0.0));
    /// ```
    pub fn activation(self, act: Activation) -> Self { RNN { cell: self.cell.activation(act) } }
    /// The states of every step and the last one, starting from `h` (zeros when `None`).
    ///
    /// ```
    /// use flux_core::nn::RNN;
    /// use flux_core::{tensor::movement::SliceDim, DType, Tensor};
    /// let rnn = RNN::new(2, 3);
    /// let (ys, h) = rnn.forward_state(&Tensor::ones(&[5, 2], DType::F32), None).unwrap();
    /// // the last state is the last step's output
    /// let last = ys.slice(&[SliceDim { start: 4, len: 1, step: 1 }, SliceDim { start: 0, len: 3, step: 1 }]).unwrap();
    /// assert_eq!(last.to_vec_f64().unwrap(), h.to_vec_f64().unwrap());
    /// ```
    pub fn forward_state(&self, x: &Tensor, h: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let c = &self.cell;
        let st = h.map(|h| vec![h.clone()]);
        let (ys, mut s) = sequence(Cell::Rnn(c.act), x, &c.wi, &c.wh, c.bias.as_ref(), st.as_deref())?;
        Ok((ys, s.remove(0)))
    }
}

/// A run that returns the last `(h, c)` too.
///
/// ```
/// use flux_core::nn::LSTM;
/// use flux_core::{DType, Tensor};
/// let (_, (h, c)) = LSTM::new(2, 3).forward_state(&Tensor::ones(&[1, 4, 2], DType::F32), None).unwrap();
/// assert_eq!((h.shape(), c.shape()), (&[1, 3][..], &[1, 3][..]));
/// ```
impl LSTM {
    /// The states `h` of every step and the last `(h, c)`, starting from `state` (zeros
    /// when `None`).
    ///
    /// ```
    /// use flux_core::nn::LSTM;
    /// use flux_core::{DType, Tensor};
    /// let lstm = LSTM::new(2, 3);
    /// let x = Tensor::ones(&[2, 6, 2], DType::F32);
    /// // six steps at once equal three, then three more from the state reached
    /// let (_, (h, c)) = lstm.forward_state(&x, None).unwrap();
    /// let half = Tensor::ones(&[2, 3, 2], DType::F32);
    /// let (_, (h1, c1)) = lstm.forward_state(&half, None).unwrap();
    /// let (_, (h2, _)) = lstm.forward_state(&half, Some((&h1, &c1))).unwrap();
    /// let close = h.sub(&h2).unwrap().abs().unwrap().max(None, false).unwrap().item().unwrap();
    /// assert!(close < 1e-6 && c.shape() == &[2, 3]);
    /// ```
    pub fn forward_state(&self, x: &Tensor, state: Option<(&Tensor, &Tensor)>) -> Result<(Tensor, (Tensor, Tensor))> {
        let c = &self.cell;
        let st = state.map(|(h, c)| vec![h.clone(), c.clone()]);
        let (ys, mut s) = sequence(Cell::Lstm, x, &c.wi, &c.wh, c.bias.as_ref(), st.as_deref())?;
        let cl = s.pop().expect("two states");
        Ok((ys, (s.pop().expect("two states"), cl)))
    }
}

/// A run that returns the last state too.
///
/// ```
/// use flux_core::nn::GRU;
/// use flux_core::{DType, Tensor};
/// let (ys, h) = GRU::new(2, 3).forward_state(&Tensor::ones(&[4, 2], DType::F32), None).unwrap();
/// assert_eq!((ys.shape(), h.shape()), (&[4, 3][..], &[3][..]));
/// ```
impl GRU {
    /// The states of every step and the last one, starting from `h` (zeros when `None`).
    ///
    /// ```
    /// use flux_core::nn::GRU;
    /// use flux_core::{DType, Tensor};
    /// let gru = GRU::new(2, 3);
    /// let h0 = Tensor::full(&[3], 0.5, DType::F32);
    /// let (_, from_zero) = gru.forward_state(&Tensor::ones(&[2, 2], DType::F32), None).unwrap();
    /// let (_, from_h0) = gru.forward_state(&Tensor::ones(&[2, 2], DType::F32), Some(&h0)).unwrap();
    /// assert_ne!(from_zero.to_vec_f64().unwrap(), from_h0.to_vec_f64().unwrap());
    /// ```
    pub fn forward_state(&self, x: &Tensor, h: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let c = &self.cell;
        let st = h.map(|h| vec![h.clone()]);
        let (ys, mut s) = sequence(Cell::Gru, x, &c.wi, &c.wh, c.bias.as_ref(), st.as_deref())?;
        Ok((ys, s.remove(0)))
    }
}
