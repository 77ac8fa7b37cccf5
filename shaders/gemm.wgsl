// GEMM entry points that need no optional feature (the shared part is in
// shaders/gemm_common.wgsl): gemm_naive, gemm_rb, gemm_tiled. Each one
// honours every override of gemm_common.wgsl (tasks, prologue, bias grad).

// Invocations of a gemm_rb workgroup (the host sets 64).
override RB_WG: u32 = 64u;

@compute @workgroup_size(16, 16)
fn gemm_naive(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = tile_of(wid, nwg);
    if (!t.valid) { return; }
    let q = problem(wid.z);
    if (t.row * 16u >= q.m || t.col * 16u >= q.n) { return; }
    let row = t.row * 16u + lid.y;
    let col = t.col * 16u + lid.x;
    let ra = min(row, q.m - 1u);
    let cb = min(col, q.n - 1u);
    var acc = 0.0;
    var bsum = 0.0;
    for (var kk = 0u; kk < q.k; kk = kk + 1u) {
        let bv = load_b(q, kk, cb);
        acc = fma(load_a(q, ra, kk), bv, acc);
        if (BGRAD) { bsum = bsum + bv; }
    }
    store(q, row, col, acc);
    if (BGRAD && row == 0u) { store_bias_grad(q, col, bsum); }
}

