//! The compiled `Program`: a graph with its buffers, and `step`, which
//! records forward, backward and the optimiser into ONE encoder and ONE
//! submit, with no host readback inside the step (the loss vector is read
//! only when asked, through a readback the caller waits on later, without
//! stalling the next step).

use crate::error::{Error, Result};
use crate::gpu::{CounterSnapshot, GpuContext, Readback, Recorder, Tensor};
use crate::graph::analysis::{DenseDelta, GradientFlow};
use crate::graph::balancing::{GramParts, TaskSplit};
use crate::graph::buffers::{self, LossParts, NodeState, OpBuffers, OptimGroup, TaskTables};
use crate::graph::builder::Graph;
use crate::graph::ops::{Balancing, NodeId, Op};
use crate::graph::params::{ArenaCap, ParamArena};
use crate::graph::regularisers::{self, OrthParts, RegParts};
use crate::kernels::dense::BackwardPlan;
use crate::kernels::gemm::Variant;
use crate::kernels::loss::STATS_PER_TASK;
use crate::kernels::nonfinite::{self, NonFiniteRecord};
use crate::kernels::weighting::LossRule;
use crate::kernels::{optim, weighting};
use crate::types::{AdamW, DType, Optimizer, Sgd};

/// What one `step` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepOptions {
    /// Apply the optimiser (false: forward + backward only, gradients
    /// left in the arena).
    pub update: bool,
    /// Copy the loss vector and statistics out in this step's submit.
    pub read_losses: bool,
}

impl StepOptions {
    /// Forward, backward and the optimiser (the default).
    pub const TRAIN: StepOptions = StepOptions {
        update: true,
        read_losses: false,
    };
    /// A training step that also reads the losses back.
    pub const TRAIN_AND_READ: StepOptions = StepOptions {
        update: true,
        read_losses: true,
    };
    /// Forward and backward only: gradients left in the arena.
    pub const GRADIENTS: StepOptions = StepOptions {
        update: false,
        read_losses: false,
    };
    /// Forward and backward only, losses read back (evaluation).
    pub const EVALUATE: StepOptions = StepOptions {
        update: false,
        read_losses: true,
    };
}

impl Default for StepOptions {
    fn default() -> Self {
        StepOptions::TRAIN
    }
}

/// Counters of one step (deltas of `GpuContext::counters` around it).
pub struct StepReport {
    /// Compute dispatches recorded.
    pub dispatches: u64,
    /// Queue submits (1 for `Program::step`).
    pub submits: u64,
    /// Tensor bytes written from the host (kernel parameters not
    /// counted).
    pub bytes_uploaded: u64,
    /// Tensor bytes read back to the host.
    pub bytes_downloaded: u64,
    /// With `read_losses`: wait on it whenever convenient.
    pub losses: Option<PendingLosses>,
}

impl StepReport {
    /// The counters since `before`, with the losses in flight.
    pub fn since(
        ctx: &GpuContext,
        before: &CounterSnapshot,
        losses: Option<PendingLosses>,
    ) -> Self {
        let d = ctx.counters().since(before);
        StepReport {
            dispatches: d.dispatches,
            submits: d.submits,
            bytes_uploaded: d.bytes_uploaded,
            bytes_downloaded: d.bytes_downloaded,
            losses,
        }
    }
}

/// A loss readback in flight.
pub struct PendingLosses {
    losses: Readback,
    stats: Readback,
    /// The non-finite watch (training steps only; `predict` has none).
    watch: Option<Readback>,
}

/// Per-task losses and the loss kernel's statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct LossReport {
    /// Each task's loss: the mean over its labelled rows (unweighted).
    pub losses: Vec<f32>,
    /// Each task's labelled rows in the batch.
    pub labelled: Vec<u32>,
    /// Each task's rows whose class id is ≥ its classes (they count as
    /// unlabelled).
    pub out_of_range_labels: Vec<u32>,
    /// Each task's rows whose loss is not finite.
    pub non_finite_rows: Vec<u32>,
    /// The first training step (1-based, counted like `Program::steps`)
    /// whose loss vector held a NaN or ±inf, and its lowest such task:
    /// recorded on the GPU at every step, so it names the true step even
    /// when losses are read only every N steps. `None` while all finite
    /// (and for `predict`).
    pub first_non_finite: Option<NonFiniteRecord>,
}

