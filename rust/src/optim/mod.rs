//! The rules of Optimisers.jl, one per file (each with its formula and Optimisers.jl's defaults).
//!
//! A [`Rule`] is a small value holding hyperparameters. `init` builds the per-parameter
//! [`State`]; `apply_` turns a gradient buffer in place into the step dx′ (the pure
//! interface, and how chains compose); `step_` is the fused update `x ← x − dx′` that
//! reads and writes each array once. Both are written once per rule through
//! [`kernel::elementwise`], which runs the same per-element closure either way.
//!
//! For native apps: [`setup`] builds one [`Leaf`] per parameter of a [`crate::nn::Module`]
//! and [`update`] applies a step to all of them.
/// `apply_`, `step_` and `box_clone` for a rule whose work is
/// `fn run(&self, &mut State, Target) -> Result<bool>`.
macro_rules! via_run {
    () => {
        fn apply_(&self, s: &mut State, x: &Tensor, g: &mut Tensor) -> Result<bool> { self.run(s, Target::Grad { x, g }) }
        fn step_(&self, s: &mut State, x: &mut Tensor, g: &Tensor) -> Result<()> { self.run(s, Target::Param { x, g }).map(drop) }
        fn box_clone(&self) -> Box<dyn Rule> { Box::new(self.clone()) }
    };
}

/// `fields` and `set` of a rule from one line naming each hyperparameter and its kind:
/// `eta` (a learning rate, checked non-negative), `float`, `pair`, `bool` or `int`.
macro_rules! hyperparameters {
    ($($name:ident : $kind:ident),* $(,)?) => {
        fn fields(&self) -> Vec<(&'static str, Hyper)> { vec![$((stringify!($name), hyperparameters!(@get $kind, self.$name))),*] }
        fn set(&mut self, field: &str, v: Hyper) -> Result<()> {
            match field {
                $(stringify!($name) => self.$name = hyperparameters!(@set $kind, v, field),)*
                _ => return Err(super::unknown_field(self, field)),
            }
            Ok(())
        }
    };
    (@get eta, $e:expr) => { Hyper::Float($e) };
    (@get float, $e:expr) => { Hyper::Float($e) };
    (@get pair, $e:expr) => { Hyper::Pair($e.0, $e.1) };
    (@get bool, $e:expr) => { Hyper::Bool($e) };
    (@get int, $e:expr) => { Hyper::Int($e) };
    (@set eta, $v:ident, $f:ident) => { super::check_eta($v.float($f)?)? };
    (@set float, $v:ident, $f:ident) => { $v.float($f)? };
    (@set pair, $v:ident, $f:ident) => { $v.pair($f)? };
    (@set bool, $v:ident, $f:ident) => { $v.bool($f)? };
    (@set int, $v:ident, $f:ident) => { $v.int($f)? };
}

/// `Default` (Optimisers.jl's defaults) and one builder method per hyperparameter, so
/// that a rule reads `Adam::default().eta(1e-3)`. Builders do not validate: `setup` and
/// `build` check every rule's fields the same way. Each field is written
/// `name: type = default => other`, `other` being the value its builder's example sets.
macro_rules! defaults {
    ($rule:ident { $($field:ident : $ty:ty = $default:expr => $other:expr),* $(,)? }) => {
        impl Default for $rule {
            fn default() -> Self { $rule { $($field: $default),* } }
        }
        #[doc = concat!("Builders, one per hyperparameter.\n\n```\n",
            "use flux_core::optim::", stringify!($rule), ";\n",
            "let rule = ", stringify!($rule), "::default()", $(".", stringify!($field), "(", stringify!($other), ")",)* ";\n",
            $("assert_eq!(rule.", stringify!($field), ", ", stringify!($other), ");\n",)*
            "```")]
        impl $rule {
            $(
                #[doc = concat!("The same rule with `", stringify!($field), "` set to `v` (default `", stringify!($default), "`).\n\n",
                    "```\n",
                    "use flux_core::optim::", stringify!($rule), ";\n",
                    "let rule = ", stringify!($rule), "::default().", stringify!($field), "(", stringify!($other), ");\n",
                    "assert_eq!(rule.", stringify!($field), ", ", stringify!($other), ");\n",
                    "assert_eq!(", stringify!($rule), "::default().", stringify!($field), ", ", stringify!($default), ");\n",
                    "```")]
                pub fn $field(mut self, v: $ty) -> Self {
                    self.$field = v;
                    self
                }
            )*
        }
    };
}

pub mod accum;
pub mod adabelief;
pub mod adadelta;
pub mod adagrad;
pub mod adam;
pub mod adamax;
pub mod adamw;
pub mod amsgrad;
pub mod chain;
pub mod clip;
pub mod decay;
pub mod descent;
pub mod kernel;
pub mod lion;
pub mod mixed;
pub mod momentum;
pub mod nadam;
pub mod nesterov;
pub mod oadam;
pub mod radam;
pub mod rmsprop;
pub mod rprop;
pub mod state;

