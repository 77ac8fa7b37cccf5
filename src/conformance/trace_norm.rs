//! Conformance cases for the trace norms (`kernels::trace_norm`): the
//! gradient term and value of every variant, and the LAF prox, on both
//! routes, against the f64 Jacobi SVD reference.

use std::sync::Arc;

use crate::conformance::{Case, Expected, HostTensor, Requirement, Tolerance};
use crate::gpu::{DType, Tensor};
use crate::kernels::trace_norm::{TaskStack, TraceNormPlan, TraceNormVariant, REL_TOL};
use crate::reference::trace_norm as reference;
use crate::util::rng::Rng;

/// [T, in, out]: tiny, odd route-(a) sizes, 16 tasks, and Newton–Schulz on
/// the input and output unfoldings ([66, 140], [132, 70]).
const STACKS: &[(usize, usize, usize)] = &[(2, 3, 5), (3, 7, 65), (16, 8, 64), (2, 66, 70)];
/// Prox stacks: route (a), and [70, 100] by Newton–Schulz.
const PROX_STACKS: &[(usize, usize, usize)] = &[(3, 7, 65), (70, 1, 100)];

#[derive(Clone, Copy, Debug, PartialEq)]
enum What {
    Grad,
    Value,
    Prox,
}

fn case(
    what: What,
    variant: TraceNormVariant,
    (tasks, inputs, outputs): (usize, usize, usize),
) -> Case {
    const LAMBDA: f32 = 0.3;
    let s = TaskStack {
        tasks,
        inputs,
        outputs,
    };
    let n = s.len();
    let inputs_fn = move || {
        let mut rng = Rng::new((tasks * 7919 + inputs * 31 + outputs) as u64);
        vec![
            HostTensor::new(&[n], rng.uniform_vec(n, -1.0, 1.0)),
            HostTensor::new(&[n], rng.uniform_vec(n, -1.0, 1.0)),
        ]
    };
    // τ: about the median singular value of the [T, in·out] stack.
    let tau = move |w: &[f32]| {
        let (r, c) = (tasks, inputs * outputs);
        let sigma = reference::singular_values(w, r, c);
        sigma[r.min(c) / 2] as f32
    };
    let part = match what {
        What::Grad => "grad",
        What::Value => "value",
        What::Prox => "prox",
    };
    Case {
        kernel: format!("trace_norm::{}[{part}]", variant.name()),
        case: format!("tasks={tasks} in={inputs} out={outputs} lambda={LAMBDA}"),
        inputs: Arc::new(inputs_fn),
        gpu: Arc::new(move |rec, t| {
            let ctx = rec.ctx();
            let plan = TraceNormPlan::new(ctx, s, variant, what == What::Prox)?;
            let norm = Tensor::empty(ctx, "norm", &[1], DType::F32)?;
            match what {
                What::Prox => {
                    // τ from the host copy of the (deterministic) inputs.
                    let w = &inputs_fn()[0].data;
                    plan.prox(rec, &t[0], tau(w), &t[1], &norm)?;
                    Ok(t[1].clone())
                }
                What::Grad => {
                    plan.gradient(rec, &t[0], LAMBDA, &t[1], &norm)?;
                    Ok(t[1].clone())
                }
                What::Value => {
                    let out = crate::conformance::poisoned_output(ctx, "value", &[1])?;
                    plan.gradient(rec, &t[0], LAMBDA, &t[1], &out)?;
                    Ok(out)
                }
            }
        }),
        reference: Arc::new(move |h| {
            let (w, g0) = (&h[0].data, &h[1].data);
            match what {
                What::Grad => {
                    let (_, p) = reference::stack_trace_norm(w, s, variant, REL_TOL as f64);
                    Expected {
                        values: g0.iter().zip(&p).map(|(g, p)| g + LAMBDA * p).collect(),
                        // f32 Gram and Jacobi (route a) / 24 NS steps (b).
                        tolerance: Tolerance::new(5e-4, 1e-4),
                    }
                }
                What::Value => Expected {
                    values: vec![
                        reference::stack_trace_norm(w, s, variant, REL_TOL as f64).0 as f32,
                    ],
                    tolerance: Tolerance::new(0.0, 1e-4),
                },
                What::Prox => {
                    let (r, c) = (tasks, inputs * outputs);
                    let (_, out) = reference::prox_matrix(w, r, c, tau(w) as f64, REL_TOL as f64);
                    Expected {
                        values: out,
                        tolerance: Tolerance::new(1e-3, 1e-3),
                    }
                }
            }
        }),
        requires: Requirement::None,
    }
}

/// The conformance cases of `kernels::trace_norm`, each against its CPU
/// reference.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for &stack in STACKS {
        for variant in TraceNormVariant::ALL {
            cases.push(case(What::Grad, variant, stack));
            cases.push(case(What::Value, variant, stack));
        }
    }
    for &stack in PROX_STACKS {
        cases.push(case(What::Prox, TraceNormVariant::LastAxis, stack));
    }
    cases
}
