//! The ops of a graph: a plain enum holding input node ids and parameter
//! ids, the node that holds one, and the small descriptions the ops take
//! (task blocks, task losses, balancing). `Op::inputs` / `Op::params` say
//! what an op reads; analysis and the program walk them.

use crate::gpu::DType;
use crate::graph::params::ParamId;
use crate::types::Activation;
use crate::types::{LossKind, Reduction};

pub use crate::kernels::fused_mlp::TrunkLayer;

/// A node of the graph (its value, and its gradient when it needs one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// One task's block of a block-diagonal `task_dense` layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskBlock {
    /// The task's input columns (its block of x).
    pub inputs: usize,
    /// The task's output columns (its block of the layer's output).
    pub outputs: usize,
}

/// One task of a `losses` node. Its logits are columns
/// [offset, offset + width) of the logits node (tasks side by side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskLoss {
    /// The task's loss (softmax CE, MSE or BCE).
    pub kind: LossKind,
    /// How its terms are reduced (`types::Reduction`).
    pub reduction: Reduction,
    /// The task's logit columns.
    pub width: usize,
    /// Whether the task has a mask row in the masks input ([T, rows]).
    pub masked: bool,
}

/// What the program does for task balancing beyond the loss weights a
/// caller sets (`Program::set_task_weights`; equal, static, RLW).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Balancing {
    /// Only the task-weight buffer.
    #[default]
    Weights,
    /// Also sums each task's loss on the GPU every step, for epoch-level
    /// methods (DWA): `Program::take_epoch_losses`.
    EpochLosses,
    /// Uncertainty weighting (Kendall et al.): a learned s_t = log σ_t²
    /// (parameter `weighting.log_var`); the weights ½e^(−s_t) are computed
    /// on the GPU before the forward pass, ds_t after it.
    Uncertainty,
    /// Gradient methods (MGDA, PCGrad, CAGrad, IMTL-G, GradNorm): the Gram
    /// matrix of per-task gradients in `GramSpace`, computed by
    /// `Program::gram_phase` before the update (`Program::finish_step`).
    Gram(GramSpace),
    /// Gradient methods that keep per-parameter state on the GPU from
    /// step to step: the Gram phase over the shared parameters
    /// (`Program::gram_phase`), plus that state (`Tracking`).
    Tracked(Tracking),
    /// Loss-based rules (GLS, STCH, FAMO): the task weights are computed
    /// on the GPU from this step's losses (`Program::set_loss_rule`),
    /// between the forward pass and the backward, in the step's submit.
    LossRule,
    /// GradDrop (Chen et al. 2020): the heads' per-task input gradients
    /// are sign-dropped into one before the trunk's backward, in the
    /// step's submit (`Program::set_graddrop_leak`).
    GradDrop,
}

impl Balancing {
    /// The space of the Gram phase, for the methods that run one.
    pub fn gram_space(&self) -> Option<GramSpace> {
        match self {
            Balancing::Gram(space) => Some(*space),
            Balancing::Tracked(_) => Some(GramSpace::SharedParameters),
            _ => None,
        }
    }

    /// Whether the program needs the per-task gradients of the heads'
    /// input (`Graph::split_task_grads`).
    pub fn needs_task_split(&self) -> bool {
        self.gram_space().is_some() || *self == Balancing::GradDrop
    }
}

/// The per-parameter state of `Balancing::Tracked`, [T, P] over the
/// shared parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracking {
    /// ExcessMTL (He et al. 2024): each task's running sums of squared
    /// gradients s_t += g_t², and the excess-risk estimate
    /// `Σ g_t²/√(s_t + 1e-7)` per task.
    AdagradSums,
    /// MoCo (Fernando et al. 2023): tracked gradients
    /// `y_t ← y_t − β(y_t − L_t·g_t/‖g_t‖)`; the Gram matrix is of y, and
    /// the update's shared gradient is `Σ_t λ_t y_t`.
    TrackedGradients,
}

/// Whose per-task gradients the Gram matrix compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GramSpace {
    /// dL_t/dH at the heads' shared input H (MGDA-UB): one extra task-GEMM
    /// dispatch, no extra trunk pass.
    Representation,
    /// ∇_W L_t of the last shared layer's weight (GradNorm's default): T
    /// backward passes of that one layer.
    LastSharedLayer,
    /// ∇_θ L_t of every shared (trunk) parameter: T trunk backward passes.
    SharedParameters,
}

