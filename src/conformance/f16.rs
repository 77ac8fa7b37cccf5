//! Conformance cases for f16 storage (SHADER_F16): GEMM in every variant
//! and layout, and the dense layer forward and backward, with f16 inputs
//! and outputs and f32 accumulation. Inputs are rounded to f16 on the
//! host, the reference computes on those exact values in f64, so the
//! tolerance is the f16 rounding of the output plus the f32 sum's bound.

use std::sync::Arc;

use half::f16;

use crate::conformance::{Case, Expected, HostTensor, Requirement, Tolerance};
use crate::gpu::Tensor;
use crate::kernels::dense::{dense_backward, dense_forward, BackwardPlan, Dense, DenseGrads};
use crate::kernels::gemm::{gemm_with, Epilogue, Layout, Saved, Variant};
use crate::reference::dense::{
    dense_backward as ref_backward, dense_delta, dense_forward as ref_forward, DenseProblem,
};
use crate::reference::gemm::{self as reference, GemmProblem};
use crate::types::Activation;
use crate::util::rng::Rng;

/// (M, N, K).
pub const SHAPES: &[(usize, usize, usize)] = &[(1, 1, 1), (7, 33, 5), (65, 130, 97)];

fn rounded(v: Vec<f32>) -> Vec<f32> {
    v.into_iter().map(|x| f16::from_f32(x).to_f32()).collect()
}

fn upload(rec: &crate::gpu::Recorder, label: &str, h: &HostTensor) -> crate::error::Result<Tensor> {
    let data: Vec<f16> = h.data.iter().map(|&x| f16::from_f32(x)).collect();
    Tensor::from_f16(rec.ctx(), label, &h.shape, &data)
}

fn poisoned_f16(
    rec: &crate::gpu::Recorder,
    label: &str,
    shape: &[usize],
) -> crate::error::Result<Tensor> {
    let len = shape.iter().product();
    Tensor::from_f16(rec.ctx(), label, shape, &vec![f16::NAN; len])
}

/// f16 rounding of the result (2^-11 relative, 2^-25 absolute near zero)
/// on top of a k-term f32 fma chain over terms summing to `scale`.
fn f16_tolerance(k: usize, scale: f64, act_rel: f64) -> Tolerance {
    let eps32 = f32::EPSILON as f64 / 2.0;
    Tolerance::new(
        (k as f64 + 2.0) * eps32 * (scale + 2.0) + 3e-8,
        1.0 / 2048.0 + act_rel,
    )
}

fn requirement(variant: Variant) -> Requirement {
    if variant == Variant::Subgroup {
        Requirement::F16AndSubgroup
    } else {
        Requirement::ShaderF16
    }
}

fn gemm_case(variant: Variant, layout: Layout, (m, n, k): (usize, usize, usize)) -> Case {
    let inputs = move || {
        let mut rng = Rng::new((m * 131 + n * 17 + k) as u64);
        let (ar, ac) = layout.a_stored(m, k);
        let (br, bc) = layout.b_stored(k, n);
        vec![
            HostTensor::new(&[ar, ac], rounded(rng.uniform_vec(ar * ac, -1.0, 1.0))),
            HostTensor::new(&[br, bc], rounded(rng.uniform_vec(br * bc, -1.0, 1.0))),
            HostTensor::new(&[n], rounded(rng.uniform_vec(n, -1.0, 1.0))),
        ]
    };
    let problem = move |h: &[HostTensor]| -> (Vec<f32>, f64) {
        let p = GemmProblem {
            layout,
            batch: 1,
            m,
            n,
            k,
            a: &h[0].data,
            a_batched: false,
            b: &h[1].data,
            b_batched: false,
            alpha: 1.0,
            beta: None,
            bias: Some((&h[2].data, false)),
            act: Activation::Tanh,
        };
        (reference::gemm(&p), reference::max_abs_product_sum(&p))
    };
    Case {
        kernel: format!("gemm_f16::{variant}[{layout}]"),
        case: format!("{m}x{n}x{k} bias tanh"),
        inputs: Arc::new(inputs),
        gpu: Arc::new(move |rec, _| {
            let h = inputs();
            let a = upload(rec, "a16", &h[0])?;
            let b = upload(rec, "b16", &h[1])?;
            let bias = upload(rec, "bias16", &h[2])?;
            let c = poisoned_f16(rec, "c16", &[m, n])?;
            let epi = Epilogue {
                bias: Some(&bias),
                act: Activation::Tanh,
                ..Epilogue::default()
            };
            gemm_with(rec, variant, layout, &a, &b, &c, &epi)?;
            Ok(c)
        }),
        reference: Arc::new(move |h| {
            let (values, scale) = problem(h);
            Expected {
                values,
                tolerance: f16_tolerance(k, scale, 4e-6),
            }
        }),
        requires: requirement(variant),
    }
}

