//! Soft-sharing regularisers and sluice subspace orthogonality in the
//! program: gradient terms added to the weight gradients after the
//! backward pass, proximal steps after the optimiser, and their values.

use crate::error::Result;
use crate::gpu::{DType, GpuContext, Recorder, Tensor};
use crate::graph::builder::Graph;
use crate::graph::params::ParamId;
use crate::graph::program::Program;
use crate::kernels::elementwise;
use crate::kernels::soft_sharing::{self, Regulariser};
use crate::kernels::subspace::Orthogonality;
use crate::kernels::trace_norm::TraceNormPlan;

/// One regulariser's buffers: per-element partials and its value.
pub(crate) struct RegParts {
    param: ParamId,
    tasks: usize,
    reg: Regulariser,
    partial: Tensor,
    /// The regulariser's value (λ included).
    value: Tensor,
    /// A trace norm's plan (scratch for every unfolding and route).
    trace: Option<TraceNormPlan>,
    /// A buffer like W for the trace-norm prox (its GEMM cannot write in
    /// place).
    scratch: Option<Tensor>,
}

/// One sluice subspace penalty: the weights, its tables and scratch, λ
/// and its value.
pub(crate) struct OrthParts {
    param: ParamId,
    plan: Orthogonality,
    lambda: f32,
    value: Tensor,
}

/// The buffers of every regulariser `Graph::regularise` added.
pub(crate) fn regularisers(ctx: &GpuContext, graph: &Graph) -> Result<Vec<RegParts>> {
    graph
        .regularisers
        .iter()
        .map(|&(param, stack, reg)| {
            let tasks = stack.tasks;
            let d = graph.params.get(param).len() / tasks;
            let trace = match reg.trace_norm_variant() {
                Some(v) => Some(TraceNormPlan::new(ctx, stack, v, reg.is_proximal())?),
                None => None,
            };
            Ok(RegParts {
                param,
                tasks,
                reg,
                partial: Tensor::empty(ctx, "regulariser partials", &[d], DType::F32)?,
                value: Tensor::zeros(ctx, "regulariser value", &[1])?,
                trace,
                scratch: match reg {
                    Regulariser::TraceNormProx { .. } => Some(Tensor::empty(
                        ctx,
                        "trace-norm prox",
                        &[d * tasks],
                        DType::F32,
                    )?),
                    _ => None,
                },
            })
        })
        .collect()
}

/// The buffers of every subspace penalty `Graph::subspace_orthogonality`
/// added.
pub(crate) fn orthogonality(ctx: &GpuContext, graph: &Graph) -> Result<Vec<OrthParts>> {
    graph
        .orthogonality
        .iter()
        .map(|&(param, shape, lambda)| {
            Ok(OrthParts {
                param,
                plan: Orthogonality::new(ctx, shape)?,
                lambda,
                value: Tensor::zeros(ctx, "orthogonality value", &[1])?,
            })
        })
        .collect()
}

impl Program {
    /// The gradient terms: regularisers that are not proximal, then the
    /// subspace penalties, added to the weight gradients.
    pub(crate) fn record_regulariser_gradients(&self, rec: &mut Recorder) -> Result<()> {
        for r in self.regularisers.iter().filter(|r| !r.reg.is_proximal()) {
            let (w, g) = (self.arena.value(r.param), self.arena.grad(r.param));
            if let Some(plan) = &r.trace {
                // ‖W‖_* into the partials' first element, then λ·‖W‖_*.
                let lambda = r.reg.lambda();
                let norm = r.partial.view(rec.ctx(), 0, &[1])?;
                plan.gradient(rec, w, lambda, g, &norm)?;
                elementwise::scale(rec, &norm, lambda, &r.value)?;
            } else {
                soft_sharing::add_gradient(rec, &r.reg, r.tasks, w, g, &r.partial)?;
                soft_sharing::value(rec, &r.partial, &r.value)?;
            }
        }
        for o in &self.orthogonality {
            let (w, g) = (self.arena.value(o.param), self.arena.grad(o.param));
            o.plan.record(rec, w, g, o.lambda, &o.value)?;
        }
        Ok(())
    }

    /// The proximal steps after the optimiser, with step size
    /// lr (times the parameter's multiplier) · λ.
    pub(crate) fn record_proximal_steps(&self, rec: &mut Recorder, lr: f32) -> Result<()> {
        for r in self.regularisers.iter().filter(|r| r.reg.is_proximal()) {
            let eta = lr * self.arena.layout.get(r.param).lr_scale;
            let w = self.arena.value(r.param);
            let lambda = r.reg.lambda();
            if let (Some(plan), Some(shrunk)) = (&r.trace, &r.scratch) {
                // The prox's GEMM cannot write W in place: via a copy.
                let norm = r.partial.view(rec.ctx(), 0, &[1])?;
                plan.prox(rec, w, eta * lambda, shrunk, &norm)?;
                rec.copy(shrunk, w)?;
                elementwise::scale(rec, &norm, lambda, &r.value)?;
            } else {
                soft_sharing::group_lasso_prox(rec, r.tasks, lambda, eta, w, &r.partial)?;
                soft_sharing::value(rec, &r.partial, &r.value)?;
            }
        }
        Ok(())
    }

    /// Each regulariser's value (in `Graph::regularise` order) as of the
    /// last step that computed it (gradient terms: every step; proximal
    /// ones: steps that update). One small read per regulariser.
    pub fn regulariser_values(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        self.regularisers
            .iter()
            .map(|r| Ok(r.value.to_f32_vec(ctx)?[0]))
            .collect()
    }

    /// Each subspace orthogonality penalty's value (in
    /// `Graph::subspace_orthogonality` order) as of the last step.
    pub fn orthogonality_values(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        self.orthogonality
            .iter()
            .map(|o| Ok(o.value.to_f32_vec(ctx)?[0]))
            .collect()
    }

    /// Newton–Schulz steps of every trace-norm regulariser's route (b)
    /// from the next step on (default `trace_norm::NS_STEPS`).
    pub fn set_newton_schulz_steps(&mut self, steps: u32) {
        for plan in self
            .regularisers
            .iter_mut()
            .filter_map(|r| r.trace.as_mut())
        {
            plan.set_steps(steps);
        }
    }
}
