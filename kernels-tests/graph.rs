//! The autograd graph: gradients of composite graphs by finite
//! differences, one submit per step, dispatch counts independent of the
//! task count, bit-identical reruns, memory planning, training progress.

use manytask::gpu::{DType, GpuContext};
use manytask::graph::{Graph, NodeId, Program, StepOptions, TaskBlock, TaskLoss};
use manytask::kernels::dense::BackwardPlan;
use manytask::kernels::gemm::Variant;
use manytask::types::Activation;
use manytask::types::{LossKind, Reduction};
use manytask::util::rng::Rng;

use crate::common::{assert_gradients_match, contexts, private_contexts, sample_indices, sgd};

/// A hard-sharing MTL model and its input nodes.
struct Mtl {
    x: NodeId,
    /// The trunk's output H and the first head layer (all heads, one GEMM).
    trunk_out: NodeId,
    heads0: NodeId,
    labels: NodeId,
    targets: Option<NodeId>,
    masks: NodeId,
    rows: usize,
    features: usize,
    tasks: Vec<TaskLoss>,
}

/// x [rows, features] → trunk (dense layers) → head layer 1 of every task
/// as ONE dense layer against the concatenated weights → per-task second
/// layers as one block-diagonal task layer → masked losses. Tasks
/// alternate softmax CE (3 classes) and MSE (2 outputs); every task is
/// masked.
fn mtl(
    ctx: &GpuContext,
    rows: usize,
    features: usize,
    trunk: &[usize],
    hidden: &[usize],
    act: Activation,
) -> (Graph, Mtl) {
    let mut g = Graph::new(ctx);
    let x = g.input("x", &[rows, features], DType::F32);
    let mut h = x;
    for (i, &w) in trunk.iter().enumerate() {
        h = g.dense(&format!("trunk.{i}"), h, w, act).unwrap();
    }
    let total_hidden: usize = hidden.iter().sum();
    let h1 = g.dense("heads.0", h, total_hidden, act).unwrap();
    let tasks: Vec<TaskLoss> = (0..hidden.len())
        .map(|t| {
            if t % 2 == 0 {
                TaskLoss {
                    kind: LossKind::SoftmaxCrossEntropy,
                    reduction: Reduction::Mean,
                    width: 3,
                    masked: true,
                }
            } else {
                TaskLoss {
                    kind: LossKind::MeanSquaredError,
                    // Over 2 outputs, the same as the half sum.
                    reduction: Reduction::Mean,
                    width: 2,
                    masked: true,
                }
            }
        })
        .collect();
    let blocks: Vec<TaskBlock> = hidden
        .iter()
        .zip(&tasks)
        .map(|(&h, t)| TaskBlock {
            inputs: h,
            outputs: t.width,
        })
        .collect();
    let logits = g
        .task_dense("heads.1", h1, &blocks, Activation::Identity)
        .unwrap();
    let width: usize = tasks.iter().map(|t| t.width).sum();
    let n_ce = tasks
        .iter()
        .filter(|t| t.kind == LossKind::SoftmaxCrossEntropy)
        .count();
    let labels = g.input("labels", &[n_ce, rows], DType::U32);
    let has_mse = n_ce < tasks.len();
    let targets = has_mse.then(|| g.input("targets", &[rows, width], DType::F32));
    let masks = g.input("masks", &[tasks.len(), rows], DType::F32);
    g.losses("losses", logits, &tasks, Some(labels), targets, Some(masks))
        .unwrap();
    (
        g,
        Mtl {
            trunk_out: h,
            heads0: h1,
            x,
            labels,
            targets,
            masks,
            rows,
            features,
            tasks,
        },
    )
}

