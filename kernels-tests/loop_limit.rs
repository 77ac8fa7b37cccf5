//! Mesa's llvmpipe / lavapipe stop a shader invocation after 65535 loop
//! iterations in all and return what was computed so far: a GEMM with
//! K = 65536 sums 65535 terms. A GEMM past the cap splits K into chunks
//! under it and adds them in order (split-K, deterministic); the
//! cross-stitch dα sums row chunks and then the chunks (two stages); other
//! launchers whose loops grow with the data refuse such launches on those
//! adapters (`Error::LoopLimit`).

use manytask::gpu::{GpuContext, Tensor};
use manytask::kernels::cross_stitch::{stitch_alpha_grad, Stitch};
use manytask::kernels::fused_mlp::{trunk_backward, TrunkGrads, TrunkSpec};
use manytask::kernels::gemm::{gemm, gemm_with, Epilogue, Layout, Variant};
use manytask::kernels::loss::{
    masked_losses, LossInputs, LossKind, LossOutputs, LossTable, LossTask,
};
use manytask::reference::fused_mlp::TrunkLayer;
use manytask::types::Activation;
use manytask::Error;

use crate::common::contexts;

/// C [1, 1] = ones[1, k] · ones[k, 1] with `variant` (None: autotuned).
fn dot_of_ones(ctx: &GpuContext, k: usize, variant: Option<Variant>) -> manytask::Result<f32> {
    let a = Tensor::from_f32(ctx, "a", &[1, k], &vec![1.0; k])?;
    let b = Tensor::from_f32(ctx, "b", &[k, 1], &vec![1.0; k])?;
    let c = Tensor::zeros(ctx, "c", &[1, 1])?;
    let mut rec = ctx.recorder("dot");
    match variant {
        Some(v) => gemm_with(&mut rec, v, Layout::NN, &a, &b, &c, &Epilogue::default())?,
        None => gemm(&mut rec, Layout::NN, &a, &b, &c, &Epilogue::default())?,
    }
    rec.submit()?;
    Ok(c.to_f32_vec(ctx)?[0])
}

fn is_loop_limit(e: &Error, what: &str) -> bool {
    matches!(e, Error::LoopLimit { .. })
        && e.to_string().contains(what)
        && e.to_string().contains("65535")
}

#[test]
fn gemms_past_the_loop_cap_split_k_and_stay_exact() {
    for ctx in contexts() {
        let Some(limit) = ctx.loop_limit() else {
            assert!(!ctx.describe().contains("llvmpipe"));
            assert_eq!(manytask::kernels::gemm::split_k_chunk(ctx, 1 << 20), None);
            continue;
        };
        assert_eq!(limit, 65_535);
        assert_eq!(
            manytask::kernels::gemm::split_k_chunk(ctx, 65_536),
            Some(32_768)
        );
        // At the cap and past it, pinned or autotuned: exact (split-K
        // runs chunks under the cap and adds them in order).
        for k in [65_535, 65_536, 200_000] {
            for variant in [Some(Variant::RegisterBlocked), Some(Variant::Tiled), None] {
                assert_eq!(
                    dot_of_ones(ctx, k, variant).unwrap(),
                    k as f32,
                    "K = {k} {variant:?}"
                );
            }
        }
    }
}

/// Split-K at awkward shapes (K just past the cap, odd M and N, batched,
/// every layout, beta, bias and activation) against the CPU reference.
#[test]
fn split_k_matches_the_reference_at_awkward_shapes() {
    use manytask::reference::gemm::{gemm as reference, GemmProblem};
    for ctx in contexts() {
        if ctx.loop_limit().is_none() {
            continue;
        }
        let (batch, m, n, k) = (2, 3, 5, 65_537);
        for layout in [Layout::NN, Layout::NT, Layout::TN] {
            let av = crate::common::data(11, batch * m * k);
            let bv = crate::common::data(12, batch * k * n);
            let cv = crate::common::data(13, batch * m * n);
            let bias = crate::common::data(14, n);
            let (ar, ac) = layout.a_stored(m, k);
            let (br, bc) = layout.b_stored(k, n);
            let a = Tensor::from_f32(ctx, "a", &[batch, ar, ac], &av).unwrap();
            let b = Tensor::from_f32(ctx, "b", &[batch, br, bc], &bv).unwrap();
            let c = Tensor::from_f32(ctx, "c", &[batch, m, n], &cv).unwrap();
            let bt = Tensor::from_f32(ctx, "bias", &[n], &bias).unwrap();
            let epi = Epilogue {
                alpha: 0.5,
                beta: Some(0.25),
                bias: Some(&bt),
                act: Activation::Tanh,
                z_out: None,
            };
            let mut rec = ctx.recorder("split-k");
            gemm(&mut rec, layout, &a, &b, &c, &epi).unwrap();
            rec.submit().unwrap();
            let got = c.to_f32_vec(ctx).unwrap();
            let want = reference(&GemmProblem {
                layout,
                batch,
                m,
                n,
                k,
                a: &av,
                a_batched: true,
                b: &bv,
                b_batched: true,
                alpha: 0.5,
                beta: Some((0.25, &cv)),
                bias: Some((&bias, false)),
                act: Activation::Tanh,
            });
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                // tanh of sums of ~65k products of values in [-1, 1].
                assert!(
                    (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "{layout} [{i}]: {g} vs {w} on {}",
                    ctx.describe()
                );
            }
        }
    }
}

