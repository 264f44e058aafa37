// Scaled dot-product attention's row passes, one workgroup per row of scores: row
// (b, h, i) holds query i's scores against every key; the softmax is softmax_row.wgsl's
// row pass (as softmax.wgsl's), over the masked scores.
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
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> keep: array<f32>;

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

// row (b, h, i), its scores from element `base` of x
struct Row { base: u32, b: u32, h: u32, i: u32 }
fn item(r: Row, j: u32) -> f32 { return score(r.base + j, r.b, r.h, r.i, j); }

@compute @workgroup_size(256)
fn masked_softmax(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) l: u32) {
    let row = flat_group(w, nwg);
    // every invocation of the group reaches the barriers; a group past the end reads nothing
    let live = row < p[0];
    let nh = p[1];
    let lq = p[2];
    let lk = p[3];
    let r = Row(row * lk, row / (lq * nh), (row / lq) % nh, row % lq);
    let ms = row_max_sum(r, lk, live, l);
    let inv = 1.0 / ms.y;
    if live {
        for (var j = l; j < lk; j += WG) { out[r.base + j] = exp(item(r, j) - ms.x) * inv; }
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