use std::fmt::Debug;

pub use accum::AccumGrad;
pub use adabelief::AdaBelief;
pub use adadelta::AdaDelta;
pub use adagrad::AdaGrad;
pub use adam::Adam;
pub use adamax::AdaMax;
pub use adamw::AdamW;
pub use amsgrad::AMSGrad;
pub use chain::OptimiserChain;
pub use clip::{ClipGrad, ClipNorm};
pub use decay::{SignDecay, WeightDecay};
pub use descent::Descent;
pub use lion::Lion;
pub use mixed::MixedPrecision;
pub use momentum::Momentum;
pub use nadam::NAdam;
pub use nesterov::Nesterov;
pub use oadam::OAdam;
pub use radam::RAdam;
pub use rmsprop::RMSProp;
pub use rprop::Rprop;
pub use state::State;

use crate::error::{value_err, Error, Result};
use crate::tensor::Tensor;

/// A hyperparameter value, as `adjust` and the Python constructors pass them.
///
/// ```
/// use flux_core::optim::{Adam, Hyper, Rule};
/// let mut rule = Adam::default();
/// rule.set("beta", Hyper::Pair(0.8, 0.99)).unwrap();
/// assert_eq!(rule.beta, (0.8, 0.99));
/// assert_eq!(Hyper::Int(3).float("eta").unwrap(), 3.0);
/// assert!(Hyper::Bool(true).pair("beta").is_err());
/// ```
#[derive(Clone, Debug)]
pub enum Hyper {
    /// A number.
    Float(f64),
    /// A pair of numbers, e.g. β.
    Pair(f64, f64),
    /// A flag.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A wrapped rule (MixedPrecision).
    Rule(Box<dyn Rule>),
    /// The members of a chain.
    Rules(Vec<Box<dyn Rule>>),
}

/// Typed reads, each an error naming the hyperparameter when the kind is wrong.
///
/// ```
/// use flux_core::optim::Hyper;
/// assert!(Hyper::Pair(0.9, 0.99).float("eta").unwrap_err().to_string().contains("eta"));
/// ```
impl Hyper {
    /// The number, or an error naming the hyperparameter `name`.
    ///
    /// ```
    /// use flux_core::optim::Hyper;
    /// assert_eq!(Hyper::Float(0.5).float("eta").unwrap(), 0.5);
    /// assert_eq!(Hyper::Int(2).float("eta").unwrap(), 2.0); // an integer is a number too
    /// assert!(Hyper::Bool(true).float("eta").is_err());
    /// ```
    pub fn float(&self, name: &str) -> Result<f64> {
        match self {
            Hyper::Float(v) => Ok(*v),
            Hyper::Int(v) => Ok(*v as f64),
            _ => Err(Error::DType(format!("{name} must be a number, got {self:?}"))),
        }
    }
    /// The pair, or an error naming `name`.
    ///
    /// ```
    /// use flux_core::optim::Hyper;
    /// assert_eq!(Hyper::Pair(0.9, 0.99).pair("beta").unwrap(), (0.9, 0.99));
    /// assert!(Hyper::Float(0.9).pair("beta").is_err());
    /// ```
    pub fn pair(&self, name: &str) -> Result<(f64, f64)> {
        match self {
            Hyper::Pair(a, b) => Ok((*a, *b)),
            _ => Err(Error::DType(format!("{name} must be a tuple of two numbers, got {self:?}"))),
        }
    }
    /// The flag, or an error naming `name`.
    ///
    /// ```
    /// use flux_core::optim::Hyper;
    /// assert!(Hyper::Bool(true).bool("centred").unwrap());
    /// assert!(Hyper::Int(1).bool("centred").is_err());
    /// ```
    pub fn bool(&self, name: &str) -> Result<bool> {
        match self {
            Hyper::Bool(v) => Ok(*v),
            _ => Err(Error::DType(format!("{name} must be a bool, got {self:?}"))),
        }
    }
    /// The integer, or an error naming `name`.
    ///
    /// ```
    /// use flux_core::optim::Hyper;
    /// assert_eq!(Hyper::Int(4).int("n").unwrap(), 4);
    /// assert!(Hyper::Float(4.0).int("n").is_err());
    /// ```
    pub fn int(&self, name: &str) -> Result<i64> {
        match self {
            Hyper::Int(v) => Ok(*v),
            _ => Err(Error::DType(format!("{name} must be an integer, got {self:?}"))),
        }
    }
}

