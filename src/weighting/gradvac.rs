//! GradVac (Wang et al. 2021, gradient vaccine): like PCGrad, each task's
//! gradient g_i is corrected against the others in a random order, but
//! toward a target cosine φ̂_ij (an EMA of the observed cosines) instead
//! of orthogonality: when `cos(g_i', g_j) < φ̂_ij`,
//! `g_i' += g_j·‖g_i'‖(φ̂√(1−φ²) − φ√(1−φ̂²)) / (‖g_j‖√(1−φ̂²))`. Over
//! the whole shared parameter vector (LibMTL's `GradVac_group_type` 0,
//! its default), everything follows from the Gram matrix: g_i' is kept as
//! coefficients over the original gradients. LibMTL `GradVac` (β 0.5);
//! LibMTL updates φ̂ only for pairs it corrects, the paper (Alg. 1) every
//! pair every step, as here.

use crate::util::rng::Rng;

use super::Gram;

/// GradVac's default EMA rate β (LibMTL's).
pub const GRADVAC_DEFAULT_BETA: f64 = 0.5;

/// The coefficients c of `Σ_i g_i'` over the original gradients, and the
/// updated targets φ̂ ([T, T] row-major, updated in place, starting at 0).
pub fn gradvac(gram: &Gram, targets: &mut [f64], beta: f64, rng: &mut Rng) -> Vec<f64> {
    let t = gram.tasks();
    let m = |i: usize, j: usize| gram.get(i, j);
    let mut total = vec![0f64; t];
    for i in 0..t {
        // g_i' = Σ_k a_k g_k
        let mut a = vec![0f64; t];
        a[i] = 1.0;
        let mut others: Vec<usize> = (0..t).filter(|&j| j != i).collect();
        super::pcgrad::shuffle(&mut others, rng);
        for j in others {
            let dot: f64 = (0..t).map(|k| a[k] * m(k, j)).sum();
            let norm_i = (0..t)
                .flat_map(|k| (0..t).map(move |l| (k, l)))
                .map(|(k, l)| a[k] * a[l] * m(k, l))
                .sum::<f64>()
                .max(0.0)
                .sqrt();
            let norm_j = m(j, j).max(0.0).sqrt();
            let cos = dot / (norm_i * norm_j + 1e-8);
            let target = targets[i * t + j];
            if cos < target {
                let w = norm_i
                    * (target * (1.0 - cos * cos).max(0.0).sqrt()
                        - cos * (1.0 - target * target).max(0.0).sqrt())
                    / (norm_j * (1.0 - target * target).max(0.0).sqrt() + 1e-8);
                a[j] += w;
            }
            targets[i * t + j] = (1.0 - beta) * target + beta * cos;
        }
        for k in 0..t {
            total[k] += a[k];
        }
    }
    total
}
