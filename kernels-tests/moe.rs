//! Mixtures of experts (MMoE, CGC / PLE, DSelect-k): the `moe` kernels
//! against their references, gradients by finite differences through
//! every new op, dispatch counts independent of E and T, a one-expert
//! MMoE against hard sharing, the gate-mass API, balancing, each model
//! training the default benchmark from the CLI on both adapters with its
//! load-balance report in the log and the plot, and MMoE against a shared
//! bottom on `mmoe_synthetic` data.

use manytask::arch::{Experts, ModelSpec, Sharing, TaskKind, TaskSpec};
use manytask::graph::{Balancing, GramSpace, Program, StepOptions};
use manytask::types::Activation;

use crate::arch::{check_model_gradients, feed, small_spec};
use crate::common::{check_cases, contexts, manytask, private_contexts, run_ok, sgd};

#[test]
fn moe_kernels_match_reference() {
    check_cases("moe", |c| c.kernel.starts_with("moe::"));
}

fn experts(widths: &[usize], per_task: usize, shared: usize) -> Experts {
    Experts {
        widths: widths.to_vec(),
        per_task,
        shared,
    }
}

/// Every MoE model at awkward sizes (odd widths, 1 and 3 and 7 experts,
/// deep experts). DSelect-k's entropy term is off here: the objective the
/// finite differences see is the task losses only (its gradient is
/// checked against the reference's differences in the conformance cases).
fn small_models() -> Vec<(&'static str, Sharing)> {
    vec![
        (
            "mmoe",
            Sharing::Mmoe {
                experts: experts(&[7, 5], 0, 3),
            },
        ),
        (
            "mmoe one expert",
            Sharing::Mmoe {
                experts: experts(&[1], 0, 1),
            },
        ),
        (
            "cgc",
            Sharing::Cgc {
                experts: experts(&[5], 1, 2),
            },
        ),
        (
            "ple",
            Sharing::Ple {
                experts: experts(&[6, 3], 2, 1),
                levels: 3,
            },
        ),
        (
            "dselect_k",
            Sharing::DSelectK {
                experts: experts(&[5], 0, 7),
                selectors: 3,
                gamma: 4.0,
                entropy: 0.0,
            },
        ),
    ]
}

#[test]
fn moe_models_have_finite_difference_gradients() {
    // Every third gate parameter, and a sample of the rest.
    check_model_gradients(small_models(), |name| name.contains("gates"), 3);
}

fn mlp_spec(sharing: Sharing, tasks: usize) -> ModelSpec {
    ModelSpec {
        init: manytask::types::WeightInit::default(),
        rows: 32,
        inputs: 16,
        activation: Activation::Relu,
        sharing,
        tasks: (0..tasks)
            .map(|t| {
                TaskSpec::new(
                    &format!("task{t}"),
                    TaskKind::Regression { outputs: 1 },
                    &[8],
                )
            })
            .collect(),
    }
}