/// One optimisation rule. See the module docs for the contract.
///
/// ```
/// use flux_core::optim::{Descent, Rule};
/// use flux_core::Tensor;
/// let rule = Descent::new(0.1);
/// let mut x = Tensor::from_vec(vec![1.0f64, 2.0], &[2]).unwrap();
/// let mut st = rule.init(&x).unwrap();
/// rule.step_(&mut st, &mut x, &Tensor::from_vec(vec![1.0, -1.0], &[2]).unwrap()).unwrap();
/// assert_eq!(x.to_vec_f64().unwrap(), vec![0.9, 2.1]);
/// assert_eq!(rule.name(), "Descent");
/// ```
pub trait Rule: Debug + Send + Sync {
    /// The Optimisers.jl name, e.g. `"Adam"`.
    ///
    /// ```
    /// use flux_core::optim::{Lion, Rule};
    /// assert_eq!(Lion::default().name(), "Lion");
    /// ```
    fn name(&self) -> &'static str;
    /// Hyperparameters in constructor order.
    ///
    /// ```
    /// use flux_core::optim::{Momentum, Rule};
    /// let names: Vec<&str> = Momentum::default().fields().iter().map(|(k, _)| *k).collect();
    /// assert_eq!(names, ["eta", "rho"]);
    /// ```
    fn fields(&self) -> Vec<(&'static str, Hyper)>;
    /// Set one hyperparameter (`adjust`).
    ///
    /// ```
    /// use flux_core::optim::{Hyper, Momentum, Rule};
    /// let mut r = Momentum::default();
    /// r.set("rho", Hyper::Float(0.5)).unwrap();
    /// assert_eq!(r.rho, 0.5);
    /// assert!(r.set("beta", Hyper::Float(0.5)).is_err()); // Momentum has no β
    /// assert!(r.set("eta", Hyper::Float(-1.0)).is_err()); // a negative learning rate
    /// ```
    fn set(&mut self, field: &str, value: Hyper) -> Result<()>;
    /// The state for a parameter like `x`.
    ///
    /// ```
    /// use flux_core::optim::{Descent, Momentum, Rule, State};
    /// use flux_core::{DType, Tensor};
    /// let x = Tensor::ones(&[3], DType::F32);
    /// assert!(matches!(Descent::default().init(&x).unwrap(), State::Empty));
    /// assert_eq!(Momentum::default().init(&x).unwrap().tensor().unwrap().to_vec_f64().unwrap(), vec![0.0; 3]);
    /// ```
    fn init(&self, x: &Tensor) -> Result<State>;
    /// The state for `x` on `x`'s device: `init` builds it on the host, then its arrays
    /// follow the parameter (a GPU parameter gets its moments on the GPU).
    ///
    /// ```
    /// use flux_core::optim::{Adam, Rule};
    /// use flux_core::{DType, Device, Tensor};
    /// let mut s = Adam::default().init_on_device(&Tensor::ones(&[2], DType::F32)).unwrap();
    /// // the moments follow the parameter (here on the CPU)
    /// assert_eq!(s.parts::<3>("Adam").unwrap()[0].tensor().unwrap().device(), Device::Cpu);
    /// ```
    fn init_on_device(&self, x: &Tensor) -> Result<State> { self.init(x)?.to_device(x.device()) }
    /// Overwrite `g` with the step dx′ (reading `x`); `false` means no step this time.
    ///
    /// ```
    /// use flux_core::optim::{Descent, Rule};
    /// use flux_core::Tensor;
    /// let rule = Descent::new(0.1);
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2]).unwrap();
    /// let mut g = Tensor::from_vec(vec![1.0f64, -2.0], &[2]).unwrap();
    /// let mut st = rule.init(&x).unwrap();
    /// assert!(rule.apply_(&mut st, &x, &mut g).unwrap());
    /// assert_eq!(g.to_vec_f64().unwrap(), vec![0.1, -0.2]); // the step, x untouched
    /// assert_eq!(x.to_vec_f64().unwrap(), vec![1.0, 2.0]);
    /// ```
    fn apply_(&self, state: &mut State, x: &Tensor, g: &mut Tensor) -> Result<bool>;
    /// `x ← x − dx′`. Rules override this with a single fused pass.
    ///
    /// ```
    /// use flux_core::optim::{Momentum, Rule};
    /// use flux_core::Tensor;
    /// let rule = Momentum::new(0.1, 0.5).unwrap();
    /// let mut x = Tensor::from_vec(vec![1.0f64], &[1]).unwrap();
    /// let g = Tensor::from_vec(vec![1.0f64], &[1]).unwrap();
    /// let mut st = rule.init(&x).unwrap();
    /// rule.step_(&mut st, &mut x, &g).unwrap(); // v = 0.1·g, x = 1 − 0.1
    /// rule.step_(&mut st, &mut x, &g).unwrap(); // v = 0.5·0.1 + 0.1·g, x = 0.9 − 0.15
    /// assert!((x.item().unwrap() - 0.75).abs() < 1e-12);
    /// ```
    fn step_(&self, state: &mut State, x: &mut Tensor, g: &Tensor) -> Result<()> {
        let mut d = g.detach();
        if self.apply_(state, x, &mut d)? {
            x.sub_assign_(&d)?;
        }
        Ok(())
    }
    /// A boxed copy (so that `Box<dyn Rule>` is `Clone`).
    ///
    /// ```
    /// use flux_core::optim::{Adam, Rule};
    /// let boxed: Box<dyn Rule> = Adam::default().eta(0.5).box_clone();
    /// assert_eq!(boxed.fields()[0].1.float("eta").unwrap(), 0.5);
    /// ```
    fn box_clone(&self) -> Box<dyn Rule>;
    /// Does `set(field, …)` know this name? Its fields, plus aliases (WeightDecay's
    /// `gamma`) and, for wrappers, their members' fields.
    ///
    /// ```
    /// use flux_core::optim::{Rule, WeightDecay};
    /// assert!(WeightDecay::default().accepts("lambda"));
    /// assert!(WeightDecay::default().accepts("gamma")); // an alias
    /// assert!(!WeightDecay::default().accepts("eta"));
    /// ```
    fn accepts(&self, field: &str) -> bool { self.fields().iter().any(|(k, _)| *k == field) }
}

