// Fully fused narrow trunk (docs/math.md §1): every dense layer of a
// row tile in ONE dispatch, the tile's activations kept in workgroup
// memory between layers.
//
//   trunk_forward       Y_l = act_l(Y_{l-1}·W_l + b_l) for all layers, per
//                       tile of TILE_ROWS rows; writes every Y_l (and Z_l of
//                       GELU layers) for the backward pass. The input X may
//                       be wider than MAX_WIDTH: it streams through the
//                       tile in chunks of MAX_WIDTH features.
//   trunk_backward      walks the layers backwards per tile: D_l = G_l ⊙
//                       act_l'(saved), G_{l-1} = D_l·W_lᵀ; writes every D_l
//                       and, with WRITE_DX, dX = G_{-1} (ACCUMULATE_DX adds),
//                       in chunks of 4·LANES columns when X is wide.
//   trunk_weight_grads  dW_l = Y_{l-1}ᵀ·D_l and db_l = colsum(D_l) for all
//                       layers; one invocation owns 4 columns × FEATURES
//                       inputs and sums the rows in order: deterministic,
//                       no atomics (ACCUMULATE adds).
// All three share `tile_product`. Lane c owns output columns 4c..4c+3 and
// every row of the tile, so the tile loads are the same address in every
// lane (scalar loads on CPU drivers) and only the weights differ per lane.
// Launcher src/kernels/fused_mlp.rs; reference src/reference/fused_mlp.rs;
// tests kernels-tests/fused_mlp.rs.

const MAX_DEPTH: u32 = 8u;
const TILE_ROWS: u32 = 16u;
const MAX_WIDTH: u32 = 128u;
// Invocations per workgroup: one per 4 columns of the trunk's widest
// layer, in whole 8-lane vectors (the host sets 8, 16, 24 or 32).
override LANES: u32 = 32u;
// Two tiles (ping-pong between layers).
const TILE_ELEMS: u32 = 2048u; // TILE_ROWS * MAX_WIDTH
// Input features (rows of dW_l, plus the bias row) per weight-gradient
// workgroup.
const FEATURES: u32 = 16u;
const NONE: u32 = 0xffffffffu;

struct Layer {
    inputs: u32,
    outputs: u32,
    act: u32,
    w_off: u32,     // W_l [inputs, outputs] in weights / grads
    b_off: u32,     // b_l, or NONE
    y_col: u32,     // Y_l and D_l start at rows * y_col in acts / deltas
    z_col: u32,     // Z_l starts at rows * z_col in zs; NONE unless GELU
    first_block: u32, // first weight-gradient workgroup of this layer
    _pad: vec4<u32>,
}

