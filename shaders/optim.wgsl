// Fused optimiser family: one dispatch updates every parameter of a model
// held in one flat buffer (a parameter arena), with its gradient and state
// buffers of the same length. One invocation per parameter; the grid may
// be folded into (x, y) as in shaders/elementwise.wgsl.
//
// Entry points (tests: kernels-tests/optim.rs, cases in
// src/conformance/optim.rs; equations: docs/math.md §6):
//   sgd_step    v = μ·v + g + wd·θ;  θ = θ − η·v
//   adamw_step  m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;
//               θ = θ − η·( (m / bc1) / (sqrt(v / bc2) + ε) + wd·θ ),
//               bc1 = 1 − β1^t, bc2 = 1 − β2^t (from the host, in f64)

struct Params {
    n: u32,
    _pad0: u32,
    lr: f32,
    weight_decay: f32,
    momentum: f32,   // sgd: μ; adamw: β1
    beta2: f32,
    eps: f32,
    bc1: f32,
    bc2: f32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> state1: array<f32>;  // sgd: velocity; adamw: m
@group(0) @binding(4) var<storage, read_write> state2: array<f32>;  // adamw: v

fn param_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn sgd_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = param_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let theta = param[i];
    let v = p.momentum * state1[i] + grad[i] + p.weight_decay * theta;
    state1[i] = v;
    param[i] = theta - p.lr * v;
}

@compute @workgroup_size(256)
fn adamw_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = param_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let g = grad[i];
    let theta = param[i];
    let m = p.momentum * state1[i] + (1.0 - p.momentum) * g;
    let v = p.beta2 * state2[i] + (1.0 - p.beta2) * g * g;
    state1[i] = m;
    state2[i] = v;
    let update = (m / p.bc1) / (sqrt(v / p.bc2) + p.eps) + p.weight_decay * theta;
    param[i] = theta - p.lr * update;
}
