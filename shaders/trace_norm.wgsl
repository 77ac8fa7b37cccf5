// Trace norm of stacked task weights X [T, d] (T ≤ 64) on the small side
// (../shared/MATH.md §4, route (a)): from the Gram matrix G = X·Xᵀ
// (computed by the GEMM kernels), one workgroup diagonalises G by cyclic
// Jacobi (fixed sweep count: deterministic), then builds
//   MODE 0 (gradient): M = V diag(1/σ_k) Vᵀ over σ_k > tol, so that
//                      M·X = U·Vᵀ, the polar factor (a subgradient of ‖X‖_*)
//   MODE 1 (prox):     M = V diag(max(σ_k − τ, 0)/σ_k) Vᵀ, so that M·X
//                      shrinks every singular value by τ (clamped at 0)
// with σ_k = sqrt(max(λ_k, 0)), and writes ‖X‖_* = Σ_k σ_k. G is rotated
// in place in its storage buffer; V (T×T) lives in workgroup memory. The host
// finishes with one GEMM, M·X. Launcher src/kernels/trace_norm.rs.

struct Params {
    tasks: u32,
    sweeps: u32,
    tau: f32,       // MODE 1 threshold
    rel_tol: f32,   // σ below rel_tol·σ_max counts as zero (rank-deficient X)
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
    let n = p.tasks;
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
