//! Elementwise ops: unary maps, numpy-broadcasting binary ops, comparisons.
//!
//! Each unary op has its value and its derivative side by side (`fwd` / `deriv`), so
//! the backward pass is one fused kernel `g · f′(x, y)`.
use rayon::prelude::*;

use super::layout::{broadcast_shapes, for_each_offset2};
use super::{DType, Float, Tensor, PAR_THRESHOLD};
use crate::autodiff::{record, Op};
use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    Tanh,
    Sigmoid,
    Relu,
    LeakyRelu(f64),
    Elu(f64),
    Gelu,
    Swish,
    Softplus,
    Square,
    Sign,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

#[inline(always)]
pub fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}
#[inline(always)]
pub fn softplus<T: Float>(x: T) -> T { x.max(T::zero()) + (-x.abs()).exp().ln_1p() }

const GELU_C: f64 = 0.7978845608028654; // sqrt(2/pi)
const GELU_A: f64 = 0.044715;

impl UnaryOp {
    /// y = f(x)
    #[inline(always)]
    pub fn fwd<T: Float>(self, x: T) -> T {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Sigmoid => sigmoid(x),
            // `x > 0 ? x : 0` lets NaN propagate, as NNlib's relu does
            UnaryOp::Relu => if x < T::zero() { T::zero() } else { x },
            UnaryOp::LeakyRelu(a) => if x > T::zero() { x } else { T::f(a) * x },
            UnaryOp::Elu(a) => if x >= T::zero() { x } else { T::f(a) * x.exp_m1() },
            UnaryOp::Gelu => {
                let u = T::f(GELU_C) * (x + T::f(GELU_A) * x * x * x);
                T::f(0.5) * x * (T::one() + u.tanh())
            }
            UnaryOp::Swish => x * sigmoid(x),
            UnaryOp::Softplus => softplus(x),
            UnaryOp::Square => x * x,
            UnaryOp::Sign => if x > T::zero() { T::one() } else if x < T::zero() { -T::one() } else { x * T::zero() },
        }
    }
    /// dy/dx, given the input x and the output y.
    #[inline(always)]
    pub fn deriv<T: Float>(self, x: T, y: T) -> T {
        let one = T::one();
        match self {
            UnaryOp::Neg => -one,
            UnaryOp::Exp => y,
            UnaryOp::Log => one / x,
            UnaryOp::Sqrt => T::f(0.5) / y,
            UnaryOp::Abs => if x > T::zero() { one } else if x < T::zero() { -one } else { T::zero() },
            UnaryOp::Tanh => one - y * y,
            UnaryOp::Sigmoid => y * (one - y),
            UnaryOp::Relu => if x > T::zero() { one } else { T::zero() },
            UnaryOp::LeakyRelu(a) => if x > T::zero() { one } else { T::f(a) },
            UnaryOp::Elu(a) => if x >= T::zero() { one } else { y + T::f(a) },
            UnaryOp::Gelu => {
                let x2 = x * x;
                let t = (T::f(GELU_C) * (x + T::f(GELU_A) * x2 * x)).tanh();
                T::f(0.5) * (one + t) + T::f(0.5) * x * (one - t * t) * T::f(GELU_C) * (one + T::f(3.0 * GELU_A) * x2)
            }
            UnaryOp::Swish => {
                let s = sigmoid(x);
                s + x * s * (one - s)
            }
            UnaryOp::Softplus => sigmoid(x),
            UnaryOp::Square => T::f(2.0) * x,
            UnaryOp::Sign => T::zero(),
        }
    }
}

impl BinaryOp {
    #[inline(always)]
    pub fn fwd<T: Float>(self, a: T, b: T) -> T {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
            // NaN-propagating, like numpy's maximum
            BinaryOp::Max => if a.is_nan() || a >= b { a } else { b },
            BinaryOp::Min => if a.is_nan() || a <= b { a } else { b },
        }
    }
}

