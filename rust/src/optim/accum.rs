//! AccumGrad: average n gradients, making a step only on the n-th call.
//! Meant as the first member of an [`super::OptimiserChain`], whose later members then
//! run once per n calls.
use rayon::prelude::*;

use super::kernel::{elementwise, wgsl, Target};
use super::{Hyper, Rule, State};
use crate::error::{value_err, Error, Result};
use crate::tensor::{Device, Tensor, PAR_THRESHOLD};

/// The AccumGrad rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{OptimiserChain, Descent, AccumGrad, Rule};
/// use flux_core::Tensor;
/// let rule = OptimiserChain::new(vec![Box::new(AccumGrad::new(2).unwrap()), Box::new(Descent::new(0.1))]).unwrap();
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 1.0).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct AccumGrad {
    /// How many gradients are accumulated before one step.
    pub n: i64,
}

fn check_n(n: i64) -> Result<i64> {
    if n < 1 {
        return Err(value_err!("AccumGrad must accumulate at least one gradient, got n={n}"));
    }
    Ok(n)
}

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{AccumGrad, Rule};
/// assert_eq!(AccumGrad::new(4).unwrap().name(), "AccumGrad");
/// assert!(AccumGrad::new(0).is_err());
/// ```
impl AccumGrad {
    /// The rule with these hyperparameters.
    ///
    /// ```
    /// use flux_core::optim::AccumGrad;
    /// assert_eq!(AccumGrad::new(4).unwrap().n, 4);
    /// assert!(AccumGrad::new(0).is_err());
    /// ```
    pub fn new(n: i64) -> Result<Self> { Ok(AccumGrad { n: check_n(n)? }) }
    fn run(&self, st: &mut State, t: Target) -> Result<bool> {
        let [acc, counter] = st.parts::<2>("AccumGrad")?;
        let c = counter.int()?;
        let acc = acc.tensor_mut()?;
        let first = c == 1;
        let last = c == self.n;
        crate::dispatch!(t.dtype(), T => {
            let n = T::f(self.n as f64);
            let add = move |a: T, g: T| if first { g / n } else { a + g / n };
            let gpu = wgsl!("accum", [n, if first { T::one() } else { T::zero() }]);
            if last {
                elementwise::<T, 1>(t, [acc], gpu, move |_, g, [a]| {
                    *a = add(*a, g);
                    *a
                })?;
            } else if t.x().device() != Device::Cpu || t.g().device() != Device::Cpu || acc.device() != Device::Cpu {
                // only the state changes: the kernel's pure form writes its dx′ into a
                // scratch copy of the gradient
                let mut scratch = t.g().detach();
                elementwise::<T, 1>(Target::Grad { x: t.x(), g: &mut scratch }, [acc], gpu, |_, g, [a]| {
                    *a = add(*a, g);
                    *a
                })?;
            } else {
                let g = t.g().cast(T::DTYPE)?.contiguous()?;
                let gs = g.as_slice::<T>()?;
                if acc.numel() != gs.len() {
                    return Err(Error::Shape(format!("AccumGrad: gradient of shape {:?} does not match its state {:?}", g.shape(), acc.shape())));
                }
                let a = acc.data_mut::<T>()?;
                if a.len() >= PAR_THRESHOLD {
                    a.par_iter_mut().zip(gs.par_iter()).for_each(|(a, &g)| *a = add(*a, g));
                } else {
                    a.iter_mut().zip(gs).for_each(|(a, &g)| *a = add(*a, g));
                }
            }
        });
        *counter = State::Int(if last { 1 } else { c + 1 });
        Ok(last)
    }
}

impl Rule for AccumGrad {
    fn name(&self) -> &'static str { "AccumGrad" }
    fn fields(&self) -> Vec<(&'static str, Hyper)> { vec![("n", Hyper::Int(self.n))] }
    fn set(&mut self, field: &str, v: Hyper) -> Result<()> {
        match field {
            "n" => self.n = check_n(v.int(field)?)?,
            _ => return Err(super::unknown_field(self, field)),
        }
        Ok(())
    }
    /// `(acc = zeros, counter = 1)`.
    fn init(&self, x: &Tensor) -> Result<State> { Ok(State::Tuple(vec![State::Tensor(x.zeros_like()), State::Int(1)])) }
    via_run!();
}
