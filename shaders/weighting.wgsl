// Task-weighting kernels (docs/math.md §5): uncertainty weighting and the
// per-epoch loss sums of DWA (the Gram matrix of per-task gradients uses
// trace_norm.wgsl's chunked `gram_partials`).
//
//   uncertainty_weights  w_t = ½·e^(−s_t): the loss kernel's per-task
//                        upstream weight for L = Σ ½e^(−s_t)L_t + ½s_t.
//   uncertainty_grad     ds_t = ½(1 − e^(−s_t)·L_t) into s's gradient.
//   loss_accumulate      sums[t] += L_t (DWA's epoch averages).
//   loss_rule            c_t from this step's losses (GLS, STCH, FAMO):
//                        the loss kernel's weights, between the forward
//                        and the backward, in the step's submit.
//   graddrop             GradDrop's sign-dropout of the heads' input
//                        gradient (one lane per feature, tasks and rows
//                        in a fixed order).
//   row_partials         per-task chunk sums of x² (mode 0) or, updating
//                        Adagrad sums s += x² in place, of x²/√(s + 1e-7)
//                        (mode 1, ExcessMTL); reduce::column_sums ends it.
//   moco_update          MoCo's tracked gradients y_t ← y_t − β(y_t −
//                        L_t·g_t/(‖g_t‖ + 1e-8)).
//   combine_rows         out = Σ_t c_t·y_t (MoCo's shared gradient).
// Launcher src/kernels/weighting.rs; tests kernels-tests/weighting_gpu.rs.

struct Params {
    tasks: u32,
    n: u32,       // row_partials, moco_update, combine_rows: elements per task row; graddrop: rows
    ld: u32,      // row_partials: elements between task rows; graddrop: width
    chunk: u32,   // row_partials: elements per workgroup (multiple of 256)
    pairs: u32,   // unused
    mode: u32,    // row_partials: 0 plain squares, 1 Adagrad-scaled
    seed: u32,    // graddrop: this step's generator seed
    scalar: f32,  // graddrop: leak; moco_update: β
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> state: array<f32>;
@group(0) @binding(5) var<storage, read> c: array<f32>;

var<workgroup> partial: array<f32, 256>;

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

// a = rule [2 + 2T]: mode, μ, u_0..u_{T−1}, v_0..v_{T−1}; b = losses L;
// out = the loss kernel's weights c. Modes (docs/math.md §5):
//   0 GLS   c_t = (Π_s L_s)^{1/T} / (T·L_t)
//   1 log   c_t = 1/(L_t + 1e-20)                        (STCH's warm-up)
//   2 STCH  r_t = log(L_t/u_t + 1e-20), c_t = T·softmax(r/μ)_t/(L_t + 1e-20·u_t)
//   3 FAMO  q_t = u_t/(L_t − v_t + 1e-8), c_t = q_t/Σ_s q_s
// Every lane loops over all tasks in the same order: no shared memory,
// the same sums in every lane.
@compute @workgroup_size(64)
fn loss_rule(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let tasks = p.tasks;
    if (t >= tasks) { return; }
    let mode = u32(a[0]);
    let mu = a[1];
    let n = f32(tasks);
    let l = b[t];
    if (mode == 0u) {
        var logs = 0.0;
        for (var k = 0u; k < tasks; k = k + 1u) { logs = logs + log(b[k]); }
        out[t] = exp(logs / n) / (n * l);
    } else if (mode == 1u) {
        out[t] = 1.0 / (l + 1e-20);
    } else if (mode == 2u) {
        var top = log(b[0] / a[2] + 1e-20);
        for (var k = 1u; k < tasks; k = k + 1u) { top = max(top, log(b[k] / a[2u + k] + 1e-20)); }
        var total = 0.0;
        for (var k = 0u; k < tasks; k = k + 1u) { total = total + exp((log(b[k] / a[2u + k] + 1e-20) - top) / mu); }
        let mine = exp((log(l / a[2u + t] + 1e-20) - top) / mu);
        out[t] = n * (mine / total) / (l + 1e-20 * a[2u + t]);
    } else {
        var total = 0.0;
        for (var k = 0u; k < tasks; k = k + 1u) { total = total + a[2u + k] / (b[k] - a[2u + tasks + k] + 1e-8); }
        out[t] = (a[2u + t] / (l - a[2u + tasks + t] + 1e-8)) / total;
    }
}

// A 32-bit permutation (PCG's output function over an LCG step).
fn pcg_hash(v: u32) -> u32 {
    let s = v * 747796405u + 2891336453u;
    let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (w >> 22u) ^ w;
}

// a = per-task gradients dH_t [T, rows, width], b = H [rows, width],
// out = dH [rows, width]; n = rows, ld = width, scalar = leak. Lane d:
//   s_t = Σ_r dH_t[r, d]·sign(H[r, d]); P = ½(1 + Σ s_t/(Σ |s_t| + 1e-7))
//   U = hash(seed, d) in [0, 1); keep_t = (P > U and s_t > 0) or (P < U and s_t < 0)
//   dH[r, d] = Σ_t dH_t[r, d]·(leak + (1 − leak)·keep_t)
@compute @workgroup_size(64)
fn graddrop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let d = (wid.y * nwg.x + wid.x) * 64u + lid.x;
    let rows = p.n;
    let width = p.ld;
    if (d >= width) { return; }
    var signed: array<f32, 64>;
    var total = 0.0;
    var magnitude = 0.0;
    for (var t = 0u; t < p.tasks; t = t + 1u) {
        var s = 0.0;
        for (var r = 0u; r < rows; r = r + 1u) {
            s = s + a[(t * rows + r) * width + d] * sign(b[r * width + d]);
        }
        signed[t] = s;
        total = total + s;
        magnitude = magnitude + abs(s);
    }
    let purity = 0.5 * (1.0 + total / (magnitude + 1e-7));
    let u = f32(pcg_hash(p.seed ^ pcg_hash(d)) >> 8u) / 16777216.0;
    var factor: array<f32, 64>;
    for (var t = 0u; t < p.tasks; t = t + 1u) {
        let keep = (purity > u && signed[t] > 0.0) || (purity < u && signed[t] < 0.0);
        factor[t] = p.scalar + (1.0 - p.scalar) * select(0.0, 1.0, keep);
    }
    for (var r = 0u; r < rows; r = r + 1u) {
        var acc = 0.0;
        for (var t = 0u; t < p.tasks; t = t + 1u) {
            acc = acc + a[(t * rows + r) * width + d] * factor[t];
        }
        out[r * width + d] = acc;
    }
}

