// Fully fused narrow trunk (../shared/MATH.md §1): every dense layer of a
// row tile in ONE dispatch, the tile's activations kept in workgroup
// memory between layers.
//
//   trunk_forward       Y_l = act_l(Y_{l-1}·W_l + b_l) for all layers, per
//                       tile of TILE_ROWS rows; writes every Y_l (and Z_l of
//                       GELU layers) for the backward pass.
//   trunk_backward      walks the layers backwards per tile: D_l = G_l ⊙
//                       act_l'(saved), G_{l-1} = D_l·W_lᵀ; writes every D_l
//                       and, with WRITE_DX, dX = G_{-1} (ACCUMULATE_DX adds).
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
// MAX_WIDTH / 4: one lane per 4 columns.
const LANES: u32 = 32u;
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

// The tile's rows times 4 columns of W (forward, W[k, j]) or of Wᵀ
// (backward, W[j, k]), k < depth: acc[r][q] = Σ_k tile[src + r, k] ·
// op(W)[k, 4c + q]. Columns past n read a clamped (valid) address; their
// sums are never stored.
fn tile_product(src: u32, depth: u32, n: u32, w_off: u32, w_ld: u32, transposed: bool, c: u32) -> array<vec4<f32>, TILE_ROWS> {
    var acc: array<vec4<f32>, TILE_ROWS>;
    for (var r = 0u; r < TILE_ROWS; r = r + 1u) {
        acc[r] = vec4<f32>(0.0);
    }
    let cols = min(vec4<u32>(4u * c) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(n - 1u));
    var idx = vec4<u32>(w_off) + cols;
    var step = w_ld;
    if (transposed) {
        idx = vec4<u32>(w_off) + cols * w_ld;
        step = 1u;
    }
    for (var k = 0u; k < depth; k = k + 1u) {
        let w = vec4<f32>(weights[idx.x], weights[idx.y], weights[idx.z], weights[idx.w]);
        idx = idx + vec4<u32>(step);
        for (var r = 0u; r < TILE_ROWS; r = r + 1u) {
            acc[r] = fma(vec4<f32>(tile[src + r * MAX_WIDTH + k]), w, acc[r]);
        }
    }
    return acc;
}

fn tile_index(wid: vec3<u32>) -> u32 {
    return wid.y * p.groups_x + wid.x;
}

@compute @workgroup_size(32)
fn trunk_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = tile_index(wid) * TILE_ROWS;
    if (row0 >= p.rows) { return; }
    let c = lid.x;
    // X tile into tile 0; rows past the end are zeros (never stored).
    let k0 = p.layers[0].inputs;
    for (var e = c; e < TILE_ROWS * k0; e = e + LANES) {
        let r = e / k0;
        let i = e - r * k0;
        var v = 0.0;
        if (row0 + r < p.rows) { v = x[(row0 + r) * k0 + i]; }
        tile[r * MAX_WIDTH + i] = v;
    }
    workgroupBarrier();
    var src = 0u;
    for (var l = 0u; l < p.depth; l = l + 1u) {
        let layer = p.layers[l];
        let dst = TILE_ELEMS - src;
        let n = layer.outputs;
        if (4u * c < n) {
            let acc = tile_product(src, layer.inputs, n, layer.w_off, n, false, c);
            var bias = vec4<f32>(0.0);
            if (layer.b_off != NONE) {
                let cols = min(vec4<u32>(4u * c) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(n - 1u));
                bias = vec4<f32>(weights[layer.b_off + cols.x], weights[layer.b_off + cols.y],
                                 weights[layer.b_off + cols.z], weights[layer.b_off + cols.w]);
            }
            let y_base = p.rows * layer.y_col;
            let z_base = p.rows * layer.z_col;
            for (var r = 0u; r < TILE_ROWS; r = r + 1u) {
                let row = row0 + r;
                let z = acc[r] + bias;
                for (var q = 0u; q < 4u; q = q + 1u) {
                    let j = 4u * c + q;
                    if (j < n) {
                        let y = act_of(layer.act, z[q]);
                        tile[dst + r * MAX_WIDTH + j] = y;
                        if (row < p.rows) {
                            acts_out[y_base + row * n + j] = y;
                            if (layer.z_col != NONE) { zs_out[z_base + row * n + j] = z[q]; }
                        }
                    }
                }
            }
        }
        workgroupBarrier();
        src = dst;
    }
}

