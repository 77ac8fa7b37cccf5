//! Workloads shared by `manytask bench` and the criterion benches: each
//! owns its tensors and records one timed unit of work on a recorder.

use crate::error::Result;
use crate::gpu::{DType, GpuContext, Recorder, Tensor};
use crate::kernels::dense::{dense_backward, dense_forward, BackwardPlan, Dense, DenseGrads};
use crate::kernels::gemm::{self, Epilogue, Layout, Saved, Variant};
use crate::kernels::loss::{masked_losses, LossInputs, LossKind, LossOutputs, LossTable, LossTask};
use crate::kernels::task_gemm::{task_gemm, TaskProblem, TaskTable};
use crate::kernels::{elementwise, reduce};
use crate::types::Activation;
use crate::util::rng::Rng;

fn random(ctx: &GpuContext, label: &str, shape: &[usize], seed: u64) -> Result<Tensor> {
    let n = shape.iter().product();
    Tensor::from_f32(ctx, label, shape, &Rng::new(seed).uniform_vec(n, -1.0, 1.0))
}

/// One dense layer X [rows, inputs] → Y [rows, outputs] with its forward
/// and backward, either fused (`kernels::dense`: 3 dispatches) or as the
/// separate kernels it replaces (GEMM + bias, activation, activation
/// backward, dX GEMM, dW GEMM, bias column sums: 6+ dispatches).
pub struct DenseWorkload {
    /// Batch rows.
    pub rows: usize,
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub outputs: usize,
    /// The layer's activation.
    pub act: Activation,
    x: Tensor,
    w: Tensor,
    b: Tensor,
    y: Tensor,
    z: Tensor,
    g: Tensor,
    d: Tensor,
    dx: Tensor,
    dw: Tensor,
    db: Tensor,
}

impl DenseWorkload {
    /// Random x, W, b and upstream gradient (fixed seeds), empty outputs.
    pub fn new(
        ctx: &GpuContext,
        rows: usize,
        inputs: usize,
        outputs: usize,
        act: Activation,
    ) -> Result<Self> {
        let empty = |label: &str, shape: &[usize]| Tensor::empty(ctx, label, shape, DType::F32);
        Ok(DenseWorkload {
            rows,
            inputs,
            outputs,
            act,
            x: random(ctx, "x", &[rows, inputs], 1)?,
            w: random(ctx, "w", &[inputs, outputs], 2)?,
            b: random(ctx, "b", &[outputs], 3)?,
            g: random(ctx, "dL/dY", &[rows, outputs], 4)?,
            y: empty("y", &[rows, outputs])?,
            z: empty("z", &[rows, outputs])?,
            d: empty("d", &[rows, outputs])?,
            dx: empty("dx", &[rows, inputs])?,
            dw: empty("dw", &[inputs, outputs])?,
            db: empty("db", &[outputs])?,
        })
    }

    /// Forward + backward flops: three GEMMs of rows·inputs·outputs.
    pub fn flops(&self) -> f64 {
        6.0 * (self.rows * self.inputs * self.outputs) as f64
    }