// a = X [T, n] (row t at t·ld), state = Adagrad sums [T, n] (mode 1),
// out = partials [chunks, T]: workgroup (chunk c, task t), 256 lanes
// strided over the chunk, then a tree.
@compute @workgroup_size(256)
fn row_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let chunk = wid.x;
    let t = wid.y;
    let start = chunk * p.chunk;
    let end = min(start + p.chunk, p.n);
    var acc = 0.0;
    for (var k = start + lid.x; k < end; k = k + 256u) {
        let x = a[t * p.ld + k];
        if (p.mode == 1u) {
            let s = state[t * p.ld + k] + x * x;
            state[t * p.ld + k] = s;
            acc = acc + x * x / sqrt(s + 1e-7);
        } else {
            acc = fma(x, x, acc);
        }
    }
    partial[lid.x] = acc;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half = half / 2u) {
        if (lid.x < half) { partial[lid.x] = partial[lid.x] + partial[lid.x + half]; }
        workgroupBarrier();
    }
    if (lid.x == 0u) { out[chunk * p.tasks + t] = partial[0]; }
}

// a = G [T, n], c = [‖g_t‖² for each t, then L_t for each t],
// state = Y [T, n]; scalar = β. One lane per element.
@compute @workgroup_size(256)
fn moco_update(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (i >= p.tasks * p.n) { return; }
    let t = i / p.n;
    let g = a[i] / (sqrt(c[t]) + 1e-8) * c[p.tasks + t];
    state[i] = state[i] - p.scalar * (state[i] - g);
}

// state = Y [T, n], c = coefficients [T], out = Σ_t c_t·y_t [n]: one lane
// per element, tasks in order.
@compute @workgroup_size(256)
fn combine_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let k = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (k >= p.n) { return; }
    var acc = 0.0;
    for (var t = 0u; t < p.tasks; t = t + 1u) {
        acc = fma(c[t], state[t * p.n + k], acc);
    }
    out[k] = acc;
}
