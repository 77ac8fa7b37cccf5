//! MTL architectures: the layer-stitch and subspace-orthogonality ops of
//! sluice networks against their references and finite differences, the
//! shared-input column layer, the `ModelSpec` builders (hard sharing,
//! cross-stitch, sluice, soft) and training each on the synthetic
//! benchmark of docs/math.md §7.

use manytask::arch::{ModelNodes, ModelSpec, Sharing, StitchOptions, TaskKind, TaskSpec};
use manytask::data::synthetic::{Synthetic, SyntheticSpec};
use manytask::gpu::{DType, GpuContext, Tensor};
use manytask::graph::{Graph, Optimizer, Program, StepOptions};
use manytask::kernels::layer_stitch::{layer_stitch_mix, LayerStitch};
use manytask::kernels::subspace::{Orthogonality, Subspaces};
use manytask::reference::subspace as reference;
use manytask::types::Activation;
use manytask::types::AdamW;
use manytask::types::Regulariser;
use manytask::util::rng::Rng;

use crate::common::{
    assert_gradients_match, check_cases, contexts, data, max_err, private_contexts,
    randomize_inputs, sample_indices, sgd,
};

#[test]
fn layer_stitch_matches_reference() {
    check_cases("layer_stitch", |c| c.kernel.starts_with("layer_stitch::"));
}

#[test]
fn layer_stitch_rejects_bad_shapes() {
    let ctx = &contexts()[0];
    let unit = LayerStitch {
        tasks: 2,
        layers: 3,
    };
    let h = Tensor::zeros(ctx, "h", &[4, 3 * 2 * 5]).unwrap();
    let beta = Tensor::zeros(ctx, "beta", &[2, 3]).unwrap();
    let bad_z = Tensor::zeros(ctx, "z", &[4, 2 * 4]).unwrap();
    let bad_beta = Tensor::zeros(ctx, "beta", &[3, 2]).unwrap();
    let z = Tensor::zeros(ctx, "z", &[4, 2 * 5]).unwrap();
    let mut rec = ctx.recorder("bad");
    let e = layer_stitch_mix(&mut rec, &unit, &h, &beta, &bad_z, false).unwrap_err();
    assert!(e.to_string().contains("layers"), "{e}");
    let e = layer_stitch_mix(&mut rec, &unit, &h, &bad_beta, &z, false).unwrap_err();
    assert!(e.to_string().contains("β"), "{e}");
}

/// (tasks, inputs, outputs, subspaces).
const ORTHO_SHAPES: &[(usize, usize, usize, usize)] =
    &[(1, 1, 2, 2), (3, 7, 10, 2), (2, 33, 15, 3), (4, 65, 64, 4)];

#[test]
fn subspace_orthogonality_matches_reference() {
    for ctx in contexts() {
        for &(tasks, inputs, outputs, subspaces) in ORTHO_SHAPES {
            let shape = Subspaces {
                tasks,
                inputs,
                outputs,
                subspaces,
            };
            let n = tasks * inputs * outputs;
            let w = data(n as u64 + 3, n);
            let g0 = data(n as u64 + 4, n);
            let lambda = 0.3;
            let orth = Orthogonality::new(ctx, shape).unwrap();
            let wt = Tensor::from_f32(ctx, "w", &[n], &w).unwrap();
            let gt = Tensor::from_f32(ctx, "g", &[n], &g0).unwrap();
            let value = Tensor::zeros(ctx, "value", &[1]).unwrap();
            let mut rec = ctx.recorder("orthogonality");
            orth.record(&mut rec, &wt, &gt, lambda, &value).unwrap();
            rec.submit().unwrap();
            let (want_v, want_g) =
                reference::orthogonality(&w, tasks, inputs, outputs, subspaces, lambda as f64);
            let got_g: Vec<f32> = gt
                .to_f32_vec(ctx)
                .unwrap()
                .iter()
                .zip(&g0)
                .map(|(a, b)| a - b)
                .collect();
            let top = want_g.iter().fold(1f32, |m, v| m.max(v.abs()));
            let err = max_err(&got_g, &want_g) / top;
            assert!(
                err < 1e-4,
                "{shape:?}: gradient off by {err} (relative to max)"
            );
            let got_v = value.to_f32_vec(ctx).unwrap()[0] as f64;
            assert!(
                (got_v - want_v).abs() <= 1e-4 * want_v.abs().max(1.0),
                "{shape:?}: value {got_v} vs {want_v}"
            );
        }
    }
}

