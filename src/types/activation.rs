//! Activation functions: which one a layer applies. The math lives in
//! `shaders/activation.wgsl` and its f64 reference `reference::activation`.

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
