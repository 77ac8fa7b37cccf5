//! Task balancing on the host: the tiny T×T solvers that turn per-task
//! losses and the Gram matrix `M = G Gᵀ` of per-task gradients (computed
//! on the GPU, `T ≤ 64`) into per-task coefficients `c_t`. The model is
//! then updated with the gradient of `Σ_t c_t L_t`: every method here
//! reduces to a combination `Σ_t c_t g_t` of the original task gradients,
//! derived from `M` alone. All arithmetic is f64; nothing panics on bad
//! input, it returns an [`Error`](crate::Error).
//!
//! - [`Weighting`]: the user's choice, with LibMTL's names and defaults.
//! - [`Balancer`]: runs a `Weighting` on a `graph::Program` (the GPU side:
//!   task-weight buffer, uncertainty terms, Gram phase + finish step).
//! - [`Gram`]: the checked T×T input.
//! - Gradient-combining solvers: [`mgda`], [`pcgrad`], [`cagrad`], [`imtl_g`],
//!   [`upgrad`], [`aligned_mtl`], [`nash_mtl`], [`fairgrad`], [`db_mtl`],
//!   [`gradvac`]; with per-parameter state on the GPU: [`ExcessMtlState`],
//!   [`MocoState`].
//! - Loss-weighting rules: [`GradNormState`], [`DwaState`],
//!   [`uncertainty_loss`] and its gradient, [`rlw_weights`]; computed on
//!   the GPU from each step's losses: GLS, [`StchState`], [`FamoState`].
//! - GradDrop runs wholly on the GPU (`kernels::weighting::graddrop`).

mod aligned_mtl;
mod balancer;
mod cagrad;
mod db_mtl;
mod excess_mtl;
mod fairgrad;
mod famo;
mod gradnorm;
mod gradvac;
mod gram;
mod imtl;
mod loss_weighting;
mod mgda;
mod moco;
mod nash_mtl;
mod pcgrad;
mod simplex;
mod stch;
mod upgrad;

pub use aligned_mtl::{aligned_mtl, AlignedMtlSolution};
pub use balancer::{BalancedStep, Balancer, BalancerState};
pub use cagrad::{cagrad, cagrad_objective, CaGradRescale, CaGradSolution};
pub use db_mtl::db_mtl;
pub use excess_mtl::{ExcessMtlState, EXCESS_MTL_DEFAULT_STEP};
pub use fairgrad::{fairgrad, FAIRGRAD_DEFAULT_ALPHA};
pub use famo::{FamoState, FAMO_DEFAULT_GAMMA, FAMO_DEFAULT_LR};
pub use gradnorm::{GradNormState, GradNormUpdate, GRADNORM_WEIGHT_FLOOR};
pub use gradvac::{gradvac, GRADVAC_DEFAULT_BETA};
pub use gram::{Gram, SYMMETRY_TOLERANCE};
pub use imtl::imtl_g;
pub use loss_weighting::{
    rlw_weights, uncertainty_grad, uncertainty_loss, uncertainty_loss_weights, DwaState,
};
pub use mgda::{mgda, min_norm, min_norm_two, MgdaNormalisation, MgdaSolution};
pub use moco::{MocoOptions, MocoState};
pub use nash_mtl::{nash_mtl, NashMtlSolution, NASH_MAX_ITERATIONS, NASH_TOLERANCE};
pub use pcgrad::pcgrad;
pub use simplex::{SimplexSolution, SolverOptions};
pub use stch::{StchState, STCH_DEFAULT_MU, STCH_DEFAULT_WARMUP_EPOCHS};
pub use upgrad::{upgrad, UpGradSolution, UPGRAD_NORM_EPS, UPGRAD_REG_EPS};

use crate::Result;
use gram::invalid;

