//! `[train]`: length, batch, seed, optimiser, task weighting, and the
//! training layer's options (`train::TrainOptions`): the short last batch,
//! the learning-rate schedule (`[train.schedule]`), early stopping
//! (`[train.early_stopping]`) and the best and periodic checkpoints.
//!
//! ```toml
//! [train]
//! epochs = 30
//! optimizer = "sgd"        # plain SGD unless momentum is given
//! momentum = 0.9
//! drop_last = false        # keep the short last batch (the default)
//! save_best = "best.safetensors"
//! save_every = 5           # epochs between periodic checkpoints, to:
//! save_every_path = "ckpt/epoch-{epoch}.safetensors"
//!
//! [train.schedule]
//! kind = "cosine"          # constant | step | cosine
//! warmup_steps = 100
//! min_lr = 1e-5
//!
//! [train.early_stopping]
//! metric = "loss"          # loss | <task>.<metric>
//! patience = 5
//! ```
//!
//! Output paths (`save_best`, `save_every_path`) are taken as given:
//! relative to the working folder, like `--save`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::WeightingConfig;
use super::{invalid, misplaced, quoted};
use crate::data::dataset::Order;
use crate::types::{AdamW, Sgd};
use crate::types::{Optimizer, ReversalSchedule};

/// `[train]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Optimiser steps (default 400 unless `epochs` is given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Epochs over the training split, instead of `steps`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Rows per batch.
    pub batch: usize,
    /// Seed of data generation, splits, shuffling and initialisation.
    pub seed: u64,
    /// sgd | adamw.
    pub optimizer: String,
    /// Learning rate (default 1e-3 for adamw, 1e-2 for sgd).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f32>,
    /// sgd: momentum μ (default 0: plain SGD, PyTorch's default; before
    /// the training layer it silently defaulted to 0.9).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f32>,
    /// Weight decay (default 0.01 for adamw, decoupled; 0 for sgd,
    /// added to the gradient).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f32>,
    /// adamw: β1 (default 0.9).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta1: Option<f32>,
    /// adamw: β2 (default 0.999).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta2: Option<f32>,
    /// adamw: ε (default 1e-8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eps: Option<f32>,
    /// The task weighting: a name (`"gradnorm"`, `"static:1,0.5"`) or a
    /// table with `method` and hyper-parameters.
    pub weighting: WeightingConfig,
    /// Visit the training samples in a fresh seeded order every epoch.
    pub shuffle: bool,
    /// Steps between progress lines and log records.
    pub every: usize,
    /// λ of the gradient reversal of adversarial tasks: "ganin" (the
    /// default: 2/(1+e^(−10p)) − 1 over training progress p) or a number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reversal: Option<ReversalConfig>,
    /// Drop the short last batch of every epoch (default false: keep it,
    /// padded with masked-out rows, its loss a mean over its own rows, as
    /// PyTorch's `DataLoader(drop_last=False)`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub drop_last: bool,
    /// `[train.schedule]`: the learning-rate schedule (default constant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleConfig>,
    /// `[train.early_stopping]`: stop when a validation metric stops
    /// improving.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStoppingConfig>,
    /// Keep the best checkpoint here: written whenever the watched
    /// validation metric (early stopping's, else the validation loss)
    /// improves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save_best: Option<PathBuf>,
    /// Epochs between periodic checkpoints (to `save_every_path`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save_every: Option<usize>,
    /// The periodic checkpoints' path: `{epoch}` and `{step}` are
    /// replaced (without them each checkpoint replaces the last).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save_every_path: Option<PathBuf>,
}

/// `[train.schedule]`: the learning rate over the run (formulas in
/// `train::schedule`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// constant | step | cosine.
    #[serde(default = "constant_kind")]
    pub kind: String,
    /// Steps of linear warmup before it (default 0): lr·(s+1)/W at step s.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warmup_steps: usize,
    /// step: steps between decays (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_size: Option<usize>,
    /// step: the decay factor (default 0.1, PyTorch's `StepLR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f32>,
    /// cosine: the rate at the end of the run (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lr: Option<f32>,
}

fn constant_kind() -> String {
    "constant".into()
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

impl ScheduleConfig {
    /// A schedule of `kind` with every other key unset.
    pub fn named(kind: &str) -> ScheduleConfig {
        ScheduleConfig {
            kind: kind.to_string(),
            warmup_steps: 0,
            step_size: None,
            gamma: None,
            min_lr: None,
        }
    }
}

/// `[train.early_stopping]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingConfig {
    /// The validation metric watched: `loss` (the sum of the task losses,
    /// the default) or `<task>.<metric>` (loss, accuracy, mse, rmse, mae,
    /// orig_mse, orig_rmse, orig_mae, as the task reports them).
    #[serde(default = "loss_metric")]
    pub metric: String,
    /// min | max; default: max for accuracy, min otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Validation passes without improvement before training stops
    /// (required, ≥ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// The least change that counts as an improvement (default 0).
    #[serde(default)]
    pub min_delta: f64,
}

