//! Descent: `dx′ = η·g` (spec §3.1).
use super::kernel::{elementwise, Target};
use super::{Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct Descent {
    pub eta: f64,
}

impl Descent {
    /// No validation, as in Optimisers.jl: a negative η is accepted.
    pub fn new(eta: f64) -> Self { Descent { eta } }
    fn run(&self, t: Target) -> Result<bool> {
        crate::dispatch!(t.dtype(), T => {
            let eta = T::f(self.eta);
            elementwise::<T, 0>(t, [], move |_, g, _| eta * g)?;
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
