//! Every GPU kernel against the CPU's result for the same input (f32; within 1e-5
//! relative, or 1e-5 of the sum of the terms' magnitudes for sums and products, where
//! summation order alone moves the last bits). Each test returns early, saying why,
//! only when no adapter at all can be had.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::elementwise::{self as ew, ScalarOp};
use super::gather::{index_select, scatter_add};
use super::matmul::{matmul, MatLayout};
use super::reduce::{reduce, softmax, Reduce, SoftmaxMode};
use super::transfer::{download, upload};
use super::{gpu_available, gpu_info, pool, GpuBuffer};
use crate::tensor::elementwise::{BinaryOp, CmpOp, UnaryOp};
use crate::tensor::Layout;
use crate::Tensor;

// the GPU tests take turns, so that the pool test sees only its own buffers come and go
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(super) fn gpu() -> Option<std::sync::MutexGuard<'static, ()>> {
    if gpu_available() {
        return Some(TURN.lock().unwrap_or_else(|e| e.into_inner()));
    }
    eprintln!("SKIPPED: no GPU adapter: {}", super::context().unwrap_err());
    None
}

fn rand_vec(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

#[track_caller]
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = g == w || (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-5 * w.abs().max(1e-2);
        assert!(ok, "{what}: element {i}: GPU {g} vs CPU {w}");
    }
}

/// `got` within 1e-5 of `scale` (the sum of the terms' magnitudes) of `want`.
#[track_caller]
fn assert_close_scaled(got: &[f32], want: &[f64], scale: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for i in 0..got.len() {
        let err = (got[i] as f64 - want[i]).abs();
        assert!(err <= 1e-5 * scale[i].max(1e-6), "{what}: element {i}: GPU {} vs {} (scale {})", got[i], want[i], scale[i]);
    }
}

fn cpu(data: &[f32], shape: &[usize]) -> Tensor { Tensor::from_vec(data.to_vec(), shape).unwrap() }

// a non-contiguous view: the transpose of a [4, 6] buffer, then a slice with an offset
fn strided_view() -> Layout { Layout { shape: vec![5, 3], strides: vec![1, 5], offset: 2 } }

fn cpu_view(data: &[f32], l: &Layout) -> Vec<f32> {
    let mut v = Vec::new();
    crate::tensor::layout::for_each_offset(&l.shape, &l.strides, l.offset, |_, o| v.push(data[o]));
    v
}

#[test]
fn adapter_is_described() {
    let Some(_turn) = gpu() else { return };
    let info = gpu_info().unwrap();
    eprintln!("GPU: {info:?}");
    assert!(!info.name.is_empty());
    assert!(["vulkan", "metal", "dx12"].contains(&info.backend.as_str()), "{}", info.backend);
}

#[test]
fn upload_download_round_trip() {
    let Some(_turn) = gpu() else { return };
    let x = rand_vec(1000, 1, -5.0, 5.0);
    let b = upload(&x).unwrap();
    assert_eq!(download(&b).unwrap(), x);
    assert_eq!(super::transfer::download_range(&b, 10, 5).unwrap(), x[10..15].to_vec());
    assert!(download(&upload(&[]).unwrap()).unwrap().is_empty());
}

const UNARY_OPS: [UnaryOp; 15] = [
    UnaryOp::Neg,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Sqrt,
    UnaryOp::Abs,
    UnaryOp::Tanh,
    UnaryOp::Sigmoid,
    UnaryOp::Relu,
    UnaryOp::LeakyRelu(0.1),
    UnaryOp::Elu(0.7),
    UnaryOp::Gelu,
    UnaryOp::Swish,
    UnaryOp::Softplus,
    UnaryOp::Square,
    UnaryOp::Sign,
];

#[test]
fn unary_ops_match_cpu_contiguous_and_strided() {
    let Some(_turn) = gpu() else { return };
    for op in UNARY_OPS {
        // log and sqrt on positive numbers; the rest across 0, with tails past ±10
        let x = if matches!(op, UnaryOp::Log | UnaryOp::Sqrt) { rand_vec(24, 2, 0.01, 30.0) } else { rand_vec(24, 2, -12.0, 12.0) };
        let gx = upload(&x).unwrap();
        let y = download(&ew::unary(&gx, &Layout::contiguous(&[24]), op).unwrap()).unwrap();
        let want = cpu(&x, &[24]).unary(op).unwrap().to_vec::<f32>().unwrap();
        assert_close(&y, &want, &format!("{op:?}"));
        let l = strided_view();
        let ys = download(&ew::unary(&gx, &l, op).unwrap()).unwrap();
        let want = cpu(&cpu_view(&x, &l), &l.shape).unary(op).unwrap().to_vec::<f32>().unwrap();
        assert_close(&ys, &want, &format!("{op:?} strided"));
    }
}

