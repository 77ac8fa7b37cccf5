//! Soft-sharing regularisers over a layer's stacked task weights.

use crate::types::TraceNormVariant;

/// A regulariser over one layer's stacked task weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Regulariser {
    /// λ Σ_{s<t} ‖W_s − W_t‖² (Duong et al. 2015): a gradient term.
    L2Distance {
        /// Strength λ ≥ 0.
        lambda: f32,
    },
    /// ‖W̄‖² + (λ/T) Σ_t ‖W_t − W̄‖² (Evgeniou et al. 2005): a gradient term.
    Clustering {
        /// Strength λ ≥ 0 of the spread term.
        lambda: f32,
    },
    /// λ Σ_j ‖(W_0j … W_(T−1)j)‖₂ (ℓ1/ℓ2 over the rows of A ∈ R^{d×T}):
    /// a proximal step with step size η·λ after the optimiser.
    GroupLasso {
        /// Strength λ ≥ 0.
        lambda: f32,
    },
    /// λ·(trace norm of the stacked [T, in, out] weights, summed over the
    /// `variant`'s unfoldings; `kernels::trace_norm`), as a gradient term
    /// λ·Σ U·Vᵀ.
    TraceNorm {
        /// Strength λ ≥ 0.
        lambda: f32,
        /// Which unfoldings' norms are summed.
        variant: TraceNormVariant,
    },
    /// The same norm through its proximal step (singular values shrunk by
    /// η·λ) after the optimiser. `LastAxis` only: Tucker and TT have no
    /// closed-form prox (`Graph::regularise` returns an error).
    TraceNormProx {
        /// Strength λ ≥ 0 (the shrinkage is lr·λ per step).
        lambda: f32,
        /// Must be `LastAxis`.
        variant: TraceNormVariant,
    },
}

impl Regulariser {
    /// Its strength λ.
    pub fn lambda(&self) -> f32 {
        match *self {
            Regulariser::L2Distance { lambda }
            | Regulariser::Clustering { lambda }
            | Regulariser::GroupLasso { lambda }
            | Regulariser::TraceNorm { lambda, .. }
            | Regulariser::TraceNormProx { lambda, .. } => lambda,
        }
    }

    /// The trace-norm variant, if it is a trace norm.
    pub fn trace_norm_variant(&self) -> Option<TraceNormVariant> {
        match *self {
            Regulariser::TraceNorm { variant, .. } | Regulariser::TraceNormProx { variant, .. } => {
                Some(variant)
            }
            _ => None,
        }
    }

    /// Whether it acts through a proximal step (else a gradient term).
    pub fn is_proximal(&self) -> bool {
        matches!(
            self,
            Regulariser::GroupLasso { .. } | Regulariser::TraceNormProx { .. }
        )
    }
}
