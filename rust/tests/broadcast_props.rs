//! Property tests over random shapes: broadcasting, reductions, gradients, permutations
//! and strided inputs, each against the independent reference in `common`.
mod common;

use common::*;
use flux_core::tensor::movement::SliceDim;
use flux_core::Tensor;
use proptest::prelude::*;

fn cfg() -> ProptestConfig { ProptestConfig { cases: 48, ..ProptestConfig::default() } }

/// A shape of rank 0..=4 with sizes 1..=4.
fn shape() -> impl Strategy<Value = Vec<usize>> { prop::collection::vec(1usize..=4, 0..=4) }

/// Two broadcast-compatible shapes: from one full shape, each operand keeps a suffix of
/// it and turns some of its dimensions into 1.
fn compatible_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (prop::collection::vec(1usize..=4, 0..=4), 0usize..=4, 0usize..=4, any::<u8>(), any::<u8>()).prop_map(|(full, da, db, ma, mb)| {
        let n = full.len();
        let cut = |drop: usize, mask: u8| -> Vec<usize> {
            let drop = drop.min(n);
            full[drop..].iter().enumerate().map(|(i, &s)| if mask >> i & 1 == 1 { 1 } else { s }).collect()
        };
        (cut(da, ma), cut(db, mb))
    })
}

/// A shape and a data seed.
fn nd() -> impl Strategy<Value = (Vec<usize>, u64)> { (shape(), any::<u64>()) }

/// A non-contiguous tensor holding the same values as `x`: written transposed into a
/// bigger buffer, then viewed back through a stepped slice and a permutation.
fn strided_copy(x: &Nd) -> Tensor {
    let r = x.shape.len();
    if r == 0 {
        return x.tensor();
    }
    // buffer of shape (reversed shape) with every dim doubled; x[i] lives at rev(2·i)
    let rev: Vec<usize> = x.shape.iter().rev().map(|&s| 2 * s).collect();
    let mut buf = vec![f64::NAN; numel(&rev)];
    for k in 0..x.data.len() {
        let i = unravel(k, &x.shape);
        let j: Vec<usize> = i.iter().rev().map(|&v| 2 * v).collect();
        buf[ravel(&j, &rev)] = x.data[k];
    }
    let b = t64(buf, &rev);
    let dims: Vec<SliceDim> = x.shape.iter().rev().map(|&s| SliceDim { start: 0, len: s, step: 2 }).collect();
    let perm: Vec<isize> = (0..r as isize).rev().collect();
    let t = b.slice(&dims).unwrap().permute(&perm).unwrap();
    assert_eq!(t.shape(), x.shape.as_slice());
    t
}