#[test]
fn unary_backward_matches_cpu_derivative() {
    let Some(_turn) = gpu() else { return };
    for op in UNARY_OPS {
        let x = if matches!(op, UnaryOp::Log | UnaryOp::Sqrt) { rand_vec(64, 3, 0.1, 5.0) } else { rand_vec(64, 3, -4.0, 4.0) };
        let g = rand_vec(64, 4, -1.0, 1.0);
        let y: Vec<f32> = x.iter().map(|&v| op.fwd(v)).collect();
        let want: Vec<f32> = (0..64).map(|i| g[i] * op.deriv(x[i], y[i])).collect();
        let (bx, by, bg) = (upload(&x).unwrap(), upload(&y).unwrap(), upload(&g).unwrap());
        let got = download(&ew::unary_backward(&bx, &by, &bg, 64, op).unwrap()).unwrap();
        assert_close(&got, &want, &format!("{op:?} backward"));
    }
}

#[test]
fn unary_backward_reads_one_buffer_as_both_x_and_y() {
    // relu, tanh and sigmoid take σ′ from y alone: Dense keeps only y and passes it twice
    let Some(_turn) = gpu() else { return };
    for op in [UnaryOp::Relu, UnaryOp::Tanh, UnaryOp::Sigmoid] {
        let x = rand_vec(300, 7, -4.0, 4.0);
        let g = rand_vec(300, 8, -1.0, 1.0);
        let by = ew::unary(&upload(&x).unwrap(), &Layout::contiguous(&[300]), op).unwrap();
        // σ′ of the GPU's own y (relu's reads y > 0, which is x > 0)
        let y = download(&by).unwrap();
        let want: Vec<f32> = (0..300).map(|i| g[i] * op.deriv(y[i], y[i])).collect();
        let got = download(&ew::unary_backward(&by, &by, &upload(&g).unwrap(), 300, op).unwrap()).unwrap();
        assert_close(&got, &want, &format!("{op:?} backward from y alone"));
    }
}

#[test]
fn scalar_ops_match_cpu() {
    let Some(_turn) = gpu() else { return };
    let x = rand_vec(50, 5, 0.1, 4.0);
    let t = cpu(&x, &[50]);
    let gx = upload(&x).unwrap();
    let l = Layout::contiguous(&[50]);
    let cases: Vec<(ScalarOp, Tensor)> = vec![
        (ScalarOp::Affine(2.5, -1.0), t.mul_scalar(2.5).unwrap().add_scalar(-1.0).unwrap()),
        (ScalarOp::Affine(1.0, 3.0), t.add_scalar(3.0).unwrap()),
        (ScalarOp::Affine(-1.0, 3.0), t.rsub_scalar(3.0).unwrap()),
        (ScalarOp::Clamp(1.0, 2.0), crate::tensor::misc::clamp(&t, 1.0, 2.0).unwrap()),
        (ScalarOp::Powf(1.7), t.powf(1.7).unwrap()),
        (ScalarOp::RDiv(2.0), Tensor::full(&[50], 2.0, crate::DType::F32).div(&t).unwrap()),
        (ScalarOp::Max(2.0), t.maximum(&Tensor::scalar(2.0, crate::DType::F32)).unwrap()),
        (ScalarOp::Min(2.0), t.minimum(&Tensor::scalar(2.0, crate::DType::F32)).unwrap()),
    ];
    for (op, want) in cases {
        let got = download(&ew::scalar(&gx, &l, op).unwrap()).unwrap();
        assert_close(&got, &want.to_vec::<f32>().unwrap(), &format!("{op:?}"));
    }
    let s = download(&ew::scalar(&gx, &l, ScalarOp::Sin).unwrap()).unwrap();
    let c = download(&ew::scalar(&gx, &l, ScalarOp::Cos).unwrap()).unwrap();
    for i in 0..50 {
        assert!((s[i] - x[i].sin()).abs() < 1e-5 && (c[i] - x[i].cos()).abs() < 1e-5, "sin/cos at {}", x[i]);
    }
}

