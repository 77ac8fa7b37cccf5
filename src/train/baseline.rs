//! Single-task baselines and the Δm% of a multi-task run against them.
//!
//! `train --single-task NAME --baseline F` merges that task's test metrics
//! into `F`; `train --baseline F` (several tasks) reads `F` and reports
//! Δm%. The file is one JSON object, task name → metric name → value:
//!
//! ```json
//! {"task0":{"mse":0.33,"rmse":0.58,"mae":0.48},"task1":{"mse":7.3,"rmse":2.7,"mae":2.3}}
//! ```
//!
//! Δm% follows Maninis et al. 2019 ("Attentive single-tasking of multiple
//! tasks") as LibMTL computes it: positive means the multi-task model is
//! better than the single-task ones. It averages the task metrics
//! (accuracy, mse, rmse, mae), not the training loss (another view of the
//! same errors) nor the original-unit errors (the same relative change
//! as their standardised twins); a metric with no value is left out.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::train::metrics::{lower_is_better, Metrics};

/// Task name → metric name → value, as stored in a baseline file.
pub type Baseline = BTreeMap<String, BTreeMap<String, f64>>;

/// Δm% of one run against a baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct DeltaM {
    /// Per task of the run, in its order: the mean of its metrics' terms,
    /// or None when the baseline has none of them.
    pub per_task: Vec<(String, Option<f64>)>,
    /// The mean over every (task, metric) pair present in both; None when
    /// there is no such pair.
    pub overall: Option<f64>,
    /// How many (task, metric) pairs `overall` averages.
    pub pairs: usize,
    /// Tasks of the run the baseline does not have (a warning, not an error).
    pub missing: Vec<String>,
}

/// Δm% = (1/N) Σ (−1)^l (M_mt − M_st) / M_st × 100 over the N (task,
/// metric) pairs present in both the run and the baseline, with l = 1 when
/// lower is better (`lower_is_better`). A baseline value of 0 (or not
/// finite) cannot scale a difference: that pair is skipped.
pub fn delta_m(run: &Metrics, baseline: &Baseline) -> DeltaM {
    let mut all = Vec::new();
    let mut per_task = Vec::new();
    let mut missing = Vec::new();
    for t in &run.tasks {
        let task = &t.task;
        let Some(base) = baseline.get(task) else {
            missing.push(task.clone());
            per_task.push((task.clone(), None));
            continue;
        };
        let mut terms = Vec::new();
        for (metric, mt) in &t.values {
            if !counts_in_delta_m(metric) {
                continue;
            }
            let (Some(mt), Some(&st)) = (mt, base.get(metric)) else {
                continue;
            };
            if st == 0.0 || !st.is_finite() {
                continue;
            }
            let sign = if lower_is_better(metric) { -1.0 } else { 1.0 };
            terms.push(sign * (mt - st) / st * 100.0);
        }
        per_task.push((task.clone(), mean(&terms)));
        all.extend(terms);
    }
    DeltaM {
        per_task,
        overall: mean(&all),
        pairs: all.len(),
        missing,
    }
}

