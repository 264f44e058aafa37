//! The layer ops (conv, conv_transpose, pooling, normalize, gather/scatter, where,
//! clamp, interpolation, dropout): forward values against plain-loop references and tape
//! gradients against central finite differences (f64).
mod common;

use common::*;
use flux_core::tensor::conv::{conv, conv_relu, conv_transpose, ConvSpec};
use flux_core::tensor::dropout::{alpha_dropout, dropout};
use flux_core::tensor::gather::{gather, scatter_add};
use flux_core::tensor::misc::{clamp, pixel_shuffle, split, upsample_linear, upsample_nearest, where_};
use flux_core::tensor::norm::normalize;
use flux_core::tensor::pool::{pool, PoolMode, PoolSpec};
use flux_core::tensor::random::Rng;
use flux_core::{DType, Tensor};

fn rnd(g: &mut Gen, shape: &[usize]) -> Tensor { g.nd(shape, -1.0, 1.0).tensor() }

/// Direct 2-D cross-correlation with padding, stride, dilation and groups.
#[allow(clippy::too_many_arguments)]
fn ref_conv2d(x: &Nd, w: &Nd, s: [usize; 2], p: [usize; 2], d: [usize; 2], groups: usize) -> Nd {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let (o, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let oh = (h + 2 * p[0] - d[0] * (kh - 1) - 1) / s[0] + 1;
    let ow = (wd + 2 * p[1] - d[1] * (kw - 1) - 1) / s[1] + 1;
    let og = o / groups;
    let _ = c;
    let mut out = vec![0.0; n * o * oh * ow];
    for b in 0..n {
        for oc in 0..o {
            let g = oc / og;
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = 0.0;
                    for ci in 0..cg {
                        for a in 0..kh {
                            for e in 0..kw {
                                let ii = (i * s[0] + a * d[0]) as isize - p[0] as isize;
                                let jj = (j * s[1] + e * d[1]) as isize - p[1] as isize;
                                if ii >= 0 && jj >= 0 && (ii as usize) < h && (jj as usize) < wd {
                                    acc += x.at(&[b, g * cg + ci, ii as usize, jj as usize]) * w.at(&[oc, ci, a, e]);
                                }
                            }
                        }
                    }
                    out[((b * o + oc) * oh + i) * ow + j] = acc;
                }
            }
        }
    }
    Nd::new(&[n, o, oh, ow], out)
}

fn spec2(s: usize, p: usize, d: usize, groups: usize) -> ConvSpec {
    ConvSpec { stride: vec![s; 2], pad_lo: vec![p; 2], pad_hi: vec![p; 2], dilation: vec![d; 2], groups }
}

#[test]
fn conv2d_matches_reference() {
    let mut g = Gen::new(1);
    for &(s, p, d, groups) in &[(1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 2), (2, 1, 1, 4)] {
        let x = g.nd(&[3, 4, 7, 6], -1.0, 1.0);
        let w = g.nd(&[8, 4 / groups, 3, 2], -1.0, 1.0);
        let y = conv(&x.tensor(), &w.tensor(), None, &spec2(s, p, d, groups)).unwrap();
        assert_nd(&y, &ref_conv2d(&x, &w, [s, s], [p, p], [d, d], groups), 1e-12, 1e-12);
        // f32 agrees too
        let y32 = conv(&x.tensor32(), &w.tensor32(), None, &spec2(s, p, d, groups)).unwrap();
        assert_nd(&y32, &ref_conv2d(&x, &w, [s, s], [p, p], [d, d], groups), 1e-4, 1e-4);
    }
}

#[test]
fn conv_gradients_1d_2d_3d() {
    let mut g = Gen::new(2);
    let s1 = ConvSpec { stride: vec![2], pad_lo: vec![1], pad_hi: vec![2], dilation: vec![2], groups: 2 };
    gradcheck(&[rnd(&mut g, &[2, 4, 9]), rnd(&mut g, &[6, 2, 3]), rnd(&mut g, &[6])], |t| conv(&t[0], &t[1], Some(&t[2]), &s1));
    let s2 = ConvSpec { stride: vec![1, 2], pad_lo: vec![1, 0], pad_hi: vec![0, 1], dilation: vec![1, 1], groups: 1 };
    gradcheck(&[rnd(&mut g, &[2, 3, 5, 6]), rnd(&mut g, &[2, 3, 2, 3]), rnd(&mut g, &[2])], |t| conv(&t[0], &t[1], Some(&t[2]), &s2));
    let s3 = ConvSpec { stride: vec![1, 1, 2], pad_lo: vec![0, 1, 1], pad_hi: vec![1, 0, 1], dilation: vec![1; 3], groups: 1 };
    gradcheck(&[rnd(&mut g, &[1, 2, 3, 4, 4]), rnd(&mut g, &[2, 2, 2, 2, 2])], |t| conv(&t[0], &t[1], None, &s3));
}

