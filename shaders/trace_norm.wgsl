// Trace norm kernel family (../shared/MATH.md §4). Launchers in
// src/kernels/trace_norm/; tests kernels-tests/trace_norm.rs, cases in
// src/conformance/trace_norm.rs.
//
// Entry points:
//   trace_norm_factor  route (a), a matrix with a small side n ≤ 64: from its
//                      Gram matrix G (n×n, by the GEMM kernels), one workgroup
//                      diagonalises G by cyclic Jacobi (fixed sweep count:
//                      deterministic), then builds
//     MODE 0 (gradient): M = V diag(1/σ_k) Vᵀ over σ_k > tol, so that M·X
//                        (or X·M on the other side) = U·Vᵀ, the polar factor
//     MODE 1 (prox):     M = V diag(max(σ_k − τ, 0)/σ_k) Vᵀ: every singular
//                        value shrunk by τ (clamped at 0)
//                      with σ_k = sqrt(max(λ_k, 0)), and writes ‖X‖_* = Σ σ_k.
//                      G is rotated in place; V lives in workgroup memory.
//   ns_normalise       dst = src / sqrt(s[0]) (0 when s[0] = 0): X₀ = X/‖X‖_F
//                      for Newton–Schulz with ‖X‖²_F from the GPU reduce, no
//                      host readback.
//   add_diagonal       dst = alpha·dst + beta·I (square, in place): the
//                      1.5·I of the Newton–Schulz step, H − τI, ½(I + S).
//   product            dst = src ∘ src2 (for ⟨U·Vᵀ, X⟩ with the sum reduce).
//   swap_leading_axes  dst[j, i, k] (+)= alpha·src[i, j, k], src [d0, d1, d2]:
//                      the input-axis unfolding of [T, in, out] and its fold.
//   gram_partials      route (a)'s Gram of a wide X [d0, d1] (row-major,
//                      d0 ≤ 64) split over the columns: workgroup (chunk b
//                      of d2 columns, tile y of 64 pairs), one lane per pair
//                      i ≤ j of the upper triangle summing x_ik·x_jk over the
//                      chunk by itself (4 interleaved accumulators, combined
//                      (a0 + a1) + (a2 + a3)): no barrier, no workgroup
//                      memory, no atomics, so deterministic. Writes both
//                      dst[b, i, j] and dst[b, j, i] of the partials
//                      [chunks, d0, d0]; reduce::column_sums adds the chunks
//                      in a fixed order into the full G.
// The element-wise helpers fold their grid into (x, y) like elementwise.wgsl.