impl PendingLosses {
    /// The losses, statistics and non-finite watch of a training step,
    /// read in `rec`'s submit.
    pub(crate) fn of_training(rec: &mut Recorder, program: &Program) -> PendingLosses {
        PendingLosses {
            losses: rec.read(&program.loss.losses),
            stats: rec.read(&program.loss.stats),
            watch: Some(rec.read(&program.loss.watch)),
        }
    }

    /// Blocks until the step's copies are done, then reads them.
    pub fn wait(self, ctx: &GpuContext) -> Result<LossReport> {
        let losses = self.losses.wait_f32(ctx)?;
        let stats = self.stats.wait_u32(ctx)?;
        let col = |j: usize| stats.chunks(STATS_PER_TASK).map(|s| s[j]).collect();
        let first_non_finite = match self.watch {
            Some(watch) => NonFiniteRecord::from_words(&watch.wait_u32(ctx)?)?,
            None => None,
        };
        Ok(LossReport {
            losses,
            labelled: col(0),
            out_of_range_labels: col(1),
            non_finite_rows: col(2),
            first_non_finite,
        })
    }
}

/// Memory of the planned intermediates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryReport {
    /// Bytes of the planned buffers: the peak of one step's intermediates.
    pub planned_bytes: u64,
    /// Bytes if every intermediate had its own buffer.
    pub no_reuse_bytes: u64,
    /// Planned buffers the intermediates share.
    pub buffers: usize,
    /// Intermediates planned (values, gradients, Z and D tensors).
    pub intermediates: usize,
}

/// A graph with its buffers, ready to run steps.
pub struct Program {
    pub(crate) graph: Graph,
    pub(crate) arena: ParamArena,
    groups: Vec<OptimGroup>,
    optimizer: Optimizer,
    pub(crate) step: u32,
    pub(crate) variant: Option<Variant>,
    pub(crate) dense_plan: BackwardPlan,
    /// Every node's value and backward buffers, indexed by `NodeId`.
    pub(crate) nodes: Vec<NodeState>,
    /// λ of the gradient-reversal nodes.
    pub(crate) reversal_lambda: f32,
    pub(crate) loss: LossParts,
    loss_node: NodeId,
    pub(crate) task_split: Option<TaskSplit>,
    pub(crate) regularisers: Vec<RegParts>,
    pub(crate) orthogonality: Vec<OrthParts>,
    /// Gram-based balancing: where per-task gradients come from and go.
    pub(crate) gram: Option<GramParts>,
    /// Per-task loss sums since the last `take_epoch_losses` (EpochLosses).
    pub(crate) epoch_losses: Option<(Tensor, u32)>,
    /// `Balancing::LossRule`: the encoded rule (`LossRule::encode`).
    pub(crate) loss_rule: Option<Tensor>,
    /// `Balancing::GradDrop`: the share of dropped gradients kept.
    pub(crate) graddrop_leak: f32,
    /// `Balancing::GradDrop`: the seed of the next step's uniform draws.
    pub(crate) graddrop_seed: u32,
    memory: MemoryReport,
}

/// How `Program::build_with` builds; the default builds like
/// `Program::build` with `ARENA_BUFFER_ENV` unset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// At most this many bytes in each buffer of the parameter, gradient
    /// and optimiser-state arenas (`graph::params`). None: the adapter's
    /// limit, `max_storage_buffer_binding_size` or `max_buffer_size`
    /// whichever is smaller; a value above it is ignored. A lower value
    /// splits the arenas into more buffers (tests split small models
    /// this way; weights do not depend on it). Every parameter tensor
    /// must fit in one buffer.
    pub max_arena_buffer_bytes: Option<u64>,
}

