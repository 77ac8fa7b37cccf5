//! Host task-balancing solvers (no GPU): known answers written out by hand,
//! brute-force grids over the simplex, and the defining property of each
//! method checked on explicit gradient vectors rebuilt from the coefficients.

use manytask::util::rng::Rng;
use manytask::weighting::{
    self, cagrad, cagrad_objective, db_mtl, fairgrad, imtl_g, mgda, min_norm, min_norm_two,
    nash_mtl, pcgrad, rlw_weights, uncertainty_grad, uncertainty_loss, uncertainty_loss_weights,
    CaGradRescale, DwaState, GradNormMode, GradNormState, GradNormUpdate, Gram, MgdaNormalisation,
    MgdaSpace, SolverOptions, UncertaintyInit, Weighting,
};
use manytask::Error;

/// `T` random gradient vectors of length `dim`, entries in [-1, 1).
fn random_grads(seed: u64, t: usize, dim: usize) -> Vec<Vec<f64>> {
    let mut rng = Rng::new(seed);
    (0..t)
        .map(|_| (0..dim).map(|_| rng.uniform(-1.0, 1.0) as f64).collect())
        .collect()
}

/// `Σ_t c_t g_t` as an explicit vector.
fn combine(c: &[f64], grads: &[Vec<f64>]) -> Vec<f64> {
    let mut out = vec![0.0; grads[0].len()];
    for (ct, g) in c.iter().zip(grads) {
        for (o, x) in out.iter_mut().zip(g) {
            *o += ct * x;
        }
    }
    out
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn gram(grads: &[Vec<f64>]) -> Gram {
    Gram::from_gradients(grads).unwrap()
}

fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w} (all: {got:?})"
        );
    }
}

fn assert_on_simplex(what: &str, w: &[f64]) {
    assert!(
        w.iter().all(|&x| x >= 0.0),
        "{what} has a negative entry: {w:?}"
    );
    let sum: f64 = w.iter().sum();
    assert!((sum - 1.0).abs() < 1e-12, "{what} sums to {sum}: {w:?}");
}

/// Points of the simplex for T = 2 or 3 on a grid of step 1/steps.
fn simplex_grid(t: usize, steps: usize) -> Vec<Vec<f64>> {
    let h = 1.0 / steps as f64;
    match t {
        2 => (0..=steps)
            .map(|i| vec![i as f64 * h, 1.0 - i as f64 * h])
            .collect(),
        3 => (0..=steps)
            .flat_map(|i| (0..=steps - i).map(move |j| (i, j)))
            .map(|(i, j)| {
                let (a, b) = (i as f64 * h, j as f64 * h);
                vec![a, b, (1.0 - a - b).max(0.0)]
            })
            .collect(),
        _ => unreachable!("grids for T = 2, 3 only"),
    }
}

// ---------------------------------------------------------------- Gram

#[test]
fn gram_rejects_bad_input_with_errors() {
    assert!(matches!(
        Gram::from_f64(2, vec![1.0; 3]),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        Gram::from_f64(0, vec![]),
        Err(Error::InvalidInput { .. })
    ));
    let nan = Gram::from_f64(2, vec![1.0, f64::NAN, f64::NAN, 1.0]);
    assert!(matches!(nan, Err(Error::InvalidInput { .. })), "{nan:?}");
    let negative = Gram::from_f64(2, vec![-1.0, 0.0, 0.0, 1.0]).unwrap_err();
    assert!(negative.to_string().contains("negative"), "{negative}");
    let asymmetric = Gram::from_f64(2, vec![1.0, 0.5, -0.5, 1.0]).unwrap_err();
    assert!(asymmetric.to_string().contains("symmetric"), "{asymmetric}");
    let ragged = Gram::from_gradients(&[vec![1.0, 2.0], vec![1.0]]);
    assert!(matches!(ragged, Err(Error::Shape { .. })));
    assert!(Gram::from_gradients(&[]).is_err());
}

#[test]
fn gram_symmetrises_f32_rounding_differences() {
    let m = Gram::from_f32(2, &[4.0, 1.0, 1.000_01, 9.0]).unwrap();
    assert_eq!(m.get(0, 1), m.get(1, 0));
    assert!((m.get(0, 1) - 1.000_005).abs() < 1e-6);
    assert_eq!(m.norms(), vec![2.0, 3.0]);
}

// ---------------------------------------------------------------- MGDA

#[test]
fn mgda_two_task_known_answers() {
    let opts = SolverOptions::default();
    let none = MgdaNormalisation::None;
    // Orthogonal, equal norms: the midpoint.
    let m = gram(&[vec![1.0, 0.0], vec![0.0, 1.0]]);
    assert_close(
        "orthogonal",
        &mgda(&m, &[1.0; 2], none, &opts).unwrap().alpha,
        &[0.5, 0.5],
        1e-15,
    );
    // g₁ = (1,0), g₂ = (0,2): α₁ = 4/5 (the min-norm point (0.8, 0.4)).
    let m = gram(&[vec![1.0, 0.0], vec![0.0, 2.0]]);
    assert_close("(1,0),(0,2)", &min_norm(&m, &opts).w, &[0.8, 0.2], 1e-15);
    // Collinear, g₁ shorter and same direction: all weight on g₁ (clipped).
    assert_eq!(min_norm_two(1.0, 2.0, 4.0), 1.0);
    assert_eq!(min_norm_two(4.0, 2.0, 1.0), 0.0);
    // Identical gradients: every α is optimal; we return ½.
    assert_eq!(min_norm_two(1.0, 1.0, 1.0), 0.5);
    // One task: α = (1).
    let one = gram(&[vec![3.0, 4.0]]);
    assert_eq!(
        mgda(&one, &[1.0], none, &opts).unwrap().coefficients,
        vec![1.0]
    );
}

