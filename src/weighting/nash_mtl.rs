//! Nash-MTL (Navon et al. 2022, "Multi-Task Learning as a Bargaining
//! Game"): the update `Σ α_t g_t` whose weights are the Nash bargaining
//! solution among the tasks.
//!
//! Each task's utility for an update `d` is its directional derivative
//! `g_t·d`; the bargaining solution maximises `Σ_t log(g_t·d)` over the
//! ball `‖d‖ ≤ ε`. Its stationarity condition says that `d = Σ α_t g_t`
//! with every task's share of the update inversely proportional to its
//! weight: `g_t·d = (M α)_t = 1/α_t`, `α > 0`. So tasks with small
//! gradients get large weights, and scaling one task's gradient by `s`
//! scales its weight by `1/s` and leaves the update unchanged.
//!
//! The same solver serves FairGrad's α-fair generalisation
//! `(M α)_t = α_t^{-p}` ([`fairgrad`](super::fairgrad)): it is the
//! stationarity condition of the strictly convex
//! `f(α) = ½ αᵀ M α − Σ_t h(α_t)`, `h'(x) = x^{-p}` (`h = log` for
//! `p = 1`), whose Hessian `M + p·diag(α^{-p-1})` is positive definite on
//! `α > 0`. We minimise `f` by Newton's method with a step that keeps
//! `α > 0` and backtracks until `f` decreases enough (Armijo), from the
//! solution for orthogonal gradients, `α_t = M_tt^{-1/(1+p)}`.

use super::gram::{dot, invalid, Gram};
use super::imtl::solve_linear;
use crate::Result;

/// Largest relative residual `max_t |α_t^p (M α)_t − 1|` the solver accepts.
pub const NASH_TOLERANCE: f64 = 1e-10;

/// Newton iterations before the solver gives up (it usually needs < 15).
pub const NASH_MAX_ITERATIONS: usize = 200;

/// A squared gradient norm at most this fraction of the largest counts as
/// zero (norms 1e10 apart: beyond what an f32 Gram matrix resolves).
const ZERO_GRADIENT: f64 = 1e-20;

/// The epsilon LibMTL's `clip_grad_norm_` adds to the norm it divides by.
const CLIP_EPS: f64 = 1e-6;

/// What [`nash_mtl`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct NashMtlSolution {
    /// The bargaining solution of `M` itself: `(M α)_t = 1/α_t`.
    pub alpha: Vec<f64>,
    /// The coefficients the update uses: `α·sqrt(‖M‖_F)` (LibMTL solves on
    /// `M/‖M‖_F`), scaled down so that `‖Σ c_t g_t‖ ≤ max_norm` when
    /// `max_norm > 0`.
    pub coefficients: Vec<f64>,
    /// `‖Σ c_t g_t‖` before the clip.
    pub unclipped_norm: f64,
    /// Newton iterations taken.
    pub iterations: usize,
    /// `max_t |α_t (M α)_t − 1|` at the end.
    pub residual: f64,
}

/// Nash-MTL coefficients, as LibMTL's `Nash_MTL` forms them: the
/// bargaining solution `α̂` of the normalised Gram matrix `M/‖M‖_F` (that
/// is `α̂ = sqrt(‖M‖_F)·α` for the solution `α` of `M`), then the combined
/// gradient clipped to norm `max_norm` (LibMTL: `clip_grad_norm_` on the
/// shared parameters, `max_norm` 1; 0 turns the clip off). As the
/// bargaining solution gives `‖Σ α_t g_t‖² = αᵀMα = T`, the unclipped
/// update has norm `sqrt(T·‖M‖_F)`.
///
/// Errors when `max_norm` is negative or not finite, a task's gradient is
/// zero (its weight would be infinite), or the equation has no positive
/// solution (gradients so opposed that no positive mix helps every task,
/// e.g. `g₂ = −g₁`).
pub fn nash_mtl(gram: &Gram, max_norm: f64) -> Result<NashMtlSolution> {
    if !(max_norm.is_finite() && max_norm >= 0.0) {
        return Err(invalid(
            "nash_mtl",
            format!("max_norm = {max_norm}; it must be finite and ≥ 0 (0: no clip, LibMTL 1)"),
        ));
    }
    let solve = solve_power_equation(gram, 1.0, "nash_mtl")?;
    let frobenius = dot(gram.as_slice(), gram.as_slice()).sqrt();
    let mut coefficients: Vec<f64> = solve.alpha.iter().map(|a| a * frobenius.sqrt()).collect();
    let unclipped_norm = gram.bilinear(&coefficients, &coefficients).max(0.0).sqrt();
    if max_norm > 0.0 {
        let factor = max_norm / (unclipped_norm + CLIP_EPS);
        if factor < 1.0 {
            coefficients.iter_mut().for_each(|c| *c *= factor);
        }
    }
    Ok(NashMtlSolution {
        alpha: solve.alpha,
        coefficients,
        unclipped_norm,
        iterations: solve.iterations,
        residual: solve.residual,
    })
}