/// Where uncertainty weighting's `s_t = log σ_t²` starts.
///
/// From `s_t = 0` every task starts at weight ½ and `s_t` must travel to
/// about `log L_t` before losses of different scales are balanced. Under
/// Adam it moves about `lr` per step at best, and less once its gradient
/// `½(1 − e^{−s_t}L_t)` has shrunk below the early values Adam's second
/// moment remembers: on the synthetic benchmark (losses 10 to 10⁵) a
/// thousand steps at lr 1e-3 leave every weight within 2× of the others.
/// Starting at the first batch's `log L_t` (the stationary point of
/// `½e^{−s}L + ½s`) normalises each loss by its initial scale from step
/// one and lets `s_t` track it from there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UncertaintyInit {
    /// `s_t = 0` (Kendall et al.'s usual start).
    #[default]
    Zero,
    /// `s_t = log L_t` of the first batch, read by a forward pass before
    /// the first step (one extra submit, once).
    FirstLosses,
}

/// Which gradients GradNorm measures `‖∇_W L_t‖` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GradNormMode {
    /// The last shared layer's weights (the paper's choice, and cheap).
    #[default]
    LastSharedLayer,
    /// All shared parameters (LibMTL with `rep_grad = False`, its default).
    AllShared,
}

/// Where MGDA's task gradients live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MgdaSpace {
    /// Gradients w.r.t. the shared representation Z: MGDA-UB, one backward
    /// through the heads only (LibMTL `rep_grad = True`).
    Representation,
    /// Gradients w.r.t. all shared parameters (LibMTL `rep_grad = False`).
    #[default]
    SharedParameters,
}

