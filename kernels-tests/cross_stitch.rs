//! Cross-stitch units: kernel cases, α = I reproducing independent
//! columns bit for bit, finite differences through a graph, and α's
//! learning-rate multiplier.

use manytask::gpu::{DType, GpuContext, Tensor};
use manytask::graph::{Graph, NodeId, Program, StepOptions, TaskBlock};
use manytask::kernels::cross_stitch::{stitch_alpha_grad, stitch_mix, Stitch};
use manytask::types::Activation;
use manytask::util::rng::Rng;

use crate::common::{assert_gradients_match, check_cases, contexts, sgd};

#[test]
fn cross_stitch_matches_reference() {
    check_cases("cross_stitch", |c| c.kernel.starts_with("cross_stitch::"));
}

#[test]
fn identity_alpha_mixes_nothing_bit_for_bit() {
    for ctx in contexts() {
        let (rows, tasks, channels) = (9, 3, 7);
        let x = Rng::new(3).uniform_vec(rows * tasks * channels, -5.0, 5.0);
        let xt = Tensor::from_f32(ctx, "x", &[rows, tasks * channels], &x).unwrap();
        let mut eye = vec![0f32; tasks * tasks];
        (0..tasks).for_each(|t| eye[t * tasks + t] = 1.0);
        let a = Tensor::from_f32(ctx, "alpha", &[tasks, tasks], &eye).unwrap();
        let out = Tensor::zeros(ctx, "out", &[rows, tasks * channels]).unwrap();
        let mut rec = ctx.recorder("eye");
        stitch_mix(
            &mut rec,
            &Stitch {
                tasks,
                per_channel: false,
            },
            &xt,
            &a,
            &out,
            false,
            false,
        )
        .unwrap();
        rec.submit().unwrap();
        assert_eq!(out.to_f32_vec(ctx).unwrap(), x);
    }
}

/// dα is two fixed-order sums (row chunks, then the chunks' partials):
/// the same inputs give the same bits, run after run, scalar and vec4,
/// per layer and per channel; and they match the reference.
#[test]
fn alpha_grad_is_bit_identical_across_runs() {
    use manytask::reference::cross_stitch::stitch_alpha_grad as reference;
    for ctx in contexts() {
        for (rows, tasks, channels) in [(3001, 3, 7), (2050, 6, 12)] {
            let n = rows * tasks * channels;
            let mut rng = Rng::new(n as u64);
            let xv = rng.uniform_vec(n, -1.0, 1.0);
            let dyv = rng.uniform_vec(n, -1.0, 1.0);
            let x = Tensor::from_f32(ctx, "x", &[rows, tasks * channels], &xv).unwrap();
            let dy = Tensor::from_f32(ctx, "dy", &[rows, tasks * channels], &dyv).unwrap();
            for per_channel in [false, true] {
                let unit = Stitch { tasks, per_channel };
                let run = || {
                    let da = Tensor::zeros(ctx, "dalpha", &unit.alpha_shape(channels)).unwrap();
                    let mut rec = ctx.recorder("dalpha");
                    stitch_alpha_grad(&mut rec, &unit, &x, &dy, &da, false).unwrap();
                    rec.submit().unwrap();
                    da.to_f32_vec(ctx).unwrap()
                };
                let first = run();
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
                for _ in 0..3 {
                    assert_eq!(bits(&run()), bits(&first), "{rows}×{tasks}×{channels}");
                }
                // Error relative to Σ|dy·x| per entry: short fma chains
                // and trees stay far under 1e-5; a lost row chunk would not.
                let want = reference(&xv, &dyv, rows, tasks, channels, per_channel);
                let abs = |v: &[f32]| v.iter().map(|f| f.abs()).collect::<Vec<f32>>();
                let scale = reference(&abs(&xv), &abs(&dyv), rows, tasks, channels, per_channel);
                let worst = first
                    .iter()
                    .zip(&want)
                    .zip(&scale)
                    .map(|((g, w), s)| (g - w).abs() / s)
                    .fold(0f32, f32::max);
                assert!(
                    worst <= 1e-5,
                    "{rows}×{tasks}×{channels}: max rel. error {worst}"
                );
            }
        }
    }
}

