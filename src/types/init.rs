//! How a model's dense weights and biases are initialised.

use std::fmt;
use std::str::FromStr;

/// The initialisation of every dense (and column, head) layer. Cross-stitch
/// α, layer-stitch β and the weighting terms have their own fixed inits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WeightInit {
    /// PyTorch's `nn.Linear` default: W and b ~ U(±1/√fan_in).
    #[default]
    PyTorch,
    /// Glorot (Xavier) uniform: W ~ U(±√(6/(fan_in + fan_out))), b = 0.
    Glorot,
    /// Kaiming (He) uniform for ReLU: W ~ U(±√(6/fan_in)), b = 0.
    Kaiming,
}

impl WeightInit {
    /// The three schemes.
    pub const ALL: [WeightInit; 3] = [WeightInit::PyTorch, WeightInit::Glorot, WeightInit::Kaiming];

    /// "pytorch", "glorot" or "kaiming" (the config's `[model] init`).
    pub fn name(self) -> &'static str {
        match self {
            WeightInit::PyTorch => "pytorch",
            WeightInit::Glorot => "glorot",
            WeightInit::Kaiming => "kaiming",
        }
    }
}

impl fmt::Display for WeightInit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WeightInit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        WeightInit::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| format!("unknown init '{s}': expected pytorch, glorot or kaiming"))
    }
}
