//! Trace norm of stacked task weights X [T, d] with T ≤ 64 (the small
//! side; ../shared/MATH.md §4 route (a)), without a general SVD:
//! Gram G = X·Xᵀ (GEMM), cyclic Jacobi on G in one workgroup
//! (`shaders/trace_norm.wgsl`), then one GEMM with the T×T factor M:
//! - `trace_norm_gradient`: grad += λ·U·Vᵀ (U·Vᵀ = M·X, the polar factor);
//! - `trace_norm_prox`: out = U·max(Σ − τ, 0)·Vᵀ (singular value
//!   soft-thresholding).
//!
//! Both write ‖X‖_* to `norm` ([1]) for logging. Singular values below
//! `REL_TOL`·σ_max count as zero (rank-deficient X).
//! Reference: `reference::trace_norm`; tests: kernels-tests/trace_norm.rs.

use crate::error::{Error, Result};
use crate::gpu::{Bind, DType, KernelSpec, Recorder, Shader, Tensor};
use crate::kernels::check::require_f32;
use crate::kernels::gemm::{self, Epilogue, Layout};

/// Most tasks the one-workgroup eigensolver takes (T×T in workgroup memory).
pub const MAX_TASKS: usize = 64;
/// Jacobi sweeps: quadratic convergence makes 12 ample for T ≤ 64 in f32.
pub const SWEEPS: u32 = 12;
/// σ below this fraction of σ_max is treated as zero.
pub const REL_TOL: f32 = 1e-3;

pub fn factor_spec(prox: bool) -> KernelSpec {
    KernelSpec::new(Shader::TraceNorm, "trace_norm_factor").with("MODE", prox as u32)
}

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    vec![factor_spec(false), factor_spec(true)]
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    tasks: u32,
    sweeps: u32,
    tau: f32,
    rel_tol: f32,
}

/// X as [T, d], checked.
fn as_matrix(op: &'static str, x: &Tensor, tasks: usize, norm: &Tensor) -> Result<Tensor> {
    require_f32(op, x)?;
    require_f32(op, norm)?;
    if tasks == 0 || tasks > MAX_TASKS || !x.len().is_multiple_of(tasks) || x.is_empty() {
        return Err(Error::Shape {
            op,
            detail: format!(
                "'{}' ({} elements) must stack 1..={MAX_TASKS} equal task blocks (got {tasks}); for more tasks use a Newton–Schulz route",
                x.label(),
                x.len()
            ),
        });
    }
    if norm.len() != 1 {
        return Err(Error::Shape {
            op,
            detail: format!("norm '{}' must have one element", norm.label()),
        });
    }
    x.reshape(&[tasks, x.len() / tasks])
}

/// M (T×T) for the gradient (`tau: None`) or the prox, and the norm.
fn factor(
    rec: &mut Recorder,
    op: &'static str,
    x: &Tensor,
    tasks: usize,
    tau: Option<f32>,
    norm: &Tensor,
) -> Result<Tensor> {
    let ctx = rec.ctx();
    let gram = Tensor::empty(ctx, "trace_norm.gram", &[tasks, tasks], DType::F32)?;
    let m = Tensor::empty(ctx, "trace_norm.factor", &[tasks, tasks], DType::F32)?;
    gemm::gemm(rec, Layout::NT, x, x, &gram, &Epilogue::default())?;
    let params = Params {
        tasks: tasks as u32,
        sweeps: SWEEPS,
        tau: tau.unwrap_or(0.0),
        rel_tol: REL_TOL,
    };
    let binds = [
        Bind::read(1, &gram),
        Bind::write(2, &m),
        Bind::write(3, norm),
    ];
    rec.dispatch(op, &factor_spec(tau.is_some()), &params, &binds, [1, 1, 1])?;
    Ok(m)
}

/// grad += λ·U·Vᵀ for X = U·Σ·Vᵀ (`grad` laid out like `x`); `norm` = ‖X‖_*.
pub fn trace_norm_gradient(
    rec: &mut Recorder,
    x: &Tensor,
    tasks: usize,
    lambda: f32,
    grad: &Tensor,
    norm: &Tensor,
) -> Result<()> {
    const OP: &str = "trace_norm::gradient";
    let xm = as_matrix(OP, x, tasks, norm)?;
    if grad.len() != x.len() {
        return Err(Error::Shape {
            op: OP,
            detail: format!("gradient '{}' must match '{}'", grad.label(), x.label()),
        });
    }
    let gm = grad.reshape(&[tasks, x.len() / tasks])?;
    let m = factor(rec, OP, &xm, tasks, None, norm)?;
    let epi = Epilogue {
        alpha: lambda,
        beta: Some(1.0),
        ..Epilogue::default()
    };
    gemm::gemm(rec, Layout::NN, &m, &xm, &gm, &epi)
}

/// out = U·max(Σ − τ, 0)·Vᵀ (`out` laid out like `x`, not aliasing it);
/// `norm` = ‖X‖_* before the step.
pub fn trace_norm_prox(
    rec: &mut Recorder,
    x: &Tensor,
    tasks: usize,
    tau: f32,
    out: &Tensor,
    norm: &Tensor,
) -> Result<()> {
    const OP: &str = "trace_norm::prox";
    let xm = as_matrix(OP, x, tasks, norm)?;
    if out.len() != x.len() || !(tau >= 0.0 && tau.is_finite()) {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "out '{}' must match '{}' and τ = {tau} be ≥ 0",
                out.label(),
                x.label()
            ),
        });
    }
    let om = out.reshape(&[tasks, x.len() / tasks])?;
    let m = factor(rec, OP, &xm, tasks, Some(tau), norm)?;
    gemm::gemm(rec, Layout::NN, &m, &xm, &om, &Epilogue::default())
}
