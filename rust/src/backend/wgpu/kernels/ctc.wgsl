// ctc_loss of one sequence (Graves' α–β recursions in log space), with its gradient
// with respect to the logits, in one workgroup: the invocations share the states s of
// the extended label sequence (blank, l1, blank, l2, …, blank) and step through time
// together, a storage barrier between steps, so nothing returns to the host mid-way.
// log 0 is the finite NEG (WGSL does not promise IEEE infinities), read back as +∞ loss.
// p: [T, C, S, grad?]; work: [log-softmax (T·C), α (T·S), β (T·S)]
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> ext: array<u32>;
@group(0) @binding(2) var<storage, read_write> work: array<f32>;
@group(0) @binding(3) var<storage, read_write> nll: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

const NEG: f32 = -1e30;

fn is_zero(a: f32) -> bool { return a < -1e29; }

// log(eᵃ + eᵇ), log 0 kept as NEG
fn lae(a: f32, b: f32) -> f32 {
    let m = max(a, b);
    if is_zero(m) { return NEG; }
    return m + log(exp(a - m) + exp(b - m));
}

// the state s may be entered from s − 2 (a label differing from the one before it)
fn skips(s: u32, blank: u32) -> bool { return s >= 2u && ext[s] != blank && ext[s] != ext[s - 2u]; }

// log p(labels): the sum of the last two α of the last step
fn loglik(a0: u32, t_len: u32, s_len: u32) -> f32 {
    let last = a0 + (t_len - 1u) * s_len;
    var ll = work[last + s_len - 1u];
    if s_len > 1u { ll = lae(ll, work[last + s_len - 2u]); }
    return ll;
}

@compute @workgroup_size(256)
fn ctc(@builtin(local_invocation_index) li: u32) {
    let t_len = p[0];
    let c = p[1];
    let s_len = p[2];
    let blank = c - 1u;
    let a0 = t_len * c;
    let b0 = a0 + t_len * s_len;
    // log-softmax over classes, a row per invocation
    for (var t = li; t < t_len; t += WG) {
        var m = x[t * c];
        for (var k = 1u; k < c; k++) { m = max(m, x[t * c + k]); }
        var z = 0.0;
        for (var k = 0u; k < c; k++) { z += exp(x[t * c + k] - m); }
        let ls = log(z);
        for (var k = 0u; k < c; k++) { work[t * c + k] = x[t * c + k] - m - ls; }
    }
    storageBarrier();
    // α_0: only the first blank and the first label can start a path
    for (var s = li; s < s_len; s += WG) {
        work[a0 + s] = select(NEG, work[ext[s]], s < 2u);
    }
    storageBarrier();
    for (var t = 1u; t < t_len; t++) {
        let prev = a0 + (t - 1u) * s_len;
        for (var s = li; s < s_len; s += WG) {
            var a = work[prev + s];
            if s >= 1u { a = lae(a, work[prev + s - 1u]); }
            if skips(s, blank) { a = lae(a, work[prev + s - 2u]); }
            work[a0 + t * s_len + s] = a + work[t * c + ext[s]];
        }
        storageBarrier();
    }
    let ll = loglik(a0, t_len, s_len);
    if li == 0u { nll[0] = select(-ll, bitcast<f32>(0x7f800000u), is_zero(ll)); }
    if p[3] == 0u { return; }
    // β_t(s): log-probability of the rest after step t from state s (step t's own
    // emission excluded), so Σ_s α_t(s)·β_t(s) = p for every t
    let lastb = b0 + (t_len - 1u) * s_len;
    for (var s = li; s < s_len; s += WG) {
        work[lastb + s] = select(NEG, 0.0, s + 2u >= s_len);
    }
    storageBarrier();
    for (var t = t_len - 1u; t > 0u; t--) {
        let nxt = b0 + t * s_len;
        let row = b0 + (t - 1u) * s_len;
        for (var s = li; s < s_len; s += WG) {
            var b = work[nxt + s] + work[t * c + ext[s]];
            if s + 1u < s_len { b = lae(b, work[nxt + s + 1u] + work[t * c + ext[s + 1u]]); }
            if s + 2u < s_len && skips(s + 2u, blank) { b = lae(b, work[nxt + s + 2u] + work[t * c + ext[s + 2u]]); }
            work[row + s] = b;
        }
        storageBarrier();
    }
    // d(−log p)/d logit = softmax − the posterior occupancy of class k at step t
    for (var i = li; i < t_len * c; i += WG) {
        let t = i / c;
        let k = i % c;
        var occ = NEG;
        for (var s = 0u; s < s_len; s++) {
            if ext[s] == k { occ = lae(occ, work[a0 + t * s_len + s] + work[b0 + t * s_len + s]); }
        }
        grad[i] = select(exp(work[i]) - exp(occ - ll), 0.0, is_zero(ll));
    }
}
