//! Data-parallel training: replicas of one model, each on its own
//! adapter (several in one process, `--devices`) or in its own process
//! (MPI ranks, cargo feature `mpi`), take their shard of every global
//! batch, compute their gradient, and sum the gradient arenas before every
//! replica takes the same optimiser step.
//!
//! - [`shard`](mod@shard): which rows each replica takes and its share of every
//!   task's labelled rows (the weights that make the sum the global
//!   batch's gradient);
//! - [`reducer`]: the `Reducer` trait, the in-process `HostReducer`, the
//!   fixed summation order, the f16 option and the parameter checksum;
//! - `mpi` (feature `mpi`): `MpiReducer`.
//!
//! A step: every replica writes its shard and runs forward and backward
//! with task t weighted by c_t·n_rt/N_t (`Program::gradient_pass`); the
//! arenas (with each replica's share of the losses appended) are summed;
//! every replica writes the sum back and runs the optimiser
//! (`Program::apply_gradients`). Gradient methods first sum the per-task
//! gradient rows [T, P] (`Program::task_gradients`): the Gram of the sum
//! (computed on the host in f64, identical on every process) gives the
//! coefficients, then the step goes on as above with
//! `Program::finish_gradients`. The regularisers' gradient terms are
//! added by global replica 0 alone. Parameters and optimiser state start
//! as replica 0's (broadcast) and are compared by checksum every
//! `check_every` steps and at the end.

pub mod reducer;
pub mod shard;

#[cfg(feature = "mpi")]
pub mod mpi;

use std::ops::Range;
use std::time::{Duration, Instant};

use crate::data::batch::Batch;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::graph::{GradientTerms, StepOptions};
use crate::train::batches::write_batch;
use crate::train::learner::Learner;
use crate::weighting::Gram;

pub use reducer::{checksum, ordered_sum, HostReducer, Precision, Reducer};
pub use shard::{shard, shard_rows, task_shares};

/// Whether this process was started by an MPI launcher (`mpirun`, or
/// `srun` with PMI or PMIx): the variables Open MPI, PMI and PMIx set in
/// every rank.
pub fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// A replica besides the trainer's own learner: its adapter and model.
pub struct Replica {
    /// The adapter it runs on.
    pub ctx: GpuContext,
    /// Its model (batch rows = its shard's).
    pub learner: Learner,
}

/// How the replicas exchange and check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParallelOptions {
    /// Steps between parameter checksum comparisons (0: only at the end).
    pub check_every: usize,
    /// The precision gradients travel in.
    pub precision: Precision,
}

impl Default for ParallelOptions {
    fn default() -> Self {
        ParallelOptions {
            check_every: 50,
            precision: Precision::F32,
        }
    }
}

/// Where the time of the parallel steps went.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ParallelStats {
    /// Steps taken.
    pub steps: usize,
    /// Their wall time.
    pub step_time: Duration,
    /// Of which: reading the arenas back, the exchange and the sum, and
    /// writing the sum into every replica.
    pub reduce_time: Duration,
    /// Values each replica contributed per step (gradients, per-task
    /// rows of gradient methods, losses).
    pub values_per_step: usize,
}

/// One parallel step's outcome.
pub struct ParallelStep {
    /// The global batch's per-task losses (unweighted means over each
    /// task's labelled rows of the whole batch).
    pub losses: Vec<f32>,
    /// The coefficients c_t the update used.
    pub weights: Vec<f32>,
    /// Dispatches recorded on the trainer's adapter.
    pub dispatches: u64,
    /// Submits on the trainer's adapter.
    pub submits: u64,
}

/// The replicas of a run beside the trainer's learner, and how they sum.
pub struct DataParallel {
    global_rows: usize,
    shards: Vec<Range<usize>>,
    /// Global index of this process's first replica (the trainer's).
    first: usize,
    extra: Vec<Replica>,
    reducer: Box<dyn Reducer>,
    options: ParallelOptions,
    stats: ParallelStats,
}