/// Fills the inputs deterministically from `seed`; a few labels missing.
fn feed(ctx: &GpuContext, p: &Program, m: &Mtl, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rng.uniform_vec(m.rows * m.features, -1.0, 1.0);
    p.input(m.x).unwrap().write_f32(ctx, &x).unwrap();
    let n_ce = m
        .tasks
        .iter()
        .filter(|t| t.kind == LossKind::SoftmaxCrossEntropy)
        .count();
    let labels: Vec<u32> = (0..n_ce * m.rows)
        .map(|_| (rng.next_u64() % 3) as u32)
        .collect();
    p.input(m.labels).unwrap().write_u32(ctx, &labels).unwrap();
    if let Some(t) = m.targets {
        let width: usize = m.tasks.iter().map(|t| t.width).sum();
        p.input(t)
            .unwrap()
            .write_f32(ctx, &rng.uniform_vec(m.rows * width, -1.0, 1.0))
            .unwrap();
    }
    let masks: Vec<f32> = (0..m.tasks.len() * m.rows)
        .map(|i| if i % 7 == 3 { 0.0 } else { 1.0 })
        .collect();
    p.input(m.masks).unwrap().write_f32(ctx, &masks).unwrap();
}

#[test]
fn mtl_graph_gradients_match_finite_differences() {
    for ctx in contexts() {
        for (act, plan) in [
            (Activation::Tanh, BackwardPlan::StoreDelta),
            (Activation::Gelu, BackwardPlan::Prologue),
        ] {
            let (g, m) = mtl(ctx, 6, 5, &[7, 8, 9], &[4, 3], act);
            let mut p = Program::build(ctx, g, sgd(0.1), 7).unwrap();
            p.set_dense_plan(plan);
            feed(ctx, &p, &m, 1);
            let picks = sample_indices(&p, 48);
            assert_gradients_match(ctx, &mut p, &picks, &format!("{act} {plan:?}"));
        }
    }
}

#[test]
fn a_tensor_used_twice_accumulates_its_gradient() {
    for ctx in contexts() {
        // h feeds two layers whose outputs are summed, and two residual
        // adds: dh gets four contributions, written by the last add and
        // accumulated by the other add (axpy) and both layers (beta = 1).
        let mut g = Graph::new(ctx);
        let (rows, features) = (5, 4);
        let x = g.input("x", &[rows, features], DType::F32);
        let h = g.dense("h", x, 6, Activation::Tanh).unwrap();
        let a = g.dense("a", h, 6, Activation::Sigmoid).unwrap();
        let b = g.dense("b", h, 6, Activation::Gelu).unwrap();
        let s = g.add("a+b", a, b).unwrap();
        let r1 = g.add("residual 1", s, h).unwrap();
        let r = g.add("residual 2", r1, h).unwrap();
        let tasks = [TaskLoss {
            kind: LossKind::MeanSquaredError,
            reduction: Reduction::Sum,
            width: 6,
            masked: false,
        }];
        let logits = g.dense("out", r, 6, Activation::Identity).unwrap();
        let targets = g.input("targets", &[rows, 6], DType::F32);
        g.losses("loss", logits, &tasks, None, Some(targets), None)
            .unwrap();
        let mut p = Program::build(ctx, g, sgd(0.1), 3).unwrap();
        let mut rng = Rng::new(5);
        p.input(x)
            .unwrap()
            .write_f32(ctx, &rng.uniform_vec(rows * features, -1.0, 1.0))
            .unwrap();
        p.input(targets)
            .unwrap()
            .write_f32(ctx, &rng.uniform_vec(rows * 6, -1.0, 1.0))
            .unwrap();
        let picks = sample_indices(&p, 40);
        assert_gradients_match(ctx, &mut p, &picks, "shared tensor");
    }
}

