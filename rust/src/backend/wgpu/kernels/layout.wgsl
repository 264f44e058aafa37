// Shared by every kernel family (prepended to each family's source by the Rust side).
// `p` holds a launch's parameters as u32 words (f32 values bit-cast). A strided walk
// reads a shape of `nd` sizes at word `shape_at` and `nd` element strides at `strides_at`.
@group(1) @binding(0) var<storage, read> p: array<u32>;

const WG: u32 = 256u;

fn pf(i: u32) -> f32 { return bitcast<f32>(p[i]); }

// The buffer offset (before the layout's own offset) of row-major element `i`.
fn strided(i: u32, nd: u32, shape_at: u32, strides_at: u32) -> u32 {
    var rem = i;
    var o = 0u;
    for (var d = nd; d > 0u; d--) {
        let s = p[shape_at + d - 1u];
        o += (rem % s) * p[strides_at + d - 1u];
        rem /= s;
    }
    return o;
}

// The flat index of an invocation of a 1-d launch spread over x and y (kernel::groups_1d).
fn flat_id(g: vec3<u32>, nwg: vec3<u32>) -> u32 { return g.x + g.y * nwg.x * WG; }
// The flat index of a workgroup of a launch of one workgroup per item.
fn flat_group(w: vec3<u32>, nwg: vec3<u32>) -> u32 { return w.x + w.y * nwg.x; }
