//! A built graph, ready to train: parameter arenas, planned buffers, task
//! and loss tables, and `step`, which records forward, backward and the
//! optimiser into ONE encoder and ONE submit, with no host readback
//! inside the step (the loss vector is read only when asked, through a
//! readback the caller waits on later, without stalling the next step).

use crate::error::{Error, Result};
use crate::gpu::{CounterSnapshot, DType, GpuContext, Readback, Recorder, Tensor};
use crate::graph::params::{ParamArena, ParamId};
use crate::graph::plan::{self, Interval};
use crate::graph::tape::{Balancing, GramSpace};
use crate::graph::tape::{Graph, NodeId, Op};
use crate::kernels::dense::{dense_backward, dense_forward, BackwardPlan, Dense, DenseGrads};
use crate::kernels::fused_mlp::{self, ParamOffsets, TrunkGrads, TrunkSpec};
use crate::kernels::gemm::{Epilogue, Fusion, Layout, Operand, Prologue, Saved, Variant};
use crate::kernels::loss::{masked_losses, LossInputs, LossOutputs, LossTable, STATS_PER_TASK};
use crate::kernels::soft_sharing::{self, Regulariser};
use crate::kernels::subspace::Orthogonality;
use crate::kernels::task_gemm::{
    block_diagonal, shared_input as shared_input_problems, task_gemm, TaskProblem, TaskTable,
};
use crate::kernels::trace_norm::TraceNormPlan;
use crate::kernels::weighting::{self, GramScratch};
use crate::kernels::{block, cross_stitch, elementwise, layer_stitch, optim, reduce};
use crate::types::Activation;
use crate::types::{AdamW, Optimizer, Sgd};

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
}