/// Cross-stitch dα sums row chunks, then the chunks' partials (two
/// stages, neither loop near the cap): exact past 65,535 rows, per layer
/// and per channel, scalar (C = 3) and vec4 (C = 4) lanes. Small
/// integers keep every partial sum exact in f32, so any order of an
/// exact sum must give the reference bit for bit.
#[test]
fn stitch_alpha_grad_past_the_loop_cap_is_exact() {
    use manytask::reference::cross_stitch::stitch_alpha_grad as reference;
    for ctx in contexts() {
        let (rows, tasks) = (70_001, 2);
        for channels in [3, 4] {
            let n = rows * tasks * channels;
            let xv: Vec<f32> = (0..n).map(|i| (i % 3) as f32).collect();
            let dyv: Vec<f32> = (0..n).map(|i| (i % 5) as f32 - 2.0).collect();
            let x = Tensor::from_f32(ctx, "x", &[rows, tasks * channels], &xv).unwrap();
            let dy = Tensor::from_f32(ctx, "dy", &[rows, tasks * channels], &dyv).unwrap();
            for per_channel in [false, true] {
                let unit = Stitch { tasks, per_channel };
                let dalpha = Tensor::zeros(ctx, "dalpha", &unit.alpha_shape(channels)).unwrap();
                let mut rec = ctx.recorder("stitch");
                stitch_alpha_grad(&mut rec, &unit, &x, &dy, &dalpha, false).unwrap();
                rec.submit().unwrap();
                assert_eq!(
                    dalpha.to_f32_vec(ctx).unwrap(),
                    reference(&xv, &dyv, rows, tasks, channels, per_channel),
                    "{} C={channels} per_channel={per_channel}",
                    ctx.describe()
                );
            }
        }
    }
}

/// The sluice layer stitch's dβ takes the same two stages: exact past
/// 65,535 rows too (small integers: every order of the sum is exact).
#[test]
fn layer_stitch_beta_grad_past_the_loop_cap_is_exact() {
    use manytask::kernels::layer_stitch::{layer_stitch_beta_grad, LayerStitch};
    use manytask::reference::layer_stitch::beta_grad as reference;
    for ctx in contexts() {
        let (rows, tasks, layers) = (70_001, 2, 5);
        for channels in [3, 4] {
            let w = tasks * channels;
            let hv: Vec<f32> = (0..rows * layers * w).map(|i| (i % 3) as f32).collect();
            let dzv: Vec<f32> = (0..rows * w).map(|i| (i % 5) as f32 - 2.0).collect();
            let h = Tensor::from_f32(ctx, "h", &[rows, layers * w], &hv).unwrap();
            let dz = Tensor::from_f32(ctx, "dz", &[rows, w], &dzv).unwrap();
            let dbeta = Tensor::zeros(ctx, "dbeta", &[tasks, layers]).unwrap();
            let unit = LayerStitch { tasks, layers };
            let mut rec = ctx.recorder("layer stitch");
            layer_stitch_beta_grad(&mut rec, &unit, &h, &dz, &dbeta, false).unwrap();
            rec.submit().unwrap();
            assert_eq!(
                dbeta.to_f32_vec(ctx).unwrap(),
                reference(&hv, &dzv, rows, tasks, layers, channels),
                "{} C={channels}",
                ctx.describe()
            );
        }
    }
}

