//! The table `train` prints at the end: per-task test metrics, Δm% against
//! single-task baselines when given, and what the run cost. A metric over
//! zero samples prints as `-`, with a line saying why.

use crate::error::Result;
use std::path::Path;

use crate::train::baseline::{self, Baseline, DeltaM};
use crate::train::{EndEvent, Metrics, Observer, StepEvent, StopReason};

/// What the footer reports about the run (an observer of the trainer's
/// events).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunStats {
    /// Optimiser steps this run took.
    pub steps: usize,
    /// Wall time of the training loop (validation passes included).
    pub seconds: f64,
    /// The last step's dispatches and submits; None with no step.
    pub last_step: Option<(u64, u64)>,
    /// Early stopping ended the run after this epoch.
    pub stopped_early: Option<usize>,
}

impl Observer for RunStats {
    fn on_step(&mut self, e: &StepEvent) -> Result<()> {
        self.last_step = Some((e.dispatches, e.submits));
        Ok(())
    }

    fn on_end(&mut self, e: &EndEvent) -> Result<()> {
        self.steps = e.steps_run;
        self.seconds = e.elapsed.as_secs_f64();
        if let StopReason::EarlyStopped { epoch } = e.reason {
            self.stopped_early = Some(epoch);
        }
        Ok(())
    }
}

/// A split's per-task metrics as an aligned table (`train` and `eval`
/// print the same): a `"<split> split (N samples):"` line, a header, one
/// row per task (metric columns in first-seen order, '-' where a task has
/// no such metric or no value; a Δm% column with `delta`), then, not
/// indented, a line per task without samples saying why, and each
/// classification task's per-class accuracy.
pub fn metrics_table(metrics: &Metrics, delta: Option<&DeltaM>) -> String {
    let mut columns: Vec<&str> = Vec::new();
    for t in &metrics.tasks {
        for (name, _) in &t.values {
            if !columns.contains(&name.as_str()) {
                columns.push(name);
            }
        }
    }
    let name_width = metrics
        .tasks
        .iter()
        .map(|t| t.task.chars().count())
        .chain(["task".len()])
        .max()
        .unwrap_or(4);
    let mut out = format!("{} split ({} samples):\n", metrics.split, metrics.rows);
    let mut header = format!("  {:<name_width$}", "task");
    for c in &columns {
        header.push_str(&format!("  {c:>12}"));
    }
    if delta.is_some() {
        header.push_str(&format!("  {:>9}", "Δm%"));
    }
    out.push_str(header.trim_end());
    out.push('\n');
    for (t, task) in metrics.tasks.iter().enumerate() {
        let mut row = format!("  {:<name_width$}", task.task);
        for c in &columns {
            match task
                .values
                .iter()
                .find(|(k, _)| k == c)
                .and_then(|(_, v)| *v)
            {
                Some(v) => row.push_str(&format!("  {v:>12.4}")),
                None => row.push_str(&format!("  {:>12}", "-")),
            }
        }
        if let Some(d) = delta {
            row.push_str(&format!(
                "  {:>9}",
                percent(d.per_task.get(t).and_then(|p| p.1))
            ));
        }
        out.push_str(&row);
        out.push('\n');
    }
    for task in &metrics.tasks {
        if let Some(why) = metrics.why_empty(task) {
            out.push_str(&format!("no value ('-') for task '{}': {why}\n", task.task));
        }
    }
    for task in metrics.tasks.iter().filter(|t| t.labelled > 0) {
        if task.per_class_accuracy.is_empty() {
            continue;
        }
        let cells: Vec<String> = task
            .per_class_accuracy
            .iter()
            .enumerate()
            .map(|(c, v)| match v {
                Some(v) => format!("{c}:{v:.3}"),
                None => format!("{c}:-"),
            })
            .collect();
        out.push_str(&format!(
            "per-class accuracy of task '{}': {}\n",
            task.task,
            cells.join(" ")
        ));
    }
    out
}

