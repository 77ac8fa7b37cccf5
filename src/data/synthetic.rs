//! GradNorm's synthetic multi-task regression benchmark (Chen et al.
//! 2018; docs/math.md §7): T tasks `f_i(x) = σ_i tanh((B + ε_i) x)`
//! with a shared B and a per-task ε_i, so the tasks are related but not
//! equal, and σ_i spreads their loss scales over orders of magnitude.
//!
//! Choices the paper leaves open, made here and fixed by the seed:
//! - B ~ N(0, 10) and ε_i ~ N(0, 3.5) read as variances (std √10, √3.5);
//! - x ~ N(0, 1/(13.5·D)), so each pre-activation (B + ε_i)x has variance
//!   ≈ 1 and tanh is used across its range: with larger inputs it
//!   saturates, the targets become ±σ_i·sign(·) and no task is learnable
//!   in a few hundred steps;
//! - σ_i geometric from 1 to `max_scale` (100 by default) over the tasks.

use crate::error::{Error, Result};
use crate::util::rng::Rng;

/// The benchmark's definition (not its samples).
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticSpec {
    /// Number of tasks T.
    pub tasks: usize,
    /// Input width D (250 in the paper).
    pub inputs: usize,
    /// Output width per task (100 in the paper).
    pub outputs: usize,
    /// σ_i per task.
    pub scales: Vec<f32>,
    /// Seed of B, the ε_i and the inputs.
    pub seed: u64,
}

impl SyntheticSpec {
    /// The paper's shapes: 250 → T × 100, σ geometric in [1, 100].
    pub fn gradnorm(tasks: usize, seed: u64) -> Self {
        Self::new(tasks, 250, 100, 100.0, seed)
    }

    /// Any shapes, σ geometric in [1, `max_scale`] over the tasks (σ = 1
    /// for a single task).
    pub fn new(tasks: usize, inputs: usize, outputs: usize, max_scale: f32, seed: u64) -> Self {
        let scales = (0..tasks)
            .map(|i| {
                let p = if tasks > 1 {
                    i as f32 / (tasks - 1) as f32
                } else {
                    0.0
                };
                max_scale.powf(p)
            })
            .collect();
        SyntheticSpec {
            tasks,
            inputs,
            outputs,
            scales,
            seed,
        }
    }
}

/// A generated dataset: x [rows, D] and targets [rows, T·outputs] (task t
/// at columns t·outputs .., the layout of the graph's losses).
pub struct Synthetic {
    /// The definition it was generated from.
    pub spec: SyntheticSpec,
    /// Samples N.
    pub rows: usize,
    /// Inputs [N, D].
    pub x: Vec<f32>,
    /// Targets [N, T·outputs].
    pub targets: Vec<f32>,
}

impl Synthetic {
    /// `rows` samples; the same (spec, rows) always gives the same data.
    pub fn generate(spec: &SyntheticSpec, rows: usize) -> Result<Self> {
        let SyntheticSpec {
            tasks,
            inputs,
            outputs,
            ..
        } = *spec;
        if tasks == 0 || inputs == 0 || outputs == 0 || rows == 0 || spec.scales.len() != tasks {
            return Err(Error::Shape {
                op: "synthetic",
                detail: format!(
                    "{tasks} tasks, {inputs} inputs, {outputs} outputs, {rows} rows and {} scales: all must be ≥ 1 and one scale per task",
                    spec.scales.len()
                ),
            });
        }
        let mut rng = Rng::new(spec.seed);
        // Task matrices (B + ε_t) as [D, outputs].
        let b: Vec<f32> = (0..inputs * outputs)
            .map(|_| rng.normal() * 10f32.sqrt())
            .collect();
        let mats: Vec<Vec<f32>> = (0..tasks)
            .map(|_| b.iter().map(|v| v + rng.normal() * 3.5f32.sqrt()).collect())
            .collect();
        let sx = 1.0 / (13.5 * inputs as f32).sqrt();
        let x: Vec<f32> = (0..rows * inputs).map(|_| rng.normal() * sx).collect();
        let width = tasks * outputs;
        let mut targets = vec![0f32; rows * width];
        for r in 0..rows {
            let xr = &x[r * inputs..(r + 1) * inputs];
            for (t, m) in mats.iter().enumerate() {
                for o in 0..outputs {
                    let z: f64 = (0..inputs)
                        .map(|i| xr[i] as f64 * m[i * outputs + o] as f64)
                        .sum();
                    targets[r * width + t * outputs + o] = spec.scales[t] * (z as f32).tanh();
                }
            }
        }
        Ok(Synthetic {
            spec: spec.clone(),
            rows,
            x,
            targets,
        })
    }

    /// Rows [start, start + n) as (x, targets), wrapping around the end.
    pub fn batch(&self, start: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
        let (d, w) = (self.spec.inputs, self.spec.tasks * self.spec.outputs);
        let mut x = Vec::with_capacity(n * d);
        let mut y = Vec::with_capacity(n * w);
        for i in 0..n {
            let r = (start + i) % self.rows;
            x.extend_from_slice(&self.x[r * d..(r + 1) * d]);
            y.extend_from_slice(&self.targets[r * w..(r + 1) * w]);
        }
        (x, y)
    }
}