/// A task-balancing method and its hyper-parameters (defaults are
/// LibMTL's unless said otherwise). Each yields per-task coefficients
/// `c_t` for the update `∇ Σ_t c_t L_t`.
#[derive(Clone, Debug, PartialEq)]
pub enum Weighting {
    /// `c_t = 1`. LibMTL `EW` (the same).
    Equal,
    /// `c_t = w_t`, fixed by the user. Not in LibMTL. [`parse`] accepts
    /// `static:1,0.5,2`; bare `static` leaves the list empty for the
    /// caller to fill, and [`Weighting::check`] rejects it until then.
    Static(Vec<f32>),
    /// Kendall et al. 2018: learned `s_t = log σ_t²`,
    /// `L = Σ ½e^{−s_t}L_t + ½s_t` ([`uncertainty_loss`]). LibMTL `UW`, the
    /// same loss; LibMTL starts at `s_t = −0.5`, we at `s_t = 0`
    /// ([`UncertaintyInit::Zero`]) or, with `uncertainty_warm`, at the
    /// stationary point `s_t = log L_t` of the first batch
    /// ([`UncertaintyInit::FirstLosses`]).
    Uncertainty {
        /// Where `s_t` starts.
        init: UncertaintyInit,
    },
    /// Chen et al. 2018: weights learned so weighted gradient norms follow
    /// each task's relative training rate ([`GradNormState`]). LibMTL
    /// `GradNorm` (alpha 1.5). Differences: LibMTL parameterises
    /// `w = T·softmax(θ)` and steps θ with the model's optimiser; we step
    /// `w` itself with its own Adam (default, [`GradNormUpdate::Adam`]) or
    /// plain gradient descent, clamp at [`GRADNORM_WEIGHT_FLOOR`] and
    /// rescale to `Σ w = T`, as the paper does. `lr` 0.025 is our default
    /// (with Adam each weight moves by about `lr` per step; with plain
    /// descent by `lr·‖∇L_t‖`, so scale it with your gradient norms).
    GradNorm {
        /// Asymmetry α: how strongly slow tasks are pulled up (1.5).
        alpha: f64,
        /// Step size of the plain SGD step on the weights.
        lr: f64,
        /// Whose gradient norms are balanced.
        mode: GradNormMode,
        /// How `w` follows `∂L_grad/∂w`.
        update: GradNormUpdate,
    },
    /// Liu et al. 2019: `λ_k = K·softmax(r/τ)_k`, `r_k = L̄_k(e−1)/L̄_k(e−2)`
    /// from per-epoch mean losses ([`DwaState`]). LibMTL `DWA` (T = 2), the
    /// same.
    Dwa {
        /// τ of the softmax (2 in the paper).
        temperature: f64,
    },
    /// Yu et al. 2020: project each gradient off the others it conflicts
    /// with, in a random order ([`pcgrad`]). LibMTL `PCGrad`; it shuffles
    /// all tasks including i itself (a no-op unless `g_i'·g_i < 0`), we
    /// skip j = i as the paper does; our order comes from the crate's
    /// seeded [`Rng`](crate::util::rng::Rng), not Python's `random`.
    PcGrad,
    /// Sener & Koltun 2018: the min-norm point of the gradients' convex
    /// hull ([`mgda`]); `space: Representation` is MGDA-UB. LibMTL `MGDA`
    /// (`mgda_gn = none`). Differences: we solve with Wolfe's exact
    /// min-norm-point algorithm from LibMTL's best-pair start, to a duality
    /// gap of 1e-10 (LibMTL: projected steps, 250 iterations,
    /// ‖Δα‖₁ < 1e-5, and it returns None if they run out); the two-task closed form is clipped to
    /// [0, 1] (LibMTL: [0.001, 0.999]); coefficients are always
    /// `α_t/n_t`, while LibMTL with `rep_grad = True` applies α to the
    /// unnormalised representation gradients.
    Mgda {
        /// How the gradients are normalised before the min-norm solve.
        normalisation: MgdaNormalisation,
        /// Gradients of the shared parameters, or of the heads' input.
        space: MgdaSpace,
    },
    /// Liu et al. 2021: the mean gradient plus the worst-case improvement
    /// within radius `c·‖g0‖` ([`cagrad`]). LibMTL `CAGrad` (`calpha` 0.5,
    /// `rescale` 1): the same objective and epsilons; we minimise it with
    /// away-step Frank–Wolfe instead of scipy's SLSQP, and `c = 0` returns
    /// the mean exactly. LibMTL refuses `rep_grad = True`; so should the
    /// caller (the Gram must be over shared parameters).
    CaGrad {
        /// Radius factor c ≥ 0 (0.5); 0 gives the mean gradient.
        c: f64,
        /// How the combined gradient is scaled afterwards.
        rescale: CaGradRescale,
    },
    /// Liu et al. 2021 (IMTL-G): `Σ α_t g_t` with equal projections on every
    /// unit gradient ([`imtl_g`]). LibMTL `IMTL` is the hybrid IMTL-L +
    /// IMTL-G: it also learns loss scales `e^{s_t}L_t − s_t` and applies α
    /// to the scaled losses' gradients; here only the gradient part.
    ImtlG,
    /// Lin et al. 2021: fresh `softmax(z)`, `z ~ N(0, I)`, every step
    /// ([`rlw_weights`]). LibMTL `RLW` with `dist = Normal` (its default);
    /// the other distributions are not offered.
    Rlw,
    /// Quinton & Rey 2024: the mean of every gradient's projection onto
    /// the dual cone `{v : g_j·v ≥ 0 ∀j}` ([`upgrad`]). torchjd `UPGrad`
    /// with its default mean preference vector: the same QPs on the
    /// trace-normalised, regularised Gram (quadprog there, an exact active
    /// set here). Not in LibMTL.
    UpGrad {
        /// A Gram of trace below it counts as zero (torchjd: 1e-4).
        norm_eps: f64,
        /// Added to the normalised Gram's diagonal (torchjd: 1e-4).
        reg_eps: f64,
    },
    /// Senushkin et al. 2023: the gradients aligned to condition number 1,
    /// `Ĝ = √λ_min M^{-1/2} G`, summed ([`aligned_mtl`]). LibMTL
    /// `Aligned_MTL` (`c = B·1`, eigenvalues below `λ_max·T·ε_f32` cut),
    /// the same; a zero Gram gives `c = 1` (torchjd's choice) where LibMTL
    /// fails. torchjd's `AlignedMTL` uses `B·(1/T)`, a 1/T smaller step.
    AlignedMtl,
    /// Navon et al. 2022: the Nash bargaining solution `(M α)_t = 1/α_t`
    /// ([`nash_mtl`]). LibMTL `Nash_MTL` (`max_norm` 1,
    /// `update_weights_every` 1, `optim_niter` 20): the same α scaling
    /// (solved on `M/‖M‖_F`) and clip of the shared gradient's norm to
    /// `max_norm`. Differences: we solve the equation itself by Newton's
    /// method to a relative residual of 1e-10 from a fresh start each
    /// step (LibMTL: up to `optim_niter` cvxpy convex-concave steps,
    /// warm-started from the last α, stopping at residual 1e-3); weights
    /// are recomputed every step (`update_weights_every` 1 only); the
    /// clip scales the coefficients, so the heads' gradients shrink with
    /// the shared ones (LibMTL clips only the shared parameters').
    NashMtl {
        /// Largest norm of the combined shared gradient (1); 0: no clip.
        max_norm: f64,
    },
    /// Ban & Ji 2024: α-fair weights `(M α)_t = α_t^{-1/a}` ([`fairgrad`]).
    /// LibMTL `FairGrad` (`FairGrad_alpha` 1), the same equation and
    /// coefficients; solved by Newton's method instead of scipy's
    /// `least_squares`.
    FairGrad {
        /// Fairness a > 0 (1, where the equation is Nash-MTL's).
        alpha: f64,
    },
    /// Lin et al. 2023: log-transformed losses, gradients rescaled to the
    /// largest norm ([`db_mtl`]). LibMTL `DB_MTL` with `DB_beta = 0`: its
    /// moving average of the gradients (default `DB_beta` 0.9) is not
    /// implemented, the current step's gradients are balanced. LibMTL
    /// applies the rescaling to the shared parameters only (the heads get
    /// `∇ log L_t`); here `c_t` weighs the heads' gradients too.
    DbMtl,
    /// Chennupati et al. 2019 (GLS): the update is the gradient of the
    /// geometric mean `(Π_t L_t)^{1/T}`, `c_t = (Π L)^{1/T}/(T·L_t)`,
    /// computed on the GPU from the step's losses. LibMTL `GLS`, the same.
    Gls,
    /// Lin et al. 2024 (smooth Tchebycheff, [`StchState`]): log losses
    /// through `warmup_epochs`, one epoch measuring the nadir point, then
    /// a smooth maximum of the normalised log losses. LibMTL `STCH`, the
    /// same.
    Stch {
        /// Smoothing μ > 0 (1).
        mu: f64,
        /// Epochs of log losses before the nadir epoch (4).
        warmup_epochs: u32,
    },
    /// Liu et al. 2023 ([`FamoState`]): `c_t ∝ z_t/L_t`, z = softmax(ξ),
    /// ξ stepped by Adam from how much each loss fell on the same batch.
    /// LibMTL `FAMO`, the same.
    Famo {
        /// ξ's Adam learning rate (0.025).
        lr: f64,
        /// ξ's L2 weight decay (1e-3).
        gamma: f64,
    },
    /// Wang et al. 2021 ([`gradvac`]): PCGrad toward EMA target cosines.
    /// LibMTL `GradVac` with `GradVac_group_type` 0 (whole model).
    GradVac {
        /// The targets' EMA rate β (0.5).
        beta: f64,
    },
    /// Chen et al. 2020 (GradDrop): per feature of the heads' input, keep
    /// the tasks' gradients of one sign, drawn by the sign purity
    /// ([`kernels::weighting::graddrop`](crate::kernels::weighting::graddrop)).
    /// LibMTL `GradDrop` (on the representation, as there).
    GradDrop {
        /// Share of a dropped gradient kept, in [0, 1] (0).
        leak: f64,
    },
    /// He et al. 2024 ([`ExcessMtlState`]): loss weights stepped toward
    /// the tasks with the largest Adagrad-preconditioned excess risk.
    /// LibMTL `ExcessMTL`, the same.
    ExcessMtl {
        /// η, the multiplicative step (1e-2).
        step_size: f64,
    },
    /// Fernando et al. 2023 ([`MocoState`]): tracked gradients and a
    /// softmax-projected step on λ. LibMTL `MoCo`, the same.
    MoCo(MocoOptions),
}

