//! Mixture-of-experts architectures as graphs: MMoE (Ma et al. 2018),
//! CGC and PLE (Tang et al. 2020), DSelect-k gates (Hazimeh et al. 2021).
//! Layer l of every expert of a level is ONE op (a dense layer over the
//! concatenated expert weights when they share their input, else one
//! block-diagonal task layer); every gate of a level is one dense or task
//! layer plus one softmax (or DSelect-k) op; the gated combination is one
//! op. So the dispatches per step do not grow with E or T.
//!
//! Checkpoint names: `experts.{e}.{l}` (MMoE, DSelect-k),
//! `experts.{task}.{j}.{l}` and `experts.shared.{j}.{l}` (CGC),
//! `levels.{v}.experts.…` (PLE), `gates.{task}` (and `gates.shared`,
//! `levels.{v}.gates.…`).

use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::graph::{Graph, NodeId, Program, TaskBlock};
use crate::kernels::moe::{DSelect, Mixture, SharedOutput};
use crate::types::{Activation, Experts, TaskSpec};

use super::heads::{Feat, HeadInput};
use super::pieces::{self, Piece};

/// Where a model's task gates are: the node holding them ([rows, G]) and
/// their layout (DSelect-k gates are laid out as MMoE's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskGates {
    /// The gates' node (PLE: the last level's).
    pub node: NodeId,
    /// Who mixes which experts.
    pub mix: Mixture,
}

impl TaskGates {
    /// Each task's gate mass per expert of the gates' level, averaged
    /// over the rows of the current inputs: T rows of E (0 for experts outside
    /// a task's gate, e.g. other tasks' own experts in CGC / PLE). Runs
    /// the forward pass up to the gates (`Program::forward_value`).
    pub fn mass(&self, ctx: &GpuContext, program: &Program) -> Result<Vec<Vec<f32>>> {
        let g = program.forward_value(ctx, self.node)?;
        Ok(gate_mass(&g, &self.mix))
    }
}

/// Per-task gate mass per expert, averaged over rows, from gate values
/// g [rows, G] laid out as `mix`.
pub fn gate_mass(g: &[f32], mix: &Mixture) -> Vec<Vec<f32>> {
    let mut sums = GateSums::new(*mix);
    sums.add(g, g.len() / mix.gate_columns().max(1));
    sums.mass()
}

/// Running sums of task gates over rows (batches of a split, padded rows
/// left out): each task's mass per expert, its active experts (gates
/// exactly > 0: DSelect-k's smooth step reaches 0, a softmax does not)
/// and the gate's entropy −Σ g ln g (nats).
#[derive(Clone, Debug, PartialEq)]
pub struct GateSums {
    mix: Mixture,
    rows: usize,
    /// \[T\]\[E\] Σ over rows of the gate.
    mass: Vec<Vec<f64>>,
    /// \[T\] Σ over rows of the active experts.
    active: Vec<f64>,
    /// \[T\] Σ over rows of the entropy.
    entropy: Vec<f64>,
}

impl GateSums {
    /// Empty sums for gates laid out as `mix`.
    pub fn new(mix: Mixture) -> GateSums {
        GateSums {
            mix,
            rows: 0,
            mass: vec![vec![0.0; mix.experts()]; mix.tasks],
            active: vec![0.0; mix.tasks],
            entropy: vec![0.0; mix.tasks],
        }
    }

    /// Adds the first `rows` rows of gate values g [≥ rows, G] (a padded
    /// batch's real rows).
    pub fn add(&mut self, g: &[f32], rows: usize) {
        let cols = self.mix.gate_columns();
        let rows = rows.min(g.len() / cols.max(1));
        for row in g.chunks_exact(cols.max(1)).take(rows) {
            let task_columns = self.mix.tasks * self.mix.task_block();
            for (c, &g) in row.iter().enumerate().take(task_columns) {
                let (t, v) = (self.mix.output_of(c), f64::from(g));
                self.mass[t][self.mix.expert_of(c)] += v;
                if v > 0.0 {
                    self.active[t] += 1.0;
                    self.entropy[t] -= v * v.ln();
                }
            }
        }
        self.rows += rows;
    }