#[test]
fn binary_ops_and_comparisons_broadcast_like_cpu() {
    let Some(_turn) = gpu() else { return };
    // [2, 3, 4] against [3, 1] (broadcast), and against a transposed [4, 3] view as [3, 4]
    let a = rand_vec(24, 6, 0.5, 3.0);
    let mut b = rand_vec(12, 7, 0.5, 3.0);
    b[0] = a[0]; // one tie, so that Eq/Ge/Le meet equality
    let (ga, gb) = (upload(&a).unwrap(), upload(&b).unwrap());
    let la = Layout::contiguous(&[2, 3, 4]);
    let lb_small = Layout::contiguous(&[3, 1]);
    let lb_t = Layout { shape: vec![3, 4], strides: vec![1, 3], offset: 0 };
    let ta = cpu(&a, &[2, 3, 4]);
    let tb_small = cpu(&b[..3], &[3, 1]);
    let tb_t = cpu(&b, &[4, 3]).t().unwrap();
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Pow, BinaryOp::Max, BinaryOp::Min] {
        for (lb, tb) in [(&lb_small, &tb_small), (&lb_t, &tb_t)] {
            let (c, shape) = ew::binary(&ga, &la, &gb, lb, op).unwrap();
            assert_eq!(shape, vec![2, 3, 4]);
            let want = ta.binary(tb, op).unwrap().to_vec::<f32>().unwrap();
            assert_close(&download(&c).unwrap(), &want, &format!("{op:?} {:?}", lb.shape));
        }
    }
    for op in [CmpOp::Gt, CmpOp::Ge, CmpOp::Lt, CmpOp::Le, CmpOp::Eq, CmpOp::Ne] {
        let (c, _) = ew::compare(&ga, &la, &gb, &lb_t, op).unwrap();
        let want = ta.compare(&tb_t, op).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(download(&c).unwrap(), want, "{op:?}");
    }
    // shapes that do not broadcast are refused with both shapes named
    let err = ew::binary(&ga, &la, &gb, &Layout::contiguous(&[5]), BinaryOp::Add).unwrap_err();
    assert!(err.to_string().contains("[2, 3, 4]") && err.to_string().contains("[5]"), "{err}");
}

#[test]
fn where_selects_like_cpu() {
    let Some(_turn) = gpu() else { return };
    let c: Vec<f32> = (0..6).map(|i| (i % 2) as f32).collect();
    let a = rand_vec(6, 8, -1.0, 1.0);
    let b = rand_vec(2, 9, -1.0, 1.0);
    let (gc, ga, gb) = (upload(&c).unwrap(), upload(&a).unwrap(), upload(&b).unwrap());
    let (out, shape) =
        ew::where_(&gc, &Layout::contiguous(&[3, 2]), &ga, &Layout::contiguous(&[3, 2]), &gb, &Layout::contiguous(&[2])).unwrap();
    assert_eq!(shape, vec![3, 2]);
    let want = crate::tensor::misc::where_(&cpu(&c, &[3, 2]), &cpu(&a, &[3, 2]), &cpu(&b, &[2])).unwrap();
    assert_eq!(download(&out).unwrap(), want.to_vec::<f32>().unwrap());
}

