//! Lion, exactly as Optimisers.jl implements it:
//! `m ← β₂·g + (1−β₂)·m`, `dx′ = η·sign((β₂−β₁)·g + β₁·m)`.
//!
//! Quirk kept for bit-compatibility: the EMA weights are swapped relative to the Lion
//! paper (β₂ multiplies the new gradient), so with the defaults the step is essentially
//! `η·sign(g)`.
use super::kernel::{elementwise, wgsl, sign, Target};
use super::{check_eta, Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

/// The Lion rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{Lion, Rule};
/// use flux_core::Tensor;
/// let rule = Lion::new(0.001, (0.9, 0.999)).unwrap();
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.999).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct Lion {
    /// The learning rate η.
    pub eta: f64,
    /// The decay rates (β₁, β₂) of the first and second moment estimates.
    pub beta: (f64, f64),
}

defaults!(Lion { eta: f64 = 1e-3 => 0.01, beta: (f64, f64) = (0.9, 0.999) => (0.8, 0.99) });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{Lion, Rule};
/// assert_eq!(Lion::default().name(), "Lion");
/// ```
impl Lion {
    /// The rule with these hyperparameters (a negative or NaN η is an error).
    ///
    /// ```
    /// use flux_core::optim::Lion;
    /// let r = Lion::new(1e-4, (0.9, 0.99)).unwrap();
    /// assert_eq!(r.beta, (0.9, 0.99));
    /// assert!(Lion::new(-1.0, (0.9, 0.99)).is_err());  // a negative learning rate
    /// ```
    pub fn new(eta: f64, beta: (f64, f64)) -> Result<Self> { Ok(Lion { eta: check_eta(eta)?, beta }) }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let m = st.tensor_mut()?;
        crate::dispatch!(t.dtype(), T => {
            let eta = T::f(self.eta);
            let (b1, b2) = (T::f(self.beta.0), T::f(self.beta.1));
            let (r2, d) = (T::one() - b2, b2 - b1);
            elementwise::<T, 1>(t, [m], wgsl!("lion", [eta, b1, b2, r2, d]), move |_, g, [m]| {
                *m = b2 * g + r2 * *m;
                eta * sign(d * g + b1 * *m)
            })?;
        });
        Ok(true)
    }
}

impl Rule for Lion {
    fn name(&self) -> &'static str { "Lion" }
    hyperparameters!(eta: eta, beta: pair);
    fn init(&self, x: &Tensor) -> Result<State> { Ok(State::Tensor(x.zeros_like())) }
    via_run!();
}
