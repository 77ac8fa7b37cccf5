//! Conformance cases for the mixture-of-experts kernels (`kernels::moe`):
//! the gated combination, both outputs of its fused backward, the gate
//! softmax and its backward, and the DSelect-k gate and its backward, at
//! MMoE, CGC and PLE layouts from one expert to many.

use std::sync::Arc;

use crate::conformance::{Case, Expected, HostTensor, Requirement, Tolerance};
use crate::kernels::moe::{
    dselect_gate, dselect_gate_backward, gate_softmax, gate_softmax_backward, moe_mix,
    moe_mix_backward, DSelect, MixGrads, Mixture, SharedOutput,
};
use crate::reference::moe as reference;
use crate::util::rng::Rng;

/// (rows, tasks, task experts, shared experts, shared output, width).
pub const SHAPES: &[(usize, usize, usize, usize, bool, usize)] = &[
    (1, 1, 0, 1, false, 1),
    (7, 2, 0, 3, false, 5),
    (7, 3, 1, 2, false, 7),
    (33, 2, 2, 1, true, 17),
    (257, 4, 0, 16, false, 8),
    (100, 8, 1, 3, true, 33),
];

/// (rows, tasks, experts, selectors) of the DSelect-k cases.
pub const DSELECT_SHAPES: &[(usize, usize, usize, usize)] = &[
    (1, 1, 1, 1),
    (7, 2, 3, 2),
    (33, 3, 8, 4),
    (65, 2, 13, 3),
    (257, 8, 16, 2),
];

/// γ and λ of the DSelect-k cases: logits in [−1, 1) land on both the
/// cubic and the flat parts of the smooth step.
const GAMMA: f32 = 1.5;
const ENTROPY: f32 = 0.1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Mix,
    MixExpertGrad,
    MixGateGrad,
    Softmax,
    SoftmaxBackward,
}

fn mixture(s: (usize, usize, usize, usize, bool, usize)) -> (Mixture, reference::Layout) {
    let (_, tasks, task_experts, shared_experts, shared, width) = s;
    let mix = Mixture {
        tasks,
        task_experts,
        shared_experts,
        shared_output: if shared {
            SharedOutput::Yes
        } else {
            SharedOutput::No
        },
        width,
    };
    let layout = reference::Layout {
        tasks,
        task_experts,
        shared_experts,
        shared_output: shared,
        width,
    };
    (mix, layout)
}

/// Tolerance of `terms`-long f32 fma chains against f64, scaled by the
/// largest magnitude of the absolute-value reference.
fn chain_tolerance(terms: usize, top: f32) -> Tolerance {
    let eps = f32::EPSILON as f64 / 2.0;
    Tolerance::new((terms as f64 + 4.0) * eps * (top as f64 + 1.0), 0.0)
}