struct Params {
    n: u32,         // factor: side of G; helpers: elements
    sweeps: u32,
    tau: f32,       // MODE 1 threshold
    rel_tol: f32,   // σ below rel_tol·σ_max counts as zero (rank-deficient X)
    d0: u32,        // add_diagonal: side; swap: src dims
    d1: u32,
    d2: u32,
    accumulate: u32,
    alpha: f32,
    beta: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// G, diagonalised in place (the launcher owns this scratch buffer).
@group(0) @binding(1) var<storage, read_write> gram: array<f32>;
@group(0) @binding(2) var<storage, read_write> m_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> norm_out: array<f32>;

override MODE: u32 = 0u;

var<workgroup> v: array<f32, 4096>;
var<workgroup> rot: vec2<f32>;
var<workgroup> f: array<f32, 64>;

@compute @workgroup_size(64)
fn trace_norm_factor(@builtin(local_invocation_index) lane: u32) {
    let n = p.n;
    for (var i = lane; i < n * n; i = i + 64u) {
        v[i] = select(0.0, 1.0, i / n == i % n);
    }
    storageBarrier();
    workgroupBarrier();
    for (var sweep = 0u; sweep < p.sweeps; sweep = sweep + 1u) {
        for (var pp = 0u; pp + 1u < n; pp = pp + 1u) {
            for (var q = pp + 1u; q < n; q = q + 1u) {
                if (lane == 0u) {
                    let apq = gram[pp * n + q];
                    var c = 1.0;
                    var s = 0.0;
                    if (abs(apq) > 1e-30) {
                        let theta = (gram[q * n + q] - gram[pp * n + pp]) / (2.0 * apq);
                        let t = sign(theta) / (abs(theta) + sqrt(theta * theta + 1.0));
                        let t1 = select(t, 1.0, theta == 0.0);
                        c = 1.0 / sqrt(t1 * t1 + 1.0);
                        s = t1 * c;
                    }
                    rot = vec2<f32>(c, s);
                }
                storageBarrier();
                workgroupBarrier();
                let c = rot.x;
                let s = rot.y;
                // Columns p, q of A and V.
                if (lane < n) {
                    let akp = gram[lane * n + pp];
                    let akq = gram[lane * n + q];
                    gram[lane * n + pp] = c * akp - s * akq;
                    gram[lane * n + q] = s * akp + c * akq;
                    let vkp = v[lane * n + pp];
                    let vkq = v[lane * n + q];
                    v[lane * n + pp] = c * vkp - s * vkq;
                    v[lane * n + q] = s * vkp + c * vkq;
                }
                storageBarrier();
                workgroupBarrier();
                // Rows p, q of A.
                if (lane < n) {
                    let apk = gram[pp * n + lane];
                    let aqk = gram[q * n + lane];
                    gram[pp * n + lane] = c * apk - s * aqk;
                    gram[q * n + lane] = s * apk + c * aqk;
                }
                storageBarrier();
                workgroupBarrier();
            }
        }
    }
    // Singular values of X from the eigenvalues of G, and the diagonal f.
    if (lane == 0u) {
        var smax = 0.0;
        for (var k = 0u; k < n; k = k + 1u) { smax = max(smax, sqrt(max(gram[k * n + k], 0.0))); }
        var norm = 0.0;
        for (var k = 0u; k < n; k = k + 1u) {
            let sigma = sqrt(max(gram[k * n + k], 0.0));
            let live = sigma > p.rel_tol * smax && sigma > 0.0;
            norm = norm + select(0.0, sigma, live);
            if (MODE == 0u) {
                f[k] = select(0.0, 1.0 / sigma, live);
            } else {
                f[k] = select(0.0, max(sigma - p.tau, 0.0) / sigma, live);
            }
        }
        norm_out[0] = norm;
    }
    storageBarrier();
    workgroupBarrier();
    // M = V diag(f) Vᵀ.
    for (var i = lane; i < n * n; i = i + 64u) {
        let r = i / n;
        let col = i % n;
        var acc = 0.0;
        for (var k = 0u; k < n; k = k + 1u) {
            acc = fma(v[r * n + k] * f[k], v[col * n + k], acc);
        }
        m_out[i] = acc;
    }
}

// ---- helpers ----

@group(0) @binding(4) var<storage, read> src: array<f32>;
@group(0) @binding(5) var<storage, read> src2: array<f32>;
@group(0) @binding(6) var<storage, read_write> dst: array<f32>;

fn element_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn ns_normalise(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, nwg, lid);
    if (i < p.n) {
        let sq = src2[0];
        dst[i] = select(0.0, src[i] * inverseSqrt(sq), sq > 0.0);
    }
}

@compute @workgroup_size(256)
fn add_diagonal(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, nwg, lid);
    if (i < p.n) {
        let diag = i / p.d0 == i % p.d0;
        dst[i] = p.alpha * dst[i] + select(0.0, p.beta, diag);
    }
}

@compute @workgroup_size(256)
fn product(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, nwg, lid);
    if (i < p.n) { dst[i] = src[i] * src2[i]; }
}

@compute @workgroup_size(256)
fn swap_leading_axes(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    // One invocation per dst element [j, i, k] of dst [d1, d0, d2].
    let e = element_index(wid, nwg, lid);
    if (e < p.n) {
        let k = e % p.d2;
        let r = e / p.d2;
        let i = r % p.d0;
        let j = r / p.d0;
        let v = p.alpha * src[(i * p.d1 + j) * p.d2 + k];
        if (p.accumulate != 0u) {
            dst[e] = dst[e] + v;
        } else {
            dst[e] = v;
        }
    }
}

@compute @workgroup_size(64)
fn gram_partials(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(local_invocation_index) lane: u32) {
    let n = p.d0;
    let pair = wid.y * 64u + lane;
    if (pair >= n * (n + 1u) / 2u) { return; }
    // pair → (i, j ≥ i), row by row: (0,0) (0,1) … (0,n−1) (1,1) …
    var i = 0u;
    var first = 0u;
    loop {
        let row = n - i;
        if (pair < first + row) { break; }
        first = first + row;
        i = i + 1u;
    }
    let j = i + (pair - first);
    let ri = i * p.d1;
    let rj = j * p.d1;
    let start = wid.x * p.d2;
    let end = min(start + p.d2, p.d1);
    var a0 = 0.0;
    var a1 = 0.0;
    var a2 = 0.0;
    var a3 = 0.0;
    var k = start;
    while (k + 4u <= end) {
        a0 = fma(src[ri + k], src[rj + k], a0);
        a1 = fma(src[ri + k + 1u], src[rj + k + 1u], a1);
        a2 = fma(src[ri + k + 2u], src[rj + k + 2u], a2);
        a3 = fma(src[ri + k + 3u], src[rj + k + 3u], a3);
        k = k + 4u;
    }
    while (k < end) {
        a0 = fma(src[ri + k], src[rj + k], a0);
        k = k + 1u;
    }
    let acc = (a0 + a1) + (a2 + a3);
    let base = wid.x * n * n;
    dst[base + i * n + j] = acc;
    dst[base + j * n + i] = acc;
}
