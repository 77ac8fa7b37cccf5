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

mod in_a_graph {
    use manytask::gpu::{DType, GpuContext};
    use manytask::graph::{Graph, NodeId, Optimizer, Program, StepOptions, TaskBlock, TaskLoss};
    use manytask::reference::soft_sharing as reference;
    use manytask::types::Activation;
    use manytask::types::LossKind;
    use manytask::types::Regulariser;
    use manytask::types::Sgd;
    use manytask::types::TraceNormVariant;

    use crate::common::contexts;

    const TASKS: usize = 3;

    /// x copied into 3 task columns → per-task layer 4→5 (its weight is
    /// the stacked [3, 20]) → per-task 5→2 → MSE.
    fn model(ctx: &GpuContext, reg: Option<Regulariser>) -> (Program, NodeId, NodeId) {
        let mut g = Graph::new(ctx);
        let x = g.input("x", &[6, 4], DType::F32);
        let xs = g.concat("xs", &[x; TASKS]).unwrap();
        let h = g
            .task_dense(
                "columns.0",
                xs,
                &[TaskBlock {
                    inputs: 4,
                    outputs: 5,
                }; TASKS],
                Activation::Tanh,
            )
            .unwrap();
        let logits = g
            .task_dense(
                "columns.1",
                h,
                &[TaskBlock {
                    inputs: 5,
                    outputs: 2,
                }; TASKS],
                Activation::Identity,
            )
            .unwrap();
        let t = g.input("t", &[6, 2 * TASKS], DType::F32);
        let tasks = [TaskLoss {
            kind: LossKind::MeanSquaredError,
            reduction: manytask::types::Reduction::Mean,
            width: 2,
            masked: false,
        }; TASKS];
        g.losses("losses", logits, &tasks, None, Some(t), None)
            .unwrap();
        if let Some(reg) = reg {
            let w = manytask::graph::ParamId(0); // columns.0.weight, the first parameter
            assert_eq!(g.params().get(w).name, "columns.0.weight");
            g.regularise(w, TASKS, reg).unwrap();
        }
        let p = Program::build(
            ctx,
            g,
            Optimizer::Sgd(Sgd {
                lr: 0.1,
                momentum: 0.0,
                weight_decay: 0.0,
            }),
            3,
        )
        .unwrap();
        crate::common::randomize_inputs(ctx, &p, &[x, t], 4);
        (p, x, t)
    }

    fn weights(ctx: &GpuContext, p: &Program) -> (Vec<f32>, Vec<f32>) {
        let e = p.params().layout.entries()[0].clone();
        let v = p.params().values.to_f32_vec(ctx).unwrap();
        let g = p.params().read_grads(ctx).unwrap();
        (
            v[e.offset..e.offset + e.len()].to_vec(),
            g[e.offset..e.offset + e.len()].to_vec(),
        )
    }

    #[test]
    fn gradient_terms_are_added_to_the_weight_gradient() {
        for ctx in contexts() {
            for reg in [
                Regulariser::L2Distance { lambda: 0.4 },
                Regulariser::Clustering { lambda: 0.4 },
            ] {
                let no_update = StepOptions::GRADIENTS;
                let (mut plain, _, _) = model(ctx, None);
                plain.step(ctx, no_update).unwrap();
                let (mut with, _, _) = model(ctx, Some(reg));
                with.step(ctx, no_update).unwrap();
                let (w, g_plain) = weights(ctx, &plain);
                let (_, g_with) = weights(ctx, &with);
                let (value, term) = match reg {
                    Regulariser::L2Distance { lambda } => reference::l2_distance(&w, TASKS, lambda),
                    _ => reference::clustering(&w, TASKS, reg.lambda()),
                };
                for i in 0..w.len() {
                    let want = g_plain[i] + term[i];
                    assert!(
                        (g_with[i] - want).abs() <= 1e-5 * want.abs().max(1.0),
                        "{reg:?} [{i}]: {} vs {want}",
                        g_with[i]
                    );
                }
                let got = with.regulariser_values(ctx).unwrap()[0] as f64;
                assert!(
                    (got - value).abs() <= 1e-5 * value.abs().max(1.0),
                    "{got} vs {value}"
                );
            }
        }
    }