// gemm_rb: a workgroup of RB_WG invocations computes 32 rows × 4·RB_WG
// columns of C. All invocations work on the same 32 rows, so every A value
// has one address across the workgroup (a uniform load: one scalar load on
// CPU drivers, a broadcast on GPUs); invocation x owns columns
// 4x .. 4x+3 of the tile, one vec4 accumulator per row, spelled out (no
// local arrays).
@compute @workgroup_size(RB_WG)
fn gemm_rb(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = tile_of(wid, nwg);
    if (!t.valid) { return; }
    let q = problem(wid.z);
    // Tiles past this problem's own size (a smaller task) have no work.
    if (t.row * 32u >= q.m || t.col * 4u * RB_WG >= q.n) { return; }
    let row0 = t.row * 32u;
    let col0 = t.col * 4u * RB_WG + 4u * lid.x;
    let last_row = q.m - 1u;
    var c0 = vec4<f32>();
    var c1 = vec4<f32>();
    var c2 = vec4<f32>();
    var c3 = vec4<f32>();
    var c4 = vec4<f32>();
    var c5 = vec4<f32>();
    var c6 = vec4<f32>();
    var c7 = vec4<f32>();
    var c8 = vec4<f32>();
    var c9 = vec4<f32>();
    var c10 = vec4<f32>();
    var c11 = vec4<f32>();
    var c12 = vec4<f32>();
    var c13 = vec4<f32>();
    var c14 = vec4<f32>();
    var c15 = vec4<f32>();
    var c16 = vec4<f32>();
    var c17 = vec4<f32>();
    var c18 = vec4<f32>();
    var c19 = vec4<f32>();
    var c20 = vec4<f32>();
    var c21 = vec4<f32>();
    var c22 = vec4<f32>();
    var c23 = vec4<f32>();
    var c24 = vec4<f32>();
    var c25 = vec4<f32>();
    var c26 = vec4<f32>();
    var c27 = vec4<f32>();
    var c28 = vec4<f32>();
    var c29 = vec4<f32>();
    var c30 = vec4<f32>();
    var c31 = vec4<f32>();
    var bsum = vec4<f32>();
    for (var kk = 0u; kk < q.k; kk = kk + 1u) {
        let bv = load_b4(q, kk, col0);
        if (BGRAD) { bsum = bsum + bv; }
        c0 = fma(vec4<f32>(load_a(q, min(row0 + 0u, last_row), kk)), bv, c0);
        c1 = fma(vec4<f32>(load_a(q, min(row0 + 1u, last_row), kk)), bv, c1);
        c2 = fma(vec4<f32>(load_a(q, min(row0 + 2u, last_row), kk)), bv, c2);
        c3 = fma(vec4<f32>(load_a(q, min(row0 + 3u, last_row), kk)), bv, c3);
        c4 = fma(vec4<f32>(load_a(q, min(row0 + 4u, last_row), kk)), bv, c4);
        c5 = fma(vec4<f32>(load_a(q, min(row0 + 5u, last_row), kk)), bv, c5);
        c6 = fma(vec4<f32>(load_a(q, min(row0 + 6u, last_row), kk)), bv, c6);
        c7 = fma(vec4<f32>(load_a(q, min(row0 + 7u, last_row), kk)), bv, c7);
        c8 = fma(vec4<f32>(load_a(q, min(row0 + 8u, last_row), kk)), bv, c8);
        c9 = fma(vec4<f32>(load_a(q, min(row0 + 9u, last_row), kk)), bv, c9);
        c10 = fma(vec4<f32>(load_a(q, min(row0 + 10u, last_row), kk)), bv, c10);
        c11 = fma(vec4<f32>(load_a(q, min(row0 + 11u, last_row), kk)), bv, c11);
        c12 = fma(vec4<f32>(load_a(q, min(row0 + 12u, last_row), kk)), bv, c12);
        c13 = fma(vec4<f32>(load_a(q, min(row0 + 13u, last_row), kk)), bv, c13);
        c14 = fma(vec4<f32>(load_a(q, min(row0 + 14u, last_row), kk)), bv, c14);
        c15 = fma(vec4<f32>(load_a(q, min(row0 + 15u, last_row), kk)), bv, c15);
        c16 = fma(vec4<f32>(load_a(q, min(row0 + 16u, last_row), kk)), bv, c16);
        c17 = fma(vec4<f32>(load_a(q, min(row0 + 17u, last_row), kk)), bv, c17);
        c18 = fma(vec4<f32>(load_a(q, min(row0 + 18u, last_row), kk)), bv, c18);
        c19 = fma(vec4<f32>(load_a(q, min(row0 + 19u, last_row), kk)), bv, c19);
        c20 = fma(vec4<f32>(load_a(q, min(row0 + 20u, last_row), kk)), bv, c20);
        c21 = fma(vec4<f32>(load_a(q, min(row0 + 21u, last_row), kk)), bv, c21);
        c22 = fma(vec4<f32>(load_a(q, min(row0 + 22u, last_row), kk)), bv, c22);
        c23 = fma(vec4<f32>(load_a(q, min(row0 + 23u, last_row), kk)), bv, c23);
        c24 = fma(vec4<f32>(load_a(q, min(row0 + 24u, last_row), kk)), bv, c24);
        c25 = fma(vec4<f32>(load_a(q, min(row0 + 25u, last_row), kk)), bv, c25);
        c26 = fma(vec4<f32>(load_a(q, min(row0 + 26u, last_row), kk)), bv, c26);
        c27 = fma(vec4<f32>(load_a(q, min(row0 + 27u, last_row), kk)), bv, c27);
        c28 = fma(vec4<f32>(load_a(q, min(row0 + 28u, last_row), kk)), bv, c28);
        c29 = fma(vec4<f32>(load_a(q, min(row0 + 29u, last_row), kk)), bv, c29);
        c30 = fma(vec4<f32>(load_a(q, min(row0 + 30u, last_row), kk)), bv, c30);
        c31 = fma(vec4<f32>(load_a(q, min(row0 + 31u, last_row), kk)), bv, c31);
    }
    if (BGRAD && t.row == 0u) { store_bias_grad4(q, col0, bsum); }
    store4(q, row0 + 0u, col0, c0);
    store4(q, row0 + 1u, col0, c1);
    store4(q, row0 + 2u, col0, c2);
    store4(q, row0 + 3u, col0, c3);
    store4(q, row0 + 4u, col0, c4);
    store4(q, row0 + 5u, col0, c5);
    store4(q, row0 + 6u, col0, c6);
    store4(q, row0 + 7u, col0, c7);
    store4(q, row0 + 8u, col0, c8);
    store4(q, row0 + 9u, col0, c9);
    store4(q, row0 + 10u, col0, c10);
    store4(q, row0 + 11u, col0, c11);
    store4(q, row0 + 12u, col0, c12);
    store4(q, row0 + 13u, col0, c13);
    store4(q, row0 + 14u, col0, c14);
    store4(q, row0 + 15u, col0, c15);
    store4(q, row0 + 16u, col0, c16);
    store4(q, row0 + 17u, col0, c17);
    store4(q, row0 + 18u, col0, c18);
    store4(q, row0 + 19u, col0, c19);
    store4(q, row0 + 20u, col0, c20);
    store4(q, row0 + 21u, col0, c21);
    store4(q, row0 + 22u, col0, c22);
    store4(q, row0 + 23u, col0, c23);
    store4(q, row0 + 24u, col0, c24);
    store4(q, row0 + 25u, col0, c25);
    store4(q, row0 + 26u, col0, c26);
    store4(q, row0 + 27u, col0, c27);
    store4(q, row0 + 28u, col0, c28);
    store4(q, row0 + 29u, col0, c29);
    store4(q, row0 + 30u, col0, c30);
    store4(q, row0 + 31u, col0, c31);
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
    let q = problem(wid.z);
    let row0 = t.row * 64u;
    let col0 = t.col * 64u;
    if (row0 >= q.m || col0 >= q.n) { return; }
    var acc: array<f32, 16>;
    var bsum = vec4<f32>();
    for (var k0 = 0u; k0 < q.k; k0 = k0 + 16u) {
        // 256 invocations stage 1024 values of each tile, 4 apiece. Past K
        // the tiles hold zeros, so the fma chain below stays exact.
        for (var e = 0u; e < 4u; e = e + 1u) {
            let idx = li + 256u * e;
            let kk = idx / 64u;
            let rc = idx % 64u;
            let kin = k0 + kk < q.k;
            let kc = min(k0 + kk, q.k - 1u);
            tile_a[idx] = select(0.0, load_a(q, min(row0 + rc, q.m - 1u), kc), kin);
            tile_b[idx] = select(0.0, load_b(q, kc, min(col0 + rc, q.n - 1u)), kin);
        }
        workgroupBarrier();
        let kmax = min(16u, q.k - k0);
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
            if (BGRAD) { bsum = bsum + vec4<f32>(bv[0], bv[1], bv[2], bv[3]); }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            store(q, row0 + lid.y + 16u * i, col0 + lid.x + 16u * j, acc[i * 4u + j]);
        }
    }
    if (BGRAD && t.row == 0u && lid.y == 0u) {
        store_bias_grad(q, col0 + lid.x, bsum.x);
        store_bias_grad(q, col0 + lid.x + 16u, bsum.y);
        store_bias_grad(q, col0 + lid.x + 32u, bsum.z);
        store_bias_grad(q, col0 + lid.x + 48u, bsum.w);
    }
}
