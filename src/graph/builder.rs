//! The `Graph` builder: inputs, parameters and ops added one by one,
//! shapes checked as they are added, so a built graph is well-formed.
//! Built once per model (shapes are static), then compiled into a
//! `Program`. One cohesive thing (every op's constructor and its shape
//! checks), hence close to 700 lines.

use crate::error::{Error, Result};
use crate::gpu::{DType, GpuContext};
use crate::graph::init;
use crate::graph::ops::{Balancing, Node, NodeId, Op, TaskBlock, TaskLoss, TrunkLayer};
use crate::graph::params::{Init, ParamId, ParamLayout};
use crate::kernels::fused_mlp::{MAX_DEPTH, MAX_WIDTH};
use crate::kernels::loss::LossKind;
use crate::kernels::trace_norm::{TaskStack, TraceNormVariant};
use crate::types::{Activation, Regulariser, WeightInit};

/// Builds a graph: inputs, parameters, ops. Shapes are checked as ops
/// are added, so a built graph is well-formed.
pub struct Graph {
    pub(crate) nodes: Vec<Node>,
    pub(crate) params: ParamLayout,
    /// Nodes whose gradient gets its own buffer (readable after a step).
    pub(crate) retained: Vec<NodeId>,
    /// A dense layer whose output columns are the tasks' blocks (hard
    /// sharing's first head layer) and the block widths: its backward
    /// also writes each task's gradient of the layer input separately.
    pub(crate) task_split: Option<(NodeId, Vec<usize>)>,
    /// Soft-sharing regularisers: (stacked task weights, their [T, in, out]
    /// shape, which).
    pub(crate) regularisers: Vec<(ParamId, TaskStack, Regulariser)>,
    /// Task balancing beyond loss weights (see `Balancing`).
    pub(crate) balancing: Balancing,
    /// Uncertainty weighting's s = log σ² ([T]), when chosen.
    pub(crate) log_var: Option<ParamId>,
    /// Sluice subspace orthogonality penalties: (task-layer weights, shape, λ).
    pub(crate) orthogonality: Vec<(ParamId, crate::kernels::subspace::Subspaces, f32)>,
    /// Parameter alignment in elements (the adapter's storage offset
    /// alignment).
    align: usize,
    /// How dense, task and trunk layers added from now on start.
    weight_init: WeightInit,
}

/// The adapter's storage-buffer offset alignment, in f32 elements: every
/// parameter view starts at a multiple of it.
pub(crate) fn param_alignment(ctx: &GpuContext) -> usize {
    (ctx.limits().min_storage_buffer_offset_alignment as usize / 4).max(1)
}

fn shape_err(detail: String) -> Error {
    Error::Shape {
        op: "graph",
        detail,
    }
}

impl Graph {
    /// An empty graph; parameters are aligned to `ctx`'s adapter's
    /// storage-buffer offset alignment.
    pub fn new(ctx: &GpuContext) -> Self {
        Self::with_param_alignment(param_alignment(ctx))
    }

    /// An empty graph whose parameters are aligned to `align` elements
    /// (GPU-free: the analysis tests build graphs without an adapter).
    pub(crate) fn with_param_alignment(align: usize) -> Self {
        Graph {
            nodes: Vec::new(),
            params: ParamLayout::default(),
            retained: Vec::new(),
            task_split: None,
            regularisers: Vec::new(),
            orthogonality: Vec::new(),
            balancing: Balancing::Weights,
            log_var: None,
            align,
            weight_init: WeightInit::Glorot,
        }
    }

    /// The initialisation of the dense, task and fused-trunk layers added
    /// from now on (`Graph::new`: Glorot, the graph's init before the
    /// schemes; `ModelSpec::build` sets its `init`, PyTorch's by default).
    /// Cross-stitch α, layer-stitch β and log-variances keep their own.
    pub fn set_weight_init(&mut self, init: WeightInit) {
        self.weight_init = init;
    }

    /// The scheme layers added now start with.
    pub fn weight_init(&self) -> WeightInit {
        self.weight_init
    }

    /// Every node, in the order added (`NodeId` indexes it).
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The parameters the ops added so far.
    pub fn params(&self) -> &ParamLayout {
        &self.params
    }

    /// Shape of node `n`'s value.
    pub fn shape(&self, n: NodeId) -> &[usize] {
        &self.nodes[n.0].shape
    }

