//! The `manytask` binary end to end: exit codes and output formats.
//! Training runs go through `run_timed`: a hung run fails its test.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{manytask, scratch_dir};

/// Runs `cmd` to its end and returns its output; a run still going after
/// `secs` seconds is killed and fails the test.
pub fn run_timed(cmd: &mut Command, secs: u64) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).ok();
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            child.kill().ok();
            child.wait().ok();
            panic!("still running after {secs} s, killed: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// The time bound of one small training run (generous: the suite shares
/// two slow cores).
const RUN_SECS: u64 = 300;

#[test]
fn info_lists_every_adapter_with_features_and_limits() {
    let out = manytask().arg("info").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let adapters = crate::common::contexts();
    for ctx in adapters {
        assert!(text.contains(&format!("{:?}", ctx.backend())), "{text}");
    }
    assert_eq!(text.matches("adapter ").count(), adapters.len(), "{text}");
    for key in [
        "device type",
        "driver",
        "subgroups",
        "max storage binding",
        "workgroups / dimension",
    ] {
        assert!(text.contains(key), "missing {key}: {text}");
    }
}

#[test]
fn validate_json_prints_one_passing_object_per_case_and_adapter() {
    let out = manytask()
        .args(["validate", "--backend", "all", "--json", "--filter", "n=7"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    let per_adapter = manytask::conformance::all_cases()
        .iter()
        .filter(|c| format!("{} {}", c.kernel, c.case).contains("n=7"))
        .count();
    assert_eq!(
        lines.len(),
        per_adapter * crate::common::contexts().len(),
        "{text}"
    );
    for line in lines {
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
        for key in [
            "\"adapter\":",
            "\"backend\":",
            "\"kernel\":",
            "\"case\":",
            "\"max_abs_err\":",
            "\"max_rel_err\":",
            "\"pass\":true",
        ] {
            assert!(line.contains(key), "{key} missing in {line}");
        }
    }
}

#[test]
fn validate_with_a_filter_matching_nothing_exits_non_zero() {
    let out = manytask()
        .args(["validate", "--filter", "no such kernel"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--list"));
}

#[test]
fn an_unknown_backend_is_rejected_with_the_valid_names() {
    let out = manytask()
        .args(["validate", "--backend", "cuda"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("vulkan"));
}

/// With the Vulkan loader pointed at no driver there is no Vulkan adapter
/// at all: the binary must say how to get one and exit non-zero.
#[test]
fn no_vulkan_driver_gives_an_install_hint_and_exit_code_2() {
    let out = manytask()
        .args(["validate", "--backend", "vulkan", "--filter", "n=1 "])
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no GPU adapter found") && stderr.contains("mesa-vulkan-drivers"),
        "{stderr}"
    );
}

#[test]
fn bench_json_prints_the_roofline_and_the_documented_fields() {
    let out = manytask()
        .args(["bench", "--quick", "--json", "--filter", "masked_losses"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // The two roofline rows, then the one row the filter keeps.
    assert_eq!(lines.len(), 3, "{text}");
    let keys = [
        "\"kernel\":",
        "\"variant\":",
        "\"layout\":",
        "\"m\":",
        "\"n\":",
        "\"k\":",
        "\"dtype\":",
        "\"median_ms\":",
        "\"gflops\":",
        "\"gbps\":",
        "\"roofline_pct\":",
    ];
    for line in &lines {
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
        for key in keys {
            assert_eq!(line.matches(key).count(), 1, "{key} in {line}");
        }
    }
    assert!(lines[0].contains("\"variant\":\"fma_chain\"") && lines[0].contains("\"gbps\":null"));
    assert!(lines[1].contains("\"variant\":\"copy\"") && lines[1].contains("\"gflops\":null"));
    assert!(
        lines[2].contains("\"kernel\":\"masked_losses\"") && lines[2].contains("\"layout\":null")
    );
    // Measured numbers, not placeholders.
    let median: f64 = lines[2]
        .split("\"median_ms\":")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .expect("median_ms");
    assert!(median > 0.0, "{}", lines[2]);
}

#[test]
fn train_runs_the_embedded_benchmark_saves_and_reloads() {
    let dir = scratch_dir("cli-train");
    let ckpt = dir.join("model.safetensors");
    let log = dir.join("log.jsonl");
    let base = [
        "train", "--steps", "6", "--every", "3", "--batch", "16", "--tasks", "2", "--widths", "32",
    ];
    let out = run_timed(
        manytask()
            .args(base)
            .args(["--weighting", "mgda_ub", "--save"])
            .arg(&ckpt)
            .arg("--log")
            .arg(&log),
        RUN_SECS,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "manytask train on",
        "task0",
        "task1",
        "mse",
        "dispatches",
        "saved",
    ] {
        assert!(text.contains(want), "missing {want}: {text}");
    }
    let lines = std::fs::read_to_string(&log).unwrap();
    // Two step records, then the (partial) epoch's validation record.
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(lines
        .lines()
        .take(2)
        .all(|l| l.starts_with("{\"step\":") && l.contains("\"weights\":[")));
    assert!(
        lines.lines().nth(2).unwrap().starts_with("{\"epoch\":1,"),
        "{lines}"
    );
    // --init loads it; a checkpoint of another shape is refused.
    let ok = run_timed(manytask().args(base).arg("--init").arg(&ckpt), RUN_SECS);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let wrong = run_timed(
        manytask()
            .args([
                "train", "--steps", "1", "--batch", "16", "--tasks", "2", "--widths", "8", "--init",
            ])
            .arg(&ckpt),
        RUN_SECS,
    );
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("different model"));
}

#[test]
fn train_rejects_bad_options_with_clear_errors() {
    for (args, want) in [
        (
            vec!["train", "--weighting", "nope"],
            "unknown task weighting 'nope'",
        ),
        (vec!["train", "--model", "tower"], "--model 'tower'"),
        (vec!["train", "--optimizer", "lbfgs"], "--optimizer 'lbfgs'"),
        (
            vec!["train", "--single-task", "zzz", "--tasks", "2"],
            "--single-task 'zzz'",
        ),
        (
            vec!["train", "--data", "/nonexistent.safetensors"],
            "nonexistent",
        ),
    ] {
        let out = run_timed(manytask().args(&args), RUN_SECS);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn a_diverging_run_stops_naming_step_and_task_and_keeps_the_checkpoint() {
    let dir = scratch_dir("cli-nan");
    let ckpt = dir.join("good.safetensors");
    let base = [
        "train",
        "--steps",
        "4",
        "--every",
        "1",
        "--batch",
        "16",
        "--tasks",
        "2",
        "--widths",
        "16",
        "--optimizer",
        "sgd",
    ];
    let good = run_timed(manytask().args(base).arg("--save").arg(&ckpt), RUN_SECS);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let before = std::fs::read(&ckpt).unwrap();
    // lr 1e30 overflows the parameters to ±inf within a step or two.
    let bad = run_timed(
        manytask()
            .args(base)
            .args(["--lr", "1e30", "--save"])
            .arg(&ckpt),
        RUN_SECS,
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "a diverging run must fail: {err}");
    assert!(err.contains("step ") && err.contains("task '"), "{err}");
    assert!(err.contains("NaN") || err.contains("inf"), "{err}");
    assert_eq!(
        std::fs::read(&ckpt).unwrap(),
        before,
        "the last good checkpoint must stay as it was"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_thousand_synthetic_tasks_are_refused_at_once_with_the_limit() {
    // Generating them would take minutes before step 1 (it printed
    // nothing in 600 s): refused before any GPU work, naming the limit.
    let start = std::time::Instant::now();
    let out = run_timed(manytask().args(["train", "--tasks", "1000", "--quiet"]), 60);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("1000 tasks") && err.contains("at most 85 tasks"),
        "{err}"
    );
    assert!(start.elapsed().as_secs() < 30, "took {:?}", start.elapsed());
}

/// The step a diverged run names ("training diverged at step N: ...").
fn diverged_step(stderr: &str) -> u64 {
    let rest = stderr
        .split("diverged at step ")
        .nth(1)
        .unwrap_or_else(|| panic!("no divergence reported: {stderr}"));
    rest.split(':').next().unwrap().trim().parse().unwrap()
}

#[test]
fn a_divergence_between_loss_reads_names_its_true_step() {
    // Losses are read every step with --every 1, every 50 otherwise: the
    // GPU's non-finite watch must name the same (first) step either way.
    let run = |every: &str| {
        let out = run_timed(
            manytask().args([
                "train",
                "--steps",
                "20",
                "--batch",
                "16",
                "--tasks",
                "2",
                "--widths",
                "16",
                "--optimizer",
                "sgd",
                "--lr",
                "1e30",
                "--quiet",
                "--every",
                every,
            ]),
            RUN_SECS,
        );
        assert!(!out.status.success(), "lr 1e30 must diverge");
        diverged_step(&String::from_utf8_lossy(&out.stderr))
    };
    let every_step = run("1");
    let between_reads = run("50");
    assert!(every_step < 20, "diverged at step {every_step}");
    assert_eq!(
        between_reads, every_step,
        "read every 50 steps, the error must still name step {every_step}"
    );
}

fn run_ok(cmd: &mut Command) -> (String, String) {
    let out = run_timed(cmd, RUN_SECS);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    (stdout, stderr)
}

/// A small, quick run of the synthetic benchmark with `tasks` tasks.
fn small_train(tasks: &str) -> Command {
    let mut cmd = manytask();
    cmd.args([
        "train", "--batch", "256", "--tasks", tasks, "--widths", "16", "--every", "3",
    ]);
    cmd
}

#[test]
fn train_log_has_regulariser_values_and_a_validation_record_per_epoch() {
    let dir = scratch_dir("cli-log");
    for (model, key) in [("soft", "regularisers"), ("sluice", "orthogonality")] {
        let log = dir.join(format!("{model}.jsonl"));
        // 1600 training rows / 256 = 6.25: 7 steps per epoch, the last
        // one short (kept: drop_last is false).
        run_ok(
            small_train("2")
                .args(["--epochs", "2", "--model", model, "--log"])
                .arg(&log),
        );
        let text = std::fs::read_to_string(&log).unwrap();
        let records: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let steps: Vec<&serde_json::Value> = records
            .iter()
            .filter(|r| r.get("step").is_some() && r.get("epoch").is_none())
            .collect();
        let epochs: Vec<&serde_json::Value> = records
            .iter()
            .filter(|r| r.get("epoch").is_some())
            .collect();
        // Every 3 steps of 14, and the last.
        let logged: Vec<u64> = steps.iter().map(|r| r["step"].as_u64().unwrap()).collect();
        assert_eq!(logged, vec![3, 6, 9, 12, 14], "{model}: {text}");
        for r in &steps {
            let values = r[key]
                .as_array()
                .unwrap_or_else(|| panic!("{model}: no {key} in {r}"));
            assert!(
                !values.is_empty() && values.iter().all(|v| v.as_f64().is_some_and(|v| v >= 0.0)),
                "{r}"
            );
        }
        assert_eq!(epochs.len(), 2, "{model}: {text}");
        for (k, r) in epochs.iter().enumerate() {
            assert_eq!(r["epoch"], k as u64 + 1, "{r}");
            assert_eq!(r["step"], 7 * (k as u64 + 1), "{r}");
            assert_eq!(r["complete"], true, "{r}");
            assert_eq!(r["split"], "validation", "{r}");
            for task in ["task0", "task1"] {
                let mse = r["metrics"][task]["mse"].as_f64();
                assert!(mse.is_some_and(|m| m > 0.0), "{r}");
            }
        }
    }
}

#[test]
fn train_plot_draws_one_curve_per_task_in_each_panel() {
    let dir = scratch_dir("cli-plot");
    let svg = dir.join("curves.svg");
    let (stdout, _) = run_ok(small_train("3").args(["--steps", "8", "--plot"]).arg(&svg));
    // stdout is a pipe here: plain progress lines, no bar.
    assert!(stdout.contains("step      3/8  losses ["), "{stdout}");
    assert!(stdout.contains("plot: wrote"), "{stdout}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.starts_with("<svg") && text.trim_end().ends_with("</svg>"),
        "{text}"
    );
    // Curves are the 2-pixel polylines with more than two points (the
    // legend's swatches have two): three tasks, two panels.
    let curves = text
        .lines()
        .filter(|l| l.starts_with("<polyline") && l.contains("stroke-width=\"2\""))
        .filter_map(|l| l.split("points=\"").nth(1)?.split('"').next())
        .filter(|points| points.split_whitespace().count() > 2)
        .count();
    assert_eq!(curves, 6, "{text}");
    for task in ["task0", "task1", "task2"] {
        assert!(text.contains(task), "legend misses {task}");
    }
    // A path in a missing directory fails before training, naming the file.
    let out = run_timed(
        small_train("3").args(["--steps", "8", "--plot", "/nonexistent-dir/curves.svg"]),
        RUN_SECS,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("/nonexistent-dir/curves.svg") && stderr.contains("--plot"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("test split"));
}

/// Parses a summary row: the task name, then numbers ('-' skipped).
fn row(stdout: &str, task: &str) -> Vec<f64> {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{task} ")))
        .unwrap_or_else(|| panic!("no row for {task}: {stdout}"));
    line.split_whitespace()
        .skip(1)
        .filter_map(|c| c.parse().ok())
        .collect()
}

#[test]
fn train_baseline_workflow_writes_merges_and_reports_delta_m() {
    let dir = scratch_dir("cli-baseline");
    let file = dir.join("baseline.json");
    let _ = std::fs::remove_file(&file);
    for task in ["task0", "task1"] {
        let (stdout, _) = run_ok(
            small_train("2")
                .args([
                    "--steps",
                    "6",
                    "--quiet",
                    "--single-task",
                    task,
                    "--baseline",
                ])
                .arg(&file),
        );
        assert!(
            !stdout.contains("step "),
            "--quiet printed progress: {stdout}"
        );
    }
    let text = std::fs::read_to_string(&file).unwrap();
    let base: serde_json::Value = serde_json::from_str(&text).unwrap();
    for task in ["task0", "task1"] {
        for metric in ["mse", "rmse", "mae"] {
            assert!(
                base[task][metric].as_f64().is_some(),
                "{task}/{metric}: {text}"
            );
        }
    }
    let (stdout, stderr) = run_ok(
        small_train("2")
            .args(["--steps", "6", "--weighting", "uncertainty", "--baseline"])
            .arg(&file),
    );
    assert!(!stderr.contains("warning"), "{stderr}");
    // Δm% from the printed multi-task metrics, independently: mse, rmse and
    // mae are all lower-is-better, so each term is −(M_mt − M_st)/M_st.
    let mut terms = Vec::new();
    // Columns: loss, mse, rmse, mae (the loss is not a Δm% metric).
    for task in ["task0", "task1"] {
        let cells = row(&stdout, task);
        for (i, metric) in ["mse", "rmse", "mae"].into_iter().enumerate() {
            let st = base[task][metric].as_f64().unwrap();
            terms.push(-(cells[i + 1] - st) / st * 100.0);
        }
    }
    let want = terms.iter().sum::<f64>() / terms.len() as f64;
    let got: f64 = stdout
        .split("Δm% vs single-task baselines: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no Δm% line: {stdout}"));
    assert!(
        (got - want).abs() < 0.02 + 1e-3 * want.abs(),
        "got {got}, want {want}: {stdout}"
    );
    assert!(
        stdout.contains("mean over 6 task-metric pair(s)"),
        "{stdout}"
    );

    // A task missing from the baseline is a warning; a corrupt file an error
    // naming it, before any training.
    let (stdout, stderr) = run_ok(
        small_train("3")
            .args(["--steps", "3", "--baseline"])
            .arg(&file),
    );
    assert!(
        stderr.contains("warning:") && stderr.contains("'task2'"),
        "{stderr}"
    );
    assert!(
        row(&stdout, "task2").len() == 4,
        "no Δm% for task2: {stdout}"
    );
    let corrupt = dir.join("corrupt.json");
    std::fs::write(&corrupt, "{\"task0\": {\"mse\": ").unwrap();
    let out = run_timed(
        small_train("2")
            .args(["--steps", "3", "--baseline"])
            .arg(&corrupt),
        RUN_SECS,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("corrupt.json") && err.contains("not a baseline file"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("step "));
}

/// A config of a small synthetic benchmark: `samples` samples, 2 tasks of
/// 2 outputs on 8 inputs, a trunk of 8.
fn tiny_config(dir: &Path, samples: usize) -> PathBuf {
    let path = dir.join(format!("tiny-{samples}.toml"));
    let text = format!(
        "[model]\nwidths = [8]\n\n[data]\nsource = \"synthetic\"\ntasks = 2\nsamples = {samples}\n\
         inputs = 8\noutputs = 2\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_batch_larger_than_the_training_split_trains_or_fails_naming_the_split() {
    let dir = scratch_dir("cli-short");
    // 200 samples: 160 train. A batch of 161 is one short batch an epoch.
    let config = tiny_config(&dir, 200);
    let (stdout, _) = run_ok(
        manytask()
            .args([
                "train", "--batch", "161", "--steps", "3", "--quiet", "--config",
            ])
            .arg(&config),
    );
    assert!(
        stdout.contains("training: 3 steps of 161 rows (1 per epoch)"),
        "{stdout}"
    );
    assert!(stdout.contains("3 steps in"), "{stdout}");
    // Dropping the short batch leaves nothing: an error, not a hang.
    let out = run_timed(
        manytask()
            .args([
                "train",
                "--batch",
                "161",
                "--steps",
                "3",
                "--drop-last",
                "--config",
            ])
            .arg(&config),
        RUN_SECS,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the training split has 160 samples, fewer than one batch of 161"),
        "{stderr}"
    );
    // One sample: it trains, and the empty test split prints '-' and says why.
    let one = tiny_config(&dir, 1);
    let (stdout, _) = run_ok(
        manytask()
            .args(["train", "--steps", "2", "--quiet", "--config"])
            .arg(&one),
    );
    assert!(stdout.contains("test split (0 samples):"), "{stdout}");
    assert!(
        stdout.contains("no value ('-') for task 'task0': the test split is empty"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("0.0000"),
        "a metric over no sample: {stdout}"
    );
    // ... and no single-task baseline is recorded from it.
    let base = dir.join("never.json");
    let out = run_timed(
        manytask()
            .args([
                "train",
                "--steps",
                "2",
                "--single-task",
                "task0",
                "--config",
            ])
            .arg(&one)
            .arg("--baseline")
            .arg(&base),
        RUN_SECS,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no labelled sample of task 'task0'"),
        "{stderr}"
    );
    assert!(!base.exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_task_without_labels_prints_dashes_and_logs_nulls() {
    use manytask::data::safetensors::{write, Precision};
    use manytask::data::{Dataset, Targets, TaskData};
    let dir = scratch_dir("cli-unlabelled");
    let rows = 60;
    let x: Vec<f32> = (0..rows * 3).map(|i| (i % 7) as f32 / 7.0).collect();
    let tasks = vec![
        TaskData::new(
            "a",
            Targets::Real {
                outputs: 1,
                values: (0..rows).map(|i| (i % 5) as f32).collect(),
            },
            None,
        ),
        TaskData::new(
            "b",
            Targets::Classes {
                classes: 3,
                ids: vec![0; rows],
            },
            Some(vec![false; rows]),
        ),
    ];
    let data = Dataset::new("unlabelled", rows, 3, x, tasks).unwrap();
    let file = dir.join("data.safetensors");
    write(&file, &data, Precision::F32).unwrap();
    let log = dir.join("log.jsonl");
    let (stdout, _) = run_ok(
        manytask()
            .args([
                "train", "--steps", "4", "--batch", "16", "--widths", "8", "--data",
            ])
            .arg(&file)
            .arg("--log")
            .arg(&log),
    );
    let row_b = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("b "))
        .unwrap_or_else(|| panic!("no row for b: {stdout}"));
    assert!(
        row_b.split_whitespace().skip(1).all(|c| c == "-"),
        "{row_b}\n{stdout}"
    );
    assert!(
        stdout.contains("no value ('-') for task 'b': none of the 6 samples of the test split"),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let b = &last["metrics"]["b"];
    assert!(b["accuracy"].is_null() && b["loss"].is_null(), "{last}");
    assert_eq!(b["samples"], 0, "{last}");
    assert_eq!(
        b["per_class_accuracy"],
        serde_json::json!([null, null, null])
    );
    assert!(last["metrics"]["a"]["mse"].as_f64().is_some(), "{last}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_output_path_is_checked_before_the_first_step() {
    let bad = "/nonexistent-dir/out.file";
    let single = ["--single-task", "task0", "--baseline", bad];
    for flags in [
        vec!["--save", bad],
        vec!["--save-best", bad],
        vec!["--log", bad],
        vec!["--plot", bad],
        single.to_vec(),
        vec!["--save-every", "1", "--save-every-path", bad],
    ] {
        let out = run_timed(
            small_train("2").args(["--steps", "3"]).args(&flags),
            RUN_SECS,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        let key = flags[flags.len() - 2]
            .trim_start_matches("--")
            .replace('-', "_");
        assert!(
            stderr.contains(bad) && stderr.replace('-', "_").contains(&key),
            "{flags:?}: {stderr}"
        );
        assert!(!stdout.contains("training:"), "{flags:?} trained: {stdout}");
    }
}

#[test]
fn resume_continues_bit_for_bit_and_checkpoints_are_deterministic() {
    let dir = scratch_dir("cli-resume");
    // 7 batches an epoch (the last short); 5 steps, then on to 9: the
    // resumed run crosses the epoch boundary, shuffled.
    let run = |steps: &str, out: &Path, resume: Option<&Path>| {
        let mut cmd = small_train("2");
        cmd.args(["--quiet", "--steps", steps, "--save"]).arg(out);
        if let Some(r) = resume {
            cmd.arg("--resume").arg(r);
        }
        run_ok(&mut cmd).0
    };
    let (half, resumed) = (dir.join("half.st"), dir.join("resumed.st"));
    let (straight, again) = (dir.join("straight.st"), dir.join("again.st"));
    run("5", &half, None);
    let stdout = run("9", &resumed, Some(&half));
    assert!(
        stdout.contains("resume:") && stdout.contains("at step 5 (epoch 1, batch 5 of it)"),
        "{stdout}"
    );
    assert!(stdout.contains("4 steps in"), "{stdout}");
    run("9", &straight, None);
    run("9", &again, None);
    let bytes = |p: &Path| std::fs::read(p).unwrap();
    assert!(
        bytes(&straight) == bytes(&again),
        "two identical runs wrote different checkpoint files"
    );
    assert!(
        bytes(&resumed) == bytes(&straight),
        "5 steps + 4 resumed differ from 9 straight"
    );
    // Mid-epoch, another batch size cannot continue the epoch's order.
    let out = run_timed(
        manytask()
            .args(["train", "--tasks", "2", "--widths", "16", "--steps", "9"])
            .args(["--batch", "128", "--resume"])
            .arg(&half),
        RUN_SECS,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("batch 5 of an epoch of 7"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn best_and_periodic_checkpoints_are_written_and_evaluate() {
    let dir = scratch_dir("cli-ckpts");
    let best = dir.join("best.safetensors");
    let pattern = dir.join("epoch-{epoch}.safetensors");
    let (stdout, _) = run_ok(
        small_train("2")
            .args(["--epochs", "2", "--schedule", "cosine", "--warmup", "3"])
            .args(["--patience", "5", "--monitor", "task1.mae"])
            .arg("--save-best")
            .arg(&best)
            .args(["--save-every", "1", "--save-every-path"])
            .arg(&pattern),
    );
    for epoch in 1..=2 {
        let path = dir.join(format!("epoch-{epoch}.safetensors"));
        assert!(path.is_file(), "{}: {stdout}", path.display());
        assert!(
            stdout.contains(&format!(
                "checkpoint (periodic, epoch {epoch}, step {})",
                7 * epoch
            )),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("checkpoint (best, epoch 1, step 7)"),
        "{stdout}"
    );
    assert!(stdout.contains("task1.mae "), "{stdout}");
    // The best checkpoint carries the config: eval rebuilds the model.
    let (eval, _) = run_ok(
        manytask()
            .args(["eval", "--split", "validation", "--checkpoint"])
            .arg(&best),
    );
    assert!(eval.contains("validation split (200 samples):"), "{eval}");
    std::fs::remove_dir_all(&dir).ok();
}
