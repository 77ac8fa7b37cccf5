// GEMM family, shared part: parameters, bindings, operand loads, the
// epilogue and the workgroup order. src/gpu/pipelines.rs prepends it (after
// shaders/activation.wgsl) to shaders/gemm.wgsl and shaders/gemm_subgroup.wgsl,
// which hold the entry points; the subgroup one is a module of its own so
// adapters without SUBGROUP never compile it.
//
// C = act(alpha · op(A) · op(B) + beta · C + bias), batched on grid z.
//
//   op(A): M×K, stored M×K row-major (lda) or, with TRANS_A, K×M.
//   op(B): K×N, stored K×N row-major (ldb) or, with TRANS_B, N×K.
//   Training's three layouts: NN (Y = X·W), NT (dX = D·Wᵀ), TN (dW = Xᵀ·D).
//   Batch z reads A, B, C, bias at z·stride_{a,b,c,bias}.
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
// Tests: kernels-tests/gemm.rs, cases in src/conformance/gemm.rs.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    tiles_m: u32,      // row tiles of C: workgroup order
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

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
// B again, read four columns at a time (bound to the same buffer as b).
@group(0) @binding(5) var<storage, read> b4: array<vec4<f32>>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override BETA: bool = false;
override BIAS: bool = false;
// Set by the host when B is not transposed and N, ldb and the batch stride
// of B are multiples of 4: four consecutive columns are one aligned vec4.
override VEC_B: bool = false;
// Element (row, kk) of op(A) for batch `batch`; callers clamp row < M.
fn load_a(batch: u32, row: u32, kk: u32) -> f32 {
    let base = batch * p.stride_a;
    if (TRANS_A) { return a[base + kk * p.lda + row]; }
    return a[base + row * p.lda + kk];
}

// Element (kk, col) of op(B); callers clamp col < N.
fn load_b(batch: u32, kk: u32, col: u32) -> f32 {
    let base = batch * p.stride_b;
    if (TRANS_B) { return b[base + col * p.ldb + kk]; }
    return b[base + kk * p.ldb + col];
}

// Columns col .. col+3 of row kk of op(B), clamped to the last column.
fn load_b4(batch: u32, kk: u32, col: u32) -> vec4<f32> {
    if (VEC_B) {
        // N is a multiple of 4: clamp to the last whole vec4.
        let c = min(col, p.n - 4u);
        return b4[(batch * p.stride_b + kk * p.ldb + c) / 4u];
    }
    let last = p.n - 1u;
    return vec4<f32>(load_b(batch, kk, min(col, last)), load_b(batch, kk, min(col + 1u, last)),
                     load_b(batch, kk, min(col + 2u, last)), load_b(batch, kk, min(col + 3u, last)));
}

fn store(batch: u32, row: u32, col: u32, acc: f32) {
    if (row >= p.m || col >= p.n) { return; }
    let idx = batch * p.stride_c + row * p.ldc + col;
    var v = p.alpha * acc;
    if (BETA) { v = v + p.beta * c[idx]; }
    if (BIAS) { v = v + bias[batch * p.stride_bias + col]; }
    c[idx] = act(v);
}

// Four consecutive columns of one row.
fn store4(batch: u32, row: u32, col: u32, v: vec4<f32>) {
    store(batch, row, col, v.x);
    store(batch, row, col + 1u, v.y);
    store(batch, row, col + 2u, v.z);
    store(batch, row, col + 3u, v.w);
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
