//! FairGrad (Ban & Ji 2024, "Fair Resource Allocation in Multi-Task
//! Learning"): the update `Σ α_t g_t` that maximises an α-fair sum of the
//! tasks' utilities `g_t·d`.
//!
//! With fairness parameter `a > 0` the utility of a task that improves at
//! rate `u` is `u^{1−a}/(1−a)` (`log u` at `a = 1`). Maximising their sum
//! over `‖d‖ ≤ ε` gives `d = Σ α_t g_t` with `g_t·d = α_t^{-1/a}`, i.e.
//! `(M α)_t = α_t^{-1/a}`, `α > 0`. `a = 1` is Nash-MTL's equation
//! ([`nash_mtl`](super::nash_mtl)); larger `a` is fairer (moves towards
//! the max-min improvement), `a → 0` towards the plain sum of
//! improvements. For orthogonal gradients `α_t^{1+1/a}·‖g_t‖² = 1`.
//!
//! Solved by the same damped Newton method as Nash-MTL (the equation is
//! the stationarity condition of a strictly convex function on `α > 0`).

use super::gram::{invalid, Gram};
use super::nash_mtl::solve_power_equation;
use crate::Result;

/// LibMTL's default fairness parameter `FairGrad_alpha` (1: Nash-MTL's
/// equation).
pub const FAIRGRAD_DEFAULT_ALPHA: f64 = 1.0;

/// FairGrad coefficients: the positive solution of
/// `(M α)_t = α_t^{-1/a}` for fairness `a = alpha > 0`, used as they are
/// (LibMTL's `FairGrad`: `least_squares` from `1/T` with bounds
/// `(0, ∞)`; we solve by Newton's method to a relative residual of
/// [`NASH_TOLERANCE`](super::NASH_TOLERANCE)).
///
/// Errors when `alpha` is not finite and positive, a task's gradient is
/// zero, or no positive solution exists (gradients such as `g₂ = −g₁`).
pub fn fairgrad(gram: &Gram, alpha: f64) -> Result<Vec<f64>> {
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(invalid(
            "fairgrad",
            format!("alpha = {alpha}; the fairness parameter must be finite and > 0 (LibMTL 1)"),
        ));
    }
    Ok(solve_power_equation(gram, 1.0 / alpha, "fairgrad")?.alpha)
}
