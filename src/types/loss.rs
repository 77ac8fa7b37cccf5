//! Loss kinds: the loss each task trains with.

/// The loss of one task's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LossKind {
    /// Softmax cross-entropy against class ids (u32 labels).
    SoftmaxCrossEntropy = 0,
    /// ½‖ŷ − y‖² per row against f32 targets.
    MeanSquaredError = 1,
    /// Sigmoid cross-entropy per output against {0, 1} (or soft) targets.
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