    pub(super) fn push(&mut self, name: &str, op: Op, shape: Vec<usize>) -> NodeId {
        self.nodes.push(Node {
            name: name.to_string(),
            op,
            shape,
        });
        NodeId(self.nodes.len() - 1)
    }

    pub(super) fn matrix(&self, n: NodeId, what: &str) -> Result<(usize, usize)> {
        match *self.shape(n) {
            [r, c] => Ok((r, c)),
            ref s => Err(shape_err(format!(
                "{what} '{}' is {s:?}; expected [rows, features]",
                self.nodes[n.0].name
            ))),
        }
    }

    /// An input node the caller fills before each step
    /// (`Program::input`).
    pub fn input(&mut self, name: &str, shape: &[usize], dtype: DType) -> NodeId {
        self.push(name, Op::Input { dtype }, shape.to_vec())
    }

    /// A new parameter (for `dense_with` and the like); an error if the
    /// name is taken.
    pub fn param(&mut self, name: &str, shape: &[usize], init: Init) -> Result<ParamId> {
        self.params.add(name, shape, init, self.align)
    }

    /// A dense layer with new parameters `{name}.weight` [in, out] and
    /// `{name}.bias`, initialised by `weight_init`.
    pub fn dense(
        &mut self,
        name: &str,
        x: NodeId,
        outputs: usize,
        act: Activation,
    ) -> Result<NodeId> {
        let (_, inputs) = self.matrix(x, "dense input")?;
        let (w_init, b_init) = init::dense(self.weight_init, inputs, outputs);
        let w = self.param(&format!("{name}.weight"), &[inputs, outputs], w_init)?;
        let b = self.param(&format!("{name}.bias"), &[outputs], b_init)?;
        self.dense_with(name, x, w, Some(b), act)
    }

    /// A dense layer on existing parameters (shared weights).
    pub fn dense_with(
        &mut self,
        name: &str,
        x: NodeId,
        w: ParamId,
        b: Option<ParamId>,
        act: Activation,
    ) -> Result<NodeId> {
        let (rows, inputs) = self.matrix(x, "dense input")?;
        let ws = self.params.get(w).shape.clone();
        if ws.len() != 2 || ws[0] != inputs {
            return Err(shape_err(format!(
                "{name}: weight {ws:?} does not take {inputs} inputs ([in, out])"
            )));
        }
        if let Some(b) = b {
            if self.params.get(b).shape != [ws[1]] {
                return Err(shape_err(format!(
                    "{name}: bias {:?} is not [{}]",
                    self.params.get(b).shape,
                    ws[1]
                )));
            }
        }
        Ok(self.push(name, Op::Dense { x, w, b, act }, vec![rows, ws[1]]))
    }

    /// The dense layers `layers` as ONE fused node (every layer's output ≤
    /// `fused_mlp::MAX_WIDTH`; the input may be wider), with parameters `{name}.{i}.weight`
    /// [in, out] and `{name}.{i}.bias` (by `weight_init`): the names and
    /// initial values of the chain `dense("{name}.{i}", …)`, so the two
    /// are interchangeable in checkpoints. Forward is one dispatch,
    /// backward two, instead of one and about three per layer.
    pub fn fused_trunk(&mut self, name: &str, x: NodeId, layers: &[TrunkLayer]) -> Result<NodeId> {
        let (rows, inputs) = self.matrix(x, "fused trunk input")?;
        let widths: Vec<usize> = std::iter::once(inputs)
            .chain(layers.iter().map(|l| l.outputs))
            .collect();
        if layers.is_empty()
            || layers.len() > MAX_DEPTH
            || widths[1..].iter().any(|&w| w == 0 || w > MAX_WIDTH)
        {
            return Err(shape_err(format!(
                "{name}: widths {widths:?}: a fused trunk has 1 to {MAX_DEPTH} layers of output widths 1..={MAX_WIDTH} \
                 (the input may be wider); use Graph::dense layers for wider or deeper trunks"
            )));
        }
        let mut params = Vec::with_capacity(layers.len());
        for (i, l) in layers.iter().enumerate() {
            let (fan_in, fan_out) = (widths[i], l.outputs);
            let (w_init, b_init) = init::dense(self.weight_init, fan_in, fan_out);
            let w = self.param(&format!("{name}.{i}.weight"), &[fan_in, fan_out], w_init)?;
            let b = if l.bias {
                Some(self.param(&format!("{name}.{i}.bias"), &[fan_out], b_init)?)
            } else {
                None
            };
            params.push((w, b));
        }
        let out = widths[layers.len()];
        Ok(self.push(
            name,
            Op::FusedTrunk {
                x,
                layers: layers.to_vec(),
                params,
            },
            vec![rows, out],
        ))
    }