#[test]
fn mgda_matches_brute_force_grid_for_three_tasks() {
    let grid = simplex_grid(3, 300);
    // dim 2: the hull often holds 0 or the optimum is on an edge; dim 6: interior.
    for (seed, dim) in [(1, 2), (2, 6), (3, 6), (4, 3), (5, 1)] {
        let grads = random_grads(seed, 3, dim);
        let m = gram(&grads);
        let sol = min_norm(&m, &SolverOptions::default());
        assert!(sol.converged, "seed {seed}: {sol:?}");
        assert_on_simplex("α", &sol.w);
        let ours = m.bilinear(&sol.w, &sol.w);
        let best = grid
            .iter()
            .map(|w| m.bilinear(w, w))
            .fold(f64::INFINITY, f64::min);
        // Never worse than the grid, and the grid (step 1/300) gets close.
        assert!(
            ours <= best + 1e-12,
            "seed {seed}: ours {ours} > grid {best}"
        );
        assert!(
            best - ours < 1e-3 * m.max_diagonal(),
            "seed {seed}: {ours} vs {best}"
        );
    }
}

/// The KKT conditions of min αᵀMα on Δ: `(Mα)_t ≥ αᵀMα` for all t, with
/// equality where `α_t > 0`.
#[test]
fn mgda_meets_optimality_conditions_for_64_tasks() {
    for (seed, dim) in [(10, 16), (11, 200), (12, 1000), (13, 64)] {
        let mut grads = random_grads(seed, 64, dim);
        // Repeated gradients (affinely dependent vertices) must not upset it.
        grads[5] = grads[3].clone();
        grads[40] = grads[3].clone();
        let m = gram(&grads);
        let sol = min_norm(&m, &SolverOptions::default());
        assert!(
            sol.converged,
            "dim {dim}: {} iterations, gap {}",
            sol.iterations, sol.gap
        );
        assert_on_simplex("α", &sol.w);
        let f = m.bilinear(&sol.w, &sol.w);
        let mw = m.mul(&sol.w);
        let tol = 1e-7 * m.max_diagonal();
        for (t, (&mwt, &wt)) in mw.iter().zip(&sol.w).enumerate() {
            assert!(mwt >= f - tol, "dim {dim}: (Mα)_{t} = {mwt} < αᵀMα = {f}");
            if wt > 1e-6 {
                assert!(mwt <= f + tol, "dim {dim}: support {t}: {mwt} vs {f}");
            }
        }
    }
}

#[test]
fn mgda_normalisation_divides_coefficients() {
    let grads = random_grads(20, 4, 5);
    let m = gram(&grads);
    let losses = [0.5, 2.0, 1.5, 3.0];
    let opts = SolverOptions::default();
    let norms = m.norms();
    for (norm, n) in [
        (MgdaNormalisation::L2, norms.clone()),
        (MgdaNormalisation::Loss, losses.to_vec()),
        (
            MgdaNormalisation::LossPlus,
            losses.iter().zip(&norms).map(|(l, n)| l * n).collect(),
        ),
    ] {
        let sol = mgda(&m, &losses, norm, &opts).unwrap();
        // Solve again on explicitly normalised vectors.
        let scaled: Vec<Vec<f64>> = grads
            .iter()
            .zip(&n)
            .map(|(g, n)| g.iter().map(|x| x / n).collect())
            .collect();
        let direct = min_norm(&gram(&scaled), &opts);
        assert_close(&format!("{norm:?} α"), &sol.alpha, &direct.w, 1e-6);
        let want: Vec<f64> = sol.alpha.iter().zip(&n).map(|(a, n)| a / n).collect();
        assert_close(&format!("{norm:?} c"), &sol.coefficients, &want, 1e-15);
        // The update is the min-norm element of the normalised hull.
        assert_close(
            &format!("{norm:?} update"),
            &combine(&sol.coefficients, &grads),
            &combine(&direct.w, &scaled),
            1e-6,
        );
    }
}

#[test]
fn mgda_zero_gradient_and_bad_losses() {
    let grads = vec![vec![1.0, 0.0], vec![0.0, 0.0], vec![-1.0, 1.0]];
    let m = gram(&grads);
    let opts = SolverOptions::default();
    // 0 is in the hull: the update vanishes, and l2 must not divide by 0.
    for norm in [MgdaNormalisation::None, MgdaNormalisation::L2] {
        let sol = mgda(&m, &[1.0; 3], norm, &opts).unwrap();
        assert!(sol.coefficients.iter().all(|c| c.is_finite()), "{sol:?}");
        let update = combine(&sol.coefficients, &grads);
        assert!(dot(&update, &update) < 1e-20, "{norm:?}: {update:?}");
    }
    let err = mgda(&m, &[1.0, 0.0, 1.0], MgdaNormalisation::Loss, &opts).unwrap_err();
    assert!(err.to_string().contains("task 1"), "{err}");
    assert!(matches!(
        mgda(&m, &[1.0; 2], MgdaNormalisation::None, &opts),
        Err(Error::Shape { .. })
    ));
    assert!(MgdaNormalisation::parse("loss+").unwrap() == MgdaNormalisation::LossPlus);
    assert!(MgdaNormalisation::parse("l1").is_err());
}