/// How errors name `BuildOptions::max_arena_buffer_bytes`.
const LOWERED_CAP: &str = "BuildOptions::max_arena_buffer_bytes";

/// The environment variable `Program::build` (not `build_with`) reads a
/// lower arena buffer cap from, in bytes, like
/// `BuildOptions::max_arena_buffer_bytes`: the way to split a small
/// model's arenas in a run of the CLI (tests do). Unset: the adapter's.
pub const ARENA_BUFFER_ENV: &str = "MANYTASK_ARENA_BUFFER_BYTES";

/// The cap `ARENA_BUFFER_ENV` sets, if any.
fn cap_from_env() -> Result<Option<u64>> {
    let Ok(text) = std::env::var(ARENA_BUFFER_ENV) else {
        return Ok(None);
    };
    text.trim()
        .parse()
        .map(Some)
        .map_err(|_| Error::InvalidInput {
            op: "Program::build",
            detail: format!("{ARENA_BUFFER_ENV} = '{text}': give a number of bytes, or unset it"),
        })
}

impl Program {
    /// Plans and allocates everything; parameters initialised from `seed`.
    /// The arenas take as many buffers as the adapter's binding limit
    /// needs (`graph::params`; `ARENA_BUFFER_ENV` may lower the cap).
    pub fn build(
        ctx: &GpuContext,
        graph: Graph,
        optimizer: Optimizer,
        seed: u64,
    ) -> Result<Program> {
        let cap = ArenaCap::of_adapter(ctx).lowered(cap_from_env()?, ARENA_BUFFER_ENV);
        Program::build_capped(ctx, graph, optimizer, seed, cap)
    }

    /// `build` with options (e.g. a lower cap on the arena buffers;
    /// `ARENA_BUFFER_ENV` is not read).
    pub fn build_with(
        ctx: &GpuContext,
        graph: Graph,
        optimizer: Optimizer,
        seed: u64,
        options: BuildOptions,
    ) -> Result<Program> {
        let cap = ArenaCap::of_adapter(ctx).lowered(options.max_arena_buffer_bytes, LOWERED_CAP);
        Program::build_capped(ctx, graph, optimizer, seed, cap)
    }

    /// Plans and allocates everything, the arenas in buffers of at most
    /// `cap` bytes.
    fn build_capped(
        ctx: &GpuContext,
        graph: Graph,
        optimizer: Optimizer,
        seed: u64,
        cap: ArenaCap,
    ) -> Result<Program> {
        let flow = GradientFlow::of(&graph)?;
        let loss_node = flow.loss_node;
        let loss = buffers::loss_parts(ctx, &graph, loss_node)?;
        if !flow.has_grad[loss.logits.0] {
            return Err(Error::Shape {
                op: "graph",
                detail: format!(
                    "the logits '{}' are an input: the losses need logits the graph computes",
                    graph.nodes[loss.logits.0].name
                ),
            });
        }
        let dense_plan = BackwardPlan::default_for(ctx, DType::F32);
        let delta = match dense_plan {
            BackwardPlan::StoreDelta => DenseDelta::Stored,
            _ => DenseDelta::Recomputed,
        };
        let (arena, groups) = buffers::arena(ctx, &graph, optimizer, seed, cap)?;
        let (nodes, memory) = buffers::node_states(ctx, &graph, &flow, delta, &arena, &loss)?;
        let t = loss.losses.len();
        let tracking = match graph.balancing {
            Balancing::Tracked(kind) => Some(kind),
            _ => None,
        };
        let gram = match graph.balancing.gram_space() {
            Some(space) => Some(GramParts::new(ctx, &graph, &arena, space, t, tracking)?),
            None => None,
        };
        let loss_rule = match graph.balancing {
            Balancing::LossRule => {
                let rule = LossRule::GeometricMean.encode(t)?;
                Some(Tensor::from_f32(ctx, "loss rule", &[rule.len()], &rule)?)
            }
            _ => None,
        };
        let epoch_losses = match graph.balancing {
            Balancing::EpochLosses => Some((Tensor::zeros(ctx, "epoch loss sums", &[t])?, 0)),
            _ => None,
        };
        Ok(Program {
            task_split: TaskSplit::new(ctx, &graph)?,
            regularisers: regularisers::regularisers(ctx, &graph)?,
            orthogonality: regularisers::orthogonality(ctx, &graph)?,
            graph,
            arena,
            groups,
            optimizer,
            step: 0,
            variant: None,
            dense_plan,
            nodes,
            reversal_lambda: 1.0,
            loss,
            loss_node,
            gram,
            epoch_losses,
            loss_rule,
            graddrop_leak: 0.0,
            graddrop_seed: 0,
            memory,
        })
    }