impl CmpOp {
    #[inline(always)]
    fn test<T: Float>(self, a: T, b: T) -> bool {
        match self {
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
        }
    }
}

/// Map a contiguous slice, on rayon above the size threshold.
pub(crate) fn map_slice<T: Float>(src: &[T], f: impl Fn(T) -> T + Sync + Send) -> Vec<T> {
    if src.len() >= PAR_THRESHOLD {
        let mut out = Vec::new();
        src.par_iter().map(|&v| f(v)).collect_into_vec(&mut out);
        out
    } else {
        src.iter().map(|&v| f(v)).collect()
    }
}

/// Combine two equally long slices, on rayon above the size threshold.
pub(crate) fn zip_slices<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync + Send) -> Vec<T> {
    if a.len() >= PAR_THRESHOLD {
        let mut out = Vec::new();
        a.par_iter().zip(b.par_iter()).map(|(&x, &y)| f(x, y)).collect_into_vec(&mut out);
        out
    } else {
        a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
    }
}

/// Broadcast `a` and `b` (already of dtype T) and combine them elementwise.
pub(crate) fn broadcast_zip<T: Float>(a: &Tensor, b: &Tensor, f: impl Fn(T, T) -> T + Sync + Send) -> Result<Tensor> {
    let shape = broadcast_shapes(a.shape(), b.shape())?;
    if a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous() {
        return Ok(Tensor::from_cpu(T::vec_into(zip_slices(a.as_slice::<T>()?, b.as_slice::<T>()?, f)), &shape));
    }
    if b.numel() == 1 && a.shape() == shape.as_slice() && a.is_contiguous() {
        let bv = b.contiguous().as_slice::<T>()?[0];
        return Ok(Tensor::from_cpu(T::vec_into(map_slice(a.as_slice::<T>()?, |x| f(x, bv))), &shape));
    }
    if a.numel() == 1 && b.shape() == shape.as_slice() && b.is_contiguous() {
        let av = a.contiguous().as_slice::<T>()?[0];
        return Ok(Tensor::from_cpu(T::vec_into(map_slice(b.as_slice::<T>()?, |y| f(av, y))), &shape));
    }
    let (la, lb) = (a.layout().broadcast_to(&shape)?, b.layout().broadcast_to(&shape)?);
    let (ra, rb) = (a.raw::<T>()?, b.raw::<T>()?);
    let mut out = Vec::with_capacity(shape.iter().product());
    for_each_offset2(&shape, &la.strides, la.offset, &lb.strides, lb.offset, |_, i, j| out.push(f(ra[i], rb[j])));
    Ok(Tensor::from_cpu(T::vec_into(out), &shape))
}