fn is_perm_of(dims: &[usize], n: usize) -> Vec<usize> {
    let mut d: Vec<usize> = dims.iter().map(|&v| v % n.max(1)).collect();
    d.sort_unstable();
    d.dedup();
    d
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn broadcast_shape_and_values_match_reference((sa, sb) in compatible_pair(), seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let a = g.nd(&sa, -2.0, 2.0);
        let b = g.nd(&sb, 0.5, 2.0);
        let want = ref_broadcast_shape(&sa, &sb).unwrap();
        let y = a.tensor().add(&b.tensor()).unwrap();
        prop_assert_eq!(y.shape(), want.as_slice());
        assert_close(&vals(&y), &a.zip(&b, |x, y| x + y).data, 1e-14, 1e-14);
        assert_close(&vals(&a.tensor().mul(&b.tensor()).unwrap()), &a.zip(&b, |x, y| x * y).data, 1e-14, 1e-14);
        assert_close(&vals(&b.tensor().div(&a.tensor().exp().unwrap()).unwrap()), &b.zip(&a, |x, y| x / y.exp()).data, 1e-13, 1e-14);
        assert_close(&vals(&a.tensor().maximum(&b.tensor()).unwrap()), &a.zip(&b, f64::max).data, 0.0, 0.0);
        // strided operands give the same result
        let ys = strided_copy(&a).sub(&strided_copy(&b)).unwrap();
        assert_close(&vals(&ys), &a.zip(&b, |x, y| x - y).data, 1e-14, 1e-14);
        // broadcast_to the common shape equals the reference broadcast
        assert_close(&vals(&a.tensor().broadcast_to(&want).unwrap()), &a.broadcast_to(&want).data, 0.0, 0.0);
    }

    #[test]
    fn incompatible_shapes_are_rejected(sa in shape(), sb in shape()) {
        let a = Tensor::zeros(&sa, flux_core::DType::F64);
        let b = Tensor::zeros(&sb, flux_core::DType::F64);
        match ref_broadcast_shape(&sa, &sb) {
            Some(s) => prop_assert_eq!(a.add(&b).unwrap().shape().to_vec(), s),
            None => prop_assert!(a.add(&b).is_err()),
        }
    }

    #[test]
    fn reductions_over_random_dim_subsets((s, seed) in nd(), mask in any::<u8>(), keep in any::<bool>()) {
        let mut g = Gen::new(seed);
        let x = g.nd(&s, -3.0, 3.0);
        let dims: Vec<usize> = (0..s.len()).filter(|d| mask >> d & 1 == 1).collect();
        let di: Vec<isize> = dims.iter().map(|&d| d as isize).collect();
        let count: usize = dims.iter().map(|&d| s[d]).product();
        let sum = x.reduce(&dims, keep, 0.0, |a, v| a + v);
        for t in [x.tensor(), strided_copy(&x)] {
            assert_nd(&t.sum(Some(&di), keep).unwrap(), &sum, 1e-12, 1e-12);
            assert_nd(&t.mean(Some(&di), keep).unwrap(), &sum.map(|v| v / count as f64), 1e-12, 1e-12);
            assert_nd(&t.max(Some(&di), keep).unwrap(), &x.reduce(&dims, keep, f64::NEG_INFINITY, f64::max), 0.0, 0.0);
            assert_nd(&t.min(Some(&di), keep).unwrap(), &x.reduce(&dims, keep, f64::INFINITY, f64::min), 0.0, 0.0);
        }
    }

    #[test]
    fn permute_then_inverse_is_identity((s, seed) in nd(), keys in prop::collection::vec(any::<u32>(), 4)) {
        let mut g = Gen::new(seed);
        let x = g.nd(&s, -1.0, 1.0);
        let r = s.len();
        // a random permutation: sort 0..r by random keys
        let mut perm: Vec<usize> = (0..r).collect();
        perm.sort_by_key(|&i| keys[i]);
        let mut inv = vec![0; r];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i;
        }
        let pi: Vec<isize> = perm.iter().map(|&v| v as isize).collect();
        let ii: Vec<isize> = inv.iter().map(|&v| v as isize).collect();
        let p = x.tensor().permute(&pi).unwrap();
        assert_nd(&p, &x.permute(&perm), 0.0, 0.0);
        let back = p.permute(&ii).unwrap();
        assert_nd(&back, &x, 0.0, 0.0);
        assert_nd(&back.contiguous().unwrap(), &x, 0.0, 0.0);
        prop_assert_eq!(is_perm_of(&perm, r).len(), r);
    }

    #[test]
    fn strided_inputs_match_contiguous_copies((s, seed) in nd()) {
        let mut g = Gen::new(seed);
        let x = g.nd(&s, 0.1, 2.0);
        let st = strided_copy(&x);
        let ct = x.tensor();
        prop_assert_eq!(vals(&st), x.data.clone());
        prop_assert_eq!(vals(&st.contiguous().unwrap()), x.data.clone());
        prop_assert!(st.contiguous().unwrap().is_contiguous());
        // unary, binary with itself, reductions, softmax, reshape, matmul
        prop_assert_eq!(vals(&st.log().unwrap()), vals(&ct.log().unwrap()));
        prop_assert_eq!(vals(&st.mul(&st).unwrap()), vals(&ct.mul(&ct).unwrap()));
        prop_assert_eq!(vals(&st.mul(&ct).unwrap()), vals(&ct.mul(&ct).unwrap()));
        prop_assert_eq!(vals(&st.reshape(&[x.data.len()]).unwrap()), x.data.clone());
        if !s.is_empty() {
            prop_assert_eq!(vals(&st.softmax(-1).unwrap()), vals(&ct.softmax(-1).unwrap()));
            prop_assert_eq!(vals(&st.sum(Some(&[0]), false).unwrap()), vals(&ct.sum(Some(&[0]), false).unwrap()));
            prop_assert_eq!(st.argmax(0).unwrap(), ct.argmax(0).unwrap());
            prop_assert_eq!(vals(&st.index_select(0, &[0, 0]).unwrap()), vals(&ct.index_select(0, &[0, 0]).unwrap()));
            prop_assert_eq!(vals(&Tensor::concat(&[&st, &ct], -1).unwrap()), vals(&Tensor::concat(&[&ct, &ct], -1).unwrap()));
        }
        if s.len() >= 2 {
            let want = ref_matmul(&x, &x.permute(&(0..s.len()).map(|d| if d + 2 == s.len() { d + 1 } else if d + 1 == s.len() { d - 1 } else { d }).collect::<Vec<_>>()));
            assert_nd(&st.matmul(&st.t().unwrap()).unwrap(), &want, 1e-12, 1e-12);
            assert_nd(&ct.matmul(&ct.t().unwrap()).unwrap(), &want, 1e-12, 1e-12);
        }
    }

    #[test]
    fn matmul_with_random_batch_broadcast(m in 1usize..4, k in 1usize..4, n in 1usize..4, (ba, bb) in compatible_pair(), seed in any::<u64>()) {
        // keep the batch rank ≤ 2 so the reference stays fast
        let ba: Vec<usize> = ba.into_iter().rev().take(2).collect::<Vec<_>>().into_iter().rev().collect();
        let bb: Vec<usize> = bb.into_iter().rev().take(2).collect::<Vec<_>>().into_iter().rev().collect();
        let mut g = Gen::new(seed);
        let a = g.nd(&[ba.clone(), vec![m, k]].concat(), -1.0, 1.0);
        let b = g.nd(&[bb.clone(), vec![k, n]].concat(), -1.0, 1.0);
        let want = ref_matmul(&a, &b);
        assert_nd(&a.tensor().matmul(&b.tensor()).unwrap(), &want, 1e-12, 1e-12);
        assert_nd(&strided_copy(&a).matmul(&strided_copy(&b)).unwrap(), &want, 1e-12, 1e-12);
    }
}

