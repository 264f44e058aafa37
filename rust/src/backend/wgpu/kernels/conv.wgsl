// Convolution as implicit GEMM: the column matrix of im2col is never built; each tile
// of the GEMM's operand B is gathered from the image as it is staged into workgroup
// memory. One geometry serves the three products (the "big" tensor is a convolution's
// input, the "small" one its output; sizes padded to 3 spatial dims), chosen by MODE:
//   0 forward      small[n, g·osg + o, l] = Σ_r W[g·osg + o, r] · col(big)[n, g, r, l]
//                  (M = osg, N = n·ls, K = ckg; + bias, relu when EPI says so)
//   1 input grad   big[n, g·cbg + c, b] = Σ_(o, kidx) W[g·osg + o, c·kk + kidx] · small[n, g·osg + o, l(b, kidx)]
//                  (M = cbg, N = n·lb, K = osg·kk; the transposed implicit GEMM: B gathers
//                  the small tensor where the window at b lands on an output position)
//   2 filter grad  part[s, g·osg + o, r] = Σ_(n, l) in split s of small[n, g·osg + o, l] · col(big)[n, g, r, l]
//                  (M = osg, N = ckg, K = n·ls split into chunks; the parts are summed after)
// Workgroup z is the group (mode 2: group + groups · split). Each 16×16 workgroup
// computes a 64×64 tile of the product, each invocation a 4×4 block of it, in slices of
// 16 along K staged in workgroup memory (the tiling of matmul.wgsl).
// p: [M, N, K, kchunk, n, cb, cs, groups, big×3, small×3, k×3, stride×3, pad×3, dil×3,
//     lb, ls, kk, cbg, osg, ckg, col_tile0]
@group(0) @binding(0) var<storage, read> src_a: array<f32>; // W (modes 0, 1) or small (2)
@group(0) @binding(1) var<storage, read> src_b: array<f32>; // big (modes 0, 2) or small (1)
@group(0) @binding(2) var<storage, read> bias: array<f32>;  // mode 0 with a bias; else unread
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override MODE: u32 = 0u;
// mode 0's epilogue: 1 adds the bias, 2 applies relu (3 both)
override EPI: u32 = 0u;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

var<workgroup> As: array<f32, 1024>; // [BK][BM]
var<workgroup> Bs: array<f32, 1024>; // [BK][BN]

// (d, h, w) of a flat position in a [d, h, w] box whose sizes are at word `at`
fn unflat(i: u32, at: u32) -> vec3<u32> {
    let w = p[at + 2u];
    let h = p[at + 1u];
    return vec3<u32>(i / (w * h), (i / w) % h, i % w);
}

// im2col's entry (r, l) for sample ni and group gi: the big tensor at the position that
// kernel offset r % kk of output position l reads, 0 in the padding
fn col(ni: u32, gi: u32, r: u32, l: u32) -> f32 {
    let kk = p[28];
    let c = r / kk;
    let ko = unflat(r % kk, 14u);
    let o = unflat(l, 11u);
    let pos = vec3<i32>(o * vec3<u32>(p[17], p[18], p[19]) + ko * vec3<u32>(p[23], p[24], p[25]))
        - vec3<i32>(vec3<u32>(p[20], p[21], p[22]));
    let big = vec3<i32>(vec3<u32>(p[8], p[9], p[10]));
    if any(pos < vec3<i32>(0)) || any(pos >= big) { return 0.0; }
    let q = vec3<u32>(pos);
    return src_b[(ni * p[5] + gi * p[29] + c) * p[26] + (q.x * p[9] + q.y) * p[10] + q.z];
}

