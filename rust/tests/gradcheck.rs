//! Tape gradients of every differentiable op against central finite differences (f64).
//!
//! Each check differentiates `sum(w ⊙ f(x…))` with fixed random weights `w`, so every
//! output element's contribution is tested, not just their sum.
mod common;

use common::*;
use flux_core::nn::{linear, losses, Activation};
use flux_core::tensor::elementwise::UnaryOp;
use flux_core::tensor::movement::SliceDim;
use flux_core::{autodiff, DType, Tensor};

fn rnd(g: &mut Gen, shape: &[usize], lo: f64, hi: f64) -> Tensor { g.nd(shape, lo, hi).tensor() }

/// Values in [lo, hi) that stay at least `gap` away from every kink in `kinks`
/// (finite differences are meaningless across a kink).
fn away_from(g: &mut Gen, shape: &[usize], lo: f64, hi: f64, kinks: &[f64], gap: f64) -> Tensor {
    let n = numel(shape);
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let x = g.uniform(lo, hi);
        if kinks.iter().all(|k| (x - k).abs() > gap) {
            v.push(x);
        }
    }
    t64(v, shape)
}

// ---- unary -------------------------------------------------------------------------------------

#[test]
fn grad_unary_ops() {
    let mut g = Gen::new(100);
    let ops: Vec<(UnaryOp, f64, f64, Vec<f64>)> = vec![
        (UnaryOp::Neg, -3.0, 3.0, vec![]),
        (UnaryOp::Exp, -2.0, 2.0, vec![]),
        (UnaryOp::Log, 0.2, 4.0, vec![]),
        (UnaryOp::Sqrt, 0.2, 4.0, vec![]),
        (UnaryOp::Abs, -3.0, 3.0, vec![0.0]),
        (UnaryOp::Tanh, -3.0, 3.0, vec![]),
        (UnaryOp::Sigmoid, -5.0, 5.0, vec![]),
        (UnaryOp::Relu, -3.0, 3.0, vec![0.0]),
        (UnaryOp::LeakyRelu(0.01), -3.0, 3.0, vec![0.0]),
        (UnaryOp::LeakyRelu(0.3), -3.0, 3.0, vec![0.0]),
        (UnaryOp::Elu(1.0), -3.0, 3.0, vec![0.0]),
        (UnaryOp::Elu(0.7), -3.0, 3.0, vec![0.0]),
        (UnaryOp::Gelu, -4.0, 4.0, vec![]),
        (UnaryOp::Swish, -5.0, 5.0, vec![]),
        (UnaryOp::Softplus, -6.0, 6.0, vec![]),
        (UnaryOp::Square, -3.0, 3.0, vec![]),
        (UnaryOp::Sign, -3.0, 3.0, vec![0.0]),
    ];
    for (op, lo, hi, kinks) in ops {
        let x = away_from(&mut g, &[3, 5], lo, hi, &kinks, 1e-3);
        gradcheck(&[x.clone()], |t| t[0].unary(op));
        // the same through a non-contiguous view: gradient must land in x's layout
        gradcheck(&[x], |t| t[0].t()?.unary(op));
    }
}

#[test]
fn grad_unary_at_kinks_uses_the_documented_subgradient() {
    // at 0: relu′ = 0, abs′ = 0, sign′ = 0, leakyrelu′ = a, elu′ = 1 (x ≥ 0 branch)
    let x = t64(vec![0.0, 0.0], &[2]);
    let d = |op: UnaryOp| {
        let (_, gr) = autodiff::value_and_grad(&[&x], || x.unary(op)?.sum_all()).unwrap();
        vals(gr[0].as_ref().unwrap())
    };
    assert_eq!(d(UnaryOp::Relu), vec![0.0, 0.0]);
    assert_eq!(d(UnaryOp::Abs), vec![0.0, 0.0]);
    assert_eq!(d(UnaryOp::Sign), vec![0.0, 0.0]);
    assert_eq!(d(UnaryOp::LeakyRelu(0.1)), vec![0.1, 0.1]);
    assert_eq!(d(UnaryOp::Elu(1.0)), vec![1.0, 1.0]);
}

