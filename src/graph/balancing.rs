//! Task balancing in the program: the per-task gradients of the heads'
//! input (the task split), gradient methods' two phases (`gram_phase`:
//! per-task gradients and their Gram matrix; `finish_step`: the update
//! with the solver's coefficients), the per-parameter state of ExcessMTL
//! and MoCo, GradDrop's backward, the loss rules of GLS/STCH/FAMO, DWA's
//! epoch losses and uncertainty weighting's log-variances.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::gpu::{DType, GpuContext, Recorder, Tensor};
use crate::graph::backward::InputGrads;
use crate::graph::builder::Graph;
use crate::graph::ops::{GramSpace, NodeId, Op, Tracking};
use crate::graph::params::{ParamArena, ParamId};
use crate::graph::program::{Program, StepOptions, StepReport};
use crate::kernels::block;
use crate::kernels::gemm::Layout;
use crate::kernels::task_gemm::{TaskProblem, TaskTable};
use crate::kernels::weighting::{self, GramScratch, LossRule, RowSum, RowSumScratch};

fn err(detail: String) -> Error {
    Error::Shape {
        op: "graph",
        detail,
    }
}

/// The per-task gradients of the task heads' input (`split_task_grads`).
pub(crate) struct TaskSplit {
    /// The first head layer (a dense op over every task's columns).
    pub layer: NodeId,
    /// dH_t = D[:, block t] · W[:, block t]ᵀ, one problem per task.
    pub table: TaskTable,
    /// [T, rows, inputs].
    pub grads: Tensor,
}

impl TaskSplit {
    /// The split declared by `Graph::split_task_grads`, if any.
    pub(crate) fn new(ctx: &GpuContext, graph: &Graph) -> Result<Option<TaskSplit>> {
        let Some((layer, widths)) = &graph.task_split else {
            return Ok(None);
        };
        let Op::Dense { x, .. } = &graph.nodes[layer.0].op else {
            return Err(err(format!(
                "'{}' is not a dense layer",
                graph.nodes[layer.0].name
            )));
        };
        let (rows, inputs) = (graph.nodes[x.0].shape[0], graph.nodes[x.0].shape[1]);
        let total: usize = widths.iter().sum();
        let mut problems = Vec::new();
        let mut col = 0;
        for (t, &h) in widths.iter().enumerate() {
            // dH_t = D[:, col..col+h] · W[:, col..col+h]ᵀ
            problems.push(TaskProblem {
                m: rows,
                n: inputs,
                k: h,
                a_offset: col,
                lda: total,
                b_offset: col,
                ldb: total,
                c_offset: t * rows * inputs,
                ldc: inputs,
                bias_offset: 0,
            });
            col += h;
        }
        Ok(Some(TaskSplit {
            layer: *layer,
            table: TaskTable::new(ctx, Layout::NT, &problems)?,
            grads: Tensor::empty(
                ctx,
                "per-task input grads",
                &[widths.len(), rows, inputs],
                DType::F32,
            )?,
        }))
    }
}

/// Whose per-task gradients the Gram phase compares, with their buffers.
pub(crate) enum GramSource {
    /// dL_t/dH: the task split's gradients themselves.
    Representation,
    /// Parameter gradients: the per-task passes run the backward of
    /// `trunk` seeded with task t's dL_t/dH and copy `shared` (a view of
    /// the compared parameters' gradients in the arena) into row t of
    /// `per_task` [T, P].
    Parameters {
        trunk: Range<usize>,
        shared: Tensor,
        per_task: Tensor,
    },
}

/// Buffers of Gram-based balancing (`Balancing::Gram`, `Balancing::Tracked`).
pub(crate) struct GramParts {
    /// The heads' shared input H (the split layer's input).
    h: NodeId,
    source: GramSource,
    scratch: GramScratch,
    ones: Vec<f32>,
    tracked: Option<TrackedState>,
}

