//! What a practitioner sees from the CLI: `eval --baseline` /
//! `--single-task`, progress lines, the JSON-lines log's timestamps and
//! epochs, and the plot. Runs go through `run_timed`: a hung run fails its
//! test.

use std::path::Path;
use std::process::Command;

use crate::common::{manytask, run_ok, run_timed, scratch_dir, RUN_SECS};

/// A tiny run of the two-task synthetic benchmark.
fn tiny_train() -> Command {
    let mut cmd = manytask();
    cmd.args(["train", "--tasks", "2", "--widths", "8"]);
    cmd
}

fn eval(checkpoint: &Path) -> Command {
    let mut cmd = manytask();
    cmd.arg("eval").arg("--checkpoint").arg(checkpoint);
    cmd
}

/// The number after "Δm% vs single-task baselines: ".
fn delta_m(stdout: &str) -> f64 {
    stdout
        .split("Δm% vs single-task baselines: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no Δm% line with a value: {stdout}"))
}

/// Whether the metrics table has a row for `task`.
fn has_row(stdout: &str, task: &str) -> bool {
    stdout
        .lines()
        .any(|l| l.trim_start().starts_with(&format!("{task} ")))
}

/// Two single-task baselines and a multi-task checkpoint, then `eval`
/// with `--baseline` and `--single-task`; the multi-task run also writes
/// the log and plot the other checks read.
#[test]
fn eval_reports_delta_m_and_single_tasks_and_the_log_and_plot_carry_epochs() {
    let dir = scratch_dir("cli-output");
    let base = dir.join("b.json");
    let _ = std::fs::remove_file(&base);
    for task in ["task0", "task1"] {
        run_ok(
            tiny_train()
                .args([
                    "--steps",
                    "3",
                    "--batch",
                    "16",
                    "--quiet",
                    "--single-task",
                    task,
                ])
                .arg("--save")
                .arg(dir.join(format!("{task}.safetensors")))
                .arg("--baseline")
                .arg(&base),
        );
    }
    let mtl = dir.join("mtl.safetensors");
    let log = dir.join("mtl.jsonl");
    let plot = dir.join("mtl.svg");
    // 1600 training rows / 256: 7 steps per epoch, so two epochs.
    let (train_out, _) = run_ok(
        tiny_train()
            .args(["--epochs", "2", "--batch", "256", "--every", "2", "--save"])
            .arg(&mtl)
            .arg("--log")
            .arg(&log)
            .arg("--plot")
            .arg(&plot),
    );

    // Δm% of the multi-task checkpoint on the test split: a number, one
    // column per task row.
    let (stdout, stderr) = run_ok(eval(&mtl).arg("--baseline").arg(&base));
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(delta_m(&stdout).is_finite(), "{stdout}");
    assert!(
        has_row(&stdout, "task0") && has_row(&stdout, "task1"),
        "{stdout}"
    );

    // A single-task checkpoint against its own baseline (the same test
    // split, the same parameters): Δm% is 0.
    let (stdout, _) = run_ok(
        eval(&dir.join("task0.safetensors"))
            .args(["--single-task", "task0", "--baseline"])
            .arg(&base),
    );
    assert!(delta_m(&stdout).abs() < 0.005, "{stdout}");
    assert!(
        has_row(&stdout, "task0") && !has_row(&stdout, "task1"),
        "{stdout}"
    );

    // One task of the multi-task checkpoint.
    let (stdout, _) = run_ok(eval(&mtl).args(["--single-task", "task1"]));
    assert!(
        has_row(&stdout, "task1") && !has_row(&stdout, "task0"),
        "{stdout}"
    );
    let out = run_timed(eval(&mtl).args(["--single-task", "nope"]), RUN_SECS);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("'nope'"), "{err}");

    // Every JSON-lines record has a Unix time and a 1-based epoch; both
    // epochs appear.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut epochs = Vec::new();
    for line in text.lines() {
        let record: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let time = record["time"].as_f64();
        assert!(time.is_some_and(|t| t > 1.6e9), "no time: {line}");
        let epoch = record["epoch"]
            .as_u64()
            .unwrap_or_else(|| panic!("no epoch: {line}"));
        assert!((1..=2).contains(&epoch), "{line}");
        epochs.push(epoch);
    }
    assert!(epochs.contains(&1) && epochs.contains(&2), "{text}");

    // The training output named the epochs.
    assert!(train_out.contains("epoch 2/2"), "{train_out}");
    // The plot: x-axis in epochs, a validation panel with a marker per
    // pass and task (at least 2 passes × 2 tasks), both loss panels.
    let svg = std::fs::read_to_string(&plot).unwrap();
    for label in [
        "\nepoch\n",
        "validation loss per epoch",
        "training loss (log scale",
        "training loss / first sampled loss",
    ] {
        assert!(svg.contains(label), "no '{label}' in the plot");
    }
    assert!(svg.matches("<circle").count() >= 4, "{svg}");
    std::fs::remove_dir_all(&dir).ok();
}
