//! The gradient table: for every primitive op, how the output gradient `g` becomes the
//! gradients of its inputs. Runs with the tape closed, so nothing here is recorded.
use std::fmt::Debug;
use std::sync::Arc;

use crate::error::Result;
use crate::tensor::elementwise::{unary_backward, BinaryOp, UnaryOp};
use crate::tensor::movement::{index_add, slice_backward, SliceDim};
use crate::tensor::{DType, Tensor};

/// The backward rule of a fused op defined outside this table (conv, pooling, norms,
/// losses…): given the output gradient, the gradient of each input (`None` where
/// `needs[i]` is false or the input has no gradient).
///
/// ```
/// use flux_core::{autodiff::{self, Backward}, ops::{apply, FusedOp}, Result, Tensor};
/// // y = 3x as a fused op with its hand-written backward
/// #[derive(Debug)]
/// struct Triple;
/// #[derive(Debug)]
/// struct TripleBack;
/// impl Backward for TripleBack {
///     fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
///         Ok(vec![if needs[0] { Some(g.mul_scalar(3.0)?) } else { None }])
///     }
/// }
/// impl FusedOp for Triple {
///     fn name(&self) -> &'static str { "triple" }
///     fn cpu_fwd(&self, xs: &[&Tensor]) -> Result<(Tensor, Box<dyn Backward>)> {
///         let y = Tensor::from_vec(xs[0].to_vec::<f64>()?.iter().map(|v| 3.0 * v).collect(), xs[0].shape())?;
///         Ok((y, Box::new(TripleBack)))
///     }
/// }
/// let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2]).unwrap();
/// let (y, g) = autodiff::value_and_grad(&[&x], || apply(&Triple, &[&x])?.sum_all()).unwrap();
/// assert_eq!((y.item().unwrap(), g[0].as_ref().unwrap().to_vec_f64().unwrap()), (9.0, vec![3.0, 3.0]));
/// ```
pub trait Backward: Send + Sync + Debug {
    /// The gradient of each input from the output gradient `g`.
    ///
    /// ```
    /// use flux_core::{autodiff::Backward, Result, Tensor};
    /// #[derive(Debug)]
    /// struct Halve;
    /// impl Backward for Halve {
    ///     fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> { Ok(vec![Some(g.mul_scalar(0.5)?)]) }
    /// }
    /// let g = Halve.backward(&Tensor::from_vec(vec![4.0f64], &[1]).unwrap(), &[true]).unwrap();
    /// assert_eq!(g[0].as_ref().unwrap().to_vec_f64().unwrap(), vec![2.0]);
    /// ```
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>>;
}

#[derive(Debug)]
pub(crate) enum Op {
    /// A watched variable.
    Leaf,
    Cast { from: DType },
    Unary { op: UnaryOp, x: Tensor, y: Tensor },
    Binary { op: BinaryOp, a: Tensor, b: Tensor },
    /// sum (scale 1) or mean (scale 1/count) over `dims`.
    Sum { in_shape: Vec<usize>, dims: Vec<usize>, scale: f64 },
    /// max or min over `dims`; `y` is the result (keepdims or not).
    Extremum { x: Tensor, y: Tensor, dims: Vec<usize> },
    Reshape { in_shape: Vec<usize> },
    Permute { perm: Vec<usize> },
    Expand { in_shape: Vec<usize> },
    Slice { in_shape: Vec<usize>, dims: Vec<SliceDim> },
    IndexSelect { in_shape: Vec<usize>, axis: usize, idx: Arc<Vec<usize>> },
    Concat { axis: usize, sizes: Vec<usize> },
    Matmul { a: Tensor, b: Tensor },
    Softmax { y: Tensor, dim: usize, log: bool },
    Custom(Box<dyn Backward>),
}

/// `g` with the reduced `dims` put back as size-1 dimensions, broadcast to `shape`.
fn expand_back(g: &Tensor, shape: &[usize], dims: &[usize]) -> Result<Tensor> {
    let keep: Vec<usize> = shape.iter().enumerate().map(|(i, &s)| if dims.contains(&i) { 1 } else { s }).collect();
    g.reshape(&keep)?.broadcast_to(shape)
}