impl Clone for Box<dyn Rule> {
    fn clone(&self) -> Self { self.box_clone() }
}

/// Validate a learning rate the way Optimisers.jl's constructors do.
///
/// ```
/// use flux_core::optim::check_eta;
/// assert_eq!(check_eta(0.1).unwrap(), 0.1);
/// assert!(check_eta(-0.1).unwrap_err().to_string().contains("cannot be negative"));
/// assert!(check_eta(f64::NAN).unwrap_err().to_string().contains("finite"));
/// ```
pub fn check_eta(eta: f64) -> Result<f64> {
    if eta.is_nan() {
        // NaN is not negative: say what is wrong with it
        return Err(value_err!("the learning rate must be a finite number, got eta=NaN"));
    }
    if eta < 0.0 {
        return Err(value_err!("the learning rate cannot be negative, got eta={eta}"));
    }
    Ok(eta)
}

/// Named hyperparameters given to [`build`].
///
/// ```
/// use flux_core::optim::{Fields, Hyper};
/// let given = [("eta".to_string(), Hyper::Float(0.1))];
/// let f = Fields(&given);
/// assert_eq!(f.float_or("eta", 1e-3).unwrap(), 0.1);
/// assert_eq!(f.pair_or("beta", (0.9, 0.999)).unwrap(), (0.9, 0.999));
/// ```
pub struct Fields<'a>(pub &'a [(String, Hyper)]);

/// Look-ups with defaults, as `build` reads a rule's keywords.
///
/// ```
/// use flux_core::optim::{Fields, Hyper};
/// let given = [("rho".to_string(), Hyper::Float(0.8))];
/// assert_eq!(Fields(&given).float_or("rho", 0.9).unwrap(), 0.8);
/// ```
impl Fields<'_> {
    /// The value given for `name`, if any.
    ///
    /// ```
    /// use flux_core::optim::{Fields, Hyper};
    /// let given = [("eta".to_string(), Hyper::Float(0.1))];
    /// assert!(matches!(Fields(&given).get("eta"), Some(Hyper::Float(v)) if *v == 0.1));
    /// assert!(Fields(&given).get("rho").is_none());
    /// ```
    pub fn get(&self, name: &str) -> Option<&Hyper> { self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v) }
    /// The number given for `name`, else `default`.
    ///
    /// ```
    /// use flux_core::optim::{Fields, Hyper};
    /// let given = [("eta".to_string(), Hyper::Float(0.1))];
    /// assert_eq!(Fields(&given).float_or("eta", 1.0).unwrap(), 0.1);
    /// assert_eq!(Fields(&given).float_or("rho", 0.9).unwrap(), 0.9);
    /// ```
    pub fn float_or(&self, name: &str, default: f64) -> Result<f64> { self.get(name).map_or(Ok(default), |h| h.float(name)) }
    /// The pair given for `name`, else `default`.
    ///
    /// ```
    /// use flux_core::optim::{Fields, Hyper};
    /// let given = [("beta".to_string(), Hyper::Pair(0.8, 0.9))];
    /// assert_eq!(Fields(&given).pair_or("beta", (0.9, 0.999)).unwrap(), (0.8, 0.9));
    /// assert!(Fields(&[("beta".to_string(), Hyper::Float(0.8))]).pair_or("beta", (0.9, 0.999)).is_err());
    /// ```
    pub fn pair_or(&self, name: &str, default: (f64, f64)) -> Result<(f64, f64)> { self.get(name).map_or(Ok(default), |h| h.pair(name)) }
    /// The flag given for `name`, else `default`.
    ///
    /// ```
    /// use flux_core::optim::{Fields, Hyper};
    /// let given = [("centred".to_string(), Hyper::Bool(true))];
    /// assert!(Fields(&given).bool_or("centred", false).unwrap());
    /// assert!(!Fields(&[]).bool_or("centred", false).unwrap());
    /// ```
    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool> { self.get(name).map_or(Ok(default), |h| h.bool(name)) }
    /// The integer given for `name`, else `default`.
    ///
    /// ```
    /// use flux_core::optim::{Fields, Hyper};
    /// let given = [("n".to_string(), Hyper::Int(3))];
    /// assert_eq!(Fields(&given).int_or("n", 1).unwrap(), 3);
    /// assert_eq!(Fields(&[]).int_or("n", 1).unwrap(), 1);
    /// ```
    pub fn int_or(&self, name: &str, default: i64) -> Result<i64> { self.get(name).map_or(Ok(default), |h| h.int(name)) }
}

