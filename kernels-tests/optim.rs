//! Fused optimisers: every buffer they update against the CPU reference at
//! every size, a multi-step run, and argument errors.

use manytask::gpu::Tensor;
use manytask::kernels::optim::{self, AdamW, Sgd};
use manytask::reference::optim as reference;
use manytask::Error;

use crate::common::{check_kernel, contexts, data};

#[test]
fn sgd_step_matches_reference_at_every_size() {
    check_kernel("optim::sgd_step");
}

#[test]
fn adamw_step_matches_reference_at_every_size() {
    check_kernel("optim::adamw_step");
}

/// Ten AdamW steps recorded into ONE submit (steps 1..=10, changing
/// gradients) track the reference run step by step.
#[test]
fn ten_adamw_steps_in_one_submit_track_the_reference() {
    let n = 1000;
    let cfg = AdamW::default();
    for ctx in &crate::common::private_contexts() {
        let theta0 = data(1, n);
        let grads: Vec<Vec<f32>> = (0..10).map(|s| data(100 + s, n)).collect();
        let param = Tensor::from_f32(ctx, "θ", &[n], &theta0).unwrap();
        let m = Tensor::zeros(ctx, "m", &[n]).unwrap();
        let v = Tensor::zeros(ctx, "v", &[n]).unwrap();
        let grad_tensors: Vec<Tensor> = grads
            .iter()
            .map(|g| Tensor::from_f32(ctx, "g", &[n], g).unwrap())
            .collect();
        let before = ctx.counters();
        let mut rec = ctx.recorder("10 steps");
        for (s, g) in grad_tensors.iter().enumerate() {
            optim::adamw_step(&mut rec, &cfg, s as u32 + 1, &param, g, &m, &v).unwrap();
        }
        rec.submit().unwrap();
        let delta = ctx.counters().since(&before);
        assert_eq!((delta.dispatches, delta.submits), (10, 1));

        let (mut theta, mut mh, mut vh) = (theta0.clone(), vec![0.0; n], vec![0.0; n]);
        for (s, g) in grads.iter().enumerate() {
            reference::adamw_step(&cfg, s as u32 + 1, &mut theta, g, &mut mh, &mut vh);
        }
        let got = param.to_f32_vec(ctx).unwrap();
        let worst = got
            .iter()
            .zip(&theta)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst < 1e-6,
            "θ drifted {worst} from the reference on {}",
            ctx.describe()
        );
        // And it moved: lr 1e-3 for 10 steps.
        let moved = got
            .iter()
            .zip(&theta0)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(moved > 5e-3, "θ barely moved ({moved})");
    }
}

#[test]
fn bad_optimiser_arguments_are_errors() {
    let ctx = &contexts()[0];
    let p = Tensor::zeros(ctx, "θ", &[4]).unwrap();
    let g = Tensor::zeros(ctx, "g", &[5]).unwrap();
    let s = Tensor::zeros(ctx, "s", &[4]).unwrap();
    let s2 = Tensor::zeros(ctx, "s2", &[4]).unwrap();
    let mut rec = ctx.recorder("bad optim");
    let sgd = Sgd {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.0,
    };
    let err = optim::sgd_step(&mut rec, &sgd, &p, &g, &s).unwrap_err();
    assert!(
        matches!(err, Error::Shape { .. }) && err.to_string().contains("[5]"),
        "{err}"
    );
    let nan_lr = Sgd {
        lr: f32::NAN,
        ..sgd
    };
    let ok_g = Tensor::zeros(ctx, "g", &[4]).unwrap();
    assert!(optim::sgd_step(&mut rec, &nan_lr, &p, &ok_g, &s)
        .unwrap_err()
        .to_string()
        .contains("lr"));
    let adam = AdamW::default();
    let err = optim::adamw_step(&mut rec, &adam, 0, &p, &ok_g, &s, &s2).unwrap_err();
    assert!(err.to_string().contains("step must be"), "{err}");
    let bad_beta = AdamW { beta2: 1.0, ..adam };
    assert!(optim::adamw_step(&mut rec, &bad_beta, 1, &p, &ok_g, &s, &s2).is_err());
    // m and v the same tensor: two writable bindings of one buffer.
    let err = optim::adamw_step(&mut rec, &adam, 1, &p, &ok_g, &s, &s).unwrap_err();
    assert!(matches!(err, Error::Aliasing { .. }), "{err:?}");
    assert_eq!(rec.dispatch_count(), 0);
}