    fn layer(&self) -> Dense<'_> {
        Dense {
            x: &self.x,
            w: &self.w,
            bias: Some(&self.b),
            act: self.act,
        }
    }

    /// Forward and backward through `kernels::dense`.
    pub fn record_fused(
        &self,
        rec: &mut Recorder,
        variant: Option<Variant>,
        plan: Option<BackwardPlan>,
    ) -> Result<()> {
        let layer = self.layer();
        let keep_z = !self.act.grad_from_output();
        dense_forward(rec, variant, &layer, &self.y, keep_z.then_some(&self.z))?;
        let saved = if keep_z {
            Saved::PreActivation(&self.z)
        } else {
            Saved::Output(&self.y)
        };
        let grads = DenseGrads {
            dx: Some(&self.dx),
            dw: &self.dw,
            db: Some(&self.db),
            accumulate: false,
            accumulate_dx: false,
            delta_scratch: None,
        };
        dense_backward(rec, variant, plan, &layer, saved, &self.g, &grads)
    }

    /// The same math as separate kernels, D stored in between.
    pub fn record_separate(&self, rec: &mut Recorder, variant: Option<Variant>) -> Result<()> {
        let pick = |layout, shape| -> Result<Variant> {
            match variant {
                Some(v) => Ok(v),
                None => crate::kernels::autotune::gemm_variant(rec.ctx(), layout, shape),
            }
        };
        let shape = |m, n, k| gemm::GemmShape { batch: 1, m, n, k };
        let (r, i, o) = (self.rows, self.inputs, self.outputs);
        let v_nn = pick(Layout::NN, shape(r, o, i))?;
        let v_nt = pick(Layout::NT, shape(r, i, o))?;
        let v_tn = pick(Layout::TN, shape(i, o, r))?;
        let bias = Epilogue {
            bias: Some(&self.b),
            ..Epilogue::default()
        };
        gemm::gemm_with(rec, v_nn, Layout::NN, &self.x, &self.w, &self.z, &bias)?;
        elementwise::act_forward(rec, self.act, &self.z, &self.y)?;
        elementwise::act_backward(rec, self.act, &self.z, &self.g, &self.d)?;
        gemm::gemm_with(
            rec,
            v_nt,
            Layout::NT,
            &self.d,
            &self.w,
            &self.dx,
            &Epilogue::default(),
        )?;
        gemm::gemm_with(
            rec,
            v_tn,
            Layout::TN,
            &self.x,
            &self.d,
            &self.dw,
            &Epilogue::default(),
        )?;
        reduce::column_sums(rec, &self.d, &self.db)
    }
}

/// T task heads on one shared input H [rows, inputs], each inputs → width
/// with ReLU: ONE batched task GEMM (the heads' weights side by side is
/// what hard sharing's first head layer does; this measures the deeper,
/// block-diagonal layers, where each head has its own input block).
pub struct HeadsWorkload {
    /// Batch rows.
    pub rows: usize,
    /// Input features of each head.
    pub inputs: usize,
    /// Output width of each head.
    pub widths: Vec<usize>,
    h: Tensor,
    w: Tensor,
    b: Tensor,
    y: Tensor,
    table: TaskTable,
    /// Per-task views for the one-GEMM-per-task comparison.
    per_task: Vec<(Tensor, Tensor, Tensor, Tensor)>,
}

impl HeadsWorkload {
    /// Random H [rows, T·inputs], weights and biases (fixed seeds).
    pub fn new(ctx: &GpuContext, rows: usize, inputs: usize, widths: &[usize]) -> Result<Self> {
        let t = widths.len();
        let total_w: usize = widths.iter().sum();
        let h = random(ctx, "heads.h", &[rows, t * inputs], 5)?;
        let w = random(ctx, "heads.w", &[inputs * total_w], 6)?;
        let b = random(ctx, "heads.b", &[total_w], 7)?;
        let y = Tensor::empty(ctx, "heads.y", &[rows, total_w], DType::F32)?;
        let (mut w0, mut k0) = (0, 0);
        let mut problems = Vec::new();
        let mut per_task = Vec::new();
        for (i, &k) in widths.iter().enumerate() {
            problems.push(TaskProblem {
                m: rows,
                n: k,
                k: inputs,
                a_offset: i * inputs,
                lda: t * inputs,
                b_offset: w0,
                ldb: k,
                c_offset: k0,
                ldc: total_w,
                bias_offset: k0,
            });
            per_task.push((
                random(ctx, "head.h", &[rows, inputs], 8)?,
                random(ctx, "head.w", &[inputs, k], 9)?,
                random(ctx, "head.b", &[k], 10)?,
                Tensor::empty(ctx, "head.y", &[rows, k], DType::F32)?,
            ));
            w0 += inputs * k;
            k0 += k;
        }
        let table = TaskTable::new(ctx, Layout::NN, &problems)?;
        Ok(HeadsWorkload {
            rows,
            inputs,
            widths: widths.to_vec(),
            h,
            w,
            b,
            y,
            table,
            per_task,
        })
    }

    /// FLOPs of one pass over all heads (2 × multiply-adds).
    pub fn flops(&self) -> f64 {
        self.table.flops()
    }

    /// All heads in one dispatch.
    pub fn record_batched(&self, rec: &mut Recorder, variant: Option<Variant>) -> Result<()> {
        let epi = Epilogue {
            bias: Some(&self.b),
            act: Activation::Relu,
            ..Epilogue::default()
        };
        task_gemm(
            rec,
            variant,
            &self.table,
            &self.h,
            &self.w,
            &self.y,
            &epi,
            &Default::default(),
        )
    }