/// The batch rows of this process's replicas: `local` replicas on each of
/// `reducer`'s processes sharing a global batch of `global_rows`.
pub fn local_rows(global_rows: usize, local: usize, reducer: &dyn Reducer) -> Result<Vec<usize>> {
    let shards = shard_rows(global_rows, local * reducer.processes())?;
    let first = reducer.rank() * local;
    Ok(shards[first..first + local]
        .iter()
        .map(Range::len)
        .collect())
}

impl DataParallel {
    /// The run's replicas: the trainer's learner (built with this
    /// process's first shard's rows, `local_rows`), `extra` replicas on
    /// other adapters, and `reducer` to the other processes. Every
    /// process must have as many replicas.
    pub fn new(
        global_rows: usize,
        extra: Vec<Replica>,
        mut reducer: Box<dyn Reducer>,
        options: ParallelOptions,
    ) -> Result<DataParallel> {
        let local = extra.len() + 1;
        let counts = reducer.gather_words(&[local as u64])?;
        if counts.iter().any(|&c| c != local as u64) {
            return Err(Error::InvalidInput {
                op: "data-parallel training",
                detail: format!(
                    "every process needs as many replicas (devices); the processes have {counts:?}"
                ),
            });
        }
        let shards = shard_rows(global_rows, local * reducer.processes())?;
        let first = reducer.rank() * local;
        Ok(DataParallel {
            global_rows,
            shards,
            first,
            extra,
            reducer,
            options,
            stats: ParallelStats::default(),
        })
    }

    /// Rows of the global batch.
    pub fn global_rows(&self) -> usize {
        self.global_rows
    }

    /// Replicas in the whole run.
    pub fn replicas(&self) -> usize {
        self.shards.len()
    }

    /// Whether this process writes checkpoints, logs and plots (rank 0).
    pub fn writes_files(&self) -> bool {
        self.reducer.rank() == 0
    }

    /// This process's rank and the number of processes.
    pub fn process(&self) -> (usize, usize) {
        (self.reducer.rank(), self.reducer.processes())
    }

    /// Where the steps' time went so far.
    pub fn stats(&self) -> ParallelStats {
        self.stats
    }

    /// The extra replicas (e.g. to load a checkpoint into each).
    pub fn extra_mut(&mut self) -> &mut [Replica] {
        &mut self.extra
    }

    /// Stops every process of the run (see `Reducer::abort`).
    pub fn abort(&self, code: i32) -> ! {
        self.reducer.abort(code)
    }

    /// Checks that every replica holds the model the trainer's learner
    /// holds and the weighting runs across replicas, then makes every
    /// replica start from global replica 0's parameters, optimiser state
    /// and step count.
    pub fn synchronise(&mut self, ctx: &GpuContext, learner: &mut Learner) -> Result<()> {
        learner.balancer.check_data_parallel()?;
        let arena = learner.program.params();
        let (values, grads) = (arena.values.len(), arena.grads.len());
        for r in &self.extra {
            let other = r.learner.program.params();
            if other.values.len() != values || other.grads.len() != grads {
                return Err(Error::InvalidInput {
                    op: "data-parallel training",
                    detail: "the replicas' models differ (parameter arenas of other sizes)".into(),
                });
            }
        }
        let mut words = vec![values as u64, u64::from(learner.program.steps())];
        words = self.reducer.gather_words(&words)?;
        if words.chunks(2).any(|w| w[0] != values as u64) {
            return Err(Error::InvalidInput {
                op: "data-parallel training",
                detail: "the processes' models differ (parameter arenas of other sizes)".into(),
            });
        }
        let steps = words[1] as u32;
        let mut pieces = vec![learner.program.params().values.to_f32_vec(ctx)?];
        for s in &learner.program.params().states {
            pieces.push(s.to_f32_vec(ctx)?);
        }
        for p in &mut pieces {
            self.reducer.broadcast(p)?;
        }
        let mut all: Vec<(&GpuContext, &mut Learner)> = vec![(ctx, learner)];
        all.extend(self.extra.iter_mut().map(|r| (&r.ctx, &mut r.learner)));
        for (c, l) in all {
            let arena = l.program.params();
            arena.values.write_f32(c, &pieces[0])?;
            for (s, v) in arena.states.iter().zip(&pieces[1..]) {
                s.write_f32(c, v)?;
            }
            l.program.set_steps(steps);
        }
        Ok(())
    }

