//! The `Balancer` runs a `Weighting` on a `Program`: the loss-weighting
//! methods set the task-weight buffer (equal, static, RLW, DWA) or let the
//! GPU do it (uncertainty); the gradient methods run the program's Gram
//! phase, solve the T×T problem on the host and finish the step with the
//! coefficients (two submits per step, one T×T readback).
//!
//! Use: `model.set_balancing(balancer.balancing())` before building the
//! program, then `balancer.step(ctx, &mut program, opts)` instead of
//! `program.step`, and `balancer.end_epoch` at epoch ends (DWA).
//!
//! The loss rules (GLS, STCH, FAMO) set the rule the GPU turns each
//! step's losses into weights with, in the step's submit (FAMO measures
//! the losses again after the update: one more submit); GradDrop runs in
//! the step's submit; ExcessMTL and MoCo keep per-parameter state on the
//! GPU and run the Gram phase and a finish step like the gradient methods.
//!
//! `state` and `restore` carry what the methods remember between steps
//! (RLW's, PCGrad's and GradVac's generator, GradNorm's weights and Adam
//! moments, DWA's loss history and the epoch's running loss sums, whether
//! uncertainty weighting's warm start ran, GradVac's targets, STCH's
//! schedule and nadir point, FAMO's logits, ExcessMTL's and MoCo's host
//! state) through a checkpoint, so a resumed run takes the steps an
//! uninterrupted one would. ExcessMTL's and MoCo's per-parameter GPU state
//! ([T, P]) is not in the checkpoint: a resumed run starts it afresh.

use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::graph::{Balancing, GramSpace, Program, StepOptions, StepReport, Tracking};
use crate::kernels::weighting::LossRule;
use crate::util::rng::Rng;

use super::{
    aligned_mtl, cagrad, db_mtl, fairgrad, gradvac, imtl_g, mgda, nash_mtl, pcgrad, rlw_weights,
    upgrad, DwaState, ExcessMtlState, FamoState, GradNormMode, GradNormState, Gram, MgdaSpace,
    MocoState, SolverOptions, StchState, UncertaintyInit, Weighting,
};

/// One balanced step: the program's report, and the coefficients c_t the
/// update used (dObjective/dL_t).
pub struct BalancedStep {
    /// Counters and the loss readback of the (last) submit.
    pub report: StepReport,
    /// c_t per task.
    pub weights: Vec<f32>,
}

/// What a `Balancer` remembers between steps, as a checkpoint stores it
/// (JSON: every f64 round-trips exactly, the f32 loss sums as bits).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BalancerState {
    /// The method's name (`Weighting::name`): restoring into another
    /// method is refused.
    pub method: String,
    /// Tasks.
    pub tasks: usize,
    rng: Rng,
    gradnorm: Option<GradNormState>,
    dwa: Option<DwaState>,
    log_var_set: bool,
    /// DWA: the program's per-task loss sums of the epoch in progress
    /// (f32 bits) and the steps they cover.
    epoch_loss_sums: Option<(Vec<u32>, u32)>,
    #[serde(default)]
    methods: MethodStates,
}

/// The host state of the newer methods (absent from older checkpoints,
/// hence `default`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct MethodStates {
    #[serde(default)]
    gradvac_targets: Option<Vec<f64>>,
    #[serde(default)]
    stch: Option<StchState>,
    #[serde(default)]
    famo: Option<FamoState>,
    #[serde(default)]
    excess_mtl: Option<ExcessMtlState>,
    #[serde(default)]
    moco: Option<MocoState>,
}

/// Runs one `Weighting` on a program, step after step, keeping its state
/// (GradNorm's weights and initial losses, DWA's loss history, RLW's
/// generator).
pub struct Balancer {
    weighting: Weighting,
    tasks: usize,
    rng: Rng,
    gradnorm: Option<GradNormState>,
    dwa: Option<DwaState>,
    /// Weights last written to the program (None: not yet).
    written: Option<Vec<f32>>,
    /// Uncertainty weighting's warm start has been written.
    log_var_set: bool,
    methods: MethodStates,
    /// The loss rule last written to the program (None: not yet).
    rule_written: Option<LossRule>,
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

impl Balancer {
    /// A balancer for `tasks` tasks; `seed` drives RLW's and PCGrad's
    /// randomness. An error when the method's parameters do not fit
    /// (`Weighting::check`).
    pub fn new(weighting: Weighting, tasks: usize, seed: u64) -> Result<Balancer> {
        weighting.check(tasks)?;
        let dwa = match weighting {
            Weighting::Dwa { temperature } => Some(DwaState::new(tasks, temperature)?),
            _ => None,
        };
        let methods = MethodStates {
            stch: match weighting {
                Weighting::Stch { warmup_epochs, .. } => Some(StchState::new(tasks, warmup_epochs)),
                _ => None,
            },
            famo: matches!(weighting, Weighting::Famo { .. }).then(|| FamoState::new(tasks)),
            excess_mtl: matches!(weighting, Weighting::ExcessMtl { .. })
                .then(|| ExcessMtlState::new(tasks)),
            moco: matches!(weighting, Weighting::MoCo(_)).then(|| MocoState::new(tasks)),
            gradvac_targets: matches!(weighting, Weighting::GradVac { .. })
                .then(|| vec![0.0; tasks * tasks]),
        };
        Ok(Balancer {
            weighting,
            tasks,
            rng: Rng::new(seed ^ 0x5eed_ba1a),
            gradnorm: None,
            dwa,
            written: None,
            log_var_set: false,
            methods,
            rule_written: None,
        })
    }

