//! flux-core: the engine of flux_rs.
//!
//! Tensors with copy-on-write storage ([`Tensor`]), a reverse-mode tape
//! ([`autodiff`]), the rules of Optimisers.jl ([`optim`]), layers and losses ([`nn`]),
//! batching ([`data`]) and a training loop ([`train`]). No Python anywhere: the
//! `flux-rs-py` crate wraps this one.
//!
//! ```
//! use flux_core::{Tensor, autodiff};
//! let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]).unwrap();
//! let (loss, grads) = autodiff::value_and_grad(&[&x], || x.mul(&x)?.sum_all()).unwrap();
//! assert_eq!(loss.item().unwrap(), 14.0);
//! assert_eq!(grads[0].as_ref().unwrap().to_vec_f64().unwrap(), vec![2.0, 4.0, 6.0]);
//! ```
//!
//! # On the GPU
//!
//! With the `wgpu` feature, [`Device::wgpu`] gives the GPU (any Vulkan, Metal or DX12
//! adapter). Build a model as usual (seeded initialisers draw on the host, so a seed gives
//! the same weights for either device), move it once with [`nn::to_device_`] (parameters
//! and buffers such as BatchNorm's running statistics), set up the optimiser after the
//! move (its state is made beside the parameters), and move each batch with
//! [`Tensor::to_device`]; the same `Module`, `Rule` and [`train::train`] then run there.
//! `cargo run --release -p flux-core --features wgpu --example mnist_gpu` is a whole program.
//!
//! ```
//! use flux_core::nn::{losses, norm::BatchNorm, to_device_, Chain, Dense, Module};
//! use flux_core::{optim, tensor::random::Rng, train, DType, Device, Tensor};
//! let rng = &mut Rng::seed(0);
//! let mut model = Chain::new(vec![
//!     Box::new(Dense::with_rng(3, 4, DType::F32, rng)),
//!     Box::new(BatchNorm::new(4)),
//!     Box::new(Dense::with_rng(4, 2, DType::F32, rng)),
//! ]);
//! let device = Device::wgpu().unwrap_or(Device::Cpu); // the CPU where no adapter is found
//! to_device_(&mut model, device).unwrap();
//! let mut state = optim::setup(&optim::Adam::default(), &model).unwrap();
//! let (x, y) = (Tensor::ones(&[5, 3], DType::F32), Tensor::zeros(&[5, 2], DType::F32));
//! let batches: Vec<flux_core::Result<(Tensor, Tensor)>> = vec![Ok((x.to_device(device).unwrap(), y.to_device(device).unwrap()))];
//! let loss = |m: &Chain, x: &Tensor, y: &Tensor| losses::mse(&m.forward(x)?, y, losses::Agg::Mean);
//! let ls = train::train(&mut model, loss, batches, &mut state).unwrap();
//! assert_eq!(ls.len(), 1);
//! let bufs = model.buffers(); // BatchNorm's μ and σ2
//! assert!(model.params().into_iter().chain(bufs.iter().map(|(_, t)| t)).all(|t| t.device() == device));
//! ```
// argument checks are written `!(x > 0.0)` on purpose: unlike `x <= 0.0` they reject NaN
#![allow(clippy::neg_cmp_op_on_partial_ord)]
// scripts/test.sh checks that every public item has a runnable example with rustdoc's
// `missing_doc_code_examples` lint, which only runs with this unstable feature: on under
// `--cfg flux_doc_lint`, which only that command sets
#![cfg_attr(flux_doc_lint, feature(rustdoc_missing_doc_code_examples))]
pub mod autodiff;
pub mod backend;
pub mod data;
pub mod distributed;
pub mod error;
pub mod io;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod parallel;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
pub use tensor::{DType, Device, Float, Tensor};
