//! The examples in `examples/` end to end, so CI runs them: each built
//! example binary runs with a small `--steps` on the default adapter, must
//! exit 0 and print its per-task test metrics, all finite.
//!
//! `cargo test --release` builds the examples into target/release/examples/
//! next to target/release/deps/, where this test binary lives. A filtered
//! run (`cargo test --release --test kernels examples`) does not build
//! them: run `cargo build --release --examples` first.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{run_timed, RUN_SECS};

/// The directory of the example binaries: `<target>/<profile>/examples`,
/// beside the `deps` directory holding this test binary (so a
/// `CARGO_TARGET_DIR` or `--target` layout is followed as is).
fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps");
    profile.join("examples")
}

/// The example binary `name`: `examples/<name>`, else the newest
/// `examples/<name>-<hash>` cargo left there.
fn example_path(name: &str) -> PathBuf {
    let dir = examples_dir();
    let exact = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if exact.is_file() {
        return exact;
    }
    let prefix = format!("{name}-");
    let hashed = std::fs::read_dir(&dir).ok().and_then(|entries| {
        entries
            .filter_map(|e| e.ok())
            .filter(|e| {
                let file = e.file_name().to_string_lossy().to_string();
                let hash = file.strip_prefix(&prefix).unwrap_or("");
                let hash = hash
                    .strip_suffix(std::env::consts::EXE_SUFFIX)
                    .unwrap_or(hash);
                hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit())
            })
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .max()
            .map(|(_, p)| p)
    });
    hashed.unwrap_or_else(|| {
        panic!(
            "example binary '{name}' not found in {}: `cargo test --release` builds the examples; \
             a filtered run (`--test kernels`) does not, so run `cargo build --release --examples` first",
            dir.display()
        )
    })
}

