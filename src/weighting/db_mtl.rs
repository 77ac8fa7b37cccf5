//! DB-MTL (Lin et al. 2023, "Dual-Balancing Multi-Task Learning"):
//! balance the loss scales by a log transform and the gradient
//! magnitudes by rescaling every task's gradient to the largest norm.
//!
//! Loss scale: each task contributes the gradient of `log(L_t + ε)`, that
//! is `ĝ_t = g_t / (L_t + ε)` (ε = 1e-8), so a loss ten times larger no
//! longer pulls ten times harder. Gradient magnitude: with
//! `n_t = ‖ĝ_t‖ = ‖g_t‖ / (L_t + ε)`, every `ĝ_t` is scaled by
//! `β_t = max_j n_j / (n_t + ε)` so that all have the norm of the largest.
//! The update is `Σ β_t ĝ_t`, i.e. `c_t = β_t / (L_t + ε)`, which needs
//! only `‖g_t‖ = sqrt(M_tt)` and the losses.
//!
//! LibMTL's `DB_MTL` smooths the log-gradients with an exponential moving
//! average over steps (`DB_beta` 0.9, `DB_beta_sigma` 0) and rescales the
//! average. That average lives in parameter space (a T × parameters
//! buffer); the Gram matrix of one step cannot rebuild its norms, so it is
//! not implemented: this is LibMTL's `DB_beta = 0` path, on the current
//! step's gradients.

use super::gram::{invalid, Gram};
use crate::Result;

/// LibMTL's guard in `log(L + ε)` and in the division by the norms.
const EPS: f64 = 1e-8;

/// DB-MTL coefficients `c_t = β_t / (L_t + 1e-8)` (see the module docs).
///
/// Errors when the losses are not one finite value ≥ 0 per task (the log
/// transform needs them), or a coefficient is too large for f32 (a loss
/// at 0 with a gradient far below the largest).
pub fn db_mtl(gram: &Gram, losses: &[f64]) -> Result<Vec<f64>> {
    gram.check_len("db_mtl", "losses", losses)?;
    if let Some(i) = losses.iter().position(|l| !(l.is_finite() && *l >= 0.0)) {
        return Err(invalid(
            "db_mtl",
            format!(
                "task {i}'s loss is {}; the log transform needs finite losses ≥ 0",
                losses[i]
            ),
        ));
    }
    let log_norms: Vec<f64> = gram
        .norms()
        .iter()
        .zip(losses)
        .map(|(n, l)| n / (l + EPS))
        .collect();
    let largest = log_norms.iter().copied().fold(0.0, f64::max);
    let coefficients: Vec<f64> = log_norms
        .iter()
        .zip(losses)
        .map(|(n, l)| largest / (n + EPS) / (l + EPS))
        .collect();
    if let Some(i) = coefficients
        .iter()
        .position(|c| !(c.is_finite() && *c <= f32::MAX as f64))
    {
        return Err(invalid(
            "db_mtl",
            format!(
                "task {i}'s coefficient {} does not fit in f32 (loss {}, gradient norm {})",
                coefficients[i],
                losses[i],
                gram.get(i, i).sqrt()
            ),
        ));
    }
    Ok(coefficients)
}
