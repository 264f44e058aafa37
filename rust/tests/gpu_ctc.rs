//! ctc_loss of GPU logits runs its recursions in one GPU kernel: the loss and the
//! gradient agree with the CPU's (float64 there, float32 here, within 1e-5 relative
//! and a 1e-5 floor) for repeated labels, blanks only, an impossible alignment (+∞ and
//! a zero gradient), a transposed view and a sequence longer than a workgroup; and a
//! training step with it reads back its loss (one f32) and nothing else. Skips, saying
//! why, only when no adapter can be had.
#![cfg(feature = "wgpu")]

use std::sync::Mutex;

#[path = "common/gpu.rs"]
mod common;
use common::data;

use flux_core::autodiff::value_and_grad;
use flux_core::backend::wgpu::transfer;
use flux_core::nn::{losses::ctc_loss, to_device_, Dense, Module};
use flux_core::tensor::random::Rng;
use flux_core::{optim, train, DType, Device, Tensor};

// the read-back counter is per process: the tests of this file take turns
static SERIAL: Mutex<()> = Mutex::new(());

fn gpu() -> Option<Device> { common::gpu("the GPU ctc_loss tests") }

#[track_caller]
fn close(cpu: &[f64], gpu: &[f64], what: &str) {
    assert_eq!(cpu.len(), gpu.len(), "{what}: lengths");
    for (i, (x, y)) in cpu.iter().zip(gpu).enumerate() {
        let ok = if x.is_finite() { (x - y).abs() <= 1e-5 * x.abs().max(y.abs()).max(1.0) } else { x == y };
        assert!(ok, "{what}: element {i}: cpu {x} vs gpu {y}");
    }
}

/// The loss and the gradient of `ctc_loss(f(x), labels)` on `dev`, read back.
fn loss_and_grad(x: &Tensor, labels: &[usize], dev: Device, view: bool) -> (f64, Vec<f64>) {
    let x = x.to_device(dev).unwrap().detach();
    let (l, g) = value_and_grad(&[&x], || ctc_loss(&if view { x.t()? } else { x.clone() }, labels)).unwrap();
    assert_eq!(l.device(), dev, "the loss left its device");
    let g = g[0].as_ref().unwrap();
    assert_eq!(g.device(), dev, "the gradient left its device");
    (l.item().unwrap(), g.to_vec_f64().unwrap())
}

#[track_caller]
fn same_on_both(dev: Device, x: &Tensor, labels: &[usize], view: bool, what: &str) -> f64 {
    let (lc, gc) = loss_and_grad(x, labels, Device::Cpu, view);
    let (lg, gg) = loss_and_grad(x, labels, dev, view);
    close(&[lc], &[lg], &format!("{what}: loss"));
    close(&gc, &gg, &format!("{what}: gradient"));
    lc
}

#[test]
fn ctc_loss_on_the_gpu_gives_the_cpu_loss_and_gradient() {
    let Some(d) = gpu() else { return };
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    same_on_both(d, &data(&[6, 4], 1, -1.0, 1.0), &[0, 2, 2], false, "a repeated label");
    same_on_both(d, &data(&[12, 6], 2, -2.0, 2.0), &[1, 1, 3, 0, 4, 4], false, "two repeats");
    same_on_both(d, &data(&[5, 3], 3, -1.0, 1.0), &[], false, "no labels (blanks only)");
    same_on_both(d, &data(&[1, 2], 4, -1.0, 1.0), &[0], false, "one step");
    same_on_both(d, &data(&[3, 2], 5, -1.0, 1.0), &[0, 0], false, "exactly enough steps for a repeat");
    same_on_both(d, &data(&[7, 5], 6, -1.0, 1.0), &[3, 1, 3], true, "a transposed view");
    // 0, 0, 0 needs five steps: +∞ and a zero gradient on both devices
    let l = same_on_both(d, &data(&[4, 3], 7, -1.0, 1.0), &[0, 0, 0], false, "an impossible alignment");
    assert_eq!(l, f64::INFINITY);
}

#[test]
fn ctc_loss_on_the_gpu_handles_more_states_than_a_workgroup_has_invocations() {
    let Some(d) = gpu() else { return };
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // 129 labels: 259 extended states (the kernel's 256 invocations take two each);
    // logits peaked along the path keep log p small, so float32 keeps 1e-5
    let labels: Vec<usize> = (0..129).map(|i| [0, 1, 1, 2, 0, 2, 2][i % 7]).collect();
    let (t_len, c) = (259, 4);
    let mut v = data(&[t_len, c], 8, -1.0, 1.0).to_vec::<f32>().unwrap();
    for t in 0..t_len {
        let k = if t % 2 == 0 { c - 1 } else { labels[t / 2] };
        v[t * c + k] += 6.0;
    }
    let l = same_on_both(d, &Tensor::from_vec(v, &[t_len, c]).unwrap(), &labels, false, "259 states");
    assert!(l.is_finite() && l > 0.0);
}

#[test]
fn a_ctc_loss_training_step_on_the_gpu_reads_back_only_its_loss() {
    let Some(d) = gpu() else { return };
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let labels = [2usize, 0, 0, 1];
    let x = data(&[10, 5], 9, -1.0, 1.0);
    let run = |dev: Device| {
        let mut model = Dense::with_rng(5, 4, DType::F32, &mut Rng::seed(3));
        to_device_(&mut model, dev).unwrap();
        let mut state = optim::setup(&optim::Adam::default().eta(1e-2), &model).unwrap();
        let xd = x.to_device(dev).unwrap();
        let batches = (0..3).map(|_| Ok((xd.clone(), xd.clone())));
        let before = transfer::reads();
        let ls = train::train(&mut model, |m: &Dense, x: &Tensor, _y: &Tensor| ctc_loss(&m.forward(x)?, &labels), batches, &mut state).unwrap();
        let after = transfer::reads();
        (ls, (after.0 - before.0, after.1 - before.1))
    };
    let (lc, _) = run(Device::Cpu);
    let (lg, (reads, bytes)) = run(d);
    close(&lc, &lg, "the losses of 3 Adam steps");
    assert!(lc[2] < lc[0], "the loss did not fall: {lc:?}");
    assert_eq!((reads, bytes), (3, 12), "one read of one f32 per step");
}
