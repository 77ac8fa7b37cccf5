//! Trace norm on the small side: the polar factor U·Vᵀ and ‖X‖_* against
//! an f64 Jacobi SVD, the prox shrinking every singular value by exactly
//! τ, rank-deficient inputs, and the task-count limit.

use manytask::gpu::{DType, GpuContext, Tensor};
use manytask::kernels::trace_norm::{trace_norm_gradient, trace_norm_prox, REL_TOL};
use manytask::reference::trace_norm as reference;

use crate::common::{contexts, data, max_err};

/// (T, d): two tasks, a rank-deficient stack (d < T), odd sizes, and
/// 16 tasks of 1024 weights.
const SHAPES: &[(usize, usize)] = &[(2, 1), (2, 7), (5, 3), (5, 257), (16, 1024)];

fn run(ctx: &GpuContext, x: &[f32], tasks: usize, tau: Option<f32>) -> (f32, Vec<f32>) {
    let xt = Tensor::from_f32(ctx, "x", &[x.len()], x).unwrap();
    let out = Tensor::zeros(ctx, "out", &[x.len()]).unwrap();
    let norm = Tensor::empty(ctx, "norm", &[1], DType::F32).unwrap();
    let mut rec = ctx.recorder("trace norm");
    match tau {
        None => trace_norm_gradient(&mut rec, &xt, tasks, 1.0, &out, &norm).unwrap(),
        Some(t) => trace_norm_prox(&mut rec, &xt, tasks, t, &out, &norm).unwrap(),
    }
    rec.submit().unwrap();
    (
        norm.to_f32_vec(ctx).unwrap()[0],
        out.to_f32_vec(ctx).unwrap(),
    )
}

#[test]
fn gradient_is_the_polar_factor_and_the_norm_is_the_sum_of_singular_values() {
    for ctx in contexts() {
        for &(tasks, d) in SHAPES {
            let x = data((tasks * 100 + d) as u64, tasks * d);
            let (norm, grad) = run(ctx, &x, tasks, None);
            let (want_norm, want) = reference::polar_factor(&x, tasks, REL_TOL as f64);
            // ‖X‖_* = tr(sqrt(X·Xᵀ)) = Σ σ.
            assert!(
                (norm as f64 - want_norm).abs() <= 1e-4 * want_norm,
                "T={tasks} d={d}: {norm} vs {want_norm}"
            );
            let err = max_err(&grad, &want);
            assert!(err <= 1e-3, "T={tasks} d={d}: max |UVᵀ − ref| = {err}");
            // The polar factor has unit singular values on X's row space.
            let (sigma, _) = reference::left_svd(&grad, tasks);
            let rank = tasks.min(d);
            let mut s: Vec<f64> = sigma.clone();
            s.sort_by(|a, b| b.total_cmp(a));
            assert!(
                s[..rank].iter().all(|&v| (v - 1.0).abs() < 1e-3),
                "T={tasks} d={d}: σ(UVᵀ) = {s:?}"
            );
            assert!(
                s[rank..].iter().all(|&v| v < 1e-3),
                "T={tasks} d={d}: null space leaked: {s:?}"
            );
        }
    }
}

#[test]
fn prox_shrinks_every_singular_value_by_tau() {
    for ctx in contexts() {
        for &(tasks, d) in SHAPES {
            let x = data((tasks * 31 + d) as u64, tasks * d);
            let (mut sigma, _) = reference::left_svd(&x, tasks);
            sigma.sort_by(|a, b| b.total_cmp(a));
            let rank = tasks.min(d);
            // τ between the largest and smallest live σ: some survive, some vanish.
            let tau = ((sigma[0] + sigma[rank - 1]) / 2.0) as f32;
            let (_, out) = run(ctx, &x, tasks, Some(tau));
            let (_, want) = reference::prox(&x, tasks, tau as f64, REL_TOL as f64);
            assert!(
                max_err(&out, &want) <= 1e-3 * sigma[0] as f32,
                "T={tasks} d={d}"
            );
            let (mut after, _) = reference::left_svd(&out, tasks);
            after.sort_by(|a, b| b.total_cmp(a));
            for k in 0..tasks {
                let expect = if k < rank {
                    (sigma[k] - tau as f64).max(0.0)
                } else {
                    0.0
                };
                assert!(
                    (after[k] - expect).abs() <= 1e-3 * sigma[0],
                    "T={tasks} d={d} σ_{k}: {} vs {expect}",
                    after[k]
                );
            }
        }
    }
}

#[test]
fn more_than_64_tasks_is_a_clear_error() {
    let ctx = &contexts()[0];
    let x = Tensor::zeros(ctx, "x", &[65 * 2]).unwrap();
    let norm = Tensor::zeros(ctx, "norm", &[1]).unwrap();
    let mut rec = ctx.recorder("bad");
    let e = trace_norm_gradient(&mut rec, &x, 65, 1.0, &x.clone(), &norm).unwrap_err();
    assert!(e.to_string().contains("1..=64"), "{e}");
    assert_eq!(rec.dispatch_count(), 0);
}
