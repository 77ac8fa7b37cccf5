//! Conformance cases for the weighting kernels (`kernels::weighting`):
//! the Gram matrix of per-task rows (full T×T) and uncertainty weighting.

use std::sync::Arc;

use crate::conformance::{Case, Expected, HostTensor, Requirement, Tolerance};
use crate::kernels::weighting::{gram, uncertainty_grad, uncertainty_weights, GramScratch};
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

/// The conformance cases of `kernels::weighting`, each against its CPU
/// reference.
pub fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = GRAM_SHAPES.iter().map(|&(t, n)| gram_case(t, n)).collect();
    for tasks in [1, 7, 64, 65] {
        cases.push(uncertainty_case(tasks, false));
        cases.push(uncertainty_case(tasks, true));
    }
    cases
}
