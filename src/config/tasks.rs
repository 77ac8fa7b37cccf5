//! `[[tasks]]`: each task's name, kind and head, as `arch::TaskSpec`.

use serde::{Deserialize, Serialize};

use super::{invalid, misplaced, quoted};
use crate::types::{TaskKind, TaskSpec};

/// One `[[tasks]]` entry.
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
            adversarial: false,
        }
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
        let mut spec = TaskSpec::new(&task.name, task.kind(&key)?, &task.hidden);
        spec.masked = true;
        spec.adversarial = task.adversarial;
        specs.push(spec);
    }
    Ok(specs)
}