#[test]
fn grad_unary_f32_matches_f64() {
    // the f32 kernels give the f64 gradient to f32 precision, in f32
    let mut g = Gen::new(101);
    let x = g.nd(&[7], -2.0, 2.0).map(|v| v as f32 as f64);
    for op in [UnaryOp::Tanh, UnaryOp::Gelu, UnaryOp::Swish, UnaryOp::Softplus, UnaryOp::Sigmoid, UnaryOp::Exp] {
        let x64 = x.tensor();
        let x32 = x.tensor32();
        let (_, g64) = autodiff::value_and_grad(&[&x64], || x64.unary(op)?.sum_all()).unwrap();
        let (_, g32) = autodiff::value_and_grad(&[&x32], || x32.unary(op)?.sum_all()).unwrap();
        let g32 = g32[0].clone().unwrap();
        assert_eq!(g32.dtype(), DType::F32);
        assert_close(&vals(&g32), &vals(g64[0].as_ref().unwrap()), 1e-5, 1e-6);
    }
}

// ---- binary ------------------------------------------------------------------------------------

const SHAPES: &[(&[usize], &[usize])] = &[
    (&[2, 3], &[2, 3]),
    (&[2, 3], &[3]),
    (&[3], &[2, 3]),
    (&[2, 3], &[2, 1]),
    (&[2, 1, 4], &[3, 1]),
    (&[4, 1], &[1, 5]),
    (&[], &[2, 3]),
    (&[2, 3], &[]),
    (&[1, 1], &[2, 1, 3]),
];

#[test]
fn grad_binary_ops_with_broadcasting() {
    let mut g = Gen::new(102);
    type F = fn(&Tensor, &Tensor) -> flux_core::Result<Tensor>;
    let ops: [(&str, F); 5] = [
        ("add", |a, b| a.add(b)),
        ("sub", |a, b| a.sub(b)),
        ("mul", |a, b| a.mul(b)),
        ("div", |a, b| a.div(b)),
        ("pow", |a, b| a.pow(b)),
    ];
    for (name, op) in ops {
        for &(sa, sb) in SHAPES {
            // positive, away from 0, so div and pow (with its log) are smooth
            let a = rnd(&mut g, sa, 0.5, 2.0);
            let b = rnd(&mut g, sb, 0.5, 2.0);
            eprintln!("{name} {sa:?} {sb:?}");
            gradcheck(&[a, b], |t| op(&t[0], &t[1]));
        }
    }
}

#[test]
fn grad_maximum_minimum() {
    let mut g = Gen::new(103);
    for &(sa, sb) in SHAPES {
        // distinct value sets so no ties: a from a grid, b shifted by half a step
        let na = numel(sa);
        let nb = numel(sb);
        let a = t64(g.distinct(na, -2.0, 2.0), sa);
        let b = t64(g.distinct(nb, -2.0, 2.0).iter().map(|v| v + 0.013).collect(), sb);
        gradcheck(&[a.clone(), b.clone()], |t| t[0].maximum(&t[1]));
        gradcheck(&[a, b], |t| t[0].minimum(&t[1]));
    }
}

#[test]
fn grad_scalar_helpers() {
    let mut g = Gen::new(104);
    let x = rnd(&mut g, &[2, 3], 0.5, 2.0);
    gradcheck(&[x.clone()], |t| t[0].add_scalar(3.0));
    gradcheck(&[x.clone()], |t| t[0].mul_scalar(-1.5));
    gradcheck(&[x.clone()], |t| t[0].rsub_scalar(2.0));
    gradcheck(&[x.clone()], |t| t[0].powf(2.0));
    gradcheck(&[x.clone()], |t| t[0].powf(-0.5));
    gradcheck(&[x], |t| t[0].powf(3.0));
}

// ---- reductions --------------------------------------------------------------------------------

fn subsets(n: usize) -> Vec<Vec<isize>> { (0..1usize << n).map(|m| (0..n as isize).filter(|d| m >> d & 1 == 1).collect()).collect() }

#[test]
fn grad_sum_mean_over_dims() {
    let mut g = Gen::new(105);
    let x = rnd(&mut g, &[2, 3, 4], -1.0, 1.0);
    for dims in subsets(3) {
        for keep in [false, true] {
            gradcheck(&[x.clone()], |t| t[0].sum(Some(&dims), keep));
            gradcheck(&[x.clone()], |t| t[0].mean(Some(&dims), keep));
        }
    }
    gradcheck(&[x.clone()], |t| t[0].sum(None, false));
    gradcheck(&[x.clone()], |t| t[0].mean(None, true));
    // through a permuted view
    gradcheck(&[x], |t| t[0].permute(&[2, 0, 1])?.sum(Some(&[0, 2]), false));
}

