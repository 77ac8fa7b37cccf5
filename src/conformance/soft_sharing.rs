//! Conformance cases for the soft-sharing regularisers
//! (`kernels::soft_sharing`): gradient terms, proximal step and values.

use std::sync::Arc;

use crate::conformance::{Case, Expected, HostTensor, Requirement, Tolerance};
use crate::gpu::Tensor;
use crate::kernels::soft_sharing::{add_gradient, group_lasso_prox, value, Regulariser};
use crate::reference::soft_sharing as reference;
use crate::util::rng::Rng;

/// (tasks, d): two tasks of one weight, odd sizes, T = 16, and a layer
/// of 70 000 weights (274 workgroups).
pub const SHAPES: &[(usize, usize)] = &[(2, 1), (3, 7), (5, 257), (16, 1025), (4, 70_000)];

#[derive(Clone, Copy, Debug, PartialEq)]
enum What {
    /// The gradient after adding the term to a random gradient.
    Grad(Regulariser),
    /// W after the proximal step.
    Prox,
    /// The regulariser's value.
    Value(Regulariser),
}

fn case(what: What, (tasks, d): (usize, usize)) -> Case {
    const LAMBDA: f32 = 0.3;
    const ETA: f32 = 0.5;
    let n = tasks * d;
    let inputs = move || {
        let mut rng = Rng::new((tasks * 7919 + d) as u64);
        vec![
            HostTensor::new(&[n], rng.uniform_vec(n, -1.0, 1.0)),
            HostTensor::new(&[n], rng.uniform_vec(n, -1.0, 1.0)),
        ]
    };
    let name = match what {
        What::Grad(r) | What::Value(r) => match r {
            Regulariser::L2Distance { .. } => "l2_distance",
            Regulariser::Clustering { .. } => "clustering",
            Regulariser::GroupLasso { .. } => "group_lasso",
            // Trace norm has its own cases (kernels-tests/trace_norm.rs).
            Regulariser::TraceNorm { .. } | Regulariser::TraceNormProx { .. } => "trace_norm",
        },
        What::Prox => "group_lasso",
    };
    let part = match what {
        What::Grad(_) => "grad",
        What::Prox => "prox",
        What::Value(_) => "value",
    };
    Case {
        kernel: format!("soft_sharing::{name}[{part}]"),
        case: format!("tasks={tasks} d={d} lambda={LAMBDA}"),
        inputs: Arc::new(inputs),
        gpu: Arc::new(move |rec, t| {
            let partial = Tensor::empty(rec.ctx(), "partials", &[d], crate::types::DType::F32)?;
            match what {
                What::Grad(r) => {
                    add_gradient(rec, &r, tasks, &t[0], &t[1], &partial)?;
                    Ok(t[1].clone())
                }
                What::Prox => {
                    group_lasso_prox(rec, tasks, LAMBDA, ETA, &t[0], &partial)?;
                    Ok(t[0].clone())
                }
                What::Value(r) => {
                    if r.is_proximal() {
                        group_lasso_prox(rec, tasks, LAMBDA, ETA, &t[0], &partial)?;
                    } else {
                        add_gradient(rec, &r, tasks, &t[0], &t[1], &partial)?;
                    }
                    let out = crate::conformance::poisoned_output(rec.ctx(), "value", &[1])?;
                    value(rec, &partial, &out)?;
                    Ok(out)
                }
            }
        }),
        reference: Arc::new(move |h| {
            let (w, g0) = (&h[0].data, &h[1].data);
            let eps = f32::EPSILON as f64;
            match what {
                What::Grad(r) => {
                    let (_, g) = match r {
                        Regulariser::L2Distance { lambda } => {
                            reference::l2_distance(w, tasks, lambda)
                        }
                        _ => reference::clustering(w, tasks, r.lambda()),
                    };
                    let values = g.iter().zip(g0).map(|(a, b)| a + b).collect();
                    // Sums of T terms of size ≤ 2λT, then one addition.
                    let scale = 2.0 * LAMBDA as f64 * tasks as f64 * 2.0 + 1.0;
                    Expected {
                        values,
                        tolerance: Tolerance::new((tasks as f64 + 4.0) * eps * scale, 0.0),
                    }
                }
                What::Prox => Expected {
                    values: reference::group_lasso_prox(w, tasks, LAMBDA, ETA * LAMBDA).1,
                    tolerance: Tolerance::new(8.0 * eps, 8.0 * eps),
                },
                What::Value(r) => {
                    let v = match r {
                        Regulariser::L2Distance { lambda } => {
                            reference::l2_distance(w, tasks, lambda).0
                        }
                        Regulariser::Clustering { lambda } => {
                            reference::clustering(w, tasks, lambda).0
                        }
                        Regulariser::GroupLasso { lambda } => {
                            reference::group_lasso_prox(w, tasks, lambda, 0.0).0
                        }
                        Regulariser::TraceNorm { .. } | Regulariser::TraceNormProx { .. } => {
                            unreachable!("no trace-norm cases here")
                        }
                    };
                    // The L2 form T·Σw² − (Σw)² cancels: bound by its terms.
                    let terms = (n as f64) * (tasks as f64 + 2.0);
                    Expected {
                        values: vec![v as f32],
                        tolerance: Tolerance::new(terms * eps * LAMBDA as f64 * tasks as f64, 1e-5),
                    }
                }
            }
        }),
        requires: Requirement::None,
    }
}

/// The conformance cases of `kernels::soft_sharing`, each against its CPU
/// reference.
pub fn cases() -> Vec<Case> {
    let regs = [
        Regulariser::L2Distance { lambda: 0.3 },
        Regulariser::Clustering { lambda: 0.3 },
        Regulariser::GroupLasso { lambda: 0.3 },
    ];
    let mut cases = Vec::new();
    for &shape in SHAPES {
        for r in regs {
            if !r.is_proximal() {
                cases.push(case(What::Grad(r), shape));
            }
            cases.push(case(What::Value(r), shape));
        }
        cases.push(case(What::Prox, shape));
    }
    cases
}
