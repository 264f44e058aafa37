//! Moving a whole model between devices: `nn::to_device_` moves every tensor a model
//! holds, its parameters and its buffers (BatchNorm's running statistics, also inside
//! containers), so a BatchNorm CNN built on the CPU from a seed, moved to the GPU,
//! trains a step and then runs in test mode as the same model on the CPU does. Runs on
//! any wgpu adapter (Mesa's lavapipe in CI); skips, saying why, only when none can be had.
#![cfg(feature = "wgpu")]

use flux_core::autodiff::value_and_grad;
use flux_core::nn::combinators::SkipConnection;
use flux_core::nn::conv::{Conv, Flatten, Pool};
use flux_core::nn::norm::BatchNorm;
use flux_core::nn::{losses, to_device_, Activation, Chain, Dense, Module};
use flux_core::tensor::random::Rng;
use flux_core::{optim, DType, Device, Tensor};

fn gpu() -> Option<Device> {
    match Device::wgpu() {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("SKIPPED: no GPU adapter for the model-moving tests: {e}");
            None
        }
    }
}

/// conv → BatchNorm+relu → a residual BatchNorm block → global mean pool → Dense: the
/// seed fixes every weight (drawn on the host), so two calls give the same model.
fn cnn(seed: u64) -> Chain {
    let rng = &mut Rng::seed(seed);
    let relu = Activation::from_name("relu").unwrap();
    Chain::new(vec![
        Box::new(Conv::with_rng(&[3, 3], 2, 4, DType::F32, rng).pad(1)),
        Box::new(BatchNorm::new(4).activation(relu)),
        Box::new(SkipConnection::add(Box::new(BatchNorm::new(4)))),
        Box::new(Pool::mean(&[5, 5])),
        Box::new(Flatten),
        Box::new(Dense::with_rng(4, 3, DType::F32, rng)),
    ])
}

fn tensors(m: &Chain) -> Vec<Tensor> { m.params().into_iter().cloned().chain(m.buffers().into_iter().map(|(_, t)| t)).collect() }

fn largest(t: &Tensor) -> f64 { t.to_vec_f64().unwrap().iter().fold(0f64, |m, v| m.max(v.abs())) }

/// Each element within 1e-5 of the larger of its own magnitude and `top`.
#[track_caller]
fn close(what: &str, cpu: &Tensor, gpu: &Tensor, top: f64) {
    assert_eq!(gpu.device(), Device::Wgpu, "{what}: on the GPU");
    let (c, g) = (cpu.to_vec_f64().unwrap(), gpu.to_vec_f64().unwrap());
    assert_eq!(c.len(), g.len(), "{what}: length");
    for (i, (a, b)) in c.iter().zip(&g).enumerate() {
        assert!((a - b).abs() <= 1e-5 * a.abs().max(top), "{what}: element {i}: CPU {a} vs GPU {b}");
    }
}

#[test]
fn to_device_moves_parameters_and_running_statistics_there_and_back() {
    let Some(dev) = gpu() else { return };
    let mut m = cnn(1);
    let before = tensors(&m);
    // conv, 2 BatchNorms and Dense: 2 parameters each; μ and σ2 of both BatchNorms (one
    // inside the SkipConnection)
    assert_eq!((m.params().len(), m.buffers().len()), (8, 4));
    to_device_(&mut m, dev).unwrap();
    assert!(tensors(&m).iter().all(|t| t.device() == dev), "every parameter and buffer on the GPU");
    to_device_(&mut m, Device::Cpu).unwrap();
    let after = tensors(&m);
    assert!(after.iter().all(|t| t.device() == Device::Cpu));
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap(), "a round trip keeps every value");
    }
}

