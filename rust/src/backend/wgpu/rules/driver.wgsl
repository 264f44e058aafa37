// The single-pass driver every elementwise rule runs through on the GPU, the mirror of
// optim/kernel.rs. The host (rules/mod.rs) prepends `const K` (the rule's number of
// state arrays, at least 1) and the `S0…` bindings, puts the loads and stores of the
// state at the two placeholders in `main`, and appends the rule's `fn rule`.
// P holds [n, mode, the rule's scalars as f32 bits…]; mode 0 is the fused update
// x ← x − dx′, mode 1 the pure apply g ← dx′.
@group(0) @binding(0) var<storage, read_write> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> G: array<f32>;
@group(1) @binding(0) var<storage, read> P: array<u32>;

// The rule's k-th scalar.
fn p(k: u32) -> f32 { return bitcast<f32>(P[k + 2u]); }

// Julia's max and min for floats: NaN if either argument is NaN (WGSL's are undefined there).
fn jmax(a: f32, b: f32) -> f32 {
    if (a != a || b != b) { return a + b; }
    return select(b, a, a > b);
}
fn jmin(a: f32, b: f32) -> f32 {
    if (a != a || b != b) { return a + b; }
    return select(b, a, a < b);
}
// Julia's sign: ±1, and 0 (keeping its sign) or NaN passed through.
fn jsign(a: f32) -> f32 {
    if (a > 0.0) { return 1.0; }
    if (a < 0.0) { return -1.0; }
    return a;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    // large arrays are dispatched as a 2-D grid of workgroups (65535 per dimension)
    let i = gid.x + gid.y * nw.x * 256u;
    if (i >= P[0]) { return; }
    var s: array<f32, K>;
    LOAD_STATES
    let mode = P[1];
    let d = rule(X[i], G[i], &s);
    STORE_STATES
    if (mode == 0u) {
        X[i] = X[i] - d;
    } else if (mode == 1u) {
        G[i] = d;
    }
}
