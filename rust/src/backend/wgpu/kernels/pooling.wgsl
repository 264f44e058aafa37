// Max and mean pooling of contiguous (planes, d, h, w) tensors (sizes padded to 3
// spatial dims), the CPU's rules: a max window's winner is its first maximum in window
// order (the first NaN wins, padding never does), a mean divides by the whole window
// (padding included). The backwards gather, one invocation per input element summing
// the outputs whose windows cover it, in the CPU's order: no atomics, and the same sums.
// p: [count, big×3, small×3, k×3, stride×3, pad×3, lb, ls, kk]
@group(0) @binding(0) var<storage, read> src: array<f32>;          // x, or gy in a backward
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;    // y, or dx
@group(0) @binding(2) var<storage, read_write> arg: array<u32>;    // max: the winners' offsets in their plane

const NONE: u32 = 0xffffffffu;

fn is_nan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }

fn big() -> vec3<u32> { return vec3<u32>(p[1], p[2], p[3]); }
fn small() -> vec3<u32> { return vec3<u32>(p[4], p[5], p[6]); }
fn window() -> vec3<u32> { return vec3<u32>(p[7], p[8], p[9]); }
fn stride() -> vec3<u32> { return vec3<u32>(p[10], p[11], p[12]); }
fn pad() -> vec3<u32> { return vec3<u32>(p[13], p[14], p[15]); }

fn unflat(i: u32, s: vec3<u32>) -> vec3<u32> { return vec3<u32>(i / (s.z * s.y), (i / s.z) % s.y, i % s.z); }

// the window of output o: its first input position (may be negative) and where it
// leaves the plane
fn window_start(o: vec3<u32>) -> vec3<i32> { return vec3<i32>(o * stride()) - vec3<i32>(pad()); }

// output t's window: its maximum (the first in window order, the first NaN winning over
// numbers) and that one's offset in the plane (NONE for an empty window), or its sum
struct Pooled { v: f32, at: u32 }
fn pool_window(t: u32, take_max: bool) -> Pooled {
    let ls = p[17];
    let lb = p[16];
    let plane = t / ls;
    let s0 = window_start(unflat(t % ls, small()));
    let b = vec3<i32>(big());
    let k = vec3<i32>(window());
    var r = Pooled(0.0, NONE);
    for (var a = max(s0.x, 0); a < min(s0.x + k.x, b.x); a++) {
        for (var c = max(s0.y, 0); c < min(s0.y + k.y, b.y); c++) {
            for (var e = max(s0.z, 0); e < min(s0.z + k.z, b.z); e++) {
                let i = u32((a * b.y + c) * b.z + e);
                let v = src[plane * lb + i];
                if !take_max {
                    r.v += v;
                } else if r.at == NONE || v > r.v || (is_nan(v) && !is_nan(r.v)) {
                    r = Pooled(v, i);
                }
            }
        }
    }
    return r;
}

@compute @workgroup_size(256)
fn max_fwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_id(g, nwg);
    if t >= p[0] { return; }
    let r = pool_window(t, true);
    dst[t] = r.v;
    arg[t] = r.at;
}

@compute @workgroup_size(256)
fn mean_fwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_id(g, nwg);
    if t >= p[0] { return; }
    dst[t] = pool_window(t, false).v / f32(p[18]);
}

// the outputs whose windows cover input t: its offset `bi` in its plane, the plane's
// first output `o0`, and lo..hi (exclusive) along each dim of the outputs (sizes `sm`)
struct Cover { bi: u32, o0: u32, lo: vec3<u32>, hi: vec3<u32>, sm: vec3<u32> }
fn cover(t: u32) -> Cover {
    let lb = p[16];
    let i = unflat(t % lb, big());
    let num = vec3<i32>(i + pad()) - vec3<i32>(window()) + vec3<i32>(1);
    let st = vec3<i32>(stride());
    let lo = vec3<u32>(max((num + st - vec3<i32>(1)) / st, vec3<i32>(0)));
    let hi = min((i + pad()) / stride() + vec3<u32>(1u), small());
    return Cover(t % lb, t / lb * p[17], lo, hi, small());
}

fn output(c: Cover, a: u32, b: u32, e: u32) -> u32 { return c.o0 + (a * c.sm.y + b) * c.sm.z + e; }

@compute @workgroup_size(256)
fn max_bwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_id(g, nwg);
    if t >= p[0] { return; }
    let r = cover(t);
    var acc = 0.0;
    for (var a = r.lo.x; a < r.hi.x; a++) {
        for (var c = r.lo.y; c < r.hi.y; c++) {
            for (var e = r.lo.z; e < r.hi.z; e++) {
                let o = output(r, a, c, e);
                if arg[o] == r.bi { acc += src[o]; }
            }
        }
    }
    dst[t] = acc;
}

// (no arg here: a binding named in a shared loop would be bound by both entries)
@compute @workgroup_size(256)
fn mean_bwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_id(g, nwg);
    if t >= p[0] { return; }
    let r = cover(t);
    let inv = 1.0 / f32(p[18]);
    var acc = 0.0;
    for (var a = r.lo.x; a < r.hi.x; a++) {
        for (var c = r.lo.y; c < r.hi.y; c++) {
            for (var e = r.lo.z; e < r.hi.z; e++) {
                acc += src[output(r, a, c, e)] * inv;
            }
        }
    }
    dst[t] = acc;
}