/// Every rule name [`build`] knows, in the order of Optimisers.jl's documentation.
pub const RULES: &[&str] = &[
    "Descent", "Momentum", "Nesterov", "Rprop", "RMSProp", "Adam", "RAdam", "AdaMax", "OAdam", "AdaGrad", "AdaDelta",
    "AMSGrad", "NAdam", "AdamW", "AdaBelief", "Lion", "WeightDecay", "SignDecay", "ClipGrad", "ClipNorm", "OptimiserChain",
    "AccumGrad", "MixedPrecision",
];

/// Build a rule from its name and hyperparameters (defaults fill the rest): the one
/// entry point the Python layer uses. A keyword the rule does not have is an error
/// (`Error::DType`, a TypeError in Python), except the accepted spellings `centered`
/// (RMSProp) and `gamma` (WeightDecay, the old name of `lambda`).
///
/// ```
/// use flux_core::optim::{build, describe, Hyper};
/// let r = build("Nesterov", &[("rho".into(), Hyper::Float(0.8)), ("eta".into(), Hyper::Float(0.1))]).unwrap();
/// assert_eq!(describe(r.as_ref()), "Nesterov(eta=0.1, rho=0.8)");
/// ```
pub fn build(name: &str, fields: &[(String, Hyper)]) -> Result<Box<dyn Rule>> {
    let f = Fields(fields);
    // the defaults are the rules' `Default`s (written once, in each rule's file)
    let rule: Box<dyn Rule> = match name {
        "Descent" => Box::new(Descent::new(f.float_or("eta", Descent::default().eta)?)),
        "Momentum" => Box::new(Momentum::new(f.float_or("eta", Momentum::default().eta)?, f.float_or("rho", Momentum::default().rho)?)?),
        "Nesterov" => Box::new(Nesterov::new(f.float_or("eta", Nesterov::default().eta)?, f.float_or("rho", Nesterov::default().rho)?)?),
        "Rprop" => Box::new(Rprop::new(f.float_or("eta", Rprop::default().eta)?, f.pair_or("ell", Rprop::default().ell)?, f.pair_or("gamma", Rprop::default().gamma)?)?),
        "RMSProp" => {
            let centred = f.bool_or("centred", RMSProp::default().centred)? || f.bool_or("centered", RMSProp::default().centred)?;
            Box::new(RMSProp::new(f.float_or("eta", RMSProp::default().eta)?, f.float_or("rho", RMSProp::default().rho)?, f.float_or("epsilon", RMSProp::default().epsilon)?, centred)?)
        }
        "Adam" => Box::new(Adam::new(f.float_or("eta", Adam::default().eta)?, f.pair_or("beta", Adam::default().beta)?, f.float_or("epsilon", Adam::default().epsilon)?)?),
        "RAdam" => Box::new(RAdam::new(f.float_or("eta", RAdam::default().eta)?, f.pair_or("beta", RAdam::default().beta)?, f.float_or("epsilon", RAdam::default().epsilon)?)?),
        "AdaMax" => Box::new(AdaMax::new(f.float_or("eta", AdaMax::default().eta)?, f.pair_or("beta", AdaMax::default().beta)?, f.float_or("epsilon", AdaMax::default().epsilon)?)?),
        "OAdam" => Box::new(OAdam::new(f.float_or("eta", OAdam::default().eta)?, f.pair_or("beta", OAdam::default().beta)?, f.float_or("epsilon", OAdam::default().epsilon)?)?),
        "AdaGrad" => Box::new(AdaGrad::new(f.float_or("eta", AdaGrad::default().eta)?, f.float_or("epsilon", AdaGrad::default().epsilon)?)?),
        "AdaDelta" => Box::new(AdaDelta::new(f.float_or("rho", AdaDelta::default().rho)?, f.float_or("epsilon", AdaDelta::default().epsilon)?)),
        "AMSGrad" => Box::new(AMSGrad::new(f.float_or("eta", AMSGrad::default().eta)?, f.pair_or("beta", AMSGrad::default().beta)?, f.float_or("epsilon", AMSGrad::default().epsilon)?)?),
        "NAdam" => Box::new(NAdam::new(f.float_or("eta", NAdam::default().eta)?, f.pair_or("beta", NAdam::default().beta)?, f.float_or("epsilon", NAdam::default().epsilon)?)?),
        "AdamW" => Box::new(AdamW::new(
            f.float_or("eta", AdamW::default().eta)?,
            f.pair_or("beta", AdamW::default().beta)?,
            f.float_or("lambda", AdamW::default().lambda)?,
            f.float_or("epsilon", AdamW::default().epsilon)?,
            f.bool_or("couple", AdamW::default().couple)?,
        )?),
        "AdaBelief" => Box::new(AdaBelief::new(f.float_or("eta", AdaBelief::default().eta)?, f.pair_or("beta", AdaBelief::default().beta)?, f.float_or("epsilon", AdaBelief::default().epsilon)?)?),
        "Lion" => Box::new(Lion::new(f.float_or("eta", Lion::default().eta)?, f.pair_or("beta", Lion::default().beta)?)?),
        "WeightDecay" => {
            let lambda = match (f.get("lambda"), f.get("gamma")) {
                (Some(_), Some(_)) => return Err(value_err!("WeightDecay: give lambda or its old name gamma, not both")),
                (None, Some(g)) => g.float("gamma")?,
                _ => f.float_or("lambda", WeightDecay::default().lambda)?,
            };
            Box::new(WeightDecay::new(lambda))
        }
        "SignDecay" => Box::new(SignDecay::new(f.float_or("lambda", SignDecay::default().lambda)?)),
        "ClipGrad" => Box::new(ClipGrad::new(f.float_or("delta", ClipGrad::default().delta)?)),
        "ClipNorm" => Box::new(ClipNorm::new(f.float_or("omega", ClipNorm::default().omega)?, f.float_or("p", ClipNorm::default().p)?, f.bool_or("throw", ClipNorm::default().throw)?)),
        "OptimiserChain" => {
            let opts = match f.get("opts") {
                None => vec![],
                Some(Hyper::Rules(rs)) => rs.clone(),
                Some(h) => return Err(Error::DType(format!("opts must be a list of rules, got {h:?}"))),
            };
            Box::new(OptimiserChain::new(opts)?)
        }
        "AccumGrad" => match f.get("n") {
            Some(h) => Box::new(AccumGrad::new(h.int("n")?)?),
            None => return Err(Error::DType("AccumGrad needs n, the number of gradients to accumulate".into())),
        },
        "MixedPrecision" => match f.get("rule") {
            Some(Hyper::Rule(r)) => Box::new(MixedPrecision::new(r.clone())?),
            Some(h) => return Err(Error::DType(format!("rule must be a rule, got {h:?}"))),
            None => return Err(Error::DType("MixedPrecision needs rule, the rule to wrap".into())),
        },
        _ => return Err(value_err!("unknown optimisation rule {name:?}")),
    };
    let known = |k: &str| rule.fields().iter().any(|(n, _)| *n == k) || (name, k) == ("RMSProp", "centered") || (name, k) == ("WeightDecay", "gamma");
    if let Some((k, _)) = fields.iter().find(|(k, _)| !known(k)) {
        return Err(unknown_field(rule.as_ref(), k));
    }
    check_fields(rule.as_ref())?;
    Ok(rule)
}

