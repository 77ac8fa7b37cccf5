//! MTL architectures as graph builders: a `ModelSpec` (input width, how
//! the tasks share, the tasks and their heads) builds a `Graph` whose
//! ops are the fused kernels, with its inputs named in a `Model`.
//!
//! - [`Sharing::Hard`]: a shared trunk of dense layers, then the heads
//!   (Caruana 1997; Ruder 2017);
//! - [`Sharing::CrossStitch`]: one column per task, all T columns of a
//!   layer in one batched dispatch, cross-stitch units after chosen layers
//!   (Misra et al. 2016);
//! - [`Sharing::Sluice`]: columns split into G subspaces mixed by a
//!   (T·G)×(T·G) cross-stitch after every layer, a subspace
//!   orthogonality penalty, and a layer stitch β feeding the heads
//!   (Ruder et al. 2019);
//! - [`Sharing::Soft`]: columns tied only by regularisers on each layer's
//!   stacked task weights (L2 distance, clustering, group lasso, trace
//!   norm; Duong et al. 2015, Yang & Hospedales 2017);
//! - [`Sharing::Mmoe`], [`Sharing::Cgc`], [`Sharing::Ple`],
//!   [`Sharing::DSelectK`]: gated mixtures of experts (Ma et al. 2018;
//!   Tang et al. 2020; Hazimeh et al. 2021), `moe`: every expert layer,
//!   every gate and the gated combination one op each.
//!
//! Heads: layer j of every task runs as ONE op (the first head layer of
//! hard sharing as one GEMM against the concatenated head weights, deeper
//! layers as the batched task GEMM), so 8 heads cost the dispatches of 2.
//! Tests: kernels-tests/arch.rs; bench: benches/train_step.rs.

mod columns;
mod heads;
pub mod moe;
pub mod pieces;

pub use crate::types::{Experts, ModelSpec, Sharing, StitchOptions, TaskKind, TaskSpec};
pub use moe::{expert_names, gate_mass, GateSums, TaskGates};
pub use pieces::Piece;

use crate::error::{Error, Result};
use crate::gpu::{DType, GpuContext};
use crate::graph::{Balancing, Graph, NodeId, TaskLoss, TrunkLayer};
use crate::types::LossKind;

/// A built model: its graph and the nodes a caller uses.
pub struct Model {
    /// The graph to pass to `Program::build`.
    pub graph: Graph,
    /// Its input, output and loss nodes, task columns and checkpoint
    /// pieces.
    pub nodes: ModelNodes,
}

/// The input nodes a caller writes before each step, and the outputs.
#[derive(Clone, Debug)]
pub struct ModelNodes {
    /// x [rows, inputs] (f32).
    pub x: NodeId,
    /// Class ids [classification tasks, rows] (u32), if any task classifies.
    pub labels: Option<NodeId>,
    /// Targets [rows, Σ widths] (f32) laid out like the logits, if any
    /// task regresses or has binary labels (class tasks' columns unused).
    pub targets: Option<NodeId>,
    /// Masks [tasks, rows] (f32, 1 = labelled), if any task is masked.
    pub masks: Option<NodeId>,
    /// Logits [rows, Σ widths], task t at `columns[t]`.
    pub logits: NodeId,
    /// The per-task losses \[T\] (mean over labelled rows).
    pub losses: NodeId,
    /// Task t's logit columns: (offset, width).
    pub columns: Vec<(usize, usize)>,
    /// The column layers (cross-stitch / sluice / soft), for callers that
    /// add their own regularisers.
    pub column_layers: Vec<NodeId>,
    /// Hard sharing's first head layer (one dense op for every task) and
    /// the tasks' widths in it.
    pub heads0: Option<(NodeId, Vec<usize>)>,
    /// The checkpoint's tensors cut from the parameters (PyTorch layout).
    pub pieces: Vec<Piece>,
    /// A mixture of experts' task gates (PLE: the last level's), for
    /// `TaskGates::mass`: each task's gate mass per expert.
    pub gates: Option<TaskGates>,
}