impl Op {
    pub(crate) fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let one = |t: Tensor| Ok(vec![Some(t)]);
        match self {
            Op::Leaf => Ok(vec![]),
            Op::Cast { from } => one(g.cast(*from)?),
            Op::Unary { op, x, y } => one(unary_backward(*op, x, y, g)?),
            Op::Binary { op, a, b } => {
                let (sa, sb) = (a.shape(), b.shape());
                let (ga, gb) = match op {
                    BinaryOp::Add => (Some(g.clone()), Some(g.clone())),
                    BinaryOp::Sub => (Some(g.clone()), needs[1].then(|| g.neg()).transpose()?),
                    BinaryOp::Mul => (needs[0].then(|| g.mul(b)).transpose()?, needs[1].then(|| g.mul(a)).transpose()?),
                    BinaryOp::Div => (
                        needs[0].then(|| g.div(b)).transpose()?,
                        needs[1].then(|| g.mul(a)?.div(&b.square()?)?.neg()).transpose()?,
                    ),
                    BinaryOp::Pow => {
                        // d/da a^b = b·a^(b−1);  d/db a^b = a^b·ln|a| (the real part of the
                        // complex log). At a = 0 the limits of ChainRules' _pow_grad_x/p:
                        // d/da is 0 for b = 0 (not 0·∞), d/db is 0 for b > 0 (not 0·−∞)
                        // and NaN for b ≤ 0
                        use crate::tensor::{elementwise::CmpOp, misc::where_};
                        let zero = a.full_beside(&[], 0.0, a.dtype())?;
                        let ga = needs[0].then(|| -> Result<Tensor> {
                            let d = b.mul(&a.pow(&b.add_scalar(-1.0)?)?)?;
                            g.mul(&where_(&b.compare(&zero, CmpOp::Eq)?, &zero, &d)?)
                        });
                        let gb = needs[1].then(|| -> Result<Tensor> {
                            let d = a.pow(b)?.mul(&a.abs()?.log()?)?;
                            let at0 = where_(&b.compare(&zero, CmpOp::Gt)?, &zero, &zero.add_scalar(f64::NAN)?)?;
                            g.mul(&where_(&a.compare(&zero, CmpOp::Eq)?, &at0, &d)?)
                        });
                        (ga.transpose()?, gb.transpose()?)
                    }
                    BinaryOp::Max | BinaryOp::Min => {
                        // a wins strictly → all to a; a tie → half each, as ChainRules'
                        // max/min rules and our max/min reductions do (a `>=` mask gave a
                        // tie's whole gradient to `a`)
                        use crate::tensor::elementwise::CmpOp;
                        let cmp = if *op == BinaryOp::Max { CmpOp::Gt } else { CmpOp::Lt };
                        let mask = a.compare(b, cmp)?.add(&a.compare(b, CmpOp::Eq)?.mul_scalar(0.5)?)?;
                        (needs[0].then(|| g.mul(&mask)).transpose()?, needs[1].then(|| g.mul(&mask.rsub_scalar(1.0)?)).transpose()?)
                    }
                };
                Ok(vec![ga.map(|t| t.sum_to_shape(sa)).transpose()?, gb.map(|t| t.sum_to_shape(sb)).transpose()?])
            }
            Op::Sum { in_shape, dims, scale } => {
                let e = expand_back(g, in_shape, dims)?.contiguous()?;
                one(if *scale == 1.0 { e } else { e.mul_scalar(*scale)? })
            }
            Op::Extremum { x, y, dims } => {
                // the gradient is shared equally among the positions that attain the extremum
                let yb = expand_back(y, x.shape(), dims)?;
                let mask = x.compare(&yb, crate::tensor::elementwise::CmpOp::Eq)?;
                let count = expand_back(&mask.sum(Some(&dims.iter().map(|&d| d as isize).collect::<Vec<_>>()), true)?, x.shape(), dims)?;
                one(expand_back(g, x.shape(), dims)?.mul(&mask)?.div(&count)?)
            }
            Op::Reshape { in_shape } => one(g.reshape(in_shape)?),
            Op::Permute { perm } => {
                let mut inv = vec![0isize; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    inv[p] = i as isize;
                }
                one(g.permute(&inv)?)
            }
            Op::Expand { in_shape } => one(g.sum_to_shape(in_shape)?),
            Op::Slice { in_shape, dims } => one(slice_backward(in_shape, dims, g)?),
            Op::IndexSelect { in_shape, axis, idx } => one(index_add(in_shape, *axis, idx, g)?),
            Op::Concat { axis, sizes } => {
                let mut out = Vec::with_capacity(sizes.len());
                let mut start = 0;
                for &s in sizes {
                    let dims: Vec<SliceDim> = g
                        .shape()
                        .iter()
                        .enumerate()
                        .map(|(i, &n)| if i == *axis { SliceDim { start, len: s, step: 1 } } else { SliceDim { start: 0, len: n, step: 1 } })
                        .collect();
                    out.push(Some(g.slice(&dims)?.contiguous()?));
                    start += s;
                }
                Ok(out)
            }
            Op::Matmul { a, b } => {
                let ga = needs[0].then(|| g.matmul(&b.t()?)?.sum_to_shape(a.shape())).transpose()?;
                let gb = needs[1].then(|| a.t()?.matmul(g)?.sum_to_shape(b.shape())).transpose()?;
                Ok(vec![ga, gb])
            }
            Op::Softmax { y, dim, log } => {
                let d = [*dim as isize];
                if *log {
                    // x − logsumexp: g − softmax · Σg
                    one(g.sub(&y.exp()?.mul(&g.sum(Some(&d), true)?)?)?)
                } else {
                    // y ⊙ (g − Σ g⊙y)
                    one(y.mul(&g.sub(&g.mul(y)?.sum(Some(&d), true)?)?)?)
                }
            }
            Op::Custom(b) => b.backward(g, needs),
        }
    }
}
