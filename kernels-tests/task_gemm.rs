//! Batched task GEMM: heads of different widths in one dispatch, every
//! variant and pass against the reference, and the table's checks.

use manytask::gpu::Tensor;
use manytask::kernels::gemm::{Epilogue, Fusion, Layout, Variant};
use manytask::kernels::task_gemm::{task_gemm, TaskProblem, TaskTable};
use manytask::Error;

use crate::common::{check_cases, private_contexts};

fn check_variant(variant: Variant) {
    let suffix = format!("[{variant}]");
    check_cases(&format!("task_gemm {variant}"), |c| {
        c.kernel.starts_with("task_gemm::") && c.kernel.ends_with(&suffix)
    });
}

#[test]
fn task_gemm_naive_matches_reference() {
    check_variant(Variant::Naive);
}

#[test]
fn task_gemm_register_blocked_matches_reference() {
    check_variant(Variant::RegisterBlocked);
}

#[test]
fn task_gemm_subgroup_matches_reference() {
    check_variant(Variant::Subgroup);
}

#[test]
fn task_gemm_tiled_matches_reference() {
    check_variant(Variant::Tiled);
}

fn heads(t: usize) -> manytask::conformance::task_gemm::Heads {
    manytask::conformance::task_gemm::Heads {
        rows: 16,
        hs: (0..t).map(|i| 8 + i % 5).collect(),
        ks: (0..t).map(|i| 3 + 2 * (i % 4)).collect(),
    }
}

#[test]
fn task_gemm_is_one_dispatch_whatever_the_task_count() {
    for ctx in private_contexts() {
        for t in [1, 2, 8, 32] {
            let hd = heads(t);
            let table = TaskTable::new(&ctx, Layout::NN, &hd.problems(Layout::NN)).unwrap();
            let h = Tensor::zeros(&ctx, "h", &[hd.rows, hd.sum_h()]).unwrap();
            let w = Tensor::zeros(&ctx, "w", &[hd.weights()]).unwrap();
            let y = Tensor::zeros(&ctx, "y", &[hd.rows, hd.sum_k()]).unwrap();
            let before = ctx.counters();
            let mut rec = ctx.recorder("heads");
            // A named variant: the autotuner would time candidates (more submits).
            let v = Some(Variant::RegisterBlocked);
            task_gemm(
                &mut rec,
                v,
                &table,
                &h,
                &w,
                &y,
                &Epilogue::default(),
                &Fusion::default(),
            )
            .unwrap();
            rec.submit().unwrap();
            let d = ctx.counters().since(&before);
            assert_eq!((d.dispatches, d.submits), (1, 1), "T = {t}");
        }
    }
}

#[test]
fn task_table_rejects_bad_problems() {
    let ctx = &private_contexts()[0];
    let ok = TaskProblem {
        m: 2,
        n: 3,
        k: 4,
        lda: 4,
        ldb: 3,
        ldc: 3,
        ..TaskProblem::default()
    };
    let err = |problems: &[TaskProblem]| {
        TaskTable::new(ctx, Layout::NN, problems)
            .err()
            .unwrap()
            .to_string()
    };
    assert!(err(&[]).contains("no tasks"));
    assert!(err(&[TaskProblem { k: 0, ..ok }]).contains("at least 1"));
    assert!(err(&[TaskProblem { lda: 3, ..ok }]).contains("lda=3"));
    // Two tasks writing the same C elements.
    let e = err(&[ok, TaskProblem { c_offset: 4, ..ok }]);
    assert!(e.contains("overlap"), "{e}");

    // Buffers shorter than the windows the table reaches.
    let table = TaskTable::new(
        ctx,
        Layout::NN,
        &[
            ok,
            TaskProblem {
                c_offset: 6,
                b_offset: 12,
                ..ok
            },
        ],
    )
    .unwrap();
    let a = Tensor::zeros(ctx, "a", &[8]).unwrap();
    let b = Tensor::zeros(ctx, "b", &[23]).unwrap();
    let c = Tensor::zeros(ctx, "c", &[12]).unwrap();
    let mut rec = ctx.recorder("bad");
    let e = task_gemm(
        &mut rec,
        None,
        &table,
        &a,
        &b,
        &c,
        &Epilogue::default(),
        &Fusion::default(),
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::Shape { .. }) && e.to_string().contains("'b' has 23 elements"),
        "{e}"
    );
    assert_eq!(rec.dispatch_count(), 0);
}
