//! Momentum (heavy ball, η inside the velocity): `v ← ρ·v + η·g`, `dx′ = v`.
use super::kernel::{elementwise, wgsl, Target};
use super::{check_eta, Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

/// The Momentum rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{Momentum, Rule};
/// use flux_core::Tensor;
/// let rule = Momentum::new(0.01, 0.9).unwrap();
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.999).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct Momentum {
    /// The learning rate η.
    pub eta: f64,
    /// The decay ρ of the running average.
    pub rho: f64,
}

defaults!(Momentum { eta: f64 = 0.01 => 0.05, rho: f64 = 0.9 => 0.95 });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{Momentum, Rule};
/// assert_eq!(Momentum::default().name(), "Momentum");
/// ```
impl Momentum {
    /// The rule with these hyperparameters (a negative or NaN η is an error).
    ///
    /// ```
    /// use flux_core::optim::Momentum;
    /// let r = Momentum::new(0.01, 0.9).unwrap();
    /// assert_eq!(r.rho, 0.9);
    /// assert!(Momentum::new(-0.01, 0.9).is_err());  // a negative learning rate
    /// ```
    pub fn new(eta: f64, rho: f64) -> Result<Self> { Ok(Momentum { eta: check_eta(eta)?, rho }) }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let v = st.tensor_mut()?;
        crate::dispatch!(t.dtype(), T => {
            let (eta, rho) = (T::f(self.eta), T::f(self.rho));
            elementwise::<T, 1>(t, [v], wgsl!("momentum", [eta, rho]), move |_, g, [v]| {
                *v = rho * *v + eta * g;
                *v
            })?;
        });
        Ok(true)
    }
}

impl Rule for Momentum {
    fn name(&self) -> &'static str { "Momentum" }
    hyperparameters!(eta: eta, rho: float);
    fn init(&self, x: &Tensor) -> Result<State> { Ok(State::Tensor(x.zeros_like())) }
    fn apply_(&self, s: &mut State, x: &Tensor, g: &mut Tensor) -> Result<bool> { self.run(s, Target::Grad { x, g }) }
    fn step_(&self, s: &mut State, x: &mut Tensor, g: &Tensor) -> Result<()> { self.run(s, Target::Param { x, g }).map(drop) }
    fn box_clone(&self) -> Box<dyn Rule> { Box::new(self.clone()) }
}
