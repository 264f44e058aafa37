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

struct At { live: bool, b: u32, j: u32, r: u32, h: u32 }

fn at(g: vec3<u32>, nwg: vec3<u32>) -> At {
    let i = flat_id(g, nwg);
    let h = p[2];
    let b = i / max(h, 1u);
    return At(i < p[0] * h, b, i % max(h, 1u), b * p[1] + p[3], h);
}

// lstm_step: xp, gh, c0, acts (B·T, 4H), cs (B·T, H), out (B·T·H states, then B·H last cells)
@compute @workgroup_size(256)
fn lstm_step(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let a = at(g, nwg);
    if !a.live { return; }
    let h = a.h;
    let x = a.r * 4u * h + a.j;
    let y = a.b * 4u * h + a.j;
    let i = sigmoid(b0[x] + b1[y]);
    let f = sigmoid(b0[x + h] + b1[y + h]);
    let c = tanh_(b0[x + 2u * h] + b1[y + 2u * h]);
    let o = sigmoid(b0[x + 3u * h] + b1[y + 3u * h]);
    var cp: f32;
    if p[3] == 0u { cp = b2[a.b * h + a.j]; } else { cp = b4[(a.r - 1u) * h + a.j]; }
    let cn = f * cp + i * c;
    b3[x] = i;
    b3[x + h] = f;
    b3[x + 2u * h] = c;
    b3[x + 3u * h] = o;
    b4[a.r * h + a.j] = cn;
    b5[a.r * h + a.j] = o * tanh_(cn);
    if p[3] + 1u == p[1] { b5[p[0] * p[1] * h + a.b * h + a.j] = cn; }
}

// lstm_step_bwd: g (states' gradient, then the last cells'), dh (B, H), dc (B, H, in
// place), acts, c_prev (B·T, H: c0 then the cells shifted by a step), cs, dg (B·T, 4H)
@compute @workgroup_size(256)
fn lstm_step_bwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let a = at(g, nwg);
    if !a.live { return; }
    let h = a.h;
    let s = a.r * h + a.j;
    let x = a.r * 4u * h + a.j;
    let k = a.b * h + a.j;
    let i = b3[x];
    let f = b3[x + h];
    let c = b3[x + 2u * h];
    let o = b3[x + 3u * h];
    let dy = b0[s] + b1[k];
    let t = tanh_(b5[s]);
    let dcc = b2[k] + dy * o * (1.0 - t * t);
    b6[x] = dcc * c * i * (1.0 - i);
    b6[x + h] = dcc * b4[s] * f * (1.0 - f);
    b6[x + 2u * h] = dcc * i * (1.0 - c * c);
    b6[x + 3u * h] = dy * t * o * (1.0 - o);
    b2[k] = dcc * f;
}

// gru_step: xp, gh, h0, acts (B·T, 3H: r, z, candidate), gn (B·T, H: the candidate's
// h·Whᵀ), ys (B·T, H)
@compute @workgroup_size(256)
fn gru_step(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let a = at(g, nwg);
    if !a.live { return; }
    let h = a.h;
    let x = a.r * 3u * h + a.j;
    let y = a.b * 3u * h + a.j;
    let r = sigmoid(b0[x] + b1[y]);
    let z = sigmoid(b0[x + h] + b1[y + h]);
    let hn = b1[y + 2u * h];
    let c = tanh_(b0[x + 2u * h] + r * hn);
    var hp: f32;
    if p[3] == 0u { hp = b2[a.b * h + a.j]; } else { hp = b5[(a.r - 1u) * h + a.j]; }
    b3[x] = r;
    b3[x + h] = z;
    b3[x + 2u * h] = c;
    b4[a.r * h + a.j] = hn;
    b5[a.r * h + a.j] = (1.0 - z) * c + z * hp;
}

// gru_step_bwd: g, dm (B, H: what reached the state through Wh), dz (B, H, in place: the
// direct part, through z), h_prev (B·T, H), acts, gn, dg (B·T, 6H: the gradients reaching
// x·Wiᵀ + b, then the ones reaching h·Whᵀ)
@compute @workgroup_size(256)
fn gru_step_bwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let a = at(g, nwg);
    if !a.live { return; }
    let h = a.h;
    let s = a.r * h + a.j;
    let x = a.r * 3u * h + a.j;
    let k = a.b * h + a.j;
    let r = b4[x];
    let z = b4[x + h];
    let c = b4[x + 2u * h];
    let dy = b0[s] + b1[k] + b2[k];
    let dc = dy * (1.0 - z) * (1.0 - c * c);
    let dr = dc * b5[s] * r * (1.0 - r);
    let dzz = dy * (b3[s] - c) * z * (1.0 - z);
    let o = a.r * 6u * h + a.j;
    b6[o] = dr;
    b6[o + h] = dzz;
    b6[o + 2u * h] = dc;
    b6[o + 3u * h] = dr;
    b6[o + 4u * h] = dzz;
    b6[o + 5u * h] = dc * r;
    b2[k] = dy * z;
}

// rnn_step: xp, gh, pre (B·T, H), ys (B·T, H)
@compute @workgroup_size(256)
fn rnn_step(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let a = at(g, nwg);
    if !a.live { return; }
    let s = a.r * a.h + a.j;
    let v = b0[s] + b1[a.b * a.h + a.j];
    b2[s] = v;
    if IDENTITY { b3[s] = v; } else { b3[s] = fwd(v, pf(4u), 0.0); }
}

// rnn_step_bwd: g, dh (B, H), pre, ys, dg (B·T, H)
@compute @workgroup_size(256)
fn rnn_step_bwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let a = at(g, nwg);
    if !a.live { return; }
    let s = a.r * a.h + a.j;
    let dy = b0[s] + b1[a.b * a.h + a.j];
    if IDENTITY { b4[s] = dy; } else { b4[s] = dy * deriv(b2[s], b3[s], pf(4u)); }
}
