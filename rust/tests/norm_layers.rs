//! The normalisation, dropout and embedding layers (fused ops): forward against plain
//! f64 references written here, in f32 and f64, training and inference (running
//! statistics checked), and every gradient against finite differences.
mod common;

use common::*;
use flux_core::nn::dropout::{AlphaDropout, Dropout};
use flux_core::nn::embedding::Embedding;
use flux_core::nn::norm::{batch_norm, group_norm, instance_norm, layer_norm, BatchNorm, GroupNorm, InstanceNorm, LayerNorm, NormOpts};
use flux_core::nn::{Activation, Module};
use flux_core::ops::{dropout as fdrop, embedding::embedding};
use flux_core::tensor::dropout::{dropout_mask, ALPHA_PRIME};
use flux_core::tensor::random::Rng;
use flux_core::{autodiff, DType, Tensor};

/// Reference: standardise `x` (flat, viewed as (p, s, q)) per slice, then
/// `act(γ[a]·x̂ + β[a])` with a = (s mod period)·inner + q ÷ (q/inner).
#[allow(clippy::too_many_arguments)]
fn ref_norm(x: &[f64], p: usize, s: usize, q: usize, period: usize, inner: usize, g: &[f64], b: &[f64], eps: f64, stats: Option<(&[f64], &[f64])>, act: fn(f64) -> f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let idx = |pi: usize, si: usize, qi: usize| (pi * s + si) * q + qi;
    let mut means = vec![0.0; s];
    let mut vars = vec![0.0; s];
    for si in 0..s {
        let vals: Vec<f64> = (0..p).flat_map(|pi| (0..q).map(move |qi| (pi, qi))).map(|(pi, qi)| x[idx(pi, si, qi)]).collect();
        let m = vals.iter().sum::<f64>() / vals.len() as f64;
        means[si] = m;
        vars[si] = vals.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / vals.len() as f64;
    }
    let mut y = vec![0.0; x.len()];
    for pi in 0..p {
        for si in 0..s {
            let (m, v) = match stats {
                Some((rm, rv)) => (rm[si % period], rv[si % period]),
                None => (means[si], vars[si]),
            };
            for qi in 0..q {
                let a = (si % period) * inner + qi / (q / inner);
                let k = idx(pi, si, qi);
                y[k] = act(g[a] * (x[k] - m) / (v + eps).sqrt() + b[a]);
            }
        }
    }
    (y, means, vars)
}

fn ident(v: f64) -> f64 { v }
fn relu(v: f64) -> f64 { v.max(0.0) }

fn relu_act() -> Activation { Activation::from_name("relu").unwrap() }
fn tanh_act() -> Activation { Activation::from_name("tanh").unwrap() }

fn cast(t: &Tensor, dt: DType) -> Tensor { t.cast(dt).unwrap() }

#[test]
fn batchnorm_forward_train_and_test_with_running_stats() {
    let mut g = Gen::new(1);
    let (n, c, h, w) = (4, 3, 2, 5);
    let x = g.vec(n * c * h * w, -2.0, 3.0);
    let gam = g.vec(c, 0.5, 2.0);
    let bet = g.vec(c, -1.0, 1.0);
    for dt in [DType::F64, DType::F32] {
        let tol = if dt == DType::F64 { 1e-12 } else { 1e-5 };
        let mut bn = BatchNorm::new(c).dtype(dt).activation(relu_act()).momentum(0.3);
        bn.gamma = Some(cast(&t64(gam.clone(), &[c]), dt));
        bn.beta = Some(cast(&t64(bet.clone(), &[c]), dt));
        let xt = cast(&t64(x.clone(), &[n, c, h, w]), dt);
        let y = bn.forward_t(&xt, true).unwrap();
        let (want, means, vars) = ref_norm(&x, n, c, h * w, c, 1, &gam, &bet, 1e-5, None, relu);
        assert_eq!(y.dtype(), dt);
        assert_close(&vals(&y), &want, tol, tol);
        // running statistics: (1−m)·init + m·batch, the variance unbiased
        let m = (n * h * w) as f64;
        let (rm, rv) = bn.running_stats().unwrap();
        assert_close(&vals(&rm), &means.iter().map(|v| 0.3 * v).collect::<Vec<_>>(), tol, tol);
        assert_close(&vals(&rv), &vars.iter().map(|v| 0.7 + 0.3 * v * m / (m - 1.0)).collect::<Vec<_>>(), tol, tol);
        // inference: the running statistics, and no update
        let y2 = bn.forward_t(&xt, false).unwrap();
        let (want2, _, _) = ref_norm(&x, n, c, h * w, c, 1, &gam, &bet, 1e-5, Some((&vals(&rm), &vals(&rv))), relu);
        assert_close(&vals(&y2), &want2, tol, tol);
        assert_eq!(vals(&bn.running_stats().unwrap().0), vals(&rm));
        // the buffers are visible by path, through a Chain too
        let chain = flux_core::nn::Chain::new(vec![Box::new(bn)]);
        let names: Vec<String> = chain.buffers().into_iter().map(|(p, _)| p).collect();
        assert_eq!(names, vec!["layers.0.μ", "layers.0.σ2"]); // Flux's and Python's names
        assert!(chain.set_buffer("layers.0.μ", &Tensor::zeros(&[c], dt)).unwrap());
        assert_eq!(vals(&chain.buffers()[0].1), vec![0.0; c]);
        assert!(!chain.set_buffer("layers.0.nothing", &Tensor::zeros(&[c], dt)).unwrap());
    }
}

