// Trace norm kernel family (docs/math.md §4). Launchers in
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
//                      of d2 columns, y = block pair bi ≤ bj of 4 rows each);
//                      64 lanes stride over the chunk's columns (as vec4s
//                      when d1 % 4 = 0) accumulating the 4×4 block of dot
//                      products, then lane e < 16 sums entry e over the lanes
//                      in lane order: no atomics, so deterministic. Writes
//                      both dst[b, i, j] and dst[b, j, i] of the partials
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

var<workgroup> block_sums: array<vec4<f32>, 256>;
// X again as vec4s (same buffer as `src`), for rows of a multiple of 4.
@group(0) @binding(7) var<storage, read> src4: array<vec4<f32>>;

// Where row r of X starts; rows past the last read the last row (their
// sums are never written).
fn row_offset(r: u32) -> u32 {
    return min(r, p.d0 - 1u) * p.d1;
}

@compute @workgroup_size(64)
fn gram_partials(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(local_invocation_index) lane: u32) {
    let n = p.d0;
    // wid.y → row blocks (bi ≤ bj) of 4, in pair order.
    let nb = (n + 3u) / 4u;
    var bi = 0u;
    var first = 0u;
    loop {
        let row = nb - bi;
        if (wid.y < first + row) { break; }
        first = first + row;
        bi = bi + 1u;
    }
    let bj = bi + (wid.y - first);
    let i0 = bi * 4u;
    let j0 = bj * 4u;
    let diagonal = bi == bj;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    if (p.d1 % 4u == 0u) {
        // Rows start on vec4 boundaries: each lane reads 4 columns at once.
        let c4 = p.d1 / 4u;
        let oi = vec4<u32>(row_offset(i0), row_offset(i0 + 1u), row_offset(i0 + 2u), row_offset(i0 + 3u)) / 4u;
        let oj = vec4<u32>(row_offset(j0), row_offset(j0 + 1u), row_offset(j0 + 2u), row_offset(j0 + 3u)) / 4u;
        let start = wid.x * (p.d2 / 4u);
        let end = min(start + p.d2 / 4u, c4);
        for (var k = start + lane; k < end; k = k + 64u) {
            let j0v = src4[oj.x + k];
            let j1v = src4[oj.y + k];
            let j2v = src4[oj.z + k];
            let j3v = src4[oj.w + k];
            var i0v = j0v;
            var i1v = j1v;
            var i2v = j2v;
            var i3v = j3v;
            if (!diagonal) {
                i0v = src4[oi.x + k];
                i1v = src4[oi.y + k];
                i2v = src4[oi.z + k];
                i3v = src4[oi.w + k];
            }
            for (var e = 0u; e < 4u; e = e + 1u) {
                let xj = vec4<f32>(j0v[e], j1v[e], j2v[e], j3v[e]);
                acc0 = fma(vec4<f32>(i0v[e]), xj, acc0);
                acc1 = fma(vec4<f32>(i1v[e]), xj, acc1);
                acc2 = fma(vec4<f32>(i2v[e]), xj, acc2);
                acc3 = fma(vec4<f32>(i3v[e]), xj, acc3);
            }
        }
    } else {
        let oi = vec4<u32>(row_offset(i0), row_offset(i0 + 1u), row_offset(i0 + 2u), row_offset(i0 + 3u));
        let oj = vec4<u32>(row_offset(j0), row_offset(j0 + 1u), row_offset(j0 + 2u), row_offset(j0 + 3u));
        let start = wid.x * p.d2;
        let end = min(start + p.d2, p.d1);
        for (var k = start + lane; k < end; k = k + 64u) {
            let xj = vec4<f32>(src[oj.x + k], src[oj.y + k], src[oj.z + k], src[oj.w + k]);
            var xi = xj;
            if (!diagonal) {
                xi = vec4<f32>(src[oi.x + k], src[oi.y + k], src[oi.z + k], src[oi.w + k]);
            }
            acc0 = fma(vec4<f32>(xi.x), xj, acc0);
            acc1 = fma(vec4<f32>(xi.y), xj, acc1);
            acc2 = fma(vec4<f32>(xi.z), xj, acc2);
            acc3 = fma(vec4<f32>(xi.w), xj, acc3);
        }
    }
    block_sums[lane * 4u] = acc0;
    block_sums[lane * 4u + 1u] = acc1;
    block_sums[lane * 4u + 2u] = acc2;
    block_sums[lane * 4u + 3u] = acc3;
    workgroupBarrier();
    // Lane e < 16 sums entry (e / 4, e % 4) of the block over the 64 lanes
    // in order, and writes it and its mirror.
    if (lane < 16u) {
        let r = lane / 4u;
        let col = lane % 4u;
        var sum = 0.0;
        for (var l = 0u; l < 64u; l = l + 1u) { sum = sum + block_sums[l * 4u + r][col]; }
        let i = i0 + r;
        let j = j0 + col;
        if (i < n && j < n && i <= j) {
            let base = wid.x * n * n;
            dst[base + i * n + j] = sum;
            dst[base + j * n + i] = sum;
        }
    }
}
