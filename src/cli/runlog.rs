//! `train --log F.jsonl`: one JSON object per line, a step record every
//! `--every` steps and an epoch record with validation metrics at every
//! validation pass (each epoch end, and the end of a run stopping
//! mid-epoch). A metric over zero samples is `null`, and each task's
//! `samples` says how many counted. Every record carries `"time"`, the
//! wall-clock time it was written as Unix seconds with milliseconds (UTC,
//! e.g. `1764712345.678`), and `"epoch"`, the 1-based epoch it belongs to;
//! the times make two logs of the same seed differ, the rest is
//! deterministic. An observer of the trainer's events.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::train::{EvaluationEvent, GateReport, Metrics, Observer, StepEvent};

/// A JSON array of numbers; non-finite values are written as `null`
/// (JSON has no NaN or infinity).
pub fn json_list(v: &[f32]) -> String {
    let items: Vec<String> = v.iter().map(|&x| json_number(x as f64, x)).collect();
    format!("[{}]", items.join(","))
}

/// `shown` printed with Rust's shortest round-trip form, or `null`.
fn json_number(value: f64, shown: impl std::fmt::Display) -> String {
    if value.is_finite() {
        format!("{shown}")
    } else {
        "null".into()
    }
}

/// A JSON string literal, escaped (task names come from data files).
fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// A value that may be missing: the number, or `null`.
fn json_option(v: Option<f64>) -> String {
    v.map_or_else(|| "null".into(), |v| json_number(v, v))
}

/// Now as Unix seconds with milliseconds, e.g. `1764712345.678` (a
/// clock before 1970 writes 0).
fn unix_time() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// One step record's contents.
pub struct StepRecord<'a> {
    /// Steps done.
    pub step: usize,
    /// The epoch the step belongs to (1-based).
    pub epoch: usize,
    /// The learning rate of that step.
    pub lr: f32,
    /// Per-task losses of that step.
    pub losses: &'a [f32],
    /// The task coefficients the step used.
    pub weights: &'a [f32],
    /// Soft sharing's regulariser values (`Program::regulariser_values`);
    /// empty for other models, and then not written.
    pub regularisers: &'a [f32],
    /// Sluice's subspace orthogonality values
    /// (`Program::orthogonality_values`); empty: not written.
    pub orthogonality: &'a [f32],
}

/// `{"experts":[names],"tasks":{task:{"mass":[per expert],"active":a,"entropy":h}}}`.
fn gates_json(gates: &GateReport) -> String {
    let names: Vec<String> = gates.experts.iter().map(|n| json_string(n)).collect();
    let tasks: Vec<String> = gates
        .tasks
        .iter()
        .map(|t| {
            format!(
                "{}:{{\"mass\":{},\"active\":{},\"entropy\":{}}}",
                json_string(&t.task),
                json_list(&t.mass),
                json_number(t.active, t.active),
                json_number(t.entropy, t.entropy)
            )
        })
        .collect();
    format!(
        "{{\"experts\":[{}],\"tasks\":{{{}}}}}",
        names.join(","),
        tasks.join(",")
    )
}

/// An open log file.
pub struct RunLog {
    path: PathBuf,
    file: BufWriter<File>,
}

impl RunLog {
    /// Creates (or truncates) the log file.
    pub fn create(path: &Path) -> Result<RunLog> {
        let file = File::create(path).map_err(|e| Error::Data {
            file: path.display().to_string(),
            detail: format!("--log: {e}"),
        })?;
        Ok(RunLog {
            path: path.to_path_buf(),
            file: BufWriter::new(file),
        })
    }

    /// `{"time":T,"step":N,"epoch":K,"lr":…,"losses":[…],"weights":[…]}`,
    /// plus `"regularisers":[…]` and `"orthogonality":[…]` when the model
    /// has them.
    pub fn step(&mut self, r: &StepRecord) -> Result<()> {
        let mut line = format!(
            "{{\"time\":{},\"step\":{},\"epoch\":{},\"lr\":{},\"losses\":{},\"weights\":{}",
            unix_time(),
            r.step,
            r.epoch,
            json_number(r.lr as f64, r.lr),
            json_list(r.losses),
            json_list(r.weights)
        );
        if !r.regularisers.is_empty() {
            line.push_str(&format!(",\"regularisers\":{}", json_list(r.regularisers)));
        }
        if !r.orthogonality.is_empty() {
            line.push_str(&format!(
                ",\"orthogonality\":{}",
                json_list(r.orthogonality)
            ));
        }
        line.push('}');
        self.write_line(&line)
    }