proptest! {
    // gradient checks are costlier: fewer cases, small shapes
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn grad_add_mul_broadcast_random((sa, sb) in compatible_pair(), seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let a = g.nd(&sa, -2.0, 2.0).tensor();
        let b = g.nd(&sb, -2.0, 2.0).tensor();
        gradcheck(&[a.clone(), b.clone()], |t| t[0].add(&t[1]));
        gradcheck(&[a.clone(), b.clone()], |t| t[0].mul(&t[1]));
        gradcheck(&[a, b], |t| t[0].mul(&t[1])?.sub(&t[1]));
    }

    #[test]
    fn grad_sum_random((s, seed) in nd(), mask in any::<u8>(), keep in any::<bool>()) {
        let mut g = Gen::new(seed);
        let x = g.nd(&s, -2.0, 2.0);
        let dims: Vec<isize> = (0..s.len() as isize).filter(|d| mask >> d & 1 == 1).collect();
        gradcheck(&[x.tensor()], |t| t[0].sum(Some(&dims), keep));
        gradcheck(&[x.tensor()], |t| t[0].mean(Some(&dims), keep));
        // through a strided view of the variable
        gradcheck(&[x.tensor()], |t| {
            let r = t[0].ndim() as isize;
            let perm: Vec<isize> = (0..r).rev().collect();
            t[0].permute(&perm)?.sum(Some(&dims.iter().map(|&d| r - 1 - d).collect::<Vec<_>>()), keep)
        });
    }

    #[test]
    fn grad_matmul_random(m in 1usize..4, k in 1usize..4, n in 1usize..4, batch in prop::collection::vec(1usize..3, 0..=2), bcast in any::<bool>(), seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let a = g.nd(&[batch.clone(), vec![m, k]].concat(), -1.0, 1.0).tensor();
        let bshape = if bcast { vec![k, n] } else { [batch.clone(), vec![k, n]].concat() };
        let b = g.nd(&bshape, -1.0, 1.0).tensor();
        gradcheck(&[a.clone(), b.clone()], |t| t[0].matmul(&t[1]));
        gradcheck(&[b.clone(), a.clone()], |t| t[1].matmul(&t[0]));
        // 1-D on either side
        let v = g.nd(&[k], -1.0, 1.0).tensor();
        gradcheck(&[a, v.clone()], |t| t[0].matmul(&t[1]));
        gradcheck(&[v, b], |t| t[0].matmul(&t[1]));
    }
}