#[test]
fn copies_and_fills() {
    let Some(_turn) = gpu() else { return };
    let x = rand_vec(24, 10, -1.0, 1.0);
    let gx = upload(&x).unwrap();
    let l = strided_view();
    assert_eq!(download(&ew::contiguous(&gx, &l).unwrap()).unwrap(), cpu_view(&x, &l));
    // write a [2, 2] block into rows 1..3, columns 1..3 of a [4, 4] zeros
    let dst = ew::full(16, 0.0).unwrap();
    let blk = upload(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    let view = Layout { shape: vec![2, 2], strides: vec![4, 1], offset: 5 };
    ew::copy_into(&blk, &Layout::contiguous(&[2, 2]), &dst, &view).unwrap();
    let mut want = vec![0.0; 16];
    (want[5], want[6], want[9], want[10]) = (1.0, 2.0, 3.0, 4.0);
    assert_eq!(download(&dst).unwrap(), want);
    ew::fill_into(&dst, 14, 2, -1.5).unwrap();
    (want[14], want[15]) = (-1.5, -1.5);
    assert_eq!(download(&dst).unwrap(), want);
    assert!(ew::fill_into(&dst, 15, 2, 0.0).is_err());
}

#[test]
fn reductions_over_axes_match_cpu() {
    let Some(_turn) = gpu() else { return };
    // [3, 200, 5]: axis 1 is long enough for the workgroup-per-output kernel
    let shape = [3usize, 200, 5];
    let x = rand_vec(3000, 11, -2.0, 2.0);
    let gx = upload(&x).unwrap();
    let t = cpu(&x, &shape);
    let l = Layout::contiguous(&shape);
    for axes in [vec![0usize], vec![1], vec![2], vec![0, 2], vec![0, 1, 2]] {
        let dims: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
        for (op, want) in [
            (Reduce::Sum, t.sum(Some(&dims), false).unwrap()),
            (Reduce::Mean, t.mean(Some(&dims), false).unwrap()),
            (Reduce::Max, t.max(Some(&dims), false).unwrap()),
            (Reduce::Min, t.min(Some(&dims), false).unwrap()),
        ] {
            let got = download(&reduce(&gx, &l, &axes, op).unwrap()).unwrap();
            let want = want.to_vec::<f32>().unwrap();
            if matches!(op, Reduce::Max | Reduce::Min) {
                assert_eq!(got, want, "{op:?} over {axes:?}");
            } else {
                // summation order differs: compare against f64 sums of the magnitudes
                let abs = t.abs().unwrap().cast(crate::DType::F64).unwrap();
                let mut scale = abs.sum(Some(&dims), false).unwrap().to_vec_f64().unwrap();
                if op == Reduce::Mean {
                    let r: usize = axes.iter().map(|&a| shape[a]).product();
                    scale.iter_mut().for_each(|s| *s /= r as f64);
                }
                let want64: Vec<f64> = want.iter().map(|&v| v as f64).collect();
                assert_close_scaled(&got, &want64, &scale, &format!("{op:?} over {axes:?}"));
            }
        }
    }
    // a strided view: sum over the transposed view's axis 0
    let lt = Layout { shape: vec![5, 600], strides: vec![1, 5], offset: 0 };
    let got = download(&reduce(&gx, &lt, &[1], Reduce::Max).unwrap()).unwrap();
    let want = cpu(&x, &[600, 5]).t().unwrap().max(Some(&[1]), false).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(got, want);
}

#[test]
fn softmax_logsoftmax_logsumexp_match_cpu() {
    let Some(_turn) = gpu() else { return };
    let shape = [4usize, 300, 3];
    let x = rand_vec(3600, 12, -20.0, 20.0);
    let gx = upload(&x).unwrap();
    let t = cpu(&x, &shape);
    let l = Layout::contiguous(&shape);
    for axis in 0..3 {
        let got = download(&softmax(&gx, &l, axis, SoftmaxMode::Softmax).unwrap()).unwrap();
        assert_close(&got, &t.softmax(axis as isize).unwrap().to_vec::<f32>().unwrap(), &format!("softmax axis {axis}"));
        // log-softmax is x − lse: near 0 it cancels, so its error is relative to |x| + |lse|
        let got = download(&softmax(&gx, &l, axis, SoftmaxMode::LogSoftmax).unwrap()).unwrap();
        let want = t.logsoftmax(axis as isize).unwrap().to_vec::<f32>().unwrap();
        let want64: Vec<f64> = want.iter().map(|&v| v as f64).collect();
        let scale: Vec<f64> = (0..x.len()).map(|i| x[i].abs() as f64 + (x[i] - want[i]).abs() as f64).collect();
        assert_close_scaled(&got, &want64, &scale, &format!("logsoftmax axis {axis}"));
        // logsumexp = m + log Σ exp(x − m) (m the row's max), against f64, within 1e-5 of
        // |m| + |log Σ| (the two terms cancel where the row's values are near 0)
        let got = download(&softmax(&gx, &l, axis, SoftmaxMode::LogSumExp).unwrap()).unwrap();
        let t64 = t.cast(crate::DType::F64).unwrap();
        let d = [axis as isize];
        let lse = t64.sub(&t64.logsoftmax(axis as isize).unwrap()).unwrap().max(Some(&d), false).unwrap().to_vec_f64().unwrap();
        let m = t64.max(Some(&d), false).unwrap().to_vec_f64().unwrap();
        let scale: Vec<f64> = lse.iter().zip(&m).map(|(l, m)| m.abs() + (l - m).abs()).collect();
        assert_close_scaled(&got, &lse, &scale, &format!("logsumexp axis {axis}"));
    }
}

fn matmul_ref(a: &[f32], la: MatLayout, b: &[f32], lb: MatLayout, batch: usize) -> (Vec<f64>, Vec<f64>) {
    let (m, n, k) = (la.rows, lb.cols, la.cols);
    let (mut c, mut s) = (vec![0.0; batch * m * n], vec![0.0; batch * m * n]);
    for bt in 0..batch {
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let x = a[la.offset + bt * la.batch_stride + i * la.row_stride + p * la.col_stride] as f64;
                    let y = b[lb.offset + bt * lb.batch_stride + p * lb.row_stride + j * lb.col_stride] as f64;
                    c[(bt * m + i) * n + j] += x * y;
                    s[(bt * m + i) * n + j] += (x * y).abs();
                }
            }
        }
    }
    (c, s)
}

