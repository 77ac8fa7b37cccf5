//! Conformance cases for the fused dense layer (`kernels::dense`): forward
//! Y and Z, and each backward output (dX, dW, db) against
//! `reference::dense`, for every GEMM variant.
//!
//! Backward cases upload what the forward pass keeps (Z, or Y) as an input
//! computed by the reference forward, so the GPU and the reference
//! differentiate at the same f32 values (a ReLU mask cannot flip on a
//! rounding difference). ReLU and identity cases use integer data in
//! [-2, 2]: every product and sum is exact, so they must match bit for bit;
//! the others use reals and a rounding bound.

use std::sync::Arc;

use crate::conformance::{poisoned_output, Case, Expected, HostTensor, Requirement, Tolerance};
use crate::gpu::Tensor;
use crate::kernels::dense::{dense_backward, dense_forward, BackwardPlan, Dense, DenseGrads};
use crate::kernels::gemm::{Saved, Variant};
use crate::reference::dense::{
    dense_backward as ref_backward, dense_delta, dense_forward as ref_forward, DenseProblem,
};
use crate::types::Activation;
use crate::util::rng::Rng;

/// (rows, inputs, outputs): one element, one row, odd sizes, sizes that
/// are multiples of no tile, and a larger one.
pub const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 33, 1),
    (7, 33, 257),
    (33, 7, 65),
    (65, 130, 97),
    (130, 260, 257),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Y,
    Z,
    Dx,
    Dw,
    Db,
}

impl Output {
    fn name(self) -> &'static str {
        match self {
            Output::Y => "forward_y",
            Output::Z => "forward_z",
            Output::Dx => "backward_dx",
            Output::Dw => "backward_dw",
            Output::Db => "backward_db",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct DenseCase {
    variant: Variant,
    rows: usize,
    inputs: usize,
    outputs: usize,
    act: Activation,
    /// Backward reads Y (else Z).
    saved_y: bool,
    output: Output,
    plan: BackwardPlan,
}

impl DenseCase {
    fn integers(&self) -> bool {
        matches!(self.act, Activation::Identity | Activation::Relu)
    }

    /// X, W, b, G, then the saved Z or Y.
    fn host_inputs(&self) -> Vec<HostTensor> {
        let (r, ni, no) = (self.rows, self.inputs, self.outputs);
        let mut rng = Rng::new((r * 1_000_003 + ni * 1009 + no) as u64 ^ (self.act as u64) << 50);
        let mut data = |len: usize| -> Vec<f32> {
            if self.integers() {
                (0..len)
                    .map(|_| (rng.next_u64() % 5) as f32 - 2.0)
                    .collect()
            } else {
                rng.uniform_vec(len, -1.0, 1.0)
            }
        };
        let x = data(r * ni);
        let w = data(ni * no);
        let b = data(no);
        let g = data(r * no);
        let (z, y) = ref_forward(&self.problem_on(&x, &w, &b));
        let saved = if self.saved_y { y } else { z };
        vec![
            HostTensor::new(&[r, ni], x),
            HostTensor::new(&[ni, no], w),
            HostTensor::new(&[no], b),
            HostTensor::new(&[r, no], g),
            HostTensor::new(&[r, no], saved),
        ]
    }

    fn problem_on<'a>(&self, x: &'a [f32], w: &'a [f32], b: &'a [f32]) -> DenseProblem<'a> {
        DenseProblem {
            rows: self.rows,
            inputs: self.inputs,
            outputs: self.outputs,
            x,
            w,
            bias: Some(b),
            act: self.act,
        }
    }

    fn expected(&self, h: &[HostTensor]) -> Expected {
        let p = self.problem_on(&h[0].data, &h[1].data, &h[2].data);
        let eps = f32::EPSILON as f64 / 2.0;
        let exact = self.integers();
        // An fma chain of k terms errs by at most k·eps·Σ|terms|; D carries
        // one f32 activation-derivative rounding (a few ulp) on top.
        let bound = |k: usize, scale: f64, act_rel: f64| {
            if exact {
                Tolerance::EXACT
            } else {
                Tolerance::new(((k + 2) as f64 * eps + act_rel) * (scale + 1.0), act_rel)
            }
        };
        let (rows, ni, no) = (self.rows, self.inputs, self.outputs);
        match self.output {
            Output::Y | Output::Z => {
                let (z, y) = ref_forward(&p);
                let mut scale = 0f64;
                for r in 0..rows {
                    for o in 0..no {
                        let s: f64 = (0..ni)
                            .map(|i| (p.x[r * ni + i] * p.w[i * no + o]).abs() as f64)
                            .sum();
                        scale = scale.max(s);
                    }
                }
                let (values, act_rel) = if self.output == Output::Y {
                    (y, 4e-6)
                } else {
                    (z, 0.0)
                };
                Expected {
                    values,
                    tolerance: bound(ni, scale, act_rel),
                }
            }
            _ => {
                let d = dense_delta(self.act, &h[4].data, self.saved_y, &h[3].data);
                let grads = ref_backward(&p, &d);
                let act_rel = 4e-6;
                match self.output {
                    Output::Dx => {
                        let mut scale = 0f64;
                        for r in 0..rows {
                            for i in 0..ni {
                                let s: f64 = (0..no)
                                    .map(|o| (d[r * no + o] * p.w[i * no + o] as f64).abs())
                                    .sum();
                                scale = scale.max(s);
                            }
                        }
                        Expected {
                            values: grads.dx,
                            tolerance: bound(no, scale, act_rel),
                        }
                    }
                    Output::Dw => {
                        let mut scale = 0f64;
                        for i in 0..ni {
                            for o in 0..no {
                                let s: f64 = (0..rows)
                                    .map(|r| (p.x[r * ni + i] as f64 * d[r * no + o]).abs())
                                    .sum();
                                scale = scale.max(s);
                            }
                        }
                        Expected {
                            values: grads.dw,
                            tolerance: bound(rows, scale, act_rel),
                        }
                    }
                    _ => {
                        let scale = (0..no)
                            .map(|o| (0..rows).map(|r| d[r * no + o].abs()).sum::<f64>())
                            .fold(0.0, f64::max);
                        Expected {
                            values: grads.db,
                            tolerance: bound(rows, scale, act_rel),
                        }
                    }
                }
            }
        }
    }