#[test]
fn subspace_orthogonality_reference_is_the_value_gradient() {
    // Central differences of the f64 value against the reference gradient.
    let (tasks, inputs, outputs, subspaces) = (2, 5, 6, 3);
    let n = tasks * inputs * outputs;
    let w = data(17, n);
    let (_, grad) = reference::orthogonality(&w, tasks, inputs, outputs, subspaces, 0.7);
    for i in (0..n).step_by(7) {
        let h = 1e-3f32;
        let mut wp = w.clone();
        wp[i] += h;
        let mut wm = w.clone();
        wm[i] -= h;
        let vp = reference::orthogonality(&wp, tasks, inputs, outputs, subspaces, 0.7).0;
        let vm = reference::orthogonality(&wm, tasks, inputs, outputs, subspaces, 0.7).0;
        let fd = (vp - vm) / (2.0 * h as f64);
        assert!(
            (fd - grad[i] as f64).abs() < 1e-3 * fd.abs().max(1.0),
            "{i}: finite difference {fd} vs gradient {}",
            grad[i]
        );
    }
}

#[test]
fn subspace_orthogonality_rejects_bad_shapes() {
    let ctx = &contexts()[0];
    let bad = Subspaces {
        tasks: 2,
        inputs: 3,
        outputs: 5,
        subspaces: 2,
    };
    let e = Orthogonality::new(ctx, bad)
        .err()
        .expect("5 outputs in 2 subspaces");
    assert!(e.to_string().contains("subspaces"), "{e}");
    let ok = Orthogonality::new(ctx, Subspaces { outputs: 4, ..bad }).unwrap();
    let w = Tensor::zeros(ctx, "w", &[23]).unwrap();
    let v = Tensor::zeros(ctx, "v", &[1]).unwrap();
    let mut rec = ctx.recorder("bad");
    let e = ok.record(&mut rec, &w, &w, 1.0, &v).unwrap_err();
    assert!(e.to_string().contains("24 weights"), "{e}");
}

/// A small model of each kind: 3 tasks (classification, regression,
/// binary; one masked), heads of depths 1..3.
pub fn small_spec(sharing: Sharing) -> ModelSpec {
    let mut tasks = vec![
        TaskSpec::new("class", TaskKind::Classification { classes: 4 }, &[6]),
        TaskSpec::new("reg", TaskKind::Regression { outputs: 2 }, &[]),
        TaskSpec::new("bin", TaskKind::Binary { labels: 3 }, &[5, 4]),
    ];
    tasks[1].masked = true;
    ModelSpec {
        init: manytask::types::WeightInit::Glorot,
        rows: 7,
        inputs: 5,
        activation: Activation::Tanh,
        sharing,
        tasks,
    }
}

fn stitch(lr_scale: f32) -> StitchOptions {
    StitchOptions {
        per_channel: false,
        diagonal: Some(0.8),
        lr_scale,
    }
}

