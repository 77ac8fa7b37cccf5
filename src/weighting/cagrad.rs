//! CAGrad (Liu et al. 2021), conflict-averse gradient descent, with
//! LibMTL's objective and epsilons so that results compare one to one.

use super::gram::{invalid, Gram};
use super::simplex::{self, Objective, SimplexSolution, SolverOptions};
use crate::Result;

/// LibMTL's guard against square roots and divisions at zero, kept so the
/// objective is the same function (note it is absolute, not relative: with
/// squared gradient norms near 1e-8 it starts to dominate).
const EPS: f64 = 1e-8;

/// The final division of the CAGrad direction (LibMTL's `rescale`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CaGradRescale {
    /// `rescale = 0`: `g0 + λ gw` as is.
    None,
    /// `rescale = 1` (LibMTL default): divide by `1 + c²`.
    #[default]
    OnePlusCSquared,
    /// `rescale = 2`: divide by `1 + c`.
    OnePlusC,
}

impl CaGradRescale {
    /// From LibMTL's integer code 0, 1 or 2.
    pub fn from_code(code: u32) -> Result<CaGradRescale> {
        match code {
            0 => Ok(CaGradRescale::None),
            1 => Ok(CaGradRescale::OnePlusCSquared),
            2 => Ok(CaGradRescale::OnePlusC),
            _ => Err(invalid(
                "CaGradRescale::from_code",
                format!("rescale {code}: expected 0 (none), 1 (/(1+c²)) or 2 (/(1+c))"),
            )),
        }
    }

    fn divisor(self, c: f64) -> f64 {
        match self {
            CaGradRescale::None => 1.0,
            CaGradRescale::OnePlusCSquared => 1.0 + c * c,
            CaGradRescale::OnePlusC => 1.0 + c,
        }
    }
}

/// What [`cagrad`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct CaGradSolution {
    /// `c_t = (1/T + λ w_t) / rescale`: the update is `Σ c_t g_t`.
    pub coefficients: Vec<f64>,
    /// `λ = c‖g0‖ / (‖gw‖ + 1e-8)`.
    pub lambda: f64,
    /// The inner problem's minimiser `w` on Δ and the solver's record.
    pub solve: SimplexSolution,
}

/// CAGrad coefficients. With `g0 = mean_t g_t`, `k = c·‖g0‖ + 1e-8` and
/// `‖g0‖ = sqrt(mean(M) + 1e-8)`, minimise over `w ∈ Δ`
/// `wᵀ M (1/T) + k·sqrt(wᵀMw + 1e-8)` (see [`cagrad_objective`]), then
/// `gw = Σ w_t g_t`, `λ = k / (‖gw‖ + 1e-8)` and
/// `g = (g0 + λ gw) / rescale`. `c = 0` returns the plain mean exactly
/// (LibMTL's epsilons would leave a ~1e-8 trace of `gw`).
pub fn cagrad(
    gram: &Gram,
    c: f64,
    rescale: CaGradRescale,
    opts: &SolverOptions,
) -> Result<CaGradSolution> {
    if !(c.is_finite() && c >= 0.0) {
        return Err(invalid(
            "cagrad",
            format!(
                "c = {c}; the conflict-aversion radius must be finite and ≥ 0 (LibMTL default 0.5)"
            ),
        ));
    }
    let t = gram.tasks();
    let mean = 1.0 / t as f64;
    let divisor = rescale.divisor(c);
    if c == 0.0 {
        let solve = SimplexSolution {
            w: vec![mean; t],
            iterations: 0,
            gap: 0.0,
            converged: true,
        };
        return Ok(CaGradSolution {
            coefficients: vec![mean / divisor; t],
            lambda: 0.0,
            solve,
        });
    }
    let objective = CaGradObjective::new(gram, c);
    let solve = simplex::minimise(&objective, vec![mean; t], gram.max_diagonal(), opts);
    let gw_norm = gram.bilinear(&solve.w, &solve.w).max(0.0).sqrt();
    let lambda = objective.k / (gw_norm + EPS);
    let coefficients = solve
        .w
        .iter()
        .map(|w| (mean + lambda * w) / divisor)
        .collect();
    Ok(CaGradSolution {
        coefficients,
        lambda,
        solve,
    })
}

/// LibMTL's CAGrad inner objective at `w`:
/// `wᵀ M b + k·sqrt(wᵀMw + 1e-8)`, `b = 1/T`, `k = c·sqrt(mean(M) + 1e-8) + 1e-8`.
pub fn cagrad_objective(gram: &Gram, c: f64, w: &[f64]) -> f64 {
    CaGradObjective::new(gram, c).value(w)
}

struct CaGradObjective<'a> {
    gram: &'a Gram,
    // a = M b: the linear term's coefficients.
    a: Vec<f64>,
    k: f64,
}

impl<'a> CaGradObjective<'a> {
    fn new(gram: &'a Gram, c: f64) -> Self {
        let t = gram.tasks();
        let a = gram.mul(&vec![1.0 / t as f64; t]);
        let mean_m = gram.as_slice().iter().sum::<f64>() / (t * t) as f64;
        let k = c * (mean_m + EPS).max(0.0).sqrt() + EPS;
        CaGradObjective { gram, a, k }
    }

    fn value(&self, w: &[f64]) -> f64 {
        let q = self.gram.bilinear(w, w) + EPS;
        super::gram::dot(w, &self.a) + self.k * q.max(0.0).sqrt()
    }
}

impl Objective for CaGradObjective<'_> {
    fn gradient(&self, w: &[f64]) -> Vec<f64> {
        let mw = self.gram.mul(w);
        let root = (super::gram::dot(w, &mw) + EPS).max(EPS).sqrt();
        self.a
            .iter()
            .zip(&mw)
            .map(|(a, m)| a + self.k * m / root)
            .collect()
    }

    // φ(γ) = f(w + γd) is convex, so φ' is nondecreasing: bisect its root.
    fn line_search(&self, w: &[f64], d: &[f64], gamma_max: f64) -> f64 {
        let linear = super::gram::dot(d, &self.a);
        let (q0, p, r) = (
            self.gram.bilinear(w, w) + EPS,
            self.gram.bilinear(d, w),
            self.gram.bilinear(d, d),
        );
        let slope = |g: f64| {
            let q = (q0 + 2.0 * g * p + g * g * r).max(EPS);
            linear + self.k * (p + g * r) / q.sqrt()
        };
        if slope(0.0) >= 0.0 {
            return 0.0;
        }
        if slope(gamma_max) <= 0.0 {
            return gamma_max;
        }
        let (mut lo, mut hi) = (0.0, gamma_max);
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if slope(mid) < 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }
}
