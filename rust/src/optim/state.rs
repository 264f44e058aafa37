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

/// Descriptions, shape checks and typed access to the parts.
///
/// ```
/// use flux_core::optim::State;
/// let mut s = State::pair(0.9, 0.999);
/// assert_eq!(s.get_pair().unwrap(), (0.9, 0.999));
/// assert!(s.tensor_mut().is_err());
/// ```
impl State {
    /// What this state is, in the words a Python user sees (`None`, `array of shape
    /// (2, 3)`, `(array of shape (2,), a number)`), for error messages.
    ///
    /// ```
    /// use flux_core::{optim::State, DType, Tensor};
    /// let s = State::Tuple(vec![State::Tensor(Tensor::zeros(&[2, 3], DType::F32)), State::Scalar(0.9), State::Empty]);
    /// assert_eq!(s.describe(), "(an array of shape (2, 3), a number, None)");
    /// assert_eq!(State::Tensor(Tensor::zeros(&[4], DType::F32)).describe(), "an array of shape (4,)");
    /// ```
    pub fn describe(&self) -> String {
        match self {
            State::Empty => "None".into(),
            State::Tensor(t) => format!("an array of shape {}", crate::error::py_shape(t.shape())),
            State::Scalar(_) => "a number".into(),
            State::Int(_) => "an integer".into(),
            State::Tuple(v) => format!("({})", v.iter().map(|s| s.describe()).collect::<Vec<_>>().join(", ")),
        }
    }
    /// Do the two states have the same form: the same nesting, kinds and array shapes?
    /// (A number and an integer count as alike: both come back from Python as numbers.)
    ///
    /// ```
    /// use flux_core::{optim::State, DType, Tensor};
    /// let a = State::Tuple(vec![State::Tensor(Tensor::zeros(&[2], DType::F32)), State::Int(3)]);
    /// let b = State::Tuple(vec![State::Tensor(Tensor::ones(&[2], DType::F64)), State::Scalar(3.5)]);
    /// let c = State::Tuple(vec![State::Tensor(Tensor::ones(&[3], DType::F32)), State::Int(3)]);
    /// assert!(a.same_form(&b) && !a.same_form(&c));
    /// ```
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
    ///
    /// ```
    /// use flux_core::optim::State;
    /// assert!(matches!(State::pair(0.9, 0.99), State::Tuple(v) if v.len() == 2));
    /// ```
    pub fn pair(a: f64, b: f64) -> State { State::Tuple(vec![State::Scalar(a), State::Scalar(b)]) }
    /// The parts of a tuple state.
    ///
    /// ```
    /// use flux_core::optim::State;
    /// let mut s = State::pair(1.0, 2.0);
    /// s.tuple_mut().unwrap()[0] = State::Scalar(5.0);
    /// assert_eq!(s.get_pair().unwrap(), (5.0, 2.0));
    /// assert!(State::Empty.tuple_mut().is_err());
    /// ```
    pub fn tuple_mut(&mut self) -> Result<&mut [State]> {
        match self {
            State::Tuple(v) => Ok(v),
            other => Err(bad("a tuple", other)),
        }
    }
    /// The N parts of a tuple state, or an error naming what `rule` expected.
    ///
    /// ```
    /// use flux_core::optim::State;
    /// let mut s = State::Tuple(vec![State::Int(1), State::Scalar(2.0)]);
    /// let [a, b] = s.parts::<2>("MyRule").unwrap();
    /// assert_eq!((a.int().unwrap(), b.scalar().unwrap()), (1, 2.0));
    /// assert!(s.parts::<3>("MyRule").unwrap_err().to_string().contains("MyRule"));
    /// ```
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
    ///
    /// ```
    /// use flux_core::{optim::State, DType, Tensor};
    /// let mut s = State::Tensor(Tensor::zeros(&[2], DType::F32));
    /// s.tensor_mut().unwrap().assign_(&Tensor::ones(&[2], DType::F32)).unwrap();
    /// assert_eq!(s.tensor().unwrap().to_vec_f64().unwrap(), vec![1.0, 1.0]);
    /// ```
    pub fn tensor_mut(&mut self) -> Result<&mut Tensor> {
        match self {
            State::Tensor(t) => Ok(t),
            other => Err(bad("an array", other)),
        }
    }
    /// The array of an array state.
    ///
    /// ```
    /// use flux_core::{optim::State, DType, Tensor};
    /// assert_eq!(State::Tensor(Tensor::zeros(&[2], DType::F32)).tensor().unwrap().shape(), &[2]);
    /// assert!(State::Scalar(1.0).tensor().is_err());
    /// ```
    pub fn tensor(&self) -> Result<&Tensor> {
        match self {
            State::Tensor(t) => Ok(t),
            other => Err(bad("an array", other)),
        }
    }
    /// The number of a number (or integer) state.
    ///
    /// ```
    /// use flux_core::optim::State;
    /// assert_eq!(State::Scalar(0.5).scalar().unwrap(), 0.5);
    /// assert_eq!(State::Int(2).scalar().unwrap(), 2.0);
    /// assert!(State::Empty.scalar().is_err());
    /// ```
    pub fn scalar(&self) -> Result<f64> {
        match self {
            State::Scalar(v) => Ok(*v),
            State::Int(i) => Ok(*i as f64),
            other => Err(bad("a number", other)),
        }
    }
    /// The integer of an integer state.
    ///
    /// ```
    /// use flux_core::optim::State;
    /// assert_eq!(State::Int(7).int().unwrap(), 7);
    /// assert!(State::Scalar(7.0).int().is_err());
    /// ```
    pub fn int(&self) -> Result<i64> {
        match self {
            State::Int(i) => Ok(*i),
            other => Err(bad("an integer", other)),
        }
    }
    /// `(a, b)` from a two-number tuple.
    ///
    /// ```
    /// use flux_core::optim::State;
    /// assert_eq!(State::pair(0.5, 0.25).get_pair().unwrap(), (0.5, 0.25));
    /// assert!(State::Tuple(vec![State::Scalar(1.0)]).get_pair().is_err());
    /// ```
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
    ///
    /// ```
    /// use flux_core::optim::State;
    /// use flux_core::{DType, Tensor};
    /// let s = State::Tuple(vec![State::Tensor(Tensor::ones(&[2], DType::F32)), State::Int(3)]);
    /// let c = s.deep_clone().unwrap();
    /// assert!(matches!(&c, State::Tuple(v) if matches!(&v[0], State::Tensor(t) if !t.is_shared() && t.to_vec_f64().unwrap() == vec![1.0, 1.0])));
    /// ```
    pub fn deep_clone(&self) -> Result<State> {
        Ok(match self {
            State::Tensor(t) => State::Tensor(t.detach_copy()?),
            State::Tuple(v) => State::Tuple(v.iter().map(State::deep_clone).collect::<Result<_>>()?),
            s => s.clone(),
        })
    }
}

/// Copies for optimiser states.
///
/// ```
/// use flux_core::{DType, Tensor};
/// assert!(!Tensor::zeros(&[2], DType::F32).detach_copy().unwrap().is_shared());
/// ```
impl Tensor {
    /// A copy with its own buffer, on this tensor's device.
    ///
    /// ```
    /// let x = flux_core::Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
    /// let c = x.detach_copy().unwrap();
    /// assert!(!x.is_shared() && !c.is_shared());
    /// assert_eq!(c.to_vec_f64().unwrap(), vec![1.0, 2.0]);
    /// ```
    pub fn detach_copy(&self) -> Result<Tensor> {
        let mut t = self.detach();
        // storage_mut makes the buffer this handle's own (copied on its device if shared)
        t.storage_mut()?;
        Ok(t)
    }
}