    /// One GEMM dispatch per head, for comparison.
    pub fn record_per_task(&self, rec: &mut Recorder, variant: Option<Variant>) -> Result<()> {
        for (h, w, b, y) in &self.per_task {
            let epi = Epilogue {
                bias: Some(b),
                act: Activation::Relu,
                ..Epilogue::default()
            };
            gemm::gemm_fused(rec, variant, Layout::NN, h, w, y, &epi, &Default::default())?;
        }
        Ok(())
    }
}

/// Softmax cross-entropy for T tasks of `classes` classes on `rows` rows,
/// one dispatch.
pub struct LossWorkload {
    /// Batch rows.
    pub rows: usize,
    /// Tasks T.
    pub tasks: usize,
    /// Classes per task.
    pub classes: usize,
    table: LossTable,
    logits: Tensor,
    labels: Tensor,
    upstream: Tensor,
    grads: Tensor,
    losses: Tensor,
    stats: Tensor,
}

impl LossWorkload {
    /// Random logits and labels (fixed seeds), equal task weights.
    pub fn new(ctx: &GpuContext, rows: usize, tasks: usize, classes: usize) -> Result<Self> {
        let w = tasks * classes;
        let specs: Vec<LossTask> = (0..tasks)
            .map(|t| LossTask {
                kind: LossKind::SoftmaxCrossEntropy,
                reduction: crate::types::Reduction::Mean,
                rows,
                width: classes,
                logit_offset: t * classes,
                logit_ld: w,
                target_offset: t * rows,
                target_ld: 0,
                mask_offset: None,
            })
            .collect();
        let mut rng = Rng::new(11);
        let labels: Vec<u32> = (0..rows * tasks)
            .map(|_| (rng.next_u64() % classes as u64) as u32)
            .collect();
        Ok(LossWorkload {
            rows,
            tasks,
            classes,
            table: LossTable::new(ctx, &specs)?,
            logits: random(ctx, "logits", &[rows, w], 12)?,
            labels: Tensor::from_u32(ctx, "labels", &[rows * tasks], &labels)?,
            upstream: Tensor::from_f32(ctx, "upstream", &[tasks], &vec![1.0; tasks])?,
            grads: Tensor::empty(ctx, "grads", &[rows, w], DType::F32)?,
            losses: Tensor::empty(ctx, "losses", &[tasks], DType::F32)?,
            stats: Tensor::empty(ctx, "stats", &[tasks, 4], DType::U32)?,
        })
    }

    /// Bytes moved at least: logits read, gradients written, labels read.
    pub fn bytes(&self) -> f64 {
        (8 * self.rows * self.tasks * self.classes + 4 * self.rows * self.tasks) as f64
    }

    /// The loss dispatch.
    pub fn record(&self, rec: &mut Recorder) -> Result<()> {
        let inp = LossInputs {
            logits: &self.logits,
            targets: None,
            labels: Some(&self.labels),
            masks: None,
            upstream: &self.upstream,
        };
        let out = LossOutputs {
            grads: &self.grads,
            losses: &self.losses,
            stats: &self.stats,
        };
        masked_losses(rec, &self.table, &inp, &out)
    }
}

/// The MTL-MLP training workload of the autograd issue: x [rows,
/// features] → trunk (ReLU) → T heads (hidden ReLU → classes), softmax CE
/// per task, the sum of the task losses (weights 1), SGD.
pub struct MtlMlpWorkload {
    /// The built training program.
    pub program: crate::graph::Program,
    /// Batch rows.
    pub rows: usize,
    /// Input features.
    pub features: usize,
    /// Tasks T.
    pub tasks: usize,
    /// Classes per task.
    pub classes: usize,
    x: crate::graph::NodeId,
    labels: crate::graph::NodeId,
    /// 2 × the multiply-adds of forward + backward (what one step costs).
    pub flops: f64,
}

impl MtlMlpWorkload {
    /// B=256×512, trunk 512→1024→1024, 8 heads 1024→256→10.
    pub fn standard(ctx: &GpuContext) -> Result<Self> {
        Self::new(ctx, 256, 512, &[1024, 1024], 8, 256, 10)
    }

