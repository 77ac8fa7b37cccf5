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
    let (lambda, v) = symmetric_eigen(&unit, t).ok_or_else(|| {
        invalid(
            "aligned_mtl",
            "the Jacobi eigen solver did not converge on the Gram matrix".into(),
        )
    })?;
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

/// Sweep cap of the Jacobi solver (it converges quadratically: about 6–10
/// sweeps at T = 64).
const MAX_SWEEPS: usize = 60;

/// Eigenvalues and eigenvectors (columns of the row-major n×n `V`) of a
/// symmetric n×n row-major matrix, by cyclic Jacobi rotations: each
/// rotation zeroes one off-diagonal pair; sweeps repeat until no
/// off-diagonal entry is above `ε_f64 · ‖A‖_F / n`. `None` if the cap is hit.
pub(crate) fn symmetric_eigen(matrix: &[f64], n: usize) -> Option<(Vec<f64>, Vec<f64>)> {
    let mut a = matrix.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let norm = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let small = f64::EPSILON * norm / n.max(1) as f64;
    for _ in 0..MAX_SWEEPS {
        let mut rotated = false;
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() <= small {
                    continue;
                }
                rotated = true;
                // tan of the angle that zeroes a_pq (the smaller root).
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let tan = if theta.abs() > 1e150 {
                    0.5 / theta
                } else {
                    theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt())
                };
                let cos = 1.0 / (tan * tan + 1.0).sqrt();
                let sin = tan * cos;
                // A ← Jᵀ A J, V ← V J with J_pp = J_qq = cos, J_pq = sin.
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = cos * akp - sin * akq;
                    a[k * n + q] = sin * akp + cos * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = cos * apk - sin * aqk;
                    a[q * n + k] = sin * apk + cos * aqk;
                }
                a[p * n + q] = 0.0;
                a[q * n + p] = 0.0;
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = cos * vkp - sin * vkq;
                    v[k * n + q] = sin * vkp + cos * vkq;
                }
            }
        }
        if !rotated {
            let lambda = (0..n).map(|i| a[i * n + i]).collect();
            return Some((lambda, v));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::symmetric_eigen;

    #[test]
    fn jacobi_diagonalises_symmetric_matrices() {
        // A V = V Λ and Vᵀ V = I for a dense 5×5 and a 2×2 with a known answer.
        let n = 5;
        let a: Vec<f64> = (0..n * n)
            .map(|k| {
                let (i, j) = (k / n, k % n);
                ((i + j) as f64 * 0.7).sin() + if i == j { 2.0 } else { 0.0 }
            })
            .collect();
        let (lambda, v) = symmetric_eigen(&a, n).unwrap();
        for i in 0..n {
            for k in 0..n {
                let av: f64 = (0..n).map(|j| a[i * n + j] * v[j * n + k]).sum();
                assert!((av - v[i * n + k] * lambda[k]).abs() < 1e-12, "{i} {k}");
                let vtv: f64 = (0..n).map(|j| v[j * n + i] * v[j * n + k]).sum();
                let id = if i == k { 1.0 } else { 0.0 };
                assert!((vtv - id).abs() < 1e-12, "{i} {k}");
            }
        }
        let (mut l, _) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2).unwrap();
        l.sort_by(f64::total_cmp);
        assert!(
            (l[0] - 1.0).abs() < 1e-15 && (l[1] - 3.0).abs() < 1e-15,
            "{l:?}"
        );
        let (l, v) = symmetric_eigen(&[0.0; 4], 2).unwrap();
        assert_eq!((l, v), (vec![0.0, 0.0], vec![1.0, 0.0, 0.0, 1.0]));
    }
}
