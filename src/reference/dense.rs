//! Reference for the fused dense layer (`kernels::dense`,
//! docs/math.md §1): `Z = X·W + b`, `Y = act(Z)`; backward from
//! `G = dL/dY`: `D = G ⊙ act'(Z)`, `dX = D·Wᵀ`, `dW = Xᵀ·D`, `db = colsum(D)`.
//! X is rows×inputs, W inputs×outputs (the kernels' layout), all row-major;
//! sums in f64.

use crate::reference::activation::{act, act_grad, act_grad_from_output};
use crate::types::Activation;

/// One layer on host arrays.
#[derive(Clone, Copy, Debug)]
pub struct DenseProblem<'a> {
    /// Batch rows.
    pub rows: usize,
    /// Input width.
    pub inputs: usize,
    /// Output width.
    pub outputs: usize,
    /// X [rows, inputs].
    pub x: &'a [f32],
    /// W [inputs, outputs].
    pub w: &'a [f32],
    /// b \[outputs\], if any.
    pub bias: Option<&'a [f32]>,
    /// The layer's activation.
    pub act: Activation,
}

/// (Z, Y), each rows×outputs.
pub fn dense_forward(p: &DenseProblem) -> (Vec<f32>, Vec<f32>) {
    let mut z = vec![0f32; p.rows * p.outputs];
    let mut y = vec![0f32; p.rows * p.outputs];
    for r in 0..p.rows {
        for o in 0..p.outputs {
            let mut acc: f64 = p.bias.map_or(0.0, |b| b[o] as f64);
            for i in 0..p.inputs {
                acc += p.x[r * p.inputs + i] as f64 * p.w[i * p.outputs + o] as f64;
            }
            z[r * p.outputs + o] = acc as f32;
            y[r * p.outputs + o] = act(p.act, acc) as f32;
        }
    }
    (z, y)
}

/// D = G ⊙ act'(·), from the saved Z (`saved_is_output` false) or Y.
pub fn dense_delta(
    act_kind: Activation,
    saved: &[f32],
    saved_is_output: bool,
    g: &[f32],
) -> Vec<f64> {
    saved
        .iter()
        .zip(g)
        .map(|(&s, &g)| {
            let d = if saved_is_output {
                act_grad_from_output(act_kind, s as f64).expect("GELU's derivative needs Z, not Y")
            } else {
                act_grad(act_kind, s as f64)
            };
            g as f64 * d
        })
        .collect()
}

/// The gradients of one layer.
#[derive(Clone, Debug)]
pub struct DenseGrads {
    /// dX [rows, inputs].
    pub dx: Vec<f32>,
    /// dW [inputs, outputs].
    pub dw: Vec<f32>,
    /// db \[outputs\].
    pub db: Vec<f32>,
}

/// Backward given D (from `dense_delta`).
pub fn dense_backward(p: &DenseProblem, d: &[f64]) -> DenseGrads {
    let (rows, ni, no) = (p.rows, p.inputs, p.outputs);
    let mut dx = vec![0f32; rows * ni];
    for r in 0..rows {
        for i in 0..ni {
            let s: f64 = (0..no)
                .map(|o| d[r * no + o] * p.w[i * no + o] as f64)
                .sum();
            dx[r * ni + i] = s as f32;
        }
    }
    let mut dw = vec![0f32; ni * no];
    for i in 0..ni {
        for o in 0..no {
            let s: f64 = (0..rows)
                .map(|r| p.x[r * ni + i] as f64 * d[r * no + o])
                .sum();
            dw[i * no + o] = s as f32;
        }
    }
    let db = (0..no)
        .map(|o| (0..rows).map(|r| d[r * no + o]).sum::<f64>() as f32)
        .collect();
    DenseGrads { dx, dw, db }
}
