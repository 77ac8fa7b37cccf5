//! Per-task metrics of a model over a dataset split, in batches of the
//! model's rows (the last one padded with masked-out rows; only labelled
//! samples count):
//!
//! - every task: `loss`, the task's training loss over the split (each
//!   batch's loss weighted by its labelled rows, so the mean over the
//!   split's labelled samples whatever the batching);
//! - classification: `accuracy` (arg-max of the logits), and the accuracy
//!   of each class among the samples labelled with it;
//! - binary: `accuracy` over every label (logit > 0 ⇔ label 1);
//! - regression: `mse`, `rmse`, `mae` (over every output), and, when the
//!   task has a [`TargetScale`] (its targets were standardised), the same
//!   three in the original units: `orig_mse`, `orig_rmse`, `orig_mae`.
//!
//! A metric over zero samples is `None`, not 0: an empty split, or a task
//! none of whose samples in it is labelled. [`TaskMetrics::labelled`] and
//! [`Metrics::rows`] say which.
//!
//! A mixture of experts also reports its gates over the split
//! ([`GateReport`]): each task's mean gate per expert (expert collapse
//! shows as one expert taking all the mass), active experts and entropy.

use crate::arch::{expert_names, GateSums};
use crate::data::batch::{Batcher, LastBatch};
use crate::data::dataset::{Dataset, Order};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::train::batches::write_batch;
use crate::train::learner::Learner;
use crate::types::{TaskKind, TaskSpec};

/// A regression task's target standardisation, `z = (y − mean) / std`:
/// its errors in original units are `std` times the standardised ones.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TargetScale {
    /// The mean subtracted from the targets.
    pub mean: f64,
    /// The standard deviation they were divided by.
    pub std: f64,
}

/// The metrics of one task over a split.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskMetrics {
    /// The task's name.
    pub task: String,
    /// The samples that counted (labelled ones).
    pub labelled: usize,
    /// (metric, value) in a fixed order per kind; None over zero samples.
    pub values: Vec<(String, Option<f64>)>,
    /// Classification: the accuracy among the samples of each class
    /// (None for a class with no sample); empty for other kinds.
    pub per_class_accuracy: Vec<Option<f64>>,
}

impl TaskMetrics {
    /// Every metric as `name value` (4 decimals, `-` over zero samples),
    /// two spaces apart: the one-line form the examples print.
    pub fn line(&self) -> String {
        let cells: Vec<String> = self
            .values
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k} {v:.4}"),
                None => format!("{k} -"),
            })
            .collect();
        cells.join("  ")
    }

    /// The value of `metric`, if the task has it and it had samples.
    pub fn value(&self, metric: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(name, _)| name == metric)
            .and_then(|(_, v)| *v)
    }
}

/// Per-task metrics over one split.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    /// The split's name ("validation", "test", …).
    pub split: String,
    /// Samples in the split.
    pub rows: usize,
    /// One entry per model task, in the model's order.
    pub tasks: Vec<TaskMetrics>,
    /// A mixture of experts' task gates over the split (PLE: the last
    /// level's); None for other models and an empty split.
    pub gates: Option<GateReport>,
}

/// A mixture's task gates averaged over a split's samples.
#[derive(Clone, Debug, PartialEq)]
pub struct GateReport {
    /// The experts' names (`arch::expert_names`), the order of `mass`.
    pub experts: Vec<String>,
    /// One entry per model task, in the model's order.
    pub tasks: Vec<TaskGateReport>,
}

/// One task's gate over a split.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskGateReport {
    /// The task's name.
    pub task: String,
    /// Its mean gate per expert (0 for experts outside its gate); sums to 1.
    pub mass: Vec<f32>,
    /// Its mean count of experts whose gate is > 0 (DSelect-k's sparsity;
    /// a softmax gate keeps every expert).
    pub active: f64,
    /// Its mean gate entropy −Σ g ln g in nats (0: one expert; ln E:
    /// uniform over E).
    pub entropy: f64,
}

