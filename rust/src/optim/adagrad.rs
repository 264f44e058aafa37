//! AdaGrad: `acc ← acc + g²` (acc starts filled with ϵ),
//! `dx′ = g·η/(sqrt(acc) + ϵ)`.
use super::kernel::{elementwise, wgsl, Target};
use super::{check_eta, Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

/// The AdaGrad rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{AdaGrad, Rule};
/// use flux_core::Tensor;
/// let rule = AdaGrad::new(0.1, 1e-8).unwrap();
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.9000000599999515).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct AdaGrad {
    /// The learning rate η.
    pub eta: f64,
    /// ϵ, added to the denominator for numerical stability.
    pub epsilon: f64,
}

defaults!(AdaGrad { eta: f64 = 0.1 => 0.05, epsilon: f64 = 1e-8 => 1e-6 });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{AdaGrad, Rule};
/// assert_eq!(AdaGrad::default().name(), "AdaGrad");
/// ```
impl AdaGrad {
    /// The rule with these hyperparameters (a negative or NaN η is an error).
    ///
    /// ```
    /// use flux_core::optim::AdaGrad;
    /// let r = AdaGrad::new(0.1, 1e-8).unwrap();
    /// assert_eq!(r.epsilon, 1e-8);
    /// assert!(AdaGrad::new(-0.1, 1e-8).is_err());  // a negative learning rate
    /// ```
    pub fn new(eta: f64, epsilon: f64) -> Result<Self> { Ok(AdaGrad { eta: check_eta(eta)?, epsilon }) }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let acc = st.tensor_mut()?;
        crate::dispatch!(t.dtype(), T => {
            let (eta, eps) = (T::f(self.eta), T::f(self.epsilon));
            elementwise::<T, 1>(t, [acc], wgsl!("adagrad", [eta, eps]), move |_, g, [acc]| {
                *acc += g * g;
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
