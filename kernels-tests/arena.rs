//! Arenas split over several buffers (`graph::params`): with a lowered
//! per-buffer cap (`BuildOptions::max_arena_buffer_bytes`) small models
//! spread over 3+ buffers and must train bit for bit like one buffer,
//! checkpoints must cross between the two, and what cannot be split (one
//! tensor, a fused trunk, the parameters Gram balancing compares) must be
//! a clear error naming it.

use manytask::arch::{ModelSpec, Piece, Sharing, StitchOptions, TaskKind, TaskSpec};
use manytask::checkpoint::{self, Restore};
use manytask::gpu::GpuContext;
use manytask::graph::{
    ArenaCap, Balancing, BuildOptions, GramSpace, Graph, Init, ParamBundle, ParamId, ParamLayout,
    Program, StepOptions, TrunkLayer, ARENA_BUFFER_ENV,
};
use manytask::types::{Activation, AdamW, DType, Optimizer, Sgd, WeightInit};

use crate::arch::feed;
use crate::common::{
    contexts, manytask, mse_heads, private_contexts, randomize_inputs, run_timed, scratch_dir,
};

fn adamw() -> Optimizer {
    Optimizer::AdamW(AdamW {
        weight_decay: 0.01,
        ..AdamW::default()
    })
}

fn sgd_momentum() -> Optimizer {
    Optimizer::Sgd(Sgd {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 1e-3,
    })
}

fn spec(sharing: Sharing, head: usize) -> ModelSpec {
    ModelSpec {
        init: WeightInit::Glorot,
        rows: 6,
        inputs: 20,
        activation: Activation::Tanh,
        sharing,
        tasks: vec![
            TaskSpec::new("class", TaskKind::Classification { classes: 4 }, &[head]),
            TaskSpec::new("reg", TaskKind::Regression { outputs: 3 }, &[head]),
            TaskSpec::new("bin", TaskKind::Binary { labels: 2 }, &[head]),
        ],
    }
}

