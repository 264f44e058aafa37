//! The seam's contract: a device without a kernel is an `Error::Device` naming the op
//! (never a panic), mixing devices names both, and `to_device` round-trips.
use super::null::NullStorage;
use crate::error::Error;
use crate::ops::{apply, FusedOp};
use crate::tensor::movement::SliceDim;
use crate::tensor::{Device, Layout, Storage, Tensor};

/// A tensor on the kernel-less test device, holding `v` in `shape`.
fn on_null(v: Vec<f32>, shape: &[usize]) -> Tensor {
    let c = crate::tensor::CpuStorage::F32(v);
    Tensor::from_storage(Storage::Null(NullStorage(c)), Layout::contiguous(shape))
}

/// Is `r` an `Error::Device` whose message names `op` and the GPU?
fn device_error_naming<T: std::fmt::Debug>(r: crate::Result<T>, op: &str) {
    match r {
        Err(Error::Device(m)) => {
            assert!(m.contains(op), "message {m:?} does not name {op:?}");
            assert!(m.contains("gpu"), "message {m:?} does not name the device");
        }
        other => panic!("expected Error::Device naming {op}, got {other:?}"),
    }
}

#[test]
fn every_primitive_without_a_kernel_is_a_device_error_naming_it() {
    let x = on_null(vec![1.0, -2.0, 3.0, -4.0, 5.0, -6.0], &[2, 3]);
    let y = on_null(vec![1.0; 6], &[3, 2]);
    assert_eq!(x.device(), Device::Wgpu);
    device_error_naming(x.relu(), "unary");
    device_error_naming(x.add(&x), "binary");
    device_error_naming(x.mul_scalar(2.0), "binary");
    device_error_naming(x.compare(&x, super::CmpOp::Gt), "compare");
    device_error_naming(x.sum(Some(&[1]), false), "reduce");
    device_error_naming(x.softmax(-1), "softmax");
    device_error_naming(x.logsoftmax(-1), "logsoftmax");
    device_error_naming(x.matmul(&y), "matmul");
    device_error_naming(x.cast(crate::DType::F64), "cast");
    device_error_naming(x.t().unwrap().contiguous(), "contiguous");
    device_error_naming(x.index_select(1, &[2, 0]), "index_select");
    device_error_naming(crate::tensor::gather::scatter_add(&x, &[1, 0], &[2], 3), "index_add");
    device_error_naming(Tensor::concat(&[&x, &x], 0), "concat");
    device_error_naming(crate::tensor::misc::where_(&x, &x, &x), "compare");
    device_error_naming(crate::tensor::misc::clamp(&x, 0.0, 1.0), "clamp");
    device_error_naming(x.argmax(0).map(|_| x.clone()), "argmax");
    let dims = [SliceDim { start: 0, len: 1, step: 1 }, SliceDim { start: 1, len: 2, step: 1 }];
    device_error_naming(crate::tensor::movement::slice_backward(&[2, 3], &dims, &on_null(vec![1.0, 2.0], &[1, 2])), "slice backward");
}

#[test]
fn a_cpu_only_path_refuses_a_device_tensor_instead_of_panicking() {
    let x = on_null(vec![1.0, 2.0, 3.0], &[3]);
    for r in [x.as_slice::<f32>().map(|_| ())] {
        match r {
            Err(Error::Device(m)) => assert!(m.contains("only on the CPU") && m.contains("gpu"), "{m}"),
            other => panic!("expected Error::Device, got {other:?}"),
        }
    }
    // in-place writes too
    let mut w = on_null(vec![1.0, 2.0, 3.0], &[3]);
    assert!(matches!(w.data_mut::<f32>(), Err(Error::Device(_))));
}

#[test]
fn a_fused_op_without_a_gpu_forward_names_itself() {
    #[derive(Debug)]
    struct Twice;
    impl FusedOp for Twice {
        fn name(&self) -> &'static str { "twice_fused" }
        fn cpu_fwd(&self, xs: &[&Tensor]) -> crate::Result<(Tensor, Box<dyn crate::autodiff::Backward>)> {
            Err(Error::Value(format!("the CPU forward must not run for {:?}", xs[0].device())))
        }
    }
    let x = on_null(vec![1.0, 2.0], &[2]);
    device_error_naming(apply(&Twice, &[&x]), "twice_fused");
}

#[test]
fn mixing_devices_names_both() {
    let g = on_null(vec![1.0, 2.0], &[2]);
    let c = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
    for r in [c.add(&g), g.matmul(&c.reshape(&[2, 1]).unwrap()).map(|t| t.reshape(&[1]).unwrap())] {
        match r {
            Err(Error::Device(m)) => assert!(m.contains("cpu") && m.contains("gpu"), "{m}"),
            other => panic!("expected Error::Device, got {other:?}"),
        }
    }
}

#[test]
fn to_device_cpu_round_trips() {
    // a CPU tensor stays itself (same buffer, no copy)
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    let same = x.to_device(Device::Cpu).unwrap();
    assert_eq!(same.id(), x.id());
    // a strided view of a device tensor comes back as its elements in row-major order
    let g = on_null(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let back = g.t().unwrap().to_device(Device::Cpu).unwrap();
    assert_eq!(back.device(), Device::Cpu);
    assert_eq!(back.shape(), &[3, 2]);
    assert_eq!(back.to_vec::<f32>().unwrap(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    // reading values out of a device tensor downloads them
    assert_eq!(g.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    // and ops work again once on the CPU
    assert_eq!(back.sum_all().unwrap().item().unwrap(), 21.0);
}

#[test]
fn the_gradient_of_to_device_flows_back() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
    let (_, g) = crate::autodiff::value_and_grad(&[&x], || x.to_device(Device::Cpu)?.square()?.sum_all()).unwrap();
    assert_eq!(g[0].as_ref().unwrap().to_vec_f64().unwrap(), vec![2.0, 4.0]);
}

#[cfg(not(feature = "wgpu"))]
#[test]
fn without_the_feature_the_gpu_is_a_device_error() {
    assert!(matches!(Device::wgpu(), Err(Error::Device(m)) if m.contains("wgpu feature")));
    let x = Tensor::from_vec(vec![1.0f32], &[1]).unwrap();
    assert!(matches!(x.to_device(Device::Wgpu), Err(Error::Device(m)) if m.contains("wgpu feature")));
}

#[test]
fn an_optimiser_rule_without_a_device_kernel_names_itself() {
    use crate::optim::kernel::{device_step, elementwise, Target};
    let mut x = on_null(vec![1.0, 2.0], &[2]);
    let g = on_null(vec![0.5, 0.5], &[2]);
    let mut m = x.zeros_like();
    assert_eq!(m.device(), Device::Wgpu, "optimiser state is made on the parameter's device");
    let step = super::OptimStep { rule: "adam", hyper: &[1e-3, 0.9, 0.999, 1e-8], t: 1, into_x: true };
    device_error_naming(device_step(Target::Param { x: &mut x, g: &g }, &mut [&mut m], step), "adam");
    // the closure driver hands device tensors to the device's kernel for the rule
    let r = elementwise::<f32, 1>(Target::Param { x: &mut x, g: &g }, [&mut m], step, |_, g, _| g);
    device_error_naming(r, "adam");
    // a parameter on one device and a gradient on another
    let c = Tensor::from_vec(vec![0.5f32, 0.5], &[2]).unwrap();
    match device_step(Target::Param { x: &mut x, g: &c }, &mut [], step) {
        Err(Error::Device(msg)) => assert!(msg.contains("cpu") && msg.contains("gpu"), "{msg}"),
        other => panic!("expected Error::Device, got {other:?}"),
    }
}