    /// A block-diagonal per-task layer with new parameters
    /// `{name}.weight` (Σ in_t·out_t) and `{name}.bias`, each task's block initialised by `weight_init` with its own fans.
    pub fn task_dense(
        &mut self,
        name: &str,
        x: NodeId,
        blocks: &[TaskBlock],
        act: Activation,
    ) -> Result<NodeId> {
        let (_, width) = self.matrix(x, "task_dense input")?;
        let total_in: usize = blocks.iter().map(|b| b.inputs).sum();
        if blocks.is_empty()
            || total_in != width
            || blocks.iter().any(|b| b.inputs == 0 || b.outputs == 0)
        {
            return Err(shape_err(format!(
                "{name}: task blocks take {total_in} inputs in all (each ≥ 1) but the input has {width} features"
            )));
        }
        self.push_task_dense(name, x, blocks, act, false)
    }

    /// A per-task layer whose T tasks all read the whole of `x` (the first
    /// layer of soft-sharing / cross-stitch columns): task t has weights
    /// [in, outputs\[t\]] and writes output block t; one dispatch per pass,
    /// and dX = Σ_t D_t·W_tᵀ by a per-task GEMM and a fixed-order sum.
    pub fn task_dense_shared(
        &mut self,
        name: &str,
        x: NodeId,
        outputs: &[usize],
        act: Activation,
    ) -> Result<NodeId> {
        let (_, width) = self.matrix(x, "task_dense_shared input")?;
        if outputs.is_empty() || outputs.contains(&0) {
            return Err(shape_err(format!(
                "{name}: every task needs ≥ 1 output (got {outputs:?})"
            )));
        }
        let blocks: Vec<TaskBlock> = outputs
            .iter()
            .map(|&o| TaskBlock {
                inputs: width,
                outputs: o,
            })
            .collect();
        self.push_task_dense(name, x, &blocks, act, true)
    }

    fn push_task_dense(
        &mut self,
        name: &str,
        x: NodeId,
        blocks: &[TaskBlock],
        act: Activation,
        shared_input: bool,
    ) -> Result<NodeId> {
        let rows = self.shape(x)[0];
        let weights: usize = blocks.iter().map(|b| b.inputs * b.outputs).sum();
        let outputs: usize = blocks.iter().map(|b| b.outputs).sum();
        let (w_init, b_init) = init::task_dense(self.weight_init, blocks);
        let w = self.param(&format!("{name}.weight"), &[weights], w_init)?;
        let b = self.param(&format!("{name}.bias"), &[outputs], b_init)?;
        Ok(self.push(
            name,
            Op::TaskDense {
                x,
                w,
                b: Some(b),
                act,
                blocks: blocks.to_vec(),
                shared_input,
            },
            vec![rows, outputs],
        ))
    }

    /// `a + b`, elementwise; an error unless the shapes are equal.
    pub fn add(&mut self, name: &str, a: NodeId, b: NodeId) -> Result<NodeId> {
        if self.shape(a) != self.shape(b) {
            return Err(shape_err(format!(
                "{name}: {:?} + {:?}",
                self.shape(a),
                self.shape(b)
            )));
        }
        let shape = self.shape(a).to_vec();
        Ok(self.push(name, Op::Add { a, b }, shape))
    }

    /// Keep `node`'s gradient in a buffer of its own, readable after each
    /// step (`Program::grad_of`); other gradients live in planned buffers
    /// that later ops of the step reuse.
    pub fn retain_grad(&mut self, node: NodeId) {
        if !self.retained.contains(&node) {
            self.retained.push(node);
        }
    }

    /// Declares `layer` (a dense layer) as the first layer of the task
    /// heads, its output columns being the tasks' blocks of `widths`: each
    /// backward then also writes every task's own gradient of the layer's
    /// input, dH_t = (G ⊙ act')[:, block t] · W_tᵀ, as [T, rows, inputs]
    /// in ONE extra dispatch (`Program::task_input_grads`), next to the
    /// summed gradient the trunk's backward uses.
    pub fn split_task_grads(&mut self, layer: NodeId, widths: &[usize]) -> Result<()> {
        if !matches!(self.nodes[layer.0].op, Op::Dense { .. }) {
            return Err(shape_err(format!(
                "'{}' is not a dense layer",
                self.nodes[layer.0].name
            )));
        }
        let out = self.shape(layer)[1];
        if widths.iter().sum::<usize>() != out || widths.contains(&0) {
            return Err(shape_err(format!(
                "task widths {widths:?} do not split {out} outputs"
            )));
        }
        self.task_split = Some((layer, widths.to_vec()));
        Ok(())
    }