/// The per-parameter state of `Balancing::Tracked` ([T, P] each).
pub(crate) enum TrackedState {
    /// ExcessMTL's running sums of squared per-task gradients.
    AdagradSums {
        sums: Tensor,
        scratch: RowSumScratch,
    },
    /// MoCo's tracked gradients y, with ‖g_t‖² and L_t side by side for
    /// its update, its step size β, and the λ of the finish step.
    TrackedGradients {
        y: Tensor,
        scratch: RowSumScratch,
        norms_and_losses: Tensor,
        beta: f32,
        lambda: Tensor,
    },
}

/// What `Program::gram_phase` measured: the per-task losses (unweighted)
/// and the T×T Gram matrix of the per-task gradients, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct GramPhase {
    /// Each task's loss, unweighted.
    pub losses: Vec<f32>,
    /// G[s·T + t] = ⟨g_s, g_t⟩, [T, T] row-major; with
    /// `Tracking::TrackedGradients` the Gram of MoCo's y; empty with
    /// `Tracking::AdagradSums`.
    pub gram: Vec<f32>,
    /// `Tracking::AdagradSums`: each task's `Σ g_t²/√(s_t + 1e-7)`
    /// (ExcessMTL's excess-risk estimate); empty otherwise.
    pub excess_risk: Vec<f32>,
}

/// What `Program::task_gradients` read back.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskGradients {
    /// Each task's loss over the replica's rows, unweighted.
    pub losses: Vec<f32>,
    /// Row t: the gradient of `scales[t]`·L_t over the compared parameters,
    /// [T, P] row-major.
    pub rows: Vec<f32>,
}

impl GramParts {
    /// The Gram phase's buffers: which nodes the per-task passes run and
    /// which arena range holds the compared gradients (checked
    /// contiguous).
    pub(crate) fn new(
        ctx: &GpuContext,
        graph: &Graph,
        arena: &ParamArena,
        space: GramSpace,
        tasks: usize,
        tracking: Option<Tracking>,
    ) -> Result<GramParts> {
        let Compared {
            h,
            rows,
            width,
            trunk,
            params,
        } = compared(graph, space)?;
        let source = match space {
            GramSpace::Representation => GramSource::Representation,
            _ if params.is_empty() => {
                return Err(err("the shared trunk has no parameters to compare".into()))
            }
            _ => {
                let (start, len) = contiguous_range(arena, &params)?;
                GramSource::Parameters {
                    trunk,
                    shared: arena.grads.view(ctx, start, &[len])?,
                    per_task: Tensor::empty(
                        ctx,
                        "per-task shared grads",
                        &[tasks, len],
                        DType::F32,
                    )?,
                }
            }
        };
        let n = match &source {
            GramSource::Parameters { per_task, .. } => per_task.len() / tasks,
            GramSource::Representation => rows * width,
        };
        let tracked = match tracking {
            None => None,
            Some(kind) => {
                let state = Tensor::zeros(ctx, "per-task gradient state", &[tasks * n])?;
                let scratch = RowSumScratch::new(ctx, tasks, n)?;
                Some(match kind {
                    Tracking::AdagradSums => TrackedState::AdagradSums {
                        sums: state,
                        scratch,
                    },
                    Tracking::TrackedGradients => TrackedState::TrackedGradients {
                        y: state,
                        scratch,
                        norms_and_losses: Tensor::zeros(ctx, "norms and losses", &[2 * tasks])?,
                        beta: 1.0,
                        lambda: Tensor::zeros(ctx, "moco lambda", &[tasks])?,
                    },
                })
            }
        };
        Ok(GramParts {
            h,
            source,
            scratch: GramScratch::new(ctx, tasks, n)?,
            ones: vec![1.0; tasks],
            tracked,
        })
    }
}

/// What the Gram phase compares: the heads' shared input H [rows, width],
/// the nodes whose backward the per-task passes run, and the parameters
/// whose gradients they compare (none for the representation).
pub(crate) struct Compared {
    h: NodeId,
    rows: usize,
    width: usize,
    trunk: Range<usize>,
    pub(crate) params: Vec<ParamId>,
}

