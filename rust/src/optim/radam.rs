//! RAdam: Adam's moments with a variance rectification term; steps whose
//! ρt ≤ 4 (the first four with the default β₂) are un-rectified momentum steps
//! `η·m/(1−β₁ᵗ)`. The state `(m, v, βt, t)` counts steps from 1.
use super::kernel::{elementwise, wgsl, Target};
use super::{check_eta, init_beta_t, Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

/// The RAdam rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{RAdam, Rule};
/// use flux_core::Tensor;
/// let rule = RAdam::new(0.001, (0.9, 0.999), 1e-8).unwrap();
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.9999).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct RAdam {
    /// The learning rate η.
    pub eta: f64,
    /// The decay rates (β₁, β₂) of the first and second moment estimates.
    pub beta: (f64, f64),
    /// ϵ, added to the denominator for numerical stability.
    pub epsilon: f64,
}

defaults!(RAdam { eta: f64 = 1e-3 => 0.01, beta: (f64, f64) = (0.9, 0.999) => (0.8, 0.99), epsilon: f64 = 1e-8 => 1e-6 });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{RAdam, Rule};
/// assert_eq!(RAdam::default().name(), "RAdam");
/// ```
impl RAdam {
    /// The rule with these hyperparameters (a negative or NaN η is an error).
    ///
    /// ```
    /// use flux_core::optim::RAdam;
    /// let r = RAdam::new(1e-3, (0.9, 0.999), 1e-8).unwrap();
    /// assert_eq!(r.eta, 1e-3);
    /// assert!(RAdam::new(f64::NAN, (0.9, 0.999), 1e-8).is_err());  // a negative learning rate
    /// ```
    pub fn new(eta: f64, beta: (f64, f64), epsilon: f64) -> Result<Self> { Ok(RAdam { eta: check_eta(eta)?, beta, epsilon }) }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let [m, v, bt, n] = st.parts::<4>("RAdam")?;
        let (b1t, b2t) = bt.get_pair()?;
        let step = n.int()?;
        let (m, v) = (m.tensor_mut()?, v.tensor_mut()?);
        crate::dispatch!(t.dtype(), T => {
            let one = T::one();
            let (eta, eps) = (T::f(self.eta), T::f(self.epsilon));
            let (b1, b2) = (T::f(self.beta.0), T::f(self.beta.1));
            let (b1t, b2t) = (T::f(b1t), T::f(b2t));
            let (c1, c2) = (one - b1t, one - b2t);
            let (r1, r2) = (one - b1, one - b2);
            let two = T::f(2.0);
            let four = T::f(4.0);
            let rinf = two / r2 - one;
            let rho = rinf - T::f((2 * step) as f64) * b2t / c2;
            if rho > four {
                let r = ((rho - four) * (rho - two) * rinf / ((rinf - four) * (rinf - two) * rho)).sqrt();
                elementwise::<T, 2>(t, [m, v], wgsl!("radam", [b1, b2, c1, c2, eta, eps, one, r]), move |_, g, [m, v]| {
                    *m = b1 * *m + r1 * g;
                    *v = b2 * *v + r2 * (g * g);
                    *m / c1 * r / ((*v / c2).sqrt() + eps) * eta
                })?;
            } else {
                elementwise::<T, 2>(t, [m, v], wgsl!("radam", [b1, b2, c1, c2, eta, eps, T::zero(), T::zero()]), move |_, g, [m, v]| {
                    *m = b1 * *m + r1 * g;
                    *v = b2 * *v + r2 * (g * g);
                    *m / c1 * eta
                })?;
            }
            *bt = State::pair((b1t * b1).to_f64(), (b2t * b2).to_f64());
        });
        *n = State::Int(step + 1);
        Ok(true)
    }
}

impl Rule for RAdam {
    fn name(&self) -> &'static str { "RAdam" }
    hyperparameters!(eta: eta, beta: pair, epsilon: float);
    /// `(m, v, βt = β, t = 1)`.
    fn init(&self, x: &Tensor) -> Result<State> { Ok(State::Tuple(vec![State::Tensor(x.zeros_like()), State::Tensor(x.zeros_like()), init_beta_t(x, self.beta), State::Int(1)])) }
    via_run!();
}
