//! GradNorm (Chen et al. 2018): learn loss weights `w` so that the weighted
//! gradient norms `G_t = w_t ‖∇_W L_t‖` train at rates set by each task's
//! relative progress.

use super::gram::invalid;
use crate::{Error, Result};

/// The floor weights are clamped to after a step, before renormalising:
/// a weight that reaches zero would switch its task off for good
/// (`G_t = 0` gives it no gradient to come back).
pub const GRADNORM_WEIGHT_FLOOR: f64 = 1e-4;

/// How `w` follows `∂L_grad/∂w_t = sign(G_t − target_t)·‖∇_W L_t‖`.
///
/// Plain gradient descent moves each weight by `lr·‖∇_W L_t‖`: when task
/// gradient norms span orders of magnitude (the situation GradNorm is
/// for, e.g. its synthetic benchmark with σ from 1 to 100, norms 10⁴
/// apart) one `lr` is either far too large for the big task (its weight
/// hits the floor in one step) or far too small for the small one (its
/// weight never moves). Adam's per-weight normalisation moves every weight
/// by about `lr` per step in the direction of its sign. LibMTL gets the
/// same behaviour by putting the weights into the model's optimiser
/// (usually Adam).
#[derive(Clone, Copy, Debug, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub enum GradNormUpdate {
    /// Adam on `w` (β₁ = 0.9, β₂ = 0.999, ε = 1e-12), its own `lr`.
    #[default]
    Adam,
    /// `w ← w − lr·∂L_grad/∂w` (the paper's description, taken literally).
    Gradient,
}

const ADAM_BETA1: f64 = 0.9;
const ADAM_BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-12;

/// GradNorm's state: the loss weights `w` (`Σ w = T`, starting at 1) and
/// the initial losses `L(0)` that progress is measured against.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GradNormState {
    weights: Vec<f64>,
    initial_losses: Vec<f64>,
    update: GradNormUpdate,
    /// Adam's moments of `∂L_grad/∂w` and the steps taken.
    m: Vec<f64>,
    v: Vec<f64>,
    steps: u32,
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
        let t = initial_losses.len();
        Ok(GradNormState {
            weights: vec![1.0; t],
            initial_losses: initial_losses.to_vec(),
            update: GradNormUpdate::default(),
            m: vec![0.0; t],
            v: vec![0.0; t],
            steps: 0,
        })
    }

    /// The same state, updating `w` by `update`.
    pub fn with_update(mut self, update: GradNormUpdate) -> Self {
        self.update = update;
        self
    }

    /// Checks a state read from a checkpoint: every vector has `tasks`
    /// finite entries and the initial losses are positive.
    pub fn check(&self, tasks: usize) -> Result<()> {
        let vectors = [&self.weights, &self.initial_losses, &self.m, &self.v];
        if vectors.iter().any(|v| v.len() != tasks) {
            return Err(invalid(
                "GradNormState::check",
                format!("a GradNorm state whose vectors do not all have {tasks} entries"),
            ));
        }
        let finite = vectors.iter().all(|v| v.iter().all(|x| x.is_finite()));
        if !finite || self.initial_losses.iter().any(|&l| l <= 0.0) {
            return Err(invalid(
                "GradNormState::check",
                "a GradNorm state with non-finite values or a non-positive initial loss".into(),
            ));
        }
        Ok(())
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
    /// `Ḡ r_t^α` held constant; `d_t = ∂L_grad/∂w_t = sign(G_t − target_t)·n_t`;
    /// `w ← max(w − lr·step(d), floor)`, then rescaled to `Σ w = T`, where
    /// `step(d)` is `d` itself or Adam's `m̂/(√v̂ + ε)` ([`GradNormUpdate`]).
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
        self.steps += 1;
        let k = self.steps as i32;
        for t in 0..self.weights.len() {
            // d|G − target|/dw = sign(G − target)·n; 0 at the kink, as autograd does.
            let sign = if g[t] > targets[t] {
                1.0
            } else if g[t] < targets[t] {
                -1.0
            } else {
                0.0
            };
            let d = sign * grad_norms[t];
            let delta = match self.update {
                GradNormUpdate::Gradient => d,
                GradNormUpdate::Adam => {
                    self.m[t] = ADAM_BETA1 * self.m[t] + (1.0 - ADAM_BETA1) * d;
                    self.v[t] = ADAM_BETA2 * self.v[t] + (1.0 - ADAM_BETA2) * d * d;
                    let m_hat = self.m[t] / (1.0 - ADAM_BETA1.powi(k));
                    let v_hat = self.v[t] / (1.0 - ADAM_BETA2.powi(k));
                    m_hat / (v_hat.sqrt() + ADAM_EPS)
                }
            };
            self.weights[t] = (self.weights[t] - lr * delta).max(GRADNORM_WEIGHT_FLOOR);
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