fn loss_metric() -> String {
    "loss".into()
}

impl EarlyStoppingConfig {
    /// Stop after `patience` passes without improvement of `metric`.
    pub fn new(metric: &str, patience: usize) -> EarlyStoppingConfig {
        EarlyStoppingConfig {
            metric: metric.to_string(),
            mode: None,
            patience: Some(patience),
            min_delta: 0.0,
        }
    }
}

/// The metrics a task can report (`train::metrics`).
const TASK_METRICS: &[&str] = &[
    "loss",
    "accuracy",
    "mse",
    "rmse",
    "mae",
    "orig_mse",
    "orig_rmse",
    "orig_mae",
];

/// `train.reversal`: a schedule's name or a constant λ.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReversalConfig {
    /// A schedule: "ganin".
    Named(String),
    /// The same λ every step.
    Constant(f32),
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: None,
            epochs: None,
            batch: 64,
            seed: 0,
            optimizer: "adamw".into(),
            lr: None,
            momentum: None,
            weight_decay: None,
            beta1: None,
            beta2: None,
            eps: None,
            weighting: WeightingConfig::named("equal"),
            shuffle: true,
            every: 50,
            reversal: None,
            drop_last: false,
            schedule: None,
            early_stopping: None,
            save_best: None,
            save_every: None,
            save_every_path: None,
        }
    }
}

impl TrainConfig {
    /// Checks every `[train]` value (and that the optimiser keys belong
    /// to the optimiser).
    pub fn check(&self) -> Result<(), String> {
        if self.batch == 0 {
            return Err(invalid("train.batch", 0, "must be ≥ 1"));
        }
        if self.every == 0 {
            return Err(invalid("train.every", 0, "must be ≥ 1"));
        }
        if self.steps.is_some() && self.epochs.is_some() {
            return Err(misplaced("train.epochs", "give steps or epochs, not both"));
        }
        if self.epochs == Some(0) {
            return Err(invalid("train.epochs", 0, "must be ≥ 1"));
        }
        self.optimizer()?;
        self.weighting.weighting()?;
        self.reversal()?;
        self.check_schedule()?;
        self.check_early_stopping()?;
        self.check_checkpoints()
    }

    /// `[train.schedule]`: a known kind, each key for its kind, values in
    /// their domains.
    fn check_schedule(&self) -> Result<(), String> {
        let Some(s) = &self.schedule else {
            return Ok(());
        };
        let key = "train.schedule";
        let owners = [
            ("step_size", s.step_size.is_some(), "step"),
            ("gamma", s.gamma.is_some(), "step"),
            ("min_lr", s.min_lr.is_some(), "cosine"),
        ];
        match s.kind.as_str() {
            "constant" | "step" | "cosine" => {}
            other => {
                return Err(invalid(
                    format!("{key}.kind"),
                    quoted(other),
                    "expected constant, step or cosine",
                ))
            }
        }
        for (field, set, kind) in owners {
            if set && s.kind != kind {
                return Err(misplaced(
                    format!("{key}.{field}"),
                    format!("only for kind = \"{kind}\" (this is {})", quoted(&s.kind)),
                ));
            }
        }
        match s.step_size {
            Some(0) => return Err(invalid(format!("{key}.step_size"), 0, "must be ≥ 1")),
            None if s.kind == "step" => {
                return Err(misplaced(
                    format!("{key}.step_size"),
                    "missing: the step schedule decays every step_size steps",
                ))
            }
            _ => {}
        }
        if let Some(g) = s.gamma.filter(|g| !(g.is_finite() && *g > 0.0)) {
            return Err(invalid(format!("{key}.gamma"), g, "must be finite and > 0"));
        }
        if let Some(m) = s.min_lr.filter(|m| !(m.is_finite() && *m >= 0.0)) {
            return Err(invalid(
                format!("{key}.min_lr"),
                m,
                "must be finite and ≥ 0",
            ));
        }
        Ok(())
    }

    /// `[train.early_stopping]`: a metric name of the right form, a mode,
    /// a patience and min_delta in their domains.
    fn check_early_stopping(&self) -> Result<(), String> {
        let Some(e) = &self.early_stopping else {
            return Ok(());
        };
        let key = "train.early_stopping";
        let form_ok = e.metric == "loss"
            || e.metric
                .split_once('.')
                .is_some_and(|(task, metric)| !task.is_empty() && TASK_METRICS.contains(&metric));
        if !form_ok {
            return Err(invalid(
                format!("{key}.metric"),
                quoted(&e.metric),
                format!(
                    "expected \"loss\" or \"<task>.<metric>\" with metric one of {}",
                    TASK_METRICS.join(", ")
                ),
            ));
        }
        if let Some(m) = e.mode.as_deref().filter(|m| !matches!(*m, "min" | "max")) {
            return Err(invalid(
                format!("{key}.mode"),
                quoted(m),
                "expected min or max",
            ));
        }
        match e.patience {
            None => {
                return Err(misplaced(
                    format!("{key}.patience"),
                    "missing: validation passes without improvement before stopping",
                ))
            }
            Some(0) => return Err(invalid(format!("{key}.patience"), 0, "must be ≥ 1")),
            Some(_) => {}
        }
        if !(e.min_delta.is_finite() && e.min_delta >= 0.0) {
            return Err(invalid(
                format!("{key}.min_delta"),
                e.min_delta,
                "must be finite and ≥ 0",
            ));
        }
        Ok(())
    }