fn top(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

fn case(kind: Kind, s: (usize, usize, usize, usize, bool, usize)) -> Case {
    let (mix, layout) = mixture(s);
    let rows = s.0;
    let (e, g, o, w) = (mix.experts(), mix.gate_columns(), mix.outputs(), mix.width);
    let inputs = move || {
        let mut rng = Rng::new((rows * 131 + e * 17 + g * 5 + w) as u64);
        // Gates as a softmax makes them (positive, summing to one per block).
        let z = rng.uniform_vec(rows * g, -2.0, 2.0);
        vec![
            HostTensor::new(&[rows, e * w], rng.uniform_vec(rows * e * w, -1.0, 1.0)),
            HostTensor::new(&[rows, g], reference::gate_softmax(&z, rows, &layout)),
            HostTensor::new(&[rows, o * w], rng.uniform_vec(rows * o * w, -1.0, 1.0)),
            HostTensor::new(&[rows, g], z),
            HostTensor::new(&[rows, g], rng.uniform_vec(rows * g, -1.0, 1.0)),
        ]
    };
    let name = match kind {
        Kind::Mix => "mix",
        Kind::MixExpertGrad => "mix_backward_experts",
        Kind::MixGateGrad => "mix_backward_gates",
        Kind::Softmax => "gate_softmax",
        Kind::SoftmaxBackward => "gate_softmax_backward",
    };
    Case {
        kernel: format!("moe::{name}"),
        case: format!(
            "rows={rows} tasks={} task_experts={} shared_experts={} shared_output={} width={w}",
            mix.tasks,
            mix.task_experts,
            mix.shared_experts,
            mix.has_shared_output()
        ),
        inputs: Arc::new(inputs),
        gpu: Arc::new(move |rec, t| {
            let ctx = rec.ctx();
            let poisoned = crate::conformance::poisoned_output;
            match kind {
                Kind::Mix => {
                    let h = poisoned(ctx, "moe h", &[rows, o * w])?;
                    moe_mix(rec, &mix, &t[0], &t[1], &h)?;
                    Ok(h)
                }
                Kind::MixExpertGrad | Kind::MixGateGrad => {
                    let df = poisoned(ctx, "moe dF", &[rows, e * w])?;
                    let dg = poisoned(ctx, "moe dg", &[rows, g])?;
                    let grads = MixGrads {
                        experts: &df,
                        gates: &dg,
                        accumulate_experts: false,
                        accumulate_gates: false,
                    };
                    moe_mix_backward(rec, &mix, &t[0], &t[1], &t[2], &grads)?;
                    Ok(if kind == Kind::MixExpertGrad { df } else { dg })
                }
                Kind::Softmax => {
                    let out = poisoned(ctx, "moe gates", &[rows, g])?;
                    gate_softmax(rec, &mix, &t[3], &out)?;
                    Ok(out)
                }
                Kind::SoftmaxBackward => {
                    let out = poisoned(ctx, "moe dz", &[rows, g])?;
                    gate_softmax_backward(rec, &mix, &t[1], &t[4], &out, false)?;
                    Ok(out)
                }
            }
        }),
        reference: Arc::new(move |hs| {
            let (f, gates, dh, z, dg) = (
                &hs[0].data,
                &hs[1].data,
                &hs[2].data,
                &hs[3].data,
                &hs[4].data,
            );
            let (values, scale, terms) = match kind {
                Kind::Mix => (
                    reference::mix(f, gates, rows, &layout),
                    reference::mix(&abs(f), gates, rows, &layout),
                    e,
                ),
                Kind::MixExpertGrad | Kind::MixGateGrad => {
                    let (df, dgv) = reference::mix_backward(f, gates, dh, rows, &layout);
                    let (sf, sg) = reference::mix_backward(&abs(f), gates, &abs(dh), rows, &layout);
                    if kind == Kind::MixExpertGrad {
                        (df, sf, o)
                    } else {
                        (dgv, sg, w)
                    }
                }
                Kind::Softmax => (reference::gate_softmax(z, rows, &layout), vec![1.0], 8 * e),
                Kind::SoftmaxBackward => (
                    reference::gate_softmax_backward(gates, dg, rows, &layout),
                    vec![1.0],
                    2 * e,
                ),
            };
            Expected {
                values,
                tolerance: chain_tolerance(terms, top(&scale)),
            }
        }),
        requires: Requirement::None,
    }
}

fn dselect_case(
    backward: bool,
    (rows, tasks, experts, selectors): (usize, usize, usize, usize),
) -> Case {
    let gate = DSelect {
        tasks,
        experts,
        selectors,
        gamma: GAMMA,
        entropy: ENTROPY,
    };
    let layout = reference::DSelectLayout {
        tasks,
        experts,
        selectors,
        gamma: GAMMA as f64,
        entropy: ENTROPY as f64,
    };
    let n = tasks * gate.task_logits();
    let inputs = move || {
        let mut rng = Rng::new((rows * 7 + tasks * 3 + experts * 11 + selectors) as u64);
        vec![
            HostTensor::new(&[rows, n], rng.uniform_vec(rows * n, -1.0, 1.0)),
            HostTensor::new(
                &[rows, tasks * experts],
                rng.uniform_vec(rows * tasks * experts, -1.0, 1.0),
            ),
        ]
    };
    Case {
        kernel: format!(
            "moe::{}",
            if backward {
                "dselect_gate_backward"
            } else {
                "dselect_gate"
            }
        ),
        case: format!("rows={rows} tasks={tasks} experts={experts} selectors={selectors}"),
        inputs: Arc::new(inputs),
        gpu: Arc::new(move |rec, t| {
            let ctx = rec.ctx();
            if backward {
                let out = crate::conformance::poisoned_output(ctx, "dselect dlogits", &[rows, n])?;
                dselect_gate_backward(rec, &gate, &t[0], &t[1], &out, false)?;
                Ok(out)
            } else {
                let out = crate::conformance::poisoned_output(
                    ctx,
                    "dselect gates",
                    &[rows, tasks * experts],
                )?;
                dselect_gate(rec, &gate, &t[0], &out)?;
                Ok(out)
            }
        }),
        reference: Arc::new(move |hs| {
            let values = if backward {
                layout.backward(&hs[0].data, &hs[1].data, rows)
            } else {
                layout.gates(&hs[0].data, rows)
            };
            // Products of ≤ 6 smooth steps, a softmax, and (backward) sums
            // over 2^m codes with logs: f32 against f64 (and the
            // reference's own differencing error, ~1e-8).
            let scale = top(&values) as f64 + 1.0;
            Expected {
                values,
                tolerance: Tolerance::new(2e-5 * scale, 0.0),
            }
        }),
        requires: Requirement::None,
    }
}

/// The conformance cases of `kernels::moe`, each against its CPU
/// reference.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for kind in [
        Kind::Mix,
        Kind::MixExpertGrad,
        Kind::MixGateGrad,
        Kind::Softmax,
        Kind::SoftmaxBackward,
    ] {
        for &shape in SHAPES {
            cases.push(case(kind, shape));
        }
    }
    for backward in [false, true] {
        for &shape in DSELECT_SHAPES {
            cases.push(dselect_case(backward, shape));
        }
    }
    cases
}
