// Cross-stitch units (Misra et al. 2016; docs/math.md §3). The T
// task columns' activations sit side by side in one matrix
// X [rows, T·C] (task t at columns t·C .. t·C + C, the layout of the
// graph's task blocks). α is T×T for the layer, or one T×T per channel
// ([C, T, T]) with PER_CHANNEL; α[t, s] weighs source task s in output t.
//
//   stitch_mix4_small / stitch_mix_small (T ≤ 4), stitch_mix4 / stitch_mix
//                      out[b, t·C + c] (+)= Σ_s α[t, s] · x[b, s·C + c]
//                      (forward); with TRANSPOSE α[s, t] instead: the
//                      backward dX = αᵀ applied to dY; ACCUMULATE adds
//                      into out. Lanes move 4 channels as vec4s when
//                      C % 4 == 0 (the ...4 entries), else one. T ≤ 4: no
//                      task loop; α in named registers for `chunk_rows`
//                      rows per invocation (llvmpipe runs loops and
//                      re-loads slowly). T > 4: one invocation per (row,
//                      lane), outputs in blocks of 4 tasks in named
//                      registers, each source loaded once per block.
//                      Both: fma over s ascending, the same bits.
//   stitch_alpha_partials
//                      dα, stage 1: invocation (row chunk, 4×4 block of
//                      task pairs, channel group of 4) sums its chunk's
//                      rows in order, one named register per pair. Per
//                      layer: dot products over the 4 channels →
//                      partial[chunk·G + g, t, s]; per channel
//                      (PER_CHANNEL): vec4s, the channels apart →
//                      partial[chunk, c, t, s].
//   stitch_alpha_sum   stage 2, per channel: dα[i] (+)= Σ_chunk partial[chunk, i],
//                      chunks ascending.
//   stitch_alpha_sum_tree
//                      stage 2, per layer: one workgroup per (t, s), lanes
//                      strided over the partials, then a fixed tree.
// No float atomics: every sum has a fixed order set by the shapes alone,
// so dα is bit-identical from run to run.
// Launcher src/kernels/cross_stitch.rs; tests kernels-tests/cross_stitch.rs.

struct Params {
    rows: u32,
    channels: u32,
    tasks: u32,
    row_groups: u32,   // workgroups per grid row (x), for folded grids
    chunk_rows: u32,   // dα stage 1: rows per chunk
    chunks: u32,       // dα: row chunks
    terms: u32,        // dα stage 2: partials summed per output
    outputs: u32,      // dα stage 2: entries of dα
}

@group(0) @binding(0) var<uniform> p: Params;
// X (dY for dX); the dα partials for stage 2.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> alpha: array<f32>;
// The mix's output; dα partials (stage 1) or dα (stage 2).
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// The upstream gradient dY for the α gradients (same layout as x).
@group(0) @binding(4) var<storage, read> dy: array<f32>;
// The same buffers as x, out and dy, viewed as vec4s (C % 4 == 0).
@group(0) @binding(5) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> dy4: array<vec4<f32>>;

override PER_CHANNEL: bool = false;
override TRANSPOSE: bool = false;
override ACCUMULATE: bool = false;
// dα stage 1 reads x4 / dy4 (C % 4 == 0) instead of 4 scalars.
override VEC4: bool = false;

fn linear(wid: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * p.row_groups + wid.x) * 256u + lid.x;
}

// α[t, s] (α[s, t] with TRANSPOSE) for channel c. A t past the last
// task reads the last one's: a partial block's spare registers compute
// something never stored, without a branch in the inner loop.
fn alpha1(c: u32, t_in: u32, s: u32) -> f32 {
    let t = min(t_in, p.tasks - 1u);
    var ts = t * p.tasks + s;
    if (TRANSPOSE) { ts = s * p.tasks + t; }
    if (PER_CHANNEL) { return alpha[c * p.tasks * p.tasks + ts]; }
    return alpha[ts];
}

