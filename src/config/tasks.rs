//! `[[tasks]]`: each task's name, kind, head and loss reduction, as
//! `arch::TaskSpec`.
//!
//! Many identical tasks can share one entry: `names = ["mu", "alpha", …]`
//! with the shared settings (kind, outputs, hidden, reduction, …) stands
//! for one task per name, in order. The file is expanded as it is read
//! (`deserialize_tasks`), so `Config::tasks`, its error keys (`tasks[i]`
//! counts expanded tasks) and the resolved config a checkpoint stores hold
//! one entry per task.

use serde::{Deserialize, Deserializer, Serialize};

use super::{invalid, misplaced, quoted};
use crate::types::{Reduction, TaskKind, TaskSpec};

/// One task (one `[[tasks]]` entry, or one name of an entry's `names`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// The task's name in the data (a safetensors `y.<name>`, a CSV
    /// target, `task0`… of the synthetic benchmark).
    pub name: String,
    /// classification | regression | binary.
    pub kind: String,
    /// classification: the number of classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
    /// regression: the number of real outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<usize>,
    /// binary: the number of yes/no labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<usize>,
    /// Hidden widths of the head before its output layer (default none).
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// How the loss reduces the task's outputs (`types::Reduction`):
    /// "mean" (the default; PyTorch's `MSELoss()`, `BCEWithLogitsLoss()`,
    /// `CrossEntropyLoss()`), "sum" (summed over a row's outputs, averaged
    /// over labelled rows; regression and binary) or "half_sum" (½ of
    /// that; regression only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reduction: Option<String>,
    /// An adversarial auxiliary task: its head reads the trunk through a
    /// gradient reversal (`arch::TaskSpec::adversarial`; λ from
    /// `train.reversal`). Hard sharing only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adversarial: bool,
}

impl TaskConfig {
    /// A task with a linear head.
    pub fn from_kind(name: &str, kind: TaskKind) -> TaskConfig {
        let (kind_name, classes, outputs, labels) = match kind {
            TaskKind::Classification { classes } => ("classification", Some(classes), None, None),
            TaskKind::Regression { outputs } => ("regression", None, Some(outputs), None),
            TaskKind::Binary { labels } => ("binary", None, None, Some(labels)),
        };
        TaskConfig {
            name: name.to_string(),
            kind: kind_name.into(),
            classes,
            outputs,
            labels,
            hidden: Vec::new(),
            reduction: None,
            adversarial: false,
        }
    }

    /// The loss reduction (default mean), checked against the task kind;
    /// `key` is this entry's path (`tasks[2]`) for errors.
    pub fn reduction(&self, key: &str, kind: TaskKind) -> Result<Reduction, String> {
        let Some(name) = &self.reduction else {
            return Ok(Reduction::default());
        };
        let key = format!("{key}.reduction");
        let reduction = name
            .parse::<Reduction>()
            .map_err(|_| invalid(&key, quoted(name), "expected mean, sum or half_sum"))?;
        if !Reduction::valid_for(kind.loss()).contains(&reduction) {
            let valid: Vec<&str> = Reduction::valid_for(kind.loss())
                .iter()
                .map(|r| r.name())
                .collect();
            return Err(invalid(
                &key,
                quoted(name),
                format!(
                    "not defined for kind = \"{}\" (expected {})",
                    self.kind,
                    valid.join(" or ")
                ),
            ));
        }
        Ok(reduction)
    }

    /// The task kind; `key` is this entry's path (`tasks[2]`) for errors.
    pub fn kind(&self, key: &str) -> Result<TaskKind, String> {
        let counts = [
            ("classes", self.classes, "classification"),
            ("outputs", self.outputs, "regression"),
            ("labels", self.labels, "binary"),
        ];
        let Some(&(field, _, _)) = counts.iter().find(|c| c.2 == self.kind) else {
            return Err(invalid(
                format!("{key}.kind"),
                quoted(&self.kind),
                "expected classification, regression or binary",
            ));
        };
        for (other, value, kind) in counts {
            if other != field && value.is_some() {
                return Err(misplaced(
                    format!("{key}.{other}"),
                    format!(
                        "only for kind = \"{kind}\" (this task is {}; it takes {field})",
                        quoted(&self.kind)
                    ),
                ));
            }
        }
        let n = match counts.iter().find(|c| c.0 == field).and_then(|c| c.1) {
            Some(0) => return Err(invalid(format!("{key}.{field}"), 0, "must be ≥ 1")),
            Some(n) => n,
            None => {
                return Err(misplaced(
                    format!("{key}.{field}"),
                    format!("missing: a {} task needs it", self.kind),
                ))
            }
        };
        Ok(match field {
            "classes" => TaskKind::Classification { classes: n },
            "outputs" => TaskKind::Regression { outputs: n },
            _ => TaskKind::Binary { labels: n },
        })
    }
}

