//! GEMM family: every variant in every layout against the CPU reference,
//! variants agreeing bit for bit, argument errors, and the autotuner.

use manytask::conformance::{self, Requirement};
use manytask::gpu::{DType, Tensor};
use manytask::kernels::autotune::{self, Settings};
use manytask::kernels::gemm::{self, Epilogue, GemmShape, Layout, Variant};
use manytask::types::Activation;
use manytask::Error;

use crate::common::{check_cases, contexts, data};

/// Runs every case of `variant` (all layouts, epilogues, batches) on every
/// adapter that can run it; fails listing every failing case.
fn check_variant(variant: Variant) {
    let prefix = format!("gemm::{variant}[");
    let count = conformance::all_cases()
        .iter()
        .filter(|c| c.kernel.starts_with(&prefix))
        .count();
    assert!(
        count >= 4 * gemm_cases_per_layout(),
        "{count} cases for {variant}"
    );
    check_cases(&format!("gemm::{variant}"), |c| {
        c.kernel.starts_with(&prefix)
    });
}

fn gemm_cases_per_layout() -> usize {
    conformance::gemm::SHAPES.len()
}

#[test]
fn naive_matches_reference_in_every_layout() {
    check_variant(Variant::Naive);
}

#[test]
fn register_blocked_matches_reference_in_every_layout() {
    check_variant(Variant::RegisterBlocked);
}

#[test]
fn tiled_matches_reference_in_every_layout() {
    check_variant(Variant::Tiled);
}

#[test]
fn subgroup_matches_reference_in_every_layout() {
    // Lavapipe grants subgroups of 8; llvmpipe GL has none (skipped there).
    check_variant(Variant::Subgroup);
}

/// Every generated configuration outside the named four: awkward shapes
/// (odd N with an unroll tail in a rotating layout, N a multiple of 4 with
/// vec4 A and B loads in NN), against the reference.
#[test]
fn every_family_member_matches_reference_in_every_layout() {
    let family: Vec<String> = Variant::family()
        .into_iter()
        .filter(|v| !Variant::ALL.contains(v))
        .map(|v| format!("gemm::{v}["))
        .collect();
    assert!(
        family.len() >= 9,
        "{} generated configurations",
        family.len()
    );
    let cases = conformance::all_cases();
    for prefix in &family {
        let count = cases
            .iter()
            .filter(|c| c.kernel.starts_with(prefix))
            .count();
        assert!(
            count >= conformance::gemm::FAMILY_SHAPES.len(),
            "{prefix}: {count} cases"
        );
    }
    check_cases("gemm family", |c| {
        family.iter().any(|p| c.kernel.starts_with(p))
    });
}

/// The fusion matrix (dense layer forward and backward with prologues,
/// STORE_Z and the bias gradient; task tables) on the family members
/// picked for it besides the named variants (their epilogue and batch
/// GEMM cases run in `every_family_member_matches_reference_…`'s
/// neighbours: `fusion_variants` adds them to the GEMM suite too).
#[test]
fn family_members_run_every_fusion_exactly() {
    let extra: Vec<String> = conformance::gemm::fusion_variants()
        .into_iter()
        .filter(|v| !Variant::ALL.contains(v))
        .map(|v| format!("[{v}]"))
        .collect();
    assert_eq!(extra.len(), 2);
    let cases = conformance::all_cases();
    for suffix in &extra {
        for family in ["dense::", "task_gemm::"] {
            assert!(
                cases
                    .iter()
                    .any(|c| c.kernel.starts_with(family) && c.kernel.ends_with(suffix.as_str())),
                "{family} has no {suffix} case"
            );
        }
    }
    // Each flag set is a pipeline the driver compiles (1–2 s apiece on
    // lavapipe for an unrolled member): the dense matrix at one odd shape
    // (every output, ReLU from Y and GELU from Z, both plans) and the task
    // tables at 7 rows cover every fusion without every shape.
    check_cases("family fusions", |c| {
        let at_one_shape = (c.kernel.starts_with("dense::") && c.case.starts_with("65x130->97 "))
            || (c.kernel.starts_with("task_gemm::") && c.case.starts_with("rows=7 "));
        at_one_shape && extra.iter().any(|s| c.kernel.ends_with(s.as_str()))
    });
}

