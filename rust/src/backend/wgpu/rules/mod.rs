//! The 23 optimisation rules on the GPU: each rule's step is a WGSL `fn rule(x, g, s)`
//! (one file per rule here, the twin of the closure in its rust/src/optim file) run by
//! one driver (`driver.wgsl`) in a single in-place pass over the parameter, its
//! gradient and the rule's state arrays, all of which stay on the GPU. The scalars
//! (η, β, the bias corrections βᵗ…) are computed on the host in f32 exactly as the CPU
//! step computes them and passed with each launch.
use std::collections::HashMap;
use std::sync::Mutex;

use super::kernel::{groups_1d, launch, Kernel};
use super::WgpuStorage;
use crate::backend::OptimStep;
use crate::error::{Error, Result};

const DRIVER: &str = include_str!("driver.wgsl");
const WORKGROUP: u32 = 256;

/// Each rule kernel's source and number of state arrays, by the name its rule passes
/// (`optim::kernel::wgsl!`).
fn rule_source(name: &str) -> Option<(&'static str, usize)> {
    macro_rules! table {
        ($($name:literal => $k:literal),* $(,)?) => {
            match name {
                $($name => Some((include_str!(concat!($name, ".wgsl")), $k)),)*
                _ => None,
            }
        };
    }
    table! {
        "descent" => 0, "momentum" => 1, "nesterov" => 1, "rprop" => 2, "rmsprop" => 1, "rmsprop_centred" => 2,
        "adam" => 2, "radam" => 2, "adamax" => 2, "oadam" => 3, "adagrad" => 1, "adadelta" => 2, "amsgrad" => 3,
        "nadam" => 2, "adamw" => 2, "adabelief" => 2, "lion" => 1, "weight_decay" => 0, "sign_decay" => 0,
        "clip_grad" => 0, "scale" => 0, "accum" => 1,
    }
}

/// The driver specialised to one rule: its state bindings, loads and stores written
/// out, and the rule appended. Made once per rule and kept for the life of the process
/// (the pipeline cache keys on `'static` sources).
fn kernel(name: &'static str, src: &'static str, k: usize) -> Kernel {
    static SOURCES: Mutex<Option<HashMap<&'static str, &'static str>>> = Mutex::new(None);
    let mut guard = SOURCES.lock().unwrap_or_else(|e| e.into_inner());
    let full = *guard.get_or_insert_with(HashMap::new).entry(name).or_insert_with(|| {
        let mut head = format!("const K: u32 = {}u;\n", k.max(1));
        for j in 0..k {
            head += &format!("@group(0) @binding({}) var<storage, read_write> S{j}: array<f32>;\n", j + 2);
        }
        let loads: String = (0..k).map(|j| format!("s[{j}] = S{j}[i];\n    ")).collect();
        let stores: String = (0..k).map(|j| format!("S{j}[i] = s[{j}];\n    ")).collect();
        let body = DRIVER.replace("LOAD_STATES", &loads).replace("STORE_STATES", &stores);
        Box::leak(format!("{head}{body}\n{src}").into_boxed_str())
    });
    Kernel { name, source: full }
}

/// One step of the rule `step.rule` over every element, in place on the GPU: `target`
/// is the buffer written (the parameter when `step.into_x`, else the gradient), `read`
/// the other one, `states` the rule's state arrays (all of one length: the seam's
/// `optim::kernel::device_step` made them contiguous and unshared).
pub(crate) fn optim_step(target: &mut WgpuStorage, read: &WgpuStorage, states: &mut [&mut WgpuStorage], step: OptimStep<'_>) -> Result<()> {
    let Some((src, k)) = rule_source(step.rule) else {
        return Err(crate::backend::no_kernel(crate::tensor::Device::Wgpu, step.rule));
    };
    if states.len() != k {
        return Err(Error::Device(format!("the GPU kernel of {} takes {k} state arrays, given {}", step.rule, states.len())));
    }
    let n = target.buffer().len();
    if read.buffer().len() != n || states.iter().any(|s| s.buffer().len() != n) {
        return Err(Error::Device(format!("optimiser step {} on the GPU: buffers of different lengths", step.rule)));
    }
    if n == 0 {
        return Ok(());
    }
    let n32 = u32::try_from(n).map_err(|_| Error::Device("an optimiser step on the GPU handles at most 2³² − 1 elements per parameter".into()))?;
    let (x, g) = if step.into_x { (&*target, read) } else { (read, &*target) };
    let mut bufs: Vec<&super::GpuBuffer> = vec![x.buffer(), g.buffer()];
    bufs.extend(states.iter().map(|s| s.buffer()));
    // [n, mode, the rule's scalars in f32 (the GPU's precision, as the CPU step uses them)]
    let mut p = vec![n32, if step.into_x { 0 } else { 1 }];
    p.extend(step.hyper.iter().map(|&v| (v as f32).to_bits()));
    launch(&kernel(step.rule, src, k), "main", &[], &bufs, &p, groups_1d(n, WORKGROUP))
}