/// The task specs of `tasks`, checked: names non-empty and unique, kinds
/// and counts valid, hidden widths positive. Every task is masked, so
/// labels may be missing and evaluation may pad its last batch.
pub fn task_specs(tasks: &[TaskConfig]) -> Result<Vec<TaskSpec>, String> {
    let mut specs = Vec::with_capacity(tasks.len());
    for (i, task) in tasks.iter().enumerate() {
        let key = format!("tasks[{i}]");
        if task.name.is_empty() {
            return Err(invalid(format!("{key}.name"), "\"\"", "must not be empty"));
        }
        if tasks[..i].iter().any(|t| t.name == task.name) {
            return Err(invalid(
                format!("{key}.name"),
                quoted(&task.name),
                "names must be unique",
            ));
        }
        if let Some(j) = task.hidden.iter().position(|&w| w == 0) {
            return Err(invalid(
                format!("{key}.hidden[{j}]"),
                0,
                "widths must be positive",
            ));
        }
        let kind = task.kind(&key)?;
        let reduction = task.reduction(&key, kind)?;
        let mut spec = TaskSpec::new(&task.name, kind, &task.hidden).with_reduction(reduction);
        spec.masked = true;
        spec.adversarial = task.adversarial;
        specs.push(spec);
    }
    Ok(specs)
}

/// One `[[tasks]]` entry as written: a task with `name`, or one per name
/// of `names` with the same settings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskEntry {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    names: Option<Vec<String>>,
    kind: String,
    #[serde(default)]
    classes: Option<usize>,
    #[serde(default)]
    outputs: Option<usize>,
    #[serde(default)]
    labels: Option<usize>,
    #[serde(default)]
    hidden: Vec<usize>,
    #[serde(default)]
    reduction: Option<String>,
    #[serde(default)]
    adversarial: bool,
}

impl TaskEntry {
    /// The entry's tasks; `index` is its place in the file, for errors.
    fn expand(self, index: usize) -> Result<Vec<TaskConfig>, String> {
        let key = format!("tasks[{index}]");
        let names = match (self.name, self.names) {
            (Some(_), Some(_)) => {
                return Err(misplaced(
                    format!("{key}.names"),
                    "give name (one task) or names (one task per name), not both",
                ))
            }
            (None, None) => {
                return Err(misplaced(
                    format!("{key}.name"),
                    "missing: a task needs a name (or names = [...] for several)",
                ))
            }
            (Some(name), None) => vec![name],
            (None, Some(names)) if names.is_empty() => {
                return Err(invalid(
                    format!("{key}.names"),
                    "[]",
                    "needs at least one name",
                ))
            }
            (None, Some(names)) => names,
        };
        Ok(names
            .into_iter()
            .map(|name| TaskConfig {
                name,
                kind: self.kind.clone(),
                classes: self.classes,
                outputs: self.outputs,
                labels: self.labels,
                hidden: self.hidden.clone(),
                reduction: self.reduction.clone(),
                adversarial: self.adversarial,
            })
            .collect())
    }
}

/// Reads the `[[tasks]]` list, expanding each `names = [...]` entry into
/// one task per name (serde's `deserialize_with` for `Config::tasks`).
pub(crate) fn deserialize_tasks<'de, D>(deserializer: D) -> Result<Vec<TaskConfig>, D::Error>
where
    D: Deserializer<'de>,
{
    let entries = Vec::<TaskEntry>::deserialize(deserializer)?;
    let mut tasks = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        tasks.extend(entry.expand(i).map_err(serde::de::Error::custom)?);
    }
    Ok(tasks)
}
