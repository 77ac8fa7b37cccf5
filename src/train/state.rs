//! Where a run is, and checkpoints that remember it, so `--resume`
//! continues: the same step, epoch and position in the epoch's sample
//! order (each epoch's order is a function of (seed, epoch), so the
//! position is all the shuffle stream needs), and the watched metric's
//! best value. Stored as JSON under [`STATE_KEY`] in the checkpoint's
//! metadata, beside the caller's (the config), with what the task
//! weighting remembers (`weighting::BalancerState`) under
//! [`BALANCER_KEY`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, Restore};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::train::learner::Learner;
use crate::train::stopping::Watch;

/// The metadata key of the run state.
pub const STATE_KEY: &str = "manytask.train";
/// The metadata key of the task weighting's state.
pub const BALANCER_KEY: &str = "manytask.weighting";

/// A run's position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps done by the trainer.
    pub step: usize,
    /// Complete epochs.
    pub epoch: usize,
    /// Batches done in the epoch in progress.
    pub batch: usize,
    /// Batches per epoch when the state was taken (0: unknown).
    pub steps_per_epoch: usize,
    /// The watched validation metric: best pass and passes since.
    #[serde(default)]
    pub watch: Watch,
}

impl TrainState {
    /// The state of a run `per_epoch` batches an epoch: a position past
    /// the end of an epoch carried into the epoch count. A mid-epoch
    /// position taken with another epoch length (another batch size or
    /// dataset) cannot continue that epoch's order: an error.
    pub fn for_epochs_of(mut self, per_epoch: usize) -> Result<TrainState> {
        if self.batch > 0 && self.steps_per_epoch != 0 && self.steps_per_epoch != per_epoch {
            return Err(Error::InvalidInput {
                op: "resume",
                detail: format!(
                    "the checkpoint stopped at batch {} of an epoch of {} batches, but this run's \
                     epochs have {per_epoch} (another batch size or training split): resume with \
                     the same batch size and data, or start from its weights with --init",
                    self.batch, self.steps_per_epoch
                ),
            });
        }
        let per_epoch = per_epoch.max(1);
        self.epoch += self.batch / per_epoch;
        self.batch %= per_epoch;
        self.steps_per_epoch = per_epoch;
        Ok(self)
    }
}

/// Saves `learner` with `state` and the caller's `metadata` to `path`,
/// atomically (`checkpoint::save`).
pub fn save(
    ctx: &GpuContext,
    learner: &Learner,
    state: &TrainState,
    metadata: &[(String, String)],
    path: &Path,
) -> Result<()> {
    let as_json = |what: &str, json: serde_json::Result<String>| {
        json.map_err(|e| Error::Checkpoint {
            file: path.display().to_string(),
            detail: format!("the {what} as JSON: {e}"),
        })
    };
    let balancer = learner.balancer.state(ctx, &learner.program)?;
    let mut meta = metadata.to_vec();
    meta.push((
        STATE_KEY.to_string(),
        as_json("run state", serde_json::to_string(state))?,
    ));
    meta.push((
        BALANCER_KEY.to_string(),
        as_json("weighting state", serde_json::to_string(&balancer))?,
    ));
    checkpoint::save(ctx, &learner.program, &learner.nodes.pieces, &meta, path)
}

/// Loads everything of the checkpoint at `path` (parameters, optimiser
/// state and step) into `learner` and returns where its run stood. A
/// checkpoint without a run state (saved by `checkpoint::save` directly)
/// resumes at its optimiser step, epoch 0.
pub fn resume(ctx: &GpuContext, learner: &mut Learner, path: &Path) -> Result<TrainState> {
    let meta = checkpoint::load(
        ctx,
        &mut learner.program,
        &learner.nodes.pieces,
        path,
        Restore::Everything,
    )?;
    if let Some(json) = meta.get(BALANCER_KEY) {
        let balancer = serde_json::from_str(json).map_err(|e| Error::Checkpoint {
            file: path.display().to_string(),
            detail: format!("'{BALANCER_KEY}' metadata is not a weighting state: {e}"),
        })?;
        learner
            .balancer
            .restore(ctx, &mut learner.program, balancer)
            .map_err(|e| Error::Checkpoint {
                file: path.display().to_string(),
                detail: format!("its weighting state does not fit this run: {e}"),
            })?;
    }
    match meta.get(STATE_KEY) {
        Some(json) => serde_json::from_str(json).map_err(|e| Error::Checkpoint {
            file: path.display().to_string(),
            detail: format!("'{STATE_KEY}' metadata is not a run state: {e}"),
        }),
        None => {
            let step = learner.program.steps() as usize;
            Ok(TrainState {
                step,
                batch: step,
                ..TrainState::default()
            })
        }
    }
}

/// Loads only the parameters of the checkpoint at `path` (`--init`).
pub fn load_parameters(ctx: &GpuContext, learner: &mut Learner, path: &Path) -> Result<()> {
    checkpoint::load(
        ctx,
        &mut learner.program,
        &learner.nodes.pieces,
        path,
        Restore::Parameters,
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_past_an_epoch_carries_into_the_epoch_count() {
        let s = TrainState {
            step: 17,
            batch: 17,
            ..TrainState::default()
        };
        let s = s.for_epochs_of(7).unwrap();
        assert_eq!((s.step, s.epoch, s.batch), (17, 2, 3));
        // Mid-epoch with another epoch length: refused.
        let e = TrainState {
            batch: 3,
            steps_per_epoch: 7,
            ..TrainState::default()
        }
        .for_epochs_of(5)
        .unwrap_err();
        assert!(e.to_string().contains("batch 3 of an epoch of 7"), "{e}");
        // At an epoch boundary any length continues.
        let s = TrainState {
            step: 14,
            epoch: 2,
            batch: 0,
            steps_per_epoch: 7,
            ..TrainState::default()
        };
        assert_eq!(s.for_epochs_of(5).unwrap().epoch, 2);
    }
}
