//! UPGrad (Quinton & Rey 2024, "Jacobian Descent for Multi-Objective
//! Optimization"), with torchjd's defaults: every task gradient is
//! projected onto the dual cone of all of them, and the projections are
//! averaged.
//!
//! The dual cone of the gradients is `C = {v : g_j·v ≥ 0 for every j}`:
//! the directions that conflict with no task. The projection of any
//! combination `Σ_j u_j g_j` onto `C` is again a combination `Σ_j w_j g_j`,
//! and its weights solve the T-dimensional problem
//!
//! ```text
//! w = argmin_{w ≥ u} wᵀ M w                      (M = G Gᵀ)
//! ```
//!
//! (the paper's Proposition 1: the KKT multipliers of the projection are
//! `w − u`). UPGrad projects each `g_i` (`u = e_i`) and returns the mean
//! `d = (1/T) Σ_i π_C(g_i)`, so `c = (1/T) Σ_i w^(i)`. Since every
//! projection lies in `C`, so does `d`: it never increases a task's loss to
//! first order.
//!
//! As torchjd does, the problem is solved on `M / tr(M)` (the Gram of the
//! Frobenius-normalised Jacobian; zero when `tr(M) < norm_eps`) plus
//! `reg_eps · I`, which makes it strictly convex. The weights `w` apply to
//! the original gradients. Each problem is a non-negative quadratic
//! program in `x = w − e_i` (`min ½xᵀGx + xᵀG e_i`, `x ≥ 0`), solved exactly
//! by an active-set method (Lawson–Hanson's, with linear solves on the free
//! set).

use super::gram::{invalid, Gram};
use super::imtl::solve_linear;
use crate::Result;

/// torchjd's default `norm_eps`: a Gram of trace below it is treated as
/// zero (the update is then the plain mean).
pub const UPGRAD_NORM_EPS: f64 = 1e-4;

/// torchjd's default `reg_eps`: added to the diagonal of the normalised
/// Gram so every projection problem is strictly convex.
pub const UPGRAD_REG_EPS: f64 = 1e-4;

/// What [`upgrad`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct UpGradSolution {
    /// `c = (1/T) Σ_i w^(i)`: the update is `Σ_t c_t g_t`.
    pub coefficients: Vec<f64>,
    /// `w^(i)` for each task i (row i): the projection of `g_i` onto the
    /// dual cone is `Σ_j w^(i)_j g_j`, and `w^(i) ≥ e_i`.
    pub projections: Vec<Vec<f64>>,
    /// Active-set iterations over all T problems.
    pub iterations: usize,
    /// Whether every problem met its KKT conditions within the tolerance
    /// (else the iteration cap was hit; the weights are then the last
    /// iterate, still `≥ e_i`).
    pub converged: bool,
}

/// UPGrad coefficients from the Gram matrix. `norm_eps` and `reg_eps` as
/// torchjd ([`UPGRAD_NORM_EPS`], [`UPGRAD_REG_EPS`]); both must be finite
/// and `≥ 0`. With `reg_eps = 0` the projections are exact, but a
/// rank-deficient Gram may make a problem singular, which is an error.
pub fn upgrad(gram: &Gram, norm_eps: f64, reg_eps: f64) -> Result<UpGradSolution> {
    for (name, v) in [("norm_eps", norm_eps), ("reg_eps", reg_eps)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(invalid(
                "upgrad",
                format!("{name} = {v}; it must be finite and ≥ 0 (torchjd default 1e-4)"),
            ));
        }
    }
    let t = gram.tasks();
    let g = regularised(gram, norm_eps, reg_eps);
    let mut projections = Vec::with_capacity(t);
    let mut iterations = 0;
    let mut converged = true;
    for i in 0..t {
        let p = project(&g, t, i)?;
        iterations += p.iterations;
        converged &= p.converged;
        projections.push(p.w);
    }
    let coefficients = (0..t)
        .map(|j| projections.iter().map(|w| w[j]).sum::<f64>() / t as f64)
        .collect();
    Ok(UpGradSolution {
        coefficients,
        projections,
        iterations,
        converged,
    })
}