#[test]
fn matmul_tiles_match_cpu_with_transposes_and_batches() {
    let Some(_turn) = gpu() else { return };
    // sizes around the 64×64 tile and the 16-wide k slice, to hit every edge
    for &(m, n, k, batch) in &[(1, 1, 1, 1), (7, 5, 3, 2), (64, 64, 16, 1), (65, 130, 33, 3), (100, 70, 200, 1)] {
        let a = rand_vec(batch * m * k, 13, -1.0, 1.0);
        let b = rand_vec(batch * k * n, 14, -1.0, 1.0);
        let (ga, gb) = (upload(&a).unwrap(), upload(&b).unwrap());
        let (la, lb) = (MatLayout::contiguous(m, k), MatLayout::contiguous(k, n));
        let got = download(&matmul(&ga, la, &gb, lb, batch).unwrap()).unwrap();
        let (want, scale) = matmul_ref(&a, la, &b, lb, batch);
        assert_close_scaled(&got, &want, &scale, &format!("{m}x{k} @ {k}x{n} x{batch}"));
        // the same products with A stored transposed ([k, m]) and B shared by every batch
        let lat = MatLayout::contiguous(k, m).t();
        let lb0 = MatLayout { batch_stride: 0, ..lb };
        let got = download(&matmul(&ga, lat, &gb, lb0, batch).unwrap()).unwrap();
        let (want, scale) = matmul_ref(&a, lat, &b, lb0, batch);
        assert_close_scaled(&got, &want, &scale, &format!("{m}x{k}ᵀ @ {k}x{n} shared x{batch}"));
    }
    // and against the CPU matmul itself
    let a = rand_vec(12 * 40, 15, -1.0, 1.0);
    let b = rand_vec(40 * 9, 16, -1.0, 1.0);
    let got = download(&matmul(&upload(&a).unwrap(), MatLayout::contiguous(12, 40), &upload(&b).unwrap(), MatLayout::contiguous(40, 9), 1).unwrap()).unwrap();
    let want = cpu(&a, &[12, 40]).matmul(&cpu(&b, &[40, 9])).unwrap().to_vec::<f32>().unwrap();
    let (_, scale) = matmul_ref(&a, MatLayout::contiguous(12, 40), &b, MatLayout::contiguous(40, 9), 1);
    assert_close_scaled(&got, &want.iter().map(|&v| v as f64).collect::<Vec<_>>(), &scale, "vs CPU matmul");
    let err = matmul(&upload(&a).unwrap(), MatLayout::contiguous(12, 40), &upload(&b).unwrap(), MatLayout::contiguous(9, 40), 1).unwrap_err();
    assert!(err.to_string().contains("matmul"), "{err}");
}

#[test]
fn index_select_and_scatter_add_match_cpu() {
    let Some(_turn) = gpu() else { return };
    let x = rand_vec(4 * 5 * 3, 17, -1.0, 1.0);
    let gx = upload(&x).unwrap();
    let l = Layout::contiguous(&[4, 5, 3]);
    let t = cpu(&x, &[4, 5, 3]);
    let idx = [4usize, 0, 0, 2, 4, 4, 1];
    for axis in 0..3 {
        let ok: Vec<usize> = idx.iter().map(|&i| i % l.shape[axis]).collect();
        let got = download(&index_select(&gx, &l, axis, &ok).unwrap()).unwrap();
        assert_eq!(got, t.index_select(axis as isize, &ok).unwrap().to_vec::<f32>().unwrap(), "index_select axis {axis}");
    }
    // scatter_add along axis 0 of a [7, 3] source into 5 rows, against the CPU's
    let src = rand_vec(21, 18, -1.0, 1.0);
    let got = download(&scatter_add(&upload(&src).unwrap(), &Layout::contiguous(&[7, 3]), 0, &idx, 5).unwrap()).unwrap();
    let want = crate::tensor::gather::scatter_add(&cpu(&src, &[7, 3]), &idx, &[7], 5).unwrap().to_vec::<f32>().unwrap();
    assert_close(&got, &want, "scatter_add");
    // along a middle axis: [2, 7, 3] into [2, 5, 3]
    let src = rand_vec(42, 19, -1.0, 1.0);
    let got = download(&scatter_add(&upload(&src).unwrap(), &Layout::contiguous(&[2, 7, 3]), 1, &idx, 5).unwrap()).unwrap();
    let mut want = vec![0.0f32; 30];
    for o in 0..2 {
        for (j, &r) in idx.iter().enumerate() {
            for i in 0..3 {
                want[(o * 5 + r) * 3 + i] += src[(o * 7 + j) * 3 + i];
            }
        }
    }
    assert_close(&got, &want, "scatter_add axis 1");
    let err = index_select(&gx, &l, 0, &[4, 9]).unwrap_err();
    assert!(err.to_string().contains("out of bounds"), "{err}");
}

