//! The primitives and fused ops that gained a GPU path in session 6 give the CPU's
//! values and gradients on the GPU: clamp, argmax, slicing's backward, the in-place
//! `assign_`/`sub_assign_`, the Dense fused op (each activation kind), the fused mse,
//! ClipNorm's norm reduced on the device, and ctc_loss with a GPU input. f32, within
//! 1e-5 relative. Skips, saying why, only when no adapter can be had.
#![cfg(feature = "wgpu")]

#[path = "common/gpu.rs"]
mod common;
use common::data;

use flux_core::autodiff::value_and_grad;
use flux_core::nn::{linear, losses, Activation};
use flux_core::optim::clip::{device_pnorm, pnorm};
use flux_core::tensor::misc::clamp;
use flux_core::tensor::movement::SliceDim;
use flux_core::{Device, Result, Tensor};

fn gpu() -> Option<Device> {
    match Device::wgpu() {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("SKIPPED: no GPU adapter for the GPU op tests: {e}");
            None
        }
    }
}

#[track_caller]
fn close(a: &Tensor, b: &Tensor, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}: shapes");
    for (i, (x, y)) in a.to_vec_f64().unwrap().iter().zip(b.to_vec_f64().unwrap()).enumerate() {
        assert!((x - y).abs() <= 1e-5 * x.abs().max(y.abs()).max(1.0), "{what}: element {i}: cpu {x} vs gpu {y}");
    }
}

/// `f(xs)` and the gradients of `sum(f(xs) · w)` on the CPU and on `dev`, compared.
fn same_on_both(dev: Device, xs: &[Tensor], what: &str, f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    let run = |d: Device| {
        let ins: Vec<Tensor> = xs.iter().map(|x| x.to_device(d).unwrap().detach()).collect();
        let refs: Vec<&Tensor> = ins.iter().collect();
        let y = f(&ins).unwrap();
        let w = data(y.shape(), 99, -1.0, 1.0).to_device(d).unwrap();
        let (_, g) = value_and_grad(&refs, || f(&ins)?.mul(&w)?.sum_all()).unwrap();
        (y, g)
    };
    let (yc, gc) = run(Device::Cpu);
    let (yg, gg) = run(dev);
    assert_eq!(yg.device(), dev, "{what}: the output left the GPU");
    close(&yc, &yg, what);
    for (a, b) in gc.iter().zip(&gg) {
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        assert_eq!(b.device(), dev, "{what}: the gradient left the GPU");
        close(a, b, &format!("{what} (gradient)"));
    }
}

#[test]
fn clamp_and_its_gradient_on_the_gpu() {
    let Some(d) = gpu() else { return };
    same_on_both(d, &[data(&[7, 9], 1, -2.0, 2.0)], "clamp", |x| clamp(&x[0], -0.5, 1.0));
    same_on_both(d, &[data(&[7, 9], 2, -2.0, 2.0)], "one-sided clamp", |x| clamp(&x[0], 0.0, f64::INFINITY));
    // through a transposed view (the kernel reads strides)
    same_on_both(d, &[data(&[7, 9], 3, -2.0, 2.0)], "clamp of a view", |x| clamp(&x[0].t()?, -1.0, 1.0));
}

#[test]
fn argmax_on_the_gpu_gives_the_cpu_indices() {
    let Some(d) = gpu() else { return };
    let mut v = data(&[5, 6, 7], 4, -1.0, 1.0).to_vec::<f32>().unwrap();
    v[10] = f32::NAN; // NaN counts as the largest
    v[50] = 3.0;
    v[52] = 3.0; // a tie: the first wins
    let x = Tensor::from_vec(v, &[5, 6, 7]).unwrap();
    let xg = x.to_device(d).unwrap();
    for dim in [0, 1, 2, -1] {
        assert_eq!(x.argmax(dim).unwrap(), xg.argmax(dim).unwrap(), "argmax over {dim}");
    }
}

#[test]
fn slicing_backward_on_the_gpu() {
    let Some(d) = gpu() else { return };
    let dims = [SliceDim { start: 1, len: 3, step: 2 }, SliceDim { start: 0, len: 2, step: 1 }, SliceDim { start: 2, len: 2, step: 3 }];
    same_on_both(d, &[data(&[7, 3, 8], 5, -1.0, 1.0)], "slice", |x| x[0].slice(&dims));
}