    /// The method it runs.
    pub fn weighting(&self) -> &Weighting {
        &self.weighting
    }

    /// What the graph must provide (`Model::set_balancing`).
    pub fn balancing(&self) -> Balancing {
        match &self.weighting {
            Weighting::Equal | Weighting::Static(_) | Weighting::Rlw => Balancing::Weights,
            Weighting::Dwa { .. } => Balancing::EpochLosses,
            Weighting::Uncertainty { .. } => Balancing::Uncertainty,
            Weighting::GradNorm { mode, .. } => Balancing::Gram(match mode {
                GradNormMode::LastSharedLayer => GramSpace::LastSharedLayer,
                GradNormMode::AllShared => GramSpace::SharedParameters,
            }),
            Weighting::Mgda {
                space: MgdaSpace::Representation,
                ..
            } => Balancing::Gram(GramSpace::Representation),
            Weighting::Mgda { .. }
            | Weighting::PcGrad
            | Weighting::CaGrad { .. }
            | Weighting::ImtlG
            | Weighting::UpGrad { .. }
            | Weighting::AlignedMtl
            | Weighting::NashMtl { .. }
            | Weighting::FairGrad { .. }
            | Weighting::DbMtl
            | Weighting::GradVac { .. } => Balancing::Gram(GramSpace::SharedParameters),
            Weighting::Gls | Weighting::Stch { .. } | Weighting::Famo { .. } => Balancing::LossRule,
            Weighting::GradDrop { .. } => Balancing::GradDrop,
            Weighting::ExcessMtl { .. } => Balancing::Tracked(Tracking::AdagradSums),
            Weighting::MoCo(_) => Balancing::Tracked(Tracking::TrackedGradients),
        }
    }

    fn write_rule(&mut self, ctx: &GpuContext, program: &Program, rule: LossRule) -> Result<()> {
        if self.rule_written.as_ref() != Some(&rule) {
            program.set_loss_rule(ctx, &rule)?;
            self.rule_written = Some(rule);
        }
        Ok(())
    }

    /// A loss-rule step (GLS, STCH, FAMO): the GPU weighs this step's
    /// losses by the rule; STCH sums its nadir epoch's losses, FAMO
    /// measures the losses again after the update and steps its logits.
    fn loss_rule_step(
        &mut self,
        ctx: &GpuContext,
        program: &mut Program,
        opts: StepOptions,
    ) -> Result<BalancedStep> {
        let rule = match (&self.weighting, &self.methods) {
            (Weighting::Stch { mu, .. }, MethodStates { stch: Some(s), .. }) => s.rule(*mu),
            (Weighting::Famo { .. }, MethodStates { famo: Some(f), .. }) => f.rule(),
            _ => LossRule::GeometricMean,
        };
        self.write_rule(ctx, program, rule)?;
        // STCH's nadir epoch and FAMO's update need this step's losses.
        let wants_losses = opts.update
            && match (&self.weighting, &self.methods) {
                (Weighting::Stch { .. }, MethodStates { stch: Some(s), .. }) => s.collecting(),
                (Weighting::Famo { .. }, _) => true,
                _ => false,
            };
        let before = ctx.counters();
        // The weights (and losses) ride in the step's own submit: one
        // submit per step, two with FAMO's second forward.
        let mut rec = ctx.recorder("train step");
        let pending = program.record_step(&mut rec, opts)?;
        let weights_read = rec.read(program.task_weights());
        let losses_read = wants_losses.then(|| rec.read(program.task_losses()));
        rec.submit()?;
        let weights = weights_read.wait_f32(ctx)?;
        let losses = losses_read.map(|r| r.wait_f32(ctx)).transpose()?;
        if let Some(losses) = losses {
            match (&self.weighting, &mut self.methods) {
                (Weighting::Stch { .. }, MethodStates { stch: Some(s), .. }) => {
                    s.observe(&losses)?;
                }
                (Weighting::Famo { lr, gamma }, MethodStates { famo: Some(f), .. }) => {
                    let (_, after) = program.predict(ctx)?;
                    f.update(&losses, &after.losses, *lr, *gamma)?;
                }
                _ => {}
            }
        }
        // Count FAMO's second forward pass too.
        let report = StepReport::since(ctx, &before, pending);
        Ok(BalancedStep { report, weights })
    }