#[test]
fn conv_gradients_with_32_channels_per_group() {
    // from 32 output channels per group the filter gradient is computed transposed
    // (dWᵀ = cols·dyᵀ): both layouts against finite differences, one and two groups
    let mut g = Gen::new(9);
    gradcheck(&[rnd(&mut g, &[2, 2, 5, 4]), rnd(&mut g, &[32, 2, 3, 3]), rnd(&mut g, &[32])], |t| conv(&t[0], &t[1], Some(&t[2]), &spec2(1, 1, 1, 1)));
    gradcheck(&[rnd(&mut g, &[3, 2, 4, 5]), rnd(&mut g, &[64, 1, 2, 3])], |t| conv(&t[0], &t[1], None, &spec2(2, 1, 1, 2)));
    // and the same numbers as the plain reference
    let (x, w) = (g.nd(&[2, 4, 6, 5], -1.0, 1.0), g.nd(&[64, 2, 3, 3], -1.0, 1.0));
    let y = conv(&x.tensor(), &w.tensor(), None, &spec2(1, 1, 1, 2)).unwrap();
    assert_nd(&y, &ref_conv2d(&x, &w, [1, 1], [1, 1], [1, 1], 2), 1e-12, 1e-12);
}

#[test]
fn conv_row_unfold_matches_reference_and_gradients() {
    // from 32 output and 8 input channels per group, 2-D convolutions with vertical stride 1 unfold
    // only the window's columns and run one GEMM per window row over that matrix shifted
    // by whole rows: the forward against the reference (vertical dilation, horizontal
    // stride and dilation, groups, 64 channels per group computed in two blocks), the
    // gradients against finite differences, conv_transpose (whose forward is the input
    // gradient) included
    let mut g = Gen::new(11);
    for &(s, p, d, groups, kh) in &[([1, 2], [1, 0], [2, 1], 1, 3), ([1, 1], [2, 1], [1, 2], 2, 2), ([1, 3], [0, 1], [1, 1], 1, 4)] {
        let x = g.nd(&[2, 16, 7, 9], -1.0, 1.0);
        let w = g.nd(&[64 * groups, 16 / groups, kh, 3], -1.0, 1.0);
        let sp = ConvSpec { stride: s.to_vec(), pad_lo: p.to_vec(), pad_hi: p.to_vec(), dilation: d.to_vec(), groups };
        let y = conv(&x.tensor(), &w.tensor(), None, &sp).unwrap();
        assert_nd(&y, &ref_conv2d(&x, &w, s, p, d, groups), 1e-12, 1e-12);
    }
    let sp = ConvSpec { stride: vec![1, 2], pad_lo: vec![2, 1], pad_hi: vec![1, 0], dilation: vec![2, 1], groups: 1 };
    gradcheck(&[rnd(&mut g, &[2, 8, 5, 6]), rnd(&mut g, &[32, 8, 2, 3]), rnd(&mut g, &[32])], |t| conv(&t[0], &t[1], Some(&t[2]), &sp));
    gradcheck(&[rnd(&mut g, &[1, 32, 3, 4]), rnd(&mut g, &[32, 8, 3, 3])], |t| conv_transpose(&t[0], &t[1], None, &spec2(1, 1, 1, 1), &[0, 0]));
}

#[test]
fn conv_transpose_is_adjoint_and_differentiable() {
    let mut g = Gen::new(3);
    let s = spec2(2, 1, 1, 2);
    let x = rnd(&mut g, &[2, 4, 7, 7]);
    let w = rnd(&mut g, &[6, 2, 3, 3]);
    let y = conv(&x, &w, None, &s).unwrap();
    let u = rnd(&mut g, y.shape());
    let xt = conv_transpose(&u, &w, None, &s, &[0, 0]).unwrap();
    assert_eq!(xt.shape(), x.shape());
    let lhs = y.mul(&u).unwrap().sum_all().unwrap().item().unwrap();
    let rhs = x.mul(&xt).unwrap().sum_all().unwrap().item().unwrap();
    assert!(close(lhs, rhs, 1e-12, 1e-12), "{lhs} vs {rhs}");
    gradcheck(&[rnd(&mut g, &[1, 4, 3, 3]), rnd(&mut g, &[4, 1, 2, 3]), rnd(&mut g, &[4])], |t| {
        conv_transpose(&t[0], &t[1], Some(&t[2]), &spec2(2, 1, 1, 4), &[1, 0])
    });
}