// ---------------------------------------------------------------- PCGrad

#[test]
fn pcgrad_two_task_known_answer() {
    // g₁ = (1,0), g₂ = (−1,1): g₁' = (0.5,0.5), g₂' = (0,1), sum (0.5,1.5).
    let grads = vec![vec![1.0, 0.0], vec![-1.0, 1.0]];
    let c = pcgrad(&gram(&grads), &mut Rng::new(0));
    assert_close("c", &c, &[2.0, 1.5], 1e-15);
    assert_close("Σ g'", &combine(&c, &grads), &[0.5, 1.5], 1e-15);
}

/// The same surgery on explicit vectors, with the documented order
/// (Fisher–Yates over the other tasks, `next_u64 % (k+1)`, one shuffle
/// per i).
fn pcgrad_explicit(grads: &[Vec<f64>], rng: &mut Rng) -> Vec<f64> {
    let t = grads.len();
    let mut sum = vec![0.0; grads[0].len()];
    for i in 0..t {
        let mut g = grads[i].clone();
        let mut order: Vec<usize> = (0..t).filter(|&j| j != i).collect();
        for k in (1..order.len()).rev() {
            order.swap(k, (rng.next_u64() % (k as u64 + 1)) as usize);
        }
        for j in order {
            let (d, n) = (dot(&g, &grads[j]), dot(&grads[j], &grads[j]));
            if d < 0.0 && n > 0.0 {
                g.iter_mut()
                    .zip(&grads[j])
                    .for_each(|(x, y)| *x -= d / n * y);
            }
        }
        sum.iter_mut().zip(&g).for_each(|(s, x)| *s += x);
    }
    sum
}

#[test]
fn pcgrad_matches_explicit_vector_surgery() {
    for (seed, t) in [(30, 3), (31, 5), (32, 8), (33, 16)] {
        let grads = random_grads(seed, t, 4);
        let c = pcgrad(&gram(&grads), &mut Rng::new(seed));
        let want = pcgrad_explicit(&grads, &mut Rng::new(seed));
        assert_close(&format!("T={t}"), &combine(&c, &grads), &want, 1e-12);
        // Same seed, same answer; the order matters for T ≥ 3.
        assert_eq!(c, pcgrad(&gram(&grads), &mut Rng::new(seed)));
    }
}

#[test]
fn pcgrad_leaves_agreeing_and_zero_gradients_alone() {
    let grads = vec![vec![1.0, 0.0], vec![0.0, 0.0], vec![1.0, 1.0]];
    let c = pcgrad(&gram(&grads), &mut Rng::new(1));
    assert_eq!(c, vec![1.0, 1.0, 1.0]);
    let conflicting_with_zero = vec![vec![1.0, 0.0], vec![0.0, 0.0], vec![-1.0, 0.5]];
    let c = pcgrad(&gram(&conflicting_with_zero), &mut Rng::new(1));
    assert!(c.iter().all(|x| x.is_finite()), "{c:?}");
}

// ---------------------------------------------------------------- CAGrad

#[test]
fn cagrad_objective_at_solution_beats_fine_grid() {
    let opts = SolverOptions::default();
    for (seed, t, dim) in [(40, 2, 3), (41, 2, 1), (42, 3, 2), (43, 3, 5), (44, 3, 1)] {
        let m = gram(&random_grads(seed, t, dim));
        for c in [0.2, 0.5, 2.0] {
            let sol = cagrad(&m, c, CaGradRescale::OnePlusCSquared, &opts).unwrap();
            assert_on_simplex("w", &sol.solve.w);
            let ours = cagrad_objective(&m, c, &sol.solve.w);
            let grid = simplex_grid(t, if t == 2 { 20_000 } else { 400 });
            let best = grid
                .iter()
                .map(|w| cagrad_objective(&m, c, w))
                .fold(f64::INFINITY, f64::min);
            let scale = m.max_diagonal();
            assert!(
                ours <= best + 1e-9 * scale,
                "seed {seed} c {c}: ours {ours} > grid {best}"
            );
            assert!(
                best - ours < 1e-3 * scale,
                "seed {seed} c {c}: {ours} vs grid {best}"
            );
        }
    }
}

#[test]
fn cagrad_orthogonal_equal_gradients_known_answer() {
    // w = (½,½) by symmetry; ‖g0‖ = √½, ‖gw‖ = √½ so λ = c (up to 1e-8s),
    // c_t = (½ + c/2)/(1 + c²) = 0.6 at c = 0.5.
    let m = gram(&[vec![1.0, 0.0], vec![0.0, 1.0]]);
    let sol = cagrad(
        &m,
        0.5,
        CaGradRescale::OnePlusCSquared,
        &SolverOptions::default(),
    )
    .unwrap();
    assert_close("w", &sol.solve.w, &[0.5, 0.5], 1e-9);
    assert!((sol.lambda - 0.5).abs() < 1e-7, "λ = {}", sol.lambda);
    assert_close("c", &sol.coefficients, &[0.6, 0.6], 1e-7);
    let two = cagrad(&m, 0.5, CaGradRescale::OnePlusC, &SolverOptions::default()).unwrap();
    assert_close("rescale 2", &two.coefficients, &[0.5, 0.5], 1e-7);
}

