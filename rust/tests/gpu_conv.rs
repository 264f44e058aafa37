//! Convolution, transposed convolution, pooling and resampling on the GPU give the CPU's
//! values and gradients (f32), over stride, asymmetric padding, dilation, groups, bias
//! and the fused relu; and a small CNN (conv-relu-maxpool-conv-global mean pool-dense)
//! trains the same few Adam steps on both. Runs on any wgpu adapter (Mesa's lavapipe in
//! CI); skips, saying why, only when none can be had.
//!
//! Tolerance: 1e-5 relative per element, plus 1e-5 of the largest magnitude in the
//! tensor: the GPU sums a convolution's terms (up to a few hundred here) in another order
//! than the CPU's GEMM, and where those sums cancel, a small result keeps the absolute
//! error of its large terms.
#![cfg(feature = "wgpu")]

use flux_core::autodiff::value_and_grad;
use flux_core::optim::{build, Hyper, Leaf};
use flux_core::tensor::conv::{conv, conv_relu, conv_transpose, ConvSpec};
use flux_core::tensor::misc::{pixel_shuffle, upsample_linear, upsample_nearest};
use flux_core::tensor::pool::{pool, PoolMode, PoolSpec};
use flux_core::{Device, Result, Tensor};

fn gpu() -> Option<Device> {
    match Device::wgpu() {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("SKIPPED: no GPU adapter for the GPU conv tests: {e}");
            None
        }
    }
}

/// Deterministic numbers in [-1, 1) (or small integers, which tie in max pooling).
fn data(seed: u64, shape: &[usize], ints: bool) -> Tensor {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = ((s >> 40) as f32) / (1u64 << 24) as f32;
            if ints { (u * 4.0).floor() } else { 2.0 * u - 1.0 }
        })
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

#[track_caller]
fn close(what: &str, cpu: &Tensor, gpu: &Tensor) {
    assert_eq!(gpu.shape(), cpu.shape(), "{what}: shape");
    let (a, b) = (cpu.to_vec_f64().unwrap(), gpu.to_vec_f64().unwrap());
    let top = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
        let tol = 1e-5 * (x.abs() + top);
        assert!((x - y).abs() <= tol, "{what}: element {i}: cpu {x}, gpu {y}");
    }
}

/// `f(inputs)` and the gradient of `Σ f(inputs) · r` (a fixed random `r`) for every
/// input, on the CPU and on the GPU: values and gradients agree, and the GPU's stay there.
fn same_on_gpu(what: &str, dev: Device, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    let run = |xs: Vec<Tensor>| -> (Tensor, Vec<Tensor>) {
        let refs: Vec<&Tensor> = xs.iter().collect();
        let mut y = None;
        let (_, g) = value_and_grad(&refs, || {
            let out = f(&xs)?;
            let r = data(99, out.shape(), false).to_device(out.device())?;
            let loss = out.mul(&r)?.sum_all();
            y = Some(out);
            loss
        })
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        (y.unwrap(), g.into_iter().map(|g| g.expect("a gradient for every input")).collect())
    };
    let (yc, gc) = run(inputs.to_vec());
    let (yg, gg) = run(inputs.iter().map(|x| x.to_device(dev).unwrap().detach()).collect());
    assert_eq!(yg.device(), dev, "{what}: the output left the GPU");
    close(&format!("{what} output"), &yc, &yg);
    for (i, (c, g)) in gc.iter().zip(&gg).enumerate() {
        assert_eq!(g.device(), dev, "{what}: gradient {i} left the GPU");
        close(&format!("{what} gradient {i}"), c, g);
    }
}

fn spec(stride: &[usize], lo: &[usize], hi: &[usize], dil: &[usize], groups: usize) -> ConvSpec {
    ConvSpec { stride: stride.to_vec(), pad_lo: lo.to_vec(), pad_hi: hi.to_vec(), dilation: dil.to_vec(), groups }
}