/// Names round-trip; configurations outside the space are refused.
#[test]
fn family_names_parse_back() {
    for v in Variant::family() {
        assert_eq!(v.name().parse::<Variant>(), Ok(v), "{v}");
    }
    assert_eq!("rb:32x1k1".parse::<Variant>(), Ok(Variant::RegisterBlocked));
    assert_eq!("sgs:32x1k1".parse::<Variant>(), Ok(Variant::Subgroup));
    for bad in ["sgb:12x2k4", "sgb:16x2k3", "zz:16x2k4", "sgb:16x2", ""] {
        let err = bad.parse::<Variant>().unwrap_err();
        assert!(err.contains("unknown GEMM variant"), "{err}");
    }
    // A configuration built by hand outside the space is refused, not run.
    let outside = Variant::Family(gemm::Config {
        share: gemm::Share::Uniform,
        rows: 12,
        vec4s: 3,
        k_unroll: 2,
    });
    let ctx = &contexts()[0];
    let a = Tensor::zeros(ctx, "A", &[4, 4]).unwrap();
    let c = Tensor::zeros(ctx, "C", &[4, 4]).unwrap();
    let mut rec = ctx.recorder("outside");
    let err = gemm::gemm_with(
        &mut rec,
        outside,
        Layout::NN,
        &a,
        &a,
        &c,
        &Epilogue::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert_eq!(rec.dispatch_count(), 0);
}

#[test]
fn subgroup_cases_are_skipped_exactly_where_subgroups_are_missing() {
    let case = conformance::all_cases()
        .into_iter()
        .find(|c| c.kernel == "gemm::subgroup[nn]")
        .expect("a subgroup case");
    assert_eq!(case.requires, Requirement::FixedSubgroup);
    for ctx in contexts() {
        let r = conformance::run_case(ctx, &case);
        assert_eq!(
            r.skipped.is_some(),
            gemm::subgroup_size(ctx).is_none(),
            "{}",
            ctx.describe()
        );
        assert!(!r.failed());
    }
}

/// The autotuner may pick any member of the family, so results must not
/// depend on the pick: every member computes the same fma chain in the
/// same order (checked here on real data for the named variants and the
/// fusion members; the others match the reference exactly on integers).
#[test]
fn all_variants_agree_bit_for_bit_on_real_data() {
    let (m, n, k) = (67, 131, 203);
    for ctx in contexts() {
        for layout in Layout::ALL {
            let (ar, ac) = layout.a_stored(m, k);
            let (br, bc) = layout.b_stored(k, n);
            let a = Tensor::from_f32(ctx, "A", &[ar, ac], &data(1, m * k)).unwrap();
            let b = Tensor::from_f32(ctx, "B", &[br, bc], &data(2, k * n)).unwrap();
            let mut results = Vec::new();
            for variant in conformance::gemm::fusion_variants()
                .into_iter()
                .filter(|v| v.available(ctx))
            {
                let c = Tensor::empty(ctx, "C", &[m, n], DType::F32).unwrap();
                let mut rec = ctx.recorder("variants");
                gemm::gemm_with(&mut rec, variant, layout, &a, &b, &c, &Epilogue::default())
                    .unwrap();
                rec.submit().unwrap();
                let bits: Vec<u32> = c
                    .to_f32_vec(ctx)
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                results.push((variant, bits));
            }
            for (variant, bits) in &results[1..] {
                assert!(
                    *bits == results[0].1,
                    "{variant} differs from {} ({layout}) on {}",
                    results[0].0,
                    ctx.describe()
                );
            }
        }
    }
}

#[test]
fn inner_size_mismatch_is_an_error_naming_both_operands() {
    let ctx = &contexts()[0];
    let a = Tensor::zeros(ctx, "X", &[4, 5]).unwrap();
    let b = Tensor::zeros(ctx, "W", &[6, 3]).unwrap();
    let c = Tensor::zeros(ctx, "Y", &[4, 3]).unwrap();
    let mut rec = ctx.recorder("bad gemm");
    let err = gemm::gemm(&mut rec, Layout::NN, &a, &b, &c, &Epilogue::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Shape { .. }), "{err:?}");
    assert!(
        msg.contains("'X'")
            && msg.contains("[4, 5]")
            && msg.contains("'W'")
            && msg.contains("[6, 3]"),
        "{msg}"
    );
    // The same operands are fine as NT? No: W stored N×K must be 3×5.
    let err = gemm::gemm(&mut rec, Layout::NT, &a, &b, &c, &Epilogue::default()).unwrap_err();
    assert!(
        err.to_string().contains("inner sizes differ") || err.to_string().contains("C 'Y'"),
        "{err}"
    );
    assert_eq!(rec.dispatch_count(), 0);
}

