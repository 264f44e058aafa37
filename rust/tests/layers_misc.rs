//! ConvTranspose, Upsample, PixelShuffle, Scale, Bilinear, SkipConnection, Parallel and
//! Maxout as Rust modules: each forward against a reference written here with plain
//! loops (f64 and f32), each backward against finite differences (f64), the f32
//! gradient against the f64 one, and train mode equal to test mode (none has a mode).
mod common;

use common::*;
use flux_core::nn::bilinear::{bilinear, Bilinear};
use flux_core::nn::combinators::{maxout, Maxout, Parallel, SkipConnection};
use flux_core::nn::conv::{conv_transpose_layer, ConvTranspose};
use flux_core::nn::resample::{upsample, PixelShuffle, Resize, Upsample, UpsampleMode};
use flux_core::nn::scale::{scale, Scale};
use flux_core::nn::{Activation, Dense, Module};
use flux_core::tensor::conv::ConvSpec;
use flux_core::{autodiff, DType, Result, Tensor};

fn rnd(g: &mut Gen, shape: &[usize], lo: f64, hi: f64) -> Tensor { g.nd(shape, lo, hi).tensor() }

fn f32_of(t: &Tensor) -> Tensor { t.cast(DType::F32).unwrap() }

/// The forward of `f` in f32 against `want` (computed in f64), and the f32 gradient of a
/// weighted sum against the f64 one.
#[track_caller]
fn f32_matches(xs: &[Tensor], want: &[f64], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    let xs32: Vec<Tensor> = xs.iter().map(f32_of).collect();
    let y32 = f(&xs32).unwrap();
    assert_eq!(y32.dtype(), DType::F32);
    assert_close(&vals(&y32), want, 1e-5, 1e-5);
    let w = weights_for(y32.shape(), 7);
    let grad = |ts: &[Tensor]| {
        let refs: Vec<&Tensor> = ts.iter().collect();
        let w = w.cast(ts[0].dtype()).unwrap();
        autodiff::value_and_grad(&refs, || f(ts)?.mul(&w)?.sum_all()).unwrap().1
    };
    for (g32, g64) in grad(&xs32).iter().zip(grad(xs)) {
        assert_close(&vals(g32.as_ref().unwrap()), &vals(g64.as_ref().unwrap()), 1e-4, 1e-4);
    }
}

#[track_caller]
fn same_in_both_modes(m: &dyn Module, x: &Tensor) {
    assert_eq!(vals(&m.forward_t(x, true).unwrap()), vals(&m.forward_t(x, false).unwrap()));
}

// ---- ConvTranspose -----------------------------------------------------------------------------