// The same for the 4 channels 4·g .. 4·g + 3.
fn alpha4(g: u32, t_in: u32, s: u32) -> vec4<f32> {
    let t = min(t_in, p.tasks - 1u);
    var ts = t * p.tasks + s;
    if (TRANSPOSE) { ts = s * p.tasks + t; }
    if (!PER_CHANNEL) { return vec4<f32>(alpha[ts]); }
    let tt = p.tasks * p.tasks;
    let i = 4u * g * tt + ts;
    return vec4<f32>(alpha[i], alpha[i + tt], alpha[i + 2u * tt], alpha[i + 3u * tt]);
}

// T ≤ 4 (the common case): no loop over tasks. The 16 α of the unit
// (per channel: of the lane's 4 channels) sit in named registers for
// `chunk_rows` rows, and each row's T sources are loaded once. Out-of-range
// (t, s) read clamped α entries and are never stored. The fma chain over
// s ascending is the loop kernels' own: the same bits.
@compute @workgroup_size(256)
fn stitch_mix4_small(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let groups = p.channels / 4u;
    let i = linear(wid, lid);
    let blocks = (p.rows + p.chunk_rows - 1u) / p.chunk_rows;
    if (i >= blocks * groups) { return; }
    let rb = i / groups;
    let g = i - rb * groups;
    let n = p.tasks;
    let s1 = min(1u, n - 1u);
    let s2 = min(2u, n - 1u);
    let s3 = min(3u, n - 1u);
    let a00 = alpha4(g, 0u, 0u); let a01 = alpha4(g, 0u, s1); let a02 = alpha4(g, 0u, s2); let a03 = alpha4(g, 0u, s3);
    let a10 = alpha4(g, 1u, 0u); let a11 = alpha4(g, 1u, s1); let a12 = alpha4(g, 1u, s2); let a13 = alpha4(g, 1u, s3);
    let a20 = alpha4(g, 2u, 0u); let a21 = alpha4(g, 2u, s1); let a22 = alpha4(g, 2u, s2); let a23 = alpha4(g, 2u, s3);
    let a30 = alpha4(g, 3u, 0u); let a31 = alpha4(g, 3u, s1); let a32 = alpha4(g, 3u, s2); let a33 = alpha4(g, 3u, s3);
    let b0 = rb * p.chunk_rows;
    let b1 = min(b0 + p.chunk_rows, p.rows);
    for (var b = b0; b < b1; b = b + 1u) {
        let row = b * n * groups + g;
        let v0 = x4[row];
        var o0 = fma(a00, v0, vec4<f32>(0.0));
        var o1 = fma(a10, v0, vec4<f32>(0.0));
        var o2 = fma(a20, v0, vec4<f32>(0.0));
        var o3 = fma(a30, v0, vec4<f32>(0.0));
        if (n > 1u) {
            let v = x4[row + groups];
            o0 = fma(a01, v, o0); o1 = fma(a11, v, o1); o2 = fma(a21, v, o2); o3 = fma(a31, v, o3);
        }
        if (n > 2u) {
            let v = x4[row + 2u * groups];
            o0 = fma(a02, v, o0); o1 = fma(a12, v, o1); o2 = fma(a22, v, o2); o3 = fma(a32, v, o3);
        }
        if (n > 3u) {
            let v = x4[row + 3u * groups];
            o0 = fma(a03, v, o0); o1 = fma(a13, v, o1); o2 = fma(a23, v, o2); o3 = fma(a33, v, o3);
        }
        if (ACCUMULATE) { o0 = o0 + out4[row]; }
        out4[row] = o0;
        if (n > 1u) {
            if (ACCUMULATE) { o1 = o1 + out4[row + groups]; }
            out4[row + groups] = o1;
        }
        if (n > 2u) {
            if (ACCUMULATE) { o2 = o2 + out4[row + 2u * groups]; }
            out4[row + 2u * groups] = o2;
        }
        if (n > 3u) {
            if (ACCUMULATE) { o3 = o3 + out4[row + 3u * groups]; }
            out4[row + 3u * groups] = o3;
        }
    }
}

