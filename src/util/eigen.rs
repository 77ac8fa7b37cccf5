//! Eigenvalues and eigenvectors of small symmetric matrices in f64, by
//! cyclic Jacobi rotations: the host solvers (Aligned-MTL's `M^{-1/2}`)
//! and the CPU references (the trace norm's SVD) share this one solver.

/// The result of [`symmetric_eigen`].
#[derive(Clone, Debug, PartialEq)]
pub struct SymmetricEigen {
    /// The eigenvalues, in the matrix's diagonal order (unsorted).
    pub values: Vec<f64>,
    /// The eigenvectors as the columns of a row-major n×n matrix.
    pub vectors: Vec<f64>,
    /// Whether every off-diagonal entry fell below the tolerance before
    /// the sweep cap.
    pub converged: bool,
}

impl SymmetricEigen {
    fn of(rotated: &[f64], vectors: Vec<f64>, n: usize, converged: bool) -> Self {
        SymmetricEigen {
            values: (0..n).map(|i| rotated[i * n + i]).collect(),
            vectors,
            converged,
        }
    }
}

/// Sweep cap of the Jacobi solver (it converges quadratically: about 6–10
/// sweeps at T = 64).
const MAX_SWEEPS: usize = 60;

/// Eigenvalues and eigenvectors (columns of the row-major n×n `V`) of a
/// symmetric n×n row-major matrix, by cyclic Jacobi rotations: each
/// rotation zeroes one off-diagonal pair; sweeps repeat until no
/// off-diagonal entry is above `ε_f64 · ‖A‖_F / n` (`converged`), or the
/// sweep cap is hit (not `converged`: the last iterate is returned).
pub fn symmetric_eigen(matrix: &[f64], n: usize) -> SymmetricEigen {
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
            return SymmetricEigen::of(&a, v, n, true);
        }
    }
    SymmetricEigen::of(&a, v, n, false)
}

#[cfg(test)]
mod tests {
    use super::{symmetric_eigen, SymmetricEigen};

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
        let SymmetricEigen {
            values: lambda,
            vectors: v,
            converged,
        } = symmetric_eigen(&a, n);
        assert!(converged);
        for i in 0..n {
            for k in 0..n {
                let av: f64 = (0..n).map(|j| a[i * n + j] * v[j * n + k]).sum();
                assert!((av - v[i * n + k] * lambda[k]).abs() < 1e-12, "{i} {k}");
                let vtv: f64 = (0..n).map(|j| v[j * n + i] * v[j * n + k]).sum();
                let id = if i == k { 1.0 } else { 0.0 };
                assert!((vtv - id).abs() < 1e-12, "{i} {k}");
            }
        }
        let mut l = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2).values;
        l.sort_by(f64::total_cmp);
        assert!(
            (l[0] - 1.0).abs() < 1e-15 && (l[1] - 3.0).abs() < 1e-15,
            "{l:?}"
        );
        let zero = symmetric_eigen(&[0.0; 4], 2);
        assert_eq!(
            (zero.values, zero.vectors, zero.converged),
            (vec![0.0, 0.0], vec![1.0, 0.0, 0.0, 1.0], true)
        );
    }
}
