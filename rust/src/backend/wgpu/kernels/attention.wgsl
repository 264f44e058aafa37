// Scaled dot-product attention's row passes, one workgroup per row of scores: row
// (b, h, i) holds query i's scores against every key. Appended to softmax.wgsl, whose
// bindings (x, out) and workgroup reductions (wg_max, wg_sum) it shares.
//
// masked_softmax: x = the scores s, out = α = softmax(scale·s + bias, masked) over the
// kv_len keys of a row, the mask causal (key j > query i) and/or a keep mask (0 =
// masked); bias and keep are read through their broadcast strides over (batch, nheads,
// q_len, kv_len).
// p: [rows, nheads, q_len, kv_len, scale, flags (1 causal, 2 bias, 4 keep),
//     bias_offset, bias_strides[4], keep_offset, keep_strides[4]]
//
// softmax_backward: x = dα, out = dS = α ⊙ (dα − Σ_j dα⊙α) per row, with α in `bias`.
// p: [rows, kv_len]
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> keep: array<f32>;

const NEG_INF: u32 = 0xff800000u;

// the masked, biased, scaled score of key j in row (b, h, i) at element `at` of x
fn score(at: u32, b: u32, h: u32, i: u32, j: u32) -> f32 {
    let flags = p[5];
    if (flags & 1u) != 0u && j > i { return bitcast<f32>(NEG_INF); }
    if (flags & 4u) != 0u {
        let k = p[11u] + b * p[12u] + h * p[13u] + i * p[14u] + j * p[15u];
        if keep[k] == 0.0 { return bitcast<f32>(NEG_INF); }
    }
    var z = x[at] * pf(4u);
    if (flags & 2u) != 0u {
        z += bias[p[6u] + b * p[7u] + h * p[8u] + i * p[9u] + j * p[10u]];
    }
    return z;
}

@compute @workgroup_size(256)
fn masked_softmax(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) l: u32) {
    let row = flat_group(w, nwg);
    // every invocation of the group reaches the barriers; a group past the end reads nothing
    let live = row < p[0];
    let nh = p[1];
    let lq = p[2];
    let lk = p[3];
    let i = row % lq;
    let h = (row / lq) % nh;
    let b = row / (lq * nh);
    let base = row * lk;
    var m = bitcast<f32>(NEG_INF);
    if live {
        for (var j = l; j < lk; j += WG) { m = max(m, score(base + j, b, h, i, j)); }
    }
    m = wg_max(l, m);
    // every key masked: no finite maximum to shift by (the row becomes NaN, as on the CPU)
    if m == bitcast<f32>(NEG_INF) { m = 0.0; }
    var t = 0.0;
    if live {
        for (var j = l; j < lk; j += WG) { t += exp(score(base + j, b, h, i, j) - m); }
    }
    let r = 1.0 / wg_sum(l, t);
    if live {
        for (var j = l; j < lk; j += WG) { out[base + j] = exp(score(base + j, b, h, i, j) - m) * r; }
    }
}

@compute @workgroup_size(256)
fn softmax_backward(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) l: u32) {
    let row = flat_group(w, nwg);
    let live = row < p[0];
    let lk = p[1];
    let base = row * lk;
    var t = 0.0;
    if live {
        for (var j = l; j < lk; j += WG) { t += x[base + j] * bias[base + j]; }
    }
    let dot = wg_sum(l, t);
    if live {
        for (var j = l; j < lk; j += WG) { out[base + j] = bias[base + j] * (x[base + j] - dot); }
    }
}
