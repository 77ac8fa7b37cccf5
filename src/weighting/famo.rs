//! FAMO (Liu et al. 2023, fast adaptive multitask optimisation): the
//! update is the gradient of `Σ_t z_t log(L_t − m_t)/c`, z = softmax(ξ),
//! `c = Σ_t z_t/(L_t − m_t)` held constant, so `c_t ∝ z_t/(L_t − m_t)`
//! (computed on the GPU from the step's losses,
//! `kernels::weighting::LossRule::Famo`). After the update the losses are
//! measured again on the same batch, and ξ takes an Adam step (with L2
//! weight decay γ) along `J_softmax(ξ)ᵀ δ`, `δ_t = log(L_t − m_t) −
//! log(L'_t − m_t)`: tasks whose loss fell less gain weight. LibMTL `FAMO`
//! (`FAMO_w_lr` 0.025, `FAMO_w_gamma` 1e-3, m = 0), the same update; the
//! paper's extra forward pass on the same batch is one more submit here.

use crate::error::Result;
use crate::kernels::weighting::LossRule;

use super::gram::invalid;

/// FAMO's defaults (LibMTL's): the logits' lr and weight decay.
pub const FAMO_DEFAULT_LR: f64 = 0.025;
/// γ, the L2 weight decay of FAMO's logits.
pub const FAMO_DEFAULT_GAMMA: f64 = 1e-3;
const ADAM_BETAS: (f64, f64) = (0.9, 0.999);
const ADAM_EPS: f64 = 1e-8;
const D_EPS: f64 = 1e-8;

/// FAMO's logits ξ and their Adam moments.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FamoState {
    logits: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
    steps: u64,
}

fn softmax(x: &[f64]) -> Vec<f64> {
    let top = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - top).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

impl FamoState {
    /// ξ = 0 (equal z) for `tasks` tasks.
    pub fn new(tasks: usize) -> Self {
        FamoState {
            logits: vec![0.0; tasks],
            m: vec![0.0; tasks],
            v: vec![0.0; tasks],
            steps: 0,
        }
    }

    /// z = softmax(ξ).
    pub fn z(&self) -> Vec<f64> {
        softmax(&self.logits)
    }

    /// The loss rule of the next step (lower bounds m = 0).
    pub fn rule(&self) -> LossRule {
        LossRule::Famo {
            z: self.z().iter().map(|&v| v as f32).collect(),
            min_losses: vec![0.0; self.logits.len()],
        }
    }

    /// ξ's step from the losses before (`before`) and after (`after`) the
    /// update on the same batch. Non-positive or non-finite losses are an
    /// error (FAMO takes their logarithm).
    pub fn update(&mut self, before: &[f32], after: &[f32], lr: f64, gamma: f64) -> Result<()> {
        let t = self.logits.len();
        if before.len() != t || after.len() != t {
            let detail = format!("{} and {} losses for {t} tasks", before.len(), after.len());
            return Err(invalid("FamoState::update", detail));
        }
        let log = |l: f32, which: &str, k: usize| -> Result<f64> {
            let d = l as f64 + D_EPS;
            if d.is_finite() && d > 0.0 {
                Ok(d.ln())
            } else {
                let detail =
                    format!("task {k}'s loss {which} the update is {l}: FAMO takes its log");
                Err(invalid("FamoState::update", detail))
            }
        };
        let mut delta = Vec::with_capacity(t);
        for k in 0..t {
            delta.push(log(before[k], "before", k)? - log(after[k], "after", k)?);
        }
        // d = J_softmax(ξ)ᵀ δ = z ⊙ (δ − z·δ)
        let z = self.z();
        let zd: f64 = z.iter().zip(&delta).map(|(a, b)| a * b).sum();
        self.steps += 1;
        let (b1, b2) = ADAM_BETAS;
        let step = self.steps as i32;
        for k in 0..t {
            let g = z[k] * (delta[k] - zd) + gamma * self.logits[k];
            self.m[k] = b1 * self.m[k] + (1.0 - b1) * g;
            self.v[k] = b2 * self.v[k] + (1.0 - b2) * g * g;
            let m_hat = self.m[k] / (1.0 - b1.powi(step));
            let v_hat = self.v[k] / (1.0 - b2.powi(step));
            self.logits[k] -= lr * m_hat / (v_hat.sqrt() + ADAM_EPS);
        }
        Ok(())
    }

    /// Errors unless the state fits `tasks` tasks with finite values.
    pub fn check(&self, tasks: usize) -> Result<()> {
        let all = [&self.logits, &self.m, &self.v];
        if all
            .iter()
            .any(|v| v.len() != tasks || v.iter().any(|x| !x.is_finite()))
        {
            return Err(invalid(
                "FamoState::check",
                format!("the saved FAMO state does not fit {tasks} tasks"),
            ));
        }
        Ok(())
    }
}
