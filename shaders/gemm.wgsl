// GEMM family: C = act(alpha · op(A) · op(B) + beta · C + bias), batched on
// grid z.
//
//   op(A): M×K, stored M×K row-major (lda) or, with TRANS_A, K×M.
//   op(B): K×N, stored K×N row-major (ldb) or, with TRANS_B, N×K.
//   Training's three layouts: NN (Y = X·W), NT (dX = D·Wᵀ), TN (dW = Xᵀ·D).
//   Batch z reads A, B, C, bias at z·stride_{a,b,c,bias}.
//
// Every variant computes the same sums in the same k order (one fma per k
// per output, k ascending), so variants agree to rounding of the fma
// itself; they differ in how loads are shared:
//   gemm_naive     one invocation per output, 16×16 workgroups. The
//                  reference variant.
//   gemm_rb        register-blocked, no workgroup memory: 8 rows × 8
//                  interleaved columns per invocation, 8×8 invocations →
//                  64×64 tile.
//   gemm_subgroup  one subgroup (SG lanes, SG = the adapter's fixed
//                  subgroup size) per workgroup: 16 rows × 8·SG columns;
//                  each lane loads 16/SG of the A values and subgroupShuffle
//                  shares them, so A costs 16 loads per k instead of 16·SG.
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

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override BETA: bool = false;
override BIAS: bool = false;
// Subgroup size gemm_subgroup is specialised for.
override SG: u32 = 8u;

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

fn store(batch: u32, row: u32, col: u32, acc: f32) {
    if (row >= p.m || col >= p.n) { return; }
    let idx = batch * p.stride_c + row * p.ldc + col;
    var v = p.alpha * acc;
    if (BETA) { v = v + p.beta * c[idx]; }
    if (BIAS) { v = v + bias[batch * p.stride_bias + col]; }
    c[idx] = act(v);
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

@compute @workgroup_size(16, 16)
fn gemm_naive(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = tile_of(wid, nwg);
    if (!t.valid) { return; }
    let row = t.row * 16u + lid.y;
    let col = t.col * 16u + lid.x;
    let ra = min(row, p.m - 1u);
    let cb = min(col, p.n - 1u);
    var acc = 0.0;
    for (var kk = 0u; kk < p.k; kk = kk + 1u) {
        acc = fma(load_a(wid.z, ra, kk), load_b(wid.z, kk, cb), acc);
    }
    store(wid.z, row, col, acc);
}

// gemm_rb: invocation (x, y) of an 8×8 workgroup owns rows
// tile_row·64 + y·8 + i and columns tile_col·64 + x + 8·j (i, j < 8).
@compute @workgroup_size(8, 8)
fn gemm_rb(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = tile_of(wid, nwg);
    if (!t.valid) { return; }
    let row0 = t.row * 64u + lid.y * 8u;
    let col0 = t.col * 64u + lid.x;
    var rows: array<u32, 8>;
    var cols: array<u32, 8>;
    for (var i = 0u; i < 8u; i = i + 1u) {
        rows[i] = min(row0 + i, p.m - 1u);
        cols[i] = min(col0 + 8u * i, p.n - 1u);
    }
    var acc: array<f32, 64>;
    for (var kk = 0u; kk < p.k; kk = kk + 1u) {
        var av: array<f32, 8>;
        var bv: array<f32, 8>;
        for (var i = 0u; i < 8u; i = i + 1u) {
            av[i] = load_a(wid.z, rows[i], kk);
            bv[i] = load_b(wid.z, kk, cols[i]);
        }
        for (var i = 0u; i < 8u; i = i + 1u) {
            for (var j = 0u; j < 8u; j = j + 1u) {
                acc[i * 8u + j] = fma(av[i], bv[j], acc[i * 8u + j]);
            }
        }
    }
    for (var i = 0u; i < 8u; i = i + 1u) {
        for (var j = 0u; j < 8u; j = j + 1u) {
            store(wid.z, row0 + i, col0 + 8u * j, acc[i * 8u + j]);
        }
    }
}

// gemm_subgroup: lane l of the workgroup's single subgroup owns rows
// tile_row·16 + r (r < 16) and columns tile_col·8·SG + l + SG·j (j < 8).
// It loads A rows l, l + SG, … and shares them with subgroupShuffle.
@compute @workgroup_size(SG)
fn gemm_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(subgroup_invocation_id) lane: u32) {
    let t = tile_of(wid, nwg);
    if (!t.valid) { return; }
    let row0 = t.row * 16u;
    let col0 = t.col * 8u * SG + lane;
    let a_per_lane = (16u + SG - 1u) / SG;
    var cols: array<u32, 8>;
    for (var j = 0u; j < 8u; j = j + 1u) {
        cols[j] = min(col0 + SG * j, p.n - 1u);
    }
    var arow: array<u32, 16>;
    for (var q = 0u; q < a_per_lane; q = q + 1u) {
        arow[q] = min(row0 + lane + SG * q, p.m - 1u);
    }
    var acc: array<f32, 128>;
    for (var kk = 0u; kk < p.k; kk = kk + 1u) {
        var av: array<f32, 16>;
        for (var q = 0u; q < a_per_lane; q = q + 1u) {
            av[q] = load_a(wid.z, arow[q], kk);
        }
        var bv: array<f32, 8>;
        for (var j = 0u; j < 8u; j = j + 1u) {
            bv[j] = load_b(wid.z, kk, cols[j]);
        }
        for (var r = 0u; r < 16u; r = r + 1u) {
            let ar = subgroupShuffle(av[r / SG], r % SG);
            for (var j = 0u; j < 8u; j = j + 1u) {
                acc[r * 8u + j] = fma(ar, bv[j], acc[r * 8u + j]);
            }
        }
    }
    for (var r = 0u; r < 16u; r = r + 1u) {
        for (var j = 0u; j < 8u; j = j + 1u) {
            store(wid.z, row0 + r, col0 + SG * j, acc[r * 8u + j]);
        }
    }
}

