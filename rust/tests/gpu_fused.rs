//! The fused ops on the GPU give the CPU's result: normalisation (batch, layer, group,
//! instance; train, running statistics, test mode), embedding, scale, bilinear and
//! maxout, forward and every gradient, f32, each element within 1e-5 of the larger of
//! its own magnitude and the tensor's largest (sums in another order move the last
//! bits); dropout and alpha dropout by their statistics and by the backward using the
//! forward's mask. Runs on any wgpu adapter (Mesa's lavapipe in CI); skips, saying
//! why, only when none can be had.
#![cfg(feature = "wgpu")]

use flux_core::autodiff::value_and_grad;
use flux_core::nn::Activation;
use flux_core::ops::bilinear::bilinear;
use flux_core::ops::dropout::{alpha_dropout, dropout};
use flux_core::ops::embedding::embedding;
use flux_core::ops::maxout::maxout;
use flux_core::ops::norm::{norm, NormSpec, Stats};
use flux_core::ops::scale::scale;
use flux_core::tensor::random::Rng;
use flux_core::{Device, Result, Tensor};

fn gpu() -> Option<Device> {
    match Device::wgpu() {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("SKIPPED: no GPU adapter for the fused-op GPU tests: {e}");
            None
        }
    }
}

fn data(shape: &[usize], seed: u64) -> Tensor {
    Rng::seed(seed).normal_tensor(shape, 0.5, 1.0, flux_core::DType::F32)
}

#[track_caller]
fn assert_close(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.device(), Device::Wgpu, "{what}: computed on the GPU");
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let (g, w) = (got.to_vec_f64().unwrap(), want.to_vec_f64().unwrap());
    let top = w.iter().fold(0f64, |m, v| m.max(v.abs()));
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(top), "{what}: element {i}: GPU {a} vs CPU {b} (largest {top})");
    }
}

/// `f` on the CPU and on the GPU, output and the gradients of Σ out·weights with
/// respect to every input.
fn compare(what: &str, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    let dev = match gpu() {
        Some(d) => d,
        None => return,
    };
    let run = |xs: &[Tensor]| {
        let refs: Vec<&Tensor> = xs.iter().collect();
        let mut out = None;
        let (_, grads) = value_and_grad(&refs, || {
            let y = f(xs)?;
            let w = data(y.shape(), 99).to_device(y.device())?;
            out = Some(y.clone());
            y.mul(&w)?.sum_all()
        })
        .unwrap();
        (out.unwrap(), grads)
    };
    let (yc, gc) = run(inputs);
    let on_gpu: Vec<Tensor> = inputs.iter().map(|x| x.to_device(dev).unwrap()).collect();
    let (yg, gg) = run(&on_gpu);
    assert_close(&yg, &yc, &format!("{what}: output"));
    for (i, (a, b)) in gg.iter().zip(&gc).enumerate() {
        assert_close(a.as_ref().expect("a GPU gradient"), b.as_ref().expect("a CPU gradient"), &format!("{what}: gradient {i}"));
    }
}

#[test]
fn norms_with_batch_statistics_match_the_cpu() {
    let act = Activation::Tanh;
    // (spec over the input's shape, input shape, affine length)
    let cases: Vec<(&str, NormSpec, Vec<usize>, usize)> = vec![
        ("batch", NormSpec::new(4, 3, 4).affine(3, 1).activation(Activation::Relu), vec![4, 3, 2, 2], 3),
        ("layer", NormSpec::new(1, 3, 5).affine(1, 5), vec![3, 5], 5),
        ("group", NormSpec::new(1, 4, 6).affine(2, 2).activation(act), vec![2, 4, 3], 4),
        ("instance", NormSpec::new(1, 6, 4).affine(3, 1).eps(1e-3), vec![2, 3, 4], 3),
        // activations whose derivative needs z: the fused kernel keeps it beside y
        ("layer, gelu", NormSpec::new(1, 3, 5).affine(1, 5).activation(Activation::Gelu), vec![3, 5], 5),
        ("instance, leaky relu", NormSpec::new(1, 6, 4).affine(3, 1).activation(Activation::LeakyRelu(0.1)), vec![2, 3, 4], 3),
        // 300 values per slice: more than a workgroup's 256 invocations
        ("batch, long slices", NormSpec::new(30, 2, 10).affine(2, 1), vec![30, 2, 10], 2),
    ];
    for (name, sp, shape, na) in cases {
        let x = data(&shape, 1);
        compare(&format!("{name} norm, affine"), &[x.clone(), data(&[na], 2), data(&[na], 3)], |xs| {
            norm(&xs[0], Some((&xs[1], &xs[2])), &sp, Stats::Batch)
        });
        compare(&format!("{name} norm"), &[x], |xs| norm(&xs[0], None, &sp, Stats::Batch));
    }
}