    /// B=64×128, trunk 128→256→256, 4 heads 256→64→10.
    pub fn small(ctx: &GpuContext) -> Result<Self> {
        Self::new(ctx, 64, 128, &[256, 256], 4, 64, 10)
    }

    /// Any shapes: trunk widths `trunk`, `tasks` heads of `hidden` ReLU
    /// units and `classes` outputs.
    pub fn new(
        ctx: &GpuContext,
        rows: usize,
        features: usize,
        trunk: &[usize],
        tasks: usize,
        hidden: usize,
        classes: usize,
    ) -> Result<Self> {
        use crate::graph::{Graph, Optimizer, Program, TaskBlock, TaskLoss};
        use crate::types::Sgd;
        let mut g = Graph::new(ctx);
        let x = g.input("x", &[rows, features], DType::F32);
        let mut h = x;
        let mut macs = 0usize;
        let mut width = features;
        for (i, &w) in trunk.iter().enumerate() {
            h = g.dense(&format!("trunk.{i}"), h, w, Activation::Relu)?;
            macs += rows * width * w;
            width = w;
        }
        // Layer 1 of every head: ONE GEMM against the concatenated weights.
        let h1 = g.dense("heads.0", h, tasks * hidden, Activation::Relu)?;
        macs += rows * width * tasks * hidden;
        let blocks = vec![
            TaskBlock {
                inputs: hidden,
                outputs: classes
            };
            tasks
        ];
        let logits = g.task_dense("heads.1", h1, &blocks, Activation::Identity)?;
        macs += rows * tasks * hidden * classes;
        let labels = g.input("labels", &[tasks, rows], DType::U32);
        let losses = vec![
            TaskLoss {
                kind: LossKind::SoftmaxCrossEntropy,
                reduction: crate::types::Reduction::Mean,
                width: classes,
                masked: false
            };
            tasks
        ];
        g.losses("losses", logits, &losses, Some(labels), None, None)?;
        let sgd = Optimizer::Sgd(Sgd {
            lr: 0.01,
            momentum: 0.0,
            weight_decay: 0.0,
        });
        let program = Program::build(ctx, g, sgd, 1)?;
        let w = MtlMlpWorkload {
            program,
            rows,
            features,
            tasks,
            classes,
            x,
            labels,
            // Forward 1×, backward 2× (dX and dW), minus the first layer's dX.
            flops: 2.0 * (3 * macs - rows * features * trunk[0]) as f64,
        };
        w.feed(ctx, 0)?;
        Ok(w)
    }

    /// Writes a deterministic batch.
    pub fn feed(&self, ctx: &GpuContext, seed: u64) -> Result<()> {
        let mut rng = Rng::new(seed);
        self.program
            .input(self.x)?
            .write_f32(ctx, &rng.uniform_vec(self.rows * self.features, -1.0, 1.0))?;
        let labels: Vec<u32> = (0..self.tasks * self.rows)
            .map(|_| (rng.next_u64() % self.classes as u64) as u32)
            .collect();
        self.program.input(self.labels)?.write_u32(ctx, &labels)
    }
}

/// 2 × the multiply-adds of one training step of `graph` (forward 1×,
/// backward 2×: dX and dW) over its dense and task-dense layers; the
/// small ops (stitches, losses, regularisers) are not counted.
pub fn step_flops(graph: &crate::graph::Graph) -> f64 {
    use crate::graph::Op;
    let macs: usize = graph
        .nodes()
        .iter()
        .map(|n| match &n.op {
            Op::Dense { x, .. } => n.shape[0] * graph.shape(*x)[1] * n.shape[1],
            Op::TaskDense { blocks, .. } => {
                n.shape[0] * blocks.iter().map(|b| b.inputs * b.outputs).sum::<usize>()
            }
            _ => 0,
        })
        .sum();
    6.0 * macs as f64
}

/// One training step of an MTL architecture (`arch::ModelSpec`) on the
/// MTL-MLP shapes: B=256×512 inputs, 8 classification tasks with heads
/// 256 ReLU → 10, softmax CE, mean, SGD 0.01. Hard sharing uses the
/// trunk 1024→1024; the column architectures give each task columns of
/// 1024/8 = 128 (the same total width per layer as the trunk); the
/// mixtures of experts use experts of two 128-wide layers (MMoE and
/// DSelect-k: 8 experts; CGC and PLE: 1 per task + 2 shared).
pub struct ArchWorkload {
    /// The built training program.
    pub program: crate::graph::Program,
    /// 2 × the multiply-adds of one step's forward + backward.
    pub flops: f64,
}

