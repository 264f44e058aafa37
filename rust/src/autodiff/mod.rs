//! Reverse-mode autodiff with a tape that exists only while a gradient is taken.
//!
//! `start` opens a tape on this thread; `watch` marks the tensors to differentiate;
//! every op whose inputs are on the tape appends a node (an internal `Op`) saying how to send its
//! output gradient back; `finish` runs the backward sweep and closes the tape. Outside a
//! gradient nothing is recorded, so a plain forward pass costs no bookkeeping.
//! One backward rule per primitive lives in `backward.rs` (the whole gradient table, internal);
//! fused ops elsewhere bring their own rule through [`Backward`].
pub(crate) mod backward;

use std::cell::RefCell;

// tensor ids are counters, not attacker-chosen keys: a fast hash, not SipHash
use rustc_hash::FxHashMap as HashMap;

pub use backward::Backward;
pub(crate) use backward::Op;

use crate::error::{Error, Result};
use crate::tensor::{Tensor, TensorId};

struct Node {
    op: Op,
    inputs: Vec<Option<usize>>,
}

#[derive(Default)]
struct Tape {
    nodes: Vec<Node>,
    index: HashMap<TensorId, usize>,
}

thread_local! {
    static TAPE: RefCell<Option<Tape>> = const { RefCell::new(None) };
}

/// Is a gradient being recorded on this thread?
///
/// ```
/// use flux_core::{autodiff, DType, Tensor};
/// assert!(!autodiff::is_recording());
/// let x = Tensor::ones(&[1], DType::F64);
/// autodiff::value_and_grad(&[&x], || {
///     assert!(autodiff::is_recording());
///     x.sum_all()
/// }).unwrap();
/// assert!(!autodiff::is_recording());
/// ```
pub fn is_recording() -> bool { TAPE.with(|t| t.borrow().is_some()) }

/// Append a node for `out = op(inputs)` if any input is on the tape. `op` is only built
/// when needed.
pub(crate) fn record(inputs: &[&Tensor], out: &Tensor, op: impl FnOnce() -> Op) {
    TAPE.with(|t| {
        let mut t = t.borrow_mut();
        let Some(tape) = t.as_mut() else { return };
        let ins: Vec<Option<usize>> = inputs.iter().map(|x| tape.index.get(&x.id()).copied()).collect();
        if ins.iter().all(Option::is_none) {
            return;
        }
        tape.nodes.push(Node { op: op(), inputs: ins });
        let i = tape.nodes.len() - 1;
        tape.index.insert(out.id(), i);
    })
}

/// Run `f` with this thread's tape set aside, so that the tensor ops it calls record
/// nothing: a fused op composed of tensor ops (its GPU forward) is one node on the tape,
/// recorded by [`crate::ops::apply`]. The tape is put back even if `f` panics.
pub(crate) fn unrecorded<R>(f: impl FnOnce() -> R) -> R {
    struct PutBack(Option<Tape>);
    impl Drop for PutBack {
        fn drop(&mut self) {
            let tape = self.0.take();
            TAPE.with(|t| *t.borrow_mut() = tape);
        }
    }
    let _tape = PutBack(TAPE.with(|t| t.borrow_mut().take()));
    f()
}

/// Open a tape on this thread. Nested gradients are not supported.
///
/// ```
/// use flux_core::{autodiff, Tensor};
/// let x = Tensor::from_vec(vec![3.0f64], &[1]).unwrap();
/// autodiff::start().unwrap();
/// assert!(autodiff::start().is_err()); // no nested tapes
/// autodiff::watch(&x);
/// let y = x.mul(&x).unwrap().sum_all().unwrap();
/// let g = autodiff::finish(&y, &[&x]).unwrap();
/// assert_eq!(g[0].as_ref().unwrap().to_vec_f64().unwrap(), vec![6.0]);
/// ```
pub fn start() -> Result<()> {
    TAPE.with(|t| {
        let mut t = t.borrow_mut();
        if t.is_some() {
            return Err(Error::Autodiff("gradient called inside another gradient: nested differentiation is not supported".into()));
        }
        // sized for a typical step, so that recording does not rehash as it grows
        *t = Some(Tape { nodes: Vec::with_capacity(64), index: HashMap::with_capacity_and_hasher(64, Default::default()) });
        Ok(())
    })
}

