//! The backward pass: nodes in reverse order, one `match` arm per op.
//! Each arm reads the node's gradient G and writes its inputs' gradients
//! (overwriting when it is the first writer in backward order, else
//! accumulating: `Backward::accumulate_inputs`) and its parameters'
//! gradients (`Backward::accumulate_params` for shared weights).

use std::ops::Range;

use crate::error::Result;
use crate::gpu::{Recorder, Tensor};
use crate::graph::balancing::TaskSplit;
use crate::graph::buffers::OpBuffers;
use crate::graph::ops::{NodeId, Op};
use crate::graph::params::ParamId;
use crate::graph::program::Program;
use crate::kernels::dense::{dense_backward, BackwardPlan, Dense, DenseGrads};
use crate::kernels::fused_mlp::{self, TrunkGrads};
use crate::kernels::gemm::{Epilogue, Fusion, Operand, Prologue, Saved};
use crate::kernels::task_gemm::task_gemm;
use crate::kernels::{block, cross_stitch, elementwise, layer_stitch, moe, reduce};
use crate::types::Activation;

/// Which input gradients a partial backward pass writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InputGrads {
    /// Every input's (the whole pass, and the heads' pass whose dH the
    /// caller reads).
    All,
    /// Only those of nodes inside the range: a dense layer whose input
    /// comes from before the range skips its dX (the Gram phase's
    /// per-task passes want parameter gradients only).
    InsideRange,
}

impl Program {
    /// The backward pass of the nodes in `range`, last first.
    pub(crate) fn record_backward(&self, rec: &mut Recorder, range: Range<usize>) -> Result<()> {
        self.record_backward_with(rec, range, InputGrads::All)
    }

