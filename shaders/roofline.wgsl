// Empirical roofline of an adapter: the two ceilings `manytask bench`
// reports every kernel against.
//   fma_peak        each invocation runs 8 independent vec4 fma chains of
//                   `iters` steps (8·4·2·iters flops, no memory traffic but
//                   one vec4 store so the chains stay live).
//   copy_bandwidth  dst[i] = src[i] over vec4s: 32 bytes moved per element.
// Launcher: src/kernels/roofline.rs.

struct Params {
    iters: u32,
    n4: u32,        // vec4 elements to copy
    row: u32,       // invocations per grid row (folded grids)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256)
fn fma_peak(@builtin(global_invocation_id) gid: vec3<u32>) {
    let seed = f32(gid.x) * 1e-9;
    var a0 = vec4<f32>(seed);
    var a1 = vec4<f32>(seed + 0.1);
    var a2 = vec4<f32>(seed + 0.2);
    var a3 = vec4<f32>(seed + 0.3);
    var a4 = vec4<f32>(seed + 0.4);
    var a5 = vec4<f32>(seed + 0.5);
    var a6 = vec4<f32>(seed + 0.6);
    var a7 = vec4<f32>(seed + 0.7);
    // |m| < 1 keeps the chains bounded: no overflow, no denormals.
    let m = vec4<f32>(0.9999999);
    let c = vec4<f32>(1e-7);
    for (var i = 0u; i < p.iters; i = i + 1u) {
        a0 = fma(a0, m, c);
        a1 = fma(a1, m, c);
        a2 = fma(a2, m, c);
        a3 = fma(a3, m, c);
        a4 = fma(a4, m, c);
        a5 = fma(a5, m, c);
        a6 = fma(a6, m, c);
        a7 = fma(a7, m, c);
    }
    dst[gid.x] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

@compute @workgroup_size(256)
fn copy_bandwidth(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row + gid.x;
    if (i < p.n4) { dst[i] = src[i]; }
}