/// What a node computes. Gradient rules (backward, in `backward.rs`):
/// - `Dense`: dX (written by the last consumer in forward order, the
///   first in backward; accumulated by the others), dW, db (likewise per
///   parameter use);
/// - `TaskDense`: the same per task block, in one dispatch per pass;
/// - `FusedTrunk`: dX and every layer's dW, db in two dispatches
///   (`kernels::fused_mlp`), accumulation as for `Dense`;
/// - `Add`: dA, dB = dOut (copy, or axpy when accumulating);
/// - `Losses`: the logits' gradient is written by the fused loss kernel
///   in the forward pass already, scaled by each task's weight.
#[derive(Clone, Debug)]
pub enum Op {
    /// Data the caller writes before each step (f32, or u32 labels).
    Input {
        /// Element type of the input buffer.
        dtype: DType,
    },
    /// `act(x·W + b)`, W [in, out].
    Dense {
        /// Input [rows, in].
        x: NodeId,
        /// Weight [in, out].
        w: ParamId,
        /// Bias \[out\], if any.
        b: Option<ParamId>,
        /// Activation applied to x·W + b.
        act: Activation,
    },
    /// Block-diagonal per-task layer: x holds the tasks' input blocks side
    /// by side ([rows, Σ in_t]), the output their output blocks ([rows,
    /// Σ out_t]); W is every task's [in_t, out_t] one after another, b
    /// every task's \[out_t\]. One dispatch for all tasks.
    TaskDense {
        /// Input [rows, Σ in_t] (or [rows, in] with `shared_input`).
        x: NodeId,
        /// Every task's [in_t, out_t] weight block, one after another.
        w: ParamId,
        /// Every task's \[out_t\] bias, one after another, if any.
        b: Option<ParamId>,
        /// Activation of every block.
        act: Activation,
        /// Each task's block shape, in task order.
        blocks: Vec<TaskBlock>,
        /// Every task reads all of x ([rows, in], each block's `inputs` =
        /// in) instead of its own block: the first layer of task columns.
        shared_input: bool,
    },
    /// A narrow trunk of dense layers run whole per row tile
    /// (`kernels::fused_mlp`): one dispatch forward, two backward.
    /// `params[l]` are layer l's W [in, out] and b.
    FusedTrunk {
        /// Input [rows, in].
        x: NodeId,
        /// Each layer's width, activation and bias flag.
        layers: Vec<TrunkLayer>,
        /// Each layer's (W, b).
        params: Vec<(ParamId, Option<ParamId>)>,
    },
    /// Elementwise sum (an input used twice, residual paths).
    Add {
        /// First summand.
        a: NodeId,
        /// Second summand, the same shape.
        b: NodeId,
    },
    /// Cross-stitch unit over the T task blocks of x ([rows, T·C]):
    /// `x̃_t = Σ_s α_ts x_s`, α [T, T] or per channel [C, T, T].
    CrossStitch {
        /// Input [rows, T·C], task s at columns s·C..
        x: NodeId,
        /// α [T, T] or [C, T, T].
        alpha: ParamId,
        /// Tasks, channels and α's layout.
        unit: crate::kernels::cross_stitch::Stitch,
    },
    /// Layer-stitch unit of a sluice network over K layer outputs placed
    /// side by side in h ([rows, K·T·C]): `z_t = Σ_k β_tk h_tk`, β [T, K].
    LayerStitch {
        /// The K layer outputs side by side [rows, K·T·C].
        h: NodeId,
        /// β [T, K].
        beta: ParamId,
        /// Layers, tasks and channels.
        unit: crate::kernels::layer_stitch::LayerStitch,
    },
    /// `alpha · x`.
    Scale {
        /// Input.
        x: NodeId,
        /// The constant factor.
        alpha: f32,
    },
    /// Identity forward; backward multiplies the gradient by −λ (Ganin &
    /// Lempitsky 2015), λ set per step with `Program::set_reversal_lambda`
    /// (see `reversal_lambda` for the standard schedule).
    GradReverse {
        /// Input.
        x: NodeId,
    },
    /// Columns of the parts side by side (same row count).
    Concat {
        /// The matrices to join, left to right.
        parts: Vec<NodeId>,
    },
    /// Columns [start, start + cols) of x.
    Slice {
        /// Input [rows, width].
        x: NodeId,
        /// First column taken.
        start: usize,
        /// Columns taken.
        cols: usize,
    },
    /// Softmax over each output's block of gate logits x ([rows, G]):
    /// every gate of a mixture of experts in one dispatch per pass
    /// (`kernels::moe::gate_softmax`).
    GateSoftmax {
        /// Gate logits [rows, G].
        x: NodeId,
        /// The mixture whose gate blocks these are.
        mix: crate::kernels::moe::Mixture,
    },
    /// The gated combination of experts: output o (a task, or PLE's
    /// shared output) = Σ_e g_{o,e} f_e, all outputs in one dispatch, dF
    /// and dg in one (`kernels::moe::moe_mix`).
    MoeMix {
        /// The experts' outputs side by side [rows, E·W].
        experts: NodeId,
        /// The gates [rows, G].
        gates: NodeId,
        /// Who mixes which experts.
        mix: crate::kernels::moe::Mixture,
    },
    /// The DSelect-k gates [rows, T·E] from selector logits
    /// [rows, T·k·(m + 1)]; its backward adds the entropy regulariser's
    /// gradient (`kernels::moe::dselect_gate`).
    DSelectGate {
        /// Selector logits [rows, T·k·(m + 1)].
        logits: NodeId,
        /// Tasks, experts, selectors, γ and λ.
        gate: crate::kernels::moe::DSelect,
    },
    /// Per-task masked losses of `logits` (\[T\]); the terminal node.
    Losses {
        /// Logits [rows, Σ widths], tasks side by side.
        logits: NodeId,
        /// Each task's loss, width and mask flag, in column order.
        tasks: Vec<TaskLoss>,
        /// Labels [cross-entropy tasks, rows] (u32), if any.
        labels: Option<NodeId>,
        /// Targets [rows, Σ widths] (f32), if any task is not CE.
        targets: Option<NodeId>,
        /// Masks [T, rows] (f32, 1 = labelled), if any task is masked.
        masks: Option<NodeId>,
    },
}

