//! GradNorm (Chen et al. 2018): learn loss weights `w` so that the weighted
//! gradient norms `G_t = w_t ‖∇_W L_t‖` train at rates set by each task's
//! relative progress.

use super::gram::invalid;
use crate::{Error, Result};

/// The floor weights are clamped to after a step, before renormalising:
/// a weight that reaches zero would switch its task off for good
/// (`G_t = 0` gives it no gradient to come back).
pub const GRADNORM_WEIGHT_FLOOR: f64 = 1e-4;

/// GradNorm's state: the loss weights `w` (`Σ w = T`, starting at 1) and
/// the initial losses `L(0)` that progress is measured against.
#[derive(Clone, Debug, PartialEq)]
pub struct GradNormState {
    weights: Vec<f64>,
    initial_losses: Vec<f64>,
}

impl GradNormState {
    /// Weights 1 and `L(0) = initial_losses` (positive and finite). The
    /// paper takes the losses of the first step; LibMTL the mean losses of
    /// the first epoch (which it trains with equal weights).
    pub fn new(initial_losses: &[f64]) -> Result<GradNormState> {
        if initial_losses.is_empty() {
            return Err(invalid("GradNormState::new", "no tasks".into()));
        }
        check_positive("GradNormState::new", "initial loss", initial_losses)?;
        Ok(GradNormState {
            weights: vec![1.0; initial_losses.len()],
            initial_losses: initial_losses.to_vec(),
        })
    }

    /// The current loss weights `w` (`Σ w = T`).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// `L(0)`.
    pub fn initial_losses(&self) -> &[f64] {
        &self.initial_losses
    }

    /// One update of `w`, returning `L_grad` before it.
    ///
    /// `grad_norms[t] = ‖∇_W L_t‖` of the UNweighted loss (`sqrt(M_tt)` of
    /// the Gram on the chosen shared parameters), `losses` the current `L_t`.
    /// `G_t = w_t n_t`, `r_t = (L_t/L_t(0)) / mean_j(L_j/L_j(0))`, target
    /// `Ḡ r_t^α` held constant; `∂L_grad/∂w_t = sign(G_t − target_t)·n_t`;
    /// `w ← max(w − lr·∂L_grad/∂w, floor)`, then rescaled to `Σ w = T`.
    pub fn step(&mut self, grad_norms: &[f64], losses: &[f64], alpha: f64, lr: f64) -> Result<f64> {
        const OP: &str = "GradNormState::step";
        let t = self.weights.len();
        for (what, v) in [("gradient norms", grad_norms), ("losses", losses)] {
            if v.len() != t {
                return Err(Error::Shape {
                    op: OP,
                    detail: format!("{} {what} for {t} tasks", v.len()),
                });
            }
        }
        if let Some(i) = grad_norms
            .iter()
            .position(|n| !(n.is_finite() && *n >= 0.0))
        {
            let detail = format!("gradient norm of task {i} is {}", grad_norms[i]);
            return Err(invalid(OP, detail));
        }
        check_positive(OP, "loss", losses)?;
        for (name, v) in [("alpha", alpha), ("lr", lr)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(
                    OP,
                    format!("{name} = {v}; it must be finite and ≥ 0"),
                ));
            }
        }
        let g: Vec<f64> = self
            .weights
            .iter()
            .zip(grad_norms)
            .map(|(w, n)| w * n)
            .collect();
        let targets = self.targets(&g, losses, alpha);
        let loss_grad = g.iter().zip(&targets).map(|(g, r)| (g - r).abs()).sum();
        for ((w, n), (g, target)) in self
            .weights
            .iter_mut()
            .zip(grad_norms)
            .zip(g.iter().zip(&targets))
        {
            // d|G − target|/dw = sign(G − target)·n; 0 at the kink, as autograd does.
            let sign = if g > target {
                1.0
            } else if g < target {
                -1.0
            } else {
                0.0
            };
            *w = (*w - lr * sign * n).max(GRADNORM_WEIGHT_FLOOR);
        }
        let sum: f64 = self.weights.iter().sum();
        for w in &mut self.weights {
            *w *= t as f64 / sum;
        }
        Ok(loss_grad)
    }

    /// `Ḡ r_t^α`, with `r_t` the relative inverse training rate.
    fn targets(&self, g: &[f64], losses: &[f64], alpha: f64) -> Vec<f64> {
        let t = g.len() as f64;
        let ratios: Vec<f64> = losses
            .iter()
            .zip(&self.initial_losses)
            .map(|(l, l0)| l / l0)
            .collect();
        let mean_ratio = ratios.iter().sum::<f64>() / t;
        let mean_g = g.iter().sum::<f64>() / t;
        ratios
            .iter()
            .map(|r| mean_g * (r / mean_ratio).powf(alpha))
            .collect()
    }
}

fn check_positive(op: &'static str, what: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
        None => Ok(()),
        Some(i) => Err(invalid(
            op,
            format!(
                "{what} of task {i} is {}; GradNorm's loss ratios need positive, finite losses",
                values[i]
            ),
        )),
    }
}
