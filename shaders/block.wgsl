// Column blocks of row-major matrices: the data movement behind the
// graph's concat and slice ops.
//
//   copy_block   out[dst0 + r·dst_ld + c] = alpha · a[src0 + r·src_ld + c]
//                for r < rows, c < cols; with ACCUMULATE: += instead of =.
// One invocation per element (grid folded into (x, y) past 65 535
// workgroups). Launcher src/kernels/block.rs; tests kernels-tests/block.rs.

struct Params {
    rows: u32,
    cols: u32,
    src0: u32,
    src_ld: u32,
    dst0: u32,
    dst_ld: u32,
    row_groups: u32,   // workgroups per grid row (x), for the fold
    alpha: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

override ACCUMULATE: bool = false;

@compute @workgroup_size(256)
fn copy_block(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.y * p.row_groups + wid.x) * 256u + lid.x;
    if (i >= p.rows * p.cols) { return; }
    let r = i / p.cols;
    let c = i % p.cols;
    let d = p.dst0 + r * p.dst_ld + c;
    var v = p.alpha * a[p.src0 + r * p.src_ld + c];
    if (ACCUMULATE) { v = v + out[d]; }
    out[d] = v;
}