    fn run(&self, rec: &mut crate::gpu::Recorder, t: &[Tensor]) -> crate::error::Result<Tensor> {
        let ctx = rec.ctx();
        let (r, ni, no) = (self.rows, self.inputs, self.outputs);
        let layer = Dense {
            x: &t[0],
            w: &t[1],
            bias: Some(&t[2]),
            act: self.act,
        };
        match self.output {
            Output::Y | Output::Z => {
                let y = poisoned_output(ctx, "dense Y", &[r, no])?;
                let z = poisoned_output(ctx, "dense Z", &[r, no])?;
                let keep_z = (self.output == Output::Z).then_some(&z);
                dense_forward(rec, Some(self.variant), &layer, &y, keep_z)?;
                Ok(if self.output == Output::Y { y } else { z })
            }
            _ => {
                let dx = poisoned_output(ctx, "dense dX", &[r, ni])?;
                let dw = poisoned_output(ctx, "dense dW", &[ni, no])?;
                let db = poisoned_output(ctx, "dense db", &[no])?;
                let saved = if self.saved_y {
                    Saved::Output(&t[4])
                } else {
                    Saved::PreActivation(&t[4])
                };
                let grads = DenseGrads {
                    dx: Some(&dx),
                    dw: &dw,
                    db: Some(&db),
                    accumulate: false,
                    accumulate_dx: false,
                    delta_scratch: None,
                };
                dense_backward(
                    rec,
                    Some(self.variant),
                    Some(self.plan),
                    &layer,
                    saved,
                    &t[3],
                    &grads,
                )?;
                Ok(match self.output {
                    Output::Dx => dx,
                    Output::Dw => dw,
                    _ => db,
                })
            }
        }
    }

    fn into_case(self) -> Case {
        let spec = self;
        Case {
            kernel: format!("dense::{}[{}]", self.output.name(), self.variant),
            case: format!(
                "{}x{}->{} {} from {}{}",
                self.rows,
                self.inputs,
                self.outputs,
                self.act,
                if self.saved_y { "Y" } else { "Z" },
                if self.integers() {
                    " integers"
                } else {
                    " reals"
                }
            ),
            inputs: Arc::new(move || spec.host_inputs()),
            gpu: Arc::new(move |rec, t| spec.run(rec, t)),
            reference: Arc::new(move |h| spec.expected(h)),
            requires: Requirement::for_variant(self.variant),
        }
    }
}

/// The conformance cases of `kernels::dense`, each against its CPU
/// reference.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut push = |c: DenseCase| {
        // Backward outputs under both plans; forward outputs once.
        if matches!(c.output, Output::Y | Output::Z) {
            cases.push(c.into_case());
        } else {
            for plan in [BackwardPlan::Prologue, BackwardPlan::StoreDelta] {
                cases.push(DenseCase { plan, ..c }.into_case());
            }
        }
    };
    let outputs = [Output::Y, Output::Dx, Output::Dw, Output::Db];
    for variant in crate::conformance::gemm::fusion_variants() {
        for &(rows, inputs, outputs_) in SHAPES {
            let base = DenseCase {
                variant,
                rows,
                inputs,
                outputs: outputs_,
                act: Activation::Relu,
                saved_y: true,
                output: Output::Y,
                plan: BackwardPlan::Prologue,
            };
            for output in outputs {
                // ReLU backward from Y (the mask) and GELU from Z.
                push(DenseCase { output, ..base });
                push(DenseCase {
                    output,
                    act: Activation::Gelu,
                    saved_y: false,
                    ..base
                });
            }
            push(DenseCase {
                output: Output::Z,
                act: Activation::Gelu,
                saved_y: false,
                ..base
            });
        }
        // The other activations, from Y and from Z, at one odd shape.
        for act in [Activation::Identity, Activation::Tanh, Activation::Sigmoid] {
            for saved_y in [true, false] {
                for output in outputs {
                    let plan = BackwardPlan::Prologue;
                    push(DenseCase {
                        variant,
                        rows: 9,
                        inputs: 17,
                        outputs: 35,
                        act,
                        saved_y,
                        output,
                        plan,
                    });
                }
            }
        }
    }
    cases
}
