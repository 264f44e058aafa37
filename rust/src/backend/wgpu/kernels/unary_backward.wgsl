// dx = g · f'(x, y): x, y and g contiguous of n elements, all three bound read-only so
// that one buffer may be both x and y (relu, tanh and sigmoid read f' off y alone, and
// their callers keep only y). The op is the override OP (elementwise.rs's unary_code).
// p: [n, 0, 0, alpha, 0]
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> gy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn unary_backward(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(g, nwg);
    if i >= p[0] { return; }
    dx[i] = gy[i] * deriv(x[i], y[i], pf(3u));
}