impl PendingLosses {
    /// Blocks until the step's copies are done, then reads them.
    pub fn wait(self, ctx: &GpuContext) -> Result<LossReport> {
        let losses = self.losses.wait_f32(ctx)?;
        let stats = self.stats.wait_u32(ctx)?;
        let col = |j: usize| stats.chunks(STATS_PER_TASK).map(|s| s[j]).collect();
        Ok(LossReport {
            losses,
            labelled: col(0),
            out_of_range_labels: col(1),
            non_finite_rows: col(2),
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

struct TaskTables {
    forward: TaskTable,
    dx: TaskTable,
    dw: TaskTable,
    /// Shared-input layers: the per-task dX_t [T, rows·in] before their
    /// sum, and the sum itself when it is added to another contribution.
    dx_per_task: Option<(Tensor, Option<Tensor>)>,
}

/// One learning-rate group of the arenas.
struct OptimGroup {
    lr_scale: f32,
    values: Tensor,
    grads: Tensor,
    states: Vec<Tensor>,
}

/// One regulariser's buffers: per-element partials and its value.
struct RegParts {
    param: ParamId,
    tasks: usize,
    reg: Regulariser,
    partial: Tensor,
    /// The regulariser's value (λ included).
    value: Tensor,
    /// A trace norm's plan (scratch for every unfolding and route).
    trace: Option<TraceNormPlan>,
    /// A buffer like W for the trace-norm prox (its GEMM cannot write in
    /// place).
    scratch: Option<Tensor>,
}

struct TaskSplit {
    layer: NodeId,
    table: TaskTable,
    grads: Tensor,
}

/// Buffers of Gram-based balancing (`Balancing::Gram`).
struct GramParts {
    space: GramSpace,
    /// The heads' shared input H (the split layer's input).
    h: NodeId,
    /// Nodes whose backward each per-task pass runs (parameter spaces).
    trunk: std::ops::Range<usize>,
    /// The compared parameters' gradients in the arena (parameter spaces).
    shared: Option<Tensor>,
    /// Per-task copies of `shared` [T, P] (parameter spaces).
    per_task: Option<Tensor>,
    scratch: GramScratch,
    ones: Vec<f32>,
}

/// What `Program::gram_phase` measured: the per-task losses (unweighted)
/// and the T×T Gram matrix of the per-task gradients, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct GramPhase {
    /// Each task's loss, unweighted.
    pub losses: Vec<f32>,
    /// G[s·T + t] = ⟨g_s, g_t⟩, [T, T] row-major.
    pub gram: Vec<f32>,
}

struct LossParts {
    table: LossTable,
    upstream: Tensor,
    losses: Tensor,
    stats: Tensor,
}

/// A graph with its buffers, ready to run steps.
pub struct Program {
    graph: Graph,
    arena: ParamArena,
    groups: Vec<OptimGroup>,
    optimizer: Optimizer,
    step: u32,
    variant: Option<Variant>,
    dense_plan: BackwardPlan,
    inputs: Vec<Option<Tensor>>,
    values: Vec<Option<Tensor>>,
    grads: Vec<Option<Tensor>>,
    zs: Vec<Option<Tensor>>,
    deltas: Vec<Option<Tensor>>,
    /// Fused trunks: their shape and arena offsets, and every layer's Y
    /// (the node's value is the view of the last layer's, at the start).
    trunks: Vec<Option<TrunkSpec>>,
    trunk_acts: Vec<Option<Tensor>>,
    /// Per node and input slot: the gradient contribution accumulates
    /// (another consumer wrote first).
    accumulate_input: Vec<Vec<bool>>,
    /// λ of the gradient-reversal nodes.
    reversal_lambda: f32,
    /// Per node: its parameters' gradients accumulate (shared weights).
    accumulate_params: Vec<bool>,
    tables: Vec<Option<TaskTables>>,
    loss: LossParts,
    loss_node: NodeId,
    task_split: Option<TaskSplit>,
    regularisers: Vec<RegParts>,
    /// Gram-based balancing: where per-task gradients come from and go.
    gram: Option<GramParts>,
    /// Per-task loss sums since the last `take_epoch_losses` (EpochLosses).
    epoch_losses: Option<(Tensor, u32)>,
    /// Sluice subspace penalties: (weights, tables + scratch, λ, value).
    orthogonality: Vec<(ParamId, Orthogonality, f32, Tensor)>,
    memory: MemoryReport,
}

fn op_inputs(op: &Op) -> Vec<NodeId> {
    match op {
        Op::Input { .. } => vec![],
        Op::Dense { x, .. } | Op::TaskDense { x, .. } | Op::FusedTrunk { x, .. } => vec![*x],
        Op::Add { a, b } => vec![*a, *b],
        Op::Scale { x, .. }
        | Op::GradReverse { x }
        | Op::Slice { x, .. }
        | Op::CrossStitch { x, .. } => vec![*x],
        Op::LayerStitch { h, .. } => vec![*h],
        Op::Concat { parts } => parts.clone(),
        Op::Losses { logits, .. } => vec![*logits],
    }
}

fn op_params(op: &Op) -> Vec<ParamId> {
    match op {
        Op::Dense { w, b, .. } | Op::TaskDense { w, b, .. } => {
            std::iter::once(*w).chain(*b).collect()
        }
        Op::CrossStitch { alpha, .. } => vec![*alpha],
        Op::LayerStitch { beta, .. } => vec![*beta],
        Op::FusedTrunk { params, .. } => params
            .iter()
            .flat_map(|&(w, b)| std::iter::once(w).chain(b))
            .collect(),
        _ => vec![],
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Value,
    Grad,
    Z,
    Delta,
}

impl Program {
    /// Plans and allocates everything; parameters initialised from `seed`.
    pub fn build(
        ctx: &GpuContext,
        graph: Graph,
        optimizer: Optimizer,
        seed: u64,
    ) -> Result<Program> {
        let n = graph.nodes.len();
        let loss_node = match graph
            .nodes
            .iter()
            .rposition(|x| matches!(x.op, Op::Losses { .. }))
        {
            Some(i) if i == n - 1 => NodeId(i),
            _ => {
                return Err(Error::Shape {
                    op: "graph",
                    detail: "the graph must end with its losses node".into(),
                })
            }
        };
        let dense_plan = BackwardPlan::default_for(ctx, DType::F32);
        // Which nodes receive a gradient: walk back from the losses.
        let mut has_grad = vec![false; n];
        for i in (0..n).rev() {
            let node = &graph.nodes[i];
            let flows = i == loss_node.0 || has_grad[i];
            if !flows {
                continue;
            }
            for x in op_inputs(&node.op) {
                if !matches!(graph.nodes[x.0].op, Op::Input { .. }) {
                    has_grad[x.0] = true;
                }
            }
        }
        has_grad[loss_node.0] = false;
        let fwd = |i: usize| i;
        let bwd = |i: usize| 2 * n - 1 - i;
        // Shapes of the fused trunks (offsets come with the arena below).
        let trunk_shape = |op: &Op| -> Result<Option<TrunkSpec>> {
            let Op::FusedTrunk { x, layers, .. } = op else {
                return Ok(None);
            };
            let inputs = graph.nodes[x.0].shape[1];
            TrunkSpec::packed(ctx, inputs, layers).map(Some)
        };
        // Elements of the Z a node keeps for backward (GELU layers).
        let z_len = |node: &crate::graph::tape::Node| -> Result<usize> {
            Ok(match &node.op {
                Op::Dense { act, .. } | Op::TaskDense { act, .. } if !act.grad_from_output() => {
                    node.shape.iter().product()
                }
                op => trunk_shape(op)?.map_or(0, |t| t.zs_len(node.shape[0])),
            })
        };
        // Gradient contributions: (position, consumer, slot) per node.
        let mut writes: Vec<Vec<(usize, usize, usize)>> = vec![Vec::new(); n];
        for (c, node) in graph.nodes.iter().enumerate() {
            let pos = if c == loss_node.0 { fwd(c) } else { bwd(c) };
            if c != loss_node.0 && !has_grad[c] {
                continue;
            }
            for (slot, x) in op_inputs(&node.op).into_iter().enumerate() {
                if has_grad[x.0] {
                    writes[x.0].push((pos, c, slot));
                }
            }
        }
        let mut accumulate_input: Vec<Vec<bool>> = graph
            .nodes
            .iter()
            .map(|x| vec![false; op_inputs(&x.op).len()])
            .collect();
        for w in &mut writes {
            w.sort();
            for &(_, c, slot) in w.iter().skip(1) {
                accumulate_input[c][slot] = true;
            }
        }
        // Parameter gradients: the first use in backward order writes.
        let mut accumulate_params = vec![false; n];
        let mut seen = std::collections::HashSet::new();
        for i in (0..n).rev() {
            if !has_grad[i] {
                continue;
            }
            let ps = op_params(&graph.nodes[i].op);
            let used: Vec<bool> = ps.iter().map(|p| seen.contains(p)).collect();
            if !used.is_empty() && used.iter().any(|&u| u) != used.iter().all(|&u| u) {
                return Err(Error::Shape {
                    op: "graph",
                    detail: format!("'{}' shares its weight but not its bias (or the reverse); share both or neither", graph.nodes[i].name),
                });
            }
            accumulate_params[i] = used.first().copied().unwrap_or(false);
            seen.extend(ps);
        }

        // Lifetimes of every intermediate.
        let mut tensors: Vec<(Kind, usize, Interval)> = Vec::new();
        for (i, node) in graph.nodes.iter().enumerate() {
            let trunk = trunk_shape(&node.op)?;
            // A fused trunk's value holds every layer's Y (backward reads
            // them all); its output is the first block.
            let len: usize = match &trunk {
                Some(t) => t.acts_len(node.shape[0]),
                None => node.shape.iter().product(),
            };
            if matches!(node.op, Op::Input { .. }) || i == loss_node.0 {
                continue;
            }
            let mut last = fwd(i);
            for (c, consumer) in graph.nodes.iter().enumerate() {
                if !op_inputs(&consumer.op).contains(&NodeId(i)) {
                    continue;
                }
                last = last.max(fwd(c));
                // dW = Xᵀ·D reads the layer's input in backward.
                if has_grad[c]
                    && matches!(
                        consumer.op,
                        Op::Dense { .. }
                            | Op::TaskDense { .. }
                            | Op::CrossStitch { .. }
                            | Op::LayerStitch { .. }
                            | Op::FusedTrunk { .. }
                    )
                {
                    last = last.max(bwd(c));
                }
            }
            let saved_y = has_grad[i]
                && match &node.op {
                    Op::Dense { act, .. } | Op::TaskDense { act, .. } => {
                        *act != Activation::Identity && act.grad_from_output()
                    }
                    Op::FusedTrunk { .. } => true,
                    _ => false,
                };
            if saved_y {
                last = last.max(bwd(i));
            }
            tensors.push((
                Kind::Value,
                i,
                Interval {
                    def: fwd(i),
                    last_use: last,
                    len,
                },
            ));
            if has_grad[i] {
                let def = writes[i].first().map_or(bwd(i), |w| w.0);
                tensors.push((
                    Kind::Grad,
                    i,
                    Interval {
                        def,
                        last_use: bwd(i),
                        len: node.shape.iter().product(),
                    },
                ));
                let z_len = z_len(node)?;
                if z_len > 0 {
                    tensors.push((
                        Kind::Z,
                        i,
                        Interval {
                            def: fwd(i),
                            last_use: bwd(i),
                            len: z_len,
                        },
                    ));
                }
                // Fused trunks always store every D_l between their two
                // backward dispatches.
                let delta = trunk.is_some()
                    || matches!(node.op, Op::Dense { act, .. } if act != Activation::Identity)
                        && dense_plan == BackwardPlan::StoreDelta;
                if delta {
                    tensors.push((
                        Kind::Delta,
                        i,
                        Interval {
                            def: bwd(i),
                            last_use: bwd(i),
                            len,
                        },
                    ));
                }
            }
        }
        let mut intervals: Vec<Interval> = tensors.iter().map(|t| t.2).collect();
        if matches!(graph.balancing, Balancing::Gram(_)) {
            // The Gram phase runs part of the backward pass (T times in the
            // parameter spaces) and the update runs it again: no buffer may
            // be reused within the step.
            let end = intervals.iter().map(|i| i.last_use).max().unwrap_or(0);
            for i in &mut intervals {
                i.def = 0;
                i.last_use = end;
            }
        }
        let plan = plan::plan(&intervals);
        let slots = plan
            .slot_len
            .iter()
            .enumerate()
            .map(|(s, &len)| {
                Tensor::empty(ctx, &format!("graph slot {s}"), &[len.max(1)], DType::F32)
            })
            .collect::<Result<Vec<_>>>()?;
        let (mut values, mut grads, mut zs, mut deltas) =
            (vec![None; n], vec![None; n], vec![None; n], vec![None; n]);
        let mut trunk_acts = vec![None; n];
        for (t, (kind, i, iv)) in tensors.iter().enumerate() {
            let is_trunk = matches!(graph.nodes[*i].op, Op::FusedTrunk { .. });
            // A trunk's buffers are flat; its value is the first block.
            if is_trunk && *kind == Kind::Value {
                trunk_acts[*i] = Some(slots[plan.slot_of[t]].view(ctx, 0, &[iv.len])?);
            }
            let flat = [iv.len];
            let shape = if is_trunk && matches!(kind, Kind::Z | Kind::Delta) {
                &flat[..]
            } else {
                &graph.nodes[*i].shape[..]
            };
            let view = if *kind == Kind::Grad && graph.retained.contains(&NodeId(*i)) {
                Tensor::empty(
                    ctx,
                    &format!("{} grad", graph.nodes[*i].name),
                    shape,
                    DType::F32,
                )?
            } else {
                slots[plan.slot_of[t]].view(ctx, 0, shape)?
            };
            let target = match kind {
                Kind::Value => &mut values,
                Kind::Grad => &mut grads,
                Kind::Z => &mut zs,
                Kind::Delta => &mut deltas,
            };
            target[*i] = Some(view);
        }
        let memory = MemoryReport {
            planned_bytes: 4 * plan.planned_elems() as u64,
            no_reuse_bytes: 4 * plan::no_reuse_elems(&intervals) as u64,
            buffers: slots.len(),
            intermediates: intervals.len(),
        };

        // Per-task gradients of the task heads' input.
        let task_split = match &graph.task_split {
            Some((layer, widths)) => {
                let Op::Dense { x, .. } = &graph.nodes[layer.0].op else {
                    unreachable!("checked by split_task_grads")
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
                Some(TaskSplit {
                    layer: *layer,
                    table: TaskTable::new(ctx, Layout::NT, &problems)?,
                    grads: Tensor::empty(
                        ctx,
                        "per-task input grads",
                        &[widths.len(), rows, inputs],
                        DType::F32,
                    )?,
                })
            }
            None => None,
        };

        let orthogonality = graph
            .orthogonality
            .iter()
            .map(|&(param, shape, lambda)| {
                Ok((
                    param,
                    Orthogonality::new(ctx, shape)?,
                    lambda,
                    Tensor::zeros(ctx, "orthogonality value", &[1])?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let regularisers = graph
            .regularisers
            .iter()
            .map(|&(param, stack, reg)| {
                let tasks = stack.tasks;
                let d = graph.params.get(param).len() / tasks;
                let trace = match reg.trace_norm_variant() {
                    Some(v) => Some(TraceNormPlan::new(ctx, stack, v, reg.is_proximal())?),
                    None => None,
                };
                Ok(RegParts {
                    param,
                    tasks,
                    reg,
                    partial: Tensor::empty(ctx, "regulariser partials", &[d], DType::F32)?,
                    value: Tensor::zeros(ctx, "regulariser value", &[1])?,
                    trace,
                    scratch: match reg {
                        Regulariser::TraceNormProx { .. } => Some(Tensor::empty(
                            ctx,
                            "trace-norm prox",
                            &[d * tasks],
                            DType::F32,
                        )?),
                        _ => None,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;

        // Inputs: dedicated buffers the caller fills.
        let mut inputs = vec![None; n];
        for (i, node) in graph.nodes.iter().enumerate() {
            if let Op::Input { dtype } = node.op {
                inputs[i] = Some(Tensor::empty(ctx, &node.name, &node.shape, dtype)?);
            }
        }
        // Task tables of the block-diagonal layers.
        let mut tables: Vec<Option<TaskTables>> = (0..n).map(|_| None).collect();
        for (i, node) in graph.nodes.iter().enumerate() {
            if let Op::TaskDense {
                x,
                blocks,
                shared_input,
                ..
            } = &node.op
            {
                let rows = node.shape[0];
                let b: Vec<(usize, usize)> = blocks.iter().map(|b| (b.inputs, b.outputs)).collect();
                let outs: Vec<usize> = blocks.iter().map(|b| b.outputs).collect();
                let inputs = graph.nodes[x.0].shape[1];
                let table = |l| {
                    let problems = if *shared_input {
                        shared_input_problems(rows, inputs, &outs, l)
                    } else {
                        block_diagonal(rows, &b, l)
                    };
                    TaskTable::new(ctx, l, &problems)
                };
                let dx_per_task = if *shared_input && has_grad[x.0] {
                    let t = blocks.len();
                    let per_task = Tensor::empty(
                        ctx,
                        "shared-input dX per task",
                        &[t, rows * inputs],
                        DType::F32,
                    )?;
                    let sum = match accumulate_input[i][0] {
                        true => Some(Tensor::empty(
                            ctx,
                            "shared-input dX sum",
                            &[rows * inputs],
                            DType::F32,
                        )?),
                        false => None,
                    };
                    Some((per_task, sum))
                } else {
                    None
                };
                tables[i] = Some(TaskTables {
                    forward: table(Layout::NN)?,
                    dx: table(Layout::NT)?,
                    dw: table(Layout::TN)?,
                    dx_per_task,
                });
            }
        }
        let Op::Losses { logits, tasks, .. } = &graph.nodes[loss_node.0].op else {
            unreachable!("checked above")
        };
        let rows = graph.nodes[logits.0].shape[0];
        let t = tasks.len();
        let loss = LossParts {
            table: LossTable::new(ctx, &graph.loss_tasks(rows, tasks))?,
            // The objective is the mean of the task losses by default.
            upstream: Tensor::from_f32(ctx, "task weights", &[t], &vec![1.0 / t as f32; t])?,
            losses: Tensor::zeros(ctx, "task losses", &[t])?,
            stats: Tensor::from_u32(
                ctx,
                "loss stats",
                &[t, STATS_PER_TASK],
                &vec![0; t * STATS_PER_TASK],
            )?,
        };
        let states = match optimizer {
            Optimizer::Sgd(_) => 1,
            Optimizer::AdamW(_) => 2,
        };
        // Parameters laid out by learning-rate group: one optimiser
        // dispatch per group (one in all for models without multipliers).
        let align = (ctx.limits().min_storage_buffer_offset_alignment as usize / 4).max(1);
        let (layout, group_ranges) = graph.params.grouped(align);
        let arena = ParamArena::new(ctx, layout, seed, states)?;
        // Fused trunks bind the whole arena, their parameters at their
        // arena offsets.
        let trunks = graph
            .nodes
            .iter()
            .map(|node| {
                let Op::FusedTrunk { x, layers, params } = &node.op else {
                    return Ok(None);
                };
                let offsets: Vec<ParamOffsets> = params
                    .iter()
                    .map(|&(w, b)| ParamOffsets {
                        w: arena.layout.get(w).offset,
                        b: b.map(|b| arena.layout.get(b).offset),
                    })
                    .collect();
                let inputs = graph.nodes[x.0].shape[1];
                TrunkSpec::with_offsets(ctx, inputs, layers, &offsets).map(Some)
            })
            .collect::<Result<Vec<_>>>()?;
        let view = |t: &Tensor, start: usize, len: usize| t.view(ctx, start, &[len]);
        let groups = group_ranges
            .into_iter()
            .map(|(scale, start, len)| {
                Ok(OptimGroup {
                    lr_scale: scale,
                    values: view(&arena.values, start, len)?,
                    grads: view(&arena.grads, start, len)?,
                    states: arena
                        .states
                        .iter()
                        .map(|st| view(st, start, len))
                        .collect::<Result<_>>()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let gram = match graph.balancing {
            Balancing::Gram(space) => Some(gram_parts(ctx, &graph, &arena, space, t)?),
            _ => None,
        };
        let epoch_losses = match graph.balancing {
            Balancing::EpochLosses => Some((Tensor::zeros(ctx, "epoch loss sums", &[t])?, 0)),
            _ => None,
        };
        Ok(Program {
            graph,
            arena,
            groups,
            optimizer,
            step: 0,
            variant: None,
            dense_plan,
            inputs,
            values,
            grads,
            zs,
            deltas,
            trunks,
            trunk_acts,
            accumulate_input,
            reversal_lambda: 1.0,
            accumulate_params,
            tables,
            loss,
            loss_node,
            task_split,
            regularisers,
            gram,
            epoch_losses,
            orthogonality,
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

    /// Newton–Schulz steps of every trace-norm regulariser's route (b)
    /// from the next step on (default `trace_norm::NS_STEPS`).
    pub fn set_newton_schulz_steps(&mut self, steps: u32) {
        for plan in self
            .regularisers
            .iter_mut()
            .filter_map(|r| r.trace.as_mut())
        {
            plan.set_steps(steps);
        }
    }

    /// Pins every GEMM to one variant (None: the autotuner's choice).
    pub fn set_variant(&mut self, variant: Option<Variant>) {
        self.variant = variant;
    }

    /// The buffer of an input node, for the caller to fill before a step.
    pub fn input(&self, node: NodeId) -> Result<&Tensor> {
        self.inputs
            .get(node.0)
            .and_then(Option::as_ref)
            .ok_or_else(|| Error::Shape {
                op: "graph",
                detail: format!("node {} is not an input", node.0),
            })
    }

    /// dObjective/dL_t for every task (default 1/T: the mean).
    pub fn set_task_weights(&self, ctx: &GpuContext, weights: &[f32]) -> Result<()> {
        self.loss.upstream.write_f32(ctx, weights)
    }

    /// The task-weight buffer (GPU-side weighting methods write it).
    pub fn task_weights(&self) -> &Tensor {
        &self.loss.upstream
    }

    fn val(&self, n: NodeId) -> &Tensor {
        self.inputs[n.0]
            .as_ref()
            .or(self.values[n.0].as_ref())
            .expect("every node has a value")
    }

    fn grad(&self, n: NodeId) -> Option<&Tensor> {
        self.grads[n.0].as_ref()
    }

    fn saved(&self, i: usize, act: Activation) -> Saved<'_> {
        match &self.zs[i] {
            Some(z) => Saved::PreActivation(z),
            None if act.grad_from_output() => {
                Saved::Output(self.values[i].as_ref().expect("value"))
            }
            None => unreachable!("GELU layers keep Z"),
        }
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
        self.record_backward(rec, 0..self.graph.nodes.len())?;
        self.record_after_backward(rec, opts)
    }

    /// Regularisers, balancing terms, the optimiser and proximal steps.
    fn record_after_backward(
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
        for r in self.regularisers.iter().filter(|r| !r.reg.is_proximal()) {
            let (w, g) = (self.arena.value(r.param), self.arena.grad(r.param));
            if let Some(plan) = &r.trace {
                // ‖W‖_* into the partials' first element, then λ·‖W‖_*.
                let lambda = r.reg.lambda();
                let norm = r.partial.view(rec.ctx(), 0, &[1])?;
                plan.gradient(rec, w, lambda, g, &norm)?;
                elementwise::scale(rec, &norm, lambda, &r.value)?;
            } else {
                soft_sharing::add_gradient(rec, &r.reg, r.tasks, w, g, &r.partial)?;
                soft_sharing::value(rec, &r.partial, &r.value)?;
            }
        }
        for (param, orth, lambda, value) in &self.orthogonality {
            let (w, g) = (self.arena.value(*param), self.arena.grad(*param));
            orth.record(rec, w, g, *lambda, value)?;
        }
        if opts.update {
            self.record_update(rec)?;
            self.step += 1;
            let lr = match self.optimizer {
                Optimizer::Sgd(c) => c.lr,
                Optimizer::AdamW(c) => c.lr,
            };
            for r in self.regularisers.iter().filter(|r| r.reg.is_proximal()) {
                let eta = lr * self.arena.layout.get(r.param).lr_scale;
                let w = self.arena.value(r.param);
                if let (Some(plan), Some(shrunk)) = (&r.trace, &r.scratch) {
                    // The prox's GEMM cannot write W in place: via a copy.
                    let lambda = r.reg.lambda();
                    let norm = r.partial.view(rec.ctx(), 0, &[1])?;
                    plan.prox(rec, w, eta * lambda, shrunk, &norm)?;
                    rec.copy(shrunk, w)?;
                    elementwise::scale(rec, &norm, lambda, &r.value)?;
                } else {
                    let lambda = r.reg.lambda();
                    soft_sharing::group_lasso_prox(rec, r.tasks, lambda, eta, w, &r.partial)?;
                    soft_sharing::value(rec, &r.partial, &r.value)?;
                }
            }
        }
        Ok(opts.read_losses.then(|| PendingLosses {
            losses: rec.read(&self.loss.losses),
            stats: rec.read(&self.loss.stats),
        }))
    }

    fn record_forward(&self, rec: &mut Recorder) -> Result<()> {
        for (i, node) in self.graph.nodes.iter().enumerate() {
            match &node.op {
                Op::Input { .. } => {}
                Op::Dense { x, w, b, act } => {
                    let layer = Dense {
                        x: self.val(*x),
                        w: self.arena.value(*w),
                        bias: b.map(|b| self.arena.value(b)),
                        act: *act,
                    };
                    let y = self.values[i].as_ref().expect("value");
                    dense_forward(rec, self.variant, &layer, y, self.zs[i].as_ref())?;
                }
                Op::TaskDense { x, w, b, act, .. } => {
                    let t = self.tables[i].as_ref().expect("task tables");
                    let epi = Epilogue {
                        bias: b.map(|b| self.arena.value(b)),
                        act: *act,
                        z_out: self.zs[i].as_ref(),
                        ..Epilogue::default()
                    };
                    let y = self.values[i].as_ref().expect("value");
                    task_gemm(
                        rec,
                        self.variant,
                        &t.forward,
                        self.val(*x),
                        self.arena.value(*w),
                        y,
                        &epi,
                        &Fusion::default(),
                    )?;
                }
                Op::FusedTrunk { x, .. } => {
                    let trunk = self.trunks[i].as_ref().expect("trunk spec");
                    let acts = self.trunk_acts[i].as_ref().expect("trunk activations");
                    let params = &self.arena.values;
                    let zs = self.zs[i].as_ref();
                    fused_mlp::trunk_forward(rec, trunk, self.val(*x), params, acts, zs)?;
                }
                Op::Add { a, b } => {
                    elementwise::add(
                        rec,
                        self.val(*a),
                        self.val(*b),
                        self.values[i].as_ref().expect("value"),
                    )?;
                }
                Op::CrossStitch { x, alpha, unit } => {
                    let out = self.values[i].as_ref().expect("value");
                    let a = self.arena.value(*alpha);
                    cross_stitch::stitch_mix(rec, unit, self.val(*x), a, out, false, false)?;
                }
                Op::LayerStitch { h, beta, unit } => {
                    let out = self.values[i].as_ref().expect("value");
                    let b = self.arena.value(*beta);
                    layer_stitch::layer_stitch_mix(rec, unit, self.val(*h), b, out, false)?;
                }
                Op::Scale { x, alpha } => {
                    let out = self.values[i].as_ref().expect("value");
                    elementwise::scale(rec, self.val(*x), *alpha, out)?;
                }
                Op::GradReverse { x } => {
                    let out = self.values[i].as_ref().expect("value");
                    elementwise::copy(rec, self.val(*x), out)?;
                }
                Op::Concat { parts } => {
                    let out = self.values[i].as_ref().expect("value");
                    let mut col = 0;
                    for p in parts {
                        let cols = self.graph.nodes[p.0].shape[1];
                        block::copy_block(rec, self.val(*p), 0, out, col, cols, 1.0, false)?;
                        col += cols;
                    }
                }
                Op::Slice { x, start, cols } => {
                    let out = self.values[i].as_ref().expect("value");
                    block::copy_block(rec, self.val(*x), *start, out, 0, *cols, 1.0, false)?;
                }
                Op::Losses { .. } => self.record_losses(rec)?,
            }
        }
        Ok(())
    }

    /// The fused loss kernel: per-task losses, and the logits' gradient
    /// scaled by the task-weight buffer.
    fn record_losses(&self, rec: &mut Recorder) -> Result<()> {
        match &self.graph.nodes[self.loss_node.0].op {
            Op::Losses {
                logits,
                labels,
                targets,
                masks,
                ..
            } => {
                let grads = self.grad(*logits).expect("logits take a gradient");
                let inp = LossInputs {
                    logits: self.val(*logits),
                    targets: targets.map(|n| self.val(n)),
                    labels: labels.map(|n| self.val(n)),
                    masks: masks.map(|n| self.val(n)),
                    upstream: &self.loss.upstream,
                };
                let out = LossOutputs {
                    grads,
                    losses: &self.loss.losses,
                    stats: &self.loss.stats,
                };
                masked_losses(rec, &self.loss.table, &inp, &out)
            }
            _ => unreachable!("the loss node holds the losses op"),
        }
    }

    /// The backward pass of the nodes in `range`, last first.
    fn record_backward(&self, rec: &mut Recorder, range: std::ops::Range<usize>) -> Result<()> {
        for i in range.rev() {
            let Some(g) = self.grad(NodeId(i)) else {
                continue;
            };
            let acc = &self.accumulate_input[i];
            match &self.graph.nodes[i].op {
                Op::Dense { x, w, b, act } => {
                    let layer = Dense {
                        x: self.val(*x),
                        w: self.arena.value(*w),
                        bias: b.map(|b| self.arena.value(b)),
                        act: *act,
                    };
                    let grads = DenseGrads {
                        dx: self.grad(*x),
                        dw: self.arena.grad(*w),
                        db: b.map(|b| self.arena.grad(b)),
                        accumulate: self.accumulate_params[i],
                        accumulate_dx: acc[0],
                        delta_scratch: self.deltas[i].as_ref(),
                    };
                    dense_backward(
                        rec,
                        self.variant,
                        Some(self.dense_plan),
                        &layer,
                        self.saved(i, *act),
                        g,
                        &grads,
                    )?;
                    if let Some(split) = self.task_split.as_ref().filter(|s| s.layer.0 == i) {
                        self.record_task_split(rec, split, i, *act, g, *w)?;
                    }
                }
                Op::TaskDense { x, w, b, act, .. } => {
                    let t = self.tables[i].as_ref().expect("task tables");
                    let prologue = |operand| {
                        (*act != Activation::Identity).then(|| Prologue {
                            operand,
                            saved: self.saved(i, *act),
                            act: *act,
                        })
                    };
                    if let Some(dx) = self.grad(*x) {
                        let fusion = Fusion {
                            prologue: prologue(Operand::A),
                            bias_grad: None,
                        };
                        let w = self.arena.value(*w);
                        if let Some((per_task, sum)) = &t.dx_per_task {
                            // dX = Σ_t dX_t: a fixed-order column sum.
                            let e = Epilogue::default();
                            task_gemm(rec, self.variant, &t.dx, g, w, per_task, &e, &fusion)?;
                            let flat = dx.reshape(&[dx.len()])?;
                            match (acc[0], sum) {
                                (true, Some(sum)) => {
                                    reduce::column_sums(rec, per_task, sum)?;
                                    elementwise::axpy(rec, 1.0, sum, &flat)?;
                                }
                                _ => reduce::column_sums(rec, per_task, &flat)?,
                            }
                        } else {
                            let epi = Epilogue {
                                beta: acc[0].then_some(1.0),
                                ..Epilogue::default()
                            };
                            task_gemm(rec, self.variant, &t.dx, g, w, dx, &epi, &fusion)?;
                        }
                    }
                    let epi = Epilogue {
                        beta: self.accumulate_params[i].then_some(1.0),
                        ..Epilogue::default()
                    };
                    let fusion = Fusion {
                        prologue: prologue(Operand::B),
                        bias_grad: b.map(|b| self.arena.grad(b)),
                    };
                    task_gemm(
                        rec,
                        self.variant,
                        &t.dw,
                        self.val(*x),
                        g,
                        self.arena.grad(*w),
                        &epi,
                        &fusion,
                    )?;
                }
                Op::FusedTrunk { x, .. } => {
                    let trunk = self.trunks[i].as_ref().expect("trunk spec");
                    let acts = self.trunk_acts[i].as_ref().expect("trunk activations");
                    let grads = TrunkGrads {
                        dx: self.grad(*x),
                        grads: &self.arena.grads,
                        deltas: self.deltas[i].as_ref().expect("trunk deltas"),
                        accumulate: self.accumulate_params[i],
                        accumulate_dx: acc[0],
                    };
                    let (params, zs) = (&self.arena.values, self.zs[i].as_ref());
                    let x = self.val(*x);
                    fused_mlp::trunk_backward(rec, trunk, x, params, acts, zs, g, &grads)?;
                }
                Op::Add { a, b } => {
                    for (slot, x) in [*a, *b].into_iter().enumerate() {
                        if let Some(dx) = self.grad(x) {
                            if acc[slot] {
                                elementwise::axpy(rec, 1.0, g, dx)?;
                            } else {
                                elementwise::copy(rec, g, dx)?;
                            }
                        }
                    }
                }
                Op::CrossStitch { x, alpha, unit } => {
                    // dx_s = Σ_t α_ts dx̃_t; dα_ts = ⟨dx̃_t, x_s⟩.
                    if let Some(dx) = self.grad(*x) {
                        let a = self.arena.value(*alpha);
                        cross_stitch::stitch_mix(rec, unit, g, a, dx, true, acc[0])?;
                    }
                    let da = self.arena.grad(*alpha);
                    let acc_a = self.accumulate_params[i];
                    cross_stitch::stitch_alpha_grad(rec, unit, self.val(*x), g, da, acc_a)?;
                }
                Op::LayerStitch { h, beta, unit } => {
                    // dh_tk = β_tk dz_t; dβ_tk = ⟨dz_t, h_tk⟩.
                    if let Some(dh) = self.grad(*h) {
                        let b = self.arena.value(*beta);
                        layer_stitch::layer_stitch_spread(rec, unit, g, b, dh, acc[0])?;
                    }
                    let db = self.arena.grad(*beta);
                    let acc_b = self.accumulate_params[i];
                    layer_stitch::layer_stitch_beta_grad(rec, unit, self.val(*h), g, db, acc_b)?;
                }
                Op::Scale { x, alpha } => self.scaled_grad(rec, g, *x, *alpha, acc[0])?,
                Op::GradReverse { x } => {
                    self.scaled_grad(rec, g, *x, -self.reversal_lambda, acc[0])?
                }
                Op::Concat { parts } => {
                    let mut col = 0;
                    for (slot, p) in parts.iter().enumerate() {
                        let cols = self.graph.nodes[p.0].shape[1];
                        if let Some(dp) = self.grad(*p) {
                            block::copy_block(rec, g, col, dp, 0, cols, 1.0, acc[slot])?;
                        }
                        col += cols;
                    }
                }
                Op::Slice { x, start, cols } => {
                    if let Some(dx) = self.grad(*x) {
                        if !acc[0] {
                            // The columns outside the slice get no gradient.
                            elementwise::fill(rec, dx, 0.0)?;
                        }
                        block::copy_block(rec, g, 0, dx, *start, *cols, 1.0, true)?;
                    }
                }
                Op::Input { .. } | Op::Losses { .. } => {}
            }
        }
        Ok(())
    }

    /// dH_t = (G ⊙ act')[:, block t] · W_tᵀ for every task, one dispatch:
    /// from the stored D when the dense plan kept it, else with the
    /// prologue on G.
    fn record_task_split(
        &self,
        rec: &mut Recorder,
        split: &TaskSplit,
        i: usize,
        act: Activation,
        g: &Tensor,
        w: ParamId,
    ) -> Result<()> {
        // D is in the planned buffer only when the dense backward stored it.
        let stored = self.deltas[i]
            .as_ref()
            .filter(|_| self.dense_plan == BackwardPlan::StoreDelta);
        let (a, prologue) = match (stored, act) {
            (_, Activation::Identity) => (g, None),
            (Some(d), _) => (d, None),
            (None, _) => (
                g,
                Some(Prologue {
                    operand: Operand::A,
                    saved: self.saved(i, act),
                    act,
                }),
            ),
        };
        let fusion = Fusion {
            prologue,
            bias_grad: None,
        };
        let epi = Epilogue::default();
        task_gemm(
            rec,
            self.variant,
            &split.table,
            a,
            self.arena.value(w),
            &split.grads,
            &epi,
            &fusion,
        )
    }

    /// Each regulariser's value (in `Graph::regularise` order) as of the
    /// last step that computed it (gradient terms: every step; proximal
    /// ones: steps that update). One small read per regulariser.
    pub fn regulariser_values(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        self.regularisers
            .iter()
            .map(|r| Ok(r.value.to_f32_vec(ctx)?[0]))
            .collect()
    }

    /// Phase one of a gradient-balanced step (`Balancing::Gram`): forward
    /// with every task weighted 1, the heads' backward (writing each task's
    /// dL_t/dH), the per-task gradients of the chosen space, and their Gram
    /// matrix — in one submit, then waits for the T×T matrix and the
    /// losses. Nothing is updated; `finish_step` with the solver's
    /// coefficients completes the step.
    pub fn gram_phase(&mut self, ctx: &GpuContext) -> Result<GramPhase> {
        let Some(gp) = &self.gram else {
            return Err(Error::Shape {
                op: "graph",
                detail: "gram_phase needs Balancing::Gram (Graph::set_balancing)".into(),
            });
        };
        let t = gp.ones.len();
        self.loss.upstream.write_f32(ctx, &gp.ones)?;
        let mut rec = ctx.recorder("gram phase");
        self.record_forward(&mut rec)?;
        let split = self.task_split.as_ref().expect("checked by set_balancing");
        self.record_backward(&mut rec, split.layer.0..self.graph.nodes.len())?;
        let task_grads = &split.grads;
        match (gp.space, &gp.shared, &gp.per_task) {
            (GramSpace::Representation, _, _) => {
                let flat = task_grads.reshape(&[task_grads.len()])?;
                weighting::gram(&mut rec, &flat, t, &gp.scratch)?;
            }
            (_, Some(shared), Some(per_task)) => {
                let dh = self.grad(gp.h).expect("the heads' input takes a gradient");
                let block = dh.len();
                let p = shared.len();
                for task in 0..t {
                    // Seed H's gradient with task t's block, run the trunk
                    // backward, keep the shared gradients.
                    let seed = task_grads.view(ctx, task * block, &[block])?;
                    rec.copy(&seed, &dh.reshape(&[block])?)?;
                    self.record_backward(&mut rec, gp.trunk.clone())?;
                    rec.copy(shared, &per_task.view(ctx, task * p, &[p])?)?;
                }
                weighting::gram(&mut rec, per_task, t, &gp.scratch)?;
            }
            _ => unreachable!("parameter spaces have their buffers"),
        }
        let gram = rec.read(&gp.scratch.sums);
        let losses = rec.read(&self.loss.losses);
        rec.submit()?;
        let pairs = gram.wait_f32(ctx)?;
        Ok(GramPhase {
            losses: losses.wait_f32(ctx)?,
            gram: weighting::gram_matrix(t, &pairs),
        })
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
            return Err(Error::Shape {
                op: "graph",
                detail: format!(
                    "finish_step takes {t} finite task coefficients, got {coefficients:?}"
                ),
            });
        }
        if self.gram.is_none() {
            return Err(Error::Shape {
                op: "graph",
                detail: "finish_step follows gram_phase (Balancing::Gram)".into(),
            });
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
            return Err(Error::Shape {
                op: "graph",
                detail: "take_epoch_losses needs Balancing::EpochLosses".into(),
            });
        };
        let n = (*steps).max(1) as f32;
        let means = sums.to_f32_vec(ctx)?.into_iter().map(|s| s / n).collect();
        sums.write_f32(ctx, &vec![0.0; sums.len()])?;
        *steps = 0;
        Ok(means)
    }

    /// Inference: the forward pass only (the loss kernel included, so the
    /// per-task losses come too), then the logits [rows, Σ widths] and the
    /// losses are read back. Nothing is updated.
    pub fn predict(&self, ctx: &GpuContext) -> Result<(Vec<f32>, LossReport)> {
        let mut rec = ctx.recorder("predict");
        self.record_forward(&mut rec)?;
        let Op::Losses { logits, .. } = &self.graph.nodes[self.loss_node.0].op else {
            unreachable!("the loss node holds the losses op")
        };
        let out = rec.read(self.val(*logits));
        let pending = PendingLosses {
            losses: rec.read(&self.loss.losses),
            stats: rec.read(&self.loss.stats),
        };
        rec.submit()?;
        Ok((out.wait_f32(ctx)?, pending.wait(ctx)?))
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

    /// Each subspace orthogonality penalty's value (in
    /// `Graph::subspace_orthogonality` order) as of the last step.
    pub fn orthogonality_values(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        self.orthogonality
            .iter()
            .map(|o| Ok(o.3.to_f32_vec(ctx)?[0]))
            .collect()
    }

    /// The per-task gradients of the task heads' input, [T, rows, inputs]
    /// (see `Graph::split_task_grads`), as of the last step.
    pub fn task_input_grads(&self) -> Option<&Tensor> {
        self.task_split.as_ref().map(|s| &s.grads)
    }

    /// A retained gradient (`Graph::retain_grad`) as of the last step.
    pub fn grad_of(&self, node: NodeId) -> Option<&Tensor> {
        if self.graph.retained.contains(&node) {
            self.grads[node.0].as_ref()
        } else {
            None
        }
    }

    /// dx (+)= alpha · g.
    fn scaled_grad(
        &self,
        rec: &mut Recorder,
        g: &Tensor,
        x: NodeId,
        alpha: f32,
        accumulate: bool,
    ) -> Result<()> {
        let Some(dx) = self.grad(x) else {
            return Ok(());
        };
        if accumulate {
            elementwise::axpy(rec, alpha, g, dx)
        } else {
            elementwise::scale(rec, g, alpha, dx)
        }
    }

    fn record_update(&self, rec: &mut Recorder) -> Result<()> {
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

    /// The losses node.
    pub fn loss_node(&self) -> NodeId {
        self.loss_node
    }
}

/// The Gram phase's buffers: which nodes the per-task passes run and which
/// arena range holds the compared gradients (checked contiguous).
fn gram_parts(
    ctx: &GpuContext,
    graph: &Graph,
    arena: &ParamArena,
    space: GramSpace,
    tasks: usize,
) -> Result<GramParts> {
    let err = |detail: String| Error::Shape {
        op: "graph",
        detail,
    };
    let (layer, _) = graph.task_split.as_ref().expect("checked by set_balancing");
    let Op::Dense { x: h, .. } = graph.nodes[layer.0].op else {
        unreachable!("split_task_grads takes a dense layer")
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
            .flat_map(|i| op_params(&graph.nodes[i].op))
            .collect(),
    };
    let (shared, per_task) = if params.is_empty() {
        if space != GramSpace::Representation {
            return Err(err("the shared trunk has no parameters to compare".into()));
        }
        (None, None)
    } else {
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
        let len = end - start;
        (
            Some(arena.grads.view(ctx, start, &[len])?),
            Some(Tensor::empty(
                ctx,
                "per-task shared grads",
                &[tasks, len],
                DType::F32,
            )?),
        )
    };
    let n = match &per_task {
        Some(p) => p.len() / tasks,
        None => rows * width,
    };
    Ok(GramParts {
        space,
        h,
        trunk,
        shared,
        per_task,
        scratch: GramScratch::new(ctx, tasks, n)?,
        ones: vec![1.0; tasks],
    })
}
