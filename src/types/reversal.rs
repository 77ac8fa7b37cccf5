//! The gradient-reversal λ and how it follows training.

/// The standard gradient-reversal schedule λ(p) = 2 / (1 + e^(−10p)) − 1
/// for training progress p in [0, 1] (Ganin & Lempitsky 2015).
pub fn reversal_lambda(progress: f32) -> f32 {
    2.0 / (1.0 + (-10.0 * progress.clamp(0.0, 1.0)).exp()) - 1.0
}

/// How λ of the gradient-reversal nodes follows training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReversalSchedule {
    /// `reversal_lambda(step / steps)`: 0 at the start (the adversary's
    /// head learns first), → 1 by the end. The default.
    Ganin,
    /// The same λ at every step.
    Constant(f32),
}

impl ReversalSchedule {
    /// λ at `step` (0-based) of `steps`.
    pub fn lambda(self, step: usize, steps: usize) -> f32 {
        match self {
            ReversalSchedule::Ganin => reversal_lambda(step as f32 / steps.max(1) as f32),
            ReversalSchedule::Constant(l) => l,
        }
    }
}
