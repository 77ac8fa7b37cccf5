//! The model a config describes, built on a context, with its data and
//! split: shared by `train` and `eval`, so both cut the same split from
//! the same seed and build the same parameters.

use crate::arch::{ModelNodes, ModelSpec};
use crate::config::Config;
use crate::data::batch::Batcher;
use crate::data::dataset::{Dataset, Split};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::graph::Program;
use crate::weighting::Balancer;

/// A built run: data, split, model and its program.
pub struct Setup {
    /// All samples, as the config's source gave them.
    pub data: Dataset,
    /// Train / validation / test, cut from `train.seed`.
    pub split: Split,
    /// The model (batch rows, inputs, sharing, tasks).
    pub spec: ModelSpec,
    /// The task weighting, already wired into the program.
    pub balancer: Balancer,
    /// The training program, freshly initialised from `train.seed`.
    pub program: Program,
    /// The inputs to write and the checkpoint pieces.
    pub nodes: ModelNodes,
}

/// Loads the data, completes `config` (the data's tasks when it lists
/// none; only `single_task` when given) so it describes the model exactly,
/// checks the model against the data, and builds the program.
pub fn build(ctx: &GpuContext, config: &mut Config, single_task: Option<&str>) -> Result<Setup> {
    let data = config.dataset()?;
    config.fill_tasks(&data);
    if let Some(name) = single_task {
        config.keep_only_task(name)?;
    }
    let split = data.split(config.data.fractions(), config.train.seed)?;
    let spec = config.model_spec(data.features())?;
    // Task names, kinds and the input width against the data, before any
    // GPU work.
    Batcher::for_model(&data, &spec)?;
    let weighting = config
        .train
        .weighting
        .weighting()
        .map_err(|d| config.error(d))?;
    let optimizer = config.train.optimizer().map_err(|d| config.error(d))?;
    let balancer = Balancer::new(weighting, spec.tasks.len(), config.train.seed)?;
    let mut model = spec.build(ctx)?;
    model.set_balancing(balancer.balancing())?;
    let program = Program::build(ctx, model.graph, optimizer, config.train.seed)?;
    Ok(Setup {
        data,
        split,
        spec,
        balancer,
        program,
        nodes: model.nodes,
    })
}