#[test]
fn cagrad_coefficients_rebuild_the_cagrad_direction() {
    let grads = random_grads(45, 5, 7);
    let m = gram(&grads);
    let c = 0.4;
    let sol = cagrad(&m, c, CaGradRescale::None, &SolverOptions::default()).unwrap();
    assert!(sol.solve.converged, "{:?}", sol.solve);
    // g0 + λ gw with λ = c‖g0‖/‖gw‖ (epsilons aside), from explicit vectors.
    let g0 = combine(&[0.2; 5], &grads);
    let gw = combine(&sol.solve.w, &grads);
    let lambda = c * dot(&g0, &g0).sqrt() / dot(&gw, &gw).sqrt();
    let want: Vec<f64> = g0.iter().zip(&gw).map(|(a, b)| a + lambda * b).collect();
    assert_close("g", &combine(&sol.coefficients, &grads), &want, 1e-6);
}

#[test]
fn cagrad_converges_for_64_tasks() {
    for (seed, dim) in [(47, 16), (48, 200), (49, 1000)] {
        let m = gram(&random_grads(seed, 64, dim));
        let sol = cagrad(
            &m,
            0.5,
            CaGradRescale::OnePlusCSquared,
            &SolverOptions::default(),
        )
        .unwrap();
        assert!(
            sol.solve.converged,
            "dim {dim}: {} iterations, gap {}",
            sol.solve.iterations, sol.solve.gap
        );
        assert_on_simplex("w", &sol.solve.w);
    }
}

#[test]
fn cagrad_with_c_zero_is_the_plain_mean() {
    let m = gram(&random_grads(46, 4, 3));
    for (rescale, code) in [
        (CaGradRescale::None, 0),
        (CaGradRescale::OnePlusCSquared, 1),
        (CaGradRescale::OnePlusC, 2),
    ] {
        assert_eq!(CaGradRescale::from_code(code).unwrap(), rescale);
        let sol = cagrad(&m, 0.0, rescale, &SolverOptions::default()).unwrap();
        assert_eq!(sol.coefficients, vec![0.25; 4]);
    }
    assert!(CaGradRescale::from_code(3).is_err());
    assert!(cagrad(&m, -0.5, CaGradRescale::None, &SolverOptions::default()).is_err());
    assert!(cagrad(&m, f64::NAN, CaGradRescale::None, &SolverOptions::default()).is_err());
}

// ---------------------------------------------------------------- IMTL-G

#[test]
fn imtl_g_two_task_known_answer() {
    // g = α₁(1,0) + α₂(0,2): g·u₁ = α₁, g·u₂ = 2α₂, equal ⇒ α = (2/3, 1/3).
    let alpha = imtl_g(&gram(&[vec![1.0, 0.0], vec![0.0, 2.0]])).unwrap();
    assert_close("α", &alpha, &[2.0 / 3.0, 1.0 / 3.0], 1e-14);
    assert_eq!(imtl_g(&gram(&[vec![0.3, -2.0]])).unwrap(), vec![1.0]);
}

