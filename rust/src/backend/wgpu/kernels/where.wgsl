// out = cond != 0 ? a : b elementwise, the three operands broadcast to out's shape.
// p: [n, nd, shape[nd], c_offset, c_strides[nd], a_offset, a_strides[nd], b_offset, b_strides[nd]]
@group(0) @binding(0) var<storage, read> c: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn where_(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(g, nwg);
    if i >= p[0] { return; }
    let nd = p[1];
    let at_c = 2u + nd;
    let at_a = at_c + 1u + nd;
    let at_b = at_a + 1u + nd;
    let cv = c[p[at_c] + strided(i, nd, 2u, at_c + 1u)];
    let av = a[p[at_a] + strided(i, nd, 2u, at_a + 1u)];
    let bv = b[p[at_b] + strided(i, nd, 2u, at_b + 1u)];
    out[i] = select(bv, av, cv != 0.0);
}