#[test]
fn steady_steps_create_no_new_buffers_and_no_new_pipelines() {
    let Some(_turn) = gpu() else { return };
    // an MLP-like step: matmul, bias add, relu, a reduction and a download of the loss
    let x = rand_vec(32 * 20, 20, -1.0, 1.0);
    let w = rand_vec(20 * 16, 21, -1.0, 1.0);
    let bias = rand_vec(16, 22, -1.0, 1.0);
    let step = || {
        let (gx, gw, gb) = (upload(&x).unwrap(), upload(&w).unwrap(), upload(&bias).unwrap());
        let h = matmul(&gx, MatLayout::contiguous(32, 20), &gw, MatLayout::contiguous(20, 16), 1).unwrap();
        let (z, _) = ew::binary(&h, &Layout::contiguous(&[32, 16]), &gb, &Layout::contiguous(&[16]), BinaryOp::Add).unwrap();
        let a = ew::unary(&z, &Layout::contiguous(&[32, 16]), UnaryOp::Relu).unwrap();
        let s = reduce(&a, &Layout::contiguous(&[32, 16]), &[0, 1], Reduce::Mean).unwrap();
        download(&s).unwrap()[0]
    };
    let first = step();
    let (created, compiled) = (pool::created_on_this_thread(), super::kernel::pipelines_compiled_on_this_thread());
    let reused = pool::stats().reused;
    for _ in 0..5 {
        assert_eq!(step(), first, "the same step gives the same loss");
    }
    assert_eq!(pool::created_on_this_thread(), created, "steady steps created GPU buffers");
    assert_eq!(super::kernel::pipelines_compiled_on_this_thread(), compiled, "steady steps compiled pipelines");
    // 3 uploads, 4 results and a read-back buffer a step (parameters go in the batch's arena)
    assert!(pool::stats().reused >= reused + 5 * 8, "{:?}", pool::stats());
    // a size never asked for before is a new buffer
    let _big = GpuBuffer::new(3_000_001).unwrap();
    assert_eq!(pool::created_on_this_thread(), created + 1);
}

#[test]
fn mlp_forward_and_backward_on_the_gpu_match_the_cpu() {
    use crate::autodiff::value_and_grad;
    use crate::nn::dense::linear;
    use crate::nn::losses::{logitcrossentropy, Agg};
    use crate::nn::Activation;
    use crate::Device;
    let Some(_turn) = gpu() else { return };
    // Dense(12 => 20, relu) → Dense(20 => 5) → logitcrossentropy on a batch of 16
    let (bn, ni, nh, no) = (16, 12, 20, 5);
    let x = cpu(&rand_vec(bn * ni, 30, -1.0, 1.0), &[bn, ni]);
    let w1 = cpu(&rand_vec(nh * ni, 31, -0.5, 0.5), &[nh, ni]);
    let b1 = cpu(&rand_vec(nh, 32, -0.1, 0.1), &[nh]);
    let w2 = cpu(&rand_vec(no * nh, 33, -0.5, 0.5), &[no, nh]);
    let b2 = cpu(&rand_vec(no, 34, -0.1, 0.1), &[no]);
    let y: Vec<f32> = (0..bn * no).map(|i| if i % no == (i / no) % no { 1.0 } else { 0.0 }).collect();
    let y = cpu(&y, &[bn, no]);
    let run = |dev: Device| {
        let on = |t: &Tensor| t.to_device(dev).unwrap();
        let (x, w1, b1, w2, b2, y) = (on(&x), on(&w1), on(&b1), on(&w2), on(&b2), on(&y));
        let (loss, grads) = value_and_grad(&[&w1, &b1, &w2, &b2], || {
            let h = linear(&x, &w1, Some(&b1), Activation::Relu)?;
            let z = linear(&h, &w2, Some(&b2), Activation::Identity)?;
            logitcrossentropy(&z, &y, -1, Agg::Mean)
        })
        .unwrap();
        assert_eq!(loss.device(), dev);
        let grads: Vec<Vec<f32>> = grads.into_iter().map(|g| {
            let g = g.expect("every parameter gets a gradient");
            assert_eq!(g.device(), dev, "the gradient stays on the parameter's device");
            g.to_device(Device::Cpu).unwrap().to_vec::<f32>().unwrap()
        }).collect();
        (loss.to_device(Device::Cpu).unwrap().to_vec::<f32>().unwrap(), grads)
    };
    let (lc, gc) = run(Device::Cpu);
    let (lg, gg) = run(Device::Wgpu);
    assert_close(&lg, &lc, "loss");
    for (i, (g, c)) in gg.iter().zip(&gc).enumerate() {
        // gradients are sums over the batch: compared within 1e-5 of their largest entry
        let scale = c.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        assert_close_scaled(g, &c.iter().map(|&v| v as f64).collect::<Vec<_>>(), &vec![scale; c.len()], &format!("gradient {i}"));
    }
}

/// A chain of `n` elementwise ops and a matmul every 50, from `x` ([16, 16]).
fn chain(x: &[f32], n: usize) -> Vec<f32> {
    let l = Layout::contiguous(&[16, 16]);
    let mut a = upload(x).unwrap();
    for i in 0..n {
        a = match i % 4 {
            0 => ew::unary(&a, &l, UnaryOp::Tanh).unwrap(),
            1 => ew::scalar(&a, &l, ScalarOp::Affine(1.5, 0.25)).unwrap(),
            2 => ew::binary(&a, &l, &a, &Layout { shape: vec![16, 16], strides: vec![1, 16], offset: 0 }, BinaryOp::Mul).unwrap().0,
            _ if i % 50 == 3 => matmul(&a, MatLayout::contiguous(16, 16), &a, MatLayout::contiguous(16, 16), 1).unwrap(),
            _ => ew::unary(&a, &l, UnaryOp::Sigmoid).unwrap(),
        };
    }
    download(&a).unwrap()
}