#[test]
fn imtl_g_projections_on_unit_gradients_are_equal() {
    for (seed, t) in [(50, 2), (51, 3), (52, 5), (53, 8)] {
        let grads = random_grads(seed, t, 10);
        let alpha = imtl_g(&gram(&grads)).unwrap();
        assert!((alpha.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{alpha:?}");
        let g = combine(&alpha, &grads);
        let proj: Vec<f64> = grads
            .iter()
            .map(|gt| dot(&g, gt) / dot(gt, gt).sqrt())
            .collect();
        assert_close(
            &format!("T={t} projections"),
            &proj,
            &vec![proj[0]; t],
            1e-10,
        );
    }
}

#[test]
fn imtl_g_rejects_zero_and_parallel_gradients() {
    let zero = imtl_g(&gram(&[vec![1.0, 0.0], vec![0.0, 0.0]])).unwrap_err();
    assert!(zero.to_string().contains("task 1"), "{zero}");
    let parallel = imtl_g(&gram(&[vec![1.0, 1.0], vec![2.0, 2.0]])).unwrap_err();
    assert!(parallel.to_string().contains("singular"), "{parallel}");
}

// ---------------------------------------------------------------- Nash-MTL, FairGrad

/// `max_t |α_t^p (M α)_t − 1|`: the relative residual of `(M α)_t = α_t^{-p}`.
fn power_residual(m: &Gram, alpha: &[f64], p: f64) -> f64 {
    m.mul(alpha)
        .iter()
        .zip(alpha)
        .map(|(ma, a)| (a.powf(p) * ma - 1.0).abs())
        .fold(0.0, f64::max)
}

#[test]
fn nash_mtl_two_task_known_answers() {
    // Orthogonal g₁ = (1,0), g₂ = (0,2): (Mα)_i = ‖g_i‖²α_i = 1/α_i ⇒
    // α_i = 1/‖g_i‖ = (1, 0.5).
    let m = gram(&[vec![1.0, 0.0], vec![0.0, 2.0]]);
    let sol = nash_mtl(&m, 0.0).unwrap();
    assert_close("α", &sol.alpha, &[1.0, 0.5], 1e-12);
    // LibMTL's scaling: ‖M‖_F = sqrt(1 + 16) ⇒ c = α·17^{1/4}, and the
    // update's norm is sqrt(T·‖M‖_F) = sqrt(2)·17^{1/4}.
    let s = 17f64.powf(0.25);
    assert_close("c", &sol.coefficients, &[s, 0.5 * s], 1e-12);
    assert!((sol.unclipped_norm - 2f64.sqrt() * s).abs() < 1e-12);
    // Clipped to max_norm 1 (LibMTL's clip_grad_norm_: max_norm/(norm + 1e-6)).
    let clipped = nash_mtl(&m, 1.0).unwrap();
    let f = 1.0 / (2f64.sqrt() * s + 1e-6);
    assert_close(
        "clipped c",
        &clipped.coefficients,
        &[s * f, 0.5 * s * f],
        1e-12,
    );
    // Non-orthogonal: g₁ = (1,0), g₂ = (1,1): M = [[1,1],[1,2]].
    // α₁ + α₂ = 1/α₁ gives α₂ = 1/α₁ − α₁; then α₁ + 2α₂ = 1/α₂ with
    // x = α₁ is (2 − x²)(1 − x²) = x², x⁴ − 4x² + 2 = 0, and α₂ > 0 needs
    // x² < 1: α₁ = sqrt(2 − √2), α₂ = (√2 − 1)/sqrt(2 − √2).
    let m = gram(&[vec![1.0, 0.0], vec![1.0, 1.0]]);
    let a = nash_mtl(&m, 0.0).unwrap().alpha;
    let x = (2.0 - 2f64.sqrt()).sqrt();
    assert_close("M=[[1,1],[1,2]]", &a, &[x, (2f64.sqrt() - 1.0) / x], 1e-12);
    assert!(power_residual(&m, &a, 1.0) < 1e-10, "{a:?}");
    // One task: α = 1/‖g‖.
    let one = nash_mtl(&gram(&[vec![3.0, 4.0]]), 0.0).unwrap();
    assert_close("one task", &one.alpha, &[0.2], 1e-14);
}

#[test]
fn nash_mtl_solves_random_grams_and_is_scale_invariant() {
    for (seed, t, dim) in [
        (60, 2, 3),
        (61, 3, 10),
        (62, 5, 5),
        (63, 8, 20),
        (64, 16, 40),
    ] {
        let grads = random_grads(seed, t, dim);
        let m = gram(&grads);
        let sol = nash_mtl(&m, 0.0).unwrap();
        assert!(sol.alpha.iter().all(|&a| a > 0.0), "{:?}", sol.alpha);
        assert!(sol.residual < 1e-10 && power_residual(&m, &sol.alpha, 1.0) < 1e-9);
        assert!(sol.iterations <= 40, "T={t}: {} iterations", sol.iterations);
        // ‖Σ α g‖² = αᵀMα = Σ α_t (Mα)_t = T.
        let d = combine(&sol.alpha, &grads);
        assert!((dot(&d, &d) - t as f64).abs() < 1e-8 * t as f64);
        // Scaling task k's gradient by s scales α_k by 1/s, the rest and
        // the update unchanged.
        let (k, s) = (t / 2, 7.5);
        let mut scaled = grads.clone();
        scaled[k].iter_mut().for_each(|x| *x *= s);
        let a2 = nash_mtl(&gram(&scaled), 0.0).unwrap().alpha;
        let mut want = sol.alpha.clone();
        want[k] /= s;
        assert_close(&format!("T={t} scaled"), &a2, &want, 1e-9);
        // The clip bounds the combined gradient's norm.
        let clipped = nash_mtl(&m, 0.5).unwrap().coefficients;
        let n = dot(&combine(&clipped, &grads), &combine(&clipped, &grads)).sqrt();
        assert!(n <= 0.5 + 1e-9, "T={t}: clipped norm {n}");
    }
}

#[test]
fn nash_mtl_and_fairgrad_reject_unsolvable_and_bad_input() {
    let opposed = gram(&[vec![1.0, 2.0], vec![-1.0, -2.0]]);
    let zero = gram(&[vec![1.0, 0.0], vec![0.0, 0.0]]);
    for m in [&opposed, &zero] {
        assert!(nash_mtl(m, 1.0).is_err());
        assert!(fairgrad(m, 2.0).is_err());
    }
    let e = nash_mtl(&zero, 1.0).unwrap_err().to_string();
    assert!(e.contains("task 1"), "{e}");
    // Norms 1e11 apart: as good as zero for an f32 Gram matrix.
    let negligible = gram(&[vec![1.0, 0.0], vec![0.0, 1e-11]]);
    let e = fairgrad(&negligible, 1.0).unwrap_err().to_string();
    assert!(e.contains("task 1 has a zero gradient"), "{e}");
    // Norms 1e4 apart are solved: α = (1, 1e4).
    let apart = gram(&[vec![1.0, 0.0], vec![0.0, 1e-4]]);
    assert_close(
        "apart",
        &nash_mtl(&apart, 0.0).unwrap().alpha,
        &[1.0, 1e4],
        1e-12,
    );
    let ok = gram(&[vec![1.0, 0.0], vec![0.0, 2.0]]);
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        assert!(nash_mtl(&ok, bad).is_err());
        assert!(fairgrad(&ok, bad).is_err());
    }
    assert!(fairgrad(&ok, 0.0).is_err());
}

#[test]
fn fairgrad_known_answers_and_nash_at_alpha_one() {
    // Orthogonal gradients: α_i^{1+1/a}·‖g_i‖² = 1.
    let grads = [vec![1.0, 0.0], vec![0.0, 2.0]];
    let m = gram(&grads);
    for a in [0.25, 0.5, 1.0, 2.0, 5.0] {
        let want: Vec<f64> = [1.0f64, 4.0]
            .iter()
            .map(|n2| n2.powf(-1.0 / (1.0 + 1.0 / a)))
            .collect();
        assert_close(&format!("a={a}"), &fairgrad(&m, a).unwrap(), &want, 1e-12);
    }
    // a = 2: α = (1, 4^{-2/3}) = (1, 0.39685…).
    assert_close(
        "a=2",
        &fairgrad(&m, 2.0).unwrap(),
        &[1.0, 0.3968502629920499],
        1e-12,
    );
    // a = 1 is Nash-MTL's equation, on random Gram matrices too.
    for (seed, t) in [(70, 2), (71, 4), (72, 9)] {
        let m = gram(&random_grads(seed, t, 12));
        let nash = nash_mtl(&m, 0.0).unwrap().alpha;
        assert_close("a=1", &fairgrad(&m, 1.0).unwrap(), &nash, 1e-10);
    }
}

#[test]
fn fairgrad_solves_random_grams_for_every_alpha() {
    for (seed, t, dim) in [(80, 2, 4), (81, 3, 10), (82, 6, 6), (83, 12, 30)] {
        let grads = random_grads(seed, t, dim);
        let m = gram(&grads);
        for a in [0.1, 0.5, 1.0, 3.0, 10.0] {
            let alpha = fairgrad(&m, a).unwrap();
            assert!(alpha.iter().all(|&x| x > 0.0), "T={t} a={a}: {alpha:?}");
            let r = power_residual(&m, &alpha, 1.0 / a);
            assert!(r < 1e-9, "T={t} a={a}: residual {r}");
        }
    }
}

// ---------------------------------------------------------------- DB-MTL

#[test]
fn db_mtl_known_answer() {
    // ‖g‖ = (1, 2, 4) (orthogonal), L = (0.5, 4, 1):
    // log-gradient norms ‖g‖/L = (2, 0.5, 4), largest 4 ⇒ β = (2, 8, 1),
    // c = β/L = (4, 2, 1) (up to LibMTL's ε = 1e-8).
    let m = gram(&[
        vec![1.0, 0.0, 0.0],
        vec![0.0, 2.0, 0.0],
        vec![0.0, 0.0, 4.0],
    ]);
    let c = db_mtl(&m, &[0.5, 4.0, 1.0]).unwrap();
    assert_close("c", &c, &[4.0, 2.0, 1.0], 1e-7);
    // Every balanced log-gradient c_t g_t has the largest norm, 4.
    let norms: Vec<f64> = c.iter().zip(m.norms()).map(|(c, n)| c * n).collect();
    assert_close("‖c_t g_t‖", &norms, &[4.0, 4.0, 4.0], 1e-7);
    // Invariant to each loss's scale: L_t → kL_t with g_t → k g_t.
    let k = 1000.0;
    let scaled = gram(&[
        vec![1.0, 0.0, 0.0],
        vec![0.0, 2.0 * k, 0.0],
        vec![0.0, 0.0, 4.0],
    ]);
    let c2 = db_mtl(&scaled, &[0.5, 4.0 * k, 1.0]).unwrap();
    assert_close("scaled", &c2, &[4.0, 2.0 / k, 1.0], 1e-7);
}

#[test]
fn db_mtl_rejects_bad_losses() {
    let m = gram(&[vec![1.0, 0.0], vec![0.0, 2.0]]);
    assert!(matches!(db_mtl(&m, &[1.0]), Err(Error::Shape { .. })));
    for bad in [-0.5, f64::NAN, f64::INFINITY] {
        let e = db_mtl(&m, &[1.0, bad]).unwrap_err().to_string();
        assert!(e.contains("task 1"), "{e}");
    }
    // Zero losses, one huge gradient and one zero one:
    // c₂ = (1e15/ε)/ε/ε = 1e39 does not fit in f32.
    let extreme = gram(&[vec![1e15, 0.0], vec![0.0, 0.0]]);
    let e = db_mtl(&extreme, &[0.0, 0.0]).unwrap_err().to_string();
    assert!(e.contains("f32"), "{e}");
}

// ---------------------------------------------------------------- GradNorm

#[test]
fn gradnorm_step_hand_computed() {
    // n = (2, 1), w = (1, 1) ⇒ G = (2, 1), Ḡ = 1.5. L/L(0) = (0.5, 0.8),
    // mean 0.65 ⇒ r = (10/13, 16/13); targets 1.5 r^1.5 ≈ (1.0120, 2.0481).
    // G₁ > target₁, G₂ < target₂ ⇒ ∂/∂w = (+2, −1); w = (1 − 0.2, 1 + 0.1)
    // = (0.8, 1.1), Σ = 1.9, rescaled to Σ = 2: (16/19, 22/19).
    let mut state = GradNormState::new(&[1.0, 1.0])
        .unwrap()
        .with_update(GradNormUpdate::Gradient);
    let loss_grad = state.step(&[2.0, 1.0], &[0.5, 0.8], 1.5, 0.1).unwrap();
    assert_close("w", state.weights(), &[16.0 / 19.0, 22.0 / 19.0], 1e-12);
    let targets = [
        1.5 * (10.0f64 / 13.0).powf(1.5),
        1.5 * (16.0f64 / 13.0).powf(1.5),
    ];
    assert!((targets[0] - 1.011_990_022_277_341_3).abs() < 1e-12);
    let want = (2.0 - targets[0]) + (targets[1] - 1.0);
    assert!(
        (loss_grad - want).abs() < 1e-12,
        "L_grad {loss_grad} vs {want}"
    );
    assert!((loss_grad - 2.036_133_779_169_658_5).abs() < 1e-12);
}

#[test]
fn gradnorm_adam_update_moves_each_weight_by_about_lr_whatever_its_norm() {
    // Same state as above but norms 10⁴ apart: d = (+2e4, −1). Adam's first
    // step is m̂/√v̂ = sign(d) exactly: w = (1 − 0.1, 1 + 0.1) = (0.9, 1.1),
    // Σ = 2 already. Plain gradient descent would floor w₁ at once.
    let mut state = GradNormState::new(&[1.0, 1.0]).unwrap();
    state.step(&[2e4, 1.0], &[0.5, 0.8], 1.5, 0.1).unwrap();
    assert_close("w", state.weights(), &[0.9, 1.1], 1e-9);
    // Second step, same gradient signs: m̂/√v̂ is still ±1 (d unchanged up
    // to G's dependence on w; signs are what matter): w = (0.8, 1.2).
    state.step(&[2e4, 1.0], &[0.5, 0.8], 1.5, 0.1).unwrap();
    assert_close("w", state.weights(), &[0.8, 1.2], 1e-9);
    let mut plain = GradNormState::new(&[1.0, 1.0])
        .unwrap()
        .with_update(GradNormUpdate::Gradient);
    plain.step(&[2e4, 1.0], &[0.5, 0.8], 1.5, 0.1).unwrap();
    assert!(plain.weights()[0] < 1e-3, "{:?}", plain.weights());
}

#[test]
fn gradnorm_clamps_at_the_floor_and_checks_input() {
    // A huge step drives w₁ below zero: clamped, then rescaled to Σ = 2.
    let mut state = GradNormState::new(&[1.0, 1.0])
        .unwrap()
        .with_update(GradNormUpdate::Gradient);
    state.step(&[2.0, 1.0], &[0.5, 0.8], 1.5, 10.0).unwrap();
    let w = state.weights();
    assert!(w[0] > 0.0 && w[0] < 1e-3, "{w:?}");
    assert!((w[0] + w[1] - 2.0).abs() < 1e-12, "{w:?}");
    assert!(GradNormState::new(&[1.0, 0.0]).is_err());
    assert!(GradNormState::new(&[]).is_err());
    assert!(state.step(&[1.0], &[1.0, 1.0], 1.5, 0.1).is_err());
    assert!(state.step(&[1.0, f64::NAN], &[1.0, 1.0], 1.5, 0.1).is_err());
    assert!(state.step(&[1.0, 1.0], &[1.0, -1.0], 1.5, 0.1).is_err());
    assert!(state.step(&[1.0, 1.0], &[1.0, 1.0], 1.5, -0.1).is_err());
}

// ---------------------------------------------------------------- DWA

#[test]
fn dwa_hand_computed() {
    let mut dwa = DwaState::new(2, 2.0).unwrap();
    assert_eq!(dwa.weights(), vec![1.0, 1.0]);
    dwa.end_epoch(&[1.0, 2.0]).unwrap();
    assert_eq!(dwa.weights(), vec![1.0, 1.0]);
    // r = (0.5/1, 2/2) = (0.5, 1); r/τ = (0.25, 0.5);
    // λ = 2·(e^0.25, e^0.5)/(e^0.25 + e^0.5).
    dwa.end_epoch(&[0.5, 2.0]).unwrap();
    assert_close(
        "λ",
        &dwa.weights(),
        &[0.875_646_998_228_403_8, 1.124_353_001_771_596_4],
        1e-14,
    );
    // The window slides: r = (0.5/0.5, 1/2) = (1, 0.5): the mirror image.
    dwa.end_epoch(&[0.5, 1.0]).unwrap();
    assert_close(
        "λ",
        &dwa.weights(),
        &[1.124_353_001_771_596_4, 0.875_646_998_228_403_8],
        1e-14,
    );
    assert!(dwa.end_epoch(&[1.0]).is_err());
    assert!(dwa.end_epoch(&[1.0, 0.0]).is_err());
    assert!(DwaState::new(2, 0.0).is_err());
}

// ---------------------------------------------------------------- Uncertainty

#[test]
fn uncertainty_gradient_vanishes_at_log_loss_and_matches_finite_differences() {
    let losses = [0.3, 1.0, 4.5];
    let s: Vec<f64> = losses.iter().map(|l: &f64| l.ln()).collect();
    let g = uncertainty_grad(&s, &losses).unwrap();
    assert!(g.iter().all(|x| x.abs() < 1e-15), "{g:?}");
    // Away from it: central differences of the loss.
    let s = [-0.5, 0.2, 1.0];
    let g = uncertainty_grad(&s, &losses).unwrap();
    let h = 1e-6;
    for t in 0..3 {
        let (mut up, mut down) = (s, s);
        up[t] += h;
        down[t] -= h;
        let fd = (uncertainty_loss(&up, &losses).unwrap()
            - uncertainty_loss(&down, &losses).unwrap())
            / (2.0 * h);
        assert!((fd - g[t]).abs() < 1e-8, "task {t}: fd {fd} vs {}", g[t]);
    }
    // L at s = 0: Σ ½L_t; the weights are ½e^{−s}.
    assert!((uncertainty_loss(&[0.0; 3], &losses).unwrap() - 2.9).abs() < 1e-15);
    assert_close(
        "weights",
        &uncertainty_loss_weights(&[0.0, 2.0f64.ln()]),
        &[0.5, 0.25],
        1e-15,
    );
    assert!(uncertainty_grad(&[0.0], &losses).is_err());
}

// ---------------------------------------------------------------- RLW

#[test]
fn rlw_weights_are_a_seeded_softmax() {
    let w = rlw_weights(5, &mut Rng::new(7));
    assert_on_simplex("rlw", &w);
    assert!(w.iter().all(|&x| x > 0.0));
    assert_eq!(w, rlw_weights(5, &mut Rng::new(7)));
    assert_ne!(w, rlw_weights(5, &mut Rng::new(8)));
    // softmax(z) with the same z, spelt out.
    let mut rng = Rng::new(7);
    let z: Vec<f64> = (0..5).map(|_| rng.normal() as f64).collect();
    let e: Vec<f64> = z.iter().map(|v| v.exp()).collect();
    let want: Vec<f64> = e.iter().map(|v| v / e.iter().sum::<f64>()).collect();
    assert_close("softmax", &w, &want, 1e-14);
}

// ---------------------------------------------------------------- Weighting

#[test]
fn weighting_parses_every_name_with_defaults() {
    for name in weighting::WEIGHTING_NAMES {
        let w = weighting::parse(name).unwrap();
        assert_eq!(w.name(), *name);
        assert_eq!(w.to_string(), *name);
    }
    assert_eq!(weighting::parse("EW").unwrap(), Weighting::Equal);
    assert_eq!(
        "UW".parse::<Weighting>().unwrap(),
        Weighting::Uncertainty {
            init: UncertaintyInit::Zero
        }
    );
    assert_eq!(
        weighting::parse("uncertainty_warm").unwrap(),
        Weighting::Uncertainty {
            init: UncertaintyInit::FirstLosses
        }
    );
    assert_eq!(
        weighting::parse("MGDA-UB").unwrap(),
        Weighting::Mgda {
            normalisation: MgdaNormalisation::None,
            space: MgdaSpace::Representation
        }
    );
    assert_eq!(
        weighting::parse("gradnorm").unwrap(),
        Weighting::GradNorm {
            alpha: 1.5,
            lr: 0.025,
            mode: GradNormMode::LastSharedLayer,
            update: GradNormUpdate::Adam
        }
    );
    assert_eq!(
        weighting::parse("cagrad").unwrap(),
        Weighting::CaGrad {
            c: 0.5,
            rescale: CaGradRescale::OnePlusCSquared
        }
    );
    assert_eq!(
        weighting::parse("dwa").unwrap(),
        Weighting::Dwa { temperature: 2.0 }
    );
    assert_eq!(
        weighting::parse("static:1, 0.5,2").unwrap(),
        Weighting::Static(vec![1.0, 0.5, 2.0])
    );
    let err = weighting::parse("static:1,x").unwrap_err();
    assert!(err.to_string().contains("static:1,0.5,2"), "{err}");
    assert_eq!(
        weighting::parse("nash-mtl").unwrap(),
        Weighting::NashMtl { max_norm: 1.0 }
    );
    assert_eq!(
        weighting::parse("FairGrad").unwrap(),
        Weighting::FairGrad { alpha: 1.0 }
    );
    assert_eq!(weighting::parse("DB_MTL").unwrap(), Weighting::DbMtl);
    let err = weighting::parse("no_such_method").unwrap_err().to_string();
    for name in weighting::WEIGHTING_NAMES {
        assert!(err.contains(name), "'{err}' does not list {name}");
    }
}

#[test]
fn weighting_needs_gram_and_checks_hyper_parameters() {
    let gram_users = [
        "gradnorm", "pcgrad", "mgda", "mgda_ub", "cagrad", "imtl_g", "nash_mtl", "fairgrad",
        "db_mtl",
    ];
    for name in weighting::WEIGHTING_NAMES {
        let w = weighting::parse(name).unwrap();
        assert_eq!(w.needs_gram(), gram_users.contains(name), "{name}");
    }
    assert!(weighting::parse("static").unwrap().check(2).is_err());
    assert!(Weighting::Static(vec![1.0, 2.0]).check(2).is_ok());
    assert!(Weighting::Static(vec![1.0, f32::NAN]).check(2).is_err());
    assert!(Weighting::CaGrad {
        c: -1.0,
        rescale: CaGradRescale::None
    }
    .check(2)
    .is_err());
    assert!(Weighting::Dwa { temperature: 0.0 }.check(2).is_err());
    assert!(Weighting::Equal.check(0).is_err());
    assert!(weighting::parse("pcgrad").unwrap().check(3).is_ok());
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        assert!(Weighting::NashMtl { max_norm: bad }.check(2).is_err());
        assert!(Weighting::FairGrad { alpha: bad }.check(2).is_err());
    }
    assert!(Weighting::NashMtl { max_norm: 0.0 }.check(2).is_ok());
    assert!(Weighting::FairGrad { alpha: 0.0 }.check(2).is_err());
}