    /// `s_t = log L_t` of the batch in the program's inputs (a forward
    /// pass, no update).
    fn start_log_variances(&mut self, ctx: &GpuContext, program: &Program) -> Result<()> {
        let (_, report) = program.predict(ctx)?;
        let s = report
            .losses
            .iter()
            .enumerate()
            .map(|(t, &l)| {
                if l.is_finite() && l > 0.0 {
                    Ok(l.ln())
                } else {
                    Err(Error::Shape {
                        op: "balancer",
                        detail: format!(
                            "uncertainty_warm starts s_t at log L_t, but task {t}'s first loss is {l}"
                        ),
                    })
                }
            })
            .collect::<Result<Vec<f32>>>()?;
        program.set_log_variances(ctx, &s)?;
        self.log_var_set = true;
        Ok(())
    }

    fn write(&mut self, ctx: &GpuContext, program: &Program, w: Vec<f32>) -> Result<Vec<f32>> {
        if self.written.as_ref() != Some(&w) {
            program.set_task_weights(ctx, &w)?;
            self.written = Some(w.clone());
        }
        Ok(w)
    }

    /// One training (or, with `opts.update` false, gradient) step.
    pub fn step(
        &mut self,
        ctx: &GpuContext,
        program: &mut Program,
        opts: StepOptions,
    ) -> Result<BalancedStep> {
        let t = self.tasks;
        if let Some(w) = self.loss_weights() {
            let weights = self.write(ctx, program, w)?;
            let report = program.step(ctx, opts)?;
            return Ok(BalancedStep { report, weights });
        }
        match self.weighting {
            Weighting::Gls | Weighting::Stch { .. } | Weighting::Famo { .. } => {
                return self.loss_rule_step(ctx, program, opts);
            }
            Weighting::GradDrop { leak } => {
                let seed = (self.rng.next_u64() >> 32) as u32;
                program.set_graddrop(leak as f32, seed)?;
                let report = program.step(ctx, opts)?;
                return Ok(BalancedStep {
                    report,
                    weights: vec![1.0; t],
                });
            }
            Weighting::MoCo(o) => {
                let moco = self.methods.moco.get_or_insert_with(|| MocoState::new(t));
                program.set_tracking_rate(moco.next_beta(&o) as f32)?;
            }
            _ => {}
        }
        if let Weighting::Uncertainty { init } = self.weighting {
            // A program that has stepped (resumed from a checkpoint) keeps
            // the s_t it learned.
            if init == UncertaintyInit::FirstLosses && !self.log_var_set && program.steps() == 0 {
                self.start_log_variances(ctx, program)?;
            }
            let report = program.step(ctx, opts)?;
            let weights = program.task_weights().to_f32_vec(ctx)?;
            return Ok(BalancedStep { report, weights });
        }
        // Gradient methods: Gram phase, host solve, finish.
        self.written = None;
        let before = ctx.counters();
        let phase = program.gram_phase(ctx)?;
        if let Some(i) = phase.losses.iter().position(|l| !l.is_finite()) {
            return Err(Error::Diverged {
                step: program.steps() as u64 + 1,
                task: format!("task {i}"),
                value: phase.losses[i],
            });
        }
        let losses: Vec<f64> = phase.losses.iter().map(|&l| l as f64).collect();
        if let Weighting::ExcessMtl { step_size } = self.weighting {
            let state = self
                .methods
                .excess_mtl
                .get_or_insert_with(|| ExcessMtlState::new(t));
            let weights = to_f32(&state.step(&phase.excess_risk, step_size)?);
            let losses = program.finish_step(ctx, &weights, opts)?.losses;
            let report = StepReport::since(ctx, &before, losses);
            return Ok(BalancedStep { report, weights });
        }
        let gram = Gram::from_f32(t, &phase.gram)?;
        if let Weighting::MoCo(o) = self.weighting {
            let moco = self.methods.moco.get_or_insert_with(|| MocoState::new(t));
            let weights = to_f32(&moco.step(&gram, &o));
            let losses = program.finish_tracked_step(ctx, &weights, opts)?.losses;
            let report = StepReport::since(ctx, &before, losses);
            return Ok(BalancedStep { report, weights });
        }
        let weights = to_f32(&self.coefficients(&gram, &losses)?);
        let losses = program.finish_step(ctx, &weights, opts)?.losses;
        // Count both phases.
        let report = StepReport::since(ctx, &before, losses);
        Ok(BalancedStep { report, weights })
    }