#[test]
fn batchnorm_without_tracking_or_affine_and_errors() {
    let mut g = Gen::new(2);
    let x = g.vec(12, -1.0, 1.0);
    let bn = BatchNorm::new(4).affine(false).track_stats(false).dtype(DType::F64);
    assert!(bn.parameters().is_empty() && bn.buffers().is_empty());
    let (want, _, _) = ref_norm(&x, 3, 4, 1, 4, 1, &[1.0; 4], &[0.0; 4], 1e-5, None, ident);
    // always the batch's statistics, also in inference
    assert_close(&vals(&bn.forward_t(&t64(x.clone(), &[3, 4]), false).unwrap()), &want, 1e-12, 1e-12);
    let e = BatchNorm::new(4).forward_t(&Tensor::ones(&[3, 5], DType::F32), true).unwrap_err().to_string();
    assert!(e.contains("4 channels") && e.contains("(3, 5)"), "{e}");
    let e = BatchNorm::new(4).forward_t(&Tensor::ones(&[1, 4], DType::F32), true).unwrap_err().to_string();
    assert!(e.contains("more than one value"), "{e}");
}

#[test]
fn instancenorm_groupnorm_layernorm_forward() {
    let mut g = Gen::new(3);
    let (n, c, l) = (2, 4, 5);
    let x = g.vec(n * c * l, -2.0, 2.0);
    let gam = g.vec(c, 0.5, 2.0);
    let bet = g.vec(c, -1.0, 1.0);
    for dt in [DType::F64, DType::F32] {
        let tol = if dt == DType::F64 { 1e-12 } else { 1e-5 };
        let xt = cast(&t64(x.clone(), &[n, c, l]), dt);
        // instance: slices (n, c), affine per channel, running = batch mean of the stats
        let mut inn = InstanceNorm::new(c).dtype(dt).affine(true).track_stats(true);
        inn.gamma = Some(cast(&t64(gam.clone(), &[c]), dt));
        inn.beta = Some(cast(&t64(bet.clone(), &[c]), dt));
        let (want, means, vars) = ref_norm(&x, 1, n * c, l, c, 1, &gam, &bet, 1e-5, None, ident);
        assert_close(&vals(&inn.forward_t(&xt, true).unwrap()), &want, tol, tol);
        let (rm, rv) = inn.running_stats().unwrap();
        let avg = |v: &[f64], j: usize| (0..n).map(|i| v[i * c + j]).sum::<f64>() / n as f64;
        let lf = l as f64;
        assert_close(&vals(&rm), &(0..c).map(|j| 0.1 * avg(&means, j)).collect::<Vec<_>>(), tol, tol);
        assert_close(&vals(&rv), &(0..c).map(|j| 0.9 + 0.1 * avg(&vars, j) * lf / (lf - 1.0)).collect::<Vec<_>>(), tol, tol);
        let (want_t, _, _) = ref_norm(&x, 1, n * c, l, c, 1, &gam, &bet, 1e-5, Some((&vals(&rm), &vals(&rv))), ident);
        assert_close(&vals(&inn.forward_t(&xt, false).unwrap()), &want_t, tol, tol);
        // group: 2 groups of 2 channels, affine per channel
        let mut gn = GroupNorm::new(c, 2).unwrap().dtype(dt).activation(relu_act());
        gn.gamma = Some(cast(&t64(gam.clone(), &[c]), dt));
        gn.beta = Some(cast(&t64(bet.clone(), &[c]), dt));
        let (want, _, _) = ref_norm(&x, 1, n * 2, 2 * l, 2, 2, &gam, &bet, 1e-5, None, relu);
        assert_close(&vals(&gn.forward_t(&xt, true).unwrap()), &want, tol, tol);
        // layer over the last two dims (c, l): affine per position
        let sg = g.vec(c * l, 0.5, 2.0);
        let sb = g.vec(c * l, -1.0, 1.0);
        let mut ln = LayerNorm::new(&[c, l]).dtype(dt);
        ln.gamma = Some(cast(&t64(sg.clone(), &[c, l]), dt));
        ln.beta = Some(cast(&t64(sb.clone(), &[c, l]), dt));
        let (want, _, _) = ref_norm(&x, 1, n, c * l, 1, c * l, &sg, &sb, 1e-5, None, ident);
        assert_close(&vals(&ln.forward_t(&xt, true).unwrap()), &want, tol, tol);
        let e = ln.forward_t(&Tensor::ones(&[2, 5], dt), true).unwrap_err().to_string();
        assert!(e.contains("(4, 5)") && e.contains("(2, 5)"), "{e}");
    }
    assert!(GroupNorm::new(6, 4).unwrap_err().to_string().contains("divisible"));
}

