//! NAdam: Nesterov-accelerated Adam. Copies the reference's extra factor
//! β₂ on v in the denominator: `sqrt(v·β₂/(1−β₂ᵗ)) + ϵ`.
use super::kernel::{elementwise, wgsl, Target};
use super::{check_eta, init_beta_t, Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

/// The NAdam rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{NAdam, Rule};
/// use flux_core::Tensor;
/// let rule = NAdam::new(0.001, (0.9, 0.999), 1e-8).unwrap();
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.9985255785417918).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct NAdam {
    /// The learning rate η.
    pub eta: f64,
    /// The decay rates (β₁, β₂) of the first and second moment estimates.
    pub beta: (f64, f64),
    /// ϵ, added to the denominator for numerical stability.
    pub epsilon: f64,
}

defaults!(NAdam { eta: f64 = 1e-3 => 0.01, beta: (f64, f64) = (0.9, 0.999) => (0.8, 0.99), epsilon: f64 = 1e-8 => 1e-6 });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{NAdam, Rule};
/// assert_eq!(NAdam::default().name(), "NAdam");
/// ```
impl NAdam {
    /// The rule with these hyperparameters (a negative or NaN η is an error).
    ///
    /// ```
    /// use flux_core::optim::NAdam;
    /// let r = NAdam::new(1e-3, (0.9, 0.999), 1e-8).unwrap();
    /// assert_eq!(r.eta, 1e-3);
    /// assert!(NAdam::new(-1.0, (0.9, 0.999), 1e-8).is_err());  // a negative learning rate
    /// ```
    pub fn new(eta: f64, beta: (f64, f64), epsilon: f64) -> Result<Self> { Ok(NAdam { eta: check_eta(eta)?, beta, epsilon }) }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let [m, v, bt] = st.parts::<3>("NAdam")?;
        let (b1t, b2t) = bt.get_pair()?;
        let (m, v) = (m.tensor_mut()?, v.tensor_mut()?);
        crate::dispatch!(t.dtype(), T => {
            let one = T::one();
            let (eta, eps) = (T::f(self.eta), T::f(self.epsilon));
            let (b1, b2) = (T::f(self.beta.0), T::f(self.beta.1));
            let (b1t, b2t) = (T::f(b1t), T::f(b2t));
            let (r1, r2) = (one - b1, one - b2);
            let (cm, cg, c2) = (one - b1 * b1t, one - b1t, one - b2t);
            elementwise::<T, 2>(t, [m, v], wgsl!("nadam", [b1, b2, cm, cg, c2, eta, eps]), move |_, g, [m, v]| {
                *m = b1 * *m + r1 * g;
                *v = b2 * *v + r2 * (g * g);
                (b1 * *m / cm + r1 * g / cg) / ((*v * b2 / c2).sqrt() + eps) * eta
            })?;
            *bt = State::pair((b1t * b1).to_f64(), (b2t * b2).to_f64());
        });
        Ok(true)
    }
}

impl Rule for NAdam {
    fn name(&self) -> &'static str { "NAdam" }
    hyperparameters!(eta: eta, beta: pair, epsilon: float);
    /// `(m, v, βt = β)`.
    fn init(&self, x: &Tensor) -> Result<State> { Ok(State::Tuple(vec![State::Tensor(x.zeros_like()), State::Tensor(x.zeros_like()), init_beta_t(x, self.beta)])) }
    via_run!();
}