/// The Gram phase's inputs for `space` (GPU-free: the arena's split keeps
/// `params` in one buffer).
pub(crate) fn compared(graph: &Graph, space: GramSpace) -> Result<Compared> {
    let Some((layer, _)) = &graph.task_split else {
        return Err(err(
            "gradient-based balancing needs the per-task gradients of the heads' input (split_task_grads)".into(),
        ));
    };
    let Op::Dense { x: h, .. } = graph.nodes[layer.0].op else {
        return Err(err(format!(
            "'{}' is not a dense layer",
            graph.nodes[layer.0].name
        )));
    };
    let (rows, width) = (graph.nodes[h.0].shape[0], graph.nodes[h.0].shape[1]);
    let trunk = match space {
        GramSpace::Representation => 0..0,
        GramSpace::LastSharedLayer => h.0..h.0 + 1,
        GramSpace::SharedParameters => 0..h.0 + 1,
    };
    let params: Vec<ParamId> = match space {
        GramSpace::Representation => Vec::new(),
        GramSpace::LastSharedLayer => match graph.nodes[h.0].op {
            Op::Dense { w, .. } => vec![w],
            _ => {
                return Err(err(format!(
                    "GradNorm's last shared layer: '{}' (the heads' input) is not a dense layer",
                    graph.nodes[h.0].name
                )))
            }
        },
        GramSpace::SharedParameters => trunk
            .clone()
            .flat_map(|i| graph.nodes[i].op.params())
            .collect(),
    };
    Ok(Compared {
        h,
        rows,
        width,
        trunk,
        params,
    })
}

/// The arena range [start, start + len) that holds exactly `params`.
fn contiguous_range(arena: &ParamArena, params: &[ParamId]) -> Result<(usize, usize)> {
    let info = |p: &ParamId| arena.layout.get(*p);
    let start = params.iter().map(|p| info(p).offset).min().unwrap_or(0);
    let end = params
        .iter()
        .map(|p| info(p).offset + info(p).len())
        .max()
        .unwrap_or(0);
    // Another parameter inside [start, end) would be mixed in.
    if let Some(other) = arena.layout.entries().iter().find(|e| {
        e.offset < end
            && e.offset + e.len() > start
            && !params.iter().any(|p| info(p).name == e.name)
    }) {
        return Err(err(format!(
            "the shared parameters are not contiguous in the arena ('{}' lies between them): build the trunk before the heads, with one learning rate",
            other.name
        )));
    }
    Ok((start, end - start))
}

/// `dst[dst_at..][..len] = src[src_at..][..len]` (flat elements): a
/// buffer copy between views when both ranges start where a view may (the
/// adapter's storage offset alignment), else the block-copy kernel over
/// the two tensors as single rows (per-task blocks of any size).
fn copy_range(
    rec: &mut Recorder,
    src: &Tensor,
    src_at: usize,
    dst: &Tensor,
    dst_at: usize,
    len: usize,
) -> Result<()> {
    let align = u64::from(rec.ctx().limits().min_storage_buffer_offset_alignment).max(4);
    let viewable = |t: &Tensor, at: usize| (t.offset_bytes() + 4 * at as u64).is_multiple_of(align);
    if viewable(src, src_at) && viewable(dst, dst_at) {
        let ctx = rec.ctx();
        let (from, to) = (
            src.view(ctx, src_at, &[len])?,
            dst.view(ctx, dst_at, &[len])?,
        );
        return rec.copy(&from, &to);
    }
    let (from, to) = (src.reshape(&[1, src.len()])?, dst.reshape(&[1, dst.len()])?);
    block::copy_block(rec, &from, src_at, &to, dst_at, len, 1.0, false)
}

/// The Gram phase's readbacks, resolved after the submit.
struct PendingGram {
    tasks: usize,
    /// None with `Tracking::AdagradSums` (no Gram).
    gram: Option<crate::gpu::Readback>,
    /// `Tracking::AdagradSums`: the excess-risk estimates.
    excess: Option<crate::gpu::Readback>,
    losses: crate::gpu::Readback,
}

