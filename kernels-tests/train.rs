//! The training layer (`manytask::train`) through its library API: the
//! learning rate each step follows its schedule, early stopping stops at
//! the epoch a scripted rule says, the best checkpoint holds the best
//! epoch's weights, a resumed run continues bit for bit, and splits too
//! small for a batch train or fail fast (each run under a time bound).

use std::sync::mpsc;
use std::time::Duration;

use manytask::data::synthetic::{Synthetic, SyntheticSpec};
use manytask::prelude::*;
use manytask::train::stopping::Verdict;
use manytask::train::{state, StopReason};

use crate::common::{contexts, scratch_dir};

/// `rows` samples of a small synthetic benchmark: 2 regression tasks of 2
/// outputs on 6 features.
fn data(rows: usize) -> Dataset {
    let spec = SyntheticSpec::new(2, 6, 2, 10.0, 0);
    Dataset::from_synthetic(&Synthetic::generate(&spec, rows).unwrap()).unwrap()
}

/// A hard-sharing model of `batch` rows for `data`'s tasks (masked, so
/// short batches pad), built from `seed`.
fn learner(ctx: &GpuContext, data: &Dataset, batch: usize, seed: u64) -> Learner {
    weighted_learner(ctx, data, batch, seed, Weighting::Equal)
}

/// `learner` with another task weighting.
fn weighted_learner(
    ctx: &GpuContext,
    data: &Dataset,
    batch: usize,
    seed: u64,
    weighting: Weighting,
) -> Learner {
    let spec = ModelSpec {
        init: WeightInit::Glorot,
        rows: batch,
        inputs: data.features(),
        activation: Activation::Relu,
        sharing: Sharing::Hard { trunk: vec![8] },
        tasks: data
            .tasks()
            .iter()
            .map(|t| TaskSpec {
                masked: true,
                ..TaskSpec::new(&t.name, t.targets.kind(), &[])
            })
            .collect(),
    };
    let optimizer = Optimizer::AdamW(AdamW {
        lr: 1e-2,
        ..AdamW::default()
    });
    Learner::new(ctx, spec, optimizer, weighting, seed).unwrap()
}

/// Runs `f` on another thread; fails the test if it takes over `secs`.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|e| panic!("no result within {secs} s: {e}"))
}

/// Records the rate of every step: the event's, and the program's after it.
#[derive(Default)]
struct Rates(Vec<(f32, f32)>);

impl Observer for Rates {
    fn on_step(&mut self, e: &StepEvent) -> Result<()> {
        self.0.push((e.lr, e.learner.program.learning_rate()));
        Ok(())
    }
}

#[test]
fn the_learning_rate_of_every_step_follows_its_schedule() {
    let ctx = &contexts()[0];
    let d = data(100);
    let (total, base) = (20usize, 1e-2f64);
    // The formulas, written out independently of `LrSchedule::lr`.
    let warmup_cosine = |s: usize| -> f64 {
        let (w, min) = (5usize, 1e-3f64);
        if s < w {
            base * (s + 1) as f64 / w as f64
        } else {
            let t = (s - w) as f64 / (total - w) as f64;
            min + (base - min) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
        }
    };
    let warmup_step = |s: usize| -> f64 {
        if s < 2 {
            base * (s + 1) as f64 / 2.0
        } else {
            base * 0.5f64.powi(((s - 2) / 4) as i32)
        }
    };
    let cases: [(LrSchedule, &dyn Fn(usize) -> f64); 2] = [
        (
            LrSchedule::new(ScheduleKind::Cosine { min_lr: 1e-3 }).with_warmup(5),
            &warmup_cosine,
        ),
        (
            LrSchedule::new(ScheduleKind::Step {
                step_size: 4,
                gamma: 0.5,
            })
            .with_warmup(2),
            &warmup_step,
        ),
    ];
    for (schedule, formula) in cases {
        let mut l = learner(ctx, &d, 16, 0);
        let mut rates = Rates::default();
        Trainer::new(TrainOptions::steps(total).schedule(schedule))
            .observe(&mut rates)
            .fit(ctx, &mut l, &d, None)
            .unwrap();
        assert_eq!(rates.0.len(), total);
        for (s, &(event, program)) in rates.0.iter().enumerate() {
            let want = formula(s);
            assert_eq!(event, program, "{schedule:?} step {s}");
            assert!(
                (event as f64 - want).abs() <= 1e-6 * want,
                "{schedule:?} step {s}: {event} vs {want}"
            );
        }
        // The base rate is the optimiser's: the first warmup step is lr/W.
        assert!(rates.0[0].0 < rates.0[1].0, "{:?}", rates.0);
    }
}

