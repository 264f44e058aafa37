//! The native training loop: XOR trains with the core crate alone, and a non-finite
//! loss stops training with the batch index, keeping the earlier updates.
use flux_core::data::{DataLoader, LoaderOptions};
use flux_core::nn::{losses, Activation, Chain, Dense, Module};
use flux_core::tensor::random::Rng;
use flux_core::{optim, train, DType, Error, Tensor};

#[test]
fn xor_trains_to_low_loss() {
    let mut rng = Rng::seed(1);
    let x = Tensor::from_vec(vec![0f32, 0., 0., 1., 1., 0., 1., 1.], &[4, 2]).unwrap();
    let y = Tensor::from_vec(vec![0f32, 1., 1., 0.], &[4, 1]).unwrap();
    let mut m = Chain::new(vec![
        Box::new(Dense::with_rng(2, 16, DType::F32, &mut rng).activation(Activation::Tanh)),
        Box::new(Dense::with_rng(16, 1, DType::F32, &mut rng).activation(Activation::Sigmoid)),
    ]);
    let mut st = optim::setup(&optim::Adam::default().eta(0.05), &m).unwrap();
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..400 {
        let l = train::train(&mut m, |m, x, y| losses::mse(&m.forward(x)?, y, losses::Agg::Mean), [Ok((x.clone(), y.clone()))], &mut st).unwrap();
        first.get_or_insert(l[0]);
        last = l[0];
    }
    assert!(last < 0.01 && last < first.unwrap() / 10.0, "loss {first:?} -> {last}");
    let p = m.forward(&x).unwrap().to_vec_f64().unwrap();
    assert!(p[0] < 0.5 && p[1] > 0.5 && p[2] > 0.5 && p[3] < 0.5, "{p:?}");
}

#[test]
fn non_finite_loss_stops_and_keeps_earlier_updates() {
    let mut rng = Rng::seed(0);
    let mut m = Dense::with_rng(1, 1, DType::F32, &mut rng);
    m.weight = Tensor::zeros(&[1, 1], DType::F32);
    let mut st = optim::setup(&optim::Descent::new(0.1), &m).unwrap();
    let xs = Tensor::from_vec((1..=100).map(|i| i as f32).collect(), &[100, 1]).unwrap();
    let ys = xs.clone();
    let mut dl = DataLoader::new(xs, ys, LoaderOptions::default()).unwrap();
    let loss = |m: &Dense, x: &Tensor, _y: &Tensor| {
        let scale = if x.item()? == 51.0 { f64::NAN } else { 1.0 };
        m.forward(&Tensor::ones(&[1], DType::F32))?.sum_all()?.mul_scalar(scale)
    };
    let err = train::train(&mut m, loss, dl.epoch(), &mut st).unwrap_err();
    match err {
        Error::NonFiniteLoss { index, value } => assert!(index == 50 && value.is_nan()),
        e => panic!("unexpected {e:?}"),
    }
    assert!((m.weight.item().unwrap() + 5.0).abs() < 1e-5);
}
