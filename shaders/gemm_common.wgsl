// GEMM family, shared part: parameters, bindings, operand loads with the
// optional prologue, the epilogue and the workgroup order.
// src/gpu/pipelines.rs builds each module as
//   gemm_f32.wgsl | gemm_f16.wgsl   (`alias Elem`: the storage type)
//   + activation.wgsl + gemm_common.wgsl
//   + gemm.wgsl | gemm_subgroup.wgsl (the entry points; the subgroup one is
//     a module of its own so adapters without SUBGROUP never compile it).
// Storage is Elem (f32, or f16 where SHADER_F16 is granted); arithmetic and
// accumulation are always f32.
//
// C = act(alpha · op(A) · op(B) + beta · C + bias), batched on grid z.
//
//   op(A): M×K, stored M×K row-major (lda) or, with TRANS_A, K×M.
//   op(B): K×N, stored K×N row-major (ldb) or, with TRANS_B, N×K.
//   Training's three layouts: NN (Y = X·W), NT (dX = D·Wᵀ), TN (dW = Xᵀ·D).
//   Batch z is either a strided batch (A, B, C, bias at z·stride_*), or,
//   with TASKS, problem z of a task table: its own M, N, K, leading
//   dimensions and element offsets (per-task heads of different widths in
//   one dispatch; the grid covers the largest task, other tasks' workgroups
//   past their own M or N return at once).
//
// Fusions for the dense layer (docs/math.md §1):
//   STORE_Z  the epilogue also writes the pre-activation z to `zout`.
//   PRO_A / PRO_B  prologue: every op(A) (or op(B)) element is multiplied
//            by act'(s), s read from `saved` at the same index as the
//            element: D = G ⊙ act'(Z) is formed while loading G, never
//            stored. act' is of kind DACT, from Z, or with SAVED_Y from the
//            layer's output Y (identity, relu, tanh, sigmoid).
//   BGRAD    the column sums of op(B) (after the prologue), i.e. the bias
//            gradient in the dW = Xᵀ·D pass, are accumulated by the
//            invocations of the first row tile in the same k order as the
//            product and written to `dbias` (alpha/beta apply): no atomics,
//            no second pass.
//
// Every variant computes the same sums in the same k order (one fma per k
// per output, k ascending), so variants agree bit for bit when fma is
// fused (tested on lavapipe and llvmpipe); they differ in how loads are
// shared:
//   gemm_naive     one invocation per output, 16×16 workgroups. The
//                  reference variant.
//   gemm_rb        register-blocked, no workgroup memory: RB_WG
//                  invocations share 32 rows (uniform A loads), each owns 4
//                  columns (one vec4 of B per k) → 32 × 4·RB_WG tile.
//   gemm_subgroup  one subgroup (SG lanes, SG = the adapter's fixed
//                  subgroup size ≥ 8) per workgroup: 32 rows × 4·SG
//                  columns; each lane loads 32/SG of the A values and
//                  subgroupShuffle shares them, so A costs 32 loads per k
//                  instead of 32·SG.
//   gemm_tiled     workgroup-memory tiles of 64×64 (k step 16), 16×16
//                  invocations with 4×4 outputs each: what discrete GPUs
//                  want.
// Workgroups are numbered down the rows of C first (tile_row fastest), so
// neighbouring workgroups read the same panel of B.
// Epilogue (all variants, `store`): beta (override BETA), bias per column
// (override BIAS), activation (override ACT, shaders/activation.wgsl).
// Tests: kernels-tests/gemm.rs, kernels-tests/dense.rs,
// kernels-tests/task_gemm.rs; cases in src/conformance/.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    tiles_m: u32,      // row tiles of the grid: workgroup order
    lda: u32,
    ldb: u32,
    ldc: u32,
    tiles: u32,        // row tiles × column tiles: grid padding guard
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    stride_bias: u32,
    alpha: f32,
    beta: f32,
    _pad0: u32,
    _pad1: u32,
}