#[test]
fn a_step_is_one_submit_and_its_dispatches_do_not_grow_with_tasks() {
    for ctx in private_contexts() {
        let mut counts = Vec::new();
        for t in [2, 8, 32] {
            let hidden = vec![8; t];
            let (g, m) = mtl(&ctx, 16, 12, &[32, 32], &hidden, Activation::Relu);
            let mut p = Program::build(&ctx, g, sgd(0.01), 1).unwrap();
            // A named variant: the autotuner would submit its timing runs.
            p.set_variant(Some(Variant::RegisterBlocked));
            feed(&ctx, &p, &m, 2);
            p.step(&ctx, StepOptions::default()).unwrap();
            let r = p.step(&ctx, StepOptions::TRAIN_AND_READ).unwrap();
            assert_eq!(r.submits, 1, "T = {t}");
            assert_eq!(
                r.bytes_uploaded, 0,
                "a step uploads nothing once inputs are written"
            );
            let report = r.losses.unwrap().wait(&ctx).unwrap();
            assert_eq!(report.losses.len(), t);
            assert!(report.losses.iter().all(|l| l.is_finite()));
            counts.push(r.dispatches);
        }
        assert!(
            counts.iter().all(|&c| c == counts[0]),
            "dispatches per step for T = 2, 8, 32: {counts:?}"
        );
    }
}

#[test]
fn same_seed_same_adapter_gives_bit_identical_parameters() {
    for ctx in contexts() {
        let run = || {
            let (g, m) = mtl(ctx, 12, 10, &[16, 16], &[8, 5, 6], Activation::Relu);
            let mut p = Program::build(ctx, g, sgd(0.05), 42).unwrap();
            p.set_variant(Some(Variant::RegisterBlocked));
            for step in 0..20 {
                feed(ctx, &p, &m, step);
                p.step(ctx, StepOptions::default()).unwrap();
            }
            p.params().values.to_f32_vec(ctx).unwrap()
        };
        let (a, b) = (run(), run());
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "reruns differ on {}",
            ctx.describe()
        );
        // A different seed gives different parameters (the check can fail).
        let (g, _) = mtl(ctx, 12, 10, &[16, 16], &[8, 5, 6], Activation::Relu);
        let other = Program::build(ctx, g, sgd(0.05), 43).unwrap();
        assert_ne!(other.params().values.to_f32_vec(ctx).unwrap(), a);
    }
}

#[test]
fn planned_memory_is_below_the_no_reuse_sum() {
    let ctx = &contexts()[0];
    let (g, _) = mtl(ctx, 64, 32, &[128, 128, 128], &[32, 32], Activation::Gelu);
    let p = Program::build(ctx, g, sgd(0.01), 1).unwrap();
    let m = p.memory();
    assert!(m.planned_bytes < m.no_reuse_bytes, "{m:?}");
    assert!(m.buffers < m.intermediates, "{m:?}");
}

#[test]
fn training_lowers_every_task_loss() {
    for ctx in contexts() {
        let (g, m) = mtl(ctx, 32, 8, &[32, 32], &[16, 16], Activation::Relu);
        let mut p = Program::build(ctx, g, sgd(0.2), 11).unwrap();
        feed(ctx, &p, &m, 3);
        let first = p.step(ctx, StepOptions::TRAIN_AND_READ).unwrap();
        let first = first.losses.unwrap().wait(ctx).unwrap().losses;
        let mut last = first.clone();
        for step in 0..150 {
            let r = p
                .step(
                    ctx,
                    StepOptions {
                        update: true,
                        read_losses: step == 149,
                    },
                )
                .unwrap();
            if let Some(l) = r.losses {
                last = l.wait(ctx).unwrap().losses;
            }
        }
        for (t, (a, b)) in first.iter().zip(&last).enumerate() {
            assert!(b < &(0.7 * a), "task {t}: {a} -> {b} on {}", ctx.describe());
        }
    }
}

#[test]
fn graph_rejects_bad_models() {
    let ctx = &contexts()[0];
    let mut g = Graph::new(ctx);
    let x = g.input("x", &[4, 3], DType::F32);
    let e = g
        .task_dense(
            "t",
            x,
            &[TaskBlock {
                inputs: 2,
                outputs: 1,
            }],
            Activation::Relu,
        )
        .unwrap_err();
    assert!(e.to_string().contains("3 features"), "{e}");
    let h = g.dense("h", x, 5, Activation::Relu).unwrap();
    let tasks = [TaskLoss {
        kind: LossKind::SoftmaxCrossEntropy,
        reduction: Reduction::Mean,
        width: 4,
        masked: false,
    }];
    let e = g.losses("l", h, &tasks, None, None, None).unwrap_err();
    assert!(e.to_string().contains("cover 4 logit columns"), "{e}");
    let tasks = [TaskLoss {
        kind: LossKind::SoftmaxCrossEntropy,
        reduction: Reduction::Mean,
        width: 5,
        masked: false,
    }];
    let e = g.losses("l", h, &tasks, None, None, None).unwrap_err();
    assert!(e.to_string().contains("labels are needed"), "{e}");
    // No losses node.
    let e = Program::build(ctx, g, sgd(0.1), 1).err().unwrap();
    assert!(e.to_string().contains("losses"), "{e}");
}

