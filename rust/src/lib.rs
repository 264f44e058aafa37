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
