//! Conformance cases for the weighting kernels (`kernels::weighting`):
//! the Gram matrix of per-task rows, uncertainty weighting, the loss
//! rules (GLS, STCH, FAMO), GradDrop, and ExcessMTL's and MoCo's
//! per-parameter kernels.

use std::sync::Arc;

use crate::conformance::{Case, Expected, HostTensor, Requirement, Tolerance};
use crate::kernels::weighting::{
    combine_rows, graddrop, gram, loss_rule, moco_update, row_sums, uncertainty_grad,
    uncertainty_weights, GramScratch, LossRule, RowSum, RowSumScratch,
};
use crate::reference::weighting as reference;
use crate::util::rng::Rng;

/// (tasks, elements per task): 1, odd, chunk ± 1, many chunks, T = 64.
pub const GRAM_SHAPES: &[(usize, usize)] = &[
    (1, 1),
    (2, 7),
    (3, 4095),
    (5, 4097),
    (8, 100_003),
    (64, 300),
];

fn gram_case(tasks: usize, n: usize) -> Case {
    let inputs = move || {
        let mut rng = Rng::new((tasks * 1009 + n) as u64);
        vec![HostTensor::new(
            &[tasks, n],
            rng.uniform_vec(tasks * n, -1.0, 1.0),
        )]
    };
    let eps = f32::EPSILON as f64 / 2.0;
    Case {
        kernel: "weighting::gram".into(),
        case: format!("tasks={tasks} n={n}"),
        inputs: Arc::new(inputs),
        gpu: Arc::new(move |rec, t| {
            let scratch = GramScratch::new(rec.ctx(), tasks, n)?;
            let x = t[0].reshape(&[tasks * n])?;
            gram(rec, &x, tasks, &scratch)?;
            Ok(scratch.sums)
        }),
        reference: Arc::new(move |h| {
            let x = &h[0].data;
            let abs: Vec<f32> = x.iter().map(|v| v.abs()).collect();
            let scale = reference::gram_pairs(&abs, tasks);
            let top = scale.iter().fold(0f32, |m, v| m.max(*v)) as f64;
            // Per chunk: strided vec4 fma chains of ≤ 16 steps a lane, a
            // 64-lane ordered sum; then n/4096 chunks in order: the error
            // bound of that many terms, loosely.
            let terms = (n / 256 + 16) as f64;
            Expected {
                values: full_matrix(tasks, &reference::gram_pairs(x, tasks)),
                tolerance: Tolerance::new(terms * eps * (top + 1.0), 0.0),
            }
        }),
        requires: Requirement::None,
    }
}

/// The symmetric T×T matrix from the upper-triangle pair sums.
fn full_matrix(tasks: usize, pairs: &[f32]) -> Vec<f32> {
    let mut m = vec![0f32; tasks * tasks];
    let mut k = 0;
    for i in 0..tasks {
        for j in i..tasks {
            m[i * tasks + j] = pairs[k];
            m[j * tasks + i] = pairs[k];
            k += 1;
        }
    }
    m
}

fn uncertainty_case(tasks: usize, grad: bool) -> Case {
    let inputs = move || {
        let mut rng = Rng::new(tasks as u64 + 77);
        vec![
            HostTensor::new(&[tasks], rng.uniform_vec(tasks, -3.0, 3.0)),
            HostTensor::new(&[tasks], rng.uniform_vec(tasks, 0.0, 5.0)),
        ]
    };
    Case {
        kernel: format!(
            "weighting::uncertainty_{}",
            if grad { "grad" } else { "weights" }
        ),
        case: format!("tasks={tasks}"),
        inputs: Arc::new(inputs),
        gpu: Arc::new(move |rec, t| {
            let out = crate::conformance::poisoned_output(rec.ctx(), "uncertainty out", &[tasks])?;
            if grad {
                uncertainty_grad(rec, &t[0], &t[1], &out)?;
            } else {
                uncertainty_weights(rec, &t[0], &out)?;
            }
            Ok(out)
        }),
        reference: Arc::new(move |h| {
            let values = if grad {
                reference::uncertainty_grad(&h[0].data, &h[1].data)
            } else {
                reference::uncertainty_weights(&h[0].data)
            };
            // exp is not correctly rounded on GPUs: a few ulp, relative.
            Expected {
                values,
                tolerance: Tolerance::new(1e-6, 1e-5),
            }
        }),
        requires: Requirement::None,
    }
}

