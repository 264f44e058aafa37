//! The MNIST MLP trains to the same accuracy on both devices: the `mnist_gpu`
//! example's model (784 → 256 relu → 10, Adam, logit cross-entropy) from the same
//! initial weights on the same batches of the shipped subset, a few hundred images for
//! a few epochs (seconds on Mesa's lavapipe). The accuracies agree within one test image
//! in a hundred and the trained parameters within float32 rounding of 24 Adam steps;
//! each GPU step reads back its loss (one f32) and nothing else. Skips, saying why, only
//! when no adapter can be had.
#![cfg(feature = "wgpu")]

#[path = "../examples/common/mnist_data.rs"]
mod mnist_data;

use flux_core::backend::wgpu::transfer;
use flux_core::data::{onehot, DataLoader, LoaderOptions};
use flux_core::nn::{losses, to_device_, Chain, Module};
use flux_core::{optim, train, DType, Device, Tensor};

const IMAGES: usize = 300;
const EPOCHS: usize = 3;

/// Train on `device`: (test accuracy, parameters on the host, (steps, bytes read back)).
fn run(device: Device, d: &mnist_data::Mnist) -> (f64, Vec<Vec<f64>>, (u64, u64)) {
    let mut model = mnist_data::mlp();
    to_device_(&mut model, device).unwrap();
    let mut state = optim::setup(&optim::Adam::default().eta(1e-3), &model).unwrap();
    let y = onehot(&d.y_train, 10, DType::F32).unwrap();
    let mut loader = DataLoader::new(d.x_train.clone(), y, LoaderOptions::default().batchsize(40).shuffle(true).seed(1)).unwrap();
    let loss = |m: &Chain, x: &Tensor, y: &Tensor| losses::logitcrossentropy(&m.forward(x)?, y, -1, losses::Agg::Mean);
    let (mut steps, mut bytes) = (0, 0);
    for _ in 0..EPOCHS {
        let batches = loader.epoch().map(|b| b.and_then(|(x, y)| Ok((x.to_device(device)?, y.to_device(device)?))));
        let before = transfer::reads();
        let ls = train::train(&mut model, loss, batches, &mut state).unwrap();
        let after = transfer::reads();
        steps += ls.len() as u64;
        if device != Device::Cpu {
            assert_eq!(after.0 - before.0, ls.len() as u64, "one device read per step (the loss)");
        }
        bytes += after.1 - before.1;
    }
    let acc = mnist_data::accuracy(&model, &d.x_test.to_device(device).unwrap(), &d.y_test).unwrap();
    let params = model.params().iter().map(|p| p.to_vec_f64().unwrap()).collect();
    (acc, params, (steps, bytes))
}

#[test]
fn the_mnist_mlp_trains_to_the_same_accuracy_on_both_devices() {
    let gpu = match Device::wgpu() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIPPED: no GPU adapter for the MNIST parity test: {e}");
            return;
        }
    };
    let d = mnist_data::load(mnist_data::SUBSET, Some(IMAGES)).unwrap();
    let (acc_cpu, p_cpu, _) = run(Device::Cpu, &d);
    let (acc_gpu, p_gpu, (steps, bytes)) = run(gpu, &d);
    assert!(acc_cpu > 0.5, "the CPU model learned nothing: accuracy {acc_cpu}");
    assert!((acc_cpu - acc_gpu).abs() <= 0.01 + 1e-12, "accuracy: cpu {acc_cpu}, gpu {acc_gpu}");
    assert_eq!(bytes, 4 * steps, "only the loss (4 bytes) comes back per step");
    for (a, b) in p_cpu.iter().zip(&p_gpu) {
        let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        // Adam moves each weight by at most η = 1e-3 per step; rounding may flip a few
        // updates of near-zero gradients, never a whole trajectory
        assert!(diff < 2e-3, "parameters differ by {diff}");
        let norm = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        let dnorm = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
        assert!(dnorm <= 1e-3 * norm, "relative parameter difference {}", dnorm / norm);
    }
}