impl PendingGram {
    fn wait(self, ctx: &GpuContext) -> Result<GramPhase> {
        let gram = match self.gram {
            Some(g) => g.wait_f32(ctx)?,
            None => Vec::new(),
        };
        debug_assert!(gram.is_empty() || gram.len() == self.tasks * self.tasks);
        let excess_risk = match self.excess {
            Some(e) => e.wait_f32(ctx)?,
            None => Vec::new(),
        };
        Ok(GramPhase {
            losses: self.losses.wait_f32(ctx)?,
            gram,
            excess_risk,
        })
    }
}

impl Program {
    /// Phase one of a gradient-balanced step (`Balancing::Gram`): forward
    /// with every task weighted 1, the heads' backward (writing each task's
    /// dL_t/dH), the per-task gradients of the chosen space, and their Gram
    /// matrix — in one submit, then waits for the T×T matrix and the
    /// losses. Nothing is updated; `finish_step` with the solver's
    /// coefficients completes the step.
    pub fn gram_phase(&mut self, ctx: &GpuContext) -> Result<GramPhase> {
        let mut rec = ctx.recorder("gram phase");
        let pending = self.record_gram_phase(ctx, &mut rec)?;
        rec.submit()?;
        pending.wait(ctx)
    }

    /// `gram_phase` with a GPU timestamp around every dispatch (as
    /// `profile_step`): where phase one of a gradient-balanced step goes.
    /// Needs TIMESTAMP_QUERY.
    pub fn profile_gram_phase(
        &mut self,
        ctx: &GpuContext,
    ) -> Result<(GramPhase, crate::gpu::Profile)> {
        let mut rec = ctx.recorder("gram phase (profiled)").profiled()?;
        let pending = self.record_gram_phase(ctx, &mut rec)?;
        let (_, profile) = rec.submit_profiled()?;
        let profile = profile.wait(ctx)?;
        Ok((pending.wait(ctx)?, profile))
    }

    fn record_gram_phase(&mut self, ctx: &GpuContext, rec: &mut Recorder) -> Result<PendingGram> {
        let (Some(gp), Some(split)) = (&self.gram, &self.task_split) else {
            return Err(err(
                "gram_phase needs Balancing::Gram (Graph::set_balancing)".into(),
            ));
        };
        let t = gp.ones.len();
        self.loss.upstream.write_f32(ctx, &gp.ones)?;
        self.record_forward(rec)?;
        self.record_backward(rec, split.layer.0..self.graph.nodes.len())?;
        let task_grads = &split.grads;
        let mut excess = None;
        match &gp.source {
            GramSource::Representation => {
                let flat = task_grads.reshape(&[task_grads.len()])?;
                weighting::gram(rec, &flat, t, &gp.scratch)?;
            }
            GramSource::Parameters { per_task, .. } => {
                self.record_task_rows(rec, gp, task_grads)?;
                match &gp.tracked {
                    None => weighting::gram(rec, per_task, t, &gp.scratch)?,
                    Some(TrackedState::AdagradSums { sums, scratch }) => {
                        let sum = RowSum::AdagradScaled;
                        weighting::row_sums(rec, per_task, sums, t, sum, scratch)?;
                        excess = Some(rec.read(&scratch.sums));
                    }
                    Some(TrackedState::TrackedGradients {
                        y,
                        scratch,
                        norms_and_losses,
                        beta,
                        ..
                    }) => {
                        weighting::row_sums(rec, per_task, y, t, RowSum::Squares, scratch)?;
                        copy_range(rec, &scratch.sums, 0, norms_and_losses, 0, t)?;
                        copy_range(rec, &self.loss.losses, 0, norms_and_losses, t, t)?;
                        weighting::moco_update(rec, per_task, norms_and_losses, y, t, *beta)?;
                        weighting::gram(rec, y, t, &gp.scratch)?;
                    }
                }
            }
        }
        Ok(PendingGram {
            tasks: t,
            gram: excess.is_none().then(|| rec.read(&gp.scratch.sums)),
            excess,
            losses: rec.read(&self.loss.losses),
        })
    }

    /// MoCo's step size β for the next `gram_phase`
    /// (`Tracking::TrackedGradients`).
    pub fn set_tracking_rate(&mut self, beta: f32) -> Result<()> {
        match self.gram.as_mut().and_then(|g| g.tracked.as_mut()) {
            Some(TrackedState::TrackedGradients { beta: b, .. }) if beta.is_finite() => {
                *b = beta;
                Ok(())
            }
            _ => Err(err(format!(
                "set_tracking_rate({beta}) needs Balancing::Tracked(TrackedGradients) and a finite rate"
            ))),
        }
    }

