//! CPU references for `shaders/elementwise.wgsl`: plain loops, computed in
//! f64 and rounded once, so they are at least as accurate as the kernels.

use crate::reference::activation::{act, act_grad};
use crate::types::Activation;

// All functions below: x, y, a, b, z, g: (n,)

/// n copies of `value`.
pub fn fill(n: usize, value: f32) -> Vec<f32> {
    vec![value; n]
}

/// x unchanged.
pub fn copy(x: &[f32]) -> Vec<f32> {
    x.to_vec()
}

/// a + b.
pub fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(&a, &b)| a + b).collect()
}

/// alpha · a.
pub fn scale(a: &[f32], alpha: f32) -> Vec<f32> {
    a.iter().map(|&a| alpha * a).collect()
}

/// y + alpha * x
pub fn axpy(alpha: f32, x: &[f32], y: &[f32]) -> Vec<f32> {
    x.iter()
        .zip(y)
        .map(|(&x, &y)| (y as f64 + alpha as f64 * x as f64) as f32)
        .collect()
}

/// act(z), elementwise.
pub fn act_forward(a: Activation, z: &[f32]) -> Vec<f32> {
    z.iter().map(|&z| act(a, z as f64) as f32).collect()
}

/// g * act'(z) from y = act(z) (panics for GELU, which has no such form).
pub fn act_backward_from_output(a: Activation, y: &[f32], g: &[f32]) -> Vec<f32> {
    y.iter()
        .zip(g)
        .map(|(&y, &g)| {
            let d = crate::reference::activation::act_grad_from_output(a, y as f64)
                .expect("GELU's derivative needs Z");
            (g as f64 * d) as f32
        })
        .collect()
}

/// g * act'(z)
pub fn act_backward(a: Activation, z: &[f32], g: &[f32]) -> Vec<f32> {
    z.iter()
        .zip(g)
        .map(|(&z, &g)| (g as f64 * act_grad(a, z as f64)) as f32)
        .collect()
}