    /// One optimiser step of every replica on its shard of `batch` (the
    /// global batch); the trainer's learner has its learning rate and
    /// reversal λ set. `opts.update` must be set.
    pub fn step(
        &mut self,
        ctx: &GpuContext,
        learner: &mut Learner,
        batch: &Batch,
    ) -> Result<ParallelStep> {
        let started = Instant::now();
        let before = ctx.counters();
        let masked: Vec<bool> = learner.spec.tasks.iter().map(|t| t.masked).collect();
        let shares = task_shares(batch, &self.shards, &masked);
        let t = masked.len();
        let (lr, lambda) = (
            learner.program.learning_rate(),
            learner.program.reversal_lambda,
        );
        let first = self.first;
        let precision = self.options.precision;
        let mut reduce_time = Duration::ZERO;
        let loss_weights = learner.balancer.loss_weights();
        let mut local: Vec<(&GpuContext, &mut Learner)> = vec![(ctx, learner)];
        local.extend(self.extra.iter_mut().map(|r| (&r.ctx, &mut r.learner)));
        for (i, (c, l)) in local.iter_mut().enumerate() {
            let part = shard(batch, self.shards[first + i].clone());
            write_batch(c, &l.program, &l.nodes, &part)?;
            l.program.set_learning_rate(lr);
            l.program.set_reversal_lambda(lambda);
        }
        let terms = |i: usize| {
            if first + i == 0 {
                GradientTerms::WithRegularisers
            } else {
                GradientTerms::DataOnly
            }
        };
        let scaled = |share: &[f32], losses: &[f32]| -> Vec<f32> {
            share.iter().zip(losses).map(|(s, l)| s * l).collect()
        };
        let weighted = |c: &[f32], share: &[f32]| -> Vec<f32> {
            c.iter().zip(share).map(|(c, s)| c * s).collect()
        };
        let (weights, losses, mut contributions) = match loss_weights {
            Some(c) => {
                let mut contributions = Vec::new();
                for (i, (cx, l)) in local.iter_mut().enumerate() {
                    let share = &shares[first + i];
                    let losses = l
                        .program
                        .gradient_pass(cx, &weighted(&c, share), terms(i))?;
                    let mut v = l.program.params().read_grads(cx)?;
                    v.extend(scaled(share, &losses));
                    contributions.push(v);
                }
                (c, None, contributions)
            }
            None => {
                let mut rows = Vec::new();
                for (i, (cx, l)) in local.iter_mut().enumerate() {
                    let share = &shares[first + i];
                    let g = l.program.task_gradients(cx, share)?;
                    let mut v = g.rows;
                    v.extend(scaled(share, &g.losses));
                    rows.push(v);
                }
                let r0 = Instant::now();
                let summed = ordered_sum(&self.reducer.gather(&rows, precision)?)?;
                reduce_time += r0.elapsed();
                let (rows, losses) = summed.split_at(summed.len() - t);
                let losses = losses.to_vec();
                check_losses(&losses, local[0].1)?;
                let gram = host_gram(rows, t)?;
                let l64: Vec<f64> = losses.iter().map(|&l| f64::from(l)).collect();
                let c: Vec<f32> = local[0]
                    .1
                    .balancer
                    .coefficients(&gram, &l64)?
                    .iter()
                    .map(|&x| x as f32)
                    .collect();
                let mut contributions = Vec::new();
                for (i, (cx, l)) in local.iter_mut().enumerate() {
                    let share = &shares[first + i];
                    l.program
                        .finish_gradients(cx, &weighted(&c, share), terms(i))?;
                    contributions.push(l.program.params().read_grads(cx)?);
                }
                (c, Some(losses), contributions)
            }
        };
        let r0 = Instant::now();
        let mut summed = ordered_sum(&self.reducer.gather(&contributions, precision)?)?;
        reduce_time += r0.elapsed();
        let losses = match losses {
            Some(l) => l,
            None => summed.split_off(summed.len() - t),
        };
        check_losses(&losses, local[0].1)?;
        contributions.clear();
        let r0 = Instant::now();
        for (cx, l) in local.iter_mut() {
            l.program.apply_gradients(cx, &summed, StepOptions::TRAIN)?;
        }
        reduce_time += r0.elapsed();
        self.stats.values_per_step = summed.len() + t;
        drop(local);
        let d = ctx.counters().since(&before);
        self.stats.steps += 1;
        let step = learner.program.steps() as usize;
        if self.options.check_every > 0 && step.is_multiple_of(self.options.check_every) {
            self.check_identical(ctx, learner)?;
        }
        self.stats.reduce_time += reduce_time;
        self.stats.step_time += started.elapsed();
        Ok(ParallelStep {
            losses,
            weights,
            dispatches: d.dispatches,
            submits: d.submits,
        })
    }