    /// Phase two for MoCo (`Tracking::TrackedGradients`): like
    /// `finish_step` with every task weighted 1 (each head gets its own
    /// task's gradient), but the shared parameters' gradient replaced by
    /// `Σ_t λ_t y_t` of the tracked gradients.
    pub fn finish_tracked_step(
        &mut self,
        ctx: &GpuContext,
        lambda: &[f32],
        opts: StepOptions,
    ) -> Result<StepReport> {
        let t = self.loss.upstream.len();
        let Some(GramParts {
            source: GramSource::Parameters { shared, .. },
            tracked: Some(TrackedState::TrackedGradients { y, lambda: lam, .. }),
            ones,
            ..
        }) = &self.gram
        else {
            return Err(err(
                "finish_tracked_step needs Balancing::Tracked(TrackedGradients)".into(),
            ));
        };
        if lambda.len() != t || lambda.iter().any(|c| !c.is_finite()) {
            return Err(err(format!(
                "finish_tracked_step takes {t} finite λ, got {lambda:?}"
            )));
        }
        let before = ctx.counters();
        self.loss.upstream.write_f32(ctx, ones)?;
        lam.write_f32(ctx, lambda)?;
        let mut rec = ctx.recorder("finish tracked step");
        self.record_losses(&mut rec)?;
        self.record_backward(&mut rec, 0..self.graph.nodes.len())?;
        weighting::combine_rows(&mut rec, y, lam, shared)?;
        let pending = self.record_after_backward(&mut rec, opts)?;
        rec.submit()?;
        Ok(StepReport::since(ctx, &before, pending))
    }

    /// The loss rule of the following steps (`Balancing::LossRule`).
    pub fn set_loss_rule(&self, ctx: &GpuContext, rule: &LossRule) -> Result<()> {
        let Some(buffer) = &self.loss_rule else {
            return Err(err("set_loss_rule needs Balancing::LossRule".into()));
        };
        buffer.write_f32(ctx, &rule.encode(self.loss.upstream.len())?)
    }

    /// GradDrop's next step: its leak ∈ [0, 1] (the share of a dropped
    /// gradient kept; 0 drops it whole) and the seed of its uniform draws
    /// (the caller's generator, so that a resumed run draws the same).
    pub fn set_graddrop(&mut self, leak: f32, seed: u32) -> Result<()> {
        if !(0.0..=1.0).contains(&leak) {
            return Err(Error::InvalidInput {
                op: "set_graddrop",
                detail: format!("leak {leak} must lie in [0, 1]"),
            });
        }
        self.graddrop_leak = leak;
        self.graddrop_seed = seed;
        Ok(())
    }

    /// The backward of a GradDrop step: the heads' backward (writing each
    /// task's dL_t/dH), the sign-dropped dH, then the trunk's backward.
    pub(crate) fn record_graddrop_backward(&self, rec: &mut Recorder) -> Result<()> {
        let Some(split) = &self.task_split else {
            return Err(err(
                "GradDrop needs the task split (split_task_grads)".into()
            ));
        };
        let layer = split.layer.0;
        let Op::Dense { x: h, .. } = self.graph.nodes[layer].op else {
            return Err(err(format!(
                "'{}' is not a dense layer",
                self.graph.nodes[layer].name
            )));
        };
        self.record_backward(rec, layer..self.graph.nodes.len())?;
        let Some(dh) = self.grad(h) else {
            return Err(self.missing(h.0, "gradient (the heads' input takes one)"));
        };
        let (seed, leak) = (self.graddrop_seed, self.graddrop_leak);
        weighting::graddrop(rec, &split.grads, self.val(h), dh, seed, leak)?;
        self.record_backward(rec, 0..layer)
    }

