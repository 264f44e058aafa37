//! The fused recurrent ops (RNN, LSTM, GRU): forward against a naive per-step reference
//! written here (plain loops over f64), gradients of every input against finite
//! differences, f32 against f64, and the layer semantics (cells, states, unbatched input,
//! empty sequences, errors).
mod common;

use common::*;
use flux_core::nn::recurrent::{sequence, step};
use flux_core::nn::{Activation, Module, GRUCell, LSTMCell, RNNCell, GRU, LSTM, RNN};
use flux_core::ops::recurrent::{self as seq, Cell};
use flux_core::tensor::random::Rng;
use flux_core::{autodiff, DType, Error, Tensor};

const TANH: Activation = Activation::Tanh;

fn sig(v: f64) -> f64 { 1.0 / (1.0 + (-v).exp()) }

/// Row `r` of the (rows, cols) matrix `m` times the vector `v`: (m · v) without the batch.
fn matvec(m: &[f64], rows: usize, cols: usize, v: &[f64]) -> Vec<f64> {
    (0..rows).map(|r| (0..cols).map(|k| m[r * cols + k] * v[k]).sum()).collect()
}

/// The naive reference: per sequence, per step, gates from `Wi·x + b + Wh·h`. Returns the
/// states of every step (B·T·H) and the last `[h, c]` (c only for the LSTM).
#[allow(clippy::too_many_arguments)]
fn reference(cell: Cell, x: &Nd, wi: &Nd, wh: &Nd, b: &Nd, h0: &Nd, c0: &Nd) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (bs, t, i) = (x.shape[0], x.shape[1], x.shape[2]);
    let h = wh.shape[1];
    let g = wh.shape[0];
    let (mut ys, mut hl, mut cl) = (vec![], vec![], vec![]);
    for bi in 0..bs {
        let mut hv = h0.data[bi * h..(bi + 1) * h].to_vec();
        let mut cv = c0.data[bi * h..(bi + 1) * h].to_vec();
        for s in 0..t {
            let xv = &x.data[(bi * t + s) * i..(bi * t + s + 1) * i];
            let gx: Vec<f64> = matvec(&wi.data, g, i, xv).iter().zip(&b.data).map(|(a, b)| a + b).collect();
            let gh = matvec(&wh.data, g, h, &hv);
            hv = match cell {
                Cell::Rnn(act) => (0..h).map(|j| act.apply_f64(gx[j] + gh[j])).collect(),
                Cell::Lstm => {
                    let a = |k: usize, j: usize| gx[k * h + j] + gh[k * h + j];
                    cv = (0..h).map(|j| sig(a(1, j)) * cv[j] + sig(a(0, j)) * a(2, j).tanh()).collect();
                    (0..h).map(|j| sig(a(3, j)) * cv[j].tanh()).collect()
                }
                Cell::Gru => (0..h)
                    .map(|j| {
                        let r = sig(gx[j] + gh[j]);
                        let z = sig(gx[h + j] + gh[h + j]);
                        let n = (gx[2 * h + j] + r * gh[2 * h + j]).tanh();
                        (1.0 - z) * n + z * hv[j]
                    })
                    .collect(),
            };
            ys.extend_from_slice(&hv);
        }
        hl.extend_from_slice(&hv);
        cl.extend_from_slice(&cv);
    }
    (ys, hl, cl)
}

trait ApplyF64 {
    fn apply_f64(&self, v: f64) -> f64;
}
impl ApplyF64 for Activation {
    fn apply_f64(&self, v: f64) -> f64 {
        match self {
            Activation::Identity => v,
            Activation::Tanh => v.tanh(),
            Activation::Elu(a) => if v >= 0.0 { v } else { a * (v.exp() - 1.0) },
            Activation::Sigmoid => sig(v),
            a => panic!("no reference for {a:?}"),
        }
    }
}

struct Case {
    x: Nd,
    wi: Nd,
    wh: Nd,
    b: Nd,
    h0: Nd,
    c0: Nd,
}

