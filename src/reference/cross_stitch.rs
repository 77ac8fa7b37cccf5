//! Reference for the cross-stitch unit (`kernels::cross_stitch`,
//! docs/math.md §3): X [rows, T·C] with task s at columns s·C..;
//! α [T, T] (or [C, T, T] per channel), α[t, s] weighs source s in output t.

fn alpha(a: &[f32], tasks: usize, per_channel: bool, c: usize, t: usize, s: usize) -> f64 {
    let base = if per_channel { c * tasks * tasks } else { 0 };
    a[base + t * tasks + s] as f64
}

/// Y = mix(X): y[b, t·C + c] = Σ_s α[t, s] x[b, s·C + c]. With
/// `transpose`, α[s, t]: dX = αᵀ · dY.
pub fn stitch_mix(
    x: &[f32],
    a: &[f32],
    rows: usize,
    tasks: usize,
    channels: usize,
    per_channel: bool,
    transpose: bool,
) -> Vec<f32> {
    let w = tasks * channels;
    let mut out = vec![0f32; rows * w];
    for b in 0..rows {
        for t in 0..tasks {
            for c in 0..channels {
                let v: f64 = (0..tasks)
                    .map(|s| {
                        let al = if transpose {
                            alpha(a, tasks, per_channel, c, s, t)
                        } else {
                            alpha(a, tasks, per_channel, c, t, s)
                        };
                        al * x[b * w + s * channels + c] as f64
                    })
                    .sum();
                out[b * w + t * channels + c] = v as f32;
            }
        }
    }
    out
}

/// dα: [T, T] summed over rows and channels, or [C, T, T] per channel.
pub fn stitch_alpha_grad(
    x: &[f32],
    dy: &[f32],
    rows: usize,
    tasks: usize,
    channels: usize,
    per_channel: bool,
) -> Vec<f32> {
    let w = tasks * channels;
    let mut out = vec![
        0f64;
        if per_channel {
            channels * tasks * tasks
        } else {
            tasks * tasks
        }
    ];
    for b in 0..rows {
        for t in 0..tasks {
            for s in 0..tasks {
                for c in 0..channels {
                    let v =
                        dy[b * w + t * channels + c] as f64 * x[b * w + s * channels + c] as f64;
                    let idx = if per_channel {
                        c * tasks * tasks + t * tasks + s
                    } else {
                        t * tasks + s
                    };
                    out[idx] += v;
                }
            }
        }
    }
    out.into_iter().map(|v| v as f32).collect()
}