impl GateReport {
    /// The report of `sums` for `tasks`; None over zero rows.
    pub fn from_sums(sums: &GateSums, experts: Vec<String>, tasks: &[TaskSpec]) -> Option<Self> {
        if sums.rows() == 0 {
            return None;
        }
        let (mass, active, entropy) = (sums.mass(), sums.active(), sums.entropy());
        let tasks = tasks
            .iter()
            .enumerate()
            .map(|(t, spec)| TaskGateReport {
                task: spec.name.clone(),
                mass: mass.get(t).cloned().unwrap_or_default(),
                active: active.get(t).copied().unwrap_or(0.0),
                entropy: entropy.get(t).copied().unwrap_or(0.0),
            })
            .collect();
        Some(GateReport { experts, tasks })
    }
}

impl Metrics {
    /// The task named `name`.
    pub fn task(&self, name: &str) -> Option<&TaskMetrics> {
        self.tasks.iter().find(|t| t.task == name)
    }

    /// The sum of the task losses (each task weighted 1), over the tasks
    /// with labelled samples; None when no task has any.
    pub fn loss(&self) -> Option<f64> {
        let losses: Vec<f64> = self.tasks.iter().filter_map(|t| t.value("loss")).collect();
        (!losses.is_empty()).then(|| losses.iter().sum())
    }

    /// A metric by name: `loss` ([`Metrics::loss`]) or `<task>.<metric>`.
    pub fn get(&self, name: &str) -> Option<f64> {
        if name == "loss" {
            return self.loss();
        }
        let (task, metric) = name.split_once('.')?;
        self.task(task)?.value(metric)
    }

    /// Why a task's metrics are empty (None when it had samples): for
    /// printing next to a `-`.
    pub fn why_empty(&self, task: &TaskMetrics) -> Option<String> {
        if task.labelled > 0 {
            None
        } else if self.rows == 0 {
            Some(format!("the {} split is empty", self.split))
        } else {
            Some(format!(
                "none of the {} samples of the {} split is labelled for task '{}'",
                self.rows, self.split, task.task
            ))
        }
    }
}

/// The metric names a task of `kind` reports (`scaled`: it has a
/// [`TargetScale`]), in order.
pub fn metric_names(kind: TaskKind, scaled: bool) -> Vec<&'static str> {
    match kind {
        TaskKind::Classification { .. } | TaskKind::Binary { .. } => vec!["loss", "accuracy"],
        TaskKind::Regression { .. } if scaled => vec![
            "loss",
            "mse",
            "rmse",
            "mae",
            "orig_mse",
            "orig_rmse",
            "orig_mae",
        ],
        TaskKind::Regression { .. } => vec!["loss", "mse", "rmse", "mae"],
    }
}

/// Whether lower values of a metric are better (Δm%'s l_t): losses and
/// regression errors; false for accuracy.
pub fn lower_is_better(metric: &str) -> bool {
    metric != "accuracy"
}

/// The target scales of `data`'s tasks (`Dataset::target_scale`: from
/// the file's metadata, `[data.target_scale]` or `standardize_targets`),
/// in the model's task order: evaluations report regression errors in
/// original units for the tasks that have one.
pub fn target_scales(data: &Dataset, tasks: &[TaskSpec]) -> Vec<Option<TargetScale>> {
    tasks
        .iter()
        .map(|t| {
            data.target_scale(&t.name).map(|s| TargetScale {
                mean: f64::from(s.mean),
                std: f64::from(s.std),
            })
        })
        .collect()
}

/// Running sums of one task over a split.
#[derive(Clone, Debug, Default)]
struct Sums {
    labelled: usize,
    /// Σ over batches of loss × labelled rows.
    loss: f64,
    /// classification, binary: correct (binary: per label / labels);
    /// regression: Σ squared error / outputs.
    first: f64,
    /// regression: Σ absolute error / outputs.
    second: f64,
    /// classification: (correct, samples) per class.
    classes: Vec<(usize, usize)>,
}

