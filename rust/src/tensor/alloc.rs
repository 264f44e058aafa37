//! Sizes checked before buffers are made, so that a huge shape is an error and never an
//! abort: Rust's infallible allocation (`vec![..; n]`) aborts the process when the
//! allocator refuses, and an element count that overflows `usize` silently wraps.
//!
//! Ops call [`reserve`] on their output shape (and on large scratch buffers) before
//! computing: the count is multiplied with overflow checks (overflow: `Error::Value`),
//! and a buffer of at least [`PROBE_BYTES`] is first reserved fallibly (`try_reserve`)
//! and released, so an allocation the system refuses becomes `Error::OutOfMemory`.
//! Smaller buffers are not probed: refusing them would mean the process is about to
//! run out of memory anyway, and the probe would cost a call on every small op.
use super::DType;
use crate::error::{Error, Result};

/// Buffers at least this large are reserved fallibly before an op makes them.
pub const PROBE_BYTES: usize = 1 << 28;

/// The number of elements of `shape`, or `Error::Value` when it overflows `usize`.
///
/// ```
/// use flux_core::tensor::alloc::numel;
/// assert_eq!(numel(&[2, 3]).unwrap(), 6);
/// assert!(numel(&[1 << 32, 1 << 32]).is_err());
/// ```
pub fn numel(shape: &[usize]) -> Result<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(|| {
        Error::Value(format!("a tensor of shape {shape:?} has more elements than can be counted (the product overflows)"))
    })
}

/// Check that a buffer of `n` elements of `elem` bytes can be made: `Error::Value` when
/// the byte count overflows, `Error::OutOfMemory` when the system refuses it.
///
/// ```
/// use flux_core::{tensor::alloc::reserve_elems, Error};
/// assert!(reserve_elems(1000, 4, &|| "a buffer".into()).is_ok());
/// let e = reserve_elems(usize::MAX / 2, 8, &|| "a huge buffer".into()).unwrap_err();
/// assert!(matches!(e, Error::OutOfMemory(m) if m.contains("a huge buffer")));
/// ```
pub fn reserve_elems(n: usize, elem: usize, what: &dyn Fn() -> String) -> Result<()> {
    let bytes = n.checked_mul(elem).filter(|&b| b <= isize::MAX as usize).ok_or_else(|| {
        Error::OutOfMemory(format!("cannot allocate {n} elements of {elem} bytes for {}: more than the address space", what()))
    })?;
    if bytes >= PROBE_BYTES {
        let mut probe: Vec<u8> = Vec::new();
        probe.try_reserve_exact(bytes).map_err(|_| {
            Error::OutOfMemory(format!("cannot allocate {} for {}", human(bytes), what()))
        })?;
    }
    Ok(())
}

/// [`numel`] of `shape`, checked to be allocatable as `dtype` (see [`reserve_elems`]).
///
/// ```
/// use flux_core::{tensor::alloc::reserve, DType, Error};
/// assert_eq!(reserve(&[2, 3], DType::F32).unwrap(), 6);
/// assert!(matches!(reserve(&[1 << 31, 1 << 31], DType::F64), Err(Error::OutOfMemory(_))));
/// ```
pub fn reserve(shape: &[usize], dtype: DType) -> Result<usize> {
    let n = numel(shape)?;
    reserve_elems(n, dtype.size(), &|| format!("a {} tensor of shape {shape:?}", dtype.name()))?;
    Ok(n)
}

/// A vector of `n` copies of `v`, allocated fallibly.
///
/// ```
/// use flux_core::tensor::alloc::try_filled;
/// assert_eq!(try_filled(3, 0.5f32).unwrap(), vec![0.5; 3]);
/// assert!(try_filled(usize::MAX / 4, 0u64).is_err()); // refused, not an abort
/// ```
pub fn try_filled<T: Clone>(n: usize, v: T) -> Result<Vec<T>> {
    let mut out = Vec::new();
    out.try_reserve_exact(n).map_err(|_| {
        Error::OutOfMemory(format!("cannot allocate {}", human(n.saturating_mul(std::mem::size_of::<T>()))))
    })?;
    out.resize(n, v);
    Ok(out)
}

fn human(bytes: usize) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 40) as f64 {
        format!("{:.1} TiB", b / (1u64 << 40) as f64)
    } else if b >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_is_a_value_error() {
        assert!(matches!(numel(&[1 << 32, 1 << 32]), Err(Error::Value(_))));
        assert!(matches!(reserve(&[1 << 32, 1 << 32], DType::F32), Err(Error::Value(_))));
    }

    #[test]
    fn refused_allocation_is_out_of_memory() {
        assert!(matches!(reserve(&[1 << 40, 1 << 10], DType::F32), Err(Error::OutOfMemory(_))));
        assert!(matches!(try_filled(usize::MAX / 16, 0f64), Err(Error::OutOfMemory(_))));
        assert_eq!(try_filled(3, 1.5f32).unwrap(), vec![1.5; 3]);
    }
}
