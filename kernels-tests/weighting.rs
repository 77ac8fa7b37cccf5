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

// ---------------------------------------------------------------- UPGrad

/// `M / tr(M) + reg·I`, the matrix UPGrad's problems are solved on
/// (torchjd's normalisation; the test's own copy).
fn upgrad_matrix(m: &Gram, reg_eps: f64) -> Vec<Vec<f64>> {
    let t = m.tasks();
    let trace: f64 = (0..t).map(|i| m.get(i, i)).sum();
    (0..t)
        .map(|i| {
            (0..t)
                .map(|j| m.get(i, j) / trace + if i == j { reg_eps } else { 0.0 })
                .collect()
        })
        .collect()
}

#[test]
fn upgrad_two_task_known_answers() {
    let (norm_eps, reg_eps) = (weighting::UPGRAD_NORM_EPS, weighting::UPGRAD_REG_EPS);
    assert_eq!((norm_eps, reg_eps), (1e-4, 1e-4), "torchjd's defaults");
    // Orthogonal gradients are already in the dual cone: each projects to
    // itself, the update is their mean (regularisation or not).
    let ortho = gram(&[vec![1.0, 0.0], vec![0.0, 2.0]]);
    let sol = weighting::upgrad(&ortho, norm_eps, reg_eps).unwrap();
    assert_eq!(sol.coefficients, vec![0.5, 0.5]);
    assert_eq!(sol.projections, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
    assert!(sol.converged);
    // Unit gradients at 120°: M = [[1, −½], [−½, 1]]. Projecting g₁:
    // min over x ≥ 0 of (e₁ + x e₂)ᵀM(…) = 1 − x + x² ⇒ x = ½, w¹ = (1, ½)
    // (g₁ + ½g₂ = g₁ − (g₁·g₂/‖g₂‖²)g₂, the plain projection off g₂);
    // by symmetry w² = (½, 1), so c = (¾, ¾).
    let third = 2.0 * std::f64::consts::PI / 3.0;
    let at120 = [vec![1.0, 0.0], vec![third.cos(), third.sin()]];
    let sol = weighting::upgrad(&gram(&at120), norm_eps, 0.0).unwrap();
    assert_close("120° c", &sol.coefficients, &[0.75, 0.75], 1e-14);
    assert_close("120° w¹", &sol.projections[0], &[1.0, 0.5], 1e-14);
    assert_close("120° w²", &sol.projections[1], &[0.5, 1.0], 1e-14);
    // With the default regularisation the problem is on M/2 + εI:
    // x = (¼)/(½ + ε) = 1/(2 + 4ε).
    let sol = weighting::upgrad(&gram(&at120), norm_eps, reg_eps).unwrap();
    let x = 1.0 / (2.0 + 4.0 * reg_eps);
    assert_close("120° c, ε", &sol.coefficients, &[(1.0 + x) / 2.0; 2], 1e-14);
    // Different norms: g₁ = (2, 0), g₂ at 120°, unit. M = [[4, −1], [−1, 1]]:
    // w¹ = (1, x), 4 − 2x + x² ⇒ x = 1; w² = (x, 1), 4x² − 2x + 1 ⇒ x = ¼;
    // c = ½((1, 1) + (¼, 1)) = (⅝, 1).
    let uneven = [vec![2.0, 0.0], at120[1].clone()];
    let sol = weighting::upgrad(&gram(&uneven), norm_eps, 0.0).unwrap();
    assert_close("uneven c", &sol.coefficients, &[0.625, 1.0], 1e-14);
    // One task: itself. Zero gradients (trace < norm_eps): the mean.
    let one = weighting::upgrad(&gram(&[vec![0.3, -2.0]]), norm_eps, reg_eps).unwrap();
    assert_eq!(one.coefficients, vec![1.0]);
    let zero = weighting::upgrad(&gram(&vec![vec![0.0; 2]; 3]), norm_eps, reg_eps).unwrap();
    assert_eq!(zero.coefficients, vec![1.0 / 3.0; 3]);
    for (n, r) in [(-1.0, 1e-4), (1e-4, f64::NAN), (1e-4, f64::INFINITY)] {
        let err = weighting::upgrad(&ortho, n, r).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    }
}

#[test]
fn upgrad_projections_meet_kkt_and_the_update_conflicts_with_no_task() {
    // (seed, T, dim, reg_eps): full rank without regularisation (exact
    // projections), then the defaults, also with more tasks than
    // dimensions (a singular M, made definite by reg_eps).
    for (seed, t, dim, reg_eps) in [
        (60, 2, 3, 0.0),
        (61, 3, 5, 0.0),
        (62, 5, 6, 0.0),
        (63, 8, 12, 0.0),
        (64, 4, 6, 1e-4),
        (65, 12, 5, 1e-4),
        (66, 20, 40, 1e-4),
    ] {
        let grads = random_grads(seed, t, dim);
        let m = gram(&grads);
        let sol = weighting::upgrad(&m, 1e-4, reg_eps).unwrap();
        assert!(sol.converged, "T={t}");
        let g = upgrad_matrix(&m, reg_eps);
        let trace: f64 = (0..t).map(|i| m.get(i, i)).sum();
        let tol = 1e-10;
        let mut conflicting = 0;
        for (i, w) in sol.projections.iter().enumerate() {
            // KKT of min wᵀGw s.t. w ≥ e_i: x = w − e_i ≥ 0, r = Gw ≥ 0,
            // x_j r_j = 0.
            for j in 0..t {
                let x = w[j] - if i == j { 1.0 } else { 0.0 };
                let r = dot(&g[j], w);
                assert!(x >= -tol, "T={t} w^{i}: x_{j} = {x}");
                assert!(r >= -tol, "T={t} w^{i}: r_{j} = {r}");
                assert!((x * r).abs() <= tol, "T={t} w^{i}: x_{j} r_{j} = {}", x * r);
                conflicting += usize::from(x > 1e-9);
            }
        }
        // The update d = Σ c_t g_t, rebuilt as a vector: g_j·d ≥ 0 up to
        // the regularisation (Gw ≥ 0 ⇒ Mw ≥ −ε·tr(M)·w).
        let d = combine(&sol.coefficients, &grads);
        for (j, gj) in grads.iter().enumerate() {
            let slack = reg_eps * trace * sol.coefficients[j] + 1e-10 * trace;
            assert!(dot(gj, &d) >= -slack, "T={t}: g_{j}·d = {}", dot(gj, &d));
        }
        let mean: Vec<f64> = (0..t)
            .map(|j| sol.projections.iter().map(|w| w[j]).sum::<f64>() / t as f64)
            .collect();
        assert_close("c = mean of w^(i)", &sol.coefficients, &mean, 1e-14);
        if reg_eps == 0.0 {
            // Exact projections, checked on the vectors: p_i is in the cone
            // and no cone point tried is closer to g_i.
            let p: Vec<Vec<f64>> = sol.projections.iter().map(|w| combine(w, &grads)).collect();
            let mut cone_points = p.clone();
            cone_points.push(d.clone());
            let mut rng = Rng::new(seed);
            for _ in 0..50 {
                let mix: Vec<f64> = (0..t).map(|_| rng.uniform(0.0, 1.0) as f64).collect();
                cone_points.push(combine(&mix, &p));
            }
            let dist =
                |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>();
            for i in 0..t {
                let best = dist(&grads[i], &p[i]);
                for v in &cone_points {
                    assert!(
                        best <= dist(&grads[i], v) + 1e-12,
                        "T={t}: p_{i} is not the nearest"
                    );
                }
            }
        }
        eprintln!(
            "T={t}: {conflicting} active constraints, {} iterations",
            sol.iterations
        );
    }
}

// ---------------------------------------------------------------- Aligned-MTL

/// The (T, T) row-major product `A B`.
fn matmul(a: &[f64], b: &[f64], t: usize) -> Vec<f64> {
    (0..t * t)
        .map(|k| (0..t).map(|l| a[(k / t) * t + l] * b[l * t + k % t]).sum())
        .collect()
}

/// Whether a symmetric (T, T) matrix is positive definite (Cholesky).
fn positive_definite(a: &[f64], t: usize) -> bool {
    let mut l = vec![0.0; t * t];
    for i in 0..t {
        for j in 0..=i {
            let s = a[i * t + j] - (0..j).map(|k| l[i * t + k] * l[j * t + k]).sum::<f64>();
            if i == j {
                if s <= 0.0 {
                    return false;
                }
                l[i * t + i] = s.sqrt();
            } else {
                l[i * t + j] = s / l[j * t + j];
            }
        }
    }
    true
}

#[test]
fn aligned_mtl_known_answers() {
    // Orthogonal gradients of norms 1 and 2: M = diag(1, 4), λ_min = 1,
    // B = diag(1, ½), c = B·1 = (1, ½): both contributions c_t g_t get
    // norm σ_min = 1.
    let grads = [vec![1.0, 0.0], vec![0.0, 2.0]];
    let sol = weighting::aligned_mtl(&gram(&grads)).unwrap();
    assert_close("orthogonal c", &sol.coefficients, &[1.0, 0.5], 1e-14);
    assert_eq!((sol.rank, sol.smallest_eigenvalue), (2, 1.0));
    for (c, g) in sol.coefficients.iter().zip(&grads) {
        assert!((c * dot(g, g).sqrt() - 1.0).abs() < 1e-14);
    }
    // Unit gradients at 120°: M = [[1, −½], [−½, 1]], eigenpairs
    // (3/2, (1, −1)/√2) and (½, (1, 1)/√2). 1 is orthogonal to the first,
    // so B·1 = √½ · (½)^{−½} · 1 = 1: c = (1, 1).
    let third = 2.0 * std::f64::consts::PI / 3.0;
    let at120 = gram(&[vec![1.0, 0.0], vec![third.cos(), third.sin()]]);
    let sol = weighting::aligned_mtl(&at120).unwrap();
    assert_close("120° c", &sol.coefficients, &[1.0, 1.0], 1e-14);
    // Parallel (1, 1) and (2, 2): M = [[2, 4], [4, 8]], eigenvalues 10 and
    // 0 (cut). B = √10 · 10^{−½} v vᵀ = v vᵀ with v = (1, 2)/√5:
    // c = B·1 = (3, 6)/5.
    let sol = weighting::aligned_mtl(&gram(&[vec![1.0, 1.0], vec![2.0, 2.0]])).unwrap();
    assert_close("parallel c", &sol.coefficients, &[0.6, 1.2], 1e-14);
    assert_eq!(sol.rank, 1);
    // One task: B = 1. Zero gradients: B = I (c = 1), rank 0.
    let one = weighting::aligned_mtl(&gram(&[vec![0.3, -2.0]])).unwrap();
    assert_close("one task", &one.coefficients, &[1.0], 1e-14);
    let zero = weighting::aligned_mtl(&gram(&vec![vec![0.0; 2]; 3])).unwrap();
    assert_eq!((zero.coefficients, zero.rank), (vec![1.0; 3], 0));
    // Scale-free: gradients of norm 1e150 (M ~ 1e300) or 1e-150 give the
    // orthogonal case's answer.
    for s in [1e150, 1e-150] {
        let tiny_or_huge = gram(&[vec![s, 0.0], vec![0.0, 2.0 * s]]);
        let sol = weighting::aligned_mtl(&tiny_or_huge).unwrap();
        assert_close(&format!("×{s}"), &sol.coefficients, &[1.0, 0.5], 1e-14);
    }
}

#[test]
fn aligned_mtl_aligned_gradients_have_condition_number_one() {
    for (seed, t, dim) in [(70, 2, 4), (71, 3, 3), (72, 5, 9), (73, 8, 20), (74, 6, 3)] {
        let grads = random_grads(seed, t, dim);
        let m = gram(&grads);
        let sol = weighting::aligned_mtl(&m).unwrap();
        let b = &sol.balance;
        let rank = t.min(dim);
        assert_eq!(sol.rank, rank, "T={t}, dim={dim}");
        let scale = m.max_diagonal();
        // The aligned gradients ĝ_a = Σ_s B_as g_s, built as vectors, are
        // orthogonal with equal norms √λ_min (on the gradients' span).
        let aligned: Vec<Vec<f64>> = b.chunks(t).map(|row| combine(row, &grads)).collect();
        let lambda = sol.smallest_eigenvalue;
        let aligned_gram: Vec<f64> = (0..t * t)
            .map(|k| dot(&aligned[k / t], &aligned[k % t]))
            .collect();
        if rank == t {
            let want: Vec<f64> = (0..t * t)
                .map(|k| if k / t == k % t { lambda } else { 0.0 })
                .collect();
            assert_close(&format!("T={t} ĜĜᵀ"), &aligned_gram, &want, 1e-9 * scale);
            // B symmetric positive definite with B M B = λ_min I is
            // √λ_min M^{−½}: nothing else.
            assert!(positive_definite(b, t), "T={t}: B is not positive definite");
        } else {
            // λ_min times a projector of rank `rank`.
            let squared = matmul(&aligned_gram, &aligned_gram, t);
            let scaled: Vec<f64> = aligned_gram.iter().map(|x| x * lambda).collect();
            assert_close(&format!("T={t} (ĜĜᵀ)²"), &squared, &scaled, 1e-9 * scale);
            let trace: f64 = (0..t).map(|i| aligned_gram[i * t + i]).sum();
            assert!((trace - rank as f64 * lambda).abs() < 1e-9 * scale, "T={t}");
        }
        let bt: Vec<f64> = (0..t * t).map(|k| b[(k % t) * t + k / t]).collect();
        assert_close("B = Bᵀ", b, &bt, 1e-12);
        let row_sums: Vec<f64> = b.chunks(t).map(|r| r.iter().sum()).collect();
        assert_close("c = B·1", &sol.coefficients, &row_sums, 1e-14);
        // The update Σ_a ĝ_a is Σ_t c_t g_t.
        let sum_aligned = combine(&vec![1.0; t], &aligned);
        assert_close(
            "Σĝ",
            &combine(&sol.coefficients, &grads),
            &sum_aligned,
            1e-12,
        );
        // B depends on the gradients' directions only up to their common
        // scale: gradients 3× as large give the same coefficients.
        let big: Vec<Vec<f64>> = grads
            .iter()
            .map(|g| g.iter().map(|x| 3.0 * x).collect())
            .collect();
        let again = weighting::aligned_mtl(&gram(&big)).unwrap();
        assert_close("scaled", &again.coefficients, &sol.coefficients, 1e-10);
        // Reordering the tasks reorders c.
        let reversed: Vec<Vec<f64>> = grads.iter().rev().cloned().collect();
        let mut c_rev = weighting::aligned_mtl(&gram(&reversed))
            .unwrap()
            .coefficients;
        c_rev.reverse();
        assert_close("reversed", &c_rev, &sol.coefficients, 1e-10);
    }
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
        weighting::parse("UPGrad").unwrap(),
        Weighting::UpGrad {
            norm_eps: 1e-4,
            reg_eps: 1e-4
        }
    );
    assert_eq!(
        weighting::parse("Aligned-MTL").unwrap(),
        Weighting::AlignedMtl
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
        "gradnorm",
        "pcgrad",
        "mgda",
        "mgda_ub",
        "cagrad",
        "imtl_g",
        "upgrad",
        "aligned_mtl",
        "nash_mtl",
        "fairgrad",
        "db_mtl",
        "gradvac",
        "moco",
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
    for (norm_eps, reg_eps) in [(-1e-4, 1e-4), (1e-4, f64::NAN)] {
        assert!(Weighting::UpGrad { norm_eps, reg_eps }.check(2).is_err());
    }
    assert!(Weighting::AlignedMtl.check(2).is_ok());
    assert!(Weighting::Equal.check(0).is_err());
    assert!(weighting::parse("pcgrad").unwrap().check(3).is_ok());
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        assert!(Weighting::NashMtl { max_norm: bad }.check(2).is_err());
        assert!(Weighting::FairGrad { alpha: bad }.check(2).is_err());
    }
    assert!(Weighting::NashMtl { max_norm: 0.0 }.check(2).is_ok());
    assert!(Weighting::FairGrad { alpha: 0.0 }.check(2).is_err());
}
