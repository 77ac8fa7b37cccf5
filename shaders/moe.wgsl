// Gated mixtures of experts (MMoE, CGC / PLE, DSelect-k; docs/architectures.md).
// E experts' outputs sit side by side in F [rows, E·W]: the T tasks'
// own experts first (task t's Es experts at t·Es ..), then the Ss shared
// ones (E = T·Es + Ss; MMoE: Es = 0, Ss = E). The gates g [rows, G] hold
// one block per output o: a task's block (B = Es + Ss columns: its own
// experts, then the shared ones) for o < T, and with SHARED_OUTPUT a last
// block over all E experts (PLE's shared gate). Block o starts at o·B.
//
//   moe_mix            h[r, o·W + w] = Σ_j g[r, o·B + j] · F[r, expert(o, j)·W + w]
//                      one invocation per element of h.
//   moe_mix_backward   dF[r, e·W + w] (+)= Σ_{(o, j) → e} g[r, o·B + j] · dh[r, o·W + w]
//                      dg[r, c] (+)= Σ_w dh[r, out(c)·W + w] · F[r, expert(c)·W + w]
//                      one dispatch: invocation i writes dF[i] and dg[i]
//                      where those exist.
//   gate_softmax       g = softmax of each block of z (per row).
//   gate_softmax_backward
//                      dz = g ⊙ (dg − ⟨g, dg⟩) per block (+= with ACCUMULATE).
//   dselect_gate       DSelect-k (Hazimeh et al. 2021): per (row, task),
//                      k selectors of m = ⌈log2 E⌉ smooth-step bits each
//                      and k selector logits; q_e = Σ_i softmax(α)_i r_i(e).
//   dselect_gate_backward
//                      d(logits), plus λ/rows times the gradient of the
//                      selectors' entropy Σ_i H(r_i).
// Every sum runs in a fixed order: deterministic, no atomics.
// Launcher src/kernels/moe.rs; reference src/reference/moe.rs; tests
// kernels-tests/moe.rs.

struct Params {
    rows: u32,
    width: u32,
    tasks: u32,
    task_experts: u32,
    shared_experts: u32,
    shared_output: u32,
    row_groups: u32,   // workgroups per grid row (x), for folded grids
    // DSelect-k only (its experts: shared_experts, tasks: tasks).
    selectors: u32,    // k
    bits: u32,         // m = ⌈log2 E⌉
    gamma: f32,        // the smooth step's width γ
    entropy: f32,      // λ / rows: the entropy regulariser's gradient scale
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// F (mix, mix_backward); z (gate_softmax); g (gate_softmax_backward).
@group(0) @binding(1) var<storage, read> src: array<f32>;
// g (mix, mix_backward).
@group(0) @binding(2) var<storage, read> gates: array<f32>;
// h (mix); dF (mix_backward); g (gate_softmax); dz (gate_softmax_backward).
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// dh (mix_backward); dg (gate_softmax_backward).
@group(0) @binding(4) var<storage, read> upstream: array<f32>;
// dg (mix_backward).
@group(0) @binding(5) var<storage, read_write> gate_grad: array<f32>;

override ACCUMULATE: bool = false;
override ACCUMULATE_GATES: bool = false;

fn linear(wid: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * p.row_groups + wid.x) * 256u + lid.x;
}

fn experts() -> u32 { return p.tasks * p.task_experts + p.shared_experts; }
fn outputs() -> u32 { return p.tasks + p.shared_output; }
fn block() -> u32 { return p.task_experts + p.shared_experts; }
fn gate_columns() -> u32 { return p.tasks * block() + p.shared_output * experts(); }
// Gate columns of output o.
fn block_size(o: u32) -> u32 {
    if (o < p.tasks) { return block(); }
    return experts();
}
// The expert gate column c weighs.
fn expert_of(c: u32) -> u32 {
    let b = block();
    if (c >= p.tasks * b) { return c - p.tasks * b; }
    let o = c / b;
    let j = c - o * b;
    if (j < p.task_experts) { return o * p.task_experts + j; }
    return p.tasks * p.task_experts + j - p.task_experts;
}
// The output gate column c feeds.
fn output_of(c: u32) -> u32 { return min(c / block(), p.tasks); }

@compute @workgroup_size(256)
fn moe_mix(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let w = p.width;
    let ow = outputs() * w;
    let i = linear(wid, lid);
    if (i >= p.rows * ow) { return; }
    let r = i / ow;
    let rem = i - r * ow;
    let o = rem / w;
    let col = rem - o * w;
    let g_row = r * gate_columns();
    let f_row = r * experts() * w + col;
    let start = o * block();
    var acc = 0.0;
    for (var j = 0u; j < block_size(o); j = j + 1u) {
        let c = start + j;
        acc = fma(gates[g_row + c], src[f_row + expert_of(c) * w], acc);
    }
    out[i] = acc;
}

