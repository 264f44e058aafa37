//! Convolutions on the GPU (`kernels/conv.wgsl`): the forward, the input gradient and
//! the filter gradient as implicit GEMMs over the CPU's geometry
//! ([`Geom`]: the "big" side is a convolution's input, the "small" one its output), with
//! no column matrix in GPU memory. A transposed convolution is the adjoint of a
//! convolution, so its forward is [`conv_bwd_data`] and its gradients the other two.
//!
//! All operands are contiguous buffers from element 0.
use super::elementwise::{family, word};
use super::kernel::{launch, Kernel};
use super::pool::GpuBuffer;
use super::reduce::{reduce, Reduce};
use crate::error::{Error, Result};
use crate::tensor::conv::Geom;
use crate::tensor::Layout;

const CONV: Kernel = family!("conv");
// the tile of the product one workgroup computes (BM × BN in conv.wgsl)
const TILE: usize = 64;
// mode 2 sums over batch × space: each split of the sum gets at least this many terms
const SPLIT_K: usize = 4096;

struct Sizes {
    lb: usize,
    ls: usize,
    kk: usize,
    cbg: usize,
    osg: usize,
}

fn sizes(g: &Geom) -> Sizes {
    let kk = g.k.iter().product();
    Sizes { lb: g.big.iter().product(), ls: g.small.iter().product(), kk, cbg: g.cb / g.groups, osg: g.cs / g.groups }
}

/// Run `mode` of the kernel: an `m × n` product per group (× `splits` along K in chunks
/// of `kchunk`), the column tiles launched in slices that fit the 65535 limit.
#[allow(clippy::too_many_arguments)]
fn run(
    mode: u32, epi: u32, g: &Geom, a: &GpuBuffer, b: &GpuBuffer, bias: Option<&GpuBuffer>, out: &GpuBuffer,
    (m, n, k): (usize, usize, usize), splits: usize, kchunk: usize,
) -> Result<()> {
    let s = sizes(g);
    let mut w = vec![
        word(m, "conv rows")?,
        word(n, "conv columns")?,
        word(k, "conv inner size")?,
        word(kchunk, "conv inner size")?,
        word(g.n, "the batch")?,
        word(g.cb, "channels")?,
        word(g.cs, "channels")?,
        word(g.groups, "groups")?,
    ];
    for v in [g.big, g.small, g.k, g.stride, g.pad, g.dil] {
        for x in v {
            w.push(word(x, "a conv size")?);
        }
    }
    for x in [s.lb, s.ls, s.kk, s.cbg, s.osg, s.cbg * s.kk] {
        w.push(word(x, "a conv size")?);
    }
    // words 0..32 as above; 32 is the first column tile of a slice
    let zs = g.groups * splits;
    if zs > 65535 {
        return Err(Error::Device(format!("conv: {} groups × {splits} splits exceed the GPU's 65535 workgroups", g.groups)));
    }
    let (row_tiles, col_tiles) = (m.div_ceil(TILE), n.div_ceil(TILE));
    if row_tiles > 65535 {
        return Err(Error::Device(format!("conv: {m} channels exceed the GPU kernel's {} per group", 65535 * TILE)));
    }
    let consts = [("MODE", mode as f64), ("EPI", epi as f64)];
    let bias = bias.unwrap_or(a); // an unread binding still needs a buffer
    let mut t0 = 0;
    w.push(0);
    while t0 < col_tiles {
        let nt = (col_tiles - t0).min(65535);
        w[32] = word(t0, "a column tile")?;
        launch(&CONV, "conv", &consts, &[a, b, bias, out], &w, [nt as u32, row_tiles as u32, zs as u32])?;
        t0 += nt;
    }
    Ok(())
}

