//! Activation functions and their derivatives, in f64: the reference for
//! `shaders/activation.wgsl`.

use crate::types::Activation;

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_C: f64 = 0.044715;

/// act(x)
pub fn act(a: Activation, x: f64) -> f64 {
    match a {
        Activation::Identity => x,
        Activation::Relu => x.max(0.0),
        Activation::Gelu => 0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + GELU_C * x * x * x)).tanh()),
        Activation::Tanh => x.tanh(),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
    }
}

/// d act / dx at x (ReLU: 0 at x = 0, like the kernel).
pub fn act_grad(a: Activation, x: f64) -> f64 {
    match a {
        Activation::Identity => 1.0,
        Activation::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Gelu => {
            let u = SQRT_2_OVER_PI * (x + GELU_C * x * x * x);
            let t = u.tanh();
            let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x);
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
        }
        Activation::Tanh => 1.0 - x.tanh().powi(2),
        Activation::Sigmoid => {
            let s = 1.0 / (1.0 + (-x).exp());
            s * (1.0 - s)
        }
    }
}

/// act'(z) computed from y = act(z) (`None` for GELU, where y does not
/// determine it). Mirrors `act_grad_from_output` in shaders/activation.wgsl.
pub fn act_grad_from_output(a: Activation, y: f64) -> Option<f64> {
    match a {
        Activation::Identity => Some(1.0),
        Activation::Relu => Some(if y > 0.0 { 1.0 } else { 0.0 }),
        Activation::Gelu => None,
        Activation::Tanh => Some(1.0 - y * y),
        Activation::Sigmoid => Some(y * (1.0 - y)),
    }
}
