//! Elementwise ops: unary maps, numpy-broadcasting binary ops, comparisons. The checks
//! and tape records are here; the kernels are the backend's (`backend/cpu/elementwise.rs`
//! on the CPU).
use super::layout::{broadcast_shapes, Layout};
use super::{DType, Tensor};
use crate::autodiff::{record, Op};
use crate::error::Result;

pub use crate::backend::{BinaryOp, CmpOp, UnaryOp};
pub use crate::backend::cpu::elementwise::{sigmoid, softplus};
pub(crate) use crate::backend::cpu::elementwise::{exp_fast, mul_deriv_inplace, mul_deriv_map, unary_inplace, unary_map, wide_fn};

/// The backward kernel of a unary op: `g · f′(x, y)`.
pub(crate) fn unary_backward(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Tensor> {
    let g = g.cast(x.dtype())?;
    let s = x.storage().unary_backward(x.layout(), y.storage(), y.layout(), g.storage(), g.layout(), op)?;
    Ok(Tensor::from_storage(s, Layout::contiguous(x.shape())))
}

/// Elementwise maps, broadcasting binary ops and comparisons, each recorded on the tape.
///
/// ```
/// use flux_core::Tensor;
/// let x = Tensor::from_vec(vec![1.0f64, 4.0], &[2]).unwrap();
/// assert_eq!(x.sqrt().unwrap().mul(&x).unwrap().to_vec_f64().unwrap(), vec![1.0, 8.0]);
/// ```
impl Tensor {
    /// Apply a unary op (recorded on the tape).
    ///
    /// ```
    /// use flux_core::{Tensor, tensor::elementwise::UnaryOp};
    /// let x = Tensor::from_vec(vec![-1.0f32, 2.0], &[2]).unwrap();
    /// assert_eq!(x.unary(UnaryOp::Abs).unwrap().to_vec_f64().unwrap(), vec![1.0, 2.0]);
    /// ```
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        let s = self.storage().unary(self.layout(), op)?;
        let out = Tensor::from_storage(s, Layout::contiguous(self.shape()));
        record(&[self], &out, || Op::Unary { op, x: self.clone(), y: out.clone() });
        Ok(out)
    }
    /// Apply a binary op with numpy broadcasting and dtype promotion (recorded).
    ///
    /// ```
    /// use flux_core::{DType, Tensor, tensor::elementwise::BinaryOp};
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    /// let b = Tensor::from_vec(vec![10.0f64, 20.0], &[2]).unwrap();
    /// let c = a.binary(&b, BinaryOp::Add).unwrap(); // (2, 2) + (2,), f32 promoted to f64
    /// assert_eq!((c.dtype(), c.to_vec_f64().unwrap()), (DType::F64, vec![11.0, 22.0, 13.0, 24.0]));
    /// ```
    pub fn binary(&self, other: &Tensor, op: BinaryOp) -> Result<Tensor> {
        let dt = DType::promote(self.dtype(), other.dtype());
        let (a, b) = (self.cast(dt)?, other.cast(dt)?);
        let shape = broadcast_shapes(a.shape(), b.shape())?;
        let s = a.storage().binary(a.layout(), b.storage(), b.layout(), &shape, op)?;
        let out = Tensor::from_storage(s, Layout::contiguous(&shape));
        record(&[&a, &b], &out, || Op::Binary { op, a: a.clone(), b: b.clone() });
        Ok(out)
    }
    /// An elementwise comparison giving 1.0 where true and 0.0 elsewhere (no gradient).
    ///
    /// ```
    /// use flux_core::{Tensor, tensor::elementwise::CmpOp};
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap();
    /// let two = Tensor::from_vec(vec![2.0f32], &[1]).unwrap();
    /// assert_eq!(a.compare(&two, CmpOp::Ge).unwrap().to_vec_f64().unwrap(), vec![0.0, 1.0, 1.0]);
    /// ```
    pub fn compare(&self, other: &Tensor, op: CmpOp) -> Result<Tensor> {
        let dt = DType::promote(self.dtype(), other.dtype());
        let (a, b) = (self.cast(dt)?, other.cast(dt)?);
        let shape = broadcast_shapes(a.shape(), b.shape())?;
        let s = a.storage().cmp(a.layout(), b.storage(), b.layout(), &shape, op)?;
        Ok(Tensor::from_storage(s, Layout::contiguous(&shape)))
    }
    fn with_scalar(&self, v: f64, op: BinaryOp, scalar_first: bool) -> Result<Tensor> {
        let s = self.full_beside(&[], v, self.dtype())?;
        if scalar_first { s.binary(self, op) } else { self.binary(&s, op) }
    }

    /// `self + o`, broadcasting as numpy.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f64, 2.0], &[2]).unwrap();
    /// assert_eq!(a.add(&a).unwrap().to_vec_f64().unwrap(), vec![2.0, 4.0]);
    /// ```
    pub fn add(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Add) }
    /// `self − o`, broadcasting.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![5.0f64, 7.0], &[2]).unwrap();
    /// let b = Tensor::from_vec(vec![1.0f64], &[1]).unwrap();
    /// assert_eq!(a.sub(&b).unwrap().to_vec_f64().unwrap(), vec![4.0, 6.0]);
    /// ```
    pub fn sub(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Sub) }
    /// `self · o` elementwise, broadcasting.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![2.0f64, 3.0], &[2]).unwrap();
    /// assert_eq!(a.mul(&a).unwrap().to_vec_f64().unwrap(), vec![4.0, 9.0]);
    /// ```
    pub fn mul(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Mul) }
    /// `self / o`, broadcasting.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![3.0f64, 8.0], &[2]).unwrap();
    /// let b = Tensor::from_vec(vec![2.0f64, 4.0], &[2]).unwrap();
    /// assert_eq!(a.div(&b).unwrap().to_vec_f64().unwrap(), vec![1.5, 2.0]);
    /// ```
    pub fn div(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Div) }
    /// `selfᵒ` elementwise, broadcasting.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![2.0f64, 3.0], &[2]).unwrap();
    /// let p = Tensor::from_vec(vec![3.0f64, 2.0], &[2]).unwrap();
    /// assert_eq!(a.pow(&p).unwrap().to_vec_f64().unwrap(), vec![8.0, 9.0]);
    /// ```
    pub fn pow(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Pow) }
    /// The elementwise larger of `self` and `o`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f64, 5.0], &[2]).unwrap();
    /// let b = Tensor::from_vec(vec![3.0f64, 2.0], &[2]).unwrap();
    /// assert_eq!(a.maximum(&b).unwrap().to_vec_f64().unwrap(), vec![3.0, 5.0]);
    /// ```
    pub fn maximum(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Max) }
    /// The elementwise smaller of `self` and `o`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f64, 5.0], &[2]).unwrap();
    /// let b = Tensor::from_vec(vec![3.0f64, 2.0], &[2]).unwrap();
    /// assert_eq!(a.minimum(&b).unwrap().to_vec_f64().unwrap(), vec![1.0, 2.0]);
    /// ```
    pub fn minimum(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Min) }
    /// `self + v`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
    /// assert_eq!(a.add_scalar(0.5).unwrap().to_vec_f64().unwrap(), vec![1.5, 2.5]);
    /// ```
    pub fn add_scalar(&self, v: f64) -> Result<Tensor> { self.with_scalar(v, BinaryOp::Add, false) }
    /// `self · v`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
    /// assert_eq!(a.mul_scalar(3.0).unwrap().to_vec_f64().unwrap(), vec![3.0, 6.0]);
    /// ```
    pub fn mul_scalar(&self, v: f64) -> Result<Tensor> { self.with_scalar(v, BinaryOp::Mul, false) }
    /// `v - self`
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
    /// assert_eq!(a.rsub_scalar(1.0).unwrap().to_vec_f64().unwrap(), vec![0.0, -1.0]); // 1 − a
    /// ```
    pub fn rsub_scalar(&self, v: f64) -> Result<Tensor> { self.with_scalar(v, BinaryOp::Sub, true) }
    /// `selfᵖ` for a number `p`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![4.0f64, 9.0], &[2]).unwrap();
    /// assert_eq!(a.powf(0.5).unwrap().to_vec_f64().unwrap(), vec![2.0, 3.0]);
    /// ```
    pub fn powf(&self, p: f64) -> Result<Tensor> {
        if p == 2.0 { self.unary(UnaryOp::Square) } else { self.with_scalar(p, BinaryOp::Pow, false) }
    }

    /// `−self`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f64, -2.0], &[2]).unwrap();
    /// assert_eq!(a.neg().unwrap().to_vec_f64().unwrap(), vec![-1.0, 2.0]);
    /// ```
    pub fn neg(&self) -> Result<Tensor> { self.unary(UnaryOp::Neg) }
    /// `e^self`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![0.0f64, 1.0], &[2]).unwrap();
    /// let y = a.exp().unwrap().to_vec_f64().unwrap();
    /// assert!(y[0] == 1.0 && (y[1] - std::f64::consts::E).abs() < 1e-12);
    /// ```
    pub fn exp(&self) -> Result<Tensor> { self.unary(UnaryOp::Exp) }
    /// The natural logarithm.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f64, std::f64::consts::E], &[2]).unwrap();
    /// let y = a.log().unwrap().to_vec_f64().unwrap();
    /// assert!(y[0] == 0.0 && (y[1] - 1.0).abs() < 1e-12);
    /// ```
    pub fn log(&self) -> Result<Tensor> { self.unary(UnaryOp::Log) }
    /// The square root.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![4.0f32, 0.25], &[2]).unwrap();
    /// assert_eq!(a.sqrt().unwrap().to_vec_f64().unwrap(), vec![2.0, 0.5]);
    /// ```
    pub fn sqrt(&self) -> Result<Tensor> { self.unary(UnaryOp::Sqrt) }
    /// The absolute value.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![-3.0f32, 2.0], &[2]).unwrap();
    /// assert_eq!(a.abs().unwrap().to_vec_f64().unwrap(), vec![3.0, 2.0]);
    /// ```
    pub fn abs(&self) -> Result<Tensor> { self.unary(UnaryOp::Abs) }
    /// `tanh`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![0.0f64, 1.0], &[2]).unwrap();
    /// let y = a.tanh().unwrap().to_vec_f64().unwrap();
    /// assert_eq!(y[0], 0.0);
    /// assert!((y[1] - 1f64.tanh()).abs() < 1e-12);
    /// ```
    pub fn tanh(&self) -> Result<Tensor> { self.unary(UnaryOp::Tanh) }
    /// The logistic function.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![0.0f64, 2.0], &[2]).unwrap();
    /// let y = a.sigmoid().unwrap().to_vec_f64().unwrap();
    /// assert_eq!(y[0], 0.5);
    /// assert!((y[1] - 1.0 / (1.0 + (-2f64).exp())).abs() < 1e-12);
    /// ```
    pub fn sigmoid(&self) -> Result<Tensor> { self.unary(UnaryOp::Sigmoid) }
    /// `max(0, x)`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![-1.0f32, 2.0], &[2]).unwrap();
    /// assert_eq!(a.relu().unwrap().to_vec_f64().unwrap(), vec![0.0, 2.0]);
    /// ```
    pub fn relu(&self) -> Result<Tensor> { self.unary(UnaryOp::Relu) }
    /// `x` where positive, else `a·x`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![-2.0f64, 3.0], &[2]).unwrap();
    /// assert_eq!(a.leakyrelu(0.1).unwrap().to_vec_f64().unwrap(), vec![-0.2, 3.0]);
    /// ```
    pub fn leakyrelu(&self, a: f64) -> Result<Tensor> { self.unary(UnaryOp::LeakyRelu(a)) }
    /// `x` where positive, else `a·(eˣ − 1)`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![-1.0f64, 3.0], &[2]).unwrap();
    /// let y = a.elu(1.0).unwrap().to_vec_f64().unwrap();
    /// assert!((y[0] - ((-1f64).exp() - 1.0)).abs() < 1e-12);
    /// assert_eq!(y[1], 3.0);
    /// ```
    pub fn elu(&self, a: f64) -> Result<Tensor> { self.unary(UnaryOp::Elu(a)) }
    /// GELU (tanh approximation).
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![0.0f64, 10.0, -10.0], &[3]).unwrap();
    /// let y = a.gelu().unwrap().to_vec_f64().unwrap();
    /// assert_eq!(y[0], 0.0);
    /// assert!((y[1] - 10.0).abs() < 1e-6 && y[2].abs() < 1e-6);
    /// ```
    pub fn gelu(&self) -> Result<Tensor> { self.unary(UnaryOp::Gelu) }
    /// `x·σ(x)`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![0.0f64, 2.0], &[2]).unwrap();
    /// let y = a.swish().unwrap().to_vec_f64().unwrap();
    /// assert_eq!(y[0], 0.0);
    /// assert!((y[1] - 2.0 / (1.0 + (-2f64).exp())).abs() < 1e-12); // x·σ(x)
    /// ```
    pub fn swish(&self) -> Result<Tensor> { self.unary(UnaryOp::Swish) }
    /// `log(1 + eˣ)`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![0.0f64], &[1]).unwrap();
    /// assert!((a.softplus().unwrap().item().unwrap() - 2f64.ln()).abs() < 1e-12);
    /// ```
    pub fn softplus(&self) -> Result<Tensor> { self.unary(UnaryOp::Softplus) }
    /// `x²`.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![-3.0f32, 2.0], &[2]).unwrap();
    /// assert_eq!(a.square().unwrap().to_vec_f64().unwrap(), vec![9.0, 4.0]);
    /// ```
    pub fn square(&self) -> Result<Tensor> { self.unary(UnaryOp::Square) }
    /// The sign: −1, 0 or 1.
    ///
    /// ```
    /// use flux_core::Tensor;
    /// let a = Tensor::from_vec(vec![-3.0f32, 0.0, 2.0], &[3]).unwrap();
    /// assert_eq!(a.sign().unwrap().to_vec_f64().unwrap(), vec![-1.0, 0.0, 1.0]);
    /// ```
    pub fn sign(&self) -> Result<Tensor> { self.unary(UnaryOp::Sign) }
}
