//! Train a CNN with BatchNorm on MNIST with the core crate alone (no Python), save a
//! checkpoint (parameters, running statistics and Adam's state), then resume training
//! from it in a fresh model:
//!
//! ```text
//! cargo run --release -p flux-core --example cnn_batchnorm
//! cargo run --release -p flux-core --example cnn_batchnorm -- --epochs 1 --train 512 --test 256
//! ```
//!
//! Flags: `--data PATH` (an .npz with x_train, y_train, x_test, y_test as uint8; default
//! the subset shipped in data/), `--epochs N` (before the checkpoint, default 2),
//! `--resume-epochs N` (after it, default 1), `--train N` / `--test N` (use the first N
//! images), `--batch N` (default 64), `--checkpoint PATH` (default in the temp dir).
//!
//! The model is W9 of the benchmarks on 1×28×28 images: conv 3×3 1→32 pad 1, BatchNorm,
//! relu, conv 3×3 32→64 pad 1, BatchNorm, relu, maxpool 2, conv 3×3 64→64 pad 1, global
//! mean pool, Dense(64, 10).
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;

use flux_core::data::{onehot, DataLoader, LoaderOptions};
use flux_core::nn::conv::{Conv, Flatten, Pool};
use flux_core::nn::norm::BatchNorm;
use flux_core::nn::{losses, Activation, Chain, Dense, Module};
use flux_core::optim::state::State;
use flux_core::optim::{self, Leaf};
use flux_core::tensor::random::Rng;
use flux_core::{io, train, DType, Error, Result, Tensor};

type Npz = zip::ZipArchive<BufReader<File>>;

/// One uint8 array of an .npz archive (a zip of .npy files) with its shape.
fn array(npz: &mut Npz, name: &str) -> Result<(Vec<u8>, Vec<u64>)> {
    let member = npz.by_name(&format!("{name}.npy")).map_err(|e| Error::io(format!("cannot read {name}.npy"), e))?;
    let npy = npyz::NpyFile::new(member).map_err(|e| Error::io(format!("cannot parse {name}.npy"), e))?;
    let shape = npy.shape().to_vec();
    Ok((npy.into_vec().map_err(|e| Error::io(format!("cannot decode {name}.npy"), e))?, shape))
}

/// The first `limit` images as float32 in [0, 1], shape (n, 1, 28, 28), and their labels.
fn load(npz: &mut Npz, x: &str, y: &str, limit: usize) -> Result<(Tensor, Vec<usize>)> {
    let (pixels, shape) = array(npz, x)?;
    let n = (shape[0] as usize).min(limit);
    let xs = Tensor::from_vec(pixels[..n * 784].iter().map(|&p| p as f32 / 255.0).collect(), &[n, 1, 28, 28])?;
    let (labels, _) = array(npz, y)?;
    Ok((xs, labels[..n].iter().map(|&l| usize::from(l)).collect()))
}

fn model(rng: &mut Rng) -> Chain {
    let conv = |k: usize, i: usize, o: usize, rng: &mut Rng| Conv::with_rng(&[k, k], i, o, DType::F32, rng).pad(1);
    let relu = Activation::from_name("relu").expect("a known activation");
    Chain::new(vec![
        Box::new(conv(3, 1, 32, rng)),
        Box::new(BatchNorm::new(32).activation(relu)),
        Box::new(conv(3, 32, 64, rng)),
        Box::new(BatchNorm::new(64).activation(relu)),
        Box::new(Pool::max(&[2, 2])),
        Box::new(conv(3, 64, 64, rng)),
        Box::new(Pool::mean(&[14, 14])),
        Box::new(Flatten),
        Box::new(Dense::with_rng(64, 10, DType::F32, rng)),
    ])
}

