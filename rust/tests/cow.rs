//! Copy-on-write storage: a write through one handle never shows through another.
mod common;

use common::*;
use flux_core::tensor::movement::SliceDim;
use flux_core::{DType, Tensor};

#[test]
fn data_mut_on_a_unique_buffer_is_in_place() {
    let mut a = t64(vec![1.0, 2.0, 3.0], &[3]);
    assert!(!a.is_shared());
    let id = a.id();
    let p0 = a.as_slice::<f64>().unwrap().as_ptr();
    {
        let d = a.data_mut::<f64>().unwrap();
        d[1] = 20.0;
        assert_eq!(d.as_ptr(), p0, "no copy for a uniquely owned buffer");
    }
    assert_eq!(vals(&a), vec![1.0, 20.0, 3.0]);
    assert_eq!(a.id(), id, "identity kept");
    assert!(!a.is_shared());
}

#[test]
fn data_mut_on_a_shared_buffer_copies() {
    let mut a = t64(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let b = a.clone();
    assert!(a.is_shared() && b.is_shared());
    let pb = b.as_slice::<f64>().unwrap().as_ptr();
    {
        let d = a.data_mut::<f64>().unwrap();
        assert_ne!(d.as_ptr(), pb, "a shared buffer is copied before writing");
        d[0] = -1.0;
    }
    assert_eq!(vals(&a), vec![-1.0, 2.0, 3.0, 4.0]);
    assert_eq!(vals(&b), vec![1.0, 2.0, 3.0, 4.0], "the other handle keeps the old values");
    assert!(!a.is_shared() && !b.is_shared(), "after the copy each owns its buffer");
    // writing again into the now-unique buffer is in place
    let pa = a.as_slice::<f64>().unwrap().as_ptr();
    assert_eq!(a.data_mut::<f64>().unwrap().as_ptr(), pa);
}

#[test]
fn views_share_and_writes_do_not_leak_into_them() {
    let mut a = t64((0..6).map(|v| v as f64).collect(), &[2, 3]);
    let t = a.t().unwrap();
    let r = a.reshape(&[6]).unwrap();
    let s = a.slice(&[SliceDim { start: 1, len: 1, step: 1 }, SliceDim { start: 0, len: 2, step: 2 }]).unwrap();
    let d = a.detach();
    let bc = t64(vec![5.0], &[1]);
    let bview = bc.broadcast_to(&[3]).unwrap();
    for v in [&t, &r, &s, &d] {
        assert!(v.is_shared(), "views share storage");
    }
    assert!(bview.is_shared() && bc.is_shared());
    assert_ne!(d.id(), a.id(), "detach gives a new identity");
    a.data_mut::<f64>().unwrap().iter_mut().for_each(|v| *v *= 10.0);
    assert_eq!(vals(&a), vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0]);
    assert_eq!(vals(&t), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    assert_eq!(vals(&r), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(vals(&s), vec![3.0, 5.0]);
    assert_eq!(vals(&d), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn data_mut_on_a_view_materialises_it() {
    let a = t64((0..6).map(|v| v as f64).collect(), &[2, 3]);
    let mut t = a.t().unwrap();
    let id = t.id();
    t.data_mut::<f64>().unwrap()[0] = 100.0;
    assert_eq!(t.shape(), &[3, 2]);
    assert!(t.is_contiguous());
    assert_eq!(t.id(), id);
    assert_eq!(vals(&t), vec![100.0, 3.0, 1.0, 4.0, 2.0, 5.0], "row-major order of the view");
    assert_eq!(vals(&a), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    // a contiguous slice with an offset (part of a bigger buffer) is copied too
    let mut s = a.slice(&[SliceDim { start: 1, len: 1, step: 1 }, SliceDim { start: 0, len: 3, step: 1 }]).unwrap();
    assert!(s.is_contiguous());
    s.data_mut::<f64>().unwrap().copy_from_slice(&[7.0, 8.0, 9.0]);
    assert_eq!(vals(&s), vec![7.0, 8.0, 9.0]);
    assert_eq!(s.data_mut::<f64>().unwrap().len(), 3);
    assert_eq!(vals(&a), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    // a broadcast view: every position becomes its own element
    let mut b = t64(vec![1.0, 2.0], &[2]).broadcast_to(&[2, 2]).unwrap();
    b.data_mut::<f64>().unwrap()[0] = 9.0;
    assert_eq!(vals(&b), vec![9.0, 2.0, 1.0, 2.0]);
}

#[test]
fn data_mut_checks_the_dtype() {
    let mut a = Tensor::zeros(&[2], DType::F32);
    assert!(a.data_mut::<f64>().is_err());
    assert!(a.data_mut::<f32>().is_ok());
}

#[test]
fn in_place_updates_copy_on_write() {
    let mut p = t64(vec![1.0, 2.0, 3.0], &[3]);
    let snapshot = p.clone();
    let id = p.id();
    p.sub_assign_(&t64(vec![0.5], &[1])).unwrap();
    assert_eq!(vals(&p), vec![0.5, 1.5, 2.5]);
    assert_eq!(vals(&snapshot), vec![1.0, 2.0, 3.0]);
    assert_eq!(p.id(), id);
    // sub_assign_ with a different dtype converts
    p.sub_assign_(&t32(&[0.5, 0.5, 0.5], &[3])).unwrap();
    assert_eq!(vals(&p), vec![0.0, 1.0, 2.0]);
    p.assign_(&t64(vec![4.0, 5.0, 6.0], &[3])).unwrap();
    assert_eq!(vals(&p), vec![4.0, 5.0, 6.0]);
    assert_eq!(vals(&snapshot), vec![1.0, 2.0, 3.0]);
    assert!(p.assign_(&t64(vec![1.0], &[1])).is_err());
    assert!(p.sub_assign_(&t64(vec![1.0, 2.0], &[2])).is_err());
    // replace_data_ shares without copying, then a write separates them again
    let src = t64(vec![7.0, 8.0, 9.0], &[3]);
    p.replace_data_(&src);
    assert!(p.is_shared() && src.is_shared());
    assert_eq!(p.id(), id);
    p.data_mut::<f64>().unwrap()[0] = 0.0;
    assert_eq!(vals(&src), vec![7.0, 8.0, 9.0]);
    assert_eq!(vals(&p), vec![0.0, 8.0, 9.0]);
}

#[test]
fn ops_do_not_modify_their_inputs() {
    let a = t64(vec![1.0, -2.0, 3.0, -4.0], &[2, 2]);
    let before = vals(&a);
    let _ = a.exp().unwrap();
    let _ = a.add(&a).unwrap();
    let _ = a.sum(Some(&[0]), false).unwrap();
    let _ = a.matmul(&a).unwrap();
    let _ = a.softmax(1).unwrap();
    let _ = a.contiguous().unwrap();
    assert_eq!(vals(&a), before);
    assert!(!a.is_shared(), "temporary views are dropped");
}