    /// Rows added.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// \[T\]\[E\]: each task's mean gate per expert (0 for experts outside
    /// its gate, and over zero rows).
    pub fn mass(&self) -> Vec<Vec<f32>> {
        let n = self.rows.max(1) as f64;
        self.mass
            .iter()
            .map(|m| m.iter().map(|v| (v / n) as f32).collect())
            .collect()
    }

    /// \[T\]: each task's mean count of experts with a gate > 0.
    pub fn active(&self) -> Vec<f64> {
        let n = self.rows.max(1) as f64;
        self.active.iter().map(|v| v / n).collect()
    }

    /// \[T\]: each task's mean gate entropy in nats (0: one expert; ln E:
    /// uniform over E).
    pub fn entropy(&self) -> Vec<f64> {
        let n = self.rows.max(1) as f64;
        self.entropy.iter().map(|v| v / n).collect()
    }
}

/// Names of the experts of `mix`, in gate-mass order: `0`, `1`, … for
/// MMoE and DSelect-k; `{task}.{j}` for a task's own experts and
/// `shared.{j}` for the shared ones in CGC and PLE (their checkpoint
/// names without the `experts.` prefix).
pub fn expert_names(mix: &Mixture, tasks: &[TaskSpec]) -> Vec<String> {
    if mix.task_experts == 0 {
        return (0..mix.experts()).map(|e| e.to_string()).collect();
    }
    let own = tasks
        .iter()
        .take(mix.tasks)
        .flat_map(|t| (0..mix.task_experts).map(move |j| format!("{}.{j}", t.name)));
    own.chain((0..mix.shared_experts).map(|j| format!("shared.{j}")))
        .collect()
}

fn spec_err(detail: String) -> Error {
    Error::Shape {
        op: "model",
        detail,
    }
}

/// What layer 0 of a level's experts reads.
enum ExpertInput {
    /// Every expert reads the whole node.
    Shared(NodeId),
    /// Group j's experts (`counts[j]` of them, consecutive) read column
    /// block j of the node (`width` wide each).
    Grouped {
        node: NodeId,
        width: usize,
        counts: Vec<usize>,
    },
}

/// The experts of one level: layer l of all `names.len()` experts as one
/// op named `{prefix}experts.{l}`; returns their outputs [rows, E·W].
fn experts(
    g: &mut Graph,
    prefix: &str,
    input: ExpertInput,
    widths: &[usize],
    names: &[String],
    act: Activation,
    out: &mut Vec<Piece>,
) -> Result<NodeId> {
    let e = names.len();
    let mut h = match &input {
        ExpertInput::Shared(x) | ExpertInput::Grouped { node: x, .. } => *x,
    };
    for (l, &w) in widths.iter().enumerate() {
        let op = format!("{prefix}experts.{l}");
        if l == 0 {
            match &input {
                ExpertInput::Shared(x) => {
                    let inputs = g.shape(*x)[1];
                    h = g.dense(&op, *x, e * w, act)?;
                    for (i, name) in names.iter().enumerate() {
                        let piece = format!("{name}.{l}");
                        pieces::layer(out, &piece, &op, i * w, inputs, w, e * w, i * w);
                    }
                }
                ExpertInput::Grouped {
                    node,
                    width,
                    counts,
                } => {
                    let blocks: Vec<TaskBlock> = counts
                        .iter()
                        .map(|&n| TaskBlock {
                            inputs: *width,
                            outputs: n * w,
                        })
                        .collect();
                    h = g.task_dense(&op, *node, &blocks, act)?;
                    let (mut w0, mut b0, mut i) = (0, 0, 0);
                    for &n in counts {
                        for j in 0..n {
                            let piece = format!("{}.{l}", names[i]);
                            let (wo, bo) = (w0 + j * w, b0 + j * w);
                            pieces::layer(out, &piece, &op, wo, *width, w, n * w, bo);
                            i += 1;
                        }
                        w0 += width * n * w;
                        b0 += n * w;
                    }
                }
            }
        } else {
            let fan_in = widths[l - 1];
            let blocks = vec![
                TaskBlock {
                    inputs: fan_in,
                    outputs: w,
                };
                e
            ];
            h = g.task_dense(&op, h, &blocks, act)?;
            for (i, name) in names.iter().enumerate() {
                let piece = format!("{name}.{l}");
                pieces::layer(out, &piece, &op, i * fan_in * w, fan_in, w, w, i * w);
            }
        }
    }
    Ok(h)
}

