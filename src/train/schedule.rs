//! Learning-rate schedules: the optimiser's rate at every step, written
//! through `Program::set_learning_rate` before the step (it travels in the
//! step's optimiser parameters: no extra submit).
//!
//! For a base rate `lr`, step `s` (0-based) of a run of `S` steps and
//! `W = warmup_steps`:
//!
//! - warmup, `s < W`: `lr · (s + 1) / W`, a straight line from `lr/W` at
//!   the first step to `lr` at step `W − 1`. This is PyTorch's
//!   `LinearLR(start_factor = 1/W, end_factor = 1, total_iters = W − 1)`.
//! - then the decay, on its own step counter `t = s − W` over the
//!   `T = S − W` remaining steps (PyTorch's `SequentialLR(…, milestones =
//!   [W])` starts the second schedule at its step 0):
//!   - `constant`: `lr`;
//!   - `step`: `lr · γ^⌊t / step_size⌋` (`StepLR`);
//!   - `cosine`: `min_lr + (lr − min_lr) · ½ (1 + cos(π t / T))`
//!     (`CosineAnnealingLR(T_max = T, eta_min = min_lr)`, its closed form):
//!     `lr` at the first step after warmup, approaching `min_lr` at the
//!     end of the run (the last step has `t = T − 1`).
//!
//! Every rate is computed in f64 from the step number alone, so a resumed
//! run follows the same curve as one that never stopped.

/// How the rate decays after the warmup.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScheduleKind {
    /// The base rate throughout.
    Constant,
    /// × `gamma` every `step_size` steps.
    Step {
        /// Steps between decays (≥ 1).
        step_size: usize,
        /// The decay factor (finite, > 0).
        gamma: f32,
    },
    /// Cosine annealing from the base rate down to `min_lr` over the run.
    Cosine {
        /// The rate the curve ends at (finite, ≥ 0).
        min_lr: f32,
    },
}

/// A learning-rate schedule: an optional linear warmup, then a decay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrSchedule {
    /// The decay after the warmup.
    pub kind: ScheduleKind,
    /// Steps of linear warmup before it (0: none).
    pub warmup_steps: usize,
}

impl Default for LrSchedule {
    /// The constant rate, no warmup.
    fn default() -> Self {
        LrSchedule::constant()
    }
}

impl LrSchedule {
    /// The base rate at every step.
    pub fn constant() -> Self {
        LrSchedule {
            kind: ScheduleKind::Constant,
            warmup_steps: 0,
        }
    }

    /// A schedule of this kind, no warmup.
    pub fn new(kind: ScheduleKind) -> Self {
        LrSchedule {
            kind,
            warmup_steps: 0,
        }
    }

    /// The same schedule after `steps` steps of linear warmup.
    pub fn with_warmup(mut self, steps: usize) -> Self {
        self.warmup_steps = steps;
        self
    }

    /// Whether the rate never changes (the trainer then leaves the
    /// program's rate as it is).
    pub fn is_constant(&self) -> bool {
        self.kind == ScheduleKind::Constant && self.warmup_steps == 0
    }

    /// Checks the parameters; the error names the bad one.
    pub fn check(&self) -> Result<(), String> {
        match self.kind {
            ScheduleKind::Constant => Ok(()),
            ScheduleKind::Step { step_size, gamma } => {
                if step_size == 0 {
                    Err("step schedule: step_size must be ≥ 1".into())
                } else if !(gamma.is_finite() && gamma > 0.0) {
                    Err(format!(
                        "step schedule: gamma = {gamma} must be finite and > 0"
                    ))
                } else {
                    Ok(())
                }
            }
            ScheduleKind::Cosine { min_lr } if !(min_lr.is_finite() && min_lr >= 0.0) => Err(
                format!("cosine schedule: min_lr = {min_lr} must be finite and ≥ 0"),
            ),
            ScheduleKind::Cosine { .. } => Ok(()),
        }
    }

    /// The rate at step `step` (0-based) of a `total`-step run whose base
    /// rate is `base` (the module docs give the formulas).
    pub fn lr(&self, base: f32, step: usize, total: usize) -> f32 {
        let base = base as f64;
        let w = self.warmup_steps;
        if step < w {
            return (base * (step + 1) as f64 / w as f64) as f32;
        }
        let t = (step - w) as f64;
        let rate = match self.kind {
            ScheduleKind::Constant => base,
            ScheduleKind::Step { step_size, gamma } => {
                let decays = (step - w) / step_size.max(1);
                base * (gamma as f64).powi(decays.min(i32::MAX as usize) as i32)
            }
            ScheduleKind::Cosine { min_lr } => {
                let min = min_lr as f64;
                let span = total.saturating_sub(w).max(1) as f64;
                min + (base - min) * 0.5 * (1.0 + (std::f64::consts::PI * t / span).cos())
            }
        };
        rate as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_rises_linearly_to_the_base_rate_then_cosine_falls_towards_min_lr() {
        let s = LrSchedule::new(ScheduleKind::Cosine { min_lr: 0.1 }).with_warmup(4);
        let lrs: Vec<f32> = (0..14).map(|i| s.lr(1.0, i, 14)).collect();
        // Warmup: 1/4, 2/4, 3/4, 4/4.
        assert_eq!(&lrs[..4], &[0.25, 0.5, 0.75, 1.0]);
        // Cosine over the 10 remaining steps: t = 0 is the base rate, t = 5
        // halfway between base and min.
        assert_eq!(lrs[4], 1.0);
        assert!((lrs[9] - 0.55).abs() < 1e-6, "{lrs:?}");
        assert!(lrs[4..].windows(2).all(|w| w[1] < w[0]), "{lrs:?}");
        assert!(lrs[13] > 0.1 && lrs[13] < 0.13, "{lrs:?}");
    }

    #[test]
    fn step_decays_by_gamma_every_step_size_steps_after_warmup() {
        let s = LrSchedule::new(ScheduleKind::Step {
            step_size: 3,
            gamma: 0.5,
        })
        .with_warmup(2);
        let lrs: Vec<f32> = (0..10).map(|i| s.lr(0.8, i, 10)).collect();
        assert_eq!(
            lrs,
            vec![0.4, 0.8, 0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2],
            "{lrs:?}"
        );
    }

    #[test]
    fn checks_reject_impossible_parameters() {
        let bad = [
            ScheduleKind::Step {
                step_size: 0,
                gamma: 0.5,
            },
            ScheduleKind::Step {
                step_size: 1,
                gamma: f32::NAN,
            },
            ScheduleKind::Cosine { min_lr: -1.0 },
        ];
        for kind in bad {
            assert!(LrSchedule::new(kind).check().is_err(), "{kind:?}");
        }
        assert!(LrSchedule::constant().is_constant());
        assert!(!LrSchedule::constant().with_warmup(1).is_constant());
    }
}
