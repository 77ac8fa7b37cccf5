//! Minimising a convex function over the probability simplex
//! `Δ = {w : w ≥ 0, Σ w = 1}` by Frank–Wolfe with away steps (CAGrad's
//! inner problem; MGDA's quadratic one has an exact method, see `mgda`).
//!
//! Plain Frank–Wolfe converges as O(1/k) and zig-zags when the optimum lies
//! on a face; away steps (moving weight off the worst vertex in use) fix
//! the zig-zag, so a tight stopping rule is affordable (CAGrad at T = 64:
//! 120–420 iterations to a relative gap of 1e-10).

use super::gram::dot;

/// Stopping rule of the simplex solvers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SolverOptions {
    /// Iteration cap (Frank–Wolfe: O(T²) each; Wolfe's min-norm steps:
    /// O(|S|³) each, and about T of them).
    pub max_iter: usize,
    /// Stop when the Frank–Wolfe duality gap `∇f(w)·w − min_t ∇f(w)_t`, an
    /// upper bound on `f(w) − min f`, is at most `tol · max_t M_tt`.
    pub tol: f64,
}

impl Default for SolverOptions {
    /// 1000 iterations, gap ≤ 1e-10 of the largest squared gradient norm.
    /// (LibMTL: 250 iterations, stop when ‖Δw‖₁ < 1e-5.)
    fn default() -> Self {
        SolverOptions {
            max_iter: 1000,
            tol: 1e-10,
        }
    }
}

/// A point of the simplex and how the solver got there.
#[derive(Clone, Debug, PartialEq)]
pub struct SimplexSolution {
    /// The minimiser, `w ≥ 0`, `Σ w = 1`.
    pub w: Vec<f64>,
    /// Iterations run.
    pub iterations: usize,
    /// Duality gap at `w`: `f(w) − min f ≤ gap`.
    pub gap: f64,
    /// Whether the gap met the tolerance (else `max_iter` was hit and `w`
    /// is the last iterate, still a valid point of the simplex).
    pub converged: bool,
}

/// A convex function on the simplex, as the solver sees it.
pub(crate) trait Objective {
    fn gradient(&self, w: &[f64]) -> Vec<f64>;
    /// A minimiser of `γ ↦ f(w + γ d)` over `[0, gamma_max]`.
    fn line_search(&self, w: &[f64], d: &[f64], gamma_max: f64) -> f64;
}

/// Away-step Frank–Wolfe from `start` (a point of the simplex). `scale`
/// sets the absolute tolerance `opts.tol · scale`.
pub(crate) fn minimise(
    f: &impl Objective,
    start: Vec<f64>,
    scale: f64,
    opts: &SolverOptions,
) -> SimplexSolution {
    let mut w = start;
    for iterations in 0..opts.max_iter {
        let grad = f.gradient(&w);
        let gw = dot(&grad, &w);
        let s = argmin(&grad);
        let gap = gw - grad[s];
        if gap <= opts.tol * scale {
            return SimplexSolution {
                w,
                iterations,
                gap,
                converged: true,
            };
        }
        // The away vertex: the worst one still carrying weight.
        let a = argmax_on_support(&grad, &w);
        let toward = gap >= grad[a] - gw;
        let (d, gamma_max) = if toward {
            let mut d: Vec<f64> = w.iter().map(|&x| -x).collect();
            d[s] += 1.0;
            (d, 1.0)
        } else {
            let mut d = w.clone();
            d[a] -= 1.0;
            (d, w[a] / (1.0 - w[a]))
        };
        let gamma = f.line_search(&w, &d, gamma_max);
        for (x, dx) in w.iter_mut().zip(&d) {
            *x = (*x + gamma * dx).max(0.0);
        }
        if !toward && gamma >= gamma_max {
            w[a] = 0.0; // a drop step: vertex a leaves the support exactly
        }
    }
    let grad = f.gradient(&w);
    let gap = dot(&grad, &w) - grad[argmin(&grad)];
    SimplexSolution {
        w,
        iterations: opts.max_iter,
        converged: gap <= opts.tol * scale,
        gap,
    }
}

fn argmin(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |best, i| if v[i] < v[best] { i } else { best })
}

fn argmax_on_support(grad: &[f64], w: &[f64]) -> usize {
    let support = (0..w.len()).filter(|&i| w[i] > 0.0);
    support
        .reduce(|best, i| if grad[i] > grad[best] { i } else { best })
        .unwrap_or(0)
}
