//! Weight initialisers for PyTorch-layout shapes.
use crate::error::{value_err, Result};
use crate::tensor::random::Rng;
use crate::tensor::{DType, Tensor};

/// (fan_in, fan_out): vector (n,) → (1, n); matrix (out, in) → (in, out);
/// conv kernel (out, in, k...) → (in·∏k, out·∏k).
///
/// ```
/// use flux_core::nn::init::fans;
/// assert_eq!(fans(&[16, 8]), (8.0, 16.0));           // Dense (out, in)
/// assert_eq!(fans(&[6, 3, 5, 5]), (75.0, 150.0));    // Conv (out, in, k, k)
/// ```
pub fn fans(shape: &[usize]) -> (f64, f64) {
    match shape.len() {
        0 => (1.0, 1.0),
        1 => (1.0, shape[0] as f64),
        2 => (shape[1] as f64, shape[0] as f64),
        _ => {
            let k: usize = shape[2..].iter().product();
            ((shape[1] * k) as f64, (shape[0] * k) as f64)
        }
    }
}

/// U(−a, a) with a = gain·√(6/(fan_in + fan_out)).
///
/// ```
/// use flux_core::{nn::init::glorot_uniform, tensor::random::Rng, DType};
/// let w = glorot_uniform(&[30, 20], 1.0, DType::F64, &mut Rng::seed(0));
/// let a = (6.0f64 / 50.0).sqrt();
/// assert!(w.to_vec_f64().unwrap().iter().all(|v| v.abs() <= a));
/// ```
pub fn glorot_uniform(shape: &[usize], gain: f64, dtype: DType, rng: &mut Rng) -> Tensor {
    let (i, o) = fans(shape);
    let a = gain * (6.0 / (i + o)).sqrt();
    rng.uniform_tensor(shape, -a, a, dtype)
}
/// N(0, σ) with σ = gain·√(2/(fan_in + fan_out)).
///
/// ```
/// use flux_core::{nn::init::glorot_normal, tensor::random::Rng, DType};
/// let w = glorot_normal(&[200, 300], 1.0, DType::F64, &mut Rng::seed(0)).to_vec_f64().unwrap();
/// let sd = (w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64).sqrt();
/// assert!((sd - (2.0f64 / 500.0).sqrt()).abs() < 2e-3);
/// ```
pub fn glorot_normal(shape: &[usize], gain: f64, dtype: DType, rng: &mut Rng) -> Tensor {
    let (i, o) = fans(shape);
    rng.normal_tensor(shape, 0.0, gain * (2.0 / (i + o)).sqrt(), dtype)
}
/// U(−b, b) with b = gain·√(3/fan_in).
///
/// ```
/// use flux_core::{nn::init::kaiming_uniform, tensor::random::Rng, DType};
/// let w = kaiming_uniform(&[8, 3, 3, 3], 2f64.sqrt(), DType::F32, &mut Rng::seed(0));
/// let b = 2f64.sqrt() * (3.0f64 / 27.0).sqrt();  // fan_in = 3·3·3
/// assert!(w.to_vec_f64().unwrap().iter().all(|v| v.abs() <= b));
/// ```
pub fn kaiming_uniform(shape: &[usize], gain: f64, dtype: DType, rng: &mut Rng) -> Tensor {
    let (i, _) = fans(shape);
    let b = gain * (3.0 / i).sqrt();
    rng.uniform_tensor(shape, -b, b, dtype)
}
/// N(0, σ) with σ = gain/√fan_in.
///
/// ```
/// use flux_core::{DType, nn::init::kaiming_normal, tensor::random::Rng};
/// let w = kaiming_normal(&[256, 400], 1.0, DType::F64, &mut Rng::seed(0));
/// let var = w.square().unwrap().mean(None, false).unwrap().item().unwrap();
/// assert!((var - 1.0 / 400.0).abs() < 1e-4); // σ² = gain²/fan_in
/// ```
pub fn kaiming_normal(shape: &[usize], gain: f64, dtype: DType, rng: &mut Rng) -> Tensor {
    let (i, _) = fans(shape);
    rng.normal_tensor(shape, 0.0, gain / i.sqrt(), dtype)
}

