//! Attention and the recurrent sequences on the GPU against the CPU: outputs and the
//! gradients of every input and parameter (f32). Tolerance: 1e-5 of each element's
//! magnitude, floored at 1e-6 of the tensor's largest: the devices sum in other orders,
//! and the CPU's gate activations use an exp within 2 ulp, so an element that is a sum
//! cancelling to near zero keeps the larger terms' absolute error (about 1e-7 of them).
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::tests::gpu;
use crate::nn::Activation;
use crate::ops::attention::{Mask, Operands, Sdpa};
use crate::ops::apply;
use crate::ops::recurrent::{gru, lstm, rnn, Cell, Sequence};
use crate::tensor::random::Rng as FluxRng;
use crate::{autodiff, Device, Result, Tensor};

fn rand_t(shape: &[usize], seed: u64) -> Tensor {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    Tensor::from_vec((0..n).map(|_| r.random_range(-1.0f32..1.0)).collect(), shape).unwrap()
}

#[track_caller]
fn assert_close(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes");
    let (g, w) = (got.to_vec_f64().unwrap(), want.to_vec_f64().unwrap());
    let big = w.iter().fold(0f64, |m, x| m.max(x.abs()));
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let tol = 1e-5 * b.abs().max(0.1 * big).max(1e-6);
        assert!((a - b).abs() <= tol, "{what}: element {i}: GPU {a} vs CPU {b} (tolerance {tol})");
    }
}

/// The outputs of `f` on `inputs` and the gradients of `Σ wᵢ·outᵢ` (fixed random weights,
/// so every output and every element counts) on the CPU and on the GPU, compared.
fn check(what: &str, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Vec<Tensor>>) {
    let run = |dev: Device| {
        let xs: Vec<Tensor> = inputs.iter().map(|x| x.to_device(dev).unwrap()).collect();
        let refs: Vec<&Tensor> = xs.iter().collect();
        let mut outs = Vec::new();
        let (_, grads) = autodiff::value_and_grad(&refs, || {
            let ys = f(&xs)?;
            let mut loss: Option<Tensor> = None;
            for (k, y) in ys.iter().enumerate() {
                assert_eq!(y.device(), dev, "{what}: output {k} left the device");
                let w = rand_t(y.shape(), 100 + k as u64).to_device(dev)?;
                let term = y.mul(&w)?.sum_all()?;
                loss = Some(match loss {
                    None => term,
                    Some(l) => l.add(&term)?,
                });
                outs.push(y.to_device(Device::Cpu)?);
            }
            Ok(loss.unwrap())
        })
        .unwrap();
        // an input the outputs do not depend on (v for α alone) has no gradient on either
        let grads: Vec<Option<Tensor>> = grads
            .into_iter()
            .enumerate()
            .map(|(i, g)| {
                g.map(|g| {
                    assert_eq!(g.device(), dev, "{what}: gradient {i} left the device");
                    g.to_device(Device::Cpu).unwrap()
                })
            })
            .collect();
        (outs, grads)
    };
    let (yc, gc) = run(Device::Cpu);
    let (yg, gg) = run(Device::Wgpu);
    for (k, (a, b)) in yg.iter().zip(&yc).enumerate() {
        assert_close(a, b, &format!("{what}: output {k}"));
    }
    assert!(gc.iter().filter(|g| g.is_some()).count() >= 1, "{what}: no gradients");
    for (i, (a, b)) in gg.iter().zip(&gc).enumerate() {
        match (a, b) {
            (Some(a), Some(b)) => assert_close(a, b, &format!("{what}: gradient of input {i}")),
            (None, None) => {}
            _ => panic!("{what}: input {i} has a gradient on one device only"),
        }
    }
}

/// A keep mask (q_len, kv_len) with about a third masked and every query keeping a key.
fn keep_mask(lq: usize, lk: usize) -> Tensor {
    let mut r = ChaCha8Rng::seed_from_u64(7);
    let v: Vec<f32> = (0..lq * lk).map(|i| if i % lk == 0 || r.random_range(0.0..1.0) > 0.33 { 1.0 } else { 0.0 }).collect();
    Tensor::from_vec(v, &[lq, lk]).unwrap()
}