    /// The loss-weighting methods' weights for the next step (RLW draws
    /// them), or None for the methods the GPU or a Gram decides
    /// (uncertainty, the gradient methods).
    pub fn loss_weights(&mut self) -> Option<Vec<f32>> {
        let t = self.tasks;
        match &self.weighting {
            Weighting::Equal => Some(vec![1.0; t]),
            Weighting::Static(w) => Some(w.clone()),
            Weighting::Rlw => Some(to_f32(&rlw_weights(t, &mut self.rng))),
            Weighting::Dwa { .. } => self.dwa.as_ref().map(|d| to_f32(&d.weights())),
            _ => None,
        }
    }

    /// Whether data-parallel training (`train::parallel`) can run this
    /// method exactly: the loss-weighting methods whose weights do not
    /// depend on the program (equal, static, RLW) and the gradient methods
    /// over parameter gradients. Uncertainty weighting and DWA keep their
    /// state in a replica's program, MGDA-UB compares per-row gradients of
    /// the representation: refused with the reason.
    pub fn check_data_parallel(&self) -> Result<()> {
        let why = match &self.weighting {
            Weighting::Uncertainty { .. } => {
                "its log-variances' gradient depends on the global losses inside each replica's step"
            }
            Weighting::Dwa { .. } => "its epoch loss sums live in each replica's program",
            Weighting::Mgda {
                space: MgdaSpace::Representation,
                ..
            } => "its Gram is over per-row representation gradients, which replicas do not share",
            Weighting::Gls | Weighting::Stch { .. } | Weighting::Famo { .. } => {
                "its weights are computed from the losses inside each replica's step"
            }
            Weighting::GradDrop { .. } => {
                "its sign dropout runs inside each replica's backward pass"
            }
            Weighting::ExcessMtl { .. } | Weighting::MoCo(_) => {
                "its per-parameter state lives in each replica's program"
            }
            _ => return Ok(()),
        };
        Err(Error::InvalidInput {
            op: "data-parallel training",
            detail: format!(
                "task weighting '{}' is not supported across replicas: {why} (use equal, static, \
                 rlw, pcgrad, mgda or another gradient method, or train on one device)",
                self.weighting.name()
            ),
        })
    }

    /// The gradient methods' coefficients c_t from the Gram of the
    /// per-task gradients and the per-task losses (GradNorm's weights
    /// move after); an error for the loss-weighting methods.
    pub fn coefficients(&mut self, gram: &Gram, losses: &[f64]) -> Result<Vec<f64>> {
        let opts_solver = SolverOptions::default();
        let c: Vec<f64> = match &self.weighting {
            Weighting::GradNorm {
                alpha, lr, update, ..
            } => {
                let state = match &mut self.gradnorm {
                    Some(s) => s,
                    None => self
                        .gradnorm
                        .insert(GradNormState::new(losses)?.with_update(*update)),
                };
                // The model steps with the current w; then w moves.
                let w = state.weights().to_vec();
                state.step(&gram.norms(), losses, *alpha, *lr)?;
                w
            }
            Weighting::Mgda { normalisation, .. } => {
                mgda(gram, losses, *normalisation, &opts_solver)?.coefficients
            }
            Weighting::PcGrad => pcgrad(gram, &mut self.rng),
            Weighting::CaGrad { c, rescale } => {
                cagrad(gram, *c, *rescale, &opts_solver)?.coefficients
            }
            Weighting::ImtlG => imtl_g(gram)?,
            Weighting::UpGrad { norm_eps, reg_eps } => {
                upgrad(gram, *norm_eps, *reg_eps)?.coefficients
            }
            Weighting::AlignedMtl => aligned_mtl(gram)?.coefficients,
            Weighting::NashMtl { max_norm } => nash_mtl(gram, *max_norm)?.coefficients,
            Weighting::FairGrad { alpha } => fairgrad(gram, *alpha)?,
            Weighting::DbMtl => db_mtl(gram, losses)?,
            Weighting::GradVac { beta } => {
                let t = self.tasks;
                let targets = self
                    .methods
                    .gradvac_targets
                    .get_or_insert_with(|| vec![0.0; t * t]);
                gradvac(gram, targets, *beta, &mut self.rng)
            }
            other => {
                return Err(Error::InvalidInput {
                    op: "balancer",
                    detail: format!(
                        "'{}' weighs losses: it has no Gram coefficients",
                        other.name()
                    ),
                })
            }
        };
        Ok(c)
    }