var<workgroup> tile_a: array<f32, 1024>;  // [16 k][64 rows]
var<workgroup> tile_b: array<f32, 1024>;  // [16 k][64 cols]

// gemm_tiled: 16×16 invocations; invocation (x, y) owns rows
// tile_row·64 + y + 16·i and columns tile_col·64 + x + 16·j (i, j < 4).
@compute @workgroup_size(16, 16)
fn gemm_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let t = tile_of(wid, nwg);
    if (!t.valid) { return; }
    let row0 = t.row * 64u;
    let col0 = t.col * 64u;
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < p.k; k0 = k0 + 16u) {
        // 256 invocations stage 1024 values of each tile, 4 apiece. Past K
        // the tiles hold zeros, so the fma chain below stays exact.
        for (var e = 0u; e < 4u; e = e + 1u) {
            let idx = li + 256u * e;
            let kk = idx / 64u;
            let rc = idx % 64u;
            let kin = k0 + kk < p.k;
            let kc = min(k0 + kk, p.k - 1u);
            tile_a[idx] = select(0.0, load_a(wid.z, min(row0 + rc, p.m - 1u), kc), kin);
            tile_b[idx] = select(0.0, load_b(wid.z, kc, min(col0 + rc, p.n - 1u)), kin);
        }
        workgroupBarrier();
        let kmax = min(16u, p.k - k0);
        for (var kk = 0u; kk < kmax; kk = kk + 1u) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i = i + 1u) {
                av[i] = tile_a[kk * 64u + lid.y + 16u * i];
                bv[i] = tile_b[kk * 64u + lid.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i = i + 1u) {
                for (var j = 0u; j < 4u; j = j + 1u) {
                    acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            store(wid.z, row0 + lid.y + 16u * i, col0 + lid.x + 16u * j, acc[i * 4u + j]);
        }
    }
}