fn case(cell: Cell, bs: usize, t: usize, i: usize, h: usize, seed: u64) -> Case {
    let mut g = Gen::new(seed);
    let gh = cell.gates() * h;
    Case {
        x: g.nd(&[bs, t, i], -1.5, 1.5),
        wi: g.nd(&[gh, i], -0.8, 0.8),
        wh: g.nd(&[gh, h], -0.8, 0.8),
        b: g.nd(&[gh], -0.5, 0.5),
        h0: g.nd(&[bs, h], -0.9, 0.9),
        c0: g.nd(&[bs, h], -0.9, 0.9),
    }
}

/// The op on tensors of `case` (f64 or f32): (ys, [h, c]).
fn run(cell: Cell, c: &Case, f32: bool) -> (Tensor, Vec<Tensor>) {
    let t = |n: &Nd| if f32 { n.tensor32() } else { n.tensor() };
    let st = if cell == Cell::Lstm { vec![t(&c.h0), t(&c.c0)] } else { vec![t(&c.h0)] };
    sequence(cell, &t(&c.x), &t(&c.wi), &t(&c.wh), Some(&t(&c.b)), Some(&st)).unwrap()
}

const CELLS: [Cell; 5] = [Cell::Lstm, Cell::Gru, Cell::Rnn(TANH), Cell::Rnn(Activation::Identity), Cell::Rnn(Activation::Elu(1.0))];

#[test]
fn forward_matches_the_per_step_reference_f64_and_f32() {
    for (k, cell) in CELLS.into_iter().enumerate() {
        let c = case(cell, 3, 5, 4, 6, 10 + k as u64);
        let (ys, hl, cl) = reference(cell, &c.x, &c.wi, &c.wh, &c.b, &c.h0, &c.c0);
        let (y64, s64) = run(cell, &c, false);
        assert_eq!(y64.shape(), &[3, 5, 6]);
        assert_close(&vals(&y64), &ys, 1e-12, 1e-12);
        assert_close(&vals(&s64[0]), &hl, 1e-12, 1e-12);
        if cell == Cell::Lstm {
            assert_close(&vals(&s64[1]), &cl, 1e-12, 1e-12);
        }
        let (y32, s32) = run(cell, &c, true);
        assert_eq!(y32.dtype(), DType::F32);
        assert_close(&vals(&y32), &ys, 1e-4, 1e-5);
        assert_close(&vals(s32.last().unwrap()), if cell == Cell::Lstm { &cl } else { &hl }, 1e-4, 1e-5);
    }
}

#[test]
fn gradients_of_every_input_match_finite_differences() {
    for (k, cell) in CELLS.into_iter().enumerate() {
        let c = case(cell, 2, 3, 3, 2, 20 + k as u64);
        let mut xs = vec![c.x.tensor(), c.wi.tensor(), c.wh.tensor(), c.b.tensor(), c.h0.tensor()];
        if cell == Cell::Lstm {
            xs.push(c.c0.tensor());
        }
        // every output: the states of all steps and the last state (c as well)
        gradcheck_tol(&xs, 1e-5, 1e-7, |t| {
            let (ys, st) = sequence(cell, &t[0], &t[1], &t[2], Some(&t[3]), Some(&t[4..])).unwrap();
            let mut parts = vec![ys.reshape(&[ys.numel()])?];
            for s in &st {
                parts.push(s.reshape(&[s.numel()])?);
            }
            Tensor::concat(&parts.iter().collect::<Vec<_>>(), 0)
        });
    }
}

#[test]
fn f32_gradients_match_f64() {
    for (k, cell) in CELLS.into_iter().enumerate() {
        let c = case(cell, 2, 4, 3, 5, 30 + k as u64);
        let grads = |f32: bool| -> Vec<Vec<f64>> {
            let t = |n: &Nd| if f32 { n.tensor32() } else { n.tensor() };
            let ps = [t(&c.x), t(&c.wi), t(&c.wh), t(&c.b)];
            let refs: Vec<&Tensor> = ps.iter().collect();
            let w = weights_for(&[2, 4, 5], 3);
            let w = if f32 { w.cast(DType::F32).unwrap() } else { w };
            let (_, g) = autodiff::value_and_grad(&refs, || {
                let (ys, _) = sequence(cell, &ps[0], &ps[1], &ps[2], Some(&ps[3]), None)?;
                ys.mul(&w)?.sum_all()
            })
            .unwrap();
            g.iter().map(|g| vals(g.as_ref().unwrap())).collect()
        };
        let (g32, g64) = (grads(true), grads(false));
        for (a, b) in g32.iter().zip(&g64) {
            assert_close(a, b, 1e-3, 1e-4);
        }
    }
}

