//! IMTL-G (Liu et al. 2021, "Towards Impartial Multi-task Learning"): the
//! combination `g = Σ α_t g_t` (`Σ α = 1`) whose projection onto every unit
//! gradient `u_t = g_t/‖g_t‖` is the same.

use super::gram::{invalid, Gram};
use crate::Result;

/// IMTL-G coefficients α (summing to 1).
///
/// With `D = [g₁ − g_t]_{t≥2}` and `U = [u₁ − u_t]_{t≥2}`:
/// `α_{2..T} = g₁ Uᵀ (D Uᵀ)⁻¹`, `α₁ = 1 − Σ α_{2..T}`, all from `M` since
/// `g_a·u_b = M_ab / ‖g_b‖`. Errors on a zero-norm gradient (no unit
/// vector) and when `D Uᵀ` is singular (e.g. two parallel gradients).
pub fn imtl_g(gram: &Gram) -> Result<Vec<f64>> {
    let t = gram.tasks();
    let norms = gram.norms();
    if let Some(z) = norms.iter().position(|&n| n <= 0.0) {
        return Err(invalid(
            "imtl_g",
            format!("task {z} has a zero gradient, which has no direction to be impartial to"),
        ));
    }
    // g_a · u_b
    let gu = |a: usize, b: usize| gram.get(a, b) / norms[b];
    let n = t - 1;
    // x (D Uᵀ) = g₁ Uᵀ  ⇔  (D Uᵀ)ᵀ xᵀ = (g₁ Uᵀ)ᵀ. Row k of D and U is task k+1.
    // a: (n, n), a[l][k] = (D Uᵀ)_{k l} = (g₁ − g_{k+1})·(u₁ − u_{l+1}).
    let mut a = vec![0.0; n * n];
    let mut rhs = vec![0.0; n];
    for l in 0..n {
        let u_diff = |g: usize| gu(g, 0) - gu(g, l + 1);
        rhs[l] = u_diff(0);
        for k in 0..n {
            a[l * n + k] = u_diff(0) - u_diff(k + 1);
        }
    }
    let tail = solve_linear(a, rhs).ok_or_else(|| {
        invalid(
            "imtl_g",
            "D Uᵀ is singular: two task gradients are (nearly) parallel or the gradients \
             are linearly dependent in a way IMTL-G cannot balance"
                .into(),
        )
    })?;
    let mut alpha = Vec::with_capacity(t);
    alpha.push(1.0 - tail.iter().sum::<f64>());
    alpha.extend(tail);
    Ok(alpha)
}

/// Solves `A x = b` ((n, n) row-major) by Gaussian elimination with partial
/// pivoting; `None` when a pivot is negligible against the largest entry.
pub(crate) fn solve_linear(mut a: Vec<f64>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for col in 0..n {
        let pivot =
            (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))?;
        let big_enough = a[pivot * n + col].abs() > 1e-12 * scale; // false for NaN too
        if !big_enough {
            return None;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(col * n + k, pivot * n + k);
            }
            b.swap(col, pivot);
        }
        for row in col + 1..n {
            let factor = a[row * n + col] / a[col * n + col];
            for k in col..n {
                a[row * n + k] -= factor * a[col * n + k];
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let rest: f64 = (row + 1..n).map(|k| a[row * n + k] * x[k]).sum();
        x[row] = (b[row] - rest) / a[row * n + row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::solve_linear;

    #[test]
    fn solve_linear_needs_pivoting_and_detects_singularity() {
        // A zero in the (0,0) position: fails without row exchange.
        let x = solve_linear(vec![0.0, 1.0, 2.0, 3.0], vec![2.0, 11.0]).unwrap();
        assert!(
            (x[0] - 2.5).abs() < 1e-14 && (x[1] - 2.0).abs() < 1e-14,
            "{x:?}"
        );
        assert!(solve_linear(vec![1.0, 2.0, 2.0, 4.0], vec![1.0, 2.0]).is_none());
        assert_eq!(solve_linear(Vec::new(), Vec::new()), Some(Vec::new()));
    }
}