@compute @workgroup_size(32)
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
            for (var r = 0u; r < TILE_ROWS; r = r + 1u) {
                let row = row0 + r;
                for (var q = 0u; q < 4u; q = q + 1u) {
                    let j = 4u * c + q;
                    if (j < n) {
                        var d = 0.0;
                        if (row < p.rows) {
                            var slope = 1.0;
                            if (layer.z_col != NONE) {
                                slope = act_grad_of(layer.act, zs[p.rows * layer.z_col + row * n + j]);
                            } else if (layer.act != 0u) {
                                slope = act_grad_from_output(layer.act, acts[base + row * n + j]);
                            }
                            d = tile[src + r * MAX_WIDTH + j] * slope;
                            deltas_out[base + row * n + j] = d;
                        }
                        tile[src + r * MAX_WIDTH + j] = d;
                    }
                }
            }
        }
        workgroupBarrier();
        let dst = TILE_ELEMS - src;
        let k = layer.inputs;
        if ((l > 0u || WRITE_DX) && 4u * c < k) {
            let acc = tile_product(src, n, k, layer.w_off, n, true, c);
            for (var r = 0u; r < TILE_ROWS; r = r + 1u) {
                let row = row0 + r;
                for (var q = 0u; q < 4u; q = q + 1u) {
                    let i = 4u * c + q;
                    if (i < k) {
                        if (l > 0u) {
                            tile[dst + r * MAX_WIDTH + i] = acc[r][q];
                        } else if (row < p.rows) {
                            var v = acc[r][q];
                            if (ACCUMULATE_DX) { v = v + dx[row * k + i]; }
                            dx[row * k + i] = v;
                        }
                    }
                }
            }
        }
        workgroupBarrier();
        src = dst;
    }
}

@compute @workgroup_size(32)
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
    if (4u * c >= n) { return; }
    let k = layer.inputs;
    let i0 = (block - layer.first_block) * FEATURES;
    let cols = min(vec4<u32>(4u * c) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(n - 1u));
    let d_base = p.rows * layer.y_col;
    // The layer's input is X for layer 0, else the previous layer's Y.
    // Feature k is the bias row (input 1); later ones read a clamped
    // address and are never stored.
    var in_base = 0u;
    if (l > 0u) { in_base = p.rows * p.layers[l - 1u].y_col; }
    var acc: array<vec4<f32>, FEATURES>;
    for (var f = 0u; f < FEATURES; f = f + 1u) {
        acc[f] = vec4<f32>(0.0);
    }
    for (var row = 0u; row < p.rows; row = row + 1u) {
        let d_row = d_base + row * n;
        let d = vec4<f32>(deltas[d_row + cols.x], deltas[d_row + cols.y],
                          deltas[d_row + cols.z], deltas[d_row + cols.w]);
        let a_row = in_base + row * k;
        for (var f = 0u; f < FEATURES; f = f + 1u) {
            let i = min(i0 + f, k - 1u);
            var a = 0.0;
            if (l == 0u) { a = x[a_row + i]; } else { a = acts[a_row + i]; }
            a = select(a, 1.0, i0 + f == k);
            acc[f] = fma(vec4<f32>(a), d, acc[f]);
        }
    }
    for (var f = 0u; f < FEATURES; f = f + 1u) {
        let i = i0 + f;
        var at = NONE;
        if (i < k) {
            at = layer.w_off + i * n;
        } else if (i == k && layer.b_off != NONE) {
            at = layer.b_off;
        }
        if (at == NONE) { continue; }
        for (var q = 0u; q < 4u; q = q + 1u) {
            let j = 4u * c + q;
            if (j < n) {
                var v = acc[f][q];
                if (ACCUMULATE) { v = v + grads[at + j]; }
                grads[at + j] = v;
            }
        }
    }
}