// mode 1's B entry: the small tensor at the output position whose window puts kernel
// offset kidx on big position b (0 where none does: off the stride grid or outside)
fn col_t(ni: u32, gi: u32, o: u32, kidx: u32, b: u32) -> f32 {
    let ko = unflat(kidx, 14u);
    let bp = unflat(b, 8u);
    let stride = vec3<i32>(vec3<u32>(p[17], p[18], p[19]));
    let t = vec3<i32>(bp + vec3<u32>(p[20], p[21], p[22])) - vec3<i32>(ko * vec3<u32>(p[23], p[24], p[25]));
    if any(t < vec3<i32>(0)) || any(t % stride != vec3<i32>(0)) { return 0.0; }
    let s = vec3<u32>(t / stride);
    if any(s >= vec3<u32>(p[11], p[12], p[13])) { return 0.0; }
    return src_b[(ni * p[6] + gi * p[30] + o) * p[27] + (s.x * p[12] + s.y) * p[13] + s.z];
}

fn load_a(gi: u32, i: u32, k: u32) -> f32 {
    if MODE == 2u {
        let ls = p[27];
        return src_a[((k / ls) * p[6] + gi * p[30] + i) * ls + k % ls];
    }
    if MODE == 1u {
        let kk = p[28];
        return src_a[(gi * p[30] + k / kk) * p[31] + i * kk + k % kk];
    }
    return src_a[(gi * p[30] + i) * p[31] + k];
}

fn load_b(gi: u32, k: u32, j: u32) -> f32 {
    if MODE == 2u {
        let ls = p[27];
        return col(k / ls, gi, j, k % ls);
    }
    if MODE == 1u {
        let kk = p[28];
        let lb = p[26];
        return col_t(j / lb, gi, k / kk, k % kk, j % lb);
    }
    let ls = p[27];
    return col(j / ls, gi, k, j % ls);
}

fn store(gi: u32, split: u32, i: u32, j: u32, v: f32) {
    if MODE == 2u {
        out[(split * p[6] + gi * p[30] + i) * p[31] + j] = v;
        return;
    }
    if MODE == 1u {
        let lb = p[26];
        out[((j / lb) * p[5] + gi * p[29] + i) * lb + j % lb] = v;
        return;
    }
    let ls = p[27];
    let oc = gi * p[30] + i;
    var y = v;
    if (EPI & 1u) != 0u { y += bias[oc]; }
    if (EPI & 2u) != 0u { y = max(y, 0.0); }
    out[((j / ls) * p[6] + oc) * ls + j % ls] = y;
}

@compute @workgroup_size(16, 16)
fn conv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let m = p[0];
    let n = p[1];
    let groups = p[7];
    let gi = wid.z % groups;
    let split = wid.z / groups;
    let k_lo = split * p[3];
    let k_hi = min(p[2], k_lo + p[3]);
    let row0 = wid.y * BM;
    let col0 = (p[32] + wid.x) * BN;
    let tid = lid.y * 16u + lid.x;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) { acc[i] = 0.0; }
    for (var k0 = k_lo; k0 < k_hi; k0 += BK) {
        for (var t = 0u; t < 4u; t++) {
            let idx = tid + t * 256u;
            let r = idx / BK;
            let kk = idx % BK;
            var v = 0.0;
            if row0 + r < m && k0 + kk < k_hi { v = load_a(gi, row0 + r, k0 + kk); }
            As[kk * BM + r] = v;
            let kb = idx / BN;
            let cc = idx % BN;
            var u = 0.0;
            if k0 + kb < k_hi && col0 + cc < n { u = load_b(gi, k0 + kb, col0 + cc); }
            Bs[kb * BN + cc] = u;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) { av[i] = As[kk * BM + lid.y * 4u + i]; }
            for (var j = 0u; j < 4u; j++) { bv[j] = Bs[kk * BN + lid.x * 4u + j]; }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]); }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y * 4u + i;
        if r >= m { continue; }
        for (var j = 0u; j < 4u; j++) {
            let cc = col0 + lid.x * 4u + j;
            if cc < n { store(gi, split, r, cc, acc[i * 4u + j]); }
        }
    }
}
