//! Task heads: layer j of every task as ONE op. Tasks whose heads have
//! different depths are grouped per layer (hidden layers, and the output
//! layers of tasks that end there); the per-task features are gathered
//! with slices / concats only where the layout demands it, so uniform
//! heads need none. Adversarial tasks' first layer is a second op that
//! reads the shared input through one gradient-reversal node.

use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId, TaskBlock};
use crate::types::Activation;

use super::pieces::{self, Piece};
use super::TaskSpec;

fn internal(what: &str) -> Error {
    Error::Internal {
        op: "arch::heads",
        detail: format!("{what} was not built"),
    }
}

/// Columns [start, start + width) of a node: one task's features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Feat {
    pub node: NodeId,
    pub start: usize,
    pub width: usize,
}

/// What the heads read.
pub enum HeadInput {
    /// Every task reads the whole node (hard sharing's trunk output).
    Shared(NodeId),
    /// Task t reads its own features (task columns).
    PerTask(Vec<Feat>),
}

/// One node holding `parts` side by side: the node itself when the parts
/// are exactly it, else slices (contiguous runs merged) and a concat.
pub fn gather(g: &mut Graph, name: &str, parts: &[Feat]) -> Result<NodeId> {
    let mut runs: Vec<Feat> = Vec::new();
    for &p in parts {
        match runs.last_mut() {
            Some(r) if r.node == p.node && r.start + r.width == p.start => r.width += p.width,
            _ => runs.push(p),
        }
    }
    let mut nodes = Vec::with_capacity(runs.len());
    for (i, r) in runs.iter().enumerate() {
        nodes.push(if r.start == 0 && r.width == g.shape(r.node)[1] {
            r.node
        } else {
            g.slice(&format!("{name}.part{i}"), r.node, r.start, r.width)?
        });
    }
    if nodes.len() == 1 {
        Ok(nodes[0])
    } else {
        g.concat(name, &nodes)
    }
}

/// The first head layer when it is one dense op for every task, and the
/// tasks' widths in it.
pub type FirstHeadLayer = (NodeId, Vec<usize>);

/// The heads of `tasks` on `input`; returns the logits [rows, Σ widths]
/// in task order, and — when the first head layer of every task is one
/// dense op on a shared input — that layer and its per-task widths (for
/// per-task gradients of the shared representation).
pub fn build(
    g: &mut Graph,
    input: HeadInput,
    tasks: &[TaskSpec],
    act: Activation,
    pieces: &mut Vec<Piece>,
) -> Result<(NodeId, Option<FirstHeadLayer>)> {
    let mut first_layer = None;
    let depth = |t: &TaskSpec| t.hidden.len() + 1;
    let width = |t: &TaskSpec, j: usize| t.hidden.get(j).copied().unwrap_or(t.kind.width());
    let max_depth = tasks.iter().map(depth).max().unwrap_or(1);
    let mut cur: Vec<Option<Feat>> = match &input {
        HeadInput::Shared(_) => vec![None; tasks.len()],
        HeadInput::PerTask(f) => f.iter().copied().map(Some).collect(),
    };
    let mut out: Vec<Option<Feat>> = vec![None; tasks.len()];
    // The shared input behind a gradient reversal (made once, if needed).
    let mut reversed: Option<NodeId> = None;
    for j in 0..max_depth {
        let hidden: Vec<usize> = (0..tasks.len())
            .filter(|&t| j + 1 < depth(&tasks[t]))
            .collect();
        let last: Vec<usize> = (0..tasks.len())
            .filter(|&t| j + 1 == depth(&tasks[t]))
            .collect();
        let both = !hidden.is_empty() && !last.is_empty();
        // On the shared input, adversarial tasks' first layer is its own op
        // reading the trunk through the gradient reversal.
        let mut groups = Vec::new();
        for (group, is_last) in [(hidden, false), (last, true)] {
            let (adversarial, plain): (Vec<usize>, Vec<usize>) = match &input {
                HeadInput::Shared(_) if j == 0 => {
                    group.into_iter().partition(|&t| tasks[t].adversarial)
                }
                _ => (Vec::new(), group),
            };
            groups.push((plain, is_last, false));
            groups.push((adversarial, is_last, true));
        }
        for (group, is_last, adversarial) in groups {
            if group.is_empty() {
                continue;
            }
            let mut name = match (both, is_last) {
                (true, true) => format!("heads.{j}.out"),
                _ => format!("heads.{j}"),
            };
            if adversarial {
                name.push_str(".adversarial");
            }
            let layer_act = if is_last { Activation::Identity } else { act };
            let outs: Vec<usize> = group.iter().map(|&t| width(&tasks[t], j)).collect();
            let node = match (&input, cur[group[0]]) {
                (HeadInput::Shared(h), None) => {
                    let total: usize = outs.iter().sum();
                    let source = if adversarial {
                        *reversed.get_or_insert_with(|| g.grad_reverse("trunk.reversed", *h))
                    } else {
                        *h
                    };
                    let node = g.dense(&name, source, total, layer_act)?;
                    let inputs = g.shape(*h)[1];
                    let mut col = 0;
                    for (&t, &o) in group.iter().zip(&outs) {
                        let piece = format!("heads.{}.{j}", tasks[t].name);
                        pieces::layer(pieces, &piece, &name, col, inputs, o, total, col);
                        col += o;
                    }
                    // Gradient balancing reads per-task gradients at this
                    // layer's input: not through a reversal.
                    if group.len() == tasks.len() && !adversarial {
                        first_layer = Some((node, outs.clone()));
                    }
                    node
                }
                _ => {
                    let feats = group
                        .iter()
                        .map(|&t| cur[t].ok_or_else(|| internal("a task's features")))
                        .collect::<Result<Vec<Feat>>>()?;
                    let x = gather(g, &format!("{name}.input"), &feats)?;
                    let blocks: Vec<TaskBlock> = feats
                        .iter()
                        .zip(&outs)
                        .map(|(f, &o)| TaskBlock {
                            inputs: f.width,
                            outputs: o,
                        })
                        .collect();
                    let (mut w0, mut b0) = (0, 0);
                    for (&t, b) in group.iter().zip(&blocks) {
                        let piece = format!("heads.{}.{j}", tasks[t].name);
                        pieces::layer(
                            pieces, &piece, &name, w0, b.inputs, b.outputs, b.outputs, b0,
                        );
                        w0 += b.inputs * b.outputs;
                        b0 += b.outputs;
                    }
                    g.task_dense(&name, x, &blocks, layer_act)?
                }
            };
            let mut start = 0;
            for (&t, &w) in group.iter().zip(&outs) {
                let f = Feat {
                    node,
                    start,
                    width: w,
                };
                if is_last {
                    out[t] = Some(f);
                } else {
                    cur[t] = Some(f);
                }
                start += w;
            }
        }
    }
    let finals = out
        .into_iter()
        .map(|f| f.ok_or_else(|| internal("a task's output layer")))
        .collect::<Result<Vec<Feat>>>()?;
    Ok((gather(g, "heads.logits", &finals)?, first_layer))
}
