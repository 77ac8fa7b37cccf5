//! Reference for the layer-stitch unit (`kernels::layer_stitch`,
//! docs/math.md §3): H [rows, K·W] with layer k at columns k·W ..,
//! W = T·C; z [rows, W]; β [T, K].

/// z[b, t·C + c] = Σ_k β[t, k] h[b, k·W + t·C + c].
pub fn mix(
    h: &[f32],
    beta: &[f32],
    rows: usize,
    tasks: usize,
    layers: usize,
    channels: usize,
) -> Vec<f32> {
    let w = tasks * channels;
    let mut z = vec![0f32; rows * w];
    for b in 0..rows {
        for j in 0..w {
            let t = j / channels;
            let v: f64 = (0..layers)
                .map(|k| beta[t * layers + k] as f64 * h[b * layers * w + k * w + j] as f64)
                .sum();
            z[b * w + j] = v as f32;
        }
    }
    z
}

/// dH[b, k·W + j] = β[t, k] dz[b, j].
pub fn spread(
    dz: &[f32],
    beta: &[f32],
    rows: usize,
    tasks: usize,
    layers: usize,
    channels: usize,
) -> Vec<f32> {
    let w = tasks * channels;
    let mut dh = vec![0f32; rows * layers * w];
    for b in 0..rows {
        for j in 0..w {
            let t = j / channels;
            for k in 0..layers {
                dh[b * layers * w + k * w + j] = beta[t * layers + k] * dz[b * w + j];
            }
        }
    }
    dh
}

/// dβ[t, k] = Σ_b Σ_c dz[b, t·C + c] h[b, k·W + t·C + c].
pub fn beta_grad(
    h: &[f32],
    dz: &[f32],
    rows: usize,
    tasks: usize,
    layers: usize,
    channels: usize,
) -> Vec<f32> {
    let w = tasks * channels;
    let mut out = vec![0f64; tasks * layers];
    for b in 0..rows {
        for t in 0..tasks {
            for k in 0..layers {
                for c in 0..channels {
                    let j = t * channels + c;
                    out[t * layers + k] +=
                        dz[b * w + j] as f64 * h[b * layers * w + k * w + j] as f64;
                }
            }
        }
    }
    out.into_iter().map(|v| v as f32).collect()
}
