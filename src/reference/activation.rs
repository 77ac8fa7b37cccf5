//! Activation functions and their derivatives, in f64: the reference for
//! `shaders/activation.wgsl`.

use std::fmt;
use std::str::FromStr;

/// Activation functions, shared by every kernel family that applies one
/// (`shaders/activation.wgsl`). The discriminant is the shader's `ACT`
/// override value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Activation {
    /// act(x) = x.
    #[default]
    Identity = 0,
    /// max(x, 0); act'(0) = 0.
    Relu = 1,
    /// GELU, tanh form: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))).
    Gelu = 2,
    /// tanh(x).
    Tanh = 3,
    /// 1 / (1 + e^(−x)).
    Sigmoid = 4,
}

impl Activation {
    /// Every non-identity activation (the ones tests sweep).
    pub const ALL: [Activation; 4] = [
        Activation::Relu,
        Activation::Gelu,
        Activation::Tanh,
        Activation::Sigmoid,
    ];

    /// Whether act'(z) is a function of the output y = act(z), so backward
    /// can read Y instead of keeping Z (all but GELU; for ReLU, Y is the
    /// mask).
    pub fn grad_from_output(self) -> bool {
        self != Activation::Gelu
    }

    /// Lower-case name, for flags and labels.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::Gelu => "gelu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // ALL lists the non-linear activations the kernels specialise on;
        // identity is a valid choice too.
        std::iter::once(Activation::Identity)
            .chain(Activation::ALL)
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!("unknown activation '{s}': expected identity, relu, gelu, tanh or sigmoid")
            })
    }
}

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