/// Transposed convolution by scattering every input element into the output (2-D, one group).
#[allow(clippy::too_many_arguments)]
fn ref_conv_transpose(x: &Nd, w: &Nd, b: &[f64], stride: usize, pad: usize, dil: usize, out_pad: usize, act: fn(f64) -> f64) -> Nd {
    let (n, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let (cout, kh, kw) = (w.shape[1], w.shape[2], w.shape[3]);
    let full = |len: usize, k: usize| (len - 1) * stride + dil * (k - 1) + 1 + out_pad;
    let (fh, fw) = (full(h, kh), full(wd, kw));
    let (oh, ow) = (fh - 2 * pad, fw - 2 * pad);
    let mut y = vec![0.0; n * cout * oh * ow];
    for ni in 0..n {
        for c in 0..cin {
            for i in 0..h {
                for j in 0..wd {
                    let v = x.at(&[ni, c, i, j]);
                    for o in 0..cout {
                        for a in 0..kh {
                            for bb in 0..kw {
                                let (r, s) = ((i * stride + a * dil) as isize - pad as isize, (j * stride + bb * dil) as isize - pad as isize);
                                if r >= 0 && s >= 0 && (r as usize) < oh && (s as usize) < ow {
                                    y[((ni * cout + o) * oh + r as usize) * ow + s as usize] += v * w.at(&[c, o, a, bb]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    for (k, v) in y.iter_mut().enumerate() {
        *v = act(*v + b[(k / (oh * ow)) % cout]);
    }
    Nd::new(&[n, cout, oh, ow], y)
}

#[test]
fn conv_transpose_layer_matches_reference_and_gradients() {
    let mut g = Gen::new(1);
    let (x, w, b) = (g.nd(&[2, 3, 3, 4], -1.0, 1.0), g.nd(&[3, 2, 3, 2], -0.5, 0.5), g.nd(&[2], -0.3, 0.3));
    let spec = ConvSpec::new(2).with_stride(2).with_pad(1);
    let want = ref_conv_transpose(&x, &w, &b.data, 2, 1, 1, 1, f64::tanh);
    let layer = |t: &[Tensor]| conv_transpose_layer(&t[0], &t[1], Some(&t[2]), &spec, &[1, 1], Activation::Tanh);
    let xs = [x.tensor(), w.tensor(), b.tensor()];
    assert_nd(&layer(&xs).unwrap(), &want, 1e-12, 1e-12);
    gradcheck(&xs, layer);
    f32_matches(&xs, &want.data, layer);
    // the module: same numbers from its fields, dilation honoured, no mode
    let mut m = ConvTranspose::new(&[3, 2], 3, 2).stride(2).pad(1).out_pad(1).activation(Activation::Tanh).dilation(1);
    m.weight = w.tensor();
    m.bias = b.tensor();
    assert_nd(&m.forward(&x.tensor()).unwrap(), &want, 1e-12, 1e-12);
    same_in_both_modes(&m, &x.tensor());
    let dil = ref_conv_transpose(&x, &w, &b.data, 1, 0, 2, 0, |v| v);
    let md = ConvTranspose { weight: w.tensor(), bias: b.tensor(), spec: ConvSpec::new(2), out_pad: vec![0, 0], act: Activation::Identity }.dilation(2);
    assert_nd(&md.forward(&x.tensor()).unwrap(), &dil, 1e-12, 1e-12);
    assert_eq!(m.parameters().iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), vec!["weight", "bias"]);
    // a wrong channel count is an error naming the shapes, not a panic
    assert!(m.forward(&Tensor::zeros(&[1, 4, 3, 3], DType::F64)).unwrap_err().to_string().contains("input channels"));
}

/// `groups(2)`: each half of the inputs feeds its own half of the outputs through its own
/// rows of the weight, as two separate layers would (each checked against the reference).
#[test]
fn conv_transpose_groups_are_separate_layers() {
    let mut g = Gen::new(31);
    let (x, w, b) = (g.nd(&[2, 4, 3, 3], -1.0, 1.0), g.nd(&[4, 3, 2, 2], -1.0, 1.0), g.vec(6, -1.0, 1.0));
    let mut m = ConvTranspose::new(&[2, 2], 4, 6).stride(2).groups(2).unwrap();
    assert_eq!(m.weight.shape(), &[4, 3, 2, 2]);
    (m.weight, m.bias) = (w.tensor(), t64(b.clone(), &[6]));
    let y = m.forward(&x.tensor()).unwrap();
    let half = |t: &Tensor, axis: isize, k: usize, n: usize| t.index_select(axis, &(k * n..(k + 1) * n).collect::<Vec<_>>()).unwrap();
    for k in 0..2 {
        let (xk, wk) = (Nd::new(&[2, 2, 3, 3], vals(&half(&x.tensor(), 1, k, 2))), Nd::new(&[2, 3, 2, 2], vals(&half(&w.tensor(), 0, k, 2))));
        let want = ref_conv_transpose(&xk, &wk, &b[3 * k..3 * k + 3], 2, 0, 1, 0, |v| v);
        assert_nd(&half(&y, 1, k, 3), &want, 1e-12, 1e-12);
    }
    // channel counts that do not split, and regrouping into fewer groups, are errors
    assert!(ConvTranspose::new(&[2, 2], 4, 6).groups(4).is_err());
    assert!(ConvTranspose::new(&[2, 2], 4, 6).groups(2).unwrap().groups(1).is_err());
}

// ---- Upsample and PixelShuffle --------------------------------------------------------------------

/// Linear interpolation along one axis with aligned corners: output j reads position j·(n−1)/(m−1).
fn ref_linear_1d(v: &[f64], m: usize) -> Vec<f64> {
    let n = v.len();
    (0..m)
        .map(|j| {
            let src = if m == 1 { 0.0 } else { j as f64 * (n - 1) as f64 / (m - 1) as f64 };
            let i0 = (src.floor() as usize).min(n - 1);
            let i1 = (i0 + 1).min(n - 1);
            let t = src - i0 as f64;
            v[i0] * (1.0 - t) + v[i1] * t
        })
        .collect()
}

#[test]
fn upsample_matches_reference_and_gradients() {
    let mut g = Gen::new(2);
    let x = g.nd(&[2, 2, 3, 2], -1.0, 1.0);
    // nearest, scale 2: every entry repeated twice along each spatial axis
    let near = Upsample::scale(2.0);
    let y = near.forward(&x.tensor()).unwrap();
    assert_eq!(y.shape(), &[2, 2, 6, 4]);
    let want: Vec<f64> = (0..2 * 2 * 6 * 4).map(|k| { let i = unravel(k, &[2, 2, 6, 4]); x.at(&[i[0], i[1], i[2] / 2, i[3] / 2]) }).collect();
    assert_close(&vals(&y), &want, 0.0, 0.0);
    same_in_both_modes(&near, &x.tensor());
    // bilinear to (5, 4), corners aligned: interpolate rows, then columns
    let lin = Upsample::size(&[5, 4]).mode(UpsampleMode::Linear);
    let mut want = vec![];
    for nc in 0..4 {
        let plane: Vec<f64> = x.data[nc * 6..(nc + 1) * 6].to_vec();
        let cols: Vec<Vec<f64>> = (0..2).map(|c| ref_linear_1d(&[plane[c], plane[2 + c], plane[4 + c]], 5)).collect();
        for r in 0..5 {
            want.extend(ref_linear_1d(&[cols[0][r], cols[1][r]], 4));
        }
    }
    assert_close(&vals(&lin.forward(&x.tensor()).unwrap()), &want, 1e-12, 1e-12);
    let f = |t: &[Tensor]| upsample(&t[0], UpsampleMode::Linear, &Resize::Size(vec![5, 4]), true);
    gradcheck(&[x.tensor()], f);
    f32_matches(&[x.tensor()], &want, f);
    // a scale rounds down per dimension, as Flux; bad sizes are errors
    assert_eq!(Resize::Scale(vec![1.5, 2.0]).output_size(&[1, 1, 3, 3]).unwrap(), vec![4, 6]);
    assert!(Resize::Scale(vec![0.0]).output_size(&[1, 1, 3]).is_err());
    assert!(Resize::Size(vec![2, 2, 2]).output_size(&[1, 1, 3, 3]).is_err());
}

#[test]
fn pixel_shuffle_matches_reference_and_gradients() {
    let mut g = Gen::new(3);
    let (r, c) = (2, 2);
    let x = g.nd(&[2, c * r * r, 2, 3], -1.0, 1.0);
    let y = PixelShuffle(r).forward(&x.tensor()).unwrap();
    assert_eq!(y.shape(), &[2, c, 4, 6]);
    let want: Vec<f64> = (0..numel(y.shape()))
        .map(|k| {
            let i = unravel(k, y.shape());
            x.at(&[i[0], i[1] * r * r + (i[2] % r) * r + i[3] % r, i[2] / r, i[3] / r])
        })
        .collect();
    assert_close(&vals(&y), &want, 0.0, 0.0);
    let f = |t: &[Tensor]| PixelShuffle(r).forward(&t[0]);
    gradcheck(&[x.tensor()], f);
    f32_matches(&[x.tensor()], &want, f);
    assert!(PixelShuffle(3).forward(&x.tensor()).is_err());
    assert!(PixelShuffle(2).parameters().is_empty());
}

// ---- Scale and Bilinear ----------------------------------------------------------------------------

#[test]
fn scale_matches_reference_and_gradients() {
    let mut g = Gen::new(4);
    let (x, s, b) = (g.nd(&[3, 2, 4], -1.0, 1.0), g.nd(&[2, 4], 0.5, 1.5), g.nd(&[2, 4], -0.5, 0.5));
    let want: Vec<f64> = (0..24).map(|k| (x.data[k] * s.data[k % 8] + b.data[k % 8]).tanh()).collect();
    let f = |t: &[Tensor]| scale(&t[0], &t[1], Some(&t[2]), Activation::Tanh);
    let xs = [x.tensor(), s.tensor(), b.tensor()];
    assert_close(&vals(&f(&xs).unwrap()), &want, 1e-12, 1e-12);
    gradcheck(&xs, f);
    f32_matches(&xs, &want, f);
    let m = Scale { scale: s.tensor(), bias: Some(b.tensor()), act: Activation::Tanh };
    assert_close(&vals(&m.forward(&x.tensor()).unwrap()), &want, 1e-12, 1e-12);
    same_in_both_modes(&m, &x.tensor());
    // the default layer is the identity; without bias it has one parameter
    assert_eq!(vals(&Scale::new(&[4]).dtype(DType::F64).forward(&t64(vec![1.0, 2.0, 3.0, 4.0], &[1, 4])).unwrap()), vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(Scale::new(&[4]).no_bias().params().len(), 1);
    let e = m.forward(&Tensor::zeros(&[1, 4], DType::F64)).unwrap_err().to_string();
    assert!(e.contains("(2, 4)") && e.contains("(1, 4)"), "{e}");
}

#[test]
fn bilinear_matches_reference_and_gradients() {
    let mut g = Gen::new(5);
    let (x, y, w, b) = (g.nd(&[2, 3, 3], -1.0, 1.0), g.nd(&[2, 3, 4], -1.0, 1.0), g.nd(&[2, 3, 4], -0.5, 0.5), g.nd(&[2], -0.2, 0.2));
    let mut want = vec![];
    for r in 0..6 {
        for o in 0..2 {
            let mut z = b.data[o];
            for i in 0..3 {
                for j in 0..4 {
                    z += x.data[r * 3 + i] * w.at(&[o, i, j]) * y.data[r * 4 + j];
                }
            }
            want.push(z.max(0.0) + 0.01 * z.min(0.0));
        }
    }
    let f = |t: &[Tensor]| bilinear(&t[0], &t[1], &t[2], Some(&t[3]), Activation::LeakyRelu(0.01));
    let xs = [x.tensor(), y.tensor(), w.tensor(), b.tensor()];
    let z = f(&xs).unwrap();
    assert_eq!(z.shape(), &[2, 3, 2]);
    assert_close(&vals(&z), &want, 1e-12, 1e-12);
    gradcheck(&xs, f);
    f32_matches(&xs, &want, f);
    let m = Bilinear { weight: w.tensor(), bias: Some(b.tensor()), act: Activation::LeakyRelu(0.01) };
    assert_close(&vals(&m.forward2(&x.tensor(), &y.tensor(), false).unwrap()), &want, 1e-12, 1e-12);
    // one input: y = x
    let sq = Bilinear::new(3, 3, 2).no_bias();
    assert_eq!(sq.forward(&Tensor::ones(&[4, 3], DType::F32)).unwrap().shape(), &[4, 2]);
    assert_eq!(sq.params().len(), 1);
    same_in_both_modes(&sq, &Tensor::ones(&[4, 3], DType::F32));
    assert!(m.forward2(&y.tensor(), &y.tensor(), false).unwrap_err().to_string().contains("expects inputs"));
}

// ---- combinators -----------------------------------------------------------------------------------

fn dense64(inp: usize, out: usize, seed: u64) -> Dense {
    let mut g = Gen::new(seed);
    Dense { weight: rnd(&mut g, &[out, inp], -0.7, 0.7), bias: Some(rnd(&mut g, &[out], -0.2, 0.2)), act: Activation::Identity }
}

/// x·Wᵀ + b by loops.
fn ref_dense(x: &Nd, d: &Dense) -> Vec<f64> {
    let (w, b) = (vals(&d.weight), vals(d.bias.as_ref().unwrap()));
    let (out, inp) = (d.weight.shape()[0], d.weight.shape()[1]);
    (0..x.shape[0] * out).map(|k| (0..inp).map(|i| x.data[(k / out) * inp + i] * w[(k % out) * inp + i]).sum::<f64>() + b[k % out]).collect()
}

/// The gradient of sum(w ⊙ m(x)) with respect to every parameter of `m`, against finite differences.
#[track_caller]
fn module_gradcheck(m: &mut dyn Module, x: &Tensor) {
    let params: Vec<Tensor> = m.params().into_iter().cloned().collect();
    let setter = |m: &mut dyn Module, ts: &[Tensor]| {
        for (p, t) in m.params_mut().into_iter().zip(ts) {
            *p = t.clone();
        }
    };
    // gradcheck needs a pure function of the tensors: rebuild the module's state each call
    let cell = std::cell::RefCell::new(m);
    gradcheck(&params, |ts| {
        let mut m = cell.borrow_mut();
        setter(&mut **m, ts);
        m.forward_t(x, true)
    });
}

#[test]
fn skip_connection_parallel_maxout_match_references_and_gradients() {
    let mut g = Gen::new(6);
    let x = g.nd(&[4, 3], -1.0, 1.0);
    let (d1, d2) = (dense64(3, 3, 10), dense64(3, 3, 11));
    let (r1, r2) = (ref_dense(&x, &d1), ref_dense(&x, &d2));
    // SkipConnection: layer(x) + x, and a concatenation
    let mut skip = SkipConnection::add(Box::new(dense64(3, 3, 10)));
    let want: Vec<f64> = r1.iter().zip(&x.data).map(|(a, b)| a + b).collect();
    assert_close(&vals(&skip.forward(&x.tensor()).unwrap()), &want, 1e-12, 1e-12);
    assert_eq!(skip.parameters().iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), vec!["layers.weight", "layers.bias"]);
    module_gradcheck(&mut skip, &x.tensor());
    let cat = SkipConnection::cat(Box::new(dense64(3, 3, 10)), 1);
    let y = cat.forward(&x.tensor()).unwrap();
    assert_eq!(y.shape(), &[4, 6]);
    assert_close(&vals(&y)[3..6], &x.data[0..3], 0.0, 0.0);
    // Parallel: sum of branches on one input; branch i on input i
    let mut par = Parallel::sum(vec![Box::new(dense64(3, 3, 10)), Box::new(dense64(3, 3, 11))]);
    let want: Vec<f64> = r1.iter().zip(&r2).map(|(a, b)| a + b).collect();
    assert_close(&vals(&par.forward(&x.tensor()).unwrap()), &want, 1e-12, 1e-12);
    let x2 = x.map(|v| 2.0 * v);
    let want2: Vec<f64> = r1.iter().zip(ref_dense(&x2, &d2)).map(|(a, b)| a + b).collect();
    assert_close(&vals(&par.forward_many(&[x.tensor(), x2.tensor()], false).unwrap()), &want2, 1e-12, 1e-12);
    assert!(par.forward_many(&[x.tensor(), x.tensor(), x.tensor()], false).is_err());
    assert_eq!(par.parameters()[2].0, "layers.1.weight");
    module_gradcheck(&mut par, &x.tensor());
    // Maxout: elementwise maximum of the branches (inputs keep the branches apart, so no ties)
    let mut mo = Maxout::new(vec![Box::new(dense64(3, 3, 10)), Box::new(dense64(3, 3, 11))]);
    let want: Vec<f64> = r1.iter().zip(&r2).map(|(a, b)| a.max(*b)).collect();
    assert_close(&vals(&mo.forward(&x.tensor()).unwrap()), &want, 1e-12, 1e-12);
    module_gradcheck(&mut mo, &x.tensor());
    f32_matches(&[d1.forward(&x.tensor()).unwrap(), d2.forward(&x.tensor()).unwrap()], &want, maxout);
    same_in_both_modes(&mo, &x.tensor());
    assert!(maxout(&[]).is_err());
}
