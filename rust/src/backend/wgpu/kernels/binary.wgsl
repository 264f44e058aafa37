// out = a ∘ b elementwise with numpy broadcasting: both operands are walked with their
// own strides (0 on a broadcast dimension) over the output's shape; out is contiguous.
// Comparisons give 1.0 or 0.0. The op is the override OP (codes in elementwise.rs).
// p: [n, nd, shape[nd], a_offset, a_strides[nd], b_offset, b_strides[nd]]
override OP: u32 = 0u;
override CONTIG: bool = false;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

fn is_nan(v: f32) -> bool { return !(v == v); }

fn op(u: f32, v: f32) -> f32 {
    switch OP {
        case 0u: { return u + v; }
        case 1u: { return u - v; }
        case 2u: { return u * v; }
        case 3u: { return u / v; }
        case 4u: { return pow(u, v); }
        // NaN-propagating, like numpy's maximum and the CPU kernel
        case 5u: { return select(v, u, is_nan(u) || u >= v); }
        case 6u: { return select(v, u, is_nan(u) || u <= v); }
        case 7u: { return select(0.0, 1.0, u > v); }
        case 8u: { return select(0.0, 1.0, u >= v); }
        case 9u: { return select(0.0, 1.0, u < v); }
        case 10u: { return select(0.0, 1.0, u <= v); }
        case 11u: { return select(0.0, 1.0, u == v); }
        case 12u: { return select(0.0, 1.0, u != v); }
        default: { return u; }
    }
}

@compute @workgroup_size(256)
fn binary(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(g, nwg);
    if i >= p[0] { return; }
    let nd = p[1];
    let at_a = 2u + nd;
    let at_b = at_a + 1u + nd;
    var ia = p[at_a] + i;
    var ib = p[at_b] + i;
    if !CONTIG {
        ia = p[at_a] + strided(i, nd, 2u, at_a + 1u);
        ib = p[at_b] + strided(i, nd, 2u, at_b + 1u);
    }
    out[i] = op(a[ia], b[ib]);
}
