//! Every optimisation rule on the GPU gives the CPU result: five steps of the fused
//! update (and of the pure `apply_`) from the same start, f32, within 1e-5 relative.
//! Runs on any wgpu adapter (Mesa's lavapipe in CI); skips, saying why, only when none
//! can be had.
#![cfg(feature = "wgpu")]

use flux_core::optim::{build, Hyper, Leaf, Rule, State};
use flux_core::{Device, Tensor};

const SHAPE: [usize; 2] = [5, 41];
const STEPS: usize = 5;

fn gpu() -> Option<Device> {
    match Device::wgpu() {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("SKIPPED: no GPU adapter for the GPU rule tests: {e}");
            None
        }
    }
}

/// Deterministic normal-ish numbers (sum of uniforms), scaled.
fn data(seed: u64, scale: f32) -> Tensor {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let n: usize = SHAPE.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            let mut acc = 0.0f32;
            for _ in 0..4 {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                acc += ((s >> 40) as f32) / (1u64 << 24) as f32 - 0.5;
            }
            acc * scale
        })
        .collect();
    Tensor::from_vec(v, &SHAPE).unwrap()
}

fn f(v: f64) -> Hyper { Hyper::Float(v) }
fn pair(a: f64, b: f64) -> Hyper { Hyper::Pair(a, b) }
fn rule(name: &str, fields: Vec<(&str, Hyper)>) -> Box<dyn Rule> {
    build(name, &fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Vec<_>>()).unwrap()
}

/// Every rule, with hyperparameters that reach each branch of its kernel in five steps.
fn rules() -> Vec<(String, Box<dyn Rule>)> {
    let mut v: Vec<(String, Box<dyn Rule>)> = vec![];
    let mut add = |label: &str, r: Box<dyn Rule>| v.push((label.to_string(), r));
    add("Descent", rule("Descent", vec![("eta", f(0.1))]));
    add("Momentum", rule("Momentum", vec![("eta", f(0.05)), ("rho", f(0.9))]));
    add("Nesterov", rule("Nesterov", vec![("eta", f(0.05)), ("rho", f(0.9))]));
    add("Rprop", rule("Rprop", vec![("eta", f(0.01))]));
    add("RMSProp", rule("RMSProp", vec![("eta", f(0.01))]));
    add("RMSProp(centred)", rule("RMSProp", vec![("eta", f(0.01)), ("centred", Hyper::Bool(true))]));
    add("Adam", rule("Adam", vec![("eta", f(0.01))]));
    // β₂ = 0.8: steps 1–4 are un-rectified, step 5 is rectified
    add("RAdam", rule("RAdam", vec![("eta", f(0.01)), ("beta", pair(0.9, 0.8))]));
    add("AdaMax", rule("AdaMax", vec![("eta", f(0.01))]));
    add("OAdam", rule("OAdam", vec![("eta", f(0.01))]));
    add("AdaGrad", rule("AdaGrad", vec![("eta", f(0.1))]));
    add("AdaDelta", rule("AdaDelta", vec![("rho", f(0.9))]));
    add("AMSGrad", rule("AMSGrad", vec![("eta", f(0.01))]));
    add("NAdam", rule("NAdam", vec![("eta", f(0.01))]));
    add("AdamW", rule("AdamW", vec![("eta", f(0.01)), ("lambda", f(0.1))]));
    add("AdamW(uncoupled)", rule("AdamW", vec![("eta", f(0.01)), ("lambda", f(0.01)), ("couple", Hyper::Bool(false))]));
    add("AdaBelief", rule("AdaBelief", vec![("eta", f(0.01))]));
    add("Lion", rule("Lion", vec![("eta", f(0.01))]));
    add("WeightDecay", rule("WeightDecay", vec![("lambda", f(0.1))]));
    add("SignDecay", rule("SignDecay", vec![("lambda", f(0.1))]));
    add("ClipGrad", rule("ClipGrad", vec![("delta", f(0.3))]));
    add("ClipNorm", rule("ClipNorm", vec![("omega", f(2.0))]));
    add("ClipNorm(p=1)", rule("ClipNorm", vec![("omega", f(2.0)), ("p", f(1.0))]));
    add("AccumGrad", rule("AccumGrad", vec![("n", Hyper::Int(2))]));
    let chain = |rs: Vec<Box<dyn Rule>>| rule("OptimiserChain", vec![("opts", Hyper::Rules(rs))]);
    add(
        "OptimiserChain(ClipNorm, WeightDecay, Adam)",
        chain(vec![rule("ClipNorm", vec![("omega", f(1.0))]), rule("WeightDecay", vec![("lambda", f(0.01))]), rule("Adam", vec![("eta", f(0.01))])]),
    );
    add("OptimiserChain(AccumGrad(2), Momentum)", chain(vec![rule("AccumGrad", vec![("n", Hyper::Int(2))]), rule("Momentum", vec![])]));
    add("OptimiserChain()", chain(vec![]));
    add("MixedPrecision(Adam)", rule("MixedPrecision", vec![("rule", Hyper::Rule(rule("Adam", vec![("eta", f(0.01))])))]));
    v
}

