//! Reference for the trace norm (`kernels::trace_norm`) of X [T, d], in
//! f64: cyclic Jacobi on G = X·Xᵀ run to convergence gives X's left
//! singular vectors U and σ² (a small SVD reference: Xᵀ's one-sided form
//! would do the same job).
//! Tucker / TT: the unfoldings of the stored [T, in, out] stack, their
//! norms and folded-back polar factors; Newton–Schulz as route (b) runs it.

use crate::types::{TaskStack, TraceNormVariant, Unfolding};
use crate::util::eigen::symmetric_eigen;

/// (σ in the eigen solver's order, unsorted; U's columns in a T×T row-major
/// matrix: `U[i * T + k]` is row i of column k).
pub fn left_svd(x: &[f32], tasks: usize) -> (Vec<f64>, Vec<f64>) {
    let d = x.len() / tasks;
    // G = X·Xᵀ = U Σ² Uᵀ: its eigenvectors are U, its eigenvalues σ².
    let eigen = symmetric_eigen(&gram(x, tasks, d), tasks);
    let sigma = eigen.values.iter().map(|l| l.max(0.0).sqrt()).collect();
    (sigma, eigen.vectors)
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

/// xᵀ of x [rows, cols].
pub fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|e| {
            let (c, r) = (e / rows, e % rows);
            x[r * cols + c]
        })
        .collect()
}

/// `f` applied on the small side of x [rows, cols] (the Gram on rows).
fn on_small_side(
    x: &[f32],
    rows: usize,
    cols: usize,
    f: impl Fn(&[f32], usize) -> (f64, Vec<f32>),
) -> (f64, Vec<f32>) {
    if rows <= cols {
        f(x, rows)
    } else {
        let (v, out) = f(&transpose(x, rows, cols), cols);
        (v, transpose(&out, cols, rows))
    }
}

/// (‖X‖_*, U·Vᵀ) of x [rows, cols], either side small.
pub fn polar_matrix(x: &[f32], rows: usize, cols: usize, rel_tol: f64) -> (f64, Vec<f32>) {
    on_small_side(x, rows, cols, |x, t| polar_factor(x, t, rel_tol))
}

/// (‖X‖_* before, U·max(Σ − τ, 0)·Vᵀ) of x [rows, cols].
pub fn prox_matrix(x: &[f32], rows: usize, cols: usize, tau: f64, rel_tol: f64) -> (f64, Vec<f32>) {
    on_small_side(x, rows, cols, |x, t| prox(x, t, tau, rel_tol))
}

/// Singular values of x [rows, cols], descending.
pub fn singular_values(x: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    let mut s = if rows <= cols {
        left_svd(x, rows).0
    } else {
        left_svd(&transpose(x, rows, cols), cols).0
    };
    s.sort_by(|a, b| b.total_cmp(a));
    s
}

/// Newton–Schulz in f64 as route (b) runs it: X₀ = X/‖X‖_F,
/// X_{k+1} = 1.5·X_k − 0.5·X_k·X_kᵀ·X_k.
pub fn newton_schulz(x: &[f32], rows: usize, cols: usize, steps: u32) -> Vec<f64> {
    let norm = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
    let mut y: Vec<f64> = x
        .iter()
        .map(|&v| if norm > 0.0 { v as f64 / norm } else { 0.0 })
        .collect();
    for _ in 0..steps {
        // g = yᵀ·y (cols×cols), then y·(1.5·I − 0.5·g).
        let mut g = vec![0f64; cols * cols];
        for i in 0..cols {
            for j in 0..cols {
                g[i * cols + j] = (0..rows).map(|r| y[r * cols + i] * y[r * cols + j]).sum();
            }
        }
        let mut next = vec![0f64; rows * cols];
        for r in 0..rows {
            for j in 0..cols {
                let yg: f64 = (0..cols).map(|k| y[r * cols + k] * g[k * cols + j]).sum();
                next[r * cols + j] = 1.5 * y[r * cols + j] - 0.5 * yg;
            }
        }
        y = next;
    }
    y
}

/// dst [d1, d0, d2] = src [d0, d1, d2] with the leading axes swapped.
pub fn swap_leading_axes(src: &[f32], [d0, d1, d2]: [usize; 3]) -> Vec<f32> {
    let mut dst = vec![0f32; src.len()];
    for i in 0..d0 {
        for j in 0..d1 {
            for k in 0..d2 {
                dst[(j * d0 + i) * d2 + k] = src[(i * d1 + j) * d2 + k];
            }
        }
    }
    dst
}

/// The unfolding of the stored w [T, in, out] as (rows, cols, matrix).
pub fn unfold(w: &[f32], s: TaskStack, u: Unfolding) -> (usize, usize, Vec<f32>) {
    let (rows, cols) = u.matrix(s);
    let m = match u {
        Unfolding::Tasks | Unfolding::Outputs => w.to_vec(),
        Unfolding::Inputs => swap_leading_axes(w, [s.tasks, s.inputs, s.outputs]),
    };
    (rows, cols, m)
}

/// A matrix of the unfolding's shape back in storage order.
pub fn fold(m: &[f32], s: TaskStack, u: Unfolding) -> Vec<f32> {
    match u {
        Unfolding::Tasks | Unfolding::Outputs => m.to_vec(),
        Unfolding::Inputs => swap_leading_axes(m, [s.inputs, s.tasks, s.outputs]),
    }
}

/// (Σ ‖unfolding‖_*, Σ fold(U·Vᵀ)) of the variant on w [T, in, out]: its
/// value and gradient at λ = 1.
pub fn stack_trace_norm(
    w: &[f32],
    s: TaskStack,
    variant: TraceNormVariant,
    rel_tol: f64,
) -> (f64, Vec<f32>) {
    let mut grad = vec![0f32; w.len()];
    let mut value = 0.0;
    for &u in variant.unfoldings() {
        let (r, c, m) = unfold(w, s, u);
        let (v, p) = polar_matrix(&m, r, c, rel_tol);
        value += v;
        for (g, p) in grad.iter_mut().zip(fold(&p, s, u)) {
            *g += p;
        }
    }
    (value, grad)
}

/// The variant's value alone, from singular values (for finite differences).
pub fn stack_value(w: &[f32], s: TaskStack, variant: TraceNormVariant) -> f64 {
    variant
        .unfoldings()
        .iter()
        .map(|&u| {
            let (r, c, m) = unfold(w, s, u);
            singular_values(&m, r, c).iter().sum::<f64>()
        })
        .sum()
}

/// X·Xᵀ of x [s, c] (row-major) in f64, [s, s] row-major.
pub fn gram(x: &[f32], s: usize, c: usize) -> Vec<f64> {
    let mut g = vec![0f64; s * s];
    for i in 0..s {
        for j in 0..s {
            g[i * s + j] = (0..c)
                .map(|k| x[i * c + k] as f64 * x[j * c + k] as f64)
                .sum();
        }
    }
    g
}