/// One node of the graph: an op and the shape of its value.
#[derive(Clone, Debug)]
pub struct Node {
    /// The name given when it was added (labels its buffers; layers also
    /// name their parameters after it).
    pub name: String,
    /// What it computes from which nodes and parameters.
    pub op: Op,
    /// Shape of its value ([rows, cols] for matrices).
    pub shape: Vec<usize>,
}

impl Op {
    /// The nodes it reads, in input-slot order (the slots of the
    /// accumulate flags).
    pub fn inputs(&self) -> Vec<NodeId> {
        match self {
            Op::Input { .. } => vec![],
            Op::Dense { x, .. } | Op::TaskDense { x, .. } | Op::FusedTrunk { x, .. } => vec![*x],
            Op::Add { a, b } => vec![*a, *b],
            Op::Scale { x, .. }
            | Op::GradReverse { x }
            | Op::Slice { x, .. }
            | Op::CrossStitch { x, .. } => vec![*x],
            Op::LayerStitch { h, .. } => vec![*h],
            Op::GateSoftmax { x, .. } => vec![*x],
            Op::MoeMix { experts, gates, .. } => vec![*experts, *gates],
            Op::DSelectGate { logits, .. } => vec![*logits],
            Op::Concat { parts } => parts.clone(),
            Op::Losses { logits, .. } => vec![*logits],
        }
    }

    /// The parameters it uses (a layer's weight first, then its bias).
    pub fn params(&self) -> Vec<ParamId> {
        match self {
            Op::Dense { w, b, .. } | Op::TaskDense { w, b, .. } => {
                std::iter::once(*w).chain(*b).collect()
            }
            Op::CrossStitch { alpha, .. } => vec![*alpha],
            Op::LayerStitch { beta, .. } => vec![*beta],
            Op::FusedTrunk { params, .. } => params
                .iter()
                .flat_map(|&(w, b)| std::iter::once(w).chain(b))
                .collect(),
            Op::Input { .. }
            | Op::Add { .. }
            | Op::Scale { .. }
            | Op::GradReverse { .. }
            | Op::Concat { .. }
            | Op::Slice { .. }
            | Op::GateSoftmax { .. }
            | Op::MoeMix { .. }
            | Op::DSelectGate { .. }
            | Op::Losses { .. } => vec![],
        }
    }

    /// Whether its backward reads its input's value (dW = Xᵀ·D and the
    /// like): the input then lives until the op's backward.
    pub fn backward_reads_input(&self) -> bool {
        matches!(
            self,
            Op::Dense { .. }
                | Op::TaskDense { .. }
                | Op::CrossStitch { .. }
                | Op::LayerStitch { .. }
                | Op::FusedTrunk { .. }
                | Op::MoeMix { .. }
                | Op::DSelectGate { .. }
        )
    }
}
