//! The newer balancing methods' known answers: the GPU loss rules (GLS,
//! STCH, FAMO) and GradDrop on hand-computed cases, GradVac against
//! explicit vector surgery, and the host state of STCH, FAMO, ExcessMTL
//! and MoCo step by step.

use manytask::gpu::Tensor;
use manytask::kernels::weighting::{graddrop, loss_rule, LossRule};
use manytask::reference::weighting::graddrop_uniform;
use manytask::util::rng::Rng;
use manytask::weighting::{
    gradvac, ExcessMtlState, FamoState, Gram, MocoOptions, MocoState, StchState,
};

use crate::common::contexts;

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w} (all {got:?})"
        );
    }
}

/// The loss kernel's weights the GPU computes for `rule` and `losses`.
fn gpu_weights(ctx: &manytask::GpuContext, rule: &LossRule, losses: &[f32]) -> Vec<f64> {
    let t = losses.len();
    let encoded = rule.encode(t).unwrap();
    let r = Tensor::from_f32(ctx, "rule", &[encoded.len()], &encoded).unwrap();
    let l = Tensor::from_f32(ctx, "losses", &[t], losses).unwrap();
    let out = Tensor::zeros(ctx, "weights", &[t]).unwrap();
    let mut rec = ctx.recorder("loss rule");
    loss_rule(&mut rec, &r, &l, &out).unwrap();
    rec.submit().unwrap();
    out.to_f32_vec(ctx)
        .unwrap()
        .iter()
        .map(|&v| v as f64)
        .collect()
}

#[test]
fn gls_weights_are_the_geometric_means_gradient() {
    for ctx in contexts() {
        // (1·4)^{1/2} = 2: c = 2/(2·1), 2/(2·4).
        let c = gpu_weights(ctx, &LossRule::GeometricMean, &[1.0, 4.0]);
        close("gls (1, 4)", &c, &[1.0, 0.25], 1e-6);
        // Equal losses: c = L/(T·L) = 1/T.
        let c = gpu_weights(ctx, &LossRule::GeometricMean, &[2.0, 2.0, 2.0]);
        close("gls (2, 2, 2)", &c, &[1.0 / 3.0; 3], 1e-6);
    }
}

#[test]
fn stch_weights_are_a_smooth_maximums_gradient() {
    for ctx in contexts() {
        // Warm-up: c = 1/L.
        let c = gpu_weights(ctx, &LossRule::Log, &[2.0, 0.5]);
        close("log", &c, &[0.5, 2.0], 1e-6);
        // μ = ½, n = (1, 1), L = (2, 1): e^{2 log L} = (4, 1), softmax
        // (0.8, 0.2), c = 2·(0.8/2, 0.2/1).
        let rule = LossRule::SmoothMax {
            mu: 0.5,
            nadir: vec![1.0, 1.0],
        };
        let c = gpu_weights(ctx, &rule, &[2.0, 1.0]);
        close("stch", &c, &[0.8, 0.4], 1e-6);
        // The nadir point normalises: L = n gives softmax ½, c = 2·½/L.
        let rule = LossRule::SmoothMax {
            mu: 0.5,
            nadir: vec![2.0, 8.0],
        };
        let c = gpu_weights(ctx, &rule, &[2.0, 8.0]);
        close("stch at the nadir", &c, &[0.5, 0.125], 1e-6);
    }
}

#[test]
fn stch_runs_its_schedule() {
    let mut s = StchState::new(2, 1);
    assert_eq!(s.rule(1.0), LossRule::Log);
    assert!(!s.collecting());
    s.observe(&[9.0, 9.0]).unwrap(); // epoch 0: not summed
    s.end_epoch().unwrap();
    assert!(s.collecting());
    s.observe(&[2.0, 4.0]).unwrap();
    s.observe(&[4.0, 8.0]).unwrap();
    assert_eq!(s.rule(1.0), LossRule::Log);
    s.end_epoch().unwrap();
    assert_eq!(s.nadir(), Some(&[3.0, 6.0][..]));
    assert_eq!(
        s.rule(0.5),
        LossRule::SmoothMax {
            mu: 0.5,
            nadir: vec![3.0, 6.0]
        }
    );
    // A non-positive mean loss cannot be a nadir point.
    let mut bad = StchState::new(1, 0);
    bad.observe(&[0.0]).unwrap();
    assert!(bad.end_epoch().unwrap_err().to_string().contains("nadir"));
}