impl ArchWorkload {
    /// (name, sharing) of the architectures compared by the benches.
    pub fn mtl_mlp_sharings() -> Vec<(&'static str, crate::arch::Sharing)> {
        use crate::types::Regulariser;
        use crate::types::{Sharing, StitchOptions};
        let stitch = StitchOptions::default();
        // Experts of two 128-wide layers: 8 of them are the trunk's width.
        let experts = |per_task, shared| crate::types::Experts {
            widths: vec![128, 128],
            per_task,
            shared,
        };
        vec![
            (
                "hard",
                Sharing::Hard {
                    trunk: vec![1024, 1024],
                },
            ),
            (
                "cross_stitch",
                Sharing::CrossStitch {
                    columns: vec![128, 128],
                    stitch_after: vec![0, 1],
                    stitch,
                },
            ),
            (
                "sluice",
                Sharing::Sluice {
                    columns: vec![128, 128],
                    subspaces: 2,
                    orthogonality: 1e-3,
                    stitch,
                },
            ),
            (
                "soft_trace_norm",
                Sharing::Soft {
                    columns: vec![128, 128],
                    regularisers: vec![Regulariser::TraceNorm {
                        lambda: 1e-3,
                        variant: crate::types::TraceNormVariant::LastAxis,
                    }],
                },
            ),
            (
                "mmoe",
                Sharing::Mmoe {
                    experts: experts(0, 8),
                },
            ),
            (
                "cgc",
                Sharing::Cgc {
                    experts: experts(1, 2),
                },
            ),
            (
                "ple",
                Sharing::Ple {
                    experts: experts(1, 2),
                    levels: 2,
                },
            ),
            (
                "dselect_k",
                Sharing::DSelectK {
                    experts: experts(0, 8),
                    selectors: 2,
                    gamma: 1.0,
                    entropy: 1e-3,
                },
            ),
        ]
    }

    /// The MTL-MLP shapes with this sharing.
    pub fn mtl_mlp(ctx: &GpuContext, sharing: crate::arch::Sharing) -> Result<Self> {
        Self::with_shapes(ctx, sharing, 256, 512, 8, 256)
    }

    /// `rows` × `inputs` batches, `tasks` classification heads of
    /// `hidden` ReLU units and 10 classes, on `sharing`'s trunk.
    pub fn with_shapes(
        ctx: &GpuContext,
        sharing: crate::arch::Sharing,
        rows: usize,
        inputs: usize,
        tasks: usize,
        hidden: usize,
    ) -> Result<Self> {
        use crate::arch::{ModelSpec, TaskKind, TaskSpec};
        use crate::graph::{Optimizer, Program};
        use crate::types::Sgd;
        let classes = 10;
        let spec = ModelSpec {
            init: crate::types::WeightInit::Glorot,
            rows,
            inputs,
            activation: Activation::Relu,
            sharing,
            tasks: (0..tasks)
                .map(|t| {
                    TaskSpec::new(
                        &format!("task{t}"),
                        TaskKind::Classification { classes },
                        &[hidden],
                    )
                })
                .collect(),
        };
        let model = spec.build(ctx)?;
        let flops = step_flops(&model.graph);
        let sgd = Optimizer::Sgd(Sgd {
            lr: 0.01,
            momentum: 0.0,
            weight_decay: 0.0,
        });
        let program = Program::build(ctx, model.graph, sgd, 1)?;
        let mut rng = Rng::new(0);
        program
            .input(model.nodes.x)?
            .write_f32(ctx, &rng.uniform_vec(rows * spec.inputs, -1.0, 1.0))?;
        let labels: Vec<u32> = (0..tasks * rows)
            .map(|_| (rng.next_u64() % classes as u64) as u32)
            .collect();
        let label_node = model.nodes.labels.expect("classification tasks");
        program.input(label_node)?.write_u32(ctx, &labels)?;
        Ok(ArchWorkload { program, flops })
    }
}
