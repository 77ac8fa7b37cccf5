//! The non-finite watch: its conformance cases on every adapter, the
//! training-loop use (one submit per step, the record read with the losses
//! in that submit), reset, large step numbers and the saturating count,
//! llvmpipe's loop cap, and the launcher's argument errors.

use half::f16;
use manytask::gpu::{GpuContext, Tensor};
use manytask::kernels::nonfinite::{
    new_record, reset_record, watch_losses, NonFiniteKind, NonFiniteRecord, RECORD_WORDS,
};
use manytask::Error;

use crate::common::{check_kernel, contexts, data};

#[test]
fn watch_losses_matches_reference_at_every_size() {
    check_kernel("nonfinite::watch_losses");
}

/// Step `step`'s losses of `tasks` tasks: finite, except `bad`.
fn losses_of(step: u32, tasks: usize, bad: &[(usize, f32)]) -> Vec<f32> {
    let mut losses: Vec<f32> = data(step as u64, tasks).iter().map(|v| v + 2.0).collect();
    for &(t, v) in bad {
        losses[t] = v;
    }
    losses
}

/// One training-like step: upload the losses, watch them, and (when
/// `read`) read the losses and the record in the same submit. Returns the
/// decoded record when read, and asserts the step took exactly one submit.
fn step(
    ctx: &GpuContext,
    record: &Tensor,
    number: u32,
    losses: &[f32],
    read: bool,
) -> Option<Option<NonFiniteRecord>> {
    let tensor = Tensor::from_f32(ctx, "losses", &[losses.len()], losses).unwrap();
    let before = ctx.counters();
    let mut rec = ctx.recorder("step");
    watch_losses(&mut rec, &tensor, record, number).unwrap();
    let pending = read.then(|| (rec.read(&tensor), rec.read(record)));
    rec.submit().unwrap();
    let decoded = pending.map(|(l, r)| {
        let got = l.wait_f32(ctx).unwrap();
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            losses.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "the watch must not touch the losses"
        );
        NonFiniteRecord::from_words(&r.wait_u32(ctx).unwrap()).unwrap()
    });
    ctx.wait_idle().unwrap();
    let delta = ctx.counters().since(&before);
    assert_eq!(
        (delta.dispatches, delta.submits),
        (1, 1),
        "one dispatch, one submit per step (reads included)"
    );
    decoded
}

/// Steps 1..5 finite, step 6 NaN at task 3, step 7 +inf at task 0, one
/// submit per step, the record read only at steps 5 and 7 (as the CLI
/// reads losses every few steps): step 7's read names step 6, task 3.
#[test]
fn the_record_names_the_first_nonfinite_step_not_the_step_it_is_read_at() {
    let tasks = 10;
    for ctx in contexts() {
        let record = new_record(ctx, "record").unwrap();
        for s in 1..=5 {
            let read = step(ctx, &record, s, &losses_of(s, tasks, &[]), s == 5);
            if s == 5 {
                assert_eq!(read, Some(None), "all finite so far on {}", ctx.describe());
            }
        }
        step(
            ctx,
            &record,
            6,
            &losses_of(6, tasks, &[(3, f32::NAN)]),
            false,
        );
        let got = step(
            ctx,
            &record,
            7,
            &losses_of(7, tasks, &[(0, f32::INFINITY)]),
            true,
        );
        let want = NonFiniteRecord {
            step: 6,
            task: 3,
            kind: NonFiniteKind::Nan,
            nonfinite_steps: 2,
        };
        assert_eq!(got, Some(Some(want)), "on {}", ctx.describe());

        // Reset: the next non-finite step is recorded afresh.
        reset_record(ctx, &record).unwrap();
        assert_eq!(
            step(ctx, &record, 8, &losses_of(8, tasks, &[]), true),
            Some(None)
        );
        let bad = [(9, f32::NEG_INFINITY), (4, f32::NEG_INFINITY)];
        let got = step(ctx, &record, 9, &losses_of(9, tasks, &bad), true);
        let want = NonFiniteRecord {
            step: 9,
            task: 4,
            kind: NonFiniteKind::NegInf,
            nonfinite_steps: 1,
        };
        assert_eq!(got, Some(Some(want)), "after reset on {}", ctx.describe());
    }
}

/// Words past f32's exact integers: a step of 4e9 is stored exactly and
/// the count saturates at u32::MAX instead of wrapping to 0.
#[test]
fn large_steps_are_exact_and_the_count_saturates() {
    for ctx in contexts() {
        let record = Tensor::from_u32(ctx, "record", &[4], &[0, 0, 0, u32::MAX - 1]).unwrap();
        let losses = losses_of(1, 300, &[(299, f32::NAN)]);
        let losses = Tensor::from_f32(ctx, "losses", &[300], &losses).unwrap();
        let mut rec = ctx.recorder("large");
        for s in [4_000_000_001, 4_000_000_002, 4_000_000_003] {
            watch_losses(&mut rec, &losses, &record, s).unwrap();
        }
        rec.submit().unwrap();
        assert_eq!(
            record.to_u32_vec(ctx).unwrap(),
            [4_000_000_001, 299, 1, u32::MAX],
            "on {}",
            ctx.describe()
        );
    }
}

