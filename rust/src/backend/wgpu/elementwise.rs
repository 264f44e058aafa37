//! Elementwise kernels: unary ops and scalar ops (`kernels/unary.wgsl`), binary ops and
//! comparisons with numpy broadcasting (`kernels/binary.wgsl`), `where`
//! (`kernels/where.wgsl`), and strided copies and fills (`kernels/copy.wgsl`).
//!
//! Every function reads its inputs through their [`Layout`] (shape, strides, offset:
//! views, transposes and broadcasts need no copy first) and returns a new contiguous
//! buffer in row-major order.
use super::kernel::{f32_bits, groups_1d, launch, Kernel};
use super::pool::GpuBuffer;
use crate::error::{Error, Result};
use crate::tensor::elementwise::{BinaryOp, CmpOp, UnaryOp};
use crate::tensor::layout::{broadcast_shapes, Layout};

/// A WGSL family: the shared layout helpers, then the shared snippets named after the
/// family (files of `kernels/`, in order), then the family's own file. WGSL has no
/// includes: this is how kernels share functions.
macro_rules! family {
    ($name:literal $(, $part:literal)*) => {
        Kernel {
            name: $name,
            source: concat!(
                include_str!("kernels/layout.wgsl"),
                $(include_str!(concat!("kernels/", $part, ".wgsl")),)*
                include_str!(concat!("kernels/", $name, ".wgsl"))
            ),
        }
    };
}
pub(crate) use family;

/// A WGSL family that also calls the activations of `kernels/activation.wgsl` (`fwd`,
/// `deriv`, `sigmoid`, `tanh_`, specialised by the override `OP`).
macro_rules! family_with_activations {
    ($name:literal) => {
        $crate::backend::wgpu::elementwise::family!($name, "activation")
    };
}
pub(crate) use family_with_activations;

const UNARY: Kernel = family_with_activations!("unary");
const UNARY_BACKWARD: Kernel = family_with_activations!("unary_backward");
const BINARY: Kernel = family!("binary");
const WHERE: Kernel = family!("where");
const COPY: Kernel = family!("copy");

/// Invocations per workgroup of the 1-d kernels (`WG` in layout.wgsl).
pub(crate) const WG: u32 = 256;

/// `x` as a u32 kernel parameter, or `Error::Device` when it does not fit.
pub(crate) fn word(x: usize, what: &str) -> Result<u32> {
    u32::try_from(x).map_err(|_| Error::Device(format!("{what} = {x} is too large for the GPU kernels (at most 2^32 - 1)")))
}

/// `[n, nd, shape…]` then `[offset, strides…]` of each operand (already broadcast to
/// `shape`): the head of every elementwise kernel's parameters.
pub(crate) fn layout_words(shape: &[usize], operands: &[&Layout]) -> Result<Vec<u32>> {
    let n: usize = shape.iter().product();
    let mut w = vec![word(n, "elements")?, word(shape.len(), "dimensions")?];
    for &s in shape {
        w.push(word(s, "a dimension")?);
    }
    for l in operands {
        debug_assert_eq!(l.shape, shape);
        w.push(word(l.offset, "an offset")?);
        for &s in &l.strides {
            w.push(word(s, "a stride")?);
        }
    }
    Ok(w)
}

/// The kernel code of a unary op (the override `OP`) and its scalar arguments.
pub(crate) fn unary_code(op: UnaryOp) -> (f64, f32, f32) {
    match op {
        UnaryOp::Neg => (0.0, 0.0, 0.0),
        UnaryOp::Exp => (1.0, 0.0, 0.0),
        UnaryOp::Log => (2.0, 0.0, 0.0),
        UnaryOp::Sqrt => (3.0, 0.0, 0.0),
        UnaryOp::Abs => (4.0, 0.0, 0.0),
        UnaryOp::Tanh => (5.0, 0.0, 0.0),
        UnaryOp::Sigmoid => (6.0, 0.0, 0.0),
        UnaryOp::Relu => (7.0, 0.0, 0.0),
        UnaryOp::LeakyRelu(a) => (8.0, a as f32, 0.0),
        UnaryOp::Elu(a) => (9.0, a as f32, 0.0),
        UnaryOp::Gelu => (10.0, 0.0, 0.0),
        UnaryOp::Swish => (11.0, 0.0, 0.0),
        UnaryOp::Softplus => (12.0, 0.0, 0.0),
        UnaryOp::Square => (13.0, 0.0, 0.0),
        UnaryOp::Sign => (14.0, 0.0, 0.0),
    }
}

