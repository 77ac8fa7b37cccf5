//! `[data]`: where the samples come from (`source` and its keys) and how
//! much of them validation and test hold out.
//!
//! Rules:
//! - **Tasks of a safetensors file**: its header metadata (`task.<i>`) or,
//!   without it, the config's `[[tasks]]`; both present and different is
//!   an error naming both.
//! - **Split**: `validation` and `test` are fractions cut at random from
//!   `train.seed`; or `validation_path` / `test_path` name files of the
//!   same format and schema as `path` (safetensors and csv), and nothing
//!   is cut at random (setting the fractions too is then an error). The
//!   training split must not be empty; validation and test may be.
//! - **Paths** are stored absolute and canonical: relative to the config
//!   file's folder when read from a file, else to the working folder, so
//!   a checkpoint's stored config finds the same data from anywhere.
//! - **CSV features**: without `features`, every column that no task in
//!   `[[tasks]]` reads and `exclude` does not list; a column whose name
//!   looks like a target (`y`, `label…`, `target…`, `y.…`, `mask.…`) that
//!   no task reads is then an error asking for `features` or `exclude`.
//!   The list found is stored in `features`, so a checkpoint's config
//!   (and `--single-task`, which drops tasks later) keeps the same input
//!   width. A target column listed as a feature is an error.
//! - **Target scale**: `[data.target_scale] task = [mean, std]` says a
//!   regression task's stored targets are (y − mean) / std (a file's
//!   `scale.<task>` metadata says the same); `standardize_targets = true`
//!   standardises every other regression task with the training split's
//!   mean and std. Either way `Dataset::target_scale(task)` gives the
//!   pair, so metrics can be reported in original units.
//!
//! One file, past 700 lines, on purpose: these rules interlock (the
//! split, the schema check across split files, the CSV feature list and
//! the target scale all read one another), so they are kept in one place
//! where a reader can check them together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{invalid, misplaced, quoted, TaskConfig};
use crate::data::csv::{CsvColumns, CsvTask};
use crate::data::dataset::{Dataset, Split, SplitFractions, TargetScale, TaskSchema};
use crate::data::mmoe_synthetic::MmoeSyntheticSpec;
use crate::data::multi_mnist::MultiMnistSpec;
use crate::data::standardize::target_scale_of;
use crate::data::synthetic::{Synthetic, SyntheticSpec};
use crate::data::{fashion_mnist, idx, multi_mnist};
use crate::error::{Error, Result};

/// Each source and the keys it takes (besides [`COMMON_KEYS`]).
const SOURCES: &[(&str, &[&str])] = &[
    (
        "synthetic",
        &["tasks", "samples", "inputs", "outputs", "max_scale"],
    ),
    (
        "safetensors",
        &["path", "validation_path", "test_path", "samples"],
    ),
    (
        "csv",
        &[
            "path",
            "validation_path",
            "test_path",
            "features",
            "exclude",
            "targets",
            "samples",
        ],
    ),
    (
        "mmoe_synthetic",
        &[
            "samples",
            "inputs",
            "correlation",
            "sines",
            "scale",
            "noise",
        ],
    ),
    ("idx", &["images", "labels", "task", "classes", "samples"]),
    ("fashion_mnist", &["dir", "part", "samples"]),
    (
        "multi_mnist",
        &["images", "labels", "classes", "samples", "max_shift"],
    ),
];

/// The keys every source takes.
const COMMON_KEYS: &str = "validation, test, standardize_targets, target_scale";

