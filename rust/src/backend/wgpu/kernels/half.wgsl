// float16 storage (needs the adapter's shader-f16; the Rust side prepends `enable f16;`):
// narrowing f32 → f16, widening f16 → f32, and rounding f32 values to f16 precision in
// place (MixedPrecision's low-precision copy). p: [n]
@group(0) @binding(0) var<storage, read_write> wide: array<f32>;
@group(0) @binding(1) var<storage, read_write> narrow: array<f16>;

@compute @workgroup_size(256)
fn to_f16(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(g, nwg);
    if i >= p[0] { return; }
    narrow[i] = f16(wide[i]);
}

@compute @workgroup_size(256)
fn to_f32(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(g, nwg);
    if i >= p[0] { return; }
    wide[i] = f32(narrow[i]);
}

// dst[i] = f32(f16(src[i])): the value a float16 copy of src holds, read as f32.
@group(0) @binding(0) var<storage, read> round_src: array<f32>;
@group(0) @binding(1) var<storage, read_write> round_dst: array<f32>;

@compute @workgroup_size(256)
fn round_f16(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(g, nwg);
    if i >= p[0] { return; }
    round_dst[i] = f32(f16(round_src[i]));
}