/// An elementwise op of a tensor and scalars (the tensor ops `x * a + b`, `clamp`,
/// `x ** a`, `a / x`, `maximum(x, a)` and friends; `sin`/`cos` take no scalar).
///
/// ```
/// use flux_core::backend::wgpu::{elementwise::{scalar, ScalarOp}, gpu_available, transfer};
/// use flux_core::tensor::Layout;
/// if gpu_available() {
///     let x = transfer::upload(&[-2.0, 0.5, 4.0]).unwrap();
///     let y = scalar(&x, &Layout::contiguous(&[3]), ScalarOp::Clamp(0.0, 1.0)).unwrap();
///     assert_eq!(transfer::download(&y).unwrap(), vec![0.0, 0.5, 1.0]);
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScalarOp {
    /// `a·x + b` (adding, subtracting, scaling by a scalar).
    Affine(f32, f32),
    /// `min(max(x, lo), hi)`.
    Clamp(f32, f32),
    /// `x^a`.
    Powf(f32),
    /// `a / x`.
    RDiv(f32),
    /// `max(x, a)`.
    Max(f32),
    /// `min(x, a)`.
    Min(f32),
    /// `sin x`.
    Sin,
    /// `cos x`.
    Cos,
}

fn scalar_code(op: ScalarOp) -> (f64, f32, f32) {
    match op {
        ScalarOp::Affine(a, b) => (15.0, a, b),
        ScalarOp::Clamp(lo, hi) => (16.0, lo, hi),
        ScalarOp::Powf(a) => (17.0, a, 0.0),
        ScalarOp::RDiv(a) => (18.0, a, 0.0),
        ScalarOp::Max(a) => (19.0, a, 0.0),
        ScalarOp::Min(a) => (20.0, a, 0.0),
        ScalarOp::Sin => (21.0, 0.0, 0.0),
        ScalarOp::Cos => (22.0, 0.0, 0.0),
    }
}

fn map(x: &GpuBuffer, l: &Layout, (code, a, b): (f64, f32, f32)) -> Result<GpuBuffer> {
    let n = l.numel();
    let out = GpuBuffer::new(n)?;
    let mut w = layout_words(&l.shape, &[l])?;
    w.extend([f32_bits(a), f32_bits(b)]);
    let contig = if l.is_contiguous() { 1.0 } else { 0.0 };
    launch(&UNARY, "unary", &[("OP", code), ("CONTIG", contig)], &[x, &out], &w, groups_1d(n, WG))?;
    Ok(out)
}

/// `op(x)` elementwise: a contiguous buffer of `l.numel()` elements.
///
/// ```
/// use flux_core::backend::wgpu::{elementwise::unary, gpu_available, transfer};
/// use flux_core::tensor::{elementwise::UnaryOp, Layout};
/// if gpu_available() {
///     let x = transfer::upload(&[-1.0, 0.5, 2.0]).unwrap();
///     let y = unary(&x, &Layout::contiguous(&[3]), UnaryOp::Relu).unwrap();
///     assert_eq!(transfer::download(&y).unwrap(), vec![0.0, 0.5, 2.0]);
/// }
/// ```
pub fn unary(x: &GpuBuffer, l: &Layout, op: UnaryOp) -> Result<GpuBuffer> { map(x, l, unary_code(op)) }

/// `op(x, scalars)` elementwise: a contiguous buffer of `l.numel()` elements.
///
/// ```
/// use flux_core::backend::wgpu::{elementwise::{scalar, ScalarOp}, gpu_available, transfer};
/// use flux_core::tensor::Layout;
/// if gpu_available() {
///     let x = transfer::upload(&[1.0, 2.0]).unwrap();
///     let y = scalar(&x, &Layout::contiguous(&[2]), ScalarOp::Affine(3.0, 1.0)).unwrap();
///     assert_eq!(transfer::download(&y).unwrap(), vec![4.0, 7.0]);
/// }
/// ```
pub fn scalar(x: &GpuBuffer, l: &Layout, op: ScalarOp) -> Result<GpuBuffer> { map(x, l, scalar_code(op)) }

/// The backward of a unary op: `g · op'(x)` given the contiguous input `x`, output `y`
/// and upstream gradient `g`, all of `n` elements. All three are read-only, so `x` and
/// `y` may be one buffer (for ops whose derivative reads only `y`, or only `x`).
///
/// ```
/// use flux_core::backend::{wgpu::{elementwise::unary_backward, gpu_available, transfer}, UnaryOp};
/// if gpu_available() {
///     let x = transfer::upload(&[3.0, -1.0]).unwrap();
///     let y = transfer::upload(&[9.0, 1.0]).unwrap();
///     let g = transfer::upload(&[1.0, 2.0]).unwrap();
///     let dx = unary_backward(&x, &y, &g, 2, UnaryOp::Square).unwrap(); // g·2x
///     assert_eq!(transfer::download(&dx).unwrap(), vec![6.0, -4.0]);
/// }
/// ```
pub fn unary_backward(x: &GpuBuffer, y: &GpuBuffer, g: &GpuBuffer, n: usize, op: UnaryOp) -> Result<GpuBuffer> {
    let (code, a, _) = unary_code(op);
    let out = GpuBuffer::new(n)?;
    let w = [word(n, "elements")?, 0, 0, f32_bits(a), 0];
    launch(&UNARY_BACKWARD, "unary_backward", &[("OP", code)], &[x, y, g, &out], &w, groups_1d(n, WG))?;
    Ok(out)
}

