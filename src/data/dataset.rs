//! The in-memory dataset every reader produces: N samples of D f32
//! features and, per task, one set of targets (class ids, real values or
//! 0/1 labels) with an optional mask of missing labels. Construction
//! validates everything once, so splitting and batching cannot fail on
//! the values.

use crate::data::synthetic::Synthetic;
use crate::error::{Error, Result};
use crate::types::{TaskKind, TaskSpec};
use crate::util::rng::Rng;

/// A task as the data sees it: its name and kind (the part of a
/// [`TaskSpec`] that readers and batches need).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSchema {
    /// The task's name (matches `TaskSpec::name`).
    pub name: String,
    /// What it predicts.
    pub kind: TaskKind,
}

impl TaskSchema {
    /// A schema of this name and kind.
    pub fn new(name: &str, kind: TaskKind) -> Self {
        TaskSchema {
            name: name.to_string(),
            kind,
        }
    }
}

impl From<&TaskSpec> for TaskSchema {
    fn from(spec: &TaskSpec) -> Self {
        TaskSchema::new(&spec.name, spec.kind)
    }
}

/// One task's targets for all N samples.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// One class id in [0, classes) per sample: ids \[N\].
    Classes {
        /// Number of classes.
        classes: usize,
        /// Class id of each sample \[N\].
        ids: Vec<u32>,
    },
    /// `outputs` real values per sample: values [N, outputs].
    Real {
        /// Values per sample.
        outputs: usize,
        /// [N, outputs], row-major.
        values: Vec<f32>,
    },
    /// `labels` independent 0/1 labels per sample: values [N, labels].
    Binary {
        /// Labels per sample.
        labels: usize,
        /// [N, labels], each 0 or 1.
        values: Vec<f32>,
    },
}

impl Targets {
    /// The task kind these targets train (and so the logit width).
    pub fn kind(&self) -> TaskKind {
        match *self {
            Targets::Classes { classes, .. } => TaskKind::Classification { classes },
            Targets::Real { outputs, .. } => TaskKind::Regression { outputs },
            Targets::Binary { labels, .. } => TaskKind::Binary { labels },
        }
    }

    /// Values per sample in storage (1 for class ids).
    fn stride(&self) -> usize {
        match self {
            Targets::Classes { .. } => 1,
            Targets::Real { outputs, .. } => *outputs,
            Targets::Binary { labels, .. } => *labels,
        }
    }

    fn len(&self) -> usize {
        match self {
            Targets::Classes { ids, .. } => ids.len(),
            Targets::Real { values, .. } | Targets::Binary { values, .. } => values.len(),
        }
    }

    /// The same targets for the samples `rows`, in that order.
    fn select(&self, rows: &[usize]) -> Targets {
        let gather = |values: &[f32], k: usize| -> Vec<f32> {
            rows.iter()
                .flat_map(|&r| values[r * k..(r + 1) * k].iter().copied())
                .collect()
        };
        match self {
            Targets::Classes { classes, ids } => Targets::Classes {
                classes: *classes,
                ids: rows.iter().map(|&r| ids[r]).collect(),
            },
            Targets::Real { outputs, values } => Targets::Real {
                outputs: *outputs,
                values: gather(values, *outputs),
            },
            Targets::Binary { labels, values } => Targets::Binary {
                labels: *labels,
                values: gather(values, *labels),
            },
        }
    }
}

/// One task of a dataset: its name, targets and which samples have them.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskData {
    /// The task's name (unique in its dataset).
    pub name: String,
    /// Its targets for every sample.
    pub targets: Targets,
    /// \[N\], true = labelled; `None` when every sample is labelled. The
    /// targets of an unlabelled sample are ignored (readers store 0).
    pub mask: Option<Vec<bool>>,
}

impl TaskData {
    /// A task of these targets and mask (not checked against a dataset
    /// until `Dataset::new`).
    pub fn new(name: &str, targets: Targets, mask: Option<Vec<bool>>) -> Self {
        TaskData {
            name: name.to_string(),
            targets,
            mask,
        }
    }

    /// Its name and kind.
    pub fn schema(&self) -> TaskSchema {
        TaskSchema::new(&self.name, self.targets.kind())
    }

    /// Whether sample `row` has a label for this task.
    pub fn is_labelled(&self, row: usize) -> bool {
        self.mask.as_ref().is_none_or(|m| m[row])
    }
}

/// How a regression task's stored targets relate to its original units:
/// stored = (original − mean) / std. One pair per task (over all its
/// outputs), so an error measured on stored targets converts exactly:
/// MAE and RMSE in original units are `std` times those in stored units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TargetScale {
    /// The original targets' mean (subtracted).
    pub mean: f32,
    /// The original targets' standard deviation (divided by), > 0.
    pub std: f32,
}

