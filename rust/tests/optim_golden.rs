//! Every rule against the golden vectors of spec/optimisers.md §7 and the spec's other
//! worked examples, through both the fused path (`Leaf::step`, `Rule::step_`) and the
//! pure path (`Rule::apply_`, then `x − dx′`); plus fused-vs-pure bit equality on random
//! data and the parallel path against small-array runs.
use flux_core::optim::{self, build, describe, Hyper, Leaf, Rule, State};
use flux_core::{DType, Error, Tensor};

/// Spec §7: x after each of the three steps (generated from spec/optimisers.md).
const GOLDEN: &[(&str, [[f64; 3]; 3])] = &[
    ("Descent()", [[0.99, -1.98, 2.97], [1.04, -2.02, 2.97], [0.94, -2.12, 3.07]]),
    ("Momentum()", [[0.999, -1.998, 2.997], [1.0031, -2.0002, 2.9943], [0.99679, -2.01218, 3.00187]]),
    ("Nesterov()", [[0.99981, -1.99962, 2.99943], [1.000679, -2.000218, 2.999187], [0.9991111, -2.0022962, 3.0008683]]),
    ("Rprop()", [[0.999, -1.999, 2.999], [0.999, -1.999, 2.999], [0.9985, -1.9995, 3.0]]),
    ("RMSProp()", [[0.9968377233398313, -1.9968377228398315, 2.996837722673165], [0.9999445719767872, -1.9996948654928928, 2.996837722673165], [0.9970968286767533, -2.002610428823525, 2.9998906774002108]]),
    ("RMSProp(centred=true)", [[0.9966666677777775, -1.9966666672222222, 2.996666667037037], [0.9998795283044738, -1.9995597539236585, 2.996666667037037], [0.9969846647617996, -2.0026712921192535, 2.9998045712910755]]),
    ("Adam()", [[0.9990000001, -1.99900000005, 2.9990000000333334], [0.9995983542655233, -1.9993661035654602, 2.9983299418107916], [0.999239213447222, -2.000064792343279, 2.9987931674833987]]),
    ("RAdam()", [[0.9999, -1.9998, 2.9997], [1.0001157894736843, -1.9999157894736843, 2.9995578947368418], [0.999882948145271, -2.0003578558943484, 2.9998372305301997]]),
    ("AdaMax()", [[0.9990000001, -1.99900000005, 2.9990000000333334], [0.9994315790387368, -1.9992894737269735, 2.998525841680259], [0.9991987377126519, -1.999731540143217, 2.9988051774708238]]),
    ("OAdam()", [[0.9980000002, -1.9980000001, 2.9980000000666664], [1.000625092865927, -2.000245399709379, 2.998031355870571], [0.9984995029059381, -2.0016174886664095, 3.000195791738782]]),
    ("AdaGrad()", [[0.9000000599999515, -1.9000000174999963, 2.9000000088888878], [0.9980581237602346, -1.98944273236392, 2.9000000088888878], [0.9089710442699308, -2.0807298240677516, 2.995782636054202]]),
    ("AdaDelta()", [[0.9996837738151101, -1.999683772629267, 2.999683772409665], [1.0001231474070253, -2.0000878332914738, 2.999683772409665], [0.9995657979573399, -2.0006358233157817, 3.0001045930601142]]),
    ("AMSGrad()", [[0.9968393078603917, -1.9968381235768908, 2.9968379002159624], [0.9993820179379556, -1.9983938747316425, 2.9939920104103286], [0.9976041936677823, -2.0018525335123316, 2.9962850751424766]]),
    ("NAdam()", [[0.9985255785417918, -1.9985255784680338, 2.9985255784434477], [0.9996333920594352, -1.9994226798536088, 2.9981025626167566], [0.9988091093952356, -2.000501954810358, 2.9990434840349325]]),
    ("AdamW()", [[0.9990000001, -1.99900000005, 2.9990000000333334], [0.9995983542655233, -1.9993661035654602, 2.9983299418107916], [0.999239213447222, -2.000064792343279, 2.9987931674833987]]),
    ("AdamW(lambda=0.1)", [[0.9989000001, -1.99880000005, 2.9987000000333333], [0.9993984642655134, -1.9989662235654553, 2.997730071810788], [0.9989393836007855, -1.9994650157209177, 2.9978935244762144]]),
    ("AdamW(lambda=0.1, couple=false)", [[0.8990000001, -1.79900000005, 2.699000000033333], [0.8096983542555234, -1.6194661035604603, 2.428429941807458], [0.7283693780116697, -1.4582181819822333, 2.1860501732993196]]),
    ("AdaBelief()", [[0.9988888888888957, -1.9988888888888907, 2.9988888888888896], [0.9995411776428431, -1.9992799498660287, 2.998148078246073], [0.9991562033527395, -2.000065200685526, 2.9986501199535374]]),
    ("Lion()", [[0.999, -1.999, 2.999], [1.0, -2.0, 2.998], [0.999, -2.001, 2.999]]),
    ("WeightDecay()", [[0.8995, -1.799, 2.6985], [1.39905025, -2.1981005, 2.69715075], [0.398350724875, -3.19700144975, 3.695802174625]]),
    ("SignDecay()", [[0.899, -1.799, 2.699], [1.398, -2.198, 2.698], [0.397, -3.197, 3.697]]),
    ("ClipGrad(0.25)", [[0.9, -1.8, 2.75], [1.15, -2.05, 2.75], [0.9, -2.3, 3.0]]),
    ("ClipNorm(0.5)", [[0.9, -1.8, 2.7], [1.2904344047215153, -2.112347523777212, 2.7], [1.0017592701267024, -2.401022658372025, 2.9886751345948133]]),
    ("ClipNorm(0.5, 1)", [[0.9166666666666666, -1.8333333333333333, 2.75], [1.1944444444444444, -2.0555555555555554, 2.75], [1.0277777777777777, -2.222222222222222, 2.9166666666666665]]),
    ("OptimiserChain(ClipGrad(0.25), Descent(0.1))", [[0.99, -1.98, 2.975], [1.015, -2.005, 2.975], [0.99, -2.03, 3.0]]),
    ("OptimiserChain(WeightDecay(0.1), Adam(0.01))", [[0.9900000004999999, -1.99000000025, 2.9900000001666664], [0.9936703327599067, -1.9873559274772667, 2.9806830933995925], [0.9888245877104587, -1.9919377221559942, 2.9803330169034385]]),
    ("OptimiserChain(AccumGrad(2), Descent(0.1))", [[1.0, -2.0, 3.0], [1.02, -2.01, 2.985], [1.02, -2.01, 2.985]]),
    ("OptimiserChain()", [[0.9, -1.8, 2.7], [1.4, -2.2, 2.7], [0.4, -3.2, 3.7]]),
];

