//! OAdam, optimistic Adam: `term ← η·m̂/(sqrt(v̂) + ϵ)`,
//! `dx′ = 2·term − term_old`. Default β = (0.5, 0.9).
use super::kernel::{elementwise, wgsl, Target};
use super::{check_eta, init_beta_t, Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

/// The OAdam rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{OAdam, Rule};
/// use flux_core::Tensor;
/// let rule = OAdam::new(0.001, (0.5, 0.9), 1e-8).unwrap();
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.9980000002).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct OAdam {
    /// The learning rate η.
    pub eta: f64,
    /// The decay rates (β₁, β₂) of the first and second moment estimates.
    pub beta: (f64, f64),
    /// ϵ, added to the denominator for numerical stability.
    pub epsilon: f64,
}

defaults!(OAdam { eta: f64 = 1e-3 => 0.01, beta: (f64, f64) = (0.5, 0.9) => (0.6, 0.95), epsilon: f64 = 1e-8 => 1e-6 });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{OAdam, Rule};
/// assert_eq!(OAdam::default().name(), "OAdam");
/// ```
impl OAdam {
    /// The rule with these hyperparameters (a negative or NaN η is an error).
    ///
    /// ```
    /// use flux_core::optim::OAdam;
    /// let r = OAdam::new(1e-3, (0.5, 0.9), 1e-8).unwrap();
    /// assert_eq!(r.beta, (0.5, 0.9));
    /// assert!(OAdam::new(-1.0, (0.5, 0.9), 1e-8).is_err());  // a negative learning rate
    /// ```
    pub fn new(eta: f64, beta: (f64, f64), epsilon: f64) -> Result<Self> { Ok(OAdam { eta: check_eta(eta)?, beta, epsilon }) }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let [m, v, bt, term] = st.parts::<4>("OAdam")?;
        let (b1t, b2t) = bt.get_pair()?;
        let (m, v, term) = (m.tensor_mut()?, v.tensor_mut()?, term.tensor_mut()?);
        crate::dispatch!(t.dtype(), T => {
            let one = T::one();
            let (eta, eps) = (T::f(self.eta), T::f(self.epsilon));
            let (b1, b2) = (T::f(self.beta.0), T::f(self.beta.1));
            let (b1t, b2t) = (T::f(b1t), T::f(b2t));
            let (c1, c2, r1, r2, two) = (one - b1t, one - b2t, one - b1, one - b2, T::f(2.0));
            elementwise::<T, 3>(t, [m, v, term], wgsl!("oadam", [b1, b2, c1, c2, eta, eps]), move |_, g, [m, v, term]| {
                *m = b1 * *m + r1 * g;
                *v = b2 * *v + r2 * (g * g);
                let prev = *term;
                *term = eta * *m / c1 / ((*v / c2).sqrt() + eps);
                two * *term - prev
            })?;
            *bt = State::pair((b1t * b1).to_f64(), (b2t * b2).to_f64());
        });
        Ok(true)
    }
}

impl Rule for OAdam {
    fn name(&self) -> &'static str { "OAdam" }
    hyperparameters!(eta: eta, beta: pair, epsilon: float);
    /// `(m, v, βt = β, term)`.
    fn init(&self, x: &Tensor) -> Result<State> { Ok(State::Tuple(vec![State::Tensor(x.zeros_like()), State::Tensor(x.zeros_like()), init_beta_t(x, self.beta), State::Tensor(x.zeros_like())])) }
    via_run!();
}
