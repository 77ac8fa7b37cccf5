//! Reference for the soft-sharing regularisers (`kernels::soft_sharing`,
//! docs/math.md §4) on W [T, d] (task t's weights at t·d), in f64.

fn get(w: &[f32], d: usize, t: usize, j: usize) -> f64 {
    w[t * d + j] as f64
}

/// (R, dR/dW) of λ Σ_{s<t} ‖W_s − W_t‖².
pub fn l2_distance(w: &[f32], tasks: usize, lambda: f32) -> (f64, Vec<f32>) {
    let d = w.len() / tasks;
    let l = lambda as f64;
    let mut value = 0.0;
    for s in 0..tasks {
        for t in s + 1..tasks {
            value += l
                * (0..d)
                    .map(|j| (get(w, d, s, j) - get(w, d, t, j)).powi(2))
                    .sum::<f64>();
        }
    }
    let mut g = vec![0f32; w.len()];
    for j in 0..d {
        let sum: f64 = (0..tasks).map(|s| get(w, d, s, j)).sum();
        for t in 0..tasks {
            g[t * d + j] = (2.0 * l * (tasks as f64 * get(w, d, t, j) - sum)) as f32;
        }
    }
    (value, g)
}

/// (R, dR/dW) of ‖W̄‖² + (λ/T) Σ_t ‖W_t − W̄‖².
pub fn clustering(w: &[f32], tasks: usize, lambda: f32) -> (f64, Vec<f32>) {
    let d = w.len() / tasks;
    let (l, tf) = (lambda as f64, tasks as f64);
    let mut value = 0.0;
    let mut g = vec![0f32; w.len()];
    for j in 0..d {
        let mean = (0..tasks).map(|t| get(w, d, t, j)).sum::<f64>() / tf;
        value += mean * mean;
        for t in 0..tasks {
            let dev = get(w, d, t, j) - mean;
            value += l / tf * dev * dev;
            g[t * d + j] = (2.0 * mean / tf + 2.0 * l / tf * dev) as f32;
        }
    }
    (value, g)
}

/// (λ Σ_j ‖a_j‖₂ before the step, W after a_j ← a_j·max(0, 1 − step/‖a_j‖)).
pub fn group_lasso_prox(w: &[f32], tasks: usize, lambda: f32, step: f32) -> (f64, Vec<f32>) {
    let d = w.len() / tasks;
    let mut out = w.to_vec();
    let mut value = 0.0;
    for j in 0..d {
        let norm = (0..tasks)
            .map(|t| get(w, d, t, j).powi(2))
            .sum::<f64>()
            .sqrt();
        value += lambda as f64 * norm;
        let keep = if norm > 0.0 {
            (1.0 - step as f64 / norm).max(0.0)
        } else {
            0.0
        };
        for t in 0..tasks {
            out[t * d + j] = (get(w, d, t, j) * keep) as f32;
        }
    }
    (value, out)
}