/// `erf⁻¹(y)` for y in (−1, 1): Giles' single-precision approximation polished by two
/// Newton steps on libm's `erf`, so it is accurate to f64 rounding.
fn erfinv(y: f64) -> f64 {
    if y <= -1.0 {
        return f64::NEG_INFINITY;
    }
    if y >= 1.0 {
        return f64::INFINITY;
    }
    let w = -((1.0 - y) * (1.0 + y)).ln();
    let mut x = if w < 5.0 {
        let w = w - 2.5;
        let mut p = 2.810_226_36e-08;
        for c in [3.432_739_39e-07, -3.523_387_7e-06, -4.391_506_54e-06, 0.000_218_580_87, -0.001_253_725_03, -0.004_177_681_64, 0.246_640_727, 1.501_409_41] {
            p = c + p * w;
        }
        p * y
    } else {
        let w = w.sqrt() - 3.0;
        let mut p = -0.000_200_214_257;
        for c in [0.000_100_950_558, 0.001_349_343_22, -0.003_673_428_44, 0.005_739_507_73, -0.007_622_461_3, 0.009_438_870_47, 1.001_674_06, 2.832_976_82] {
            p = c + p * w;
        }
        p * y
    };
    for _ in 0..2 {
        let err = libm::erf(x) - y;
        x -= err / (std::f64::consts::FRAC_2_SQRT_PI * (-x * x).exp());
    }
    x
}

fn normcdf(x: f64) -> f64 { 0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)) }

fn from_f64(v: Vec<f64>, shape: &[usize], dtype: DType) -> Result<Tensor> { Tensor::from_vec(v, shape)?.cast(dtype) }

/// N(mean, std) truncated to [lo, hi], by inverse-CDF sampling (as Flux): a uniform draw
/// between Φ((lo−μ)/σ) and Φ((hi−μ)/σ) mapped back through Φ⁻¹, then clamped.
///
/// ```
/// use flux_core::{DType, nn::init::truncated_normal, tensor::random::Rng};
/// let t = truncated_normal(&[1000], 0.0, 1.0, -0.5, 0.5, DType::F32, &mut Rng::seed(0)).unwrap();
/// assert!(t.to_vec_f64().unwrap().iter().all(|v| v.abs() <= 0.5));
/// ```
pub fn truncated_normal(shape: &[usize], mean: f64, std: f64, lo: f64, hi: f64, dtype: DType, rng: &mut Rng) -> Result<Tensor> {
    if !(std > 0.0) || !(lo < hi) {
        return Err(value_err!("truncated_normal needs std > 0 and lo < hi, got std = {std}, lo = {lo}, hi = {hi}"));
    }
    let l = normcdf((lo - mean) / std);
    let u = normcdf((hi - mean) / std);
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|_| {
            let x = rng.uniform() * 2.0 * (u - l) + (2.0 * l - 1.0);
            (erfinv(x) * std * std::f64::consts::SQRT_2 + mean).clamp(lo, hi)
        })
        .collect();
    from_f64(v, shape, dtype)
}

/// Truncated normal with σ = gain·√(1/fan_in), limits ±2 (absolute, as Flux).
///
/// ```
/// use flux_core::{nn::init::lecun_normal, tensor::random::Rng, DType};
/// let w = lecun_normal(&[64, 4], 1.0, DType::F64, &mut Rng::seed(0)).unwrap();
/// assert!(w.to_vec_f64().unwrap().iter().all(|v| v.abs() <= 2.0));
/// ```
pub fn lecun_normal(shape: &[usize], gain: f64, dtype: DType, rng: &mut Rng) -> Result<Tensor> {
    let (i, _) = fans(shape);
    truncated_normal(shape, 0.0, gain * (1.0 / i).sqrt(), -2.0, 2.0, dtype, rng)
}

