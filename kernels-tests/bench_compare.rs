//! `manytask bench --compare A B`: rows matched by name and shape, ratios,
//! unmatched rows listed, bad files refused (no timing asserts: the
//! inputs are written here).

use manytask::bench::compare::{compare, parse_rows};

use crate::common::{manytask, run_timed, scratch_dir, RUN_SECS};

const A: &str = r#"{"kernel":"roofline","variant":"fma_chain","layout":null,"m":null,"n":null,"k":null,"dtype":"f32","median_ms":100.000000,"gflops":40.0,"gbps":null,"roofline_pct":100.0}
{"kernel":"gemm","variant":"subgroup","layout":"NN","m":64,"n":64,"k":64,"dtype":"f32","median_ms":2.000000,"gflops":1.0,"gbps":null,"roofline_pct":2.5}
{"kernel":"gemm","variant":"tiled","layout":"NN","m":64,"n":64,"k":64,"dtype":"f32","median_ms":8.000000,"gflops":0.2,"gbps":null,"roofline_pct":0.5}
{"kernel":"add","variant":null,"layout":null,"m":null,"n":null,"k":null,"dtype":"f32","median_ms":1.000000,"gflops":null,"gbps":3.0,"roofline_pct":80.0}
"#;

const B: &str = r#"{"kernel":"gemm","variant":"subgroup","layout":"NN","m":64,"n":64,"k":64,"dtype":"f32","median_ms":1.000000,"gflops":2.0,"gbps":null,"roofline_pct":5.0}
{"kernel":"roofline","variant":"fma_chain","layout":null,"m":null,"n":null,"k":null,"dtype":"f32","median_ms":50.000000,"gflops":80.0,"gbps":null,"roofline_pct":100.0}
{"kernel":"add","variant":null,"layout":null,"m":null,"n":null,"k":null,"dtype":"f32","median_ms":3.000000,"gflops":null,"gbps":1.0,"roofline_pct":30.0}
{"kernel":"gemm","variant":"subgroup","layout":"NT","m":64,"n":64,"k":64,"dtype":"f32","median_ms":1.500000,"gflops":1.3,"gbps":null,"roofline_pct":3.0}
"#;

#[test]
fn rows_match_by_name_and_shape_with_unmatched_listed() {
    let (a, b) = (parse_rows("a", A).unwrap(), parse_rows("b", B).unwrap());
    let c = compare(&a, &b);
    let ratios: Vec<(&str, f64)> = c
        .matched
        .iter()
        .map(|m| (m.key.as_str(), m.ratio()))
        .collect();
    assert_eq!(
        ratios,
        vec![
            ("roofline fma_chain f32", 0.5),
            ("gemm subgroup NN 64×64×64 f32", 0.5),
            ("add f32", 3.0),
        ]
    );
    assert_eq!(c.only_a, vec!["gemm tiled NN 64×64×64 f32"]);
    assert_eq!(c.only_b, vec!["gemm subgroup NT 64×64×64 f32"]);
    // A repeated key (two adapters in one file) pairs occurrence by occurrence.
    let twice = format!("{A}{A}");
    let c = compare(&parse_rows("a", &twice).unwrap(), &b);
    assert!(c.only_a.contains(&"add f32 #2".to_string()), "{c:?}");
    assert_eq!(c.matched.len(), 3);
}

#[test]
fn bench_compare_prints_ratios_and_refuses_a_bad_file() {
    let dir = scratch_dir("bench-compare");
    let (a, b, bad) = (
        dir.join("a.jsonl"),
        dir.join("b.jsonl"),
        dir.join("bad.jsonl"),
    );
    std::fs::write(&a, A).unwrap();
    std::fs::write(&b, B).unwrap();
    std::fs::write(&bad, "adapter: not json\n").unwrap();
    let out = run_timed(
        manytask().args(["bench", "--compare"]).arg(&a).arg(&b),
        RUN_SECS,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("gemm subgroup NN 64×64×64 f32"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.trim_end().ends_with("0.500"), "{line}");
    assert!(stdout.contains("only in A (1):"), "{stdout}");
    assert!(stdout.contains("only in B (1):"), "{stdout}");
    assert!(stdout.contains("3 row(s) matched"), "{stdout}");

    let out = run_timed(
        manytask().args(["bench", "--compare"]).arg(&a).arg(&bad),
        RUN_SECS,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.jsonl") && stderr.contains("line 1"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
