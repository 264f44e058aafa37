//! The fused attention op and the MultiHeadAttention layer: forward against a plain
//! reference written here (loops over batch, head, query and key), backward against
//! finite differences, f32 and f64, with and without masks, bias and dropout.
mod common;

use common::*;
use flux_core::nn::attention::{AttendOptions, MultiHeadAttention};
use flux_core::nn::Module;
use flux_core::ops::attention::{Mask, Sdpa};
use flux_core::tensor::random::Rng;
use flux_core::{autodiff, DType, Error, Tensor};

/// (y, α) by the definition: per (b, h), s_ij = q_i·k_j/√d + bias, masked to −∞,
/// α = softmax_j(s), y_i = Σ_j α_ij v_j, heads side by side in y's last dimension.
fn reference(q: &Nd, k: &Nd, v: &Nd, h: usize, bias: Option<&Nd>, keep: &dyn Fn(usize, usize, usize, usize) -> bool) -> (Nd, Nd) {
    let (b, lq, dq) = (q.shape[0], q.shape[1], q.shape[2]);
    let (lk, dv) = (k.shape[1], v.shape[2]);
    let (hq, hv) = (dq / h, dv / h);
    let mut y = vec![0.0; b * lq * dv];
    let mut a = vec![0.0; b * h * lq * lk];
    for bi in 0..b {
        for hi in 0..h {
            for i in 0..lq {
                let mut s: Vec<f64> = (0..lk)
                    .map(|j| {
                        let dot: f64 = (0..hq).map(|c| q.at(&[bi, i, hi * hq + c]) * k.at(&[bi, j, hi * hq + c])).sum();
                        let z = dot / (hq as f64).sqrt() + bias.map_or(0.0, |x| x.at_broadcast(&[bi, hi, i, j]));
                        if keep(bi, hi, i, j) { z } else { f64::NEG_INFINITY }
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let tot: f64 = s.iter().map(|z| (z - m).exp()).sum();
                s.iter_mut().for_each(|z| *z = (*z - m).exp() / tot);
                for j in 0..lk {
                    a[((bi * h + hi) * lq + i) * lk + j] = s[j];
                    for c in 0..hv {
                        y[(bi * lq + i) * dv + hi * hv + c] += s[j] * v.at(&[bi, j, hi * hv + c]);
                    }
                }
            }
        }
    }
    (Nd::new(&[b, lq, dv], y), Nd::new(&[b, h, lq, lk], a))
}

fn all(_: usize, _: usize, _: usize, _: usize) -> bool { true }

#[test]
fn forward_matches_reference_f64_and_f32() {
    let mut g = Gen::new(1);
    let (q, k, v) = (g.nd(&[2, 3, 6], -1.0, 1.0), g.nd(&[2, 4, 6], -1.0, 1.0), g.nd(&[2, 4, 4], -1.0, 1.0));
    let bias = g.nd(&[2, 1, 3, 4], -1.0, 1.0);
    let keep_nd = Nd::new(&[3, 4], (0..12).map(|i| if i % 5 == 3 { 0.0 } else { 1.0 }).collect());
    let keep_fn = |_: usize, _: usize, i: usize, j: usize| keep_nd.at(&[i, j]) != 0.0;
    let causal = |_: usize, _: usize, i: usize, j: usize| j <= i;
    let cases: Vec<(Sdpa, Option<&Nd>, &dyn Fn(usize, usize, usize, usize) -> bool)> = vec![
        (Sdpa::new(2), None, &all),
        (Sdpa::new(1), None, &all),
        (Sdpa::new(2).mask(Mask::Causal), None, &causal),
        (Sdpa::new(2).mask(Mask::Keep(keep_nd.tensor())).bias(bias.tensor()), Some(&bias), &keep_fn),
    ];
    for (n, (op, b, keep)) in cases.into_iter().enumerate() {
        let (ry, ra) = reference(&q, &k, &v, op_heads(n), b, keep);
        let (y, a) = op.forward(&q.tensor(), &k.tensor(), &v.tensor()).unwrap();
        assert_nd(&y, &ry, 1e-12, 1e-13);
        assert_nd(&a, &ra, 1e-12, 1e-13);
        // f32: the same op on float32 inputs (bias cast alike)
        let op32 = match b {
            Some(b) => Sdpa::new(op_heads(n)).mask(Mask::Keep(keep_nd.tensor32())).bias(b.tensor32()),
            None if n == 2 => Sdpa::new(2).mask(Mask::Causal),
            None => Sdpa::new(op_heads(n)),
        };
        let (y32, a32) = op32.forward(&q.tensor32(), &k.tensor32(), &v.tensor32()).unwrap();
        assert_eq!((y32.dtype(), a32.dtype()), (DType::F32, DType::F32));
        assert_nd(&y32, &ry, 1e-5, 1e-6);
        assert_nd(&a32, &ra, 1e-5, 1e-6);
    }
}

fn op_heads(case: usize) -> usize { if case == 1 { 1 } else { 2 } }

#[test]
fn backward_matches_finite_differences() {
    let mut g = Gen::new(2);
    let xs = vec![g.nd(&[2, 3, 4], -1.0, 1.0).tensor(), g.nd(&[2, 5, 4], -1.0, 1.0).tensor(), g.nd(&[2, 5, 6], -1.0, 1.0).tensor()];
    // the output and the weights, each through its own node
    gradcheck(&xs, |t| Ok(Sdpa::new(2).forward(&t[0], &t[1], &t[2])?.0));
    // (α does not depend on v: v is held fixed there)
    gradcheck(&xs[..2], |t| Ok(Sdpa::new(2).forward(&t[0], &t[1], &xs[2])?.1));
    gradcheck(&xs, |t| Ok(Sdpa::new(2).mask(Mask::Causal).forward(&t[0], &t[1], &t[2])?.0));
    // both outputs in one loss: the two nodes' gradients add up
    gradcheck(&xs, |t| {
        let (y, a) = Sdpa::new(1).mask(Mask::Causal).forward(&t[0], &t[1], &t[2])?;
        y.sum_all()?.add(&a.square()?.sum_all()?)
    });
    // a broadcast bias gets the scores' gradient summed over the broadcast dimensions
    let mut xb = xs.clone();
    xb.push(g.nd(&[1, 2, 1, 5], -1.0, 1.0).tensor());
    let keep = Tensor::from_vec((0..15).map(|i| if i % 4 == 1 { 0.0 } else { 1.0 }).collect::<Vec<f64>>(), &[3, 5]).unwrap();
    gradcheck(&xb, |t| Ok(Sdpa::new(2).bias(t[3].clone()).mask(Mask::Keep(keep.clone())).forward(&t[0], &t[1], &t[2])?.0));
    let qkb = [xb[0].clone(), xb[1].clone(), xb[3].clone()];
    gradcheck(&qkb, |t| Ok(Sdpa::new(2).bias(t[2].clone()).forward(&t[0], &t[1], &xb[2])?.1));
}

#[test]
fn dropout_uses_one_mask_for_forward_and_backward() {
    let mut g = Gen::new(3);
    let xs = vec![g.nd(&[2, 3, 4], -1.0, 1.0).tensor(), g.nd(&[2, 5, 4], -1.0, 1.0).tensor(), g.nd(&[2, 5, 4], -1.0, 1.0).tensor()];
    let op = Sdpa::new(2).dropout(0.4);
    // the same seed draws the same mask: the function is deterministic for the checker
    gradcheck(&xs, |t| Ok(op.forward_with_rng(&t[0], &t[1], &t[2], &mut Rng::seed(7))?.0));
    let (y, a) = op.forward_with_rng(&xs[0], &xs[1], &xs[2], &mut Rng::seed(7)).unwrap();
    let (y0, a0) = Sdpa::new(2).forward(&xs[0], &xs[1], &xs[2]).unwrap();
    assert_eq!(vals(&a), vals(&a0), "α is returned without dropout");
    assert_ne!(vals(&y), vals(&y0), "dropout changed nothing");
    // y = (α ⊙ mask) · v with the mask Flux's Dropout draws from the same generator
    let m = flux_core::tensor::dropout::dropout_mask(&[2, 2, 3, 5], 0.4, DType::F64, &mut Rng::seed(7)).unwrap();
    let vh = xs[2].reshape(&[2, 5, 2, 2]).unwrap().permute(&[0, 2, 1, 3]).unwrap();
    let want = a0.mul(&m).unwrap().matmul(&vh).unwrap().permute(&[0, 2, 1, 3]).unwrap().reshape(&[2, 3, 4]).unwrap();
    assert_close(&vals(&y), &vals(&want), 1e-12, 1e-14);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let x = Tensor::ones(&[2, 3, 4], DType::F32);
    let e = |r: flux_core::Result<(Tensor, Tensor)>| r.unwrap_err();
    assert!(matches!(e(Sdpa::new(3).forward(&x, &x, &x)), Error::Shape(m) if m.contains("divisible")));
    assert!(matches!(e(Sdpa::new(0).forward(&x, &x, &x)), Error::Value(_)));
    assert!(matches!(e(Sdpa::new(1).forward(&Tensor::ones(&[3, 4], DType::F32), &x, &x)), Error::Shape(m) if m.contains("(batch, len, dim)")));
    assert!(matches!(e(Sdpa::new(1).forward(&x, &Tensor::ones(&[2, 5, 4], DType::F32), &x)), Error::Shape(_)));
    assert!(matches!(e(Sdpa::new(1).bias(Tensor::ones(&[4, 4], DType::F32)).forward(&x, &x, &x)), Error::Shape(m) if m.contains("bias")));
    assert!(matches!(e(Sdpa::new(1).mask(Mask::Keep(Tensor::ones(&[2, 2], DType::F32))).forward(&x, &x, &x)), Error::Shape(m) if m.contains("mask")));
    assert!(matches!(e(Sdpa::new(1).dropout(1.5).forward(&x, &x, &x)), Error::Value(_)));
    assert!(matches!(e(Sdpa::new(1).forward(&x, &x.cast(DType::F64).unwrap(), &x)), Error::DType(_)));
    // empty batches and sequences give empty results
    let z = Tensor::ones(&[0, 3, 4], DType::F32);
    assert_eq!(Sdpa::new(2).forward(&z, &z, &z).unwrap().1.shape(), &[0, 2, 3, 3]);
    let kv0 = Tensor::ones(&[2, 0, 4], DType::F32);
    assert_eq!(Sdpa::new(2).forward(&x, &kv0, &kv0).unwrap().0.to_vec_f64().unwrap(), vec![0.0; 24]);
}

#[test]
fn parallel_and_serial_paths_agree() {
    // large enough to spread over the batch on rayon's threads, checked per batch entry
    // against the same op on that entry alone (which runs serially)
    let mut g = Gen::new(4);
    let (q, k, v) = (g.nd(&[6, 16, 32], -1.0, 1.0).tensor32(), g.nd(&[6, 20, 32], -1.0, 1.0).tensor32(), g.nd(&[6, 20, 32], -1.0, 1.0).tensor32());
    let op = Sdpa::new(4).mask(Mask::Causal);
    let (y, a) = op.forward(&q, &k, &v).unwrap();
    let (yv, av) = (vals(&y), vals(&a));
    for b in 0..6 {
        let one = |t: &Tensor| t.reshape(&[6, t.numel() / 6]).unwrap().to_vec::<f32>().unwrap()[b * t.numel() / 6..(b + 1) * t.numel() / 6].to_vec();
        let mk = |t: &Tensor| Tensor::from_vec(one(t), &[1, t.shape()[1], t.shape()[2]]).unwrap();
        let (y1, a1) = op.forward(&mk(&q), &mk(&k), &mk(&v)).unwrap();
        assert_eq!(vals(&y1), yv[b * 16 * 32..(b + 1) * 16 * 32].to_vec());
        assert_eq!(vals(&a1), av[b * 4 * 16 * 20..(b + 1) * 4 * 16 * 20].to_vec());
    }
}

#[test]
fn multihead_attention_matches_its_parts() {
    let mut rng = Rng::seed(5);
    let mha = MultiHeadAttention::config(6).inputs(6, 5, 5).qk_dim(8).v_dim(4).out_dim(3).nheads(2).bias(true).dtype(DType::F64).build(&mut rng).unwrap();
    let names: Vec<String> = mha.parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias", "v_proj.weight", "v_proj.bias", "out_proj.weight", "out_proj.bias"]);
    let mut g = Gen::new(6);
    let (q, kv) = (g.nd(&[2, 3, 6], -1.0, 1.0), g.nd(&[2, 4, 5], -1.0, 1.0));
    let lin = |x: &Nd, p: &flux_core::nn::attention::Projection| {
        let w = Nd::new(p.weight.shape(), vals(&p.weight));
        let y = ref_matmul(x, &w.permute(&[1, 0]));
        let b = Nd::new(&[w.shape[0]], vals(p.bias.as_ref().unwrap()));
        y.zip(&b.broadcast_to(&y.shape), |a, b| a + b)
    };
    let (ry, ra) = reference(&lin(&q, &mha.q_proj), &lin(&kv, &mha.k_proj), &lin(&kv, &mha.v_proj), 2, None, &|_, _, i, j| j <= i);
    let (y, a) = mha.forward_qkv(&q.tensor(), &kv.tensor(), &kv.tensor(), AttendOptions { mask: Mask::Causal, ..Default::default() }).unwrap();
    assert_nd(&a, &ra, 1e-12, 1e-13);
    assert_nd(&y, &lin(&ry, &mha.out_proj), 1e-12, 1e-13);
    // gradients of every parameter against finite differences
    let ps: Vec<Tensor> = mha.parameters().into_iter().map(|(_, t)| t.clone()).collect();
    let (qt, kt) = (q.tensor(), kv.tensor());
    gradcheck(&ps, |t| {
        let mut m = mha.clone();
        for ((_, p), new) in m.parameters_mut().into_iter().zip(t) {
            *p = new.clone();
        }
        Ok(m.forward_qkv(&qt, &kt, &kt, AttendOptions { mask: Mask::Causal, ..Default::default() })?.0)
    });
    // errors name the shapes
    assert!(MultiHeadAttention::config(6).nheads(4).build(&mut rng).is_err());
    assert!(matches!(mha.forward_qkv(&kt, &qt, &qt, AttendOptions::default()), Err(Error::Shape(_))));
}

#[test]
fn packed_operands_match_three_tensors() {
    // q, k, v as column blocks of one tensor (qk width 4, v width 6, two heads): the same
    // (y, α) as the three blocks passed apart, and gradients right through the one input
    let mut g = Gen::new(8);
    let x = g.nd(&[2, 5, 14], -1.0, 1.0).tensor();
    let parts = |t: &Tensor| flux_core::tensor::misc::split(t, &[4, 4, 6], 2).unwrap();
    let p = parts(&x);
    let bias = g.nd(&[1, 2, 5, 5], -1.0, 1.0).tensor();
    for op in [Sdpa::new(2), Sdpa::new(2).mask(Mask::Causal).bias(bias.clone()), Sdpa::new(1)] {
        let (y, a) = op.forward_packed(&x, 4, None).unwrap();
        let (ry, ra) = op.forward(&p[0], &p[1], &p[2]).unwrap();
        assert_close(&vals(&y), &vals(&ry), 1e-14, 1e-15);
        assert_close(&vals(&a), &vals(&ra), 1e-14, 1e-15);
        gradcheck(std::slice::from_ref(&x), |t| Ok(op.forward_packed(&t[0], 4, None)?.0));
        // α's own node: v's columns get no gradient
        gradcheck(std::slice::from_ref(&x), |t| {
            let (y, a) = op.forward_packed(&t[0], 4, None)?;
            y.sum_all()?.add(&a.square()?.sum_all()?)
        });
    }
    let (_, gr) = autodiff::value_and_grad(&[&x], || Sdpa::new(2).forward_packed(&x, 4, None)?.1.square()?.sum_all()).unwrap();
    let gx = vals(gr[0].as_ref().unwrap());
    assert!(gx.chunks(14).all(|r| r[8..].iter().all(|&v| v == 0.0)) && gx.iter().any(|&v| v != 0.0));
    // the bias is differentiated too; dropout draws one mask for both passes
    gradcheck(&[x.clone(), bias.clone()], |t| Ok(Sdpa::new(2).bias(t[1].clone()).forward_packed(&t[0], 4, None)?.0));
    let drop = Sdpa::new(2).dropout(0.3);
    gradcheck(std::slice::from_ref(&x), |t| Ok(drop.forward_packed(&t[0], 4, Some(&mut Rng::seed(3)))?.0));
    let (yd, _) = drop.forward_packed(&x, 4, Some(&mut Rng::seed(3))).unwrap();
    assert_close(&vals(&yd), &vals(&drop.forward_with_rng(&p[0], &p[1], &p[2], &mut Rng::seed(3)).unwrap().0), 1e-14, 1e-15);
    // widths that do not fit are errors
    let e = |r: flux_core::Result<(Tensor, Tensor)>| r.unwrap_err();
    assert!(matches!(e(Sdpa::new(2).forward_packed(&x, 8, None)), Error::Shape(m) if m.contains("packed")));
    assert!(matches!(e(Sdpa::new(3).forward_packed(&x, 4, None)), Error::Shape(m) if m.contains("divisible")));
    assert!(matches!(e(Sdpa::new(2).forward_packed(&Tensor::ones(&[5, 14], DType::F64), 4, None)), Error::Shape(_)));
}

#[test]
fn self_attention_projects_once_and_matches_its_parts() {
    // one tensor as queries, keys and values takes the stacked-projection path: against
    // the reference through the four projections, and every parameter's gradient
    for bias in [true, false] {
        let mut rng = Rng::seed(9);
        let mha = MultiHeadAttention::config(6).qk_dim(8).v_dim(4).out_dim(3).nheads(2).bias(bias).dtype(DType::F64).build(&mut rng).unwrap();
        let x = Gen::new(10).nd(&[2, 4, 6], -1.0, 1.0);
        let lin = |x: &Nd, p: &flux_core::nn::attention::Projection| {
            let w = Nd::new(p.weight.shape(), vals(&p.weight));
            let y = ref_matmul(x, &w.permute(&[1, 0]));
            match &p.bias {
                Some(b) => y.zip(&Nd::new(&[w.shape[0]], vals(b)).broadcast_to(&y.shape), |a, b| a + b),
                None => y,
            }
        };
        let (ry, ra) = reference(&lin(&x, &mha.q_proj), &lin(&x, &mha.k_proj), &lin(&x, &mha.v_proj), 2, None, &|_, _, i, j| j <= i);
        let xt = x.tensor();
        let opts = || AttendOptions { mask: Mask::Causal, ..Default::default() };
        let (y, a) = mha.forward_qkv(&xt, &xt, &xt, opts()).unwrap();
        assert_nd(&a, &ra, 1e-12, 1e-13);
        assert_nd(&y, &lin(&ry, &mha.out_proj), 1e-12, 1e-13);
        let mut xs: Vec<Tensor> = mha.parameters().into_iter().map(|(_, t)| t.clone()).collect();
        xs.push(xt.clone());
        gradcheck(&xs, |t| {
            let mut m = mha.clone();
            for ((_, p), new) in m.parameters_mut().into_iter().zip(t) {
                *p = new.clone();
            }
            let x = &t[t.len() - 1];
            Ok(m.forward_qkv(x, x, x, opts())?.0)
        });
    }
}

#[test]
fn module_mode_switches_dropout() {
    let mha = MultiHeadAttention::config(4).nheads(2).dropout(0.5).build(&mut Rng::seed(0)).unwrap();
    let x = Gen::new(7).nd(&[2, 5, 4], -1.0, 1.0).tensor32();
    let test = vals(&mha.forward_t(&x, false).unwrap());
    assert_eq!(test, vals(&mha.forward_t(&x, false).unwrap()), "inference is deterministic");
    assert_eq!(test, vals(&mha.forward(&x).unwrap()), "outside a gradient the automatic mode is inference");
    let t1 = vals(&mha.forward_t(&x, true).unwrap());
    let t2 = vals(&mha.forward_t(&x, true).unwrap());
    assert!(t1 != test && t1 != t2, "training drops weights, differently each call");
    // inside a gradient the automatic mode trains
    let (l, _) = autodiff::value_and_grad(&[&mha.q_proj.weight], || mha.forward(&x)?.sum_all()).unwrap();
    let l0: f64 = test.iter().sum();
    assert!((l.item().unwrap() - l0).abs() > 1e-6);
}