    /// A cross-stitch unit mixing the `tasks` column blocks of `x`, with a
    /// new parameter `{name}.alpha` initialised to `diagonal` on the
    /// diagonal and (1 − diagonal)/(T − 1) off it (`diagonal: None`: all
    /// ones, LibMTL's init), learning `lr_scale` × faster.
    pub fn cross_stitch(
        &mut self,
        name: &str,
        x: NodeId,
        tasks: usize,
        per_channel: bool,
        diagonal: Option<f32>,
        lr_scale: f32,
    ) -> Result<NodeId> {
        let (rows, width) = self.matrix(x, "cross-stitch input")?;
        if tasks == 0 || width % tasks != 0 {
            return Err(shape_err(format!(
                "{name}: {width} columns do not split into {tasks} tasks"
            )));
        }
        let unit = crate::kernels::cross_stitch::Stitch { tasks, per_channel };
        let init = match diagonal {
            Some(p) => Init::CrossStitch { tasks, diagonal: p },
            None => Init::Constant(1.0),
        };
        let alpha = self.param(
            &format!("{name}.alpha"),
            &unit.alpha_shape(width / tasks),
            init,
        )?;
        self.params.set_lr_scale(alpha, lr_scale);
        Ok(self.push(name, Op::CrossStitch { x, alpha, unit }, vec![rows, width]))
    }

    /// Regularises the stacked per-task weights in `param` (T equal
    /// blocks, e.g. a `task_dense` weight whose tasks share one shape):
    /// gradient terms are added to the weight gradient after backward,
    /// proximal steps run after the optimiser with step size lr·λ. The
    /// blocks' [in, out] shape (needed by the Tucker and TT trace norms) is
    /// taken from the `task_dense` layer that owns `param`; without one,
    /// use `regularise_stack`.
    pub fn regularise(&mut self, param: ParamId, tasks: usize, reg: Regulariser) -> Result<()> {
        let len = self.params.get(param).len();
        if tasks < 2 || !len.is_multiple_of(tasks) {
            return Err(shape_err(format!(
                "'{}' ({len} weights) does not stack into {tasks} equal task blocks",
                self.params.get(param).name
            )));
        }
        let layer = self.nodes.iter().find_map(|n| match &n.op {
            Op::TaskDense { w, blocks, .. }
                if *w == param
                    && blocks.len() == tasks
                    && blocks.iter().all(|b| *b == blocks[0]) =>
            {
                Some(blocks[0])
            }
            _ => None,
        });
        let stack = match layer {
            Some(b) => TaskStack {
                tasks,
                inputs: b.inputs,
                outputs: b.outputs,
            },
            None => TaskStack::flat(tasks, len / tasks),
        };
        let needs_shape = matches!(
            reg.trace_norm_variant(),
            Some(TraceNormVariant::Tucker | TraceNormVariant::TensorTrain)
        );
        if layer.is_none() && needs_shape {
            return Err(shape_err(format!(
                "{reg:?} needs the per-task [in, out] shape of '{}', which is not a task_dense weight with {tasks} equal blocks: use regularise_stack",
                self.params.get(param).name
            )));
        }
        self.regularise_stack(param, stack, reg)
    }

    /// `regularise` with the [T, in, out] shape of the stacked weights given.
    pub fn regularise_stack(
        &mut self,
        param: ParamId,
        stack: TaskStack,
        reg: Regulariser,
    ) -> Result<()> {
        let name = &self.params.get(param).name;
        let len = self.params.get(param).len();
        if stack.tasks < 2 || stack.len() != len {
            return Err(shape_err(format!(
                "'{name}' ({len} weights) is not {stack:?} with ≥ 2 tasks"
            )));
        }
        if let Regulariser::TraceNormProx { variant, .. } = reg {
            if variant != TraceNormVariant::LastAxis {
                return Err(shape_err(format!(
                    "'{name}': the {variant:?} trace norm has no proximal step (no closed form for a sum of nuclear norms of different unfoldings); use Regulariser::TraceNorm (its gradient form) or the LastAxis prox"
                )));
            }
        }
        self.regularisers.push((param, stack, reg));
        Ok(())
    }