/// x → h (tanh) → [slice(h, 1..4), 0.5·slice(h, 3..6), h] concatenated
/// → dense → MSE; `reverse` inserts a gradient reversal before `out`.
fn views_graph(ctx: &GpuContext, reverse: bool) -> (Graph, NodeId, NodeId) {
    let mut g = Graph::new(ctx);
    let (rows, features) = (5, 4);
    let x = g.input("x", &[rows, features], DType::F32);
    let h = g.dense("h", x, 6, Activation::Tanh).unwrap();
    let s1 = g.slice("s1", h, 1, 3).unwrap();
    let s2 = g.slice("s2", h, 3, 3).unwrap();
    let s2 = g.scale("half", s2, 0.5);
    let c = g.concat("cat", &[s1, s2, h]).unwrap();
    let c = if reverse {
        g.grad_reverse("reverse", c)
    } else {
        c
    };
    let logits = g.dense("out", c, 2, Activation::Identity).unwrap();
    let targets = g.input("targets", &[rows, 2], DType::F32);
    let tasks = [TaskLoss {
        kind: LossKind::MeanSquaredError,
        reduction: Reduction::HalfSum,
        width: 2,
        masked: false,
    }];
    g.losses("loss", logits, &tasks, None, Some(targets), None)
        .unwrap();
    (g, x, targets)
}

fn feed_views(ctx: &GpuContext, p: &Program, x: NodeId, targets: NodeId) {
    crate::common::randomize_inputs(ctx, p, &[x, targets], 8);
}

#[test]
fn slice_concat_and_scale_gradients_match_finite_differences() {
    for ctx in contexts() {
        let (g, x, targets) = views_graph(ctx, false);
        let mut p = Program::build(ctx, g, sgd(0.1), 4).unwrap();
        feed_views(ctx, &p, x, targets);
        let picks = sample_indices(&p, 40);
        assert_gradients_match(ctx, &mut p, &picks, "slice, concat, scale");
    }
}

#[test]
fn gradient_reversal_flips_and_scales_the_gradient_upstream_only() {
    let ctx = &contexts()[0];
    let grads = |reverse: bool, lambda: f32| {
        let (g, x, targets) = views_graph(ctx, reverse);
        let mut p = Program::build(ctx, g, sgd(0.1), 4).unwrap();
        p.set_reversal_lambda(lambda);
        feed_views(ctx, &p, x, targets);
        p.step(ctx, StepOptions::GRADIENTS).unwrap();
        let all = p.params().read_grads(ctx).unwrap();
        let e = p.params().layout.entries().to_vec();
        let part = |name: &str| {
            let e = e.iter().find(|e| e.name == name).unwrap();
            all[e.offset..e.offset + e.len()].to_vec()
        };
        (part("h.weight"), part("out.weight"))
    };
    let (h_plain, out_plain) = grads(false, 0.0);
    let lambda = manytask::graph::reversal_lambda(0.3);
    assert!((lambda - 0.9051).abs() < 1e-3, "{lambda}");
    let (h_rev, out_rev) = grads(true, lambda);
    assert_eq!(
        out_plain, out_rev,
        "downstream of the reversal nothing changes"
    );
    for (a, b) in h_plain.iter().zip(&h_rev) {
        assert!(
            (b + lambda * a).abs() <= 1e-6 * a.abs().max(1.0),
            "{a} vs {b}"
        );
    }
    assert!(h_plain.iter().any(|v| v.abs() > 1e-3));
}