impl Model {
    /// Chooses the task balancing. Gradient methods (`Balancing::Gram`)
    /// need hard sharing whose first head layer is one op for all tasks
    /// (heads whose depths differ split it, and so do adversarial tasks):
    /// the per-task gradients of
    /// the trunk output come from that layer's backward.
    pub fn set_balancing(&mut self, balancing: Balancing) -> Result<()> {
        if balancing.needs_task_split() {
            let Some((layer, widths)) = &self.nodes.heads0 else {
                return Err(spec_err(
                    "gradient-based task balancing needs hard sharing with every head's first layer in one op \
                     (heads all hidden, or all linear, and no adversarial task)".into(),
                ));
            };
            self.graph.split_task_grads(*layer, widths)?;
        }
        self.graph.set_balancing(balancing)
    }
}

fn spec_err(detail: String) -> Error {
    Error::Shape {
        op: "model",
        detail,
    }
}

impl ModelSpec {
    fn check(&self) -> Result<()> {
        if self.rows == 0 || self.inputs == 0 {
            return Err(spec_err(format!(
                "rows ({}) and inputs ({}) must be ≥ 1",
                self.rows, self.inputs
            )));
        }
        if self.tasks.is_empty() {
            return Err(spec_err("a model needs ≥ 1 task".into()));
        }
        for (i, t) in self.tasks.iter().enumerate() {
            let bad = t.name.is_empty() || t.name.contains(|c: char| c == '.' || c.is_whitespace());
            if bad || self.tasks[..i].iter().any(|o| o.name == t.name) {
                return Err(spec_err(format!(
                    "task name '{}' must be unique, non-empty, without dots or spaces (it names checkpoint tensors)",
                    t.name
                )));
            }
        }
        for t in &self.tasks {
            if t.kind.width() == 0 || t.hidden.contains(&0) {
                return Err(spec_err(format!(
                    "task '{}': output and hidden widths must be ≥ 1",
                    t.name
                )));
            }
            let name = &t.name;
            t.reduction
                .check(t.kind.loss())
                .map_err(|why| spec_err(format!("task '{name}': {why}")))?;
        }
        let hard = matches!(
            self.sharing,
            Sharing::Hard { .. } | Sharing::HardFused { .. }
        );
        if let (false, Some(t)) = (hard, self.tasks.iter().find(|t| t.adversarial)) {
            return Err(spec_err(format!(
                "task '{}' is adversarial: gradient reversal needs a shared trunk to reverse into \
                 (hard or hard_fused sharing); task columns have none",
                t.name
            )));
        }
        let layers = match &self.sharing {
            Sharing::Hard { trunk } | Sharing::HardFused { trunk } => trunk,
            Sharing::CrossStitch { columns, .. }
            | Sharing::Sluice { columns, .. }
            | Sharing::Soft { columns, .. } => {
                if columns.is_empty() {
                    return Err(spec_err("task columns need ≥ 1 layer".into()));
                }
                columns
            }
            Sharing::Mmoe { experts }
            | Sharing::Cgc { experts }
            | Sharing::Ple { experts, .. }
            | Sharing::DSelectK { experts, .. } => {
                if experts.widths.is_empty() {
                    return Err(spec_err("experts need ≥ 1 layer".into()));
                }
                &experts.widths
            }
        };
        if layers.contains(&0) {
            return Err(spec_err(format!("layer widths {layers:?} must be ≥ 1")));
        }
        Ok(())
    }