/// `[data]`. Keys that a source does not take are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// synthetic | mmoe_synthetic | safetensors | csv | idx | fashion_mnist
    /// | multi_mnist.
    pub source: String,
    /// Fraction of the samples held out for validation.
    pub validation: f64,
    /// Fraction of the samples held out for test.
    pub test: f64,
    /// synthetic: tasks (default 4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<usize>,
    /// synthetic, mmoe_synthetic and multi_mnist: samples to make (default
    /// 2000, 10000 and the image count); the other sources: keep the first
    /// `samples`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    /// synthetic and mmoe_synthetic: input width D (default 250 and 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<usize>,
    /// synthetic: outputs per task (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<usize>,
    /// synthetic: the largest task scale σ (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_scale: Option<f32>,
    /// mmoe_synthetic: the cosine p between the two tasks' weight vectors
    /// (default 0.5; −1 ≤ p ≤ 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation: Option<f32>,
    /// mmoe_synthetic: sine terms m of each label (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sines: Option<usize>,
    /// mmoe_synthetic: the weight vectors' length c (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<f32>,
    /// mmoe_synthetic: the label noise's standard deviation σ (default 0.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<f32>,
    /// safetensors and csv: the file (the training samples when
    /// `validation_path` or `test_path` is given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// safetensors and csv: the validation samples, a file of the same
    /// format and schema as `path` (then nothing is cut at random).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_path: Option<PathBuf>,
    /// safetensors and csv: the test samples, like `validation_path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_path: Option<PathBuf>,
    /// csv: feature columns by header name (default: every column no task
    /// uses and `exclude` does not list; the list found is stored here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// csv: columns that are neither features nor targets of `[[tasks]]`
    /// (labels of other tasks, ids).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<String>>,
    /// csv: each task's target columns (default: the column named like
    /// the task, for tasks of one column).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<BTreeMap<String, Vec<String>>>,
    /// idx and multi_mnist: the IDX image file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<PathBuf>,
    /// idx and multi_mnist: the IDX label file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<PathBuf>,
    /// idx: the task's name (default "class").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// idx and multi_mnist: classes of the labels (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
    /// multi_mnist: the largest shift per axis in pixels (default 4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_shift: Option<usize>,
    /// fashion_mnist: the folder of the files (default: the Debian
    /// package's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// fashion_mnist: "train" (60 000 images, default) or "test" (10 000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    /// Standardise every regression task's targets with the training
    /// split's mean and std (one pair per task), except tasks whose scale
    /// is known already (`target_scale`, or the file's metadata).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub standardize_targets: bool,
    /// `[data.target_scale]`: task → [mean, std]: the task's targets are
    /// stored standardised, (y − mean) / std.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_scale: Option<BTreeMap<String, Vec<f32>>>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            source: "synthetic".into(),
            validation: 0.1,
            test: 0.1,
            tasks: None,
            samples: None,
            inputs: None,
            outputs: None,
            max_scale: None,
            correlation: None,
            sines: None,
            scale: None,
            noise: None,
            path: None,
            validation_path: None,
            test_path: None,
            features: None,
            exclude: None,
            targets: None,
            images: None,
            labels: None,
            task: None,
            classes: None,
            max_shift: None,
            dir: None,
            part: None,
            standardize_targets: false,
            target_scale: None,
        }
    }
}

impl DataConfig {
    /// Source `safetensors` reading `path`, keeping the split fractions
    /// (what `--data` means). A relative path is taken from the working
    /// folder and stored absolute.
    pub fn safetensors(&self, path: PathBuf) -> DataConfig {
        DataConfig {
            source: "safetensors".into(),
            path: Some(absolute_path(&path, None)),
            validation: self.validation,
            test: self.test,
            ..DataConfig::default()
        }
    }

    /// Every data path, for resolving them all alike.
    fn paths_mut(&mut self) -> [&mut Option<PathBuf>; 6] {
        [
            &mut self.path,
            &mut self.validation_path,
            &mut self.test_path,
            &mut self.images,
            &mut self.labels,
            &mut self.dir,
        ]
    }

    /// Makes every data path absolute and canonical: a relative one is
    /// taken from `dir` (the config file's folder), then symbolic links
    /// and `..` are resolved. A path that does not exist (yet) is kept
    /// absolute as written, so reading it names it in the error.
    pub fn resolve_paths(&mut self, dir: &Path) {
        for p in self.paths_mut().into_iter().flatten() {
            *p = absolute_path(p, Some(dir));
        }
    }

    /// Makes every data path still relative absolute from the working
    /// folder, and canonical (a config given as text, or `--data`).
    pub fn absolute_paths(&mut self) {
        for p in self.paths_mut().into_iter().flatten() {
            *p = absolute_path(p, None);
        }
    }

    /// Whether explicit split files replace the random split.
    pub fn has_split_files(&self) -> bool {
        self.validation_path.is_some() || self.test_path.is_some()
    }

