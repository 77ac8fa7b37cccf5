//! Adversarial auxiliary tasks (`arch::TaskSpec::adversarial`): the head
//! reads the shared trunk through a gradient reversal. Checked by finite
//! differences of the objective each parameter group should descend, and
//! by training: the trunk hides what the adversary needs.

use manytask::arch::{ModelSpec, Sharing, TaskKind, TaskSpec};
use manytask::graph::{Optimizer, Program, ReversalSchedule, StepOptions};
use manytask::types::Activation;
use manytask::types::AdamW;
use manytask::util::rng::Rng;

use crate::arch::{feed, small_spec};
use crate::common::{assert_gradients_match, central_differences, contexts, sample_indices, sgd};

#[test]
fn reversal_flips_the_adversarial_gradient_into_the_trunk_only() {
    let lambda = 0.7f32;
    for ctx in contexts() {
        for sharing in [
            Sharing::Hard { trunk: vec![8, 6] },
            Sharing::HardFused { trunk: vec![8, 6] },
        ] {
            // Two of three tasks adversarial: one with a hidden head layer,
            // one linear, so both first-layer groups split.
            let mut spec = small_spec(sharing.clone());
            spec.tasks[0].adversarial = true;
            spec.tasks[1].adversarial = true;
            let m = spec.build(ctx).unwrap();
            let mut p = Program::build(ctx, m.graph, sgd(0.1), 3).unwrap();
            feed(ctx, &p, &m.nodes, 5);
            p.set_reversal_lambda(lambda);
            let entries = p.params().layout.entries().to_vec();
            let is_trunk = |i: &usize| {
                entries.iter().any(|e| {
                    e.name.starts_with("trunk.") && (e.offset..e.offset + e.len()).contains(i)
                })
            };
            let (trunk, heads): (Vec<usize>, Vec<usize>) =
                sample_indices(&p, 60).into_iter().partition(is_trunk);
            assert!(
                trunk.len() >= 10 && heads.len() >= 10,
                "{sharing:?}: samples of both groups"
            );
            // The heads descend the plain objective Σ w_t L_t.
            assert_gradients_match(ctx, &mut p, &heads, &format!("{sharing:?} heads"));
            // The trunk descends Σ w_t L_t − λ Σ_adversarial w_t L_t.
            p.step(ctx, StepOptions::GRADIENTS).unwrap();
            let grads = p.params().read_grads(ctx).unwrap();
            let w = p.task_weights().to_f32_vec(ctx).unwrap();
            let reversed: Vec<f32> = w
                .iter()
                .enumerate()
                .map(|(t, &wt)| if t < 2 { -lambda * wt } else { wt })
                .collect();
            p.set_task_weights(ctx, &reversed).unwrap();
            let fd = central_differences(ctx, &mut p, &trunk);
            let top = trunk.iter().map(|&i| grads[i].abs()).fold(0.0, f32::max);
            assert!(top > 1e-3, "{sharing:?}: degenerate trunk gradients");
            for (&i, d) in trunk.iter().zip(&fd) {
                assert!(
                    (d - grads[i]).abs() < 2e-3 * top.max(0.1) + 1e-4,
                    "{sharing:?} on {}: trunk entry {i}: reversed finite difference {d}, gradient {}",
                    ctx.describe(),
                    grads[i]
                );
            }
        }
    }
}

#[test]
fn adversarial_tasks_need_a_shared_trunk() {
    let ctx = &contexts()[0];
    let mut spec = small_spec(Sharing::Soft {
        columns: vec![6],
        regularisers: vec![],
    });
    spec.tasks[2].adversarial = true;
    let e = spec
        .build(ctx)
        .err()
        .expect("columns have no trunk to reverse into");
    let text = e.to_string();
    assert!(
        text.contains("'bin' is adversarial") && text.contains("hard"),
        "{text}"
    );
}

#[test]
fn gradient_balancing_refuses_adversarial_tasks() {
    let ctx = &contexts()[0];
    let mut spec = small_spec(Sharing::Hard { trunk: vec![8] });
    for t in &mut spec.tasks {
        t.hidden.clear(); // every head linear: one first-layer op without adversaries
    }
    let gram = || manytask::graph::Balancing::Gram(manytask::graph::GramSpace::Representation);
    spec.clone()
        .build(ctx)
        .unwrap()
        .set_balancing(gram())
        .unwrap();
    spec.tasks[1].adversarial = true;
    let e = spec
        .clone()
        .build(ctx)
        .unwrap()
        .set_balancing(gram())
        .unwrap_err();
    assert!(e.to_string().contains("no adversarial task"), "{e}");
    // Every task adversarial: still one op, but behind the reversal.
    for t in &mut spec.tasks {
        t.adversarial = true;
    }
    let e = spec.build(ctx).unwrap().set_balancing(gram()).unwrap_err();
    assert!(e.to_string().contains("no adversarial task"), "{e}");
}

