//! GPU kernels per op, counted: Dense's forward is one dispatch (the matrix product
//! with the bias and the activation applied as its tiles are stored), a norm layer's
//! activation runs in the norm kernel's pass (no dispatch of its own), and a
//! convolution or pooling of operands already packed on the GPU borrows them (no device
//! copy first). The fused kernels give, bit for bit, what the unfused ones give (the
//! same float operations in the same order); the gradients agree with the CPU's
//! (tests/gpu_ops.rs, tests/gpu_fused.rs, tests/gpu_conv.rs). Skips, saying why, only
//! when no adapter can be had.
#![cfg(feature = "wgpu")]

use std::sync::Mutex;

#[path = "common/gpu.rs"]
mod common;
use common::data;

use flux_core::backend::wgpu::batch;
use flux_core::nn::{linear, Activation};
use flux_core::ops::norm::{norm, NormSpec, Stats};
use flux_core::tensor::conv::{conv, conv_relu, ConvSpec};
use flux_core::tensor::pool::{pool, PoolMode, PoolSpec};
use flux_core::{Device, Result, Tensor};

// the dispatch counter is per process: the tests of this file take turns
static SERIAL: Mutex<()> = Mutex::new(());

fn gpu() -> Option<Device> { common::gpu("the dispatch-count tests") }

/// `f()`'s result and the kernels it dispatched (outside a gradient: forward only).
fn counted(f: impl FnOnce() -> Result<Tensor>) -> (Vec<f32>, u64) {
    let d0 = batch::dispatches();
    let y = f().unwrap();
    let n = batch::dispatches() - d0;
    (y.to_vec::<f32>().unwrap(), n)
}

const ACTS: [Activation; 6] =
    [Activation::Identity, Activation::Relu, Activation::Tanh, Activation::Gelu, Activation::LeakyRelu(0.2), Activation::Elu(1.0)];

#[test]
fn dense_forward_is_one_dispatch_and_matches_the_unfused_kernels_bit_for_bit() {
    let Some(d) = gpu() else { return };
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // 70 rows and 65 outputs: partial 64×64 tiles on both sides
    let (x, w, b) = (data(&[70, 33], 1, -1.0, 1.0).to_device(d).unwrap(), data(&[65, 33], 2, -1.0, 1.0).to_device(d).unwrap(), data(&[65], 3, -1.0, 1.0).to_device(d).unwrap());
    for act in ACTS {
        let (fused, n) = counted(|| linear(&x, &w, Some(&b), act));
        assert_eq!(n, 1, "{act:?}: Dense's forward took {n} dispatches");
        let (apart, _) = counted(|| act.apply(&x.matmul(&w.t()?)?.add(&b)?));
        assert!(fused.iter().zip(&apart).all(|(a, b)| a.to_bits() == b.to_bits()), "{act:?}: fused and unfused differ");
        let (nobias, n) = counted(|| linear(&x, &w, None, act));
        assert_eq!(n, 1, "{act:?} without bias: {n} dispatches");
        let (apart, _) = counted(|| act.apply(&x.matmul(&w.t()?)?));
        assert!(nobias.iter().zip(&apart).all(|(a, b)| a.to_bits() == b.to_bits()), "{act:?} without bias: fused and unfused differ");
    }
    // a transposed input is read through its strides (no copy first)
    let xt = data(&[33, 70], 4, -1.0, 1.0).to_device(d).unwrap();
    let (y, n) = counted(|| linear(&xt.t()?, &w, Some(&b), Activation::Relu));
    assert_eq!(n, 1, "Dense of a transposed input: {n} dispatches");
    let (apart, _) = counted(|| xt.t()?.matmul(&w.t()?)?.add(&b)?.relu());
    assert!(y.iter().zip(&apart).all(|(a, b)| a.to_bits() == b.to_bits()), "Dense of a transposed input differs");
}

#[test]
fn a_norm_layers_activation_runs_in_the_norm_kernels_pass() {
    let Some(d) = gpu() else { return };
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let x = data(&[4, 3, 5], 5, -1.0, 1.0).to_device(d).unwrap();
    let (g, b) = (data(&[3], 6, -1.0, 1.0).to_device(d).unwrap(), data(&[3], 7, -1.0, 1.0).to_device(d).unwrap());
    let sp = NormSpec::new(4, 3, 5).affine(3, 1);
    let (z, plain) = counted(|| norm(&x, Some((&g, &b)), &sp, Stats::Batch));
    for act in ACTS {
        let (y, n) = counted(|| norm(&x, Some((&g, &b)), &sp.activation(act), Stats::Batch));
        assert_eq!(n, plain, "{act:?}: the activation took dispatches of its own ({n} vs {plain})");
        let zt = Tensor::from_vec(z.clone(), &[4, 3, 5]).unwrap().to_device(d).unwrap();
        let (apart, _) = counted(|| act.apply(&zt));
        assert!(y.iter().zip(&apart).all(|(a, b)| a.to_bits() == b.to_bits()), "{act:?}: fused and unfused differ");
    }
}

#[test]
fn conv_and_pooling_of_packed_gpu_operands_copy_nothing_first() {
    let Some(d) = gpu() else { return };
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let x = data(&[2, 3, 8, 8], 8, -1.0, 1.0).to_device(d).unwrap();
    let (w, b) = (data(&[4, 3, 3, 3], 9, -1.0, 1.0).to_device(d).unwrap(), data(&[4], 10, -1.0, 1.0).to_device(d).unwrap());
    // one kernel each: the convolution (bias and relu inside), the pooling
    let (_, n) = counted(|| conv_relu(&x, &w, Some(&b), &ConvSpec::new(2).with_pad(1)));
    assert_eq!(n, 1, "conv_relu of packed operands: {n} dispatches");
    let (_, n) = counted(|| conv(&x, &w, None, &ConvSpec::new(2)));
    assert_eq!(n, 1, "conv of packed operands: {n} dispatches");
    let (_, n) = counted(|| pool(&x, PoolMode::Max, &PoolSpec::new(&[2, 2])));
    assert_eq!(n, 1, "max pool of a packed input: {n} dispatches");
    // a view still gets its packed copy: one more kernel
    let xt = x.permute(&[0, 1, 3, 2]).unwrap();
    let (_, n) = counted(|| conv(&xt, &w, None, &ConvSpec::new(2)));
    assert_eq!(n, 2, "conv of a transposed view: {n} dispatches");
}
