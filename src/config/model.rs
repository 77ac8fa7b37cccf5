//! `[model]`: how the tasks share parameters, mapped one to one onto
//! `arch::Sharing`, `arch::StitchOptions` and `Regulariser`.

use serde::{Deserialize, Serialize};

use super::{invalid, misplaced, quoted};
use crate::types::Activation;
use crate::types::Regulariser;
use crate::types::TraceNormVariant;
use crate::types::WeightInit;
use crate::types::{Sharing, StitchOptions};

/// The model kinds, as `model.kind` (and `--model`) name them.
pub const MODEL_KINDS: &[&str] = &[
    "hard",
    "hard_fused",
    "cross_stitch",
    "sluice",
    "soft",
    "mmoe",
    "cgc",
    "ple",
    "dselect_k",
];

/// `[model]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// hard | hard_fused | cross_stitch | sluice | soft | mmoe | cgc | ple
    /// | dselect_k.
    pub kind: String,
    /// Trunk widths (hard), each task's column widths (cross_stitch,
    /// sluice, soft) or every expert's layer widths (mmoe, cgc, ple,
    /// dselect_k).
    pub widths: Vec<usize>,
    /// Hidden-layer activation: relu, gelu, tanh or sigmoid.
    pub activation: String,
    /// How dense weights and biases start (`types::WeightInit`): "pytorch"
    /// (the default: `nn.Linear`'s U(±1/√fan_in) for W and b), "glorot"
    /// (Xavier uniform, b = 0) or "kaiming" (He uniform for ReLU, b = 0).
    pub init: String,
    /// cross_stitch: the layers a unit follows (default: every layer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stitch_after: Option<Vec<usize>>,
    /// cross_stitch and sluice: α (and β) options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stitch: Option<StitchConfig>,
    /// sluice: subspaces per column (default 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subspaces: Option<usize>,
    /// sluice: orthogonality penalty λ (default 1e-3; 0 is off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orthogonality: Option<f32>,
    /// soft: the regularisers (default: one LAF trace norm, λ = 1e-3;
    /// an empty list gives independent columns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regularisers: Option<Vec<RegulariserConfig>>,
    /// mmoe and dselect_k: the number of experts E (default 4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experts: Option<usize>,
    /// cgc and ple: experts of each task's own (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_experts: Option<usize>,
    /// cgc and ple: shared experts (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_experts: Option<usize>,
    /// ple: CGC levels (default 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub levels: Option<usize>,
    /// dselect_k: selectors k per task (default 2; 1..=8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selectors: Option<usize>,
    /// dselect_k: the smooth step's width γ (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f32>,
    /// dselect_k: λ of the selectors' entropy regulariser (default 1e-3; 0
    /// is off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entropy: Option<f32>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            kind: "hard".into(),
            widths: vec![256, 256],
            activation: "relu".into(),
            init: WeightInit::default().name().into(),
            stitch_after: None,
            stitch: None,
            subspaces: None,
            orthogonality: None,
            regularisers: None,
            experts: None,
            task_experts: None,
            shared_experts: None,
            levels: None,
            selectors: None,
            gamma: None,
            entropy: None,
        }
    }
}

/// `[model.stitch]`: `arch::StitchOptions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StitchConfig {
    /// One T×T α per channel instead of per layer.
    pub per_channel: bool,
    /// "diagonal" (p on α's diagonal, (1 − p)/(T − 1) off it) or "ones"
    /// (all ones, LibMTL's init).
    pub init: String,
    /// p of `init = "diagonal"` (default 0.9, Misra et al.).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagonal: Option<f32>,
    /// Learning-rate multiplier of α and β.
    pub lr_scale: f32,
}

impl Default for StitchConfig {
    fn default() -> Self {
        StitchConfig {
            per_channel: false,
            init: "diagonal".into(),
            diagonal: None,
            lr_scale: 1.0,
        }
    }
}