/// Dense layer in f16: which = 0 Y, 1 dX, 2 dW, 3 db (GELU, Z kept).
fn dense_case(variant: Variant, (rows, ni, no): (usize, usize, usize), which: usize) -> Case {
    let inputs = move || {
        let mut rng = Rng::new((rows * 7 + ni * 3 + no) as u64);
        let mut v = |len| rounded(rng.uniform_vec(len, -1.0, 1.0));
        let (x, w, b, g) = (v(rows * ni), v(ni * no), v(no), v(rows * no));
        let p = DenseProblem {
            rows,
            inputs: ni,
            outputs: no,
            x: &x,
            w: &w,
            bias: Some(&b),
            act: Activation::Gelu,
        };
        let z = rounded(ref_forward(&p).0);
        vec![
            HostTensor::new(&[rows, ni], x),
            HostTensor::new(&[ni, no], w),
            HostTensor::new(&[no], b),
            HostTensor::new(&[rows, no], g),
            HostTensor::new(&[rows, no], z),
        ]
    };
    let names = ["forward_y", "backward_dx", "backward_dw", "backward_db"];
    Case {
        kernel: format!("dense_f16::{}[{variant}]", names[which]),
        case: format!("{rows}x{ni}->{no} gelu"),
        inputs: Arc::new(inputs),
        gpu: Arc::new(move |rec, _| {
            let h = inputs();
            let t: Vec<Tensor> = h
                .iter()
                .enumerate()
                .map(|(i, h)| upload(rec, &format!("dense16 in{i}"), h))
                .collect::<crate::error::Result<_>>()?;
            let layer = Dense {
                x: &t[0],
                w: &t[1],
                bias: Some(&t[2]),
                act: Activation::Gelu,
            };
            if which == 0 {
                let y = poisoned_f16(rec, "y16", &[rows, no])?;
                dense_forward(rec, Some(variant), &layer, &y, None)?;
                return Ok(y);
            }
            let dx = poisoned_f16(rec, "dx16", &[rows, ni])?;
            let dw = poisoned_f16(rec, "dw16", &[ni, no])?;
            let db = poisoned_f16(rec, "db16", &[no])?;
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
                Some(variant),
                Some(BackwardPlan::Prologue),
                &layer,
                Saved::PreActivation(&t[4]),
                &t[3],
                &grads,
            )?;
            Ok([dx, dw, db].into_iter().nth(which - 1).expect("which < 4"))
        }),
        reference: Arc::new(move |h| {
            let p = DenseProblem {
                rows,
                inputs: ni,
                outputs: no,
                x: &h[0].data,
                w: &h[1].data,
                bias: Some(&h[2].data),
                act: Activation::Gelu,
            };
            // |x|, |w|, |g| ≤ 1 and |gelu'| < 1.2 bound every term.
            let (values, k, scale) = match which {
                0 => (ref_forward(&p).1, ni, ni as f64 + 1.0),
                _ => {
                    let d = dense_delta(Activation::Gelu, &h[4].data, false, &h[3].data);
                    let gr = ref_backward(&p, &d);
                    match which {
                        1 => (gr.dx, no, 1.2 * no as f64),
                        2 => (gr.dw, rows, 1.2 * rows as f64),
                        _ => (gr.db, rows, 1.2 * rows as f64),
                    }
                }
            };
            Expected {
                values,
                tolerance: f16_tolerance(k, scale, 1e-5),
            }
        }),
        requires: requirement(variant),
    }
}

/// The f16-storage conformance cases (GEMM, dense layer), each against
/// its CPU reference.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for variant in Variant::ALL {
        for layout in Layout::ALL {
            for &shape in SHAPES {
                cases.push(gemm_case(variant, layout, shape));
            }
        }
        for shape in [(1, 1, 1), (33, 65, 130)] {
            for which in 0..4 {
                cases.push(dense_case(variant, shape, which));
            }
        }
    }
    cases
}
