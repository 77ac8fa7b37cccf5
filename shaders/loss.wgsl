// Masked per-task losses, fused forward + backward, every task in ONE
// dispatch (docs/math.md §2). Workgroup t handles task t of the loss
// table; its 256 invocations take rows r ≡ lane (mod 256), and every sum
// is a fixed tree in workgroup memory: deterministic, no atomics.
//
// Per task, with weights m_b (the mask: 1 labelled, 0 missing; other
// non-negative values act as sample weights), c = max(1, Σ_b m_b) and the
// task's reduction scale s (table.scale: 1/width for the mean over
// outputs, 1 for the sum, ½ for the half sum; 1 for cross-entropy):
//   L_t       = Σ_b m_b ℓ_b / c
//   dL/dz_b   = upstream_t · m_b · dℓ_b/dz_b / c
// where upstream_t = dObjective/dL_t (1 for a plain sum of task losses;
// the task-weighting methods put their weights here).
//   kind 0  softmax cross-entropy, label y_b in labels[]:
//           ℓ = logsumexp(z) − z_y (row max subtracted first),
//           dℓ/dz_j = softmax(z)_j − [j = y]
//           A label ≥ the class count is treated as missing (weight 0)
//           and counted in stats[1]; it never reads out of bounds.
//   kind 1  squared error: ℓ = s Σ_j (z_j − y_j)², dℓ/dz_j = 2s (z_j − y_j)
//   kind 2  binary cross-entropy with logits (multi-label):
//           ℓ = s Σ_j max(z_j, 0) − z_j y_j + log(1 + exp(−|z_j|)),
//           dℓ/dz_j = s (sigmoid(z_j) − y_j)
// (s = ½ gives ½‖z − y‖² as before reductions existed, bit for bit short
// of underflow and overflow: halving and doubling are exact.)
// Rows with weight 0 get zero gradients and never touch the loss, so a
// NaN in an unlabelled row does not poison it. A non-finite loss on a
// labelled row propagates into L_t (and its gradients) and is counted in
// stats[2], so the trainer can stop without reading every gradient.
// stats[4t ..]: [labelled rows, out-of-range labels, non-finite rows, 0].
// Tests: kernels-tests/loss.rs, cases in src/conformance/loss.rs.

struct Params {
    tasks: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// One row of the loss table; offsets in elements.
struct LossTask {
    kind: u32,
    rows: u32,
    width: u32,       // classes (kind 0) or outputs per row
    logit0: u32,      // logits and gradients share this layout
    logit_ld: u32,
    target0: u32,     // kind 0: labels[target0 + r]; else targets[target0 + r·target_ld + j]
    target_ld: u32,
    mask0: u32,       // 0xffffffff: every row labelled
    scale: f32,       // the reduction's scale s of the row sums (1 for kind 0)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read> masks: array<f32>;
@group(0) @binding(5) var<storage, read> upstream: array<f32>;
@group(0) @binding(6) var<storage, read_write> grads: array<f32>;
@group(0) @binding(7) var<storage, read_write> losses: array<f32>;
@group(0) @binding(8) var<storage, read_write> stats: array<u32>;
@group(0) @binding(9) var<storage, read> table: array<LossTask>;

const WG: u32 = 256u;
const NO_MASK: u32 = 0xffffffffu;

var<workgroup> red_f: array<f32, 256>;
var<workgroup> red_u: array<vec2<u32>, 256>;

// Fixed-order tree sums over the workgroup (call from uniform control flow).
fn tree_f(lane: u32, v: f32) -> f32 {
    red_f[lane] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lane < s) { red_f[lane] = red_f[lane] + red_f[lane + s]; }
        workgroupBarrier();
    }
    let total = red_f[0];
    workgroupBarrier();
    return total;
}

fn tree_u(lane: u32, v: vec2<u32>) -> vec2<u32> {
    red_u[lane] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lane < s) { red_u[lane] = red_u[lane] + red_u[lane + s]; }
        workgroupBarrier();
    }
    let total = red_u[0];
    workgroupBarrier();
    return total;
}