    /// `{"time":T,"epoch":K,"step":N,"complete":B,"split":S,"metrics":{task:{metric:value,
    /// "samples":n}}}` after a validation pass in epoch K (1-based; B
    /// false when the run ended mid-epoch) at step N; classification tasks
    /// add `"per_class_accuracy":[…]`; a mixture of experts adds
    /// `"gates":{"experts":[…],"tasks":{task:{"mass":[…],"active":a,"entropy":h}}}`
    /// (its task gates over the split, `train::GateReport`).
    pub fn epoch(
        &mut self,
        epoch: usize,
        step: usize,
        complete: bool,
        metrics: &Metrics,
    ) -> Result<()> {
        let tasks: Vec<String> = metrics
            .tasks
            .iter()
            .map(|t| {
                let mut values: Vec<String> = t
                    .values
                    .iter()
                    .map(|(k, v)| format!("{}:{}", json_string(k), json_option(*v)))
                    .collect();
                if !t.per_class_accuracy.is_empty() {
                    let per_class: Vec<String> = t
                        .per_class_accuracy
                        .iter()
                        .map(|v| json_option(*v))
                        .collect();
                    values.push(format!("\"per_class_accuracy\":[{}]", per_class.join(",")));
                }
                values.push(format!("\"samples\":{}", t.labelled));
                format!("{}:{{{}}}", json_string(&t.task), values.join(","))
            })
            .collect();
        let mut line = format!(
            "{{\"time\":{},\"epoch\":{epoch},\"step\":{step},\"complete\":{complete},\"split\":{},\"metrics\":{{{}}}",
            unix_time(),
            json_string(&metrics.split),
            tasks.join(",")
        );
        if let Some(gates) = &metrics.gates {
            line.push_str(&format!(",\"gates\":{}", gates_json(gates)));
        }
        line.push('}');
        self.write_line(&line)
    }

    /// Writes and flushes one record, so a run that stops keeps its log.
    fn write_line(&mut self, line: &str) -> Result<()> {
        writeln!(self.file, "{line}")
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::Data {
                file: self.path.display().to_string(),
                detail: format!("--log: {e}"),
            })
    }
}

impl Observer for RunLog {
    fn on_step(&mut self, e: &StepEvent) -> Result<()> {
        match e.losses {
            Some(losses) if e.logged => self.step(&StepRecord {
                step: e.step,
                epoch: e.epoch,
                lr: e.lr,
                losses,
                weights: e.weights,
                regularisers: e.regularisers,
                orthogonality: e.orthogonality,
            }),
            _ => Ok(()),
        }
    }

    fn on_evaluation(&mut self, e: &EvaluationEvent) -> Result<()> {
        self.epoch(e.epoch, e.step, e.complete, e.metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{TaskGateReport, TaskMetrics};

    #[test]
    fn records_are_valid_json_with_escaped_names() {
        let dir = std::env::temp_dir().join(format!("manytask-runlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.jsonl");
        let mut log = RunLog::create(&path).unwrap();
        log.step(&StepRecord {
            step: 3,
            epoch: 1,
            lr: 0.5,
            losses: &[1.5, f32::NAN],
            weights: &[1.0, 0.25],
            regularisers: &[],
            orthogonality: &[0.125],
        })
        .unwrap();
        let metrics = Metrics {
            split: "validation".into(),
            rows: 4,
            tasks: vec![
                TaskMetrics {
                    task: "a \"quoted\"\\task".into(),
                    labelled: 4,
                    values: vec![("mse".into(), Some(0.5))],
                    per_class_accuracy: Vec::new(),
                },
                TaskMetrics {
                    task: "b".into(),
                    labelled: 0,
                    values: vec![("accuracy".into(), None)],
                    per_class_accuracy: vec![None, None],
                },
            ],
            gates: Some(GateReport {
                experts: vec!["0".into(), "shared.0".into()],
                tasks: vec![TaskGateReport {
                    task: "b".into(),
                    mass: vec![0.25, 0.75],
                    active: 2.0,
                    entropy: 0.5,
                }],
            }),
        };
        log.epoch(1, 3, true, &metrics).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        // The times vary run to run: checked present and plausible, then
        // left out of the comparison.
        for line in &mut lines {
            let time = line
                .as_object_mut()
                .and_then(|o| o.remove("time"))
                .and_then(|t| t.as_f64());
            assert!(time.is_some_and(|t| t > 1.6e9), "{line}");
        }
        assert_eq!(
            lines[0],
            serde_json::json!({"step":3,"epoch":1,"lr":0.5,"losses":[1.5,null],"weights":[1,0.25],"orthogonality":[0.125]})
        );
        assert_eq!(
            lines[1],
            serde_json::json!({"epoch":1,"step":3,"complete":true,"split":"validation",
                "metrics":{"a \"quoted\"\\task":{"mse":0.5,"samples":4},
                    "b":{"accuracy":null,"per_class_accuracy":[null,null],"samples":0}},
                "gates":{"experts":["0","shared.0"],
                    "tasks":{"b":{"mass":[0.25,0.75],"active":2,"entropy":0.5}}}})
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