struct Params {
    rows: u32,
    depth: u32,
    groups_x: u32,   // workgroups per grid row (x), for folded grids
    blocks: u32,     // weight-gradient workgroups in all
    layers: array<Layer, MAX_DEPTH>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> acts_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> zs_out: array<f32>;
@group(0) @binding(5) var<storage, read> acts: array<f32>;
@group(0) @binding(6) var<storage, read> zs: array<f32>;
@group(0) @binding(7) var<storage, read> dy: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;
@group(0) @binding(9) var<storage, read_write> deltas_out: array<f32>;
@group(0) @binding(10) var<storage, read> deltas: array<f32>;
@group(0) @binding(11) var<storage, read_write> grads: array<f32>;

override WRITE_DX: bool = false;
override ACCUMULATE_DX: bool = false;
override ACCUMULATE: bool = false;

// Two tiles of TILE_ROWS × MAX_WIDTH, row stride MAX_WIDTH.
var<workgroup> tile: array<f32, 4096>;

// The put_* helpers write the lane's 4 columns j = 4c.. (those < n) of
// one row starting at `at`. Components are spelled out: a vector indexed
// by a loop variable lives in memory on llvmpipe (measured: half of the
// forward pass's time).
fn put_row(at: u32, n: u32, c: u32, v: vec4<f32>) {
    let j = at + 4u * c;
    let m = select(0u, n - 4u * c, 4u * c < n);
    if (m > 0u) { tile[j] = v.x; }
    if (m > 1u) { tile[j + 1u] = v.y; }
    if (m > 2u) { tile[j + 2u] = v.z; }
    if (m > 3u) { tile[j + 3u] = v.w; }
}

fn put_acts(at: u32, n: u32, c: u32, v: vec4<f32>) {
    let j = at + 4u * c;
    let m = select(0u, n - 4u * c, 4u * c < n);
    if (m > 0u) { acts_out[j] = v.x; }
    if (m > 1u) { acts_out[j + 1u] = v.y; }
    if (m > 2u) { acts_out[j + 2u] = v.z; }
    if (m > 3u) { acts_out[j + 3u] = v.w; }
}

fn put_zs(at: u32, n: u32, c: u32, v: vec4<f32>) {
    let j = at + 4u * c;
    let m = select(0u, n - 4u * c, 4u * c < n);
    if (m > 0u) { zs_out[j] = v.x; }
    if (m > 1u) { zs_out[j + 1u] = v.y; }
    if (m > 2u) { zs_out[j + 2u] = v.z; }
    if (m > 3u) { zs_out[j + 3u] = v.w; }
}

fn put_deltas(at: u32, n: u32, c: u32, v: vec4<f32>) {
    let j = at + 4u * c;
    let m = select(0u, n - 4u * c, 4u * c < n);
    if (m > 0u) { deltas_out[j] = v.x; }
    if (m > 1u) { deltas_out[j + 1u] = v.y; }
    if (m > 2u) { deltas_out[j + 2u] = v.z; }
    if (m > 3u) { deltas_out[j + 3u] = v.w; }
}

fn put_dx(at: u32, n: u32, c: u32, v: vec4<f32>) {
    let j = at + 4u * c;
    let m = select(0u, n - 4u * c, 4u * c < n);
    if (m > 0u) { dx[j] = v.x; }
    if (m > 1u) { dx[j + 1u] = v.y; }
    if (m > 2u) { dx[j + 2u] = v.z; }
    if (m > 3u) { dx[j + 3u] = v.w; }
}

// The lane's 4 columns of a tile row (columns past the row's width hold
// stale values nobody stores).
fn tile4(at: u32, c: u32) -> vec4<f32> {
    let j = at + 4u * c;
    return vec4<f32>(tile[j], tile[j + 1u], tile[j + 2u], tile[j + 3u]);
}

// put_row, or with `add` put_row of v plus what the row holds.
fn put_sum(at: u32, n: u32, c: u32, v: vec4<f32>, add: bool) {
    var sum = v;
    if (add) { sum = sum + tile4(at, c); }
    put_row(at, n, c, sum);
}

fn act4(kind: u32, z: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(act_of(kind, z.x), act_of(kind, z.y), act_of(kind, z.z), act_of(kind, z.w));
}

// The lane's 4 columns, clamped to n - 1 (valid addresses).
fn lane_cols(c: u32, n: u32) -> vec4<u32> {
    return min(vec4<u32>(4u * c) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(n - 1u));
}

// tile[dst + r, 4c + q] = Σ_k tile[src + r, k] · op(W)[k, 4c + q] for the
// tile's rows and the lane's 4 columns (those < n): op(W) = W [k, n]
// (forward) or Wᵀ with W [n, k] (backward, `transposed`). Columns past n
// read a clamped (valid) address and are not stored. With `add` the
// products are added to what dst holds (a later chunk of a wide input;
// each lane adds to its own columns only). The 16 row
// accumulators are spelled out: local arrays live in memory on CPU
// drivers.
fn tile_product(src: u32, dst: u32, depth: u32, n: u32, w_off: u32, w_ld: u32, transposed: bool, add: bool, c: u32) {
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
    let cols = lane_cols(c, n);
    var idx = vec4<u32>(w_off) + cols;
    var step = w_ld;
    if (transposed) {
        idx = vec4<u32>(w_off) + cols * w_ld;
        step = 1u;
    }
    for (var k = 0u; k < depth; k = k + 1u) {
        let w = vec4<f32>(weights[idx.x], weights[idx.y], weights[idx.z], weights[idx.w]);
        idx = idx + vec4<u32>(step);
        // Row r of the tile is MAX_WIDTH (128) elements further on.
        let t = src + k;
        c0 = fma(vec4<f32>(tile[t + 0u]), w, c0);
        c1 = fma(vec4<f32>(tile[t + 128u]), w, c1);
        c2 = fma(vec4<f32>(tile[t + 256u]), w, c2);
        c3 = fma(vec4<f32>(tile[t + 384u]), w, c3);
        c4 = fma(vec4<f32>(tile[t + 512u]), w, c4);
        c5 = fma(vec4<f32>(tile[t + 640u]), w, c5);
        c6 = fma(vec4<f32>(tile[t + 768u]), w, c6);
        c7 = fma(vec4<f32>(tile[t + 896u]), w, c7);
        c8 = fma(vec4<f32>(tile[t + 1024u]), w, c8);
        c9 = fma(vec4<f32>(tile[t + 1152u]), w, c9);
        c10 = fma(vec4<f32>(tile[t + 1280u]), w, c10);
        c11 = fma(vec4<f32>(tile[t + 1408u]), w, c11);
        c12 = fma(vec4<f32>(tile[t + 1536u]), w, c12);
        c13 = fma(vec4<f32>(tile[t + 1664u]), w, c13);
        c14 = fma(vec4<f32>(tile[t + 1792u]), w, c14);
        c15 = fma(vec4<f32>(tile[t + 1920u]), w, c15);
    }
    put_sum(dst + 0u, n, c, c0, add);
    put_sum(dst + 128u, n, c, c1, add);
    put_sum(dst + 256u, n, c, c2, add);
    put_sum(dst + 384u, n, c, c3, add);
    put_sum(dst + 512u, n, c, c4, add);
    put_sum(dst + 640u, n, c, c5, add);
    put_sum(dst + 768u, n, c, c6, add);
    put_sum(dst + 896u, n, c, c7, add);
    put_sum(dst + 1024u, n, c, c8, add);
    put_sum(dst + 1152u, n, c, c9, add);
    put_sum(dst + 1280u, n, c, c10, add);
    put_sum(dst + 1408u, n, c, c11, add);
    put_sum(dst + 1536u, n, c, c12, add);
    put_sum(dst + 1664u, n, c, c13, add);
    put_sum(dst + 1792u, n, c, c14, add);
    put_sum(dst + 1920u, n, c, c15, add);
}

// Features i0..i0+w of the tile's rows of X (row stride k) into tile 0;
// rows past the end are zeros (never stored).
fn load_x_chunk(row0: u32, k: u32, i0: u32, w: u32, c: u32) {
    for (var e = c; e < TILE_ROWS * w; e = e + LANES) {
        let r = e / w;
        let i = e - r * w;
        var v = 0.0;
        if (row0 + r < p.rows) { v = x[(row0 + r) * k + i0 + i]; }
        tile[r * MAX_WIDTH + i] = v;
    }
}

fn tile_index(wid: vec3<u32>) -> u32 {
    return wid.y * p.groups_x + wid.x;
}

@compute @workgroup_size(LANES)
fn trunk_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = tile_index(wid) * TILE_ROWS;
    if (row0 >= p.rows) { return; }
    let c = lid.x;
    var src = 0u;
    for (var l = 0u; l < p.depth; l = l + 1u) {
        let layer = p.layers[l];
        let dst = TILE_ELEMS - src;
        let n = layer.outputs;
        // Every lane runs the product (lanes past n on clamped columns):
        // tile loads in uniform control flow are single scalar loads on
        // llvmpipe, inside a lane-dependent branch they are not (measured
        // 10× slower).
        if (l == 0u) {
            // X streams through tile 0, MAX_WIDTH features at a time, the
            // chunks' products summed in dst in order.
            let k = layer.inputs;
            for (var i0 = 0u; i0 < k; i0 = i0 + MAX_WIDTH) {
                let w = min(MAX_WIDTH, k - i0);
                load_x_chunk(row0, k, i0, w, c);
                workgroupBarrier();
                tile_product(0u, dst, w, n, layer.w_off + i0 * n, n, false, i0 > 0u, c);
                workgroupBarrier();
            }
        } else {
            tile_product(src, dst, layer.inputs, n, layer.w_off, n, false, false, c);
        }
        if (4u * c < n) {
            var bias = vec4<f32>(0.0);
            if (layer.b_off != NONE) {
                let cols = lane_cols(c, n);
                bias = vec4<f32>(weights[layer.b_off + cols.x], weights[layer.b_off + cols.y],
                                 weights[layer.b_off + cols.z], weights[layer.b_off + cols.w]);
            }
            let y_base = p.rows * layer.y_col;
            let z_base = p.rows * layer.z_col;
            for (var r = 0u; r < TILE_ROWS; r = r + 1u) {
                let row = row0 + r;
                let at = dst + r * MAX_WIDTH;
                let z = tile4(at, c) + bias;
                let y = act4(layer.act, z);
                put_row(at, n, c, y);
                if (row < p.rows) {
                    put_acts(y_base + row * n, n, c, y);
                    if (layer.z_col != NONE) { put_zs(z_base + row * n, n, c, z); }
                }
            }
        }
        workgroupBarrier();
        src = dst;
    }
}

