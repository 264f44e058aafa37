// One time step of a recurrent sequence, forward or back, one invocation per
// (sequence b, hidden unit j). Buffers are batch-major: row r = b·T + t of a (B·T, ·)
// matrix is step t of sequence b. `xp` is the input projection x·Wiᵀ + bias of every
// step, `gh` this step's h·Whᵀ (B, gates·H); gate blocks in Flux's order.
// p: [B, T, H, t, alpha (f32, the RNN activation's argument)]
//
// The bindings of each entry, in order, are listed above it.

// the RNN activation is the identity (OP is not read)
override IDENTITY: bool = false;

@group(0) @binding(0) var<storage, read> b0: array<f32>;
@group(0) @binding(1) var<storage, read> b1: array<f32>;
@group(0) @binding(2) var<storage, read_write> b2: array<f32>;
@group(0) @binding(3) var<storage, read_write> b3: array<f32>;
@group(0) @binding(4) var<storage, read_write> b4: array<f32>;
@group(0) @binding(5) var<storage, read_write> b5: array<f32>;
@group(0) @binding(6) var<storage, read_write> b6: array<f32>;

// invocation (sequence b, unit j) at step row r = b·T + t: `s` its element of a (B·T, H)
// matrix, `k` its element of a (B, H) one
struct At { live: bool, b: u32, j: u32, r: u32, h: u32, s: u32, k: u32 }

fn at(g: vec3<u32>, nwg: vec3<u32>) -> At {
    let i = flat_id(g, nwg);
    let h = p[2];
    let b = i / max(h, 1u);
    let j = i % max(h, 1u);
    let r = b * p[1] + p[3];
    return At(i < p[0] * h, b, j, r, h, r * h + j, b * h + j);
}

// its element of gate q's block in a (B·T, n·H) matrix
fn gate(a: At, n: u32, q: u32) -> u32 { return (a.r * n + q) * a.h + a.j; }
// gate q's pre-activation (of n gates): the step's input projection plus h·Whᵀ
fn pre(a: At, n: u32, q: u32) -> f32 { return b0[gate(a, n, q)] + b1[(a.b * n + q) * a.h + a.j]; }

// lstm_step: xp, gh, c0, acts (B·T, 4H), cs (B·T, H), out (B·T·H states, then B·H last cells)
@compute @workgroup_size(256)
fn lstm_step(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let a = at(g, nwg);
    if !a.live { return; }
    let i = sigmoid(pre(a, 4u, 0u));
    let f = sigmoid(pre(a, 4u, 1u));
    let c = tanh_(pre(a, 4u, 2u));
    let o = sigmoid(pre(a, 4u, 3u));
    var cp: f32;
    if p[3] == 0u { cp = b2[a.k]; } else { cp = b4[a.s - a.h]; }
    let cn = f * cp + i * c;
    b3[gate(a, 4u, 0u)] = i;
    b3[gate(a, 4u, 1u)] = f;
    b3[gate(a, 4u, 2u)] = c;
    b3[gate(a, 4u, 3u)] = o;
    b4[a.s] = cn;
    b5[a.s] = o * tanh_(cn);
    if p[3] + 1u == p[1] { b5[p[0] * p[1] * a.h + a.k] = cn; }
}

// lstm_step_bwd: g (states' gradient, then the last cells'), dh (B, H), dc (B, H, in
// place), acts, c_prev (B·T, H: c0 then the cells shifted by a step), cs, dg (B·T, 4H)
@compute @workgroup_size(256)
fn lstm_step_bwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let a = at(g, nwg);
    if !a.live { return; }
    let i = b3[gate(a, 4u, 0u)];
    let f = b3[gate(a, 4u, 1u)];
    let c = b3[gate(a, 4u, 2u)];
    let o = b3[gate(a, 4u, 3u)];
    let dy = b0[a.s] + b1[a.k];
    let t = tanh_(b5[a.s]);
    let dcc = b2[a.k] + dy * o * (1.0 - t * t);
    b6[gate(a, 4u, 0u)] = dcc * c * i * (1.0 - i);
    b6[gate(a, 4u, 1u)] = dcc * b4[a.s] * f * (1.0 - f);
    b6[gate(a, 4u, 2u)] = dcc * i * (1.0 - c * c);
    b6[gate(a, 4u, 3u)] = dy * t * o * (1.0 - o);
    b2[a.k] = dcc * f;
}

// gru_step: xp, gh, h0, acts (B·T, 3H: r, z, candidate), gn (B·T, H: the candidate's
// h·Whᵀ), ys (B·T, H)
@compute @workgroup_size(256)
fn gru_step(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let a = at(g, nwg);
    if !a.live { return; }
    let r = sigmoid(pre(a, 3u, 0u));
    let z = sigmoid(pre(a, 3u, 1u));
    let hn = b1[(a.b * 3u + 2u) * a.h + a.j];
    let c = tanh_(b0[gate(a, 3u, 2u)] + r * hn);
    var hp: f32;
    if p[3] == 0u { hp = b2[a.k]; } else { hp = b5[a.s - a.h]; }
    b3[gate(a, 3u, 0u)] = r;
    b3[gate(a, 3u, 1u)] = z;
    b3[gate(a, 3u, 2u)] = c;
    b4[a.s] = hn;
    b5[a.s] = (1.0 - z) * c + z * hp;
}

// gru_step_bwd: g, dm (B, H: what reached the state through Wh), dz (B, H, in place: the
// direct part, through z), h_prev (B·T, H), acts, gn, dg (B·T, 6H: the gradients reaching
// x·Wiᵀ + b, then the ones reaching h·Whᵀ)
@compute @workgroup_size(256)
fn gru_step_bwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let a = at(g, nwg);
    if !a.live { return; }
    let r = b4[gate(a, 3u, 0u)];
    let z = b4[gate(a, 3u, 1u)];
    let c = b4[gate(a, 3u, 2u)];
    let dy = b0[a.s] + b1[a.k] + b2[a.k];
    let dc = dy * (1.0 - z) * (1.0 - c * c);
    let dr = dc * b5[a.s] * r * (1.0 - r);
    let dzz = dy * (b3[a.s] - c) * z * (1.0 - z);
    b6[gate(a, 6u, 0u)] = dr;
    b6[gate(a, 6u, 1u)] = dzz;
    b6[gate(a, 6u, 2u)] = dc;
    b6[gate(a, 6u, 3u)] = dr;
    b6[gate(a, 6u, 4u)] = dzz;
    b6[gate(a, 6u, 5u)] = dc * r;
    b2[a.k] = dy * z;
}

// rnn_step: xp, gh, pre (B·T, H), ys (B·T, H)
@compute @workgroup_size(256)
fn rnn_step(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let a = at(g, nwg);
    if !a.live { return; }
    let v = pre(a, 1u, 0u);
    b2[a.s] = v;
    if IDENTITY { b3[a.s] = v; } else { b3[a.s] = fwd(v, pf(4u), 0.0); }
}

// rnn_step_bwd: g, dh (B, H), pre, ys, dg (B·T, H)
@compute @workgroup_size(256)
fn rnn_step_bwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let a = at(g, nwg);
    if !a.live { return; }
    let dy = b0[a.s] + b1[a.k];
    if IDENTITY { b4[a.s] = dy; } else { b4[a.s] = dy * deriv(b2[a.s], b3[a.s], pf(4u)); }
}
