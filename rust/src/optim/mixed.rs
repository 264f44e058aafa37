//! MixedPrecision: keep a master copy of the parameter in a higher
//! precision (f64 by default), step it with the inner rule, and give the parameter
//! the master copy rounded to its own dtype.
//!
//! On the GPU (which has no float64), the precision pair moves down one step when the
//! master is float32: the master copy and the inner rule's state live on the GPU, and
//! the parameter gets the master rounded to **float16** (through the adapter's
//! `shader-f16`; the parameter's storage stays float32, holding float16 values, as
//! tensors have no float16 dtype), so no data crosses to the host. An adapter without
//! `shader-f16` makes `init` fail with `Error::Device` saying so. With a float64
//! master, a GPU parameter keeps its master and inner state on the host: its gradient
//! comes down and the rounded parameter goes back up each step.
use super::{Hyper, Rule, State};
use crate::error::{Error, Result};
use crate::tensor::{DType, Device, Tensor};

/// The MixedPrecision rule of Optimisers.jl (see the module docs for its formula).
///
/// One fused step from the start point of Optimisers.jl's golden test vectors (`x = [1, −2, 3]`,
/// `g = [0.1, −0.2, 0.3]`):
///
/// ```
/// use flux_core::optim::{Adam, MixedPrecision, Rule};
/// use flux_core::Tensor;
/// let rule = MixedPrecision::new(Box::new(Adam::new(0.001, (0.9, 0.999), 1e-8).unwrap())).unwrap();
/// let mut x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3]).unwrap();
/// let mut state = rule.init(&x).unwrap();
/// rule.step_(&mut state, &mut x, &Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3]).unwrap()).unwrap();
/// assert!((x.to_vec_f64().unwrap()[0] - 0.9990000001).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct MixedPrecision {
    /// The dtype of the master copy.
    pub master: DType,
    /// The rule that steps the master copy.
    pub rule: Box<dyn Rule>,
}

/// The constructor (the step itself is the [`Rule`] impl).
///
/// ```
/// use flux_core::optim::{Adam, MixedPrecision, Rule};
/// assert_eq!(MixedPrecision::new(Box::new(Adam::default())).unwrap().name(), "MixedPrecision");
/// ```
impl MixedPrecision {
    /// Master copy in f64.
    ///
    /// ```
    /// use flux_core::{optim::{Adam, MixedPrecision}, DType};
    /// assert_eq!(MixedPrecision::new(Box::new(Adam::default())).unwrap().master, DType::F64);
    /// ```
    pub fn new(rule: Box<dyn Rule>) -> Result<Self> { Self::with_master(DType::F64, rule) }
    /// A wrapper whose master copy has dtype `master`.
    ///
    /// ```
    /// use flux_core::{optim::{Descent, MixedPrecision}, DType};
    /// let m = MixedPrecision::with_master(DType::F32, Box::new(Descent::default())).unwrap();
    /// assert_eq!(m.master(DType::F64).master, DType::F64);
    /// ```
    pub fn with_master(master: DType, rule: Box<dyn Rule>) -> Result<Self> { Ok(MixedPrecision { master, rule }) }
    /// The same wrapper with its master copy in `dtype`.
    ///
    /// ```
    /// use flux_core::{optim::{Adam, MixedPrecision}, DType};
    /// let m = MixedPrecision::new(Box::new(Adam::default())).unwrap().master(DType::F32);
    /// assert_eq!(m.master, DType::F32);
    /// ```
    pub fn master(mut self, dtype: DType) -> Self {
        self.master = dtype;
        self
    }
    /// Step the master copy with the inner rule; return it.
    fn advance<'a>(&self, s: &'a mut State, x: &Tensor, g: &Tensor) -> Result<&'a Tensor> {
        let [xt, inner] = s.parts::<2>("MixedPrecision")?;
        let xt = xt.tensor_mut()?;
        if xt.dtype() != self.master || xt.shape() != x.shape() {
            return Err(Error::Value(format!(
                "MixedPrecision: master copy of shape {:?} and dtype {} does not fit a parameter of shape {:?} (master dtype {})",
                xt.shape(),
                xt.dtype().name(),
                x.shape(),
                self.master.name()
            )));
        }
        if xt.device() != Device::Cpu {
            if x.device() != xt.device() {
                return Err(Error::Device(format!(
                    "MixedPrecision: the master copy is on {} and the parameter on {}: move the optimiser state with the model",
                    xt.device().name(),
                    x.device().name()
                )));
            }
            self.rule.step_(inner, xt, g)?;
            return Ok(xt);
        }
        // a GPU parameter with a float64 master: master and inner state stay on the
        // host (the GPU has no float64); the gradient comes down
        let gm = g.to_device(Device::Cpu)?.cast(self.master)?;
        self.rule.step_(inner, xt, &gm)?;
        Ok(xt)
    }
}

