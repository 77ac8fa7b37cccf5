//! `scripts/gpu-check.sh` end to end with its small settings: every step
//! succeeds and writes its output into the folder given.

use crate::common::{run_timed, scratch_dir, RUN_SECS};

#[test]
fn gpu_check_script_writes_every_output() {
    let dir = scratch_dir("gpu-check");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gpu-check.sh");
    let out = run_timed(
        std::process::Command::new("bash")
            .arg(script)
            .arg(&dir)
            .env("MANYTASK_BIN", env!("CARGO_BIN_EXE_manytask"))
            .env("GPU_CHECK_SMALL", "1")
            .env("GPU_CHECK_TIMEOUT", RUN_SECS.to_string())
            .env_remove("MANYTASK_BACKEND"),
        RUN_SECS * 2,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}\n{stdout}"))
    };
    let summary = read("summary.txt");
    assert!(out.status.success(), "{stdout}\n{summary}");
    for step in ["info", "validate", "bench-quick", "train"] {
        let line = summary
            .lines()
            .find(|l| l.starts_with(step))
            .unwrap_or_else(|| panic!("{step} missing: {summary}"));
        assert!(line.contains("rc=0"), "{line}");
    }
    assert!(read("info.txt").contains("Vulkan"), "{}", read("info.txt"));
    let bench = read("bench-quick.jsonl");
    assert!(
        bench.lines().any(|l| l.contains("\"kernel\":\"roofline\"")),
        "{bench}"
    );
    assert!(
        bench
            .lines()
            .any(|l| l.contains("\"kernel\":\"adamw_step\"")),
        "{bench}"
    );
    assert!(
        read("train.txt").contains("2 steps in"),
        "{}",
        read("train.txt")
    );
    assert!(read("validate-vulkan.txt").contains("weighting::gram"));
    std::fs::remove_dir_all(&dir).ok();
}