    /// The per-task passes of a parameter-space Gram: for every task, H's
    /// gradient seeded with that task's block, the trunk's backward, and
    /// the compared gradients copied into row t of `per_task`.
    fn record_task_rows(
        &self,
        rec: &mut Recorder,
        gp: &GramParts,
        task_grads: &Tensor,
    ) -> Result<()> {
        let GramSource::Parameters {
            trunk,
            shared,
            per_task,
        } = &gp.source
        else {
            return Err(err(
                "per-task parameter gradients need a parameter-space Gram".into(),
            ));
        };
        let Some(dh) = self.grad(gp.h) else {
            return Err(self.missing(gp.h.0, "gradient (the heads' input takes one)"));
        };
        let block = dh.len();
        let p = shared.len();
        for task in 0..gp.ones.len() {
            // Seed H's gradient with task t's block, run the trunk
            // backward, keep the shared gradients.
            copy_range(rec, task_grads, task * block, dh, 0, block)?;
            self.record_backward_with(rec, trunk.clone(), InputGrads::InsideRange)?;
            copy_range(rec, shared, 0, per_task, task * p, p)?;
        }
        Ok(())
    }

    /// Data-parallel phase one (`train::parallel`): like `gram_phase`, but
    /// task t's loss weighted by `scales[t]` (a replica's share of the
    /// global batch's labelled rows), and the per-task gradients of the
    /// compared parameters read back, [T, P] row-major, instead of their
    /// Gram: the Gram of the replicas' summed rows is not the sum of
    /// their Grams. Needs a parameter-space Gram (not MGDA-UB's
    /// representation).
    pub fn task_gradients(&mut self, ctx: &GpuContext, scales: &[f32]) -> Result<TaskGradients> {
        let (Some(gp), Some(split)) = (&self.gram, &self.task_split) else {
            return Err(err(
                "task_gradients needs Balancing::Gram (Graph::set_balancing)".into(),
            ));
        };
        let GramSource::Parameters { per_task, .. } = &gp.source else {
            return Err(err(
                "data-parallel gradient balancing needs a parameter-space Gram; the representation's \
                 per-task gradients are per row and are not summed across replicas"
                    .into(),
            ));
        };
        if scales.len() != gp.ones.len() || scales.iter().any(|c| !c.is_finite()) {
            return Err(err(format!(
                "task_gradients takes {} finite task scales, got {scales:?}",
                gp.ones.len()
            )));
        }
        self.loss.upstream.write_f32(ctx, scales)?;
        let mut rec = ctx.recorder("task gradients");
        self.record_forward(&mut rec)?;
        self.record_backward(&mut rec, split.layer.0..self.graph.nodes.len())?;
        self.record_task_rows(&mut rec, gp, &split.grads)?;
        let rows = rec.read(per_task);
        let losses = rec.read(&self.loss.losses);
        rec.submit()?;
        Ok(TaskGradients {
            rows: rows.wait_f32(ctx)?,
            losses: losses.wait_f32(ctx)?,
        })
    }

    /// Data-parallel phase two (after `task_gradients`): the gradient of
    /// Σ_t c_t·L_t left in the gradient arena, nothing updated (the
    /// replicas' gradients are summed, then `apply_gradients` steps).
    pub fn finish_gradients(
        &mut self,
        ctx: &GpuContext,
        coefficients: &[f32],
        terms: crate::graph::GradientTerms,
    ) -> Result<()> {
        let t = self.loss.upstream.len();
        if coefficients.len() != t || coefficients.iter().any(|c| !c.is_finite()) {
            return Err(err(format!(
                "finish_gradients takes {t} finite task coefficients, got {coefficients:?}"
            )));
        }
        self.loss.upstream.write_f32(ctx, coefficients)?;
        let mut rec = ctx.recorder("finish gradients");
        self.record_losses(&mut rec)?;
        self.record_backward(&mut rec, 0..self.graph.nodes.len())?;
        if terms == crate::graph::GradientTerms::WithRegularisers {
            self.record_regulariser_gradients(&mut rec)?;
        }
        rec.submit()?;
        Ok(())
    }

