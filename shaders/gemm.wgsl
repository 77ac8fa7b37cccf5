// GEMM entry points that need no optional feature (the shared part is in
// shaders/gemm_common.wgsl): gemm_naive, gemm_rb, gemm_tiled.

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
