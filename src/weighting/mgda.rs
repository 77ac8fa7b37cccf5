//! MGDA (Sener & Koltun 2018): the min-norm point of the convex hull of the
//! task gradients, `min_{α∈Δ} ‖Σ α_t g_t‖² = αᵀMα`.

use super::gram::{dot, invalid, Gram};
use super::imtl::solve_linear;
use super::simplex::{SimplexSolution, SolverOptions};
use crate::Result;

/// How task gradients are rescaled before the min-norm solve (LibMTL's
/// `mgda_gn`, default `none`): `g_t / n_t` with
/// `n_t` = 1, `‖g_t‖`, `L_t` or `L_t ‖g_t‖`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MgdaNormalisation {
    /// `n_t = 1` (LibMTL `none`, its default).
    #[default]
    None,
    /// `n_t = ‖g_t‖` (LibMTL `l2`).
    L2,
    /// `n_t = L_t` (LibMTL `loss`).
    Loss,
    /// `n_t = L_t ‖g_t‖` (LibMTL `loss+`).
    LossPlus,
}

impl MgdaNormalisation {
    /// LibMTL's names: `none`, `l2`, `loss`, `loss+`.
    pub fn parse(name: &str) -> Result<MgdaNormalisation> {
        match name.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(MgdaNormalisation::None),
            "l2" => Ok(MgdaNormalisation::L2),
            "loss" => Ok(MgdaNormalisation::Loss),
            "loss+" => Ok(MgdaNormalisation::LossPlus),
            other => Err(invalid(
                "MgdaNormalisation::parse",
                format!("unknown normalisation '{other}': expected one of none, l2, loss, loss+"),
            )),
        }
    }

    /// The normalisers `n_t`. A zero-norm gradient keeps `n_t = 1` under
    /// `l2` (it is zero either way; dividing would make it NaN).
    fn normalisers(self, gram: &Gram, losses: &[f64]) -> Result<Vec<f64>> {
        let norms: Vec<f64> = gram
            .norms()
            .into_iter()
            .map(|n| if n > 0.0 { n } else { 1.0 })
            .collect();
        if matches!(self, MgdaNormalisation::Loss | MgdaNormalisation::LossPlus) {
            if let Some(t) = losses.iter().position(|&l| !(l.is_finite() && l > 0.0)) {
                let detail = format!(
                    "loss of task {t} is {}; '{self:?}' normalisation divides by the loss, \
                     which must be positive and finite (or use none / l2)",
                    losses[t]
                );
                return Err(invalid("mgda", detail));
            }
        }
        Ok(match self {
            MgdaNormalisation::None => vec![1.0; gram.tasks()],
            MgdaNormalisation::L2 => norms,
            MgdaNormalisation::Loss => losses.to_vec(),
            MgdaNormalisation::LossPlus => losses.iter().zip(&norms).map(|(l, n)| l * n).collect(),
        })
    }
}

/// What [`mgda`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct MgdaSolution {
    /// Min-norm weights of the normalised gradients `g_t / n_t` (on Δ).
    pub alpha: Vec<f64>,
    /// `c_t = α_t / n_t`: the update is `Σ c_t g_t` of the original
    /// gradients (the gradient of `Σ c_t L_t`).
    pub coefficients: Vec<f64>,
    /// The solver's record (iterations, duality gap, convergence) for
    /// `alpha`; T ≤ 2 are closed forms (0 iterations).
    pub solve: SimplexSolution,
}

/// MGDA coefficients: normalise (`losses` are read only by `Loss` and
/// `LossPlus`, but must have T entries), solve the min-norm problem, and
/// map α back to the original gradients.
pub fn mgda(
    gram: &Gram,
    losses: &[f64],
    normalisation: MgdaNormalisation,
    opts: &SolverOptions,
) -> Result<MgdaSolution> {
    gram.check_len("mgda", "losses", losses)?;
    let n = normalisation.normalisers(gram, losses)?;
    let solve = min_norm(&gram.scaled(&n), opts);
    let coefficients = solve.w.iter().zip(&n).map(|(a, n)| a / n).collect();
    Ok(MgdaSolution {
        alpha: solve.w.clone(),
        coefficients,
        solve,
    })
}

/// `α₁` of the two-task problem `min_{α₁∈[0,1]} ‖α₁g₁ + (1−α₁)g₂‖²`:
/// `clip((g₂−g₁)·g₂ / ‖g₁−g₂‖², 0, 1)`, from `M₁₁, M₁₂, M₂₂`. Equal
/// gradients (every α₁ optimal) give ½.
pub fn min_norm_two(m11: f64, m12: f64, m22: f64) -> f64 {
    let denom = m11 + m22 - 2.0 * m12; // ‖g₁ − g₂‖²
    if denom <= 1e-12 * (m11 + m22) {
        return 0.5;
    }
    ((m22 - m12) / denom).clamp(0.0, 1.0)
}