#[test]
fn famo_weights_and_logit_step_match_a_hand_computation() {
    for ctx in contexts() {
        // z = (¼, ¾), L = (1, 3): q = (¼, ¼), c = (½, ½).
        let rule = LossRule::Famo {
            z: vec![0.25, 0.75],
            min_losses: vec![0.0, 0.0],
        };
        let c = gpu_weights(ctx, &rule, &[1.0, 3.0]);
        close("famo", &c, &[0.5, 0.5], 1e-6);
    }
    // One step from ξ = 0: task 0's loss fell by e (δ = (1, 0)), task 1's
    // stayed. d = z⊙(δ − z·δ) = (¼, −¼); Adam's first step moves each ξ
    // by lr against the sign of d: ξ = (−lr, lr), so the task that did
    // not improve gains weight.
    let mut f = FamoState::new(2);
    let before = [1.0f32, 1.0];
    let after = [(-1.0f32).exp(), 1.0];
    f.update(&before, &after, 0.025, 0.0).unwrap();
    let z = f.z();
    let want1 = 0.05f64.exp() / (1.0 + 0.05f64.exp());
    close("z after one step", &z, &[1.0 - want1, want1], 1e-6);
    assert!(f.update(&[1.0, -2.0], &[1.0, 1.0], 0.025, 0.0).is_err());
}

/// GradVac on explicit vectors (the paper's Algorithm 1 over the whole
/// model), with the same shuffle as the host solver.
fn gradvac_explicit(grads: &[Vec<f64>], targets: &mut [f64], beta: f64, rng: &mut Rng) -> Vec<f64> {
    let t = grads.len();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut sum = vec![0.0; grads[0].len()];
    for i in 0..t {
        let mut g = grads[i].clone();
        let mut order: Vec<usize> = (0..t).filter(|&j| j != i).collect();
        for k in (1..order.len()).rev() {
            order.swap(k, (rng.next_u64() % (k as u64 + 1)) as usize);
        }
        for j in order {
            let (ni, nj) = (dot(&g, &g).sqrt(), dot(&grads[j], &grads[j]).sqrt());
            let cos = dot(&g, &grads[j]) / (ni * nj + 1e-8);
            let target = targets[i * t + j];
            if cos < target {
                let w = ni
                    * (target * (1.0 - cos * cos).sqrt() - cos * (1.0 - target * target).sqrt())
                    / (nj * (1.0 - target * target).sqrt() + 1e-8);
                g.iter_mut().zip(&grads[j]).for_each(|(x, y)| *x += w * y);
            }
            targets[i * t + j] = (1.0 - beta) * target + beta * cos;
        }
        sum.iter_mut().zip(&g).for_each(|(s, x)| *s += x);
    }
    sum
}

#[test]
fn gradvac_matches_explicit_vectors_over_steps() {
    // The first step with targets 0 is PCGrad: g₁ = (1,0), g₂ = (−1,1)
    // give c = (2, 1.5).
    let grads = vec![vec![1.0, 0.0], vec![-1.0, 1.0]];
    let mut targets = vec![0.0; 4];
    let c = gradvac(
        &Gram::from_gradients(&grads).unwrap(),
        &mut targets,
        0.5,
        &mut Rng::new(0),
    );
    close("first step", &c, &[2.0, 1.5], 1e-7);
    close(
        "targets",
        &targets,
        &[0.0, -0.5f64.sqrt() / 2.0, -0.5f64.sqrt() / 2.0, 0.0],
        1e-7,
    );
    // Then random gradients, several steps, targets carried over.
    for (seed, t) in [(1u64, 2usize), (2, 4), (3, 7)] {
        let mut host = vec![0.0; t * t];
        let mut explicit = vec![0.0; t * t];
        let (mut r1, mut r2) = (Rng::new(seed), Rng::new(seed));
        let mut data = Rng::new(seed + 100);
        for step in 0..4 {
            let grads: Vec<Vec<f64>> = (0..t)
                .map(|_| (0..6).map(|_| data.uniform(-1.0, 1.0) as f64).collect())
                .collect();
            let c = gradvac(
                &Gram::from_gradients(&grads).unwrap(),
                &mut host,
                0.5,
                &mut r1,
            );
            let want = gradvac_explicit(&grads, &mut explicit, 0.5, &mut r2);
            let mut got = vec![0.0; 6];
            for (ct, g) in c.iter().zip(&grads) {
                got.iter_mut().zip(g).for_each(|(o, x)| *o += ct * x);
            }
            close(&format!("T={t} step {step}"), &got, &want, 1e-9);
            close(
                &format!("T={t} step {step} targets"),
                &host,
                &explicit,
                1e-9,
            );
        }
    }
}

