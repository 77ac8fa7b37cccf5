//! PCGrad (Yu et al. 2020), "gradient surgery", in coefficient space.
//!
//! Each projected gradient `g_i'` stays a combination `Σ_k P_ik g_k` of the
//! original gradients, so `g_i'·g_j = (P M)_ij` and a projection onto the
//! normal plane of `g_j` only changes `P_ij`. The whole method is O(T³) on
//! the T×T Gram matrix, never touching a gradient vector.

use super::gram::Gram;
use crate::util::rng::Rng;

/// PCGrad coefficients `c` with `Σ_i g_i' = Σ_j c_j g_j`.
///
/// For each task i in order, the other tasks j are visited in a random
/// order drawn from `rng` (one shuffle per i); whenever `g_i'·g_j < 0`,
/// `g_i' −= (g_i'·g_j / ‖g_j‖²) g_j` against the ORIGINAL `g_j`. A
/// zero-norm `g_j` is never projected on (the dot is zero anyway).
pub fn pcgrad(gram: &Gram, rng: &mut Rng) -> Vec<f64> {
    let t = gram.tasks();
    // p: (T, T), row i = coefficients of g_i' over the original gradients.
    let mut p = vec![0.0; t * t];
    for i in 0..t {
        p[i * t + i] = 1.0;
        let mut others: Vec<usize> = (0..t).filter(|&j| j != i).collect();
        shuffle(&mut others, rng);
        for j in others {
            let row = &p[i * t..(i + 1) * t];
            let conflict: f64 = (0..t).map(|k| row[k] * gram.get(k, j)).sum();
            let mjj = gram.get(j, j);
            if conflict < 0.0 && mjj > 0.0 {
                p[i * t + j] -= conflict / mjj;
            }
        }
    }
    // Σ_i g_i' = Σ_j (Σ_i P_ij) g_j.
    (0..t).map(|j| (0..t).map(|i| p[i * t + j]).sum()).collect()
}

/// Fisher–Yates with the crate's seeded generator: the same seed gives the
/// same order on every platform.
pub(crate) fn shuffle(items: &mut [usize], rng: &mut Rng) {
    for k in (1..items.len()).rev() {
        // Modulo bias is below 2⁻⁵⁷ for k ≤ 64: irrelevant here.
        let pick = (rng.next_u64() % (k as u64 + 1)) as usize;
        items.swap(k, pick);
    }
}
