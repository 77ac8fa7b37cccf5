//! The forward pass: one `match` arm per op, in node order, each writing
//! the node's value (and the Z a GELU layer keeps for its backward); the
//! losses node runs the fused loss kernel, which also writes the logits'
//! gradient scaled by the task weights.

use crate::error::Result;
use crate::gpu::Recorder;
use crate::graph::buffers::{NodeState, OpBuffers};
use crate::graph::ops::Op;
use crate::graph::program::Program;
use crate::kernels::dense::{dense_forward, Dense};
use crate::kernels::gemm::{Epilogue, Fusion};
use crate::kernels::loss::{masked_losses, LossInputs, LossOutputs};
use crate::kernels::task_gemm::task_gemm;
use crate::kernels::{block, cross_stitch, elementwise, fused_mlp, layer_stitch, moe};

impl Program {
    /// Records every node's forward.
    pub(crate) fn record_forward(&self, rec: &mut Recorder) -> Result<()> {
        self.record_forward_through(rec, self.graph.nodes.len())
    }

    /// Records the forward of the first `end` nodes.
    pub(crate) fn record_forward_through(&self, rec: &mut Recorder, end: usize) -> Result<()> {
        self.record_forward_range(rec, 0..end)
    }

    /// Records the forward of nodes `range` (those before it recorded
    /// already, in this recorder or an earlier submit).
    pub(crate) fn record_forward_range(
        &self,
        rec: &mut Recorder,
        range: std::ops::Range<usize>,
    ) -> Result<()> {
        let (start, end) = (range.start, range.end);
        for (i, node) in self.graph.nodes.iter().enumerate().take(end).skip(start) {
            let state = &self.nodes[i];
            let out = &state.value;
            let z = kept_z(state);
            match &node.op {
                Op::Input { .. } => {}
                Op::Dense { x, w, b, act } => {
                    let layer = Dense {
                        x: self.val(*x),
                        w: self.arena.value(*w),
                        bias: b.map(|b| self.arena.value(b)),
                        act: *act,
                    };
                    dense_forward(rec, self.variant, &layer, out, z)?;
                }
                Op::TaskDense { x, w, b, act, .. } => {
                    let epi = Epilogue {
                        bias: b.map(|b| self.arena.value(b)),
                        act: *act,
                        z_out: z,
                        ..Epilogue::default()
                    };
                    let tables = self.task_tables(i)?;
                    let (x, w) = (self.val(*x), self.arena.value(*w));
                    let fusion = Fusion::default();
                    task_gemm(rec, self.variant, &tables.forward, x, w, out, &epi, &fusion)?;
                }
                Op::FusedTrunk { x, .. } => {
                    let OpBuffers::FusedTrunk { spec, acts, buffer } = &state.op else {
                        return Err(self.missing(i, "trunk buffers"));
                    };
                    let params = self.arena.values.buffer(*buffer);
                    fused_mlp::trunk_forward(rec, spec, self.val(*x), params, acts, z)?;
                }
                Op::Add { a, b } => elementwise::add(rec, self.val(*a), self.val(*b), out)?,
                Op::CrossStitch { x, alpha, unit } => {
                    let a = self.arena.value(*alpha);
                    cross_stitch::stitch_mix(rec, unit, self.val(*x), a, out, false, false)?;
                }
                Op::LayerStitch { h, beta, unit } => {
                    let b = self.arena.value(*beta);
                    layer_stitch::layer_stitch_mix(rec, unit, self.val(*h), b, out, false)?;
                }
                Op::GateSoftmax { x, mix } => moe::gate_softmax(rec, mix, self.val(*x), out)?,
                Op::MoeMix {
                    experts,
                    gates,
                    mix,
                } => moe::moe_mix(rec, mix, self.val(*experts), self.val(*gates), out)?,
                Op::DSelectGate { logits, gate } => {
                    moe::dselect_gate(rec, gate, self.val(*logits), out)?
                }
                Op::Scale { x, alpha } => elementwise::scale(rec, self.val(*x), *alpha, out)?,
                Op::GradReverse { x } => elementwise::copy(rec, self.val(*x), out)?,
                Op::Concat { parts } => {
                    let mut col = 0;
                    for p in parts {
                        let cols = self.graph.nodes[p.0].shape[1];
                        block::copy_block(rec, self.val(*p), 0, out, col, cols, 1.0, false)?;
                        col += cols;
                    }
                }
                Op::Slice { x, start, cols } => {
                    block::copy_block(rec, self.val(*x), *start, out, 0, *cols, 1.0, false)?;
                }
                Op::Losses { .. } => self.record_losses(rec)?,
            }
        }
        Ok(())
    }

    /// The fused loss kernel: per-task losses, and the logits' gradient
    /// scaled by the task-weight buffer.
    pub(crate) fn record_losses(&self, rec: &mut Recorder) -> Result<()> {
        let loss = &self.loss;
        let Some(grads) = self.grad(loss.logits) else {
            return Err(self.missing(loss.logits.0, "gradient (the logits take one)"));
        };
        let inp = LossInputs {
            logits: self.val(loss.logits),
            targets: loss.targets.map(|n| self.val(n)),
            labels: loss.labels.map(|n| self.val(n)),
            masks: loss.masks.map(|n| self.val(n)),
            upstream: &loss.upstream,
        };
        let out = LossOutputs {
            grads,
            losses: &loss.losses,
            stats: &loss.stats,
        };
        masked_losses(rec, &loss.table, &inp, &out)
    }
}

/// The Z a node's forward writes for its backward, if it keeps one.
fn kept_z(state: &NodeState) -> Option<&crate::gpu::Tensor> {
    state.backward.as_ref().and_then(|b| b.z.as_ref())
}
