//! Task columns (soft parameter sharing): layer l of all T columns is ONE
//! batched task-GEMM op (`Graph::task_dense_shared` for the first layer,
//! which every column reads whole; `task_dense` after), tied by
//! cross-stitch units, sluice subspaces + layer stitch, or regularisers.

use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId, Op, ParamId, TaskBlock};
use crate::types::Activation;
use crate::types::Regulariser;

use super::heads::{Feat, HeadInput};
use super::pieces::{self, Piece};
use super::StitchOptions;

/// The layers of T columns; `after(g, l, h)` may insert ops after layer l.
/// Checkpoint pieces of T columns of `widths` on `inputs` features.
pub fn column_pieces(names: &[String], inputs: usize, widths: &[usize], out: &mut Vec<Piece>) {
    let mut fan_in = inputs;
    for (l, &w) in widths.iter().enumerate() {
        for (t, task) in names.iter().enumerate() {
            let name = format!("columns.{task}.{l}");
            let param = format!("columns.{l}");
            pieces::layer(out, &name, &param, t * fan_in * w, fan_in, w, w, t * w);
        }
        fan_in = w;
    }
}

fn layers(
    g: &mut Graph,
    x: NodeId,
    tasks: usize,
    widths: &[usize],
    act: Activation,
    mut after: impl FnMut(&mut Graph, usize, NodeId) -> Result<NodeId>,
) -> Result<(NodeId, Vec<NodeId>, Vec<NodeId>)> {
    let mut h = x;
    let mut layer_nodes = Vec::new();
    let mut outputs = Vec::new();
    for (l, &w) in widths.iter().enumerate() {
        let name = format!("columns.{l}");
        h = if l == 0 {
            g.task_dense_shared(&name, x, &vec![w; tasks], act)?
        } else {
            let blocks = vec![
                TaskBlock {
                    inputs: widths[l - 1],
                    outputs: w,
                };
                tasks
            ];
            g.task_dense(&name, h, &blocks, act)?
        };
        layer_nodes.push(h);
        h = after(g, l, h)?;
        outputs.push(h);
    }
    Ok((h, layer_nodes, outputs))
}

fn per_task(h: NodeId, tasks: usize, width: usize) -> HeadInput {
    HeadInput::PerTask(
        (0..tasks)
            .map(|t| Feat {
                node: h,
                start: t * width,
                width,
            })
            .collect(),
    )
}

pub fn cross_stitch(
    g: &mut Graph,
    x: NodeId,
    tasks: usize,
    widths: &[usize],
    stitch_after: &[usize],
    opts: &StitchOptions,
    act: Activation,
) -> Result<(HeadInput, Vec<NodeId>)> {
    if let Some(&bad) = stitch_after.iter().find(|&&l| l >= widths.len()) {
        return Err(Error::Shape {
            op: "model",
            detail: format!(
                "cross-stitch after layer {bad}, but the columns have {} layers (0-based)",
                widths.len()
            ),
        });
    }
    let (h, layer_nodes, _) = layers(g, x, tasks, widths, act, |g, l, h| {
        if stitch_after.contains(&l) {
            g.cross_stitch(
                &format!("stitch.{l}"),
                h,
                tasks,
                opts.per_channel,
                opts.diagonal,
                opts.lr_scale,
            )
        } else {
            Ok(h)
        }
    })?;
    Ok((per_task(h, tasks, widths[widths.len() - 1]), layer_nodes))
}

#[allow(clippy::too_many_arguments)]
pub fn sluice(
    g: &mut Graph,
    x: NodeId,
    tasks: usize,
    widths: &[usize],
    subspaces: usize,
    orthogonality: f32,
    opts: &StitchOptions,
    act: Activation,
) -> Result<(HeadInput, Vec<NodeId>)> {
    let c = widths[0];
    if widths.iter().any(|&w| w != c) || subspaces == 0 || !c.is_multiple_of(subspaces) {
        return Err(Error::Shape {
            op: "model",
            detail: format!(
                "sluice columns {widths:?} must share one width (the layer stitch mixes them) that {subspaces} subspaces divide"
            ),
        });
    }
    if !(orthogonality >= 0.0 && orthogonality.is_finite())
        || (orthogonality > 0.0 && subspaces < 2)
    {
        return Err(Error::Shape {
            op: "model",
            detail: format!("orthogonality λ = {orthogonality} must be finite, ≥ 0, and needs ≥ 2 subspaces when > 0"),
        });
    }
    // α over the T·G subspace blocks of every layer.
    let (_, layer_nodes, outputs) = layers(g, x, tasks, widths, act, |g, l, h| {
        g.cross_stitch(
            &format!("stitch.{l}"),
            h,
            tasks * subspaces,
            opts.per_channel,
            opts.diagonal,
            opts.lr_scale,
        )
    })?;
    if orthogonality > 0.0 {
        for &l in &layer_nodes {
            g.subspace_orthogonality(l, subspaces, orthogonality)?;
        }
    }
    let z = g.layer_stitch("layer_stitch", &outputs, tasks, opts.lr_scale)?;
    Ok((per_task(z, tasks, c), layer_nodes))
}

/// The stacked task weights of a column layer.
pub fn column_weights(g: &Graph, layer: NodeId) -> Option<ParamId> {
    match &g.nodes()[layer.0].op {
        Op::TaskDense { w, .. } => Some(*w),
        _ => None,
    }
}

pub fn soft(
    g: &mut Graph,
    x: NodeId,
    tasks: usize,
    widths: &[usize],
    regularisers: &[Regulariser],
    act: Activation,
) -> Result<(HeadInput, Vec<NodeId>)> {
    let (h, layer_nodes, _) = layers(g, x, tasks, widths, act, |_, _, h| Ok(h))?;
    if tasks >= 2 {
        for &l in &layer_nodes {
            let w = column_weights(g, l).ok_or_else(|| Error::Internal {
                op: "arch::columns",
                detail: "a column layer is not a task_dense op".into(),
            })?;
            for reg in regularisers {
                g.regularise(w, tasks, *reg)?;
            }
        }
    }
    Ok((per_task(h, tasks, widths[widths.len() - 1]), layer_nodes))
}
