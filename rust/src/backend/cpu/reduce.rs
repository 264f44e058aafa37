//! Reductions on the host: sum, max and min over any set of dimensions.
use rayon::prelude::*;

use super::contiguous_view;
use crate::backend::ReduceOp;
use crate::tensor::layout::Layout;
use crate::tensor::{Float, PAR_THRESHOLD};

/// Reduce the view `l` of `raw` over the sorted, distinct `dims`; the result is in the
/// keepdims shape's row-major order.
pub(crate) fn reduce<T: Float>(raw: &[T], l: &Layout, dims: &[usize], op: ReduceOp) -> Vec<T> {
    let shape = &l.shape;
    let init = match op {
        ReduceOp::Sum => T::zero(),
        ReduceOp::Max => T::neg_infinity(),
        ReduceOp::Min => T::infinity(),
    };
    let comb = move |a: T, b: T| match op {
        ReduceOp::Sum => a + b,
        ReduceOp::Max => if b > a || b.is_nan() { b } else { a },
        ReduceOp::Min => if b < a || b.is_nan() { b } else { a },
    };
    let nd = shape.len();
    let is_prefix = dims.iter().enumerate().all(|(i, &d)| i == d);
    if l.is_contiguous() && is_prefix && !dims.is_empty() && dims.len() < nd {
        // Leading dims reduced (a bias gradient): accumulate rows, vectorisable.
        let xs = super::elementwise::contig(raw, l);
        let inner: usize = shape[dims.len()..].iter().product();
        let mut acc = vec![init; inner];
        for row in xs.chunks_exact(inner.max(1)) {
            acc.iter_mut().zip(row).for_each(|(a, &v)| *a = comb(*a, v));
        }
        return acc;
    }
    // General: move reduced dims last, then reduce contiguous chunks.
    let kept: Vec<usize> = (0..nd).filter(|i| !dims.contains(i)).collect();
    let perm: Vec<usize> = kept.iter().chain(dims.iter()).copied().collect();
    let pl = Layout {
        shape: perm.iter().map(|&p| l.shape[p]).collect(),
        strides: perm.iter().map(|&p| l.strides[p]).collect(),
        offset: l.offset,
    };
    let xs = contiguous_view(raw, &pl);
    let inner: usize = dims.iter().map(|&d| shape[d]).product();
    let outer: usize = kept.iter().map(|&d| shape[d]).product();
    let fold = |c: &[T]| c.iter().fold(init, |a, &v| comb(a, v));
    if inner == 0 {
        vec![init; outer]
    } else if xs.len() >= PAR_THRESHOLD && outer > 1 {
        let mut o = Vec::new();
        xs.par_chunks(inner).map(fold).collect_into_vec(&mut o);
        o
    } else {
        xs.chunks(inner).map(fold).collect()
    }
}