#[test]
fn norm_gradients_train_and_test() {
    let mut g = Gen::new(4);
    let x = g.nd(&[3, 2, 4], -2.0, 2.0).tensor();
    let gam = g.nd(&[2], 0.5, 1.5).tensor();
    let bet = g.nd(&[2], -0.5, 0.5).tensor();
    let o = NormOpts::default().eps(1e-3).activation(tanh_act());
    // training (batch statistics; the running ones are updated but not differentiated)
    gradcheck(&[x.clone(), gam.clone(), bet.clone()], |t| {
        let (mut m, mut v) = (Tensor::zeros(&[2], DType::F64), Tensor::ones(&[2], DType::F64));
        batch_norm(&t[0], 2, Some((&t[1], &t[2])), Some((&mut m, &mut v)), true, &o)
    });
    // inference with fixed statistics
    let (rm, rv) = (g.nd(&[2], -0.5, 0.5).tensor(), g.nd(&[2], 0.5, 2.0).tensor());
    gradcheck(&[x.clone(), gam.clone(), bet.clone()], |t| {
        let (mut m, mut v) = (rm.clone(), rv.clone());
        batch_norm(&t[0], 2, Some((&t[1], &t[2])), Some((&mut m, &mut v)), false, &o)
    });
    gradcheck(&[x.clone()], |t| batch_norm(&t[0], 2, None, None, true, &NormOpts::default().eps(1e-3)));
    gradcheck(&[x.clone(), gam.clone(), bet.clone()], |t| instance_norm(&t[0], 2, Some((&t[1], &t[2])), None, true, &o));
    let x4 = g.nd(&[2, 4, 3], -2.0, 2.0).tensor();
    let (g4, b4) = (g.nd(&[4], 0.5, 1.5).tensor(), g.nd(&[4], -0.5, 0.5).tensor());
    gradcheck(&[x4.clone(), g4, b4], |t| group_norm(&t[0], 4, 2, Some((&t[1], &t[2])), &o));
    let (sg, sb) = (g.nd(&[4, 3], 0.5, 1.5).tensor(), g.nd(&[4, 3], -0.5, 0.5).tensor());
    gradcheck(&[x4.clone(), sg, sb], |t| layer_norm(&t[0], &[4, 3], Some((&t[1], &t[2])), &o));
    // relu away from its kink: the output gradient is masked where the output is 0
    gradcheck(&[x4], |t| layer_norm(&t[0], &[3], None, &NormOpts::default().eps(1e-3).activation(Activation::from_name("softplus").unwrap())));
}