#[test]
fn conv_shape_errors_are_errors_not_panics() {
    let x = Tensor::zeros(&[1, 3, 4, 4], DType::F32);
    assert!(conv(&x, &Tensor::zeros(&[2, 2, 3, 3], DType::F32), None, &ConvSpec::new(2)).is_err());
    assert!(conv(&x, &Tensor::zeros(&[2, 3, 5, 5], DType::F32), None, &ConvSpec::new(2)).is_err());
    assert!(conv(&x, &Tensor::zeros(&[2, 3, 3], DType::F32), None, &ConvSpec::new(1)).is_err());
    assert!(conv(&x, &Tensor::zeros(&[2, 3, 3, 3], DType::F32), None, &ConvSpec::new(2).with_stride(0)).is_err());
    assert!(conv_transpose(&x, &Tensor::zeros(&[3, 1, 3, 3], DType::F32), None, &ConvSpec::new(2), &[2, 0]).is_err());
    assert!(pool(&x, PoolMode::Max, &PoolSpec::new(&[5, 5])).is_err());
}

#[test]
fn pooling_values_and_gradients() {
    let mut g = Gen::new(4);
    let x = Nd::new(&[2, 2, 4, 6], g.distinct(96, -3.0, 3.0));
    let y = pool(&x.tensor(), PoolMode::Max, &PoolSpec::new(&[2, 3])).unwrap();
    let mut want = vec![];
    for b in 0..2 {
        for c in 0..2 {
            for i in 0..2 {
                for j in 0..2 {
                    let mut m = f64::NEG_INFINITY;
                    let mut s = 0.0;
                    for a in 0..2 {
                        for e in 0..3 {
                            let v = x.at(&[b, c, 2 * i + a, 3 * j + e]);
                            m = m.max(v);
                            s += v;
                        }
                    }
                    want.push((m, s / 6.0));
                }
            }
        }
    }
    assert_close(&vals(&y), &want.iter().map(|p| p.0).collect::<Vec<_>>(), 0.0, 0.0);
    let ym = pool(&x.tensor(), PoolMode::Mean, &PoolSpec::new(&[2, 3])).unwrap();
    assert_close(&vals(&ym), &want.iter().map(|p| p.1).collect::<Vec<_>>(), 1e-12, 1e-12);
    let sp = PoolSpec { window: vec![3, 2], stride: vec![2, 1], pad_lo: vec![1, 0], pad_hi: vec![1, 1] };
    for mode in [PoolMode::Max, PoolMode::Mean] {
        gradcheck(&[x.tensor()], |t| pool(&t[0], mode, &sp));
    }
    let x1 = Nd::new(&[1, 2, 7], g.distinct(14, -1.0, 1.0));
    gradcheck(&[x1.tensor()], |t| pool(&t[0], PoolMode::Max, &PoolSpec::new(&[3])));
}

#[test]
fn conv_relu_is_relu_of_conv_with_its_gradient() {
    let mut g = Gen::new(6);
    let (x, w, b) = (rnd(&mut g, &[2, 3, 6, 5]), rnd(&mut g, &[4, 3, 3, 3]), rnd(&mut g, &[4]));
    let s = spec2(1, 1, 1, 1);
    let fused = conv_relu(&x, &w, Some(&b), &s).unwrap();
    let plain = conv(&x, &w, Some(&b), &s).unwrap().relu().unwrap();
    assert_close(&vals(&fused), &vals(&plain), 0.0, 0.0);
    assert!(vals(&fused).iter().any(|&v| v == 0.0) && vals(&fused).iter().any(|&v| v > 0.0));
    gradcheck(&[x, w, b], |t| conv_relu(&t[0], &t[1], Some(&t[2]), &spec2(2, 1, 1, 1)));
}

