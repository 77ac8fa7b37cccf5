// GEMM entry point for adapters with SUBGROUP and a fixed subgroup size
// of 8 or more (the shared part is in shaders/gemm_common.wgsl).
//
// gemm_subgroup: one subgroup per workgroup computes 32 rows × 4·SG
// columns of C. Lane l owns columns 4l .. 4l+3 of the tile (one vec4
// accumulator per row) and loads rows l, l + SG, l + 2·SG, l + 3·SG of the
// tile's A column; subgroupShuffle hands every lane all 32 A values. Per k
// a lane loads one vec4 of B and 32/SG values of A for 128 fmas.
// Accumulators are spelled out (no local arrays: CPU drivers such as
// llvmpipe keep dynamically indexed local arrays in memory, measured ~10x
// slower). 32 rows × one vec4 measured fastest on lavapipe among 8/16/24/32
// rows × 1 or 2 vec4.

// Subgroup size the kernel is specialised for (the adapter's fixed size).
override SG: u32 = 8u;

// Row r of the tile lives in lane r % SG, register r / SG.
fn row_value(a0: f32, a1: f32, a2: f32, a3: f32, r: u32) -> f32 {
    let q = r / SG;
    let v = select(select(a3, a2, q == 2u), select(a1, a0, q == 0u), q < 2u);
    return subgroupShuffle(v, r % SG);
}

@compute @workgroup_size(SG)
fn gemm_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(subgroup_invocation_id) lane: u32) {
    let t = tile_of(wid, nwg);
    if (!t.valid) { return; }
    let q = problem(wid.z);
    // Tiles past this problem's own size (a smaller task) have no work.
    if (t.row * 32u >= q.m || t.col * 4u * SG >= q.n) { return; }
    let row0 = t.row * 32u;
    let col0 = t.col * 4u * SG + 4u * lane;
    let last_row = q.m - 1u;
    let r0 = min(row0 + lane, last_row);
    let r1 = min(row0 + lane + SG, last_row);
    let r2 = min(row0 + lane + 2u * SG, last_row);
    let r3 = min(row0 + lane + 3u * SG, last_row);
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
        let a0 = load_a(q, r0, kk);
        var a1 = 0.0;
        var a2 = 0.0;
        var a3 = 0.0;
        if (SG < 32u) { a1 = load_a(q, r1, kk); }
        if (2u * SG < 32u) { a2 = load_a(q, r2, kk); }
        if (3u * SG < 32u) { a3 = load_a(q, r3, kk); }
        c0 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 0u)), bv, c0);
        c1 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 1u)), bv, c1);
        c2 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 2u)), bv, c2);
        c3 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 3u)), bv, c3);
        c4 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 4u)), bv, c4);
        c5 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 5u)), bv, c5);
        c6 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 6u)), bv, c6);
        c7 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 7u)), bv, c7);
        c8 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 8u)), bv, c8);
        c9 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 9u)), bv, c9);
        c10 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 10u)), bv, c10);
        c11 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 11u)), bv, c11);
        c12 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 12u)), bv, c12);
        c13 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 13u)), bv, c13);
        c14 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 14u)), bv, c14);
        c15 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 15u)), bv, c15);
        c16 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 16u)), bv, c16);
        c17 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 17u)), bv, c17);
        c18 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 18u)), bv, c18);
        c19 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 19u)), bv, c19);
        c20 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 20u)), bv, c20);
        c21 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 21u)), bv, c21);
        c22 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 22u)), bv, c22);
        c23 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 23u)), bv, c23);
        c24 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 24u)), bv, c24);
        c25 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 25u)), bv, c25);
        c26 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 26u)), bv, c26);
        c27 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 27u)), bv, c27);
        c28 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 28u)), bv, c28);
        c29 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 29u)), bv, c29);
        c30 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 30u)), bv, c30);
        c31 = fma(vec4<f32>(row_value(a0, a1, a2, a3, 31u)), bv, c31);
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