const X0: [f64; 3] = [1.0, -2.0, 3.0];
const GS: [[f64; 3]; 3] = [[0.1, -0.2, 0.3], [-0.5, 0.4, 0.0], [1.0, 1.0, -1.0]];

fn fl(v: f64) -> Hyper { Hyper::Float(v) }
fn kw(pairs: Vec<(&str, Hyper)>) -> Vec<(String, Hyper)> { pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect() }
fn mk(name: &str, pairs: Vec<(&str, Hyper)>) -> Box<dyn Rule> { build(name, &kw(pairs)).unwrap() }
fn chain(rs: Vec<Box<dyn Rule>>) -> Box<dyn Rule> { mk("OptimiserChain", vec![("opts", Hyper::Rules(rs))]) }

/// The rule a golden label names.
fn rule_for(label: &str) -> Box<dyn Rule> {
    match label {
        "RMSProp(centred=true)" => mk("RMSProp", vec![("centred", Hyper::Bool(true))]),
        "AdamW(lambda=0.1)" => mk("AdamW", vec![("lambda", fl(0.1))]),
        "AdamW(lambda=0.1, couple=false)" => mk("AdamW", vec![("lambda", fl(0.1)), ("couple", Hyper::Bool(false))]),
        "ClipGrad(0.25)" => mk("ClipGrad", vec![("delta", fl(0.25))]),
        "ClipNorm(0.5)" => mk("ClipNorm", vec![("omega", fl(0.5))]),
        "ClipNorm(0.5, 1)" => mk("ClipNorm", vec![("omega", fl(0.5)), ("p", Hyper::Int(1))]),
        "OptimiserChain(ClipGrad(0.25), Descent(0.1))" => {
            chain(vec![mk("ClipGrad", vec![("delta", fl(0.25))]), mk("Descent", vec![("eta", fl(0.1))])])
        }
        "OptimiserChain(WeightDecay(0.1), Adam(0.01))" => {
            chain(vec![mk("WeightDecay", vec![("lambda", fl(0.1))]), mk("Adam", vec![("eta", fl(0.01))])])
        }
        "OptimiserChain(AccumGrad(2), Descent(0.1))" => chain(vec![mk("AccumGrad", vec![("n", Hyper::Int(2))]), mk("Descent", vec![("eta", fl(0.1))])]),
        "OptimiserChain()" => mk("OptimiserChain", vec![]),
        l => mk(l.strip_suffix("()").unwrap_or_else(|| panic!("no rule for {l}")), vec![]),
    }
}

fn tensor(v: &[f64], dt: DType) -> Tensor { Tensor::from_vec(v.to_vec(), &[v.len()]).unwrap().cast(dt).unwrap() }

#[derive(Clone, Copy, Debug)]
enum Path {
    Leaf,
    Step,
    Pure,
}

/// x after each gradient, along `path`.
fn run(rule: &dyn Rule, x0: &[f64], gs: &[Vec<f64>], dt: DType, path: Path) -> Vec<Vec<f64>> {
    let mut x = tensor(x0, dt);
    let mut leaf = Leaf::new(rule.box_clone(), &x).unwrap();
    let mut st = rule.init(&x).unwrap();
    gs.iter()
        .map(|g| {
            let g = tensor(g, dt);
            match path {
                Path::Leaf => leaf.step(&mut x, &g).unwrap(),
                Path::Step => rule.step_(&mut st, &mut x, &g).unwrap(),
                Path::Pure => {
                    let mut d = g.clone();
                    if rule.apply_(&mut st, &x, &mut d).unwrap() {
                        x.sub_assign_(&d).unwrap();
                    }
                }
            }
            x.to_vec_f64().unwrap()
        })
        .collect()
}

fn golden_gs() -> Vec<Vec<f64>> { GS.iter().map(|g| g.to_vec()).collect() }

fn close(got: f64, want: f64, rtol: f64, atol: f64) -> bool { (got - want).abs() <= atol + rtol * want.abs() }

fn check_golden(dt: DType, rtol: f64, atol: f64) -> usize {
    let mut fails = vec![];
    let mut n = 0;
    for (label, want) in GOLDEN {
        let rule = rule_for(label);
        for path in [Path::Leaf, Path::Step, Path::Pure] {
            let got = run(rule.as_ref(), &X0, &golden_gs(), dt, path);
            for (k, (g, w)) in got.iter().zip(want.iter()).enumerate() {
                n += 1;
                if !g.iter().zip(w).all(|(&a, &b)| close(a, b, rtol, atol)) {
                    fails.push(format!("{label} {path:?} {dt:?} step {}: got {g:?}, want {w:?}", k + 1));
                }
            }
        }
    }
    assert!(fails.is_empty(), "{} mismatches:\n{}", fails.len(), fails.join("\n"));
    n
}

#[test]
fn golden_vectors_f64() {
    let n = check_golden(DType::F64, 1e-12, 0.0);
    assert_eq!(n, GOLDEN.len() * 3 * 3);
}

#[test]
fn golden_vectors_f32() { check_golden(DType::F32, 1e-5, 1e-6); }

#[test]
fn golden_covers_every_rule() {
    for name in optim::RULES {
        if matches!(*name, "MixedPrecision" | "AccumGrad") {
            continue; // covered below (MixedPrecision) and inside a golden chain (AccumGrad)
        }
        assert!(GOLDEN.iter().any(|(l, _)| l.starts_with(&format!("{name}("))), "no golden vector for {name}");
    }
}

// ---- helpers for the worked examples ----------------------------------------------------