/// The thin Q (m×n, m ≥ n, row-major) of `a` by Householder reflections, with the sign
/// of each column set so that R's diagonal is positive (the unique QR, as Flux's sign fix).
fn thin_q(mut a: Vec<f64>, m: usize, n: usize) -> Vec<f64> {
    let mut vs: Vec<Vec<f64>> = Vec::with_capacity(n);
    let mut rdiag = vec![0.0; n];
    for k in 0..n {
        let norm = (k..m).map(|i| a[i * n + k] * a[i * n + k]).sum::<f64>().sqrt();
        let alpha = if a[k * n + k] > 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = (k..m).map(|i| a[i * n + k]).collect();
        v[0] -= alpha;
        let vn2: f64 = v.iter().map(|x| x * x).sum();
        if vn2 > 0.0 {
            for j in k..n {
                let s: f64 = v.iter().enumerate().map(|(i, vi)| vi * a[(k + i) * n + j]).sum();
                let f = 2.0 * s / vn2;
                v.iter().enumerate().for_each(|(i, vi)| a[(k + i) * n + j] -= f * vi);
            }
        }
        rdiag[k] = a[k * n + k];
        vs.push(if vn2 > 0.0 { v } else { Vec::new() });
    }
    let mut q = vec![0.0; m * n];
    for i in 0..n {
        q[i * n + i] = 1.0;
    }
    for k in (0..n).rev() {
        let v = &vs[k];
        if v.is_empty() {
            continue;
        }
        let vn2: f64 = v.iter().map(|x| x * x).sum();
        for j in 0..n {
            let s: f64 = v.iter().enumerate().map(|(i, vi)| vi * q[(k + i) * n + j]).sum();
            let f = 2.0 * s / vn2;
            v.iter().enumerate().for_each(|(i, vi)| q[(k + i) * n + j] -= f * vi);
        }
    }
    for j in 0..n {
        if rdiag[j] < 0.0 {
            (0..m).for_each(|i| q[i * n + j] = -q[i * n + j]);
        }
    }
    q
}

/// A (semi-)orthogonal matrix times `gain`: the Q of the QR of a standard normal draw,
/// sign-fixed. Shapes of more than 2 dimensions are flattened to
/// `(shape[0], ∏shape[1..])` (PyTorch's layout: rows are output units), so the rows are
/// orthonormal when `rows ≤ cols` and the columns are otherwise. 1-D is refused.
///
/// ```
/// use flux_core::{DType, nn::init::orthogonal, tensor::random::Rng};
/// let q = orthogonal(&[3, 3], 1.0, DType::F64, &mut Rng::seed(1)).unwrap();
/// let qtq = q.t().unwrap().matmul(&q).unwrap().to_vec_f64().unwrap();
/// assert!((qtq[0] - 1.0).abs() < 1e-12 && qtq[1].abs() < 1e-12);
/// ```
pub fn orthogonal(shape: &[usize], gain: f64, dtype: DType, rng: &mut Rng) -> Result<Tensor> {
    if shape.len() < 2 {
        return Err(value_err!("orthogonal needs at least 2 dimensions, got shape {shape:?}"));
    }
    let rows = shape[0];
    let cols: usize = shape[1..].iter().product();
    let (m, n) = if rows >= cols { (rows, cols) } else { (cols, rows) };
    let a: Vec<f64> = (0..m * n).map(|_| rng.normal()).collect();
    let q = thin_q(a, m, n);
    let v: Vec<f64> = if rows >= cols {
        q.into_iter().map(|x| x * gain).collect()
    } else {
        // the transpose of the tall Q: (n × m) = (rows × cols)
        (0..n).flat_map(|i| (0..m).map(move |j| (i, j))).map(|(i, j)| q[j * n + i] * gain).collect()
    };
    from_f64(v, shape, dtype)
}