/// A dense gate layer `op` on x whose output blocks are `blocks`
/// (name, width), with a checkpoint piece per block.
fn dense_gates(
    g: &mut Graph,
    op: &str,
    x: NodeId,
    blocks: &[(String, usize)],
    out: &mut Vec<Piece>,
) -> Result<NodeId> {
    let total: usize = blocks.iter().map(|b| b.1).sum();
    let inputs = g.shape(x)[1];
    let node = g.dense(op, x, total, Activation::Identity)?;
    let mut col = 0;
    for (name, n) in blocks {
        pieces::layer(out, name, op, col, inputs, *n, total, col);
        col += n;
    }
    Ok(node)
}

fn check_experts(experts: &Experts, what: &str) -> Result<()> {
    if experts.widths.is_empty() || experts.widths.contains(&0) {
        return Err(spec_err(format!(
            "{what}: expert widths {:?} must be ≥ 1 layer of width ≥ 1",
            experts.widths
        )));
    }
    Ok(())
}

fn per_task(node: NodeId, tasks: usize, width: usize) -> HeadInput {
    HeadInput::PerTask(
        (0..tasks)
            .map(|t| Feat {
                node,
                start: t * width,
                width,
            })
            .collect(),
    )
}

/// The gate over the experts: softmax (MMoE) or DSelect-k.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GateKind {
    /// A softmax over the experts (MMoE).
    Softmax,
    /// DSelect-k: k selectors, γ, entropy λ.
    DSelect {
        /// k.
        selectors: usize,
        /// γ.
        gamma: f32,
        /// λ.
        entropy: f32,
    },
}

/// MMoE (softmax gates) or DSelect-k: E experts on x, one gate per task
/// from x, task t's head fed Σ_e g_{t,e} f_e.
pub fn mmoe(
    g: &mut Graph,
    x: NodeId,
    tasks: &[TaskSpec],
    experts_spec: &Experts,
    gate: GateKind,
    act: Activation,
    out: &mut Vec<Piece>,
) -> Result<(HeadInput, TaskGates)> {
    check_experts(experts_spec, "mmoe")?;
    let e = experts_spec.shared;
    if e == 0 || experts_spec.per_task != 0 {
        return Err(spec_err(format!(
            "mmoe / dselect_k: {} experts and {} per task: give ≥ 1 experts, none per task (that is cgc / ple)",
            e, experts_spec.per_task
        )));
    }
    let t = tasks.len();
    let width = experts_spec.widths[experts_spec.widths.len() - 1];
    let names: Vec<String> = (0..e).map(|i| format!("experts.{i}")).collect();
    let f = experts(
        g,
        "",
        ExpertInput::Shared(x),
        &experts_spec.widths,
        &names,
        act,
        out,
    )?;
    let mix = Mixture {
        tasks: t,
        task_experts: 0,
        shared_experts: e,
        shared_output: SharedOutput::No,
        width,
    };
    let gates = match gate {
        GateKind::Softmax => {
            let blocks: Vec<(String, usize)> = tasks
                .iter()
                .map(|s| (format!("gates.{}", s.name), e))
                .collect();
            let z = dense_gates(g, "gates", x, &blocks, out)?;
            g.gate_softmax("gates.softmax", z, mix)?
        }
        GateKind::DSelect {
            selectors,
            gamma,
            entropy,
        } => {
            let d = DSelect {
                tasks: t,
                experts: e,
                selectors,
                gamma,
                entropy,
            };
            d.check()?;
            let blocks: Vec<(String, usize)> = tasks
                .iter()
                .map(|s| (format!("gates.{}", s.name), d.task_logits()))
                .collect();
            let z = dense_gates(g, "gates", x, &blocks, out)?;
            g.dselect_gate("gates.dselect", z, d)?
        }
    };
    let h = g.moe_mix("mixture", f, gates, mix)?;
    Ok((per_task(h, t, width), TaskGates { node: gates, mix }))
}