fn zip(a: &GpuBuffer, la: &Layout, b: &GpuBuffer, lb: &Layout, code: f64) -> Result<(GpuBuffer, Vec<usize>)> {
    let shape = broadcast_shapes(&la.shape, &lb.shape)?;
    let (ba, bb) = (la.broadcast_to(&shape)?, lb.broadcast_to(&shape)?);
    let n: usize = shape.iter().product();
    let out = GpuBuffer::new(n)?;
    let w = layout_words(&shape, &[&ba, &bb])?;
    let contig = if ba.is_contiguous() && bb.is_contiguous() && !ba.strides.contains(&0) && !bb.strides.contains(&0) { 1.0 } else { 0.0 };
    launch(&BINARY, "binary", &[("OP", code), ("CONTIG", contig)], &[a, b, &out], &w, groups_1d(n, WG))?;
    Ok((out, shape))
}

/// `a op b` with numpy broadcasting: the result (contiguous) and its shape.
///
/// ```
/// use flux_core::backend::wgpu::{elementwise::binary, gpu_available, transfer};
/// use flux_core::tensor::{elementwise::BinaryOp, Layout};
/// if gpu_available() {
///     let a = transfer::upload(&[1.0, 2.0, 3.0, 4.0]).unwrap();
///     let b = transfer::upload(&[10.0, 20.0]).unwrap();
///     let (c, shape) = binary(&a, &Layout::contiguous(&[2, 2]), &b, &Layout::contiguous(&[2]), BinaryOp::Add).unwrap();
///     assert_eq!(shape, vec![2, 2]);
///     assert_eq!(transfer::download(&c).unwrap(), vec![11.0, 22.0, 13.0, 24.0]);
/// }
/// ```
pub fn binary(a: &GpuBuffer, la: &Layout, b: &GpuBuffer, lb: &Layout, op: BinaryOp) -> Result<(GpuBuffer, Vec<usize>)> {
    let code = match op {
        BinaryOp::Add => 0.0,
        BinaryOp::Sub => 1.0,
        BinaryOp::Mul => 2.0,
        BinaryOp::Div => 3.0,
        BinaryOp::Pow => 4.0,
        BinaryOp::Max => 5.0,
        BinaryOp::Min => 6.0,
    };
    zip(a, la, b, lb, code)
}

/// `a op b` with broadcasting as 1.0 (true) or 0.0 (false).
///
/// ```
/// use flux_core::backend::{wgpu::{elementwise::compare, gpu_available, transfer}, CmpOp};
/// use flux_core::tensor::Layout;
/// if gpu_available() {
///     let a = transfer::upload(&[1.0, 3.0]).unwrap();
///     let b = transfer::upload(&[2.0]).unwrap();
///     let (c, shape) = compare(&a, &Layout::contiguous(&[2]), &b, &Layout::contiguous(&[1]), CmpOp::Lt).unwrap();
///     assert_eq!((transfer::download(&c).unwrap(), shape), (vec![1.0, 0.0], vec![2]));
/// }
/// ```
pub fn compare(a: &GpuBuffer, la: &Layout, b: &GpuBuffer, lb: &Layout, op: CmpOp) -> Result<(GpuBuffer, Vec<usize>)> {
    let code = match op {
        CmpOp::Gt => 7.0,
        CmpOp::Ge => 8.0,
        CmpOp::Lt => 9.0,
        CmpOp::Le => 10.0,
        CmpOp::Eq => 11.0,
        CmpOp::Ne => 12.0,
    };
    zip(a, la, b, lb, code)
}