#[test]
fn running_stats_of_another_dtype_are_converted() {
    // f32 running statistics with f64 input: computed in f64, stored as f32
    let x = t64(vec![1.0, 3.0, 5.0, 7.0], &[4, 1]);
    let (mut m, mut v) = (Tensor::zeros(&[1], DType::F32), Tensor::ones(&[1], DType::F32));
    batch_norm(&x, 1, None, Some((&mut m, &mut v)), true, &NormOpts::default()).unwrap();
    assert_eq!((m.dtype(), vals(&m)), (DType::F32, vec![0.4f32 as f64]));
}

#[test]
fn dropout_draws_as_before_and_its_gradient_is_the_mask() {
    for dt in [DType::F64, DType::F32] {
        let x = Tensor::ones(&[6, 5], dt).mul_scalar(3.0).unwrap();
        // the same draws as dropout_mask: one uniform per mask element, in order
        let mask = dropout_mask(&[6, 1], 0.4, dt, &mut Rng::seed(9)).unwrap();
        let want = x.mul(&mask).unwrap();
        let (y, gr) = autodiff::value_and_grad(&[&x], || fdrop::dropout(&x, 0.4, &[6, 1], &mut Rng::seed(9))?.sum_all()).unwrap();
        let y2 = fdrop::dropout(&x, 0.4, &[6, 1], &mut Rng::seed(9)).unwrap();
        assert_eq!(vals(&y2), vals(&want));
        assert_eq!(y.item().unwrap(), vals(&want).iter().sum::<f64>());
        assert_eq!(vals(gr[0].as_ref().unwrap()), vals(&mask.broadcast_to(&[6, 5]).unwrap()));
    }
    // the layer: identity in inference, masks in training, own generator reproducible
    let d = Dropout::new(0.5).unwrap().seed(4);
    let x = Tensor::ones(&[100], DType::F32);
    assert_eq!(vals(&d.forward_t(&x, false).unwrap()), vec![1.0; 100]);
    let a = vals(&d.forward_t(&x, true).unwrap());
    let b = vals(&Dropout::new(0.5).unwrap().seed(4).forward_t(&x, true).unwrap());
    assert_eq!(a, b);
    assert!(a.iter().any(|&v| v == 0.0) && a.iter().any(|&v| v == 2.0));
    assert!(Dropout::new(1.5).is_err());
    assert!(fdrop::dropout(&x, 0.5, &[3], &mut Rng::seed(0)).is_err());
}

#[test]
fn alpha_dropout_values_and_gradient() {
    let p = 0.3;
    let a = 1.0 / ((1.0 - p) * (1.0 + p * ALPHA_PRIME * ALPHA_PRIME)).sqrt();
    let b = -a * ALPHA_PRIME * p;
    let mut g = Gen::new(5);
    let x = g.nd(&[50], -2.0, 2.0).tensor();
    let y = vals(&fdrop::alpha_dropout(&x, p, &mut Rng::seed(1)).unwrap());
    let xv = vals(&x);
    let mut kept = 0;
    for (yv, xv) in y.iter().zip(&xv) {
        if (yv - (a * xv + b)).abs() < 1e-12 {
            kept += 1;
        } else {
            assert!((yv - (a * ALPHA_PRIME + b)).abs() < 1e-12);
        }
    }
    assert!(kept > 20 && kept < 50);
    // d/dx is A where kept, 0 where dropped (same seed, same mask)
    gradcheck(&[x.clone()], |t| fdrop::alpha_dropout(&t[0], p, &mut Rng::seed(1)));
    let l = AlphaDropout::new(p).unwrap().seed(1);
    assert_eq!(vals(&l.forward_t(&x, true).unwrap()), y);
    assert_eq!(vals(&l.forward_t(&x, false).unwrap()), xv);
}

