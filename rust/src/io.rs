//! Checkpoints in the safetensors format, written so that a crash never loses work.
//!
//! [`save`] writes named tensors and string metadata to a temporary file in the target's
//! directory, fsyncs it, renames it over the target and fsyncs the directory: a reader
//! sees the old file or the new one, never a half-written one. A CRC-32 of the tensor
//! table, the metadata and the data is stored in the metadata under [`CHECKSUM_KEY`];
//! [`load`] checks it, so a truncated or corrupted file is an error, never wrong numbers
//! and never a panic. Files written by other tools (no checksum) load as they are.
//!
//! ```
//! use flux_core::{io, Tensor};
//! use std::collections::BTreeMap;
//! let dir = std::env::temp_dir().join(format!("flux_io_doc_{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("w.safetensors");
//! let w = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap();
//! io::save(&path, &[("layer.weight".to_string(), w)], &BTreeMap::new()).unwrap();
//! let ck = io::load(&path).unwrap();
//! assert_eq!(ck.tensors[0].1.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0]);
//! ```
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

/// The metadata key holding the checksum of a flux_rs checkpoint.
pub const CHECKSUM_KEY: &str = "flux_rs.crc32";

/// What [`load`] returns: the tensors in file order and the string metadata.
///
/// ```
/// use flux_core::{io, DType, Tensor};
/// let path = std::env::temp_dir().join(format!("flux_core_ck_doc_{}.safetensors", std::process::id()));
/// let meta = [("epoch".to_string(), "3".to_string())].into_iter().collect();
/// io::save(&path, &[("w".into(), Tensor::zeros(&[2], DType::F32))], &meta).unwrap();
/// let ck = io::load(&path).unwrap();
/// assert_eq!(ck.metadata["epoch"], "3");
/// assert_eq!(ck.tensors.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["w"]);
/// std::fs::remove_file(&path).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The tensors by name, in file order.
    pub tensors: Vec<(String, Tensor)>,
    /// The string metadata saved with them.
    pub metadata: HashMap<String, String>,
    /// True when the file carried a flux_rs checksum (and it matched).
    pub verified: bool,
}

// ---- CRC-32 (IEEE), table-driven ---------------------------------------------------------

const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}
static CRC_TABLE: [u32; 256] = crc_table();

/// A running CRC-32: detects every single-bit error and every burst up to 32 bits.
#[derive(Clone, Copy)]
struct Crc(u32);
impl Crc {
    fn new() -> Self { Crc(0xFFFF_FFFF) }
    fn update(&mut self, bytes: &[u8]) {
        let mut c = self.0;
        for &b in bytes {
            c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }
    fn finish(self) -> u32 { !self.0 }
}

fn dtype_name(d: Dtype) -> String { format!("{d:?}") }

/// The checksum of everything but itself: the tensor table (sorted by name), the other
/// metadata entries (sorted by key) and the data bytes in file order.
/// One row of the tensor table: name, dtype, shape, byte range in the data section.
type Entry = (String, Dtype, Vec<usize>, (usize, usize));

fn digest(table: &[Entry], meta: &BTreeMap<&str, &str>, data: &[&[u8]]) -> String {
    let mut h = Crc::new();
    let mut t: Vec<_> = table.iter().collect();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, dt, shape, (a, b)) in t {
        h.update(format!("{name}\u{0}{}\u{0}{shape:?}\u{0}{a}\u{0}{b}\n", dtype_name(*dt)).as_bytes());
    }
    for (k, v) in meta {
        if *k != CHECKSUM_KEY {
            h.update(format!("{k}\u{0}{v}\n").as_bytes());
        }
    }
    let mut d = Crc::new();
    for chunk in data {
        d.update(chunk);
    }
    format!("{:08x}:{:08x}", h.finish(), d.finish())
}

