//! The model a trainer trains: its spec, the built program and input
//! nodes, the task balancer, and what evaluation needs.

use crate::arch::ModelNodes;
use crate::data::dataset::Dataset;
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::graph::Program;
use crate::train::metrics::{self, Metrics, TargetScale};
use crate::types::{ModelSpec, Optimizer};
use crate::weighting::{Balancer, Weighting};

/// A built model ready to train: spec, program, nodes and task weighting.
pub struct Learner {
    /// The model (batch rows, inputs, sharing, tasks).
    pub spec: ModelSpec,
    /// Its inputs, outputs and checkpoint pieces.
    pub nodes: ModelNodes,
    /// The training program.
    pub program: Program,
    /// The task weighting, wired into the program.
    pub balancer: Balancer,
    /// The optimiser's base learning rate, which schedules scale.
    pub base_lr: f32,
    /// Per task: the standardisation of its regression targets, for
    /// original-unit errors (None: not standardised).
    pub target_scales: Vec<Option<TargetScale>>,
}

impl Learner {
    /// Builds `spec` on `ctx` with `weighting` wired in and a program of
    /// `optimizer`, initialised from `seed` (which also seeds the
    /// weighting's randomness).
    pub fn new(
        ctx: &GpuContext,
        spec: ModelSpec,
        optimizer: Optimizer,
        weighting: Weighting,
        seed: u64,
    ) -> Result<Learner> {
        let balancer = Balancer::new(weighting, spec.tasks.len(), seed)?;
        let mut model = spec.build(ctx)?;
        model.set_balancing(balancer.balancing())?;
        let program = Program::build(ctx, model.graph, optimizer, seed)?;
        Ok(Learner::from_parts(spec, model.nodes, program, balancer))
    }

    /// A learner from parts built by hand (the balancer must be the one
    /// the graph's balancing was set from).
    pub fn from_parts(
        spec: ModelSpec,
        nodes: ModelNodes,
        program: Program,
        balancer: Balancer,
    ) -> Learner {
        let tasks = spec.tasks.len();
        Learner {
            base_lr: program.learning_rate(),
            spec,
            nodes,
            program,
            balancer,
            target_scales: vec![None; tasks],
        }
    }

    /// Task names, in the model's order.
    pub fn task_names(&self) -> Vec<String> {
        self.spec.tasks.iter().map(|t| t.name.clone()).collect()
    }

    /// Whether any task trains behind a gradient reversal.
    pub fn has_adversarial_task(&self) -> bool {
        self.spec.tasks.iter().any(|t| t.adversarial)
    }

    /// Per-task metrics over every sample of `data` (`split` names it).
    pub fn evaluate(&self, ctx: &GpuContext, data: &Dataset, split: &str) -> Result<Metrics> {
        metrics::evaluate(ctx, self, data, split, &self.target_scales)
    }
}