// stitch_mix4_small one channel per lane (C % 4 != 0).
@compute @workgroup_size(256)
fn stitch_mix_small(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let chans = p.channels;
    let i = linear(wid, lid);
    let blocks = (p.rows + p.chunk_rows - 1u) / p.chunk_rows;
    if (i >= blocks * chans) { return; }
    let rb = i / chans;
    let c = i - rb * chans;
    let n = p.tasks;
    let s1 = min(1u, n - 1u);
    let s2 = min(2u, n - 1u);
    let s3 = min(3u, n - 1u);
    let a00 = alpha1(c, 0u, 0u); let a01 = alpha1(c, 0u, s1); let a02 = alpha1(c, 0u, s2); let a03 = alpha1(c, 0u, s3);
    let a10 = alpha1(c, 1u, 0u); let a11 = alpha1(c, 1u, s1); let a12 = alpha1(c, 1u, s2); let a13 = alpha1(c, 1u, s3);
    let a20 = alpha1(c, 2u, 0u); let a21 = alpha1(c, 2u, s1); let a22 = alpha1(c, 2u, s2); let a23 = alpha1(c, 2u, s3);
    let a30 = alpha1(c, 3u, 0u); let a31 = alpha1(c, 3u, s1); let a32 = alpha1(c, 3u, s2); let a33 = alpha1(c, 3u, s3);
    let b0 = rb * p.chunk_rows;
    let b1 = min(b0 + p.chunk_rows, p.rows);
    for (var b = b0; b < b1; b = b + 1u) {
        let row = b * n * chans + c;
        let v0 = x[row];
        var o0 = fma(a00, v0, 0.0);
        var o1 = fma(a10, v0, 0.0);
        var o2 = fma(a20, v0, 0.0);
        var o3 = fma(a30, v0, 0.0);
        if (n > 1u) {
            let v = x[row + chans];
            o0 = fma(a01, v, o0); o1 = fma(a11, v, o1); o2 = fma(a21, v, o2); o3 = fma(a31, v, o3);
        }
        if (n > 2u) {
            let v = x[row + 2u * chans];
            o0 = fma(a02, v, o0); o1 = fma(a12, v, o1); o2 = fma(a22, v, o2); o3 = fma(a32, v, o3);
        }
        if (n > 3u) {
            let v = x[row + 3u * chans];
            o0 = fma(a03, v, o0); o1 = fma(a13, v, o1); o2 = fma(a23, v, o2); o3 = fma(a33, v, o3);
        }
        if (ACCUMULATE) { o0 = o0 + out[row]; }
        out[row] = o0;
        if (n > 1u) {
            if (ACCUMULATE) { o1 = o1 + out[row + chans]; }
            out[row + chans] = o1;
        }
        if (n > 2u) {
            if (ACCUMULATE) { o2 = o2 + out[row + 2u * chans]; }
            out[row + 2u * chans] = o2;
        }
        if (n > 3u) {
            if (ACCUMULATE) { o3 = o3 + out[row + 3u * chans]; }
            out[row + 3u * chans] = o3;
        }
    }
}

@compute @workgroup_size(256)
fn stitch_mix4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let groups = p.channels / 4u;
    let i = linear(wid, lid);
    if (i >= p.rows * groups) { return; }
    let b = i / groups;
    let g = i - b * groups;
    let row = b * p.tasks * groups + g;
    for (var t0 = 0u; t0 < p.tasks; t0 = t0 + 4u) {
        var a0 = vec4<f32>(0.0);
        var a1 = vec4<f32>(0.0);
        var a2 = vec4<f32>(0.0);
        var a3 = vec4<f32>(0.0);
        for (var s = 0u; s < p.tasks; s = s + 1u) {
            let v = x4[row + s * groups];
            a0 = fma(alpha4(g, t0, s), v, a0);
            a1 = fma(alpha4(g, t0 + 1u, s), v, a1);
            a2 = fma(alpha4(g, t0 + 2u, s), v, a2);
            a3 = fma(alpha4(g, t0 + 3u, s), v, a3);
        }
        let o = row + t0 * groups;
        if (ACCUMULATE) { a0 = a0 + out4[o]; }
        out4[o] = a0;
        if (t0 + 1u < p.tasks) {
            if (ACCUMULATE) { a1 = a1 + out4[o + groups]; }
            out4[o + groups] = a1;
        }
        if (t0 + 2u < p.tasks) {
            if (ACCUMULATE) { a2 = a2 + out4[o + 2u * groups]; }
            out4[o + 2u * groups] = a2;
        }
        if (t0 + 3u < p.tasks) {
            if (ACCUMULATE) { a3 = a3 + out4[o + 3u * groups]; }
            out4[o + 3u * groups] = a3;
        }
    }
}

