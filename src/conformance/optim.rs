//! Conformance cases for the fused optimisers (`shaders/optim.wgsl`).
//! Each case runs one step on random parameters, gradients and state and
//! checks one of the updated buffers (so a case fails naming it).

use std::sync::Arc;

use crate::conformance::{Case, Expected, HostTensor, Requirement, Tolerance, SIZES};
use crate::kernels::optim::{self as kernels, AdamW, Sgd};
use crate::reference::optim as reference;
use crate::util::rng::Rng;

/// A few roundings of values of magnitude ≤ ~1 (θ) or their squares (v).
const TOLERANCE: Tolerance = Tolerance::new(1e-7, 2e-6);

const SGD: Sgd = Sgd {
    lr: 0.05,
    momentum: 0.9,
    weight_decay: 1e-2,
};

const ADAMW: AdamW = AdamW {
    lr: 1e-2,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weight_decay: 0.01,
};

/// θ, g and `states` state buffers (velocity ≥ 0 for v).
fn inputs(n: usize, states: usize) -> Arc<dyn Fn() -> Vec<HostTensor> + Send + Sync> {
    Arc::new(move || {
        let mut rng = Rng::new(0x0_9715 + n as u64);
        let mut out = vec![
            HostTensor::new(&[n], rng.uniform_vec(n, -1.0, 1.0)),
            HostTensor::new(&[n], rng.uniform_vec(n, -1.0, 1.0)),
        ];
        for s in 0..states {
            // Adam's second moment is non-negative.
            let (lo, hi) = if s == 1 { (0.0, 0.5) } else { (-0.5, 0.5) };
            out.push(HostTensor::new(&[n], rng.uniform_vec(n, lo, hi)));
        }
        out
    })
}

/// The conformance cases of `kernels::optim`, each against its CPU
/// reference.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for &n in SIZES {
        for (which, name) in [(0usize, "param"), (2, "velocity")] {
            cases.push(Case {
                kernel: "optim::sgd_step".into(),
                case: format!("n={n} {name}"),
                inputs: inputs(n, 1),
                gpu: Arc::new(move |rec, t| {
                    kernels::sgd_step(rec, &SGD, &t[0], &t[1], &t[2])?;
                    Ok(t[which].clone())
                }),
                reference: Arc::new(move |h| {
                    let (mut theta, mut vel) = (h[0].data.clone(), h[2].data.clone());
                    reference::sgd_step(&SGD, &mut theta, &h[1].data, &mut vel);
                    Expected {
                        values: if which == 0 { theta } else { vel },
                        tolerance: TOLERANCE,
                    }
                }),
                requires: Requirement::None,
            });
        }
        // Step 3: the bias corrections are not 1 - β (a step-1-only bug shows).
        for (which, name) in [(0usize, "param"), (2, "m"), (3, "v")] {
            cases.push(Case {
                kernel: "optim::adamw_step".into(),
                case: format!("n={n} step=3 {name}"),
                inputs: inputs(n, 2),
                gpu: Arc::new(move |rec, t| {
                    kernels::adamw_step(rec, &ADAMW, 3, &t[0], &t[1], &t[2], &t[3])?;
                    Ok(t[which].clone())
                }),
                reference: Arc::new(move |h| {
                    let (mut theta, mut m, mut v) =
                        (h[0].data.clone(), h[2].data.clone(), h[3].data.clone());
                    reference::adamw_step(&ADAMW, 3, &mut theta, &h[1].data, &mut m, &mut v);
                    Expected {
                        values: match which {
                            0 => theta,
                            2 => m,
                            _ => v,
                        },
                        tolerance: TOLERANCE,
                    }
                }),
                requires: Requirement::None,
            });
        }
    }
    cases
}