@compute @workgroup_size(256)
fn moe_mix_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let w = p.width;
    let e_all = experts();
    let g_cols = gate_columns();
    let ow = outputs() * w;
    let i = linear(wid, lid);
    if (i < p.rows * e_all * w) {
        let r = i / (e_all * w);
        let rem = i - r * e_all * w;
        let e = rem / w;
        let col = rem - e * w;
        let g_row = r * g_cols;
        let h_row = r * ow + col;
        let b = block();
        var acc = 0.0;
        if (e < p.tasks * p.task_experts) {
            let t = e / p.task_experts;
            let c = t * b + e - t * p.task_experts;
            acc = fma(gates[g_row + c], upstream[h_row + t * w], acc);
        } else {
            let s = e - p.tasks * p.task_experts;
            for (var t = 0u; t < p.tasks; t = t + 1u) {
                let c = t * b + p.task_experts + s;
                acc = fma(gates[g_row + c], upstream[h_row + t * w], acc);
            }
        }
        if (p.shared_output != 0u) {
            let c = p.tasks * b + e;
            acc = fma(gates[g_row + c], upstream[h_row + p.tasks * w], acc);
        }
        if (ACCUMULATE) { acc = acc + out[i]; }
        out[i] = acc;
    }
    if (i < p.rows * g_cols) {
        let r = i / g_cols;
        let c = i - r * g_cols;
        let h_row = r * ow + output_of(c) * w;
        let f_row = r * e_all * w + expert_of(c) * w;
        var acc = 0.0;
        for (var col = 0u; col < w; col = col + 1u) {
            acc = fma(upstream[h_row + col], src[f_row + col], acc);
        }
        if (ACCUMULATE_GATES) { acc = acc + gate_grad[i]; }
        gate_grad[i] = acc;
    }
}

// One invocation per (row, output): its gate block's first column and
// width; not valid past the last row.
struct GateBlock { base: u32, size: u32, valid: bool }

fn gate_block_of(i: u32) -> GateBlock {
    let n_out = outputs();
    if (i >= p.rows * n_out) { return GateBlock(0u, 0u, false); }
    let r = i / n_out;
    let o = i - r * n_out;
    return GateBlock(r * gate_columns() + o * block(), block_size(o), true);
}

@compute @workgroup_size(256)
fn gate_softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = gate_block_of(linear(wid, lid));
    if (!g.valid) { return; }
    let base = g.base;
    let n = g.size;
    var top = src[base];
    for (var j = 1u; j < n; j = j + 1u) { top = max(top, src[base + j]); }
    var sum = 0.0;
    for (var j = 0u; j < n; j = j + 1u) { sum = sum + exp(src[base + j] - top); }
    for (var j = 0u; j < n; j = j + 1u) { out[base + j] = exp(src[base + j] - top) / sum; }
}

@compute @workgroup_size(256)
fn gate_softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = gate_block_of(linear(wid, lid));
    if (!g.valid) { return; }
    let base = g.base;
    let n = g.size;
    var dot = 0.0;
    for (var j = 0u; j < n; j = j + 1u) { dot = fma(src[base + j], upstream[base + j], dot); }
    for (var j = 0u; j < n; j = j + 1u) {
        var v = src[base + j] * (upstream[base + j] - dot);
        if (ACCUMULATE) { v = v + out[base + j]; }
        out[base + j] = v;
    }
}

// DSelect-k. Logits (src) [rows, T·k·(m + 1)]: task t's block holds its
// k·m selector logits z (selector i's bit j at i·m + j), then its k
// selector weights α. Gates [rows, T·E] (out; their gradient: upstream);
// the logits' gradient goes to out in the backward.

const MAX_K: u32 = 8u;
const MAX_BITS: u32 = 6u;
// Keeps log finite where a selector weight is exactly 0.
const ENTROPY_EPS: f32 = 1e-6;

fn smooth_step(z: f32) -> f32 {
    let g = p.gamma;
    if (z <= -0.5 * g) { return 0.0; }
    if (z >= 0.5 * g) { return 1.0; }
    return -2.0 / (g * g * g) * z * z * z + 1.5 / g * z + 0.5;
}