    /// Process 0's `value` on every process: what decisions every
    /// process must take alike (early stopping, the best checkpoint) are
    /// taken on it.
    pub fn agree(&mut self, value: f64) -> Result<f64> {
        let all = self.reducer.gather_words(&[value.to_bits()])?;
        Ok(all.first().map_or(value, |&b| f64::from_bits(b)))
    }

    /// Compares every replica's parameters (a checksum of their bits)
    /// with global replica 0's: an error naming the step and the first
    /// replica that diverged.
    pub fn check_identical(&mut self, ctx: &GpuContext, learner: &Learner) -> Result<()> {
        let mut sums = vec![checksum(&learner.program.params().values.to_f32_vec(ctx)?)];
        for r in &self.extra {
            sums.push(checksum(
                &r.learner.program.params().values.to_f32_vec(&r.ctx)?,
            ));
        }
        let all = self.reducer.gather_words(&sums)?;
        if let Some(bad) = all.iter().position(|&s| s != all[0]) {
            return Err(Error::Internal {
                op: "data-parallel training",
                detail: format!(
                    "replica {bad}'s parameters differ from replica 0's after step {} (checksums \
                     {:016x} and {:016x}): the replicas' adapters do not compute the optimiser \
                     step identically",
                    learner.program.steps(),
                    all[bad],
                    all[0]
                ),
            });
        }
        Ok(())
    }
}

/// A non-finite global loss stops the run naming the task.
fn check_losses(losses: &[f32], learner: &Learner) -> Result<()> {
    if let Some(t) = losses.iter().position(|l| !l.is_finite()) {
        return Err(Error::Diverged {
            step: u64::from(learner.program.steps()) + 1,
            task: match learner.spec.tasks.get(t) {
                Some(s) => format!("task '{}'", s.name),
                None => format!("task {t}"),
            },
            value: losses[t],
        });
    }
    Ok(())
}

/// The T×T Gram of the summed per-task rows [T, P], in f64.
fn host_gram(rows: &[f32], t: usize) -> Result<Gram> {
    let p = rows.len() / t.max(1);
    let mut g = vec![0f64; t * t];
    for s in 0..t {
        for u in s..t {
            let (a, b) = (&rows[s * p..(s + 1) * p], &rows[u * p..(u + 1) * p]);
            let dot: f64 = a
                .iter()
                .zip(b)
                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                .sum();
            g[s * t + u] = dot;
            g[u * t + s] = dot;
        }
    }
    Gram::from_f64(t, g)
}