/// Runs example `name` with `args` on the default adapter; stdout, after
/// checking the exit status.
fn run(name: &str, args: &[&str]) -> String {
    let out = run_raw(name, args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "example {name} {args:?} exited with {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn run_raw(name: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(example_path(name));
    cmd.args(args)
        .env_remove("MANYTASK_BACKEND")
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        // One worker thread for Mesa's CPU drivers: an example then takes
        // one core, not all, next to the GPU tests running in this
        // binary (wgpu's GL backend panics when a thread waits more than
        // 1 s for the GL context, which a starved test can cause).
        .env("LP_NUM_THREADS", "1");
    // Examples train for real: a generous bound, still short of a CI hang.
    run_timed(&mut cmd, 3 * RUN_SECS)
}

/// The number after `key` on the one line starting with `prefix`, checked
/// finite.
fn value(text: &str, prefix: &str, key: &str) -> f64 {
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(
        lines.len(),
        1,
        "one line starting '{prefix}' expected:\n{text}"
    );
    let tokens: Vec<&str> = lines[0].split_whitespace().collect();
    let at = tokens
        .iter()
        .position(|t| *t == key)
        .unwrap_or_else(|| panic!("no '{key}' in '{}'", lines[0]));
    let v: f64 = tokens
        .get(at + 1)
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no number after '{key}' in '{}'", lines[0]));
    assert!(v.is_finite(), "{key} is {v} in '{}'", lines[0]);
    v
}

/// The numbers of the first `[a, b, …]` list after `key` on `line`,
/// checked finite.
fn list(line: &str, key: &str) -> Vec<f64> {
    let rest = &line[line
        .find(key)
        .unwrap_or_else(|| panic!("no '{key}' in '{line}'"))..];
    let (start, end) = (rest.find('[').unwrap(), rest.find(']').unwrap());
    let v: Vec<f64> = rest[start + 1..end]
        .split(',')
        .map(|s| s.trim().parse().unwrap_or(f64::NAN))
        .collect();
    assert!(
        v.iter().all(|x| x.is_finite()),
        "non-finite {key} in '{line}'"
    );
    v
}

#[test]
fn quickstart_example_prints_finite_regression_metrics_per_task() {
    let text = run("quickstart", &["--steps", "20"]);
    for task in ["task0", "task1", "task2", "task3"] {
        let prefix = format!("test {task} ");
        for metric in ["mse", "rmse", "mae"] {
            assert!(value(&text, &prefix, metric) >= 0.0, "{text}");
        }
    }
    assert!(text.contains("step    20/20  losses ["), "{text}");
}

#[test]
fn fashion_multitask_example_reports_accuracy_of_both_models_above_chance() {
    let text = run(
        "fashion_multitask",
        &["--steps", "30", "--test-rows", "500"],
    );
    for model in ["hard", "cross_stitch"] {
        // 30 steps of 128 images: well above chance (10 classes; the
        // largest of the 4 groups holds 40% of the images).
        let class = value(&text, &format!("test {model} class "), "accuracy");
        let group = value(&text, &format!("test {model} group "), "accuracy");
        assert!(
            (0.3..=1.0).contains(&class),
            "{model} class {class}\n{text}"
        );
        assert!(
            (0.45..=1.0).contains(&group),
            "{model} group {group}\n{text}"
        );
    }
}

#[test]
fn fashion_multitask_example_without_the_dataset_says_what_to_install() {
    let out = run_raw(
        "fashion_multitask",
        &["--data", "/nonexistent/fashion-mnist"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("dataset-fashion-mnist"), "{stderr}");
}

#[test]
fn cross_stitch_example_prints_metrics_and_the_learned_alphas() {
    let text = run("cross_stitch", &["--steps", "30"]);
    for task in ["task0", "task1", "task2", "task3"] {
        value(&text, &format!("test {task} "), "mse");
    }
    // Two layers' α, 4×4 each, before and after: all finite, and moved.
    let alphas = |when: &str| -> Vec<f64> {
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::new();
        for layer in 0..2 {
            let head = format!("{when} stitch.{layer}.alpha [4, 4]");
            let at = lines
                .iter()
                .position(|l| l.starts_with(&head))
                .unwrap_or_else(|| panic!("no '{head}' line:\n{text}"));
            for row in &lines[at + 1..at + 5] {
                let row = row.trim_start();
                assert!(row.starts_with("alpha["), "{row}");
                let values: Vec<f64> = row
                    .split_whitespace()
                    .skip(1)
                    .map(|v| v.parse().unwrap())
                    .collect();
                assert_eq!(values.len(), 4, "{row}");
                assert!(values.iter().all(|v| v.is_finite()), "{row}");
                out.extend(values);
            }
        }
        out
    };
    let (initial, learned) = (alphas("initial"), alphas("learned"));
    assert!((initial[0] - 0.9).abs() < 1e-6, "{text}");
    assert_ne!(initial, learned, "α did not learn:\n{text}");
}

#[test]
fn trace_norm_example_lowers_the_regulariser_in_both_modes() {
    let text = run("trace_norm", &["--steps", "40"]);
    for mode in ["gradient", "proximal"] {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{mode} step ")))
            .collect();
        assert!(lines.len() >= 2, "{text}");
        let first = list(lines[0], "regulariser");
        let last = list(lines[lines.len() - 1], "regulariser");
        assert_eq!(first.len(), 2, "one value per column layer: {text}");
        for line in &lines {
            assert_eq!(list(line, "losses").len(), 4, "{line}");
        }
        assert!(
            last.iter().sum::<f64>() < first.iter().sum::<f64>(),
            "{mode}: the trace norm did not go down\n{text}"
        );
        for task in ["task0", "task1", "task2", "task3"] {
            value(&text, &format!("test {mode} {task} "), "mse");
        }
    }
}

#[test]
fn embed_backend_example_reloads_its_checkpoint_with_identical_predictions() {
    let text = run("embed_backend", &["--steps", "60"]);
    value(&text, "test size ", "mse");
    let accuracy = value(&text, "test quadrant ", "accuracy");
    assert!((0.0..=1.0).contains(&accuracy), "{text}");
    assert!(text.contains("step    60/60  loss size "), "{text}");
    assert!(text.lines().any(|l| l == "predictions match"), "{text}");
}

#[test]
fn profile_step_example_times_every_dispatch_of_a_step() {
    let text = run("profile_step", &["cross_stitch", "4"]);
    // "cross_stitch: 19 dispatches, 1 submit(s); … ms summed over dispatches"
    let head = text
        .lines()
        .find(|l| l.starts_with("cross_stitch: "))
        .unwrap_or_else(|| panic!("no cross_stitch profile:\n{text}"));
    let dispatches: usize = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    // The table's last line counts every dispatch of the step.
    let all = text
        .lines()
        .find(|l| l.ends_with("(all dispatches)"))
        .unwrap_or_else(|| panic!("no total line:\n{text}"));
    let tokens: Vec<&str> = all.split_whitespace().collect();
    assert_eq!(tokens[2].parse::<usize>().unwrap(), dispatches, "{text}");
    assert!(tokens[0].parse::<f64>().unwrap() > 0.0, "{text}");
    assert!(text.contains("  gemm "), "{text}");
    assert!(text.contains("(the other kernels)"), "{text}");
}

/// Ma et al.'s synthetic result, short: 20 of the full run's 30 epochs
/// (the gap forms after ~16; before, the shared bottom leads), the same 3
/// seeds. MMoE must beat the shared bottom of the same parameter count at
/// p = 0.5, and the shared bottom's excess must shrink at p = 1.0.
#[test]
fn mmoe_synthetic_example_beats_a_shared_bottom_when_the_tasks_differ() {
    let text = run("mmoe_synthetic", &["--epochs", "20", "--seeds", "3"]);
    let excess = |p: &str| {
        let prefix = format!("summary p {p}");
        let (mmoe, shared) = (
            value(&text, &prefix, "mmoe"),
            value(&text, &prefix, "shared_bottom"),
        );
        assert!(mmoe > 0.0 && shared > 0.0, "{text}");
        shared / mmoe - 1.0
    };
    let (differ, agree) = (excess("0.5"), excess("1.0"));
    assert!(differ > 0.0, "p = 0.5: MMoE should win\n{text}");
    assert!(agree < differ, "p = 1.0: the gap should shrink\n{text}");
}
