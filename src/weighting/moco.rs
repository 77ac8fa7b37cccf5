//! MoCo (Fernando et al. 2023, correcting the bias of stochastic
//! multi-objective gradients): tracked gradients
//! `y_t ← y_t − β_k(y_t − L_t·g_t/‖g_t‖)` (on the GPU,
//! `Tracking::TrackedGradients`), then
//! `λ ← softmax(λ − γ_k(YYᵀ + ρI)λ)` from the Gram matrix of y, and the
//! shared parameters step along `Σ_t λ_t y_t`; `β_k = β/k^{σ_β}`,
//! `γ_k = γ/k^{σ_γ}` at step k ≥ 1. LibMTL `MoCo` (β 0.5, σ_β 0.5, γ 0.1,
//! σ_γ 0.5, ρ 0), the same update; each head gets its own task's
//! gradient, as there.

use crate::error::Result;

use super::gram::invalid;
use super::Gram;

/// MoCo's hyper-parameters (LibMTL's defaults by `Default`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MocoOptions {
    /// β, the tracking rate (0.5).
    pub beta: f64,
    /// σ_β, its decay exponent (0.5).
    pub beta_sigma: f64,
    /// γ, λ's step size (0.1).
    pub gamma: f64,
    /// σ_γ, its decay exponent (0.5).
    pub gamma_sigma: f64,
    /// ρ, λ's L2 regularisation (0).
    pub rho: f64,
}

impl Default for MocoOptions {
    fn default() -> Self {
        MocoOptions {
            beta: 0.5,
            beta_sigma: 0.5,
            gamma: 0.1,
            gamma_sigma: 0.5,
            rho: 0.0,
        }
    }
}

/// MoCo's λ and step count.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MocoState {
    lambda: Vec<f64>,
    steps: u64,
}

impl MocoState {
    /// λ = 1/T for `tasks` tasks, before step 1.
    pub fn new(tasks: usize) -> Self {
        MocoState {
            lambda: vec![1.0 / tasks.max(1) as f64; tasks],
            steps: 0,
        }
    }

    /// β_k of the coming step k = steps + 1.
    pub fn next_beta(&self, o: &MocoOptions) -> f64 {
        o.beta / ((self.steps + 1) as f64).powf(o.beta_sigma)
    }

    /// λ's step from the Gram matrix of the (updated) tracked gradients;
    /// returns the new λ.
    pub fn step(&mut self, gram_y: &Gram, o: &MocoOptions) -> Vec<f64> {
        self.steps += 1;
        let t = self.lambda.len();
        let gamma = o.gamma / (self.steps as f64).powf(o.gamma_sigma);
        let moved: Vec<f64> = (0..t)
            .map(|i| {
                let grad: f64 = (0..t)
                    .map(|j| gram_y.get(i, j) * self.lambda[j])
                    .sum::<f64>()
                    + o.rho * self.lambda[i];
                self.lambda[i] - gamma * grad
            })
            .collect();
        let top = moved.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = moved.iter().map(|v| (v - top).exp()).collect();
        let sum: f64 = e.iter().sum();
        self.lambda = e.iter().map(|v| v / sum).collect();
        self.lambda.clone()
    }

    /// Errors unless the state fits `tasks` tasks with finite values.
    pub fn check(&self, tasks: usize) -> Result<()> {
        if self.lambda.len() != tasks || self.lambda.iter().any(|v| !v.is_finite()) {
            return Err(invalid(
                "MocoState::check",
                format!("the saved MoCo state does not fit {tasks} tasks"),
            ));
        }
        Ok(())
    }
}