#[test]
fn k_zero_wrong_output_and_wrong_bias_are_errors() {
    let ctx = &contexts()[0];
    let mut rec = ctx.recorder("bad gemm");
    let a0 = Tensor::zeros(ctx, "A", &[4, 0]).unwrap();
    let b0 = Tensor::zeros(ctx, "B", &[0, 3]).unwrap();
    let c = Tensor::zeros(ctx, "C", &[4, 3]).unwrap();
    let err = gemm::gemm(&mut rec, Layout::NN, &a0, &b0, &c, &Epilogue::default()).unwrap_err();
    assert!(err.to_string().contains("K = 0"), "{err}");

    let a = Tensor::zeros(ctx, "A", &[4, 2]).unwrap();
    let b = Tensor::zeros(ctx, "B", &[2, 3]).unwrap();
    let wrong_c = Tensor::zeros(ctx, "C", &[3, 4]).unwrap();
    let err = gemm::gemm(&mut rec, Layout::NN, &a, &b, &wrong_c, &Epilogue::default()).unwrap_err();
    assert!(err.to_string().contains("[3, 4]"), "{err}");

    let bias = Tensor::zeros(ctx, "bias", &[4]).unwrap();
    let epi = Epilogue {
        bias: Some(&bias),
        ..Epilogue::default()
    };
    let err = gemm::gemm(&mut rec, Layout::NN, &a, &b, &c, &epi).unwrap_err();
    assert!(err.to_string().contains("bias 'bias' is [4]"), "{err}");

    let batched_b = Tensor::zeros(ctx, "B", &[2, 2, 3]).unwrap();
    let batched_c = Tensor::zeros(ctx, "C", &[3, 4, 3]).unwrap();
    let err = gemm::gemm(
        &mut rec,
        Layout::NN,
        &a,
        &batched_b,
        &batched_c,
        &Epilogue::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("batch 2") && err.to_string().contains("batch 3"),
        "{err}"
    );
    assert_eq!(rec.dispatch_count(), 0);
}

#[test]
fn the_subgroup_variant_on_an_adapter_without_subgroups_is_an_error() {
    for ctx in contexts()
        .iter()
        .filter(|c| gemm::subgroup_size(c).is_none())
    {
        let a = Tensor::zeros(ctx, "A", &[2, 2]).unwrap();
        let c = Tensor::zeros(ctx, "C", &[2, 2]).unwrap();
        let mut rec = ctx.recorder("no subgroups");
        let err = gemm::gemm_with(
            &mut rec,
            Variant::Subgroup,
            Layout::NN,
            &a,
            &a,
            &c,
            &Epilogue::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("SUBGROUP"), "{err}");
    }
}

