//! `[data]`: where the samples come from (`source` and its keys) and how
//! much of them validation and test hold out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{invalid, misplaced, quoted, TaskConfig};
use crate::data::csv::{CsvColumns, CsvTask};
use crate::data::dataset::{Dataset, SplitFractions};
use crate::data::multi_mnist::MultiMnistSpec;
use crate::data::synthetic::{Synthetic, SyntheticSpec};
use crate::data::{fashion_mnist, idx, multi_mnist};
use crate::error::{Error, Result};

/// Each source and the keys it takes (besides `validation` and `test`).
const SOURCES: &[(&str, &[&str])] = &[
    (
        "synthetic",
        &["tasks", "samples", "inputs", "outputs", "max_scale"],
    ),
    ("safetensors", &["path", "samples"]),
    ("csv", &["path", "features", "targets", "samples"]),
    ("idx", &["images", "labels", "task", "classes", "samples"]),
    ("fashion_mnist", &["dir", "part", "samples"]),
    (
        "multi_mnist",
        &["images", "labels", "classes", "samples", "max_shift"],
    ),
];

/// `[data]`. Keys that a source does not take are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// synthetic | safetensors | csv | idx | fashion_mnist | multi_mnist.
    pub source: String,
    /// Fraction of the samples held out for validation.
    pub validation: f64,
    /// Fraction of the samples held out for test.
    pub test: f64,
    /// synthetic: tasks (default 4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<usize>,
    /// synthetic and multi_mnist: samples to make (default 2000, and the
    /// image count); the other sources: keep the first `samples`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    /// synthetic: input width D (default 250).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<usize>,
    /// synthetic: outputs per task (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<usize>,
    /// synthetic: the largest task scale σ (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_scale: Option<f32>,
    /// safetensors and csv: the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// csv: feature columns by header name (default: every column no task
    /// uses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
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
            path: None,
            features: None,
            targets: None,
            images: None,
            labels: None,
            task: None,
            classes: None,
            max_shift: None,
            dir: None,
            part: None,
        }
    }
}

impl DataConfig {
    /// Source `safetensors` reading `path`, keeping the split fractions
    /// (what `--data` means).
    pub fn safetensors(&self, path: PathBuf) -> DataConfig {
        DataConfig {
            source: "safetensors".into(),
            path: Some(path),
            validation: self.validation,
            test: self.test,
            ..DataConfig::default()
        }
    }

    /// Makes relative paths relative to `dir` (the config file's folder).
    pub fn resolve_paths(&mut self, dir: &Path) {
        for p in [
            &mut self.path,
            &mut self.images,
            &mut self.labels,
            &mut self.dir,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }

    /// The keys that are set, by name.
    fn set_keys(&self) -> Vec<&'static str> {
        let set = [
            ("tasks", self.tasks.is_some()),
            ("samples", self.samples.is_some()),
            ("inputs", self.inputs.is_some()),
            ("outputs", self.outputs.is_some()),
            ("max_scale", self.max_scale.is_some()),
            ("path", self.path.is_some()),
            ("features", self.features.is_some()),
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
                    "not a key of source = {} (its keys: {}, validation, test)",
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

    /// The CSV column mapping of `tasks`.
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
        Ok(CsvColumns {
            features: self.features.clone(),
            exclude: Vec::new(),
            tasks: csv_tasks,
        })
    }

    /// Reads or generates the data; `seed` seeds the synthetic benchmark
    /// and MultiMNIST's overlays; `source` names the config in errors.
    pub fn load(&self, tasks: &[TaskConfig], seed: u64, source: &str) -> Result<Dataset> {
        let config_err = |detail: String| Error::Config {
            file: source.to_string(),
            detail,
        };
        self.check(tasks).map_err(config_err)?;
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
            "safetensors" => crate::data::safetensors::read(&path(&self.path), None)?,
            "csv" => {
                let columns = self.csv_columns(tasks).map_err(config_err)?;
                crate::data::csv::read(&path(&self.path), &columns)?
            }
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
                let images = idx::read_images(&path(&self.images))?;
                let labels = idx::read_labels(&path(&self.labels))?;
                let spec = MultiMnistSpec {
                    samples: self.samples.unwrap_or(images.count),
                    max_shift: self.max_shift.unwrap_or(4),
                    seed,
                };
                return multi_mnist::build(&images, &labels, self.classes.unwrap_or(10), spec);
            }
        };
        Ok(match self.samples {
            Some(n) if n < data.rows() => data.subset(&(0..n).collect::<Vec<_>>()),
            _ => data,
        })
    }
}