fn tensor_bytes(t: &Tensor) -> Result<(Dtype, Vec<u8>)> {
    Ok(match t.dtype() {
        DType::F32 => (Dtype::F32, t.to_vec::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::F64 => (Dtype::F64, t.to_vec::<f64>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
    })
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> Error { Error::io(format!("{what} {}", path.display()), e) }

/// Write `tensors` (names must be unique) and `metadata` to `path` in the safetensors
/// format, atomically: temporary file in the same directory, fsync, rename, fsync of the
/// directory. On any error the target is untouched and the temporary file removed.
///
/// ```
/// use flux_core::{io, nn::{Dense, Module}};
/// let model = Dense::new(3, 2);
/// let path = std::env::temp_dir().join(format!("flux_core_save_doc_{}.safetensors", std::process::id()));
/// let tensors: Vec<_> = model.parameters().into_iter().map(|(name, t)| (name, t.clone())).collect();
/// io::save(&path, &tensors, &Default::default()).unwrap();
/// let back = io::load(&path).unwrap();
/// let (_, w) = back.tensors.iter().find(|(name, _)| name == "weight").unwrap();
/// assert_eq!(w.to_vec_f64().unwrap(), model.weight.to_vec_f64().unwrap());
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn save(path: impl AsRef<Path>, tensors: &[(String, Tensor)], metadata: &BTreeMap<String, String>) -> Result<()> {
    let path = path.as_ref();
    let mut seen = std::collections::HashSet::new();
    for (n, _) in tensors {
        if !seen.insert(n.as_str()) {
            return Err(Error::Value(format!("save: the tensor name {n:?} appears twice")));
        }
    }
    if metadata.contains_key(CHECKSUM_KEY) {
        return Err(Error::Value(format!("save: the metadata key {CHECKSUM_KEY:?} is reserved")));
    }
    // 8-byte types first so that every tensor stays aligned (as the safetensors writer)
    let mut items: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (n, t) in tensors {
        let (dt, bytes) = tensor_bytes(t)?;
        items.push((n.clone(), dt, t.shape().to_vec(), bytes));
    }
    items.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut table = Vec::with_capacity(items.len());
    let mut off = 0;
    for (n, dt, shape, bytes) in &items {
        table.push((n.clone(), *dt, shape.clone(), (off, off + bytes.len())));
        off += bytes.len();
    }
    let meta: BTreeMap<&str, &str> = metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let sum = digest(&table, &meta, &items.iter().map(|i| i.3.as_slice()).collect::<Vec<_>>());

    let mut header = serde_json::Map::new();
    let mut m = serde_json::Map::new();
    for (k, v) in metadata {
        m.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    m.insert(CHECKSUM_KEY.to_string(), serde_json::Value::String(sum));
    header.insert("__metadata__".into(), serde_json::Value::Object(m));
    for (n, dt, shape, (a, b)) in &table {
        header.insert(n.clone(), serde_json::json!({"dtype": dtype_name(*dt), "shape": shape, "data_offsets": [a, b]}));
    }
    let mut hbytes = serde_json::to_vec(&serde_json::Value::Object(header)).map_err(|e| Error::Value(format!("save: {e}")))?;
    hbytes.resize(hbytes.len().next_multiple_of(8), b' ');

    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let fname = path.file_name().ok_or_else(|| Error::Value(format!("save: {} is not a file path", path.display())))?;
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let prefix = format!(".{}.tmp-", fname.to_string_lossy());
    remove_stale_temps(&dir, &prefix);
    let tmp = dir.join(format!("{prefix}{}-{nonce}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let f = File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        w.write_all(&(hbytes.len() as u64).to_le_bytes())?;
        w.write_all(&hbytes)?;
        for it in &items {
            w.write_all(&it.3)?;
        }
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // the rename itself is durable only once the directory entry is on disk
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err(path, "cannot write checkpoint", e)
    })
}

/// Remove the temporary files that saves to the same target left when their process
/// was killed mid-write (`.<name>.tmp-<pid>-<nonce>` whose process is gone), so that
/// repeated kills do not pile up copies of a model. A file of a live process (a save
/// running now) is left alone; where liveness cannot be told, only files older than an
/// hour go.
fn remove_stale_temps(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let stale = if pid == std::process::id() {
            false // this process saves one file at a time per target; never its own
        } else if cfg!(target_os = "linux") {
            !Path::new("/proc").join(pid.to_string()).exists()
        } else {
            e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age.as_secs() > 3600)
        };
        if stale {
            let _ = fs::remove_file(e.path());
        }
    }
}

fn corrupt(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Value(format!("{} is not a readable checkpoint (truncated or corrupted?): {why}", path.display()))
}

fn to_tensor(path: &Path, name: &str, dt: Dtype, shape: &[usize], b: &[u8]) -> Result<Tensor> {
    fn words<const N: usize>(b: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ { b.chunks_exact(N).map(|c| c.try_into().expect("chunk size")) }
    let f16 = |h: u16| -> f32 {
        let (s, e, m) = ((h >> 15) as u32, ((h >> 10) & 0x1f) as i32, (h & 0x3ff) as f32);
        let v = if e == 0 { m * 2f32.powi(-24) } else if e == 31 { if m == 0.0 { f32::INFINITY } else { f32::NAN } } else { (1.0 + m / 1024.0) * 2f32.powi(e - 15) };
        if s == 1 { -v } else { v }
    };
    match dt {
        Dtype::F32 => Tensor::from_vec(words::<4>(b).map(f32::from_le_bytes).collect::<Vec<_>>(), shape),
        Dtype::F64 => Tensor::from_vec(words::<8>(b).map(f64::from_le_bytes).collect::<Vec<_>>(), shape),
        Dtype::F16 => Tensor::from_vec(words::<2>(b).map(|w| f16(u16::from_le_bytes(w))).collect::<Vec<_>>(), shape),
        Dtype::BF16 => Tensor::from_vec(words::<2>(b).map(|w| f32::from_bits((u16::from_le_bytes(w) as u32) << 16)).collect::<Vec<_>>(), shape),
        // integer tensors (e.g. PyTorch's num_batches_tracked) load as float64
        Dtype::I64 => Tensor::from_vec(words::<8>(b).map(|w| i64::from_le_bytes(w) as f64).collect::<Vec<_>>(), shape),
        Dtype::I32 => Tensor::from_vec(words::<4>(b).map(|w| i32::from_le_bytes(w) as f64).collect::<Vec<_>>(), shape),
        Dtype::U8 | Dtype::BOOL => Tensor::from_vec(b.iter().map(|&v| v as f64).collect::<Vec<_>>(), shape),
        other => Err(Error::DType(format!("{}: tensor {name:?} has dtype {other:?}, which flux_rs cannot load", path.display()))),
    }
}

/// Read a safetensors file. A flux_rs checkpoint's checksum is verified; a truncated,
/// corrupted or non-safetensors file is an `Error::Value` naming the file.
///
/// ```
/// use flux_core::{io, DType, Tensor};
/// let path = std::env::temp_dir().join(format!("flux_core_load_doc_{}.safetensors", std::process::id()));
/// io::save(&path, &[("w".into(), Tensor::ones(&[2], DType::F64))], &Default::default()).unwrap();
/// let ck = io::load(&path).unwrap();
/// assert!(ck.verified);  // a flux_rs checksum was there and matched
/// assert_eq!(ck.tensors[0].1.to_vec_f64().unwrap(), vec![1.0, 1.0]);
/// std::fs::write(&path, b"not a checkpoint").unwrap();
/// assert!(io::load(&path).is_err());
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn load(path: impl AsRef<Path>) -> Result<Checkpoint> {
    let path = path.as_ref();
    let buf = fs::read(path).map_err(|e| io_err(path, "cannot read checkpoint", e))?;
    // the parser returns errors for bad input; the guard keeps even a bug in it from
    // aborting the host process
    std::panic::catch_unwind(|| parse(path, &buf)).unwrap_or_else(|_| Err(corrupt(path, "the parser failed")))
}

fn parse(path: &Path, buf: &[u8]) -> Result<Checkpoint> {
    let (n, meta) = SafeTensors::read_metadata(buf).map_err(|e| corrupt(path, e))?;
    let st = SafeTensors::deserialize(buf).map_err(|e| corrupt(path, e))?;
    let metadata: HashMap<String, String> = meta.metadata().clone().unwrap_or_default();
    let infos = meta.tensors();
    let mut table: Vec<Entry> =
        infos.iter().map(|(k, i)| (k.clone(), i.dtype, i.shape.clone(), i.data_offsets)).collect();
    table.sort_by(|a, b| a.3.cmp(&b.3).then(a.0.cmp(&b.0)));
    let ours = metadata.keys().any(|k| k.starts_with("flux_rs"));
    let verified = match metadata.get(CHECKSUM_KEY) {
        Some(stored) => {
            let data = &buf[8 + n..];
            let m: BTreeMap<&str, &str> = metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let got = digest(&table, &m, &[data]);
            if &got != stored {
                return Err(corrupt(path, format!("checksum mismatch (stored {stored}, computed {got})")));
            }
            true
        }
        None if ours => return Err(corrupt(path, format!("the flux_rs checksum {CHECKSUM_KEY:?} is missing"))),
        None => false,
    };
    let mut tensors = Vec::with_capacity(table.len());
    for (name, dt, shape, _) in &table {
        let view = st.tensor(name).map_err(|e| corrupt(path, e))?;
        tensors.push((name.clone(), to_tensor(path, name, *dt, shape, view.data())?));
    }
    Ok(Checkpoint { tensors, metadata, verified })
}

/// The exact position of a generator, `(seed, stream, word position)`, so that a
/// checkpoint can resume a shuffle or a dropout mask where it stopped.
///
/// ```
/// use flux_core::{io, tensor::random::Rng};
/// let mut a = Rng::seed(3);
/// a.uniform();
/// let (seed, stream, pos) = io::rng_state(&a);
/// let mut b = io::rng_from_state(seed, stream, pos);
/// assert_eq!(a.uniform(), b.uniform());
/// ```
pub fn rng_state(r: &crate::tensor::random::Rng) -> ([u8; 32], u64, u128) { (r.0.get_seed(), r.0.get_stream(), r.0.get_word_pos()) }

/// The generator [`rng_state`] described.
///
/// ```
/// use flux_core::{io, tensor::random::Rng};
/// let mut a = Rng::seed(11);
/// a.uniform(); // advance the stream
/// let (seed, stream, pos) = io::rng_state(&a);
/// let mut b = io::rng_from_state(seed, stream, pos);
/// assert_eq!((a.normal(), a.uniform()), (b.normal(), b.uniform()));
/// ```
pub fn rng_from_state(seed: [u8; 32], stream: u64, word_pos: u128) -> crate::tensor::random::Rng {
    use rand::SeedableRng;
    let mut r = rand_chacha::ChaCha8Rng::from_seed(seed);
    r.set_stream(stream);
    r.set_word_pos(word_pos);
    crate::tensor::random::Rng(r)
}
