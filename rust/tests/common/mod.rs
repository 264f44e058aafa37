//! Shared helpers for the integration tests: a tiny independent n-d reference (plain
//! loops over `Vec<f64>`), tolerant comparison, a deterministic generator and a
//! central-difference gradient checker.
#![allow(dead_code)]

use flux_core::{autodiff, DType, Result, Tensor};

// ---- construction and comparison ---------------------------------------------------

/// A contiguous f64 tensor.
pub fn t64(data: Vec<f64>, shape: &[usize]) -> Tensor { Tensor::from_vec(data, shape).unwrap() }

/// A contiguous f32 tensor from f64 values.
pub fn t32(data: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(data.iter().map(|&v| v as f32).collect::<Vec<f32>>(), shape).unwrap()
}

pub fn vals(t: &Tensor) -> Vec<f64> { t.to_vec_f64().unwrap() }

pub fn close(a: f64, b: f64, rtol: f64, atol: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= atol + rtol * a.abs().max(b.abs())
}

#[track_caller]
pub fn assert_close(got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "length differs: got {got:?}, want {want:?}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(close(g, w, rtol, atol), "element {i}: got {g}, want {w}\n got  {got:?}\n want {want:?}");
    }
}

/// Shape and values of `t` against a reference array.
#[track_caller]
pub fn assert_nd(t: &Tensor, want: &Nd, rtol: f64, atol: f64) {
    assert_eq!(t.shape(), want.shape.as_slice(), "shape");
    assert_close(&vals(t), &want.data, rtol, atol);
}

/// A small deterministic generator (SplitMix64), independent of the crate's Rng.
pub struct Gen(u64);
impl Gen {
    pub fn new(seed: u64) -> Gen { Gen(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03) }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 { lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) }
    pub fn below(&mut self, n: usize) -> usize { (self.next_u64() % n as u64) as usize }
    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> { (0..n).map(|_| self.uniform(lo, hi)).collect() }
    /// A reference array of `shape` with uniform values in [lo, hi).
    pub fn nd(&mut self, shape: &[usize], lo: f64, hi: f64) -> Nd { Nd::new(shape, self.vec(shape.iter().product(), lo, hi)) }
    /// Values in [lo, hi) kept at least `gap` away from each other's neighbours is too
    /// fiddly; instead distinct values: a shuffled grid (no ties for max/min tests).
    pub fn distinct(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        let mut v: Vec<f64> = (0..n).map(|i| lo + (hi - lo) * (i as f64 + 0.5) / n as f64).collect();
        for i in (1..n).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
        v
    }
}

// ---- the reference n-d array ------------------------------------------------------------

/// A row-major n-d array of f64, the independent reference for every op.
#[derive(Clone, Debug, PartialEq)]
pub struct Nd {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

pub fn numel(shape: &[usize]) -> usize { shape.iter().product() }

/// Multi-index of the `k`-th element (row-major).
pub fn unravel(mut k: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = k % shape[d];
        k /= shape[d];
    }
    idx
}

/// Flat position of a multi-index (row-major).
pub fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    let mut k = 0;
    for d in 0..shape.len() {
        assert!(idx[d] < shape[d]);
        k = k * shape[d] + idx[d];
    }
    k
}

/// numpy's broadcast of two shapes, or None.
pub fn ref_broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let pa: Vec<usize> = std::iter::repeat(1).take(n - a.len()).chain(a.iter().copied()).collect();
    let pb: Vec<usize> = std::iter::repeat(1).take(n - b.len()).chain(b.iter().copied()).collect();
    pa.iter()
        .zip(&pb)
        .map(|(&x, &y)| if x == y { Some(x) } else if x == 1 { Some(y) } else if y == 1 { Some(x) } else { None })
        .collect()
}

impl Nd {
    pub fn new(shape: &[usize], data: Vec<f64>) -> Nd {
        assert_eq!(numel(shape), data.len());
        Nd { shape: shape.to_vec(), data }
    }
    pub fn tensor(&self) -> Tensor { t64(self.data.clone(), &self.shape) }
    pub fn tensor32(&self) -> Tensor { t32(&self.data, &self.shape) }
    pub fn at(&self, idx: &[usize]) -> f64 { self.data[ravel(idx, &self.shape)] }
    pub fn map(&self, f: impl Fn(f64) -> f64) -> Nd { Nd::new(&self.shape, self.data.iter().map(|&v| f(v)).collect()) }