    /// A sluice layer-stitch unit: each task's output is a learned mix
    /// (β [T, K], new parameter `{name}.beta`, initialised to 1/K, learning
    /// `lr_scale` × faster) of its blocks in the K `layers` (same shape
    /// [rows, T·C]). The layers are concatenated first (one copy each).
    pub fn layer_stitch(
        &mut self,
        name: &str,
        layers: &[NodeId],
        tasks: usize,
        lr_scale: f32,
    ) -> Result<NodeId> {
        let Some(&first) = layers.first() else {
            return Err(shape_err(format!("{name}: a layer stitch needs ≥ 1 layer")));
        };
        let (rows, width) = self.matrix(first, "layer-stitch input")?;
        if tasks == 0 || width % tasks != 0 {
            return Err(shape_err(format!(
                "{name}: {width} columns do not split into {tasks} tasks"
            )));
        }
        if let Some(&other) = layers.iter().find(|&&l| self.shape(l) != [rows, width]) {
            return Err(shape_err(format!(
                "{name}: layer '{}' is {:?}; every stitched layer must be [{rows}, {width}]",
                self.nodes[other.0].name,
                self.shape(other)
            )));
        }
        let k = layers.len();
        let h = if k == 1 {
            first
        } else {
            self.concat(&format!("{name}.layers"), layers)?
        };
        let beta = self.param(
            &format!("{name}.beta"),
            &[tasks, k],
            Init::Constant(1.0 / k as f32),
        )?;
        self.params.set_lr_scale(beta, lr_scale);
        let unit = crate::kernels::layer_stitch::LayerStitch { tasks, layers: k };
        Ok(self.push(name, Op::LayerStitch { h, beta, unit }, vec![rows, width]))
    }

    /// Sluice subspace orthogonality: λ Σ_{i<j} ‖A_iᵀA_j‖² over the
    /// `subspaces` column blocks of each task's weights in `layer` (a
    /// `task_dense` layer whose tasks share one shape), added to the
    /// weight gradient after backward; its value is reported with the
    /// regularisers (`Program::orthogonality_values`).
    pub fn subspace_orthogonality(
        &mut self,
        layer: NodeId,
        subspaces: usize,
        lambda: f32,
    ) -> Result<()> {
        let node = &self.nodes[layer.0];
        let Op::TaskDense { w, blocks, .. } = &node.op else {
            return Err(shape_err(format!(
                "'{}' is not a task_dense layer",
                node.name
            )));
        };
        let b0 = blocks[0];
        if blocks.iter().any(|b| *b != b0) {
            return Err(shape_err(format!(
                "'{}': subspace orthogonality needs every task's block to have one shape",
                node.name
            )));
        }
        let shape = crate::kernels::subspace::Subspaces {
            tasks: blocks.len(),
            inputs: b0.inputs,
            outputs: b0.outputs,
            subspaces,
        };
        if subspaces < 2 || b0.outputs % subspaces != 0 {
            return Err(shape_err(format!(
                "'{}': {} outputs per task do not split into {subspaces} subspaces (need ≥ 2 that divide them)",
                node.name, b0.outputs
            )));
        }
        self.orthogonality.push((*w, shape, lambda));
        Ok(())
    }

    /// Chooses the task balancing (after `losses`). Gram methods need the
    /// per-task gradients of the heads' input (`split_task_grads`);
    /// uncertainty weighting adds the parameter `weighting.log_var` \[T\]
    /// (initialised to 0: σ² = 1).
    pub fn set_balancing(&mut self, balancing: Balancing) -> Result<()> {
        let tasks = match self.nodes.iter().find_map(|n| match &n.op {
            Op::Losses { tasks, .. } => Some(tasks.len()),
            _ => None,
        }) {
            Some(t) => t,
            None => return Err(shape_err("set_balancing: add the losses node first".into())),
        };
        if balancing.needs_task_split() && self.task_split.is_none() {
            return Err(shape_err(
                "gradient-based balancing needs the per-task gradients of the heads' input: call split_task_grads on the first head layer (hard sharing)".into(),
            ));
        }
        if balancing == Balancing::Uncertainty && self.log_var.is_none() {
            self.log_var = Some(self.param("weighting.log_var", &[tasks], Init::Zeros)?);
        }
        self.balancing = balancing;
        Ok(())
    }