    /// The graph the program was built from.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The parameter, gradient and optimiser-state arenas (read
    /// parameters by name with `read_all`).
    pub fn params(&self) -> &ParamArena {
        &self.arena
    }

    /// Optimiser dispatches per step: one per (learning-rate group, arena
    /// buffer) holding parameters.
    pub fn optimizer_dispatches(&self) -> usize {
        self.groups.len()
    }

    /// Planned bytes of the intermediates against the no-reuse sum.
    pub fn memory(&self) -> MemoryReport {
        self.memory
    }

    /// Optimiser steps taken.
    pub fn steps(&self) -> u32 {
        self.step
    }

    /// Restores the step count (resuming from a checkpoint: AdamW's bias
    /// correction depends on it).
    pub fn set_steps(&mut self, steps: u32) {
        self.step = steps;
    }

    /// λ for every gradient-reversal node from the next step on.
    pub fn set_reversal_lambda(&mut self, lambda: f32) {
        self.reversal_lambda = lambda;
    }

    /// The optimiser's base learning rate (before per-group multipliers).
    pub fn learning_rate(&self) -> f32 {
        match self.optimizer {
            Optimizer::Sgd(c) => c.lr,
            Optimizer::AdamW(c) => c.lr,
        }
    }

    /// Sets the optimiser's base learning rate from the next step on. It
    /// travels in the optimiser dispatch's parameters, recorded with the
    /// step: a schedule costs no extra submit or upload.
    pub fn set_learning_rate(&mut self, lr: f32) {
        match &mut self.optimizer {
            Optimizer::Sgd(c) => c.lr = lr,
            Optimizer::AdamW(c) => c.lr = lr,
        }
    }

    /// Overrides the dense layers' backward plan (default:
    /// `BackwardPlan::default_for` the adapter). Layers without a planned
    /// D buffer (the plan was not StoreDelta at build) take pool scratch.
    pub fn set_dense_plan(&mut self, plan: BackwardPlan) {
        self.dense_plan = plan;
    }

    /// Pins every GEMM to one variant (None: the autotuner's choice).
    pub fn set_variant(&mut self, variant: Option<Variant>) {
        self.variant = variant;
    }

    /// The buffer of an input node, for the caller to fill before a step.
    pub fn input(&self, node: NodeId) -> Result<&Tensor> {
        match self.graph.nodes.get(node.0).map(|n| &n.op) {
            Some(Op::Input { .. }) => Ok(&self.nodes[node.0].value),
            _ => Err(Error::Shape {
                op: "graph",
                detail: format!("node {} is not an input", node.0),
            }),
        }
    }

    /// dObjective/dL_t for every task (default 1: the objective is the
    /// sum of the task losses, PyTorch's `sum(losses)`).
    pub fn set_task_weights(&self, ctx: &GpuContext, weights: &[f32]) -> Result<()> {
        self.loss.upstream.write_f32(ctx, weights)
    }

    /// The task-weight buffer (GPU-side weighting methods write it).
    pub fn task_weights(&self) -> &Tensor {
        &self.loss.upstream
    }

    /// The per-task loss vector the loss kernel last wrote (unweighted).
    pub fn task_losses(&self) -> &Tensor {
        &self.loss.losses
    }

