//! Reference for the fully fused trunk (`kernels::fused_mlp`,
//! docs/math.md §1): the same layers as a chain of
//! `reference::dense` layers. Forward keeps every layer's (Z, Y); backward
//! walks the layers in reverse, D_l = G_l ⊙ act_l'(·) from Y (Z for GELU,
//! like the kernels), G_{l-1} = D_l·W_lᵀ rounded to f32 between layers,
//! dW_l = Y_{l-1}ᵀ·D_l, db_l = colsum(D_l). Sums in f64.

use crate::reference::dense::{dense_backward, dense_delta, dense_forward, DenseProblem};
use crate::types::Activation;

/// One layer of a trunk: its width, activation and whether it has a bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrunkLayer {
    /// Output width.
    pub outputs: usize,
    /// Activation of the output.
    pub act: Activation,
    /// Whether the layer adds a bias.
    pub bias: bool,
}

/// One layer's parameters: W [inputs, outputs] row-major, b \[outputs\].
#[derive(Clone, Debug, PartialEq)]
pub struct LayerParams {
    /// W [inputs, outputs].
    pub w: Vec<f32>,
    /// b \[outputs\], when the layer has a bias.
    pub b: Option<Vec<f32>>,
}

/// What the forward pass of one layer produced: Z and Y, [rows, outputs].
#[derive(Clone, Debug, PartialEq)]
pub struct LayerValues {
    /// Pre-activation Z.
    pub z: Vec<f32>,
    /// Output Y = act(Z).
    pub y: Vec<f32>,
}

/// Gradients of the whole trunk: dX [rows, inputs] and each layer's.
#[derive(Clone, Debug, PartialEq)]
pub struct TrunkGrads {
    /// dX [rows, inputs].
    pub dx: Vec<f32>,
    /// dW_l [in_l, out_l] of each layer.
    pub dw: Vec<Vec<f32>>,
    /// db_l \[out_l\] of each layer (computed with or without a bias).
    pub db: Vec<Vec<f32>>,
}

fn problem<'a>(
    rows: usize,
    inputs: usize,
    layer: &TrunkLayer,
    x: &'a [f32],
    p: &'a LayerParams,
) -> DenseProblem<'a> {
    DenseProblem {
        rows,
        inputs,
        outputs: layer.outputs,
        x,
        w: &p.w,
        bias: p.b.as_deref(),
        act: layer.act,
    }
}

/// x: (rows, inputs) → every layer's (Z, Y).
pub fn trunk_forward(
    rows: usize,
    inputs: usize,
    layers: &[TrunkLayer],
    params: &[LayerParams],
    x: &[f32],
) -> Vec<LayerValues> {
    let mut out: Vec<LayerValues> = Vec::with_capacity(layers.len());
    let mut fan_in = inputs;
    for (l, layer) in layers.iter().enumerate() {
        let input = out.last().map_or(x, |v| &v.y[..]);
        let (z, y) = dense_forward(&problem(rows, fan_in, layer, input, &params[l]));
        out.push(LayerValues { z, y });
        fan_in = layer.outputs;
    }
    out
}

/// Backward from dy = dL/dY_last (rows, outputs of the last layer), given
/// the forward values.
pub fn trunk_backward(
    rows: usize,
    inputs: usize,
    layers: &[TrunkLayer],
    params: &[LayerParams],
    x: &[f32],
    values: &[LayerValues],
    dy: &[f32],
) -> TrunkGrads {
    let depth = layers.len();
    let (mut dw, mut db) = (vec![Vec::new(); depth], vec![Vec::new(); depth]);
    let mut g = dy.to_vec();
    for l in (0..depth).rev() {
        let layer = &layers[l];
        let fan_in = if l == 0 {
            inputs
        } else {
            layers[l - 1].outputs
        };
        let input = if l == 0 { x } else { &values[l - 1].y[..] };
        let from_y = layer.act.grad_from_output();
        let saved = if from_y { &values[l].y } else { &values[l].z };
        let d = dense_delta(layer.act, saved, from_y, &g);
        let grads = dense_backward(&problem(rows, fan_in, layer, input, &params[l]), &d);
        dw[l] = grads.dw;
        db[l] = grads.db;
        g = grads.dx;
    }
    TrunkGrads { dx: g, dw, db }
}