#[test]
fn an_empty_output_records_nothing() {
    let ctx = &contexts()[0];
    let a = Tensor::zeros(ctx, "A", &[0, 5]).unwrap();
    let b = Tensor::zeros(ctx, "B", &[5, 3]).unwrap();
    let c = Tensor::zeros(ctx, "C", &[0, 3]).unwrap();
    let mut rec = ctx.recorder("empty");
    gemm::gemm(
        &mut rec,
        Layout::NN,
        &a,
        &b,
        &c,
        &Epilogue {
            act: Activation::Relu,
            ..Epilogue::default()
        },
    )
    .unwrap();
    assert_eq!(rec.dispatch_count(), 0);
}

/// Tuning writes the table; a fresh process (here: a forgotten in-memory
/// table) reads it back without timing again; a corrupt file is ignored
/// and rewritten.
#[test]
fn autotune_choices_persist_and_survive_a_corrupt_cache() {
    let dir = std::env::temp_dir().join(format!("manytask-autotune-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("table.tsv");
    autotune::configure(Settings {
        enabled: true,
        cache_path: Some(path.clone()),
        ..Settings::from_env()
    });
    let ctx = &crate::common::private_contexts()[0];
    // Large enough to be timed (problems under UNTIMED_FLOPS are not).
    let shape = GemmShape {
        batch: 1,
        m: 200,
        n: 180,
        k: 150,
    };
    assert!(shape.flops() >= autotune::UNTIMED_FLOPS);

    let chosen = autotune::tune_gemm(ctx, Layout::TN, shape).unwrap();
    assert_ne!(
        chosen,
        Variant::Naive,
        "the naive variant is never a candidate"
    );
    assert!(chosen.available(ctx));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&ctx.info().name), "{text}");
    assert!(
        text.contains("\ttn\t1x256x256x256\t"),
        "shape class recorded: {text}"
    );

    autotune::forget();
    let before = ctx.counters();
    assert_eq!(autotune::tune_gemm(ctx, Layout::TN, shape).unwrap(), chosen);
    assert_eq!(
        ctx.counters().since(&before).submits,
        0,
        "read from the file, not re-timed"
    );

    std::fs::write(&path, "not\ta\tvalid line\n\u{0}garbage").unwrap();
    autotune::forget();
    let again = autotune::tune_gemm(ctx, Layout::TN, shape).unwrap();
    assert!(again.available(ctx));
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("\ttn\t1x256x256x256\t"));

    // A spent total budget: a new class takes the nearest tuned class's
    // choice (the one above), submits nothing, is announced once, and is
    // not written to the file.
    autotune::configure(Settings {
        enabled: true,
        cache_path: Some(path.clone()),
        class_budget_s: 1.0,
        total_budget_s: 0.0,
    });
    let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = notices.clone();
    autotune::set_tuning_observer(Some(Box::new(move |n| {
        seen.lock().unwrap().push(n.to_string())
    })));
    let tuned = autotune::tune_gemm(ctx, Layout::TN, shape).unwrap();
    let other = GemmShape {
        batch: 1,
        m: 300,
        n: 180,
        k: 150,
    };
    let before = ctx.counters();
    assert_eq!(autotune::tune_gemm(ctx, Layout::TN, other).unwrap(), tuned);
    let third = GemmShape { m: 600, ..other };
    assert_eq!(autotune::tune_gemm(ctx, Layout::TN, third).unwrap(), tuned);
    assert_eq!(ctx.counters().since(&before).submits, 0, "nothing timed");
    autotune::set_tuning_observer(None);
    let notices = notices.lock().unwrap().clone();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].contains("budget is spent"), "{notices:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("1x512x256x256"), "stand-in cached: {text}");

    // Tiny problems are never timed.
    autotune::configure(Settings {
        enabled: true,
        cache_path: Some(path.clone()),
        ..Settings::from_env()
    });
    let tiny = GemmShape {
        batch: 1,
        m: 16,
        n: 16,
        k: 16,
    };
    let before = ctx.counters();
    assert_eq!(
        autotune::tune_gemm(ctx, Layout::NN, tiny).unwrap(),
        autotune::default_variant(ctx)
    );
    assert_eq!(ctx.counters().since(&before).submits, 0);

    autotune::configure(Settings {
        enabled: false,
        cache_path: None,
        ..Settings::from_env()
    });
    assert_eq!(
        autotune::tune_gemm(ctx, Layout::TN, shape).unwrap(),
        autotune::default_variant(ctx)
    );
    autotune::configure(Settings::from_env());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A zero class budget still screens the first candidate (the default
/// rule's) and nothing else; a generous one screens every candidate, and
/// the choice is a candidate that was not dropped.
#[test]
fn autotune_class_budget_bounds_the_runs() {
    let ctx = &crate::common::private_contexts()[0];
    let shape = GemmShape {
        batch: 2,
        m: 300,
        n: 260,
        k: 260,
    };
    assert_ne!(
        autotune::screening_shape(shape),
        shape,
        "large enough to reduce"
    );
    let candidates: Vec<Variant> = gemm::available_variants(ctx)
        .into_iter()
        .filter(|&v| v != Variant::Naive)
        .collect();
    let none = std::time::Duration::ZERO;
    let report = autotune::measure_within(ctx, Layout::NT, shape, &candidates, none).unwrap();
    assert_eq!(report.chosen, candidates[0], "{report}");
    let screened: Vec<Variant> = report
        .samples
        .iter()
        .filter(|c| c.screen_ms.is_some())
        .map(|c| c.variant)
        .collect();
    assert_eq!(screened, vec![candidates[0]], "{report}");
    assert!(
        report.samples.iter().all(|c| c.full_ms.is_empty()),
        "{report}"
    );

    let ample = std::time::Duration::from_secs(600);
    let report = autotune::measure_within(ctx, Layout::NT, shape, &candidates, ample).unwrap();
    assert!(
        report.samples.iter().all(|c| c.screen_ms.is_some()),
        "{report}"
    );
    assert!(!report.dropped.contains(&report.chosen), "{report}");
    // The screen ran on the reduced problem (batch 1, a quarter of the rows).
    assert_eq!(
        report.screened_on,
        GemmShape {
            batch: 1,
            m: 75,
            ..shape
        }
    );
    let kept: Vec<&autotune::CandidateTimes> = report
        .samples
        .iter()
        .filter(|c| !report.dropped.contains(&c.variant))
        .collect();
    if kept.len() > 1 {
        assert!(kept.iter().all(|c| c.full_ms.len() == 3), "{report}");
    }
}

/// The choice a warm cache holds is reproducible: a run that tunes (empty
/// cache) and two runs that read the table write bit-identical weights,
/// and only the first says it is timing kernels.
#[test]
fn a_warm_autotune_cache_gives_bit_identical_weights() {
    use crate::common::{manytask, run_timed, scratch_dir, RUN_SECS};
    let dir = scratch_dir("autotune-warm");
    let cache = dir.join("cache");
    let run = |out: &str| {
        let output = run_timed(
            manytask()
                .env("MANYTASK_CACHE_DIR", &cache)
                .env_remove("MANYTASK_AUTOTUNE")
                // Every class tuned in the first run, however loaded the host.
                .env("MANYTASK_AUTOTUNE_TOTAL_S", "600")
                .args(["train", "--tasks", "2", "--widths", "256", "--steps", "2"])
                .args(["--backend", "vulkan", "--save"])
                .arg(dir.join(out)),
            RUN_SECS,
        );
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let cold = run("cold.st");
    assert!(
        cold.contains("autotune: timing") && cold.contains(" → "),
        "the cold run says what it times and picks: {cold}"
    );
    let warm = run("warm.st");
    assert!(!warm.contains("autotune:"), "{warm}");
    run("again.st");
    let bytes = |name: &str| std::fs::read(dir.join(name)).unwrap();
    assert!(bytes("warm.st") == bytes("again.st"), "warm runs differ");
    assert!(
        bytes("cold.st") == bytes("warm.st"),
        "tuning changed the weights"
    );
    std::fs::remove_dir_all(&dir).ok();
}
