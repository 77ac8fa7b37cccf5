//! Reference for the subspace orthogonality penalty (`kernels::subspace`):
//! W [T, in, out], each task's columns split into G blocks A_1..A_G;
//! value λ Σ_{i<j} ‖A_iᵀA_j‖²_F and its gradient, in f64.

/// (value, dW) for weights `w` of shape [tasks, inputs, outputs].
pub fn orthogonality(
    w: &[f32],
    tasks: usize,
    inputs: usize,
    outputs: usize,
    subspaces: usize,
    lambda: f64,
) -> (f64, Vec<f32>) {
    let width = outputs / subspaces;
    let at = |t: usize, r: usize, c: usize| w[t * inputs * outputs + r * outputs + c] as f64;
    let mut value = 0.0;
    let mut grad = vec![0f64; w.len()];
    for t in 0..tasks {
        for i in 0..subspaces {
            for j in (i + 1)..subspaces {
                // M = A_iᵀ A_j [width, width].
                let mut m = vec![0f64; width * width];
                for a in 0..width {
                    for b in 0..width {
                        m[a * width + b] = (0..inputs)
                            .map(|r| at(t, r, i * width + a) * at(t, r, j * width + b))
                            .sum();
                    }
                }
                value += lambda * m.iter().map(|v| v * v).sum::<f64>();
                // dA_i = 2λ A_j Mᵀ, dA_j = 2λ A_i M.
                for r in 0..inputs {
                    for a in 0..width {
                        let gi: f64 = (0..width).map(|b| at(t, r, j * width + b) * m[a * width + b]).sum();
                        let gj: f64 = (0..width).map(|b| at(t, r, i * width + b) * m[b * width + a]).sum();
                        grad[t * inputs * outputs + r * outputs + i * width + a] += 2.0 * lambda * gi;
                        grad[t * inputs * outputs + r * outputs + j * width + a] += 2.0 * lambda * gj;
                    }
                }
            }
        }
    }
    (value, grad.into_iter().map(|v| v as f32).collect())
}