#[test]
fn conv_forward_and_gradients_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    // (label, x shape, w shape, spec, bias, relu)
    let cases: Vec<(&str, Vec<usize>, Vec<usize>, ConvSpec, bool, bool)> = vec![
        ("2-d plain", vec![2, 3, 6, 5], vec![4, 3, 3, 3], spec(&[1, 1], &[0, 0], &[0, 0], &[1, 1], 1), true, false),
        ("2-d stride 2, asymmetric pad", vec![2, 2, 7, 6], vec![3, 2, 3, 2], spec(&[2, 2], &[1, 0], &[2, 1], &[1, 1], 1), true, true),
        ("2-d dilation 2, groups 2", vec![1, 4, 7, 7], vec![6, 2, 3, 3], spec(&[1, 2], &[2, 1], &[1, 2], &[2, 2], 2), false, false),
        ("2-d depthwise, relu", vec![2, 3, 5, 5], vec![3, 1, 3, 3], spec(&[1, 1], &[1, 1], &[1, 1], &[1, 1], 3), true, true),
        ("1-d stride 3, dilation 2", vec![3, 2, 11], vec![4, 2, 3], spec(&[3], &[2], &[0], &[2], 1), true, false),
        ("3-d", vec![1, 2, 4, 5, 3], vec![2, 1, 2, 3, 2], spec(&[1, 2, 1], &[1, 0, 1], &[0, 1, 1], &[1, 1, 2], 2), true, true),
        // a wide sum: 16 channels × 3 × 3 per output, 2 × 12 × 12 outputs per filter entry
        ("2-d wide", vec![2, 16, 12, 12], vec![8, 16, 3, 3], spec(&[1, 1], &[1, 1], &[1, 1], &[1, 1], 1), true, false),
    ];
    for (i, (label, xs, ws, sp, bias, relu)) in cases.into_iter().enumerate() {
        let s = 10 * i as u64;
        let mut ins = vec![data(s, &xs, false), data(s + 1, &ws, false)];
        if bias {
            ins.push(data(s + 2, &[ws[0]], false));
        }
        same_on_gpu(label, dev, &ins, |t| {
            let b = t.get(2);
            if relu { conv_relu(&t[0], &t[1], b, &sp) } else { conv(&t[0], &t[1], b, &sp) }
        });
    }
}

#[test]
fn conv_transpose_forward_and_gradients_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    // (label, x shape, w shape, spec, out_pad)
    let cases: Vec<(&str, Vec<usize>, Vec<usize>, ConvSpec, Vec<usize>)> = vec![
        ("2-d stride 2", vec![2, 3, 3, 4], vec![3, 2, 2, 2], spec(&[2, 2], &[0, 0], &[0, 0], &[1, 1], 1), vec![0, 0]),
        ("2-d pad, out_pad, groups 2", vec![1, 4, 4, 3], vec![4, 3, 3, 3], spec(&[2, 2], &[1, 0], &[1, 1], &[1, 1], 2), vec![1, 0]),
        ("1-d dilation 2", vec![2, 2, 5], vec![2, 3, 3], spec(&[1], &[1], &[0], &[2], 1), vec![0]),
    ];
    for (i, (label, xs, ws, sp, op)) in cases.into_iter().enumerate() {
        let s = 100 + 10 * i as u64;
        let cout = ws[1] * sp.groups;
        let ins = vec![data(s, &xs, false), data(s + 1, &ws, false), data(s + 2, &[cout], false)];
        same_on_gpu(label, dev, &ins, |t| conv_transpose(&t[0], &t[1], Some(&t[2]), &sp, &op));
    }
}

#[test]
fn pooling_forward_and_gradients_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let ps = |w: &[usize], s: &[usize], lo: &[usize], hi: &[usize]| PoolSpec { window: w.to_vec(), stride: s.to_vec(), pad_lo: lo.to_vec(), pad_hi: hi.to_vec() };
    // (label, x shape, spec, integer data: ties in max windows)
    let cases: Vec<(&str, Vec<usize>, PoolSpec, bool)> = vec![
        ("2-d 2×2", vec![2, 3, 6, 6], PoolSpec::new(&[2, 2]), false),
        ("2-d 2×2 with ties", vec![2, 2, 6, 4], PoolSpec::new(&[2, 2]), true),
        ("2-d overlapping 3×3 stride 2, padded", vec![1, 2, 7, 6], ps(&[3, 3], &[2, 2], &[1, 1], &[1, 2]), true),
        ("1-d window 3 stride 1", vec![2, 2, 9], ps(&[3], &[1], &[0], &[2]), false),
        ("3-d", vec![1, 2, 4, 4, 5], ps(&[2, 2, 3], &[2, 1, 2], &[0, 1, 1], &[1, 0, 1]), false),
    ];
    for (i, (label, xs, sp, ints)) in cases.into_iter().enumerate() {
        for mode in [PoolMode::Max, PoolMode::Mean] {
            let x = data(200 + i as u64, &xs, ints);
            same_on_gpu(&format!("{label} {mode:?}"), dev, &[x], |t| pool(&t[0], mode, &sp));
        }
    }
    // adaptive pooling is pooling with a derived window and stride; global pooling a reduction
    let x = data(300, &[2, 3, 5, 4], false);
    same_on_gpu("global mean", dev, std::slice::from_ref(&x), |t| t[0].mean(Some(&[2, 3]), true));
    same_on_gpu("global max", dev, &[x], |t| t[0].max(Some(&[2, 3]), true));
}

