//! AdaGrad (spec §3.10): `acc ← acc + g²` (acc starts filled with ϵ),
//! `dx′ = g·η/(sqrt(acc) + ϵ)`.
use super::kernel::{elementwise, Target};
use super::{check_eta, Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct AdaGrad {
    pub eta: f64,
    pub epsilon: f64,
}

impl AdaGrad {
    pub fn new(eta: f64, epsilon: f64) -> Result<Self> { Ok(AdaGrad { eta: check_eta(eta)?, epsilon }) }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let acc = st.tensor_mut()?;
        crate::dispatch!(t.dtype(), T => {
            let (eta, eps) = (T::f(self.eta), T::f(self.epsilon));
            elementwise::<T, 1>(t, [acc], move |_, g, [acc]| {
                *acc = *acc + g * g;
                g * eta / (acc.sqrt() + eps)
            })?;
        });
        Ok(true)
    }
}

impl Rule for AdaGrad {
    fn name(&self) -> &'static str { "AdaGrad" }
    hyperparameters!(eta: eta, epsilon: float);
    /// acc filled with ϵ.
    fn init(&self, x: &Tensor) -> Result<State> { Ok(State::Tensor(Tensor::full(x.shape(), self.epsilon, x.dtype()))) }
    via_run!();
}
