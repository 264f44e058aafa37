//! AdaDelta (spec §3.11), no learning rate: `acc ← ρ·acc + (1−ρ)·g²`,
//! `dx′ = g·sqrt(Δacc + ϵ)/sqrt(acc + ϵ)` with the old Δacc, then
//! `Δacc ← ρ·Δacc + (1−ρ)·dx′²`.
use super::kernel::{elementwise, Target};
use super::{Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct AdaDelta {
    pub rho: f64,
    pub epsilon: f64,
}

impl AdaDelta {
    pub fn new(rho: f64, epsilon: f64) -> Self { AdaDelta { rho, epsilon } }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let [acc, dacc] = st.parts::<2>("AdaDelta")?;
        let (acc, dacc) = (acc.tensor_mut()?, dacc.tensor_mut()?);
        crate::dispatch!(t.dtype(), T => {
            let (rho, eps) = (T::f(self.rho), T::f(self.epsilon));
            let r = T::one() - rho;
            elementwise::<T, 2>(t, [acc, dacc], move |_, g, [acc, dacc]| {
                *acc = rho * *acc + r * (g * g);
                let d = g * (*dacc + eps).sqrt() / (*acc + eps).sqrt();
                *dacc = rho * *dacc + r * (d * d);
                d
            })?;
        });
        Ok(true)
    }
}

impl Rule for AdaDelta {
    fn name(&self) -> &'static str { "AdaDelta" }
    hyperparameters!(rho: float, epsilon: float);
    /// `(acc, Δacc)`, both zeros.
    fn init(&self, x: &Tensor) -> Result<State> { Ok(State::Tuple(vec![State::Tensor(x.zeros_like()), State::Tensor(x.zeros_like())])) }
    via_run!();
}