    /// `record_backward`, choosing which input gradients are written.
    pub(crate) fn record_backward_with(
        &self,
        rec: &mut Recorder,
        range: Range<usize>,
        inputs: InputGrads,
    ) -> Result<()> {
        let first = range.start;
        let wanted = |x: NodeId| inputs == InputGrads::All || x.0 >= first;
        for i in range.rev() {
            let state = &self.nodes[i];
            let Some(bw) = &state.backward else {
                continue;
            };
            let (g, acc, acc_params) = (&bw.grad, &bw.accumulate_inputs, bw.accumulate_params);
            match &self.graph.nodes[i].op {
                Op::Dense { x, w, b, act } => {
                    let layer = Dense {
                        x: self.val(*x),
                        w: self.arena.value(*w),
                        bias: b.map(|b| self.arena.value(b)),
                        act: *act,
                    };
                    let grads = DenseGrads {
                        dx: self.grad(*x).filter(|_| wanted(*x)),
                        dw: self.arena.grad(*w),
                        db: b.map(|b| self.arena.grad(b)),
                        accumulate: acc_params,
                        accumulate_dx: acc[0],
                        delta_scratch: bw.delta.as_ref(),
                    };
                    let saved = self.saved(i, *act)?;
                    let plan = Some(self.dense_plan);
                    dense_backward(rec, self.variant, plan, &layer, saved, g, &grads)?;
                    if let Some(split) = self.task_split.as_ref().filter(|s| s.layer.0 == i) {
                        self.record_task_split(rec, split, i, *act, g, *w)?;
                    }
                }
                Op::TaskDense { x, w, b, act, .. } => {
                    let tables = self.task_tables(i)?;
                    let saved = match act {
                        Activation::Identity => None,
                        _ => Some(self.saved(i, *act)?),
                    };
                    let prologue = |operand| {
                        saved.map(|saved| Prologue {
                            operand,
                            saved,
                            act: *act,
                        })
                    };
                    if let Some(dx) = self.grad(*x) {
                        let fusion = Fusion {
                            prologue: prologue(Operand::A),
                            bias_grad: None,
                        };
                        let w = self.arena.value(*w);
                        if let Some((per_task, sum)) = &tables.dx_per_task {
                            // dX = Σ_t dX_t: a fixed-order column sum.
                            let e = Epilogue::default();
                            task_gemm(rec, self.variant, &tables.dx, g, w, per_task, &e, &fusion)?;
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
                            task_gemm(rec, self.variant, &tables.dx, g, w, dx, &epi, &fusion)?;
                        }
                    }
                    let epi = Epilogue {
                        beta: acc_params.then_some(1.0),
                        ..Epilogue::default()
                    };
                    let fusion = Fusion {
                        prologue: prologue(Operand::B),
                        bias_grad: b.map(|b| self.arena.grad(b)),
                    };
                    let (x, dw) = (self.val(*x), self.arena.grad(*w));
                    task_gemm(rec, self.variant, &tables.dw, x, g, dw, &epi, &fusion)?;
                }
                Op::FusedTrunk { x, .. } => {
                    let (OpBuffers::FusedTrunk { spec, acts, buffer }, Some(deltas)) =
                        (&state.op, &bw.delta)
                    else {
                        return Err(self.missing(i, "trunk buffers and deltas"));
                    };
                    // The buffer holding the trunk's parameters; the spec's
                    // offsets are local to it.
                    let grads = TrunkGrads {
                        dx: self.grad(*x),
                        grads: self.arena.grads.buffer(*buffer),
                        deltas,
                        accumulate: acc_params,
                        accumulate_dx: acc[0],
                    };
                    let (params, zs) = (self.arena.values.buffer(*buffer), bw.z.as_ref());
                    let x = self.val(*x);
                    fused_mlp::trunk_backward(rec, spec, x, params, acts, zs, g, &grads)?;
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
                    cross_stitch::stitch_alpha_grad(rec, unit, self.val(*x), g, da, acc_params)?;
                }
                Op::LayerStitch { h, beta, unit } => {
                    // dh_tk = β_tk dz_t; dβ_tk = ⟨dz_t, h_tk⟩.
                    if let Some(dh) = self.grad(*h) {
                        let b = self.arena.value(*beta);
                        layer_stitch::layer_stitch_spread(rec, unit, g, b, dh, acc[0])?;
                    }
                    let db = self.arena.grad(*beta);
                    let h = self.val(*h);
                    layer_stitch::layer_stitch_beta_grad(rec, unit, h, g, db, acc_params)?;
                }
                Op::GateSoftmax { x, mix } => {
                    if let Some(dx) = self.grad(*x) {
                        let y = &state.value;
                        moe::gate_softmax_backward(rec, mix, y, g, dx, acc[0])?;
                    }
                }
                Op::MoeMix {
                    experts,
                    gates,
                    mix,
                } => {
                    let (Some(df), Some(dg)) = (self.grad(*experts), self.grad(*gates)) else {
                        return Err(self.missing(i, "gradients of its experts and gates"));
                    };
                    let grads = moe::MixGrads {
                        experts: df,
                        gates: dg,
                        accumulate_experts: acc[0],
                        accumulate_gates: acc[1],
                    };
                    let (f, gv) = (self.val(*experts), self.val(*gates));
                    moe::moe_mix_backward(rec, mix, f, gv, g, &grads)?;
                }
                Op::DSelectGate { logits, gate } => {
                    if let Some(dl) = self.grad(*logits) {
                        let z = self.val(*logits);
                        moe::dselect_gate_backward(rec, gate, z, g, dl, acc[0])?;
                    }
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

    /// What layer `i`'s backward reads of its forward: Z when it kept
    /// one, else its output Y (activations whose derivative Y gives).
    fn saved(&self, i: usize, act: Activation) -> Result<Saved<'_>> {
        let state = &self.nodes[i];
        match state.backward.as_ref().and_then(|b| b.z.as_ref()) {
            Some(z) => Ok(Saved::PreActivation(z)),
            None if act.grad_from_output() => Ok(Saved::Output(&state.value)),
            None => Err(self.missing(i, "Z (its activation's derivative needs it)")),
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
        let stored = self.nodes[i]
            .backward
            .as_ref()
            .and_then(|b| b.delta.as_ref())
            .filter(|_| self.dense_plan == BackwardPlan::StoreDelta);
        let (a, prologue) = match (stored, act) {
            (_, Activation::Identity) => (g, None),
            (Some(d), _) => (d, None),
            (None, _) => (
                g,
                Some(Prologue {
                    operand: Operand::A,
                    saved: self.saved(i, act)?,
                    act,
                }),
            ),
        };
        let fusion = Fusion {
            prologue,
            bias_grad: None,
        };
        let epi = Epilogue::default();
        let w = self.arena.value(w);
        task_gemm(
            rec,
            self.variant,
            &split.table,
            a,
            w,
            &split.grads,
            &epi,
            &fusion,
        )
    }
}