    /// The value seen at out-index `idx` of a broadcast to a shape of rank `idx.len()`.
    pub fn at_broadcast(&self, idx: &[usize]) -> f64 {
        let lead = idx.len() - self.shape.len();
        let mine: Vec<usize> = (0..self.shape.len()).map(|d| if self.shape[d] == 1 { 0 } else { idx[lead + d] }).collect();
        self.at(&mine)
    }
    pub fn broadcast_to(&self, shape: &[usize]) -> Nd {
        let data = (0..numel(shape)).map(|k| self.at_broadcast(&unravel(k, shape))).collect();
        Nd::new(shape, data)
    }
    pub fn zip(&self, o: &Nd, f: impl Fn(f64, f64) -> f64) -> Nd {
        let shape = ref_broadcast_shape(&self.shape, &o.shape).expect("broadcastable");
        let data = (0..numel(&shape))
            .map(|k| {
                let i = unravel(k, &shape);
                f(self.at_broadcast(&i), o.at_broadcast(&i))
            })
            .collect();
        Nd::new(&shape, data)
    }
    /// Reduce over `dims` (sorted, unique) with a fold.
    pub fn reduce(&self, dims: &[usize], keepdims: bool, init: f64, f: impl Fn(f64, f64) -> f64) -> Nd {
        let kshape: Vec<usize> = self.shape.iter().enumerate().map(|(d, &s)| if dims.contains(&d) { 1 } else { s }).collect();
        let mut out = vec![init; numel(&kshape)];
        for k in 0..self.data.len() {
            let mut i = unravel(k, &self.shape);
            for &d in dims {
                i[d] = 0;
            }
            let o = ravel(&i, &kshape);
            out[o] = f(out[o], self.data[k]);
        }
        let shape: Vec<usize> = if keepdims {
            kshape
        } else {
            self.shape.iter().enumerate().filter(|(d, _)| !dims.contains(d)).map(|(_, &s)| s).collect()
        };
        Nd::new(&shape, out)
    }
    pub fn permute(&self, perm: &[usize]) -> Nd {
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let data = (0..numel(&shape))
            .map(|k| {
                let o = unravel(k, &shape);
                let mut i = vec![0; perm.len()];
                for (d, &p) in perm.iter().enumerate() {
                    i[p] = o[d];
                }
                self.at(&i)
            })
            .collect();
        Nd::new(&shape, data)
    }
    /// (start, len, step) per dimension.
    pub fn slice(&self, sl: &[(usize, usize, usize)]) -> Nd {
        let shape: Vec<usize> = sl.iter().map(|s| s.1).collect();
        let data = (0..numel(&shape))
            .map(|k| {
                let o = unravel(k, &shape);
                let i: Vec<usize> = o.iter().zip(sl).map(|(&j, s)| s.0 + j * s.2).collect();
                self.at(&i)
            })
            .collect();
        Nd::new(&shape, data)
    }
    pub fn index_select(&self, axis: usize, idx: &[usize]) -> Nd {
        let mut shape = self.shape.clone();
        shape[axis] = idx.len();
        let data = (0..numel(&shape))
            .map(|k| {
                let mut i = unravel(k, &shape);
                i[axis] = idx[i[axis]];
                self.at(&i)
            })
            .collect();
        Nd::new(&shape, data)
    }
}

pub fn ref_concat(parts: &[&Nd], axis: usize) -> Nd {
    let mut shape = parts[0].shape.clone();
    shape[axis] = parts.iter().map(|p| p.shape[axis]).sum();
    let data = (0..numel(&shape))
        .map(|k| {
            let mut i = unravel(k, &shape);
            let mut p = 0;
            while i[axis] >= parts[p].shape[axis] {
                i[axis] -= parts[p].shape[axis];
                p += 1;
            }
            parts[p].at(&i)
        })
        .collect();
    Nd::new(&shape, data)
}

