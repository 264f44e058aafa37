//! Descent: `dx′ = η·g`.
use super::kernel::{elementwise, wgsl, Target};
use super::{Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

/// The Descent rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{Descent, Rule};
/// use flux_core::Tensor;
/// let rule = Descent::new(0.1);
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.99).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct Descent {
    /// The learning rate η.
    pub eta: f64,
}

defaults!(Descent { eta: f64 = 0.1 => 0.05 });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{Descent, Rule};
/// assert_eq!(Descent::default().name(), "Descent");
/// ```
impl Descent {
    /// No validation, as in Optimisers.jl: a negative η is accepted.
    ///
    /// ```
    /// use flux_core::optim::Descent;
    /// let r = Descent::new(0.01);
    /// assert_eq!(r.eta, 0.01);
    /// ```
    pub fn new(eta: f64) -> Self { Descent { eta } }
    fn run(&self, t: Target) -> Result<bool> {
        crate::dispatch!(t.dtype(), T => {
            let eta = T::f(self.eta);
            elementwise::<T, 0>(t, [], wgsl!("descent", [eta]), move |_, g, _| eta * g)?;
        });
        Ok(true)
    }
}

impl Rule for Descent {
    fn name(&self) -> &'static str { "Descent" }
    hyperparameters!(eta: float);
    fn init(&self, _x: &Tensor) -> Result<State> { Ok(State::Empty) }
    fn apply_(&self, _s: &mut State, x: &Tensor, g: &mut Tensor) -> Result<bool> { self.run(Target::Grad { x, g }) }
    fn step_(&self, _s: &mut State, x: &mut Tensor, g: &Tensor) -> Result<()> { self.run(Target::Param { x, g }).map(drop) }
    fn box_clone(&self) -> Box<dyn Rule> { Box::new(self.clone()) }
}
