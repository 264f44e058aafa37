//! OptimiserChain: members applied in order, each turning the previous
//! member's step into its own; a member that makes no step (AccumGrad still
//! accumulating) ends the fold, leaving the later members' states alone. The empty
//! chain is the identity, `dx′ = g`.
use super::{Hyper, Rule, State};
use crate::error::{value_err, Error, Result};
use crate::tensor::Tensor;

/// The OptimiserChain rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{ClipGrad, Descent, OptimiserChain, Rule};
/// use flux_core::Tensor;
/// let rule = OptimiserChain::new(vec![Box::new(ClipGrad::new(0.25)), Box::new(Descent::new(0.1))]).unwrap();
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.99).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct OptimiserChain {
    /// The rules, applied in order.
    pub opts: Vec<Box<dyn Rule>>,
}

fn check_members(opts: &[Box<dyn Rule>]) -> Result<()> {
    if opts.iter().any(|r| r.name() == "MixedPrecision") {
        return Err(value_err!("MixedPrecision must wrap the whole rule, it cannot be a member of an OptimiserChain"));
    }
    Ok(())
}

/// The empty chain (every step passes the gradient through unchanged).
impl Default for OptimiserChain {
    fn default() -> Self { OptimiserChain { opts: vec![] } }
}

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{OptimiserChain, Rule};
/// assert_eq!(OptimiserChain::default().name(), "OptimiserChain");
/// ```
impl OptimiserChain {
    /// The same chain with `rule` appended, so that a chain reads in the order it runs:
    ///
    /// ```
    /// use flux_core::optim::{describe, Adam, ClipNorm, OptimiserChain};
    /// let r = OptimiserChain::default().then(ClipNorm::default().omega(1.0)).then(Adam::default());
    /// assert_eq!(describe(&r), "OptimiserChain(ClipNorm(omega=1.0, p=2.0, throw=True), Adam(eta=0.001, beta=(0.9, 0.999), epsilon=1e-8))");
    /// ```
    pub fn then(mut self, rule: impl Rule + 'static) -> Self {
        self.opts.push(Box::new(rule));
        self
    }
    /// The rule with these hyperparameters.
    ///
    /// ```
    /// use flux_core::optim::{Adam, ClipGrad, OptimiserChain, Rule};
    /// let c = OptimiserChain::new(vec![Box::new(ClipGrad::new(1.0)), Box::new(Adam::default())]).unwrap();
    /// assert_eq!(c.name(), "OptimiserChain");
    /// ```
    pub fn new(opts: Vec<Box<dyn Rule>>) -> Result<Self> {
        check_members(&opts)?;
        Ok(OptimiserChain { opts })
    }
    fn states<'a>(&self, s: &'a mut State) -> Result<&'a mut [State]> {
        let st = s.tuple_mut()?;
        if st.len() != self.opts.len() {
            return Err(value_err!("OptimiserChain of {} rules given a state of {} parts", self.opts.len(), st.len()));
        }
        Ok(st)
    }
}

impl Rule for OptimiserChain {
    fn name(&self) -> &'static str { "OptimiserChain" }
    fn fields(&self) -> Vec<(&'static str, Hyper)> { vec![("opts", Hyper::Rules(self.opts.clone()))] }
    /// `opts` replaces the members; any other field is set on every member that has it
    /// (all or none: an error leaves the chain unchanged). A field no member has is an
    /// error.
    fn set(&mut self, field: &str, v: Hyper) -> Result<()> {
        if field == "opts" {
            let Hyper::Rules(rs) = v else { return Err(Error::DType(format!("opts must be a list of rules, got {v:?}"))) };
            check_members(&rs)?;
            self.opts = rs;
            return Ok(());
        }
        if !self.accepts(field) {
            return Err(super::unknown_field(self, field));
        }
        let mut opts = self.opts.clone();
        for r in opts.iter_mut().filter(|r| r.accepts(field)) {
            r.set(field, v.clone())?;
        }
        self.opts = opts;
        Ok(())
    }
    fn accepts(&self, field: &str) -> bool { field == "opts" || self.opts.iter().any(|r| r.accepts(field)) }
    /// The tuple of the members' states, in order.
    fn init(&self, x: &Tensor) -> Result<State> { Ok(State::Tuple(self.opts.iter().map(|r| r.init(x)).collect::<Result<_>>()?)) }
    fn apply_(&self, s: &mut State, x: &Tensor, g: &mut Tensor) -> Result<bool> {
        let st = self.states(s)?;
        for (r, s) in self.opts.iter().zip(st.iter_mut()) {
            if !r.apply_(s, x, g)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
    /// Every member but the last turns a copy of `g` into its step; the last member's
    /// fused step then updates `x`.
    fn step_(&self, s: &mut State, x: &mut Tensor, g: &Tensor) -> Result<()> {
        let st = self.states(s)?;
        // the empty chain is the identity, dx′ = g: Descent(1)'s kernel runs on either device
        let Some((last, init)) = self.opts.split_last() else { return super::Descent::new(1.0).step_(&mut State::Empty, x, g) };
        let (last_st, init_st) = st.split_last_mut().expect("lengths checked");
        let mut d = g.cast(x.dtype())?.detach();
        for (r, s) in init.iter().zip(init_st.iter_mut()) {
            if !r.apply_(s, x, &mut d)? {
                return Ok(());
            }
        }
        last.step_(last_st, x, &d)
    }
    fn box_clone(&self) -> Box<dyn Rule> { Box::new(self.clone()) }
}
