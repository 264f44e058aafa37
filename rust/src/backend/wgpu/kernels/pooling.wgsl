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

@compute @workgroup_size(256)
fn max_fwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_id(g, nwg);
    if t >= p[0] { return; }
    let ls = p[17];
    let lb = p[16];
    let plane = t / ls;
    let s0 = window_start(unflat(t % ls, small()));
    let b = vec3<i32>(big());
    let k = vec3<i32>(window());
    var best = 0.0;
    var at = NONE;
    for (var a = max(s0.x, 0); a < min(s0.x + k.x, b.x); a++) {
        for (var c = max(s0.y, 0); c < min(s0.y + k.y, b.y); c++) {
            for (var e = max(s0.z, 0); e < min(s0.z + k.z, b.z); e++) {
                let i = u32((a * b.y + c) * b.z + e);
                let v = src[plane * lb + i];
                if at == NONE || v > best || (is_nan(v) && !is_nan(best)) {
                    best = v;
                    at = i;
                }
            }
        }
    }
    dst[t] = best;
    arg[t] = at;
}

@compute @workgroup_size(256)
fn mean_fwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_id(g, nwg);
    if t >= p[0] { return; }
    let ls = p[17];
    let lb = p[16];
    let plane = t / ls;
    let s0 = window_start(unflat(t % ls, small()));
    let b = vec3<i32>(big());
    let k = vec3<i32>(window());
    var s = 0.0;
    for (var a = max(s0.x, 0); a < min(s0.x + k.x, b.x); a++) {
        for (var c = max(s0.y, 0); c < min(s0.y + k.y, b.y); c++) {
            for (var e = max(s0.z, 0); e < min(s0.z + k.z, b.z); e++) {
                s += src[plane * lb + u32((a * b.y + c) * b.z + e)];
            }
        }
    }
    dst[t] = s / f32(p[18]);
}

// the outputs whose windows cover input position i along each dim: lo..hi (exclusive)
fn covering(i: vec3<u32>) -> array<vec3<u32>, 2> {
    let num = vec3<i32>(i + pad()) - vec3<i32>(window()) + vec3<i32>(1);
    let st = vec3<i32>(stride());
    let lo = vec3<u32>(max((num + st - vec3<i32>(1)) / st, vec3<i32>(0)));
    let hi = min((i + pad()) / stride() + vec3<u32>(1u), small());
    return array<vec3<u32>, 2>(lo, hi);
}

@compute @workgroup_size(256)
fn max_bwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_id(g, nwg);
    if t >= p[0] { return; }
    let ls = p[17];
    let lb = p[16];
    let plane = t / lb;
    let bi = t % lb;
    let r = covering(unflat(bi, big()));
    let sm = small();
    var acc = 0.0;
    for (var a = r[0].x; a < r[1].x; a++) {
        for (var c = r[0].y; c < r[1].y; c++) {
            for (var e = r[0].z; e < r[1].z; e++) {
                let o = plane * ls + (a * sm.y + c) * sm.z + e;
                if arg[o] == bi { acc += src[o]; }
            }
        }
    }
    dst[t] = acc;
}

@compute @workgroup_size(256)
fn mean_bwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_id(g, nwg);
    if t >= p[0] { return; }
    let ls = p[17];
    let lb = p[16];
    let plane = t / lb;
    let r = covering(unflat(t % lb, big()));
    let sm = small();
    let inv = 1.0 / f32(p[18]);
    var acc = 0.0;
    for (var a = r[0].x; a < r[1].x; a++) {
        for (var c = r[0].y; c < r[1].y; c++) {
            for (var e = r[0].z; e < r[1].z; e++) {
                acc += src[plane * ls + (a * sm.y + c) * sm.z + e] * inv;
            }
        }
    }
    dst[t] = acc;
}
