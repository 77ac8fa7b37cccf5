//! GPU-free analysis of a built graph, everything `Program::build` decides
//! before it allocates: which nodes receive a gradient (walking back from
//! the losses), which gradient writes overwrite and which accumulate
//! (several consumers of one node, parameters shared between layers), and
//! the lifetime of every intermediate on the step's schedule, which
//! `plan` turns into shared buffers. Pure functions over the graph.
//!
//! The schedule: forward visits node i at position i, backward at
//! 2n − 1 − i (last node first), so one step has 2n positions.

use crate::error::{Error, Result};
use crate::graph::builder::Graph;
use crate::graph::ops::{Node, NodeId, Op, TrunkLayer};
use crate::graph::plan::Interval;
use crate::types::Activation;

/// What an intermediate holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BufferKind {
    /// A node's value (a fused trunk's: every layer's output).
    Value,
    /// A node's gradient.
    Grad,
    /// The pre-activations Z a layer keeps for its backward (GELU).
    Z,
    /// The backward's D = G ⊙ act'(Z) between its dispatches.
    Delta,
}

/// One intermediate of a step: whose, what, and when it lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Intermediate {
    /// What it holds.
    pub kind: BufferKind,
    /// The node it belongs to.
    pub node: NodeId,
    /// Its lifetime and size.
    pub interval: Interval,
}

/// Whether the dense layers' backward keeps D in a buffer of its own
/// (`BackwardPlan::StoreDelta`) or recomputes it in a GEMM prologue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DenseDelta {
    /// D gets a planned buffer.
    Stored,
    /// No buffer: the GEMMs recompute it.
    Recomputed,
}

/// Who receives gradients and how each write lands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GradientFlow {
    /// The terminal losses node.
    pub loss_node: NodeId,
    /// Per node: it receives a gradient (not inputs, not the losses).
    pub has_grad: Vec<bool>,
    /// Per node and input slot: its contribution to that input's gradient
    /// accumulates (another consumer wrote first in backward order).
    pub accumulate_inputs: Vec<Vec<bool>>,
    /// Per node: its parameters' gradients accumulate (a layer later in
    /// backward order uses the same parameters and wrote first).
    pub accumulate_params: Vec<bool>,
    /// Per node: the schedule position of the first write to its gradient.
    pub first_grad_write: Vec<Option<usize>>,
}

/// Schedule position of node `i`'s forward.
pub(crate) fn forward_position(i: usize) -> usize {
    i
}

/// Schedule position of node `i`'s backward in a graph of `n` nodes.
pub(crate) fn backward_position(n: usize, i: usize) -> usize {
    2 * n - 1 - i
}

/// The losses node, which must be the graph's last.
pub(crate) fn loss_node(graph: &Graph) -> Result<NodeId> {
    let n = graph.nodes.len();
    match graph
        .nodes
        .iter()
        .rposition(|x| matches!(x.op, Op::Losses { .. }))
    {
        Some(i) if i + 1 == n => Ok(NodeId(i)),
        _ => Err(Error::Shape {
            op: "graph",
            detail: "the graph must end with its losses node".into(),
        }),
    }
}

impl GradientFlow {
    /// Analyses `graph` (which must end with its losses node).
    pub(crate) fn of(graph: &Graph) -> Result<GradientFlow> {
        let loss = loss_node(graph)?;
        let has_grad = receives_gradient(graph, loss);
        let writes = gradient_writes(graph, loss, &has_grad);
        let mut accumulate_inputs: Vec<Vec<bool>> = graph
            .nodes
            .iter()
            .map(|x| vec![false; x.op.inputs().len()])
            .collect();
        for w in &writes {
            for &(_, consumer, slot) in w.iter().skip(1) {
                accumulate_inputs[consumer][slot] = true;
            }
        }
        Ok(GradientFlow {
            loss_node: loss,
            accumulate_params: parameter_accumulation(graph, &has_grad)?,
            first_grad_write: writes.iter().map(|w| w.first().map(|w| w.0)).collect(),
            has_grad,
            accumulate_inputs,
        })
    }

