// Deterministic reduction family: fixed-shape trees, no atomics, so the
// same input on the same adapter always gives the same bits.
//
// The host repeats a pass on its own partials until one value (or one row)
// is left; the tree shape depends only on the input shape.
//
// Entry points (tests: kernels-tests/reduce.rs, cases in
// src/conformance/reduce.rs):
//   sum_partials     out[g] = Σ x[g*chunk*256 .. (g+1)*chunk*256) (SQUARE: Σ x²):
//                    each invocation first adds `chunk` elements 256 apart
//                    (coalesced), then one tree per workgroup. The host
//                    grows `chunk` with n so the grid stays ≤ 4096 groups:
//                    one tree (9 barriers) per ≥ 4096 elements.
//   colsum_partials  x: (rows, cols) -> out: (chunks, cols); workgroup
//                    (16 cols x 16 row-lanes) sums rows [z*rpc, (z+1)*rpc) of
//                    its 16 columns (SQUARE: Σ x²); column tiles folded
//                    into (x, y), row chunks on z.

struct Params {
    n: u32,       // sum: elements; colsum: rows
    cols: u32,    // colsum only
    chunk: u32,   // sum: elements per invocation; colsum: rows per workgroup (multiple of 16)
    groups: u32,  // sum: partials to write; colsum: column tiles
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// Square each element before summing (sum of squares); first pass only.
override SQUARE: bool = false;

var<workgroup> scratch: array<f32, 256>;

fn load(i: u32) -> f32 {
    let v = x[i];
    return select(v, v * v, SQUARE);
}

@compute @workgroup_size(256)
fn sum_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let group = wid.y * nwg.x + wid.x;
    if (group >= p.groups) { return; }  // padding of a folded grid (uniform per workgroup)
    let base = group * p.chunk * 256u + lid;
    var v = 0.0;
    for (var k = 0u; k < p.chunk; k = k + 1u) {
        let i = base + k * 256u;
        if (i < p.n) { v = v + load(i); }
    }
    scratch[lid] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid < s) { scratch[lid] = scratch[lid] + scratch[lid + s]; }
        workgroupBarrier();
    }
    if (lid == 0u) { out[group] = scratch[0]; }
}

@compute @workgroup_size(16, 16)
fn colsum_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let tile = wid.y * nwg.x + wid.x;
    if (tile >= p.groups) { return; }
    let col = tile * 16u + lid.x;
    let row0 = wid.z * p.chunk;
    let row_end = min(row0 + p.chunk, p.n);
    var acc = 0.0;
    if (col < p.cols) {
        for (var r = row0 + lid.y; r < row_end; r = r + 16u) {
            acc = acc + load(r * p.cols + col);
        }
    }
    scratch[lid.y * 16u + lid.x] = acc;
    workgroupBarrier();
    for (var s = 8u; s > 0u; s = s >> 1u) {
        if (lid.y < s) {
            scratch[lid.y * 16u + lid.x] = scratch[lid.y * 16u + lid.x] + scratch[(lid.y + s) * 16u + lid.x];
        }
        workgroupBarrier();
    }
    if (lid.y == 0u && col < p.cols) { out[wid.z * p.cols + col] = scratch[lid.x]; }
}
