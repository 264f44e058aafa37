//! Indexing on the host: entries along an axis, their scatter-add, concatenation. Every
//! buffer here is contiguous row-major of the shape passed beside it.
use crate::tensor::Float;

/// The entries `idx` along `axis` of `xs` (of `shape`).
pub(crate) fn index_select<T: Float>(xs: &[T], shape: &[usize], axis: usize, idx: &[usize]) -> Vec<T> {
    let n = shape[axis];
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let mut o = Vec::with_capacity(outer * idx.len() * inner);
    for b in 0..outer {
        for &i in idx {
            let s = (b * n + i) * inner;
            o.extend_from_slice(&xs[s..s + inner]);
        }
    }
    o
}

/// `out[.., idx[j], ..] += gs[.., j, ..]` along `axis` into `n` zeroed entries; `gs`
/// has `shape` (with `idx.len()` along `axis`).
pub(crate) fn index_add<T: Float>(gs: &[T], shape: &[usize], axis: usize, idx: &[usize], n: usize) -> Vec<T> {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = vec![T::zero(); outer * n * inner];
    for b in 0..outer {
        for (j, &i) in idx.iter().enumerate() {
            let src = &gs[(b * idx.len() + j) * inner..][..inner];
            let dst = &mut out[(b * n + i) * inner..][..inner];
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
        }
    }
    out
}

/// The buffers `parts` (each with its shape, equal except along `axis`) joined along `axis`.
pub(crate) fn concat<T: Float, B: std::ops::Deref<Target = [T]>>(parts: &[(B, &[usize])], axis: usize) -> Vec<T> {
    let Some((_, first)) = parts.first() else { return Vec::new() };
    let outer: usize = first[..axis].iter().product();
    let inner: usize = first[axis + 1..].iter().product();
    let total: usize = parts.iter().map(|(p, _)| p.len()).sum();
    let mut o = Vec::with_capacity(total);
    for b in 0..outer {
        for (p, s) in parts {
            let len = s[axis] * inner;
            o.extend_from_slice(&p[b * len..(b + 1) * len]);
        }
    }
    o
}
