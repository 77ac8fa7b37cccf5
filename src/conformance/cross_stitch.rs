//! Conformance cases for the cross-stitch unit (`kernels::cross_stitch`):
//! the mix, its transpose (dX) and dα, per layer and per channel.

use std::sync::Arc;

use crate::conformance::{Case, Expected, HostTensor, Requirement, Tolerance};
use crate::kernels::cross_stitch::{stitch_alpha_grad, stitch_mix, Stitch};
use crate::reference::cross_stitch as reference;
use crate::util::rng::Rng;

/// (rows, tasks, channels).
pub const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (7, 2, 5),
    (33, 3, 17),
    (257, 4, 65),
    (1000, 8, 130),
    // More tasks than one SIMD8 vector of lanes: 9, an odd 17, and 64
    // (the most α entries).
    (9, 9, 3),
    (64, 17, 33),
    (5, 64, 2),
    // C % 4 == 0 takes the vec4 kernels: tiny, odd T, T past one block
    // of 4, rows not a multiple of a workgroup, and large.
    (1, 1, 4),
    (7, 7, 4),
    (33, 3, 8),
    (65, 5, 12),
    (257, 9, 64),
    (1031, 4, 256),
    (4099, 2, 4),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Mix,
    MixTransposed,
    AlphaGrad,
}

fn case(kind: Kind, (rows, tasks, channels): (usize, usize, usize), per_channel: bool) -> Case {
    let unit = Stitch { tasks, per_channel };
    let a_len = if per_channel {
        channels * tasks * tasks
    } else {
        tasks * tasks
    };
    let w = tasks * channels;
    let inputs = move || {
        let mut rng = Rng::new((rows * 131 + tasks * 17 + channels) as u64);
        vec![
            HostTensor::new(&[rows, w], rng.uniform_vec(rows * w, -1.0, 1.0)),
            HostTensor::new(
                &unit.alpha_shape(channels),
                rng.uniform_vec(a_len, -1.0, 1.0),
            ),
            HostTensor::new(&[rows, w], rng.uniform_vec(rows * w, -1.0, 1.0)),
        ]
    };
    let name = match kind {
        Kind::Mix => "mix",
        Kind::MixTransposed => "mix_transposed",
        Kind::AlphaGrad => "alpha_grad",
    };
    let eps = f32::EPSILON as f64 / 2.0;
    Case {
        kernel: format!(
            "cross_stitch::{name}[{}]",
            if per_channel {
                "per_channel"
            } else {
                "per_layer"
            }
        ),
        case: format!("rows={rows} tasks={tasks} channels={channels}"),
        inputs: Arc::new(inputs),
        gpu: Arc::new(move |rec, t| {
            let out = crate::conformance::poisoned_output(
                rec.ctx(),
                "stitch out",
                if kind == Kind::AlphaGrad {
                    t[1].shape()
                } else {
                    t[0].shape()
                },
            )?;
            match kind {
                Kind::Mix => stitch_mix(rec, &unit, &t[0], &t[1], &out, false, false)?,
                Kind::MixTransposed => stitch_mix(rec, &unit, &t[0], &t[1], &out, true, false)?,
                Kind::AlphaGrad => stitch_alpha_grad(rec, &unit, &t[0], &t[2], &out, false)?,
            }
            Ok(out)
        }),
        reference: Arc::new(move |h| {
            let (x, a, dy) = (&h[0].data, &h[1].data, &h[2].data);
            let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<f32>>();
            let (values, scale, terms) = match kind {
                Kind::AlphaGrad => {
                    let s = reference::stitch_alpha_grad(
                        &abs(x),
                        &abs(dy),
                        rows,
                        tasks,
                        channels,
                        per_channel,
                    );
                    let n = if per_channel { rows } else { rows * channels };
                    (
                        reference::stitch_alpha_grad(x, dy, rows, tasks, channels, per_channel),
                        s,
                        n,
                    )
                }
                _ => {
                    let tr = kind == Kind::MixTransposed;
                    let s = reference::stitch_mix(
                        &abs(x),
                        &abs(a),
                        rows,
                        tasks,
                        channels,
                        per_channel,
                        tr,
                    );
                    (
                        reference::stitch_mix(x, a, rows, tasks, channels, per_channel, tr),
                        s,
                        tasks,
                    )
                }
            };
            let top = scale.iter().fold(0f32, |m, v| m.max(*v)) as f64;
            // A fma chain of `terms` terms (or a tree over strided fma
            // chains): at most terms·eps·Σ|terms| apart.
            Expected {
                values,
                tolerance: Tolerance::new((terms as f64 + 2.0) * eps * (top + 1.0), 0.0),
            }
        }),
        requires: Requirement::None,
    }
}

/// The conformance cases of `kernels::cross_stitch`, each against its CPU
/// reference.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for per_channel in [false, true] {
        for kind in [Kind::Mix, Kind::MixTransposed, Kind::AlphaGrad] {
            for &shape in SHAPES {
                cases.push(case(kind, shape, per_channel));
            }
        }
    }
    cases
}