/// x − dx′ for one step of a fresh rule, both paths, asserting they agree.
fn one_step(rule: &dyn Rule, x: &[f64], g: &[f64]) -> Vec<f64> {
    let gs = vec![g.to_vec()];
    let a = run(rule, x, &gs, DType::F64, Path::Leaf).pop().unwrap();
    let b = run(rule, x, &gs, DType::F64, Path::Pure).pop().unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b), "{}", describe(rule));
    a
}

fn assert_close(got: &[f64], want: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(want) {
        assert!(close(*a, *b, rtol, 1e-15), "got {got:?}, want {want:?}");
    }
}

fn tensors(st: &State) -> Vec<Vec<f64>> {
    match st {
        State::Tensor(t) => vec![t.to_vec_f64().unwrap()],
        State::Tuple(v) => v.iter().flat_map(tensors).collect(),
        _ => vec![],
    }
}

// ---- worked examples -------------------------------------------------------------------

#[test]
fn clipgrad_13() {
    let r = mk("ClipGrad", vec![("delta", Hyper::Int(13))]);
    let x = [0.5, 0.25, 2.0];
    let got = one_step(r.as_ref(), &x, &[1.0, 10.0, 100.0]);
    let step: Vec<f64> = x.iter().zip(&got).map(|(a, b)| a - b).collect();
    assert_close(&step, &[1.0, 10.0, 13.0], 1e-14);
}

#[test]
fn clipnorm_examples() {
    let x = [0.3, 0.6, 0.9];
    let r = mk("ClipNorm", vec![("omega", Hyper::Int(10))]);
    let got = one_step(r.as_ref(), &x, &[1.0, 10.0, 100.0]);
    let n2: f64 = x.iter().zip(&got).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
    assert!((n2 - 10.0).abs() < 1e-12);
    // a small gradient passes unchanged
    assert_eq!(one_step(r.as_ref(), &[0.0], &[0.1]), vec![-0.1]);
    // NaN gradient → DomainError
    let mut xt = tensor(&x, DType::F64);
    let mut st = r.init(&xt).unwrap();
    let e = r.step_(&mut st, &mut xt, &tensor(&[1.0, 10.0, f64::NAN], DType::F64)).unwrap_err();
    match e {
        Error::Domain(m) => assert_eq!(m, "gradient has 2.0-norm NaN, for array of shape (3,) and dtype float64"),
        e => panic!("{e:?}"),
    }
    let mut d = tensor(&[1.0, f64::INFINITY, 0.0], DType::F64);
    assert!(matches!(r.apply_(&mut st, &xt, &mut d), Err(Error::Domain(m)) if m.contains("2.0-norm Inf")));

    let r = mk("ClipNorm", vec![("omega", fl(5.0)), ("p", Hyper::Int(1)), ("throw", Hyper::Bool(false))]);
    let got = one_step(r.as_ref(), &x, &[1.0, 10.0, 100.0]);
    let n1: f64 = x.iter().zip(&got).map(|(a, b)| (a - b).abs()).sum();
    assert!((n1 - 5.0).abs() < 1e-12);
    let got = one_step(r.as_ref(), &x, &[1.0, 10.0, f64::INFINITY]);
    assert!(got[2].is_nan());
    assert_eq!(&got[..2], &x[..2]); // λ = 0: the finite entries do not move
}

#[test]
fn clipnorm_p_norms() {
    use optim::clip::pnorm;
    let g = [3.0f64, -4.0, 0.0, 1.5, -0.25];
    let naive = |p: f64| g.iter().map(|v: &f64| v.abs().powf(p)).sum::<f64>().powf(1.0 / p);
    for p in [-3.0, -1.0, 0.5, 1.0, 1.5, 2.0, 3.0] {
        let want = if p < 0.0 { 0.0 } else { naive(p) }; // a zero entry makes negative-p norms 0
        assert!(close(pnorm(&g, p), want, 1e-14, 0.0), "p={p}: {} vs {want}", pnorm(&g, p));
    }
    assert_eq!(pnorm(&g, f64::INFINITY), 4.0);
    assert_eq!(pnorm(&g, f64::NEG_INFINITY), 0.0);
    assert_eq!(pnorm(&[3.0, -4.0, 2.0], f64::NEG_INFINITY), 2.0);
    assert_eq!(pnorm(&g, 0.0), 4.0);
    assert!(close(pnorm(&[3.0f64, -4.0, 2.0], -1.0), 1.0 / (1.0 / 3.0 + 0.25 + 0.5), 1e-14, 0.0));
    // rescaling keeps huge and tiny values finite
    assert!(close(pnorm(&[3e200f64, 4e200], 2.0), 5e200, 1e-14, 0.0));
    assert!(close(pnorm(&[3e-200f64, 4e-200], 2.0), 5e-200, 1e-14, 0.0));
    assert!(close(pnorm(&[3e200f64, 4e200], 3.0), (27.0f64 + 64.0).powf(1.0 / 3.0) * 1e200, 1e-14, 0.0));
    assert!(close(pnorm(&[3e30f32, 4e30], 2.0) as f64, 5e30, 1e-6, 0.0));
    // NaN propagates, Inf gives Inf, empty gives 0; the result follows the gradient's type
    assert!(pnorm(&[1.0f32, f32::NAN], 2.0).is_nan());
    assert!(pnorm(&[1.0f64, f64::NAN], f64::INFINITY).is_nan());
    assert_eq!(pnorm(&[1.0f64, f64::INFINITY], 2.0), f64::INFINITY);
    assert_eq!(pnorm::<f64>(&[], 2.0), 0.0);
    // zero gradient: norm 0 → λ = 1 → nothing changes
    let r = mk("ClipNorm", vec![]);
    assert_eq!(one_step(r.as_ref(), &[1.0, 2.0], &[0.0, 0.0]), vec![1.0, 2.0]);
}

