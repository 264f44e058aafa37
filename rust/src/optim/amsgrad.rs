//! AMSGrad (spec §3.12): Adam's moments with `v̂ ← max(v̂, v)` and no bias correction,
//! `dx′ = η·m/(sqrt(v̂) + ϵ)`; m, v and v̂ all start filled with ϵ.
use super::kernel::{elementwise, jmax, Target};
use super::{check_eta, Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct AMSGrad {
    pub eta: f64,
    pub beta: (f64, f64),
    pub epsilon: f64,
}

impl AMSGrad {
    pub fn new(eta: f64, beta: (f64, f64), epsilon: f64) -> Result<Self> { Ok(AMSGrad { eta: check_eta(eta)?, beta, epsilon }) }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let [m, v, vh] = st.parts::<3>("AMSGrad")?;
        let (m, v, vh) = (m.tensor_mut()?, v.tensor_mut()?, vh.tensor_mut()?);
        crate::dispatch!(t.dtype(), T => {
            let one = T::one();
            let (eta, eps) = (T::f(self.eta), T::f(self.epsilon));
            let (b1, b2) = (T::f(self.beta.0), T::f(self.beta.1));
            let (r1, r2) = (one - b1, one - b2);
            elementwise::<T, 3>(t, [m, v, vh], move |_, g, [m, v, vh]| {
                *m = b1 * *m + r1 * g;
                *v = b2 * *v + r2 * (g * g);
                *vh = jmax(*vh, *v);
                eta * *m / (vh.sqrt() + eps)
            })?;
        });
        Ok(true)
    }
}

impl Rule for AMSGrad {
    fn name(&self) -> &'static str { "AMSGrad" }
    hyperparameters!(eta: eta, beta: pair, epsilon: float);
    /// `(m, v, v̂)`, each filled with ϵ.
    fn init(&self, x: &Tensor) -> Result<State> { let e = || State::Tensor(Tensor::full(x.shape(), self.epsilon, x.dtype()));
        Ok(State::Tuple(vec![e(), e(), e()])) }
    via_run!();
}