/// One `[[model.regularisers]]` entry: a `Regulariser`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegulariserConfig {
    /// trace_norm | l2_distance | clustering | group_lasso.
    pub kind: String,
    /// λ ≥ 0.
    pub lambda: f32,
    /// trace_norm: last_axis (default) | tucker | tensor_train.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// trace_norm: gradient (default: λ·ΣU·Vᵀ added to the gradient) or
    /// proximal (singular values shrunk after the optimiser; last_axis
    /// only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl RegulariserConfig {
    /// The library regulariser; `key` is this entry's path for errors.
    pub fn regulariser(&self, key: &str) -> Result<Regulariser, String> {
        let lambda = self.lambda;
        if !lambda.is_finite() || lambda < 0.0 {
            return Err(invalid(
                format!("{key}.lambda"),
                lambda,
                "must be finite and ≥ 0",
            ));
        }
        let trace_only = |field: &str, set: bool| -> Result<(), String> {
            if set {
                return Err(misplaced(
                    format!("{key}.{field}"),
                    format!(
                        "only for kind = \"trace_norm\" (this is {})",
                        quoted(&self.kind)
                    ),
                ));
            }
            Ok(())
        };
        match self.kind.as_str() {
            "trace_norm" => {}
            "l2_distance" | "clustering" | "group_lasso" => {
                trace_only("variant", self.variant.is_some())?;
                trace_only("mode", self.mode.is_some())?;
            }
            other => {
                return Err(invalid(
                    format!("{key}.kind"),
                    quoted(other),
                    "expected trace_norm, l2_distance, clustering or group_lasso",
                ))
            }
        }
        Ok(match self.kind.as_str() {
            "l2_distance" => Regulariser::L2Distance { lambda },
            "clustering" => Regulariser::Clustering { lambda },
            "group_lasso" => Regulariser::GroupLasso { lambda },
            _ => {
                let variant = match self.variant.as_deref().unwrap_or("last_axis") {
                    "last_axis" => TraceNormVariant::LastAxis,
                    "tucker" => TraceNormVariant::Tucker,
                    "tensor_train" => TraceNormVariant::TensorTrain,
                    other => {
                        return Err(invalid(
                            format!("{key}.variant"),
                            quoted(other),
                            "expected last_axis, tucker or tensor_train",
                        ))
                    }
                };
                match self.mode.as_deref().unwrap_or("gradient") {
                    "gradient" => Regulariser::TraceNorm { lambda, variant },
                    "proximal" if variant == TraceNormVariant::LastAxis => {
                        Regulariser::TraceNormProx { lambda, variant }
                    }
                    "proximal" => {
                        return Err(invalid(
                            format!("{key}.mode"),
                            quoted("proximal"),
                            "only with variant = \"last_axis\" (Tucker and tensor-train norms have no closed-form prox; use mode = \"gradient\")",
                        ))
                    }
                    other => {
                        return Err(invalid(
                            format!("{key}.mode"),
                            quoted(other),
                            "expected gradient or proximal",
                        ))
                    }
                }
            }
        })
    }
}

impl ModelConfig {
    /// The hidden activation.
    pub fn activation(&self) -> Result<Activation, String> {
        self.activation.parse::<Activation>().map_err(|_| {
            invalid(
                "model.activation",
                quoted(&self.activation),
                "expected identity, relu, gelu, tanh or sigmoid",
            )
        })
    }

    /// The weight initialisation (`model.init`).
    pub fn init(&self) -> Result<WeightInit, String> {
        self.init.parse::<WeightInit>().map_err(|_| {
            invalid(
                "model.init",
                quoted(&self.init),
                "expected pytorch, glorot or kaiming",
            )
        })
    }

    /// Errors when `key` is set but the model kind is not one of `kinds`.
    fn only_for(&self, key: &str, set: bool, kinds: &str) -> Result<(), String> {
        if set {
            return Err(misplaced(
                format!("model.{key}"),
                format!("only for {kinds} (model.kind = {})", quoted(&self.kind)),
            ));
        }
        Ok(())
    }

