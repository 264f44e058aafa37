// Normalisation of a (P, S, Q) view (ops/norm.rs): one workgroup per slice s, which
// reduces over the slice's P·Q values in workgroup memory and then writes them.
// p: [P, S, Q, period, inner, eps (f32 bits), batch statistics? (0/1), write gxh? (0/1),
//     (norm_forward:) activation? (0/1), keep z? (0/1), alpha, beta]
// Element e (0 ≤ e < P·Q) of slice s is x[((e / Q)·S + s)·Q + e mod Q]; its affine
// entry is (s mod period)·inner + (e mod Q) / (Q / inner).

// norm_forward: z = γ·(x − μ)/√(σ² + ε) + β; with batch statistics it also writes
// stats = [μ (S), σ² (S)], else it reads them there. With an activation (the override
// OP of activation.wgsl) it writes y = act(z) in the same pass, and z only when the
// activation's derivative needs it.
@group(0) @binding(0) var<storage, read> fx: array<f32>;
@group(0) @binding(1) var<storage, read> fgamma: array<f32>;
@group(0) @binding(2) var<storage, read> fbeta: array<f32>;
@group(0) @binding(3) var<storage, read_write> fstats: array<f32>;
@group(0) @binding(4) var<storage, read_write> fz: array<f32>;
@group(0) @binding(5) var<storage, read_write> fy: array<f32>;

// norm_backward: with dz the gradient of z and dx̂ = dz·γ,
// dx = (dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))/√(σ² + ε) (the means only with batch
// statistics), and gxh = dz·x̂ (when asked), whose sums over the slices sharing an
// affine entry give dγ.
@group(0) @binding(0) var<storage, read> bx: array<f32>;
@group(0) @binding(1) var<storage, read> bdz: array<f32>;
@group(0) @binding(2) var<storage, read> bgamma: array<f32>;
@group(0) @binding(3) var<storage, read> bstats: array<f32>;
@group(0) @binding(4) var<storage, read_write> bdx: array<f32>;
@group(0) @binding(5) var<storage, read_write> bgxh: array<f32>;

var<workgroup> red_a: array<f32, WG>;
var<workgroup> red_b: array<f32, WG>;

// The workgroup's sums of (a, b), by a tree in workgroup memory.
fn sum2(t: u32, a: f32, b: f32) -> vec2<f32> {
    red_a[t] = a;
    red_b[t] = b;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w >>= 1u) {
        if t < w {
            red_a[t] += red_a[t + w];
            red_b[t] += red_b[t + w];
        }
        workgroupBarrier();
    }
    let r = vec2<f32>(red_a[0], red_b[0]);
    workgroupBarrier();
    return r;
}

fn elem(e: u32, s: u32) -> u32 { return ((e / p[2]) * p[1] + s) * p[2] + e % p[2]; }
fn entry(e: u32, s: u32) -> u32 { return (s % p[3]) * p[4] + (e % p[2]) / (p[2] / p[4]); }

@compute @workgroup_size(256)
fn norm_forward(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let s = flat_group(w, nwg);
    if s >= p[1] { return; }
    let m = p[0] * p[2];
    var mu: f32;
    var v: f32;
    if p[6] == 1u {
        var a = 0.0;
        for (var e = t; e < m; e += WG) { a += fx[elem(e, s)]; }
        mu = sum2(t, a, 0.0).x / f32(m);
        var b = 0.0;
        for (var e = t; e < m; e += WG) {
            let d = fx[elem(e, s)] - mu;
            b += d * d;
        }
        v = sum2(t, b, 0.0).x / f32(m);
        if t == 0u {
            fstats[s] = mu;
            fstats[p[1] + s] = v;
        }
    } else {
        mu = fstats[s];
        v = fstats[p[1] + s];
    }
    let inv = 1.0 / sqrt(v + pf(5u));
    for (var e = t; e < m; e += WG) {
        let i = elem(e, s);
        let a = entry(e, s);
        // as the CPU: x·scale + shift
        let scale = fgamma[a] * inv;
        let z = fx[i] * scale + (fbeta[a] - mu * scale);
        if p[8] == 0u {
            fz[i] = z;
        } else {
            if p[9] == 1u { fz[i] = z; }
            fy[i] = fwd(z, pf(10u), pf(11u));
        }
    }
}

@compute @workgroup_size(256)
fn norm_backward(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let s = flat_group(w, nwg);
    if s >= p[1] { return; }
    let m = p[0] * p[2];
    let mu = bstats[s];
    let inv = 1.0 / sqrt(bstats[p[1] + s] + pf(5u));
    var ma = 0.0;
    var mb = 0.0;
    if p[6] == 1u {
        var a = 0.0;
        var b = 0.0;
        for (var e = t; e < m; e += WG) {
            let i = elem(e, s);
            let xh = (bx[i] - mu) * inv;
            let dxh = bdz[i] * bgamma[entry(e, s)];
            a += dxh;
            b += dxh * xh;
        }
        let r = sum2(t, a, b);
        ma = r.x / f32(m);
        mb = r.y / f32(m);
    }
    for (var e = t; e < m; e += WG) {
        let i = elem(e, s);
        let xh = (bx[i] - mu) * inv;
        let dz = bdz[i];
        bdx[i] = (dz * bgamma[entry(e, s)] - ma - xh * mb) * inv;
        if p[7] == 1u { bgxh[i] = dz * xh; }
    }
}
