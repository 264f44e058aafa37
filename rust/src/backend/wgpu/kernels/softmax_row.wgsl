// A softmax's row pass, one workgroup per row, shared by softmax.wgsl and attention.wgsl:
// each defines `struct Row` (where a row lies) and `fn item(r: Row, j: u32) -> f32`
// (the row's element j).

var<workgroup> part: array<f32, 256>;

const NEG_INF: u32 = 0xff800000u;

fn wg_max(l: u32, v: f32) -> f32 {
    part[l] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if l < s { part[l] = max(part[l], part[l + s]); }
        workgroupBarrier();
    }
    let r = part[0];
    workgroupBarrier();
    return r;
}
fn wg_sum(l: u32, v: f32) -> f32 {
    part[l] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if l < s { part[l] += part[l + s]; }
        workgroupBarrier();
    }
    let r = part[0];
    workgroupBarrier();
    return r;
}

// (m, Σ_j exp(item(j) − m)) over the row's `len` items, m their maximum. Every invocation
// of the group calls it (it holds barriers); a group past the last row (`live` false)
// reads nothing.
fn row_max_sum(r: Row, len: u32, live: bool, l: u32) -> vec2<f32> {
    var m = bitcast<f32>(NEG_INF);
    if live {
        for (var j = l; j < len; j += WG) { m = max(m, item(r, j)); }
    }
    m = wg_max(l, m);
    // a row of -inf (an empty one, one whose every key is masked) has no finite maximum
    // to shift by: the softmax is then NaN, as on the CPU
    if m == bitcast<f32>(NEG_INF) { m = 0.0; }
    var s = 0.0;
    if live {
        for (var j = l; j < len; j += WG) { s += exp(item(r, j) - m); }
    }
    return vec2<f32>(m, wg_sum(l, s));
}