/// Min-norm point of the hull of the gradients: the best two-task pair as
/// the starting point, then Wolfe's min-norm-point algorithm (exact up to
/// rounding, finitely many steps; Frank–Wolfe crawls on this problem when
/// many tasks are active: 1000 away-step iterations left a relative gap
/// of 2e-7 at T = 64).
pub fn min_norm(gram: &Gram, opts: &SolverOptions) -> SimplexSolution {
    let t = gram.tasks();
    let start = best_pair(gram);
    if t <= 2 {
        // The pair's closed form is the exact optimum.
        return SimplexSolution {
            w: start,
            iterations: 0,
            gap: 0.0,
            converged: true,
        };
    }
    wolfe(gram, start, opts)
}

/// The two-task solution with the smallest norm over all pairs, as a
/// point of Δ (T = 1: the single vertex).
fn best_pair(gram: &Gram) -> Vec<f64> {
    let t = gram.tasks();
    let mut w = vec![0.0; t];
    w[0] = 1.0;
    let mut best = gram.get(0, 0);
    for i in 0..t {
        for j in i + 1..t {
            let (mii, mij, mjj) = (gram.get(i, i), gram.get(i, j), gram.get(j, j));
            let a = min_norm_two(mii, mij, mjj);
            let cost = a * a * mii + 2.0 * a * (1.0 - a) * mij + (1.0 - a) * (1.0 - a) * mjj;
            if cost < best {
                best = cost;
                w.fill(0.0);
                w[i] = a;
                w[j] = 1.0 - a;
            }
        }
    }
    w
}

/// Wolfe (1976), "Finding the nearest point in a polytope", on the Gram
/// matrix. `w` always lives on a "corral" S (its support): the points of
/// S are affinely independent and `w` minimises the norm over their
/// affine hull. A major step adds the vertex that most decreases the norm
/// (the Frank–Wolfe vertex); minor steps walk toward the new affine
/// minimiser, dropping vertices whose weight would turn negative.
fn wolfe(gram: &Gram, start: Vec<f64>, opts: &SolverOptions) -> SimplexSolution {
    let tol = opts.tol * gram.max_diagonal();
    let mut w = start;
    let mut support: Vec<usize> = (0..w.len()).filter(|&i| w[i] > 0.0).collect();
    let mut iterations = 0;
    let mut last_f = f64::INFINITY;
    loop {
        let mw = gram.mul(&w);
        let f = dot(&w, &mw);
        let j = (0..w.len()).fold(0, |b, i| if mw[i] < mw[b] { i } else { b });
        let gap = f - mw[j];
        // Optimal; out of budget; or stalled by rounding (no decrease, or
        // the best vertex already in the corral).
        let stalled = f >= last_f || support.contains(&j);
        if gap <= tol || iterations >= opts.max_iter || stalled {
            return SimplexSolution {
                w,
                iterations,
                gap,
                converged: gap <= tol,
            };
        }
        last_f = f;
        support.push(j);
        if !minor_cycle(gram, &mut w, &mut support, &mut iterations) {
            // Affinely dependent corral (rounding): keep the last valid w.
            let gap = f - mw[j];
            return SimplexSolution {
                w,
                iterations,
                gap,
                converged: gap <= tol,
            };
        }
    }
}

/// Moves `w` to the affine minimiser of `support`, shrinking the support
/// until that minimiser has positive weights. `false` if a corral's
/// system is singular.
fn minor_cycle(
    gram: &Gram,
    w: &mut [f64],
    support: &mut Vec<usize>,
    iterations: &mut usize,
) -> bool {
    loop {
        *iterations += 1;
        let Some(mu) = affine_minimiser(gram, support) else {
            return false;
        };
        if mu.iter().all(|&m| m > 0.0) {
            for (&s, m) in support.iter().zip(mu) {
                w[s] = m;
            }
            return true;
        }
        // Walk from w toward mu until the first weight reaches zero.
        let (mut theta, mut leaving) = (f64::INFINITY, support[0]);
        for (&s, &m) in support.iter().zip(&mu) {
            if m <= 0.0 {
                let step = if w[s] - m > 0.0 {
                    w[s] / (w[s] - m)
                } else {
                    0.0
                };
                if step < theta {
                    (theta, leaving) = (step, s);
                }
            }
        }
        for (&s, m) in support.iter().zip(&mu) {
            w[s] += theta * (m - w[s]);
        }
        w[leaving] = 0.0;
        support.retain(|&s| w[s] > 0.0);
    }
}

/// `argmin_{Σμ=1} ‖Σ_{s∈S} μ_s g_s‖²` from the bordered KKT system
/// `[M_SS 1; 1ᵀ 0] [μ; −ν] = [0; 1]`, on M scaled to unit diagonal size
/// so that the pivot test is scale-free.
fn affine_minimiser(gram: &Gram, support: &[usize]) -> Option<Vec<f64>> {
    let k = support.len();
    let n = k + 1;
    let scale = gram.max_diagonal();
    let mut a = vec![0.0; n * n];
    let mut b = vec![0.0; n];
    for (r, &i) in support.iter().enumerate() {
        for (c, &j) in support.iter().enumerate() {
            a[r * n + c] = gram.get(i, j) / scale;
        }
        a[r * n + k] = 1.0;
        a[k * n + r] = 1.0;
    }
    b[k] = 1.0;
    let mut x = solve_linear(a, b)?;
    x.truncate(k);
    Some(x)
}
