//! Soft-sharing regularisers: reference cases, gradients by finite
//! differences of the GPU value, and the proximal step's shrinkage.

use manytask::gpu::{DType, GpuContext, Tensor};
use manytask::kernels::soft_sharing::{add_gradient, group_lasso_prox, value, Regulariser};

use crate::common::{check_cases, contexts, data};

#[test]
fn soft_sharing_matches_reference() {
    check_cases("soft_sharing", |c| c.kernel.starts_with("soft_sharing::"));
}

/// (value, gradient term) of `reg` at `w` on the GPU.
fn value_and_grad(ctx: &GpuContext, reg: &Regulariser, tasks: usize, w: &[f32]) -> (f64, Vec<f32>) {
    let wt = Tensor::from_f32(ctx, "w", &[w.len()], w).unwrap();
    let g = Tensor::zeros(ctx, "g", &[w.len()]).unwrap();
    let partial = Tensor::empty(ctx, "partial", &[w.len() / tasks], DType::F32).unwrap();
    let out = Tensor::empty(ctx, "value", &[1], DType::F32).unwrap();
    let mut rec = ctx.recorder("reg");
    add_gradient(&mut rec, reg, tasks, &wt, &g, &partial).unwrap();
    value(&mut rec, &partial, &out).unwrap();
    rec.submit().unwrap();
    (
        out.to_f32_vec(ctx).unwrap()[0] as f64,
        g.to_f32_vec(ctx).unwrap(),
    )
}

#[test]
fn regulariser_gradients_match_finite_differences_of_their_values() {
    let (tasks, d) = (3, 5);
    let w = data(21, tasks * d);
    for ctx in contexts() {
        for reg in [
            Regulariser::L2Distance { lambda: 0.7 },
            Regulariser::Clustering { lambda: 0.7 },
        ] {
            let (_, grad) = value_and_grad(ctx, &reg, tasks, &w);
            let mut worst = 0f32;
            for i in 0..w.len() {
                const H: f32 = 1e-2;
                let mut p = w.clone();
                p[i] += H;
                let up = value_and_grad(ctx, &reg, tasks, &p).0;
                p[i] -= 2.0 * H;
                let down = value_and_grad(ctx, &reg, tasks, &p).0;
                // Both values are quadratic: central differences are exact
                // up to f32 rounding of the values (~1e-6 / 2h).
                worst = worst.max((((up - down) / (2.0 * H as f64)) as f32 - grad[i]).abs());
            }
            assert!(worst < 1e-3, "{reg:?}: max |fd - grad| = {worst}");
            assert!(grad.iter().any(|g| g.abs() > 0.1), "degenerate data");
        }
    }
}

#[test]
fn group_lasso_zeroes_small_rows_and_shrinks_the_others_by_the_step() {
    let ctx = &contexts()[0];
    let tasks = 2;
    // Rows (w_0j, w_1j): norms 0.5, 5 and 0.
    let w = [0.3f32, 3.0, 0.0, 0.4, 4.0, 0.0];
    let wt = Tensor::from_f32(ctx, "w", &[6], &w).unwrap();
    let partial = Tensor::empty(ctx, "partial", &[3], DType::F32).unwrap();
    let mut rec = ctx.recorder("prox");
    // Step η·λ = 1: row 0 (norm 0.5) vanishes, row 1 (norm 5) → norm 4.
    group_lasso_prox(&mut rec, tasks, 2.0, 0.5, &wt, &partial).unwrap();
    rec.submit().unwrap();
    let out = wt.to_f32_vec(ctx).unwrap();
    assert_eq!(out[0], 0.0);
    assert_eq!(out[3], 0.0);
    assert!(
        (out[1] - 2.4).abs() < 1e-6 && (out[4] - 3.2).abs() < 1e-6,
        "{out:?}"
    );
    assert_eq!((out[2], out[5]), (0.0, 0.0));
    // Bad input: one task, or a negative λ.
    let mut rec = ctx.recorder("bad");
    assert!(group_lasso_prox(&mut rec, 1, 1.0, 1.0, &wt, &partial).is_err());
    assert!(group_lasso_prox(&mut rec, 2, -1.0, 1.0, &wt, &partial).is_err());
    assert_eq!(rec.dispatch_count(), 0);
}
