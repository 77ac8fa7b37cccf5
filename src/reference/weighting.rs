//! References for `kernels::weighting`: the Gram matrix of per-task rows
//! and uncertainty weighting (Kendall et al. 2018; docs/math.md §5),
//! in f64.

/// Upper-triangle pair sums M_ij = x_i·x_j (i ≤ j, row by row) of the T
/// rows of x [T, n].
pub fn gram_pairs(x: &[f32], tasks: usize) -> Vec<f32> {
    let n = x.len() / tasks;
    let mut out = Vec::with_capacity(tasks * (tasks + 1) / 2);
    for i in 0..tasks {
        for j in i..tasks {
            let d: f64 = (0..n)
                .map(|k| x[i * n + k] as f64 * x[j * n + k] as f64)
                .sum();
            out.push(d as f32);
        }
    }
    out
}

/// The loss kernel's weights ½·e^(−s_t).
pub fn uncertainty_weights(s: &[f32]) -> Vec<f32> {
    s.iter()
        .map(|&v| (0.5 * (-(v as f64)).exp()) as f32)
        .collect()
}

/// dL/ds_t = ½(1 − e^(−s_t)·L_t) of L = Σ ½e^(−s_t)L_t + ½s_t.
pub fn uncertainty_grad(s: &[f32], losses: &[f32]) -> Vec<f32> {
    s.iter()
        .zip(losses)
        .map(|(&v, &l)| (0.5 * (1.0 - (-(v as f64)).exp() * l as f64)) as f32)
        .collect()
}