pub fn feed(ctx: &GpuContext, p: &Program, m: &ModelNodes, seed: u64) {
    let mut rng = Rng::new(seed);
    let rows = p.graph().shape(m.x)[0];
    p.input(m.x)
        .unwrap()
        .write_f32(
            ctx,
            &rng.uniform_vec(p.graph().shape(m.x).iter().product(), -1.0, 1.0),
        )
        .unwrap();
    if let Some(l) = m.labels {
        let n: usize = p.graph().shape(l).iter().product();
        let labels: Vec<u32> = (0..n).map(|_| (rng.next_u64() % 4) as u32).collect();
        p.input(l).unwrap().write_u32(ctx, &labels).unwrap();
    }
    if let Some(t) = m.targets {
        let n: usize = p.graph().shape(t).iter().product();
        // 0/1 values serve the binary task; the regression takes them too.
        let y: Vec<f32> = (0..n).map(|_| (rng.next_u64() % 2) as f32).collect();
        p.input(t).unwrap().write_f32(ctx, &y).unwrap();
    }
    if let Some(k) = m.masks {
        let n: usize = p.graph().shape(k).iter().product();
        let mask: Vec<f32> = (0..n)
            .map(|i| (!(i % rows).is_multiple_of(3)) as u8 as f32)
            .collect();
        p.input(k).unwrap().write_f32(ctx, &mask).unwrap();
    }
}

fn small_models() -> Vec<(&'static str, Sharing)> {
    vec![
        ("hard", Sharing::Hard { trunk: vec![8, 6] }),
        ("hard_fused", Sharing::HardFused { trunk: vec![8, 6] }),
        (
            "cross_stitch",
            Sharing::CrossStitch {
                columns: vec![6, 5],
                stitch_after: vec![0, 1],
                stitch: stitch(2.0),
            },
        ),
        (
            "sluice",
            Sharing::Sluice {
                columns: vec![6, 6],
                subspaces: 2,
                orthogonality: 0.0,
                stitch: stitch(2.0),
            },
        ),
        (
            "soft",
            Sharing::Soft {
                columns: vec![6, 5],
                regularisers: vec![],
            },
        ),
    ]
}