/// Every name [`parse`] accepts (besides the aliases `ew`, `uw` and the
/// `static:w1,w2,…` form), for error messages and `--help`.
pub const WEIGHTING_NAMES: &[&str] = &[
    "equal",
    "static",
    "uncertainty",
    "uncertainty_warm",
    "gradnorm",
    "dwa",
    "pcgrad",
    "mgda",
    "mgda_ub",
    "cagrad",
    "imtl_g",
    "rlw",
    "upgrad",
    "aligned_mtl",
    "nash_mtl",
    "fairgrad",
    "db_mtl",
    "gls",
    "stch",
    "famo",
    "gradvac",
    "graddrop",
    "excess_mtl",
    "moco",
];

/// A method from its config / CLI name (case-insensitive, `-` = `_`), with
/// default hyper-parameters. LibMTL's `EW` and `UW` are accepted too.
pub fn parse(name: &str) -> Result<Weighting> {
    let lower = name.trim().to_ascii_lowercase().replace('-', "_");
    if let Some(list) = lower.strip_prefix("static:") {
        return parse_static(list);
    }
    Ok(match lower.as_str() {
        "equal" | "ew" => Weighting::Equal,
        "static" => Weighting::Static(Vec::new()),
        "uncertainty" | "uw" => Weighting::Uncertainty {
            init: UncertaintyInit::Zero,
        },
        "uncertainty_warm" => Weighting::Uncertainty {
            init: UncertaintyInit::FirstLosses,
        },
        "gradnorm" => Weighting::GradNorm {
            alpha: 1.5,
            lr: 0.025,
            mode: GradNormMode::default(),
            update: GradNormUpdate::default(),
        },
        "dwa" => Weighting::Dwa { temperature: 2.0 },
        "pcgrad" => Weighting::PcGrad,
        "mgda" => Weighting::Mgda {
            normalisation: MgdaNormalisation::None,
            space: MgdaSpace::SharedParameters,
        },
        "mgda_ub" => Weighting::Mgda {
            normalisation: MgdaNormalisation::None,
            space: MgdaSpace::Representation,
        },
        "cagrad" => Weighting::CaGrad {
            c: 0.5,
            rescale: CaGradRescale::OnePlusCSquared,
        },
        "imtl_g" => Weighting::ImtlG,
        "rlw" => Weighting::Rlw,
        "upgrad" => Weighting::UpGrad {
            norm_eps: UPGRAD_NORM_EPS,
            reg_eps: UPGRAD_REG_EPS,
        },
        "aligned_mtl" => Weighting::AlignedMtl,
        "nash_mtl" => Weighting::NashMtl { max_norm: 1.0 },
        "fairgrad" => Weighting::FairGrad {
            alpha: FAIRGRAD_DEFAULT_ALPHA,
        },
        "db_mtl" => Weighting::DbMtl,
        "gls" => Weighting::Gls,
        "stch" => Weighting::Stch {
            mu: STCH_DEFAULT_MU,
            warmup_epochs: STCH_DEFAULT_WARMUP_EPOCHS,
        },
        "famo" => Weighting::Famo {
            lr: FAMO_DEFAULT_LR,
            gamma: FAMO_DEFAULT_GAMMA,
        },
        "gradvac" => Weighting::GradVac {
            beta: GRADVAC_DEFAULT_BETA,
        },
        "graddrop" => Weighting::GradDrop { leak: 0.0 },
        "excess_mtl" | "excessmtl" => Weighting::ExcessMtl {
            step_size: EXCESS_MTL_DEFAULT_STEP,
        },
        "moco" => Weighting::MoCo(MocoOptions::default()),
        _ => {
            let detail = format!(
                "unknown task weighting '{name}': expected one of {} (or static:w1,w2,…)",
                WEIGHTING_NAMES.join(", ")
            );
            return Err(invalid("weighting::parse", detail));
        }
    })
}

