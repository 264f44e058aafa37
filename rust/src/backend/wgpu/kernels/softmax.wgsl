// softmax, log-softmax and logsumexp along one axis of a strided input, one workgroup
// per row (a row is every element along the axis for one index of the other axes), by
// softmax_row.wgsl's row pass.
// p: [n_rows, nd_k, k_shape[nd_k], k_in_strides[nd_k], k_out_strides[nd_k], in_offset,
//     L, axis_in_stride, axis_out_stride]
// MODE: 0 softmax, 1 log-softmax (out has the input's shape, contiguous), 2 logsumexp
// (out has one element per row)
override MODE: u32 = 0u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

struct Row { ib: u32, sx: u32 }
fn item(r: Row, j: u32) -> f32 { return x[r.ib + j * r.sx]; }

@compute @workgroup_size(256)
fn softmax(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) l: u32) {
    let row = flat_group(w, nwg);
    let live = row < p[0];
    let nk = p[1];
    let at = 2u + 3u * nk;
    let len = p[at + 1u];
    let sx = p[at + 2u];
    let so = p[at + 3u];
    var ib = 0u;
    var ob = 0u;
    if live {
        ib = p[at] + strided(row, nk, 2u, 2u + nk);
        ob = strided(row, nk, 2u, 2u + 2u * nk);
    }
    let row_at = Row(ib, sx);
    let ms = row_max_sum(row_at, len, live, l);
    let m = ms.x;
    let s = ms.y;
    if !live { return; }
    if MODE == 2u {
        if l == 0u { out[row] = m + log(s); }
        return;
    }
    let ls = log(s);
    let inv = 1.0 / s;
    for (var j = l; j < len; j += WG) {
        let z = item(row_at, j) - m;
        if MODE == 1u { out[ob + j * so] = z - ls; } else { out[ob + j * so] = exp(z) * inv; }
    }
}