/// Accuracy in inference mode (running statistics), in batches.
fn accuracy(m: &Chain, x: &Tensor, y: &[usize]) -> Result<f64> {
    let mut right = 0;
    for start in (0..y.len()).step_by(500) {
        let end = (start + 500).min(y.len());
        let idx: Vec<usize> = (start..end).collect();
        let (pred, _) = m.forward_t(&x.index_select(0, &idx)?, false)?.argmax(-1)?;
        right += pred.iter().zip(&y[start..end]).filter(|(p, t)| p == t).count();
    }
    Ok(right as f64 / y.len() as f64)
}

/// An optimiser state flattened to named tensors (`prefix.0.1`), numbers as 0-d f64.
fn flatten_state(s: &State, prefix: &str, out: &mut Vec<(String, Tensor)>) {
    match s {
        State::Empty => {}
        State::Tensor(t) => out.push((prefix.into(), t.clone())),
        State::Scalar(v) => out.push((prefix.into(), Tensor::scalar(*v, DType::F64))),
        State::Int(i) => out.push((prefix.into(), Tensor::scalar(*i as f64, DType::F64))),
        State::Tuple(v) => v.iter().enumerate().for_each(|(i, s)| flatten_state(s, &format!("{prefix}.{i}"), out)),
    }
}

/// Fill `s` (of the right structure, from `optim::setup`) from the saved tensors.
fn restore_state(s: &mut State, prefix: &str, saved: &BTreeMap<String, Tensor>) -> Result<()> {
    let get = |k: &str| saved.get(k).ok_or_else(|| Error::Value(format!("checkpoint lacks {k}")));
    match s {
        State::Empty => {}
        State::Tensor(t) => t.assign_(get(prefix)?)?,
        State::Scalar(v) => *v = get(prefix)?.item()?,
        State::Int(i) => *i = get(prefix)?.item()? as i64,
        State::Tuple(v) => {
            for (i, s) in v.iter_mut().enumerate() {
                restore_state(s, &format!("{prefix}.{i}"), saved)?;
            }
        }
    }
    Ok(())
}

/// Parameters, running statistics and optimiser state, with the epoch count.
fn save(path: &std::path::Path, m: &Chain, state: &[Leaf], epoch: usize) -> Result<()> {
    let mut ts: Vec<(String, Tensor)> = m.parameters().into_iter().map(|(p, t)| (format!("param.{p}"), t.clone())).collect();
    ts.extend(m.buffers().into_iter().map(|(p, t)| (format!("buffer.{p}"), t)));
    for (i, leaf) in state.iter().enumerate() {
        flatten_state(&leaf.state, &format!("opt.{i}"), &mut ts);
    }
    let meta = BTreeMap::from([("epoch".to_string(), epoch.to_string())]);
    io::save(path, &ts, &meta)
}

/// A model and optimiser state rebuilt from a checkpoint; returns the epoch it was at.
fn resume(path: &std::path::Path, m: &mut Chain, state: &mut [Leaf]) -> Result<usize> {
    let ck = io::load(path)?;
    let saved: BTreeMap<String, Tensor> = ck.tensors.into_iter().collect();
    for (p, t) in m.parameters_mut() {
        let k = format!("param.{p}");
        t.assign_(saved.get(&k).ok_or_else(|| Error::Value(format!("checkpoint lacks {k}")))?)?;
    }
    for (k, t) in saved.iter().filter_map(|(k, t)| k.strip_prefix("buffer.").map(|p| (p, t))) {
        if !m.set_buffer(k, t)? {
            return Err(Error::Value(format!("the model has no buffer {k}")));
        }
    }
    for (i, leaf) in state.iter_mut().enumerate() {
        restore_state(&mut leaf.state, &format!("opt.{i}"), &saved)?;
    }
    ck.metadata.get("epoch").and_then(|e| e.parse().ok()).ok_or_else(|| Error::Value("checkpoint lacks the epoch".into()))
}

