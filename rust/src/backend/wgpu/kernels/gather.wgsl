// Row indexing along one axis of a contiguous [outer, rows, inner] array by a u32 index
// list: index_select (gather) and its adjoint scatter_add.
// index_select p: [n_out, outer, rows_in, k, inner]: out[o, j, i] = src[o, idx[j], i]
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// element t = [o, j, i] of the [outer, k, inner] side: its place [o, idx[j], i] on the
// [outer, rows, inner] side
fn row_of(t: u32) -> u32 {
    let inner = p[4];
    let k = p[3];
    let i = t % inner;
    let j = (t / inner) % k;
    let o = t / (inner * k);
    return (o * p[2] + idx[j]) * inner + i;
}

@compute @workgroup_size(256)
fn index_select(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_id(g, nwg);
    if t >= p[0] { return; }
    out[t] = src[row_of(t)];
}

// scatter_add p: [n_src, outer, rows_out, k, inner]: acc[o, idx[j], i] += src[o, j, i]
// (acc zero-filled beforehand). f32 atomics are a compare-exchange loop on the bits.
@group(0) @binding(2) var<storage, read_write> acc: array<atomic<u32>>;

@compute @workgroup_size(256)
fn scatter_add(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_id(g, nwg);
    if t >= p[0] { return; }
    let at = row_of(t);
    let v = src[t];
    var old = atomicLoad(&acc[at]);
    loop {
        let r = atomicCompareExchangeWeak(&acc[at], old, bitcast<u32>(bitcast<f32>(old) + v));
        if r.exchanged { break; }
        old = r.old_value;
    }
}
