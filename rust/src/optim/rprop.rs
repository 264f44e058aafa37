//! Rprop: per-element step sizes grown by ℓ₂ (up to Γ₂) while the gradient
//! keeps its sign and shrunk by ℓ₁ (down to Γ₁) when it flips; no move after a flip.
use super::kernel::{elementwise, wgsl, jmax, jmin, sign, Target};
use super::{check_eta, Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

/// The Rprop rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{Rprop, Rule};
/// use flux_core::Tensor;
/// let rule = Rprop::new(1e-3, (0.5, 1.2), (1e-6, 50.0)).unwrap();
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.999).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct Rprop {
    /// Initial step size.
    pub eta: f64,
    /// (decrease factor, increase factor).
    pub ell: (f64, f64),
    /// (minimum step, maximum step).
    pub gamma: (f64, f64),
}

defaults!(Rprop { eta: f64 = 1e-3 => 0.01, ell: (f64, f64) = (0.5, 1.2) => (0.4, 1.5), gamma: (f64, f64) = (1e-6, 50.0) => (1e-5, 20.0) });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{Rprop, Rule};
/// assert_eq!(Rprop::default().name(), "Rprop");
/// ```
impl Rprop {
    /// The rule with these hyperparameters (a negative or NaN η is an error).
    ///
    /// ```
    /// use flux_core::optim::Rprop;
    /// let r = Rprop::new(1e-3, (0.5, 1.2), (1e-6, 50.0)).unwrap();
    /// assert_eq!(r.ell, (0.5, 1.2));
    /// assert!(Rprop::new(-1.0, (0.5, 1.2), (1e-6, 50.0)).is_err());  // a negative learning rate
    /// ```
    pub fn new(eta: f64, ell: (f64, f64), gamma: (f64, f64)) -> Result<Self> { Ok(Rprop { eta: check_eta(eta)?, ell, gamma }) }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let [gp, step] = st.parts::<2>("Rprop")?;
        let (gp, step) = (gp.tensor_mut()?, step.tensor_mut()?);
        crate::dispatch!(t.dtype(), T => {
            let (l1, l2, lo, hi) = (T::f(self.ell.0), T::f(self.ell.1), T::f(self.gamma.0), T::f(self.gamma.1));
            elementwise::<T, 2>(t, [gp, step], wgsl!("rprop", [l1, l2, lo, hi]), move |_, g, [gp, s]| {
                let p = *gp * g;
                if p > T::zero() {
                    *s = jmin(*s * l2, hi);
                } else if p < T::zero() {
                    *s = jmax(*s * l1, lo);
                }
                *gp = if p < T::zero() { T::zero() } else { g };
                *s * sign(*gp)
            })?;
        });
        Ok(true)
    }
}

impl Rule for Rprop {
    fn name(&self) -> &'static str { "Rprop" }
    hyperparameters!(eta: eta, ell: pair, gamma: pair);
    /// `(g_prev, step)`: zeros and an array filled with η (in x's precision).
    fn init(&self, x: &Tensor) -> Result<State> {
        Ok(State::Tuple(vec![State::Tensor(x.zeros_like()), State::Tensor(Tensor::full(x.shape(), self.eta, x.dtype()))]))
    }
    via_run!();
}