@compute @workgroup_size(LANES)
fn trunk_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = tile_index(wid) * TILE_ROWS;
    if (row0 >= p.rows) { return; }
    let c = lid.x;
    // dY tile into tile 0.
    let n_last = p.layers[p.depth - 1u].outputs;
    for (var e = c; e < TILE_ROWS * n_last; e = e + LANES) {
        let r = e / n_last;
        let j = e - r * n_last;
        var v = 0.0;
        if (row0 + r < p.rows) { v = dy[(row0 + r) * n_last + j]; }
        tile[r * MAX_WIDTH + j] = v;
    }
    workgroupBarrier();
    var src = 0u;
    for (var s = 0u; s < p.depth; s = s + 1u) {
        let l = p.depth - 1u - s;
        let layer = p.layers[l];
        let n = layer.outputs;
        // D = G ⊙ act'(saved) in place (each lane its own columns); kept in
        // deltas for the weight gradients. Rows past the end get D = 0.
        if (4u * c < n) {
            let base = p.rows * layer.y_col;
            let cols = lane_cols(c, n);
            let a = layer.act;
            for (var r = 0u; r < TILE_ROWS; r = r + 1u) {
                let row = row0 + r;
                var d = vec4<f32>(0.0);
                if (row < p.rows) {
                    var slope = vec4<f32>(1.0);
                    if (layer.z_col != NONE) {
                        let at = p.rows * layer.z_col + row * n;
                        slope = vec4<f32>(act_grad_of(a, zs[at + cols.x]), act_grad_of(a, zs[at + cols.y]),
                                          act_grad_of(a, zs[at + cols.z]), act_grad_of(a, zs[at + cols.w]));
                    } else if (a != 0u) {
                        let at = base + row * n;
                        slope = vec4<f32>(act_grad_from_output(a, acts[at + cols.x]), act_grad_from_output(a, acts[at + cols.y]),
                                          act_grad_from_output(a, acts[at + cols.z]), act_grad_from_output(a, acts[at + cols.w]));
                    }
                    d = tile4(src + r * MAX_WIDTH, c) * slope;
                    put_deltas(base + row * n, n, c, d);
                }
                put_row(src + r * MAX_WIDTH, n, c, d);
            }
        }
        workgroupBarrier();
        let dst = TILE_ELEMS - src;
        let k = layer.inputs;
        if (l > 0u) {
            tile_product(src, dst, n, k, layer.w_off, n, true, false, c);
        } else if (WRITE_DX) {
            // Layer 0's product is dX, possibly wider than the tile: 4·LANES
            // columns at a time, from the tile to global memory (the lane
            // reads back only the columns it wrote, so no barrier).
            let span = 4u * LANES;
            for (var i0 = 0u; i0 < k; i0 = i0 + span) {
                let w = min(span, k - i0);
                tile_product(src, dst, n, w, layer.w_off + i0 * n, n, true, false, c);
                if (4u * c < w) {
                    let cols = lane_cols(c, w) + vec4<u32>(i0);
                    for (var r = 0u; r < TILE_ROWS && row0 + r < p.rows; r = r + 1u) {
                        let at = (row0 + r) * k;
                        var v = tile4(dst + r * MAX_WIDTH, c);
                        if (ACCUMULATE_DX) {
                            v = v + vec4<f32>(dx[at + cols.x], dx[at + cols.y], dx[at + cols.z], dx[at + cols.w]);
                        }
                        put_dx(at + i0, w, c, v);
                    }
                }
            }
        }
        workgroupBarrier();
        src = dst;
    }
}