#[test]
fn in_place_assign_and_sub_assign_on_the_gpu() {
    let Some(d) = gpu() else { return };
    let (a, b) = (data(&[4, 5], 6, -1.0, 1.0), data(&[5], 7, -1.0, 1.0));
    let mut c = a.clone();
    c.sub_assign_(&b).unwrap();
    let mut g = a.to_device(d).unwrap();
    let id = g.id();
    g.sub_assign_(&b.to_device(d).unwrap()).unwrap();
    assert_eq!((g.id(), g.device()), (id, d));
    close(&c, &g, "sub_assign_");
    // assign_ keeps the device and identity and takes a host source
    g.assign_(&a).unwrap();
    assert_eq!((g.id(), g.device()), (id, d));
    close(&a, &g, "assign_ from the host");
    g.assign_(&b.to_device(d).unwrap().broadcast_to(&[4, 5]).unwrap()).unwrap();
    close(&b.broadcast_to(&[4, 5]).unwrap(), &g, "assign_ of a broadcast view");
}

#[test]
fn the_dense_fused_op_and_its_gradient_on_the_gpu() {
    let Some(d) = gpu() else { return };
    let acts = [Activation::Identity, Activation::Relu, Activation::Tanh, Activation::Sigmoid, Activation::Gelu, Activation::Elu(1.0), Activation::Swish];
    for act in acts {
        let xs = [data(&[6, 5], 8, -1.0, 1.0), data(&[3, 5], 9, -1.0, 1.0), data(&[3], 10, -1.0, 1.0)];
        same_on_both(d, &xs, &format!("Dense {act:?}"), |t| linear(&t[0], &t[1], Some(&t[2]), act));
    }
    // no bias, and a 3-d input
    same_on_both(d, &[data(&[2, 6, 5], 11, -1.0, 1.0), data(&[3, 5], 12, -1.0, 1.0)], "Dense without bias", |t| linear(&t[0], &t[1], None, Activation::Relu));
}

#[test]
fn the_fused_mse_and_its_gradient_on_the_gpu() {
    let Some(d) = gpu() else { return };
    let xs = [data(&[6, 5], 13, -1.0, 1.0), data(&[6, 5], 14, -1.0, 1.0)];
    same_on_both(d, &xs, "mse mean", |t| losses::mse(&t[0], &t[1], losses::Agg::Mean));
    same_on_both(d, &xs, "mse sum", |t| losses::mse(&t[0], &t[1], losses::Agg::Sum));
}

#[test]
fn clipnorm_reduces_the_norm_on_the_gpu() {
    let Some(d) = gpu() else { return };
    let g = data(&[33, 7], 15, -3.0, 3.0);
    let host = g.to_vec::<f32>().unwrap();
    let gd = g.to_device(d).unwrap();
    for p in [2.0, 1.0, 3.0, 0.0, f64::INFINITY, f64::NEG_INFINITY] {
        let (want, got) = (pnorm::<f32>(&host, p) as f64, device_pnorm(&gd, p).unwrap());
        assert!((want - got).abs() <= 1e-5 * want.abs().max(1.0), "p = {p}: cpu {want} vs gpu {got}");
    }
    // a zero gradient has norm 0; an infinite entry gives an infinite norm
    assert_eq!(device_pnorm(&Tensor::zeros(&[5], flux_core::DType::F32).to_device(d).unwrap(), 2.0).unwrap(), 0.0);
    let inf = Tensor::from_vec(vec![1.0f32, f32::INFINITY], &[2]).unwrap().to_device(d).unwrap();
    assert_eq!(device_pnorm(&inf, 2.0).unwrap(), f64::INFINITY);
}

#[test]
fn ctc_loss_of_gpu_logits_stays_on_the_gpu() {
    let Some(d) = gpu() else { return };
    same_on_both(d, &[data(&[6, 4], 16, -1.0, 1.0)], "ctc_loss", |t| losses::ctc_loss(&t[0], &[0, 2, 2]));
}