#[test]
fn chain_examples() {
    let x = [1.0, 10.0, 100.0];
    let g = [1.0, 2.0, 3.0];
    let wd = || mk("WeightDecay", vec![("lambda", fl(0.1))]);
    let cg = || mk("ClipGrad", vec![("delta", fl(2.0))]);
    let cases: Vec<(Box<dyn Rule>, [f64; 3])> = vec![
        (wd(), [1.0 - 0.1 - 1.0, 10.0 - 1.0 - 2.0, 100.0 - 10.0 - 3.0]),
        (mk("SignDecay", vec![("lambda", fl(0.1))]), [1.0 - 0.1 - 1.0, 10.0 - 0.1 - 2.0, 100.0 - 0.1 - 3.0]),
        (cg(), [0.0, 8.0, 98.0]),
        (chain(vec![cg(), wd()]), [1.0 - 0.1 - 1.0, 10.0 - 1.0 - 2.0, 100.0 - 10.0 - 2.0]),
        (chain(vec![mk("Descent", vec![("eta", fl(0.1))])]), [0.9, 9.8, 99.7]),
        (mk("OptimiserChain", vec![]), [0.0, 8.0, 97.0]),
    ];
    for (r, want) in cases {
        assert_close(&one_step(r.as_ref(), &x, &g), &want, 1e-14);
    }
    let sd = mk("SignDecay", vec![("lambda", fl(0.1))]);
    assert_close(&one_step(sd.as_ref(), &[1.0, -10.0, 100.0], &[3.0, 2.0, -1.0]), &[1.0 - 0.1 - 3.0, -10.0 + 0.1 - 2.0, 100.0 - 0.1 + 1.0], 1e-14);
    // order matters: clip first, then scale
    let r = chain(vec![mk("ClipGrad", vec![("delta", fl(1.0))]), mk("Descent", vec![("eta", fl(0.1))])]);
    assert_close(&one_step(r.as_ref(), &[0.0; 3], &[0.3, 1.0, 7.0]), &[-0.03, -0.1, -0.1], 1e-14);
    // nested chains behave like the flattened chain
    let flat = chain(vec![wd(), cg(), mk("Adam", vec![])]);
    let nested = chain(vec![chain(vec![wd(), cg()]), chain(vec![mk("Adam", vec![])])]);
    let gs = golden_gs();
    assert_eq!(run(flat.as_ref(), &X0, &gs, DType::F64, Path::Leaf), run(nested.as_ref(), &X0, &gs, DType::F64, Path::Leaf));
    assert_eq!(describe(chain(vec![mk("ClipGrad", vec![("delta", fl(1.0))]), mk("Descent", vec![("eta", fl(0.1))])]).as_ref()), "OptimiserChain(ClipGrad(delta=1.0), Descent(eta=0.1))");
}

#[test]
fn accumgrad_docstring_example() {
    // model (x = [1f0], y = [2f0]); chain AccumGrad(2), WeightDecay(0.01), Descent(0.1)
    let rule = chain(vec![mk("AccumGrad", vec![("n", Hyper::Int(2))]), mk("WeightDecay", vec![("lambda", fl(0.01))]), mk("Descent", vec![("eta", fl(0.1))])]);
    for path in [Path::Leaf, Path::Pure] {
        let xs = run(rule.as_ref(), &[1.0], &[vec![33.0], vec![0.0]], DType::F32, path);
        let ys = run(rule.as_ref(), &[2.0], &[vec![0.0], vec![444.0]], DType::F32, path);
        assert_eq!(xs[0], vec![1.0]);
        assert_eq!(ys[0], vec![2.0]);
        assert!(close(xs[1][0], -0.651, 1e-6, 0.0), "{xs:?}");
        assert!(close(ys[1][0], -20.202002, 1e-6, 0.0), "{ys:?}");
    }
}

#[test]
fn accumgrad_three() {
    let lr = 0.1;
    let rule = chain(vec![mk("AccumGrad", vec![("n", Hyper::Int(3))]), mk("Descent", vec![("eta", fl(lr))])]);
    let gs = vec![vec![1.0, 2.0], vec![4.0, -8.0], vec![0.5, 3.0], vec![7.0, 7.0]];
    for path in [Path::Leaf, Path::Step, Path::Pure] {
        let xs = run(rule.as_ref(), &[1.0, 1.0], &gs, DType::F64, path);
        assert_eq!(xs[0], vec![1.0, 1.0]);
        assert_eq!(xs[1], vec![1.0, 1.0]);
        assert_close(&xs[2], &[1.0 - lr * (1.0 + 4.0 + 0.5) / 3.0, 1.0 - lr * (2.0 - 8.0 + 3.0) / 3.0], 1e-14);
        assert_eq!(xs[3], xs[2]);
    }
    // the state: (acc, counter) in the chain's tuple; Descent's state untouched
    let x = tensor(&[1.0], DType::F64);
    let mut st = rule.init(&x).unwrap();
    let mut d = tensor(&[6.0], DType::F64);
    assert!(!rule.apply_(&mut st, &x, &mut d).unwrap());
    let State::Tuple(parts) = &st else { panic!() };
    let State::Tuple(acc) = &parts[0] else { panic!() };
    assert_eq!(acc[0].tensor().unwrap().to_vec_f64().unwrap(), vec![2.0]);
    assert_eq!(acc[1].int().unwrap(), 2);
    assert!(matches!(parts[1], State::Empty));
    // AccumGrad(1) steps every time with the gradient itself
    let r = mk("AccumGrad", vec![("n", Hyper::Int(1))]);
    assert_eq!(one_step(r.as_ref(), &[1.0], &[0.25]), vec![0.75]);
}

