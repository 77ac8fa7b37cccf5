//! `manytask train`'s outputs never destroy data: an output at an input
//! (the data file, under any spelling) or over an unrelated file is
//! refused before the first step unless `--force`, and a save removes the
//! temporary files of saves killed mid-write. Runs go under a timeout.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{manytask, run_timed, scratch_dir, RUN_SECS};

/// stdout and stderr of a run that must succeed.
fn run_ok(cmd: &mut Command) -> String {
    let out = run_timed(cmd, RUN_SECS);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

/// stderr of a run that must fail with the CLI's error exit code (2).
fn run_err(cmd: &mut Command) -> String {
    let out = run_timed(cmd, RUN_SECS);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// A small run of the synthetic benchmark in `dir`.
fn small_run(dir: &Path) -> Command {
    let mut cmd = manytask();
    cmd.current_dir(dir).args([
        "train", "--steps", "2", "--batch", "16", "--tasks", "2", "--widths", "8", "--quiet",
    ]);
    cmd
}

/// A small safetensors dataset (one regression task) at `dir/data.safetensors`.
fn write_data(dir: &Path) -> PathBuf {
    use manytask::data::safetensors::{write, Precision};
    use manytask::data::{Dataset, Targets, TaskData};
    let rows = 40;
    let x: Vec<f32> = (0..rows * 3).map(|i| (i % 7) as f32 / 7.0).collect();
    let tasks = vec![TaskData::new(
        "a",
        Targets::Real {
            outputs: 1,
            values: (0..rows).map(|i| (i % 5) as f32).collect(),
        },
        None,
    )];
    let data = Dataset::new("outputs", rows, 3, x, tasks).unwrap();
    let file = dir.join("data.safetensors");
    write(&file, &data, Precision::F32).unwrap();
    file
}

#[test]
fn an_output_at_the_data_file_is_refused_and_the_data_kept() {
    let dir = scratch_dir("outputs-data");
    let data = write_data(&dir);
    let bytes = std::fs::read(&data).unwrap();
    let link = dir.join("link.safetensors");
    std::fs::hard_link(&data, &link).unwrap();
    // The same file under another spelling, and under another name.
    for (flag, target) in [
        ("--save", PathBuf::from("./data.safetensors")),
        ("--log", link.clone()),
        ("--plot", data.clone()),
    ] {
        let stderr = run_err(
            manytask()
                .current_dir(&dir)
                .args(["train", "--steps", "2", "--batch", "16", "--widths", "8"])
                .arg("--data")
                .arg(&data)
                .arg(flag)
                .arg(&target)
                .arg("--force"),
        );
        assert!(
            stderr.contains(flag) && stderr.contains("--data") && stderr.contains("same file"),
            "{flag}: {stderr}"
        );
        assert_eq!(
            std::fs::read(&data).unwrap(),
            bytes,
            "{flag} changed the data"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn two_outputs_at_one_file_are_refused() {
    let dir = scratch_dir("outputs-twice");
    let stderr = run_err(small_run(&dir).args(["--log", "out.txt", "--plot", "./out.txt"]));
    assert!(
        stderr.contains("--log") && stderr.contains("--plot") && stderr.contains("same file"),
        "{stderr}"
    );
    assert!(!dir.join("out.txt").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_unrelated_file_is_overwritten_only_with_force() {
    let dir = scratch_dir("outputs-force");
    let notes = dir.join("notes.txt");
    let text = "my notes\nnot a log\n";
    std::fs::write(&notes, text).unwrap();
    for flag in ["--log", "--plot", "--save"] {
        let stderr = run_err(small_run(&dir).arg(flag).arg("notes.txt"));
        assert!(
            stderr.contains(flag) && stderr.contains("--force"),
            "{flag}: {stderr}"
        );
        assert_eq!(std::fs::read_to_string(&notes).unwrap(), text, "{flag}");
    }
    run_ok(small_run(&dir).args(["--log", "notes.txt", "--force"]));
    let written = std::fs::read_to_string(&notes).unwrap();
    let first: serde_json::Value = serde_json::from_str(written.lines().next().unwrap()).unwrap();
    assert!(first.is_object(), "{written}");
    // An empty file holds nothing to lose.
    std::fs::write(dir.join("empty.svg"), "").unwrap();
    run_ok(small_run(&dir).args(["--plot", "empty.svg"]));
    std::fs::remove_dir_all(&dir).ok();
}

/// A PID no process can have: one above the kernel's largest.
#[cfg(target_os = "linux")]
fn dead_pid() -> u64 {
    let max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    max + 1
}

#[test]
fn outputs_replace_their_own_kind_and_saves_remove_stale_temps() {
    let dir = scratch_dir("outputs-again");
    let outputs = [
        "--save",
        "ck.safetensors",
        "--log",
        "log.jsonl",
        "--plot",
        "p.svg",
    ];
    run_ok(small_run(&dir).args(outputs));
    let first = std::fs::read(dir.join("ck.safetensors")).unwrap();
    #[cfg(target_os = "linux")]
    let mut sleeper = Command::new("sleep").arg("120").spawn().unwrap();
    #[cfg(target_os = "linux")]
    let (dead, live) = (
        dir.join(format!(".ck.safetensors.tmp-{}", dead_pid())),
        dir.join(format!(".ck.safetensors.tmp-{}", sleeper.id())),
    );
    let unrelated = [
        dir.join(".ck.safetensors.tmp-abc"),
        dir.join(".other.safetensors.tmp-4194303"),
        dir.join("ck.safetensors.tmp-4194303"),
    ];
    #[cfg(target_os = "linux")]
    for f in [&dead, &live] {
        std::fs::write(f, "partial").unwrap();
    }
    for f in &unrelated {
        std::fs::write(f, "keep").unwrap();
    }
    // The same run again: each output replaces its own kind.
    let out = run_ok(small_run(&dir).args(outputs));
    assert!(out.contains("saved"), "{out}");
    assert_eq!(
        std::fs::read(dir.join("ck.safetensors")).unwrap(),
        first,
        "same seed, same checkpoint"
    );
    #[cfg(target_os = "linux")]
    {
        sleeper.kill().ok();
        sleeper.wait().ok();
        assert!(!dead.exists(), "a dead save's temporary file was kept");
        assert!(live.exists(), "a live save's temporary file was removed");
    }
    for f in &unrelated {
        assert_eq!(std::fs::read_to_string(f).unwrap(), "keep", "{f:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
