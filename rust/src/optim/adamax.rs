//! AdaMax (spec §3.8): `m ← β₁·m + (1−β₁)·g`, `u ← max(β₂·u, |g|)`,
//! `dx′ = (η/(1−β₁ᵗ))·m/(u + ϵ)`.
use super::kernel::{elementwise, jmax, Target};
use super::{check_eta, init_beta_t, Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct AdaMax {
    pub eta: f64,
    pub beta: (f64, f64),
    pub epsilon: f64,
}

impl AdaMax {
    pub fn new(eta: f64, beta: (f64, f64), epsilon: f64) -> Result<Self> { Ok(AdaMax { eta: check_eta(eta)?, beta, epsilon }) }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let [m, u, bt] = st.parts::<3>("AdaMax")?;
        let (b1t, b2t) = bt.get_pair()?;
        let (m, u) = (m.tensor_mut()?, u.tensor_mut()?);
        crate::dispatch!(t.dtype(), T => {
            let one = T::one();
            let (eta, eps) = (T::f(self.eta), T::f(self.epsilon));
            let (b1, b2) = (T::f(self.beta.0), T::f(self.beta.1));
            let (b1t, b2t) = (T::f(b1t), T::f(b2t));
            let (r1, a) = (one - b1, eta / (one - b1t));
            elementwise::<T, 2>(t, [m, u], move |_, g, [m, u]| {
                *m = b1 * *m + r1 * g;
                *u = jmax(b2 * *u, g.abs());
                a * *m / (*u + eps)
            })?;
            *bt = State::pair((b1t * b1).to_f64(), (b2t * b2).to_f64());
        });
        Ok(true)
    }
}

impl Rule for AdaMax {
    fn name(&self) -> &'static str { "AdaMax" }
    hyperparameters!(eta: eta, beta: pair, epsilon: float);
    /// `(m, u, βt = β)`.
    fn init(&self, x: &Tensor) -> Result<State> { Ok(State::Tuple(vec![State::Tensor(x.zeros_like()), State::Tensor(x.zeros_like()), init_beta_t(x, self.beta)])) }
    via_run!();
}