// The problem one grid z computes: a row of the task table (TASKS), or
// built from the uniform parameters. Offsets are in elements.
struct TaskDesc {
    m: u32,
    n: u32,
    k: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    a0: u32,
    b0: u32,
    c0: u32,
    bias0: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<Elem>;
@group(0) @binding(2) var<storage, read> b: array<Elem>;
@group(0) @binding(3) var<storage, read_write> c: array<Elem>;
@group(0) @binding(4) var<storage, read> bias: array<Elem>;
// B again, read four columns at a time (bound to the same buffer as b).
@group(0) @binding(5) var<storage, read> b4: array<vec4<Elem>>;
// Prologue input (Z or Y), laid out like the operand it scales; saved4 is
// the same buffer read as vec4s.
@group(0) @binding(6) var<storage, read> saved: array<Elem>;
@group(0) @binding(7) var<storage, read> saved4: array<vec4<Elem>>;
@group(0) @binding(8) var<storage, read_write> zout: array<Elem>;
@group(0) @binding(9) var<storage, read_write> dbias: array<Elem>;
@group(0) @binding(10) var<storage, read> tasks: array<TaskDesc>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override BETA: bool = false;
override BIAS: bool = false;
// Set by the host when B is not transposed and N, ldb and the batch stride
// (or every task's N, ldb and B offset) are multiples of 4: four
// consecutive columns are one aligned vec4.
override VEC_B: bool = false;
override TASKS: bool = false;
override STORE_Z: bool = false;
override PRO_A: bool = false;
override PRO_B: bool = false;
override DACT: u32 = 0u;
override SAVED_Y: bool = false;
override BGRAD: bool = false;

fn problem(z: u32) -> TaskDesc {
    if (TASKS) { return tasks[z]; }
    return TaskDesc(p.m, p.n, p.k, p.lda, p.ldb, p.ldc,
                    z * p.stride_a, z * p.stride_b, z * p.stride_c, z * p.stride_bias, 0u, 0u);
}

// act' for the prologue, from the saved value.
fn dact(s: f32) -> f32 {
    if (SAVED_Y) { return act_grad_from_output(DACT, s); }
    return act_grad_of(DACT, s);
}

// Element (row, kk) of op(A); callers clamp row < M.
fn load_a(q: TaskDesc, row: u32, kk: u32) -> f32 {
    var idx = q.a0 + row * q.lda + kk;
    if (TRANS_A) { idx = q.a0 + kk * q.lda + row; }
    var v = f32(a[idx]);
    if (PRO_A) { v = v * dact(f32(saved[idx])); }
    return v;
}

// Element (kk, col) of op(B); callers clamp col < N.
fn load_b(q: TaskDesc, kk: u32, col: u32) -> f32 {
    var idx = q.b0 + kk * q.ldb + col;
    if (TRANS_B) { idx = q.b0 + col * q.ldb + kk; }
    var v = f32(b[idx]);
    if (PRO_B) { v = v * dact(f32(saved[idx])); }
    return v;
}

// Columns col .. col+3 of row kk of op(B), clamped to the last column.
fn load_b4(q: TaskDesc, kk: u32, col: u32) -> vec4<f32> {
    if (VEC_B) {
        // N is a multiple of 4: clamp to the last whole vec4.
        let i = (q.b0 + kk * q.ldb + min(col, q.n - 4u)) / 4u;
        var v = vec4<f32>(b4[i]);
        if (PRO_B) {
            let s = vec4<f32>(saved4[i]);
            v = v * vec4<f32>(dact(s.x), dact(s.y), dact(s.z), dact(s.w));
        }
        return v;
    }
    let last = q.n - 1u;
    return vec4<f32>(load_b(q, kk, min(col, last)), load_b(q, kk, min(col + 1u, last)),
                     load_b(q, kk, min(col + 2u, last)), load_b(q, kk, min(col + 3u, last)));
}

fn store(q: TaskDesc, row: u32, col: u32, acc: f32) {
    if (row >= q.m || col >= q.n) { return; }
    let idx = q.c0 + row * q.ldc + col;
    var v = p.alpha * acc;
    if (BETA) { v = v + p.beta * f32(c[idx]); }
    if (BIAS) { v = v + f32(bias[q.bias0 + col]); }
    if (STORE_Z) { zout[idx] = Elem(v); }
    c[idx] = Elem(act(v));
}

// Four consecutive columns of one row.
fn store4(q: TaskDesc, row: u32, col: u32, v: vec4<f32>) {
    store(q, row, col, v.x);
    store(q, row, col + 1u, v.y);
    store(q, row, col + 2u, v.z);
    store(q, row, col + 3u, v.w);
}

// BGRAD: the column sum of op(B) for column `col`.
fn store_bias_grad(q: TaskDesc, col: u32, sum: f32) {
    if (col >= q.n) { return; }
    let idx = q.bias0 + col;
    var v = p.alpha * sum;
    if (BETA) { v = v + p.beta * f32(dbias[idx]); }
    dbias[idx] = Elem(v);
}

fn store_bias_grad4(q: TaskDesc, col: u32, sum: vec4<f32>) {
    store_bias_grad(q, col, sum.x);
    store_bias_grad(q, col + 1u, sum.y);
    store_bias_grad(q, col + 2u, sum.z);
    store_bias_grad(q, col + 3u, sum.w);
}

struct Tile {
    row: u32,
    col: u32,
    valid: bool,
}

// The tile a workgroup computes: grid (x, y) folded into a linear index,
// walked down the rows first.
fn tile_of(wid: vec3<u32>, nwg: vec3<u32>) -> Tile {
    let linear = wid.y * nwg.x + wid.x;
    return Tile(linear % p.tiles_m, linear / p.tiles_m, linear < p.tiles);
}