/// The master copy `xt` (on the GPU) rounded to float16, as a new f32 GPU tensor.
#[cfg(feature = "wgpu")]
fn rounded_on_gpu(xt: &Tensor) -> Result<Tensor> {
    use crate::backend::wgpu::{half, GpuBuffer, WgpuStorage};
    use crate::tensor::{Layout, Storage};
    let src = xt.contiguous()?;
    let Storage::Wgpu(s) = src.storage() else {
        return Err(Error::Device(format!("MixedPrecision: a master copy on {} where the GPU was expected", xt.device().name())));
    };
    let n = xt.numel();
    let out = GpuBuffer::new(n)?;
    half::round_f16(s.buffer(), &out, n)?;
    Ok(Tensor::from_storage(Storage::Wgpu(WgpuStorage::new(out)), Layout::contiguous(xt.shape())))
}

#[cfg(not(feature = "wgpu"))]
fn rounded_on_gpu(_xt: &Tensor) -> Result<Tensor> { Err(Error::Device("built without the wgpu feature".into())) }

/// `x.dtype()`'s values of `xt`, applied through `f(x, xt)` as f64.
fn combine(x: &mut Tensor, xt: &Tensor, f: impl Fn(f64, f64) -> f64) -> Result<()> {
    let xt = xt.contiguous()?;
    crate::dispatch!(xt.dtype(), M => {
        let src = xt.as_slice::<M>()?;
        crate::dispatch!(x.dtype(), T => {
            for (d, &s) in x.data_mut::<T>()?.iter_mut().zip(src) {
                *d = T::f(f(d.to_f64(), s.to_f64()));
            }
        });
    });
    Ok(())
}

impl Rule for MixedPrecision {
    fn name(&self) -> &'static str { "MixedPrecision" }
    fn fields(&self) -> Vec<(&'static str, Hyper)> { vec![("rule", Hyper::Rule(self.rule.clone()))] }
    /// `rule` replaces the inner rule; any other field is forwarded to it.
    fn set(&mut self, field: &str, v: Hyper) -> Result<()> {
        match field {
            "rule" => match v {
                Hyper::Rule(r) => self.rule = r,
                v => return Err(Error::DType(format!("rule must be a rule, got {v:?}"))),
            },
            _ if self.rule.accepts(field) => self.rule.set(field, v)?,
            _ => return Err(super::unknown_field(self, field)),
        }
        Ok(())
    }
    fn accepts(&self, field: &str) -> bool { field == "rule" || self.rule.accepts(field) }
    /// `(xT, inner)`: the master copy and the inner rule's state for it.
    fn init(&self, x: &Tensor) -> Result<State> {
        let xt = crate::dispatch!(self.master, M => {
            Tensor::from_vec(x.to_vec_f64()?.into_iter().map(M::f).collect::<Vec<M>>(), x.shape())?
        });
        let inner = self.rule.init(&xt)?;
        Ok(State::Tuple(vec![State::Tensor(xt), inner]))
    }
    /// `dx′ = x − xT` rounded to x's dtype, so that `x − dx′` ≈ xT.
    fn apply_(&self, s: &mut State, x: &Tensor, g: &mut Tensor) -> Result<bool> {
        let xt = self.advance(s, x, g)?;
        if xt.device() != Device::Cpu {
            *g = x.sub(&rounded_on_gpu(xt)?)?.detach();
            return Ok(true);
        }
        if x.device() != Device::Cpu {
            let mut d = x.to_device(Device::Cpu)?.detach_copy()?;
            combine(&mut d, xt, |x, xt| x - xt)?;
            *g = d.to_device(x.device())?.detach();
            return Ok(true);
        }
        if g.dtype() != x.dtype() {
            *g = g.cast(x.dtype())?;
        }
        g.assign_(x)?;
        combine(g, xt, |x, xt| x - xt)?;
        Ok(true)
    }
    /// `x ← xT` rounded to x's dtype.
    fn step_(&self, s: &mut State, x: &mut Tensor, g: &Tensor) -> Result<()> {
        let xt = self.advance(s, x, g)?;
        if xt.device() != Device::Cpu {
            x.replace_data_(&rounded_on_gpu(xt)?);
            return Ok(());
        }
        if x.device() == Device::Cpu {
            return combine(x, xt, |_, xt| xt);
        }
        let mut r = Tensor::zeros(x.shape(), x.dtype());
        combine(&mut r, xt, |_, xt| xt)?;
        x.replace_data_(&r.to_device(x.device())?);
        Ok(())
    }
    /// On the GPU with a float32 master: the master copy (x itself) and the inner
    /// rule's state on the GPU, the parameter to be float16-rounded (needs
    /// `shader-f16`). Otherwise the master copy and the inner state on the host.
    fn init_on_device(&self, x: &Tensor) -> Result<State> {
        if x.device() == Device::Cpu || self.master != DType::F32 {
            return self.init(x);
        }
        #[cfg(feature = "wgpu")]
        if x.device() == Device::Wgpu {
            crate::backend::wgpu::half::f16_supported()?;
        }
        let xt = x.cast(DType::F32)?.detach_copy()?;
        let inner = self.rule.init_on_device(&xt)?;
        Ok(State::Tuple(vec![State::Tensor(xt), inner]))
    }
    fn box_clone(&self) -> Box<dyn Rule> { Box::new(self.clone()) }
}
