//! Run configs: the TOML file `manytask train --config` and `manytask
//! eval` read (README "Config files" has a full example and every key).
//!
//! A [`Config`] has four parts, one module each:
//! - [`model`]: the sharing kind, widths, activation and the options of
//!   each kind (cross-stitch units, sluice subspaces, soft-sharing
//!   regularisers);
//! - [`tasks`]: the `[[tasks]]` list, each task's kind and head;
//! - [`data`]: where the samples come from and the split fractions;
//! - [`train`]: steps, batch, seed, optimiser and task weighting.
//!
//! Every field has a default (today's `manytask train` defaults), so an
//! empty file is the default run. Unknown keys are errors (serde's
//! `deny_unknown_fields`), and [`Config::validate`] rejects impossible
//! values with a message naming the key, e.g. `model.widths[1] = 0:
//! widths must be positive`. The resolved config of a run is stored as
//! JSON in its checkpoint (`Config::to_json`), so `eval` can rebuild the
//! model from the checkpoint alone.

pub mod data;
pub mod model;
pub mod tasks;
pub mod train;
pub mod weighting;

use std::fmt::Display;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::dataset::{Dataset, Split};
use crate::error::{Error, Result};
use crate::types::{ModelSpec, TaskSpec};

pub use data::DataConfig;
pub use model::{ModelConfig, RegulariserConfig, StitchConfig};
pub use tasks::TaskConfig;
pub use train::TrainConfig;
pub use weighting::WeightingConfig;

/// The largest config file `Config::load` reads (a run config is a few
/// hundred bytes; this only stops a wrong path from being read whole).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A whole run: model, tasks, data and training settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the config came from (a path, "defaults", a checkpoint), for
    /// error messages; not part of the file.
    #[serde(skip)]
    pub source: String,
    /// `[model]`: sharing kind, widths, activation and kind options.
    pub model: ModelConfig,
    /// The tasks and their heads; empty: every task of the data, each
    /// with a linear head (not allowed for CSV data, which has no kinds).
    /// An entry with `names = [...]` is one task per name (expanded here).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "tasks::deserialize_tasks"
    )]
    pub tasks: Vec<TaskConfig>,
    /// `[data]`: the source and the split fractions.
    pub data: DataConfig,
    /// `[train]`: length, batch, seed, optimiser, weighting.
    pub train: TrainConfig,
}

/// An impossible value: `key = value: why`.
pub(crate) fn invalid(key: impl Display, value: impl Display, why: impl Display) -> String {
    format!("{key} = {value}: {why}")
}

/// A key that does not apply: `key: why`.
pub(crate) fn misplaced(key: impl Display, why: impl Display) -> String {
    format!("{key}: {why}")
}

/// A string value as TOML writes it (quoted), for error messages.
pub(crate) fn quoted(s: &str) -> String {
    format!("{s:?}")
}

impl Config {
    /// The default run (an empty file), named "defaults" in errors.
    pub fn defaults() -> Config {
        Config {
            source: "defaults".into(),
            ..Config::default()
        }
    }