/// A batch large enough to be cut into chunks that run on different threads (17
/// sequences: uneven chunks; 96 units: per-step products past gemm's small-size path)
/// gives every sequence what it gives alone, gradients included.
#[test]
fn a_batch_split_across_threads_equals_each_sequence_alone() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    pool.install(|| {
        for (k, cell) in CELLS.into_iter().enumerate() {
            let (bs, t, h) = (17, 3, 96);
            let c = case(cell, bs, t, 4, h, 50 + k as u64);
            let (ys, hl, cl) = reference(cell, &c.x, &c.wi, &c.wh, &c.b, &c.h0, &c.c0);
            let (y, s) = run(cell, &c, false);
            assert_close(&vals(&y), &ys, 1e-12, 1e-12);
            assert_close(&vals(&s[0]), &hl, 1e-12, 1e-12);
            if cell == Cell::Lstm {
                assert_close(&vals(&s[1]), &cl, 1e-12, 1e-12);
            }
            // the gradients of the batch: x's rows and the sums over sequences of the
            // weights' gradients, against each sequence run alone
            let w = weights_for(&[bs, t, h], 7);
            let mut ins = vec![c.x.tensor(), c.wi.tensor(), c.wh.tensor(), c.b.tensor(), c.h0.tensor()];
            if cell == Cell::Lstm {
                ins.push(c.c0.tensor());
            }
            let grads = |ins: &[Tensor], w: &Tensor| -> Vec<Vec<f64>> {
                let refs: Vec<&Tensor> = ins.iter().collect();
                let (_, g) = autodiff::value_and_grad(&refs, || {
                    let (ys, st) = sequence(cell, &ins[0], &ins[1], &ins[2], Some(&ins[3]), Some(&ins[4..]))?;
                    ys.mul(w)?.sum_all()?.add(&st.last().unwrap().sum_all()?)
                })
                .unwrap();
                g.iter().map(|g| vals(g.as_ref().unwrap())).collect()
            };
            let whole = grads(&ins, &w);
            let mut sums = vec![vec![0.0; whole[1].len()], vec![0.0; whole[2].len()], vec![0.0; whole[3].len()]];
            for q in 0..bs {
                let one: Vec<Tensor> = ins.iter().enumerate().map(|(j, v)| match j {
                    0 => v.slice(&[sd(q, 1), sd(0, t), sd(0, 4)]).unwrap(),
                    1..=3 => v.clone(),
                    _ => v.slice(&[sd(q, 1), sd(0, h)]).unwrap(),
                }).collect();
                let g = grads(&one, &w.slice(&[sd(q, 1), sd(0, t), sd(0, h)]).unwrap());
                assert_close(&g[0], &whole[0][q * t * 4..(q + 1) * t * 4], 1e-12, 1e-12);
                for (j, sum) in sums.iter_mut().enumerate() {
                    sum.iter_mut().zip(&g[j + 1]).for_each(|(a, b)| *a += b);
                }
                for s in 4..ins.len() {
                    assert_close(&g[s], &whole[s][q * h..(q + 1) * h], 1e-12, 1e-12);
                }
            }
            for (j, sum) in sums.iter().enumerate() {
                assert_close(sum, &whole[j + 1], 1e-10, 1e-10);
            }
        }
    });
}

