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
