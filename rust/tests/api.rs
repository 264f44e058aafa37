//! The Rust-facing API: rule defaults agree with `build`'s, builders set fields, setup
//! validates builder-made rules, parameter paths, structured errors.
use std::error::Error as _;

use flux_core::data::{DataLoader, LoaderOptions};
use flux_core::nn::{Activation, Chain, Dense, Module, ParamPath, Seg};
use flux_core::optim::{self, build, describe, Rule};
use flux_core::{DType, Error, Tensor};

#[test]
fn rule_defaults_are_build_defaults() {
    let defaults: Vec<Box<dyn Rule>> = vec![
        Box::new(optim::Descent::default()),
        Box::new(optim::Momentum::default()),
        Box::new(optim::Nesterov::default()),
        Box::new(optim::Rprop::default()),
        Box::new(optim::RMSProp::default()),
        Box::new(optim::Adam::default()),
        Box::new(optim::RAdam::default()),
        Box::new(optim::AdaMax::default()),
        Box::new(optim::OAdam::default()),
        Box::new(optim::AdaGrad::default()),
        Box::new(optim::AdaDelta::default()),
        Box::new(optim::AMSGrad::default()),
        Box::new(optim::NAdam::default()),
        Box::new(optim::AdamW::default()),
        Box::new(optim::AdaBelief::default()),
        Box::new(optim::Lion::default()),
        Box::new(optim::WeightDecay::default()),
        Box::new(optim::SignDecay::default()),
        Box::new(optim::ClipGrad::default()),
        Box::new(optim::ClipNorm::default()),
        Box::new(optim::OptimiserChain::default()),
    ];
    for d in &defaults {
        assert_eq!(describe(d.as_ref()), describe(build(d.name(), &[]).unwrap().as_ref()), "{}", d.name());
    }
    // every rule with defaults is covered (AccumGrad and MixedPrecision need an argument)
    assert_eq!(defaults.len(), optim::RULES.len() - 2);
}

#[test]
fn builders_set_fields_and_setup_validates() {
    let r = optim::Adam::default().eta(0.01).beta((0.8, 0.9)).epsilon(1e-6);
    assert_eq!(describe(&r), "Adam(eta=0.01, beta=(0.8, 0.9), epsilon=1e-6)");
    let m = Dense::new(2, 1);
    assert!(optim::setup(&r, &m).is_ok());
    assert!(optim::setup(&optim::Momentum::default().rho(f64::INFINITY), &m).is_err());
    assert!(optim::setup(&optim::Adam::default().eta(-1.0), &m).is_err());
    let bad_chain = optim::OptimiserChain::default().then(optim::Descent::default().eta(f64::NAN));
    assert!(optim::setup(&bad_chain, &m).is_err());
}

#[test]
fn parameter_paths_are_built_on_demand() {
    let mut m = Chain::new(vec![Box::new(Dense::new(3, 4).activation(Activation::Relu)), Box::new(Dense::new(4, 2))]);
    let mut paths = vec![];
    m.visit_params(&mut ParamPath::new(), &mut |p, t| paths.push((p.segments().to_vec(), t.shape().to_vec())));
    assert_eq!(paths[3], (vec![Seg::Field("layers"), Seg::Index(1), Seg::Field("bias")], vec![2]));
    let names: Vec<String> = m.parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]);
    // visiting mutably reaches the same tensors in the same order
    for p in m.params_mut() {
        *p = Tensor::zeros(p.shape(), p.dtype());
    }
    assert!(m.params().iter().all(|p| p.to_vec_f64().unwrap().iter().all(|&v| v == 0.0)));
    assert_eq!(m.forward(&Tensor::ones(&[5, 3], DType::F32)).unwrap().to_vec_f64().unwrap(), vec![0.0; 10]);
}

#[test]
fn errors_are_structured() {
    let a = Tensor::zeros(&[2, 3], DType::F64);
    match a.matmul(&Tensor::zeros(&[4, 5], DType::F64)) {
        Err(Error::ShapeMismatch { op, lhs, rhs }) => assert_eq!((op, lhs, rhs), ("matmul", vec![2, 3], vec![4, 5])),
        other => panic!("{other:?}"),
    }
    let e = flux_core::io::load("/nonexistent/dir/ckpt.safetensors").unwrap_err();
    assert!(e.source().is_some(), "an I/O error keeps its source");
    match e {
        Error::Io { context, source } => {
            assert!(context.contains("ckpt.safetensors"), "{context}");
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn loader_options_read_like_rust() {
    let x = Tensor::from_vec((0..12).map(|v| v as f64).collect(), &[6, 2]).unwrap();
    let y = Tensor::zeros(&[6], DType::F64);
    let opts = LoaderOptions { batchsize: 4, partial: false, ..Default::default() };
    let mut dl = DataLoader::new(x.clone(), y.clone(), opts).unwrap();
    assert_eq!(dl.epoch().count(), 1);
    let mut dl = DataLoader::new(x, y, LoaderOptions::default().batchsize(4).shuffle(true).seed(3)).unwrap();
    let sizes: Vec<usize> = dl.epoch().map(|b| b.unwrap().0.shape()[0]).collect();
    assert_eq!(sizes, vec![4, 2]);
}
