//! The `manytask` binary end to end: exit codes and output formats.

use std::process::Command;

fn manytask() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_manytask"));
    cmd.env_remove("MANYTASK_BACKEND")
        .env("XDG_RUNTIME_DIR", std::env::temp_dir());
    cmd
}

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
    let dir = std::env::temp_dir().join(format!("manytask-cli-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("model.safetensors");
    let log = dir.join("log.jsonl");
    let base = [
        "train", "--steps", "6", "--every", "3", "--batch", "16", "--tasks", "2", "--widths", "32",
    ];
    let out = manytask()
        .args(base)
        .args(["--weighting", "mgda_ub", "--save"])
        .arg(&ckpt)
        .arg("--log")
        .arg(&log)
        .output()
        .unwrap();
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
    assert_eq!(lines.lines().count(), 2, "{lines}");
    assert!(lines
        .lines()
        .all(|l| l.starts_with("{\"step\":") && l.contains("\"weights\":[")));
    // --init loads it; a checkpoint of another shape is refused.
    let ok = manytask()
        .args(base)
        .arg("--init")
        .arg(&ckpt)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let wrong = manytask()
        .args([
            "train", "--steps", "1", "--batch", "16", "--tasks", "2", "--widths", "8", "--init",
        ])
        .arg(&ckpt)
        .output()
        .unwrap();
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
        let out = manytask().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn a_diverging_run_stops_naming_step_and_task_and_keeps_the_checkpoint() {
    let dir = std::env::temp_dir().join(format!("manytask-cli-nan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("good.safetensors");
    let base = [
        "train", "--steps", "4", "--every", "1", "--batch", "16", "--tasks", "2", "--widths",
        "16", "--optimizer", "sgd",
    ];
    let good = manytask()
        .args(base)
        .arg("--save")
        .arg(&ckpt)
        .output()
        .unwrap();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let before = std::fs::read(&ckpt).unwrap();
    // lr 1e30 overflows the parameters to ±inf within a step or two.
    let bad = manytask()
        .args(base)
        .args(["--lr", "1e30", "--save"])
        .arg(&ckpt)
        .output()
        .unwrap();
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