#[test]
fn a_sequence_continued_from_its_state_equals_one_pass() {
    for (k, cell) in CELLS.into_iter().enumerate() {
        let c = case(cell, 2, 6, 3, 4, 40 + k as u64);
        let x = c.x.tensor();
        let (wi, wh, b) = (c.wi.tensor(), c.wh.tensor(), c.b.tensor());
        let (whole, s_whole) = sequence(cell, &x, &wi, &wh, Some(&b), None).unwrap();
        let half = |lo: usize| x.slice(&[sd(0, 2), sd(lo, 3), sd(0, 3)]).unwrap();
        let (_, s1) = sequence(cell, &half(0), &wi, &wh, Some(&b), None).unwrap();
        let (y2, s2) = sequence(cell, &half(3), &wi, &wh, Some(&b), Some(&s1)).unwrap();
        let tail = whole.slice(&[sd(0, 2), sd(3, 3), sd(0, 4)]).unwrap();
        assert_close(&vals(&y2), &vals(&tail), 1e-13, 1e-13);
        for (a, b) in s2.iter().zip(&s_whole) {
            assert_close(&vals(a), &vals(b), 1e-13, 1e-13);
        }
        // stepping a cell T times is the sequence
        let mut st: Option<Vec<Tensor>> = None;
        for t in 0..6 {
            let xt = x.slice(&[sd(0, 2), sd(t, 1), sd(0, 3)]).unwrap().reshape(&[2, 3]).unwrap();
            st = Some(step(cell, &xt, &wi, &wh, Some(&b), st.as_deref()).unwrap());
        }
        for (a, b) in st.unwrap().iter().zip(&s_whole) {
            assert_close(&vals(a), &vals(b), 1e-13, 1e-13);
        }
    }
}

fn sd(start: usize, len: usize) -> flux_core::tensor::movement::SliceDim { flux_core::tensor::movement::SliceDim { start, len, step: 1 } }

#[test]
fn unbatched_input_empty_sequences_and_broadcast_states() {
    let lstm = LSTM::new(3, 4).dtype(DType::F64).init(&mut Rng::seed(1));
    let x = Gen::new(5).nd(&[1, 5, 3], -1.0, 1.0).tensor();
    let (yb, (hb, cb)) = lstm.forward_state(&x, None).unwrap();
    let (yu, (hu, cu)) = lstm.forward_state(&x.reshape(&[5, 3]).unwrap(), None).unwrap();
    assert_eq!((yu.shape(), hu.shape(), cu.shape()), (&[5, 4][..], &[4][..], &[4][..]));
    assert_eq!(vals(&yu), vals(&yb));
    assert_eq!((vals(&hu), vals(&cu)), (vals(&hb), vals(&cb)));
    // a state of shape (out,) applies to every sequence of the batch
    let h0 = Tensor::full(&[4], 0.3, DType::F64);
    let x2 = Tensor::concat(&[&x, &x], 0).unwrap();
    let (y2, _) = lstm.forward_state(&x2, Some((&h0, &h0))).unwrap();
    let (y1, _) = lstm.forward_state(&x, Some((&h0, &h0))).unwrap();
    assert_eq!(vals(&y2)[..20], vals(&y1)[..]);
    assert_eq!(vals(&y2)[20..], vals(&y1)[..]);
    // no steps: empty output, the state unchanged
    let e = Tensor::zeros(&[2, 0, 3], DType::F64);
    let (ye, (he, _)) = lstm.forward_state(&e, Some((&h0, &h0))).unwrap();
    assert_eq!((ye.shape(), vals(&he)), (&[2, 0, 4][..], vec![0.3; 8]));
}

