//! ctc_loss on the GPU (`kernels/ctc.wgsl`): the log-softmax, the α recursion, and with
//! a gradient wanted the β recursion and the logits' gradient, all in one dispatch of
//! one workgroup that steps through time in the kernel. Only the label sequence goes up;
//! nothing comes back but what the caller reads (the loss, when it reads it).
use super::elementwise::{family, word};
use super::kernel::{launch, Kernel};
use super::pool::GpuBuffer;
use super::transfer;
use crate::error::Result;

const CTC: Kernel = family!("ctc");

/// The negative log-likelihood (one f32, `+∞` for an impossible alignment) of the
/// labels `ext` (the extended sequence: blank, l1, blank, …, blank; the blank is class
/// `c − 1`) under the row-major `(t_len, c)` logits `x`, and with `want_grad` the
/// gradient of the loss with respect to `x` (zero when impossible). `t_len ≥ 1`.
pub(crate) fn ctc(x: &GpuBuffer, t_len: usize, c: usize, ext: &[u32], want_grad: bool) -> Result<(GpuBuffer, Option<GpuBuffer>)> {
    let s = ext.len();
    debug_assert!(t_len >= 1 && s >= 1 && x.len() == t_len * c);
    let ext_b = transfer::upload_u32(ext)?;
    let work = GpuBuffer::new(t_len * c + if want_grad { 2 } else { 1 } * t_len * s)?;
    let nll = GpuBuffer::new(1)?;
    let grad = GpuBuffer::new(if want_grad { t_len * c } else { 1 })?;
    let w = [word(t_len, "time steps")?, word(c, "classes")?, word(s, "the extended labels")?, want_grad as u32];
    launch(&CTC, "ctc", &[], &[x, &ext_b, &work, &nll, &grad], &w, [1, 1, 1])?;
    Ok((nll, want_grad.then_some(grad)))
}
