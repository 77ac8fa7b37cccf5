//! Loss kinds and reductions: the loss each task trains with, and how its
//! per-element terms are combined into one number per batch.

use std::fmt;
use std::str::FromStr;

/// The loss of one task's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LossKind {
    /// Softmax cross-entropy against class ids (u32 labels).
    SoftmaxCrossEntropy = 0,
    /// Squared error (ŷ − y)² per output against f32 targets, reduced as
    /// the task's [`Reduction`] says.
    MeanSquaredError = 1,
    /// Sigmoid cross-entropy per output against {0, 1} (or soft) targets,
    /// reduced as the task's [`Reduction`] says.
    BinaryCrossEntropy = 2,
}

impl LossKind {
    /// The three kinds.
    pub const ALL: [LossKind; 3] = [
        LossKind::SoftmaxCrossEntropy,
        LossKind::MeanSquaredError,
        LossKind::BinaryCrossEntropy,
    ];

    /// "softmax_ce", "mse" or "bce_logits".
    pub fn name(self) -> &'static str {
        match self {
            LossKind::SoftmaxCrossEntropy => "softmax_ce",
            LossKind::MeanSquaredError => "mse",
            LossKind::BinaryCrossEntropy => "bce_logits",
        }
    }
}

/// How a task's per-output loss terms become its loss. With rows b, a
/// task of width W (outputs, labels or classes), row weights m_b (the mask:
/// 1 labelled, 0 missing) and c = max(1, Σ_b m_b) the labelled rows of the
/// batch (a short last batch is normalised by its own rows):
///
/// | kind | `Mean` (default) | `Sum` | `HalfSum` |
/// |---|---|---|---|
/// | regression (MSE) | Σ_b m_b Σ_j (ŷ−y)² / (c·W): PyTorch `MSELoss(reduction="mean")` over the labelled rows | Σ_b m_b Σ_j (ŷ−y)² / c | Σ_b m_b ½Σ_j (ŷ−y)² / c (manytask before reductions existed) |
/// | binary (BCE with logits) | Σ_b m_b Σ_j ℓ_bj / (c·W): PyTorch `BCEWithLogitsLoss()`, the mean over labelled elements | Σ_b m_b Σ_j ℓ_bj / c | not defined (an error) |
/// | classification (softmax CE) | Σ_b m_b ℓ_b / c: PyTorch `CrossEntropyLoss()` | not defined | not defined |
///
/// The kernels apply it as a per-task scale of the row sums (no extra
/// pass); [`Reduction::check`] says which pairs exist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// The mean over labelled elements (rows × outputs); for
    /// classification, over labelled rows. PyTorch's default.
    #[default]
    Mean,
    /// Summed over a row's outputs, averaged over labelled rows
    /// (regression and binary only).
    Sum,
    /// Half the sum over a row's outputs, averaged over labelled rows
    /// (regression only): ½‖ŷ − y‖², whose gradient is ŷ − y.
    HalfSum,
}

impl Reduction {
    /// The three reductions.
    pub const ALL: [Reduction; 3] = [Reduction::Mean, Reduction::Sum, Reduction::HalfSum];

    /// "mean", "sum" or "half_sum" (the config's `[[tasks]] reduction`).
    pub fn name(self) -> &'static str {
        match self {
            Reduction::Mean => "mean",
            Reduction::Sum => "sum",
            Reduction::HalfSum => "half_sum",
        }
    }

    /// The reductions `kind` defines: every one for MSE, mean and sum for
    /// BCE, mean alone for softmax cross-entropy.
    pub fn valid_for(kind: LossKind) -> &'static [Reduction] {
        match kind {
            LossKind::SoftmaxCrossEntropy => &[Reduction::Mean],
            LossKind::MeanSquaredError => &Reduction::ALL,
            LossKind::BinaryCrossEntropy => &[Reduction::Mean, Reduction::Sum],
        }
    }

    /// Ok when `kind` defines this reduction; otherwise why not, e.g.
    /// "reduction half_sum is not defined for bce_logits (expected mean or sum)".
    pub fn check(self, kind: LossKind) -> Result<(), String> {
        let valid = Reduction::valid_for(kind);
        if valid.contains(&self) {
            return Ok(());
        }
        let names: Vec<&str> = valid.iter().map(|r| r.name()).collect();
        Err(format!(
            "reduction {} is not defined for {} (expected {})",
            self.name(),
            kind.name(),
            names.join(" or ")
        ))
    }
}

impl fmt::Display for Reduction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Reduction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Reduction::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| format!("unknown reduction '{s}': expected mean, sum or half_sum"))
    }
}