/// The models the split must not change: a plain trunk, cross-stitch
/// columns whose α learns 10× faster (two learning-rate groups), and a
/// fused trunk (its parameters one bundle), each with its optimiser and
/// the prefix of the parameters that must share a buffer.
fn models() -> Vec<(&'static str, ModelSpec, Optimizer, &'static [&'static str])> {
    let stitch = StitchOptions {
        lr_scale: 10.0,
        ..StitchOptions::default()
    };
    vec![
        (
            "hard",
            spec(
                Sharing::Hard {
                    trunk: vec![40, 24],
                },
                16,
            ),
            adamw(),
            &[],
        ),
        (
            "cross-stitch",
            spec(
                Sharing::CrossStitch {
                    columns: vec![16, 12],
                    stitch_after: vec![0, 1],
                    stitch,
                },
                8,
            ),
            sgd_momentum(),
            &[],
        ),
        (
            "hard_fused",
            spec(
                Sharing::HardFused {
                    trunk: vec![16, 12],
                },
                32,
            ),
            adamw(),
            &["trunk."],
        ),
    ]
}

/// Bytes of the elements [start, end) of the flat space.
fn bytes(range: std::ops::Range<usize>) -> u64 {
    4 * range.len().next_multiple_of(4) as u64
}

/// The smallest cap every tensor and every bundle named by a prefix in
/// `together` fits (all of their entries in one range): the most buffers
/// the model can be split into.
fn tight_cap(p: &Program, together: &[&str]) -> u64 {
    let entries = p.params().layout.entries();
    let largest = entries
        .iter()
        .map(|e| bytes(e.offset..e.offset + e.len()))
        .max()
        .unwrap();
    let bundle = |prefix: &str| {
        let inside = entries.iter().filter(|e| e.name.starts_with(prefix));
        let start = inside.clone().map(|e| e.offset).min().unwrap();
        let end = inside.map(|e| e.offset + e.len()).max().unwrap();
        bytes(start..end)
    };
    together.iter().map(|b| bundle(b)).fold(largest, u64::max)
}

fn build(
    ctx: &GpuContext,
    s: &ModelSpec,
    opt: Optimizer,
    cap: Option<u64>,
) -> (Program, Vec<Piece>) {
    let m = s.build(ctx).unwrap();
    let options = BuildOptions {
        max_arena_buffer_bytes: cap,
    };
    let p = Program::build_with(ctx, m.graph, opt, 7, options).unwrap();
    feed(ctx, &p, &m.nodes, 3);
    (p, m.nodes.pieces)
}

/// Values, gradients and every optimiser state, flat.
fn arenas(ctx: &GpuContext, p: &Program) -> Vec<Vec<f32>> {
    let a = p.params();
    let mut out = vec![
        a.values.to_f32_vec(ctx).unwrap(),
        a.read_grads(ctx).unwrap(),
    ];
    out.extend(a.states.iter().map(|s| s.to_f32_vec(ctx).unwrap()));
    out
}

fn bits(v: &[Vec<f32>]) -> Vec<Vec<u32>> {
    v.iter()
        .map(|a| a.iter().map(|x| x.to_bits()).collect())
        .collect()
}

#[test]
fn split_arenas_train_bit_identically_to_one_buffer() {
    for ctx in contexts() {
        for (name, s, opt, together) in models() {
            let (mut one, _) = build(ctx, &s, opt, None);
            assert_eq!(one.params().buffer_ranges().len(), 1);
            let cap = tight_cap(&one, together);
            let (mut split, _) = build(ctx, &s, opt, Some(cap));
            let ranges = split.params().buffer_ranges().to_vec();
            assert!(
                ranges.len() >= 3,
                "{name}: {ranges:?} with a cap of {cap} bytes"
            );
            assert!(ranges.iter().all(|r| bytes(r.clone()) <= cap), "{ranges:?}");
            assert!(split.optimizer_dispatches() > one.optimizer_dispatches());
            // The same layout: offsets do not depend on the split.
            let text = |p: &Program| format!("{:?}", p.params().layout.entries());
            assert_eq!(text(&one), text(&split));
            for p in [&mut one, &mut split] {
                for _ in 0..3 {
                    p.step(ctx, StepOptions::TRAIN).unwrap();
                }
            }
            let (a, b) = (arenas(ctx, &one), arenas(ctx, &split));
            assert_ne!(
                a[0],
                one.params().layout.initial_values(7),
                "{name}: no training"
            );
            assert_eq!(
                bits(&a),
                bits(&b),
                "{name} on {}: split weights differ",
                ctx.describe()
            );
            let named = |p: &Program| p.params().read_all(ctx).unwrap();
            assert_eq!(named(&one), named(&split));
        }
    }
}

/// A fused trunk behind a dense layer: with the tight cap it starts a
/// buffer of its own past the first, so its kernels bind that buffer with
/// offsets local to it.
#[test]
fn a_fused_trunk_in_a_later_buffer_trains_bit_identically() {
    for ctx in contexts() {
        let program = |cap: Option<u64>| {
            let mut g = Graph::new(ctx);
            let x = g.input("x", &[5, 20], DType::F32);
            let pre = g.dense("pre", x, 40, Activation::Tanh).unwrap();
            let layer = |outputs| TrunkLayer {
                outputs,
                act: Activation::Gelu,
                bias: true,
            };
            let h = g
                .fused_trunk("trunk", pre, &[layer(16), layer(16)])
                .unwrap();
            let targets = mse_heads(&mut g, "heads", h, 2, 8);
            let options = BuildOptions {
                max_arena_buffer_bytes: cap,
            };
            let p = Program::build_with(ctx, g, adamw(), 5, options).unwrap();
            randomize_inputs(ctx, &p, &[x, targets], 4);
            p
        };
        let mut one = program(None);
        let cap = tight_cap(&one, &["trunk."]);
        let mut split = program(Some(cap));
        let a = split.params();
        let trunk = a
            .layout
            .entries()
            .iter()
            .position(|e| e.name == "trunk.0.weight");
        let buffer = a.buffer_of(ParamId(trunk.unwrap()));
        assert!(
            buffer > 0 && a.buffer_ranges().len() >= 3,
            "{:?}",
            a.buffer_ranges()
        );
        for p in [&mut one, &mut split] {
            for _ in 0..3 {
                p.step(ctx, StepOptions::TRAIN).unwrap();
            }
        }
        assert_eq!(
            bits(&arenas(ctx, &one)),
            bits(&arenas(ctx, &split)),
            "on {}",
            ctx.describe()
        );
    }
}

#[test]
fn a_split_step_is_still_one_submit_with_one_optimiser_dispatch_per_group_and_buffer() {
    let ctx = &private_contexts()[0];
    let (_, s, opt, _) = models().swap_remove(1);
    let (mut one, _) = build(ctx, &s, opt, None);
    let (mut split, _) = build(ctx, &s, opt, Some(tight_cap(&one, &[])));
    // Two learning-rate groups (α at 10×) in one buffer.
    assert_eq!(one.optimizer_dispatches(), 2);
    // The second steps: the first may autotune new GEMM shapes.
    let (a, b) = [&mut one, &mut split]
        .map(|p| {
            p.step(ctx, StepOptions::TRAIN).unwrap();
            p.step(ctx, StepOptions::TRAIN).unwrap()
        })
        .into();
    assert_eq!((a.submits, b.submits), (1, 1));
    let extra = (split.optimizer_dispatches() - one.optimizer_dispatches()) as u64;
    assert!(extra > 0);
    assert_eq!(b.dispatches, a.dispatches + extra);
}

#[test]
fn checkpoints_cross_between_split_and_one_buffer_programs() {
    let dir = scratch_dir("arena-ckpt");
    for ctx in contexts() {
        let (_, s, opt, _) = models().swap_remove(1);
        let (mut one, pieces) = build(ctx, &s, opt, None);
        let cap = Some(tight_cap(&one, &[]));
        let (mut split, _) = build(ctx, &s, opt, cap);
        assert!(split.params().buffer_ranges().len() >= 3);
        for p in [&mut one, &mut split] {
            for _ in 0..2 {
                p.step(ctx, StepOptions::TRAIN).unwrap();
            }
        }
        let (from_one, from_split) = (dir.join("one.safetensors"), dir.join("split.safetensors"));
        checkpoint::save(ctx, &one, &pieces, &[], &from_one).unwrap();
        checkpoint::save(ctx, &split, &pieces, &[], &from_split).unwrap();
        assert_eq!(
            std::fs::read(&from_one).unwrap(),
            std::fs::read(&from_split).unwrap(),
            "the split changed the checkpoint's bytes"
        );
        // Each loaded into the other kind (another seed), optimiser state
        // and step included; then all four step on together.
        let m = s.build(ctx).unwrap();
        let mut loaded = [None, cap].map(|c| {
            let options = BuildOptions {
                max_arena_buffer_bytes: c,
            };
            let g = s.build(ctx).unwrap().graph;
            let mut p = Program::build_with(ctx, g, opt, 99, options).unwrap();
            feed(ctx, &p, &m.nodes, 3);
            let file = if c.is_none() { &from_split } else { &from_one };
            checkpoint::load(ctx, &mut p, &pieces, file, Restore::Everything).unwrap();
            assert_eq!(p.steps(), 2);
            p
        });
        for p in loaded.iter_mut().chain([&mut one, &mut split]) {
            p.step(ctx, StepOptions::TRAIN).unwrap();
        }
        let want = bits(&arenas(ctx, &one));
        for p in loaded.iter().chain([&split]) {
            assert_eq!(bits(&arenas(ctx, p)), want, "on {}", ctx.describe());
        }
    }
}

#[test]
fn what_cannot_be_split_is_a_clear_error_naming_it() {
    let ctx = &contexts()[0];
    // A fused trunk larger than any one tensor.
    let s = spec(
        Sharing::HardFused {
            trunk: vec![32, 32],
        },
        8,
    );
    let opt = adamw();
    let (one, _) = build(ctx, &s, opt, None);
    let e = one.params().layout.entries();
    let widest = e.iter().max_by_key(|e| e.len()).unwrap();
    let build_err = |cap: u64| {
        let options = BuildOptions {
            max_arena_buffer_bytes: Some(cap),
        };
        let g = s.build(ctx).unwrap().graph;
        Program::build_with(ctx, g, opt, 7, options)
            .err()
            .unwrap()
            .to_string()
    };
    // One tensor over the cap: its name, its bytes, the cap and its name.
    let cap = 4 * widest.len() as u64 - 16;
    let msg = build_err(cap);
    for part in [
        format!("'{}'", widest.name),
        format!("{} bytes", 4 * widest.len()),
        format!("{cap} bytes"),
        "BuildOptions::max_arena_buffer_bytes".to_string(),
    ] {
        assert!(msg.contains(&part), "'{part}' missing from: {msg}");
    }
    // Every tensor fits, the fused trunk's parameters together do not.
    let largest = tight_cap(&one, &[]);
    assert!(largest < tight_cap(&one, &["trunk."]));
    let msg = build_err(largest);
    assert!(
        msg.contains("fused trunk 'trunk'") && msg.contains(&format!("{largest} bytes")),
        "{msg}"
    );
}

/// PCGrad's and MGDA's path: the Gram phase over the shared parameters
/// (kept in one buffer by the split), then the update with the solver's
/// coefficients.
#[test]
fn gram_balancing_on_a_split_arena_matches_one_buffer_or_names_the_limit() {
    for ctx in contexts() {
        let s = spec(
            Sharing::Hard {
                trunk: vec![24, 16],
            },
            16,
        );
        let program = |cap: Option<u64>| {
            let mut m = s.build(ctx).unwrap();
            m.set_balancing(Balancing::Gram(GramSpace::SharedParameters))
                .unwrap();
            let options = BuildOptions {
                max_arena_buffer_bytes: cap,
            };
            let p = Program::build_with(ctx, m.graph, adamw(), 7, options);
            p.inspect(|p| feed(ctx, p, &m.nodes, 3))
        };
        let mut one = program(None).unwrap();
        let cap = tight_cap(&one, &["trunk."]);
        let mut split = program(Some(cap)).unwrap();
        assert!(split.params().buffer_ranges().len() >= 3);
        let mut grams = Vec::new();
        for p in [&mut one, &mut split] {
            for _ in 0..2 {
                grams.push(p.gram_phase(ctx).unwrap().gram);
                p.finish_step(ctx, &[0.5, 1.0, 0.25], StepOptions::TRAIN)
                    .unwrap();
            }
        }
        assert_eq!(grams[..2], grams[2..]);
        assert_eq!(bits(&arenas(ctx, &one)), bits(&arenas(ctx, &split)));
        // Every tensor fits, the compared parameters together do not.
        let largest = tight_cap(&one, &[]);
        assert!(largest < cap);
        let msg = program(Some(largest)).err().unwrap().to_string();
        assert!(
            msg.contains("gradient balancing compares") && msg.contains("max_arena_buffer_bytes"),
            "{msg}"
        );
    }
}

/// The split itself, GPU-free: ranges in offset order, each under the
/// cap, every entry and bundle inside one, starts at entry offsets.
#[test]
fn the_split_keeps_every_entry_and_bundle_inside_one_buffer() {
    let mut layout = ParamLayout::default();
    let shapes: [&[usize]; 7] = [&[10, 7], &[7], &[30], &[3, 3], &[50], &[1], &[9, 4]];
    // 70, 7, 30, 9, 50, 1, 36 elements at multiples of 16; p3 in a
    // second learning-rate group at the end.
    for (i, shape) in shapes.iter().enumerate() {
        layout
            .add(&format!("p{i}"), shape, Init::Zeros, 16)
            .unwrap();
    }
    layout.set_lr_scale(ParamId(3), 10.0);
    let layout = layout.grouped(16);
    let cap = |bytes| ArenaCap {
        bytes,
        limit: "test cap",
    };
    assert_eq!(
        layout.split(cap(1 << 20), &[]).unwrap(),
        vec![0..layout.total()]
    );
    let bundles_of_p012 = || {
        vec![ParamBundle {
            what: "p0 with p1 and p2".into(),
            params: vec![ParamId(0), ParamId(1), ParamId(2)],
        }]
    };
    for (bytes, bundles) in [
        (320, vec![]),
        (512, bundles_of_p012()),
        (800, bundles_of_p012()),
    ] {
        let ranges = layout.split(cap(bytes), &bundles).unwrap();
        assert!(ranges.len() > 1, "{bytes}: {ranges:?}");
        assert_eq!(ranges[0].start, 0);
        assert_eq!(ranges.last().unwrap().end, layout.total());
        let holding = |start: usize, end: usize| {
            ranges
                .iter()
                .position(|r| r.start <= start && end <= r.end)
                .unwrap_or_else(|| panic!("{start}..{end} straddles {ranges:?}"))
        };
        for (r, next) in ranges.iter().zip(&ranges[1..]) {
            assert!(r.end <= next.start);
            assert!(layout.entries().iter().any(|e| e.offset == next.start));
        }
        for r in &ranges {
            assert!(4 * r.len() as u64 <= bytes, "{r:?}");
        }
        for e in layout.entries() {
            holding(e.offset, e.offset + e.len());
        }
        for b in &bundles {
            let buffers: Vec<usize> = b
                .params
                .iter()
                .map(|&p| {
                    let e = layout.get(p);
                    holding(e.offset, e.offset + e.len())
                })
                .collect();
            assert!(buffers.iter().all(|&k| k == buffers[0]), "{buffers:?}");
        }
    }
    let e = layout.split(cap(256), &[]).unwrap_err().to_string();
    assert!(
        e.contains("'p0' [10, 7]") && e.contains("280 bytes") && e.contains("256 bytes (test cap)"),
        "{e}"
    );
    // The bundle alone over the cap (each of its tensors fits).
    let e = layout
        .split(cap(320), &bundles_of_p012())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("p0 with p1 and p2") && e.contains("320 bytes"),
        "{e}"
    );
}