/// Soft sharing: x copied into T columns → per-task layer (block
/// diagonal) → optional cross-stitch → per-task output layer → losses
/// (MSE, 2 outputs per task).
/// `width` channels per task: 5 takes the scalar kernels, 8 the vec4 ones.
fn columns(
    ctx: &GpuContext,
    stitch: Option<(bool, f32, f32)>,
    width: usize,
) -> (Graph, NodeId, NodeId) {
    let (rows, features, tasks) = (6, 4, 3);
    let mut g = Graph::new(ctx);
    let x = g.input("x", &[rows, features], DType::F32);
    let xs = g.concat("x per task", &vec![x; tasks]).unwrap();
    let blocks = vec![
        TaskBlock {
            inputs: features,
            outputs: width
        };
        tasks
    ];
    let mut h = g
        .task_dense("columns.0", xs, &blocks, Activation::Tanh)
        .unwrap();
    if let Some((per_channel, diagonal, lr_scale)) = stitch {
        h = g
            .cross_stitch("stitch.0", h, tasks, per_channel, Some(diagonal), lr_scale)
            .unwrap();
    }
    let targets = crate::common::mse_heads(&mut g, "columns.1", h, tasks, width);
    (g, x, targets)
}

fn feed(ctx: &GpuContext, p: &Program, x: NodeId, targets: NodeId) {
    crate::common::randomize_inputs(ctx, p, &[x, targets], 12);
}

#[test]
fn identity_stitch_trains_exactly_like_independent_columns() {
    for ctx in contexts() {
        let run = |stitch| {
            let (g, x, t) = columns(ctx, stitch, 5);
            let mut p = Program::build(ctx, g, sgd(0.1), 5).unwrap();
            feed(ctx, &p, x, t);
            let mut losses = Vec::new();
            for _ in 0..10 {
                let r = p.step(ctx, StepOptions::TRAIN_AND_READ).unwrap();
                losses.push(r.losses.unwrap().wait(ctx).unwrap().losses);
            }
            losses
        };
        // α = I that never moves (learning-rate multiplier 0).
        let plain = run(None);
        assert_eq!(run(Some((false, 1.0, 0.0))), plain, "per-layer α = I");
        assert_eq!(run(Some((true, 1.0, 0.0))), plain, "per-channel α = I");
        assert!(
            plain[9].iter().zip(&plain[0]).all(|(b, a)| b < a),
            "training did not lower the losses"
        );
    }
}

#[test]
fn cross_stitch_gradients_match_finite_differences() {
    for ctx in contexts() {
        for (per_channel, width) in [(false, 5), (true, 5), (false, 8), (true, 8)] {
            let (g, x, t) = columns(ctx, Some((per_channel, 0.8, 1.0)), width);
            let mut p = Program::build(ctx, g, sgd(0.1), 6).unwrap();
            feed(ctx, &p, x, t);
            // Every α entry, and the first four of every other parameter.
            let indices: Vec<usize> = p
                .params()
                .layout
                .entries()
                .iter()
                .flat_map(|e| {
                    let n = if e.name.ends_with("alpha") {
                        e.len()
                    } else {
                        4.min(e.len())
                    };
                    e.offset..e.offset + n
                })
                .collect();
            let what = format!("per_channel={per_channel} width={width}");
            assert_gradients_match(ctx, &mut p, &indices, &what);
        }
    }
}

#[test]
fn alpha_learns_with_its_own_rate() {
    let ctx = &contexts()[0];
    let (g, x, t) = columns(ctx, Some((false, 0.9, 10.0)), 5);
    let mut p = Program::build(ctx, g, sgd(0.05), 7).unwrap();
    feed(ctx, &p, x, t);
    let e = p
        .params()
        .layout
        .entries()
        .iter()
        .find(|e| e.name == "stitch.0.alpha")
        .unwrap()
        .clone();
    let w = p
        .params()
        .layout
        .entries()
        .iter()
        .find(|e| e.name == "columns.1.weight")
        .unwrap()
        .clone();
    let before = p.params().values.to_f32_vec(ctx).unwrap();
    // Init: 0.9 on the diagonal, (1 − 0.9)/2 off it.
    let off = (1.0f32 - 0.9) / 2.0;
    assert_eq!(&before[e.offset..e.offset + 3], &[0.9, off, off]);
    p.step(ctx, StepOptions::default()).unwrap();
    let grads = p.params().read_grads(ctx).unwrap();
    let after = p.params().values.to_f32_vec(ctx).unwrap();
    for (i, lr) in [(e.offset + 1, 0.5f32), (w.offset + 1, 0.05)] {
        let want = before[i] - lr * grads[i];
        assert!(
            (after[i] - want).abs() <= 1e-6 * want.abs().max(1.0),
            "{i}: {} vs {want}",
            after[i]
        );
    }
}