#[test]
fn batchnorm_running_statistics_and_test_mode_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let sp = NormSpec::new(4, 3, 5).affine(3, 1);
    let (g, b) = (data(&[3], 2), data(&[3], 3));
    let (mut mc, mut vc) = (Tensor::zeros(&[3], flux_core::DType::F32), Tensor::ones(&[3], flux_core::DType::F32));
    let (mut mg, mut vg) = (mc.to_device(dev).unwrap(), vc.to_device(dev).unwrap());
    let (gg, bg) = (g.to_device(dev).unwrap(), b.to_device(dev).unwrap());
    for step in 0..3 {
        let x = data(&[4, 3, 5], 10 + step);
        let yc = norm(&x, Some((&g, &b)), &sp, Stats::Track { mean: &mut mc, var: &mut vc, momentum: 0.1 }).unwrap();
        let yg = norm(&x.to_device(dev).unwrap(), Some((&gg, &bg)), &sp, Stats::Track { mean: &mut mg, var: &mut vg, momentum: 0.1 }).unwrap();
        assert_close(&yg, &yc, &format!("train step {step}"));
    }
    assert_close(&mg, &mc, "running mean after 3 steps");
    assert_close(&vg, &vc, "running variance after 3 steps");
    assert_ne!(mc.to_vec_f64().unwrap(), vec![0.0; 3], "the running mean moved");
    // test mode: the running statistics standardise, and gradients flow through them as constants
    let x = data(&[4, 3, 5], 20);
    compare("batch norm, test mode", &[x, g, b], |xs| {
        let (m, v) = if xs[0].device() == Device::Cpu { (&mc, &vc) } else { (&mg, &vg) };
        norm(&xs[0], Some((&xs[1], &xs[2])), &sp, Stats::Running { mean: m, var: v })
    });
}

#[test]
fn embedding_scale_bilinear_and_maxout_match_the_cpu() {
    let idx = [1, 4, 1, 0, 4, 2];
    for pad in [None, Some(4)] {
        compare(&format!("embedding, padding {pad:?}"), &[data(&[5, 3], 1)], |xs| embedding(&xs[0], &idx, &[2, 3], pad));
    }
    compare("scale, bias, swish", &[data(&[2, 3, 4], 1), data(&[3, 4], 2), data(&[3, 4], 3)], |xs| {
        scale(&xs[0], &xs[1], Some(&xs[2]), Activation::Swish)
    });
    compare("scale", &[data(&[2, 3, 4], 1), data(&[4], 2)], |xs| scale(&xs[0], &xs[1], None, Activation::Identity));
    compare("bilinear, bias, tanh", &[data(&[2, 3, 4], 1), data(&[2, 3, 5], 2), data(&[6, 4, 5], 3), data(&[6], 4)], |xs| {
        bilinear(&xs[0], &xs[1], &xs[2], Some(&xs[3]), Activation::Tanh)
    });
    compare("bilinear", &[data(&[3, 4], 1), data(&[3, 2], 2), data(&[5, 4, 2], 3)], |xs| {
        bilinear(&xs[0], &xs[1], &xs[2], None, Activation::Identity)
    });
    // ties: b equals a in its first row, so those elements share their gradient
    let a = data(&[3, 4], 1);
    let b = Tensor::concat(&[&a.reshape(&[3, 4]).unwrap().index_select(0, &[0]).unwrap(), &data(&[2, 4], 2)], 0).unwrap();
    compare("maxout with ties", &[a, b, data(&[3, 4], 3)], |xs| maxout(xs));
}