@compute @workgroup_size(256)
fn stitch_mix(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear(wid, lid);
    if (i >= p.rows * p.channels) { return; }
    let b = i / p.channels;
    let c = i - b * p.channels;
    let row = b * p.tasks * p.channels + c;
    for (var t0 = 0u; t0 < p.tasks; t0 = t0 + 4u) {
        var a0 = 0.0;
        var a1 = 0.0;
        var a2 = 0.0;
        var a3 = 0.0;
        for (var s = 0u; s < p.tasks; s = s + 1u) {
            let v = x[row + s * p.channels];
            a0 = fma(alpha1(c, t0, s), v, a0);
            a1 = fma(alpha1(c, t0 + 1u, s), v, a1);
            a2 = fma(alpha1(c, t0 + 2u, s), v, a2);
            a3 = fma(alpha1(c, t0 + 3u, s), v, a3);
        }
        let o = row + t0 * p.channels;
        if (ACCUMULATE) { a0 = a0 + out[o]; }
        out[o] = a0;
        if (t0 + 1u < p.tasks) {
            if (ACCUMULATE) { a1 = a1 + out[o + p.channels]; }
            out[o + p.channels] = a1;
        }
        if (t0 + 2u < p.tasks) {
            if (ACCUMULATE) { a2 = a2 + out[o + 2u * p.channels]; }
            out[o + 2u * p.channels] = a2;
        }
        if (t0 + 3u < p.tasks) {
            if (ACCUMULATE) { a3 = a3 + out[o + 3u * p.channels]; }
            out[o + 3u * p.channels] = a3;
        }
    }
}

// Channels 4·g .. 4·g + 3 of task block `t` in row b of X (of dY with
// `from_dy`); channels past C read 0; all 0 for t past the last task.
fn load4(from_dy: bool, b: u32, t: u32, g: u32) -> vec4<f32> {
    if (t >= p.tasks) { return vec4<f32>(0.0); }
    if (VEC4) {
        let i = (b * p.tasks + t) * (p.channels / 4u) + g;
        if (from_dy) { return dy4[i]; }
        return x4[i];
    }
    let c = 4u * g;
    let i = (b * p.tasks + t) * p.channels + c;
    var v = vec4<f32>(0.0);
    if (from_dy) {
        v.x = dy[i];
        if (c + 1u < p.channels) { v.y = dy[i + 1u]; }
        if (c + 2u < p.channels) { v.z = dy[i + 2u]; }
        if (c + 3u < p.channels) { v.w = dy[i + 3u]; }
    } else {
        v.x = x[i];
        if (c + 1u < p.channels) { v.y = x[i + 1u]; }
        if (c + 2u < p.channels) { v.z = x[i + 2u]; }
        if (c + 3u < p.channels) { v.w = x[i + 3u]; }
    }
    return v;
}

// Stores a partial at [j, t, s] ([j, T, T] blocks) when (t, s) is a task pair.
fn put(j: u32, t: u32, s: u32, v: f32) {
    if (t < p.tasks && s < p.tasks) {
        out[(j * p.tasks + t) * p.tasks + s] = v;
    }
}

