//! Conformance cases for the fully fused trunk (`kernels::fused_mlp`)
//! against `reference::fused_mlp`: the forward activations (every layer's
//! Y, and the GELU layers' Z), and the backward's dX and parameter
//! gradients, at row counts that are no multiple of the 16-row tile,
//! widths from 1 to 128, inputs from 1 to 1000 (wider than the tile:
//! streamed in chunks) and depths 1 to 4 with mixed activations.
//!
//! Backward cases upload what the reference forward kept (Y, Z) as
//! inputs, so the GPU and the reference differentiate at the same f32
//! values (a ReLU mask cannot flip on a rounding difference).

use std::sync::Arc;

use crate::conformance::{poisoned_output, Case, Expected, HostTensor, Requirement, Tolerance};
use crate::error::Result;
use crate::gpu::{GpuContext, Recorder, Tensor};
use crate::kernels::fused_mlp::{trunk_backward, trunk_forward, TrunkGrads, TrunkSpec};
use crate::reference::fused_mlp::{
    trunk_backward as ref_backward, trunk_forward as ref_forward, LayerParams, LayerValues,
    TrunkLayer,
};
use crate::types::Activation;
use crate::util::rng::Rng;

use Activation::{Gelu, Identity, Relu, Sigmoid, Tanh};

/// One trunk: rows, inputs, then (outputs, activation) per layer.
pub struct Config {
    /// Batch rows.
    pub rows: usize,
    /// Input width.
    pub inputs: usize,
    /// (outputs, activation) of each layer.
    pub layers: &'static [(usize, Activation)],
}

/// Awkward shapes: rows 1, 7, 33, 257, 1000; widths 1 to 128; inputs 1
/// to 1000; depths 1 to 4; every activation, mixed.
pub const CONFIGS: &[Config] = &[
    Config {
        rows: 1,
        inputs: 1,
        layers: &[(1, Relu)],
    },
    Config {
        rows: 7,
        inputs: 7,
        layers: &[(33, Tanh), (1, Identity)],
    },
    Config {
        rows: 33,
        inputs: 33,
        layers: &[(64, Gelu), (7, Sigmoid), (100, Relu)],
    },
    Config {
        rows: 257,
        inputs: 100,
        layers: &[(128, Relu), (64, Gelu), (33, Tanh), (128, Sigmoid)],
    },
    Config {
        rows: 1000,
        inputs: 64,
        layers: &[(128, Gelu), (128, Relu), (64, Identity)],
    },
    // Inputs wider than the tile stream through it in chunks of 128: one
    // feature past a chunk, a ragged last chunk, and many chunks.
    Config {
        rows: 33,
        inputs: 129,
        layers: &[(7, Relu)],
    },
    Config {
        rows: 257,
        inputs: 300,
        layers: &[(128, Gelu), (33, Tanh)],
    },
    Config {
        rows: 7,
        inputs: 1000,
        layers: &[(5, Sigmoid), (1, Identity)],
    },
    Config {
        rows: 1000,
        inputs: 784,
        layers: &[(128, Relu), (64, Relu)],
    },
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Acts,
    Zs,
    Dx,
    Grads,
}

impl Output {
    fn name(self) -> &'static str {
        match self {
            Output::Acts => "forward_acts",
            Output::Zs => "forward_zs",
            Output::Dx => "backward_dx",
            Output::Grads => "backward_grads",
        }
    }
}

/// Host-side layout of one config (the kernels' packed layout).
struct Host {
    layers: Vec<TrunkLayer>,
}

impl Config {
    fn host(&self) -> Host {
        Host {
            layers: self
                .layers
                .iter()
                .map(|&(outputs, act)| TrunkLayer {
                    outputs,
                    act,
                    bias: true,
                })
                .collect(),
        }
    }

    fn label(&self) -> String {
        let layers: Vec<String> = self
            .layers
            .iter()
            .map(|(w, a)| format!("{w} {a}"))
            .collect();
        format!(
            "rows={} {} -> {}",
            self.rows,
            self.inputs,
            layers.join(" -> ")
        )
    }
}

/// X, the packed parameters and dY, seeded by the shape; Glorot-scaled
/// weights keep every layer's values O(1).
pub fn random_inputs(
    rows: usize,
    inputs: usize,
    layers: &[TrunkLayer],
    seed: u64,
) -> (Vec<f32>, Vec<LayerParams>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let x = rng.uniform_vec(rows * inputs, -1.0, 1.0);
    let mut fan_in = inputs;
    let params = layers
        .iter()
        .map(|l| {
            let bound = (6.0 / (fan_in + l.outputs) as f32).sqrt();
            let w = rng.uniform_vec(fan_in * l.outputs, -bound, bound);
            let b = l.bias.then(|| rng.uniform_vec(l.outputs, -0.5, 0.5));
            fan_in = l.outputs;
            LayerParams { w, b }
        })
        .collect();
    let dy = rng.uniform_vec(rows * layers.last().map_or(0, |l| l.outputs), -1.0, 1.0);
    (x, params, dy)
}

/// The packed parameter buffer (`TrunkSpec::packed` order).
pub fn pack_params(params: &[LayerParams]) -> Vec<f32> {
    let mut out = Vec::new();
    for p in params {
        out.extend_from_slice(&p.w);
        out.extend(p.b.iter().flatten());
    }
    out
}

/// Every layer's Y (or the GELU layers' Z) in the kernels' layout: the
/// last layer first, then layers 0, 1, …
pub fn pack_values(values: &[LayerValues], layers: &[TrunkLayer], zs: bool) -> Vec<f32> {
    let last = values.len() - 1;
    let order = std::iter::once(last).chain(0..last);
    let mut out = Vec::new();
    if zs {
        for (v, l) in values.iter().zip(layers) {
            if l.act == Gelu {
                out.extend_from_slice(&v.z);
            }
        }
    } else {
        for l in order {
            out.extend_from_slice(&values[l].y);
        }
    }
    out
}