#[test]
fn moe_step_dispatches_do_not_grow_with_experts_or_tasks() {
    let ctx = &private_contexts()[0];
    type Kind = (&'static str, fn(usize) -> Sharing);
    let kinds: [Kind; 4] = [
        ("mmoe", |e| Sharing::Mmoe {
            experts: experts(&[16, 16], 0, e),
        }),
        ("cgc", |e| Sharing::Cgc {
            experts: experts(&[16, 16], e / 4, e / 2),
        }),
        ("ple", |e| Sharing::Ple {
            experts: experts(&[16, 16], e / 4, e / 2),
            levels: 2,
        }),
        ("dselect_k", |e| Sharing::DSelectK {
            experts: experts(&[16, 16], 0, e),
            selectors: 2,
            gamma: 1.0,
            entropy: 1e-3,
        }),
    ];
    for (name, sharing) in kinds {
        let mut counts = Vec::new();
        for (e, t) in [(4, 2), (16, 2), (4, 8), (16, 8)] {
            let m = mlp_spec(sharing(e), t).build(ctx).unwrap();
            let mut p = Program::build(ctx, m.graph, sgd(0.01), 1).unwrap();
            // The second step: the first may autotune new GEMM shapes.
            p.step(ctx, StepOptions::TRAIN).unwrap();
            let r = p.step(ctx, StepOptions::TRAIN).unwrap();
            assert_eq!(r.submits, 1);
            counts.push(((e, t), r.dispatches));
        }
        assert!(
            counts.iter().all(|c| c.1 == counts[0].1),
            "{name}: dispatches per step by (E, T): {counts:?}"
        );
    }
}

/// The parameter values of `p` cut into its checkpoint pieces.
fn pieces_of(
    ctx: &manytask::gpu::GpuContext,
    p: &Program,
    pieces: &[manytask::arch::Piece],
) -> Vec<(String, Vec<f32>)> {
    let values = p.params().values.to_f32_vec(ctx).unwrap();
    let entries = p.params().layout.entries();
    pieces
        .iter()
        .map(|piece| {
            let e = entries.iter().find(|e| e.name == piece.param).unwrap();
            (
                piece.name.clone(),
                piece.cut(&values[e.offset..e.offset + e.len()]),
            )
        })
        .collect()
}

#[test]
fn a_one_expert_mmoe_trains_like_hard_sharing() {
    // One expert: every gate is softmax over one logit = exactly 1 (and
    // its gradient exactly 0), so the model is hard sharing with the
    // trunk as the expert. Same weights, same steps: the same weights
    // after (up to the summation order of the heads' input gradient).
    for ctx in contexts() {
        let widths = [8, 6];
        let hard = small_spec(Sharing::Hard {
            trunk: widths.to_vec(),
        })
        .build(ctx)
        .unwrap();
        let moe = small_spec(Sharing::Mmoe {
            experts: experts(&widths, 0, 1),
        })
        .build(ctx)
        .unwrap();
        let (hard_pieces, moe_pieces) = (hard.nodes.pieces.clone(), moe.nodes.pieces.clone());
        let mut a = Program::build(ctx, hard.graph, sgd(0.2), 3).unwrap();
        let mut b = Program::build(ctx, moe.graph, sgd(0.2), 4).unwrap();
        // b takes a's weights, piece by piece (trunk.l = experts.0.l).
        let from_a = pieces_of(ctx, &a, &hard_pieces);
        let mut values = b.params().values.to_f32_vec(ctx).unwrap();
        let entries = b.params().layout.entries().to_vec();
        let mut pasted = 0;
        for piece in &moe_pieces {
            let want = piece.name.replacen("experts.0.", "trunk.", 1);
            if let Some((_, v)) = from_a.iter().find(|(n, _)| *n == want) {
                let e = entries.iter().find(|e| e.name == piece.param).unwrap();
                piece.paste(v, &mut values[e.offset..e.offset + e.len()]);
                pasted += 1;
            }
        }
        assert_eq!(
            pasted,
            hard_pieces.len(),
            "every hard-sharing tensor has its MMoE twin"
        );
        b.params().write_values(ctx, &values).unwrap();
        feed(ctx, &a, &hard.nodes, 9);
        feed(ctx, &b, &moe.nodes, 9);
        let mut worst_loss = 0f32;
        for _ in 0..5 {
            let la = a.step(ctx, StepOptions::TRAIN_AND_READ).unwrap();
            let lb = b.step(ctx, StepOptions::TRAIN_AND_READ).unwrap();
            let la = la.losses.unwrap().wait(ctx).unwrap().losses;
            let lb = lb.losses.unwrap().wait(ctx).unwrap().losses;
            for (x, y) in la.iter().zip(&lb) {
                worst_loss = worst_loss.max((x - y).abs() / x.abs().max(1.0));
            }
        }
        let (wa, wb) = (
            pieces_of(ctx, &a, &hard_pieces),
            pieces_of(ctx, &b, &moe_pieces),
        );
        let mut worst = 0f32;
        for (name, v) in &wa {
            let twin = name.replacen("trunk.", "experts.0.", 1);
            let (_, u) = wb.iter().find(|(n, _)| *n == twin).unwrap();
            for (x, y) in v.iter().zip(u) {
                worst = worst.max((x - y).abs());
            }
        }
        assert!(
            worst <= 1e-6 && worst_loss <= 1e-6,
            "on {}: weights differ by {worst}, losses by {worst_loss} (relative)",
            ctx.describe()
        );
    }
}

#[test]
fn gate_mass_is_each_task_s_average_gate_per_expert() {
    let ctx = &contexts()[0];
    for (name, sharing) in small_models() {
        let m = small_spec(sharing).build(ctx).unwrap();
        let gates = m.nodes.gates.expect("a MoE model has task gates");
        let p = Program::build(ctx, m.graph, sgd(0.1), 3).unwrap();
        feed(ctx, &p, &m.nodes, 5);
        let mass = gates.mass(ctx, &p).unwrap();
        assert_eq!(mass.len(), 3, "{name}");
        // Read inside a whole forward pass (evaluation's way), the gates
        // and the logits are those of the separate passes, bit for bit.
        let (logits, _, values) = p.predict_reading(ctx, &[gates.node, m.nodes.x]).unwrap();
        assert_eq!(
            values[0],
            p.forward_value(ctx, gates.node).unwrap(),
            "{name}"
        );
        assert_eq!(
            values[1],
            p.forward_value(ctx, m.nodes.x).unwrap(),
            "{name}"
        );
        assert_eq!(logits, p.predict(ctx).unwrap().0, "{name}");
        let mix = gates.mix;
        for (t, row) in mass.iter().enumerate() {
            assert_eq!(row.len(), mix.experts(), "{name}");
            let total: f32 = row.iter().sum();
            if name == "dselect_k" {
                // 7 of 8 codes are experts: at most all of the mass.
                assert!(total > 0.0 && total <= 1.0 + 1e-5, "{name}: {row:?}");
            } else {
                assert!((total - 1.0).abs() < 1e-5, "{name} task {t}: {row:?}");
            }
            // Other tasks' own experts get nothing from task t.
            for (e, &v) in row.iter().enumerate() {
                let own = e < mix.tasks * mix.task_experts;
                if own && e / mix.task_experts != t {
                    assert_eq!(v, 0.0, "{name} task {t} expert {e}");
                } else {
                    assert!(v > 0.0, "{name} task {t} expert {e}: {row:?}");
                }
            }
        }
    }
}

#[test]
fn moe_models_take_loss_weighting_and_refuse_gradient_balancing_clearly() {
    let ctx = &contexts()[0];
    for (name, sharing) in small_models() {
        let mut m = small_spec(sharing.clone()).build(ctx).unwrap();
        let e = m
            .set_balancing(Balancing::Gram(GramSpace::Representation))
            .unwrap_err();
        assert!(e.to_string().contains("hard sharing"), "{name}: {e}");
        for balancing in [Balancing::Uncertainty, Balancing::EpochLosses] {
            let mut m = small_spec(sharing.clone()).build(ctx).unwrap();
            m.set_balancing(balancing).unwrap();
            let mut p = Program::build(ctx, m.graph, sgd(0.05), 3).unwrap();
            feed(ctx, &p, &m.nodes, 5);
            p.set_task_weights(ctx, &[0.5, 2.0, 1.0]).unwrap();
            for _ in 0..3 {
                let r = p.step(ctx, StepOptions::TRAIN_AND_READ).unwrap();
                let l = r.losses.unwrap().wait(ctx).unwrap().losses;
                assert!(
                    l.iter().all(|v| v.is_finite()),
                    "{name} {balancing:?}: {l:?}"
                );
            }
        }
    }
}

#[test]
fn moe_config_keys_are_checked() {
    let ctx = &contexts()[0];
    let bad = [
        Sharing::Mmoe {
            experts: experts(&[4], 1, 2),
        },
        Sharing::Cgc {
            experts: experts(&[4], 0, 2),
        },
        Sharing::Ple {
            experts: experts(&[4], 1, 1),
            levels: 0,
        },
        Sharing::DSelectK {
            experts: experts(&[4], 0, 65),
            selectors: 2,
            gamma: 1.0,
            entropy: 0.0,
        },
        Sharing::DSelectK {
            experts: experts(&[4], 0, 4),
            selectors: 2,
            gamma: 0.0,
            entropy: 0.0,
        },
    ];
    for sharing in bad {
        let e = small_spec(sharing.clone()).build(ctx).err();
        assert!(e.is_some(), "{sharing:?} must be refused");
    }
}

#[test]
fn every_moe_model_trains_the_default_benchmark_on_every_adapter() {
    let dir = crate::common::scratch_dir("moe-train");
    for ctx in contexts() {
        let backend = ctx.backend_choice().to_string();
        let backend = backend.as_str();
        for model in ["mmoe", "cgc", "ple", "dselect_k"] {
            let log = dir.join(format!("{model}-{backend}.jsonl"));
            let plot = dir.join(format!("{model}-{backend}.svg"));
            run_ok(
                manytask()
                    .args(["train", "--model", model, "--tasks", "2", "--widths", "16"])
                    .args([
                        "--epochs", "3", "--lr", "0.03", "--batch", "64", "--every", "100",
                    ])
                    .args(["--backend", backend, "--log"])
                    .arg(&log)
                    .arg("--plot")
                    .arg(&plot),
            );
            let svg = std::fs::read_to_string(&plot).unwrap();
            assert!(
                svg.contains("gate mass per expert"),
                "{model}: no load-balance panel"
            );
            let text = std::fs::read_to_string(&log).unwrap();
            let epochs: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .filter(|r| r.get("split").is_some())
                .collect();
            assert_eq!(epochs.len(), 3, "{model} on {backend}: {text}");
            for record in &epochs {
                check_gate_record(model, &record["gates"]);
            }
            for task in ["task0", "task1"] {
                let loss = |r: &serde_json::Value| r["metrics"][task]["loss"].as_f64().unwrap();
                let (first, last) = (loss(&epochs[0]), loss(&epochs[2]));
                assert!(
                    last < first,
                    "{model} on {backend}: {task}'s validation loss {first} → {last}"
                );
            }
        }
    }
}

/// A log's load-balance record for a 2-task model of `model`'s kind
/// (the CLI defaults: 4 experts; CGC / PLE one own expert per task and
/// one shared): names, each task's gate mass over its experts, active
/// experts and entropy.
fn check_gate_record(model: &str, gates: &serde_json::Value) {
    let names: Vec<&str> = gates["experts"]
        .as_array()
        .unwrap_or_else(|| panic!("{model}: no gates in the log: {gates}"))
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let own_experts = matches!(model, "cgc" | "ple");
    if own_experts {
        assert_eq!(names, ["task0.0", "task1.0", "shared.0"], "{model}");
    } else {
        assert_eq!(names, ["0", "1", "2", "3"], "{model}");
    }
    for (t, task) in ["task0", "task1"].iter().enumerate() {
        let g = &gates["tasks"][task];
        let mass: Vec<f64> = g["mass"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(mass.len(), names.len(), "{model} {task}");
        let total: f64 = mass.iter().sum();
        let (active, entropy) = (
            g["active"].as_f64().unwrap(),
            g["entropy"].as_f64().unwrap(),
        );
        // A task's gate reaches its own experts and the shared ones only.
        let reach = if own_experts { 2.0 } else { 4.0 };
        if own_experts {
            assert_eq!(mass[1 - t], 0.0, "{model} {task}: {mass:?}");
        }
        if model == "dselect_k" {
            // Codes past E select nothing (the gates sum to ≤ 1 unless E
            // is a power of two), and the smooth step makes gates exactly 0.
            assert!(
                total > 0.0 && total <= 1.0 + 1e-5,
                "{model} {task}: {mass:?}"
            );
            assert!(
                (0.0..=reach).contains(&active),
                "{model} {task}: active {active}"
            );
        } else {
            assert!((total - 1.0).abs() < 1e-5, "{model} {task}: {mass:?}");
            assert_eq!(
                active, reach,
                "{model} {task}: a softmax keeps every expert"
            );
        }
        assert!(
            (0.0..=reach.ln() + 1e-6).contains(&entropy),
            "{model} {task}: entropy {entropy}"
        );
    }
}

#[test]
fn a_profiled_moe_step_times_every_dispatch_including_the_moe_ops() {
    for ctx in private_contexts()
        .iter()
        .filter(|c| c.granted().timestamp_query)
    {
        let m = small_spec(Sharing::Ple {
            experts: experts(&[5], 1, 2),
            levels: 2,
        })
        .build(ctx)
        .unwrap();
        let mut p = Program::build(ctx, m.graph, sgd(0.1), 3).unwrap();
        feed(ctx, &p, &m.nodes, 5);
        // A warm-up step: the first may autotune GEMM shapes.
        p.step(ctx, StepOptions::TRAIN).unwrap();
        let (report, profile) = p.profile_step(ctx, StepOptions::TRAIN).unwrap();
        assert_eq!(profile.dispatches.len() as u64, report.dispatches);
        let table = profile.table();
        for op in ["moe::mix", "moe::mix_backward", "moe::gate_softmax"] {
            assert!(table.contains(op), "{op} missing from\n{table}");
        }
    }
}

#[test]
fn moe_checkpoints_have_pytorch_names_and_round_trip() {
    use manytask::checkpoint::{self, Restore};
    let ctx = &contexts()[0];
    let dir = crate::common::scratch_dir("moe-ckpt");
    for (name, sharing) in small_models() {
        let build = |seed| {
            let m = small_spec(sharing.clone()).build(ctx).unwrap();
            let p = Program::build(ctx, m.graph, sgd(0.1), seed).unwrap();
            (p, m.nodes)
        };
        let (mut a, nodes) = build(3);
        feed(ctx, &a, &nodes, 5);
        a.step(ctx, StepOptions::TRAIN).unwrap();
        let path = dir.join(format!("{}.safetensors", name.replace(' ', "_")));
        checkpoint::save(ctx, &a, &nodes.pieces, &[], &path).unwrap();
        let (mut b, _) = build(4);
        checkpoint::load(ctx, &mut b, &nodes.pieces, &path, Restore::Parameters).unwrap();
        let (va, vb) = (
            a.params().values.to_f32_vec(ctx).unwrap(),
            b.params().values.to_f32_vec(ctx).unwrap(),
        );
        assert_eq!(
            va, vb,
            "{name}: a loaded checkpoint restores every parameter"
        );
        // PyTorch's nn.Linear layout, one tensor per expert and gate.
        let names: Vec<&str> = nodes.pieces.iter().map(|p| p.name.as_str()).collect();
        let want = match name {
            "cgc" => vec![
                "experts.class.0.0.weight",
                "experts.shared.1.0.weight",
                "gates.bin.weight",
            ],
            "ple" => vec![
                "levels.0.experts.reg.1.1.weight",
                "levels.1.gates.shared.weight",
                "levels.2.gates.class.bias",
            ],
            _ => vec!["experts.0.0.weight", "gates.class.weight"],
        };
        for w in want {
            assert!(names.contains(&w), "{name}: no {w} in {names:?}");
        }
        let first = nodes
            .pieces
            .iter()
            .find(|p| p.name.ends_with("experts.0.0.weight"));
        if let Some(p) = first {
            assert_eq!(
                p.shape()[1],
                5,
                "{name}: weight [out, in] with in = 5 inputs"
            );
        }
    }
}