/// `M / tr(M) + reg_eps·I` (row-major), or `reg_eps·I` when `tr(M) < norm_eps`.
fn regularised(gram: &Gram, norm_eps: f64, reg_eps: f64) -> Vec<f64> {
    let t = gram.tasks();
    let trace: f64 = (0..t).map(|i| gram.get(i, i)).sum();
    let mut g: Vec<f64> = if trace < norm_eps {
        vec![0.0; t * t]
    } else {
        gram.as_slice().iter().map(|m| m / trace).collect()
    };
    for i in 0..t {
        g[i * t + i] += reg_eps;
    }
    g
}

struct Projection {
    w: Vec<f64>,
    iterations: usize,
    converged: bool,
}

/// `argmin_{w ≥ e_i} wᵀ G w` for a symmetric PSD `G` (t×t row-major), as
/// `w = e_i + x` with `x ≥ 0` minimising `½xᵀGx + xᵀq`, `q = G e_i`.
/// Active set (Lawson–Hanson): free the bound coordinate whose gradient
/// `r = Gx + q` is most negative, solve `G_FF z_F = −q_F` on the free set,
/// and step back towards the previous point when that leaves the orthant.
fn project(g: &[f64], t: usize, i: usize) -> Result<Projection> {
    let q: Vec<f64> = (0..t).map(|j| g[j * t + i]).collect();
    let scale = (0..t).map(|j| g[j * t + j]).fold(0.0, f64::max);
    let tol = 1e-12 * scale;
    let max_iter = 3 * t + 30;
    let mut x = vec![0.0; t];
    let mut free = vec![false; t];
    for iteration in 0..max_iter {
        let r: Vec<f64> = (0..t)
            .map(|j| q[j] + (0..t).map(|k| g[j * t + k] * x[k]).sum::<f64>())
            .collect();
        let entering = (0..t)
            .filter(|&j| !free[j] && r[j] < -tol)
            .min_by(|&a, &b| r[a].total_cmp(&r[b]));
        let Some(entering) = entering else {
            x[i] += 1.0;
            return Ok(Projection {
                w: x,
                iterations: iteration,
                converged: true,
            });
        };
        free[entering] = true;
        // Each pass frees nothing and fixes at least one coordinate, so at
        // most t passes.
        for _ in 0..t {
            let set: Vec<usize> = (0..t).filter(|&j| free[j]).collect();
            if set.is_empty() {
                break;
            }
            let z = solve_free(g, t, &q, &set)?;
            if set.iter().all(|&j| z[j] > 0.0) {
                x = z;
                break;
            }
            // The largest step from x towards z that stays in x ≥ 0; the
            // coordinate that blocks it leaves the free set.
            let (blocking, alpha) = set
                .iter()
                .filter(|&&j| z[j] <= 0.0)
                .map(|&j| (j, x[j] / (x[j] - z[j])))
                .fold(
                    (usize::MAX, 1.0),
                    |best, cand| {
                        if cand.1 < best.1 {
                            cand
                        } else {
                            best
                        }
                    },
                );
            for &j in &set {
                x[j] += alpha * (z[j] - x[j]);
                if j == blocking || x[j] <= 0.0 {
                    x[j] = 0.0;
                    free[j] = false;
                }
            }
        }
    }
    x[i] += 1.0;
    Ok(Projection {
        w: x,
        iterations: max_iter,
        converged: false,
    })
}

/// `z` with `G_FF z_F = −q_F` on the free set F and `z = 0` elsewhere.
fn solve_free(g: &[f64], t: usize, q: &[f64], set: &[usize]) -> Result<Vec<f64>> {
    let n = set.len();
    let mut a = Vec::with_capacity(n * n);
    for &j in set {
        a.extend(set.iter().map(|&k| g[j * t + k]));
    }
    let b = set.iter().map(|&j| -q[j]).collect();
    let zf = solve_linear(a, b).ok_or_else(|| {
        invalid(
            "upgrad",
            "a projection problem is singular (linearly dependent task gradients with \
             reg_eps = 0); use reg_eps > 0 (torchjd default 1e-4)"
                .into(),
        )
    })?;
    let mut z = vec![0.0; t];
    for (&j, v) in set.iter().zip(zf) {
        z[j] = v;
    }
    Ok(z)
}
