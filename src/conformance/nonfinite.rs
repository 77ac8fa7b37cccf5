//! Conformance cases for the non-finite watch (`kernels::nonfinite`):
//! sequences of loss vectors at T = 1, 7, 64, 1000 and 5000, recorded into
//! one submit (one dispatch per step), against `reference::nonfinite`.
//!
//! The finite losses include the values a careless test gets wrong
//! (subnormals of both signs, −0.0, ±f32::MAX, the smallest normal); the
//! non-finite ones are NaN with several signs and payloads (quiet,
//! signalling), +inf and −inf. The record is compared word for word
//! (u32 → f32 is exact for the small words these cases produce).

use std::sync::Arc;

use crate::conformance::{Case, Expected, HostTensor, Requirement, Tolerance};
use crate::error::Result;
use crate::gpu::{Recorder, Tensor};
use crate::kernels::nonfinite::{watch_losses, RECORD_WORDS};
use crate::reference::nonfinite::{self as reference, Record};
use crate::util::rng::Rng;

/// Task counts every case shape is checked at: one task, odd, one lane
/// each, several lanes per lane-stride, and past 4096 (many strides).
pub const TASKS: &[usize] = &[1, 7, 64, 1000, 5000];

const QUIET_NAN: u32 = 0x7fc0_0000;
const POS_INF: u32 = 0x7f80_0000;
const NEG_INF: u32 = 0xff80_0000;
/// NaN bit patterns: quiet, negative quiet, signalling (payload 1), all
/// payload bits, negative signalling.
const NAN_PATTERNS: &[u32] = &[
    QUIET_NAN,
    0xffc0_0000,
    0x7f80_0001,
    0x7fff_ffff,
    0xff80_0001,
];

/// Finite values whose exponent or sign a wrong test could misread.
const FINITE_EDGES: [f32; 8] = [
    f32::from_bits(0x0000_0001), // smallest subnormal
    -0.0,
    f32::MAX,
    f32::from_bits(0x807f_ffff), // largest subnormal, negative
    -f32::MAX,
    f32::MIN_POSITIVE,
    0.0,
    f32::from_bits(0x7f7f_ffff), // f32::MAX by its bits: exponent 0xfe
];

/// One step: its number and the non-finite (task, bit pattern) placed
/// over finite losses.
#[derive(Clone, Debug)]
struct Step {
    number: u32,
    bad: Vec<(usize, u32)>,
}

#[derive(Clone, Debug)]
struct WatchCase {
    name: String,
    tasks: usize,
    initial: Record,
    steps: Vec<Step>,
}

/// Steps `first..=last` with finite losses only.
fn finite_steps(first: u32, last: u32) -> Vec<Step> {
    (first..=last)
        .map(|number| Step {
            number,
            bad: Vec::new(),
        })
        .collect()
}

fn step(number: u32, bad: &[(usize, u32)]) -> Step {
    Step {
        number,
        bad: bad.to_vec(),
    }
}

impl WatchCase {
    fn new(name: String, tasks: usize, steps: Vec<Step>) -> Self {
        WatchCase {
            name,
            tasks,
            initial: [0; RECORD_WORDS],
            steps,
        }
    }

    /// Finite losses in [0, 5) with an edge value at every third task
    /// (shifted per step, so a single task meets several edges), then the
    /// step's non-finite values.
    fn losses(&self, s: &Step) -> Vec<f32> {
        let mut rng = Rng::new(self.tasks as u64 * 131 + s.number as u64);
        let mut losses: Vec<f32> = (0..self.tasks)
            .map(|i| {
                let k = i + s.number as usize;
                let random = rng.uniform(0.0, 5.0);
                if k.is_multiple_of(3) {
                    FINITE_EDGES[(k / 3) % FINITE_EDGES.len()]
                } else {
                    random
                }
            })
            .collect();
        for &(task, bits) in &s.bad {
            losses[task] = f32::from_bits(bits);
        }
        losses
    }

