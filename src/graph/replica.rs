//! A program as one replica of data-parallel training
//! (`train::parallel`): the step split in two around the gradient
//! all-reduce. `gradient_pass` (or, for gradient-balancing methods,
//! `task_gradients` then `finish_gradients`) leaves this replica's
//! gradient in the arena without updating; the caller sums the replicas'
//! arenas and `apply_gradients` writes the sum back and runs the
//! optimiser. `Program::step` is untouched: one replica keeps its one
//! submit per step.

use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::graph::program::{PendingLosses, Program, StepOptions, StepReport};
use crate::kernels::nonfinite;

/// Which gradient terms a replica's pass adds to the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradientTerms {
    /// The losses' gradient only (every replica but the first: the
    /// regularisers' terms depend on the parameters alone and must be
    /// counted once in the sum).
    DataOnly,
    /// The losses' gradient and the regularisers' gradient terms.
    WithRegularisers,
}

impl Program {
    /// Forward and backward with task t's loss weighted by `weights[t]`,
    /// plus the regularisers' terms when `terms` says so; nothing is
    /// updated. Returns the per-task losses (unweighted) of the rows in
    /// the program's inputs. One submit, waited on.
    pub fn gradient_pass(
        &mut self,
        ctx: &GpuContext,
        weights: &[f32],
        terms: GradientTerms,
    ) -> Result<Vec<f32>> {
        let t = self.loss.upstream.len();
        if weights.len() != t || weights.iter().any(|w| !w.is_finite()) {
            return Err(Error::InvalidInput {
                op: "gradient_pass",
                detail: format!("takes {t} finite task weights, got {weights:?}"),
            });
        }
        if self.graph.log_var.is_some() || self.epoch_losses.is_some() {
            return Err(Error::InvalidInput {
                op: "gradient_pass",
                detail: "uncertainty weighting and DWA keep state in the program; a replica's \
                         gradient pass supports neither"
                    .into(),
            });
        }
        self.loss.upstream.write_f32(ctx, weights)?;
        let mut rec = ctx.recorder("replica gradients");
        self.record_forward(&mut rec)?;
        self.record_backward(&mut rec, 0..self.graph.nodes.len())?;
        if terms == GradientTerms::WithRegularisers {
            self.record_regulariser_gradients(&mut rec)?;
        }
        let losses = rec.read(&self.loss.losses);
        rec.submit()?;
        losses.wait_f32(ctx)
    }

    /// Overwrites the gradient arena with `grads` (the replicas' sum, flat
    /// in arena order, `params().grads.len()` values) and takes the
    /// optimiser step in one submit: the non-finite watch of this
    /// replica's losses, the optimiser, the proximal steps.
    pub fn apply_gradients(
        &mut self,
        ctx: &GpuContext,
        grads: &[f32],
        opts: StepOptions,
    ) -> Result<StepReport> {
        let before = ctx.counters();
        self.arena.grads.write_f32(ctx, grads)?;
        let mut rec = ctx.recorder("apply gradients");
        nonfinite::watch_losses(&mut rec, &self.loss.losses, &self.loss.watch, self.step + 1)?;
        self.record_update(&mut rec)?;
        self.step += 1;
        self.record_proximal_steps(&mut rec, self.learning_rate())?;
        let pending = opts
            .read_losses
            .then(|| PendingLosses::of_training(&mut rec, self));
        rec.submit()?;
        Ok(StepReport::since(ctx, &before, pending))
    }
}