// Layer l's input at element `at`: X for the first layer, else the
// activations (a uniform branch).
fn layer_input(first: bool, at: u32) -> f32 {
    if (first) { return x[at]; }
    return acts[at];
}

// dW_l[i, 4c..] (i < inputs) or db_l[4c..] (i = inputs) (+)= v.
fn put_grad(layer: Layer, i: u32, c: u32, v: vec4<f32>) {
    var at = NONE;
    if (i < layer.inputs) {
        at = layer.w_off + i * layer.outputs;
    } else if (i == layer.inputs && layer.b_off != NONE) {
        at = layer.b_off;
    }
    if (at == NONE || 4u * c >= layer.outputs) { return; }
    let n = layer.outputs;
    var sum = v;
    if (ACCUMULATE) {
        let cols = lane_cols(c, n);
        sum = sum + vec4<f32>(grads[at + cols.x], grads[at + cols.y], grads[at + cols.z], grads[at + cols.w]);
    }
    let j = at + 4u * c;
    let m = select(0u, n - 4u * c, 4u * c < n);
    if (m > 0u) { grads[j] = sum.x; }
    if (m > 1u) { grads[j + 1u] = sum.y; }
    if (m > 2u) { grads[j + 2u] = sum.z; }
    if (m > 3u) { grads[j + 3u] = sum.w; }
}