    /// The keys that are set, by name.
    fn set_keys(&self) -> Vec<&'static str> {
        let set = [
            ("tasks", self.tasks.is_some()),
            ("samples", self.samples.is_some()),
            ("inputs", self.inputs.is_some()),
            ("outputs", self.outputs.is_some()),
            ("max_scale", self.max_scale.is_some()),
            ("correlation", self.correlation.is_some()),
            ("sines", self.sines.is_some()),
            ("scale", self.scale.is_some()),
            ("noise", self.noise.is_some()),
            ("path", self.path.is_some()),
            ("validation_path", self.validation_path.is_some()),
            ("test_path", self.test_path.is_some()),
            ("features", self.features.is_some()),
            ("exclude", self.exclude.is_some()),
            ("targets", self.targets.is_some()),
            ("images", self.images.is_some()),
            ("labels", self.labels.is_some()),
            ("task", self.task.is_some()),
            ("classes", self.classes.is_some()),
            ("max_shift", self.max_shift.is_some()),
            ("dir", self.dir.is_some()),
            ("part", self.part.is_some()),
        ];
        set.into_iter().filter(|s| s.1).map(|s| s.0).collect()
    }

    /// The split fractions.
    pub fn fractions(&self) -> SplitFractions {
        SplitFractions {
            validation: self.validation,
            test: self.test,
        }
    }

    /// Checks the source, that every key set belongs to it, the required
    /// keys, counts and fractions; `tasks` are the config's `[[tasks]]`.
    pub fn check(&self, tasks: &[TaskConfig]) -> std::result::Result<(), String> {
        let Some((_, keys)) = SOURCES.iter().find(|s| s.0 == self.source) else {
            let names: Vec<&str> = SOURCES.iter().map(|s| s.0).collect();
            return Err(invalid(
                "data.source",
                quoted(&self.source),
                format!("expected one of {}", names.join(", ")),
            ));
        };
        if let Some(key) = self.set_keys().into_iter().find(|k| !keys.contains(k)) {
            return Err(misplaced(
                format!("data.{key}"),
                format!(
                    "not a key of source = {} (its keys: {}, {COMMON_KEYS})",
                    quoted(&self.source),
                    keys.join(", ")
                ),
            ));
        }
        for (key, v) in [("validation", self.validation), ("test", self.test)] {
            if !(v.is_finite() && (0.0..1.0).contains(&v)) {
                return Err(invalid(format!("data.{key}"), v, "must be in [0, 1)"));
            }
        }
        if self.validation + self.test >= 1.0 {
            return Err(invalid(
                "data.validation + data.test",
                self.validation + self.test,
                "must be < 1 (training needs samples)",
            ));
        }
        for (key, v) in [
            ("tasks", self.tasks),
            ("samples", self.samples),
            ("inputs", self.inputs),
            ("outputs", self.outputs),
            ("classes", self.classes),
        ] {
            if v == Some(0) {
                return Err(invalid(format!("data.{key}"), 0, "must be ≥ 1"));
            }
        }
        if let Some(s) = self.max_scale {
            if !(s.is_finite() && s > 0.0) {
                return Err(invalid("data.max_scale", s, "must be finite and > 0"));
            }
        }
        if let Some(p) = self.correlation {
            if !(-1.0..=1.0).contains(&p) {
                return Err(invalid(
                    "data.correlation",
                    p,
                    "a cosine: must be in [−1, 1]",
                ));
            }
        }
        if let Some(c) = self.scale {
            if !(c.is_finite() && c > 0.0) {
                return Err(invalid("data.scale", c, "must be finite and > 0"));
            }
        }
        if let Some(s) = self.noise {
            if !(s.is_finite() && s >= 0.0) {
                return Err(invalid("data.noise", s, "must be finite and ≥ 0"));
            }
        }
        if let Some(c) = self.classes {
            if c > 256 {
                return Err(invalid(
                    "data.classes",
                    c,
                    "IDX labels are bytes: at most 256",
                ));
            }
        }
        if let Some(part) = &self.part {
            if part != "train" && part != "test" {
                return Err(invalid("data.part", quoted(part), "expected train or test"));
            }
        }
        let need = |key: &str, set: bool| -> std::result::Result<(), String> {
            if set {
                Ok(())
            } else {
                Err(misplaced(
                    format!("data.{key}"),
                    format!("missing: source = {} needs it", quoted(&self.source)),
                ))
            }
        };
        if self.has_split_files() {
            need("path", self.path.is_some())?;
        }
        self.check_target_scale(tasks)?;
        match self.source.as_str() {
            "safetensors" => need("path", self.path.is_some())?,
            "idx" | "multi_mnist" => {
                need("images", self.images.is_some())?;
                need("labels", self.labels.is_some())?;
            }
            "csv" => {
                need("path", self.path.is_some())?;
                self.csv_columns(tasks)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// `[data.target_scale]`: [mean, std] pairs, std > 0, of regression
    /// tasks of `[[tasks]]` (when the config lists tasks); not together
    /// with `standardize_targets`, which would standardise them again.
    fn check_target_scale(&self, tasks: &[TaskConfig]) -> std::result::Result<(), String> {
        let Some(scales) = &self.target_scale else {
            return Ok(());
        };
        if self.standardize_targets {
            return Err(misplaced(
                "data.target_scale",
                "not with data.standardize_targets = true: either the targets are stored \
                 standardised (target_scale says how) or manytask standardises them",
            ));
        }
        for (name, pair) in scales {
            let key = format!("data.target_scale.{name}");
            let [mean, std] = pair[..] else {
                return Err(invalid(key, format!("{pair:?}"), "expected [mean, std]"));
            };
            let scale = TargetScale { mean, std };
            scale
                .check()
                .map_err(|e| invalid(&key, format!("{pair:?}"), e))?;
            if tasks.is_empty() {
                continue; // the data's tasks: checked once read
            }
            match tasks.iter().find(|t| &t.name == name) {
                None => {
                    return Err(misplaced(
                        key,
                        format!("no task named {} in [[tasks]]", quoted(name)),
                    ))
                }
                Some(t) if t.kind != "regression" => {
                    return Err(misplaced(
                        key,
                        format!(
                            "task {} is {}: only regression targets have a scale",
                            quoted(name),
                            quoted(&t.kind)
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The CSV column mapping of `tasks`, checked against `features` and
    /// `exclude`: a task's target column listed as a feature (label
    /// leakage) or excluded is an error, as is a feature also excluded.
    fn csv_columns(&self, tasks: &[TaskConfig]) -> std::result::Result<CsvColumns, String> {
        if tasks.is_empty() {
            return Err(misplaced(
                "tasks",
                "missing: source = \"csv\" needs [[tasks]] (a CSV file holds no task kinds)",
            ));
        }
        let targets = self.targets.clone().unwrap_or_default();
        if let Some(name) = targets
            .keys()
            .find(|n| !tasks.iter().any(|t| &t.name == *n))
        {
            return Err(misplaced(
                format!("data.targets.{name}"),
                format!("no task named {} in [[tasks]]", quoted(name)),
            ));
        }
        let mut csv_tasks = Vec::with_capacity(tasks.len());
        for (i, task) in tasks.iter().enumerate() {
            let kind = task.kind(&format!("tasks[{i}]"))?;
            let columns = match targets.get(&task.name) {
                Some(c) => c.clone(),
                None if kind.width() == 1 || task.kind == "classification" => {
                    vec![task.name.clone()]
                }
                None => {
                    return Err(misplaced(
                        format!("data.targets.{}", task.name),
                        format!(
                            "missing: task {} has {} target columns; name them",
                            quoted(&task.name),
                            kind.width()
                        ),
                    ))
                }
            };
            let want = if task.kind == "classification" {
                1
            } else {
                kind.width()
            };
            if columns.len() != want {
                return Err(invalid(
                    format!("data.targets.{}", task.name),
                    format!("{columns:?}"),
                    format!("task {} needs {want} column(s)", quoted(&task.name)),
                ));
            }
            let refs: Vec<&str> = columns.iter().map(String::as_str).collect();
            csv_tasks.push(CsvTask::new(&task.name, kind, &refs));
        }
        let exclude = self.exclude.clone().unwrap_or_default();
        for task in &csv_tasks {
            for column in &task.columns {
                if self.features.as_ref().is_some_and(|f| f.contains(column)) {
                    return Err(misplaced(
                        "data.features",
                        format!(
                            "lists {}, a target column of task {}: the labels would be fed \
                             in as inputs (label leakage)",
                            quoted(column),
                            quoted(&task.name)
                        ),
                    ));
                }
                if exclude.contains(column) {
                    return Err(misplaced(
                        "data.exclude",
                        format!(
                            "lists {}, a target column of task {}",
                            quoted(column),
                            quoted(&task.name)
                        ),
                    ));
                }
            }
        }
        if let Some(column) = self.features.iter().flatten().find(|c| exclude.contains(c)) {
            return Err(misplaced(
                "data.exclude",
                format!("lists {}, which data.features lists too", quoted(column)),
            ));
        }
        Ok(CsvColumns {
            features: self.features.clone(),
            exclude,
            tasks: csv_tasks,
        })
    }

    /// The CSV column mapping with the feature list resolved against the
    /// file's header when `features` is not given (see the module rules).
    fn csv_columns_resolved(
        &self,
        tasks: &[TaskConfig],
        config_err: &dyn Fn(String) -> Error,
    ) -> Result<CsvColumns> {
        let mut columns = self.csv_columns(tasks).map_err(config_err)?;
        if columns.features.is_none() {
            let path = self.path.clone().unwrap_or_default();
            columns.features = Some(crate::data::csv::feature_columns(&path, &columns)?);
        }
        Ok(columns)
    }

    /// Completes the config before a run stores it: every data path
    /// absolute and canonical, and for CSV data without `features` the
    /// feature columns found in the file's header (so a checkpoint's
    /// config, and a run that later keeps one task, read the same inputs).
    /// `source` names the config in errors.
    pub fn resolve(&mut self, tasks: &[TaskConfig], source: &str) -> Result<()> {
        self.absolute_paths();
        if self.source == "csv" && self.features.is_none() {
            let config_err = |detail: String| Error::Config {
                file: source.to_string(),
                detail,
            };
            self.check(tasks).map_err(config_err)?;
            self.features = self.csv_columns_resolved(tasks, &config_err)?.features;
        }
        Ok(())
    }

    /// Reads or generates the data; `seed` seeds the synthetic benchmark
    /// and MultiMNIST's overlays; `source` names the config in errors.
    /// Target scales are applied; with `standardize_targets` the training
    /// rows are those `Dataset::split` cuts from `fractions()` and `seed`.
    /// With split files this is an error: use [`DataConfig::load_split`].
    pub fn load(&self, tasks: &[TaskConfig], seed: u64, source: &str) -> Result<Dataset> {
        let config_err = |detail: String| Error::Config {
            file: source.to_string(),
            detail,
        };
        self.check(tasks).map_err(config_err)?;
        if self.has_split_files() {
            return Err(config_err(
                "data.validation_path / data.test_path: the split comes from the files; \
                 read them with Config::split (DataConfig::load_split), not as one dataset"
                    .into(),
            ));
        }
        let mut data = self.read_main(tasks, seed, &config_err)?;
        data = self.apply_target_scale(data, &config_err)?;
        if self.standardize_targets {
            let train = data.split_indices(self.fractions(), seed)?.train;
            let stats = data.subset(&train);
            data = standardize_all(data, &stats)?;
        }
        Ok(data)
    }

    /// The data and its split: the training part, validation and test.
    /// Without split files, every sample read (the first `samples`) and
    /// the random split of `fractions()` and `seed`; with them, the
    /// training file (each file capped at `samples`) and the three files,
    /// the validation and test files checked against the training file's
    /// schema (features, tasks, target scales). Target scales are applied
    /// to every part (`standardize_targets`: the training part's). An
    /// empty training part is an error naming it and its size.
    pub fn load_split(
        &self,
        tasks: &[TaskConfig],
        seed: u64,
        source: &str,
    ) -> Result<(Dataset, Split)> {
        if !self.has_split_files() {
            let data = self.load(tasks, seed, source)?;
            let split = data.split(self.fractions(), seed)?;
            return Ok((data, split));
        }
        let config_err = |detail: String| Error::Config {
            file: source.to_string(),
            detail,
        };
        self.check(tasks).map_err(config_err)?;
        let train = self.read_main(tasks, seed, &config_err)?;
        if train.rows() == 0 {
            return Err(train.error(
                "the training split (data.path) has 0 samples; a run needs at least one".into(),
            ));
        }
        let other = |p: &Option<PathBuf>| -> Result<Dataset> {
            match p {
                Some(path) => {
                    let part = self.read_file(path, tasks, &config_err)?;
                    same_schema(&train, &part)?;
                    Ok(part)
                }
                // No file: an empty part with the training schema.
                None => Ok(train.subset(&[])),
            }
        };
        let (validation, test) = (other(&self.validation_path)?, other(&self.test_path)?);
        let train = self.apply_target_scale(train, &config_err)?;
        let validation = self.apply_target_scale(validation, &config_err)?;
        let test = self.apply_target_scale(test, &config_err)?;
        let mut split = Split {
            train,
            validation,
            test,
        };
        if self.standardize_targets {
            let stats = split.train.clone();
            split = Split {
                train: standardize_all(split.train, &stats)?,
                validation: standardize_all(split.validation, &stats)?,
                test: standardize_all(split.test, &stats)?,
            };
        }
        Ok((split.train.clone(), split))
    }

    /// One safetensors or CSV file with this config's tasks and columns,
    /// capped at `samples`.
    fn read_file(
        &self,
        path: &Path,
        tasks: &[TaskConfig],
        config_err: &dyn Fn(String) -> Error,
    ) -> Result<Dataset> {
        let data = match self.source.as_str() {
            "safetensors" => {
                let schemas = task_schemas(tasks).map_err(config_err)?;
                crate::data::safetensors::read(path, schemas.as_deref())?
            }
            _ => {
                // csv (`check` allows split files for these two only).
                let columns = self.csv_columns_resolved(tasks, config_err)?;
                crate::data::csv::read(path, &columns)?
            }
        };
        Ok(self.first_samples(data))
    }

    /// The first `samples` rows, when `samples` is set and smaller.
    fn first_samples(&self, data: Dataset) -> Dataset {
        match self.samples {
            Some(n) if n < data.rows() => data.subset(&(0..n).collect::<Vec<_>>()),
            _ => data,
        }
    }

    /// The data of `path` / `images` / the generator, as `source` says.
    fn read_main(
        &self,
        tasks: &[TaskConfig],
        seed: u64,
        config_err: &dyn Fn(String) -> Error,
    ) -> Result<Dataset> {
        let path = |p: &Option<PathBuf>| p.clone().unwrap_or_default();
        let data = match self.source.as_str() {
            "synthetic" => {
                let spec = SyntheticSpec::new(
                    self.tasks.unwrap_or(4),
                    self.inputs.unwrap_or(250),
                    self.outputs.unwrap_or(100),
                    self.max_scale.unwrap_or(100.0),
                    seed,
                );
                let samples = self.samples.unwrap_or(2000);
                return Dataset::from_synthetic(&Synthetic::generate(&spec, samples)?);
            }
            "mmoe_synthetic" => {
                let spec = MmoeSyntheticSpec {
                    inputs: self.inputs.unwrap_or(100),
                    correlation: self.correlation.unwrap_or(0.5),
                    sines: self.sines.unwrap_or(10),
                    scale: self.scale.unwrap_or(1.0),
                    noise: self.noise.unwrap_or(0.1),
                    seed,
                };
                return spec.generate(self.samples.unwrap_or(10_000));
            }
            "safetensors" | "csv" => return self.read_file(&path(&self.path), tasks, config_err),
            "idx" => idx::read_classification(
                &path(&self.images),
                &path(&self.labels),
                self.task.as_deref().unwrap_or("class"),
                self.classes.unwrap_or(10),
            )?,
            "fashion_mnist" => {
                let dir = self
                    .dir
                    .clone()
                    .unwrap_or_else(|| fashion_mnist::DEFAULT_DIR.into());
                let part = match self.part.as_deref() {
                    Some("test") => "t10k",
                    _ => "train",
                };
                fashion_mnist::load_part(&dir, part)?
            }
            _ => {
                // multi_mnist (`check` refused every other name).
                let images_path = path(&self.images);
                let images = idx::read_images(&images_path)?;
                let labels = idx::read_labels(&path(&self.labels))?;
                if images.count == 0 {
                    return Err(Error::Data {
                        file: images_path.display().to_string(),
                        detail: "0 images: MultiMNIST overlays need at least one".into(),
                    });
                }
                let spec = MultiMnistSpec {
                    samples: self.samples.unwrap_or(images.count),
                    max_shift: self.max_shift.unwrap_or(4),
                    seed,
                };
                return multi_mnist::build(&images, &labels, self.classes.unwrap_or(10), spec);
            }
        };
        Ok(self.first_samples(data))
    }

    /// Records `[data.target_scale]` on `data` (a scale the file stores
    /// for the same task must be the same: an error naming both).
    fn apply_target_scale(
        &self,
        mut data: Dataset,
        config_err: &dyn Fn(String) -> Error,
    ) -> Result<Dataset> {
        for (name, pair) in self.target_scale.iter().flatten() {
            let [mean, std] = pair[..] else {
                return Err(config_err(format!(
                    "data.target_scale.{name}: expected [mean, std]"
                )));
            };
            let scale = TargetScale { mean, std };
            if let Some(file) = data.target_scale(name).filter(|&f| f != scale) {
                return Err(data.error(format!(
                    "task '{name}': data.target_scale says mean {mean}, std {std}, but the \
                     file stores mean {}, std {} (metadata scale.{name})",
                    file.mean, file.std
                )));
            }
            data = data
                .with_target_scale(name, scale)
                .map_err(|e| config_err(format!("data.target_scale.{name}: {e}")))?;
        }
        Ok(data)
    }
}

/// The config's tasks as the schemas a safetensors file is read with;
/// `None` when `[[tasks]]` is empty (the file's metadata then says).
fn task_schemas(tasks: &[TaskConfig]) -> std::result::Result<Option<Vec<TaskSchema>>, String> {
    if tasks.is_empty() {
        return Ok(None);
    }
    tasks
        .iter()
        .enumerate()
        .map(|(i, t)| Ok(TaskSchema::new(&t.name, t.kind(&format!("tasks[{i}]"))?)))
        .collect::<std::result::Result<Vec<_>, String>>()
        .map(Some)
}

/// `data` with every regression task that has no scale yet standardised
/// by `stats`' mean and std for it (the training part's).
fn standardize_all(mut data: Dataset, stats: &Dataset) -> Result<Dataset> {
    let names: Vec<String> = stats.tasks().iter().map(|t| t.name.clone()).collect();
    for name in names {
        if stats.target_scale(&name).is_some() {
            continue;
        }
        if let Some(scale) = target_scale_of(stats, &name) {
            data.standardize_targets(&name, scale)?;
        }
    }
    Ok(data)
}

/// A validation or test file must match the training file: the same
/// feature count, tasks (names and kinds, in order) and target scales.
fn same_schema(train: &Dataset, part: &Dataset) -> Result<()> {
    if part.features() != train.features() {
        return Err(part.error(format!(
            "{} features, but the training file ({}) has {}: the split files must have the \
             same schema",
            part.features(),
            train.source(),
            train.features()
        )));
    }
    if part.schema() != train.schema() {
        let describe = |d: &Dataset| {
            d.schema()
                .iter()
                .map(|t| {
                    format!(
                        "{} ({})",
                        t.name,
                        crate::data::safetensors::describe_kind(t.kind)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(part.error(format!(
            "tasks {}, but the training file ({}) has {}",
            describe(part),
            train.source(),
            describe(train)
        )));
    }
    for task in train.tasks() {
        let (a, b) = (
            train.target_scale(&task.name),
            part.target_scale(&task.name),
        );
        if a != b {
            return Err(part.error(format!(
                "task '{}': target scale {b:?}, but the training file ({}) has {a:?}",
                task.name,
                train.source()
            )));
        }
    }
    Ok(())
}

/// `path` absolute (a relative one joined to `dir`, else to the working
/// folder) and canonical when it exists; as written when nothing better
/// can be made of it (the reader then names it in its error).
fn absolute_path(path: &Path, dir: Option<&Path>) -> PathBuf {
    let joined = match dir {
        Some(d) if path.is_relative() => d.join(path),
        _ => path.to_path_buf(),
    };
    std::fs::canonicalize(&joined)
        .or_else(|_| std::path::absolute(&joined))
        .unwrap_or(joined)
}