struct Args {
    data: String,
    epochs: usize,
    resume_epochs: usize,
    train: usize,
    test: usize,
    batch: usize,
    checkpoint: std::path::PathBuf,
    /// the checkpoint is a temporary file of ours (removed at the end)
    temp: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        data: concat!(env!("CARGO_MANIFEST_DIR"), "/../data/mnist_subset.npz").into(),
        epochs: 2,
        resume_epochs: 1,
        train: usize::MAX,
        test: usize::MAX,
        batch: 64,
        checkpoint: std::env::temp_dir().join(format!("cnn_batchnorm_{}.safetensors", std::process::id())),
        temp: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| Error::Value(format!("{flag} needs a value")));
        let num = |v: String| v.parse::<usize>().map_err(|_| Error::Value(format!("{flag} needs a whole number, got {v:?}")));
        match flag.as_str() {
            "--data" => a.data = val()?,
            "--epochs" => a.epochs = num(val()?)?,
            "--resume-epochs" => a.resume_epochs = num(val()?)?,
            "--train" => a.train = num(val()?)?,
            "--test" => a.test = num(val()?)?,
            "--batch" => a.batch = num(val()?)?,
            "--checkpoint" => (a.checkpoint, a.temp) = (val()?.into(), false),
            _ => return Err(Error::Value(format!("unknown flag {flag:?} (see the top of examples/cnn_batchnorm.rs)"))),
        }
    }
    Ok(a)
}

fn main() -> Result<()> {
    let a = args()?;
    let file = File::open(&a.data).map_err(|e| Error::io(format!("cannot open {}", a.data), e))?;
    let mut npz = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| Error::io(format!("cannot read {}", a.data), e))?;
    let (x_train, y_train) = load(&mut npz, "x_train", "y_train", a.train)?;
    let (x_test, y_test) = load(&mut npz, "x_test", "y_test", a.test)?;
    println!("data: {} training and {} test images from {}", y_train.len(), y_test.len(), a.data);

    let rule = optim::Adam::new(1e-3, (0.9, 0.999), 1e-8)?;
    let mut m = model(&mut Rng::seed(0));
    let mut state = optim::setup(&rule, &m)?;
    let mut loader = DataLoader::new(x_train, onehot(&y_train, 10, DType::F32)?, LoaderOptions::default().batchsize(a.batch).shuffle(true))?;
    // `forward` trains BatchNorm while the gradient is recorded (batch statistics, running ones updated)
    let loss = |m: &Chain, x: &Tensor, y: &Tensor| losses::logitcrossentropy(&m.forward(x)?, y, -1, losses::Agg::Mean);
    let mut run = |m: &mut Chain, state: &mut Vec<Leaf>, epoch: usize| -> Result<()> {
        let t0 = std::time::Instant::now();
        let ls = train::train(m, loss, loader.epoch(), state)?;
        let mean = ls.iter().sum::<f64>() / ls.len().max(1) as f64;
        println!("epoch {epoch}: mean loss {mean:.4}, test accuracy {:.4} ({:.1} s)", accuracy(m, &x_test, &y_test)?, t0.elapsed().as_secs_f64());
        Ok(())
    };
    for epoch in 1..=a.epochs {
        run(&mut m, &mut state, epoch)?;
    }
    save(&a.checkpoint, &m, &state, a.epochs)?;
    println!("saved {}", a.checkpoint.display());

    // a fresh model and state (other random weights), restored from the checkpoint
    let mut m2 = model(&mut Rng::seed(1));
    let mut state2 = optim::setup(&rule, &m2)?;
    let done = resume(&a.checkpoint, &mut m2, &mut state2)?;
    let (acc1, acc2) = (accuracy(&m, &x_test, &y_test)?, accuracy(&m2, &x_test, &y_test)?);
    if acc1 != acc2 {
        return Err(Error::Value(format!("the restored model predicts differently: accuracy {acc2} vs {acc1}")));
    }
    println!("resumed at epoch {done}: test accuracy {acc2:.4}, as saved");
    for epoch in done + 1..=done + a.resume_epochs {
        run(&mut m2, &mut state2, epoch)?;
    }
    if a.temp {
        std::fs::remove_file(&a.checkpoint).map_err(|e| Error::io(format!("cannot remove {}", a.checkpoint.display()), e))?;
    }
    Ok(())
}