struct FusedCase {
    config: usize,
    output: Output,
}

impl FusedCase {
    fn config(&self) -> &'static Config {
        &CONFIGS[self.config]
    }

    /// X, params, dY, then what the reference forward kept: Y (acts), Z.
    fn host_inputs(&self) -> Vec<HostTensor> {
        let c = self.config();
        let h = c.host();
        let (x, params, dy) = random_inputs(c.rows, c.inputs, &h.layers, 7 + self.config as u64);
        let values = ref_forward(c.rows, c.inputs, &h.layers, &params, &x);
        let acts = pack_values(&values, &h.layers, false);
        let zs = pack_values(&values, &h.layers, true);
        let flat = |v: Vec<f32>| HostTensor::new(&[v.len().max(1)], pad(v));
        vec![
            HostTensor::new(&[c.rows, c.inputs], x),
            flat(pack_params(&params)),
            HostTensor::new(&[c.rows, h.layers.last().map_or(0, |l| l.outputs)], dy),
            flat(acts),
            flat(zs),
        ]
    }

    fn expected(&self, t: &[HostTensor]) -> Expected {
        let c = self.config();
        let h = c.host();
        let (_, params, _) = random_inputs(c.rows, c.inputs, &h.layers, 7 + self.config as u64);
        let x = &t[0].data;
        let values = ref_forward(c.rows, c.inputs, &h.layers, &params, x);
        let values_out = match self.output {
            Output::Acts => pack_values(&values, &h.layers, false),
            Output::Zs => pack_values(&values, &h.layers, true),
            Output::Dx | Output::Grads => {
                let g = ref_backward(c.rows, c.inputs, &h.layers, &params, x, &values, &t[2].data);
                if self.output == Output::Dx {
                    g.dx
                } else {
                    let grads: Vec<LayerParams> =
                        g.dw.into_iter()
                            .zip(g.db)
                            .map(|(w, b)| LayerParams { w, b: Some(b) })
                            .collect();
                    pack_params(&grads)
                }
            }
        };
        // f32 sums of up to K terms per layer, compounded over the layers
        // (and over the rows for dW): relative to the output's scale.
        let scale = values_out.iter().fold(1f64, |m, &v| m.max(v.abs() as f64));
        let k = match self.output {
            Output::Grads => c.rows.max(128),
            _ => 128,
        } as f64;
        let abs = 4.0 * f32::EPSILON as f64 * k.sqrt() * c.layers.len() as f64 * scale;
        Expected {
            values: values_out,
            tolerance: Tolerance::new(abs, 1e-5),
        }
    }

    fn run(&self, rec: &mut Recorder, t: &[Tensor]) -> Result<Tensor> {
        let ctx: &GpuContext = rec.ctx();
        let c = self.config();
        let h = c.host();
        let trunk = TrunkSpec::packed(ctx, c.inputs, &h.layers)?;
        let zs_len = trunk.zs_len(c.rows);
        let (x, params, dy) = (&t[0], &t[1], &t[2]);
        match self.output {
            Output::Acts | Output::Zs => {
                let acts = poisoned_output(ctx, "trunk acts", &[trunk.acts_len(c.rows)])?;
                let zs = poisoned_output(ctx, "trunk zs", &[zs_len.max(1)])?;
                let keep_z = (zs_len > 0).then_some(&zs);
                trunk_forward(rec, &trunk, x, params, &acts, keep_z)?;
                Ok(if self.output == Output::Acts {
                    acts
                } else {
                    zs
                })
            }
            Output::Dx | Output::Grads => {
                let dx = poisoned_output(ctx, "trunk dX", &[c.rows, c.inputs])?;
                let grads = poisoned_output(ctx, "trunk grads", &[trunk.param_len()])?;
                let deltas = poisoned_output(ctx, "trunk deltas", &[trunk.acts_len(c.rows)])?;
                let g = TrunkGrads {
                    dx: Some(&dx),
                    grads: &grads,
                    deltas: &deltas,
                    accumulate: false,
                    accumulate_dx: false,
                };
                let zs = (zs_len > 0).then_some(&t[4]);
                trunk_backward(rec, &trunk, x, params, &t[3], zs, dy, &g)?;
                Ok(if self.output == Output::Dx { dx } else { grads })
            }
        }
    }

    fn into_case(self) -> Case {
        let spec = Arc::new(self);
        let (a, b, c) = (spec.clone(), spec.clone(), spec.clone());
        Case {
            kernel: format!("fused_mlp::{}", spec.output.name()),
            case: spec.config().label(),
            inputs: Arc::new(move || a.host_inputs()),
            gpu: Arc::new(move |rec, t| b.run(rec, t)),
            reference: Arc::new(move |h| c.expected(h)),
            requires: Requirement::None,
        }
    }
}

/// Host tensors may not be empty (a config without GELU has no Z).
fn pad(mut v: Vec<f32>) -> Vec<f32> {
    if v.is_empty() {
        v.push(0.0);
    }
    v
}

/// The conformance cases of `kernels::fused_mlp`, each against its CPU
/// reference.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (config, c) in CONFIGS.iter().enumerate() {
        let has_gelu = c.layers.iter().any(|l| l.1 == Gelu);
        for output in [Output::Acts, Output::Zs, Output::Dx, Output::Grads] {
            if output == Output::Zs && !has_gelu {
                continue;
            }
            cases.push(FusedCase { config, output }.into_case());
        }
    }
    cases
}