#[test]
fn reversal_schedules() {
    let g = ReversalSchedule::Ganin;
    assert_eq!(g.lambda(0, 100), 0.0);
    assert!((g.lambda(50, 100) - (2.0 / (1.0 + (-5f32).exp()) - 1.0)).abs() < 1e-6);
    assert!(g.lambda(100, 100) > 0.9999);
    assert_eq!(ReversalSchedule::Constant(0.3).lambda(7, 10), 0.3);
}

/// Main task: 2 regression outputs from features 1..16; nuisance: the
/// sign of feature 0, which the main task does not need. Returns the mean
/// (main, nuisance) losses over the first and the last 30 steps.
fn train_with_nuisance(adversarial: bool, steps: usize) -> [[f32; 2]; 2] {
    let ctx = &contexts()[0];
    let (rows, features) = (64, 16);
    let mut nuisance = TaskSpec::new("nuisance", TaskKind::Binary { labels: 1 }, &[8]);
    nuisance.adversarial = adversarial;
    let spec = ModelSpec {
        init: manytask::types::WeightInit::Glorot,
        rows,
        inputs: features,
        activation: Activation::Tanh,
        sharing: Sharing::Hard { trunk: vec![16] },
        tasks: vec![
            TaskSpec::new("main", TaskKind::Regression { outputs: 2 }, &[]),
            nuisance,
        ],
    };
    let m = spec.build(ctx).unwrap();
    let (x, targets) = (m.nodes.x, m.nodes.targets.unwrap());
    let adam = Optimizer::AdamW(AdamW {
        lr: 1e-2,
        ..AdamW::default()
    });
    let mut p = Program::build(ctx, m.graph, adam, 1).unwrap();
    let mut rng = Rng::new(42);
    let mut curve = Vec::with_capacity(steps);
    for s in 0..steps {
        let bx = rng.uniform_vec(rows * features, -1.0, 1.0);
        let mut by = Vec::with_capacity(rows * 3);
        for r in bx.chunks(features) {
            by.push(r[1..8].iter().sum::<f32>() / 2.0);
            by.push(r[8..].iter().sum::<f32>() / 2.0);
            by.push(f32::from(r[0] > 0.0));
        }
        p.input(x).unwrap().write_f32(ctx, &bx).unwrap();
        p.input(targets).unwrap().write_f32(ctx, &by).unwrap();
        p.set_reversal_lambda(ReversalSchedule::Ganin.lambda(s, steps));
        let r = p.step(ctx, StepOptions::TRAIN_AND_READ).unwrap();
        curve.push(r.losses.unwrap().wait(ctx).unwrap().losses);
    }
    let mean = |c: &[Vec<f32>]| -> [f32; 2] {
        [0, 1].map(|t| c.iter().map(|l| l[t]).sum::<f32>() / c.len() as f32)
    };
    [mean(&curve[..30]), mean(&curve[steps - 30..])]
}

#[test]
fn the_trunk_hides_what_an_adversarial_task_needs() {
    let steps = 400;
    let [plain_first, plain_last] = train_with_nuisance(false, steps);
    let [adv_first, adv_last] = train_with_nuisance(true, steps);
    eprintln!(
        "plain auxiliary: main {:.4} → {:.4}, nuisance {:.4} → {:.4}; adversarial: main {:.4} → {:.4}, nuisance {:.4} → {:.4}",
        plain_first[0], plain_last[0], plain_first[1], plain_last[1], adv_first[0], adv_last[0], adv_first[1], adv_last[1]
    );
    // The main task learns either way.
    assert!(
        plain_last[0] < 0.2 * plain_first[0],
        "plain: main task did not learn"
    );
    assert!(
        adv_last[0] < 0.2 * adv_first[0],
        "adversarial: main task did not learn"
    );
    // A plain auxiliary head learns the nuisance; behind the reversal the
    // trunk removes it and the head stays near chance (BCE ln 2 ≈ 0.69).
    assert!(plain_last[1] < 0.3, "plain nuisance BCE {}", plain_last[1]);
    assert!(
        adv_last[1] > 2.0 * plain_last[1] && adv_last[1] > 0.5,
        "adversarial nuisance BCE {}",
        adv_last[1]
    );
}