fn loss_rule_case(tasks: usize, rule_name: &'static str) -> Case {
    let rule = move |rng: &mut Rng| match rule_name {
        "gls" => LossRule::GeometricMean,
        "log" => LossRule::Log,
        "stch" => LossRule::SmoothMax {
            mu: 0.5,
            nadir: rng.uniform_vec(tasks, 0.5, 3.0),
        },
        _ => {
            let z = rng.uniform_vec(tasks, 0.1, 1.0);
            let sum: f32 = z.iter().sum();
            LossRule::Famo {
                z: z.iter().map(|v| v / sum).collect(),
                min_losses: rng.uniform_vec(tasks, 0.0, 0.05),
            }
        }
    };
    let inputs = move || {
        let mut rng = Rng::new(tasks as u64 * 31 + rule_name.len() as u64);
        let encoded = rule(&mut rng).encode(tasks).unwrap_or_default();
        vec![
            HostTensor::new(&[2 + 2 * tasks], encoded),
            HostTensor::new(&[tasks], rng.uniform_vec(tasks, 0.1, 5.0)),
        ]
    };
    Case {
        kernel: "weighting::loss_rule".into(),
        case: format!("{rule_name} tasks={tasks}"),
        inputs: Arc::new(inputs),
        gpu: Arc::new(move |rec, t| {
            let out = crate::conformance::poisoned_output(rec.ctx(), "loss rule out", &[tasks])?;
            loss_rule(rec, &t[0], &t[1], &out)?;
            Ok(out)
        }),
        reference: Arc::new(move |h| Expected {
            values: reference::loss_rule(&h[0].data, &h[1].data),
            // log/exp are not correctly rounded on GPUs; T-term sums.
            tolerance: Tolerance::new(1e-6, 1e-5 * (1.0 + tasks as f64 / 8.0)),
        }),
        requires: Requirement::None,
    }
}

/// (tasks, rows, width): 1, odd, a width past one workgroup, T = 64.
const GRADDROP_SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (2, 7, 5),
    (3, 33, 129),
    (8, 64, 300),
    (64, 3, 70),
];

fn graddrop_case(tasks: usize, rows: usize, width: usize) -> Case {
    let seed = (tasks * 7919 + rows * 31 + width) as u32;
    let leak = if tasks == 3 { 0.25 } else { 0.0 };
    let inputs = move || {
        let mut rng = Rng::new(seed as u64);
        vec![
            HostTensor::new(
                &[tasks, rows, width],
                rng.uniform_vec(tasks * rows * width, -1.0, 1.0),
            ),
            HostTensor::new(&[rows, width], rng.uniform_vec(rows * width, -1.0, 1.0)),
        ]
    };
    Case {
        kernel: "weighting::graddrop".into(),
        case: format!("tasks={tasks} rows={rows} width={width} leak={leak}"),
        inputs: Arc::new(inputs),
        gpu: Arc::new(move |rec, t| {
            let out =
                crate::conformance::poisoned_output(rec.ctx(), "graddrop out", &[rows, width])?;
            graddrop(rec, &t[0], &t[1], &out, seed, leak)?;
            Ok(out)
        }),
        reference: Arc::new(move |h| Expected {
            values: reference::graddrop(&h[0].data, &h[1].data, tasks, rows, seed, leak),
            // Each output sums T products in order; the masks match.
            tolerance: Tolerance::new(tasks as f64 * 4.0 * f32::EPSILON as f64, 0.0),
        }),
        requires: Requirement::None,
    }
}

fn row_sums_case(tasks: usize, n: usize, sum: RowSum) -> Case {
    let inputs = move || {
        let mut rng = Rng::new((tasks * 101 + n) as u64);
        vec![
            HostTensor::new(&[tasks, n], rng.uniform_vec(tasks * n, -1.0, 1.0)),
            HostTensor::new(&[tasks, n], rng.uniform_vec(tasks * n, 0.0, 2.0)),
        ]
    };
    Case {
        kernel: "weighting::row_sums".into(),
        case: format!("{sum:?} tasks={tasks} n={n}"),
        inputs: Arc::new(inputs),
        gpu: Arc::new(move |rec, t| {
            let scratch = RowSumScratch::new(rec.ctx(), tasks, n)?;
            let x = t[0].reshape(&[tasks * n])?;
            let state = t[1].reshape(&[tasks * n])?;
            row_sums(rec, &x, &state, tasks, sum, &scratch)?;
            Ok(scratch.sums)
        }),
        reference: Arc::new(move |h| {
            let values = match sum {
                RowSum::Squares => reference::row_squares(&h[0].data, tasks),
                RowSum::AdagradScaled => {
                    let mut state = h[1].data.clone();
                    reference::adagrad_scaled_sums(&h[0].data, &mut state, tasks)
                }
            };
            let terms = (n / 256 + 16) as f64;
            Expected {
                values,
                tolerance: Tolerance::new(1e-6, terms * 4.0 * f32::EPSILON as f64),
            }
        }),
        requires: Requirement::None,
    }
}