    /// Every intermediate of one step with its lifetime: values (inputs
    /// and the losses have buffers of their own), and for nodes that take
    /// a gradient their gradient, kept Z and D.
    pub(crate) fn intermediates(&self, graph: &Graph, delta: DenseDelta) -> Vec<Intermediate> {
        let n = graph.nodes.len();
        let (fwd, bwd) = (forward_position, |i| backward_position(n, i));
        let mut out = Vec::new();
        for (i, node) in graph.nodes.iter().enumerate() {
            if matches!(node.op, Op::Input { .. }) || i == self.loss_node.0 {
                continue;
            }
            let id = NodeId(i);
            let len = value_len(node);
            let mut last = fwd(i);
            for (c, consumer) in graph.nodes.iter().enumerate() {
                if !consumer.op.inputs().contains(&id) {
                    continue;
                }
                last = last.max(fwd(c));
                if self.has_grad[c] && consumer.op.backward_reads_input() {
                    last = last.max(bwd(c));
                }
            }
            if self.has_grad[i] && backward_reads_output(&node.op) {
                last = last.max(bwd(i));
            }
            let mut push = |kind, def, last_use, len| {
                out.push(Intermediate {
                    kind,
                    node: id,
                    interval: Interval { def, last_use, len },
                })
            };
            push(BufferKind::Value, fwd(i), last, len);
            if !self.has_grad[i] {
                continue;
            }
            let def = self.first_grad_write[i].unwrap_or(bwd(i));
            push(BufferKind::Grad, def, bwd(i), node.shape.iter().product());
            let z = z_len(node);
            if z > 0 {
                push(BufferKind::Z, fwd(i), bwd(i), z);
            }
            // Fused trunks always store every D_l between their two
            // backward dispatches.
            let stores_delta = match node.op {
                Op::FusedTrunk { .. } => true,
                Op::Dense { act, .. } => act != Activation::Identity && delta == DenseDelta::Stored,
                _ => false,
            };
            if stores_delta {
                push(BufferKind::Delta, bwd(i), bwd(i), len);
            }
        }
        out
    }
}

/// Gradient-based balancing runs part of the backward pass (T times in
/// the parameter spaces) and the update runs it again: no buffer may be
/// reused within the step, so every lifetime spans all of it.
pub(crate) fn keep_all_live(intervals: &mut [Interval]) {
    let end = intervals.iter().map(|i| i.last_use).max().unwrap_or(0);
    for i in intervals {
        i.def = 0;
        i.last_use = end;
    }
}

/// Which nodes receive a gradient: walk back from the losses through every
/// op's inputs (inputs and the losses node itself take none).
pub(crate) fn receives_gradient(graph: &Graph, loss: NodeId) -> Vec<bool> {
    let n = graph.nodes.len();
    let mut has_grad = vec![false; n];
    for i in (0..n).rev() {
        if i != loss.0 && !has_grad[i] {
            continue;
        }
        for x in graph.nodes[i].op.inputs() {
            if !matches!(graph.nodes[x.0].op, Op::Input { .. }) {
                has_grad[x.0] = true;
            }
        }
    }
    has_grad[loss.0] = false;
    has_grad
}

/// Per node: the writes to its gradient as (schedule position, consumer,
/// input slot), in schedule order. The losses write the logits' gradient
/// in the forward pass; every other consumer in its backward.
fn gradient_writes(
    graph: &Graph,
    loss: NodeId,
    has_grad: &[bool],
) -> Vec<Vec<(usize, usize, usize)>> {
    let n = graph.nodes.len();
    let mut writes: Vec<Vec<(usize, usize, usize)>> = vec![Vec::new(); n];
    for (c, node) in graph.nodes.iter().enumerate() {
        let pos = if c == loss.0 {
            forward_position(c)
        } else if has_grad[c] {
            backward_position(n, c)
        } else {
            continue;
        };
        for (slot, x) in node.op.inputs().into_iter().enumerate() {
            if has_grad[x.0] {
                writes[x.0].push((pos, c, slot));
            }
        }
    }
    for w in &mut writes {
        w.sort();
    }
    writes
}

/// Per node: whether its parameters' gradients accumulate. The first use
/// in backward order writes, later uses add; a layer sharing its weight
/// but not its bias (or the reverse) is refused (one flag per layer).
pub(crate) fn parameter_accumulation(graph: &Graph, has_grad: &[bool]) -> Result<Vec<bool>> {
    let n = graph.nodes.len();
    let mut accumulate = vec![false; n];
    let mut seen = std::collections::HashSet::new();
    for i in (0..n).rev() {
        if !has_grad[i] {
            continue;
        }
        let ps = graph.nodes[i].op.params();
        let used: Vec<bool> = ps.iter().map(|p| seen.contains(p)).collect();
        if !used.is_empty() && used.iter().any(|&u| u) != used.iter().all(|&u| u) {
            return Err(Error::Shape {
                op: "graph",
                detail: format!(
                    "'{}' shares its weight but not its bias (or the reverse); share both or neither",
                    graph.nodes[i].name
                ),
            });
        }
        accumulate[i] = used.first().copied().unwrap_or(false);
        seen.extend(ps);
    }
    Ok(accumulate)
}

/// Whether the op's backward reads its own output Y (activations whose
/// derivative comes from Y; a fused trunk reads every layer's Y).
fn backward_reads_output(op: &Op) -> bool {
    match op {
        Op::Dense { act, .. } | Op::TaskDense { act, .. } => {
            *act != Activation::Identity && act.grad_from_output()
        }
        Op::FusedTrunk { .. } | Op::GateSoftmax { .. } => true,
        _ => false,
    }
}