    fn run(&self, rec: &mut Recorder) -> Result<Tensor> {
        let ctx = rec.ctx();
        let record = Tensor::from_u32(ctx, "nonfinite record", &[RECORD_WORDS], &self.initial)?;
        for s in &self.steps {
            let losses = Tensor::from_f32(ctx, "losses", &[self.tasks], &self.losses(s))?;
            watch_losses(rec, &losses, &record, s.number)?;
        }
        Ok(record)
    }

    fn expected(&self) -> Expected {
        let steps: Vec<(u32, Vec<f32>)> = self
            .steps
            .iter()
            .map(|s| (s.number, self.losses(s)))
            .collect();
        let record = reference::watch_sequence(self.initial, &steps);
        Expected {
            values: record.iter().map(|&w| w as f32).collect(),
            tolerance: Tolerance::EXACT,
        }
    }

    fn into_case(self) -> Case {
        let spec = Arc::new(self);
        let (run, expected) = (spec.clone(), spec.clone());
        Case {
            kernel: "nonfinite::watch_losses".into(),
            case: format!("T={} {}", spec.tasks, spec.name),
            inputs: Arc::new(Vec::<HostTensor>::new),
            gpu: Arc::new(move |rec, _| run.run(rec)),
            reference: Arc::new(move |_| expected.expected()),
            requires: Requirement::None,
        }
    }
}

/// Several non-finite tasks in one step. Past 300 tasks two of them share
/// a lane (45 and 301 = 45 + 256, 300 the lowest in lane 44).
fn several(t: usize) -> Vec<(usize, u32)> {
    if t > 600 {
        vec![
            (t - 1, NEG_INF),
            (557, QUIET_NAN),
            (301, QUIET_NAN),
            (t / 2, QUIET_NAN),
            (300, POS_INF),
        ]
    } else {
        vec![(t - 1, NEG_INF), (t / 2, QUIET_NAN), (t / 3, POS_INF)]
    }
}

/// The conformance cases of `kernels::nonfinite`, each against its CPU
/// reference.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for &t in TASKS {
        let last = t - 1;
        let mut shapes = vec![
            WatchCase::new("all finite".into(), t, finite_steps(1, 8)),
            WatchCase::new(
                format!("nan@{}", t * 2 / 3),
                t,
                vec![step(1, &[(t * 2 / 3, QUIET_NAN)])],
            ),
            WatchCase::new(
                format!("+inf@{}", t / 3),
                t,
                vec![step(2, &[(t / 3, POS_INF)])],
            ),
            WatchCase::new(
                format!("-inf@{}", t / 5),
                t,
                vec![step(3, &[(t / 5, NEG_INF)])],
            ),
            WatchCase::new(format!("steps 1-3 finite, nan@last={last} at 4"), t, {
                let mut s = finite_steps(1, 3);
                s.push(step(4, &[(last, QUIET_NAN)]));
                s
            }),
            WatchCase::new(
                "several non-finite tasks".into(),
                t,
                vec![step(5, &several(t))],
            ),
            WatchCase::new(
                format!("steps 1-5 finite, 6 nan@{}, 7 +inf@0", 3.min(last)),
                t,
                {
                    let mut s = finite_steps(1, 5);
                    s.push(step(6, &[(3.min(last), QUIET_NAN)]));
                    s.push(step(7, &[(0, POS_INF)]));
                    s
                },
            ),
            WatchCase {
                // Set at step 3, task 5 (NaN), two bad steps so far: only
                // the count moves.
                initial: [3, 5, 1, 2],
                ..WatchCase::new(
                    "record already set".into(),
                    t,
                    vec![step(9, &[(0, NEG_INF), (last, QUIET_NAN)]), step(10, &[])],
                )
            },
        ];
        if t == 7 || t == 5000 {
            for &bits in NAN_PATTERNS {
                shapes.push(WatchCase::new(
                    format!("nan {bits:#010x}@{last}"),
                    t,
                    vec![step(1, &[(last, bits)])],
                ));
            }
        }
        cases.extend(shapes.into_iter().map(WatchCase::into_case));
    }
    cases
}