/// Per-task metrics of `learner` over every sample of `data` (named
/// `split` in the result), with `scales` (one per model task, as
/// [`target_scales`] gives them) for original-unit regression errors.
pub fn evaluate(
    ctx: &GpuContext,
    learner: &Learner,
    data: &Dataset,
    split: &str,
    scales: &[Option<TargetScale>],
) -> Result<Metrics> {
    let (spec, nodes) = (&learner.spec, &learner.nodes);
    let batcher = Batcher::for_model(data, spec)?;
    let width: usize = nodes.columns.iter().map(|c| c.1).sum();
    let mut sums: Vec<Sums> = spec
        .tasks
        .iter()
        .map(|t| Sums {
            classes: match t.kind {
                TaskKind::Classification { classes } => vec![(0, 0); classes],
                _ => Vec::new(),
            },
            ..Sums::default()
        })
        .collect();
    let gate_nodes: Vec<_> = nodes.gates.iter().map(|g| g.node).collect();
    let mut gate_sums = nodes.gates.map(|g| GateSums::new(g.mix));
    for batch in batcher.epoch(Order::Sequential, 0, LastBatch::Pad)? {
        write_batch(ctx, &learner.program, nodes, &batch)?;
        let (logits, report, values) = learner.program.predict_reading(ctx, &gate_nodes)?;
        if let (Some(sums), Some(g)) = (&mut gate_sums, values.first()) {
            sums.add(g, batch.real_rows);
        }
        let mut class_row = 0;
        for (t, task) in spec.tasks.iter().enumerate() {
            let s = &mut sums[t];
            let labelled_rows = report.labelled.get(t).copied().unwrap_or(0) as f64;
            if labelled_rows > 0.0 {
                s.loss += report.losses[t] as f64 * labelled_rows;
            }
            let (col, w) = nodes.columns[t];
            for r in 0..batch.real_rows {
                let labelled = batch
                    .masks
                    .as_ref()
                    .is_none_or(|m| m[t * batch.rows + r] > 0.5);
                if !labelled {
                    continue;
                }
                s.labelled += 1;
                let out = &logits[r * width + col..r * width + col + w];
                match task.kind {
                    TaskKind::Classification { .. } => {
                        let labels = batch.labels.as_deref().unwrap_or(&[]);
                        let label = labels[class_row * batch.rows + r] as usize;
                        let best = (0..w)
                            .max_by(|&a, &b| out[a].total_cmp(&out[b]))
                            .unwrap_or(0);
                        let hit = (best == label) as usize;
                        s.first += hit as f64;
                        if let Some(c) = s.classes.get_mut(label) {
                            c.0 += hit;
                            c.1 += 1;
                        }
                    }
                    TaskKind::Binary { .. } => {
                        let y = &batch.targets.as_deref().unwrap_or(&[])
                            [r * width + col..r * width + col + w];
                        for (o, v) in out.iter().zip(y) {
                            s.first += ((*o > 0.0) == (*v > 0.5)) as u8 as f64 / w as f64;
                        }
                    }
                    TaskKind::Regression { .. } => {
                        let y = &batch.targets.as_deref().unwrap_or(&[])
                            [r * width + col..r * width + col + w];
                        for (o, v) in out.iter().zip(y) {
                            let e = (o - v) as f64;
                            s.first += e * e / w as f64;
                            s.second += e.abs() / w as f64;
                        }
                    }
                }
            }
            if let TaskKind::Classification { .. } = task.kind {
                class_row += 1;
            }
        }
    }
    let tasks = spec
        .tasks
        .iter()
        .zip(sums)
        .enumerate()
        .map(|(t, (task, s))| {
            let scale = scales.get(t).copied().flatten();
            task_metrics(&task.name, task.kind, &s, scale)
        })
        .collect();
    let gates = gate_sums.as_ref().and_then(|sums| {
        let names = expert_names(&nodes.gates?.mix, &spec.tasks);
        GateReport::from_sums(sums, names, &spec.tasks)
    });
    Ok(Metrics {
        split: split.to_string(),
        rows: data.rows(),
        tasks,
        gates,
    })
}