#[test]
fn grad_max_min_over_dims() {
    let mut g = Gen::new(106);
    let x = t64(g.distinct(24, -3.0, 3.0), &[2, 3, 4]);
    for dims in subsets(3) {
        for keep in [false, true] {
            gradcheck(&[x.clone()], |t| t[0].max(Some(&dims), keep));
            gradcheck(&[x.clone()], |t| t[0].min(Some(&dims), keep));
        }
    }
    gradcheck(&[x.clone()], |t| t[0].max(None, false));
    gradcheck(&[x], |t| t[0].min(None, false));
}

#[test]
fn grad_max_splits_ties_evenly() {
    let x = t64(vec![1.0, 3.0, 3.0, 2.0, 0.0, 0.0], &[2, 3]);
    let (_, gr) = autodiff::value_and_grad(&[&x], || x.max(Some(&[1]), false)?.sum_all()).unwrap();
    assert_eq!(vals(gr[0].as_ref().unwrap()), vec![0.0, 0.5, 0.5, 1.0, 0.0, 0.0]);
    let (_, gr) = autodiff::value_and_grad(&[&x], || x.min(None, false)).unwrap();
    assert_eq!(vals(gr[0].as_ref().unwrap()), vec![0.0, 0.0, 0.0, 0.0, 0.5, 0.5]);
}

// ---- movement ----------------------------------------------------------------------------------

#[test]
fn grad_reshape_permute_broadcast() {
    let mut g = Gen::new(107);
    let x = rnd(&mut g, &[2, 3, 4], -1.0, 1.0);
    gradcheck(&[x.clone()], |t| t[0].reshape(&[4, 6]));
    gradcheck(&[x.clone()], |t| t[0].reshape_infer(&[-1, 2]));
    for perm in [[0, 2, 1], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
        gradcheck(&[x.clone()], |t| t[0].permute(&perm));
    }
    gradcheck(&[x.clone()], |t| t[0].t());
    // reshape of a non-contiguous view
    gradcheck(&[x.clone()], |t| t[0].permute(&[2, 0, 1])?.reshape(&[24]));
    for (from, to) in [(vec![3], vec![2, 3]), (vec![2, 1], vec![2, 4]), (vec![], vec![2, 2]), (vec![2, 1, 3], vec![4, 2, 5, 3])] {
        let y = rnd(&mut g, &from, -1.0, 1.0);
        gradcheck(&[y], |t| t[0].broadcast_to(&to));
    }
}

#[test]
fn grad_slice_index_select() {
    let mut g = Gen::new(108);
    let x = rnd(&mut g, &[5, 6, 4], -1.0, 1.0);
    let sd = |start, len, step| SliceDim { start, len, step };
    for dims in [
        vec![sd(1, 2, 2), sd(0, 3, 2), sd(1, 3, 1)],
        vec![sd(4, 1, 1), sd(5, 1, 3), sd(0, 2, 3)],
        vec![sd(0, 5, 1), sd(0, 6, 1), sd(0, 4, 1)],
    ] {
        gradcheck(&[x.clone()], |t| t[0].slice(&dims));
    }
    // overlapping slices of one tensor accumulate
    gradcheck(&[x.clone()], |t| {
        let a = t[0].slice(&[sd(0, 3, 1), sd(0, 6, 1), sd(0, 4, 1)])?;
        let b = t[0].slice(&[sd(1, 3, 1), sd(0, 6, 1), sd(0, 4, 1)])?;
        a.mul(&b)
    });
    // slice of a transposed view
    gradcheck(&[x.clone()], |t| t[0].permute(&[2, 1, 0])?.slice(&[sd(1, 2, 2), sd(0, 3, 2), sd(0, 2, 3)]));
    for (axis, idx) in [(0isize, vec![2, 0, 2, 2, 4]), (1, vec![5, 5, 0]), (2, vec![1, 0, 1, 1]), (-1, vec![3])] {
        gradcheck(&[x.clone()], |t| t[0].index_select(axis, &idx));
    }
    // repeated indices: the gradient is the number of times a row is picked
    let y = t64(vec![1.0; 6], &[3, 2]);
    let (_, gr) = autodiff::value_and_grad(&[&y], || y.index_select(0, &[2, 0, 2, 2])?.sum_all()).unwrap();
    assert_eq!(vals(gr[0].as_ref().unwrap()), vec![1.0, 1.0, 0.0, 0.0, 3.0, 3.0]);
}