/// Per validation pass: the epoch, the watched value and its verdict,
/// and the parameters as the pass saw them.
#[derive(Default)]
struct Passes(Vec<(usize, f64, Verdict, Vec<f32>)>);

impl Observer for Passes {
    fn on_evaluation(&mut self, e: &EvaluationEvent) -> Result<()> {
        let w = e.watched.expect("a watched metric");
        let params = e.learner.program.params().values.to_f32_vec(e.ctx)?;
        self.0.push((e.epoch, w.value, w.verdict, params));
        Ok(())
    }
}

#[test]
fn early_stopping_stops_when_patience_runs_out_and_save_best_keeps_that_epoch() {
    let ctx = &contexts()[0];
    let d = data(200);
    let split = d
        .split(
            SplitFractions {
                validation: 0.2,
                test: 0.0,
            },
            0,
        )
        .unwrap();
    let dir = scratch_dir("train-best");
    let best_path = dir.join("best.safetensors");
    // Higher validation loss counts as better: training lowers it, so the
    // first epoch is the best, and patience 2 stops after epoch 3.
    let stopping = EarlyStopping {
        monitor: Monitor::loss().with_direction(Direction::Max),
        patience: 2,
    };
    let options = TrainOptions::epochs(10)
        .early_stopping(stopping)
        .save_best(&best_path);
    let mut l = learner(ctx, &d, 16, 0);
    let mut passes = Passes::default();
    let report = Trainer::new(options)
        .observe(&mut passes)
        .fit(ctx, &mut l, &split.train, Some(&split.validation))
        .unwrap();
    // The stopping rule, scripted over the values the passes saw.
    let (mut best, mut stale, mut stop_at) = (f64::NEG_INFINITY, 0, None);
    for (epoch, value, _, _) in &passes.0 {
        if *value > best {
            (best, stale) = (*value, 0);
        } else {
            stale += 1;
        }
        if stale >= 2 && stop_at.is_none() {
            stop_at = Some(*epoch);
        }
    }
    let stop_at = stop_at.expect("the validation loss fell, so patience runs out");
    assert_eq!(report.reason, StopReason::EarlyStopped { epoch: stop_at });
    assert_eq!(passes.0.len(), stop_at, "one pass per epoch, then stop");
    let per_epoch = split.train.rows().div_ceil(16);
    assert_eq!(report.state.step, stop_at * per_epoch);
    assert!(passes.0.last().unwrap().2.stop);
    // The best checkpoint holds the weights of the best pass, not the last.
    let best_pass = passes
        .0
        .iter()
        .find(|p| p.1 == best)
        .expect("the best pass");
    assert!(
        best_pass.0 < stop_at,
        "the best epoch should not be the last"
    );
    assert_eq!(report.best.unwrap().epoch, best_pass.0);
    let mut fresh = learner(ctx, &d, 16, 9);
    state::load_parameters(ctx, &mut fresh, &best_path).unwrap();
    let saved = fresh.program.params().values.to_f32_vec(ctx).unwrap();
    assert!(
        saved == best_pass.3,
        "save_best does not hold epoch {}",
        best_pass.0
    );
    let last = l.program.params().values.to_f32_vec(ctx).unwrap();
    assert!(saved != last);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_resumed_run_continues_bit_for_bit_across_an_epoch_boundary() {
    let ctx = &contexts()[0];
    // 40 samples in batches of 16: 3 batches an epoch (the last short),
    // shuffled. 4 steps, saved, resumed to 7 = 7 straight.
    let d = data(40);
    let dir = scratch_dir("train-resume");
    let path = dir.join("half.safetensors");
    let options = TrainOptions::steps(7).shuffle(3);
    let mut straight = learner(ctx, &d, 16, 0);
    Trainer::new(options.clone())
        .fit(ctx, &mut straight, &d, None)
        .unwrap();
    let mut first = learner(ctx, &d, 16, 0);
    let half = Trainer::new(TrainOptions::steps(4).shuffle(3))
        .fit(ctx, &mut first, &d, None)
        .unwrap();
    assert_eq!((half.state.epoch, half.state.batch), (1, 1));
    state::save(ctx, &first, &half.state, &[], &path).unwrap();
    // Another seed: everything must come from the checkpoint.
    let mut resumed = learner(ctx, &d, 16, 5);
    let at = state::resume(ctx, &mut resumed, &path).unwrap();
    assert_eq!(at, half.state);
    let rest = Trainer::new(options)
        .resume_from(at)
        .fit(ctx, &mut resumed, &d, None)
        .unwrap();
    assert_eq!(rest.steps_run, 3);
    assert_eq!(
        (rest.state.step, rest.state.epoch, rest.state.batch),
        (7, 2, 1)
    );
    let values = |l: &Learner| l.program.params().values.to_f32_vec(ctx).unwrap();
    assert!(values(&resumed) == values(&straight));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn tiny_splits_train_or_fail_naming_the_split_within_a_time_bound() {
    let outcome = within(600, || {
        let ctx = &contexts()[0];
        let d = data(10);
        let fit = |d: &Dataset, options: TrainOptions, validation: Option<&Dataset>| {
            let mut l = learner(ctx, d, 16, 0);
            Trainer::new(options).fit(ctx, &mut l, d, validation)
        };
        let empty = d.subset(&[]);
        let one = d.subset(&[3]);
        vec![
            // No sample at all.
            fit(&empty, TrainOptions::steps(3), None).map(|r| r.state.step),
            // One sample: a short batch of 1 each step.
            fit(&one, TrainOptions::steps(3), None).map(|r| r.state.epoch),
            // 10 samples < 16 rows: one short batch an epoch ...
            fit(&d, TrainOptions::epochs(2), None).map(|r| r.state.step),
            // ... or nothing to train with drop_last.
            fit(&d, TrainOptions::steps(3).last_batch(LastBatch::Drop), None).map(|r| r.state.step),
            // The best checkpoint needs validation samples.
            fit(
                &d,
                TrainOptions::steps(3).save_best("unused.safetensors"),
                Some(&empty),
            )
            .map(|r| r.state.step),
        ]
        .into_iter()
        .map(|r| r.map_err(|e| e.to_string()))
        .collect::<Vec<_>>()
    });
    let err = |i: usize| outcome[i].clone().unwrap_err();
    assert!(err(0).contains("the training split is empty"), "{}", err(0));
    assert_eq!(outcome[1], Ok(3), "one sample, three epochs of one step");
    assert_eq!(outcome[2], Ok(2));
    assert!(
        err(3).contains("the training split has 10 samples, fewer than one batch of 16"),
        "{}",
        err(3)
    );
    assert!(err(4).contains("no validation samples"), "{}", err(4));
    assert!(!std::path::Path::new("unused.safetensors").exists());
}

#[test]
fn a_resumed_run_continues_bit_for_bit_with_every_stateful_weighting() {
    // RLW and PCGrad draw from a generator, GradNorm learns weights with
    // Adam, DWA keeps two epochs of losses and the running sums of the
    // epoch in progress, uncertainty warm-starts log σ² once: all of it
    // must travel in the checkpoint. 3 batches an epoch; saved mid-epoch
    // at step 7 (DWA has two epochs of history), resumed to 10.
    let ctx = &contexts()[0];
    let d = data(40);
    let dir = scratch_dir("train-resume-weighting");
    for name in [
        "rlw",
        "pcgrad",
        "gradnorm",
        "dwa",
        "uncertainty_warm",
        "gradvac",
        "graddrop",
        "famo",
        "stch",
    ] {
        // STCH without warm-up: the nadir epoch and the smooth maximum
        // both come before and after the save.
        let weighting = || match manytask::weighting::parse(name).unwrap() {
            Weighting::Stch { mu, .. } => Weighting::Stch {
                mu,
                warmup_epochs: 0,
            },
            w => w,
        };
        let path = dir.join(format!("{name}.safetensors"));
        let mut straight = weighted_learner(ctx, &d, 16, 0, weighting());
        Trainer::new(TrainOptions::steps(10).shuffle(3))
            .fit(ctx, &mut straight, &d, None)
            .unwrap();
        let mut first = weighted_learner(ctx, &d, 16, 0, weighting());
        let part = Trainer::new(TrainOptions::steps(7).shuffle(3))
            .fit(ctx, &mut first, &d, None)
            .unwrap();
        state::save(ctx, &first, &part.state, &[], &path).unwrap();
        // Another seed: the weighting's generator must come from the file.
        let mut resumed = weighted_learner(ctx, &d, 16, 9, weighting());
        let at = state::resume(ctx, &mut resumed, &path).unwrap();
        Trainer::new(TrainOptions::steps(10).shuffle(3))
            .resume_from(at)
            .fit(ctx, &mut resumed, &d, None)
            .unwrap();
        let values = |l: &Learner| l.program.params().values.to_f32_vec(ctx).unwrap();
        assert!(values(&resumed) == values(&straight), "{name}");
        // Another method cannot take this state.
        let mut other = weighted_learner(ctx, &d, 16, 0, Weighting::Equal);
        let e = state::resume(ctx, &mut other, &path)
            .unwrap_err()
            .to_string();
        // (Uncertainty weighting adds parameters: its layout differs too.)
        let method = name.split('_').next().unwrap();
        assert!(
            (e.contains("weighting state") && e.contains(method)) || e.contains("parameter layout"),
            "{e}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
