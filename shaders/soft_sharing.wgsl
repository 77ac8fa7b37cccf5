// Soft-sharing regularisers on stacked per-task weights (docs/math.md
// §4). The T tasks' copies of one layer's weights are contiguous blocks
// of d elements: W [T, d], task t at t·d (the layout of a task layer's
// weight arena entry). One invocation per element j < d walks the T
// tasks, so no reduction crosses invocations except the value's, whose
// per-element partials the host sums with reduce::sum (fixed tree).
//
//   l2_distance        R = λ Σ_{s<t} ‖W_s − W_t‖² = λ (T Σ_t ‖W_t‖² − ‖Σ_t W_t‖²)
//                      dW_t += 2λ (T·W_t − Σ_s W_s)
//   clustering         R = ‖W̄‖² + (λ/T) Σ_t ‖W_t − W̄‖²,  W̄ = mean_t W_t
//                      dW_t += 2 W̄ / T + (2λ/T)(W_t − W̄)
//   group_lasso_prox   a_j = (W_0j .. W_(T−1)j), the row of A ∈ R^{d×T}:
//                      a_j ← a_j · max(0, 1 − ηλ/‖a_j‖₂); partial = ‖a_j‖₂
//                      before the step (R = λ Σ_j ‖a_j‖₂)
// Launcher src/kernels/soft_sharing.rs; tests kernels-tests/soft_sharing.rs.

struct Params {
    tasks: u32,
    d: u32,
    row_groups: u32,
    _pad: u32,
    lambda: f32,
    step: f32,        // η·λ for the proximal step
    _pad1: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

fn element(wid: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * p.row_groups + wid.x) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn l2_distance(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = element(wid, lid);
    if (j >= p.d) { return; }
    let tf = f32(p.tasks);
    var sum = 0.0;
    var sq = 0.0;
    for (var t = 0u; t < p.tasks; t = t + 1u) {
        let v = w[t * p.d + j];
        sum = sum + v;
        sq = fma(v, v, sq);
    }
    for (var t = 0u; t < p.tasks; t = t + 1u) {
        let i = t * p.d + j;
        grad[i] = grad[i] + 2.0 * p.lambda * (tf * w[i] - sum);
    }
    partial[j] = p.lambda * (tf * sq - sum * sum);
}

@compute @workgroup_size(256)
fn clustering(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = element(wid, lid);
    if (j >= p.d) { return; }
    let tf = f32(p.tasks);
    var sum = 0.0;
    for (var t = 0u; t < p.tasks; t = t + 1u) { sum = sum + w[t * p.d + j]; }
    let mean = sum / tf;
    var spread = 0.0;
    for (var t = 0u; t < p.tasks; t = t + 1u) {
        let i = t * p.d + j;
        let dev = w[i] - mean;
        spread = fma(dev, dev, spread);
        grad[i] = grad[i] + 2.0 * mean / tf + 2.0 * p.lambda / tf * dev;
    }
    partial[j] = mean * mean + p.lambda / tf * spread;
}

@compute @workgroup_size(256)
fn group_lasso_prox(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = element(wid, lid);
    if (j >= p.d) { return; }
    var sq = 0.0;
    for (var t = 0u; t < p.tasks; t = t + 1u) {
        let v = w[t * p.d + j];
        sq = fma(v, v, sq);
    }
    let norm = sqrt(sq);
    // norm = 0: the row is already zero and stays so.
    let keep = select(0.0, max(0.0, 1.0 - p.step / norm), norm > 0.0);
    for (var t = 0u; t < p.tasks; t = t + 1u) {
        let i = t * p.d + j;
        w[i] = w[i] * keep;
    }
    partial[j] = p.lambda * norm;
}
