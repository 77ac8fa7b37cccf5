//! The subspace orthogonality penalty of sluice networks (Ruder et al.
//! 2019; docs/math.md §3) on a task layer's stacked weights W [T, in,
//! out]: each task's output columns split into G equal subspaces A_1..A_G
//! (column blocks of W_t), penalty λ Σ_{i<j} ‖A_iᵀ A_j‖²_F.
//!
//! With S_t = W_tᵀW_t restricted to its off-diagonal blocks (S_t,ij =
//! A_iᵀA_j, i ≠ j; diagonal blocks zero) the penalty is λ/2 ‖S‖²_F and its
//! gradient is dW_t = 2λ W_t·S_t (for G = 2: dA = 2λ B Bᵀ A, dB = 2λ A Aᵀ
//! B). Two batched task-GEMM dispatches for all tasks (off-diagonal blocks
//! only, then W·S), plus a deterministic sum of squares for the value: no
//! kernel of its own. Cost: 2·T·in·out²·(1 + (G−1)/G) FLOPs.
//! Reference: `reference::subspace`; tests: kernels-tests/subspace.rs.

use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Recorder, Tensor};
use crate::kernels::check::require_f32;
use crate::kernels::gemm::{Epilogue, Fusion, Layout};
use crate::kernels::task_gemm::{task_gemm, TaskProblem, TaskTable};
use crate::kernels::{elementwise, reduce};

/// The shape of a penalised layer: T tasks of [inputs, outputs] weights,
/// outputs split into `subspaces` column blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subspaces {
    /// T.
    pub tasks: usize,
    /// Rows of each task's weight.
    pub inputs: usize,
    /// Columns of each task's weight (a multiple of `subspaces`).
    pub outputs: usize,
    /// G ≥ 2: column blocks per task.
    pub subspaces: usize,
}

impl Subspaces {
    fn check(&self) -> Result<usize> {
        let Subspaces {
            tasks,
            inputs,
            outputs,
            subspaces,
        } = *self;
        if tasks == 0 || inputs == 0 || subspaces < 2 || outputs % subspaces != 0 {
            return Err(Error::Shape {
                op: "subspace::orthogonality",
                detail: format!(
                    "{tasks} tasks of [{inputs}, {outputs}] weights cannot split into {subspaces} subspaces (need ≥ 2 that divide the outputs)"
                ),
            });
        }
        Ok(outputs / subspaces)
    }

    /// Elements of the stacked weights, T·inputs·outputs.
    pub fn weights(&self) -> usize {
        self.tasks * self.inputs * self.outputs
    }
}

/// Tables and scratch of one penalised layer, built once per model.
pub struct Orthogonality {
    shape: Subspaces,
    /// TN: S_t,ij = A_iᵀA_j for every task and i ≠ j.
    gram: TaskTable,
    /// NN: dW_t += 2λ W_t·S_t.
    grad: TaskTable,
    /// S [T, out, out]; diagonal blocks stay zero (never written).
    s: Tensor,
    sum: Tensor,
}

impl Orthogonality {
    /// Checks the shape and builds the two task tables and scratch.
    pub fn new(ctx: &GpuContext, shape: Subspaces) -> Result<Self> {
        let width = shape.check()?;
        let Subspaces {
            tasks,
            inputs,
            outputs,
            subspaces,
        } = shape;
        let mut gram = Vec::new();
        let mut grad = Vec::new();
        for t in 0..tasks {
            let w0 = t * inputs * outputs;
            let s0 = t * outputs * outputs;
            for i in 0..subspaces {
                for j in (0..subspaces).filter(|&j| j != i) {
                    gram.push(TaskProblem {
                        m: width,
                        n: width,
                        k: inputs,
                        a_offset: w0 + i * width,
                        lda: outputs,
                        b_offset: w0 + j * width,
                        ldb: outputs,
                        c_offset: s0 + i * width * outputs + j * width,
                        ldc: outputs,
                        bias_offset: 0,
                    });
                }
            }
            grad.push(TaskProblem {
                m: inputs,
                n: outputs,
                k: outputs,
                a_offset: w0,
                lda: outputs,
                b_offset: s0,
                ldb: outputs,
                c_offset: w0,
                ldc: outputs,
                bias_offset: 0,
            });
        }
        Ok(Orthogonality {
            shape,
            gram: TaskTable::new(ctx, Layout::TN, &gram)?,
            grad: TaskTable::new(ctx, Layout::NN, &grad)?,
            s: Tensor::zeros(ctx, "subspace gram", &[tasks * outputs * outputs])?,
            sum: Tensor::zeros(ctx, "subspace sum of squares", &[1])?,
        })
    }

    /// The penalised layer's shape.
    pub fn shape(&self) -> Subspaces {
        self.shape
    }

    /// grad += 2λ W·S (per task) and value = λ Σ_{i<j} ‖A_iᵀA_j‖².
    pub fn record(
        &self,
        rec: &mut Recorder,
        w: &Tensor,
        grad: &Tensor,
        lambda: f32,
        value: &Tensor,
    ) -> Result<()> {
        const OP: &str = "subspace::orthogonality";
        for t in [w, grad, value] {
            require_f32(OP, t)?;
        }
        let n = self.shape.weights();
        if w.len() != n || grad.len() != n || value.len() != 1 {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "W '{}' and its gradient '{}' must hold {n} weights ({:?}) and the value one element; got {}, {}, {}",
                    w.label(),
                    grad.label(),
                    self.shape,
                    w.len(),
                    grad.len(),
                    value.len()
                ),
            });
        }
        let none = Fusion::default();
        task_gemm(
            rec,
            None,
            &self.gram,
            w,
            w,
            &self.s,
            &Epilogue::default(),
            &none,
        )?;
        let epi = Epilogue {
            alpha: 2.0 * lambda,
            beta: Some(1.0),
            ..Epilogue::default()
        };
        task_gemm(rec, None, &self.grad, w, &self.s, grad, &epi, &none)?;
        // Each off-diagonal pair appears twice in S: λ/2 ‖S‖².
        reduce::sum_squares(rec, &self.s, &self.sum)?;
        elementwise::scale(rec, &self.sum, 0.5 * lambda, value)
    }
}