impl TargetScale {
    /// A stored target back in original units.
    pub fn to_original(&self, stored: f32) -> f32 {
        stored * self.std + self.mean
    }

    /// An original target in stored units.
    pub fn to_stored(&self, original: f32) -> f32 {
        (original - self.mean) / self.std
    }

    /// An error (MAE, RMSE, a difference) in stored units as one in
    /// original units.
    pub fn error_to_original(&self, error: f32) -> f32 {
        error * self.std
    }

    /// Checks mean finite and std finite and > 0.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !self.mean.is_finite() || !self.std.is_finite() || self.std <= 0.0 {
            return Err(format!(
                "target scale mean {} and std {}: the mean must be finite and the std finite \
                 and > 0",
                self.mean, self.std
            ));
        }
        Ok(())
    }
}

/// N samples: features x [N, D] (f32) and the tasks' targets. Fields are
/// private so the checks made by [`Dataset::new`] always hold.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    source: String,
    rows: usize,
    features: usize,
    x: Vec<f32>,
    tasks: Vec<TaskData>,
    /// Per task (in `tasks` order): its target scale, when known.
    scales: Vec<Option<TargetScale>>,
}

/// Fractions of a dataset held out for validation and test; training gets
/// the rest.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitFractions {
    /// Fraction of the samples for validation, in [0, 1] (with `test`,
    /// ≤ 1 in all).
    pub validation: f64,
    /// Fraction of the samples for test, in [0, 1].
    pub test: f64,
}

/// Sample indices of the three parts of a split, each ascending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitIndices {
    /// Training samples.
    pub train: Vec<usize>,
    /// Validation samples.
    pub validation: Vec<usize>,
    /// Test samples.
    pub test: Vec<usize>,
}

/// A dataset split three ways.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// The training part.
    pub train: Dataset,
    /// The validation part.
    pub validation: Dataset,
    /// The test part.
    pub test: Dataset,
}

