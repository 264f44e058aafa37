//! Forward values of every tensor op against independent reference computations
//! (plain loops over `Vec<f64>` in `common`).
mod common;

use common::*;
use flux_core::tensor::elementwise::CmpOp;
use flux_core::tensor::movement::SliceDim;
use flux_core::{DType, Tensor};

const R: f64 = 1e-12;
const A: f64 = 1e-12;

// ---- unary ---------------------------------------------------------------------------

fn ref_sigmoid(x: f64) -> f64 { 1.0 / (1.0 + (-x).exp()) }

/// (name, op, reference, input range)
type UnaryCase = (&'static str, fn(&Tensor) -> flux_core::Result<Tensor>, fn(f64) -> f64, (f64, f64));

fn unary_cases() -> Vec<UnaryCase> {
    vec![
        ("neg", |t| t.neg(), |x| -x, (-3.0, 3.0)),
        ("exp", |t| t.exp(), |x| x.exp(), (-3.0, 3.0)),
        ("log", |t| t.log(), |x| x.ln(), (0.1, 5.0)),
        ("sqrt", |t| t.sqrt(), |x| x.sqrt(), (0.0, 5.0)),
        ("abs", |t| t.abs(), |x| if x < 0.0 { -x } else { x }, (-3.0, 3.0)),
        ("tanh", |t| t.tanh(), |x| ((2.0 * x).exp() - 1.0) / ((2.0 * x).exp() + 1.0), (-3.0, 3.0)),
        ("sigmoid", |t| t.sigmoid(), ref_sigmoid, (-6.0, 6.0)),
        ("relu", |t| t.relu(), |x| if x > 0.0 { x } else { 0.0 }, (-3.0, 3.0)),
        ("leakyrelu", |t| t.leakyrelu(0.01), |x| if x > 0.0 { x } else { 0.01 * x }, (-3.0, 3.0)),
        ("leakyrelu0.2", |t| t.leakyrelu(0.2), |x| if x > 0.0 { x } else { 0.2 * x }, (-3.0, 3.0)),
        ("elu", |t| t.elu(1.0), |x| if x >= 0.0 { x } else { x.exp() - 1.0 }, (-3.0, 3.0)),
        ("elu0.5", |t| t.elu(0.5), |x| if x >= 0.0 { x } else { 0.5 * (x.exp() - 1.0) }, (-3.0, 3.0)),
        (
            "gelu",
            |t| t.gelu(),
            |x| 0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh()),
            (-4.0, 4.0),
        ),
        ("swish", |t| t.swish(), |x| x * ref_sigmoid(x), (-4.0, 4.0)),
        ("softplus", |t| t.softplus(), |x| (1.0 + x.exp()).ln(), (-6.0, 6.0)),
        ("square", |t| t.square(), |x| x * x, (-3.0, 3.0)),
        ("sign", |t| t.sign(), |x| if x > 0.0 { 1.0 } else if x < 0.0 { -1.0 } else { 0.0 }, (-3.0, 3.0)),
    ]
}

#[test]
fn unary_ops_match_reference_f64_and_f32() {
    let mut g = Gen::new(1);
    for (name, op, want, (lo, hi)) in unary_cases() {
        let mut xs = g.vec(23, lo, hi);
        // exact special points inside the domain
        if lo <= 0.0 && hi > 0.0 {
            xs.push(0.0);
        }
        xs.push(lo.max(-2.0).max(lo));
        let n = xs.len();
        let x = t64(xs.clone(), &[n]);
        let y = op(&x).unwrap();
        assert_eq!(y.dtype(), DType::F64, "{name}");
        assert_eq!(y.shape(), &[n], "{name}");
        let r: Vec<f64> = xs.iter().map(|&v| want(v)).collect();
        let got = vals(&y);
        for i in 0..n {
            assert!(close(got[i], r[i], 1e-12, 1e-14), "{name}({}) = {} want {}", xs[i], got[i], r[i]);
        }
        // f32 path: same values to f32 precision, dtype kept
        let y32 = op(&t32(&xs, &[n])).unwrap();
        assert_eq!(y32.dtype(), DType::F32, "{name}");
        let got32 = vals(&y32);
        for i in 0..n {
            let want32 = want(xs[i] as f32 as f64);
            assert!(close(got32[i], want32, 2e-6, 2e-7), "{name} f32 ({}) = {} want {}", xs[i], got32[i], want32);
        }
    }
}

#[test]
fn unary_ops_on_strided_input_and_large_input() {
    // a transposed view, and an input above the parallel threshold
    let mut g = Gen::new(2);
    let base = g.nd(&[5, 7], -2.0, 2.0);
    let xt = base.tensor().t().unwrap();
    assert!(!xt.is_contiguous());
    let want = base.permute(&[1, 0]).map(|v| v.tanh());
    assert_nd(&xt.tanh().unwrap(), &want, R, A);
    let big = g.nd(&[300, 130], -3.0, 3.0); // 39000 > 1<<15
    assert_nd(&big.tensor().exp().unwrap(), &big.map(f64::exp), R, A);
}

#[test]
fn unary_nan_and_extremes() {
    let x = t64(vec![f64::NAN, -800.0, 800.0, -40.0, 40.0], &[5]);
    let relu = vals(&x.relu().unwrap());
    assert!(relu[0].is_nan(), "relu propagates NaN");
    assert_eq!(&relu[1..], &[0.0, 800.0, 0.0, 40.0]);
    let s = vals(&x.sigmoid().unwrap());
    assert!(s[0].is_nan());
    assert_eq!(s[1], 0.0);
    assert_eq!(s[2], 1.0);
    assert!(s[3] > 0.0 && close(s[3], 40f64.neg_exp_ratio(), 1e-12, 0.0));
    let sp = vals(&x.softplus().unwrap());
    assert!(sp[0].is_nan());
    assert!(sp[1] >= 0.0 && sp[1] < 1e-300, "softplus(-800) underflows to ~0, got {}", sp[1]);
    assert_eq!(sp[2], 800.0, "softplus(800) is 800, not inf");
    let sg = vals(&x.sign().unwrap());
    assert!(sg[0].is_nan());
}

