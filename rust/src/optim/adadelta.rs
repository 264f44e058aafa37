//! AdaDelta, no learning rate: `acc ← ρ·acc + (1−ρ)·g²`,
//! `dx′ = g·sqrt(Δacc + ϵ)/sqrt(acc + ϵ)` with the old Δacc, then
//! `Δacc ← ρ·Δacc + (1−ρ)·dx′²`.
use super::kernel::{elementwise, wgsl, Target};
use super::{Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

/// The AdaDelta rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{AdaDelta, Rule};
/// use flux_core::Tensor;
/// let rule = AdaDelta::new(0.9, 1e-8);
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.9996837738151101).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct AdaDelta {
    /// The decay ρ of the running average.
    pub rho: f64,
    /// ϵ, added to the denominator for numerical stability.
    pub epsilon: f64,
}

defaults!(AdaDelta { rho: f64 = 0.9 => 0.95, epsilon: f64 = 1e-8 => 1e-6 });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{AdaDelta, Rule};
/// assert_eq!(AdaDelta::default().name(), "AdaDelta");
/// ```
impl AdaDelta {
    /// The rule with these hyperparameters.
    ///
    /// ```
    /// use flux_core::optim::AdaDelta;
    /// let r = AdaDelta::new(0.9, 1e-8);
    /// assert_eq!(r.rho, 0.9);
    /// ```
    pub fn new(rho: f64, epsilon: f64) -> Self { AdaDelta { rho, epsilon } }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let [acc, dacc] = st.parts::<2>("AdaDelta")?;
        let (acc, dacc) = (acc.tensor_mut()?, dacc.tensor_mut()?);
        crate::dispatch!(t.dtype(), T => {
            let (rho, eps) = (T::f(self.rho), T::f(self.epsilon));
            let r = T::one() - rho;
            elementwise::<T, 2>(t, [acc, dacc], wgsl!("adadelta", [rho, eps, r]), move |_, g, [acc, dacc]| {
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
