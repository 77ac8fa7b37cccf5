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

/// `kernels::weighting::loss_rule` from its encoded vector
/// `[mode, μ, u.., v..]` (`LossRule::encode`) and the losses, in f64.
pub fn loss_rule(rule: &[f32], losses: &[f32]) -> Vec<f32> {
    let t = losses.len();
    let n = t as f64;
    let l: Vec<f64> = losses.iter().map(|&v| v as f64).collect();
    let u = |k: usize| rule[2 + k] as f64;
    let v = |k: usize| rule[2 + t + k] as f64;
    let mu = rule[1] as f64;
    let out: Vec<f64> = match rule[0] as u32 {
        0 => {
            let mean_log = l.iter().map(|x| x.ln()).sum::<f64>() / n;
            l.iter().map(|x| mean_log.exp() / (n * x)).collect()
        }
        1 => l.iter().map(|x| 1.0 / (x + 1e-20)).collect(),
        2 => {
            let r: Vec<f64> = (0..t).map(|k| (l[k] / u(k) + 1e-20).ln()).collect();
            let top = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = r.iter().map(|x| ((x - top) / mu).exp()).collect();
            let total: f64 = e.iter().sum();
            (0..t)
                .map(|k| n * e[k] / total / (l[k] + 1e-20 * u(k)))
                .collect()
        }
        _ => {
            let q: Vec<f64> = (0..t).map(|k| u(k) / (l[k] - v(k) + 1e-8)).collect();
            let total: f64 = q.iter().sum();
            q.iter().map(|x| x / total).collect()
        }
    };
    out.into_iter().map(|x| x as f32).collect()
}

/// The shader's `pcg_hash`: a 32-bit permutation.
pub fn pcg_hash(v: u32) -> u32 {
    let s = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let w = ((s >> ((s >> 28) + 4)) ^ s).wrapping_mul(277_803_737);
    (w >> 22) ^ w
}

/// GradDrop's uniform draw for feature `d` under `seed`, in [0, 1).
pub fn graddrop_uniform(seed: u32, d: usize) -> f32 {
    (pcg_hash(seed ^ pcg_hash(d as u32)) >> 8) as f32 / 16_777_216.0
}

/// `kernels::weighting::graddrop`: per_task [T, rows, width], h [rows,
/// width] → the sign-dropped sum [rows, width].
pub fn graddrop(
    per_task: &[f32],
    h: &[f32],
    tasks: usize,
    rows: usize,
    seed: u32,
    leak: f32,
) -> Vec<f32> {
    let width = h.len() / rows.max(1);
    let mut out = vec![0f32; rows * width];
    let at = |t: usize, r: usize, d: usize| per_task[(t * rows + r) * width + d] as f64;
    let sign = |x: f32| {
        if x > 0.0 {
            1.0
        } else if x < 0.0 {
            -1.0
        } else {
            0.0
        }
    };
    for d in 0..width {
        let s: Vec<f64> = (0..tasks)
            .map(|t| {
                (0..rows)
                    .map(|r| at(t, r, d) * sign(h[r * width + d]))
                    .sum()
            })
            .collect();
        let total: f64 = s.iter().sum();
        let magnitude: f64 = s.iter().map(|x| x.abs()).sum();
        let purity = 0.5 * (1.0 + total / (magnitude + 1e-7));
        let u = graddrop_uniform(seed, d) as f64;
        let factor: Vec<f64> = s
            .iter()
            .map(|&st| {
                let keep = (purity > u && st > 0.0) || (purity < u && st < 0.0);
                leak as f64 + (1.0 - leak as f64) * if keep { 1.0 } else { 0.0 }
            })
            .collect();
        for r in 0..rows {
            out[r * width + d] = (0..tasks).map(|t| at(t, r, d) * factor[t]).sum::<f64>() as f32;
        }
    }
    out
}

/// Per-row sums of x² of x [T, n].
pub fn row_squares(x: &[f32], tasks: usize) -> Vec<f32> {
    let n = x.len() / tasks;
    (0..tasks)
        .map(|t| {
            x[t * n..(t + 1) * n]
                .iter()
                .map(|&v| v as f64 * v as f64)
                .sum::<f64>() as f32
        })
        .collect()
}

/// ExcessMTL's step: `s += x²` in place (f32, as the kernel), then per row
/// `Σ x²/√(s + 1e-7)`.
pub fn adagrad_scaled_sums(x: &[f32], state: &mut [f32], tasks: usize) -> Vec<f32> {
    let n = x.len() / tasks;
    (0..tasks)
        .map(|t| {
            let mut acc = 0f64;
            for k in t * n..(t + 1) * n {
                state[k] += x[k] * x[k];
                acc += (x[k] as f64).powi(2) / (state[k] as f64 + 1e-7).sqrt();
            }
            acc as f32
        })
        .collect()
}

/// MoCo's `y_t ← y_t − β(y_t − L_t·g_t/(‖g_t‖ + 1e-8))` for y, g [T, n].
pub fn moco_update(g: &[f32], norms_sq: &[f32], losses: &[f32], y: &[f32], beta: f32) -> Vec<f32> {
    let tasks = losses.len();
    let n = g.len() / tasks;
    (0..g.len())
        .map(|i| {
            let t = i / n;
            let scaled = g[i] as f64 / ((norms_sq[t] as f64).sqrt() + 1e-8) * losses[t] as f64;
            (y[i] as f64 - beta as f64 * (y[i] as f64 - scaled)) as f32
        })
        .collect()
}

/// `Σ_t c_t·y_t` of y [T, n].
pub fn combine_rows(y: &[f32], c: &[f32]) -> Vec<f32> {
    let n = y.len() / c.len();
    (0..n)
        .map(|k| {
            (0..c.len())
                .map(|t| c[t] as f64 * y[t * n + k] as f64)
                .sum::<f64>() as f32
        })
        .collect()
}