#[test]
fn grad_concat_stack() {
    let mut g = Gen::new(109);
    for axis in 0..3isize {
        let mut shapes = vec![vec![2, 3, 4], vec![2, 3, 4], vec![2, 3, 4]];
        shapes[1][axis as usize] = 1;
        shapes[2][axis as usize] = 2;
        let ts: Vec<Tensor> = shapes.iter().map(|s| rnd(&mut g, s, -1.0, 1.0)).collect();
        gradcheck(&ts, |t| Tensor::concat(&[&t[0], &t[1], &t[2]], axis));
        // the same tensor twice
        gradcheck(&ts[..1], |t| Tensor::concat(&[&t[0], &t[0].square()?], axis));
    }
    for axis in [0isize, 1, 2, -1] {
        let ts: Vec<Tensor> = (0..3).map(|_| rnd(&mut g, &[2, 3], -1.0, 1.0)).collect();
        gradcheck(&ts, |t| Tensor::stack(&[&t[0], &t[1], &t[2]], axis));
    }
    // a concat with an input that is not watched
    let a = rnd(&mut g, &[2, 2], -1.0, 1.0);
    let c = rnd(&mut g, &[1, 2], -1.0, 1.0);
    gradcheck(&[a], |t| Tensor::concat(&[&c, &t[0], &c], 0));
}

// ---- matmul ------------------------------------------------------------------------------------

#[test]
fn grad_matmul_all_shapes() {
    let mut g = Gen::new(110);
    let cases: &[(&[usize], &[usize])] = &[
        (&[3, 4], &[4, 5]),
        (&[4], &[4, 5]),
        (&[3, 4], &[4]),
        (&[4], &[4]),
        (&[2, 3, 4], &[2, 4, 5]),
        (&[2, 3, 4], &[4, 5]),
        (&[3, 4], &[2, 4, 5]),
        (&[2, 1, 3, 4], &[3, 4, 2]),
        (&[4], &[2, 4, 5]),
        (&[2, 3, 4], &[4]),
    ];
    for &(sa, sb) in cases {
        let a = rnd(&mut g, sa, -1.0, 1.0);
        let b = rnd(&mut g, sb, -1.0, 1.0);
        gradcheck(&[a, b], |t| t[0].matmul(&t[1]));
    }
    // transposed operands
    let a = rnd(&mut g, &[4, 3], -1.0, 1.0);
    let b = rnd(&mut g, &[5, 4], -1.0, 1.0);
    gradcheck(&[a.clone(), b.clone()], |t| t[0].t()?.matmul(&t[1].t()?));
    // x @ xᵀ: one tensor on both sides
    gradcheck(&[a], |t| t[0].matmul(&t[0].t()?));
}

// ---- softmax, cast -----------------------------------------------------------------------------

#[test]
fn grad_softmax_logsoftmax() {
    let mut g = Gen::new(111);
    let x = rnd(&mut g, &[2, 3, 4], -2.0, 2.0);
    for d in [0isize, 1, 2, -1] {
        gradcheck(&[x.clone()], |t| t[0].softmax(d));
        gradcheck(&[x.clone()], |t| t[0].logsoftmax(d));
    }
    gradcheck(&[x.clone()], |t| t[0].permute(&[2, 0, 1])?.softmax(1));
    // large inputs: the gradient stays finite and right
    let big = rnd(&mut g, &[2, 3], 999.0, 1001.0);
    gradcheck(&[big.clone()], |t| t[0].logsoftmax(1));
    gradcheck(&[big], |t| t[0].softmax(0));
}

