//! GPU timestamps per dispatch (`Recorder::profiled`,
//! `Program::profile_step`): one entry per dispatch, labelled by op and
//! kernel, with the same numerics as an unprofiled step; a clear error
//! where the adapter has no timestamps.

use manytask::arch::Sharing;
use manytask::gpu::{DType, Tensor};
use manytask::graph::{Program, StepOptions};
use manytask::kernels::elementwise;
use manytask::Error;

use crate::arch::{feed, small_spec};
use crate::common::{contexts, data, private_contexts, sgd};

#[test]
fn a_profiled_recording_times_every_dispatch() {
    for ctx in contexts() {
        let rec = ctx.recorder("profiled");
        if !ctx.granted().timestamp_query {
            let e = rec.profiled().err().expect("no timestamps here");
            assert!(matches!(e, Error::MissingFeature { .. }), "{e}");
            assert!(e.to_string().contains("TIMESTAMP_QUERY"), "{e}");
            continue;
        }
        let mut rec = rec.profiled().unwrap();
        let x = Tensor::from_f32(ctx, "x", &[5000], &data(3, 5000)).unwrap();
        let y = Tensor::empty(ctx, "y", &[5000], DType::F32).unwrap();
        // 2100 dispatches: more than one query set (2048 dispatches each).
        for _ in 0..1050 {
            elementwise::scale(&mut rec, &x, 2.0, &y).unwrap();
            elementwise::axpy(&mut rec, 1.0, &x, &y).unwrap();
        }
        let readback = rec.read(&y);
        let (submitted, pending) = rec.submit_profiled().unwrap();
        let profile = pending.wait(ctx).unwrap();
        assert_eq!(submitted.dispatches, 2100);
        assert_eq!(profile.dispatches.len(), 2100);
        assert!(profile
            .dispatches
            .iter()
            .all(|d| d.ms >= 0.0 && d.ms.is_finite()));
        assert!(profile.total_ms() > 0.0, "{}", profile.table());
        let totals = profile.by_label();
        assert_eq!(totals.len(), 2, "{}", profile.table());
        assert!(totals.iter().all(|t| t.count == 1050));
        assert!(
            totals
                .iter()
                .any(|t| t.label.starts_with("elementwise::axpy")),
            "{}",
            profile.table()
        );
        // The work itself ran: y = 2x + x.
        let want: Vec<f32> = data(3, 5000).iter().map(|v| 3.0 * v).collect();
        let got = readback.wait_f32(ctx).unwrap();
        assert!(got
            .iter()
            .zip(&want)
            .all(|(a, b)| (a - b).abs() <= 1e-6 * b.abs().max(1.0)));
    }
}

#[test]
fn submit_profiled_needs_a_profiled_recorder() {
    let ctx = &contexts()[0];
    let e = ctx
        .recorder("plain")
        .submit_profiled()
        .err()
        .expect("not profiled");
    assert!(e.to_string().contains("profiled()"), "{e}");
}

#[test]
fn a_profiled_step_trains_bit_for_bit_like_a_plain_one() {
    // Private contexts: the counters must see this step alone.
    for ctx in private_contexts()
        .iter()
        .filter(|c| c.granted().timestamp_query)
    {
        let run = |profiled: bool| {
            let m = small_spec(Sharing::Hard { trunk: vec![8, 6] })
                .build(ctx)
                .unwrap();
            let mut p = Program::build(ctx, m.graph, sgd(0.1), 3).unwrap();
            feed(ctx, &p, &m.nodes, 5);
            let report = if profiled {
                let (report, profile) = p.profile_step(ctx, StepOptions::TRAIN).unwrap();
                assert_eq!(
                    profile.dispatches.len() as u64,
                    report.dispatches,
                    "{}",
                    profile.table()
                );
                assert!(profile.table().contains("(all dispatches)"));
                report
            } else {
                p.step(ctx, StepOptions::TRAIN).unwrap()
            };
            assert_eq!(report.submits, 1);
            p.params().values.to_f32_vec(ctx).unwrap()
        };
        let (plain, profiled) = (run(false), run(true));
        assert!(
            plain
                .iter()
                .zip(&profiled)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "profiling changed the numbers"
        );
    }
}
