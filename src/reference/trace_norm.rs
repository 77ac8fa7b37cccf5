//! Reference for the trace norm (`kernels::trace_norm`) of X [T, d], in
//! f64: cyclic Jacobi on G = X·Xᵀ run to convergence gives X's left
//! singular vectors U and σ² (a small SVD reference: Xᵀ's one-sided form
//! would do the same job).

/// (σ descending, U columns as rows of a T×T row-major matrix: U[i][k]).
pub fn left_svd(x: &[f32], tasks: usize) -> (Vec<f64>, Vec<f64>) {
    let d = x.len() / tasks;
    let n = tasks;
    let mut a = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = (0..d)
                .map(|k| x[i * d + k] as f64 * x[j * d + k] as f64)
                .sum();
        }
    }
    let mut v = vec![0f64; n * n];
    (0..n).for_each(|i| v[i * n + i] = 1.0);
    for _ in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    let sigma = (0..n).map(|k| a[k * n + k].max(0.0).sqrt()).collect();
    (sigma, v)
}

/// M·X with M = U diag(f(σ)) Uᵀ, over σ above `rel_tol`·σ_max.
fn apply(x: &[f32], tasks: usize, rel_tol: f64, f: impl Fn(f64) -> f64) -> (f64, Vec<f32>) {
    let d = x.len() / tasks;
    let (sigma, u) = left_svd(x, tasks);
    let smax = sigma.iter().cloned().fold(0.0, f64::max);
    let live: Vec<bool> = sigma
        .iter()
        .map(|&s| s > rel_tol * smax && s > 0.0)
        .collect();
    let norm = sigma
        .iter()
        .zip(&live)
        .filter(|(_, &l)| l)
        .map(|(s, _)| s)
        .sum();
    let n = tasks;
    let mut m = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            m[i * n + j] = (0..n)
                .filter(|&k| live[k])
                .map(|k| u[i * n + k] * f(sigma[k]) * u[j * n + k])
                .sum();
        }
    }
    let out = (0..n * d)
        .map(|e| {
            let (i, c) = (e / d, e % d);
            (0..n)
                .map(|k| m[i * n + k] * x[k * d + c] as f64)
                .sum::<f64>() as f32
        })
        .collect();
    (norm, out)
}

/// (‖X‖_*, U·Vᵀ).
pub fn polar_factor(x: &[f32], tasks: usize, rel_tol: f64) -> (f64, Vec<f32>) {
    apply(x, tasks, rel_tol, |s| 1.0 / s)
}

/// (‖X‖_* before, U·max(Σ − τ, 0)·Vᵀ).
pub fn prox(x: &[f32], tasks: usize, tau: f64, rel_tol: f64) -> (f64, Vec<f32>) {
    apply(x, tasks, rel_tol, |s| (s - tau).max(0.0) / s)
}