    /// Phase two: the update with the gradient of Σ_t c_t·L_t (the
    /// balancing method's coefficients), in one submit: the loss kernel
    /// again with weights c, the whole backward pass, regularisers and the
    /// optimiser.
    pub fn finish_step(
        &mut self,
        ctx: &GpuContext,
        coefficients: &[f32],
        opts: StepOptions,
    ) -> Result<StepReport> {
        let t = self.loss.upstream.len();
        if coefficients.len() != t || coefficients.iter().any(|c| !c.is_finite()) {
            return Err(err(format!(
                "finish_step takes {t} finite task coefficients, got {coefficients:?}"
            )));
        }
        if self.gram.is_none() {
            return Err(err(
                "finish_step follows gram_phase (Balancing::Gram)".into()
            ));
        }
        let before = ctx.counters();
        self.loss.upstream.write_f32(ctx, coefficients)?;
        let mut rec = ctx.recorder("finish step");
        self.record_losses(&mut rec)?;
        self.record_backward(&mut rec, 0..self.graph.nodes.len())?;
        let pending = self.record_after_backward(&mut rec, opts)?;
        rec.submit()?;
        Ok(StepReport::since(ctx, &before, pending))
    }

    /// The mean loss of every task over the steps since the last call
    /// (`Balancing::EpochLosses`, for DWA), and resets the sums.
    pub fn take_epoch_losses(&mut self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let Some((sums, steps)) = &mut self.epoch_losses else {
            return Err(err("take_epoch_losses needs Balancing::EpochLosses".into()));
        };
        let n = (*steps).max(1) as f32;
        let means = sums.to_f32_vec(ctx)?.into_iter().map(|s| s / n).collect();
        sums.write_f32(ctx, &vec![0.0; sums.len()])?;
        *steps = 0;
        Ok(means)
    }

    /// The per-task loss sums since the last `take_epoch_losses` and the
    /// steps they cover (None without `Balancing::EpochLosses`): what a
    /// checkpoint taken mid-epoch keeps for DWA.
    pub fn epoch_loss_sums(&self, ctx: &GpuContext) -> Result<Option<(Vec<f32>, u32)>> {
        self.epoch_losses
            .as_ref()
            .map(|(sums, steps)| Ok((sums.to_f32_vec(ctx)?, *steps)))
            .transpose()
    }

    /// Restores what `epoch_loss_sums` returned (one sum per task).
    pub fn set_epoch_loss_sums(
        &mut self,
        ctx: &GpuContext,
        sums: &[f32],
        steps: u32,
    ) -> Result<()> {
        let Some((buffer, count)) = &mut self.epoch_losses else {
            return Err(err(
                "set_epoch_loss_sums needs Balancing::EpochLosses".into()
            ));
        };
        if sums.len() != buffer.len() {
            return Err(err(format!(
                "{} epoch loss sums for {} tasks",
                sums.len(),
                buffer.len()
            )));
        }
        buffer.write_f32(ctx, sums)?;
        *count = steps;
        Ok(())
    }

    /// Uncertainty weighting's s_t = log σ_t², as of the last step.
    pub fn log_variances(&self, ctx: &GpuContext) -> Result<Option<Vec<f32>>> {
        self.graph
            .log_var
            .map(|s| self.arena.value(s).to_f32_vec(ctx))
            .transpose()
    }

    /// Overwrites uncertainty weighting's s_t (one value per task).
    pub fn set_log_variances(&self, ctx: &GpuContext, s: &[f32]) -> Result<()> {
        let Some(id) = self.graph.log_var else {
            return Err(Error::Shape {
                op: "set_log_variances",
                detail: "the program has no uncertainty weighting (set_balancing(Uncertainty))"
                    .into(),
            });
        };
        let value = self.arena.value(id);
        if value.len() != s.len() {
            return Err(Error::Shape {
                op: "set_log_variances",
                detail: format!("{} values for {} tasks", s.len(), value.len()),
            });
        }
        value.write_f32(ctx, s)
    }

    /// The per-task gradients of the task heads' input, [T, rows, inputs]
    /// (see `Graph::split_task_grads`), as of the last step.
    pub fn task_input_grads(&self) -> Option<&Tensor> {
        self.task_split.as_ref().map(|s| &s.grads)
    }
}