/// The summary as text, one line per row, every line ending in '\n': the
/// test split's [`metrics_table`], the overall Δm% with `delta`, and a
/// footer with the run's speed and per-step cost.
pub fn format_summary(metrics: &Metrics, delta: Option<&DeltaM>, stats: &RunStats) -> String {
    let mut out = metrics_table(metrics, delta);
    if let Some(d) = delta {
        out.push_str(&delta_line(d));
    }
    if let Some(epoch) = stats.stopped_early {
        out.push_str(&format!(
            "early stopping: the watched validation metric stopped improving; stopped after epoch {epoch}\n"
        ));
    }
    let rate = stats.steps as f64 / stats.seconds.max(1e-9);
    out.push_str(&format!(
        "{} steps in {:.1} s ({} steps/s)",
        stats.steps,
        stats.seconds,
        super::progress::sig4(rate as f32)
    ));
    if let Some((dispatches, submits)) = stats.last_step {
        out.push_str(&format!(
            "; last step: {dispatches} dispatches, {submits} submit(s)"
        ));
    }
    out.push('\n');
    out
}

/// Δm% of `metrics` against the baselines read from `path` (`train` and
/// `eval --baseline` alike), warning on stderr for each task the file
/// has no baseline for.
pub fn delta_against(metrics: &Metrics, baselines: &Baseline, path: &Path) -> DeltaM {
    let delta = baseline::delta_m(metrics, baselines);
    for task in &delta.missing {
        eprintln!(
            "warning: {} has no single-task baseline for task '{task}' \
             (make one with `manytask train --single-task {task} --baseline {}`)",
            path.display(),
            path.display()
        );
    }
    delta
}

/// The overall Δm% line (`train` and `eval --baseline` print the same),
/// ending in '\n'.
pub fn delta_line(d: &DeltaM) -> String {
    format!(
        "Δm% vs single-task baselines: {} (mean over {} task-metric pair(s); positive = multi-task better)\n",
        percent(d.overall),
        d.pairs
    )
}

fn percent(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{v:+.2}"),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::TaskMetrics;

    fn task(name: &str, labelled: usize, values: &[(&str, Option<f64>)]) -> TaskMetrics {
        TaskMetrics {
            task: name.into(),
            labelled,
            values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            per_class_accuracy: Vec::new(),
        }
    }

    fn metrics() -> Metrics {
        let mut seg = task("segmentation", 200, &[("accuracy", Some(0.875))]);
        seg.per_class_accuracy = vec![Some(0.5), None, Some(1.0)];
        Metrics {
            split: "test".into(),
            rows: 200,
            tasks: vec![
                task("depth", 200, &[("mse", Some(0.25)), ("mae", Some(1234.5))]),
                seg,
                task("normals", 0, &[("mse", None)]),
            ],
            gates: None,
        }
    }

    const STATS: RunStats = RunStats {
        steps: 400,
        seconds: 20.0,
        last_step: Some((12, 1)),
        stopped_early: None,
    };

    #[test]
    fn summary_aligns_columns_and_marks_missing_metrics_and_why() {
        let text = format_summary(&metrics(), None, &STATS);
        let want = "\
test split (200 samples):
  task                   mse           mae      accuracy
  depth               0.2500     1234.5000             -
  segmentation             -             -        0.8750
  normals                  -             -             -
no value ('-') for task 'normals': none of the 200 samples of the test split is labelled for task 'normals'
per-class accuracy of task 'segmentation': 0:0.500 1:- 2:1.000
400 steps in 20.0 s (20.00 steps/s); last step: 12 dispatches, 1 submit(s)
";
        assert_eq!(text, want, "\n{text}");
    }

    #[test]
    fn summary_with_a_baseline_adds_a_delta_column_and_the_overall_line() {
        let delta = DeltaM {
            per_task: vec![
                ("depth".into(), Some(12.345)),
                ("segmentation".into(), None),
                ("normals".into(), None),
            ],
            overall: Some(-3.0),
            pairs: 2,
            missing: vec!["segmentation".into()],
        };
        let stats = RunStats {
            stopped_early: Some(3),
            ..STATS
        };
        let text = format_summary(&metrics(), Some(&delta), &stats);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].ends_with("accuracy        Δm%"), "{text}");
        assert!(lines[2].ends_with("-     +12.35"), "{text}");
        assert!(lines[3].ends_with("0.8750          -"), "{text}");
        assert!(
            lines[7].starts_with("Δm% vs single-task baselines: -3.00 (mean over 2"),
            "{text}"
        );
        assert!(lines[8].contains("stopped after epoch 3"), "{text}");
        // Every table row is as wide as the header.
        let width = |l: &str| l.chars().count();
        assert!(
            lines[1..5].iter().all(|l| width(l) == width(lines[1])),
            "{text}"
        );
    }
}