/// Whether Δm% averages `metric` (module docs).
fn counts_in_delta_m(metric: &str) -> bool {
    metric != "loss" && !metric.starts_with("orig_")
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn data_error(path: &Path, detail: String) -> Error {
    Error::Data {
        file: path.display().to_string(),
        detail,
    }
}

/// Reads a baseline file; an unreadable or malformed file is an error
/// naming it.
pub fn read(path: &Path) -> Result<Baseline> {
    if !path.exists() {
        return Err(data_error(
            path,
            "no such baseline file; write one first with train --single-task NAME --baseline FILE"
                .into(),
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| data_error(path, format!("reading the baseline: {e}")))?;
    parse(&text).map_err(|detail| data_error(path, format!("not a baseline file: {detail}")))
}

/// Parses `{task: {metric: number}}`; the error says what is wrong.
fn parse(text: &str) -> std::result::Result<Baseline, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let tasks = value.as_object().ok_or("expected a JSON object of tasks")?;
    let mut out = Baseline::new();
    for (task, metrics) in tasks {
        let metrics = metrics
            .as_object()
            .ok_or_else(|| format!("task '{task}': expected an object of metrics"))?;
        let mut m = BTreeMap::new();
        for (name, v) in metrics {
            let v = v
                .as_f64()
                .ok_or_else(|| format!("task '{task}', metric '{name}': expected a number"))?;
            m.insert(name.clone(), v);
        }
        out.insert(task.clone(), m);
    }
    Ok(out)
}

/// Writes `run`'s tasks into the baseline file at `path`: creates it, or
/// replaces those tasks in it and keeps the others. A task with no
/// labelled sample in the run's split has no metrics to record: an error
/// naming it, and the file is left as it was. The write is atomic (a
/// temporary file beside it, then a rename), so concurrent readers see
/// the old or the new file, never half of one.
pub fn merge_write(path: &Path, run: &Metrics) -> Result<()> {
    if let Some(t) = run.tasks.iter().find(|t| t.labelled == 0) {
        let why = run.why_empty(t).unwrap_or_default();
        return Err(data_error(
            path,
            format!("no baseline for task '{}' from zero samples: {why}", t.task),
        ));
    }
    let mut baseline = if path.exists() {
        read(path)?
    } else {
        Baseline::new()
    };
    for t in &run.tasks {
        let m = t
            .values
            .iter()
            .filter_map(|(k, v)| v.map(|v| (k.clone(), v)))
            .collect();
        baseline.insert(t.task.clone(), m);
    }
    let text = serde_json::to_string_pretty(&baseline)
        .map_err(|e| data_error(path, format!("serialising the baseline: {e}")))?;
    crate::util::fs::write_atomic(path, format!("{text}\n").as_bytes())
        .map_err(|e| data_error(path, format!("writing the baseline: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::train::metrics::TaskMetrics;

    fn task(name: &str, values: &[(&str, f64)]) -> TaskMetrics {
        TaskMetrics {
            task: name.into(),
            labelled: 4,
            values: values
                .iter()
                .map(|(k, v)| (k.to_string(), Some(*v)))
                .collect(),
            per_class_accuracy: Vec::new(),
        }
    }

    fn run() -> Metrics {
        Metrics {
            split: "test".into(),
            rows: 4,
            tasks: vec![
                task("a", &[("loss", 9.0), ("mse", 0.8), ("mae", 1.1)]),
                task("b", &[("accuracy", 0.9)]),
                task("c", &[("mse", 5.0)]),
            ],
            gates: None,
        }
    }

    fn baseline() -> Baseline {
        let mut b = Baseline::new();
        b.insert(
            "a".into(),
            [
                ("loss".into(), 1.0),
                ("mse".into(), 1.0),
                ("mae".into(), 1.0),
            ]
            .into(),
        );
        b.insert("b".into(), [("accuracy".into(), 0.75)].into());
        b
    }

    #[test]
    fn delta_m_signs_lower_is_better_metrics_and_averages_every_pair() {
        let d = delta_m(&run(), &baseline());
        // a/mse: −(0.8 − 1)/1 = +20 (lower is better: an improvement);
        // a/mae: −(1.1 − 1)/1 = −10 (worse); b/accuracy: +(0.9 − 0.75)/0.75 = +20.
        let close = |x: Option<f64>, want: f64| (x.unwrap() - want).abs() < 1e-9;
        assert!(close(d.per_task[0].1, 5.0), "{d:?}");
        assert!(close(d.per_task[1].1, 20.0), "{d:?}");
        assert_eq!(d.per_task[2], ("c".into(), None));
        // (20 − 10 + 20) / 3 pairs, not the mean of the task means (12.5).
        assert!(close(d.overall, 10.0), "{d:?}");
        assert_eq!(d.pairs, 3);
        assert_eq!(d.missing, vec!["c".to_string()]);
    }

    #[test]
    fn delta_m_skips_zero_baselines_and_has_no_overall_without_pairs() {
        let mut b = Baseline::new();
        b.insert("a".into(), [("mse".into(), 0.0)].into());
        let d = delta_m(&run(), &b);
        assert_eq!(d.overall, None);
        assert_eq!(d.per_task[0].1, None);
        assert_eq!(d.missing, vec!["b".to_string(), "c".to_string()]);
    }

    #[test]
    fn metrics_without_a_value_are_skipped_and_never_recorded() {
        let mut r = run();
        r.tasks[0].values[2].1 = None;
        let d = delta_m(&r, &baseline());
        assert_eq!(d.pairs, 2, "{d:?}");
        r.tasks[1].labelled = 0;
        let path = std::env::temp_dir().join(format!("manytask-base-{}.json", std::process::id()));
        let e = merge_write(&path, &r).unwrap_err().to_string();
        assert!(e.contains("task 'b' from zero samples"), "{e}");
        assert!(!path.exists());
    }

    #[test]
    fn parse_rejects_what_is_not_a_baseline() {
        assert!(parse("{\"a\":{\"mse\":1.5}}").is_ok());
        for bad in [
            "",
            "[1]",
            "{\"a\":3}",
            "{\"a\":{\"mse\":\"x\"}}",
            "{\"a\":{",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