#[test]
fn attention_forward_and_gradients_match_cpu() {
    let Some(_turn) = gpu() else { return };
    let (b, lq, lk, h) = (2, 3, 5, 2);
    let qkv = || vec![rand_t(&[b, lq, 4], 1), rand_t(&[b, lk, 4], 2), rand_t(&[b, lk, 6], 3)];
    let both = |(y, a): (Tensor, Tensor)| vec![y, a];
    check("attention", &qkv(), |x| Ok(both(Sdpa::new(h).forward(&x[0], &x[1], &x[2])?)));
    check("attention, causal", &qkv(), |x| Ok(both(Sdpa::new(h).mask(Mask::Causal).forward(&x[0], &x[1], &x[2])?)));
    let keep = keep_mask(lq, lk);
    check("attention, given mask", &qkv(), |x| {
        let m = keep.to_device(x[0].device())?;
        Ok(both(Sdpa::new(h).mask(Mask::Keep(m)).forward(&x[0], &x[1], &x[2])?))
    });
    // the mask given on the host: the GPU op moves it over
    check("attention, host mask", &qkv(), |x| Ok(both(Sdpa::new(h).mask(Mask::Keep(keep.clone())).forward(&x[0], &x[1], &x[2])?)));
    // a bias broadcast over the batch (differentiated), with the causal mask
    let mut ins = qkv();
    ins.push(rand_t(&[h, lq, lk], 4));
    check("attention, bias", &ins, |x| Ok(both(Sdpa::new(h).bias(x[3].clone()).mask(Mask::Causal).forward(&x[0], &x[1], &x[2])?)));
    // one head, output only
    check("attention, one head", &qkv(), |x| Ok(vec![Sdpa::new(1).forward(&x[0], &x[1], &x[2])?.0]));
    // weights only: α's own backward
    check("attention, weights only", &qkv(), |x| Ok(vec![Sdpa::new(h).forward(&x[0], &x[1], &x[2])?.1]));
}

#[test]
fn attention_dropout_draws_its_mask_on_the_gpu_and_its_backward_uses_it() {
    let Some(_turn) = gpu() else { return };
    let (b, lq, lk, h, p) = (2, 8, 16, 2, 0.3);
    let qkv = vec![rand_t(&[b, lq, 4], 1), rand_t(&[b, lk, 4], 2), rand_t(&[b, lk, 6], 3)];
    // the mask the GPU draws: the dropout hash keyed by the generator's first key
    let n = b * h * lq * lk;
    let keep = 1.0 / (1.0 - p);
    let drawn = super::random::keep_mask(n, FluxRng::seed(5).key(), p as f32, keep as f32).unwrap();
    let mask = Tensor::from_vec(super::transfer::download(&drawn).unwrap(), &[b, h, lq, lk]).unwrap();
    let m = mask.to_vec::<f32>().unwrap();
    assert!(m.iter().all(|&v| v == 0.0 || v == keep as f32), "mask values other than 0 and 1/(1 − p)");
    let dropped = m.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
    assert!((dropped - p).abs() < 0.06, "dropped {dropped} of the weights, expected about {p}");
    // the GPU draws its own mask; the CPU recomputes the attention with that mask: the
    // outputs agree only if the forward used it, the gradients only if the backward did
    let op = Sdpa::new(h).dropout(p);
    let both = |(y, a): (Tensor, Tensor)| vec![y, a];
    check("attention, dropout", &qkv, |x| {
        Ok(both(match x[0].device() {
            Device::Cpu => op.run(Operands::Separate(&x[0], &x[1], &x[2]), |_, _, _, _| Ok(mask.clone()))?,
            _ => op.forward_with_rng(&x[0], &x[1], &x[2], &mut FluxRng::seed(5))?,
        }))
    });
    // the packed form (self-attention, b·h·lq·lq weights) draws the head of the same stream
    let mask_sq = Tensor::from_vec(m[..b * h * lq * lq].to_vec(), &[b, h, lq, lq]).unwrap();
    check("packed attention, dropout", &[rand_t(&[b, lq, 4 + 4 + 6], 4)], |x| {
        Ok(both(match x[0].device() {
            Device::Cpu => op.run(Operands::Packed(&x[0], 4), |_, _, _, _| Ok(mask_sq.clone()))?,
            _ => op.forward_packed(&x[0], 4, Some(&mut FluxRng::seed(5)))?,
        }))
    });
}