/// The default hyperparameters of the rule `name`, in constructor order: what [`build`]
/// fills in when it is given nothing. This is where the defaults are written; the Python
/// constructors' signatures are built from it. Fields without a default (AccumGrad's `n`,
/// MixedPrecision's `rule`) are left out.
///
/// ```
/// use flux_core::optim::{defaults, Hyper};
/// let d = defaults("Adam").unwrap();
/// assert_eq!(d.iter().map(|(k, _)| *k).collect::<Vec<_>>(), ["eta", "beta", "epsilon"]);
/// assert!(matches!(d[1].1, Hyper::Pair(b1, b2) if (b1, b2) == (0.9, 0.999)));
/// assert!(defaults("AccumGrad").unwrap().is_empty());
/// ```
pub fn defaults(name: &str) -> Result<Vec<(&'static str, Hyper)>> {
    match name {
        "AccumGrad" | "MixedPrecision" => Ok(vec![]),
        _ => Ok(build(name, &[])?.fields()),
    }
}

/// The checks every rule's hyperparameters pass, the same for all rules: no NaN
/// anywhere, no infinity except in the clipping thresholds and norm order (where
/// `Inf` means "no clipping" or the max-norm), and a learning rate that is not negative.
fn check_fields(rule: &dyn Rule) -> Result<()> {
    let may_be_inf = |k: &str| matches!(k, "omega" | "delta" | "p");
    for (k, v) in rule.fields() {
        let vals = match v {
            Hyper::Rule(ref r) => {
                check_fields(r.as_ref())?;
                continue;
            }
            Hyper::Rules(ref rs) => {
                for r in rs {
                    if r.name() == "MixedPrecision" {
                        return Err(value_err!("MixedPrecision must wrap the whole rule, it cannot be a member of an OptimiserChain"));
                    }
                    check_fields(r.as_ref())?;
                }
                continue;
            }
            Hyper::Float(x) => vec![x],
            Hyper::Pair(a, b) => vec![a, b],
            _ => continue,
        };
        for x in vals {
            if x.is_nan() || (x.is_infinite() && !may_be_inf(k)) {
                return Err(value_err!("{}: {k} must be a finite number, got {}", rule.name(), describe_hyper(&v)));
            }
        }
        if k == "eta" {
            check_eta(match v { Hyper::Float(x) => x, _ => 0.0 })?;
        }
    }
    Ok(())
}