fn smooth_step_grad(z: f32) -> f32 {
    let g = p.gamma;
    if (abs(z) >= 0.5 * g) { return 0.0; }
    return -6.0 / (g * g * g) * z * z + 1.5 / g;
}

// r_i(e) from the selector's bit values s, skipping bit `skip` (≥ bits: none).
fn selector(s: array<f32, MAX_BITS>, e: u32, skip: u32) -> f32 {
    var r = 1.0;
    for (var j = 0u; j < p.bits; j = j + 1u) {
        if (j == skip) { continue; }
        if (((e >> j) & 1u) == 1u) { r = r * s[j]; } else { r = r * (1.0 - s[j]); }
    }
    return r;
}

// Invocation i = r·T + t owns (row r, task t): its logits start here.
fn dselect_base(i: u32) -> u32 {
    return i * p.selectors * (p.bits + 1u);
}

// softmax(α) of task t at row r.
fn selector_weights(base: u32) -> array<f32, MAX_K> {
    let a = base + p.selectors * p.bits;
    var top = src[a];
    for (var i = 1u; i < p.selectors; i = i + 1u) { top = max(top, src[a + i]); }
    var w: array<f32, MAX_K>;
    var sum = 0.0;
    for (var i = 0u; i < p.selectors; i = i + 1u) {
        w[i] = exp(src[a + i] - top);
        sum = sum + w[i];
    }
    for (var i = 0u; i < p.selectors; i = i + 1u) { w[i] = w[i] / sum; }
    return w;
}

fn bits_of(base: u32, i: u32) -> array<f32, MAX_BITS> {
    var s: array<f32, MAX_BITS>;
    for (var j = 0u; j < p.bits; j = j + 1u) { s[j] = smooth_step(src[base + i * p.bits + j]); }
    return s;
}

@compute @workgroup_size(256)
fn dselect_gate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear(wid, lid);
    if (i >= p.rows * p.tasks) { return; }
    let base = dselect_base(i);
    let w = selector_weights(base);
    let out_row = i * p.shared_experts;
    for (var e = 0u; e < p.shared_experts; e = e + 1u) { out[out_row + e] = 0.0; }
    for (var sel = 0u; sel < p.selectors; sel = sel + 1u) {
        let s = bits_of(base, sel);
        for (var e = 0u; e < p.shared_experts; e = e + 1u) {
            out[out_row + e] = fma(w[sel], selector(s, e, MAX_BITS), out[out_row + e]);
        }
    }
}

@compute @workgroup_size(256)
fn dselect_gate_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear(wid, lid);
    if (i >= p.rows * p.tasks) { return; }
    let base = dselect_base(i);
    let w = selector_weights(base);
    let up_row = i * p.shared_experts;
    let codes = 1u << p.bits;
    // dL/dw_i = Σ_e dq_e r_i(e), then through the softmax.
    var dw: array<f32, MAX_K>;
    var dot = 0.0;
    for (var sel = 0u; sel < p.selectors; sel = sel + 1u) {
        let s = bits_of(base, sel);
        var acc = 0.0;
        for (var e = 0u; e < p.shared_experts; e = e + 1u) {
            acc = fma(upstream[up_row + e], selector(s, e, MAX_BITS), acc);
        }
        dw[sel] = acc;
        dot = fma(w[sel], acc, dot);
    }
    for (var sel = 0u; sel < p.selectors; sel = sel + 1u) {
        let a = base + p.selectors * p.bits + sel;
        var v = w[sel] * (dw[sel] - dot);
        if (ACCUMULATE) { v = v + out[a]; }
        out[a] = v;
    }
    // dL/dr_i(e) = w_i dq_e (e < E) + λ/rows · dH/dr (every code), then
    // through the product of bits and the smooth step.
    for (var sel = 0u; sel < p.selectors; sel = sel + 1u) {
        let s = bits_of(base, sel);
        for (var j = 0u; j < p.bits; j = j + 1u) {
            var ds = 0.0;
            for (var e = 0u; e < codes; e = e + 1u) {
                let re = selector(s, e, MAX_BITS);
                var dr = -p.entropy * (log(re + ENTROPY_EPS) + re / (re + ENTROPY_EPS));
                if (e < p.shared_experts) { dr = fma(w[sel], upstream[up_row + e], dr); }
                var partial = selector(s, e, j);
                if (((e >> j) & 1u) == 0u) { partial = -partial; }
                ds = fma(dr, partial, ds);
            }
            let z = base + sel * p.bits + j;
            var v = ds * smooth_step_grad(src[z]);
            if (ACCUMULATE) { v = v + out[z]; }
            out[z] = v;
        }
    }
}