/// One task's metrics from its sums.
fn task_metrics(name: &str, kind: TaskKind, s: &Sums, scale: Option<TargetScale>) -> TaskMetrics {
    let n = s.labelled as f64;
    // Every mean is over the labelled samples: none, no value.
    let mean = |sum: f64| (s.labelled > 0).then(|| sum / n);
    let mut values = vec![("loss".to_string(), mean(s.loss))];
    match kind {
        TaskKind::Classification { .. } | TaskKind::Binary { .. } => {
            values.push(("accuracy".into(), mean(s.first)));
        }
        TaskKind::Regression { .. } => {
            let (mse, mae) = (mean(s.first), mean(s.second));
            values.push(("mse".into(), mse));
            values.push(("rmse".into(), mse.map(f64::sqrt)));
            values.push(("mae".into(), mae));
            if let Some(TargetScale { std, .. }) = scale {
                // The mean cancels in every error; the std scales it.
                values.push(("orig_mse".into(), mse.map(|m| m * std * std)));
                values.push(("orig_rmse".into(), mse.map(|m| m.sqrt() * std.abs())));
                values.push(("orig_mae".into(), mae.map(|m| m * std.abs())));
            }
        }
    }
    let per_class_accuracy = s
        .classes
        .iter()
        .map(|&(hit, count)| (count > 0).then(|| hit as f64 / count as f64))
        .collect();
    TaskMetrics {
        task: name.to_string(),
        labelled: s.labelled,
        values,
        per_class_accuracy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_samples_give_no_values_and_say_why() {
        let s = Sums {
            classes: vec![(0, 0); 3],
            ..Sums::default()
        };
        let t = task_metrics("digit", TaskKind::Classification { classes: 3 }, &s, None);
        assert!(t.values.iter().all(|(_, v)| v.is_none()), "{t:?}");
        assert_eq!(t.per_class_accuracy, vec![None; 3]);
        let empty = Metrics {
            split: "test".into(),
            rows: 0,
            tasks: vec![t.clone()],
            gates: None,
        };
        assert_eq!(empty.why_empty(&t).unwrap(), "the test split is empty");
        assert_eq!(empty.loss(), None);
        let unlabelled = Metrics { rows: 5, ..empty };
        assert!(unlabelled.why_empty(&t).unwrap().contains("none of the 5"));
    }

    #[test]
    fn regression_metrics_in_original_units_scale_by_the_std() {
        let s = Sums {
            labelled: 2,
            loss: 3.0,
            first: 8.0,
            second: 4.0,
            classes: Vec::new(),
        };
        let scale = TargetScale {
            mean: 5.0,
            std: 10.0,
        };
        let kind = TaskKind::Regression { outputs: 1 };
        let t = task_metrics("depth", kind, &s, Some(scale));
        let names: Vec<&str> = t.values.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, metric_names(kind, true));
        assert_eq!(t.value("loss"), Some(1.5));
        assert_eq!(t.value("mse"), Some(4.0));
        assert_eq!(t.value("rmse"), Some(2.0));
        assert_eq!(t.value("mae"), Some(2.0));
        assert_eq!(t.value("orig_mse"), Some(400.0));
        assert_eq!(t.value("orig_rmse"), Some(20.0));
        assert_eq!(t.value("orig_mae"), Some(20.0));
        let m = Metrics {
            split: "test".into(),
            rows: 2,
            tasks: vec![t],
            gates: None,
        };
        assert_eq!(m.get("depth.orig_mae"), Some(20.0));
        assert_eq!(m.get("loss"), Some(1.5));
        assert_eq!(m.get("depth.accuracy"), None);
        assert_eq!(m.get("nope.mse"), None);
    }
}
