//! CPU references for `shaders/reduce.wgsl`, accumulated in f64.

/// Σ x
pub fn sum(x: &[f32]) -> f32 {
    x.iter().map(|&v| v as f64).sum::<f64>() as f32
}

/// Σ x²
pub fn sum_squares(x: &[f32]) -> f32 {
    x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() as f32
}

/// x: (rows, cols) -> (cols,): Σ_r x[r, c]
pub fn column_sums(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut acc = vec![0f64; cols];
    for r in 0..rows {
        for c in 0..cols {
            acc[c] += x[r * cols + c] as f64;
        }
    }
    acc.into_iter().map(|v| v as f32).collect()
}

/// Σ |x|, the scale that bounds a float sum's rounding error.
pub fn sum_abs(x: &[f32]) -> f64 {
    x.iter().map(|&v| (v as f64).abs()).sum()
}
