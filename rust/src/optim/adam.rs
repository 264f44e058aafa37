//! Adam: bias-corrected moments, ϵ added after the square root.
use super::kernel::{elementwise, wgsl, Target};
use super::{check_eta, Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

/// The Adam rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{Adam, Rule};
/// use flux_core::Tensor;
/// let rule = Adam::new(0.001, (0.9, 0.999), 1e-8).unwrap();
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.9990000001).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct Adam {
    /// The learning rate η.
    pub eta: f64,
    /// The decay rates (β₁, β₂) of the first and second moment estimates.
    pub beta: (f64, f64),
    /// ϵ, added to the denominator for numerical stability.
    pub epsilon: f64,
}

defaults!(Adam { eta: f64 = 1e-3 => 0.01, beta: (f64, f64) = (0.9, 0.999) => (0.8, 0.99), epsilon: f64 = 1e-8 => 1e-6 });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{Adam, Rule};
/// assert_eq!(Adam::default().name(), "Adam");
/// ```
impl Adam {
    /// The rule with these hyperparameters (a negative or NaN η is an error).
    ///
    /// ```
    /// use flux_core::optim::Adam;
    /// let r = Adam::new(0.01, (0.8, 0.9), 1e-7).unwrap();
    /// assert_eq!((r.eta, r.beta, r.epsilon), (0.01, (0.8, 0.9), 1e-7));
    /// assert!(Adam::new(-1.0, (0.9, 0.999), 1e-8).is_err());
    /// ```
    pub fn new(eta: f64, beta: (f64, f64), epsilon: f64) -> Result<Self> { Ok(Adam { eta: check_eta(eta)?, beta, epsilon }) }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let [m, v, bt] = st.tuple_mut()? else { return Err(crate::error::Error::Value("Adam state must be (m, v, βt)".into())) };
        let (b1t, b2t) = bt.get_pair()?;
        crate::dispatch!(t.dtype(), T => {
            let (eta, eps) = (T::f(self.eta), T::f(self.epsilon));
            let (b1, b2) = (T::f(self.beta.0), T::f(self.beta.1));
            let (b1t, b2t) = (T::f(b1t), T::f(b2t));
            let (c1, c2) = (T::one() - b1t, T::one() - b2t);
            elementwise::<T, 2>(t, [m.tensor_mut()?, v.tensor_mut()?], wgsl!("adam", [b1, b2, c1, c2, eta, eps]), move |_, g, [m, v]| {
                *m = b1 * *m + (T::one() - b1) * g;
                *v = b2 * *v + (T::one() - b2) * g * g;
                eta * (*m / c1) / ((*v / c2).sqrt() + eps)
            })?;
            *bt = State::pair((b1t * b1).to_f64(), (b2t * b2).to_f64());
        });
        Ok(true)
    }
}

impl Rule for Adam {
    fn name(&self) -> &'static str { "Adam" }
    hyperparameters!(eta: eta, beta: pair, epsilon: float);
    fn init(&self, x: &Tensor) -> Result<State> {
        // βt starts at β, rounded to the parameter's precision
        let (b1, b2) = crate::dispatch!(x.dtype(), T => (T::f(self.beta.0).to_f64(), T::f(self.beta.1).to_f64()));
        Ok(State::Tuple(vec![State::Tensor(x.zeros_like()), State::Tensor(x.zeros_like()), State::pair(b1, b2)]))
    }
    fn apply_(&self, s: &mut State, x: &Tensor, g: &mut Tensor) -> Result<bool> { self.run(s, Target::Grad { x, g }) }
    fn step_(&self, s: &mut State, x: &mut Tensor, g: &Tensor) -> Result<()> { self.run(s, Target::Param { x, g }).map(drop) }
    fn box_clone(&self) -> Box<dyn Rule> { Box::new(self.clone()) }
}
