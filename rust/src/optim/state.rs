//! Per-parameter optimiser state: arrays, scalars and nested tuples, mirroring the
//! NamedTuples of Optimisers.jl (`(m, v, βt)` for Adam).
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The state of one parameter under one rule.
///
/// ```
/// use flux_core::optim::{Adam, Rule, State};
/// let x = flux_core::Tensor::zeros(&[2], flux_core::DType::F64);
/// assert!(matches!(Adam::default().init(&x).unwrap(), State::Tuple(_)));
/// ```
#[derive(Clone, Debug)]
pub enum State {
    /// `nothing` (Descent, WeightDecay, …)
    Empty,
    /// An array shaped like the parameter (a moment estimate, say).
    Tensor(Tensor),
    /// A number stored in f64 but holding a value of the parameter's precision
    /// (e.g. βt accumulated in f32 for f32 parameters).
    Scalar(f64),
    /// A counter.
    Int(i64),
    /// Several states together.
    Tuple(Vec<State>),
}

fn bad(what: &str, got: &State) -> Error { Error::Value(format!("optimiser state: expected {what}, got {}", got.describe())) }

impl State {
    /// What this state is, in the words a Python user sees (`None`, `array of shape
    /// (2, 3)`, `(array of shape (2,), a number)`), for error messages.
    pub fn describe(&self) -> String {
        match self {
            State::Empty => "None".into(),
            State::Tensor(t) => {
                let dims: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
                let comma = if dims.len() == 1 { "," } else { "" };
                format!("an array of shape ({}{comma})", dims.join(", "))
            }
            State::Scalar(_) => "a number".into(),
            State::Int(_) => "an integer".into(),
            State::Tuple(v) => format!("({})", v.iter().map(|s| s.describe()).collect::<Vec<_>>().join(", ")),
        }
    }
    /// Do the two states have the same form: the same nesting, kinds and array shapes?
    /// (A number and an integer count as alike: both come back from Python as numbers.)
    pub fn same_form(&self, other: &State) -> bool {
        match (self, other) {
            (State::Empty, State::Empty) => true,
            (State::Tensor(a), State::Tensor(b)) => a.shape() == b.shape(),
            (State::Scalar(_) | State::Int(_), State::Scalar(_) | State::Int(_)) => true,
            (State::Tuple(a), State::Tuple(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_form(y)),
            _ => false,
        }
    }
    /// Two numbers as a tuple state (βt, say).
    pub fn pair(a: f64, b: f64) -> State { State::Tuple(vec![State::Scalar(a), State::Scalar(b)]) }
    /// The parts of a tuple state.
    pub fn tuple_mut(&mut self) -> Result<&mut [State]> {
        match self {
            State::Tuple(v) => Ok(v),
            other => Err(bad("a tuple", other)),
        }
    }
    /// The N parts of a tuple state, or an error naming what `rule` expected.
    pub fn parts<const N: usize>(&mut self, rule: &str) -> Result<&mut [State; N]> {
        if !matches!(self, State::Tuple(v) if v.len() == N) {
            return Err(Error::Value(format!("optimiser state of {rule}: expected a tuple of {N}, got {}", self.describe())));
        }
        match self {
            State::Tuple(v) => Ok(<&mut [State; N]>::try_from(v.as_mut_slice()).expect("length checked")),
            _ => unreachable!(),
        }
    }
    /// The array of an array state, mutably.
    pub fn tensor_mut(&mut self) -> Result<&mut Tensor> {
        match self {
            State::Tensor(t) => Ok(t),
            other => Err(bad("an array", other)),
        }
    }
    /// The array of an array state.
    pub fn tensor(&self) -> Result<&Tensor> {
        match self {
            State::Tensor(t) => Ok(t),
            other => Err(bad("an array", other)),
        }
    }
    /// The number of a number (or integer) state.
    pub fn scalar(&self) -> Result<f64> {
        match self {
            State::Scalar(v) => Ok(*v),
            State::Int(i) => Ok(*i as f64),
            other => Err(bad("a number", other)),
        }
    }
    /// The integer of an integer state.
    pub fn int(&self) -> Result<i64> {
        match self {
            State::Int(i) => Ok(*i),
            other => Err(bad("an integer", other)),
        }
    }
    /// `(a, b)` from a two-number tuple.
    pub fn get_pair(&self) -> Result<(f64, f64)> {
        match self {
            State::Tuple(v) if v.len() == 2 => Ok((v[0].scalar()?, v[1].scalar()?)),
            other => Err(bad("a pair of numbers", other)),
        }
    }
    /// The same state with every array on `device` (numbers stay as they are).
    ///
    /// ```
    /// use flux_core::optim::{Adam, Rule};
    /// use flux_core::{Device, Tensor};
    /// let s = Adam::default().init(&Tensor::zeros(&[2], flux_core::DType::F32)).unwrap();
    /// assert!(s.to_device(Device::Cpu).unwrap().same_form(&s));
    /// ```
    pub fn to_device(&self, device: crate::tensor::Device) -> Result<State> {
        Ok(match self {
            State::Tensor(t) => State::Tensor(t.to_device(device)?.detach()),
            State::Tuple(v) => State::Tuple(v.iter().map(|s| s.to_device(device)).collect::<Result<_>>()?),
            s => s.clone(),
        })
    }
    /// A deep copy whose arrays no longer share storage with this one's.
    pub fn deep_clone(&self) -> State {
        match self {
            State::Tensor(t) => State::Tensor(t.contiguous().detach_copy()),
            State::Tuple(v) => State::Tuple(v.iter().map(State::deep_clone).collect()),
            s => s.clone(),
        }
    }
}

impl Tensor {
    /// A copy with its own buffer.
    pub fn detach_copy(&self) -> Tensor {
        let mut t = self.detach();
        let _ = crate::dispatch!(t.dtype(), T => t.data_mut::<T>().map(|_| ()));
        t
    }
}