/// llvmpipe stops an invocation after 65535 loop iterations: at
/// 256 · 65526 tasks (65526 strides, the stride loop's exit test, 8 tree
/// levels) a NaN in the last task is still found; one stride more is
/// refused (measured on llvmpipe GL: it would return an empty record).
#[test]
fn the_loop_cap_is_respected_at_its_edge_and_refused_past_it() {
    for ctx in contexts() {
        let Some(limit) = ctx.loop_limit() else {
            continue;
        };
        let fits = 256 * (limit as usize - 9);
        let mut losses = vec![1.0f32; fits];
        losses[fits - 1] = f32::NAN;
        let losses = Tensor::from_f32(ctx, "losses", &[fits], &losses).unwrap();
        let record = new_record(ctx, "record").unwrap();
        let mut rec = ctx.recorder("at the cap");
        watch_losses(&mut rec, &losses, &record, 1).unwrap();
        rec.submit().unwrap();
        assert_eq!(
            record.to_u32_vec(ctx).unwrap(),
            [1, fits as u32 - 1, 1, 1],
            "on {}",
            ctx.describe()
        );
        drop(losses);

        let past = Tensor::empty(ctx, "losses", &[fits + 1], manytask::DType::F32).unwrap();
        let mut rec = ctx.recorder("past the cap");
        let e = watch_losses(&mut rec, &past, &record, 1).unwrap_err();
        assert!(
            matches!(e, Error::LoopLimit { .. }) && e.to_string().contains("65535"),
            "{e}"
        );
        assert_eq!(rec.dispatch_count(), 0);
    }
}

#[test]
fn bad_watch_arguments_are_errors() {
    let ctx = &contexts()[0];
    let losses = Tensor::zeros(ctx, "losses", &[5]).unwrap();
    let record = new_record(ctx, "record").unwrap();
    let f16_losses = Tensor::from_f16(ctx, "f16 losses", &[5], &[f16::ONE; 5]).unwrap();
    let u32_losses = Tensor::from_u32(ctx, "u32 losses", &[5], &[0; 5]).unwrap();
    let f32_record = Tensor::zeros(ctx, "f32 record", &[RECORD_WORDS]).unwrap();
    let short_record = Tensor::from_u32(ctx, "short record", &[3], &[0; 3]).unwrap();
    let long_record = Tensor::from_u32(ctx, "long record", &[2, 4], &[0; 8]).unwrap();
    let matrix = Tensor::zeros(ctx, "matrix", &[2, 3]).unwrap();
    let empty = Tensor::zeros(ctx, "no tasks", &[0]).unwrap();

    let mut rec = ctx.recorder("bad watch");
    let dtype = |e: Error| matches!(e, Error::DType { .. });
    let shape =
        |e: &Error, what: &str| matches!(e, Error::Shape { .. }) && e.to_string().contains(what);
    assert!(dtype(
        watch_losses(&mut rec, &f16_losses, &record, 1).unwrap_err()
    ));
    assert!(dtype(
        watch_losses(&mut rec, &u32_losses, &record, 1).unwrap_err()
    ));
    assert!(dtype(
        watch_losses(&mut rec, &losses, &f32_record, 1).unwrap_err()
    ));
    for bad in [&short_record, &long_record] {
        let e = watch_losses(&mut rec, &losses, bad, 1).unwrap_err();
        assert!(shape(&e, bad.label()), "{e}");
    }
    let e = watch_losses(&mut rec, &matrix, &record, 1).unwrap_err();
    assert!(shape(&e, "vector"), "{e}");
    let e = watch_losses(&mut rec, &empty, &record, 1).unwrap_err();
    assert!(shape(&e, "T = 0"), "{e}");
    let e = watch_losses(&mut rec, &losses, &record, 0).unwrap_err();
    assert!(shape(&e, "step must be ≥ 1"), "{e}");
    assert_eq!(rec.dispatch_count(), 0, "a refused launch records nothing");

    assert!(dtype(reset_record(ctx, &f32_record).unwrap_err()));
    assert!(reset_record(ctx, &short_record).is_err());
}

#[test]
fn record_words_decode_or_are_refused() {
    assert_eq!(NonFiniteRecord::from_words(&[0; 4]).unwrap(), None);
    assert_eq!(
        NonFiniteRecord::from_words(&[12, 3, 2, 5]).unwrap(),
        Some(NonFiniteRecord {
            step: 12,
            task: 3,
            kind: NonFiniteKind::PosInf,
            nonfinite_steps: 5,
        })
    );
    for kind in [
        NonFiniteKind::Nan,
        NonFiniteKind::PosInf,
        NonFiniteKind::NegInf,
    ] {
        assert_eq!(NonFiniteKind::from_code(kind.code()), Some(kind));
        assert!(!kind.value().is_finite());
    }
    assert!(NonFiniteKind::value(NonFiniteKind::NegInf) < 0.0);
    // Wrong length, an unknown kind, a set step with no bad step counted.
    for bad in [
        &[1u32, 0, 1][..],
        &[1, 0, 1, 1, 0],
        &[1, 0, 4, 1],
        &[1, 0, 1, 0],
    ] {
        let e = NonFiniteRecord::from_words(bad).unwrap_err();
        assert!(matches!(e, Error::Shape { .. }), "{bad:?}: {e}");
    }
}