// Inf or NaN, by the exponent bits (immune to fast-math folding of x != x).
fn non_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

fn softplus_neg_abs(z: f32) -> f32 {
    // log(1 + exp(−|z|)): the argument of exp is ≤ 0, so it never overflows.
    return log(1.0 + exp(-abs(z)));
}

// The row's weight before the label check.
fn mask_of(t: LossTask, r: u32) -> f32 {
    if (t.mask0 == NO_MASK) { return 1.0; }
    return masks[t.mask0 + r];
}

fn label_ok(t: LossTask, r: u32) -> bool {
    return t.kind != 0u || labels[t.target0 + r] < t.width;
}

// ℓ for row r, writing dℓ/dz · g to the gradients (g includes m_b / c).
fn row_loss(t: LossTask, r: u32, g: f32) -> f32 {
    let z0 = t.logit0 + r * t.logit_ld;
    if (t.kind == 0u) {
        var zmax = logits[z0];
        for (var j = 1u; j < t.width; j = j + 1u) { zmax = max(zmax, logits[z0 + j]); }
        var sum = 0.0;
        for (var j = 0u; j < t.width; j = j + 1u) { sum = sum + exp(logits[z0 + j] - zmax); }
        let y = labels[t.target0 + r];
        for (var j = 0u; j < t.width; j = j + 1u) {
            let prob = exp(logits[z0 + j] - zmax) / sum;
            grads[z0 + j] = g * (prob - select(0.0, 1.0, j == y));
        }
        return log(sum) + zmax - logits[z0 + y];
    }
    let y0 = t.target0 + r * t.target_ld;
    let gs = g * t.scale;
    var l = 0.0;
    for (var j = 0u; j < t.width; j = j + 1u) {
        let z = logits[z0 + j];
        let y = targets[y0 + j];
        if (t.kind == 1u) {
            let d = z - y;
            l = l + d * d;
            grads[z0 + j] = gs * (2.0 * d);
        } else {
            l = l + max(z, 0.0) - z * y + softplus_neg_abs(z);
            grads[z0 + j] = gs * (1.0 / (1.0 + exp(-z)) - y);
        }
    }
    return t.scale * l;
}

@compute @workgroup_size(256)
fn masked_losses(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(local_invocation_index) lane: u32) {
    let task = wid.x;
    if (task >= p.tasks) { return; }
    let t = table[task];
    // Pass 1: the weight sum, labelled rows, out-of-range labels.
    var wsum = 0.0;
    var counts = vec2<u32>();
    for (var r = lane; r < t.rows; r = r + WG) {
        var m = mask_of(t, r);
        if (m != 0.0 && !label_ok(t, r)) {
            counts.y = counts.y + 1u;
            m = 0.0;
        }
        wsum = wsum + m;
        counts.x = counts.x + select(0u, 1u, m != 0.0);
    }
    let total_w = tree_f(lane, wsum);
    let total_counts = tree_u(lane, counts);
    let denom = max(1.0, total_w);
    let g = upstream[task] / denom;
    // Pass 2: losses and gradients.
    var lsum = 0.0;
    var bad = 0u;
    for (var r = lane; r < t.rows; r = r + WG) {
        var m = mask_of(t, r);
        if (!label_ok(t, r)) { m = 0.0; }
        if (m == 0.0) {
            let z0 = t.logit0 + r * t.logit_ld;
            for (var j = 0u; j < t.width; j = j + 1u) { grads[z0 + j] = 0.0; }
        } else {
            let l = row_loss(t, r, g * m);
            lsum = lsum + m * l;
            bad = bad + select(0u, 1u, non_finite(l));
        }
    }
    let total_l = tree_f(lane, lsum);
    let total_bad = tree_u(lane, vec2<u32>(bad, 0u));
    if (lane == 0u) {
        losses[task] = total_l / denom;
        stats[4u * task] = total_counts.x;
        stats[4u * task + 1u] = total_counts.y;
        stats[4u * task + 2u] = total_bad.x;
        stats[4u * task + 3u] = 0u;
    }
}