/// Elements of a node's value buffer: its shape, or for a fused trunk
/// every layer's output [rows, out_l] one after another (the node's value
/// is the first block).
pub(crate) fn value_len(node: &Node) -> usize {
    match &node.op {
        Op::FusedTrunk { layers, .. } => trunk_len(node.shape[0], layers, |_| true),
        _ => node.shape.iter().product(),
    }
}

/// Elements of the Z a node keeps for its backward (layers whose
/// activation derivative needs the pre-activation: GELU).
pub(crate) fn z_len(node: &Node) -> usize {
    match &node.op {
        Op::Dense { act, .. } | Op::TaskDense { act, .. } if !act.grad_from_output() => {
            node.shape.iter().product()
        }
        Op::FusedTrunk { layers, .. } => {
            trunk_len(node.shape[0], layers, |l| l.act == Activation::Gelu)
        }
        _ => 0,
    }
}

/// rows · Σ outputs of the trunk layers `keep` selects (the layout of
/// `fused_mlp::TrunkSpec::acts_len` / `zs_len`).
fn trunk_len(rows: usize, layers: &[TrunkLayer], keep: impl Fn(&TrunkLayer) -> bool) -> usize {
    rows * layers
        .iter()
        .filter(|l| keep(l))
        .map(|l| l.outputs)
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::DType;
    use crate::graph::ops::TaskLoss;
    use crate::graph::plan;
    use crate::types::{LossKind, Reduction};

    fn mse(width: usize) -> [TaskLoss; 1] {
        [TaskLoss {
            kind: LossKind::MeanSquaredError,
            reduction: Reduction::Mean,
            width,
            masked: false,
        }]
    }

    /// x → h → (a, b) → a + b → out → MSE: h has two consumers.
    /// Nodes: x 0, h 1, a 2, b 3, s 4, out 5, targets 6, losses 7.
    fn diamond(act: Activation) -> Graph {
        let mut g = Graph::with_param_alignment(1);
        let x = g.input("x", &[5, 4], DType::F32);
        let h = g.dense("h", x, 6, act).unwrap();
        let a = g.dense("a", h, 6, act).unwrap();
        let b = g.dense("b", h, 6, Activation::Identity).unwrap();
        let s = g.add("s", a, b).unwrap();
        let out = g.dense("out", s, 2, Activation::Identity).unwrap();
        let t = g.input("targets", &[5, 2], DType::F32);
        g.losses("losses", out, &mse(2), None, Some(t), None)
            .unwrap();
        g
    }

    #[test]
    fn gradients_flow_back_from_the_losses_to_every_non_input() {
        let g = diamond(Activation::Tanh);
        let f = GradientFlow::of(&g).unwrap();
        assert_eq!(f.loss_node, NodeId(7));
        assert_eq!(
            f.has_grad,
            [false, true, true, true, true, true, false, false]
        );
        // A node nothing downstream of the losses reads takes no gradient.
        let mut g = Graph::with_param_alignment(1);
        let x = g.input("x", &[3, 2], DType::F32);
        let dead = g.dense("dead", x, 2, Activation::Relu).unwrap();
        let out = g.dense("out", x, 2, Activation::Identity).unwrap();
        let t = g.input("t", &[3, 2], DType::F32);
        g.losses("l", out, &mse(2), None, Some(t), None).unwrap();
        let f = GradientFlow::of(&g).unwrap();
        assert!(!f.has_grad[dead.0] && f.has_grad[out.0]);
    }

    #[test]
    fn the_first_writer_in_backward_order_overwrites_and_later_ones_accumulate() {
        let g = diamond(Activation::Tanh);
        let f = GradientFlow::of(&g).unwrap();
        // dh: b (node 3) runs its backward before a (node 2), so b writes.
        assert_eq!(f.accumulate_inputs[3], [false]);
        assert_eq!(f.accumulate_inputs[2], [true]);
        // Single consumers overwrite; the losses write dout first.
        assert_eq!(f.accumulate_inputs[4], [false, false]);
        assert_eq!(f.accumulate_inputs[5], [false]);
        assert_eq!(f.first_grad_write[5], Some(forward_position(7)));
        assert_eq!(f.first_grad_write[1], Some(backward_position(8, 3)));
        assert!(f.accumulate_params.iter().all(|&a| !a));
    }

    #[test]
    fn shared_parameters_accumulate_in_the_layer_that_runs_backward_last() {
        let mut g = Graph::with_param_alignment(1);
        let x = g.input("x", &[3, 4], DType::F32);
        let first = g.dense("first", x, 4, Activation::Tanh).unwrap();
        let Op::Dense { w, b, .. } = g.nodes[first.0].op else {
            unreachable!()
        };
        let again = g
            .dense_with("again", first, w, b, Activation::Tanh)
            .unwrap();
        let t = g.input("t", &[3, 4], DType::F32);
        g.losses("l", again, &mse(4), None, Some(t), None).unwrap();
        let f = GradientFlow::of(&g).unwrap();
        assert!(!f.accumulate_params[again.0]);
        assert!(f.accumulate_params[first.0]);
        // Sharing the weight without the bias is refused.
        let mut g = Graph::with_param_alignment(1);
        let x = g.input("x", &[3, 4], DType::F32);
        let first = g.dense("first", x, 4, Activation::Tanh).unwrap();
        let Op::Dense { w, .. } = g.nodes[first.0].op else {
            unreachable!()
        };
        let again = g
            .dense_with("again", first, w, None, Activation::Tanh)
            .unwrap();
        let t = g.input("t", &[3, 4], DType::F32);
        g.losses("l", again, &mse(4), None, Some(t), None).unwrap();
        let e = GradientFlow::of(&g).unwrap_err();
        assert!(e.to_string().contains("shares its weight"), "{e}");
    }

    #[test]
    fn a_graph_not_ending_with_its_losses_is_refused() {
        let mut g = diamond(Activation::Relu);
        g.input("late", &[1, 1], DType::F32);
        let e = GradientFlow::of(&g).unwrap_err();
        assert!(e.to_string().contains("end with its losses"), "{e}");
    }

    #[test]
    fn lifetimes_cover_every_read_of_each_intermediate() {
        let n = 8;
        let bwd = |i| backward_position(n, i);
        let find = |ts: &[Intermediate], kind, node| {
            ts.iter()
                .find(|t| t.kind == kind && t.node == NodeId(node))
                .map(|t| t.interval)
        };
        // Tanh: the backward reads each layer's own output.
        let g = diamond(Activation::Tanh);
        let f = GradientFlow::of(&g).unwrap();
        let ts = f.intermediates(&g, DenseDelta::Stored);
        // h: written at 1, read by a's and b's dW in backward (a's last).
        let h = find(&ts, BufferKind::Value, 1).unwrap();
        assert_eq!((h.def, h.last_use, h.len), (1, bwd(1), 30));
        // s: read by out's dW at bwd(5); an Add's output is not reread.
        let s = find(&ts, BufferKind::Value, 4).unwrap();
        assert_eq!((s.def, s.last_use), (4, bwd(5)));
        // dh: first written by b's backward, last read by h's.
        let dh = find(&ts, BufferKind::Grad, 1).unwrap();
        assert_eq!((dh.def, dh.last_use), (bwd(3), bwd(1)));
        // D for tanh layers only when stored; none for identity layers;
        // tanh keeps no Z.
        assert!(find(&ts, BufferKind::Delta, 2).is_some());
        assert!(find(&ts, BufferKind::Delta, 3).is_none());
        assert!(find(&ts, BufferKind::Z, 2).is_none());
        let ts = f.intermediates(&g, DenseDelta::Recomputed);
        assert!(find(&ts, BufferKind::Delta, 2).is_none());
        // GELU keeps Z from its forward to its backward; inputs and the
        // losses are not planned.
        let g = diamond(Activation::Gelu);
        let f = GradientFlow::of(&g).unwrap();
        let ts = f.intermediates(&g, DenseDelta::Stored);
        let z = find(&ts, BufferKind::Z, 2).unwrap();
        assert_eq!((z.def, z.last_use, z.len), (2, bwd(2), 30));
        assert!(ts.iter().all(|t| ![0, 6, 7].contains(&t.node.0)));
    }

    #[test]
    fn planned_buffers_never_hold_two_live_intermediates() {
        for act in [Activation::Tanh, Activation::Gelu, Activation::Relu] {
            let g = diamond(act);
            let f = GradientFlow::of(&g).unwrap();
            let ts = f.intermediates(&g, DenseDelta::Stored);
            let mut iv: Vec<Interval> = ts.iter().map(|t| t.interval).collect();
            let p = plan::plan(&iv);
            assert!(p.slot_len.len() < iv.len(), "{act}: nothing shared");
            for a in 0..iv.len() {
                assert!(p.slot_len[p.slot_of[a]] >= iv[a].len);
                for b in a + 1..iv.len() {
                    let overlap = iv[a].def <= iv[b].last_use && iv[b].def <= iv[a].last_use;
                    assert!(
                        !(overlap && p.slot_of[a] == p.slot_of[b]),
                        "{act}: {:?} and {:?} share a buffer",
                        ts[a],
                        ts[b]
                    );
                }
            }
            // Gradient balancing: nothing is shared.
            keep_all_live(&mut iv);
            let p = plan::plan(&iv);
            assert_eq!(p.slot_len.len(), iv.len());
        }
    }
}
