//! Conformance cases for the layer-stitch unit (`kernels::layer_stitch`):
//! the mix, the input gradient (spread) and dβ.

use std::sync::Arc;

use crate::conformance::{Case, Expected, HostTensor, Requirement, Tolerance};
use crate::kernels::layer_stitch::{
    layer_stitch_beta_grad, layer_stitch_mix, layer_stitch_spread, LayerStitch,
};
use crate::reference::layer_stitch as reference;
use crate::util::rng::Rng;

/// (rows, tasks, layers, channels).
pub const SHAPES: &[(usize, usize, usize, usize)] = &[
    (1, 1, 1, 1),
    (7, 2, 3, 5),
    (33, 3, 2, 17),
    (257, 4, 3, 65),
    (1000, 8, 2, 130),
    // C % 4 == 0: dβ's vec4 loads; K past one block of 4 layers.
    (1, 1, 1, 4),
    (64, 3, 2, 8),
    (513, 2, 5, 12),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Mix,
    Spread,
    BetaGrad,
}

fn case(kind: Kind, (rows, tasks, layers, channels): (usize, usize, usize, usize)) -> Case {
    let unit = LayerStitch { tasks, layers };
    let w = tasks * channels;
    let inputs = move || {
        let mut rng = Rng::new((rows * 97 + tasks * 13 + layers * 7 + channels) as u64);
        vec![
            HostTensor::new(
                &[rows, layers * w],
                rng.uniform_vec(rows * layers * w, -1.0, 1.0),
            ),
            HostTensor::new(&[tasks, layers], rng.uniform_vec(tasks * layers, -1.0, 1.0)),
            HostTensor::new(&[rows, w], rng.uniform_vec(rows * w, -1.0, 1.0)),
        ]
    };
    let name = match kind {
        Kind::Mix => "mix",
        Kind::Spread => "spread",
        Kind::BetaGrad => "beta_grad",
    };
    let eps = f32::EPSILON as f64 / 2.0;
    Case {
        kernel: format!("layer_stitch::{name}"),
        case: format!("rows={rows} tasks={tasks} layers={layers} channels={channels}"),
        inputs: Arc::new(inputs),
        gpu: Arc::new(move |rec, t| {
            let shape = match kind {
                Kind::Mix => t[2].shape(),
                Kind::Spread => t[0].shape(),
                Kind::BetaGrad => t[1].shape(),
            };
            let out = crate::conformance::poisoned_output(rec.ctx(), "layer stitch out", shape)?;
            match kind {
                Kind::Mix => layer_stitch_mix(rec, &unit, &t[0], &t[1], &out, false)?,
                Kind::Spread => layer_stitch_spread(rec, &unit, &t[2], &t[1], &out, false)?,
                Kind::BetaGrad => layer_stitch_beta_grad(rec, &unit, &t[0], &t[2], &out, false)?,
            }
            Ok(out)
        }),
        reference: Arc::new(move |hs| {
            let (h, beta, dz) = (&hs[0].data, &hs[1].data, &hs[2].data);
            let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<f32>>();
            let (values, scale, terms) = match kind {
                Kind::Mix => (
                    reference::mix(h, beta, rows, tasks, layers, channels),
                    reference::mix(&abs(h), &abs(beta), rows, tasks, layers, channels),
                    layers,
                ),
                Kind::Spread => (
                    reference::spread(dz, beta, rows, tasks, layers, channels),
                    reference::spread(&abs(dz), &abs(beta), rows, tasks, layers, channels),
                    1,
                ),
                Kind::BetaGrad => (
                    reference::beta_grad(h, dz, rows, tasks, layers, channels),
                    reference::beta_grad(&abs(h), &abs(dz), rows, tasks, layers, channels),
                    rows * channels,
                ),
            };
            let top = scale.iter().fold(0f32, |m, v| m.max(*v)) as f64;
            // A chain of `terms` fmas (or strided chains + a tree): at most
            // terms·eps·Σ|terms| apart.
            Expected {
                values,
                tolerance: Tolerance::new((terms as f64 + 2.0) * eps * (top + 1.0), 0.0),
            }
        }),
        requires: Requirement::None,
    }
}

/// The conformance cases of `kernels::layer_stitch`, each against its CPU
/// reference.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for kind in [Kind::Mix, Kind::Spread, Kind::BetaGrad] {
        for &shape in SHAPES {
            cases.push(case(kind, shape));
        }
    }
    cases
}
