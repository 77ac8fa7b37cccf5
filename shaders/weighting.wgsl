// Task-weighting kernels (docs/math.md §5): uncertainty weighting and the
// per-epoch loss sums of DWA (the Gram matrix of per-task gradients uses
// trace_norm.wgsl's chunked `gram_partials`).
//
//   uncertainty_weights  w_t = ½·e^(−s_t): the loss kernel's per-task
//                        upstream weight for L = Σ ½e^(−s_t)L_t + ½s_t.
//   uncertainty_grad     ds_t = ½(1 − e^(−s_t)·L_t) into s's gradient.
//   loss_accumulate      sums[t] += L_t (DWA's epoch averages).
// Launcher src/kernels/weighting.rs; tests kernels-tests/weighting_gpu.rs.

struct Params {
    tasks: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

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