/// N(0, std) with `ceil(sparsity·rows)` zeros at random places in each column; 2-D only.
///
/// ```
/// use flux_core::{DType, nn::init::sparse_init, tensor::random::Rng};
/// let w = sparse_init(&[10, 3], 0.5, 0.01, DType::F32, &mut Rng::seed(0)).unwrap();
/// assert_eq!(w.to_vec_f64().unwrap().iter().filter(|&&v| v == 0.0).count(), 15);
/// ```
pub fn sparse_init(shape: &[usize], sparsity: f64, std: f64, dtype: DType, rng: &mut Rng) -> Result<Tensor> {
    if shape.len() != 2 {
        return Err(value_err!("sparse_init supports only 2-dimensional shapes, got {shape:?}"));
    }
    if !(sparsity >= 0.0) {
        return Err(value_err!("sparse_init needs sparsity ≥ 0, got {sparsity}"));
    }
    let (rows, cols) = (shape[0], shape[1]);
    let zeros = ((sparsity.min(1.0) * rows as f64).ceil() as usize).min(rows);
    let mut v = vec![0.0; rows * cols];
    for j in 0..cols {
        let col: Vec<f64> = (0..rows).map(|i| if i < zeros { 0.0 } else { std * rng.normal() }).collect();
        let perm = rng.permutation(rows);
        for (i, &p) in perm.iter().enumerate() {
            v[i * cols + j] = col[p];
        }
    }
    from_f64(v, shape, dtype)
}

/// Identity-like weights: 1-D zeros (a bias); 2-D `gain` on the diagonal; a conv kernel
/// `(out, in, k...)` has `gain` at the centre tap of `w[i, i]`. `shift` circularly
/// shifts the result, its entries naming dimensions in Flux's order (for a kernel: the
/// spatial dimensions first, then `in`, then `out`; for a matrix: rows, then columns).
///
/// ```
/// use flux_core::{DType, nn::init::identity_init};
/// let w = identity_init(&[2, 3], 2.0, &[], DType::F32).unwrap();
/// assert_eq!(w.to_vec_f64().unwrap(), vec![2.0, 0.0, 0.0, 0.0, 2.0, 0.0]);
/// ```
pub fn identity_init(shape: &[usize], gain: f64, shift: &[isize], dtype: DType) -> Result<Tensor> {
    let nd = shape.len();
    let n: usize = shape.iter().product();
    let mut v = vec![0.0; n];
    let strides = crate::tensor::layout::row_major_strides(shape);
    if nd == 2 {
        for i in 0..shape[0].min(shape[1]) {
            v[i * strides[0] + i * strides[1]] = gain;
        }
    } else if nd >= 3 {
        let centre: usize = (2..nd).map(|d| (shape[d].max(1) - 1) / 2 * strides[d]).sum();
        for i in 0..shape[0].min(shape[1]) {
            v[i * strides[0] + i * strides[1] + centre] = gain;
        }
    }
    if shift.len() > nd.max(1) {
        return Err(value_err!("identity_init: shift {shift:?} has more entries than shape {shape:?} has dimensions"));
    }
    // Flux's dimension j ↦ our axis: kernels are (k..., in, out) there, (out, in, k...) here
    let axis = |j: usize| if nd <= 2 { j } else if j < nd - 2 { j + 2 } else if j == nd - 2 { 1 } else { 0 };
    for (j, &s) in shift.iter().enumerate() {
        if s == 0 || nd == 0 {
            continue;
        }
        let ax = axis(j);
        let len = shape[ax] as isize;
        if len == 0 {
            continue;
        }
        let mut out = vec![0.0; n];
        for (idx, &x) in v.iter().enumerate() {
            let c = (idx / strides[ax]) % shape[ax];
            let nc = (c as isize + s).rem_euclid(len) as usize;
            out[idx + nc * strides[ax] - c * strides[ax]] = x;
        }
        v = out;
    }
    from_f64(v, shape, dtype)
}
