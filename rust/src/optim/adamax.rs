//! AdaMax: `m ← β₁·m + (1−β₁)·g`, `u ← max(β₂·u, |g|)`,
//! `dx′ = (η/(1−β₁ᵗ))·m/(u + ϵ)`.
use super::kernel::{elementwise, wgsl, jmax, Target};
use super::{check_eta, init_beta_t, Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

/// The AdaMax rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{AdaMax, Rule};
/// use flux_core::Tensor;
/// let rule = AdaMax::new(0.001, (0.9, 0.999), 1e-8).unwrap();
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.9990000001).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct AdaMax {
    /// The learning rate η.
    pub eta: f64,
    /// The decay rates (β₁, β₂) of the first and second moment estimates.
    pub beta: (f64, f64),
    /// ϵ, added to the denominator for numerical stability.
    pub epsilon: f64,
}

defaults!(AdaMax { eta: f64 = 1e-3 => 0.01, beta: (f64, f64) = (0.9, 0.999) => (0.8, 0.99), epsilon: f64 = 1e-8 => 1e-6 });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{AdaMax, Rule};
/// assert_eq!(AdaMax::default().name(), "AdaMax");
/// ```
impl AdaMax {
    /// The rule with these hyperparameters (a negative or NaN η is an error).
    ///
    /// ```
    /// use flux_core::optim::AdaMax;
    /// let r = AdaMax::new(1e-3, (0.9, 0.999), 1e-8).unwrap();
    /// assert_eq!(r.beta, (0.9, 0.999));
    /// assert!(AdaMax::new(-1.0, (0.9, 0.999), 1e-8).is_err());  // a negative learning rate
    /// ```
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
            elementwise::<T, 2>(t, [m, u], wgsl!("adamax", [b1, b2, r1, a, eps]), move |_, g, [m, u]| {
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
