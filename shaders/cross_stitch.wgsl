// Cross-stitch units (Misra et al. 2016; docs/math.md §3). The T
// task columns' activations sit side by side in one matrix
// X [rows, T·C] (task t at columns t·C .. t·C + C, the layout of the
// graph's task blocks). α is T×T for the layer, or one T×T per channel
// ([C, T, T]) with PER_CHANNEL; α[t, s] weighs source task s in output t.
//
//   stitch_mix         out[b, t·C + c] (+)= Σ_s α[t, s] · x[b, s·C + c]
//                      (forward); with TRANSPOSE α[s, t] instead: the
//                      backward dX = αᵀ applied to dY. One invocation per
//                      (row, channel), writing all T outputs; ACCUMULATE
//                      adds into out.
//   stitch_alpha_grad  dα[t, s] (+)= Σ_b Σ_c dy[b, t·C + c] · x[b, s·C + c]:
//                      one workgroup per (t, s), 256 invocations strided
//                      over channels (and over rows when C < 256), then
//                      a fixed tree: deterministic.
//   stitch_alpha_grad_channel
//                      dα[c, t, s] (+)= Σ_b dy[b, t·C + c] · x[b, s·C + c]:
//                      one invocation per (c, t, s), b ascending.
// Launcher src/kernels/cross_stitch.rs; tests kernels-tests/cross_stitch.rs.

struct Params {
    rows: u32,
    channels: u32,
    tasks: u32,
    row_groups: u32,   // workgroups per grid row (x), for folded grids
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> alpha: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// The upstream gradient dY for the α gradients (same layout as x).
@group(0) @binding(4) var<storage, read> dy: array<f32>;

override PER_CHANNEL: bool = false;
override TRANSPOSE: bool = false;
override ACCUMULATE: bool = false;

fn alpha_at(c: u32, t: u32, s: u32) -> f32 {
    var base = 0u;
    if (PER_CHANNEL) { base = c * p.tasks * p.tasks; }
    if (TRANSPOSE) { return alpha[base + s * p.tasks + t]; }
    return alpha[base + t * p.tasks + s];
}

fn linear(wid: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * p.row_groups + wid.x) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn stitch_mix(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    // One invocation per (row, channel) writes that channel of all T
    // outputs: one division per T outputs (integer division is scalar on
    // CPU drivers), and the T inputs are re-read from cache, not memory.
    let width = p.tasks * p.channels;
    let i = linear(wid, lid);
    if (i >= p.rows * p.channels) { return; }
    let b = i / p.channels;
    let c = i - b * p.channels;
    let row = b * width + c;
    for (var t = 0u; t < p.tasks; t = t + 1u) {
        var acc = 0.0;
        for (var s = 0u; s < p.tasks; s = s + 1u) {
            acc = fma(alpha_at(c, t, s), x[row + s * p.channels], acc);
        }
        let o = row + t * p.channels;
        if (ACCUMULATE) { acc = acc + out[o]; }
        out[o] = acc;
    }
}

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn stitch_alpha_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    // Workgroup (t, s) = (wid.x / T, wid.x % T).
    let t = wid.x / p.tasks;
    let s = wid.x % p.tasks;
    let width = p.tasks * p.channels;
    // Lane l owns channel l % span (and those span, 2·span… further) of
    // rows l / span, + phases, + 2·phases…: with fewer than 256 channels
    // the lanes split the rows too instead of idling (sluice subspaces
    // have C/G channels). A fixed assignment: deterministic.
    let span = min(p.channels, 256u);
    let phases = 256u / span;
    let c0 = lid.x % span;
    let r0 = lid.x / span;
    var acc = 0.0;
    if (r0 < phases) {
        for (var b = r0; b < p.rows; b = b + phases) {
            let base = b * width;
            for (var c = c0; c < p.channels; c = c + span) {
                acc = fma(dy[base + t * p.channels + c], x[base + s * p.channels + c], acc);
            }
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

@compute @workgroup_size(256)
fn stitch_alpha_grad_channel(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear(wid, lid);
    let tt = p.tasks * p.tasks;
    if (i >= p.channels * tt) { return; }
    let c = i / tt;
    let t = (i % tt) / p.tasks;
    let s = i % p.tasks;
    let width = p.tasks * p.channels;
    var acc = 0.0;
    for (var b = 0u; b < p.rows; b = b + 1u) {
        acc = fma(dy[b * width + t * p.channels + c], x[b * width + s * p.channels + c], acc);
    }
    if (ACCUMULATE) { acc = acc + out[i]; }
    out[i] = acc;
}