// put() for channels c .. c + 3 (rows j .. j + 3 of the partials), those
// past C skipped; components named, never indexed by a variable.
fn put_channels(j: u32, c: u32, t: u32, s: u32, v: vec4<f32>) {
    put(j, t, s, v.x);
    if (c + 1u < p.channels) { put(j + 1u, t, s, v.y); }
    if (c + 2u < p.channels) { put(j + 2u, t, s, v.z); }
    if (c + 3u < p.channels) { put(j + 3u, t, s, v.w); }
}

@compute @workgroup_size(256)
fn stitch_alpha_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let groups = (p.channels + 3u) / 4u;
    let blocks = (p.tasks + 3u) / 4u;
    // Invocation (chunk, t block, s block, channel group g).
    let per_chunk = blocks * blocks * groups;
    let i = linear(wid, lid);
    if (i >= p.chunks * per_chunk) { return; }
    let chunk = i / per_chunk;
    let r = i - chunk * per_chunk;
    let tsb = r / groups;
    let g = r - tsb * groups;
    let tb = tsb / blocks;
    let s0 = (tsb - tb * blocks) * 4u;
    let t0 = tb * 4u;
    let b0 = chunk * p.chunk_rows;
    let b1 = min(b0 + p.chunk_rows, p.rows);
    if (PER_CHANNEL) {
        // The 4×4 block of dy_t ⊙ x_s, its 4 channels apart (vec4 lanes).
        var c00 = vec4<f32>(0.0); var c01 = vec4<f32>(0.0); var c02 = vec4<f32>(0.0); var c03 = vec4<f32>(0.0);
        var c10 = vec4<f32>(0.0); var c11 = vec4<f32>(0.0); var c12 = vec4<f32>(0.0); var c13 = vec4<f32>(0.0);
        var c20 = vec4<f32>(0.0); var c21 = vec4<f32>(0.0); var c22 = vec4<f32>(0.0); var c23 = vec4<f32>(0.0);
        var c30 = vec4<f32>(0.0); var c31 = vec4<f32>(0.0); var c32 = vec4<f32>(0.0); var c33 = vec4<f32>(0.0);
        for (var b = b0; b < b1; b = b + 1u) {
            let x0 = load4(false, b, s0, g);
            let x1 = load4(false, b, s0 + 1u, g);
            let x2 = load4(false, b, s0 + 2u, g);
            let x3 = load4(false, b, s0 + 3u, g);
            let d0 = load4(true, b, t0, g);
            c00 = fma(d0, x0, c00); c01 = fma(d0, x1, c01); c02 = fma(d0, x2, c02); c03 = fma(d0, x3, c03);
            let d1 = load4(true, b, t0 + 1u, g);
            c10 = fma(d1, x0, c10); c11 = fma(d1, x1, c11); c12 = fma(d1, x2, c12); c13 = fma(d1, x3, c13);
            let d2 = load4(true, b, t0 + 2u, g);
            c20 = fma(d2, x0, c20); c21 = fma(d2, x1, c21); c22 = fma(d2, x2, c22); c23 = fma(d2, x3, c23);
            let d3 = load4(true, b, t0 + 3u, g);
            c30 = fma(d3, x0, c30); c31 = fma(d3, x1, c31); c32 = fma(d3, x2, c32); c33 = fma(d3, x3, c33);
        }
        let c = 4u * g;
        let j = chunk * p.channels + c;
        put_channels(j, c, t0, s0, c00); put_channels(j, c, t0, s0 + 1u, c01);
        put_channels(j, c, t0, s0 + 2u, c02); put_channels(j, c, t0, s0 + 3u, c03);
        put_channels(j, c, t0 + 1u, s0, c10); put_channels(j, c, t0 + 1u, s0 + 1u, c11);
        put_channels(j, c, t0 + 1u, s0 + 2u, c12); put_channels(j, c, t0 + 1u, s0 + 3u, c13);
        put_channels(j, c, t0 + 2u, s0, c20); put_channels(j, c, t0 + 2u, s0 + 1u, c21);
        put_channels(j, c, t0 + 2u, s0 + 2u, c22); put_channels(j, c, t0 + 2u, s0 + 3u, c23);
        put_channels(j, c, t0 + 3u, s0, c30); put_channels(j, c, t0 + 3u, s0 + 1u, c31);
        put_channels(j, c, t0 + 3u, s0 + 2u, c32); put_channels(j, c, t0 + 3u, s0 + 3u, c33);
        return;
    }
    // Per layer: the 4×4 block (t0.., s0..) of ⟨dy_t, x_s⟩ over the
    // group's 4 channels, one named register per pair.
    var a00 = 0.0; var a01 = 0.0; var a02 = 0.0; var a03 = 0.0;
    var a10 = 0.0; var a11 = 0.0; var a12 = 0.0; var a13 = 0.0;
    var a20 = 0.0; var a21 = 0.0; var a22 = 0.0; var a23 = 0.0;
    var a30 = 0.0; var a31 = 0.0; var a32 = 0.0; var a33 = 0.0;
    for (var b = b0; b < b1; b = b + 1u) {
        let x0 = load4(false, b, s0, g);
        let x1 = load4(false, b, s0 + 1u, g);
        let x2 = load4(false, b, s0 + 2u, g);
        let x3 = load4(false, b, s0 + 3u, g);
        let d0 = load4(true, b, t0, g);
        a00 = a00 + dot(d0, x0); a01 = a01 + dot(d0, x1); a02 = a02 + dot(d0, x2); a03 = a03 + dot(d0, x3);
        let d1 = load4(true, b, t0 + 1u, g);
        a10 = a10 + dot(d1, x0); a11 = a11 + dot(d1, x1); a12 = a12 + dot(d1, x2); a13 = a13 + dot(d1, x3);
        let d2 = load4(true, b, t0 + 2u, g);
        a20 = a20 + dot(d2, x0); a21 = a21 + dot(d2, x1); a22 = a22 + dot(d2, x2); a23 = a23 + dot(d2, x3);
        let d3 = load4(true, b, t0 + 3u, g);
        a30 = a30 + dot(d3, x0); a31 = a31 + dot(d3, x1); a32 = a32 + dot(d3, x2); a33 = a33 + dot(d3, x3);
    }
    let j = chunk * groups + g;
    put(j, t0, s0, a00); put(j, t0, s0 + 1u, a01); put(j, t0, s0 + 2u, a02); put(j, t0, s0 + 3u, a03);
    put(j, t0 + 1u, s0, a10); put(j, t0 + 1u, s0 + 1u, a11); put(j, t0 + 1u, s0 + 2u, a12); put(j, t0 + 1u, s0 + 3u, a13);
    put(j, t0 + 2u, s0, a20); put(j, t0 + 2u, s0 + 1u, a21); put(j, t0 + 2u, s0 + 2u, a22); put(j, t0 + 2u, s0 + 3u, a23);
    put(j, t0 + 3u, s0, a30); put(j, t0 + 3u, s0 + 1u, a31); put(j, t0 + 3u, s0 + 2u, a32); put(j, t0 + 3u, s0 + 3u, a33);
}

@compute @workgroup_size(256)
fn stitch_alpha_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear(wid, lid);
    if (i >= p.outputs) { return; }
    var acc = 0.0;
    for (var j = 0u; j < p.terms; j = j + 1u) {
        acc = acc + x[j * p.outputs + i];
    }
    if (ACCUMULATE) { acc = acc + out[i]; }
    out[i] = acc;
}

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn stitch_alpha_sum_tree(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = wid.y * p.row_groups + wid.x;
    // Every lane of a workgroup reaches the barriers.
    let live = i < p.outputs;
    var acc = 0.0;
    if (live) {
        for (var j = lid.x; j < p.terms; j = j + 256u) {
            acc = acc + x[j * p.outputs + i];
        }
    }
    partial[lid.x] = acc;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half = half / 2u) {
        if (lid.x < half) { partial[lid.x] = partial[lid.x] + partial[lid.x + half]; }
        workgroupBarrier();
    }
    if (live && lid.x == 0u) {
        var v = partial[0];
        if (ACCUMULATE) { v = v + out[i]; }
        out[i] = v;
    }
}
