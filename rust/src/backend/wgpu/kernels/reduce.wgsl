// Reductions (sum, mean, max, min) over any set of axes of a strided input into a
// contiguous output. The Rust side splits the input's layout into the kept axes (one
// output element each) and the reduced axes (R elements per output).
// p: [n_out, nd_k, k_shape[nd_k], k_strides[nd_k], offset, R, nd_r, r_shape[nd_r], r_strides[nd_r]]
// OP: 0 sum, 1 mean, 2 max, 3 min (max and min propagate NaN)
override OP: u32 = 0u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

var<workgroup> part: array<f32, 256>;

fn init() -> f32 {
    switch OP {
        case 2u: { return bitcast<f32>(0xff800000u); }
        case 3u: { return bitcast<f32>(0x7f800000u); }
        default: { return 0.0; }
    }
}
fn is_nan(v: f32) -> bool { return !(v == v); }
fn combine(acc: f32, v: f32) -> f32 {
    switch OP {
        // a NaN on either side gives NaN (acc + v), as the CPU kernel does
        case 2u: { if is_nan(acc) || is_nan(v) { return acc + v; } return max(acc, v); }
        case 3u: { if is_nan(acc) || is_nan(v) { return acc + v; } return min(acc, v); }
        default: { return acc + v; }
    }
}
fn finish(acc: f32, r: u32) -> f32 {
    if OP == 1u { return acc / f32(r); }
    return acc;
}

// where output element `o` starts, and where the j-th element of its reduction lies
fn out_base(o: u32) -> u32 {
    let nk = p[1];
    return p[2u + 2u * nk] + strided(o, nk, 2u, 2u + nk);
}
fn r_off(j: u32) -> u32 {
    let at = 4u + 2u * p[1];
    let nr = p[at];
    return strided(j, nr, at + 1u, at + 1u + nr);
}

// one workgroup per output element: 256 invocations stride over its R inputs, then a
// tree reduction in workgroup memory (for long reductions)
@compute @workgroup_size(256)
fn reduce_wide(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) l: u32) {
    let o = flat_group(w, nwg);
    let n_out = p[0];
    let r = p[3u + 2u * p[1]];
    var acc = init();
    if o < n_out {
        let base = out_base(o);
        for (var j = l; j < r; j += WG) {
            acc = combine(acc, x[base + r_off(j)]);
        }
    }
    part[l] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if l < s { part[l] = combine(part[l], part[l + s]); }
        workgroupBarrier();
    }
    if l == 0u && o < n_out { out[o] = finish(part[0], r); }
}

// one invocation per output element (for many short reductions)
@compute @workgroup_size(256)
fn reduce_narrow(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = flat_id(g, nwg);
    if o >= p[0] { return; }
    let r = p[3u + 2u * p[1]];
    let base = out_base(o);
    var acc = init();
    for (var j = 0u; j < r; j++) {
        acc = combine(acc, x[base + r_off(j)]);
    }
    out[o] = finish(acc, r);
}