#[test]
fn graddrop_keeps_the_sign_the_draw_picks() {
    for ctx in contexts() {
        // One feature, two tasks: s = (1, −3), purity P = ½(1 − 2/4) = ¼.
        // U > P keeps the negative gradient, U < P the positive one.
        let mut seen = [false; 2];
        for seed in 1u32..=40 {
            let per_task = Tensor::from_f32(ctx, "g", &[2, 1, 1], &[1.0, -3.0]).unwrap();
            let h = Tensor::from_f32(ctx, "h", &[1, 1], &[0.5]).unwrap();
            let out = Tensor::zeros(ctx, "out", &[1, 1]).unwrap();
            let mut rec = ctx.recorder("graddrop");
            graddrop(&mut rec, &per_task, &h, &out, seed, 0.0).unwrap();
            rec.submit().unwrap();
            let got = out.to_f32_vec(ctx).unwrap()[0];
            let u = graddrop_uniform(seed, 0);
            let want = if u > 0.25 { -3.0 } else { 1.0 };
            assert_eq!(got, want, "seed {seed}, U {u}");
            seen[usize::from(u > 0.25)] = true;
        }
        assert_eq!(seen, [true, true], "40 draws all fell on one side of P");
        // leak 1 keeps everything: the plain sum.
        let per_task = Tensor::from_f32(ctx, "g", &[2, 1, 1], &[1.0, -3.0]).unwrap();
        let h = Tensor::from_f32(ctx, "h", &[1, 1], &[0.5]).unwrap();
        let out = Tensor::zeros(ctx, "out", &[1, 1]).unwrap();
        let mut rec = ctx.recorder("graddrop");
        graddrop(&mut rec, &per_task, &h, &out, 7, 1.0).unwrap();
        rec.submit().unwrap();
        assert_eq!(out.to_f32_vec(ctx).unwrap(), vec![-2.0]);
        let mut rec = ctx.recorder("graddrop");
        let e = graddrop(&mut rec, &per_task, &h, &out, 7, 1.5).unwrap_err();
        assert!(e.to_string().contains("leak"), "{e}");
    }
}

#[test]
fn excess_mtl_steps_toward_the_larger_excess_risk() {
    let mut s = ExcessMtlState::new(2);
    // The first estimate is the scale: weights stay 1.
    close(
        "first",
        &s.step(&[1.0, 2.0], 0.01).unwrap(),
        &[1.0, 1.0],
        0.0,
    );
    // Ratios (2, 1): λ ∝ (e^{0.02}, e^{0.01}), Σ λ = 2.
    let (a, b) = (0.02f64.exp(), 0.01f64.exp());
    let want = [2.0 * a / (a + b), 2.0 * b / (a + b)];
    close("second", &s.step(&[2.0, 2.0], 0.01).unwrap(), &want, 1e-12);
    assert!(s.step(&[f32::NAN, 1.0], 0.01).is_err());
}

#[test]
fn moco_lambda_takes_a_softmax_projected_step() {
    let o = MocoOptions::default();
    let mut s = MocoState::new(2);
    assert_eq!(s.next_beta(&o), 0.5);
    // Step 1: γ₁ = 0.1, Gram diag(1, 4), λ = ½: λ − γ·Mλ = (0.45, 0.3).
    let gram = Gram::from_f64(2, vec![1.0, 0.0, 0.0, 4.0]).unwrap();
    let l = s.step(&gram, &o);
    let (a, b) = (0.45f64.exp(), 0.3f64.exp());
    close("λ", &l, &[a / (a + b), b / (a + b)], 1e-12);
    // β₂ = 0.5/√2.
    assert!((s.next_beta(&o) - 0.5 / 2f64.sqrt()).abs() < 1e-15);
}