#[test]
fn resampling_forward_and_gradients_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let x = data(400, &[2, 2, 3, 4], false);
    same_on_gpu("upsample nearest", dev, std::slice::from_ref(&x), |t| upsample_nearest(&t[0], &[6, 6]));
    same_on_gpu("upsample bilinear", dev, std::slice::from_ref(&x), |t| upsample_linear(&t[0], &[5, 7], false));
    same_on_gpu("upsample bilinear, corners aligned", dev, std::slice::from_ref(&x), |t| upsample_linear(&t[0], &[6, 9], true));
    same_on_gpu("upsample trilinear", dev, &[data(401, &[1, 2, 2, 3, 2], false)], |t| upsample_linear(&t[0], &[3, 5, 4], false));
    same_on_gpu("pixel shuffle", dev, &[data(402, &[2, 8, 2, 3], false)], |t| pixel_shuffle(&t[0], 2));
}

/// conv(3×3, 1→4) + relu → max pool 2×2 → conv(3×3, 4→6) → global mean → dense(6→3).
fn cnn(p: &[Tensor], x: &Tensor) -> Result<Tensor> {
    let h = conv_relu(x, &p[0], Some(&p[1]), &ConvSpec::new(2).with_pad(1))?;
    let h = pool(&h, PoolMode::Max, &PoolSpec::new(&[2, 2]))?;
    let h = conv(&h, &p[2], Some(&p[3]), &ConvSpec::new(2))?;
    let h = h.mean(Some(&[2, 3]), false)?;
    h.matmul(&p[4])?.add(&p[5])
}

#[test]
fn a_small_cnn_trains_on_the_gpu_as_on_the_cpu() {
    let Some(dev) = gpu() else { return };
    let shapes: [&[usize]; 6] = [&[4, 1, 3, 3], &[4], &[6, 4, 3, 3], &[6], &[6, 3], &[3]];
    let init: Vec<Tensor> = shapes.iter().enumerate().map(|(i, s)| data(500 + i as u64, s, false).mul_scalar(0.5).unwrap()).collect();
    let (x, y) = (data(600, &[4, 1, 8, 8], false), data(601, &[4, 3], false));
    let adam = build("Adam", &[("eta".to_string(), Hyper::Float(0.01))]).unwrap();
    let train = |on: Device| -> (Vec<f64>, Vec<Tensor>) {
        let mut ps: Vec<Tensor> = init.iter().map(|t| t.to_device(on).unwrap().detach()).collect();
        let mut leaves: Vec<Leaf> = ps.iter().map(|p| Leaf::new(adam.clone(), p).unwrap()).collect();
        let (x, y) = (x.to_device(on).unwrap(), y.to_device(on).unwrap());
        let mut losses = vec![];
        for _ in 0..4 {
            let refs: Vec<&Tensor> = ps.iter().collect();
            let (l, g) = value_and_grad(&refs, || {
                let d = cnn(&ps, &x)?.sub(&y)?;
                d.mul(&d)?.mean(None, false)
            })
            .unwrap();
            losses.push(l.item().unwrap());
            for ((p, leaf), g) in ps.iter_mut().zip(&mut leaves).zip(g) {
                let g = g.expect("every parameter gets a gradient");
                assert_eq!(g.device(), on);
                leaf.step(p, &g).unwrap();
            }
        }
        (losses, ps)
    };
    let (lc, pc) = train(Device::Cpu);
    let (lg, pg) = train(dev);
    assert!(lc[3] < lc[0], "the CPU run learns: {lc:?}");
    for (i, (a, b)) in lc.iter().zip(&lg).enumerate() {
        assert!((a - b).abs() <= 1e-5 * a.abs(), "loss {i}: cpu {a}, gpu {b}");
    }
    for (i, (c, g)) in pc.iter().zip(&pg).enumerate() {
        assert_eq!(g.device(), dev);
        close(&format!("parameter {i} after 4 Adam steps"), c, g);
    }
}