#[test]
fn grad_cast() {
    // f64 → f32 → f64: the gradient comes back in f64 through the f32 op
    let mut g = Gen::new(112);
    let x = rnd(&mut g, &[3, 2], -1.0, 1.0);
    // (finite differences cannot see through an f32 round trip, so compare with the
    // analytic derivative 1 − tanh² instead)
    let w = weights_for(&[3, 2], 7);
    let (_, gr) = autodiff::value_and_grad(&[&x], || x.cast(DType::F32)?.tanh()?.cast(DType::F64)?.mul(&w)?.sum_all()).unwrap();
    let want: Vec<f64> = vals(&x).iter().zip(vals(&w)).map(|(v, wi)| wi * (1.0 - v.tanh().powi(2))).collect();
    let gx = gr[0].clone().unwrap();
    assert_eq!(gx.dtype(), DType::F64);
    assert_close(&vals(&gx), &want, 1e-6, 1e-6);
    // a cast to the same dtype is the identity, gradient included
    gradcheck(&[x.clone()], |t| t[0].cast(DType::F64)?.tanh());
    let (_, gr) = autodiff::value_and_grad(&[&x], || x.cast(DType::F32)?.mul_scalar(3.0)?.sum_all()).unwrap();
    let gx = gr[0].clone().unwrap();
    assert_eq!(gx.dtype(), DType::F64, "gradient has the variable's dtype");
    assert_eq!(vals(&gx), vec![3.0; 6]);
    // f32 variable mixed with an f64 constant: the product is f64, the gradient f32
    let w = x.cast(DType::F32).unwrap();
    let c = rnd(&mut g, &[3, 2], -1.0, 1.0);
    let (_, gr) = autodiff::value_and_grad(&[&w], || w.mul(&c)?.sum_all()).unwrap();
    let gw = gr[0].clone().unwrap();
    assert_eq!(gw.dtype(), DType::F32);
    assert_close(&vals(&gw), &vals(&c), 1e-7, 1e-7);
}

// ---- compositions and tape semantics ----------------------------------------------------------------

#[test]
fn grad_mlp_loss() {
    let mut g = Gen::new(113);
    let x = rnd(&mut g, &[5, 3], -1.0, 1.0);
    let y = rnd(&mut g, &[5, 2], -1.0, 1.0);
    let w1 = rnd(&mut g, &[4, 3], -0.8, 0.8);
    let b1 = rnd(&mut g, &[4], -0.2, 0.2);
    let w2 = rnd(&mut g, &[2, 4], -0.8, 0.8);
    let b2 = rnd(&mut g, &[2], -0.2, 0.2);
    let tanh = Activation::Tanh;
    let f = |t: &[Tensor]| {
        let h = linear(&x, &t[0], Some(&t[1]), tanh)?;
        let o = linear(&h, &t[2], Some(&t[3]), Activation::Identity)?;
        losses::mse(&o, &y, losses::Agg::Mean)
    };
    gradcheck(&[w1.clone(), b1.clone(), w2.clone(), b2.clone()], f);
    // and the loss value against a hand-written forward pass
    let (xv, yv, w1v, b1v, w2v, b2v) = (vals(&x), vals(&y), vals(&w1), vals(&b1), vals(&w2), vals(&b2));
    let mut want = 0.0;
    for i in 0..5 {
        let h: Vec<f64> = (0..4).map(|j| ((0..3).map(|k| xv[i * 3 + k] * w1v[j * 3 + k]).sum::<f64>() + b1v[j]).tanh()).collect();
        for o in 0..2 {
            let out = (0..4).map(|j| h[j] * w2v[o * 4 + j]).sum::<f64>() + b2v[o];
            want += (out - yv[i * 2 + o]).powi(2);
        }
    }
    want /= 10.0;
    let got = f(&[w1, b1, w2, b2]).unwrap().item().unwrap();
    assert!(close(got, want, 1e-12, 1e-14), "{got} vs {want}");
}

#[test]
fn grad_compositions() {
    let mut g = Gen::new(114);
    let x = rnd(&mut g, &[3, 4], 0.5, 1.5);
    let w = rnd(&mut g, &[4, 2], -1.0, 1.0);
    // logsumexp-ish, divisions by reductions, sqrt of a sum of squares (a norm)
    gradcheck(&[x.clone()], |t| t[0].exp()?.sum(Some(&[1]), true)?.log());
    gradcheck(&[x.clone()], |t| t[0].div(&t[0].sum(Some(&[0]), true)?));
    gradcheck(&[x.clone()], |t| t[0].square()?.sum_all()?.sqrt());
    gradcheck(&[x.clone(), w.clone()], |t| t[0].matmul(&t[1])?.softmax(-1)?.mul(&t[0].mean(Some(&[1]), true)?));
    gradcheck(&[x.clone(), w], |t| {
        let logits = t[0].matmul(&t[1])?;
        let target = t64(vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5], &[3, 2]);
        losses::logitcrossentropy(&logits, &target, -1, losses::Agg::Mean)
    });
    gradcheck(&[x], |t| t[0].sub(&t[0].max(Some(&[1]), true)?)?.exp());
}