#[test]
fn adam_state_doc_example() {
    let r = mk("Adam", vec![("eta", fl(0.1))]);
    let mut x = tensor(&[1.0, 2.0], DType::F64);
    let mut st = r.init(&x).unwrap();
    r.step_(&mut st, &mut x, &tensor(&[1.0, 1.0], DType::F64)).unwrap();
    let State::Tuple(p) = &st else { panic!() };
    assert_close(&p[0].tensor().unwrap().to_vec_f64().unwrap(), &[0.1, 0.1], 1e-14);
    assert_close(&p[1].tensor().unwrap().to_vec_f64().unwrap(), &[0.001, 0.001], 1e-12);
    let (a, b) = p[2].get_pair().unwrap();
    assert_close(&[a, b], &[0.81, 0.998001], 1e-15);
    r.step_(&mut st, &mut x, &tensor(&[0.0, 0.0], DType::F64)).unwrap();
    let State::Tuple(p) = &st else { panic!() };
    assert_close(&p[0].tensor().unwrap().to_vec_f64().unwrap(), &[0.09, 0.09], 1e-14);
    assert_close(&p[1].tensor().unwrap().to_vec_f64().unwrap(), &[0.000999, 0.000999], 1e-12);
    let (a, b) = p[2].get_pair().unwrap();
    assert_close(&[a, b], &[0.729, 0.997003], 1e-8); // the doc rounds 0.999³ = 0.997002999
    // f32 parameters: βt accumulates in f32
    let x = tensor(&[1.0], DType::F32);
    let mut st = mk("Adam", vec![]).init(&x).unwrap();
    let State::Tuple(p) = &st else { panic!() };
    assert_eq!(p[2].get_pair().unwrap(), (0.9f32 as f64, 0.999f32 as f64));
    let mut x = x;
    mk("Adam", vec![]).step_(&mut st, &mut x, &tensor(&[1.0], DType::F32)).unwrap();
    let State::Tuple(p) = &st else { panic!() };
    assert_eq!(p[2].get_pair().unwrap(), ((0.9f32 * 0.9f32) as f64, (0.999f32 * 0.999f32) as f64));
}

#[test]
fn nesterov_doc_example() {
    let r = mk("Nesterov", vec![]);
    let x = tensor(&[0.0, 0.0], DType::F64);
    let mut st = r.init(&x).unwrap();
    let mut d = tensor(&[16.0, 88.0], DType::F64);
    assert!(r.apply_(&mut st, &x, &mut d).unwrap());
    assert_close(&tensors(&st)[0], &[-0.016, -0.088], 1e-14);
    assert_close(&d.to_vec_f64().unwrap(), &[1.9 * 0.001 * 16.0, 1.9 * 0.001 * 88.0], 1e-14);
    // keyword order does not matter
    let a = mk("Nesterov", vec![("rho", fl(0.8)), ("eta", fl(0.1))]);
    assert_eq!(describe(a.as_ref()), "Nesterov(eta=0.1, rho=0.8)");
}

#[test]
fn momentum_and_descent_examples() {
    let r = mk("Momentum", vec![("eta", fl(0.1))]);
    let x = tensor(&[1.0, 2.0], DType::F64);
    let mut st = r.init(&x).unwrap();
    let mut leaf = Leaf { rule: r.clone(), state: st.clone(), frozen: false };
    let mut x2 = x.clone();
    leaf.step(&mut x2, &tensor(&[25.0, 33.0], DType::F64)).unwrap();
    assert_close(&tensors(&leaf.state)[0], &[2.5, 3.3], 1e-14);
    let mut d = tensor(&[25.0, 33.0], DType::F64);
    r.apply_(&mut st, &x, &mut d).unwrap();
    assert_close(&tensors(&st)[0], &[2.5, 3.3], 1e-14);
    assert_eq!(x.to_vec_f64().unwrap(), vec![1.0, 2.0]); // apply_ does not touch x

    let d = mk("Descent", vec![("eta", fl(0.1))]);
    assert_eq!(one_step(d.as_ref(), &[1.0, 2.0], &[25.0, 33.0]), vec![1.0 - 0.1 * 25.0, 2.0 - 0.1 * 33.0]);
    let xs = run(d.as_ref(), &[1.0, 2.0, 3.0], &[vec![1.0; 3]], DType::F32, Path::Leaf);
    assert_eq!(xs[0], vec![0.9f32 as f64, 1.9f32 as f64, 2.9f32 as f64]);

    // Momentum(1/30, 0.9) on Float32 [1, 2] with gradient [10, 14]
    let m = mk("Momentum", vec![("eta", fl(1.0 / 30.0)), ("rho", fl(0.9))]);
    let xs = run(m.as_ref(), &[1.0, 2.0], &[vec![10.0, 14.0]], DType::F32, Path::Leaf);
    assert!(close(xs[0][0], 0.6666666, 1e-6, 0.0) && close(xs[0][1], 1.5333333, 1e-6, 0.0), "{xs:?}");
}

#[test]
fn radam_rectified_from_step_5() {
    let (eta, b1, b2, eps) = (0.001f64, 0.9f64, 0.999f64, 1e-8f64);
    let rinf = 2.0 / (1.0 - b2) - 1.0;
    let r = mk("RAdam", vec![]);
    let mut x = tensor(&[0.5, -1.5], DType::F64);
    let mut st = r.init(&x).unwrap();
    let (mut m, mut v, mut xr) = ([0.0f64; 2], [0.0f64; 2], [0.5f64, -1.5]);
    let (mut b1t, mut b2t) = (b1, b2);
    for t in 1..=7 {
        let g = [0.1 * t as f64, -0.3 + 0.05 * t as f64];
        let rho = rinf - 2.0 * t as f64 * b2t / (1.0 - b2t);
        assert_eq!(rho > 4.0, t >= 5, "t={t} rho={rho}");
        for i in 0..2 {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            let mh = m[i] / (1.0 - b1t);
            xr[i] -= if rho > 4.0 {
                let rr = ((rho - 4.0) * (rho - 2.0) * rinf / ((rinf - 4.0) * (rinf - 2.0) * rho)).sqrt();
                eta * rr * mh / ((v[i] / (1.0 - b2t)).sqrt() + eps)
            } else {
                eta * mh
            };
        }
        b1t *= b1;
        b2t *= b2;
        r.step_(&mut st, &mut x, &tensor(&g, DType::F64)).unwrap();
        assert_close(&x.to_vec_f64().unwrap(), &xr, 1e-13);
        let State::Tuple(p) = &st else { panic!() };
        assert_eq!(p[3].int().unwrap(), t + 1);
    }
}

