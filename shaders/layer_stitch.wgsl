// Layer-stitch units of sluice networks (Ruder et al. 2019;
// docs/math.md §3): each task's head input is a learned mix of that
// task's outputs from K layers. The K layer outputs sit side by side in
// H [rows, K·W] (layer k at columns k·W .., W = T·C, task t at t·C ..
// within a layer, the graph's task-block layout); β is [T, K].
//
//   layer_stitch_mix    z[b, t·C + c] (+)= Σ_k β[t, k] · h[b, k·W + t·C + c]
//                       one invocation per (row, column of z).
//   layer_stitch_spread dh[b, k·W + j] (+)= β[t, k] · g[b, j] for all k:
//                       one invocation per (row, column j of g).
//   layer_stitch_beta_partials
//                       dβ[t, k] = Σ_b Σ_c g[b, t·C + c] · h[b, k·W + t·C + c],
//                       stage 1: invocation (row chunk, t, block of 4
//                       layers, group of 4 channels) walks its chunk's
//                       rows in order, one named accumulator per layer
//                       (dot products over the 4 channels; vec4 loads
//                       when C % 4 == 0) → partial[chunk·G + g, t, k].
//                       Stage 2 is cross_stitch.wgsl's
//                       stitch_alpha_sum_tree: fixed order, no atomics,
//                       the same bits run after run.
// Launcher src/kernels/layer_stitch.rs; tests kernels-tests/layer_stitch.rs.

struct Params {
    rows: u32,
    channels: u32,
    tasks: u32,
    layers: u32,
    row_groups: u32,   // workgroups per grid row (x), for folded grids
    chunk_rows: u32,   // dβ stage 1: rows per chunk
    chunks: u32,       // dβ stage 1: row chunks
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// H for mix and beta_grad; g (the gradient of z) for spread.
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// The gradient of z, for beta_grad.
@group(0) @binding(4) var<storage, read> dz: array<f32>;

// H and the gradient of z again, as vec4s (C % 4 == 0), for dβ.
@group(0) @binding(5) var<storage, read> src4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> dz4: array<vec4<f32>>;

override ACCUMULATE: bool = false;
// dβ stage 1 reads src4 / dz4 instead of 4 scalars.
override VEC4: bool = false;

fn linear(wid: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * p.row_groups + wid.x) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn layer_stitch_mix(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let w = p.tasks * p.channels;
    let i = linear(wid, lid);
    if (i >= p.rows * w) { return; }
    let b = i / w;
    let j = i - b * w;
    let t = j / p.channels;
    let base = b * p.layers * w + j;
    var acc = 0.0;
    for (var k = 0u; k < p.layers; k = k + 1u) {
        acc = fma(beta[t * p.layers + k], src[base + k * w], acc);
    }
    if (ACCUMULATE) { acc = acc + out[i]; }
    out[i] = acc;
}

@compute @workgroup_size(256)
fn layer_stitch_spread(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let w = p.tasks * p.channels;
    let i = linear(wid, lid);
    if (i >= p.rows * w) { return; }
    let b = i / w;
    let j = i - b * w;
    let t = j / p.channels;
    let g = src[i];
    let base = b * p.layers * w + j;
    for (var k = 0u; k < p.layers; k = k + 1u) {
        var v = beta[t * p.layers + k] * g;
        if (ACCUMULATE) { v = v + out[base + k * w]; }
        out[base + k * w] = v;
    }
}

// Channels 4·g .. 4·g + 3 of task t's block in row b: of layer k of H,
// or of dz with `from_dz`; channels past C read 0, layers past K all 0.
fn load4(from_dz: bool, b: u32, k: u32, t: u32, g: u32) -> vec4<f32> {
    if (k >= p.layers) { return vec4<f32>(0.0); }
    if (VEC4) {
        let groups = p.channels / 4u;
        if (from_dz) { return dz4[(b * p.tasks + t) * groups + g]; }
        return src4[((b * p.layers + k) * p.tasks + t) * groups + g];
    }
    let c = 4u * g;
    var v = vec4<f32>(0.0);
    if (from_dz) {
        let i = (b * p.tasks + t) * p.channels + c;
        v.x = dz[i];
        if (c + 1u < p.channels) { v.y = dz[i + 1u]; }
        if (c + 2u < p.channels) { v.z = dz[i + 2u]; }
        if (c + 3u < p.channels) { v.w = dz[i + 3u]; }
    } else {
        let i = ((b * p.layers + k) * p.tasks + t) * p.channels + c;
        v.x = src[i];
        if (c + 1u < p.channels) { v.y = src[i + 1u]; }
        if (c + 2u < p.channels) { v.z = src[i + 2u]; }
        if (c + 3u < p.channels) { v.w = src[i + 3u]; }
    }
    return v;
}

// The partial of (t, k) in partial row j, when k is a layer.
fn put(j: u32, t: u32, k: u32, v: f32) {
    if (k < p.layers) { out[(j * p.tasks + t) * p.layers + k] = v; }
}

@compute @workgroup_size(256)
fn layer_stitch_beta_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let groups = (p.channels + 3u) / 4u;
    let blocks = (p.layers + 3u) / 4u;
    let per_chunk = p.tasks * blocks * groups;
    let i = linear(wid, lid);
    if (i >= p.chunks * per_chunk) { return; }
    let chunk = i / per_chunk;
    let r = i - chunk * per_chunk;
    let tk = r / groups;
    let g = r - tk * groups;
    let t = tk / blocks;
    let k0 = (tk - t * blocks) * 4u;
    let b0 = chunk * p.chunk_rows;
    let b1 = min(b0 + p.chunk_rows, p.rows);
    var a0 = 0.0;
    var a1 = 0.0;
    var a2 = 0.0;
    var a3 = 0.0;
    for (var b = b0; b < b1; b = b + 1u) {
        let d = load4(true, b, 0u, t, g);
        a0 = a0 + dot(d, load4(false, b, k0, t, g));
        a1 = a1 + dot(d, load4(false, b, k0 + 1u, t, g));
        a2 = a2 + dot(d, load4(false, b, k0 + 2u, t, g));
        a3 = a3 + dot(d, load4(false, b, k0 + 3u, t, g));
    }
    let j = chunk * groups + g;
    put(j, t, k0, a0);
    put(j, t, k0 + 1u, a1);
    put(j, t, k0 + 2u, a2);
    put(j, t, k0 + 3u, a3);
}
