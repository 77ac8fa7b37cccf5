//! STCH (Lin et al. 2024, smooth Tchebycheff scalarisation): during
//! `warmup_epochs` epochs the update is the gradient of `Σ_t log L_t`;
//! the epoch after them averages each task's loss into the nadir point
//! n_t (still on log losses); from then on the update is the gradient of
//! `T·μ·log Σ_t exp(log(L_t/n_t)/μ)`, a smooth maximum of the normalised
//! log losses (docs/math.md §5). LibMTL `STCH` (`STCH_mu` 1,
//! `STCH_warmup_epoch` 4), the same schedule and objective. The weights
//! are computed on the GPU from each step's losses
//! (`kernels::weighting::LossRule`); the host keeps the schedule and the
//! nadir sums.

use crate::error::Result;
use crate::kernels::weighting::LossRule;

use super::gram::invalid;

/// STCH's defaults (LibMTL's): μ = 1, 4 warm-up epochs.
pub const STCH_DEFAULT_MU: f64 = 1.0;
/// Epochs of plain log losses before the nadir epoch.
pub const STCH_DEFAULT_WARMUP_EPOCHS: u32 = 4;

/// Where an STCH run is in its schedule.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StchState {
    epoch: u32,
    warmup_epochs: u32,
    /// Running sums of the nadir epoch's losses (f64) and their count.
    sums: Vec<f64>,
    count: u64,
    nadir: Option<Vec<f64>>,
}

impl StchState {
    /// A run at epoch 0 for `tasks` tasks.
    pub fn new(tasks: usize, warmup_epochs: u32) -> Self {
        StchState {
            epoch: 0,
            warmup_epochs,
            sums: vec![0.0; tasks],
            count: 0,
            nadir: None,
        }
    }

    /// Whether this epoch's losses are summed into the nadir point.
    pub fn collecting(&self) -> bool {
        self.epoch == self.warmup_epochs
    }

    /// The nadir point, once the nadir epoch has ended.
    pub fn nadir(&self) -> Option<&[f64]> {
        self.nadir.as_deref()
    }

    /// The rule of the current epoch.
    pub fn rule(&self, mu: f64) -> LossRule {
        match &self.nadir {
            None => LossRule::Log,
            Some(n) => LossRule::SmoothMax {
                mu: mu as f32,
                nadir: n.iter().map(|&v| v as f32).collect(),
            },
        }
    }

    /// Adds a step's losses to the nadir sums (only while `collecting`).
    pub fn observe(&mut self, losses: &[f32]) -> Result<()> {
        if !self.collecting() {
            return Ok(());
        }
        if losses.len() != self.sums.len() {
            let detail = format!("{} losses for {} tasks", losses.len(), self.sums.len());
            return Err(invalid("StchState::observe", detail));
        }
        for (s, &l) in self.sums.iter_mut().zip(losses) {
            *s += l as f64;
        }
        self.count += 1;
        Ok(())
    }

    /// Ends an epoch; ending the nadir epoch fixes the nadir point (an
    /// error if a task's mean loss there is not positive and finite).
    pub fn end_epoch(&mut self) -> Result<()> {
        if self.collecting() && self.count > 0 {
            let nadir: Vec<f64> = self.sums.iter().map(|s| s / self.count as f64).collect();
            if let Some(t) = nadir.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
                let detail = format!(
                    "task {t}'s mean loss over the nadir epoch is {}: STCH divides by it",
                    nadir[t]
                );
                return Err(invalid("StchState::end_epoch", detail));
            }
            self.nadir = Some(nadir);
        }
        self.epoch += 1;
        Ok(())
    }

    /// Errors unless the state fits `tasks` tasks with finite values.
    pub fn check(&self, tasks: usize) -> Result<()> {
        let ok_nadir = self
            .nadir
            .as_ref()
            .is_none_or(|n| n.len() == tasks && n.iter().all(|v| v.is_finite() && *v > 0.0));
        if self.sums.len() != tasks || !ok_nadir || self.sums.iter().any(|v| !v.is_finite()) {
            return Err(invalid(
                "StchState::check",
                format!("the saved STCH state does not fit {tasks} tasks"),
            ));
        }
        Ok(())
    }
}