/// Mark `x` as a variable to differentiate (idempotent: a tensor watched twice is one variable).
///
/// ```
/// use flux_core::{autodiff, Tensor};
/// let (a, b) = (Tensor::from_vec(vec![2.0f64], &[1]).unwrap(), Tensor::from_vec(vec![5.0f64], &[1]).unwrap());
/// autodiff::start().unwrap();
/// autodiff::watch(&a); // b is not watched: a constant
/// let y = a.mul(&b).unwrap().sum_all().unwrap();
/// let g = autodiff::finish(&y, &[&a, &b]).unwrap();
/// assert_eq!(g[0].as_ref().unwrap().to_vec_f64().unwrap(), vec![5.0]);
/// assert!(g[1].is_none());
/// ```
pub fn watch(x: &Tensor) {
    TAPE.with(|t| {
        if let Some(tape) = t.borrow_mut().as_mut() {
            if !tape.index.contains_key(&x.id()) {
                tape.nodes.push(Node { op: Op::Leaf, inputs: vec![] });
                let i = tape.nodes.len() - 1;
                tape.index.insert(x.id(), i);
            }
        }
    })
}

/// Close the tape without a backward pass (after an error in the forward pass).
///
/// ```
/// use flux_core::autodiff;
/// autodiff::start().unwrap();
/// autodiff::abort();
/// assert!(!autodiff::is_recording());
/// autodiff::start().unwrap(); // a fresh tape can open again
/// autodiff::abort();
/// ```
pub fn abort() { TAPE.with(|t| *t.borrow_mut() = None); }

/// Close the tape and return d`loss`/d`x` for each `x` in `wrt` (`None` when `loss` does
/// not depend on it). `loss` must hold one element.
///
/// ```
/// use flux_core::{autodiff, DType, Tensor};
/// let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2]).unwrap();
/// autodiff::start().unwrap();
/// autodiff::watch(&x);
/// let loss = x.mean(None, false).unwrap();
/// let g = autodiff::finish(&loss, &[&x]).unwrap();
/// assert_eq!(g[0].as_ref().unwrap().to_vec_f64().unwrap(), vec![0.5, 0.5]);
/// assert!(autodiff::finish(&Tensor::zeros(&[1], DType::F64), &[]).is_err()); // the tape is closed
/// ```
pub fn finish(loss: &Tensor, wrt: &[&Tensor]) -> Result<Vec<Option<Tensor>>> {
    let tape = TAPE.with(|t| t.borrow_mut().take()).ok_or_else(|| Error::Autodiff("no gradient is being recorded".into()))?;
    if loss.numel() != 1 {
        return Err(Error::Shape(format!(
            "gradient needs a scalar loss, got a tensor of shape {:?}; reduce it first, e.g. with .sum() or .mean()",
            loss.shape()
        )));
    }
    let Some(&root) = tape.index.get(&loss.id()) else {
        return Ok(vec![None; wrt.len()]);
    };
    let mut grads: Vec<Option<Tensor>> = vec![None; root + 1];
    // the seed on the loss's device, so the whole backward pass runs there
    grads[root] = Some(Tensor::ones(loss.shape(), loss.dtype()).to_device(loss.device())?);
    let mut nodes = tape.nodes;
    nodes.truncate(root + 1);
    for i in (0..=root).rev() {
        let node = &nodes[i];
        if let Op::Leaf = node.op {
            continue; // a watched variable: its gradient stays in `grads[i]`
        }
        let Some(g) = grads[i].take() else { continue };
        let needs: Vec<bool> = node.inputs.iter().map(Option::is_some).collect();
        let gin = node.op.backward(&g, &needs)?;
        for (slot, gi) in node.inputs.iter().zip(gin) {
            if let (Some(j), Some(gi)) = (slot, gi) {
                grads[*j] = Some(match grads[*j].take() {
                    None => gi,
                    Some(acc) => acc.add(&gi)?,
                });
            }
        }
        nodes[i].op = Op::Leaf; // free saved tensors early (never visited again)
    }
    Ok(wrt.iter().map(|x| tape.index.get(&x.id()).and_then(|&i| if i <= root { grads[i].clone() } else { None })).collect())
}

/// The value of `f()` and its gradient with respect to each of `params`.
///
/// ```
/// use flux_core::{autodiff, Tensor};
/// let w = Tensor::from_vec(vec![3.0f64], &[1]).unwrap();
/// let (y, g) = autodiff::value_and_grad(&[&w], || w.mul(&w)?.sum_all()).unwrap();
/// assert_eq!((y.item().unwrap(), g[0].as_ref().unwrap().item().unwrap()), (9.0, 6.0));
/// ```
pub fn value_and_grad(params: &[&Tensor], f: impl FnOnce() -> Result<Tensor>) -> Result<(Tensor, Vec<Option<Tensor>>)> {
    start()?;
    for p in params {
        watch(p);
    }
    match f() {
        Ok(loss) => {
            let g = finish(&loss, params)?;
            Ok((loss, g))
        }
        Err(e) => {
            abort();
            Err(e)
        }
    }
}