trait NegExpRatio {
    fn neg_exp_ratio(self) -> f64;
}
impl NegExpRatio for f64 {
    /// e^(−x)/(1+e^(−x)) = σ(−x)
    fn neg_exp_ratio(self) -> f64 { (-self).exp() / (1.0 + (-self).exp()) }
}

/// Spec §10 reference values at x = −2, −0.5, 0, 0.5, 2.
#[test]
fn activation_reference_values_from_the_spec() {
    let xs = [-2.0, -0.5, 0.0, 0.5, 2.0];
    let x = t64(xs.to_vec(), &[5]);
    let table: [(&str, Tensor, [f64; 5]); 6] = [
        ("sigmoid", x.sigmoid().unwrap(), [0.119202922, 0.3775406688, 0.5, 0.6224593312, 0.880797078]),
        ("leakyrelu", x.leakyrelu(0.01).unwrap(), [-0.02, -0.005, 0.0, 0.5, 2.0]),
        ("elu", x.elu(1.0).unwrap(), [-0.8646647168, -0.3934693403, 0.0, 0.5, 2.0]),
        ("gelu", x.gelu().unwrap(), [-0.04540230591, -0.1542859902, 0.0, 0.3457140098, 1.954597694]),
        ("swish", x.swish().unwrap(), [-0.238405844, -0.1887703344, 0.0, 0.3112296656, 1.761594156]),
        ("softplus", x.softplus().unwrap(), [0.126928011, 0.4740769842, 0.6931471806, 0.9740769842, 2.126928011]),
    ];
    for (name, y, want) in table {
        let got = vals(&y);
        for i in 0..5 {
            // the spec prints 9-10 significant digits
            assert!(close(got[i], want[i], 1e-8, 1e-10), "{name}({}) = {} want {}", xs[i], got[i], want[i]);
        }
        // and in f32
        let name32 = name;
        let y32 = match name {
            "sigmoid" => x.cast(DType::F32).unwrap().sigmoid(),
            "leakyrelu" => x.cast(DType::F32).unwrap().leakyrelu(0.01),
            "elu" => x.cast(DType::F32).unwrap().elu(1.0),
            "gelu" => x.cast(DType::F32).unwrap().gelu(),
            "swish" => x.cast(DType::F32).unwrap().swish(),
            _ => x.cast(DType::F32).unwrap().softplus(),
        }
        .unwrap();
        assert_close(&vals(&y32), &want, 1e-6, 1e-7);
        let _ = name32;
    }
}

// ---- binary with broadcasting --------------------------------------------------------------