#[test]
fn per_task_input_gradients_sum_to_the_shared_gradient() {
    for ctx in contexts() {
        for (act, plan) in [
            (Activation::Relu, BackwardPlan::StoreDelta),
            (Activation::Gelu, BackwardPlan::StoreDelta),
            (Activation::Relu, BackwardPlan::Prologue),
            (Activation::Gelu, BackwardPlan::Prologue),
        ] {
            let hidden = [4, 3, 5];
            let (mut g, m) = mtl(ctx, 9, 5, &[7, 6], &hidden, act);
            g.split_task_grads(m.heads0, &hidden).unwrap();
            g.retain_grad(m.trunk_out);
            let mut p = Program::build(ctx, g, sgd(0.1), 5).unwrap();
            p.set_dense_plan(plan);
            feed(ctx, &p, &m, 6);
            p.step(ctx, StepOptions::GRADIENTS).unwrap();
            let per_task = p.task_input_grads().unwrap().to_f32_vec(ctx).unwrap();
            let total = p.grad_of(m.trunk_out).unwrap().to_f32_vec(ctx).unwrap();
            let n = total.len();
            assert_eq!(per_task.len(), hidden.len() * n);
            let top = total.iter().fold(0f32, |a, v| a.max(v.abs()));
            assert!(top > 1e-4, "degenerate gradient");
            for i in 0..n {
                let sum: f32 = (0..hidden.len()).map(|t| per_task[t * n + i]).sum();
                assert!(
                    (sum - total[i]).abs() <= 1e-5 * top + 1e-7,
                    "{act} element {i}: Σ_t {sum} vs {}",
                    total[i]
                );
            }
            // Weight only task 1: the other tasks' blocks are zero.
            p.set_task_weights(ctx, &[0.0, 1.0, 0.0]).unwrap();
            p.step(ctx, StepOptions::GRADIENTS).unwrap();
            let per_task = p.task_input_grads().unwrap().to_f32_vec(ctx).unwrap();
            let total = p.grad_of(m.trunk_out).unwrap().to_f32_vec(ctx).unwrap();
            assert!(per_task[..n]
                .iter()
                .chain(&per_task[2 * n..])
                .all(|&v| v == 0.0));
            assert_eq!(&per_task[n..2 * n], &total[..]);
        }
    }
}

#[test]
fn a_loss_readback_is_a_snapshot_that_does_not_stall_the_next_step() {
    let ctx = &contexts()[0];
    let run = |wait_between: bool| {
        let (g, m) = mtl(ctx, 16, 6, &[12], &[8, 8], Activation::Relu);
        let mut p = Program::build(ctx, g, sgd(0.3), 9).unwrap();
        feed(ctx, &p, &m, 4);
        let first = p.step(ctx, StepOptions::TRAIN_AND_READ).unwrap();
        let first = if wait_between {
            let report = first.losses.unwrap().wait(ctx).unwrap();
            p.step(ctx, StepOptions::default()).unwrap();
            report
        } else {
            // The next step is recorded and submitted before the first
            // step's losses are waited on.
            p.step(ctx, StepOptions::default()).unwrap();
            first.losses.unwrap().wait(ctx).unwrap()
        };
        let second = p.step(ctx, StepOptions::EVALUATE).unwrap();
        (first, second.losses.unwrap().wait(ctx).unwrap())
    };
    let (late_first, late_third) = run(false);
    let (early_first, early_third) = run(true);
    assert_eq!(late_first, early_first, "the readback saw a later step");
    assert_eq!(late_third, early_third);
    assert_ne!(
        late_first.losses, late_third.losses,
        "training did not move the losses"
    );
    assert!(late_first.labelled.iter().all(|&n| n > 0));
}