/// A dense layer's weight gradient with a batch past the cap: dW = Xᵀ·D
/// (K = batch = 70 001) with the ReLU prologue (D = G ⊙ [Y > 0]) and the
/// bias-gradient fusion, split into chunks under the cap; integer data
/// keeps every partial sum exact, so dW and db must equal the reference.
#[test]
fn a_dense_weight_gradient_past_the_cap_is_exact_with_the_bias_gradient() {
    use manytask::kernels::gemm::{gemm_fused, Fusion, Operand, Prologue, Saved};
    let (rows, inputs, outputs) = (70_001, 5, 3);
    let ints = |seed: u64, len: usize| -> Vec<f32> {
        crate::common::data(seed, len)
            .iter()
            .map(|v| (v * 2.5).round().clamp(-2.0, 2.0))
            .collect()
    };
    let x = ints(21, rows * inputs);
    let g = ints(22, rows * outputs);
    let y = ints(23, rows * outputs);
    let d: Vec<f64> = g
        .iter()
        .zip(&y)
        .map(|(g, y)| if *y > 0.0 { *g as f64 } else { 0.0 })
        .collect();
    let mut dw = vec![0f64; inputs * outputs];
    let mut db = vec![0f64; outputs];
    for r in 0..rows {
        for j in 0..outputs {
            db[j] += d[r * outputs + j];
            for i in 0..inputs {
                dw[i * outputs + j] += x[r * inputs + i] as f64 * d[r * outputs + j];
            }
        }
    }
    for ctx in contexts() {
        if ctx.loop_limit().is_none() {
            continue;
        }
        for variant in [
            None,
            Some(Variant::RegisterBlocked),
            "sgb:16x2k4".parse().ok(),
        ] {
            if variant.is_some_and(|v: Variant| !v.available(ctx)) {
                continue;
            }
            let xt = Tensor::from_f32(ctx, "x", &[rows, inputs], &x).unwrap();
            let gt = Tensor::from_f32(ctx, "g", &[rows, outputs], &g).unwrap();
            let yt = Tensor::from_f32(ctx, "y", &[rows, outputs], &y).unwrap();
            let dwt = Tensor::zeros(ctx, "dW", &[inputs, outputs]).unwrap();
            let dbt = Tensor::zeros(ctx, "db", &[outputs]).unwrap();
            let fusion = Fusion {
                prologue: Some(Prologue {
                    operand: Operand::B,
                    saved: Saved::Output(&yt),
                    act: Activation::Relu,
                }),
                bias_grad: Some(&dbt),
            };
            let mut rec = ctx.recorder("dW past the cap");
            gemm_fused(
                &mut rec,
                variant,
                Layout::TN,
                &xt,
                &gt,
                &dwt,
                &Epilogue::default(),
                &fusion,
            )
            .unwrap();
            assert!(rec.dispatch_count() >= 3, "split into chunks under the cap");
            rec.submit().unwrap();
            let want_dw: Vec<f32> = dw.iter().map(|v| *v as f32).collect();
            let want_db: Vec<f32> = db.iter().map(|v| *v as f32).collect();
            assert_eq!(
                dwt.to_f32_vec(ctx).unwrap(),
                want_dw,
                "dW {variant:?} on {}",
                ctx.describe()
            );
            assert_eq!(
                dbt.to_f32_vec(ctx).unwrap(),
                want_db,
                "db {variant:?} on {}",
                ctx.describe()
            );
        }
    }
}

#[test]
fn row_loops_past_the_loop_cap_are_refused() {
    for ctx in contexts().iter().filter(|c| c.loop_limit().is_some()) {
        let rows = 70_000;
        let x = Tensor::zeros(ctx, "x", &[rows, 2]).unwrap();
        // The fused trunk's weight gradients walk every row.
        let layer = TrunkLayer {
            outputs: 2,
            act: Activation::Relu,
            bias: true,
        };
        let trunk = TrunkSpec::packed(ctx, 2, &[layer]).unwrap();
        let zeros = |n: usize| Tensor::zeros(ctx, "z", &[n]).unwrap();
        let (params, acts, deltas, grads) = (
            zeros(trunk.param_len()),
            zeros(trunk.acts_len(rows)),
            zeros(trunk.acts_len(rows)),
            zeros(trunk.param_len()),
        );
        let dy = Tensor::zeros(ctx, "dy", &[rows, 2]).unwrap();
        let out = TrunkGrads {
            dx: None,
            grads: &grads,
            deltas: &deltas,
            accumulate: false,
            accumulate_dx: false,
        };
        let mut rec = ctx.recorder("trunk");
        let e = trunk_backward(&mut rec, &trunk, &x, &params, &acts, None, &dy, &out).unwrap_err();
        assert!(is_loop_limit(&e, "70000 rows"), "{e}");
    }
}

#[test]
fn a_loss_over_many_rows_and_classes_is_refused_past_the_cap() {
    for ctx in contexts().iter().filter(|c| c.loop_limit().is_some()) {
        // 8192 rows × 600 classes: 32 rows per lane × ~2400 passes.
        let (rows, width) = (8192, 600);
        let task = LossTask {
            kind: LossKind::MeanSquaredError,
            reduction: manytask::types::Reduction::Mean,
            rows,
            width,
            logit_offset: 0,
            logit_ld: width,
            target_offset: 0,
            target_ld: width,
            mask_offset: None,
        };
        let table = LossTable::new(ctx, &[task]).unwrap();
        let z = Tensor::zeros(ctx, "z", &[rows, width]).unwrap();
        let g = Tensor::zeros(ctx, "g", &[rows, width]).unwrap();
        let up = Tensor::zeros(ctx, "up", &[1]).unwrap();
        let losses = Tensor::zeros(ctx, "losses", &[1]).unwrap();
        let stats = Tensor::from_u32(ctx, "stats", &[1, 4], &[0; 4]).unwrap();
        let inp = LossInputs {
            logits: &z,
            targets: Some(&z),
            labels: None,
            masks: None,
            upstream: &up,
        };
        let out = LossOutputs {
            grads: &g,
            losses: &losses,
            stats: &stats,
        };
        let mut rec = ctx.recorder("loss");
        let e = masked_losses(&mut rec, &table, &inp, &out).unwrap_err();
        assert!(is_loop_limit(&e, "8192 rows × 600 outputs"), "{e}");
    }
}