fn close(what: &str, cpu: &Tensor, gpu: &Tensor) {
    assert_eq!(gpu.shape(), cpu.shape(), "{what}: shape");
    let (a, b) = (cpu.to_vec_f64().unwrap(), gpu.to_vec_f64().unwrap());
    for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
        let tol = 1e-5 * x.abs().max(y.abs()).max(1.0);
        assert!((x - y).abs() <= tol || (x.is_nan() && y.is_nan()), "{what}: element {i}: cpu {x}, gpu {y}");
    }
}

/// Every array of the two states agrees (and the GPU one's arrays are on the GPU, except
/// where the rule keeps its state on the host).
fn close_states(what: &str, cpu: &State, gpu: &State, on: Device) {
    match (cpu, gpu) {
        (State::Tensor(a), State::Tensor(b)) => {
            assert_eq!(b.device(), on, "{what}: state array on the wrong device");
            close(what, a, b);
        }
        (State::Tuple(a), State::Tuple(b)) => {
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b) {
                close_states(what, x, y, on);
            }
        }
        (State::Scalar(a), State::Scalar(b)) => assert_eq!(a, b, "{what}: scalar state"),
        (State::Int(a), State::Int(b)) => assert_eq!(a, b, "{what}: counter"),
        (State::Empty, State::Empty) => {}
        (a, b) => panic!("{what}: state forms differ: {} vs {}", a.describe(), b.describe()),
    }
}

#[test]
fn every_rule_steps_on_the_gpu_as_on_the_cpu() {
    let Some(dev) = gpu() else { return };
    let x0 = data(1, 1.0);
    let grads: Vec<Tensor> = (0..STEPS).map(|k| data(10 + k as u64, 0.5)).collect();
    for (label, r) in rules() {
        let host_state = r.name() == "MixedPrecision";
        let mut xc = x0.detach_copy().unwrap();
        let mut lc = Leaf::new(r.clone(), &xc).unwrap();
        let mut xg = x0.to_device(dev).unwrap().detach();
        let mut lg = Leaf::new(r.clone(), &xg).unwrap();
        for g in &grads {
            lc.step(&mut xc, g).unwrap();
            lg.step(&mut xg, &g.to_device(dev).unwrap()).unwrap_or_else(|e| panic!("{label}: {e}"));
        }
        assert_eq!(xg.device(), dev, "{label}: the parameter left the GPU");
        close(&format!("{label} step_ x"), &xc, &xg);
        close_states(&format!("{label} step_ state"), &lc.state, &lg.state, if host_state { Device::Cpu } else { dev });
        // the parameter moved: a rule that did nothing would fail here
        assert!(x0.to_vec::<f32>().unwrap() != xg.to_vec::<f32>().unwrap() || label.starts_with("AccumGrad"), "{label}: no step");
    }
}

#[test]
fn every_rule_applies_on_the_gpu_as_on_the_cpu() {
    let Some(dev) = gpu() else { return };
    let x = data(2, 1.0);
    let xg = x.to_device(dev).unwrap();
    for (label, r) in rules() {
        let mut sc = r.init_on_device(&x).unwrap();
        let mut sg = r.init_on_device(&xg).unwrap();
        for k in 0..STEPS {
            let g = data(20 + k as u64, 0.5);
            let mut dc = g.detach_copy().unwrap();
            let mut dg = g.to_device(dev).unwrap().detach();
            let (a, b) = (r.apply_(&mut sc, &x, &mut dc).unwrap(), r.apply_(&mut sg, &xg, &mut dg).unwrap());
            assert_eq!(a, b, "{label}: step/no-step differs at step {k}");
            assert_eq!(dg.device(), dev, "{label}: the step left the GPU");
            close(&format!("{label} apply_ dx′ at step {k}"), &dc, &dg);
        }
    }
}

#[test]
fn a_float64_parameter_or_mixed_devices_are_clear_errors() {
    let Some(dev) = gpu() else { return };
    let r = rule("Adam", vec![]);
    let x = data(3, 1.0);
    let mut xg = x.to_device(dev).unwrap().detach();
    let mut leaf = Leaf::new(r.clone(), &xg).unwrap();
    // a CPU gradient for a GPU parameter names both devices
    let e = leaf.step(&mut xg, &data(4, 1.0)).unwrap_err().to_string();
    assert!(e.contains("gpu") && e.contains("cpu"), "{e}");
    // state on the CPU for a GPU parameter too
    let mut cpu_state = r.init(&x).unwrap();
    let e = r.step_(&mut cpu_state, &mut xg, &data(4, 1.0).to_device(dev).unwrap()).unwrap_err().to_string();
    assert!(e.contains("gpu") && e.contains("cpu"), "{e}");
}

