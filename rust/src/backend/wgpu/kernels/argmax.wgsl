// The index of the largest value of each row of a contiguous [rows, n] input (the first
// on ties; NaN counts as the largest, as the CPU kernel, Julia's findmax and numpy's
// argmax do). One invocation per row; the index is written as a u32.
// p: [rows, n]
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

fn is_nan(v: f32) -> bool { return !(v == v); }

@compute @workgroup_size(256)
fn argmax(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = flat_id(g, nwg);
    let rows = p[0];
    let n = p[1];
    if r >= rows { return; }
    let base = r * n;
    var best = 0u;
    var bv = x[base];
    for (var i = 1u; i < n; i++) {
        if is_nan(bv) { break; }
        let v = x[base + i];
        if v > bv || is_nan(v) {
            best = i;
            bv = v;
        }
    }
    out[r] = best;
}