    /// `save_every` with its path, ≥ 1.
    fn check_checkpoints(&self) -> Result<(), String> {
        match (self.save_every, &self.save_every_path) {
            (Some(0), _) => Err(invalid("train.save_every", 0, "must be ≥ 1 (epochs)")),
            (Some(_), None) => Err(misplaced(
                "train.save_every_path",
                "missing: where save_every writes (e.g. \"ckpt/epoch-{epoch}.safetensors\")",
            )),
            (None, Some(_)) => Err(misplaced(
                "train.save_every_path",
                "only with train.save_every (epochs between checkpoints)",
            )),
            _ => Ok(()),
        }
    }

    /// The gradient-reversal schedule (default Ganin's).
    pub fn reversal(&self) -> Result<ReversalSchedule, String> {
        match &self.reversal {
            None => Ok(ReversalSchedule::Ganin),
            Some(ReversalConfig::Named(n)) if n == "ganin" => Ok(ReversalSchedule::Ganin),
            Some(ReversalConfig::Named(n)) => Err(invalid(
                "train.reversal",
                quoted(n),
                "expected \"ganin\" or a number λ ≥ 0",
            )),
            Some(ReversalConfig::Constant(l)) if l.is_finite() && *l >= 0.0 => {
                Ok(ReversalSchedule::Constant(*l))
            }
            Some(ReversalConfig::Constant(l)) => {
                Err(invalid("train.reversal", l, "must be finite and ≥ 0"))
            }
        }
    }

    /// The optimiser, with defaults for the keys not given.
    pub fn optimizer(&self) -> Result<Optimizer, String> {
        let only = |field: &str, set: bool, name: &str| -> Result<(), String> {
            if set {
                return Err(misplaced(
                    format!("train.{field}"),
                    format!(
                        "only for optimizer = \"{name}\" (this is {})",
                        quoted(&self.optimizer)
                    ),
                ));
            }
            Ok(())
        };
        let positive = |field: &str, v: f32| -> Result<f32, String> {
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(invalid(
                    format!("train.{field}"),
                    v,
                    "must be finite and > 0",
                ))
            }
        };
        let unit = |field: &str, v: f32| -> Result<f32, String> {
            if (0.0..1.0).contains(&v) {
                Ok(v)
            } else {
                Err(invalid(format!("train.{field}"), v, "must be in [0, 1)"))
            }
        };
        let decay = |v: f32| -> Result<f32, String> {
            if v.is_finite() && v >= 0.0 {
                Ok(v)
            } else {
                Err(invalid("train.weight_decay", v, "must be finite and ≥ 0"))
            }
        };
        match self.optimizer.as_str() {
            "adamw" => {
                only("momentum", self.momentum.is_some(), "sgd")?;
                let d = AdamW::default();
                Ok(Optimizer::AdamW(AdamW {
                    lr: positive("lr", self.lr.unwrap_or(d.lr))?,
                    beta1: unit("beta1", self.beta1.unwrap_or(d.beta1))?,
                    beta2: unit("beta2", self.beta2.unwrap_or(d.beta2))?,
                    eps: positive("eps", self.eps.unwrap_or(d.eps))?,
                    weight_decay: decay(self.weight_decay.unwrap_or(d.weight_decay))?,
                }))
            }
            "sgd" => {
                only("beta1", self.beta1.is_some(), "adamw")?;
                only("beta2", self.beta2.is_some(), "adamw")?;
                only("eps", self.eps.is_some(), "adamw")?;
                Ok(Optimizer::Sgd(Sgd {
                    lr: positive("lr", self.lr.unwrap_or(1e-2))?,
                    momentum: unit("momentum", self.momentum.unwrap_or(0.0))?,
                    weight_decay: decay(self.weight_decay.unwrap_or(0.0))?,
                }))
            }
            other => Err(invalid(
                "train.optimizer",
                quoted(other),
                "expected sgd or adamw",
            )),
        }
    }

    /// Steps to train: `steps`, else `epochs` × batches per epoch, else 400.
    pub fn total_steps(&self, per_epoch: usize) -> usize {
        match (self.steps, self.epochs) {
            (Some(s), _) => s,
            (None, Some(e)) => e * per_epoch,
            (None, None) => 400,
        }
    }

    /// The sample order of each epoch.
    pub fn order(&self) -> Order {
        if self.shuffle {
            Order::Shuffled { seed: self.seed }
        } else {
            Order::Sequential
        }
    }
}
