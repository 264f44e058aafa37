//! Elementwise ops: unary maps, numpy-broadcasting binary ops, comparisons. The checks
//! and tape records are here; the kernels are the backend's (`backend/cpu/elementwise.rs`
//! on the CPU).
use super::layout::{broadcast_shapes, Layout};
use super::{DType, Tensor};
use crate::autodiff::{record, Op};
use crate::error::Result;

pub use crate::backend::{BinaryOp, CmpOp, UnaryOp};
pub use crate::backend::cpu::elementwise::{sigmoid, softplus};
pub(crate) use crate::backend::cpu::elementwise::{exp_fast, map_slice, mul_deriv_inplace, mul_deriv_map, unary_inplace, unary_map, wide_fn};

/// The backward kernel of a unary op: `g · f′(x, y)`.
pub(crate) fn unary_backward(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Tensor> {
    let g = g.cast(x.dtype())?;
    let s = x.storage().unary_backward(x.layout(), y.storage(), y.layout(), g.storage(), g.layout(), op)?;
    Ok(Tensor::from_storage(s, Layout::contiguous(x.shape())))
}

impl Tensor {
    /// Apply a unary op (recorded on the tape).
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        let s = self.storage().unary(self.layout(), op)?;
        let out = Tensor::from_storage(s, Layout::contiguous(self.shape()));
        record(&[self], &out, || Op::Unary { op, x: self.clone(), y: out.clone() });
        Ok(out)
    }
    /// Apply a binary op with numpy broadcasting and dtype promotion (recorded).
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
    pub fn sub(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Sub) }
    /// `self · o` elementwise, broadcasting.
    pub fn mul(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Mul) }
    /// `self / o`, broadcasting.
    pub fn div(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Div) }
    /// `selfᵒ` elementwise, broadcasting.
    pub fn pow(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Pow) }
    /// The elementwise larger of `self` and `o`.
    pub fn maximum(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Max) }
    /// The elementwise smaller of `self` and `o`.
    pub fn minimum(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Min) }
    /// `self + v`.
    pub fn add_scalar(&self, v: f64) -> Result<Tensor> { self.with_scalar(v, BinaryOp::Add, false) }
    /// `self · v`.
    pub fn mul_scalar(&self, v: f64) -> Result<Tensor> { self.with_scalar(v, BinaryOp::Mul, false) }
    /// `v - self`
    pub fn rsub_scalar(&self, v: f64) -> Result<Tensor> { self.with_scalar(v, BinaryOp::Sub, true) }
    /// `selfᵖ` for a number `p`.
    pub fn powf(&self, p: f64) -> Result<Tensor> {
        if p == 2.0 { self.unary(UnaryOp::Square) } else { self.with_scalar(p, BinaryOp::Pow, false) }
    }

    /// `−self`.
    pub fn neg(&self) -> Result<Tensor> { self.unary(UnaryOp::Neg) }
    /// `e^self`.
    pub fn exp(&self) -> Result<Tensor> { self.unary(UnaryOp::Exp) }
    /// The natural logarithm.
    pub fn log(&self) -> Result<Tensor> { self.unary(UnaryOp::Log) }
    /// The square root.
    pub fn sqrt(&self) -> Result<Tensor> { self.unary(UnaryOp::Sqrt) }
    /// The absolute value.
    pub fn abs(&self) -> Result<Tensor> { self.unary(UnaryOp::Abs) }
    /// `tanh`.
    pub fn tanh(&self) -> Result<Tensor> { self.unary(UnaryOp::Tanh) }
    /// The logistic function.
    pub fn sigmoid(&self) -> Result<Tensor> { self.unary(UnaryOp::Sigmoid) }
    /// `max(0, x)`.
    pub fn relu(&self) -> Result<Tensor> { self.unary(UnaryOp::Relu) }
    /// `x` where positive, else `a·x`.
    pub fn leakyrelu(&self, a: f64) -> Result<Tensor> { self.unary(UnaryOp::LeakyRelu(a)) }
    /// `x` where positive, else `a·(eˣ − 1)`.
    pub fn elu(&self, a: f64) -> Result<Tensor> { self.unary(UnaryOp::Elu(a)) }
    /// GELU (tanh approximation).
    pub fn gelu(&self) -> Result<Tensor> { self.unary(UnaryOp::Gelu) }
    /// `x·σ(x)`.
    pub fn swish(&self) -> Result<Tensor> { self.unary(UnaryOp::Swish) }
    /// `log(1 + eˣ)`.
    pub fn softplus(&self) -> Result<Tensor> { self.unary(UnaryOp::Softplus) }
    /// `x²`.
    pub fn square(&self) -> Result<Tensor> { self.unary(UnaryOp::Square) }
    /// The sign: −1, 0 or 1.
    pub fn sign(&self) -> Result<Tensor> { self.unary(UnaryOp::Sign) }
}
