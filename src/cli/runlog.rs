//! `train --log F.jsonl`: one JSON object per line, a step record every
//! `--every` steps and an epoch record with validation metrics at every
//! epoch end. The schema is documented in the README ("Training output").

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use crate::cli::metrics::Metrics;
use crate::error::{Error, Result};

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

/// One step record's contents.
pub struct StepRecord<'a> {
    /// Steps done.
    pub step: usize,
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

    /// `{"step":N,"losses":[…],"weights":[…]}`, plus `"regularisers":[…]`
    /// and `"orthogonality":[…]` when the model has them.
    pub fn step(&mut self, r: &StepRecord) -> Result<()> {
        let mut line = format!(
            "{{\"step\":{},\"losses\":{},\"weights\":{}",
            r.step,
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

    /// `{"epoch":K,"step":N,"split":S,"metrics":{task:{metric:value}}}`
    /// after epoch K (1-based) ended at step N.
    pub fn epoch(&mut self, epoch: u64, step: usize, split: &str, metrics: &Metrics) -> Result<()> {
        let tasks: Vec<String> = metrics
            .iter()
            .map(|(task, m)| {
                let values: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{}:{}", json_string(k), json_number(*v, v)))
                    .collect();
                format!("{}:{{{}}}", json_string(task), values.join(","))
            })
            .collect();
        let line = format!(
            "{{\"epoch\":{epoch},\"step\":{step},\"split\":{},\"metrics\":{{{}}}}}",
            json_string(split),
            tasks.join(",")
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_valid_json_with_escaped_names() {
        let dir = std::env::temp_dir().join(format!("manytask-runlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.jsonl");
        let mut log = RunLog::create(&path).unwrap();
        log.step(&StepRecord {
            step: 3,
            losses: &[1.5, f32::NAN],
            weights: &[1.0, 0.25],
            regularisers: &[],
            orthogonality: &[0.125],
        })
        .unwrap();
        let metrics: Metrics = vec![("a \"quoted\"\\task".into(), vec![("mse", 0.5)])];
        log.epoch(1, 3, "validation", &metrics).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(
            lines[0],
            serde_json::json!({"step":3,"losses":[1.5,null],"weights":[1,0.25],"orthogonality":[0.125]})
        );
        assert_eq!(
            lines[1],
            serde_json::json!({"epoch":1,"step":3,"split":"validation",
                "metrics":{"a \"quoted\"\\task":{"mse":0.5}}})
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