/// The convolution `small = W · cols(big)` (+ `bias`, then relu when `relu`): `x` is
/// (n, cb, big…), `w` (cs, cb / groups, k…), `bias` (cs,); the result (n, cs, small…).
///
/// ```
/// use flux_core::backend::wgpu::{conv::conv_fwd, gpu_available, transfer};
/// use flux_core::tensor::conv::Geom;
/// if gpu_available() {
///     // a 1-d signal [1, 2, 3, 4] with the kernel [1, -1]: differences
///     let g = Geom { n: 1, cb: 1, cs: 1, groups: 1, big: [1, 1, 4], small: [1, 1, 3], k: [1, 1, 2],
///                    stride: [1; 3], pad: [0; 3], dil: [1; 3] };
///     let x = transfer::upload(&[1.0, 2.0, 4.0, 8.0]).unwrap();
///     let w = transfer::upload(&[1.0, -1.0]).unwrap();
///     let y = conv_fwd(&x, &w, None, &g, false).unwrap();
///     assert_eq!(transfer::download(&y).unwrap(), vec![-1.0, -2.0, -4.0]);
/// }
/// ```
pub fn conv_fwd(x: &GpuBuffer, w: &GpuBuffer, bias: Option<&GpuBuffer>, g: &Geom, relu: bool) -> Result<GpuBuffer> {
    let s = sizes(g);
    let out = GpuBuffer::new(g.n * g.cs * s.ls)?;
    let epi = u32::from(bias.is_some()) | if relu { 2 } else { 0 };
    let ckg = s.cbg * s.kk;
    run(0, epi, g, w, x, bias, &out, (s.osg, g.n * s.ls, ckg), 1, ckg)?;
    Ok(out)
}

/// The input gradient of a convolution (a transposed convolution's forward): `dy` is
/// (n, cs, small…), `w` (cs, cb / groups, k…); the result (n, cb, big…).
///
/// ```
/// use flux_core::backend::wgpu::{conv::conv_bwd_data, gpu_available, transfer};
/// use flux_core::tensor::conv::Geom;
/// if gpu_available() {
///     let g = Geom { n: 1, cb: 1, cs: 1, groups: 1, big: [1, 1, 4], small: [1, 1, 3], k: [1, 1, 2],
///                    stride: [1; 3], pad: [0; 3], dil: [1; 3] };
///     let dy = transfer::upload(&[1.0, 1.0, 1.0]).unwrap();
///     let w = transfer::upload(&[1.0, -1.0]).unwrap();
///     let dx = conv_bwd_data(&dy, &w, &g).unwrap();
///     assert_eq!(transfer::download(&dx).unwrap(), vec![1.0, 0.0, 0.0, -1.0]);
/// }
/// ```
pub fn conv_bwd_data(dy: &GpuBuffer, w: &GpuBuffer, g: &Geom) -> Result<GpuBuffer> {
    let s = sizes(g);
    let out = GpuBuffer::new(g.n * g.cb * s.lb)?;
    let k = s.osg * s.kk;
    run(1, 0, g, w, dy, None, &out, (s.cbg, g.n * s.lb, k), 1, k)?;
    Ok(out)
}

/// The filter gradient of a convolution, `Σₙ dy[n] · cols(x[n])ᵀ`: `x` is (n, cb, big…),
/// `dy` (n, cs, small…); the result (cs, cb / groups, k…). The sum over batch and space
/// is split into chunks computed side by side, then added (in a fixed order).
///
/// ```
/// use flux_core::backend::wgpu::{conv::conv_bwd_filter, gpu_available, transfer};
/// use flux_core::tensor::conv::Geom;
/// if gpu_available() {
///     let g = Geom { n: 1, cb: 1, cs: 1, groups: 1, big: [1, 1, 4], small: [1, 1, 3], k: [1, 1, 2],
///                    stride: [1; 3], pad: [0; 3], dil: [1; 3] };
///     let x = transfer::upload(&[1.0, 2.0, 4.0, 8.0]).unwrap();
///     let dy = transfer::upload(&[1.0, 1.0, 1.0]).unwrap();
///     let dw = conv_bwd_filter(&x, &dy, &g).unwrap();
///     assert_eq!(transfer::download(&dw).unwrap(), vec![7.0, 14.0]);
/// }
/// ```
pub fn conv_bwd_filter(x: &GpuBuffer, dy: &GpuBuffer, g: &Geom) -> Result<GpuBuffer> {
    let s = sizes(g);
    let (ckg, k) = (s.cbg * s.kk, g.n * s.ls);
    let wsize = g.cs * ckg;
    // enough splits to fill the GPU when the filter is small and the sum long
    let splits = (k / SPLIT_K).clamp(1, 64).min((65535 / g.groups.max(1)).max(1));
    let kchunk = k.div_ceil(splits).div_ceil(16) * 16;
    let splits = k.div_ceil(kchunk.max(1)).max(1);
    let part = GpuBuffer::new(splits * wsize)?;
    run(2, 0, g, dy, x, None, &part, (s.osg, ckg, k), splits, kchunk.max(1))?;
    if splits == 1 {
        return Ok(part);
    }
    reduce(&part, &Layout::contiguous(&[splits, wsize]), &[0], Reduce::Sum)
}