fn parse_static(list: &str) -> Result<Weighting> {
    let weights: std::result::Result<Vec<f32>, _> =
        list.split(',').map(|w| w.trim().parse::<f32>()).collect();
    weights.map(Weighting::Static).map_err(|e| {
        let detail = format!("static weights '{list}': {e}; write them as static:1,0.5,2");
        invalid("weighting::parse", detail)
    })
}

impl std::str::FromStr for Weighting {
    type Err = crate::Error;

    fn from_str(name: &str) -> Result<Weighting> {
        parse(name)
    }
}

impl Weighting {
    /// The config name ([`parse`] of it gives back the default variant).
    pub fn name(&self) -> &'static str {
        match self {
            Weighting::Equal => "equal",
            Weighting::Static(_) => "static",
            Weighting::Uncertainty {
                init: UncertaintyInit::Zero,
            } => "uncertainty",
            Weighting::Uncertainty { .. } => "uncertainty_warm",
            Weighting::GradNorm { .. } => "gradnorm",
            Weighting::Dwa { .. } => "dwa",
            Weighting::PcGrad => "pcgrad",
            Weighting::Mgda {
                space: MgdaSpace::Representation,
                ..
            } => "mgda_ub",
            Weighting::Mgda { .. } => "mgda",
            Weighting::CaGrad { .. } => "cagrad",
            Weighting::ImtlG => "imtl_g",
            Weighting::Rlw => "rlw",
            Weighting::UpGrad { .. } => "upgrad",
            Weighting::AlignedMtl => "aligned_mtl",
            Weighting::NashMtl { .. } => "nash_mtl",
            Weighting::FairGrad { .. } => "fairgrad",
            Weighting::DbMtl => "db_mtl",
            Weighting::Gls => "gls",
            Weighting::Stch { .. } => "stch",
            Weighting::Famo { .. } => "famo",
            Weighting::GradVac { .. } => "gradvac",
            Weighting::GradDrop { .. } => "graddrop",
            Weighting::ExcessMtl { .. } => "excess_mtl",
            Weighting::MoCo(_) => "moco",
        }
    }

    /// Whether each step needs the Gram matrix of per-task gradients from
    /// the GPU. GradNorm reads only its diagonal (the gradient norms).
    pub fn needs_gram(&self) -> bool {
        matches!(
            self,
            Weighting::GradNorm { .. }
                | Weighting::PcGrad
                | Weighting::Mgda { .. }
                | Weighting::CaGrad { .. }
                | Weighting::ImtlG
                | Weighting::UpGrad { .. }
                | Weighting::AlignedMtl
                | Weighting::NashMtl { .. }
                | Weighting::FairGrad { .. }
                | Weighting::DbMtl
                | Weighting::GradVac { .. }
                | Weighting::MoCo(_)
        )
    }

    /// Errors unless the hyper-parameters are in their domain for
    /// `tasks` tasks (static weights: one finite value per task).
    pub fn check(&self, tasks: usize) -> Result<()> {
        let bad = |detail: String| Err(invalid("Weighting::check", detail));
        match self {
            Weighting::Static(w) if w.len() != tasks => {
                bad(format!("{} static weights for {tasks} tasks", w.len()))
            }
            Weighting::Static(w) if w.iter().any(|v| !v.is_finite()) => {
                bad(format!("static weights {w:?} must be finite"))
            }
            Weighting::GradNorm { alpha, lr, .. }
                if !(non_negative(*alpha) && non_negative(*lr)) =>
            {
                bad(format!(
                    "gradnorm alpha {alpha}, lr {lr}: both must be finite and ≥ 0"
                ))
            }
            Weighting::Dwa { temperature } if !(temperature.is_finite() && *temperature > 0.0) => {
                bad(format!(
                    "dwa temperature {temperature} must be finite and > 0"
                ))
            }
            Weighting::CaGrad { c, .. } if !non_negative(*c) => {
                bad(format!("cagrad c {c} must be finite and ≥ 0"))
            }
            Weighting::UpGrad { norm_eps, reg_eps }
                if !(non_negative(*norm_eps) && non_negative(*reg_eps)) =>
            {
                bad(format!(
                    "upgrad norm_eps {norm_eps}, reg_eps {reg_eps}: both must be finite and ≥ 0"
                ))
            }
            Weighting::NashMtl { max_norm } if !non_negative(*max_norm) => bad(format!(
                "nash_mtl max_norm {max_norm} must be finite and ≥ 0 (0: no clip)"
            )),
            Weighting::FairGrad { alpha } if !(alpha.is_finite() && *alpha > 0.0) => {
                bad(format!("fairgrad alpha {alpha} must be finite and > 0"))
            }
            Weighting::Stch { mu, .. } if !(mu.is_finite() && *mu > 0.0) => {
                bad(format!("stch mu {mu} must be finite and > 0"))
            }
            Weighting::Famo { lr, gamma } if !(non_negative(*lr) && non_negative(*gamma)) => bad(
                format!("famo lr {lr}, gamma {gamma}: both must be finite and ≥ 0"),
            ),
            Weighting::GradVac { beta } if !(non_negative(*beta) && *beta <= 1.0) => {
                bad(format!("gradvac beta {beta} must lie in [0, 1]"))
            }
            Weighting::GradDrop { leak } if !(non_negative(*leak) && *leak <= 1.0) => {
                bad(format!("graddrop leak {leak} must lie in [0, 1]"))
            }
            Weighting::ExcessMtl { step_size } if !non_negative(*step_size) => bad(format!(
                "excess_mtl step_size {step_size} must be finite and ≥ 0"
            )),
            Weighting::MoCo(o)
                if ![o.beta, o.beta_sigma, o.gamma, o.gamma_sigma, o.rho]
                    .iter()
                    .all(|&v| non_negative(v)) =>
            {
                bad(format!(
                    "moco beta {}, beta_sigma {}, gamma {}, gamma_sigma {}, rho {}: all must be finite and ≥ 0",
                    o.beta, o.beta_sigma, o.gamma, o.gamma_sigma, o.rho
                ))
            }
            _ if tasks > crate::kernels::weighting::MAX_TASKS && self.runs_on_gpu_rule() => {
                bad(format!(
                    "{} weighs at most {} tasks (got {tasks})",
                    self.name(),
                    crate::kernels::weighting::MAX_TASKS
                ))
            }
            _ if tasks == 0 => bad("no tasks".into()),
            _ => Ok(()),
        }
    }
}

impl Weighting {
    /// Whether a GPU kernel bounded to `kernels::weighting::MAX_TASKS`
    /// tasks computes its weights (the loss rules and GradDrop).
    fn runs_on_gpu_rule(&self) -> bool {
        matches!(
            self,
            Weighting::Gls
                | Weighting::Stch { .. }
                | Weighting::Famo { .. }
                | Weighting::GradDrop { .. }
        )
    }
}

fn non_negative(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

impl std::fmt::Display for Weighting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
