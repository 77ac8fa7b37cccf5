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
//   layer_stitch_beta_grad
//                       dβ[t, k] (+)= Σ_b Σ_c g[b, t·C + c] · h[b, k·W + t·C + c]
//                       one workgroup per (t, k), rows in order, 256
//                       invocations strided over channels, then a fixed
//                       tree: deterministic.
// Launcher src/kernels/layer_stitch.rs; tests kernels-tests/layer_stitch.rs.

struct Params {
    rows: u32,
    channels: u32,
    tasks: u32,
    layers: u32,
    row_groups: u32,   // workgroups per grid row (x), for folded grids
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// H for mix and beta_grad; g (the gradient of z) for spread.
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// The gradient of z, for beta_grad.
@group(0) @binding(4) var<storage, read> dz: array<f32>;

override ACCUMULATE: bool = false;

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

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn layer_stitch_beta_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    // Workgroup (t, k) = (wid.x / K, wid.x % K).
    let t = wid.x / p.layers;
    let k = wid.x % p.layers;
    let w = p.tasks * p.channels;
    var acc = 0.0;
    for (var b = 0u; b < p.rows; b = b + 1u) {
        let zrow = b * w + t * p.channels;
        let hrow = b * p.layers * w + k * w + t * p.channels;
        for (var c = lid.x; c < p.channels; c = c + 256u) {
            acc = fma(dz[zrow + c], src[hrow + c], acc);
        }
    }
    partial[lid.x] = acc;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half = half / 2u) {
        if (lid.x < half) { partial[lid.x] = partial[lid.x] + partial[lid.x + half]; }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        var v = partial[0];
        if (ACCUMULATE) { v = v + out[wid.x]; }
        out[wid.x] = v;
    }
}