@compute @workgroup_size(LANES)
fn trunk_weight_grads(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let block = tile_index(wid);
    if (block >= p.blocks) { return; }
    var l = 0u;
    for (var k = 1u; k < p.depth; k = k + 1u) {
        if (block >= p.layers[k].first_block) { l = k; }
    }
    let layer = p.layers[l];
    let n = layer.outputs;
    let c = lid.x;
    let k = layer.inputs;
    let i0 = (block - layer.first_block) * FEATURES;
    let cols = lane_cols(c, n);
    let d_base = p.rows * layer.y_col;
    // The layer's input is X for layer 0, else the previous layer's Y.
    // Feature k is the bias row (input 1); later ones read a clamped
    // address and are never stored.
    let first = l == 0u;
    var in_base = 0u;
    if (!first) { in_base = p.rows * p.layers[l - 1u].y_col; }
    let last = k - 1u;
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
    for (var row = 0u; row < p.rows; row = row + 1u) {
        let d_row = d_base + row * n;
        let d = vec4<f32>(deltas[d_row + cols.x], deltas[d_row + cols.y],
                          deltas[d_row + cols.z], deltas[d_row + cols.w]);
        let a_row = in_base + row * k;
        c0 = fma(vec4<f32>(select(layer_input(first, a_row + min(i0 + 0u, last)), 1.0, i0 + 0u == k)), d, c0);
        c1 = fma(vec4<f32>(select(layer_input(first, a_row + min(i0 + 1u, last)), 1.0, i0 + 1u == k)), d, c1);
        c2 = fma(vec4<f32>(select(layer_input(first, a_row + min(i0 + 2u, last)), 1.0, i0 + 2u == k)), d, c2);
        c3 = fma(vec4<f32>(select(layer_input(first, a_row + min(i0 + 3u, last)), 1.0, i0 + 3u == k)), d, c3);
        c4 = fma(vec4<f32>(select(layer_input(first, a_row + min(i0 + 4u, last)), 1.0, i0 + 4u == k)), d, c4);
        c5 = fma(vec4<f32>(select(layer_input(first, a_row + min(i0 + 5u, last)), 1.0, i0 + 5u == k)), d, c5);
        c6 = fma(vec4<f32>(select(layer_input(first, a_row + min(i0 + 6u, last)), 1.0, i0 + 6u == k)), d, c6);
        c7 = fma(vec4<f32>(select(layer_input(first, a_row + min(i0 + 7u, last)), 1.0, i0 + 7u == k)), d, c7);
        c8 = fma(vec4<f32>(select(layer_input(first, a_row + min(i0 + 8u, last)), 1.0, i0 + 8u == k)), d, c8);
        c9 = fma(vec4<f32>(select(layer_input(first, a_row + min(i0 + 9u, last)), 1.0, i0 + 9u == k)), d, c9);
        c10 = fma(vec4<f32>(select(layer_input(first, a_row + min(i0 + 10u, last)), 1.0, i0 + 10u == k)), d, c10);
        c11 = fma(vec4<f32>(select(layer_input(first, a_row + min(i0 + 11u, last)), 1.0, i0 + 11u == k)), d, c11);
        c12 = fma(vec4<f32>(select(layer_input(first, a_row + min(i0 + 12u, last)), 1.0, i0 + 12u == k)), d, c12);
        c13 = fma(vec4<f32>(select(layer_input(first, a_row + min(i0 + 13u, last)), 1.0, i0 + 13u == k)), d, c13);
        c14 = fma(vec4<f32>(select(layer_input(first, a_row + min(i0 + 14u, last)), 1.0, i0 + 14u == k)), d, c14);
        c15 = fma(vec4<f32>(select(layer_input(first, a_row + min(i0 + 15u, last)), 1.0, i0 + 15u == k)), d, c15);
    }
    put_grad(layer, i0 + 0u, c, c0);
    put_grad(layer, i0 + 1u, c, c1);
    put_grad(layer, i0 + 2u, c, c2);
    put_grad(layer, i0 + 3u, c, c3);
    put_grad(layer, i0 + 4u, c, c4);
    put_grad(layer, i0 + 5u, c, c5);
    put_grad(layer, i0 + 6u, c, c6);
    put_grad(layer, i0 + 7u, c, c7);
    put_grad(layer, i0 + 8u, c, c8);
    put_grad(layer, i0 + 9u, c, c9);
    put_grad(layer, i0 + 10u, c, c10);
    put_grad(layer, i0 + 11u, c, c11);
    put_grad(layer, i0 + 12u, c, c12);
    put_grad(layer, i0 + 13u, c, c13);
    put_grad(layer, i0 + 14u, c, c14);
    put_grad(layer, i0 + 15u, c, c15);
}