    /// Builds the graph (parameters are initialised when a `Program` is
    /// built from it).
    pub fn build(&self, ctx: &GpuContext) -> Result<Model> {
        self.check()?;
        let mut g = Graph::new(ctx);
        g.set_weight_init(self.init);
        let act = self.activation;
        let t = self.tasks.len();
        let x = g.input("x", &[self.rows, self.inputs], DType::F32);
        let mut pieces = Vec::new();
        let mut gates = None;
        let mut moe = |built: (heads::HeadInput, TaskGates)| {
            gates = Some(built.1);
            (built.0, Vec::new())
        };
        let (head_input, column_layers) = match &self.sharing {
            // A hard trunk runs as dense layers or, where the measured rule
            // (or MANYTASK_TRUNK_KERNELS) says it pays, fully fused: the
            // same parameters either way.
            Sharing::Hard { trunk }
                if crate::kernels::fused_mlp::trunk_kernels(ctx, self.rows, trunk)?
                    == crate::kernels::fused_mlp::TrunkKernels::Dense =>
            {
                let mut h = x;
                let mut fan_in = self.inputs;
                for (i, &w) in trunk.iter().enumerate() {
                    let name = format!("trunk.{i}");
                    h = g.dense(&name, h, w, act)?;
                    pieces::layer(&mut pieces, &name, &name, 0, fan_in, w, w, 0);
                    fan_in = w;
                }
                (heads::HeadInput::Shared(h), Vec::new())
            }
            Sharing::Hard { trunk } | Sharing::HardFused { trunk } => {
                let layers: Vec<TrunkLayer> = trunk
                    .iter()
                    .map(|&outputs| TrunkLayer {
                        outputs,
                        act,
                        bias: true,
                    })
                    .collect();
                let h = g.fused_trunk("trunk", x, &layers)?;
                let mut fan_in = self.inputs;
                for (i, &w) in trunk.iter().enumerate() {
                    let name = format!("trunk.{i}");
                    pieces::layer(&mut pieces, &name, &name, 0, fan_in, w, w, 0);
                    fan_in = w;
                }
                (heads::HeadInput::Shared(h), Vec::new())
            }
            Sharing::CrossStitch {
                columns,
                stitch_after,
                stitch,
            } => columns::cross_stitch(&mut g, x, t, columns, stitch_after, stitch, act)?,
            Sharing::Sluice {
                columns,
                subspaces,
                orthogonality,
                stitch,
            } => columns::sluice(
                &mut g,
                x,
                t,
                columns,
                *subspaces,
                *orthogonality,
                stitch,
                act,
            )?,
            Sharing::Soft {
                columns,
                regularisers,
            } => columns::soft(&mut g, x, t, columns, regularisers, act)?,
            Sharing::Mmoe { experts } => moe(moe::mmoe(
                &mut g,
                x,
                &self.tasks,
                experts,
                moe::GateKind::Softmax,
                act,
                &mut pieces,
            )?),
            Sharing::DSelectK {
                experts,
                selectors,
                gamma,
                entropy,
            } => {
                let gate = moe::GateKind::DSelect {
                    selectors: *selectors,
                    gamma: *gamma,
                    entropy: *entropy,
                };
                moe(moe::mmoe(
                    &mut g,
                    x,
                    &self.tasks,
                    experts,
                    gate,
                    act,
                    &mut pieces,
                )?)
            }
            Sharing::Cgc { experts } => moe(moe::ple(
                &mut g,
                x,
                &self.tasks,
                experts,
                1,
                act,
                &mut pieces,
            )?),
            Sharing::Ple { experts, levels } => moe(moe::ple(
                &mut g,
                x,
                &self.tasks,
                experts,
                *levels,
                act,
                &mut pieces,
            )?),
        };
        if let Sharing::CrossStitch { columns, .. }
        | Sharing::Sluice { columns, .. }
        | Sharing::Soft { columns, .. } = &self.sharing
        {
            let names: Vec<String> = self.tasks.iter().map(|t| t.name.clone()).collect();
            columns::column_pieces(&names, self.inputs, columns, &mut pieces);
        }
        let (logits, heads0) = heads::build(&mut g, head_input, &self.tasks, act, &mut pieces)?;

        let losses: Vec<TaskLoss> = self
            .tasks
            .iter()
            .map(|s| TaskLoss {
                kind: s.kind.loss(),
                reduction: s.reduction,
                width: s.kind.width(),
                masked: s.masked,
            })
            .collect();
        let n_ce = losses
            .iter()
            .filter(|l| l.kind == LossKind::SoftmaxCrossEntropy)
            .count();
        let width: usize = losses.iter().map(|l| l.width).sum();
        let rows = self.rows;
        let labels = (n_ce > 0).then(|| g.input("labels", &[n_ce, rows], DType::U32));
        let targets = (n_ce < t).then(|| g.input("targets", &[rows, width], DType::F32));
        let masks = losses
            .iter()
            .any(|l| l.masked)
            .then(|| g.input("masks", &[t, rows], DType::F32));
        let loss_node = g.losses("losses", logits, &losses, labels, targets, masks)?;
        let mut columns = Vec::with_capacity(t);
        let mut col = 0;
        for l in &losses {
            columns.push((col, l.width));
            col += l.width;
        }
        Ok(Model {
            graph: g,
            nodes: ModelNodes {
                x,
                labels,
                targets,
                masks,
                logits,
                losses: loss_node,
                columns,
                column_layers,
                heads0,
                pieces,
                gates,
            },
        })
    }
}
