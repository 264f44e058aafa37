//! RMSProp: `s ← ρ·s + (1−ρ)·g²`, optionally centred with
//! `c ← ρ·c + (1−ρ)·g`; `dx′ = g·η / (sqrt(s − c²) + ϵ)`.
use super::kernel::{elementwise, wgsl, Target};
use super::{check_eta, Hyper, Rule, State};
use crate::error::{value_err, Result};
use crate::tensor::Tensor;

/// The RMSProp rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{RMSProp, Rule};
/// use flux_core::Tensor;
/// let rule = RMSProp::new(0.001, 0.9, 1e-8, false).unwrap();
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.9968377233398313).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct RMSProp {
    /// The learning rate η.
    pub eta: f64,
    /// The decay ρ of the running average.
    pub rho: f64,
    /// ϵ, added to the denominator for numerical stability.
    pub epsilon: f64,
    /// Subtract the squared running mean of the gradient (centred RMSProp).
    pub centred: bool,
}

defaults!(RMSProp { eta: f64 = 1e-3 => 0.01, rho: f64 = 0.9 => 0.95, epsilon: f64 = 1e-8 => 1e-6, centred: bool = false => true });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{RMSProp, Rule};
/// assert_eq!(RMSProp::default().name(), "RMSProp");
/// ```
impl RMSProp {
    /// The rule with these hyperparameters (a negative or NaN η is an error).
    ///
    /// ```
    /// use flux_core::optim::RMSProp;
    /// let r = RMSProp::new(1e-3, 0.9, 1e-8, true).unwrap();
    /// assert_eq!(r.centred, true);
    /// assert!(RMSProp::new(-1.0, 0.9, 1e-8, false).is_err());  // a negative learning rate
    /// ```
    pub fn new(eta: f64, rho: f64, epsilon: f64, centred: bool) -> Result<Self> {
        Ok(RMSProp { eta: check_eta(eta)?, rho, epsilon, centred })
    }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let [s, c] = st.parts::<2>("RMSProp")?;
        let s = s.tensor_mut()?;
        crate::dispatch!(t.dtype(), T => {
            let (eta, rho, eps) = (T::f(self.eta), T::f(self.rho), T::f(self.epsilon));
            let r1 = T::one() - rho;
            if self.centred {
                let c = c.tensor_mut().map_err(|_| value_err!("RMSProp(centred=true) needs the state of a centred RMSProp"))?;
                elementwise::<T, 2>(t, [s, c], wgsl!("rmsprop_centred", [eta, rho, eps, r1]), move |_, g, [s, c]| {
                    *s = rho * *s + r1 * (g * g);
                    *c = rho * *c + r1 * g;
                    g * eta / ((*s - *c * *c).sqrt() + eps)
                })?;
            } else {
                elementwise::<T, 1>(t, [s], wgsl!("rmsprop", [eta, rho, eps, r1]), move |_, g, [s]| {
                    *s = rho * *s + r1 * (g * g);
                    g * eta / (s.sqrt() + eps)
                })?;
            }
        });
        Ok(true)
    }
}

impl Rule for RMSProp {
    fn name(&self) -> &'static str { "RMSProp" }
    fn fields(&self) -> Vec<(&'static str, Hyper)> {
        vec![
            ("eta", Hyper::Float(self.eta)),
            ("rho", Hyper::Float(self.rho)),
            ("epsilon", Hyper::Float(self.epsilon)),
            ("centred", Hyper::Bool(self.centred)),
        ]
    }
    /// As in Optimisers.jl, `adjust` reaches RMSProp's plain constructor: `eta` is not
    /// validated here.
    fn set(&mut self, field: &str, v: Hyper) -> Result<()> {
        match field {
            "eta" => self.eta = v.float(field)?,
            "rho" => self.rho = v.float(field)?,
            "epsilon" => self.epsilon = v.float(field)?,
            "centred" | "centered" => {
                return Err(value_err!("RMSProp: centred cannot be adjusted, since the optimiser state differs between the variants"))
            }
            _ => return Err(super::unknown_field(self, field)),
        }
        Ok(())
    }
    /// `(s, c)`: zeros, and zeros for the centred variant or nothing (`State::Empty`,
    /// Optimisers.jl's `false`) otherwise.
    fn init(&self, x: &Tensor) -> Result<State> {
        let c = if self.centred { State::Tensor(x.zeros_like()) } else { State::Empty };
        Ok(State::Tuple(vec![State::Tensor(x.zeros_like()), c]))
    }
    via_run!();
}
