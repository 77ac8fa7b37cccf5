//! Methods that weigh the losses without looking at gradients: DWA,
//! uncertainty weighting (f64 reference of the GPU kernel) and RLW.

use super::gram::invalid;
use crate::util::rng::Rng;
use crate::{Error, Result};

/// DWA's state (Liu et al. 2019, "End-to-End Multi-Task Learning with
/// Attention"): the mean training loss of each task over the last two
/// epochs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DwaState {
    tasks: usize,
    temperature: f64,
    // Per-epoch mean losses of epochs e−2 and e−1, oldest first.
    history: Vec<Vec<f64>>,
}

impl DwaState {
    /// No history yet; `temperature` τ > 0 (LibMTL `T`, default 2).
    pub fn new(tasks: usize, temperature: f64) -> Result<DwaState> {
        if tasks == 0 || !(temperature.is_finite() && temperature > 0.0) {
            let detail =
                format!("{tasks} tasks, temperature {temperature}; need ≥ 1 task and τ > 0");
            return Err(invalid("DwaState::new", detail));
        }
        Ok(DwaState {
            tasks,
            temperature,
            history: Vec::new(),
        })
    }

    /// Records the mean loss of each task over the epoch just finished
    /// (positive and finite: they are divided by).
    pub fn end_epoch(&mut self, mean_losses: &[f64]) -> Result<()> {
        const OP: &str = "DwaState::end_epoch";
        if mean_losses.len() != self.tasks {
            return Err(Error::Shape {
                op: OP,
                detail: format!("{} mean losses for {} tasks", mean_losses.len(), self.tasks),
            });
        }
        if let Some(t) = mean_losses
            .iter()
            .position(|l| !(l.is_finite() && *l > 0.0))
        {
            let detail = format!(
                "mean loss of task {t} is {}; DWA divides by it",
                mean_losses[t]
            );
            return Err(invalid(OP, detail));
        }
        if self.history.len() == 2 {
            self.history.remove(0);
        }
        self.history.push(mean_losses.to_vec());
        Ok(())
    }

    /// The mean losses recorded, oldest first (at most two epochs).
    pub fn history(&self) -> &[Vec<f64>] {
        &self.history
    }

    /// The weights for the coming epoch: `λ_k = K·softmax(r/τ)_k` with
    /// `r_k = L̄_k(e−1)/L̄_k(e−2)`; all 1 until two epochs are recorded.
    pub fn weights(&self) -> Vec<f64> {
        match self.history.as_slice() {
            [older, newer] => {
                let r: Vec<f64> = newer
                    .iter()
                    .zip(older)
                    .map(|(n, o)| n / o / self.temperature)
                    .collect();
                scaled_softmax(&r, self.tasks as f64)
            }
            _ => vec![1.0; self.tasks],
        }
    }
}

/// Uncertainty weighting (Kendall et al. 2018), `s_t = log σ_t²`:
/// `L = Σ_t ½e^{−s_t} L_t + ½ s_t`.
pub fn uncertainty_loss(log_vars: &[f64], losses: &[f64]) -> Result<f64> {
    check_same_len("uncertainty_loss", log_vars, losses)?;
    Ok(log_vars
        .iter()
        .zip(losses)
        .map(|(s, l)| 0.5 * (-s).exp() * l + 0.5 * s)
        .sum())
}

/// The weight each task loss gets in [`uncertainty_loss`]: `½e^{−s_t}`.
pub fn uncertainty_loss_weights(log_vars: &[f64]) -> Vec<f64> {
    log_vars.iter().map(|s| 0.5 * (-s).exp()).collect()
}

/// `∂L/∂s_t = ½(1 − e^{−s_t} L_t)`: zero at `s_t = log L_t`.
pub fn uncertainty_grad(log_vars: &[f64], losses: &[f64]) -> Result<Vec<f64>> {
    check_same_len("uncertainty_grad", log_vars, losses)?;
    Ok(log_vars
        .iter()
        .zip(losses)
        .map(|(s, l)| 0.5 * (1.0 - (-s).exp() * l))
        .collect())
}

/// RLW (Lin et al. 2021, LibMTL `RLW` with its default `Normal`
/// distribution): `softmax(z)`, `z ~ N(0, I)` drawn from `rng`. Fresh
/// weights every step; the same seed gives the same sequence.
pub fn rlw_weights(tasks: usize, rng: &mut Rng) -> Vec<f64> {
    let z: Vec<f64> = (0..tasks).map(|_| rng.normal() as f64).collect();
    scaled_softmax(&z, 1.0)
}

/// `scale · softmax(x)`, shifted by the maximum so `exp` cannot overflow.
fn scaled_softmax(x: &[f64], scale: f64) -> Vec<f64> {
    let max = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| scale * v / sum).collect()
}

fn check_same_len(op: &'static str, log_vars: &[f64], losses: &[f64]) -> Result<()> {
    if log_vars.len() == losses.len() {
        return Ok(());
    }
    Err(Error::Shape {
        op,
        detail: format!(
            "{} log-variances for {} losses",
            log_vars.len(),
            losses.len()
        ),
    })
}
