//! MNIST from an .npz archive (a zip of .npy files: x_train, y_train, x_test, y_test),
//! and the MLP trained on it, shared by the `mnist` and `mnist_gpu` examples.
use std::fs::File;
use std::io::BufReader;

use flux_core::nn::{Activation, Chain, Dense, Module};
use flux_core::tensor::random::Rng;
use flux_core::{DType, Error, Result, Tensor};

type Npz = zip::ZipArchive<BufReader<File>>;

/// The subset that ships in the repository's data/ folder.
pub const SUBSET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/mnist_subset.npz");

/// Training and test images as float32 in [0, 1] (shape (n, 784)) with their labels.
pub struct Mnist {
    pub x_train: Tensor,
    pub y_train: Vec<usize>,
    pub x_test: Tensor,
    pub y_test: Vec<usize>,
}

/// One uint8 array of the archive with its shape.
fn array(npz: &mut Npz, name: &str) -> Result<(Vec<u8>, Vec<u64>)> {
    let member = npz.by_name(&format!("{name}.npy")).map_err(|e| Error::io(format!("cannot read {name}.npy"), e))?;
    let npy = npyz::NpyFile::new(member).map_err(|e| Error::io(format!("cannot parse {name}.npy"), e))?;
    let shape = npy.shape().to_vec();
    Ok((npy.into_vec().map_err(|e| Error::io(format!("cannot decode {name}.npy"), e))?, shape))
}

/// The first `limit` images (all when `None`) as float32 in [0, 1], and their labels.
fn images(npz: &mut Npz, x: &str, y: &str, limit: Option<usize>) -> Result<(Tensor, Vec<usize>)> {
    let (pixels, shape) = array(npz, x)?;
    let n = limit.map_or(shape[0] as usize, |l| l.min(shape[0] as usize));
    let xs = Tensor::from_vec(pixels[..n * 784].iter().map(|&p| p as f32 / 255.0).collect(), &[n, 784])?;
    let (labels, _) = array(npz, y)?;
    Ok((xs, labels.into_iter().take(n).map(usize::from).collect()))
}

/// Read `path`, keeping at most `limit` training and `limit` test images.
pub fn load(path: &str, limit: Option<usize>) -> Result<Mnist> {
    let file = File::open(path).map_err(|e| Error::io(format!("cannot open {path}"), e))?;
    let mut npz = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| Error::io(format!("cannot read {path}"), e))?;
    let (x_train, y_train) = images(&mut npz, "x_train", "y_train", limit)?;
    let (x_test, y_test) = images(&mut npz, "x_test", "y_test", limit)?;
    Ok(Mnist { x_train, y_train, x_test, y_test })
}

/// The fraction of `x` that `model` labels `y` (on whatever device `x` and the model are).
pub fn accuracy(model: &dyn Module, x: &Tensor, y: &[usize]) -> Result<f64> {
    let (pred, _) = model.forward(x)?.argmax(-1)?;
    Ok(pred.iter().zip(y).filter(|(p, t)| p == t).count() as f64 / y.len() as f64)
}

/// The examples' MLP, 784 → 256 (relu) → 10, float32, from a generator seeded with 0.
pub fn mlp() -> Chain {
    let mut rng = Rng::seed(0);
    Chain::new(vec![
        Box::new(Dense::with_rng(784, 256, DType::F32, &mut rng).activation(Activation::Relu)),
        Box::new(Dense::with_rng(256, 10, DType::F32, &mut rng)),
    ])
}