fn describe_hyper(v: &Hyper) -> String {
    match v {
        Hyper::Float(x) => format!("{x}"),
        Hyper::Pair(a, b) => format!("({a}, {b})"),
        _ => String::new(),
    }
}

/// βt as `init` stores it: β rounded to the parameter's precision.
pub(crate) fn init_beta_t(x: &Tensor, beta: (f64, f64)) -> State {
    crate::dispatch!(x.dtype(), T => State::pair(T::f(beta.0).to_f64(), T::f(beta.1).to_f64()))
}

/// A rule's format for printing: `Momentum(eta=0.01, rho=0.9)`.
///
/// ```
/// use flux_core::optim::{describe, Momentum};
/// assert_eq!(describe(&Momentum::default()), "Momentum(eta=0.01, rho=0.9)");
/// ```
pub fn describe(rule: &dyn Rule) -> String {
    let parts: Vec<String> = rule
        .fields()
        .into_iter()
        .map(|(k, v)| {
            let s = match v {
                Hyper::Float(x) => format!("{x:?}"),
                Hyper::Pair(a, b) => format!("({a:?}, {b:?})"),
                Hyper::Bool(b) => (if b { "True" } else { "False" }).to_string(),
                Hyper::Int(i) => i.to_string(),
                Hyper::Rule(r) => describe(r.as_ref()),
                Hyper::Rules(rs) => rs.iter().map(|r| describe(r.as_ref())).collect::<Vec<_>>().join(", "),
            };
            // a chain shows its members bare, as Optimisers.jl does
            if k == "opts" { s } else { format!("{k}={s}") }
        })
        .collect();
    format!("{}({})", rule.name(), parts.join(", "))
}

/// The optimiser state of one parameter: its rule, its state, and whether it is frozen.
///
/// ```
/// use flux_core::optim::{Leaf, Momentum};
/// use flux_core::Tensor;
/// let mut x = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
/// let mut leaf = Leaf::new(Box::new(Momentum::default()), &x).unwrap();
/// leaf.step(&mut x, &Tensor::from_vec(vec![1.0f32, 1.0], &[2]).unwrap()).unwrap();
/// assert_eq!(x.to_vec_f64().unwrap(), vec![(1.0f32 - 0.01) as f64, (2.0f32 - 0.01) as f64]);
/// // a frozen leaf leaves its parameter alone
/// leaf.frozen = true;
/// leaf.step(&mut x, &Tensor::from_vec(vec![1.0f32, 1.0], &[2]).unwrap()).unwrap();
/// assert_eq!(x.to_vec_f64().unwrap(), vec![(1.0f32 - 0.01) as f64, (2.0f32 - 0.01) as f64]);
/// ```
#[derive(Clone, Debug)]
pub struct Leaf {
    /// The rule that steps this parameter.
    pub rule: Box<dyn Rule>,
    /// The rule's state for this parameter.
    pub state: State,
    /// A frozen leaf is skipped by `update`.
    pub frozen: bool,
}