#[test]
fn mixed_precision() {
    // f32 parameters with an f64 master copy follow the f64 run of the inner rule,
    // rounded to f32 after every step
    let inner = mk("Adam", vec![("eta", fl(0.01))]);
    let r = mk("MixedPrecision", vec![("rule", Hyper::Rule(inner.clone()))]);
    let x0 = [0.3, -0.7, 1.1];
    let gs: Vec<Vec<f64>> = (0..5).map(|k| vec![0.1 * k as f64 - 0.2, 0.05, -0.3 + 0.01 * k as f64]).map(|g: Vec<f64>| g.iter().map(|v| *v as f32 as f64).collect()).collect();
    let want = run(inner.as_ref(), &x0.map(|v| v as f32 as f64), &gs, DType::F64, Path::Leaf);
    let fused = run(r.as_ref(), &x0, &gs, DType::F32, Path::Leaf);
    let pure = run(r.as_ref(), &x0, &gs, DType::F32, Path::Pure);
    for ((w, f), p) in want.iter().zip(&fused).zip(&pure) {
        let w32: Vec<f64> = w.iter().map(|v| *v as f32 as f64).collect();
        assert_eq!(f, &w32);
        assert_close(p, &w32, 1e-6);
    }
    // the state: (xT in f64, inner state in f64)
    let x = tensor(&x0, DType::F32);
    let st = r.init(&x).unwrap();
    let State::Tuple(p) = &st else { panic!() };
    assert_eq!(p[0].tensor().unwrap().dtype(), DType::F64);
    let State::Tuple(q) = &p[1] else { panic!() };
    assert_eq!(q[0].tensor().unwrap().dtype(), DType::F64);
    // adjusting forwards to the inner rule
    let mut r2 = r.clone();
    r2.set("eta", fl(0.5)).unwrap();
    assert_eq!(describe(r2.as_ref()), "MixedPrecision(rule=Adam(eta=0.5, beta=(0.9, 0.999), epsilon=1e-8))");
    assert!(r2.set("rho", fl(0.5)).is_err());
    // not inside a chain
    assert!(matches!(build("OptimiserChain", &kw(vec![("opts", Hyper::Rules(vec![r.clone()]))])), Err(Error::Value(_))));
    let mut c = chain(vec![]);
    assert!(c.set("opts", Hyper::Rules(vec![r.clone()])).is_err());
    // a chain inside MixedPrecision is fine
    let mc = mk("MixedPrecision", vec![("rule", Hyper::Rule(chain(vec![mk("WeightDecay", vec![]), inner.clone()])))]);
    let xs = run(mc.as_ref(), &x0, &gs, DType::F32, Path::Leaf);
    assert!(xs.iter().flatten().all(|v| v.is_finite()));
}

// ---- construction, fields, set ---------------------------------------------------------

#[test]
fn defaults_and_field_order() {
    let want = [
        ("Descent", "Descent(eta=0.1)"),
        ("Momentum", "Momentum(eta=0.01, rho=0.9)"),
        ("Nesterov", "Nesterov(eta=0.001, rho=0.9)"),
        ("Rprop", "Rprop(eta=0.001, ell=(0.5, 1.2), gamma=(1e-6, 50.0))"),
        ("RMSProp", "RMSProp(eta=0.001, rho=0.9, epsilon=1e-8, centred=False)"),
        ("Adam", "Adam(eta=0.001, beta=(0.9, 0.999), epsilon=1e-8)"),
        ("RAdam", "RAdam(eta=0.001, beta=(0.9, 0.999), epsilon=1e-8)"),
        ("AdaMax", "AdaMax(eta=0.001, beta=(0.9, 0.999), epsilon=1e-8)"),
        ("OAdam", "OAdam(eta=0.001, beta=(0.5, 0.9), epsilon=1e-8)"),
        ("AdaGrad", "AdaGrad(eta=0.1, epsilon=1e-8)"),
        ("AdaDelta", "AdaDelta(rho=0.9, epsilon=1e-8)"),
        ("AMSGrad", "AMSGrad(eta=0.001, beta=(0.9, 0.999), epsilon=1e-8)"),
        ("NAdam", "NAdam(eta=0.001, beta=(0.9, 0.999), epsilon=1e-8)"),
        ("AdamW", "AdamW(eta=0.001, beta=(0.9, 0.999), lambda=0.0, epsilon=1e-8, couple=True)"),
        ("AdaBelief", "AdaBelief(eta=0.001, beta=(0.9, 0.999), epsilon=1e-16)"),
        ("Lion", "Lion(eta=0.001, beta=(0.9, 0.999))"),
        ("WeightDecay", "WeightDecay(lambda=0.0005)"),
        ("SignDecay", "SignDecay(lambda=0.001)"),
        ("ClipGrad", "ClipGrad(delta=10.0)"),
        ("ClipNorm", "ClipNorm(omega=10.0, p=2.0, throw=True)"),
        ("OptimiserChain", "OptimiserChain()"),
    ];
    for (name, repr) in want {
        assert_eq!(describe(mk(name, vec![]).as_ref()), repr);
    }
    assert_eq!(describe(mk("AccumGrad", vec![("n", Hyper::Int(4))]).as_ref()), "AccumGrad(n=4)");
    assert_eq!(optim::RULES.len(), 23);
    for name in optim::RULES {
        let fields = match *name {
            "AccumGrad" => kw(vec![("n", Hyper::Int(2))]),
            "MixedPrecision" => kw(vec![("rule", Hyper::Rule(mk("Adam", vec![])))]),
            _ => vec![],
        };
        let r = build(name, &fields).unwrap();
        assert_eq!(r.name(), *name);
        // rebuilding from fields() gives the same rule
        let again = build(name, &r.fields().into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Vec<_>>()).unwrap();
        assert_eq!(describe(again.as_ref()), describe(r.as_ref()));
    }
}

