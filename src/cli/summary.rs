//! The table `train` prints at the end: per-task test metrics, Δm% against
//! single-task baselines when given, and what the run cost.

use crate::cli::baseline::DeltaM;
use crate::cli::metrics::Metrics;

/// What the footer reports about the run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunStats {
    /// Optimiser steps taken.
    pub steps: usize,
    /// Wall time of the training loop.
    pub seconds: f64,
    /// The last step's dispatches and submits (`StepReport`); None with no step.
    pub last_step: Option<(u64, u64)>,
}

/// A split's per-task metrics as an aligned table (`train` and `eval`
/// print the same): a `"<split> split (N samples):"` line, a header, one
/// row per task (metric columns in first-seen order, '-' where a task has
/// no such metric; a Δm% column with `delta`).
pub fn metrics_table(
    split: &str,
    rows: usize,
    metrics: &Metrics,
    delta: Option<&DeltaM>,
) -> String {
    let mut columns: Vec<&str> = Vec::new();
    for (_, m) in metrics {
        for (name, _) in m {
            if !columns.contains(name) {
                columns.push(name);
            }
        }
    }
    let name_width = metrics
        .iter()
        .map(|(n, _)| n.chars().count())
        .chain(["task".len()])
        .max()
        .unwrap_or(4);
    let mut out = format!("{split} split ({rows} samples):\n");
    let mut header = format!("  {:<name_width$}", "task");
    for c in &columns {
        header.push_str(&format!("  {c:>12}"));
    }
    if delta.is_some() {
        header.push_str(&format!("  {:>9}", "Δm%"));
    }
    out.push_str(header.trim_end());
    out.push('\n');
    for (t, (name, m)) in metrics.iter().enumerate() {
        let mut row = format!("  {name:<name_width$}");
        for c in &columns {
            match m.iter().find(|(k, _)| k == c) {
                Some((_, v)) => row.push_str(&format!("  {v:>12.4}")),
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
    out
}

/// The summary as text, one line per row, every line ending in '\n': the
/// test split's [`metrics_table`], the overall Δm% with `delta`, and a
/// footer with the run's speed and per-step cost.
pub fn format_summary(
    test_rows: usize,
    metrics: &Metrics,
    delta: Option<&DeltaM>,
    stats: &RunStats,
) -> String {
    let mut out = metrics_table("test", test_rows, metrics, delta);
    if let Some(d) = delta {
        out.push_str(&format!(
            "Δm% vs single-task baselines: {} (mean over {} task-metric pair(s); positive = multi-task better)\n",
            percent(d.overall),
            d.pairs
        ));
    }
    let rate = stats.steps as f64 / stats.seconds.max(1e-9);
    out.push_str(&format!(
        "{} steps in {:.1} s ({rate:.1} steps/s)",
        stats.steps, stats.seconds
    ));
    if let Some((dispatches, submits)) = stats.last_step {
        out.push_str(&format!(
            "; last step: {dispatches} dispatches, {submits} submit(s)"
        ));
    }
    out.push('\n');
    out
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

    fn metrics() -> Metrics {
        vec![
            ("depth".into(), vec![("mse", 0.25), ("mae", 1234.5)]),
            ("segmentation".into(), vec![("accuracy", 0.875)]),
        ]
    }

    const STATS: RunStats = RunStats {
        steps: 400,
        seconds: 20.0,
        last_step: Some((12, 1)),
    };

    #[test]
    fn summary_aligns_columns_and_marks_missing_metrics() {
        let text = format_summary(200, &metrics(), None, &STATS);
        let want = "\
test split (200 samples):
  task                   mse           mae      accuracy
  depth               0.2500     1234.5000             -
  segmentation             -             -        0.8750
400 steps in 20.0 s (20.0 steps/s); last step: 12 dispatches, 1 submit(s)
";
        assert_eq!(text, want, "\n{text}");
    }

    #[test]
    fn summary_with_a_baseline_adds_a_delta_column_and_the_overall_line() {
        let delta = DeltaM {
            per_task: vec![
                ("depth".into(), Some(12.345)),
                ("segmentation".into(), None),
            ],
            overall: Some(-3.0),
            pairs: 2,
            missing: vec!["segmentation".into()],
        };
        let text = format_summary(200, &metrics(), Some(&delta), &STATS);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].ends_with("accuracy        Δm%"), "{text}");
        assert!(lines[2].ends_with("-     +12.35"), "{text}");
        assert!(lines[3].ends_with("0.8750          -"), "{text}");
        assert!(
            lines[4].starts_with("Δm% vs single-task baselines: -3.00 (mean over 2"),
            "{text}"
        );
        // Every table row is as wide as the header.
        let width = |l: &str| l.chars().count();
        assert!(
            lines[1..4].iter().all(|l| width(l) == width(lines[1])),
            "{text}"
        );
    }
}