/// A fresh leaf and its step.
///
/// ```
/// use flux_core::optim::{Descent, Leaf};
/// use flux_core::{DType, Tensor};
/// let leaf = Leaf::new(Box::new(Descent::new(0.1)), &Tensor::zeros(&[2], DType::F32)).unwrap();
/// assert!(!leaf.frozen);
/// ```
impl Leaf {
    /// A leaf for parameter `x`: `rule` with its fresh state, not frozen.
    ///
    /// ```
    /// use flux_core::optim::{Adam, Leaf, State};
    /// use flux_core::{DType, Tensor};
    /// let leaf = Leaf::new(Box::new(Adam::default()), &Tensor::zeros(&[3], DType::F32)).unwrap();
    /// // Adam's state: two moments shaped like the parameter, and (β₁ᵗ, β₂ᵗ)
    /// assert!(matches!(&leaf.state, State::Tuple(parts) if parts.len() == 3 && parts[0].tensor().unwrap().shape() == &[3]));
    /// ```
    pub fn new(rule: Box<dyn Rule>, x: &Tensor) -> Result<Leaf> {
        let state = rule.init_on_device(x)?;
        Ok(Leaf { rule, state, frozen: false })
    }
    /// One fused step of this leaf's rule on `x` (nothing when frozen).
    ///
    /// ```
    /// use flux_core::optim::{Descent, Leaf};
    /// use flux_core::Tensor;
    /// let mut x = Tensor::from_vec(vec![1.0f64, 2.0], &[2]).unwrap();
    /// let mut leaf = Leaf::new(Box::new(Descent::new(0.5)), &x).unwrap();
    /// leaf.step(&mut x, &Tensor::from_vec(vec![2.0f64, 2.0], &[2]).unwrap()).unwrap();
    /// assert_eq!(x.to_vec_f64().unwrap(), vec![0.0, 1.0]);
    /// assert!(leaf.step(&mut x, &Tensor::from_vec(vec![1.0f64], &[1]).unwrap()).is_err()); // shapes differ
    /// ```
    pub fn step(&mut self, x: &mut Tensor, g: &Tensor) -> Result<()> {
        if self.frozen {
            return Ok(());
        }
        if g.shape() != x.shape() {
            return Err(Error::mismatch("update", g.shape(), x.shape()));
        }
        let g = g.cast(x.dtype())?;
        self.rule.step_(&mut self.state, x, &g)
    }
}

/// One [`Leaf`] per parameter of `model`, in its visiting order. The rule's
/// hyperparameters are checked first, as [`build`] checks them (a rule configured with
/// builder methods is validated here).
///
/// ```
/// use flux_core::{nn::{Dense, Module}, optim, Tensor};
/// let mut m = Dense::new(2, 1);
/// let mut st = optim::setup(&optim::Descent::default().eta(0.1), &m).unwrap();
/// let g: Vec<Tensor> = m.params().iter().map(|p| Tensor::ones(p.shape(), p.dtype())).collect();
/// optim::update(&mut st, &mut m, &g.iter().map(Some).collect::<Vec<_>>()).unwrap();
/// assert_eq!(m.bias.as_ref().unwrap().to_vec_f64().unwrap(), vec![-0.1f32 as f64]);
/// assert!(optim::setup(&optim::Adam::default().eta(f64::NAN), &m).is_err());
/// ```
pub fn setup(rule: &dyn Rule, model: &dyn crate::nn::Module) -> Result<Vec<Leaf>> {
    check_fields(rule)?;
    model.params().into_iter().map(|p| Leaf::new(rule.box_clone(), p)).collect()
}

/// Apply one step to every parameter with a gradient (`None` leaves it and its state alone).
/// `grads` and `leaves` are in the model's visiting order (as [`setup`] and
/// [`crate::nn::Module::params`] give them).
///
/// ```
/// use flux_core::{nn::{Dense, Module}, optim, Tensor};
/// let mut m = Dense::new(2, 1);
/// let mut leaves = optim::setup(&optim::Descent::new(0.5), &m).unwrap();
/// let w0 = m.weight.to_vec_f64().unwrap();
/// let g = Tensor::ones(&[1, 2], flux_core::DType::F32);
/// // a gradient for the weight only: the bias and its state are left alone
/// optim::update(&mut leaves, &mut m, &[Some(&g), None]).unwrap();
/// assert_eq!(m.weight.to_vec_f64().unwrap(), w0.iter().map(|w| (*w as f32 - 0.5) as f64).collect::<Vec<_>>());
/// assert_eq!(m.bias.as_ref().unwrap().to_vec_f64().unwrap(), vec![0.0]);
/// assert!(optim::update(&mut leaves, &mut m, &[Some(&g)]).is_err());  // one gradient per parameter
/// ```
pub fn update(leaves: &mut [Leaf], model: &mut dyn crate::nn::Module, grads: &[Option<&Tensor>]) -> Result<()> {
    let n = model.params().len();
    if n != leaves.len() || grads.len() != leaves.len() {
        return Err(value_err!("update: {} leaves, {n} parameters and {} gradients do not match", leaves.len(), grads.len()));
    }
    let mut i = 0;
    let mut res = Ok(());
    model.visit_params_mut(&mut crate::nn::ParamPath::new(), &mut |_, p| {
        if let (Ok(()), Some(g)) = (&res, grads[i]) {
            res = leaves[i].step(p, g);
        }
        i += 1;
    });
    res
}

/// The error for a hyperparameter name the rule does not have.
///
/// ```
/// use flux_core::optim::{unknown_field, Adam};
/// let e = unknown_field(&Adam::default(), "rho").to_string();
/// assert!(e.contains("Adam has no field \"rho\"") && e.contains("eta, beta, epsilon"));
/// ```
pub fn unknown_field(rule: &dyn Rule, field: &str) -> Error {
    let names: Vec<&str> = rule.fields().iter().map(|(k, _)| *k).collect();
    Error::DType(format!("{} has no field {field:?}; its fields are {}", rule.name(), names.join(", ")))
}
