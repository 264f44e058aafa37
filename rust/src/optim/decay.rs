//! Penalties added to the gradient: WeightDecay `dx′ = g + λ·x`
//! (L2) and SignDecay `dx′ = g + λ·sign(x)` (L1). Place them before the main rule in an
//! [`super::OptimiserChain`].
use super::kernel::{elementwise, wgsl, sign, Target};
use super::{Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

/// The WeightDecay rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{WeightDecay, Rule};
/// use flux_core::Tensor;
/// let rule = WeightDecay::new(5e-4);
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.8995).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct WeightDecay {
    /// The decay strength λ.
    pub lambda: f64,
}

defaults!(WeightDecay { lambda: f64 = 5e-4 => 1e-3 });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{Rule, WeightDecay};
/// assert_eq!(WeightDecay::default().name(), "WeightDecay");
/// ```
impl WeightDecay {
    /// The rule with these hyperparameters.
    ///
    /// ```
    /// use flux_core::optim::WeightDecay;
    /// let r = WeightDecay::new(5e-4);
    /// assert_eq!(r.lambda, 5e-4);
    /// ```
    pub fn new(lambda: f64) -> Self { WeightDecay { lambda } }
    fn run(&self, _st: &mut State, t: Target) -> Result<bool> {
        crate::dispatch!(t.dtype(), T => {
            let lambda = T::f(self.lambda);
            elementwise::<T, 0>(t, [], wgsl!("weight_decay", [lambda]), move |x, g, _| g + lambda * x)?;
        });
        Ok(true)
    }
}

impl Rule for WeightDecay {
    fn name(&self) -> &'static str { "WeightDecay" }
    fn fields(&self) -> Vec<(&'static str, Hyper)> { vec![("lambda", Hyper::Float(self.lambda))] }
    /// `gamma` is accepted as the old name of `lambda` (Optimisers.jl warns that it is
    /// deprecated).
    fn set(&mut self, field: &str, v: Hyper) -> Result<()> {
        match field {
            "lambda" | "gamma" => self.lambda = v.float(field)?,
            _ => return Err(super::unknown_field(self, field)),
        }
        Ok(())
    }
    fn init(&self, _x: &Tensor) -> Result<State> { Ok(State::Empty) }
    fn accepts(&self, field: &str) -> bool { matches!(field, "lambda" | "gamma") }
    via_run!();
}

/// The SignDecay rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{SignDecay, Rule};
/// use flux_core::Tensor;
/// let rule = SignDecay::new(1e-3);
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.899).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct SignDecay {
    /// The decay strength λ.
    pub lambda: f64,
}

defaults!(SignDecay { lambda: f64 = 1e-3 => 0.01 });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{Rule, SignDecay};
/// assert_eq!(SignDecay::default().name(), "SignDecay");
/// ```
impl SignDecay {
    /// The rule with these hyperparameters.
    ///
    /// ```
    /// use flux_core::optim::SignDecay;
    /// let r = SignDecay::new(1e-3);
    /// assert_eq!(r.lambda, 1e-3);
    /// ```
    pub fn new(lambda: f64) -> Self { SignDecay { lambda } }
    fn run(&self, _st: &mut State, t: Target) -> Result<bool> {
        crate::dispatch!(t.dtype(), T => {
            let lambda = T::f(self.lambda);
            elementwise::<T, 0>(t, [], wgsl!("sign_decay", [lambda]), move |x, g, _| g + lambda * sign(x))?;
        });
        Ok(true)
    }
}

impl Rule for SignDecay {
    fn name(&self) -> &'static str { "SignDecay" }
    hyperparameters!(lambda: float);
    fn init(&self, _x: &Tensor) -> Result<State> { Ok(State::Empty) }
    via_run!();
}
