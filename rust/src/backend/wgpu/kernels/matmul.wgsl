// Batched C[b] = A[b] · B[b] with strided operands (a transposed operand is a stride
// swap, a broadcast batch a 0 stride) into a contiguous C of shape [batch, M, N].
// Each 16×16 workgroup computes a 64×64 tile of C, each invocation a 4×4 block of it,
// stepping through K in slices of 16 that are staged in workgroup memory (every element
// loaded from A and B is used 64 times). `matmul_act` adds a bias per column and applies
// an activation (the override OP of activation.wgsl) as it stores the tile, and can keep
// the pre-activation too: Dense's forward in one dispatch.
// p: [M, N, K, batch, a_off, a_sb, a_sm, a_sk, b_off, b_sb, b_sk, b_sn,
//     (matmul_act:) alpha, beta, bias?, keep z?]
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
const TM: u32 = 4u;
const TN: u32 = 4u;

var<workgroup> As: array<f32, 1024>; // [BK][BM]
var<workgroup> Bs: array<f32, 1024>; // [BK][BN]

// This invocation's 4×4 block of the 64×64 tile of C at workgroup w.
fn tile_product(w: vec3<u32>, lid: vec3<u32>) -> array<f32, 16> {
    let m = p[0];
    let n = p[1];
    let k = p[2];
    let row0 = w.y * BM;
    let col0 = w.x * BN;
    let tid = lid.y * 16u + lid.x;
    let abase = p[4] + w.z * p[5];
    let bbase = p[8] + w.z * p[9];
    let sam = p[6];
    let sak = p[7];
    let sbk = p[10];
    let sbn = p[11];
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) { acc[i] = 0.0; }
    for (var k0 = 0u; k0 < k; k0 += BK) {
        // stage A[row0.., k0..] (consecutive invocations read consecutive k) and
        // B[k0.., col0..] (consecutive n); zeros outside the matrices
        for (var t = 0u; t < 4u; t++) {
            let idx = tid + t * 256u;
            let r = idx / BK;
            let kk = idx % BK;
            var v = 0.0;
            if row0 + r < m && k0 + kk < k { v = a[abase + (row0 + r) * sam + (k0 + kk) * sak]; }
            As[kk * BM + r] = v;
            let kb = idx / BN;
            let cc = idx % BN;
            var u = 0.0;
            if k0 + kb < k && col0 + cc < n { u = b[bbase + (k0 + kb) * sbk + (col0 + cc) * sbn]; }
            Bs[kb * BN + cc] = u;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < TM; i++) { av[i] = As[kk * BM + lid.y * TM + i]; }
            for (var j = 0u; j < TN; j++) { bv[j] = Bs[kk * BN + lid.x * TN + j]; }
            for (var i = 0u; i < TM; i++) {
                for (var j = 0u; j < TN; j++) { acc[i * TN + j] = fma(av[i], bv[j], acc[i * TN + j]); }
            }
        }
        workgroupBarrier();
    }
    return acc;
}

@compute @workgroup_size(16, 16)
fn matmul(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let acc = tile_product(w, lid);
    let m = p[0];
    let n = p[1];
    let cbase = w.z * m * n;
    for (var i = 0u; i < TM; i++) {
        let r = w.y * BM + lid.y * TM + i;
        if r >= m { continue; }
        for (var j = 0u; j < TN; j++) {
            let cc = w.x * BN + lid.x * TN + j;
            if cc < n { c[cbase + r * n + cc] = acc[i * TN + j]; }
        }
    }
}

@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> zs: array<f32>;

// C = act(A·B + bias): z = acc + bias[col] (the same rounding as a product then a bias
// add), kept in zs when the activation's derivative needs it.
@compute @workgroup_size(16, 16)
fn matmul_act(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let acc = tile_product(w, lid);
    let m = p[0];
    let n = p[1];
    let cbase = w.z * m * n;
    let has_bias = p[14] != 0u;
    let keep_z = p[15] != 0u;
    for (var i = 0u; i < TM; i++) {
        let r = w.y * BM + lid.y * TM + i;
        if r >= m { continue; }
        for (var j = 0u; j < TN; j++) {
            let cc = w.x * BN + lid.x * TN + j;
            if cc < n {
                var z = acc[i * TN + j];
                if has_bias { z = z + bias[cc]; }
                if keep_z { zs[cbase + r * n + cc] = z; }
                c[cbase + r * n + cc] = fwd(z, pf(12u), pf(13u));
            }
        }
    }
}