/// `cond != 0 ? a : b` with the three broadcast together.
///
/// ```
/// use flux_core::backend::wgpu::{elementwise::where_, gpu_available, transfer};
/// use flux_core::tensor::Layout;
/// if gpu_available() {
///     let l = Layout::contiguous(&[2]);
///     let c = transfer::upload(&[0.0, 1.0]).unwrap();
///     let (a, b) = (transfer::upload(&[1.0, 2.0]).unwrap(), transfer::upload(&[-1.0]).unwrap());
///     let (y, _) = where_(&c, &l, &a, &l, &b, &Layout::contiguous(&[1])).unwrap();
///     assert_eq!(transfer::download(&y).unwrap(), vec![-1.0, 2.0]);
/// }
/// ```
pub fn where_(
    c: &GpuBuffer,
    lc: &Layout,
    a: &GpuBuffer,
    la: &Layout,
    b: &GpuBuffer,
    lb: &Layout,
) -> Result<(GpuBuffer, Vec<usize>)> {
    let shape = broadcast_shapes(&broadcast_shapes(&lc.shape, &la.shape)?, &lb.shape)?;
    let (bc, ba, bb) = (lc.broadcast_to(&shape)?, la.broadcast_to(&shape)?, lb.broadcast_to(&shape)?);
    let n: usize = shape.iter().product();
    let out = GpuBuffer::new(n)?;
    let w = layout_words(&shape, &[&bc, &ba, &bb])?;
    launch(&WHERE, "where_", &[], &[c, a, b, &out], &w, groups_1d(n, WG))?;
    Ok((out, shape))
}

/// Copy the view `ls` of `src` into the view `ld` of `dst` (same shape): a slice
/// assignment, one block of a concatenation.
///
/// ```
/// use flux_core::backend::wgpu::{elementwise::copy_into, gpu_available, transfer};
/// use flux_core::tensor::Layout;
/// if gpu_available() {
///     let src = transfer::upload(&[7.0, 8.0]).unwrap();
///     let dst = transfer::upload(&[0.0, 0.0, 0.0, 0.0]).unwrap();
///     // into elements 1 and 3 of dst (a strided view)
///     copy_into(&src, &Layout::contiguous(&[2]), &dst, &Layout { shape: vec![2], strides: vec![2], offset: 1 }).unwrap();
///     assert_eq!(transfer::download(&dst).unwrap(), vec![0.0, 7.0, 0.0, 8.0]);
/// }
/// ```
pub fn copy_into(src: &GpuBuffer, ls: &Layout, dst: &GpuBuffer, ld: &Layout) -> Result<()> {
    if ls.shape != ld.shape {
        return Err(Error::mismatch("copy", &ls.shape, &ld.shape));
    }
    let n = ls.numel();
    let w = layout_words(&ls.shape, &[ls, ld])?;
    launch(&COPY, "copy", &[], &[src, dst], &w, groups_1d(n, WG))
}

/// The view `l` of `x` as a new contiguous buffer.
///
/// ```
/// use flux_core::backend::wgpu::{elementwise::contiguous, gpu_available, transfer};
/// use flux_core::tensor::Layout;
/// if gpu_available() {
///     let x = transfer::upload(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
///     // the transpose of a 2×3 matrix
///     let t = Layout { shape: vec![3, 2], strides: vec![1, 3], offset: 0 };
///     let y = contiguous(&x, &t).unwrap();
///     assert_eq!(transfer::download(&y).unwrap(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
/// }
/// ```
pub fn contiguous(x: &GpuBuffer, l: &Layout) -> Result<GpuBuffer> {
    let out = GpuBuffer::new(l.numel())?;
    copy_into(x, l, &out, &Layout::contiguous(&l.shape))?;
    Ok(out)
}

/// Set elements `offset..offset + n` of `dst` to `v`.
///
/// ```
/// use flux_core::backend::wgpu::{elementwise::fill_into, gpu_available, transfer};
/// if gpu_available() {
///     let b = transfer::upload(&[1.0, 1.0, 1.0]).unwrap();
///     fill_into(&b, 1, 2, 0.5).unwrap();
///     assert_eq!(transfer::download(&b).unwrap(), vec![1.0, 0.5, 0.5]);
/// }
/// ```
pub fn fill_into(dst: &GpuBuffer, offset: usize, n: usize, v: f32) -> Result<()> {
    if offset + n > dst.len() {
        return Err(Error::Device(format!("fill: elements {offset}..{} of a buffer of {}", offset + n, dst.len())));
    }
    let w = [word(n, "elements")?, word(offset, "an offset")?, f32_bits(v)];
    launch(&COPY, "fill", &[], &[dst], &w, groups_1d(n, WG))
}

/// A new buffer of `n` elements, every one `v`.
///
/// ```
/// use flux_core::backend::wgpu::{elementwise::full, gpu_available, transfer};
/// if gpu_available() {
///     assert_eq!(transfer::download(&full(3, 0.5).unwrap()).unwrap(), vec![0.5; 3]);
/// }
/// ```
pub fn full(n: usize, v: f32) -> Result<GpuBuffer> {
    let out = GpuBuffer::new(n)?;
    fill_into(&out, 0, n, v)?;
    Ok(out)
}