#[test]
fn eta_validation() {
    for name in ["Momentum", "Nesterov", "Rprop", "RMSProp", "Adam", "RAdam", "AdaMax", "OAdam", "AdaGrad", "AMSGrad", "NAdam", "AdamW", "AdaBelief", "Lion"] {
        let e = build(name, &kw(vec![("eta", fl(-0.1))])).unwrap_err();
        assert!(matches!(&e, Error::Value(m) if m.contains("learning rate cannot be negative")), "{name}: {e:?}");
        assert!(build(name, &kw(vec![("eta", fl(0.0))])).is_ok(), "{name}: zero is allowed");
    }
    // build checks every rule alike (issue 15), Descent included, and rejects NaN and Inf
    assert!(build("Descent", &kw(vec![("eta", fl(-1.0))])).is_err());
    for bad in [f64::NAN, f64::INFINITY] {
        assert!(matches!(build("Descent", &kw(vec![("eta", fl(bad))])), Err(Error::Value(_))));
        assert!(matches!(build("WeightDecay", &kw(vec![("lambda", fl(bad))])), Err(Error::Value(_))));
    }
    assert!(build("ClipNorm", &kw(vec![("omega", fl(f64::INFINITY))])).is_ok(), "Inf means no clipping");
    // adjust: checked for @def rules, not for RMSProp and AdamW (their plain constructors)
    assert!(mk("Adam", vec![]).set("eta", fl(-1.0)).is_err());
    assert!(mk("Lion", vec![]).set("eta", fl(-1.0)).is_err());
    assert!(mk("AdamW", vec![]).set("eta", fl(-1.0)).is_ok());
    assert!(mk("RMSProp", vec![]).set("eta", fl(-1.0)).is_ok());
}

#[test]
fn set_fields() {
    // unknown fields are errors, naming the valid ones
    for name in ["Nesterov", "Rprop", "RMSProp", "AdaDelta", "AdamW", "Lion", "ClipNorm", "SignDecay"] {
        let mut r = mk(name, vec![]);
        let e = r.set("zeta", fl(1.0)).unwrap_err();
        assert!(matches!(&e, Error::DType(m) if m.contains("zeta")), "{name}: {e:?}");
        assert!(build(name, &kw(vec![("zeta", fl(1.0))])).is_err());
    }
    assert!(mk("AdaDelta", vec![]).set("eta", fl(0.1)).is_err()); // AdaDelta has no eta
    // RMSProp: centred cannot change; either spelling builds it
    let mut r = mk("RMSProp", vec![]);
    assert!(matches!(r.set("centred", Hyper::Bool(true)), Err(Error::Value(_))));
    assert!(describe(mk("RMSProp", vec![("centered", Hyper::Bool(true))]).as_ref()).ends_with("centred=True)"));
    // WeightDecay: gamma is the old name of lambda
    let mut w = mk("WeightDecay", vec![]);
    w.set("gamma", fl(0.25)).unwrap();
    assert_eq!(describe(w.as_ref()), "WeightDecay(lambda=0.25)");
    assert_eq!(describe(mk("WeightDecay", vec![("gamma", fl(0.5))]).as_ref()), "WeightDecay(lambda=0.5)");
    // types: an Int is a float; a float is not a tuple; n must be an integer
    let mut a = mk("Adam", vec![("eta", Hyper::Int(1))]);
    assert!(a.set("beta", fl(0.9)).is_err());
    a.set("beta", Hyper::Pair(0.8, 0.99)).unwrap();
    assert_eq!(describe(a.as_ref()), "Adam(eta=1.0, beta=(0.8, 0.99), epsilon=1e-8)");
    assert!(build("AccumGrad", &kw(vec![("n", fl(2.0))])).is_err());
    assert!(build("AccumGrad", &[]).is_err());
    for n in [0, -3] {
        let e = build("AccumGrad", &kw(vec![("n", Hyper::Int(n))])).unwrap_err();
        assert!(matches!(&e, Error::Value(m) if m.contains("must accumulate at least one gradient")));
    }
    assert!(mk("AccumGrad", vec![("n", Hyper::Int(2))]).set("n", Hyper::Int(0)).is_err());
    // a chain forwards to the members that have the field, and only errs if none has it
    let mut c = chain(vec![mk("ClipGrad", vec![]), mk("Adam", vec![]), mk("Descent", vec![])]);
    c.set("delta", fl(2.5)).unwrap();
    c.set("eta", fl(0.2)).unwrap();
    assert_eq!(describe(c.as_ref()), "OptimiserChain(ClipGrad(delta=2.5), Adam(eta=0.2, beta=(0.9, 0.999), epsilon=1e-8), Descent(eta=0.2))");
    assert!(c.set("rho", fl(0.5)).is_err());
    assert!(c.set("eta", fl(-0.5)).is_err());
    assert!(describe(c.as_ref()).contains("Adam(eta=0.2")); // a failed set changes nothing
    assert!(describe(c.as_ref()).ends_with("Descent(eta=0.2))"));
}

#[test]
fn rmsprop_state_shapes() {
    let x = tensor(&[1.0, 2.0], DType::F64);
    let State::Tuple(p) = mk("RMSProp", vec![]).init(&x).unwrap() else { panic!() };
    assert!(matches!(p[1], State::Empty));
    let State::Tuple(p) = mk("RMSProp", vec![("centred", Hyper::Bool(true))]).init(&x).unwrap() else { panic!() };
    assert!(matches!(p[1], State::Tensor(_)));
    // fills: AdaGrad ϵ, AMSGrad (ϵ, ϵ, ϵ), Rprop (0, η)
    assert_eq!(tensors(&mk("AdaGrad", vec![]).init(&x).unwrap()), vec![vec![1e-8; 2]]);
    assert_eq!(tensors(&mk("AMSGrad", vec![]).init(&x).unwrap()), vec![vec![1e-8; 2]; 3]);
    assert_eq!(tensors(&mk("Rprop", vec![]).init(&x).unwrap()), vec![vec![0.0; 2], vec![1e-3; 2]]);
    // a mismatched gradient is an error, not a crash
    let r = mk("Adam", vec![]);
    let mut st = r.init(&x).unwrap();
    let mut g = tensor(&[1.0], DType::F64);
    assert!(matches!(r.apply_(&mut st, &x, &mut g), Err(Error::ShapeMismatch { op: "update", .. })));
}

// ---- fused vs pure, parallel vs serial ----------------------------------------------------

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f64> { (0..n).map(|_| self.next()).collect() }
}