#[test]
fn embedding_gathers_and_scatters_its_gradient() {
    let mut g = Gen::new(6);
    for dt in [DType::F64, DType::F32] {
        let w = cast(&g.nd(&[5, 3], -1.0, 1.0).tensor(), dt);
        let idx = [4, 0, 4, 2, 1, 0];
        let wv = vals(&w);
        let y = embedding(&w, &idx, &[2, 3], None).unwrap();
        assert_eq!(y.shape(), &[2, 3, 3]);
        let want: Vec<f64> = idx.iter().flat_map(|&i| wv[i * 3..i * 3 + 3].to_vec()).collect();
        assert_eq!(vals(&y), want);
        // gradient: Σ of the output gradient rows into their table rows; padding row 0 gets none
        let u = cast(&g.nd(&[2, 3, 3], -1.0, 1.0).tensor(), dt);
        let (_, gr) = autodiff::value_and_grad(&[&w], || embedding(&w, &idx, &[2, 3], Some(0))?.mul(&u)?.sum_all()).unwrap();
        let uv = vals(&u);
        let mut want = vec![0.0; 15];
        for (j, &i) in idx.iter().enumerate() {
            if i != 0 {
                (0..3).for_each(|k| want[i * 3 + k] += uv[j * 3 + k]);
            }
        }
        assert_close(&vals(gr[0].as_ref().unwrap()), &want, 1e-6, 1e-6);
        let yp = vals(&embedding(&w, &idx, &[6], Some(0)).unwrap());
        assert_eq!(&yp[3..6], &[0.0; 3]);
        assert!(embedding(&w, &[5], &[1], None).unwrap_err().to_string().contains("out of bounds"));
    }
    let w = g.nd(&[4, 2], -1.0, 1.0).tensor();
    gradcheck(&[w], |t| embedding(&t[0], &[3, 1, 3], &[3], None));
    let e = Embedding::new(6, 2, DType::F32, &mut Rng::seed(0)).padding(1).unwrap();
    assert_eq!(vals(&e.weight)[2..4], [0.0, 0.0]);
    let y = e.forward_t(&t32(&[1.0, 2.0], &[2]), true).unwrap();
    assert_eq!(y.shape(), &[2, 2]);
    assert_eq!(vals(&y)[..2], [0.0, 0.0]);
}

#[test]
fn containers_report_set_and_visit_their_members_running_statistics() {
    use flux_core::nn::combinators::{Maxout, Parallel, SkipConnection};
    use flux_core::nn::{Chain, ParamPath};
    let bn = || Box::new(BatchNorm::new(2)) as Box<dyn Module>;
    let mut model = Chain::new(vec![
        Box::new(SkipConnection::add(bn())),
        Box::new(Parallel::sum(vec![bn(), Box::new(Chain::new(vec![bn()]))])),
        Box::new(Maxout::new(vec![bn(), bn()])),
    ]);
    let names: Vec<String> = model.buffers().into_iter().map(|(p, _)| p).collect();
    let want = ["layers.0.layers.μ", "layers.0.layers.σ2", "layers.1.layers.0.μ", "layers.1.layers.0.σ2", "layers.1.layers.1.layers.0.μ",
        "layers.1.layers.1.layers.0.σ2", "layers.2.layers.0.μ", "layers.2.layers.0.σ2", "layers.2.layers.1.μ", "layers.2.layers.1.σ2"];
    assert_eq!(names, want);
    // set by path (a checkpoint's restore), read back by path
    for (i, p) in want.iter().enumerate() {
        assert!(model.set_buffer(p, &Tensor::full(&[2], i as f64, DType::F32)).unwrap(), "{p}");
    }
    assert!(!model.set_buffer("layers.0.layers.nothing", &Tensor::zeros(&[2], DType::F32)).unwrap());
    assert!(!model.set_buffer("layers.7.μ", &Tensor::zeros(&[2], DType::F32)).unwrap());
    let got: Vec<f64> = model.buffers().iter().map(|(_, t)| vals(t)[0]).collect();
    assert_eq!(got, (0..10).map(|i| i as f64).collect::<Vec<_>>());
    // visited mutably in the same order with the same paths (how to_device_ moves them)
    let mut seen = vec![];
    model.visit_buffers_mut(&mut ParamPath::new(), &mut |p, t| {
        seen.push(p.to_string());
        *t = t.add_scalar(100.0).unwrap();
    });
    assert_eq!(seen, want);
    assert_eq!(vals(&model.buffers()[9].1), vec![109.0, 109.0]);
    // and the forward reads the visited (replaced) statistics: Maxout of two BatchNorms
    // in test mode, (μ, σ2) = (106, 107) and (108, 109)
    let y = model.layers[2].forward_t(&Tensor::full(&[1, 2], 109.0, DType::F32), false).unwrap();
    let want = (3.0 / (107.0f64 + 1e-5).sqrt()).max(1.0 / (109.0f64 + 1e-5).sqrt());
    assert_close(&vals(&y), &[want, want], 1e-6, 1e-6);
}
