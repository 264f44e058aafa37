//! Batched matrix products (`kernels/matmul.wgsl`): 64×64 tiles of the result per
//! workgroup, staged through workgroup memory, operands read through their strides.
use super::elementwise::{family_with_activations, unary_code, word};
use super::kernel::{f32_bits, launch, Kernel};
use super::pool::GpuBuffer;
use crate::error::{shape_err, Error, Result};
use crate::tensor::elementwise::UnaryOp;

const MATMUL: Kernel = family_with_activations!("matmul");

/// One operand of [`matmul`]: `batch` matrices of `rows × cols` in a buffer, element
/// `(b, i, j)` at `offset + b·batch_stride + i·row_stride + j·col_stride` (a transpose
/// swaps the two strides; a batch shared by every product has `batch_stride` 0).
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, matmul::{matmul, MatLayout}, transfer};
/// if gpu_available() {
///     let a = transfer::upload(&[1.0, 2.0, 3.0, 4.0]).unwrap();
///     // aᵀ·a through the transposed layout (no copy)
///     let c = matmul(&a, MatLayout::contiguous(2, 2).t(), &a, MatLayout::contiguous(2, 2), 1).unwrap();
///     assert_eq!(transfer::download(&c).unwrap(), vec![10.0, 14.0, 14.0, 20.0]);
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatLayout {
    /// Rows of each matrix.
    pub rows: usize,
    /// Columns of each matrix.
    pub cols: usize,
    /// Where matrix 0's element (0, 0) is.
    pub offset: usize,
    /// Elements from one matrix to the next.
    pub batch_stride: usize,
    /// Elements from one row to the next.
    pub row_stride: usize,
    /// Elements from one column to the next.
    pub col_stride: usize,
}

/// Layouts of plain and transposed operands.
///
/// ```
/// use flux_core::backend::wgpu::matmul::MatLayout;
/// assert_eq!(MatLayout::contiguous(2, 3).t().t(), MatLayout::contiguous(2, 3));
/// ```
impl MatLayout {
    /// A contiguous row-major stack of `batch` matrices of `rows × cols`.
    ///
    /// ```
    /// use flux_core::backend::wgpu::matmul::MatLayout;
    /// let l = MatLayout::contiguous(2, 3);
    /// assert_eq!((l.row_stride, l.col_stride, l.batch_stride), (3, 1, 6));
    /// ```
    pub fn contiguous(rows: usize, cols: usize) -> MatLayout {
        MatLayout { rows, cols, offset: 0, batch_stride: rows * cols, row_stride: cols, col_stride: 1 }
    }
    /// The transpose (a stride swap, no copy).
    ///
    /// ```
    /// use flux_core::backend::wgpu::matmul::MatLayout;
    /// let t = MatLayout::contiguous(2, 3).t();
    /// assert_eq!((t.rows, t.cols, t.row_stride, t.col_stride), (3, 2, 1, 3));
    /// ```
    pub fn t(self) -> MatLayout {
        MatLayout { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }
}

/// `c[b] = a[b] · b[b]` for `batch` products: a contiguous `[batch, a.rows, b.cols]`.
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, matmul::{matmul, MatLayout}, transfer};
/// if gpu_available() {
///     let a = transfer::upload(&[1.0, 2.0, 3.0, 4.0]).unwrap();
///     let i = transfer::upload(&[1.0, 0.0, 0.0, 1.0]).unwrap();
///     let l = MatLayout::contiguous(2, 2);
///     let c = matmul(&a, l.t(), &i, l, 1).unwrap();
///     assert_eq!(transfer::download(&c).unwrap(), vec![1.0, 3.0, 2.0, 4.0]);
/// }
/// ```
pub fn matmul(a: &GpuBuffer, la: MatLayout, b: &GpuBuffer, lb: MatLayout, batch: usize) -> Result<GpuBuffer> {
    let out = GpuBuffer::new(batch * la.rows * lb.cols)?;
    if !product_into(&out, a, la, b, lb, batch, None)? {
        super::elementwise::fill_into(&out, 0, batch * la.rows * lb.cols, 0.0)?;
    }
    Ok(out)
}