#[test]
fn batched_kernels_give_the_unbatched_results_bit_for_bit() {
    let Some(_turn) = gpu() else { return };
    let x = rand_vec(256, 40, -1.0, 1.0);
    // 600 ops: more than one batch's worth of dispatches, and buffers dropped and
    // reused throughout while their batch is pending
    let s0 = super::batch::submits();
    let batched = chain(&x, 600);
    let batched_submits = super::batch::submits() - s0;
    super::batch::set_unbatched(true);
    let s1 = super::batch::submits();
    let unbatched = chain(&x, 600);
    let unbatched_submits = super::batch::submits() - s1;
    super::batch::set_unbatched(false);
    assert_eq!(batched, unbatched);
    assert!(unbatched_submits >= 600, "one submit per kernel unbatched: {unbatched_submits}");
    assert!(batched_submits <= 600usize.div_ceil(super::batch::MAX_DISPATCHES as usize) as u64 + 2, "{batched_submits} submits batched");
    // and the chain computes what the CPU computes (a shorter one: f32 drift grows with length)
    let t = cpu(&x, &[16, 16]);
    let mut c = t.clone();
    for i in 0..7 {
        c = match i % 4 {
            0 => c.tanh().unwrap(),
            1 => c.mul_scalar(1.5).unwrap().add_scalar(0.25).unwrap(),
            2 => c.mul(&c.t().unwrap()).unwrap(),
            _ if i % 50 == 3 => c.matmul(&c).unwrap(),
            _ => c.sigmoid().unwrap(),
        };
    }
    assert_close_scaled(
        &chain(&x, 7),
        &c.to_vec::<f32>().unwrap().iter().map(|&v| v as f64).collect::<Vec<_>>(),
        &vec![16.0; 256],
        "a short chain vs the CPU",
    );
}

#[test]
fn a_buffer_dropped_while_its_reader_is_pending_is_not_overwritten_early() {
    let Some(_turn) = gpu() else { return };
    let l = Layout::contiguous(&[1000]);
    let (a, b) = (rand_vec(1000, 50, -1.0, 1.0), rand_vec(1000, 51, -1.0, 1.0));
    let ga = upload(&a).unwrap();
    let neg = ew::scalar(&ga, &l, ScalarOp::Affine(-1.0, 0.0)).unwrap();
    assert!(super::batch::pending(), "the kernel waits in the batch");
    // the reader of `ga` has not run yet; without holding `ga` back, the pool would hand
    // it to this upload, whose write lands before the pending kernel reads it
    drop(ga);
    let gb = upload(&b).unwrap();
    let sum = ew::binary(&neg, &l, &gb, &l, BinaryOp::Add).unwrap().0;
    let want: Vec<f32> = a.iter().zip(&b).map(|(a, b)| -a + b).collect();
    assert_eq!(download(&sum).unwrap(), want);
    assert_eq!(download(&neg).unwrap(), a.iter().map(|v| -v).collect::<Vec<_>>());
    // a write into a live buffer with a pending reader: the reader sees the old values
    let gc = upload(&a).unwrap();
    let twice = ew::scalar(&gc, &l, ScalarOp::Affine(2.0, 0.0)).unwrap();
    super::transfer::write(&gc, 0, bytemuck::cast_slice(&b)).unwrap();
    assert_eq!(download(&twice).unwrap(), a.iter().map(|v| 2.0 * v).collect::<Vec<_>>());
    assert_eq!(download(&gc).unwrap(), b);
}