type BinCase = (&'static str, fn(&Tensor, &Tensor) -> flux_core::Result<Tensor>, fn(f64, f64) -> f64);

fn binary_cases() -> Vec<BinCase> {
    vec![
        ("add", |a, b| a.add(b), |x, y| x + y),
        ("sub", |a, b| a.sub(b), |x, y| x - y),
        ("mul", |a, b| a.mul(b), |x, y| x * y),
        ("div", |a, b| a.div(b), |x, y| x / y),
        ("pow", |a, b| a.pow(b), |x, y| (y * x.ln()).exp()),
        ("maximum", |a, b| a.maximum(b), |x, y| if x > y { x } else { y }),
        ("minimum", |a, b| a.minimum(b), |x, y| if x < y { x } else { y }),
    ]
}

const BCAST_PAIRS: &[(&[usize], &[usize])] = &[
    (&[2, 3], &[2, 3]),
    (&[2, 3], &[3]),
    (&[3], &[2, 3]),
    (&[2, 3], &[2, 1]),
    (&[2, 1, 4], &[3, 1]),
    (&[4, 1], &[1, 5]),
    (&[], &[2, 3]),
    (&[2, 3], &[]),
    (&[1], &[2, 2]),
    (&[2, 1, 3, 1], &[4, 1, 5]),
    (&[1, 1], &[1]),
    (&[3, 0], &[1]),
];

#[test]
fn binary_ops_broadcast_like_numpy() {
    let mut g = Gen::new(3);
    for (name, op, f) in binary_cases() {
        for &(sa, sb) in BCAST_PAIRS {
            // positive operands keep pow real; well away from ties for max/min
            let a = g.nd(sa, 0.5, 3.0);
            let b = g.nd(sb, 0.5, 3.0);
            let want = a.zip(&b, f);
            let y = op(&a.tensor(), &b.tensor()).unwrap();
            assert_eq!(y.shape(), want.shape.as_slice(), "{name} {sa:?} {sb:?}");
            assert_close(&vals(&y), &want.data, 1e-12, 1e-12);
            // f32 with f64 promotes to f64
            let y2 = op(&a.tensor32(), &b.tensor()).unwrap();
            assert_eq!(y2.dtype(), DType::F64, "{name}: f32 op f64 promotes");
            let want2 = Nd::new(&a.shape, a.data.iter().map(|&v| v as f32 as f64).collect()).zip(&b, f);
            assert_close(&vals(&y2), &want2.data, 1e-12, 1e-12);
            // f32 with f32 stays f32
            let y3 = op(&a.tensor32(), &b.tensor32()).unwrap();
            assert_eq!(y3.dtype(), DType::F32);
            assert_close(&vals(&y3), &want.data, 1e-5, 1e-6);
        }
    }
}

#[test]
fn binary_ops_reject_incompatible_shapes() {
    for (sa, sb) in [(vec![2, 3], vec![2]), (vec![3, 2], vec![2, 3]), (vec![4], vec![5])] {
        let a = Tensor::zeros(&sa, DType::F64);
        let b = Tensor::zeros(&sb, DType::F64);
        assert!(a.add(&b).is_err(), "{sa:?} + {sb:?} must fail");
        assert!(a.compare(&b, CmpOp::Gt).is_err());
    }
}

#[test]
fn binary_ops_on_strided_operands() {
    let mut g = Gen::new(4);
    let a = g.nd(&[4, 3], -2.0, 2.0);
    let b = g.nd(&[3, 4], -2.0, 2.0);
    // a (4,3) + bᵀ (4,3) where bᵀ is a transposed view
    let bt = b.tensor().t().unwrap();
    let want = a.zip(&b.permute(&[1, 0]), |x, y| x * y - x);
    let got = a.tensor().mul(&bt).unwrap().sub(&a.tensor()).unwrap();
    assert_nd(&got, &want, R, A);
    // stepped slice of a bigger tensor broadcast against a row
    let big = g.nd(&[6, 5], -2.0, 2.0);
    let s = big.tensor().slice(&[SliceDim { start: 1, len: 3, step: 2 }, SliceDim { start: 0, len: 3, step: 2 }]).unwrap();
    let row = g.nd(&[3], -1.0, 1.0);
    let want = big.slice(&[(1, 3, 2), (0, 3, 2)]).zip(&row, |x, y| x - y);
    assert_nd(&s.sub(&row.tensor()).unwrap(), &want, R, A);
    // scalar op a strided view (the scalar fast paths need a contiguous operand)
    let want = b.permute(&[1, 0]).map(|v| v * 3.0 + 1.0);
    assert_nd(&bt.mul_scalar(3.0).unwrap().add_scalar(1.0).unwrap(), &want, R, A);
    assert_nd(&bt.rsub_scalar(1.0).unwrap(), &b.permute(&[1, 0]).map(|v| 1.0 - v), R, A);
    assert_nd(&bt.powf(2.0).unwrap(), &b.permute(&[1, 0]).map(|v| v * v), R, A);
    assert_nd(&bt.abs().unwrap().powf(1.5).unwrap(), &b.permute(&[1, 0]).map(|v| v.abs().powf(1.5)), 1e-12, 1e-12);
}

#[test]
fn binary_large_broadcast_parallel_path() {
    let mut g = Gen::new(5);
    let a = g.nd(&[200, 180], -1.0, 1.0); // 36000 > 1<<15
    let b = g.nd(&[200, 180], -1.0, 1.0);
    let c = g.nd(&[180], -1.0, 1.0);
    assert_nd(&a.tensor().add(&b.tensor()).unwrap(), &a.zip(&b, |x, y| x + y), R, A);
    assert_nd(&a.tensor().mul(&c.tensor()).unwrap(), &a.zip(&c, |x, y| x * y), R, A);
    assert_nd(&a.tensor().mul_scalar(-2.0).unwrap(), &a.map(|x| -2.0 * x), R, A);
}

#[test]
fn maximum_minimum_propagate_nan() {
    let a = t64(vec![f64::NAN, 1.0, 2.0], &[3]);
    let b = t64(vec![0.0, f64::NAN, 1.0], &[3]);
    let mx = vals(&a.maximum(&b).unwrap());
    let mn = vals(&a.minimum(&b).unwrap());
    assert!(mx[0].is_nan() && mx[1].is_nan() && mx[2] == 2.0, "{mx:?}");
    assert!(mn[0].is_nan() && mn[1].is_nan() && mn[2] == 1.0, "{mn:?}");
}

#[test]
fn comparisons_broadcast_and_give_zero_one() {
    let mut g = Gen::new(6);
    let cases: [(CmpOp, fn(f64, f64) -> bool); 6] = [
        (CmpOp::Gt, |x, y| x > y),
        (CmpOp::Ge, |x, y| x >= y),
        (CmpOp::Lt, |x, y| x < y),
        (CmpOp::Le, |x, y| x <= y),
        (CmpOp::Eq, |x, y| x == y),
        (CmpOp::Ne, |x, y| x != y),
    ];
    for (op, f) in cases {
        for &(sa, sb) in BCAST_PAIRS {
            // small integers so that ties (and Eq) actually happen
            let a = g.nd(sa, 0.0, 3.0).map(f64::floor);
            let b = g.nd(sb, 0.0, 3.0).map(f64::floor);
            let want = a.zip(&b, |x, y| if f(x, y) { 1.0 } else { 0.0 });
            let y = a.tensor().compare(&b.tensor(), op).unwrap();
            assert_nd(&y, &want, 0.0, 0.0);
            let y32 = a.tensor32().compare(&b.tensor32(), op).unwrap();
            assert_eq!(y32.dtype(), DType::F32);
            assert_nd(&y32, &want, 0.0, 0.0);
        }
        let nan = t64(vec![f64::NAN], &[1]);
        let one = vals(&nan.compare(&nan, op).unwrap())[0];
        assert_eq!(one, if op == CmpOp::Ne { 1.0 } else { 0.0 }, "{op:?} with NaN");
    }
}

// ---- reductions --------------------------------------------------------------------------

fn subsets(n: usize) -> Vec<Vec<usize>> { (0..1usize << n).map(|m| (0..n).filter(|d| m >> d & 1 == 1).collect()).collect() }

#[test]
fn reductions_over_every_dim_subset() {
    let mut g = Gen::new(7);
    for shape in [vec![2, 3, 4], vec![3, 1, 2, 2], vec![5]] {
        let x = g.nd(&shape, -3.0, 3.0);
        let xt = x.tensor();
        for dims in subsets(shape.len()) {
            let di: Vec<isize> = dims.iter().map(|&d| d as isize).collect();
            let count: usize = dims.iter().map(|&d| shape[d]).product();
            for keep in [false, true] {
                let s = x.reduce(&dims, keep, 0.0, |a, v| a + v);
                assert_nd(&xt.sum(Some(&di), keep).unwrap(), &s, 1e-12, 1e-12);
                assert_nd(&xt.mean(Some(&di), keep).unwrap(), &s.map(|v| v / count as f64), 1e-12, 1e-12);
                let mx = x.reduce(&dims, keep, f64::NEG_INFINITY, f64::max);
                assert_nd(&xt.max(Some(&di), keep).unwrap(), &mx, 0.0, 0.0);
                let mn = x.reduce(&dims, keep, f64::INFINITY, f64::min);
                assert_nd(&xt.min(Some(&di), keep).unwrap(), &mn, 0.0, 0.0);
                // negative dims mean the same
                let neg: Vec<isize> = dims.iter().map(|&d| d as isize - shape.len() as isize).collect();
                assert_nd(&xt.sum(Some(&neg), keep).unwrap(), &s, 1e-12, 1e-12);
                // f32
                assert_nd(&x.tensor32().sum(Some(&di), keep).unwrap(), &s, 1e-5, 1e-5);
                assert_nd(&x.tensor32().max(Some(&di), keep).unwrap(), &mx, 1e-6, 1e-6);
            }
        }
        // None: all dims
        let all: Vec<usize> = (0..shape.len()).collect();
        let s = x.reduce(&all, false, 0.0, |a, v| a + v);
        let y = xt.sum(None, false).unwrap();
        assert_eq!(y.shape(), &[] as &[usize]);
        assert_nd(&y, &s, 1e-12, 1e-12);
        assert_nd(&xt.sum_all().unwrap(), &s, 1e-12, 1e-12);
        assert_nd(&xt.mean(None, true).unwrap(), &x.reduce(&all, true, 0.0, |a, v| a + v).map(|v| v / x.data.len() as f64), 1e-12, 1e-12);
        assert_nd(&xt.max(None, false).unwrap(), &x.reduce(&all, false, f64::NEG_INFINITY, f64::max), 0.0, 0.0);
        // repeated dims count once
        assert_nd(&xt.sum(Some(&[0, 0, -(shape.len() as isize)]), false).unwrap(), &x.reduce(&[0], false, 0.0, |a, v| a + v), 1e-12, 1e-12);
    }
}

#[test]
fn reductions_on_strided_and_large_inputs() {
    let mut g = Gen::new(8);
    let x = g.nd(&[3, 4, 5], -3.0, 3.0);
    let p = x.tensor().permute(&[2, 0, 1]).unwrap();
    let xp = x.permute(&[2, 0, 1]);
    for dims in subsets(3) {
        let di: Vec<isize> = dims.iter().map(|&d| d as isize).collect();
        assert_nd(&p.sum(Some(&di), false).unwrap(), &xp.reduce(&dims, false, 0.0, |a, v| a + v), 1e-12, 1e-12);
        assert_nd(&p.min(Some(&di), true).unwrap(), &xp.reduce(&dims, true, f64::INFINITY, f64::min), 0.0, 0.0);
    }
    let big = g.nd(&[70, 600], -1.0, 1.0);
    for dims in [vec![0], vec![1], vec![0, 1]] {
        let di: Vec<isize> = dims.iter().map(|&d| d as isize).collect();
        assert_nd(&big.tensor().sum(Some(&di), false).unwrap(), &big.reduce(&dims, false, 0.0, |a, v| a + v), 1e-10, 1e-10);
        assert_nd(&big.tensor().max(Some(&di), false).unwrap(), &big.reduce(&dims, false, f64::NEG_INFINITY, f64::max), 0.0, 0.0);
    }
}

#[test]
fn reductions_reject_bad_dims_and_propagate_nan() {
    let x = t64(vec![1.0, f64::NAN, 3.0, 4.0], &[2, 2]);
    assert!(x.sum(Some(&[2]), false).is_err());
    assert!(x.max(Some(&[-3]), false).is_err());
    let m = vals(&x.max(Some(&[1]), false).unwrap());
    assert!(m[0].is_nan() && m[1] == 4.0, "{m:?}");
    let m = vals(&x.min(Some(&[0]), false).unwrap());
    assert!(m[0] == 1.0 && m[1].is_nan(), "{m:?}");
    let s = vals(&x.sum(Some(&[0]), false).unwrap());
    assert!(s[0] == 4.0 && s[1].is_nan());
}

#[test]
fn reductions_of_empty_tensors() {
    let x = Tensor::zeros(&[2, 0, 3], DType::F64);
    let s = x.sum(Some(&[1]), false).unwrap();
    assert_eq!(s.shape(), &[2, 3]);
    assert_eq!(vals(&s), vec![0.0; 6]);
    // as numpy: the max of nothing has no value; over a non-empty dim the result is empty
    assert!(x.max(Some(&[1]), true).is_err());
    assert!(x.min(None, false).is_err());
    assert!(x.argmax(1).is_err());
    assert_eq!(x.max(Some(&[2]), false).unwrap().shape(), &[2, 0]);
    assert_eq!(x.sum(Some(&[0]), false).unwrap().shape(), &[0, 3]);
    assert_eq!(x.exp().unwrap().shape(), &[2, 0, 3]);
}

#[test]
fn argmax_along_each_dim_first_on_ties() {
    let mut g = Gen::new(9);
    let shape = [3, 4, 2];
    // small integers: many ties
    let x = g.nd(&shape, 0.0, 3.0).map(f64::floor);
    for d in 0..3 {
        let (idx, oshape) = x.tensor().argmax(d as isize).unwrap();
        let want_shape: Vec<usize> = shape.iter().enumerate().filter(|&(i, _)| i != d).map(|(_, &s)| s).collect();
        assert_eq!(oshape, want_shape);
        let mut want = vec![];
        for k in 0..numel(&want_shape) {
            let o = unravel(k, &want_shape);
            let mut best = (0, f64::NEG_INFINITY);
            for j in 0..shape[d] {
                let mut i = o.clone();
                i.insert(d, j);
                if x.at(&i) > best.1 {
                    best = (j, x.at(&i));
                }
            }
            want.push(best.0);
        }
        assert_eq!(idx, want, "argmax dim {d}");
        let (idx2, _) = x.tensor().argmax(d as isize - 3).unwrap();
        assert_eq!(idx2, want);
    }
    assert!(x.tensor().argmax(3).is_err());
}

// ---- movement --------------------------------------------------------------------------------

#[test]
fn reshape_keeps_row_major_order() {
    let mut g = Gen::new(10);
    let x = g.nd(&[2, 3, 4], -1.0, 1.0);
    for shape in [vec![24], vec![4, 6], vec![2, 12], vec![1, 24, 1], vec![2, 2, 2, 3]] {
        let y = x.tensor().reshape(&shape).unwrap();
        assert_eq!(y.shape(), shape.as_slice());
        assert_eq!(vals(&y), x.data);
    }
    assert!(x.tensor().reshape(&[5, 5]).is_err());
    // reshape of a non-contiguous view goes through row-major order of the view
    let t = x.tensor().permute(&[2, 0, 1]).unwrap();
    assert_eq!(vals(&t.reshape(&[24]).unwrap()), x.permute(&[2, 0, 1]).data);
    // infer
    assert_eq!(x.tensor().reshape_infer(&[-1, 4]).unwrap().shape(), &[6, 4]);
    assert_eq!(x.tensor().reshape_infer(&[3, -1, 2]).unwrap().shape(), &[3, 4, 2]);
    assert_eq!(vals(&x.tensor().reshape_infer(&[-1]).unwrap()), x.data);
    assert!(x.tensor().reshape_infer(&[-1, -1]).is_err());
    assert!(x.tensor().reshape_infer(&[5, -1]).is_err(), "24 is not divisible by 5");
    // to and from a scalar
    let s = t64(vec![7.0], &[1, 1]).reshape(&[]).unwrap();
    assert_eq!(s.shape(), &[] as &[usize]);
    assert_eq!(s.item().unwrap(), 7.0);
}

#[test]
fn permute_and_t() {
    let mut g = Gen::new(11);
    let x = g.nd(&[2, 3, 4], -1.0, 1.0);
    for perm in [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
        let p: Vec<isize> = perm.iter().map(|&d| d as isize).collect();
        assert_nd(&x.tensor().permute(&p).unwrap(), &x.permute(&perm), 0.0, 0.0);
    }
    assert_nd(&x.tensor().permute(&[-1, 0, 1]).unwrap(), &x.permute(&[2, 0, 1]), 0.0, 0.0);
    assert!(x.tensor().permute(&[0, 0, 1]).is_err());
    assert!(x.tensor().permute(&[0, 1]).is_err());
    assert!(x.tensor().permute(&[0, 1, 3]).is_err());
    // t(): swap the last two
    assert_nd(&x.tensor().t().unwrap(), &x.permute(&[0, 2, 1]), 0.0, 0.0);
    let m = g.nd(&[3, 5], -1.0, 1.0);
    assert_nd(&m.tensor().t().unwrap(), &m.permute(&[1, 0]), 0.0, 0.0);
    assert_nd(&m.tensor().t().unwrap().t().unwrap(), &m, 0.0, 0.0);
    let v = g.nd(&[4], -1.0, 1.0);
    assert_nd(&v.tensor().t().unwrap(), &v, 0.0, 0.0);
}

#[test]
fn broadcast_to_like_numpy() {
    let mut g = Gen::new(12);
    for (from, to) in [
        (vec![3], vec![2, 3]),
        (vec![2, 1], vec![2, 4]),
        (vec![1, 1], vec![3, 2]),
        (vec![], vec![2, 2]),
        (vec![2, 1, 3], vec![4, 2, 5, 3]),
        (vec![2, 3], vec![2, 3]),
    ] {
        let x = g.nd(&from, -1.0, 1.0);
        let y = x.tensor().broadcast_to(&to).unwrap();
        assert_nd(&y, &x.broadcast_to(&to), 0.0, 0.0);
        // and a copy of it (strided walk over zero strides)
        assert_nd(&y.contiguous().unwrap(), &x.broadcast_to(&to), 0.0, 0.0);
    }
    assert!(Tensor::zeros(&[2, 3], DType::F64).broadcast_to(&[3, 3]).is_err());
    assert!(Tensor::zeros(&[2, 3], DType::F64).broadcast_to(&[3]).is_err());
}

#[test]
fn slice_with_steps() {
    let mut g = Gen::new(13);
    let x = g.nd(&[5, 6, 4], -1.0, 1.0);
    let cases: Vec<Vec<(usize, usize, usize)>> = vec![
        vec![(0, 5, 1), (0, 6, 1), (0, 4, 1)],
        vec![(1, 2, 2), (0, 3, 2), (1, 3, 1)],
        vec![(4, 1, 1), (5, 1, 3), (0, 2, 3)],
        vec![(0, 3, 2), (1, 2, 4), (3, 1, 1)],
        vec![(2, 0, 1), (0, 6, 1), (0, 4, 1)],
    ];
    for sl in cases {
        let dims: Vec<SliceDim> = sl.iter().map(|&(start, len, step)| SliceDim { start, len, step }).collect();
        let y = x.tensor().slice(&dims).unwrap();
        assert_nd(&y, &x.slice(&sl), 0.0, 0.0);
        // slicing a slice
        if sl.iter().all(|s| s.1 >= 2) {
            let d2: Vec<SliceDim> = sl.iter().map(|s| SliceDim { start: 1, len: s.1 - 1, step: 1 }).collect();
            let z = y.slice(&d2).unwrap();
            let sl2: Vec<(usize, usize, usize)> = sl.iter().map(|s| (1, s.1 - 1, 1)).collect();
            assert_nd(&z, &x.slice(&sl).slice(&sl2), 0.0, 0.0);
        }
    }
}

#[test]
fn slice_out_of_bounds_is_an_error() {
    let x = Tensor::zeros(&[5, 6], DType::F64);
    let sd = |start, len, step| SliceDim { start, len, step };
    assert!(x.slice(&[sd(0, 3, 2), sd(0, 6, 1)]).is_ok()); // rows 0, 2, 4
    assert!(x.slice(&[sd(1, 3, 2), sd(0, 6, 1)]).is_err()); // rows 1, 3, 5: 5 is out
    assert!(x.slice(&[sd(0, 5, 1), sd(6, 1, 1)]).is_err());
    assert!(x.slice(&[sd(0, 2, 0), sd(0, 6, 1)]).is_err(), "step 0");
    assert!(x.slice(&[sd(0, 5, 1)]).is_err(), "one SliceDim per dimension");
}

#[test]
fn index_select_with_repeats() {
    let mut g = Gen::new(14);
    let x = g.nd(&[3, 4, 2], -1.0, 1.0);
    for (axis, idx) in [(0usize, vec![2, 0, 2, 1]), (1, vec![3, 3, 0]), (2, vec![1, 0, 1, 1, 0]), (1, vec![])] {
        let y = x.tensor().index_select(axis as isize, &idx).unwrap();
        assert_nd(&y, &x.index_select(axis, &idx), 0.0, 0.0);
        let y2 = x.tensor().index_select(axis as isize - 3, &idx).unwrap();
        assert_nd(&y2, &x.index_select(axis, &idx), 0.0, 0.0);
    }
    // on a non-contiguous input
    let p = x.tensor().permute(&[2, 0, 1]).unwrap();
    assert_nd(&p.index_select(2, &[1, 1, 3]).unwrap(), &x.permute(&[2, 0, 1]).index_select(2, &[1, 1, 3]), 0.0, 0.0);
    assert!(x.tensor().index_select(0, &[3]).is_err());
}

#[test]
fn concat_and_stack_along_each_axis() {
    let mut g = Gen::new(15);
    for axis in 0..3 {
        let mut shapes = vec![vec![2, 3, 4], vec![2, 3, 4], vec![2, 3, 4]];
        shapes[1][axis] = 1;
        shapes[2][axis] = 3;
        let parts: Vec<Nd> = shapes.iter().map(|s| g.nd(s, -1.0, 1.0)).collect();
        let ts: Vec<Tensor> = parts.iter().map(|p| p.tensor()).collect();
        let refs: Vec<&Tensor> = ts.iter().collect();
        let want = ref_concat(&parts.iter().collect::<Vec<_>>(), axis);
        assert_nd(&Tensor::concat(&refs, axis as isize).unwrap(), &want, 0.0, 0.0);
        assert_nd(&Tensor::concat(&refs, axis as isize - 3).unwrap(), &want, 0.0, 0.0);
        // a mismatched other dimension fails
        let mut bad = vec![2, 3, 4];
        bad[(axis + 1) % 3] = 5;
        let b = Tensor::zeros(&bad, DType::F64);
        assert!(Tensor::concat(&[&ts[0], &b], axis as isize).is_err());
    }
    // mixed dtypes promote; non-contiguous inputs
    let a = g.nd(&[3, 2], -1.0, 1.0);
    let b = g.nd(&[2, 3], -1.0, 1.0);
    let c = Tensor::concat(&[&a.tensor32(), &b.tensor().t().unwrap()], 0).unwrap();
    assert_eq!(c.dtype(), DType::F64);
    let a32 = Nd::new(&a.shape, a.data.iter().map(|&v| v as f32 as f64).collect());
    assert_nd(&c, &ref_concat(&[&a32, &b.permute(&[1, 0])], 0), 0.0, 0.0);

    // stack
    for axis in 0..=2usize {
        let parts: Vec<Nd> = (0..3).map(|_| g.nd(&[2, 3], -1.0, 1.0)).collect();
        let ts: Vec<Tensor> = parts.iter().map(|p| p.tensor()).collect();
        let refs: Vec<&Tensor> = ts.iter().collect();
        let mut s1 = vec![2, 3];
        s1.insert(axis, 1);
        let ex: Vec<Nd> = parts.iter().map(|p| Nd::new(&s1, p.data.clone())).collect();
        let want = ref_concat(&ex.iter().collect::<Vec<_>>(), axis);
        assert_nd(&Tensor::stack(&refs, axis as isize).unwrap(), &want, 0.0, 0.0);
        assert_nd(&Tensor::stack(&refs, axis as isize - 3).unwrap(), &want, 0.0, 0.0);
    }
    let a = Tensor::zeros(&[2, 3], DType::F64);
    let b = Tensor::zeros(&[3, 2], DType::F64);
    assert!(Tensor::stack(&[&a, &b], 0).is_err());
    assert!(Tensor::concat(&[], 0).is_err());
}

// ---- matmul ------------------------------------------------------------------------------------

#[test]
fn matmul_shapes_like_numpy() {
    let mut g = Gen::new(16);
    let cases: &[(&[usize], &[usize])] = &[
        (&[3, 4], &[4, 5]),
        (&[1, 4], &[4, 1]),
        (&[4], &[4, 5]),
        (&[3, 4], &[4]),
        (&[4], &[4]),
        (&[2, 3, 4], &[2, 4, 5]),
        (&[2, 3, 4], &[4, 5]),
        (&[3, 4], &[2, 4, 5]),
        (&[2, 1, 3, 4], &[3, 4, 2]),
        (&[4], &[2, 4, 5]),
        (&[2, 3, 4], &[4]),
        (&[3, 0], &[0, 2]),
        (&[0, 3], &[3, 2]),
    ];
    for &(sa, sb) in cases {
        let a = g.nd(sa, -1.0, 1.0);
        let b = g.nd(sb, -1.0, 1.0);
        let want = ref_matmul(&a, &b);
        let y = a.tensor().matmul(&b.tensor()).unwrap();
        assert_nd(&y, &want, 1e-12, 1e-12);
        let y32 = a.tensor32().matmul(&b.tensor32()).unwrap();
        assert_eq!(y32.dtype(), DType::F32);
        assert_nd(&y32, &want, 1e-5, 1e-5);
        let ymix = a.tensor32().matmul(&b.tensor()).unwrap();
        assert_eq!(ymix.dtype(), DType::F64);
    }
    for (sa, sb) in [(vec![3, 4], vec![5, 4]), (vec![4], vec![5]), (vec![2, 3, 4], vec![3, 4, 5])] {
        assert!(Tensor::zeros(&sa, DType::F64).matmul(&Tensor::zeros(&sb, DType::F64)).is_err(), "{sa:?} @ {sb:?}");
    }
    assert!(Tensor::scalar(1.0, DType::F64).matmul(&Tensor::zeros(&[1], DType::F64)).is_err());
}

#[test]
fn matmul_on_transposed_and_strided_operands() {
    let mut g = Gen::new(17);
    let a = g.nd(&[5, 3], -1.0, 1.0);
    let b = g.nd(&[4, 5], -1.0, 1.0);
    // aᵀ (3,5) @ bᵀ (5,4)
    let want = ref_matmul(&a.permute(&[1, 0]), &b.permute(&[1, 0]));
    let y = a.tensor().t().unwrap().matmul(&b.tensor().t().unwrap()).unwrap();
    assert_nd(&y, &want, 1e-12, 1e-12);
    // batched transposes
    let c = g.nd(&[2, 4, 3], -1.0, 1.0);
    let d = g.nd(&[2, 5, 4], -1.0, 1.0);
    let want = ref_matmul(&c.permute(&[0, 2, 1]), &d.permute(&[0, 2, 1]));
    assert_nd(&c.tensor().t().unwrap().matmul(&d.tensor().t().unwrap()).unwrap(), &want, 1e-12, 1e-12);
    // a batch dimension that is not outermost in memory
    let e = g.nd(&[3, 2, 4], -1.0, 1.0); // permuted to (2, 3, 4)
    let want = ref_matmul(&e.permute(&[1, 0, 2]), &d.permute(&[0, 2, 1]));
    assert_nd(&e.tensor().permute(&[1, 0, 2]).unwrap().matmul(&d.tensor().t().unwrap()).unwrap(), &want, 1e-12, 1e-12);
    // stepped slices
    let big = g.nd(&[7, 9], -1.0, 1.0);
    let s1 = big.tensor().slice(&[SliceDim { start: 0, len: 3, step: 3 }, SliceDim { start: 1, len: 4, step: 2 }]).unwrap();
    let s2 = big.tensor().slice(&[SliceDim { start: 0, len: 4, step: 2 }, SliceDim { start: 0, len: 5, step: 2 }]).unwrap();
    let want = ref_matmul(&big.slice(&[(0, 3, 3), (1, 4, 2)]), &big.slice(&[(0, 4, 2), (0, 5, 2)]));
    assert_nd(&s1.matmul(&s2).unwrap(), &want, 1e-12, 1e-12);
    // a broadcast (zero-stride) operand
    let row = g.nd(&[1, 5], -1.0, 1.0);
    let rb = row.tensor().broadcast_to(&[3, 5]).unwrap();
    let want = ref_matmul(&row.broadcast_to(&[3, 5]), &b.permute(&[1, 0]));
    assert_nd(&rb.matmul(&b.tensor().t().unwrap()).unwrap(), &want, 1e-12, 1e-12);
    // 1-D strided vector
    let v = big.tensor().slice(&[SliceDim { start: 2, len: 1, step: 1 }, SliceDim { start: 0, len: 5, step: 2 }]).unwrap().reshape(&[5]).unwrap();
    let want = ref_matmul(&big.slice(&[(2, 1, 1), (0, 5, 2)]).reshape1(), &b.permute(&[1, 0]));
    assert_nd(&v.matmul(&b.tensor().t().unwrap()).unwrap(), &want, 1e-12, 1e-12);
}

trait Reshape1 {
    fn reshape1(&self) -> Nd;
}
impl Reshape1 for Nd {
    fn reshape1(&self) -> Nd { Nd::new(&[self.data.len()], self.data.clone()) }
}

#[test]
fn matmul_large_parallel() {
    let mut g = Gen::new(18);
    let a = g.nd(&[70, 65], -1.0, 1.0);
    let b = g.nd(&[65, 80], -1.0, 1.0); // 70·80·65 > 1<<18
    assert_nd(&a.tensor().matmul(&b.tensor()).unwrap(), &ref_matmul(&a, &b), 1e-11, 1e-11);
    assert_nd(&a.tensor32().matmul(&b.tensor32()).unwrap(), &ref_matmul(&a, &b), 1e-4, 1e-4);
    let want = ref_matmul(&b.permute(&[1, 0]), &a.permute(&[1, 0]));
    assert_nd(&b.tensor().t().unwrap().matmul(&a.tensor().t().unwrap()).unwrap(), &want, 1e-11, 1e-11);
}

// ---- softmax ---------------------------------------------------------------------------------------

#[test]
fn softmax_and_logsoftmax_along_each_dim() {
    let mut g = Gen::new(19);
    let x = g.nd(&[2, 3, 4], -3.0, 3.0);
    for d in 0..3 {
        for (i, dim) in [d as isize, d as isize - 3].into_iter().enumerate() {
            let s = x.tensor().softmax(dim).unwrap();
            assert_nd(&s, &ref_softmax(&x, d, false), 1e-12, 1e-14);
            let ls = x.tensor().logsoftmax(dim).unwrap();
            assert_nd(&ls, &ref_softmax(&x, d, true), 1e-12, 1e-12);
            if i == 0 {
                // rows sum to one
                let sums = vals(&s.sum(Some(&[dim]), false).unwrap());
                assert!(sums.iter().all(|v| (v - 1.0).abs() < 1e-12));
            }
        }
        // non-contiguous input
        let p = x.tensor().permute(&[2, 1, 0]).unwrap();
        assert_nd(&p.softmax(d as isize).unwrap(), &ref_softmax(&x.permute(&[2, 1, 0]), d, false), 1e-12, 1e-14);
        // f32
        assert_nd(&x.tensor32().logsoftmax(d as isize).unwrap(), &ref_softmax(&x, d, true), 1e-5, 1e-5);
    }
    assert!(x.tensor().softmax(3).is_err());
}

#[test]
fn softmax_is_stable_for_large_inputs() {
    let x = Nd::new(&[2, 3], vec![1000.0, 1001.0, 1002.0, -1000.0, -1000.0, 0.0]);
    for (t, tol) in [(x.tensor(), 1e-12), (x.tensor32(), 1e-6)] {
        let s = vals(&t.softmax(1).unwrap());
        assert!(s.iter().all(|v| v.is_finite()), "{s:?}");
        // exp shift by the max: e^{-2}, e^{-1}, 1 over their sum
        let z = (-2f64).exp() + (-1f64).exp() + 1.0;
        assert_close(&s[..3], &[(-2f64).exp() / z, (-1f64).exp() / z, 1.0 / z], tol, tol);
        assert_close(&s[3..], &[0.0, 0.0, 1.0], tol, tol);
        let ls = vals(&t.logsoftmax(1).unwrap());
        assert!(ls.iter().all(|v| v.is_finite()), "{ls:?}");
        assert_close(&ls[..3], &[-2.0 - z.ln(), -1.0 - z.ln(), -z.ln()], tol, tol);
        assert_close(&ls[3..], &[-1000.0, -1000.0, 0.0], tol, tol);
        let s0 = vals(&t.softmax(0).unwrap());
        assert!(s0.iter().all(|v| v.is_finite()), "{s0:?}");
        assert_close(&s0, &[1.0, 1.0, 1.0 / (1.0 + (-1002f64).exp()), 0.0, 0.0, 0.0], tol, tol);
    }
}

// ---- dtype -----------------------------------------------------------------------------------------

#[test]
fn cast_between_f32_and_f64() {
    let xs = vec![0.1, -2.5, 1e30, 3.0e-3, 123456.789];
    let x = t64(xs.clone(), &[5]);
    let y = x.cast(DType::F32).unwrap();
    assert_eq!(y.dtype(), DType::F32);
    assert_eq!(y.to_vec::<f32>().unwrap(), xs.iter().map(|&v| v as f32).collect::<Vec<_>>());
    let z = y.cast(DType::F64).unwrap();
    assert_eq!(z.dtype(), DType::F64);
    assert_eq!(vals(&z), xs.iter().map(|&v| v as f32 as f64).collect::<Vec<_>>());
    // non-contiguous source keeps its logical order
    let m = t64((0..6).map(|v| v as f64).collect(), &[2, 3]).t().unwrap();
    assert_eq!(m.cast(DType::F32).unwrap().to_vec::<f32>().unwrap(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    assert_eq!(m.cast(DType::F32).unwrap().shape(), &[3, 2]);
    // wrong-dtype access is an error
    assert!(x.to_vec::<f32>().is_err());
    assert!(x.as_slice::<f32>().is_err());
}

#[test]
fn constructors_and_inspection() {
    let t = Tensor::full(&[2, 3], 2.5, DType::F32);
    assert_eq!((t.shape(), t.dtype(), t.ndim(), t.numel()), (&[2usize, 3][..], DType::F32, 2, 6));
    assert_eq!(vals(&t), vec![2.5; 6]);
    assert!(Tensor::from_vec(vec![1.0f64; 5], &[2, 3]).is_err());
    assert_eq!(Tensor::scalar(3.0, DType::F64).item().unwrap(), 3.0);
    assert!(Tensor::ones(&[2], DType::F64).item().is_err());
    assert!(t.t().unwrap().as_slice::<f32>().is_err(), "as_slice needs contiguous");
    assert_eq!(t.t().unwrap().contiguous().unwrap().as_slice::<f32>().unwrap(), &[2.5f32; 6]);
}

#[test]
fn zero_dim_tensors() {
    let s = t64(vec![2.5], &[]);
    assert_eq!(s.ndim(), 0);
    assert_eq!(s.exp().unwrap().item().unwrap(), 2.5f64.exp());
    assert_eq!(s.sum(None, false).unwrap().item().unwrap(), 2.5);
    assert_eq!(s.mean(None, true).unwrap().shape(), &[] as &[usize]);
    assert_eq!(s.max(None, false).unwrap().item().unwrap(), 2.5);
    assert_eq!(s.t().unwrap().item().unwrap(), 2.5);
    assert_eq!(s.permute(&[]).unwrap().item().unwrap(), 2.5);
    assert_eq!(vals(&s.add(&t64(vec![1.0, 2.0], &[2])).unwrap()), vec![3.5, 4.5]);
    assert_eq!(vals(&s.broadcast_to(&[2, 2]).unwrap()), vec![2.5; 4]);
    assert_eq!(Tensor::stack(&[&s, &s], 0).unwrap().shape(), &[2]);
    // ops that need a dimension: an error or a torch-like value, never a panic
    let no_panic = |name: &str, f: &dyn Fn() -> bool| {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        assert!(r.is_ok(), "{name} on a 0-d tensor panicked");
    };
    no_panic("sum(dims=[0])", &|| s.sum(Some(&[0]), false).is_ok());
    no_panic("mean(dims=[0])", &|| s.mean(Some(&[0]), false).is_ok());
    no_panic("max(dims=[0])", &|| s.max(Some(&[0]), false).is_ok());
    no_panic("softmax(0)", &|| s.softmax(0).is_ok());
    no_panic("logsoftmax(0)", &|| s.logsoftmax(0).is_ok());
    no_panic("argmax(0)", &|| s.argmax(0).is_ok());
    no_panic("index_select(0)", &|| s.index_select(0, &[0]).is_ok());
    no_panic("concat(0)", &|| Tensor::concat(&[&s, &s], 0).is_ok());
    no_panic("slice([])", &|| s.slice(&[]).is_ok());
    assert!(s.slice(&[]).is_ok());
    assert!(Tensor::concat(&[&s, &s], 0).is_err(), "0-d tensors cannot be concatenated");
    assert!(s.index_select(0, &[0]).is_err());
    // torch's reading of dim 0 of a scalar: the one element
    assert_eq!(s.sum(Some(&[0]), false).unwrap().item().unwrap(), 2.5);
    assert_eq!(s.mean(Some(&[0]), true).unwrap().item().unwrap(), 2.5);
    assert_eq!(s.min(Some(&[0]), false).unwrap().shape(), &[] as &[usize]);
    assert_eq!(s.softmax(0).unwrap().item().unwrap(), 1.0);
    assert_eq!(s.logsoftmax(0).unwrap().item().unwrap(), 0.0);
    assert_eq!(s.argmax(0).unwrap(), (vec![0], vec![]));
    assert!(s.sum(Some(&[1]), false).is_err());
}