impl Dataset {
    /// Checks shapes (x is rows × features, every task has `rows` samples,
    /// masks have `rows` entries), names (non-empty, unique), class ids
    /// (< classes), binary labels (0 or 1) and finiteness of x and real
    /// targets. `source` names the data in errors (a path, or e.g.
    /// "synthetic").
    pub fn new(
        source: &str,
        rows: usize,
        features: usize,
        x: Vec<f32>,
        tasks: Vec<TaskData>,
    ) -> Result<Self> {
        let scales = vec![None; tasks.len()];
        let data = Dataset {
            source: source.to_string(),
            rows,
            features,
            x,
            tasks,
            scales,
        };
        data.check().map_err(|detail| data.error(detail))?;
        Ok(data)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.features == 0 {
            return Err("a dataset needs ≥ 1 feature".into());
        }
        if self.x.len() != self.rows * self.features {
            return Err(format!(
                "x holds {} values, expected {} samples × {} features",
                self.x.len(),
                self.rows,
                self.features
            ));
        }
        if let Some(i) = self.x.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "x is {} at sample {}, feature {}",
                self.x[i],
                i / self.features,
                i % self.features
            ));
        }
        if self.tasks.is_empty() {
            return Err("a dataset needs ≥ 1 task".into());
        }
        for (i, task) in self.tasks.iter().enumerate() {
            if task.name.is_empty() {
                return Err(format!("task {i} has an empty name"));
            }
            if self.tasks[..i].iter().any(|t| t.name == task.name) {
                return Err(format!("task '{}' appears twice", task.name));
            }
            check_task(task, self.rows).map_err(|e| format!("task '{}': {e}", task.name))?;
        }
        Ok(())
    }

    /// An error about this dataset, naming its source.
    pub(crate) fn error(&self, detail: String) -> Error {
        Error::Data {
            file: self.source.clone(),
            detail,
        }
    }

    /// GradNorm's synthetic benchmark as a dataset: tasks "task0",
    /// "task1", … each regressing `outputs` values, every sample labelled.
    pub fn from_synthetic(s: &Synthetic) -> Result<Self> {
        let (t, k) = (s.spec.tasks, s.spec.outputs);
        let width = t * k;
        let tasks = (0..t)
            .map(|task| {
                let values = (0..s.rows)
                    .flat_map(|r| {
                        let start = r * width + task * k;
                        s.targets[start..start + k].iter().copied()
                    })
                    .collect();
                TaskData::new(
                    &format!("task{task}"),
                    Targets::Real { outputs: k, values },
                    None,
                )
            })
            .collect();
        Dataset::new("synthetic", s.rows, s.spec.inputs, s.x.clone(), tasks)
    }

    /// Where the data came from (a path, or e.g. "synthetic").
    pub fn source(&self) -> &str {
        &self.source
    }

    /// N, the number of samples.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// D, the features per sample.
    pub fn features(&self) -> usize {
        self.features
    }

    /// x [N, D].
    pub fn x(&self) -> &[f32] {
        &self.x
    }

    /// Sample `row`'s features \[D\].
    pub fn sample(&self, row: usize) -> &[f32] {
        &self.x[row * self.features..(row + 1) * self.features]
    }

    /// Every task, in the order given to `Dataset::new`.
    pub fn tasks(&self) -> &[TaskData] {
        &self.tasks
    }

    /// The task named `name`, if any.
    pub fn task(&self, name: &str) -> Option<&TaskData> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// Every task's name and kind, in dataset order.
    pub fn schema(&self) -> Vec<TaskSchema> {
        self.tasks.iter().map(TaskData::schema).collect()
    }

    /// The samples `rows`, in that order (indices may repeat). Panics on
    /// an index ≥ N, like slice indexing: callers pass indices they made.
    pub fn subset(&self, rows: &[usize]) -> Dataset {
        let x = rows
            .iter()
            .flat_map(|&r| self.sample(r).iter().copied())
            .collect();
        let tasks = self
            .tasks
            .iter()
            .map(|t| TaskData {
                name: t.name.clone(),
                targets: t.targets.select(rows),
                mask: t
                    .mask
                    .as_ref()
                    .map(|m| rows.iter().map(|&r| m[r]).collect()),
            })
            .collect();
        Dataset {
            source: self.source.clone(),
            rows: rows.len(),
            features: self.features,
            x,
            tasks,
            scales: self.scales.clone(),
        }
    }

    /// The same samples and tasks (scales included) with features `x`
    /// [N, D] instead, checked like `Dataset::new`.
    pub fn with_x(&self, x: Vec<f32>) -> Result<Dataset> {
        let mut data = Dataset::new(
            &self.source,
            self.rows,
            self.features,
            x,
            self.tasks.clone(),
        )?;
        data.scales = self.scales.clone();
        Ok(data)
    }

    /// The target scale of task `task` (regression only): stored targets
    /// are (original − mean) / std. `None` when the targets are in their
    /// original units or the scale is unknown. Metrics of this task
    /// convert to original units with [`TargetScale::error_to_original`].
    pub fn target_scale(&self, task: &str) -> Option<TargetScale> {
        let i = self.tasks.iter().position(|t| t.name == task)?;
        self.scales[i]
    }

    /// The index of regression task `task`, or an error naming it.
    fn regression_task(&self, task: &str) -> Result<usize> {
        let i = self
            .tasks
            .iter()
            .position(|t| t.name == task)
            .ok_or_else(|| self.error(format!("no task '{task}' for a target scale")))?;
        if !matches!(self.tasks[i].targets, Targets::Real { .. }) {
            return Err(self.error(format!(
                "task '{task}' is {:?}: only regression targets have a scale",
                self.tasks[i].targets.kind()
            )));
        }
        Ok(i)
    }

    /// Records that task `task`'s stored targets are already standardised
    /// by `scale` (the values are not changed). A regression task only;
    /// a different scale already recorded is an error naming both.
    pub fn with_target_scale(mut self, task: &str, scale: TargetScale) -> Result<Dataset> {
        let i = self.regression_task(task)?;
        scale
            .check()
            .map_err(|e| self.error(format!("task '{task}': {e}")))?;
        match self.scales[i] {
            Some(known) if known != scale => Err(self.error(format!(
                "task '{task}': target scale (mean {}, std {}) differs from the one already \
                 known (mean {}, std {})",
                scale.mean, scale.std, known.mean, known.std
            ))),
            _ => {
                self.scales[i] = Some(scale);
                Ok(self)
            }
        }
    }

    /// Standardises task `task`'s targets in place, stored = (y − mean) /
    /// std for every sample, and records `scale`. A regression task with
    /// no scale yet only (targets are never standardised twice).
    pub fn standardize_targets(&mut self, task: &str, scale: TargetScale) -> Result<()> {
        let i = self.regression_task(task)?;
        scale
            .check()
            .map_err(|e| self.error(format!("task '{task}': {e}")))?;
        if self.scales[i].is_some() {
            return Err(self.error(format!(
                "task '{task}' is already standardised (it has a target scale)"
            )));
        }
        if let Targets::Real { values, .. } = &mut self.tasks[i].targets {
            for v in values.iter_mut() {
                *v = scale.to_stored(*v);
            }
            // A tiny std can overflow f32: refuse rather than store Inf.
            if let Some(j) = values.iter().position(|v| !v.is_finite()) {
                return Err(self.error(format!(
                    "task '{task}': standardising with std {} overflows at value {j}",
                    scale.std
                )));
            }
        }
        self.scales[i] = Some(scale);
        Ok(())
    }

    /// Which samples go to train / validation / test: one permutation from
    /// `seed`, validation takes the first round(N·validation) of it, test
    /// the next round(N·test), train the rest. Each part is then sorted, so
    /// it keeps the file's order. The same (N, fractions, seed) always
    /// gives the same split. An empty training part is an error naming
    /// the sizes (validation and test may be empty).
    pub fn split_indices(&self, fractions: SplitFractions, seed: u64) -> Result<SplitIndices> {
        let SplitFractions { validation, test } = fractions;
        let valid = |f: f64| (0.0..=1.0).contains(&f);
        if !valid(validation) || !valid(test) || validation + test > 1.0 {
            return Err(self.error(format!(
                "split fractions validation {validation} and test {test} must be in [0, 1] and sum to ≤ 1"
            )));
        }
        let n = self.rows;
        let n_valid = (n as f64 * validation).round() as usize;
        let n_test = ((n as f64 * test).round() as usize).min(n - n_valid);
        if n_valid + n_test == n {
            return Err(self.error(format!(
                "the training split would have 0 samples: {n} sample(s), {n_valid} for \
                 validation and {n_test} for test (fractions {validation} and {test}); \
                 add samples or lower the fractions"
            )));
        }
        let order = Order::Shuffled { seed }.indices(n, 0);
        let part = |range: std::ops::Range<usize>| {
            let mut rows = order[range].to_vec();
            rows.sort_unstable();
            rows
        };
        Ok(SplitIndices {
            validation: part(0..n_valid),
            test: part(n_valid..n_valid + n_test),
            train: part(n_valid + n_test..n),
        })
    }

    /// The split of [`Dataset::split_indices`] as three datasets.
    pub fn split(&self, fractions: SplitFractions, seed: u64) -> Result<Split> {
        let idx = self.split_indices(fractions, seed)?;
        Ok(Split {
            train: self.subset(&idx.train),
            validation: self.subset(&idx.validation),
            test: self.subset(&idx.test),
        })
    }
}

