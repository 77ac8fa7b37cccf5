//! The program's buffers, allocated from the analysis: the parameter
//! arenas and their learning-rate groups, every node's state (its value,
//! and when it takes a gradient its gradient, kept Z and D, all views of
//! the planned slots), the task tables of block-diagonal layers, the
//! fused trunks' specs and the loss kernel's buffers.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::gpu::{DType, GpuContext, Tensor};
use crate::graph::analysis::{BufferKind, DenseDelta, GradientFlow, Intermediate};
use crate::graph::balancing;
use crate::graph::builder::{param_alignment, Graph};
use crate::graph::ops::{NodeId, Op, TaskLoss};
use crate::graph::params::{ArenaCap, ParamArena, ParamBundle, ParamId, SplitArena};
use crate::graph::plan::{self, Interval};
use crate::graph::program::MemoryReport;
use crate::kernels::fused_mlp::{ParamOffsets, TrunkSpec};
use crate::kernels::gemm::Layout;
use crate::kernels::loss::{LossKind, LossTable, LossTask, STATS_PER_TASK};
use crate::kernels::nonfinite;
use crate::kernels::task_gemm::{block_diagonal, shared_input as shared_input_problems, TaskTable};
use crate::types::Optimizer;

/// Everything one node owns in a step.
pub(crate) struct NodeState {
    /// Its value: an input's buffer, a planned view, or (the losses node)
    /// the per-task losses \[T\].
    pub value: Tensor,
    /// Its backward buffers, when it takes a gradient.
    pub backward: Option<Backward>,
    /// Buffers only some ops have.
    pub op: OpBuffers,
}

/// The backward buffers and flags of a node that takes a gradient.
pub(crate) struct Backward {
    /// Its gradient (planned, or its own buffer when retained).
    pub grad: Tensor,
    /// The pre-activations its forward keeps for the backward (GELU).
    pub z: Option<Tensor>,
    /// D = G ⊙ act'(Z) between the backward's dispatches, when planned.
    pub delta: Option<Tensor>,
    /// Per input slot: its contribution to that input's gradient
    /// accumulates (another consumer wrote first).
    pub accumulate_inputs: Vec<bool>,
    /// Its parameters' gradients accumulate (shared weights).
    pub accumulate_params: bool,
}

/// Buffers only some ops have.
pub(crate) enum OpBuffers {
    /// Nothing beyond value and gradient.
    Plain,
    /// A block-diagonal (or shared-input) task layer's tables.
    TaskDense(Box<TaskTables>),
    /// A fused trunk: its shape with the offsets of its parameters in
    /// their arena buffer, and every layer's Y (the node's value is the
    /// view of the last layer's, at the start).
    FusedTrunk {
        /// Shapes and offsets in the buffer.
        spec: TrunkSpec,
        /// Every layer's output, flat.
        acts: Tensor,
        /// The arena buffer holding every parameter of the trunk (the
        /// spec's offsets are local to it).
        buffer: usize,
    },
}

/// A task layer's GEMM tables for each pass.
pub(crate) struct TaskTables {
    pub forward: TaskTable,
    pub dx: TaskTable,
    pub dw: TaskTable,
    /// Shared-input layers: the per-task dX_t [T, rows·in] before their
    /// sum, and the sum itself when it is added to another contribution.
    pub dx_per_task: Option<(Tensor, Option<Tensor>)>,
}

/// One learning-rate group of the arenas.
pub(crate) struct OptimGroup {
    pub lr_scale: f32,
    pub values: Tensor,
    pub grads: Tensor,
    pub states: Vec<Tensor>,
}

/// The loss kernel's table and buffers, and the nodes it reads.
pub(crate) struct LossParts {
    pub table: LossTable,
    /// dObjective/dL_t: the task weights.
    pub upstream: Tensor,
    /// The per-task losses \[T\] (the losses node's value).
    pub losses: Tensor,
    pub stats: Tensor,
    /// The first training step with a non-finite task loss, recorded on
    /// the GPU every step (`kernels::nonfinite`) and read with the losses.
    pub watch: Tensor,
    pub logits: NodeId,
    pub labels: Option<NodeId>,
    pub targets: Option<NodeId>,
    pub masks: Option<NodeId>,
}

