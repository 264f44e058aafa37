//! Max and mean pooling on the GPU (`kernels/pooling.wgsl`), forward and backward, with
//! the CPU's geometry ([`PGeom`]) and rules. Max pooling's forward keeps each window's
//! winner (its offset in the plane, `u32::MAX` for none) for the backward, which gathers
//! into each input element the output gradients whose windows it won.
//!
//! Operands are contiguous buffers from element 0.
use super::elementwise::{family, word, WG};
use super::kernel::{groups_1d, launch, Kernel};
use super::pool::GpuBuffer;
use crate::error::Result;
use crate::tensor::pool::{PGeom, PoolMode};

const POOLING: Kernel = family!("pooling");

fn words(g: &PGeom, count: usize) -> Result<Vec<u32>> {
    let mut w = vec![word(count, "pooled elements")?];
    for v in [g.big, g.small, g.k, g.stride, g.pad] {
        for x in v {
            w.push(word(x, "a pooling size")?);
        }
    }
    let (lb, ls, kk): (usize, usize, usize) = (g.big.iter().product(), g.small.iter().product(), g.k.iter().product());
    for x in [lb, ls, kk] {
        w.push(word(x, "a pooling size")?);
    }
    Ok(w)
}

/// Pool the planes of `x` (planes, big…): the output (planes, small…) and, for max,
/// the winners' offsets (u32 bits, one per output).
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, pooling::pool_fwd, transfer};
/// use flux_core::tensor::pool::{PGeom, PoolMode};
/// if gpu_available() {
///     let g = PGeom { planes: 1, big: [1, 1, 4], small: [1, 1, 2], k: [1, 1, 2], stride: [1, 1, 2], pad: [0; 3] };
///     let x = transfer::upload(&[1.0, 3.0, 2.0, 0.0]).unwrap();
///     let (y, arg) = pool_fwd(&x, &g, PoolMode::Max).unwrap();
///     assert_eq!(transfer::download(&y).unwrap(), vec![3.0, 2.0]);
///     assert_eq!(transfer::download_u32(&arg.unwrap()).unwrap(), vec![1, 2]);
/// }
/// ```
pub fn pool_fwd(x: &GpuBuffer, g: &PGeom, mode: PoolMode) -> Result<(GpuBuffer, Option<GpuBuffer>)> {
    let n = g.planes * g.small.iter().product::<usize>();
    let w = words(g, n)?;
    let y = GpuBuffer::new(n)?;
    match mode {
        PoolMode::Max => {
            let arg = GpuBuffer::new(n)?;
            launch(&POOLING, "max_fwd", &[], &[x, &y, &arg], &w, groups_1d(n, WG))?;
            Ok((y, Some(arg)))
        }
        PoolMode::Mean => {
            launch(&POOLING, "mean_fwd", &[], &[x, &y], &w, groups_1d(n, WG))?;
            Ok((y, None))
        }
    }
}

/// The input gradient of [`pool_fwd`] for the output gradient `gy` (planes, small…)
/// and max pooling's winners `arg`: (planes, big…).
///
/// ```
/// use flux_core::backend::wgpu::{gpu_available, pooling::{pool_bwd, pool_fwd}, transfer};
/// use flux_core::tensor::pool::{PGeom, PoolMode};
/// if gpu_available() {
///     let g = PGeom { planes: 1, big: [1, 1, 4], small: [1, 1, 2], k: [1, 1, 2], stride: [1, 1, 2], pad: [0; 3] };
///     let x = transfer::upload(&[1.0, 3.0, 2.0, 0.0]).unwrap();
///     let (_, arg) = pool_fwd(&x, &g, PoolMode::Max).unwrap();
///     let gy = transfer::upload(&[10.0, 20.0]).unwrap();
///     let dx = pool_bwd(&gy, arg.as_ref(), &g, PoolMode::Max).unwrap();
///     assert_eq!(transfer::download(&dx).unwrap(), vec![0.0, 10.0, 20.0, 0.0]);
/// }
/// ```
pub fn pool_bwd(gy: &GpuBuffer, arg: Option<&GpuBuffer>, g: &PGeom, mode: PoolMode) -> Result<GpuBuffer> {
    let n = g.planes * g.big.iter().product::<usize>();
    let w = words(g, n)?;
    let dx = GpuBuffer::new(n)?;
    match (mode, arg) {
        (PoolMode::Max, Some(arg)) => launch(&POOLING, "max_bwd", &[], &[gy, &dx, arg], &w, groups_1d(n, WG))?,
        (PoolMode::Max, None) => {
            return Err(crate::error::Error::Device("max pooling's backward needs the forward's winners".into()))
        }
        (PoolMode::Mean, _) => launch(&POOLING, "mean_bwd", &[], &[gy, &dx], &w, groups_1d(n, WG))?,
    }
    Ok(dx)
}