#[test]
fn max_pool_2x2_and_unpadded_mean_pool_match_loops() {
    let mut g = Gen::new(5);
    let x = Nd::new(&[2, 3, 6, 8], g.distinct(288, -3.0, 3.0));
    let y = pool(&x.tensor(), PoolMode::Max, &PoolSpec::new(&[2, 2])).unwrap();
    let ym = pool(&x.tensor(), PoolMode::Mean, &PoolSpec::new(&[6, 8])).unwrap();
    let (mut want, mut want_mean) = (vec![], vec![]);
    for b in 0..2 {
        for c in 0..3 {
            for i in 0..3 {
                for j in 0..4 {
                    let m = [(0, 0), (0, 1), (1, 0), (1, 1)].iter().map(|&(a, e)| x.at(&[b, c, 2 * i + a, 2 * j + e])).fold(f64::NEG_INFINITY, f64::max);
                    want.push(m);
                }
            }
            want_mean.push((0..6).flat_map(|i| (0..8).map(move |j| (i, j))).map(|(i, j)| x.at(&[b, c, i, j])).sum::<f64>() / 48.0);
        }
    }
    assert_close(&vals(&y), &want, 0.0, 0.0);
    assert_close(&vals(&ym), &want_mean, 1e-12, 1e-12);
    for (mode, k) in [(PoolMode::Max, [2, 2]), (PoolMode::Mean, [2, 2]), (PoolMode::Mean, [3, 4])] {
        gradcheck(&[x.tensor()], |t| pool(&t[0], mode, &PoolSpec::new(&k)));
    }
    // odd sizes: the last row and column lie in no 2×2 window (their gradient is zero)
    let xo = Nd::new(&[2, 2, 5, 7], g.distinct(140, -3.0, 3.0));
    gradcheck(&[xo.tensor()], |t| pool(&t[0], PoolMode::Max, &PoolSpec::new(&[2, 2])));
    // high-side padding: the last windows reach past the plane, so not the 2×2 path
    let hi = PoolSpec { window: vec![2, 2], stride: vec![2, 2], pad_lo: vec![0, 0], pad_hi: vec![1, 1] };
    gradcheck(&[xo.tensor()], |t| pool(&t[0], PoolMode::Max, &hi));
    // the first NaN of a window wins, as in the general path
    let mut v = vec![1.0f64; 16];
    v[5] = f64::NAN;
    let yn = vals(&pool(&Tensor::from_vec(v, &[1, 1, 4, 4]).unwrap(), PoolMode::Max, &PoolSpec::new(&[2, 2])).unwrap());
    assert!(yn[0].is_nan() && yn[1..].iter().all(|&a| a == 1.0), "{yn:?}");
}

#[test]
fn normalize_values_and_gradient() {
    let mut g = Gen::new(5);
    let x = g.nd(&[3, 2, 4], -2.0, 2.0);
    let (y, mean, var) = normalize(&x.tensor(), 3, 2, 4, 1e-5).unwrap();
    for c in 0..2 {
        let v: Vec<f64> = (0..3).flat_map(|p| (0..4).map(move |q| (p, q))).map(|(p, q)| x.at(&[p, c, q])).collect();
        let m = v.iter().sum::<f64>() / 12.0;
        let s2 = v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / 12.0;
        assert!(close(vals(&mean)[c], m, 1e-12, 1e-12) && close(vals(&var)[c], s2, 1e-12, 1e-12));
        assert!(close(vals(&y)[c * 4], (x.at(&[0, c, 0]) - m) / (s2 + 1e-5).sqrt(), 1e-12, 1e-12));
    }
    gradcheck(&[x.tensor()], |t| Ok(normalize(&t[0], 3, 2, 4, 1e-3)?.0));
    gradcheck(&[x.tensor()], |t| Ok(normalize(&t[0], 1, 6, 4, 1e-3)?.0));
}