    /// Reads and validates the TOML file at `path`. Relative data paths in
    /// it are taken relative to the file's folder, and stored absolute (a
    /// checkpoint's config then works from any folder).
    pub fn load(path: &Path) -> Result<Config> {
        let file = path.display().to_string();
        let cannot_read = |detail: String| Error::Config {
            file: file.clone(),
            detail: format!("cannot read: {detail}"),
        };
        let bytes = crate::util::fs::read_regular(path, MAX_CONFIG_BYTES)
            .map_err(|e| cannot_read(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            cannot_read(format!(
                "not UTF-8 text (at byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        let mut config = Config::from_toml(&text, &file)?;
        // A bare file name has the empty path as parent: the current folder.
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let dir = std::path::absolute(dir).map_err(|e| config.error(format!("its folder: {e}")))?;
        config.data.resolve_paths(&dir);
        Ok(config)
    }

    /// Parses and validates TOML text; `source` names it in errors. A
    /// parse error gives the line and column and the parser's message,
    /// never the line itself (a wrong path may name a file that is not a
    /// config at all, and errors do not echo file content).
    pub fn from_toml(text: &str, source: &str) -> Result<Config> {
        let config_err = |detail: String| Error::Config {
            file: source.to_string(),
            detail,
        };
        let mut config: Config =
            toml::from_str(text).map_err(|e| config_err(toml_error(text, &e)))?;
        config.source = source.to_string();
        config.validate()?;
        // Split files replace the random split: fractions set beside them
        // would be silently unused, so they are refused here, where it is
        // known whether the file set them (a stored config always holds
        // them, and ignores them).
        if config.data.has_split_files() {
            let table: toml::Table =
                toml::from_str(text).map_err(|e| config_err(toml_error(text, &e)))?;
            let data = table.get("data").and_then(|d| d.as_table());
            if let Some(key) = ["validation", "test"]
                .into_iter()
                .find(|k| data.is_some_and(|d| d.contains_key(*k)))
            {
                return Err(config_err(misplaced(
                    format!("data.{key}"),
                    "not with data.validation_path / data.test_path: the files are the \
                     split, nothing is cut at random",
                )));
            }
        }
        Ok(config)
    }

    /// Parses and validates the JSON a checkpoint stores (`to_json`).
    pub fn from_json(text: &str, source: &str) -> Result<Config> {
        let mut config: Config = serde_json::from_str(text).map_err(|e| Error::Config {
            file: source.to_string(),
            detail: e.to_string(),
        })?;
        config.source = source.to_string();
        config.validate()?;
        Ok(config)
    }

    /// The config as JSON (for checkpoint metadata).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| self.error(format!("as JSON: {e}")))
    }

    /// An `Error::Config` naming this config's source.
    pub fn error(&self, detail: String) -> Error {
        Error::Config {
            file: self.source.clone(),
            detail,
        }
    }

    /// Checks every key that does not need the data: kinds, widths and
    /// hyper-parameters in their domains, and no key the chosen model
    /// kind, data source or optimiser does not use.
    pub fn validate(&self) -> Result<()> {
        let check = || -> std::result::Result<(), String> {
            self.model.sharing()?;
            self.model.activation()?;
            self.model.init()?;
            tasks::task_specs(&self.tasks)?;
            self.data.check(&self.tasks)?;
            self.train.check()?;
            let hard = matches!(self.model.kind.as_str(), "hard" | "hard_fused");
            if let (false, Some(i)) = (hard, self.tasks.iter().position(|t| t.adversarial)) {
                return Err(misplaced(
                    format!("tasks[{i}].adversarial"),
                    format!(
                        "only for model.kind = \"hard\" or \"hard_fused\" (this is {}): \
                         gradient reversal needs a shared trunk",
                        quoted(&self.model.kind)
                    ),
                ));
            }
            if self.train.reversal.is_some() && !self.tasks.iter().any(|t| t.adversarial) {
                return Err(misplaced(
                    "train.reversal",
                    "only for a model with an adversarial task (tasks[i].adversarial = true)",
                ));
            }
            Ok(())
        };
        check().map_err(|detail| self.error(detail))
    }

    /// The data, read or generated as `[data]` says (the synthetic
    /// benchmark and MultiMNIST are seeded by `train.seed`). First
    /// completes `[data]` as a run stores it: paths absolute, a CSV
    /// file's feature columns listed (`DataConfig::resolve`). With split
    /// files (`data.validation_path` / `test_path`) this is an error:
    /// use [`Config::split`].
    pub fn dataset(&mut self) -> Result<Dataset> {
        self.data.resolve(&self.tasks, &self.source)?;
        self.data.load(&self.tasks, self.train.seed, &self.source)
    }

    /// The data and its train / validation / test split, the one entry
    /// point a run needs: from split files when `[data]` names them, else
    /// cut at random from the fractions and `train.seed`. Completes
    /// `[data]` first, like [`Config::dataset`]. The dataset returned
    /// gives the schema (features, tasks): every sample for a random
    /// split, the training file with split files. An empty training
    /// split is an error naming it and its size. Then, as before,
    /// `fill_tasks` and `keep_only_task`.
    pub fn split(&mut self) -> Result<(Dataset, Split)> {
        self.data.resolve(&self.tasks, &self.source)?;
        self.data
            .load_split(&self.tasks, self.train.seed, &self.source)
    }

    /// When no `[[tasks]]` are given, takes every task of `data` with a
    /// linear head (what `train` did before configs existed).
    pub fn fill_tasks(&mut self, data: &Dataset) {
        if self.tasks.is_empty() {
            self.tasks = data
                .tasks()
                .iter()
                .map(|t| TaskConfig::from_kind(&t.name, t.targets.kind()))
                .collect();
        }
    }

    /// Keeps only the task `name` (a single-task baseline).
    pub fn keep_only_task(&mut self, name: &str) -> Result<()> {
        if !self.tasks.iter().any(|t| t.name == name) {
            let names: Vec<&str> = self.tasks.iter().map(|t| t.name.as_str()).collect();
            return Err(self.error(format!("--single-task '{name}': the tasks are {names:?}")));
        }
        self.tasks.retain(|t| t.name == name);
        Ok(())
    }

    /// The task specs (after `fill_tasks`).
    pub fn task_specs(&self) -> Result<Vec<TaskSpec>> {
        tasks::task_specs(&self.tasks).map_err(|d| self.error(d))
    }

    /// The model for `inputs` features (after `fill_tasks`): batch rows
    /// from `train.batch`.
    pub fn model_spec(&self, inputs: usize) -> Result<ModelSpec> {
        let fail = |d: String| self.error(d);
        Ok(ModelSpec {
            init: self.model.init().map_err(fail)?,
            rows: self.train.batch,
            inputs,
            activation: self.model.activation().map_err(fail)?,
            sharing: self.model.sharing().map_err(fail)?,
            tasks: self.task_specs()?,
        })
    }
}

/// The dotted key a TOML line assigns (`train.drop_last` for
/// `drop_last = 1` under `[train]`), when the line and its table header
/// are plain identifiers: it names the key at fault without echoing the
/// file (a non-config file named by mistake shows none of its text).
fn key_at(text: &str, line: usize) -> Option<String> {
    let plain = |k: &str| {
        !k.is_empty()
            && k.len() <= 64
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    let lines: Vec<&str> = text.lines().collect();
    let key = lines.get(line.checked_sub(1)?)?.split_once('=')?.0.trim();
    if !plain(key) {
        return None;
    }
    let table = lines[..line - 1].iter().rev().find_map(|l| {
        let l = l.trim();
        let inner = l.strip_prefix('[')?.strip_suffix(']')?;
        Some(
            inner
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string(),
        )
    });
    match table {
        Some(t) if plain(&t) => Some(format!("{t}.{key}")),
        Some(_) => None,
        None => Some(key.to_string()),
    }
}

/// A TOML error as "line L, column C (key): message", without the source
/// line the parser's own message quotes.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
            let start = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let column = 1 + String::from_utf8_lossy(&before[start..]).chars().count();
            match key_at(text, line) {
                Some(key) => format!("line {line}, column {column} ({key}): {message}"),
                None => format!("line {line}, column {column}: {message}"),
            }
        }
        None => message,
    }
}