/// Every rule with a non-default setting or two, for the property tests.
fn zoo() -> Vec<Box<dyn Rule>> {
    let mut v: Vec<Box<dyn Rule>> = optim::RULES
        .iter()
        .filter(|n| !matches!(**n, "AccumGrad" | "MixedPrecision"))
        .map(|n| mk(n, vec![]))
        .collect();
    v.push(mk("RMSProp", vec![("centred", Hyper::Bool(true))]));
    v.push(mk("AdamW", vec![("lambda", fl(0.1)), ("couple", Hyper::Bool(false))]));
    v.push(mk("ClipGrad", vec![("delta", fl(0.3))]));
    v.push(mk("Rprop", vec![("eta", fl(0.1)), ("gamma", Hyper::Pair(0.01, 0.5))]));
    for p in [1.0, 0.0, 3.0, f64::INFINITY, f64::NEG_INFINITY, 0.5] {
        v.push(mk("ClipNorm", vec![("omega", fl(0.5)), ("p", fl(p))]));
    }
    v.push(chain(vec![mk("AccumGrad", vec![("n", Hyper::Int(2))]), mk("SignDecay", vec![]), mk("Adam", vec![])]));
    v.push(chain(vec![mk("WeightDecay", vec![]), mk("OAdam", vec![]), mk("ClipGrad", vec![("delta", fl(1.0))])]));
    v.push(mk("AccumGrad", vec![("n", Hyper::Int(3))]));
    v.push(mk("MixedPrecision", vec![("rule", Hyper::Rule(mk("NAdam", vec![])))]));
    v
}

#[test]
fn fused_and_pure_agree_bitwise() {
    let mut rng = Rng(0x9E3779B97F4A7C15);
    let n = 257;
    let x0 = rng.vec(n);
    let gs: Vec<Vec<f64>> = (0..6).map(|_| rng.vec(n)).collect();
    for r in zoo() {
        let a = run(r.as_ref(), &x0, &gs, DType::F64, Path::Leaf);
        let b = run(r.as_ref(), &x0, &gs, DType::F64, Path::Step);
        let c = run(r.as_ref(), &x0, &gs, DType::F64, Path::Pure);
        assert_eq!(a, b, "{}", describe(r.as_ref()));
        assert_eq!(a, c, "{}", describe(r.as_ref()));
        // f32 fused and pure agree too
        let a = run(r.as_ref(), &x0, &gs, DType::F32, Path::Leaf);
        let c = run(r.as_ref(), &x0, &gs, DType::F32, Path::Pure);
        if r.name() != "MixedPrecision" {
            assert_eq!(a, c, "f32 {}", describe(r.as_ref()));
        }
        assert!(a.iter().flatten().all(|v| v.is_finite()), "{}", describe(r.as_ref()));
    }
}

#[test]
fn parallel_path_matches_small_arrays() {
    let mut rng = Rng(42);
    let n = 100_000;
    let x0 = rng.vec(n);
    let gs: Vec<Vec<f64>> = (0..4).map(|_| rng.vec(n)).collect();
    let piece = 1000;
    for r in zoo() {
        if r.name() == "ClipNorm" {
            continue; // one norm over the whole array
        }
        for (dt, path) in [(DType::F64, Path::Leaf), (DType::F32, Path::Leaf), (DType::F64, Path::Pure)] {
            let big = run(r.as_ref(), &x0, &gs, dt, path);
            for k in (0..n).step_by(piece) {
                let gk: Vec<Vec<f64>> = gs.iter().map(|g| g[k..k + piece].to_vec()).collect();
                let small = run(r.as_ref(), &x0[k..k + piece], &gk, dt, path);
                for (b, s) in big.iter().zip(&small) {
                    assert_eq!(&b[k..k + piece], &s[..], "{} {dt:?} {path:?} at {k}", describe(r.as_ref()));
                }
            }
        }
    }
}

#[test]
fn lion_quirk_as_implemented() {
    // m ← β₂·g + (1−β₂)·m; dx′ = η·sign((β₂−β₁)·g + β₁·m), with betas where it matters
    let (eta, b1, b2) = (0.5, 0.5, 0.3);
    let r = mk("Lion", vec![("eta", fl(eta)), ("beta", Hyper::Pair(b1, b2))]);
    let mut rng = Rng(7);
    let x0 = rng.vec(64);
    let gs: Vec<Vec<f64>> = (0..8).map(|_| rng.vec(64)).collect();
    let got = run(r.as_ref(), &x0, &gs, DType::F64, Path::Leaf);
    let (mut m, mut x, mut paper_differs) = (vec![0.0; 64], x0.clone(), false);
    let mut mp = vec![0.0; 64];
    for (g, xs) in gs.iter().zip(&got) {
        for i in 0..64 {
            m[i] = b2 * g[i] + (1.0 - b2) * m[i];
            let s = (b2 - b1) * g[i] + b1 * m[i];
            x[i] -= eta * if s > 0.0 { 1.0 } else if s < 0.0 { -1.0 } else { 0.0 };
            // the Lion paper's rule, for contrast
            let c = b1 * mp[i] + (1.0 - b1) * g[i];
            paper_differs |= c.signum() != s.signum();
            mp[i] = b2 * mp[i] + (1.0 - b2) * g[i];
        }
        assert_eq!(xs, &x);
    }
    assert!(paper_differs);
}

#[test]
fn adabelief_epsilon_inside_the_ema() {
    // s ← β₂·s + (1−β₂)·(g − m_new)² + ϵ, with the updated m
    let r = mk("AdaBelief", vec![("epsilon", fl(1e-3))]);
    let x = tensor(&[2.0], DType::F64);
    let mut st = r.init(&x).unwrap();
    let mut d = tensor(&[1.0], DType::F64);
    r.apply_(&mut st, &x, &mut d).unwrap();
    let t = tensors(&st);
    assert_close(&t[0], &[0.1], 1e-15);
    assert_close(&t[1], &[0.001 * 0.81 + 1e-3], 1e-14);
    // dx′ = η·(m/(1−β₁))/(sqrt(s/(1−β₂)) + ϵ)
    let want = 1e-3 * (0.1 / 0.1) / ((t[1][0] / (1.0 - 0.999f64)).sqrt() + 1e-3);
    assert_close(&d.to_vec_f64().unwrap(), &[want], 1e-14);
}