    #[test]
    fn trace_norm_adds_lambda_times_the_polar_factor_and_its_prox_shrinks() {
        use manytask::reference::trace_norm;
        for ctx in contexts() {
            let no_update = StepOptions::GRADIENTS;
            let (mut plain, _, _) = model(ctx, None);
            plain.step(ctx, no_update).unwrap();
            let (w, g_plain) = weights(ctx, &plain);
            let lambda = 0.3;
            let (mut with, _, _) = model(
                ctx,
                Some(Regulariser::TraceNorm {
                    lambda,
                    variant: TraceNormVariant::LastAxis,
                }),
            );
            with.step(ctx, no_update).unwrap();
            let (_, g_with) = weights(ctx, &with);
            let (norm, polar) = trace_norm::polar_factor(&w, TASKS, 1e-3);
            for i in 0..w.len() {
                let want = g_plain[i] + lambda * polar[i];
                assert!(
                    (g_with[i] - want).abs() <= 1e-3,
                    "[{i}] {} vs {want}",
                    g_with[i]
                );
            }
            let value = with.regulariser_values(ctx).unwrap()[0] as f64;
            assert!(
                (value - lambda as f64 * norm).abs() <= 1e-4 * value,
                "{value} vs λ·{norm}"
            );
            // The prox: W ← prox(W − lr·g, lr·λ) after the SGD step.
            let (mut prox, _, _) = model(
                ctx,
                Some(Regulariser::TraceNormProx {
                    lambda: 2.0,
                    variant: TraceNormVariant::LastAxis,
                }),
            );
            prox.step(ctx, StepOptions::default()).unwrap();
            let (after, _) = weights(ctx, &prox);
            let stepped: Vec<f32> = w.iter().zip(&g_plain).map(|(w, g)| w - 0.1 * g).collect();
            let (_, want) = trace_norm::prox(&stepped, TASKS, 0.1 * 2.0, 1e-3);
            for (a, b) in after.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-4, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn group_lasso_runs_its_proximal_step_after_the_optimiser() {
        for ctx in contexts() {
            let reg = Regulariser::GroupLasso { lambda: 8.0 };
            let (mut p, _, _) = model(ctx, Some(reg));
            p.step(ctx, StepOptions::GRADIENTS).unwrap();
            let (w, g) = weights(ctx, &p);
            p.step(ctx, StepOptions::default()).unwrap();
            let (after, _) = weights(ctx, &p);
            let stepped: Vec<f32> = w.iter().zip(&g).map(|(w, g)| w - 0.1 * g).collect();
            let (_, want) = reference::group_lasso_prox(&stepped, TASKS, 8.0, 0.1 * 8.0);
            for (a, b) in after.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
            }
            let zeros = want.iter().filter(|&&v| v == 0.0).count();
            assert!(
                zeros > 0 && zeros < want.len(),
                "the step should zero some rows, not all: {zeros} of {} zero",
                want.len()
            );
        }
    }

    #[test]
    fn every_trace_norm_variant_trains_and_reports_its_value() {
        use manytask::kernels::trace_norm::TaskStack;
        use manytask::reference::trace_norm;
        // columns.0.weight is [3, 4, 5]: Tucker and TT see all three axes.
        let stack = TaskStack {
            tasks: TASKS,
            inputs: 4,
            outputs: 5,
        };
        let lambda = 0.05;
        let mut regs: Vec<Regulariser> = TraceNormVariant::ALL
            .iter()
            .map(|&variant| Regulariser::TraceNorm { lambda, variant })
            .collect();
        regs.push(Regulariser::TraceNormProx {
            lambda,
            variant: TraceNormVariant::LastAxis,
        });
        for ctx in contexts() {
            for &reg in &regs {
                let (mut p, _, _) = model(ctx, Some(reg));
                let variant = reg.trace_norm_variant().unwrap();
                if !reg.is_proximal() {
                    p.step(ctx, StepOptions::GRADIENTS).unwrap();
                    let (w, _) = weights(ctx, &p);
                    let want = lambda as f64 * trace_norm::stack_value(&w, stack, variant);
                    let got = p.regulariser_values(ctx).unwrap()[0] as f64;
                    assert!(
                        (got - want).abs() <= 1e-4 * want,
                        "{reg:?}: value {got} vs {want}"
                    );
                }
                let before = crate::common::objective(ctx, &mut p);
                for _ in 0..8 {
                    p.step(ctx, StepOptions::TRAIN).unwrap();
                }
                let after = crate::common::objective(ctx, &mut p);
                assert!(after < 0.9 * before, "{reg:?}: loss {before} → {after}");
                if reg.is_proximal() {
                    // The value is λ‖Y‖_* before the last prox; the prox
                    // takes Σ min(σ, τ) ≤ 3·τ (rank ≤ T) off ‖Y‖_*.
                    let (w, _) = weights(ctx, &p);
                    let now = lambda as f64 * trace_norm::stack_value(&w, stack, variant);
                    let got = p.regulariser_values(ctx).unwrap()[0] as f64;
                    let tau = 0.1 * lambda as f64;
                    assert!(
                        got >= now * (1.0 - 1e-4) && got <= now + lambda as f64 * 3.0 * tau * 1.001,
                        "{reg:?}: value {got}, λ‖W‖_* after the prox {now}"
                    );
                }
            }
        }
    }

    #[test]
    fn tucker_and_tt_prox_are_refused_when_the_graph_is_built() {
        let ctx = &contexts()[0];
        for variant in [TraceNormVariant::Tucker, TraceNormVariant::TensorTrain] {
            let mut g = Graph::new(ctx);
            let x = g.input("x", &[2, 3 * TASKS], DType::F32);
            let block = TaskBlock {
                inputs: 3,
                outputs: 2,
            };
            g.task_dense("l", x, &[block; TASKS], Activation::Identity)
                .unwrap();
            let w = manytask::graph::ParamId(0);
            let reg = Regulariser::TraceNormProx {
                lambda: 0.1,
                variant,
            };
            let e = g.regularise(w, TASKS, reg).unwrap_err();
            assert!(e.to_string().contains("no proximal step"), "{e}");
            // The gradient form is fine; a flat parameter has no [in, out].
            let reg = Regulariser::TraceNorm {
                lambda: 0.1,
                variant,
            };
            g.regularise(w, TASKS, reg).unwrap();
            let flat = g
                .param("flat", &[12], manytask::graph::Init::Zeros)
                .unwrap();
            let e = g.regularise(flat, TASKS, reg).unwrap_err();
            assert!(e.to_string().contains("regularise_stack"), "{e}");
        }
    }
}