/// `act(a·b + bias)` for one product (`bias` one entry per column of the result), in one
/// dispatch: the bias and the activation applied as the tiles are stored. With `keep_z`
/// the pre-activation `a·b + bias` comes back too (for derivatives that need it). The
/// same rounding as the product, a bias add and the activation as separate kernels.
pub(crate) fn matmul_bias_act(
    a: &GpuBuffer,
    la: MatLayout,
    b: &GpuBuffer,
    lb: MatLayout,
    bias: Option<&GpuBuffer>,
    act: Option<UnaryOp>,
    keep_z: bool,
) -> Result<(GpuBuffer, Option<GpuBuffer>)> {
    let n = la.rows * lb.cols;
    let out = GpuBuffer::new(n)?;
    let z = GpuBuffer::new(if keep_z { n } else { 1 })?;
    if !product_into(&out, a, la, b, lb, 1, Some((bias, act, &z, keep_z)))? {
        // an empty inner dimension: z = bias (or 0), then the activation (rare: no fusion)
        super::elementwise::fill_into(&out, 0, n, 0.0)?;
        let zt = match bias {
            Some(bb) => super::elementwise::binary(
                &out,
                &crate::tensor::Layout::contiguous(&[la.rows, lb.cols]),
                bb,
                &crate::tensor::Layout::contiguous(&[lb.cols]).broadcast_to(&[la.rows, lb.cols])?,
                crate::tensor::elementwise::BinaryOp::Add,
            )?
            .0,
            None => out,
        };
        let l = crate::tensor::Layout::contiguous(&[la.rows, lb.cols]);
        let y = match act {
            Some(op) => super::elementwise::unary(&zt, &l, op)?,
            None => super::elementwise::contiguous(&zt, &l)?,
        };
        return Ok((y, keep_z.then_some(zt)));
    }
    Ok((out, keep_z.then_some(z)))
}

/// The product into `out` (plain, or with the epilogue `(bias, act, z, keep_z)`); false,
/// launching nothing, when the inner dimension is empty.
fn product_into(
    out: &GpuBuffer,
    a: &GpuBuffer,
    la: MatLayout,
    b: &GpuBuffer,
    lb: MatLayout,
    batch: usize,
    epilogue: Option<(Option<&GpuBuffer>, Option<UnaryOp>, &GpuBuffer, bool)>,
) -> Result<bool> {
    if la.cols != lb.rows {
        return Err(Error::mismatch("matmul", &[la.rows, la.cols], &[lb.rows, lb.cols]));
    }
    let (m, n, k) = (la.rows, lb.cols, la.cols);
    if batch > 65535 {
        return Err(shape_err!("matmul: {} products in one batch exceed the GPU's 65535", batch));
    }
    if k == 0 {
        return Ok(false);
    }
    let mut w = vec![
        word(m, "rows")?,
        word(n, "columns")?,
        word(k, "the inner dimension")?,
        word(batch, "the batch")?,
        word(la.offset, "an offset")?,
        word(la.batch_stride, "a stride")?,
        word(la.row_stride, "a stride")?,
        word(la.col_stride, "a stride")?,
        word(lb.offset, "an offset")?,
        word(lb.batch_stride, "a stride")?,
        word(lb.row_stride, "a stride")?,
        word(lb.col_stride, "a stride")?,
    ];
    let groups = [n.div_ceil(64) as u32, m.div_ceil(64) as u32, batch as u32];
    match epilogue {
        None => launch(&MATMUL, "matmul", &[], &[a, b, out], &w, groups)?,
        Some((bias, act, z, keep_z)) => {
            // no activation: a code past the last op, which `fwd` passes through
            let (code, alpha, beta) = act.map(unary_code).unwrap_or((IDENTITY, 0.0, 0.0));
            w.extend([f32_bits(alpha), f32_bits(beta), bias.is_some() as u32, keep_z as u32]);
            // no bias: a stand-in (z may not be bound both read-only and read-write)
            let none = if bias.is_none() { Some(GpuBuffer::new(1)?) } else { None };
            let bias = bias.or(none.as_ref()).expect("a bias or its stand-in");
            launch(&MATMUL, "matmul_act", &[("OP", code)], &[a, b, out, bias, z], &w, groups)?;
        }
    }
    Ok(true)
}

/// The activation code `fwd` (kernels/activation.wgsl) returns its input for.
const IDENTITY: f64 = 999.0;