/// The CLI with the arenas split by `MANYTASK_ARENA_BUFFER_BYTES` (the
/// adapter's own cap needs a ~36 M-parameter model, ~25 s a run here):
/// the same checkpoint bytes as without it; a cap below a tensor is the
/// clear error naming the variable.
#[test]
fn cli_trains_with_the_arenas_split_by_the_environment_cap() {
    let dir = scratch_dir("arena-cli");
    // The input is 250 wide: trunk.0.weight takes 64000 bytes.
    let cap = 65_536u64;
    let run = |cap: Option<u64>, save: &std::path::Path| {
        let mut cmd = manytask();
        cmd.args([
            "train", "--tasks", "2", "--widths", "64,64,64", "--steps", "3", "--batch", "32",
        ])
        .arg("--save")
        .arg(save)
        .env_remove(ARENA_BUFFER_ENV);
        if let Some(c) = cap {
            cmd.env(ARENA_BUFFER_ENV, c.to_string());
        }
        run_timed(&mut cmd, 120)
    };
    let (one, split) = (dir.join("one.safetensors"), dir.join("split.safetensors"));
    for (c, path) in [(None, &one), (Some(cap), &split)] {
        let out = run(c, path);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bytes = std::fs::read(&split).unwrap();
    assert_eq!(
        std::fs::read(&one).unwrap(),
        bytes,
        "the split changed the run"
    );
    // More than two caps' worth of parameters: three buffers at least.
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let arena = 4 * file.tensor("optimizer.state.0").unwrap().shape()[0] as u64;
    assert!(arena > 2 * cap, "{arena} bytes");
    let out = run(Some(1000), &dir.join("never.safetensors"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("parameter 'trunk.") && stderr.contains(ARENA_BUFFER_ENV),
        "{stderr}"
    );
}
