// Task-weighting kernels (docs/math.md §5): the Gram matrix of
// per-task gradients, uncertainty weighting, and the per-epoch loss sums
// of DWA. No atomics: every sum is a fixed tree or a fixed-order loop.
//
//   gram_partials        X [T, n] (row t at t·ld): workgroup (chunk c, pair
//                        p = (i ≤ j)) writes Σ_{k in chunk c} x_ik·x_jk to
//                        out[c·pairs + p]: 256 lanes strided over the
//                        chunk, then a tree. The host sums the chunks with
//                        reduce::column_sums (fixed order).
//   uncertainty_weights  w_t = ½·e^(−s_t): the loss kernel's per-task
//                        upstream weight for L = Σ ½e^(−s_t)L_t + ½s_t.
//   uncertainty_grad     ds_t = ½(1 − e^(−s_t)·L_t) into s's gradient.
//   loss_accumulate      sums[t] += L_t (DWA's epoch averages).
// Launcher src/kernels/weighting.rs; tests kernels-tests/weighting_gpu.rs.

struct Params {
    tasks: u32,
    n: u32,       // gram: elements per task row
    ld: u32,      // gram: elements between task rows
    chunk: u32,   // gram: elements per workgroup (multiple of 256)
    pairs: u32,   // gram: T(T+1)/2
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn gram_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = wid.x;
    let pair = wid.y;
    // pair → (i, j ≥ i), row by row: (0,0) (0,1) … (0,T−1) (1,1) …
    var i = 0u;
    var first = 0u;
    loop {
        let row = p.tasks - i;
        if (pair < first + row) { break; }
        first = first + row;
        i = i + 1u;
    }
    let j = i + (pair - first);
    let start = c * p.chunk;
    let end = min(start + p.chunk, p.n);
    var acc = 0.0;
    for (var k = start + lid.x; k < end; k = k + 256u) {
        acc = fma(a[i * p.ld + k], a[j * p.ld + k], acc);
    }
    partial[lid.x] = acc;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half = half / 2u) {
        if (lid.x < half) { partial[lid.x] = partial[lid.x] + partial[lid.x + half]; }
        workgroupBarrier();
    }
    if (lid.x == 0u) { out[c * p.pairs + pair] = partial[0]; }
}

// a = s (log variances), out = upstream weights.
@compute @workgroup_size(64)
fn uncertainty_weights(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if (t >= p.tasks) { return; }
    out[t] = 0.5 * exp(-a[t]);
}

// a = s, b = losses, out = ds.
@compute @workgroup_size(64)
fn uncertainty_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if (t >= p.tasks) { return; }
    out[t] = 0.5 * (1.0 - exp(-a[t]) * b[t]);
}

// b = losses, out = running sums.
@compute @workgroup_size(64)
fn loss_accumulate(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if (t >= p.tasks) { return; }
    out[t] = out[t] + b[t];
}