/// PLE with `levels` CGC levels (1: CGC).
pub fn ple(
    g: &mut Graph,
    x: NodeId,
    tasks: &[TaskSpec],
    experts_spec: &Experts,
    levels: usize,
    act: Activation,
    out: &mut Vec<Piece>,
) -> Result<(HeadInput, TaskGates)> {
    check_experts(experts_spec, "cgc / ple")?;
    let (es, ss) = (experts_spec.per_task, experts_spec.shared);
    if es == 0 || ss == 0 || levels == 0 {
        return Err(spec_err(format!(
            "cgc / ple: {es} experts per task, {ss} shared, {levels} levels: each must be ≥ 1"
        )));
    }
    if let Some(s) = tasks.iter().find(|s| s.name == "shared") {
        return Err(spec_err(format!(
            "task '{}': cgc / ple name the shared experts and gate 'shared'; rename the task",
            s.name
        )));
    }
    let t = tasks.len();
    let width = experts_spec.widths[experts_spec.widths.len() - 1];
    let mut input = x;
    let mut last = None;
    for v in 0..levels {
        let prefix = if levels == 1 {
            String::new()
        } else {
            format!("levels.{v}.")
        };
        let inner = v + 1 < levels;
        let mix = Mixture {
            tasks: t,
            task_experts: es,
            shared_experts: ss,
            shared_output: if inner {
                SharedOutput::Yes
            } else {
                SharedOutput::No
            },
            width,
        };
        let mut names: Vec<String> = Vec::with_capacity(mix.experts());
        for s in tasks {
            names.extend((0..es).map(|j| format!("{prefix}experts.{}.{j}", s.name)));
        }
        names.extend((0..ss).map(|j| format!("{prefix}experts.shared.{j}")));
        let mut gate_blocks: Vec<(String, usize)> = tasks
            .iter()
            .map(|s| (format!("{prefix}gates.{}", s.name), es + ss))
            .collect();
        if inner {
            gate_blocks.push((format!("{prefix}gates.shared"), mix.experts()));
        }
        let gate_op = format!("{prefix}gates");
        let (f, z) = if v == 0 {
            let f = experts(
                g,
                &prefix,
                ExpertInput::Shared(input),
                &experts_spec.widths,
                &names,
                act,
                out,
            )?;
            (f, dense_gates(g, &gate_op, input, &gate_blocks, out)?)
        } else {
            // The level below's outputs: T task blocks and the shared one.
            let mut counts = vec![es; t];
            counts.push(ss);
            let grouped = ExpertInput::Grouped {
                node: input,
                width,
                counts,
            };
            let f = experts(g, &prefix, grouped, &experts_spec.widths, &names, act, out)?;
            let gate_input = if inner {
                input
            } else {
                g.slice(&format!("{prefix}gates.input"), input, 0, t * width)?
            };
            let blocks: Vec<TaskBlock> = gate_blocks
                .iter()
                .map(|b| TaskBlock {
                    inputs: width,
                    outputs: b.1,
                })
                .collect();
            let z = g.task_dense(&gate_op, gate_input, &blocks, Activation::Identity)?;
            let (mut w0, mut b0) = (0, 0);
            for (name, n) in &gate_blocks {
                pieces::layer(out, name, &gate_op, w0, width, *n, *n, b0);
                w0 += width * n;
                b0 += n;
            }
            (f, z)
        };
        let gates = g.gate_softmax(&format!("{prefix}gates.softmax"), z, mix)?;
        input = g.moe_mix(&format!("{prefix}mixture"), f, gates, mix)?;
        last = Some(TaskGates { node: gates, mix });
    }
    let gates = last.ok_or_else(|| spec_err("ple: no level was built".into()))?;
    Ok((per_task(input, t, width), gates))
}
