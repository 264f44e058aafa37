//! Nesterov: `dx′ = −ρ²·v + (1 + ρ)·η·g` from the old `v`, then
//! `v ← ρ·v − η·g` (v holds the negative of a descent direction).
use super::kernel::{elementwise, wgsl, Target};
use super::{check_eta, Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

/// The Nesterov rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{Nesterov, Rule};
/// use flux_core::Tensor;
/// let rule = Nesterov::new(0.001, 0.9).unwrap();
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.99981).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct Nesterov {
    /// The learning rate η.
    pub eta: f64,
    /// The decay ρ of the running average.
    pub rho: f64,
}

defaults!(Nesterov { eta: f64 = 1e-3 => 0.01, rho: f64 = 0.9 => 0.95 });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{Nesterov, Rule};
/// assert_eq!(Nesterov::default().name(), "Nesterov");
/// ```
impl Nesterov {
    /// The rule with these hyperparameters (a negative or NaN η is an error).
    ///
    /// ```
    /// use flux_core::optim::Nesterov;
    /// let r = Nesterov::new(1e-3, 0.9).unwrap();
    /// assert_eq!(r.rho, 0.9);
    /// assert!(Nesterov::new(-1.0, 0.9).is_err());  // a negative learning rate
    /// ```
    pub fn new(eta: f64, rho: f64) -> Result<Self> { Ok(Nesterov { eta: check_eta(eta)?, rho }) }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let v = st.tensor_mut()?;
        crate::dispatch!(t.dtype(), T => {
            let (eta, rho) = (T::f(self.eta), T::f(self.rho));
            let (a, b) = (-(rho * rho), (T::one() + rho) * eta);
            elementwise::<T, 1>(t, [v], wgsl!("nesterov", [eta, rho, a, b]), move |_, g, [v]| {
                let d = a * *v + b * g;
                *v = rho * *v - eta * g;
                d
            })?;
        });
        Ok(true)
    }
}

impl Rule for Nesterov {
    fn name(&self) -> &'static str { "Nesterov" }
    hyperparameters!(eta: eta, rho: float);
    fn init(&self, x: &Tensor) -> Result<State> { Ok(State::Tensor(x.zeros_like())) }
    via_run!();
}