    fn stitch_options(&self) -> Result<StitchOptions, String> {
        let s = self.stitch.clone().unwrap_or_default();
        let diagonal = match s.init.as_str() {
            "diagonal" => {
                let p = s.diagonal.unwrap_or(0.9);
                if !(p.is_finite() && (0.0..=1.0).contains(&p)) {
                    return Err(invalid("model.stitch.diagonal", p, "must be in [0, 1]"));
                }
                Some(p)
            }
            "ones" => {
                if s.diagonal.is_some() {
                    return Err(misplaced(
                        "model.stitch.diagonal",
                        "only with init = \"diagonal\" (init = \"ones\" sets every entry to 1)",
                    ));
                }
                None
            }
            other => {
                return Err(invalid(
                    "model.stitch.init",
                    quoted(other),
                    "expected diagonal or ones",
                ))
            }
        };
        if !(s.lr_scale.is_finite() && s.lr_scale >= 0.0) {
            return Err(invalid(
                "model.stitch.lr_scale",
                s.lr_scale,
                "must be finite and ≥ 0",
            ));
        }
        Ok(StitchOptions {
            per_channel: s.per_channel,
            diagonal,
            lr_scale: s.lr_scale,
        })
    }

    /// The sharing, with every kind-specific key checked.
    pub fn sharing(&self) -> Result<Sharing, String> {
        if self.widths.is_empty() {
            return Err(invalid("model.widths", "[]", "needs at least one layer"));
        }
        if let Some(i) = self.widths.iter().position(|&w| w == 0) {
            return Err(invalid(
                format!("model.widths[{i}]"),
                0,
                "widths must be positive",
            ));
        }
        let kind = self.kind.as_str();
        let columns = self.widths.clone();
        let stitched = matches!(kind, "cross_stitch" | "sluice");
        self.only_for(
            "stitch_after",
            self.stitch_after.is_some() && kind != "cross_stitch",
            "cross_stitch",
        )?;
        self.only_for(
            "stitch",
            self.stitch.is_some() && !stitched,
            "cross_stitch and sluice",
        )?;
        self.only_for(
            "subspaces",
            self.subspaces.is_some() && kind != "sluice",
            "sluice",
        )?;
        self.only_for(
            "orthogonality",
            self.orthogonality.is_some() && kind != "sluice",
            "sluice",
        )?;
        self.only_for(
            "regularisers",
            self.regularisers.is_some() && kind != "soft",
            "soft",
        )?;
        let gated = matches!(kind, "mmoe" | "dselect_k");
        let cgc_like = matches!(kind, "cgc" | "ple");
        self.only_for(
            "experts",
            self.experts.is_some() && !gated,
            "mmoe and dselect_k",
        )?;
        self.only_for(
            "task_experts",
            self.task_experts.is_some() && !cgc_like,
            "cgc and ple",
        )?;
        self.only_for(
            "shared_experts",
            self.shared_experts.is_some() && !cgc_like,
            "cgc and ple",
        )?;
        self.only_for("levels", self.levels.is_some() && kind != "ple", "ple")?;
        for (key, set) in [
            ("selectors", self.selectors.is_some()),
            ("gamma", self.gamma.is_some()),
            ("entropy", self.entropy.is_some()),
        ] {
            self.only_for(key, set && kind != "dselect_k", "dselect_k")?;
        }
        let count = |key: &str, value: Option<usize>, default: usize| -> Result<usize, String> {
            match value.unwrap_or(default) {
                0 => Err(invalid(format!("model.{key}"), 0, "must be ≥ 1")),
                n => Ok(n),
            }
        };
        Ok(match kind {
            "mmoe" | "dselect_k" => {
                let experts = crate::types::Experts {
                    widths: columns,
                    per_task: 0,
                    shared: count("experts", self.experts, 4)?,
                };
                if kind == "mmoe" {
                    Sharing::Mmoe { experts }
                } else {
                    let max = crate::types::MAX_DSELECT_EXPERTS;
                    if experts.shared > max {
                        return Err(invalid("model.experts", experts.shared, format!("dselect_k takes at most {max} experts")));
                    }
                    let selectors = count("selectors", self.selectors, 2)?;
                    let most = crate::types::MAX_SELECTORS;
                    if selectors > most {
                        return Err(invalid("model.selectors", selectors, format!("at most {most}")));
                    }
                    let gamma = self.gamma.unwrap_or(1.0);
                    if !(gamma.is_finite() && gamma > 0.0) {
                        return Err(invalid("model.gamma", gamma, "must be finite and > 0"));
                    }
                    let entropy = self.entropy.unwrap_or(1e-3);
                    if !(entropy.is_finite() && entropy >= 0.0) {
                        return Err(invalid("model.entropy", entropy, "must be finite and ≥ 0"));
                    }
                    Sharing::DSelectK {
                        experts,
                        selectors,
                        gamma,
                        entropy,
                    }
                }
            }
            "cgc" | "ple" => {
                let experts = crate::types::Experts {
                    widths: columns,
                    per_task: count("task_experts", self.task_experts, 1)?,
                    shared: count("shared_experts", self.shared_experts, 1)?,
                };
                if kind == "cgc" {
                    Sharing::Cgc { experts }
                } else {
                    Sharing::Ple {
                        experts,
                        levels: count("levels", self.levels, 2)?,
                    }
                }
            }
            "hard" => Sharing::Hard { trunk: columns },
            "hard_fused" => Sharing::HardFused { trunk: columns },
            "cross_stitch" => {
                let layers = columns.len();
                let stitch_after = self.stitch_after.clone().unwrap_or((0..layers).collect());
                if let Some(i) = stitch_after.iter().position(|&l| l >= layers) {
                    return Err(invalid(
                        format!("model.stitch_after[{i}]"),
                        stitch_after[i],
                        format!("layer indices are 0..{layers} (model.widths has {layers} layers)"),
                    ));
                }
                Sharing::CrossStitch {
                    stitch_after,
                    stitch: self.stitch_options()?,
                    columns,
                }
            }
            "sluice" => {
                let subspaces = self.subspaces.unwrap_or(2);
                if subspaces == 0 {
                    return Err(invalid("model.subspaces", 0, "must be ≥ 1"));
                }
                if let Some(i) = columns.iter().position(|&w| w != columns[0]) {
                    return Err(invalid(
                        format!("model.widths[{i}]"),
                        columns[i],
                        format!("sluice columns share one width (the layer stitch mixes every layer), here {}", columns[0]),
                    ));
                }
                if let Some(i) = columns.iter().position(|w| w % subspaces != 0) {
                    return Err(invalid(
                        format!("model.widths[{i}]"),
                        columns[i],
                        format!("sluice columns split into {subspaces} subspaces, so widths must be multiples of model.subspaces"),
                    ));
                }
                let orthogonality = self.orthogonality.unwrap_or(1e-3);
                if !(orthogonality.is_finite() && orthogonality >= 0.0) {
                    return Err(invalid(
                        "model.orthogonality",
                        orthogonality,
                        "must be finite and ≥ 0",
                    ));
                }
                if orthogonality > 0.0 && subspaces < 2 {
                    return Err(invalid(
                        "model.orthogonality",
                        orthogonality,
                        "the penalty is between subspaces: it needs model.subspaces ≥ 2 (or set it to 0)",
                    ));
                }
                Sharing::Sluice {
                    columns,
                    subspaces,
                    orthogonality,
                    stitch: self.stitch_options()?,
                }
            }
            "soft" => {
                let regularisers = match &self.regularisers {
                    None => vec![Regulariser::TraceNorm {
                        lambda: 1e-3,
                        variant: TraceNormVariant::LastAxis,
                    }],
                    Some(list) => list
                        .iter()
                        .enumerate()
                        .map(|(i, r)| r.regulariser(&format!("model.regularisers[{i}]")))
                        .collect::<Result<_, _>>()?,
                };
                Sharing::Soft {
                    columns,
                    regularisers,
                }
            }
            other => {
                return Err(invalid(
                    "model.kind",
                    quoted(other),
                    "expected hard, hard_fused, cross_stitch, sluice, soft, mmoe, cgc, ple or dselect_k",
                ))
            }
        })
    }
}
