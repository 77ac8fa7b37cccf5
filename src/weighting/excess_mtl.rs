//! ExcessMTL (He et al. 2024, robust MTL with excess risks): each task's
//! excess risk is estimated as `w_t = Σ g_t²/√(s_t + 1e-7)`, with s_t the
//! running sums of its squared gradients (an Adagrad preconditioner; on
//! the GPU, `Tracking::AdagradSums`); the loss weights take a
//! multiplicative step `λ_t ← λ_t·exp(η·w_t/w_t⁰)` toward the tasks
//! farthest from their optimum, renormalised to `Σ λ = T`. w⁰ is the
//! first step's estimate. LibMTL `ExcessMTL` (`robust_step_size` 1e-2),
//! the same update, over all shared parameters.

use crate::error::Result;

use super::gram::invalid;

/// ExcessMTL's default step size η (LibMTL's `robust_step_size`).
pub const EXCESS_MTL_DEFAULT_STEP: f64 = 1e-2;

/// ExcessMTL's loss weights and first excess-risk estimate.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExcessMtlState {
    weights: Vec<f64>,
    initial: Option<Vec<f64>>,
}

impl ExcessMtlState {
    /// λ = 1 for `tasks` tasks.
    pub fn new(tasks: usize) -> Self {
        ExcessMtlState {
            weights: vec![1.0; tasks],
            initial: None,
        }
    }

    /// The current loss weights λ.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// One step on this step's excess-risk estimates; returns the loss
    /// weights to update with (the first step keeps λ = 1 and records
    /// w⁰).
    pub fn step(&mut self, excess_risk: &[f32], step_size: f64) -> Result<Vec<f64>> {
        let t = self.weights.len();
        if excess_risk.len() != t || excess_risk.iter().any(|v| !v.is_finite()) {
            let detail = format!("{excess_risk:?}: one finite excess risk per task ({t})");
            return Err(invalid("ExcessMtlState::step", detail));
        }
        let w: Vec<f64> = excess_risk.iter().map(|&v| v as f64).collect();
        match &self.initial {
            None => self.initial = Some(w),
            Some(w0) => {
                for k in 0..t {
                    // A task with no gradient at the start has no scale;
                    // its weight does not move.
                    let r = if w0[k] > 0.0 { w[k] / w0[k] } else { 0.0 };
                    self.weights[k] *= (step_size * r).exp();
                }
                let sum: f64 = self.weights.iter().sum();
                if !(sum.is_finite() && sum > 0.0) {
                    let detail = format!("the loss weights overflowed ({:?})", self.weights);
                    return Err(invalid("ExcessMtlState::step", detail));
                }
                for v in &mut self.weights {
                    *v *= t as f64 / sum;
                }
            }
        }
        Ok(self.weights.clone())
    }

    /// Errors unless the state fits `tasks` tasks with finite values.
    pub fn check(&self, tasks: usize) -> Result<()> {
        let fits = |v: &Vec<f64>| v.len() == tasks && v.iter().all(|x| x.is_finite());
        if !fits(&self.weights) || !self.initial.as_ref().is_none_or(fits) {
            return Err(invalid(
                "ExcessMtlState::check",
                format!("the saved ExcessMTL state does not fit {tasks} tasks"),
            ));
        }
        Ok(())
    }
}
