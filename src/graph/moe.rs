//! The mixture-of-experts ops' constructors (`Graph::gate_softmax`,
//! `Graph::moe_mix`, `Graph::dselect_gate`) with their shape checks, and
//! `Program::forward_value`, which reads a node's value right after it
//! is computed (the gates, for the per-expert gate mass).

use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::graph::builder::Graph;
use crate::graph::ops::{NodeId, Op};
use crate::graph::program::Program;
use crate::kernels::moe::{DSelect, Mixture};

fn shape_err(detail: String) -> Error {
    Error::Shape {
        op: "graph",
        detail,
    }
}

impl Graph {
    /// The gates of `mix` from their logits x ([rows, G]): a softmax over
    /// each output's block, every block in one dispatch.
    pub fn gate_softmax(&mut self, name: &str, x: NodeId, mix: Mixture) -> Result<NodeId> {
        mix.check()?;
        let (rows, cols) = self.matrix(x, "gate logits")?;
        if cols != mix.gate_columns() {
            return Err(shape_err(format!(
                "{name}: {cols} gate logits, but {mix:?} has {} gate columns",
                mix.gate_columns()
            )));
        }
        Ok(self.push(name, Op::GateSoftmax { x, mix }, vec![rows, cols]))
    }

    /// The gated combination of `experts` ([rows, E·W]) by `gates`
    /// ([rows, G]): [rows, O·W], output o at columns o·W.
    pub fn moe_mix(
        &mut self,
        name: &str,
        experts: NodeId,
        gates: NodeId,
        mix: Mixture,
    ) -> Result<NodeId> {
        mix.check()?;
        let (rows, f) = self.matrix(experts, "experts")?;
        let (g_rows, g) = self.matrix(gates, "gates")?;
        if g_rows != rows || f != mix.experts() * mix.width || g != mix.gate_columns() {
            return Err(shape_err(format!(
                "{name}: experts [{rows}, {f}] and gates [{g_rows}, {g}] do not fit {mix:?} \
                 (experts [rows, {}], gates [rows, {}])",
                mix.experts() * mix.width,
                mix.gate_columns()
            )));
        }
        let out = mix.outputs() * mix.width;
        Ok(self.push(
            name,
            Op::MoeMix {
                experts,
                gates,
                mix,
            },
            vec![rows, out],
        ))
    }

    /// DSelect-k gates [rows, T·E] from selector logits [rows, T·k·(m + 1)]
    /// (a dense layer's output).
    pub fn dselect_gate(&mut self, name: &str, logits: NodeId, gate: DSelect) -> Result<NodeId> {
        gate.check()?;
        let (rows, cols) = self.matrix(logits, "selector logits")?;
        if cols != gate.tasks * gate.task_logits() {
            return Err(shape_err(format!(
                "{name}: {cols} selector logits, but {gate:?} needs {}",
                gate.tasks * gate.task_logits()
            )));
        }
        let out = gate.tasks * gate.experts;
        Ok(self.push(name, Op::DSelectGate { logits, gate }, vec![rows, out]))
    }
}

impl Program {
    /// Runs the forward pass up to and including `node` on the current
    /// inputs and reads its value (row-major). Nothing is updated; later
    /// nodes are not run, so the value is read before any buffer reuse.
    pub fn forward_value(&self, ctx: &GpuContext, node: NodeId) -> Result<Vec<f32>> {
        let Some(n) = self.graph.nodes.get(node.0) else {
            return Err(Error::InvalidInput {
                op: "Program::forward_value",
                detail: format!("node {} is not in the graph", node.0),
            });
        };
        if matches!(n.op, Op::Losses { .. }) {
            return Err(Error::InvalidInput {
                op: "Program::forward_value",
                detail: "the losses node: use Program::step or predict".into(),
            });
        }
        let mut rec = ctx.recorder("forward value");
        self.record_forward_through(&mut rec, node.0 + 1)?;
        let out = rec.read(self.val(node));
        rec.submit()?;
        out.wait_f32(ctx)
    }
}
