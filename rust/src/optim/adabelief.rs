//! AdaBelief: the second moment tracks `(g − m)²` of the updated m, with ϵ
//! added inside the EMA every step (default ϵ = 1e-16).
use super::kernel::{elementwise, wgsl, Target};
use super::{check_eta, init_beta_t, Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

/// The AdaBelief rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{AdaBelief, Rule};
/// use flux_core::Tensor;
/// let rule = AdaBelief::new(0.001, (0.9, 0.999), 1e-16).unwrap();
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.9988888888888957).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct AdaBelief {
    /// The learning rate η.
    pub eta: f64,
    /// The decay rates (β₁, β₂) of the first and second moment estimates.
    pub beta: (f64, f64),
    /// ϵ, added to the denominator for numerical stability.
    pub epsilon: f64,
}

defaults!(AdaBelief { eta: f64 = 1e-3 => 0.01, beta: (f64, f64) = (0.9, 0.999) => (0.8, 0.99), epsilon: f64 = 1e-16 => 1e-12 });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{AdaBelief, Rule};
/// assert_eq!(AdaBelief::default().name(), "AdaBelief");
/// ```
impl AdaBelief {
    /// The rule with these hyperparameters (a negative or NaN η is an error).
    ///
    /// ```
    /// use flux_core::optim::AdaBelief;
    /// let r = AdaBelief::new(1e-3, (0.9, 0.999), 1e-16).unwrap();
    /// assert_eq!(r.epsilon, 1e-16);
    /// assert!(AdaBelief::new(-1.0, (0.9, 0.999), 1e-16).is_err());  // a negative learning rate
    /// ```
    pub fn new(eta: f64, beta: (f64, f64), epsilon: f64) -> Result<Self> { Ok(AdaBelief { eta: check_eta(eta)?, beta, epsilon }) }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let [m, s, bt] = st.parts::<3>("AdaBelief")?;
        let (b1t, b2t) = bt.get_pair()?;
        let (m, s) = (m.tensor_mut()?, s.tensor_mut()?);
        crate::dispatch!(t.dtype(), T => {
            let one = T::one();
            let (eta, eps) = (T::f(self.eta), T::f(self.epsilon));
            let (b1, b2) = (T::f(self.beta.0), T::f(self.beta.1));
            let (b1t, b2t) = (T::f(b1t), T::f(b2t));
            let (c1, c2, r1, r2) = (one - b1t, one - b2t, one - b1, one - b2);
            elementwise::<T, 2>(t, [m, s], wgsl!("adabelief", [b1, b2, c1, c2, eta, eps]), move |_, g, [m, s]| {
                *m = b1 * *m + r1 * g;
                let d = g - *m;
                *s = b2 * *s + r2 * (d * d) + eps;
                eta * *m / c1 / ((*s / c2).sqrt() + eps)
            })?;
            *bt = State::pair((b1t * b1).to_f64(), (b2t * b2).to_f64());
        });
        Ok(true)
    }
}

impl Rule for AdaBelief {
    fn name(&self) -> &'static str { "AdaBelief" }
    hyperparameters!(eta: eta, beta: pair, epsilon: float);
    /// `(m, s, βt = β)`.
    fn init(&self, x: &Tensor) -> Result<State> { Ok(State::Tuple(vec![State::Tensor(x.zeros_like()), State::Tensor(x.zeros_like()), init_beta_t(x, self.beta)])) }
    via_run!();
}