fn internal(detail: String) -> Error {
    Error::Internal {
        op: "Program::build",
        detail,
    }
}

/// The arenas, laid out by learning-rate group and split into buffers of
/// at most `cap` bytes (each fused trunk's parameters, and the parameters
/// Gram balancing compares, kept in one buffer): one optimiser dispatch
/// per (group, buffer), one in all for a one-buffer model without
/// multipliers.
pub(crate) fn arena(
    ctx: &GpuContext,
    graph: &Graph,
    optimizer: Optimizer,
    seed: u64,
    cap: ArenaCap,
) -> Result<(ParamArena, Vec<OptimGroup>)> {
    let states = match optimizer {
        Optimizer::Sgd(_) => 1,
        Optimizer::AdamW(_) => 2,
    };
    let layout = graph.params.grouped(param_alignment(ctx));
    let arena = ParamArena::new(ctx, layout, cap, &bundles(graph), seed, states)?;
    let groups = optim_ranges(&arena)
        .into_iter()
        .map(|(lr_scale, buffer, range)| {
            let view = |a: &SplitArena| a.buffer(buffer).view(ctx, range.start, &[range.len()]);
            Ok(OptimGroup {
                lr_scale,
                values: view(&arena.values)?,
                grads: view(&arena.grads)?,
                states: arena.states.iter().map(view).collect::<Result<_>>()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((arena, groups))
}

/// The parameters that must share a buffer: each fused trunk's (its
/// kernels bind the whole buffer with offsets into it) and those Gram
/// balancing compares (one range of the gradient arena).
fn bundles(graph: &Graph) -> Vec<ParamBundle> {
    let mut out: Vec<ParamBundle> = graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::FusedTrunk { .. }))
        .map(|n| ParamBundle {
            what: format!("fused trunk '{}'", n.name),
            params: n.op.params(),
        })
        .collect();
    if let Some(space) = graph.balancing.gram_space() {
        // A graph the Gram phase cannot take fails later, in GramParts.
        if let Ok(compared) = balancing::compared(graph, space) {
            out.push(ParamBundle {
                what: "the shared parameters gradient balancing compares".into(),
                params: compared.params,
            });
        }
    }
    out
}

/// The optimiser's ranges, local to their buffer: per buffer, per
/// learning-rate multiplier (in order of first appearance), from its
/// first entry there to its last entry's end (rounded up to 4 elements).
/// With one buffer these are `ParamLayout::grouped`'s groups.
fn optim_ranges(arena: &ParamArena) -> Vec<(f32, usize, Range<usize>)> {
    let entries = arena.layout.entries();
    let scales = arena.layout.lr_scales();
    let mut out = Vec::new();
    for (k, range) in arena.buffer_ranges().iter().enumerate() {
        for &scale in &scales {
            let inside: Vec<_> = entries
                .iter()
                .enumerate()
                .filter(|&(i, e)| e.lr_scale == scale && arena.buffer_of(ParamId(i)) == k)
                .map(|(_, e)| (e.offset, e.offset + e.len()))
                .collect();
            let (Some(start), Some(end)) = (
                inside.iter().map(|r| r.0).min(),
                inside.iter().map(|r| r.1).max(),
            ) else {
                continue;
            };
            let end = end.next_multiple_of(4).min(range.end);
            out.push((scale, k, start - range.start..end - range.start));
        }
    }
    out
}

/// The losses node's table and buffers; the task weights start at 1
/// (the objective is the sum of the task losses).
pub(crate) fn loss_parts(ctx: &GpuContext, graph: &Graph, loss_node: NodeId) -> Result<LossParts> {
    let Op::Losses {
        logits,
        tasks,
        labels,
        targets,
        masks,
    } = &graph.nodes[loss_node.0].op
    else {
        return Err(internal("the losses node holds no losses op".into()));
    };
    let rows = graph.nodes[logits.0].shape[0];
    let t = tasks.len();
    Ok(LossParts {
        table: LossTable::new(ctx, &loss_tasks(rows, tasks))?,
        // The objective is the sum of the task losses by default
        // (PyTorch's `sum(losses)`).
        upstream: Tensor::from_f32(ctx, "task weights", &[t], &vec![1.0; t])?,
        losses: Tensor::zeros(ctx, "task losses", &[t])?,
        stats: Tensor::from_u32(
            ctx,
            "loss stats",
            &[t, STATS_PER_TASK],
            &vec![0; t * STATS_PER_TASK],
        )?,
        watch: nonfinite::new_record(ctx, "non-finite watch")?,
        logits: *logits,
        labels: *labels,
        targets: *targets,
        masks: *masks,
    })
}

/// The planned intermediates' views, per node and kind.
struct Planned {
    value: Option<Tensor>,
    grad: Option<Tensor>,
    z: Option<Tensor>,
    delta: Option<Tensor>,
    /// A fused trunk's flat view of every layer's output.
    acts: Option<Tensor>,
}

/// Every node's state: the intermediates planned by liveness into shared
/// slots, inputs in buffers of their own, the losses node's value the
/// task losses. Returns them with the plan's memory report.
pub(crate) fn node_states(
    ctx: &GpuContext,
    graph: &Graph,
    flow: &GradientFlow,
    delta: DenseDelta,
    arena: &ParamArena,
    loss: &LossParts,
) -> Result<(Vec<NodeState>, MemoryReport)> {
    let intermediates = flow.intermediates(graph, delta);
    let mut intervals: Vec<Interval> = intermediates.iter().map(|t| t.interval).collect();
    // Gradient methods and GradDrop read values and per-task gradients
    // outside the one-pass order (across submits, or between the heads'
    // and the trunk's backward).
    if graph.balancing.needs_task_split() {
        crate::graph::analysis::keep_all_live(&mut intervals);
    }
    let plan = plan::plan(&intervals);
    let slots = plan
        .slot_len
        .iter()
        .enumerate()
        .map(|(s, &len)| Tensor::empty(ctx, &format!("graph slot {s}"), &[len.max(1)], DType::F32))
        .collect::<Result<Vec<_>>>()?;
    let mut planned: Vec<Planned> = (0..graph.nodes.len())
        .map(|_| Planned {
            value: None,
            grad: None,
            z: None,
            delta: None,
            acts: None,
        })
        .collect();
    for (t, im) in intermediates.iter().enumerate() {
        let Intermediate {
            kind,
            node,
            interval,
        } = *im;
        let slot = &slots[plan.slot_of[t]];
        let graph_node = &graph.nodes[node.0];
        let is_trunk = matches!(graph_node.op, Op::FusedTrunk { .. });
        let into = &mut planned[node.0];
        // A trunk's buffers are flat; its value is the first block.
        if is_trunk && kind == BufferKind::Value {
            into.acts = Some(slot.view(ctx, 0, &[interval.len])?);
        }
        let flat = [interval.len];
        let shape = if is_trunk && matches!(kind, BufferKind::Z | BufferKind::Delta) {
            &flat[..]
        } else {
            &graph_node.shape[..]
        };
        let view = if kind == BufferKind::Grad && graph.retained.contains(&node) {
            Tensor::empty(ctx, &format!("{} grad", graph_node.name), shape, DType::F32)?
        } else {
            slot.view(ctx, 0, shape)?
        };
        let target = match kind {
            BufferKind::Value => &mut into.value,
            BufferKind::Grad => &mut into.grad,
            BufferKind::Z => &mut into.z,
            BufferKind::Delta => &mut into.delta,
        };
        *target = Some(view);
    }
    let memory = MemoryReport {
        planned_bytes: 4 * plan.planned_elems() as u64,
        no_reuse_bytes: 4 * plan::no_reuse_elems(&intervals) as u64,
        buffers: slots.len(),
        intermediates: intervals.len(),
    };
    let mut states = Vec::with_capacity(graph.nodes.len());
    for (i, (node, p)) in graph.nodes.iter().zip(planned).enumerate() {
        let missing = |what: &str| internal(format!("'{}' has no planned {what}", node.name));
        let value = match node.op {
            Op::Input { dtype } => Tensor::empty(ctx, &node.name, &node.shape, dtype)?,
            Op::Losses { .. } => loss.losses.clone(),
            _ => p.value.ok_or_else(|| missing("value"))?,
        };
        let backward = match p.grad {
            Some(grad) => Some(Backward {
                grad,
                z: p.z,
                delta: p.delta,
                accumulate_inputs: flow.accumulate_inputs[i].clone(),
                accumulate_params: flow.accumulate_params[i],
            }),
            None => None,
        };
        let op = match &node.op {
            Op::TaskDense { .. } => {
                OpBuffers::TaskDense(Box::new(task_tables(ctx, graph, flow, i)?))
            }
            Op::FusedTrunk { x, layers, params } => {
                // One buffer holds them all (a bundle of the split): the
                // kernels bind it with offsets local to it.
                let buffer = params.first().map_or(0, |&(w, _)| arena.buffer_of(w));
                if let Some(&(w, _)) = params.iter().find(|&&(w, b)| {
                    b.into_iter()
                        .chain([w])
                        .any(|p| arena.buffer_of(p) != buffer)
                }) {
                    return Err(internal(format!(
                        "fused trunk '{}': its parameter '{}' is not in the buffer of its first",
                        node.name,
                        arena.layout.get(w).name
                    )));
                }
                let offsets: Vec<ParamOffsets> = params
                    .iter()
                    .map(|&(w, b)| ParamOffsets {
                        w: arena.local_offset(w),
                        b: b.map(|b| arena.local_offset(b)),
                    })
                    .collect();
                let inputs = graph.nodes[x.0].shape[1];
                OpBuffers::FusedTrunk {
                    spec: TrunkSpec::with_offsets(ctx, inputs, layers, &offsets)?,
                    acts: p.acts.ok_or_else(|| missing("activations"))?,
                    buffer,
                }
            }
            _ => OpBuffers::Plain,
        };
        states.push(NodeState {
            value,
            backward,
            op,
        });
    }
    Ok((states, memory))
}

/// The GEMM tables of task layer `i` for the forward, dX and dW passes.
fn task_tables(
    ctx: &GpuContext,
    graph: &Graph,
    flow: &GradientFlow,
    i: usize,
) -> Result<TaskTables> {
    let node = &graph.nodes[i];
    let Op::TaskDense {
        x,
        blocks,
        shared_input,
        ..
    } = &node.op
    else {
        return Err(internal(format!("'{}' is not a task layer", node.name)));
    };
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
    let dx_per_task = if *shared_input && flow.has_grad[x.0] {
        let t = blocks.len();
        let per_task = Tensor::empty(
            ctx,
            "shared-input dX per task",
            &[t, rows * inputs],
            DType::F32,
        )?;
        let sum = if flow.accumulate_inputs[i][0] {
            Some(Tensor::empty(
                ctx,
                "shared-input dX sum",
                &[rows * inputs],
                DType::F32,
            )?)
        } else {
            None
        };
        Some((per_task, sum))
    } else {
        None
    };
    Ok(TaskTables {
        forward: table(Layout::NN)?,
        dx: table(Layout::NT)?,
        dw: table(Layout::TN)?,
        dx_per_task,
    })
}

/// The kernel-level loss table rows for a losses node.
fn loss_tasks(rows: usize, tasks: &[TaskLoss]) -> Vec<LossTask> {
    let width: usize = tasks.iter().map(|t| t.width).sum();
    let (mut col, mut ce) = (0, 0);
    tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let is_ce = t.kind == LossKind::SoftmaxCrossEntropy;
            let task = LossTask {
                kind: t.kind,
                reduction: t.reduction,
                rows,
                width: t.width,
                logit_offset: col,
                logit_ld: width,
                target_offset: if is_ce { ce * rows } else { col },
                target_ld: width,
                mask_offset: t.masked.then_some(i * rows),
            };
            col += t.width;
            ce += usize::from(is_ce);
            task
        })
        .collect()
}