#[test]
fn mixed_precision_with_a_float32_master_keeps_it_on_the_gpu_and_the_parameter_in_float16() {
    use flux_core::backend::wgpu::{gpu_info, half::f16_supported};
    use flux_core::optim::{Adam, MixedPrecision};
    use flux_core::DType;
    let Some(dev) = gpu() else { return };
    let x0 = data(1, 1.0);
    let rule = |m: DType| MixedPrecision::with_master(m, Box::new(Adam::new(0.01, (0.9, 0.999), 1e-8).unwrap())).unwrap();
    let mut xg = x0.to_device(dev).unwrap().detach();
    if f16_supported().is_err() {
        let e = Leaf::new(Box::new(rule(DType::F32)), &xg).err().expect("no float16 on this adapter: a clear error").to_string();
        assert!(e.contains("shader-f16") && e.contains(&gpu_info().unwrap().name), "{e}");
        return;
    }
    // the CPU reference: a float32 parameter, its float64 master
    let mut xc = x0.detach_copy().unwrap();
    let mut lc = Leaf::new(Box::new(rule(DType::F64)), &xc).unwrap();
    let mut lg = Leaf::new(Box::new(rule(DType::F32)), &xg).unwrap();
    for k in 0..STEPS {
        let g = data(10 + k as u64, 0.5);
        lc.step(&mut xc, &g).unwrap();
        lg.step(&mut xg, &g.to_device(dev).unwrap()).unwrap();
    }
    assert_eq!(xg.device(), dev);
    let master = match &lg.state {
        State::Tuple(v) => v[0].tensor().unwrap().clone(),
        s => panic!("state {s:?}"),
    };
    assert_eq!(master.device(), dev, "the float32 master copy lives on the GPU");
    let (xc, xg, master) = (xc.to_vec::<f32>().unwrap(), xg.to_vec::<f32>().unwrap(), master.to_vec::<f32>().unwrap());
    let mc = match &lc.state {
        State::Tuple(v) => v[0].tensor().unwrap().to_vec_f64().unwrap(),
        s => panic!("state {s:?}"),
    };
    let x0v = x0.to_vec::<f32>().unwrap();
    for i in 0..xc.len() {
        // the master: Adam in f32 on the GPU vs f64 on the CPU, within 1e-5 of the
        // terms' magnitudes (the start and five steps of at most η each)
        let scale = x0v[i].abs() as f64 + STEPS as f64 * 0.01;
        assert!((master[i] as f64 - mc[i]).abs() <= 1e-5 * scale, "master {i}: {} vs {}", master[i], mc[i]);
        // the parameter: the master rounded to float16 (within half an f16 step of the CPU's)
        assert_eq!(half::f16::from_f32(xg[i]).to_f32(), xg[i], "parameter {i} = {} is not a float16 value", xg[i]);
        assert!((xg[i] - xc[i]).abs() <= xc[i].abs() * 2f32.powi(-11) + 1e-6, "parameter {i}: GPU {} vs CPU {}", xg[i], xc[i]);
    }
    assert!(xg.iter().zip(&x0v).any(|(a, b)| a != b), "the parameter moved");
}

#[test]
fn a_gradient_that_is_a_view_into_a_longer_buffer_steps_like_its_copy() {
    // A stacked q/k/v projection's gradient is one buffer; each projection's gradient
    // is a row slice of it, contiguous but at an offset or shorter than its buffer.
    let Some(dev) = gpu() else { return };
    let stacked = Tensor::concat(&[&data(3, 0.5), &data(4, 0.5), &data(5, 0.5)], 0).unwrap();
    let parts = flux_core::tensor::misc::split(&stacked.to_device(dev).unwrap(), &[SHAPE[0]; 3], 0).unwrap();
    let x0 = data(1, 1.0);
    for (k, g) in parts.iter().enumerate() {
        let r = rule("Adam", vec![]);
        let mut xc = x0.detach_copy().unwrap();
        let mut lc = Leaf::new(r.clone(), &xc).unwrap();
        lc.step(&mut xc, &data(3 + k as u64, 0.5)).unwrap();
        let mut xg = x0.to_device(dev).unwrap().detach();
        let mut lg = Leaf::new(r, &xg).unwrap();
        lg.step(&mut xg, g).unwrap_or_else(|e| panic!("part {k}: {e}"));
        close(&format!("Adam with part {k} of a stacked gradient"), &xc, &xg);
    }
}