#[test]
fn a_model_too_large_for_its_arena_is_a_clear_error_before_any_allocation() {
    let ctx = &contexts()[0];
    // 10¹⁰ weights: 40 GB of initial values on the host had they been
    // allocated (the test binary would abort).
    let mut g = Graph::new(ctx);
    let x = g.input("x", &[2, 100_000], DType::F32);
    let h = g.dense("wide", x, 100_000, Activation::Relu).unwrap();
    let t = g.input("targets", &[2, 100_000], DType::F32);
    let tasks = [TaskLoss {
        kind: LossKind::MeanSquaredError,
        reduction: Reduction::Mean,
        width: 100_000,
        masked: false,
    }];
    g.losses("l", h, &tasks, None, Some(t), None).unwrap();
    let e = Program::build(ctx, g, sgd(0.1), 1)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("10000100000 parameters") && e.contains("40000400000 bytes"),
        "{e}"
    );
    assert!(e.contains("max_storage_buffer_binding_size"), "{e}");
    // Shapes whose size overflows are refused when added.
    let mut g = Graph::new(ctx);
    let e = g
        .param("huge", &[usize::MAX, 2], manytask::graph::Init::Zeros)
        .unwrap_err();
    assert!(e.to_string().contains("huge"), "{e}");
}

/// Gradient balancing on a model whose per-task blocks start where no
/// view may (7 rows × 6 features, 102 shared parameters: not multiples of
/// the storage offset alignment): the Gram matrix is still that of the
/// per-task gradients.
#[test]
fn gram_phase_takes_per_task_blocks_of_any_size() {
    use manytask::arch::{ModelSpec, Sharing, TaskKind, TaskSpec};
    use manytask::graph::{Balancing, GramSpace};
    let ctx = &contexts()[0];
    let spaces = [
        (GramSpace::LastSharedLayer, vec!["trunk.1.weight"]),
        (
            GramSpace::SharedParameters,
            vec![
                "trunk.0.weight",
                "trunk.0.bias",
                "trunk.1.weight",
                "trunk.1.bias",
            ],
        ),
    ];
    for (space, names) in spaces {
        let spec = ModelSpec {
            init: manytask::types::WeightInit::Glorot,
            rows: 7,
            inputs: 5,
            activation: Activation::Tanh,
            sharing: Sharing::Hard { trunk: vec![8, 6] },
            tasks: vec![
                TaskSpec::new("class", TaskKind::Classification { classes: 4 }, &[5]),
                TaskSpec::new("reg", TaskKind::Regression { outputs: 2 }, &[5]),
                TaskSpec::new("bin", TaskKind::Binary { labels: 3 }, &[5]),
            ],
        };
        let mut m = spec.build(ctx).unwrap();
        m.set_balancing(Balancing::Gram(space)).unwrap();
        let mut p = Program::build(ctx, m.graph, sgd(0.1), 2).unwrap();
        crate::arch::feed(ctx, &p, &m.nodes, 4);
        let gram = p.gram_phase(ctx).unwrap().gram;
        // Each task's gradient of the compared parameters by a plain
        // backward with one-hot task weights.
        let e = p.params().layout.entries().to_vec();
        let grads: Vec<Vec<f64>> = (0..3)
            .map(|t| {
                let mut w = vec![0.0; 3];
                w[t] = 1.0;
                p.set_task_weights(ctx, &w).unwrap();
                p.step(ctx, StepOptions::GRADIENTS).unwrap();
                let all = p.params().read_grads(ctx).unwrap();
                names
                    .iter()
                    .flat_map(|n| {
                        let e = e.iter().find(|e| e.name == *n).unwrap();
                        all[e.offset..e.offset + e.len()].to_vec()
                    })
                    .map(f64::from)
                    .collect()
            })
            .collect();
        for i in 0..3 {
            for j in 0..3 {
                let want: f64 = grads[i].iter().zip(&grads[j]).map(|(a, b)| a * b).sum();
                let norm = |g: &[f64]| g.iter().map(|v| v * v).sum::<f64>().sqrt();
                let scale = norm(&grads[i]) * norm(&grads[j]);
                let got = gram[i * 3 + j] as f64;
                assert!(
                    (got - want).abs() <= 1e-4 * scale.max(1e-6),
                    "{space:?}: G[{i}][{j}] = {got}, want {want}"
                );
            }
        }
    }
}
