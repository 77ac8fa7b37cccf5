//! Aligned-MTL (Senushkin et al. 2023, "Independent Component Alignment for
//! Multi-Task Learning"), as LibMTL's `Aligned_MTL` computes it.
//!
//! The paper measures how unstable a multi-task step is by the condition
//! number of the gradient matrix `G` (rows `g_t`): the ratio of its
//! largest to its smallest singular value. It replaces `G` by the closest
//! matrix of condition number 1 with the smallest singular value kept:
//! with `M = G Gᵀ = V Λ Vᵀ` (singular values `σ_k = √λ_k`),
//!
//! ```text
//! B = σ_min · V Λ^{-1/2} Vᵀ = √λ_min · M^{-1/2},     Ĝ = B G
//! ```
//!
//! so `Ĝ Ĝᵀ = B M B = λ_min I`: the aligned task gradients `ĝ_t` are
//! orthogonal and all of norm `σ_min` (`Ĝ = σ_min U Wᵀ` for the SVD
//! `G = U Σ Wᵀ`). The update is their sum, `Σ_t ĝ_t = Gᵀ B 1`, so the
//! coefficients are `c = B 1`.
//!
//! Eigenvalues at or below `λ_max · T · ε₃₂` (ε₃₂ = 2⁻²³, f32's machine
//! epsilon, as LibMTL's cut with PyTorch's default dtype) count as zero:
//! only the `r` eigenpairs above it enter `B`, and `λ_min` is the smallest
//! of those. Then `B M B = λ_min V_r V_rᵀ`, the projector on the span of the
//! gradients. A zero Gram (every gradient zero) gives `B = I` (torchjd's
//! choice; LibMTL fails there). The eigendecomposition is cyclic Jacobi in
//! f64.

use super::gram::{invalid, Gram};
use crate::util::eigen::symmetric_eigen;
use crate::Result;

/// What [`aligned_mtl`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct AlignedMtlSolution {
    /// `c = B 1`: the update is `Σ_t c_t g_t`.
    pub coefficients: Vec<f64>,
    /// The balance transformation `B` (T×T row-major, symmetric): the
    /// aligned gradients are `ĝ_t = Σ_s B_ts g_s`.
    pub balance: Vec<f64>,
    /// Eigenvalues of `M` kept (above the cut).
    pub rank: usize,
    /// `λ_min`, the smallest kept eigenvalue (`σ_min²`); 0 when none is.
    pub smallest_eigenvalue: f64,
}

/// Aligned-MTL coefficients `c = B 1`, `B = √λ_min · M^{-1/2}` on the span
/// of the gradients. Errors only if the eigen solver does not converge.
pub fn aligned_mtl(gram: &Gram) -> Result<AlignedMtlSolution> {
    let t = gram.tasks();
    // B is the same for M and s·M: decompose M / max_t M_tt, whose
    // entries lie in [−1, 1] (no overflow in the solver's norms).
    let scale = gram.max_diagonal();
    let unit: Vec<f64> = if scale > 0.0 {
        gram.as_slice().iter().map(|m| m / scale).collect()
    } else {
        gram.as_slice().to_vec()
    };
    let eigen = symmetric_eigen(&unit, t);
    if !eigen.converged {
        return Err(invalid(
            "aligned_mtl",
            "the Jacobi eigen solver did not converge on the Gram matrix".into(),
        ));
    }
    let (lambda, v) = (eigen.values, eigen.vectors);
    let lambda_max = lambda.iter().copied().fold(0.0, f64::max);
    let cut = lambda_max * t as f64 * f32::EPSILON as f64;
    let kept: Vec<usize> = (0..t).filter(|&k| lambda[k] > cut).collect();
    let mut balance = vec![0.0; t * t];
    if kept.is_empty() {
        for i in 0..t {
            balance[i * t + i] = 1.0;
        }
        return Ok(AlignedMtlSolution {
            coefficients: vec![1.0; t],
            balance,
            rank: 0,
            smallest_eigenvalue: 0.0,
        });
    }
    let smallest = kept
        .iter()
        .map(|&k| lambda[k])
        .fold(f64::INFINITY, f64::min);
    let root = smallest.sqrt();
    // B = √λ_min Σ_k λ_k^{-1/2} v_k v_kᵀ; column k of V is v_k.
    for &k in &kept {
        let s = root / lambda[k].sqrt();
        for i in 0..t {
            for j in 0..t {
                balance[i * t + j] += s * v[i * t + k] * v[j * t + k];
            }
        }
    }
    let coefficients = balance.chunks(t).map(|row| row.iter().sum()).collect();
    Ok(AlignedMtlSolution {
        coefficients,
        balance,
        rank: kept.len(),
        smallest_eigenvalue: smallest * scale,
    })
}
