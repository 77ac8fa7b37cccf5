//! Conformance cases for the elementwise family (`shaders/elementwise.wgsl`).

use std::sync::Arc;

use crate::conformance::{
    poisoned_output, Case, Expected, HostTensor, Requirement, Tolerance, SIZES,
};
use crate::gpu::Tensor;
use crate::kernels::elementwise::{self as kernels, Activation};
use crate::reference::elementwise as reference;
use crate::util::rng::Rng;

/// Test data: uniform in [-4, 4), with exact zeros (ReLU's kink) and large
/// magnitudes (activation saturation, exp overflow) sprinkled in.
pub fn test_data(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| match i % 61 {
            13 => 0.0,
            29 => rng.uniform(20.0, 90.0),
            47 => -rng.uniform(20.0, 90.0),
            _ => rng.uniform(-4.0, 4.0),
        })
        .collect()
}

/// Where the kernel's transcendental functions (exp, tanh) may differ from
/// the f64 reference by a few ulp. Measured worst on lavapipe and llvmpipe:
/// 4.8e-7 absolute (forward, |y| up to 90) and 3.1e-7 (backward, |g| < 1).
const TRANSCENDENTAL: Tolerance = Tolerance::new(2e-6, 4e-6);

fn inputs(count: usize, n: usize) -> Arc<dyn Fn() -> Vec<HostTensor> + Send + Sync> {
    Arc::new(move || {
        (0..count)
            .map(|k| HostTensor::new(&[n], test_data(1000 + 17 * k as u64 + n as u64, n)))
            .collect()
    })
}

/// Inputs of an activation backward: z from `test_data`, and an upstream
/// gradient uniform in [-1, 1), so the tolerance measures act' itself.
fn backward_inputs(n: usize) -> Arc<dyn Fn() -> Vec<HostTensor> + Send + Sync> {
    Arc::new(move || {
        vec![
            HostTensor::new(&[n], test_data(2000 + n as u64, n)),
            HostTensor::new(&[n], Rng::new(3000 + n as u64).uniform_vec(n, -1.0, 1.0)),
        ]
    })
}

fn output_like(rec: &crate::gpu::Recorder, n: usize) -> crate::error::Result<Tensor> {
    poisoned_output(rec.ctx(), "elementwise output", &[n])
}

fn expect(values: Vec<f32>, tolerance: Tolerance) -> Expected {
    Expected { values, tolerance }
}

/// The conformance cases of `kernels::elementwise`, each against its CPU
/// reference.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for &n in SIZES {
        let case = format!("n={n}");
        let mut push = |kernel: String, inputs, gpu, reference| {
            cases.push(Case {
                kernel,
                case: case.clone(),
                inputs,
                gpu,
                reference,
                requires: Requirement::None,
            })
        };

        push(
            "elementwise::fill".into(),
            inputs(0, n),
            Arc::new(move |rec, _| {
                let out = output_like(rec, n)?;
                kernels::fill(rec, &out, 1.5)?;
                Ok(out)
            }),
            Arc::new(move |_| expect(reference::fill(n, 1.5), Tolerance::EXACT)),
        );
        push(
            "elementwise::copy".into(),
            inputs(1, n),
            Arc::new(move |rec, t| {
                let out = output_like(rec, n)?;
                kernels::copy(rec, &t[0], &out)?;
                Ok(out)
            }),
            Arc::new(|h| expect(reference::copy(&h[0].data), Tolerance::EXACT)),
        );
        // Add, scale by -0.75 and axpy with alpha -0.5 are correctly
        // rounded single operations on every conformant device: exact.
        push(
            "elementwise::add".into(),
            inputs(2, n),
            Arc::new(move |rec, t| {
                let out = output_like(rec, n)?;
                kernels::add(rec, &t[0], &t[1], &out)?;
                Ok(out)
            }),
            Arc::new(|h| expect(reference::add(&h[0].data, &h[1].data), Tolerance::EXACT)),
        );
        push(
            "elementwise::scale".into(),
            inputs(1, n),
            Arc::new(move |rec, t| {
                let out = output_like(rec, n)?;
                kernels::scale(rec, &t[0], -0.75, &out)?;
                Ok(out)
            }),
            Arc::new(|h| expect(reference::scale(&h[0].data, -0.75), Tolerance::EXACT)),
        );
        push(
            "elementwise::axpy".into(),
            inputs(2, n),
            Arc::new(|rec, t| {
                kernels::axpy(rec, -0.5, &t[0], &t[1])?;
                Ok(t[1].clone())
            }),
            Arc::new(|h| {
                expect(
                    reference::axpy(-0.5, &h[0].data, &h[1].data),
                    Tolerance::EXACT,
                )
            }),
        );
        for act in Activation::ALL {
            let tol = if matches!(act, Activation::Identity | Activation::Relu) {
                Tolerance::EXACT
            } else {
                TRANSCENDENTAL
            };
            push(
                format!("elementwise::act_forward[{act}]"),
                inputs(1, n),
                Arc::new(move |rec, t| {
                    let out = output_like(rec, n)?;
                    kernels::act_forward(rec, act, &t[0], &out)?;
                    Ok(out)
                }),
                Arc::new(move |h| expect(reference::act_forward(act, &h[0].data), tol)),
            );
            push(
                format!("elementwise::act_backward[{act}]"),
                backward_inputs(n),
                Arc::new(move |rec, t| {
                    let out = output_like(rec, n)?;
                    kernels::act_backward(rec, act, &t[0], &t[1], &out)?;
                    Ok(out)
                }),
                Arc::new(move |h| {
                    expect(reference::act_backward(act, &h[0].data, &h[1].data), tol)
                }),
            );
            if act.grad_from_output() {
                push(
                    format!("elementwise::act_backward_from_output[{act}]"),
                    backward_inputs(n),
                    Arc::new(move |rec, t| {
                        let out = output_like(rec, n)?;
                        kernels::act_backward_from_output(rec, act, &t[0], &t[1], &out)?;
                        Ok(out)
                    }),
                    Arc::new(move |h| {
                        expect(
                            reference::act_backward_from_output(act, &h[0].data, &h[1].data),
                            tol,
                        )
                    }),
                );
            }
        }
    }
    cases
}