fn check_task(task: &TaskData, rows: usize) -> std::result::Result<(), String> {
    let t = &task.targets;
    if t.stride() == 0 {
        return Err("targets need a width ≥ 1".into());
    }
    if t.len() != rows * t.stride() {
        return Err(format!(
            "{} target values, expected {rows} samples × {}",
            t.len(),
            t.stride()
        ));
    }
    if let Some(mask) = &task.mask {
        if mask.len() != rows {
            return Err(format!("mask has {} entries, expected {rows}", mask.len()));
        }
    }
    let bad = |i: usize, what: String| Err(format!("{what} at sample {}", i / t.stride()));
    match t {
        Targets::Classes { classes, ids } => {
            if let Some(i) = ids.iter().position(|&c| c as usize >= *classes) {
                return bad(i, format!("class id {} is outside [0, {classes})", ids[i]));
            }
        }
        Targets::Real { values, .. } => {
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return bad(i, format!("target is {}", values[i]));
            }
        }
        Targets::Binary { values, .. } => {
            if let Some(i) = values.iter().position(|&v| v != 0.0 && v != 1.0) {
                return bad(i, format!("binary label is {}, expected 0 or 1", values[i]));
            }
        }
    }
    Ok(())
}

/// The order samples are visited in an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// 0, 1, …, N−1 every epoch (`--no-shuffle`).
    Sequential,
    /// A fresh permutation each epoch, fixed by (seed, epoch).
    Shuffled {
        /// Seed of every epoch's permutation.
        seed: u64,
    },
}

impl Order {
    /// The sample indices of epoch `epoch` over `rows` samples.
    pub fn indices(&self, rows: usize, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..rows).collect();
        if let Order::Shuffled { seed } = *self {
            // Mix the epoch in with an odd constant so (seed, epoch) and
            // (seed + 1, epoch − 1) do not give the same stream.
            let mut rng = Rng::new(seed ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03));
            // Fisher–Yates; the modulo bias of 64-bit draws is negligible.
            for i in (1..rows).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
        }
        order
    }
}