/// numpy matmul on reference arrays (1-D promotion and batch broadcasting).
pub fn ref_matmul(a: &Nd, b: &Nd) -> Nd {
    let (a2, a1d) = if a.shape.len() == 1 { (Nd::new(&[1, a.shape[0]], a.data.clone()), true) } else { (a.clone(), false) };
    let (b2, b1d) = if b.shape.len() == 1 { (Nd::new(&[b.shape[0], 1], b.data.clone()), true) } else { (b.clone(), false) };
    let (ra, rb) = (a2.shape.len(), b2.shape.len());
    let (m, k) = (a2.shape[ra - 2], a2.shape[ra - 1]);
    let (k2, n) = (b2.shape[rb - 2], b2.shape[rb - 1]);
    assert_eq!(k, k2);
    let batch = ref_broadcast_shape(&a2.shape[..ra - 2], &b2.shape[..rb - 2]).unwrap();
    let mut shape = batch.clone();
    shape.extend([m, n]);
    let mut data = vec![0.0; numel(&shape)];
    for bi in 0..numel(&batch) {
        let bidx = unravel(bi, &batch);
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    let mut ia = bidx.clone();
                    ia.extend([i, p]);
                    let mut ib = bidx.clone();
                    ib.extend([p, j]);
                    s += a2.at_broadcast(&ia) * b2.at_broadcast(&ib);
                }
                data[(bi * m + i) * n + j] = s;
            }
        }
    }
    let mut out_shape = shape.clone();
    if b1d {
        out_shape.pop();
    }
    if a1d {
        let at = out_shape.len() - if b1d { 1 } else { 2 };
        out_shape.remove(at);
    }
    Nd::new(&out_shape, data)
}

/// Softmax (or logsoftmax) along `dim`, the naive way in f64 with a max shift.
pub fn ref_softmax(x: &Nd, dim: usize, log: bool) -> Nd {
    let mut out = vec![0.0; x.data.len()];
    let n = x.shape[dim];
    for k in 0..x.data.len() {
        let idx = unravel(k, &x.shape);
        let mut row = Vec::with_capacity(n);
        for j in 0..n {
            let mut i = idx.clone();
            i[dim] = j;
            row.push(x.at(&i));
        }
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
        out[k] = if log { x.data[k] - m - s.ln() } else { (x.data[k] - m).exp() / s };
    }
    Nd::new(&x.shape, out)
}

// ---- gradient checking -------------------------------------------------------------------

pub const FD_EPS: f64 = 1e-6;

/// A fixed, non-trivial weighting for turning any output into a scalar loss, so every
/// output element's gradient is checked separately (a plain sum would hide mix-ups).
pub fn weights_for(shape: &[usize], seed: u64) -> Tensor {
    let mut g = Gen::new(seed ^ 0xA5A5);
    t64(g.vec(numel(shape), -1.5, 1.5), shape)
}

/// Check d(sum(w ⊙ f(xs)))/dxs from the tape against central differences, for every
/// element of every input (f64). `f` must build its output from the given tensors.
#[track_caller]
pub fn gradcheck(xs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    gradcheck_tol(xs, 1e-6, 1e-6, f)
}

#[track_caller]
pub fn gradcheck_tol(xs: &[Tensor], rtol: f64, atol: f64, f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    for x in xs {
        assert_eq!(x.dtype(), DType::F64, "gradcheck works in f64");
    }
    let probe = f(xs).expect("forward");
    let w = weights_for(probe.shape(), probe.numel() as u64);
    let loss_of = |ts: &[Tensor]| -> f64 {
        let y = f(ts).expect("forward");
        y.mul(&w).unwrap().sum_all().unwrap().item().unwrap()
    };
    let refs: Vec<&Tensor> = xs.iter().collect();
    let (loss, grads) = autodiff::value_and_grad(&refs, || f(xs)?.mul(&w)?.sum_all()).expect("value_and_grad");
    let l0 = loss_of(xs);
    assert!(close(loss.item().unwrap(), l0, 1e-12, 1e-12), "loss on the tape {} differs from the plain forward {l0}", loss.item().unwrap());
    for (xi, x) in xs.iter().enumerate() {
        let g = grads[xi].as_ref().unwrap_or_else(|| panic!("input {xi} got no gradient"));
        assert_eq!(g.shape(), x.shape(), "gradient of input {xi} has the wrong shape");
        let analytic = vals(g);
        let base = vals(x);
        for k in 0..base.len() {
            let at = |delta: f64| {
                let mut v = base.clone();
                v[k] += delta;
                let mut ts: Vec<Tensor> = xs.to_vec();
                ts[xi] = t64(v, x.shape());
                loss_of(&ts)
            };
            let num = (at(FD_EPS) - at(-FD_EPS)) / (2.0 * FD_EPS);
            assert!(
                close(analytic[k], num, rtol, atol),
                "input {xi} (shape {:?}) element {k} (index {:?}): tape gradient {} vs finite difference {num}",
                x.shape(),
                unravel(k, x.shape()),
                analytic[k]
            );
        }
    }
}
