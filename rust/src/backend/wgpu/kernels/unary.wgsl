// y = f(x) elementwise over a strided x into a contiguous y (the backward is
// unary_backward.wgsl). The op is the override OP (codes in elementwise.rs); alpha and
// beta are its scalar arguments (LeakyRelu's slope, Affine's a·x + b, Clamp's bounds).
// p: [n, nd, shape[nd], x_offset, x_strides[nd], alpha, beta]
// every operand contiguous: skip the strided walk
override CONTIG: bool = false;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

fn x_at(i: u32) -> u32 {
    let nd = p[1];
    if CONTIG { return p[2u + nd] + i; }
    return p[2u + nd] + strided(i, nd, 2u, 3u + nd);
}

@compute @workgroup_size(256)
fn unary(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(g, nwg);
    if i >= p[0] { return; }
    let nd = p[1];
    let s = 3u + 2u * nd;
    y[i] = fwd(x[x_at(i)], pf(s), pf(s + 1u));
}