/// Finite differences through each of `models` (small_spec shapes) on
/// every adapter: every `stride`-th entry of the parameters whose name
/// `focus` picks, and a sample of the rest.
pub fn check_model_gradients(
    models: Vec<(&'static str, Sharing)>,
    focus: impl Fn(&str) -> bool,
    stride: usize,
) {
    for ctx in contexts() {
        for (name, sharing) in models.clone() {
            let m = small_spec(sharing).build(ctx).unwrap();
            let mut p = Program::build(ctx, m.graph, sgd(0.1), 3).unwrap();
            feed(ctx, &p, &m.nodes, 5);
            let mut indices: Vec<usize> = p
                .params()
                .layout
                .entries()
                .iter()
                .filter(|e| focus(&e.name))
                .flat_map(|e| (e.offset..e.offset + e.len()).step_by(stride))
                .collect();
            indices.extend(sample_indices(&p, 24));
            assert_gradients_match(ctx, &mut p, &indices, name);
        }
    }
}

#[test]
fn every_architecture_has_finite_difference_gradients() {
    // Every α and β entry, and a sample of the rest.
    check_model_gradients(
        small_models(),
        |name| name.ends_with("alpha") || name.ends_with("beta"),
        1,
    );
}

#[test]
fn every_dense_layer_of_every_architecture_starts_by_the_spec_s_init() {
    use manytask::types::WeightInit;
    let ctx = &contexts()[0];
    // The bounds by the schemes' formulas, with each task's own fans.
    let bound = |init: WeightInit, fan_in: usize| match init {
        WeightInit::PyTorch => 1.0 / (fan_in as f32).sqrt(),
        WeightInit::Kaiming => (6.0 / fan_in as f32).sqrt(),
        WeightInit::Glorot => unreachable!("Glorot: see graph::init's unit tests"),
    };
    for (name, sharing) in small_models() {
        let mut fixed: Vec<Vec<(String, Vec<f32>)>> = Vec::new();
        for init in [WeightInit::PyTorch, WeightInit::Kaiming] {
            let mut spec = small_spec(sharing.clone());
            spec.init = init;
            let m = spec.build(ctx).unwrap();
            let layout = m.graph.params();
            let all = layout.initial_values(3);
            let param = |n: &str| {
                let e = layout.entries().iter().find(|e| e.name == n).unwrap();
                &all[e.offset..e.offset + e.len()]
            };
            // Every dense, trunk, column and head layer's pieces (one per
            // layer and task, PyTorch's [out, in]).
            let mut fan_in = 0;
            for p in &m.nodes.pieces {
                let v = p.cut(param(&p.param));
                let top = v.iter().fold(0f32, |a, x| a.max(x.abs()));
                let what = format!("{name} {init} {}", p.name);
                if p.transpose {
                    fan_in = p.rows;
                } else if init != WeightInit::PyTorch {
                    assert!(v.iter().all(|&x| x == 0.0), "{what}: {v:?}");
                    continue;
                }
                // A bias follows its weight: the same fan_in.
                let b = bound(init, fan_in);
                assert!(top <= b && top > 0.3 * b, "{what}: max {top}, bound {b}");
            }
            // α, β and the like keep their own init whatever the scheme.
            fixed.push(
                layout
                    .entries()
                    .iter()
                    .filter(|e| !e.name.ends_with(".weight") && !e.name.ends_with(".bias"))
                    .map(|e| (e.name.clone(), param(&e.name).to_vec()))
                    .collect(),
            );
        }
        assert_eq!(fixed[0], fixed[1], "{name}");
    }
}

#[test]
fn shared_input_columns_pass_gradients_to_their_input() {
    // x → dense → (task_dense_shared, and the same dense output again via
    // add): the shared-input layer's dX is summed over tasks and
    // accumulated with the other use.
    for ctx in contexts() {
        let (rows, features, tasks) = (7, 5, 3);
        let mut g = Graph::new(ctx);
        let x = g.input("x", &[rows, features], DType::F32);
        let h = g.dense("pre", x, 6, Activation::Tanh).unwrap();
        let cols = g
            .task_dense_shared("columns.0", h, &[6; 3], Activation::Tanh)
            .unwrap();
        let pre_again = g.concat("pre x3", &[h, h, h]).unwrap();
        let both = g.add("sum", cols, pre_again).unwrap();
        let targets = crate::common::mse_heads(&mut g, "out", both, tasks, 6);
        let mut p = Program::build(ctx, g, sgd(0.1), 4).unwrap();
        randomize_inputs(ctx, &p, &[x, targets], 8);
        let pre_w = p
            .params()
            .layout
            .entries()
            .iter()
            .find(|e| e.name == "pre.weight")
            .unwrap()
            .clone();
        let mut indices: Vec<usize> = (pre_w.offset..pre_w.offset + pre_w.len()).collect();
        indices.extend(sample_indices(&p, 16));
        assert_gradients_match(ctx, &mut p, &indices, "shared input");
    }
}

#[test]
fn identity_cross_stitch_equals_independent_columns_bit_for_bit() {
    for ctx in contexts() {
        let run = |sharing: Sharing| {
            let m = small_spec(sharing).build(ctx).unwrap();
            let mut p = Program::build(ctx, m.graph, sgd(0.1), 9).unwrap();
            feed(ctx, &p, &m.nodes, 10);
            (0..6)
                .map(|_| {
                    let r = p.step(ctx, StepOptions::TRAIN_AND_READ).unwrap();
                    r.losses.unwrap().wait(ctx).unwrap().losses
                })
                .collect::<Vec<_>>()
        };
        let plain = run(Sharing::Soft {
            columns: vec![6, 5],
            regularisers: vec![],
        });
        let stitched = run(Sharing::CrossStitch {
            columns: vec![6, 5],
            stitch_after: vec![0, 1],
            // α = I, frozen.
            stitch: StitchOptions {
                per_channel: false,
                diagonal: Some(1.0),
                lr_scale: 0.0,
            },
        });
        assert_eq!(stitched, plain);
    }
}

#[test]
fn orthogonality_penalty_adds_its_gradient_in_the_graph() {
    let ctx = &contexts()[0];
    let grads = |lambda: f32| {
        let sharing = Sharing::Sluice {
            columns: vec![6, 6],
            subspaces: 2,
            orthogonality: lambda,
            stitch: stitch(1.0),
        };
        let m = small_spec(sharing).build(ctx).unwrap();
        let mut p = Program::build(ctx, m.graph, sgd(0.1), 3).unwrap();
        feed(ctx, &p, &m.nodes, 5);
        p.step(ctx, StepOptions::GRADIENTS).unwrap();
        let e = p
            .params()
            .layout
            .entries()
            .iter()
            .find(|e| e.name == "columns.1.weight")
            .unwrap()
            .clone();
        let w = p.params().values.to_f32_vec(ctx).unwrap()[e.offset..e.offset + e.len()].to_vec();
        let g = p.params().read_grads(ctx).unwrap()[e.offset..e.offset + e.len()].to_vec();
        let values = p.orthogonality_values(ctx).unwrap();
        (w, g, values)
    };
    let (w, g0, v0) = grads(0.0);
    let (_, g1, v1) = grads(0.25);
    assert!(v0.is_empty());
    let (want_v, want_g) = reference::orthogonality(&w, 3, 6, 6, 2, 0.25);
    let diff: Vec<f32> = g1.iter().zip(&g0).map(|(a, b)| a - b).collect();
    let top = want_g.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    assert!(
        max_err(&diff, &want_g) / top < 1e-3,
        "{diff:?} vs {want_g:?}"
    );
    assert_eq!(v1.len(), 2);
    // v1[1] is layer 1's penalty.
    assert!(
        ((v1[1] as f64) - want_v).abs() <= 1e-4 * want_v.max(1e-3),
        "{v1:?} vs {want_v}"
    );
}

#[test]
fn bad_model_specs_are_clear_errors() {
    let ctx = &contexts()[0];
    let cases: Vec<(Sharing, &str)> = vec![
        (
            Sharing::Sluice {
                columns: vec![6, 4],
                subspaces: 2,
                orthogonality: 0.1,
                stitch: stitch(1.0),
            },
            "share one width",
        ),
        (
            Sharing::Sluice {
                columns: vec![6, 6],
                subspaces: 4,
                orthogonality: 0.1,
                stitch: stitch(1.0),
            },
            "subspaces divide",
        ),
        (
            Sharing::CrossStitch {
                columns: vec![6],
                stitch_after: vec![1],
                stitch: stitch(1.0),
            },
            "after layer 1",
        ),
        (Sharing::Hard { trunk: vec![4, 0] }, "must be ≥ 1"),
        (
            Sharing::Soft {
                columns: vec![],
                regularisers: vec![],
            },
            "≥ 1 layer",
        ),
    ];
    for (sharing, want) in cases {
        let e = small_spec(sharing.clone())
            .build(ctx)
            .err()
            .expect("bad spec");
        assert!(e.to_string().contains(want), "{sharing:?}: {e}");
    }
}

fn hard_spec(tasks: usize) -> ModelSpec {
    ModelSpec {
        init: manytask::types::WeightInit::Glorot,
        rows: 16,
        inputs: 12,
        activation: Activation::Relu,
        sharing: Sharing::Hard {
            trunk: vec![16, 16],
        },
        tasks: (0..tasks)
            .map(|t| {
                TaskSpec::new(
                    &format!("t{t}"),
                    TaskKind::Classification { classes: 3 },
                    &[8],
                )
            })
            .collect(),
    }
}

#[test]
fn eight_heads_need_no_more_dispatches_than_two() {
    for ctx in private_contexts() {
        let dispatches = |tasks| {
            let m = hard_spec(tasks).build(&ctx).unwrap();
            let mut p = Program::build(&ctx, m.graph, sgd(0.01), 1).unwrap();
            p.set_variant(Some(manytask::kernels::gemm::Variant::RegisterBlocked));
            p.step(&ctx, StepOptions::TRAIN).unwrap();
            p.step(&ctx, StepOptions::TRAIN).unwrap().dispatches
        };
        let (two, eight) = (dispatches(2), dispatches(8));
        assert!(eight <= two, "8 heads: {eight} dispatches, 2 heads: {two}");
    }
}

/// Trains `sharing` on the synthetic benchmark (3 tasks of 100 outputs
/// from 250 inputs, σ = 1, 3.2, 10: a wider spread is a task-balancing
/// problem, not an architecture one) with AdamW, and returns the mean
/// per-task loss over the first and last 10 steps.
fn train_synthetic(ctx: &GpuContext, sharing: Sharing, steps: usize) -> (Vec<f32>, Vec<f32>) {
    let spec = SyntheticSpec::new(3, 250, 100, 10.0, 7);
    let rows = 32;
    let data = Synthetic::generate(&spec, 256).unwrap();
    let model = ModelSpec {
        init: manytask::types::WeightInit::Glorot,
        rows,
        inputs: spec.inputs,
        activation: Activation::Tanh,
        sharing,
        tasks: (0..spec.tasks)
            .map(|t| {
                TaskSpec::new(
                    &format!("task{t}"),
                    TaskKind::Regression {
                        outputs: spec.outputs,
                    },
                    &[],
                )
            })
            .collect(),
    }
    .build(ctx)
    .unwrap();
    let (x, targets) = (model.nodes.x, model.nodes.targets.unwrap());
    let adam = Optimizer::AdamW(AdamW {
        lr: 1e-2,
        ..AdamW::default()
    });
    let mut p = Program::build(ctx, model.graph, adam, 11).unwrap();
    let mut curve = Vec::with_capacity(steps);
    for s in 0..steps {
        let (bx, by) = data.batch(s * rows, rows);
        p.input(x).unwrap().write_f32(ctx, &bx).unwrap();
        p.input(targets).unwrap().write_f32(ctx, &by).unwrap();
        let r = p.step(ctx, StepOptions::TRAIN_AND_READ).unwrap();
        curve.push(r.losses.unwrap().wait(ctx).unwrap().losses);
    }
    let mean = |c: &[Vec<f32>]| -> Vec<f32> {
        (0..spec.tasks)
            .map(|t| c.iter().map(|l| l[t]).sum::<f32>() / c.len() as f32)
            .collect()
    };
    (mean(&curve[..10]), mean(&curve[steps - 10..]))
}

#[test]
fn every_architecture_lowers_every_task_loss_on_the_synthetic_benchmark() {
    let architectures = vec![
        ("hard", Sharing::Hard { trunk: vec![64] }),
        // 250 input features stream through the fused trunk's 128-wide tile.
        ("hard_fused", Sharing::HardFused { trunk: vec![64] }),
        (
            "cross_stitch",
            Sharing::CrossStitch {
                columns: vec![32],
                stitch_after: vec![0],
                stitch: stitch(10.0),
            },
        ),
        (
            "sluice",
            Sharing::Sluice {
                columns: vec![32, 32],
                subspaces: 2,
                orthogonality: 1e-3,
                stitch: stitch(10.0),
            },
        ),
        (
            "soft",
            Sharing::Soft {
                columns: vec![32],
                regularisers: vec![
                    Regulariser::L2Distance { lambda: 1e-3 },
                    Regulariser::TraceNorm {
                        lambda: 1e-3,
                        variant: manytask::types::TraceNormVariant::LastAxis,
                    },
                ],
            },
        ),
    ];
    for ctx in contexts() {
        for (name, sharing) in architectures.clone() {
            let (first, last) = train_synthetic(ctx, sharing, 150);
            let ratios: Vec<f32> = last.iter().zip(&first).map(|(l, f)| l / f).collect();
            eprintln!("{} {name}: last/first {ratios:?}", ctx.info().backend);
            for t in 0..first.len() {
                assert!(
                    last[t] < 0.8 * first[t],
                    "{} {name}: task {t} loss {} → {} (want < 0.8×)",
                    ctx.info().name,
                    first[t],
                    last[t]
                );
            }
        }
    }
}
