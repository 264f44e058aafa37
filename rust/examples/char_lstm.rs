//! A character-level LSTM language model with the core crate alone: it learns to predict
//! the next character of a text, prints the loss as it falls, and samples new text.
//!
//! ```text
//! cargo run --release -p flux-core --example char_lstm                  # the shipped text
//! cargo run --release -p flux-core --example char_lstm -- --steps 30 --hidden 32 --text my.txt
//! ```
//!
//! Flags: `--text PATH` (default: the opening of *Alice's Adventures in Wonderland*, public
//! domain, in `examples/data/alice.txt`), `--steps`, `--hidden`, `--seq`, `--batch`,
//! `--lr`, `--sample` (characters to generate), `--seed`.
use flux_core::nn::{losses, Dense, LSTMCell, Module, ParamPath, LSTM};
use flux_core::tensor::random::Rng;
use flux_core::{optim, train, DType, Error, Result, Tensor};

const TEXT: &str = include_str!("data/alice.txt");

/// Settings from the command line.
struct Opts {
    text: String,
    steps: usize,
    hidden: usize,
    seq: usize,
    batch: usize,
    lr: f64,
    sample: usize,
    seed: u64,
}

fn opts() -> Result<Opts> {
    let mut o = Opts { text: TEXT.to_string(), steps: 300, hidden: 128, seq: 32, batch: 32, lr: 0.01, sample: 200, seed: 0 };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bad = |m: String| Error::Value(m);
    for pair in args.chunks(2) {
        let (flag, v) = (pair[0].as_str(), pair.get(1).ok_or_else(|| bad(format!("{} needs a value", pair[0])))?);
        let n = || v.parse::<usize>().map_err(|_| bad(format!("{flag} takes a whole number, got {v:?}")));
        match flag {
            "--text" => o.text = std::fs::read_to_string(v).map_err(|e| Error::io(format!("cannot read {v}"), e))?,
            "--steps" => o.steps = n()?,
            "--hidden" => o.hidden = n()?,
            "--seq" => o.seq = n()?,
            "--batch" => o.batch = n()?,
            "--sample" => o.sample = n()?,
            "--seed" => o.seed = n()? as u64,
            "--lr" => o.lr = v.parse().map_err(|_| bad(format!("--lr takes a number, got {v:?}")))?,
            _ => return Err(bad(format!("unknown flag {flag} (see the file's header for the flags)"))),
        }
    }
    Ok(o)
}

/// The model: an LSTM over one-hot characters, a Dense layer to the next character's logits.
struct CharModel {
    lstm: LSTM,
    head: Dense,
}

impl Module for CharModel {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> { self.head.forward_t(&self.lstm.forward_t(x, train)?, train) }
    fn visit_params<'a>(&'a self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a Tensor)) {
        path.within("lstm", |p| self.lstm.visit_params(p, f));
        path.within("head", |p| self.head.visit_params(p, f));
    }
    fn visit_params_mut<'a>(&'a mut self, path: &mut ParamPath, f: &mut dyn FnMut(&ParamPath, &'a mut Tensor)) {
        path.within("lstm", |p| self.lstm.visit_params_mut(p, f));
        path.within("head", |p| self.head.visit_params_mut(p, f));
    }
}

/// Characters `ids` as one-hot rows (len, vocab), f32.
fn onehot(ids: &[usize], vocab: usize) -> Vec<f32> {
    let mut v = vec![0f32; ids.len() * vocab];
    ids.iter().enumerate().for_each(|(i, &c)| v[i * vocab + c] = 1.0);
    v
}

/// A batch of random windows: inputs (batch, seq, vocab) and next characters, same shape.
fn batch(ids: &[usize], o: &Opts, vocab: usize, rng: &mut Rng) -> Result<(Tensor, Tensor)> {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for _ in 0..o.batch {
        let s = rng.below(ids.len() - o.seq - 1);
        x.extend(onehot(&ids[s..s + o.seq], vocab));
        y.extend(onehot(&ids[s + 1..s + o.seq + 1], vocab));
    }
    Ok((Tensor::from_vec(x, &[o.batch, o.seq, vocab])?, Tensor::from_vec(y, &[o.batch, o.seq, vocab])?))
}

/// `n` characters generated one step at a time from `start`, sampling from the softmax.
fn sample(m: &CharModel, chars: &[char], start: usize, n: usize, rng: &mut Rng) -> Result<String> {
    let cell: &LSTMCell = &m.lstm.cell;
    let (mut c, mut state, mut out) = (start, None::<(Tensor, Tensor)>, String::new());
    for _ in 0..n {
        let x = Tensor::from_vec(onehot(&[c], chars.len()), &[1, chars.len()])?;
        let (h, cs) = cell.step(&x, state.as_ref().map(|(h, c)| (h, c)))?;
        let p = m.head.forward_t(&h, false)?.softmax(-1)?.to_vec_f64()?;
        let u = rng.uniform();
        let mut acc = 0.0;
        c = p.iter().position(|&q| { acc += q; acc > u }).unwrap_or(p.len() - 1);
        out.push(chars[c]);
        state = Some((h, cs));
    }
    Ok(out)
}

fn main() -> Result<()> {
    let o = opts()?;
    let mut chars: Vec<char> = o.text.chars().collect();
    chars.sort_unstable();
    chars.dedup();
    let ids: Vec<usize> = o.text.chars().map(|c| chars.binary_search(&c).expect("in the vocabulary")).collect();
    if ids.len() < o.seq + 2 {
        return Err(Error::Value(format!("the text has {} characters; --seq {} needs at least {}", ids.len(), o.seq, o.seq + 2)));
    }
    let vocab = chars.len();
    let mut rng = Rng::seed(o.seed);
    let mut model = CharModel { lstm: LSTM::new(vocab, o.hidden).init(&mut rng), head: Dense::with_rng(o.hidden, vocab, DType::F32, &mut rng) };
    let mut state = optim::setup(&optim::Adam::default().eta(o.lr), &model)?;
    println!("{} characters, {vocab} distinct; LSTM({vocab} => {}), {} steps of {}×{}", ids.len(), o.hidden, o.steps, o.batch, o.seq);
    let loss = |m: &CharModel, x: &Tensor, y: &Tensor| losses::logitcrossentropy(&m.forward(x)?, y, -1, losses::Agg::Mean);
    let t0 = std::time::Instant::now();
    let (mut first, mut recent) = (f64::NAN, Vec::new());
    for step in 0..o.steps {
        let l = train::train(&mut model, loss, std::iter::once(batch(&ids, &o, vocab, &mut rng)), &mut state)?[0];
        if step == 0 {
            first = l;
        }
        recent.push(l);
        if step % 25 == 0 || step + 1 == o.steps {
            let avg = recent.iter().sum::<f64>() / recent.len() as f64;
            println!("step {step:4}: loss {avg:.3}  ({:.1} ms/step)", t0.elapsed().as_secs_f64() * 1e3 / (step + 1) as f64);
            recent.clear();
        }
    }
    let (x, y) = batch(&ids, &o, vocab, &mut rng)?;
    let end = loss(&model, &x, &y)?.item()?;
    println!("loss {first:.3} → {end:.3} (uniform guessing: {:.3})", (vocab as f64).ln());
    println!("sample: {}", sample(&model, &chars, ids[0], o.sample, &mut rng)?);
    if !(end < first) {
        return Err(Error::Value(format!("the loss did not fall: {first} → {end}")));
    }
    Ok(())
}
