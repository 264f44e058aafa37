//! AMSGrad: Adam's moments with `v̂ ← max(v̂, v)` and no bias correction,
//! `dx′ = η·m/(sqrt(v̂) + ϵ)`; m, v and v̂ all start filled with ϵ.
use super::kernel::{elementwise, wgsl, jmax, Target};
use super::{check_eta, Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

/// The AMSGrad rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{AMSGrad, Rule};
/// use flux_core::Tensor;
/// let rule = AMSGrad::new(0.001, (0.9, 0.999), 1e-8).unwrap();
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.9968393078603917).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct AMSGrad {
    /// The learning rate η.
    pub eta: f64,
    /// The decay rates (β₁, β₂) of the first and second moment estimates.
    pub beta: (f64, f64),
    /// ϵ, added to the denominator for numerical stability.
    pub epsilon: f64,
}

defaults!(AMSGrad { eta: f64 = 1e-3 => 0.01, beta: (f64, f64) = (0.9, 0.999) => (0.8, 0.99), epsilon: f64 = 1e-8 => 1e-6 });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{AMSGrad, Rule};
/// assert_eq!(AMSGrad::default().name(), "AMSGrad");
/// ```
impl AMSGrad {
    /// The rule with these hyperparameters (a negative or NaN η is an error).
    ///
    /// ```
    /// use flux_core::optim::AMSGrad;
    /// let r = AMSGrad::new(1e-3, (0.9, 0.999), 1e-8).unwrap();
    /// assert_eq!(r.eta, 1e-3);
    /// assert!(AMSGrad::new(-1.0, (0.9, 0.999), 1e-8).is_err());  // a negative learning rate
    /// ```
    pub fn new(eta: f64, beta: (f64, f64), epsilon: f64) -> Result<Self> { Ok(AMSGrad { eta: check_eta(eta)?, beta, epsilon }) }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let [m, v, vh] = st.parts::<3>("AMSGrad")?;
        let (m, v, vh) = (m.tensor_mut()?, v.tensor_mut()?, vh.tensor_mut()?);
        crate::dispatch!(t.dtype(), T => {
            let one = T::one();
            let (eta, eps) = (T::f(self.eta), T::f(self.epsilon));
            let (b1, b2) = (T::f(self.beta.0), T::f(self.beta.1));
            let (r1, r2) = (one - b1, one - b2);
            elementwise::<T, 3>(t, [m, v, vh], wgsl!("amsgrad", [b1, b2, eta, eps]), move |_, g, [m, v, vh]| {
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
