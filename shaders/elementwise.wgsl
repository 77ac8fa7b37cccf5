// Elementwise kernel family: one invocation per element.
//
// The grid may be folded into (x, y) when n needs more than 65 535
// workgroups; `element_index` undoes the fold. Every entry point guards
// `i < p.n`. `act` / `act_grad` come from shaders/activation.wgsl
// (prepended when the shader is built), specialised by its override ACT.
//
// Entry points (tests: kernels-tests/elementwise.rs, cases in
// src/conformance/elementwise.rs):
//   fill          out[i] = alpha
//   copy          out[i] = a[i]
//   add           out[i] = a[i] + b[i]
//   scale         out[i] = alpha * a[i]
//   axpy          out[i] = out[i] + alpha * a[i]        (y += alpha x, in place)
//   act_forward   out[i] = act(a[i])                     (a = pre-activation z)
//   act_backward  out[i] = b[i] * act'(a[i])             (a = z, b = dL/dy)
//   act_backward_from_output
//                 out[i] = b[i] * act'(z) computed from a[i] = y = act(z)
//                 (not GELU; see act_grad_from_output)

struct Params {
    n: u32,
    alpha: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const WG: u32 = 256u;

fn element_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid.x;
}

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, nwg, lid);
    if (i < p.n) { out[i] = p.alpha; }
}

@compute @workgroup_size(256)
fn copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, nwg, lid);
    if (i < p.n) { out[i] = a[i]; }
}

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, nwg, lid);
    if (i < p.n) { out[i] = a[i] + b[i]; }
}

@compute @workgroup_size(256)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, nwg, lid);
    if (i < p.n) { out[i] = p.alpha * a[i]; }
}

@compute @workgroup_size(256)
fn axpy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, nwg, lid);
    if (i < p.n) { out[i] = out[i] + p.alpha * a[i]; }
}

@compute @workgroup_size(256)
fn act_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, nwg, lid);
    if (i < p.n) { out[i] = act(a[i]); }
}

@compute @workgroup_size(256)
fn act_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, nwg, lid);
    if (i < p.n) { out[i] = b[i] * act_grad(a[i]); }
}

@compute @workgroup_size(256)
fn act_backward_from_output(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, nwg, lid);
    if (i < p.n) { out[i] = b[i] * act_grad_from_output(ACT, a[i]); }
}
