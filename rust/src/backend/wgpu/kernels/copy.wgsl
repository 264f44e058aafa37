// Moving data: a strided copy from one layout into another of the same shape (making a
// view contiguous, writing a block into a slice of a bigger tensor), and fill.
// copy p: [n, nd, shape[nd], src_offset, src_strides[nd], dst_offset, dst_strides[nd]]
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn copy(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(g, nwg);
    if i >= p[0] { return; }
    let nd = p[1];
    let at_s = 2u + nd;
    let at_d = at_s + 1u + nd;
    dst[p[at_d] + strided(i, nd, 2u, at_d + 1u)] = src[p[at_s] + strided(i, nd, 2u, at_s + 1u)];
}

// dst[offset + i] = value for i < n.   p: [n, offset, value]
@group(0) @binding(0) var<storage, read_write> fill_dst: array<f32>;

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(g, nwg);
    if i >= p[0] { return; }
    fill_dst[p[1] + i] = pf(2u);
}