#[test]
fn normalize_statistics_of_large_blocks_match_a_two_pass_reference() {
    // blocks of 256 values and more merge per-block statistics in one pass: against the
    // plain two-pass formulas in f64, on data far from zero (where a naive Σx² fails)
    let mut g = Gen::new(8);
    let (p, c, q) = (5, 3, 300);
    let x = g.nd(&[p, c, q], -1.0, 1.0);
    let shifted = Nd::new(&x.shape, x.data.iter().map(|v| 1000.0 + v).collect());
    for (xs, src, rtol, yatol) in [(x.tensor(), &x, 1e-12, 1e-12), (shifted.tensor(), &shifted, 1e-9, 1e-9), (shifted.tensor32(), &shifted, 2e-3, 2e-3)] {
        let (y, mean, var) = normalize(&xs, p, c, q, 1e-5).unwrap();
        for ci in 0..c {
            let v: Vec<f64> = (0..p).flat_map(|pi| (0..q).map(move |qi| (pi, qi))).map(|(pi, qi)| src.at(&[pi, ci, qi])).collect();
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let s2 = v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / v.len() as f64;
            assert!(close(vals(&mean)[ci], m, rtol, 0.0), "mean {} vs {m}", vals(&mean)[ci]);
            assert!(close(vals(&var)[ci], s2, rtol, 0.0), "var {} vs {s2}", vals(&var)[ci]);
            let want = (src.at(&[p - 1, ci, q - 1]) - m) / (s2 + 1e-5).sqrt();
            assert!(close(vals(&y)[((p - 1) * c + ci) * q + q - 1], want, rtol, yatol));
        }
    }
    gradcheck(&[x.tensor()], |t| Ok(normalize(&t[0], p, c, q, 1e-3)?.0));
}

#[test]
fn gather_scatter_where_clamp_split_gradients() {
    let mut g = Gen::new(6);
    let idx = [2usize, 0, 2, 1];
    gradcheck(&[rnd(&mut g, &[3, 2])], |t| gather(&t[0], &idx, &[2, 2]));
    gradcheck(&[rnd(&mut g, &[2, 2, 3])], |t| scatter_add(&t[0], &idx, &[2, 2], 4));
    let cond = Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0], &[2, 3]).unwrap();
    gradcheck(&[rnd(&mut g, &[2, 3]), rnd(&mut g, &[3])], |t| where_(&cond, &t[0], &t[1]));
    let xc = t64(vec![-1.5, -0.7, 0.2, 0.6, 1.4], &[5]);
    assert_close(&vals(&clamp(&xc, -1.0, 1.0).unwrap()), &[-1.0, -0.7, 0.2, 0.6, 1.0], 0.0, 0.0);
    gradcheck(&[xc], |t| clamp(&t[0], -1.0, 1.0));
    gradcheck(&[rnd(&mut g, &[2, 5])], |t| Ok(split(&t[0], &[2, 3], 1)?[1].clone()));
    assert!(split(&Tensor::zeros(&[2, 5], DType::F64), &[2, 2], 1).is_err());
}

#[test]
fn resampling_gradients() {
    let mut g = Gen::new(7);
    gradcheck(&[rnd(&mut g, &[1, 2, 3, 2])], |t| upsample_linear(&t[0], &[5, 4], true));
    gradcheck(&[rnd(&mut g, &[1, 2, 3, 2])], |t| upsample_linear(&t[0], &[6, 3], false));
    gradcheck(&[rnd(&mut g, &[1, 2, 2, 3])], |t| upsample_nearest(&t[0], &[4, 6]));
    gradcheck(&[rnd(&mut g, &[1, 8, 2, 2])], |t| pixel_shuffle(&t[0], 2));
}

#[test]
fn dropout_masks_are_reproducible_and_scaled() {
    let x = Tensor::ones(&[1000], DType::F64);
    let a = vals(&dropout(&x, 0.25, &[1000], &mut Rng::seed(9)).unwrap());
    let b = vals(&dropout(&x, 0.25, &[1000], &mut Rng::seed(9)).unwrap());
    assert_eq!(a, b);
    assert!(a.iter().all(|&v| v == 0.0 || close(v, 1.0 / 0.75, 1e-12, 0.0)));
    let dropped = a.iter().filter(|&&v| v == 0.0).count();
    assert!((200..300).contains(&dropped), "{dropped}");
    assert!(dropout(&x, 1.5, &[1000], &mut Rng::seed(0)).is_err());
    assert!(dropout(&x, 0.5, &[3], &mut Rng::seed(0)).is_err());
    let y = vals(&alpha_dropout(&x, 0.0, &mut Rng::seed(0)).unwrap());
    assert_eq!(y, vec![1.0; 1000]);
    // the gradient is the mask itself
    let xs = rnd(&mut Gen::new(8), &[4, 3]);
    gradcheck(&[xs], |t| dropout(&t[0], 0.5, &[4, 1], &mut Rng::seed(3)));
}