#[test]
fn tied_use_accumulates() {
    // f(x) = Σ x·x + 3x  →  2x + 3, with x used three times
    let x = t64(vec![1.0, -2.0, 0.5], &[3]);
    let (y, gr) = autodiff::value_and_grad(&[&x], || x.mul(&x)?.add(&x.mul_scalar(3.0)?)?.sum_all()).unwrap();
    assert!(close(y.item().unwrap(), 1.0 + 4.0 + 0.25 + 3.0 * (1.0 - 2.0 + 0.5), 1e-15, 0.0));
    assert_eq!(vals(gr[0].as_ref().unwrap()), vec![5.0, -1.0, 4.0]);
    // and generally
    let mut g = Gen::new(115);
    let a = rnd(&mut g, &[2, 3], -1.0, 1.0);
    gradcheck(&[a.clone()], |t| t[0].mul(&t[0].tanh()?)?.add(&t[0]));
    gradcheck(&[a], |t| t[0].sum(Some(&[0]), true)?.mul(&t[0]));
}

#[test]
fn untouched_variable_gets_none() {
    let a = t64(vec![1.0, 2.0], &[2]);
    let b = t64(vec![3.0, 4.0], &[2]);
    let (y, gr) = autodiff::value_and_grad(&[&a, &b], || a.square()?.sum_all()).unwrap();
    assert_eq!(y.item().unwrap(), 5.0);
    assert_eq!(vals(gr[0].as_ref().unwrap()), vec![2.0, 4.0]);
    assert!(gr[1].is_none(), "b does not reach the loss");
    // a loss that is a constant: every gradient is None
    let c = t64(vec![1.0], &[]);
    let (_, gr) = autodiff::value_and_grad(&[&a], || Ok(c.clone())).unwrap();
    assert!(gr[0].is_none());
    // the variable itself as the loss
    let s = t64(vec![2.0], &[]);
    let (_, gr) = autodiff::value_and_grad(&[&s], || Ok(s.clone())).unwrap();
    assert_eq!(vals(gr[0].as_ref().unwrap()), vec![1.0]);
}

#[test]
fn the_same_variable_listed_twice_gets_the_gradient_twice() {
    let a = t64(vec![1.0, 2.0], &[2]);
    let (_, gr) = autodiff::value_and_grad(&[&a, &a], || a.mul_scalar(2.0)?.sum_all()).unwrap();
    assert_eq!(vals(gr[0].as_ref().unwrap()), vec![2.0, 2.0]);
    assert_eq!(vals(gr[1].as_ref().unwrap()), vec![2.0, 2.0]);
}

#[test]
fn tape_errors() {
    let a = t64(vec![1.0, 2.0], &[2]);
    // non-scalar loss
    let r = autodiff::value_and_grad(&[&a], || a.mul_scalar(2.0));
    assert!(r.is_err());
    // a forward error closes the tape, so the next gradient works
    let r = autodiff::value_and_grad(&[&a], || a.reshape(&[3]));
    assert!(r.is_err());
    assert!(!autodiff::is_recording());
    // nested gradients are refused, and the outer one still works afterwards
    let r = autodiff::value_and_grad(&[&a], || {
        let inner = autodiff::value_and_grad(&[&a], || a.sum_all());
        assert!(inner.is_err());
        a.sum_all()
    });
    let (_, gr) = r.unwrap();
    assert_eq!(vals(gr[0].as_ref().unwrap()), vec![1.0, 1.0]);
    // nothing is recorded outside a gradient
    assert!(!autodiff::is_recording());
    let (_, gr) = autodiff::value_and_grad(&[&a], || a.square()?.sum_all()).unwrap();
    assert_eq!(vals(gr[0].as_ref().unwrap()), vec![2.0, 4.0]);
}

