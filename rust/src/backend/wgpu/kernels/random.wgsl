// Counter-based random numbers: element i of a draw keyed by a 64-bit seed is a hash of
// (i, seed), so every invocation draws on its own with no state to carry. The hash is
// PCG's output permutation used as a hash (Jarzynski & Olano, "Hash Functions for GPU
// Rendering", JCGT 2020), chained over the seed's words and the counter.
// p: [n, seed low word, seed high word, a (f32), b (f32)]
@group(0) @binding(0) var<storage, read_write> out: array<f32>;

fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// A uniform number in [0, 1) with 24 random bits, for element i of stream k.
fn uniform01(i: u32, k: u32) -> f32 {
    let h = pcg(i + pcg(p[1] + pcg(p[2] ^ k)));
    return f32(h >> 8u) * (1.0 / 16777216.0);
}

// uniform: a + (b − a)·u
@compute @workgroup_size(256)
fn uniform(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(g, nwg);
    if i >= p[0] { return; }
    out[i] = pf(3u) + (pf(4u) - pf(3u)) * uniform01(i, 0u);
}

// normal: a + b·N(0, 1) by Box–Muller from streams 0 and 1
@compute @workgroup_size(256)
fn normal(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(g, nwg);
    if i >= p[0] { return; }
    let u1 = 1.0 - uniform01(i, 0u); // in (0, 1]: log is finite
    let u2 = uniform01(i, 1u);
    out[i] = pf(3u) + pf(4u) * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

// keep_mask: b where a uniform draw exceeds a (kept), else 0 — dropout's rule
@compute @workgroup_size(256)
fn keep_mask(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(g, nwg);
    if i >= p[0] { return; }
    out[i] = select(0.0, pf(4u), uniform01(i, 0u) > pf(3u));
}
