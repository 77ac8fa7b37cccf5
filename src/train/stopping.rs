//! Watching a validation metric: which passes improve it (for the best
//! checkpoint) and when training should stop (early stopping). Pure
//! bookkeeping over a sequence of values, so a scripted curve tests it.
//!
//! As PyTorch Lightning's `EarlyStopping`: a pass *improves* when its
//! value beats the best so far by more than `min_delta` (`value < best −
//! min_delta` when lower is better, `value > best + min_delta` when
//! higher is); the first pass always improves. After `patience`
//! consecutive passes without improvement, training stops. A value that
//! is not a number never improves.

use serde::{Deserialize, Serialize};

/// Whether lower or higher values of a metric are better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Lower is better (losses and errors).
    Min,
    /// Higher is better (accuracy).
    Max,
}

impl Direction {
    /// The direction of a metric name (`loss`, `task.accuracy`, …):
    /// `Max` for accuracies, `Min` for everything else (losses, errors).
    pub fn of(metric: &str) -> Direction {
        let last = metric.rsplit('.').next().unwrap_or(metric);
        if last == "accuracy" {
            Direction::Max
        } else {
            Direction::Min
        }
    }
}

/// The validation metric a run watches.
#[derive(Clone, Debug, PartialEq)]
pub struct Monitor {
    /// `loss` (the sum of the task losses) or `<task>.<metric>`
    /// (`train::metrics::Metrics::get` names).
    pub metric: String,
    /// Whether lower or higher is better.
    pub direction: Direction,
    /// The least change that counts as an improvement (≥ 0).
    pub min_delta: f64,
}

impl Monitor {
    /// Watches `metric`, its direction inferred ([`Direction::of`]),
    /// `min_delta` 0.
    pub fn new(metric: &str) -> Monitor {
        Monitor {
            metric: metric.to_string(),
            direction: Direction::of(metric),
            min_delta: 0.0,
        }
    }

    /// The validation loss, lower is better: what `save_best` watches
    /// when no early stopping names a metric.
    pub fn loss() -> Monitor {
        Monitor::new("loss")
    }

    /// The same monitor with another direction.
    pub fn with_direction(mut self, direction: Direction) -> Monitor {
        self.direction = direction;
        self
    }

    /// The same monitor with another `min_delta`.
    pub fn with_min_delta(mut self, min_delta: f64) -> Monitor {
        self.min_delta = min_delta;
        self
    }

    /// Whether `value` improves on `best` (None: no pass yet).
    pub fn improves(&self, value: f64, best: Option<f64>) -> bool {
        if value.is_nan() {
            return false;
        }
        match (best, self.direction) {
            (None, _) => true,
            (Some(b), Direction::Min) => value < b - self.min_delta,
            (Some(b), Direction::Max) => value > b + self.min_delta,
        }
    }
}

/// Early stopping: a monitor and the passes without improvement it
/// tolerates.
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStopping {
    /// The watched metric.
    pub monitor: Monitor,
    /// Consecutive validation passes without improvement before stopping
    /// (≥ 1).
    pub patience: usize,
}

impl EarlyStopping {
    /// Stop after `patience` passes in which `metric` did not improve.
    pub fn new(metric: &str, patience: usize) -> EarlyStopping {
        EarlyStopping {
            monitor: Monitor::new(metric),
            patience,
        }
    }
}

/// The best pass so far.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// Its value.
    pub value: f64,
    /// The epoch (1-based) it ended.
    pub epoch: usize,
    /// Steps done at that pass.
    pub step: usize,
}

/// What one pass means.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    /// The value is the best so far.
    pub improved: bool,
    /// Consecutive passes without improvement, this one included.
    pub stale: usize,
    /// Patience has run out: stop training.
    pub stop: bool,
}

/// The state of watching one metric over a run: the best pass and the
/// passes since. Stored in checkpoints, so a resumed run keeps counting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Watch {
    /// The best pass so far (None before the first).
    pub best: Option<Best>,
    /// Consecutive passes without improvement since it.
    pub stale: usize,
}

impl Watch {
    /// Records one pass's `value` (at `epoch`, after `step` steps) under
    /// `monitor`; `patience` None never stops.
    pub fn observe(
        &mut self,
        monitor: &Monitor,
        patience: Option<usize>,
        value: f64,
        epoch: usize,
        step: usize,
    ) -> Verdict {
        let improved = monitor.improves(value, self.best.map(|b| b.value));
        if improved {
            self.best = Some(Best { value, epoch, step });
            self.stale = 0;
        } else {
            self.stale += 1;
        }
        Verdict {
            improved,
            stale: self.stale,
            stop: patience.is_some_and(|p| self.stale >= p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The epoch (1-based) a scripted curve stops at, if any.
    fn stop_epoch(monitor: &Monitor, patience: usize, curve: &[f64]) -> Option<usize> {
        let mut watch = Watch::default();
        curve.iter().enumerate().find_map(|(i, &v)| {
            watch
                .observe(monitor, Some(patience), v, i + 1, 10 * (i + 1))
                .stop
                .then_some(i + 1)
        })
    }

    #[test]
    fn stops_after_patience_passes_without_improvement() {
        let loss = Monitor::loss();
        // Best at epoch 3; epochs 4 and 5 do not beat it: stop at 5.
        let curve = [1.0, 0.8, 0.5, 0.6, 0.55, 0.4];
        assert_eq!(stop_epoch(&loss, 2, &curve), Some(5));
        assert_eq!(stop_epoch(&loss, 3, &curve), None);
        // An equal value is no improvement.
        assert_eq!(stop_epoch(&loss, 1, &[1.0, 1.0]), Some(2));
    }

    #[test]
    fn min_delta_and_direction_decide_what_improves() {
        // 0.95 is within min_delta 0.1 of 1.0: not an improvement.
        let loss = Monitor::loss().with_min_delta(0.1);
        assert_eq!(stop_epoch(&loss, 2, &[1.0, 0.95, 0.91, 0.5]), Some(3));
        // Accuracy: higher is better, inferred from the name.
        let acc = Monitor::new("digit.accuracy");
        assert_eq!(acc.direction, Direction::Max);
        assert_eq!(stop_epoch(&acc, 1, &[0.5, 0.7, 0.7]), Some(3));
        assert_eq!(stop_epoch(&acc, 1, &[0.5, 0.4]), Some(2));
        assert_eq!(Direction::of("depth.mse"), Direction::Min);
        // NaN never improves, and is not the best.
        let mut w = Watch::default();
        assert!(w.observe(&loss, None, 2.0, 1, 1).improved);
        assert!(!w.observe(&loss, None, f64::NAN, 2, 2).improved);
        assert_eq!(w.best.unwrap().epoch, 1);
        assert_eq!(w.stale, 1);
    }
}