#[test]
fn loss_of_shape_one_and_keepdims_scalar() {
    let a = t64(vec![1.0, 2.0, 3.0], &[3]);
    let (y, gr) = autodiff::value_and_grad(&[&a], || a.sum(None, true)).unwrap();
    assert_eq!(y.shape(), &[1]);
    assert_eq!(vals(gr[0].as_ref().unwrap()), vec![1.0, 1.0, 1.0]);
    let m = t64(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let (_, gr) = autodiff::value_and_grad(&[&m], || m.mean(None, true)).unwrap();
    assert_eq!(vals(gr[0].as_ref().unwrap()), vec![0.25; 4]);
}

#[test]
fn grad_flows_through_contiguous_copies() {
    // `contiguous()` of a view makes a fresh tensor; the gradient must still reach x
    let mut g = Gen::new(116);
    let x = rnd(&mut g, &[3, 4], -1.0, 1.0);
    gradcheck(&[x.clone()], |t| t[0].t()?.contiguous());
    gradcheck(&[x.clone()], |t| t[0].t()?.contiguous()?.tanh());
    // ops that copy their operands internally (concat of a transposed view)
    let y = rnd(&mut g, &[4, 3], -1.0, 1.0);
    gradcheck(&[x.clone(), y.clone()], |t| Tensor::concat(&[&t[0].t()?, &t[1]], 1));
    gradcheck(&[x.clone(), y.clone()], |t| Tensor::stack(&[&t[0].t()?, &t[1]], 0));
    gradcheck(&[x], |t| Tensor::concat(&[&t[0].slice(&[SliceDim { start: 0, len: 2, step: 2 }, SliceDim { start: 1, len: 2, step: 2 }])?], 0));
}

#[test]
fn grad_of_zero_dim_tensors() {
    let mut g = Gen::new(117);
    let s = rnd(&mut g, &[], 0.5, 1.5);
    let v = rnd(&mut g, &[3], 0.5, 1.5);
    gradcheck(&[s.clone()], |t| t[0].exp());
    gradcheck(&[s.clone(), v.clone()], |t| t[0].mul(&t[1]));
    gradcheck(&[s.clone(), v], |t| t[1].matmul(&t[1])?.div(&t[0]));
    gradcheck(&[s.clone()], |t| t[0].reshape(&[1, 1]));
    gradcheck(&[s.clone()], |t| t[0].broadcast_to(&[2, 3]));
    gradcheck(&[s.clone()], |t| t[0].sum(None, false));
    gradcheck(&[s.clone()], |t| t[0].mean(Some(&[0]), false));
    gradcheck(&[s.clone()], |t| t[0].mul(&t[0].softmax(0)?));
    gradcheck(&[s], |t| t[0].add(&t[0].logsoftmax(0)?));
}

#[test]
fn grad_maximum_minimum_split_ties() {
    // ChainRules: max(x, y) at x == y sends half the gradient to each side
    let a = t64(vec![1.0, 2.0, 5.0], &[3]);
    let b = t64(vec![1.0, 3.0, 4.0], &[3]);
    let (_, gr) = autodiff::value_and_grad(&[&a, &b], || a.maximum(&b)?.sum_all()).unwrap();
    assert_eq!(vals(gr[0].as_ref().unwrap()), vec![0.5, 0.0, 1.0]);
    assert_eq!(vals(gr[1].as_ref().unwrap()), vec![0.5, 1.0, 0.0]);
    let (_, gr) = autodiff::value_and_grad(&[&a, &b], || a.minimum(&b)?.sum_all()).unwrap();
    assert_eq!(vals(gr[0].as_ref().unwrap()), vec![0.5, 1.0, 0.0]);
    assert_eq!(vals(gr[1].as_ref().unwrap()), vec![0.5, 0.0, 1.0]);
    // with broadcasting, the tied halves are summed back onto the scalar
    let s = t64(vec![2.0], &[]);
    let (_, gr) = autodiff::value_and_grad(&[&a, &s], || a.maximum(&s)?.sum_all()).unwrap();
    assert_eq!(vals(gr[0].as_ref().unwrap()), vec![0.0, 0.5, 1.0]);
    assert_eq!(vals(gr[1].as_ref().unwrap()), vec![1.5]);
}