#[test]
fn layers_visit_their_parameters_and_build_with_defaults() {
    let l = LSTM::new(3, 8);
    let names: Vec<String> = l.parameters().into_iter().map(|(p, _)| p).collect();
    assert_eq!(names, ["cell.Wi", "cell.Wh", "cell.bias"]);
    assert_eq!((l.cell.wi.shape(), l.cell.wh.shape(), l.cell.wi.dtype()), (&[32, 3][..], &[32, 8][..], DType::F32));
    assert_eq!(GRU::new(2, 5).bias(false).parameters().len(), 2);
    assert_eq!(GRUCell::new(2, 5).wi.shape(), &[15, 2]);
    let r = RNN::new(2, 3).activation(Activation::Identity).dtype(DType::F64);
    assert_eq!((r.cell.act, r.cell.wh.dtype()), (Activation::Identity, DType::F64));
    // the same seed draws the same kernels
    let a = LSTMCell::new(2, 3).init(&mut Rng::seed(7));
    let b = LSTMCell::new(2, 3).init(&mut Rng::seed(7));
    assert_eq!(vals(&a.wh), vals(&b.wh));
    // forward (automatic mode) equals forward_t and forward_state
    let x = Tensor::ones(&[2, 4, 2], DType::F32);
    let m = RNN::new(2, 3);
    assert_eq!(vals(&m.forward(&x).unwrap()), vals(&m.forward_state(&x, None).unwrap().0));
    let c = RNNCell::new(2, 3);
    assert_eq!(c.forward_t(&Tensor::ones(&[2], DType::F32), true).unwrap().shape(), &[3]);
}

#[test]
fn bad_input_is_a_shape_error_naming_the_layer() {
    let l = LSTM::new(2, 3);
    let err = |r: flux_core::Result<(Tensor, (Tensor, Tensor))>| match r {
        Err(Error::Shape(m)) => m,
        other => panic!("expected a shape error, got {other:?}"),
    };
    let m = err(l.forward_state(&Tensor::ones(&[1, 4, 5], DType::F32), None));
    assert!(m.contains("LSTM(2 => 3)") && m.contains("last dimension 2"), "{m}");
    let m = err(l.forward_state(&Tensor::ones(&[1, 1, 4, 2], DType::F32), None));
    assert!(m.contains("(batch, time, features)"), "{m}");
    let bad = Tensor::ones(&[5, 3], DType::F32);
    let m = err(l.forward_state(&Tensor::ones(&[2, 4, 2], DType::F32), Some((&bad, &bad))));
    assert!(m.contains("state of shape [2, 3]"), "{m}");
    match GRUCell::new(2, 3).step(&Tensor::ones(&[2, 4], DType::F32), None) {
        Err(Error::Shape(m)) => assert!(m.contains("GRUCell(2 => 3)"), "{m}"),
        other => panic!("{other:?}"),
    }
    // the raw op checks its weights too
    let x = Tensor::ones(&[1, 2, 2], DType::F32);
    let w = Tensor::ones(&[7, 2], DType::F32);
    assert!(matches!(seq::gru(&x, &w, &Tensor::ones(&[7, 3], DType::F32), None, None), Err(Error::Shape(_))));
}

#[test]
fn empty_batches_and_zero_hidden_units_run_forward_and_backward_for_every_cell() {
    // a batch of no sequences over several steps (an empty last batch of a loader): the
    // time loop must not index a step of a sequence that does not exist; a layer of no
    // units (RNN(3 => 0)): was a panic cutting the projection into rows of 0 values.
    // Either way nothing reaches the loss: every gradient is zero
    for (bs, h) in [(0, 4), (2, 0)] {
        for cell in CELLS {
            let c = case(cell, bs, 5, 3, h, 11);
            let (ys, st) = run(cell, &c, false);
            assert_eq!(ys.shape(), &[bs, 5, h], "{cell:?}");
            assert!(st.iter().all(|s| s.shape() == [bs, h]), "{cell:?}");
            let t = |n: &Nd| n.tensor();
            let (x, wi, wh, b) = (t(&c.x), t(&c.wi), t(&c.wh), t(&c.b));
            let ps = [&x, &wi, &wh, &b];
            let (_, g) = autodiff::value_and_grad(&ps, || sequence(cell, &x, &wi, &wh, Some(&b), None)?.0.sum_all()).unwrap();
            for (gi, p) in g.iter().zip(ps) {
                let gi = gi.as_ref().expect("a gradient for every input");
                assert_eq!(gi.shape(), p.shape(), "{cell:?}");
                assert!(vals(gi).iter().all(|v| *v == 0.0), "{cell:?}: nothing reaches the loss, no gradient");
            }
        }
    }
}