#[test]
fn packed_attention_forward_and_gradients_match_cpu() {
    let Some(_turn) = gpu() else { return };
    let (b, l, h) = (2, 4, 2);
    let both = |(y, a): (Tensor, Tensor)| vec![y, a];
    check("packed attention", &[rand_t(&[b, l, 4 + 4 + 6], 11)], |x| Ok(both(Sdpa::new(h).forward_packed(&x[0], 4, None)?)));
    check("packed attention, causal and bias", &[rand_t(&[b, l, 4 + 4 + 6], 12), rand_t(&[l, l], 13)], |x| {
        Ok(both(Sdpa::new(h).mask(Mask::Causal).bias(x[1].clone()).forward_packed(&x[0], 4, None)?))
    });
    // the weights alone: v's columns of the gradient are zeros
    check("packed attention, weights only", &[rand_t(&[b, l, 4 + 4 + 6], 14)], |x| Ok(vec![Sdpa::new(h).forward_packed(&x[0], 4, None)?.1]));
}

/// The sequence op itself (inputs x, Wi, Wh, b, h0 and the LSTM's c0; output the states,
/// for the LSTM followed by the last cells).
fn sequence(cell: Cell, x: &[Tensor]) -> Result<Vec<Tensor>> {
    let refs: Vec<&Tensor> = x.iter().collect();
    Ok(vec![apply(&Sequence { cell }, &refs)?])
}

#[test]
fn recurrent_sequences_forward_and_gradients_match_cpu() {
    let Some(_turn) = gpu() else { return };
    let (b, t, i, h) = (3, 4, 3, 5);
    let ins = |g: usize, seed: u64| {
        vec![
            rand_t(&[b, t, i], seed + 1),
            rand_t(&[g * h, i], seed).mul_scalar(0.8).unwrap(),
            rand_t(&[g * h, h], seed + 2).mul_scalar(0.5).unwrap(),
            rand_t(&[g * h], seed + 3),
            rand_t(&[b, h], seed + 4),
            rand_t(&[b, h], seed + 5),
        ]
    };
    check("LSTM", &ins(4, 20), |x| sequence(Cell::Lstm, x));
    check("GRU", &ins(3, 30)[..5], |x| sequence(Cell::Gru, x));
    for (k, act) in [Activation::Tanh, Activation::Relu, Activation::Identity, Activation::Elu(0.7), Activation::Sigmoid].into_iter().enumerate() {
        check(&format!("RNN {act:?}"), &ins(1, 40 + k as u64)[..5], |x| sequence(Cell::Rnn(act), x));
    }
    // one step
    let one = |g: usize, seed: u64| {
        let mut v = ins(g, seed);
        v[0] = rand_t(&[b, 1, i], seed + 9);
        v
    };
    check("LSTM, one step", &one(4, 60), |x| sequence(Cell::Lstm, x));
    check("GRU, one step", &one(3, 61)[..5], |x| sequence(Cell::Gru, x));
}

#[test]
fn recurrent_layers_default_their_state_and_bias_on_the_gpu() {
    let Some(_turn) = gpu() else { return };
    // no bias and no initial state: zeros made on the inputs' device
    let (x, wi, wh) = (rand_t(&[2, 3, 3], 70), rand_t(&[12, 3], 71), rand_t(&[12, 3], 72));
    let run = |dev: Device| {
        let m = |t: &Tensor| t.to_device(dev).unwrap();
        let (ys, (hl, c)) = lstm(&m(&x), &m(&wi), &m(&wh), None, None).unwrap();
        assert_eq!((ys.device(), hl.device(), c.device()), (dev, dev, dev));
        let (gy, gh) = gru(&m(&x), &m(&rand_t(&[9, 3], 76)), &m(&rand_t(&[9, 3], 73)), None, None).unwrap();
        let (ry, rh) = rnn(&m(&x), &m(&rand_t(&[3, 3], 74)), &m(&rand_t(&[3, 3], 75)), None, None, Activation::Tanh).unwrap();
        [ys, hl, c, gy, gh, ry, rh].map(|t| t.to_device(Device::Cpu).unwrap())
    };
    for (k, (a, b)) in run(Device::Wgpu).iter().zip(&run(Device::Cpu)).enumerate() {
        assert_close(a, b, &format!("default state: output {k}"));
    }
}