#[test]
fn a_training_loop_submits_a_few_command_buffers_a_step_and_matches_the_cpu() {
    use crate::autodiff::value_and_grad;
    use crate::nn::dense::linear;
    use crate::nn::losses::{logitcrossentropy, Agg};
    use crate::nn::Activation;
    use crate::optim::{Adam, Leaf};
    use crate::Device;
    let Some(_turn) = gpu() else { return };
    let (bn, ni, nh, no) = (16, 12, 20, 5);
    let x = cpu(&rand_vec(bn * ni, 60, -1.0, 1.0), &[bn, ni]);
    let init = [
        cpu(&rand_vec(nh * ni, 61, -0.5, 0.5), &[nh, ni]),
        cpu(&rand_vec(nh, 62, -0.1, 0.1), &[nh]),
        cpu(&rand_vec(no * nh, 63, -0.5, 0.5), &[no, nh]),
        cpu(&rand_vec(no, 64, -0.1, 0.1), &[no]),
    ];
    let y: Vec<f32> = (0..bn * no).map(|i| if i % no == (i / no) % no { 1.0 } else { 0.0 }).collect();
    let y = cpu(&y, &[bn, no]);
    let rule = Adam::new(0.01, (0.9, 0.999), 1e-8).unwrap();
    // 4 steps; the loss of each (read back: the one download a step) and the final parameters
    let train = |dev: Device| -> (Vec<f32>, Vec<Vec<f32>>, Vec<u64>) {
        let on = |t: &Tensor| t.to_device(dev).unwrap().detach();
        let (x, y) = (on(&x), on(&y));
        let mut ps: Vec<Tensor> = init.iter().map(on).collect();
        let mut leaves: Vec<Leaf> = ps.iter().map(|p| Leaf::new(Box::new(rule.clone()), p).unwrap()).collect();
        let (mut losses, mut submits) = (vec![], vec![]);
        for _ in 0..4 {
            let s0 = super::batch::submits();
            let refs: Vec<&Tensor> = ps.iter().collect();
            let (loss, grads) = value_and_grad(&refs, || {
                let h = linear(&x, &ps[0], Some(&ps[1]), Activation::Relu)?;
                let z = linear(&h, &ps[2], Some(&ps[3]), Activation::Identity)?;
                logitcrossentropy(&z, &y, -1, Agg::Mean)
            })
            .unwrap();
            for ((p, l), g) in ps.iter_mut().zip(&mut leaves).zip(&grads) {
                l.step(p, g.as_ref().unwrap()).unwrap();
            }
            losses.push(loss.to_device(Device::Cpu).unwrap().to_vec::<f32>().unwrap()[0]);
            submits.push(super::batch::submits() - s0);
        }
        let ps = ps.iter().map(|p| p.to_device(Device::Cpu).unwrap().to_vec::<f32>().unwrap()).collect();
        (losses, ps, submits)
    };
    let (lc, pc, _) = train(Device::Cpu);
    let d0 = super::batch::dispatches();
    let (lg, pg, submits) = train(Device::Wgpu);
    let dispatches = super::batch::dispatches() - d0;
    assert_close(&lg, &lc, "losses");
    for (i, (g, c)) in pg.iter().zip(&pc).enumerate() {
        let scale = c.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        assert_close_scaled(g, &c.iter().map(|&v| v as f64).collect::<Vec<_>>(), &vec![scale * 10.0; c.len()], &format!("parameter {i}"));
    }
    eprintln!("a training step: {submits:?} submits, {} dispatches", dispatches / 4);
    assert!(dispatches / 4 > 10, "the step runs its kernels on the GPU: {dispatches} dispatches");
    // the steady steps: the loss's read-back submits the step's kernels, and the
    // optimiser's kernels wait for the next step's read-back
    for &s in &submits[1..] {
        assert!(s <= 2, "submits a step: {submits:?}");
    }
}

#[test]
fn float16_storage_rounds_like_the_cpu_or_says_the_adapter_cannot() {
    use super::half::{f16_supported, round_f16, to_f16, to_f32};
    let Some(_turn) = gpu() else { return };
    let x: Vec<f32> = vec![0.0, -0.0, 1.0, 0.1, -1.0 / 3.0, 2.5e-6, 1e-7, 65504.0, 1000.7, -12.3456, 3.14159, 7e-5];
    let gx = upload(&x).unwrap();
    if !gpu_info().unwrap().shader_f16 {
        let e = to_f16(&gx, x.len()).unwrap_err().to_string();
        assert!(e.contains("shader-f16") && e.contains(&gpu_info().unwrap().name), "{e}");
        assert!(f16_supported().is_err());
        return;
    }
    let h = to_f16(&gx, x.len()).unwrap();
    assert_eq!(h.buffer().len(), x.len().div_ceil(2), "two f16 to a word");
    let back = download(&to_f32(&h).unwrap()).unwrap();
    let out = GpuBuffer::new(x.len()).unwrap();
    round_f16(&gx, &out, x.len()).unwrap();
    let rounded = download(&out).unwrap();
    for (i, &v) in x.iter().enumerate() {
        let r = back[i];
        let rte = half::f16::from_f32(v).to_f32();
        // WGSL lets a conversion take either neighbouring f16: a representable value
        // within one f16 step of v (lavapipe rounds to nearest even: r == rte)
        let step = if v.abs() < 6.1e-5 { 2f32.powi(-24) } else { 2f32.powi(v.abs().log2().floor() as i32 - 10) };
        assert_eq!(half::f16::from_f32(r).to_f32(), r, "element {i}: {r} is not a float16 value");
        assert!(r == rte || (r - v).abs() <= step, "element {i}: {v} became {r} (nearest even {rte})");
        assert_eq!(rounded[i].to_bits(), r.to_bits(), "element {i}: round_f16 and to_f16 → to_f32 agree");
    }
    assert_ne!(back[3], 0.1, "0.1 is not a float16 value: the round trip loses bits");
}