    /// What the balancer (and the program's epoch loss sums) hold now.
    pub fn state(&self, ctx: &GpuContext, program: &Program) -> Result<BalancerState> {
        let epoch_loss_sums = program
            .epoch_loss_sums(ctx)?
            .map(|(sums, steps)| (sums.iter().map(|s| s.to_bits()).collect(), steps));
        Ok(BalancerState {
            method: self.weighting.name().to_string(),
            tasks: self.tasks,
            rng: self.rng.clone(),
            gradnorm: self.gradnorm.clone(),
            dwa: self.dwa.clone(),
            log_var_set: self.log_var_set,
            epoch_loss_sums,
            methods: self.methods.clone(),
        })
    }

    /// Continues from `state` (taken by `state` from a balancer of the
    /// same method and task count); the task weights are written again
    /// at the next step.
    pub fn restore(
        &mut self,
        ctx: &GpuContext,
        program: &mut Program,
        state: BalancerState,
    ) -> Result<()> {
        let method = self.weighting.name();
        if state.method != method || state.tasks != self.tasks {
            return Err(Error::InvalidInput {
                op: "Balancer::restore",
                detail: format!(
                    "the state is of {} over {} tasks, this run weighs {} tasks with {method}",
                    state.method, state.tasks, self.tasks
                ),
            });
        }
        if let Some((bits, steps)) = &state.epoch_loss_sums {
            let sums: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
            program.set_epoch_loss_sums(ctx, &sums, *steps)?;
        }
        // The method's hyper-parameters come from this run; the state
        // brings what was learned, checked (a checkpoint is input).
        self.gradnorm = match (state.gradnorm, &self.weighting) {
            (Some(g), Weighting::GradNorm { update, .. }) => {
                g.check(self.tasks)?;
                Some(g.with_update(*update))
            }
            _ => None,
        };
        if let (Some(saved), Weighting::Dwa { temperature }) = (state.dwa, &self.weighting) {
            let mut dwa = DwaState::new(self.tasks, *temperature)?;
            for means in saved.history() {
                dwa.end_epoch(means)?;
            }
            self.dwa = Some(dwa);
        }
        let m = state.methods;
        let t = self.tasks;
        if let Some(s) = &m.stch {
            s.check(t)?;
        }
        if let Some(f) = &m.famo {
            f.check(t)?;
        }
        if let Some(e) = &m.excess_mtl {
            e.check(t)?;
        }
        if let Some(s) = &m.moco {
            s.check(t)?;
        }
        if let Some(g) = &m.gradvac_targets {
            if g.len() != t * t || g.iter().any(|v| !v.is_finite()) {
                return Err(Error::InvalidInput {
                    op: "Balancer::restore",
                    detail: format!("the saved GradVac targets do not fit {t} tasks"),
                });
            }
        }
        // Keep this run's fresh state where the checkpoint has none.
        let fresh = std::mem::take(&mut self.methods);
        self.methods = MethodStates {
            gradvac_targets: m.gradvac_targets.or(fresh.gradvac_targets),
            stch: m.stch.or(fresh.stch),
            famo: m.famo.or(fresh.famo),
            excess_mtl: m.excess_mtl.or(fresh.excess_mtl),
            moco: m.moco.or(fresh.moco),
        };
        self.rng = state.rng;
        self.log_var_set = state.log_var_set;
        self.written = None;
        self.rule_written = None;
        Ok(())
    }

    /// Ends an epoch: DWA reads the epoch's mean losses from the GPU and
    /// sets the next epoch's weights; STCH moves along its schedule; the
    /// other methods do nothing.
    pub fn end_epoch(&mut self, ctx: &GpuContext, program: &mut Program) -> Result<()> {
        if let Some(stch) = &mut self.methods.stch {
            stch.end_epoch()?;
        }
        if let Some(dwa) = &mut self.dwa {
            let means: Vec<f64> = program
                .take_epoch_losses(ctx)?
                .into_iter()
                .map(|l| l as f64)
                .collect();
            dwa.end_epoch(&means)?;
        }
        Ok(())
    }
}
