//! The 23 optimisation rules on the GPU: each rule's step is a WGSL `fn rule(x, g, s)`
//! (one file per rule here, the twin of the closure in its rust/src/optim file) run by
//! one driver (`driver.wgsl`) in a single in-place pass over the parameter, its
//! gradient and the rule's state arrays, all of which stay on the GPU. The scalars
//! (η, β, the bias corrections βᵗ…) are computed on the host in f32 exactly as the CPU
//! step computes them and passed with each launch.
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use super::kernel::{groups_1d, launch, Kernel};
use super::WgpuStorage;
use crate::error::{Error, Result};
use crate::optim::kernel::{Mode, Wgsl};
use crate::tensor::{Storage, Tensor};

const DRIVER: &str = include_str!("driver.wgsl");
const WORKGROUP: u32 = 256;

/// The driver specialised to a rule with `k` state arrays: the state bindings, loads and
/// stores written out, and the rule appended. Made once per rule and kept for the life
/// of the process (the pipeline cache keys on `'static` sources).
fn kernel(rule: &Wgsl, k: usize) -> Kernel {
    static SOURCES: Mutex<Option<HashMap<(&'static str, usize), &'static str>>> = Mutex::new(None);
    let mut guard = SOURCES.lock().unwrap_or_else(|e| e.into_inner());
    let src = *guard.get_or_insert_with(HashMap::new).entry((rule.name, k)).or_insert_with(|| {
        let mut head = format!("const K: u32 = {}u;\n", k.max(1));
        for j in 0..k {
            head += &format!("@group(0) @binding({}) var<storage, read_write> S{j}: array<f32>;\n", j + 2);
        }
        let loads: String = (0..k).map(|j| format!("s[{j}] = S{j}[i];\n    ")).collect();
        let stores: String = (0..k).map(|j| format!("S{j}[i] = s[{j}];\n    ")).collect();
        let body = DRIVER.replace("LOAD_STATES", &loads).replace("STORE_STATES", &stores);
        Box::leak(format!("{head}{body}\n{}", rule.src).into_boxed_str())
    });
    Kernel { name: rule.name, source: src }
}

/// A tensor's GPU buffer as the driver binds it: contiguous from element 0 and exactly
/// its size (a view is copied first).
fn plain(t: &Tensor) -> Result<Cow<'_, Tensor>> {
    let whole = matches!(t.storage(), Storage::Wgpu(s) if s.buffer().len() == t.numel());
    if t.is_contiguous() && t.layout().offset == 0 && whole {
        return Ok(Cow::Borrowed(t));
    }
    let mut c = t.detach();
    c.wgpu_mut()?;
    Ok(Cow::Owned(c))
}

fn buffer(t: &Tensor) -> Result<&WgpuStorage> {
    match t.storage() {
        Storage::Wgpu(s) => Ok(s),
        _ => Err(Error::Device(format!("expected a tensor on the gpu, got one on the {}", t.device().name()))),
    }
}

/// One step of `rule` in `mode` over every element, in place on the GPU. The caller
/// (`optim::kernel::gpu_elementwise`) has checked devices, dtype and sizes.
pub(crate) fn step<const K: usize>(rule: &Wgsl, params: &[f32], mode: Mode, mut states: [&mut Tensor; K]) -> Result<()> {
    let n = u32::try_from(states.first().map_or(0, |s| s.numel()).max(match &mode {
        Mode::Param { x, .. } => x.numel(),
        Mode::Grad { x, .. } | Mode::State { x, .. } => x.numel(),
    }))
    .map_err(|_| Error::Device("an optimiser step on the GPU handles at most 2³² − 1 elements per parameter".into()))?;
    if n == 0 {
        return Ok(());
    }
    for s in states.iter_mut() {
        s.wgpu_mut()?;
    }
    let (code, xw, gw) = match mode {
        Mode::Param { x, g } => {
            x.wgpu_mut()?;
            (0u32, Cow::Borrowed(&*x), plain(g)?)
        }
        Mode::Grad { x, g } => {
            g.wgpu_mut()?;
            (1, plain(x)?, Cow::Borrowed(&*g))
        }
        Mode::State { x, g } => (2, plain(x)?, plain(g)?),
    };
    let mut bufs: Vec<&super::GpuBuffer> = vec![buffer(&xw)?.buffer(), buffer(&gw)?.buffer()];
    for s in states.iter() {
        bufs.push(buffer(s)?.buffer());
    }
    let mut p = vec![n, code];
    p.extend(params.iter().map(|v| v.to_bits()));
    launch(&kernel(rule, K), "main", &[], &bufs, &p, groups_1d(n as usize, WORKGROUP))
}