    /// A retained gradient (`Graph::retain_grad`) as of the last step.
    pub fn grad_of(&self, node: NodeId) -> Option<&Tensor> {
        if self.graph.retained.contains(&node) {
            self.grad(node)
        } else {
            None
        }
    }

    /// The losses node.
    pub fn loss_node(&self) -> NodeId {
        self.loss_node
    }

    /// One training step in one submit.
    pub fn step(&mut self, ctx: &GpuContext, opts: StepOptions) -> Result<StepReport> {
        let before = ctx.counters();
        let mut rec = ctx.recorder("train step");
        let pending = self.record_step(&mut rec, opts)?;
        rec.submit()?;
        Ok(StepReport::since(ctx, &before, pending))
    }

    /// One training step like `step`, with a GPU timestamp around every
    /// dispatch (`gpu::profile`): where the step's time goes, op by op.
    /// The step counts as taken. Needs TIMESTAMP_QUERY.
    pub fn profile_step(
        &mut self,
        ctx: &GpuContext,
        opts: StepOptions,
    ) -> Result<(StepReport, crate::gpu::Profile)> {
        let before = ctx.counters();
        let mut rec = ctx.recorder("train step (profiled)").profiled()?;
        let pending = self.record_step(&mut rec, opts)?;
        let (_, profile) = rec.submit_profiled()?;
        let profile = profile.wait(ctx)?;
        Ok((StepReport::since(ctx, &before, pending), profile))
    }

    /// Empties the GPU record of the first non-finite step
    /// (`LossReport::first_non_finite`), e.g. after a caller has handled a
    /// divergence and goes on from restored weights.
    pub fn reset_non_finite_watch(&self, ctx: &GpuContext) -> Result<()> {
        nonfinite::reset_record(ctx, &self.loss.watch)
    }

    /// Records one step into the caller's recorder (to batch it with other
    /// work in one submit); the step counts as taken once recorded.
    pub fn record_step(
        &mut self,
        rec: &mut Recorder,
        opts: StepOptions,
    ) -> Result<Option<PendingLosses>> {
        if let Some(s) = self.graph.log_var {
            weighting::uncertainty_weights(rec, self.arena.value(s), &self.loss.upstream)?;
        }
        self.record_forward(rec)?;
        if let Some(rule) = &self.loss_rule {
            // The weights come from this step's losses: the loss kernel
            // again, with them.
            weighting::loss_rule(rec, rule, &self.loss.losses, &self.loss.upstream)?;
            self.record_losses(rec)?;
        }
        if self.graph.balancing == Balancing::GradDrop {
            self.record_graddrop_backward(rec)?;
        } else {
            self.record_backward(rec, 0..self.graph.nodes.len())?;
        }
        self.record_after_backward(rec, opts)
    }

    /// Inference: the forward pass only (the loss kernel included, so the
    /// per-task losses come too), then the logits [rows, Σ widths] and the
    /// losses are read back. Nothing is updated.
    pub fn predict(&self, ctx: &GpuContext) -> Result<(Vec<f32>, LossReport)> {
        let (logits, report, _) = self.predict_reading(ctx, &[])?;
        Ok((logits, report))
    }