#[test]
fn gpu_dropout_masks_have_the_right_statistics_and_the_backward_uses_them() {
    let Some(dev) = gpu() else { return };
    let (n, m) = (64, 32);
    let ones = Tensor::ones(&[n, m], flux_core::DType::F32).to_device(dev).unwrap();
    for (p, mask_shape) in [(0.3, vec![n, m]), (0.5, vec![n, 1])] {
        let mut rng = Rng::seed(7);
        let mut y = None;
        let (_, g) = value_and_grad(&[&ones], || {
            let out = dropout(&ones, p, &mask_shape, &mut rng)?;
            y = Some(out.clone());
            out.sum_all()
        })
        .unwrap();
        let y = y.unwrap();
        assert_eq!(y.device(), Device::Wgpu);
        let v = y.to_vec_f64().unwrap();
        let keep = 1.0 / (1.0 - p);
        assert!(v.iter().all(|&a| a == 0.0 || (a - keep).abs() < 1e-6), "mask values are 0 or 1/(1-p)");
        let draws = mask_shape.iter().product::<usize>() as f64;
        let kept = v.iter().filter(|&&a| a != 0.0).count() as f64 / (n * m) as f64;
        let sd = (p * (1.0 - p) / draws).sqrt();
        assert!((kept - (1.0 - p)).abs() < 5.0 * sd, "p = {p}: kept {kept}, expected {} ± {}", 1.0 - p, 5.0 * sd);
        if mask_shape[1] == 1 {
            assert!(v.chunks(m).all(|r| r.iter().all(|&a| a == r[0])), "a (n, 1) mask keeps whole rows");
        }
        // d Σy / dx is the mask itself, which y (x = 1) shows
        assert_eq!(g[0].as_ref().unwrap().to_vec_f64().unwrap(), v, "the backward multiplies by the forward's mask");
        // a seeded generator gives the same GPU mask again; the next call another one
        let mut again = Rng::seed(7);
        let first = dropout(&ones, p, &mask_shape, &mut again).unwrap().to_vec_f64().unwrap();
        assert_eq!(first, v);
        assert_ne!(dropout(&ones, p, &mask_shape, &mut again).unwrap().to_vec_f64().unwrap(), v);
    }
}

#[test]
fn gpu_alpha_dropout_keeps_mean_and_variance_and_the_backward_uses_its_mask() {
    let Some(dev) = gpu() else { return };
    let p = 0.2;
    let x = Rng::seed(3).normal_tensor(&[64, 64], 0.0, 1.0, flux_core::DType::F32).to_device(dev).unwrap();
    let mut rng = Rng::seed(5);
    let mut y = None;
    let (_, g) = value_and_grad(&[&x], || {
        let out = alpha_dropout(&x, p, &mut rng)?;
        y = Some(out.clone());
        out.sum_all()
    })
    .unwrap();
    let (xv, yv, gv) = (x.to_vec_f64().unwrap(), y.unwrap().to_vec_f64().unwrap(), g[0].as_ref().unwrap().to_vec_f64().unwrap());
    let alpha = -1.7580993408473766; // α′ = −λα of SELU
    let a = 1.0 / ((1.0 - p) * (1.0 + p * alpha * alpha)).sqrt();
    let b = -a * alpha * p;
    let mut kept = 0usize;
    for i in 0..xv.len() {
        if gv[i] != 0.0 {
            kept += 1;
            assert!((gv[i] - a).abs() < 1e-6 && (yv[i] - (a * xv[i] + b)).abs() < 1e-5, "a kept element: y = A·x + B, dy/dx = A");
        } else {
            assert!((yv[i] - (a * alpha + b)).abs() < 1e-5, "a dropped element is A·α′ + B");
        }
    }
    let n = xv.len() as f64;
    let frac = kept as f64 / n;
    assert!((frac - (1.0 - p)).abs() < 5.0 * (p * (1.0 - p) / n).sqrt(), "kept {frac}");
    let mean = yv.iter().sum::<f64>() / n;
    let var = yv.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    assert!(mean.abs() < 0.1 && (var - 1.0).abs() < 0.15, "alpha dropout keeps mean 0 and variance 1: {mean}, {var}");
}