    /// `alpha · x`.
    pub fn scale(&mut self, name: &str, x: NodeId, alpha: f32) -> NodeId {
        let shape = self.shape(x).to_vec();
        self.push(name, Op::Scale { x, alpha }, shape)
    }

    /// A gradient-reversal node (`Op::GradReverse`): identity forward,
    /// gradient × −λ backward.
    pub fn grad_reverse(&mut self, name: &str, x: NodeId) -> NodeId {
        let shape = self.shape(x).to_vec();
        self.push(name, Op::GradReverse { x }, shape)
    }

    /// The matrices `parts` side by side; an error if their row counts
    /// differ or there are none.
    pub fn concat(&mut self, name: &str, parts: &[NodeId]) -> Result<NodeId> {
        let mut rows = None;
        let mut cols = 0;
        for &p in parts {
            let (r, c) = self.matrix(p, "concat part")?;
            if rows.is_some_and(|rows| rows != r) {
                return Err(shape_err(format!(
                    "{name}: parts have different row counts"
                )));
            }
            rows = Some(r);
            cols += c;
        }
        let rows = rows.ok_or_else(|| shape_err(format!("{name}: nothing to concatenate")))?;
        Ok(self.push(
            name,
            Op::Concat {
                parts: parts.to_vec(),
            },
            vec![rows, cols],
        ))
    }

    /// Columns [start, start + cols) of x; an error if they are empty or
    /// out of range.
    pub fn slice(&mut self, name: &str, x: NodeId, start: usize, cols: usize) -> Result<NodeId> {
        let (rows, width) = self.matrix(x, "slice input")?;
        if cols == 0 || start + cols > width {
            return Err(shape_err(format!(
                "{name}: columns {start}..{} of {width}",
                start + cols
            )));
        }
        Ok(self.push(name, Op::Slice { x, start, cols }, vec![rows, cols]))
    }

    /// Per-task losses of `logits` (tasks side by side in its columns):
    /// labels [T_ce, rows] (u32) for cross-entropy tasks in task order,
    /// targets [rows, Σ width] (f32) laid out like the logits for the
    /// others, masks [T, rows] (f32) when a task is masked.
    pub fn losses(
        &mut self,
        name: &str,
        logits: NodeId,
        tasks: &[TaskLoss],
        labels: Option<NodeId>,
        targets: Option<NodeId>,
        masks: Option<NodeId>,
    ) -> Result<NodeId> {
        let (rows, width) = self.matrix(logits, "logits")?;
        let total: usize = tasks.iter().map(|t| t.width).sum();
        if tasks.is_empty() || total != width {
            return Err(shape_err(format!(
                "{name}: the tasks cover {total} logit columns but the logits have {width}"
            )));
        }
        let n_ce = tasks
            .iter()
            .filter(|t| t.kind == LossKind::SoftmaxCrossEntropy)
            .count();
        let check = |node: Option<NodeId>,
                     needed: bool,
                     shape: Vec<usize>,
                     dtype: DType,
                     what: &str|
         -> Result<()> {
            match (node, needed) {
                (None, false) => Ok(()),
                (None, true) => Err(shape_err(format!("{name}: {what} are needed"))),
                (Some(n), _) => match &self.nodes[n.0].op {
                    Op::Input { dtype: d } if *d == dtype && self.nodes[n.0].shape == shape => {
                        Ok(())
                    }
                    _ => Err(shape_err(format!(
                        "{name}: {what} must be a {dtype} input of shape {shape:?}"
                    ))),
                },
            }
        };
        check(labels, n_ce > 0, vec![n_ce, rows], DType::U32, "labels")?;
        check(
            targets,
            n_ce < tasks.len(),
            vec![rows, width],
            DType::F32,
            "targets",
        )?;
        check(
            masks,
            tasks.iter().any(|t| t.masked),
            vec![tasks.len(), rows],
            DType::F32,
            "masks",
        )?;
        if self.nodes.iter().any(|n| matches!(n.op, Op::Losses { .. })) {
            return Err(shape_err(format!(
                "{name}: a graph has one losses node (sum tasks into one)"
            )));
        }
        Ok(self.push(
            name,
            Op::Losses {
                logits,
                tasks: tasks.to_vec(),
                labels,
                targets,
                masks,
            },
            vec![tasks.len()],
        ))
    }
}