fn moco_update_case(tasks: usize, n: usize) -> Case {
    let beta = 0.35f32;
    let inputs = move || {
        let mut rng = Rng::new((tasks * 13 + n) as u64);
        let g = rng.uniform_vec(tasks * n, -1.0, 1.0);
        let mut scalars = crate::reference::weighting::row_squares(&g, tasks);
        scalars.extend(rng.uniform_vec(tasks, 0.1, 3.0));
        vec![
            HostTensor::new(&[tasks, n], g),
            HostTensor::new(&[2 * tasks], scalars),
            HostTensor::new(&[tasks, n], rng.uniform_vec(tasks * n, -1.0, 1.0)),
        ]
    };
    Case {
        kernel: "weighting::moco_update".into(),
        case: format!("tasks={tasks} n={n}"),
        inputs: Arc::new(inputs),
        gpu: Arc::new(move |rec, t| {
            moco_update(rec, &t[0], &t[1], &t[2], tasks, beta)?;
            Ok(t[2].clone())
        }),
        reference: Arc::new(move |h| {
            let (norms, losses) = h[1].data.split_at(tasks);
            Expected {
                values: reference::moco_update(&h[0].data, norms, losses, &h[2].data, beta),
                tolerance: Tolerance::new(1e-6, 1e-5),
            }
        }),
        requires: Requirement::None,
    }
}

fn combine_rows_case(tasks: usize, n: usize) -> Case {
    let inputs = move || {
        let mut rng = Rng::new((tasks * 17 + n) as u64);
        vec![
            HostTensor::new(&[tasks, n], rng.uniform_vec(tasks * n, -1.0, 1.0)),
            HostTensor::new(&[tasks], rng.uniform_vec(tasks, 0.0, 1.0)),
        ]
    };
    Case {
        kernel: "weighting::combine_rows".into(),
        case: format!("tasks={tasks} n={n}"),
        inputs: Arc::new(inputs),
        gpu: Arc::new(move |rec, t| {
            let out = crate::conformance::poisoned_output(rec.ctx(), "combined", &[n])?;
            combine_rows(rec, &t[0], &t[1], &out)?;
            Ok(out)
        }),
        reference: Arc::new(move |h| Expected {
            values: reference::combine_rows(&h[0].data, &h[1].data),
            tolerance: Tolerance::new(tasks as f64 * 2.0 * f32::EPSILON as f64, 0.0),
        }),
        requires: Requirement::None,
    }
}

/// The conformance cases of `kernels::weighting`, each against its CPU
/// reference.
pub fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = GRAM_SHAPES.iter().map(|&(t, n)| gram_case(t, n)).collect();
    for tasks in [1, 7, 64, 65] {
        cases.push(uncertainty_case(tasks, false));
        cases.push(uncertainty_case(tasks, true));
    }
    for tasks in [1, 2, 7, 64] {
        for rule in ["gls", "log", "stch", "famo"] {
            cases.push(loss_rule_case(tasks, rule));
        }
    }
    cases.extend(
        GRADDROP_SHAPES
            .iter()
            .map(|&(t, r, w)| graddrop_case(t, r, w)),
    );
    for (tasks, n) in [(1, 1), (3, 4097), (8, 10_001)] {
        cases.push(row_sums_case(tasks, n, RowSum::Squares));
        cases.push(row_sums_case(tasks, n, RowSum::AdagradScaled));
    }
    for (tasks, n) in [(1, 1), (2, 7), (5, 4097)] {
        cases.push(moco_update_case(tasks, n));
    }
    for (tasks, n) in [(1, 1), (3, 1001), (64, 77)] {
        cases.push(combine_rows_case(tasks, n));
    }
    cases
}