/// The backward kernel of a unary op: `g · f′(x, y)`.
pub(crate) fn unary_backward(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Tensor> {
    let (x, y, g) = (x.contiguous(), y.contiguous(), g.cast(x.dtype())?.contiguous());
    crate::dispatch!(x.dtype(), T => {
        let (xs, ys, gs) = (x.as_slice::<T>()?, y.as_slice::<T>()?, g.as_slice::<T>()?);
        let out: Vec<T> = if xs.len() >= PAR_THRESHOLD {
            let mut o = Vec::new();
            (xs, ys, gs).into_par_iter().map(|(&a, &b, &c)| c * op.deriv(a, b)).collect_into_vec(&mut o);
            o
        } else {
            xs.iter().zip(ys).zip(gs).map(|((&a, &b), &c)| c * op.deriv(a, b)).collect()
        };
        Ok(Tensor::from_cpu(T::vec_into(out), x.shape()))
    })
}

impl Tensor {
    /// Apply a unary op (recorded on the tape).
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        let x = self.contiguous();
        let out = crate::dispatch!(self.dtype(), T => {
            Tensor::from_cpu(T::vec_into(map_slice(x.as_slice::<T>()?, |v| op.fwd(v))), self.shape())
        });
        record(&[self], &out, || Op::Unary { op, x: self.clone(), y: out.clone() });
        Ok(out)
    }
    /// Apply a binary op with numpy broadcasting and dtype promotion (recorded).
    pub fn binary(&self, other: &Tensor, op: BinaryOp) -> Result<Tensor> {
        let dt = DType::promote(self.dtype(), other.dtype());
        let (a, b) = (self.cast(dt)?, other.cast(dt)?);
        let out = crate::dispatch!(dt, T => broadcast_zip::<T>(&a, &b, |x, y| op.fwd(x, y))?);
        record(&[&a, &b], &out, || Op::Binary { op, a: a.clone(), b: b.clone() });
        Ok(out)
    }
    /// An elementwise comparison giving 1.0 where true and 0.0 elsewhere (no gradient).
    pub fn compare(&self, other: &Tensor, op: CmpOp) -> Result<Tensor> {
        let dt = DType::promote(self.dtype(), other.dtype());
        let (a, b) = (self.cast(dt)?, other.cast(dt)?);
        crate::dispatch!(dt, T => broadcast_zip::<T>(&a, &b, |x, y| if op.test(x, y) { T::one() } else { T::zero() }))
    }
    fn with_scalar(&self, v: f64, op: BinaryOp, scalar_first: bool) -> Result<Tensor> {
        let s = Tensor::scalar(v, self.dtype());
        if scalar_first { s.binary(self, op) } else { self.binary(&s, op) }
    }

    pub fn add(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Add) }
    pub fn sub(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Sub) }
    pub fn mul(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Mul) }
    pub fn div(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Div) }
    pub fn pow(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Pow) }
    pub fn maximum(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Max) }
    pub fn minimum(&self, o: &Tensor) -> Result<Tensor> { self.binary(o, BinaryOp::Min) }
    pub fn add_scalar(&self, v: f64) -> Result<Tensor> { self.with_scalar(v, BinaryOp::Add, false) }
    pub fn mul_scalar(&self, v: f64) -> Result<Tensor> { self.with_scalar(v, BinaryOp::Mul, false) }
    /// `v - self`
    pub fn rsub_scalar(&self, v: f64) -> Result<Tensor> { self.with_scalar(v, BinaryOp::Sub, true) }
    pub fn powf(&self, p: f64) -> Result<Tensor> {
        if p == 2.0 { self.unary(UnaryOp::Square) } else { self.with_scalar(p, BinaryOp::Pow, false) }
    }

    pub fn neg(&self) -> Result<Tensor> { self.unary(UnaryOp::Neg) }
    pub fn exp(&self) -> Result<Tensor> { self.unary(UnaryOp::Exp) }
    pub fn log(&self) -> Result<Tensor> { self.unary(UnaryOp::Log) }
    pub fn sqrt(&self) -> Result<Tensor> { self.unary(UnaryOp::Sqrt) }
    pub fn abs(&self) -> Result<Tensor> { self.unary(UnaryOp::Abs) }
    pub fn tanh(&self) -> Result<Tensor> { self.unary(UnaryOp::Tanh) }
    pub fn sigmoid(&self) -> Result<Tensor> { self.unary(UnaryOp::Sigmoid) }
    pub fn relu(&self) -> Result<Tensor> { self.unary(UnaryOp::Relu) }
    pub fn leakyrelu(&self, a: f64) -> Result<Tensor> { self.unary(UnaryOp::LeakyRelu(a)) }
    pub fn elu(&self, a: f64) -> Result<Tensor> { self.unary(UnaryOp::Elu(a)) }
    pub fn gelu(&self) -> Result<Tensor> { self.unary(UnaryOp::Gelu) }
    pub fn swish(&self) -> Result<Tensor> { self.unary(UnaryOp::Swish) }
    pub fn softplus(&self) -> Result<Tensor> { self.unary(UnaryOp::Softplus) }
    pub fn square(&self) -> Result<Tensor> { self.unary(UnaryOp::Square) }
    pub fn sign(&self) -> Result<Tensor> { self.unary(UnaryOp::Sign) }
}
