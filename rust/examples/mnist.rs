//! Train an MLP on MNIST with the core crate alone (no Python):
//! `cargo run --release -p flux-core --example mnist [path/to/mnist.npz] [epochs]`.
//! The default data is the subset that ships in the repository's data/ folder.
use std::fs::File;
use std::io::BufReader;

use flux_core::data::{onehot, DataLoader, LoaderOptions};
use flux_core::nn::{losses, Activation, Chain, Dense, Module};
use flux_core::tensor::random::Rng;
use flux_core::{optim, train, DType, Error, Result, Tensor};

type Npz = zip::ZipArchive<BufReader<File>>;

/// One uint8 array of an .npz archive (a zip of .npy files) with its shape.
fn array(npz: &mut Npz, name: &str) -> Result<(Vec<u8>, Vec<u64>)> {
    let member = npz.by_name(&format!("{name}.npy")).map_err(|e| Error::io(format!("cannot read {name}.npy"), e))?;
    let npy = npyz::NpyFile::new(member).map_err(|e| Error::io(format!("cannot parse {name}.npy"), e))?;
    let shape = npy.shape().to_vec();
    Ok((npy.into_vec().map_err(|e| Error::io(format!("cannot decode {name}.npy"), e))?, shape))
}

/// Images as float32 in [0, 1], shape (n, 784), and labels.
fn load(npz: &mut Npz, x: &str, y: &str) -> Result<(Tensor, Vec<usize>)> {
    let (pixels, shape) = array(npz, x)?;
    let xs = Tensor::from_vec(pixels.iter().map(|&p| p as f32 / 255.0).collect(), &[shape[0] as usize, 784])?;
    let (labels, _) = array(npz, y)?;
    Ok((xs, labels.into_iter().map(usize::from).collect()))
}

fn accuracy(model: &Chain, x: &Tensor, y: &[usize]) -> Result<f64> {
    let (pred, _) = model.forward(x)?.argmax(-1)?;
    Ok(pred.iter().zip(y).filter(|(p, t)| p == t).count() as f64 / y.len() as f64)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).cloned().unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../data/mnist_subset.npz").into());
    let epochs: usize = args.get(2).and_then(|e| e.parse().ok()).unwrap_or(3);
    let file = File::open(&path).map_err(|e| Error::io(format!("cannot open {path}"), e))?;
    let mut npz = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| Error::io(format!("cannot read {path}"), e))?;
    let (x_train, y_train) = load(&mut npz, "x_train", "y_train")?;
    let (x_test, y_test) = load(&mut npz, "x_test", "y_test")?;
    println!("data: {} training and {} test images from {path}", y_train.len(), y_test.len());

    let mut rng = Rng::seed(0);
    let mut model = Chain::new(vec![
        Box::new(Dense::with_rng(784, 256, DType::F32, &mut rng).activation(Activation::Relu)),
        Box::new(Dense::with_rng(256, 10, DType::F32, &mut rng)),
    ]);
    let mut state = optim::setup(&optim::Adam::default().eta(1e-3), &model)?;
    let mut loader = DataLoader::new(x_train, onehot(&y_train, 10, DType::F32)?, LoaderOptions::default().batchsize(128).shuffle(true))?;
    let loss = |m: &Chain, x: &Tensor, y: &Tensor| losses::logitcrossentropy(&m.forward(x)?, y, -1, losses::Agg::Mean);
    for epoch in 1..=epochs {
        let t0 = std::time::Instant::now();
        let ls = train::train(&mut model, loss, loader.epoch(), &mut state)?;
        let mean = ls.iter().sum::<f64>() / ls.len() as f64;
        println!(
            "epoch {epoch}: mean loss {mean:.4}, test accuracy {:.4} ({:.2} s)",
            accuracy(&model, &x_test, &y_test)?,
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