/// The positive solution of `(M α)_t = α_t^{-p}` and how it was reached.
pub(crate) struct PowerSolution {
    pub alpha: Vec<f64>,
    pub iterations: usize,
    pub residual: f64,
}

/// Solves `(M α)_t = α_t^{-p}`, `α > 0`, `p > 0` (see the module docs).
/// `op` names the caller in errors.
pub(crate) fn solve_power_equation(gram: &Gram, p: f64, op: &'static str) -> Result<PowerSolution> {
    if !(p.is_finite() && p > 0.0) {
        return Err(invalid(op, format!("exponent {p} must be finite and > 0")));
    }
    let t = gram.tasks();
    // Work on M/s, s the largest diagonal: its solution α' = s^{1/(1+p)} α.
    let s = gram.max_diagonal();
    if let Some(z) = (0..t).find(|&i| gram.get(i, i) <= ZERO_GRADIENT * s) {
        return Err(invalid(
            op,
            format!(
                "task {z} has a zero gradient (‖g‖² = {}, the largest {s}): its weight \
                 would be infinite",
                gram.get(z, z)
            ),
        ));
    }
    let m: Vec<f64> = gram.as_slice().iter().map(|v| v / s).collect();
    let mul = |a: &[f64]| -> Vec<f64> {
        (0..t)
            .map(|i| dot(&m[i * t..(i + 1) * t], a))
            .collect::<Vec<f64>>()
    };
    let h = |x: f64| {
        if p == 1.0 {
            x.ln()
        } else {
            x.powf(1.0 - p) / (1.0 - p)
        }
    };
    let objective = |a: &[f64]| 0.5 * dot(a, &mul(a)) - a.iter().map(|&x| h(x)).sum::<f64>();
    let residual = |a: &[f64], ma: &[f64]| {
        a.iter()
            .zip(ma)
            .map(|(&x, &y)| (x.powf(p) * y - 1.0).abs())
            .fold(0.0, f64::max)
    };
    let mut alpha: Vec<f64> = (0..t)
        .map(|i| m[i * t + i].powf(-1.0 / (1.0 + p)))
        .collect();
    let no_solution = || {
        invalid(
            op,
            format!(
                "(M α)_t = α_t^-{p} has no positive solution: the task gradients conflict so \
                 that no positive combination improves every task (e.g. g₂ = −g₁)"
            ),
        )
    };
    for iteration in 0..NASH_MAX_ITERATIONS {
        let ma = mul(&alpha);
        let res = residual(&alpha, &ma);
        if !res.is_finite() {
            return Err(no_solution());
        }
        if res <= NASH_TOLERANCE {
            let scale = s.powf(1.0 / (1.0 + p));
            return Ok(PowerSolution {
                alpha: alpha.iter().map(|a| a / scale).collect(),
                iterations: iteration,
                residual: res,
            });
        }
        // ∇f = Mα − α^{-p}; Hessian M + p·diag(α^{-p-1}).
        let grad: Vec<f64> = (0..t).map(|i| ma[i] - alpha[i].powf(-p)).collect();
        let curvature: Vec<f64> = (0..t).map(|i| p * alpha[i].powf(-p - 1.0)).collect();
        let mut hessian = m.clone();
        for i in 0..t {
            hessian[i * t + i] += curvature[i];
        }
        let newton = solve_linear(hessian, grad.iter().map(|g| -g).collect());
        // Rounding can make the Hessian of a near-singular M indefinite;
        // then step along the diagonal-scaled gradient, always a descent.
        let direction = match newton {
            Some(d) if dot(&d, &grad) < 0.0 => d,
            _ => (0..t)
                .map(|i| -grad[i] / (m[i * t + i] + curvature[i]))
                .collect(),
        };
        let slope = dot(&direction, &grad);
        // Stay inside α > 0: go at most 99% of the way to the boundary.
        let mut step = direction
            .iter()
            .zip(&alpha)
            .filter(|(d, _)| **d < 0.0)
            .map(|(d, a)| -0.99 * a / d)
            .fold(1.0, f64::min);
        let f0 = objective(&alpha);
        let mut accepted = false;
        for _ in 0..60 {
            let trial: Vec<f64> = alpha
                .iter()
                .zip(&direction)
                .map(|(a, d)| a + step * d)
                .collect();
            let f = objective(&trial);
            if f <= f0 + 1e-4 * step * slope || (f - f0).abs() <= 1e-15 * f0.abs() {
                alpha = trial;
                accepted = true;
                break;
            }
            step *= 0.5;
        }
        // Weights far past any solution mean f is unbounded below.
        if !accepted || alpha.iter().any(|a| !(a.is_finite() && *a < 1e15)) {
            return Err(no_solution());
        }
    }
    Err(invalid(
        op,
        format!(
            "(M α)_t = α_t^-{p} not solved to {NASH_TOLERANCE} in {NASH_MAX_ITERATIONS} \
             iterations: the Gram matrix is too ill-conditioned"
        ),
    ))
}
