// GEMM entry point for adapters with SUBGROUP and a fixed subgroup size
// (the shared part is in shaders/gemm_common.wgsl).

// Subgroup size the kernel is specialised for (the adapter's fixed size).
override SG: u32 = 8u;

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
