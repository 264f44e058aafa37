//! AdamW: Adam's direction `a` with learning rate 1, then
//! `dx′ = η·(a + λ·x)` (coupled, PyTorch's form, the default) or `η·a + λ·x`.
//! ϵ is used as given (no Float16 floor in the reference).
use super::kernel::{elementwise, wgsl, Target};
use super::{check_eta, init_beta_t, Hyper, Rule, State};
use crate::error::Result;
use crate::tensor::Tensor;

/// The AdamW rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{AdamW, Rule};
/// use flux_core::Tensor;
/// let rule = AdamW::new(0.001, (0.9, 0.999), 0.1, 1e-8, true).unwrap();
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.9989000001).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct AdamW {
    /// The learning rate η.
    pub eta: f64,
    /// The decay rates (β₁, β₂) of the first and second moment estimates.
    pub beta: (f64, f64),
    /// The decay strength λ.
    pub lambda: f64,
    /// ϵ, added to the denominator for numerical stability.
    pub epsilon: f64,
    /// Scale the decay by η (`true`, Optimisers.jl's default) or apply it as is.
    pub couple: bool,
}

defaults!(AdamW { eta: f64 = 1e-3 => 0.01, beta: (f64, f64) = (0.9, 0.999) => (0.8, 0.99), lambda: f64 = 0.0 => 0.01, epsilon: f64 = 1e-8 => 1e-6, couple: bool = true => false });

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{AdamW, Rule};
/// assert_eq!(AdamW::default().name(), "AdamW");
/// ```
impl AdamW {
    /// The rule with these hyperparameters (a negative or NaN η is an error).
    ///
    /// ```
    /// use flux_core::optim::AdamW;
    /// let r = AdamW::new(1e-3, (0.9, 0.999), 0.01, 1e-8, true).unwrap();
    /// assert_eq!(r.lambda, 0.01);
    /// assert!(AdamW::new(-1.0, (0.9, 0.999), 0.0, 1e-8, true).is_err());  // a negative learning rate
    /// ```
    pub fn new(eta: f64, beta: (f64, f64), lambda: f64, epsilon: f64, couple: bool) -> Result<Self> {
        Ok(AdamW { eta: check_eta(eta)?, beta, lambda, epsilon, couple })
    }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let [m, v, bt] = st.parts::<3>("AdamW")?;
        let (b1t, b2t) = bt.get_pair()?;
        let (m, v) = (m.tensor_mut()?, v.tensor_mut()?);
        crate::dispatch!(t.dtype(), T => {
            let one = T::one();
            let (eta, eps, lambda) = (T::f(self.eta), T::f(self.epsilon), T::f(self.lambda));
            let (b1, b2) = (T::f(self.beta.0), T::f(self.beta.1));
            let (b1t, b2t) = (T::f(b1t), T::f(b2t));
            let (c1, c2, r1, r2) = (one - b1t, one - b2t, one - b1, one - b2);
            let couple = self.couple;
            elementwise::<T, 2>(t, [m, v], wgsl!("adamw", [b1, b2, c1, c2, eta, eps, lambda, if couple { one } else { T::zero() }]), move |x, g, [m, v]| {
                *m = b1 * *m + r1 * g;
                *v = b2 * *v + r2 * (g * g);
                let a = *m / c1 / ((*v / c2).sqrt() + eps);
                if couple { eta * (a + lambda * x) } else { eta * a + lambda * x }
            })?;
            *bt = State::pair((b1t * b1).to_f64(), (b2t * b2).to_f64());
        });
        Ok(true)
    }
}

impl Rule for AdamW {
    fn name(&self) -> &'static str { "AdamW" }
    fn fields(&self) -> Vec<(&'static str, Hyper)> {
        vec![
            ("eta", Hyper::Float(self.eta)),
            ("beta", Hyper::Pair(self.beta.0, self.beta.1)),
            ("lambda", Hyper::Float(self.lambda)),
            ("epsilon", Hyper::Float(self.epsilon)),
            ("couple", Hyper::Bool(self.couple)),
        ]
    }
    /// As in Optimisers.jl, `adjust` reaches AdamW's plain constructor: `eta` is not
    /// validated here.
    fn set(&mut self, field: &str, v: Hyper) -> Result<()> {
        match field {
            "eta" => self.eta = v.float(field)?,
            "beta" => self.beta = v.pair(field)?,
            "lambda" => self.lambda = v.float(field)?,
            "epsilon" => self.epsilon = v.float(field)?,
            "couple" => self.couple = v.bool(field)?,
            _ => return Err(super::unknown_field(self, field)),
        }
        Ok(())
    }
    /// `(m, v, βt = β)`.
    fn init(&self, x: &Tensor) -> Result<State> {
        Ok(State::Tuple(vec![State::Tensor(x.zeros_like()), State::Tensor(x.zeros_like()), init_beta_t(x, self.beta)]))
    }
    via_run!();
}