#[test]
fn a_batchnorm_cnn_moved_to_the_gpu_trains_a_step_and_runs_in_test_mode_as_on_the_cpu() {
    let Some(dev) = gpu() else { return };
    let x = Rng::seed(7).normal_tensor(&[6, 2, 5, 5], 0.5, 1.0, DType::F32);
    let y = flux_core::data::onehot(&[0, 1, 2, 0, 1, 2], 3, DType::F32).unwrap();
    // plain descent: a step linear in the gradient (Adam's first step is ±η wherever a
    // gradient is nonzero, so the rounding left in the conv bias's gradient, zero in
    // exact arithmetic before a BatchNorm, would flip whole steps)
    let rule = optim::Descent::new(0.1);
    let step = |m: &mut Chain, device: Device| -> Tensor {
        to_device_(m, device).unwrap();
        let (x, y) = (x.to_device(device).unwrap(), y.to_device(device).unwrap());
        let mut state = optim::setup(&rule, &*m).unwrap();
        let (_, grads) = {
            let ps = m.params();
            value_and_grad(&ps, || losses::logitcrossentropy(&m.forward_t(&x, true)?, &y, -1, losses::Agg::Mean)).unwrap()
        };
        let grads: Vec<Tensor> = grads.into_iter().map(|g| g.unwrap()).collect();
        optim::update(&mut state, m, &grads.iter().map(Some).collect::<Vec<_>>()).unwrap();
        // test mode: the running statistics (updated by the step) are read on the device
        m.forward_t(&x, false).unwrap()
    };
    let (mut on_cpu, mut on_gpu) = (cnn(3), cnn(3));
    let out_cpu = step(&mut on_cpu, Device::Cpu);
    let out_gpu = step(&mut on_gpu, dev);
    close("test-mode output after one step", &out_cpu, &out_gpu, largest(&out_cpu));
    let (tc, tg) = (tensors(&on_cpu), tensors(&on_gpu));
    assert_eq!(tc.len(), tg.len());
    // against the model's largest value: that conv bias holds only rounding after the step
    let top = tc.iter().map(largest).fold(0.0, f64::max);
    for (i, (c, g)) in tc.iter().zip(&tg).enumerate() {
        close(&format!("parameter or buffer {i} after the step"), c, g, top);
    }
    // the running means moved off their initial zeros: the step did update them
    assert!(on_gpu.buffers()[0].1.to_vec_f64().unwrap().iter().any(|&v| v != 0.0));
}

#[test]
fn an_optimiser_state_set_up_before_the_move_follows_with_state_to_device() {
    let Some(dev) = gpu() else { return };
    let x = Rng::seed(8).normal_tensor(&[4, 2, 5, 5], 0.0, 1.0, DType::F32);
    let y = flux_core::data::onehot(&[2, 1, 0, 1], 3, DType::F32).unwrap();
    let rule = optim::Momentum::default();
    let steps = |m: &mut Chain, state: &mut Vec<optim::Leaf>, device: Device| {
        let (x, y) = (x.to_device(device).unwrap(), y.to_device(device).unwrap());
        for _ in 0..2 {
            let batches = vec![Ok((x.clone(), y.clone()))];
            let loss = |m: &Chain, x: &Tensor, y: &Tensor| losses::logitcrossentropy(&m.forward(x)?, y, -1, losses::Agg::Mean);
            flux_core::train::train(m, loss, batches, state).unwrap();
        }
    };
    let (mut on_cpu, mut on_gpu) = (cnn(4), cnn(4));
    let mut st_cpu = optim::setup(&rule, &on_cpu).unwrap();
    steps(&mut on_cpu, &mut st_cpu, Device::Cpu);
    // set up on the host, then model and state moved
    let mut st_gpu = optim::setup(&rule, &on_gpu).unwrap();
    to_device_(&mut on_gpu, dev).unwrap();
    for leaf in &mut st_gpu {
        leaf.state = leaf.state.to_device(dev).unwrap();
    }
    steps(&mut on_gpu, &mut st_gpu, dev);
    let (tc, tg) = (tensors(&on_cpu), tensors(&on_gpu));
    let top = tc.iter().map(largest).fold(0.0, f64::max);
    for (i, (c, g)) in tc.iter().zip(&tg).enumerate() {
        close(&format!("parameter or buffer {i} after 2 momentum steps"), c, g, top);
    }
    for leaf in &st_gpu {
        assert!(matches!(&leaf.state, optim::State::Tensor(t) if t.device() == dev), "the momentum lives on the GPU");
    }
}