    /// [`Program::predict`], also reading the values of `nodes` (say a
    /// mixture's gates), each right after its op runs, so a buffer a later
    /// op reuses is read before it is. One submit. The values come in the
    /// order of `nodes`, row-major.
    pub fn predict_reading(
        &self,
        ctx: &GpuContext,
        nodes: &[NodeId],
    ) -> Result<(Vec<f32>, LossReport, Vec<Vec<f32>>)> {
        let count = self.graph.nodes.len();
        if let Some(bad) = nodes.iter().find(|n| n.0 >= count) {
            return Err(Error::InvalidInput {
                op: "Program::predict_reading",
                detail: format!("node {} is not in the graph ({count} nodes)", bad.0),
            });
        }
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.sort_by_key(|&i| nodes[i].0);
        let mut rec = ctx.recorder("predict");
        let mut done = 0;
        let mut reads = Vec::with_capacity(nodes.len());
        for &i in &order {
            let end = nodes[i].0 + 1;
            self.record_forward_range(&mut rec, done..end.max(done))?;
            done = done.max(end);
            reads.push((i, rec.read(self.val(nodes[i]))));
        }
        self.record_forward_range(&mut rec, done..count)?;
        let out = rec.read(self.val(self.loss.logits));
        let pending = PendingLosses {
            losses: rec.read(&self.loss.losses),
            stats: rec.read(&self.loss.stats),
            watch: None,
        };
        rec.submit()?;
        let mut values = vec![Vec::new(); nodes.len()];
        for (i, read) in reads {
            values[i] = read.wait_f32(ctx)?;
        }
        Ok((out.wait_f32(ctx)?, pending.wait(ctx)?, values))
    }

    /// Balancing terms, regularisers, the optimiser and proximal steps.
    pub(crate) fn record_after_backward(
        &mut self,
        rec: &mut Recorder,
        opts: StepOptions,
    ) -> Result<Option<PendingLosses>> {
        if let Some(s) = self.graph.log_var {
            let ds = self.arena.grad(s);
            weighting::uncertainty_grad(rec, self.arena.value(s), &self.loss.losses, ds)?;
        }
        if let Some((sums, steps)) = &mut self.epoch_losses {
            weighting::loss_accumulate(rec, &self.loss.losses, sums)?;
            *steps += 1;
        }
        self.record_regulariser_gradients(rec)?;
        if opts.update {
            // This step's losses, numbered as the step the update makes.
            nonfinite::watch_losses(rec, &self.loss.losses, &self.loss.watch, self.step + 1)?;
            self.record_update(rec)?;
            self.step += 1;
            self.record_proximal_steps(rec, self.learning_rate())?;
        }
        Ok(opts.read_losses.then(|| PendingLosses {
            losses: rec.read(&self.loss.losses),
            stats: rec.read(&self.loss.stats),
            watch: Some(rec.read(&self.loss.watch)),
        }))
    }

    /// The optimiser: one dispatch per (learning-rate group, buffer).
    pub(crate) fn record_update(&self, rec: &mut Recorder) -> Result<()> {
        for g in &self.groups {
            match self.optimizer {
                Optimizer::Sgd(cfg) => {
                    let cfg = Sgd {
                        lr: cfg.lr * g.lr_scale,
                        ..cfg
                    };
                    optim::sgd_step(rec, &cfg, &g.values, &g.grads, &g.states[0])?;
                }
                Optimizer::AdamW(cfg) => {
                    let cfg = AdamW {
                        lr: cfg.lr * g.lr_scale,
                        ..cfg
                    };
                    let (m, v) = (&g.states[0], &g.states[1]);
                    optim::adamw_step(rec, &cfg, self.step + 1, &g.values, &g.grads, m, v)?;
                }
            }
        }
        Ok(())
    }

    /// Node `n`'s value.
    pub(crate) fn val(&self, n: NodeId) -> &Tensor {
        &self.nodes[n.0].value
    }

    /// Node `n`'s gradient, if it takes one.
    pub(crate) fn grad(&self, n: NodeId) -> Option<&Tensor> {
        self.nodes[n.0].backward.as_ref().map(|b| &b.grad)
    }

    /// Task layer `i`'s GEMM tables.
    pub(crate) fn task_tables(&self, i: usize) -> Result<&TaskTables> {
        match &self.nodes[i].op {
            OpBuffers::TaskDense(t) => Ok(t),
            _ => Err(self.missing(i, "task tables")),
        }
    }

    /// The error for a buffer the build should have given node `i`.
    pub(crate) fn missing(&self, i: usize, what: &str) -> Error {
        Error::Internal {
            op: "Program",
            detail: format!("'{}' has no {what}", self.graph.nodes[i].name),
        }
    }
}
