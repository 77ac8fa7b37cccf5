//! Launchers for `shaders/optim.wgsl`: one dispatch updates a whole flat
//! parameter arena (parameters, gradients and optimiser state of one model
//! in one buffer each).

use crate::error::{Error, Result};
use crate::gpu::{Bind, KernelSpec, Recorder, Shader, Tensor};
use crate::kernels::check::{require_f32, require_same_shape};

pub use crate::types::{AdamW, Sgd};

const WG: u32 = 256;

/// `sgd_step`: momentum SGD over an arena.
pub const SGD_STEP: KernelSpec = KernelSpec::new(Shader::Optim, "sgd_step");
/// `adamw_step`: AdamW over an arena.
pub const ADAMW_STEP: KernelSpec = KernelSpec::new(Shader::Optim, "adamw_step");

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    vec![SGD_STEP, ADAMW_STEP]
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    _pad0: u32,
    lr: f32,
    weight_decay: f32,
    momentum: f32,
    beta2: f32,
    eps: f32,
    bc1: f32,
    bc2: f32,
    _pad: [u32; 3],
}

fn check_tensors(
    op: &'static str,
    param: &Tensor,
    grad: &Tensor,
    states: &[&Tensor],
) -> Result<()> {
    for t in [param, grad].into_iter().chain(states.iter().copied()) {
        require_f32(op, t)?;
        require_same_shape(op, param, t)?;
    }
    Ok(())
}

fn check_hyper(op: &'static str, values: &[(&str, f32)]) -> Result<()> {
    for &(name, v) in values {
        if !v.is_finite() {
            return Err(Error::Shape {
                op,
                detail: format!("hyperparameter {name} = {v} is not finite"),
            });
        }
    }
    Ok(())
}

/// θ ← θ − η·v with v ← μ·v + g + wd·θ, over every element of `param`.
pub fn sgd_step(
    rec: &mut Recorder,
    cfg: &Sgd,
    param: &Tensor,
    grad: &Tensor,
    velocity: &Tensor,
) -> Result<()> {
    const OP: &str = "optim::sgd_step";
    check_tensors(OP, param, grad, &[velocity])?;
    check_hyper(
        OP,
        &[
            ("lr", cfg.lr),
            ("momentum", cfg.momentum),
            ("weight_decay", cfg.weight_decay),
        ],
    )?;
    let n = param.len();
    let params = Params {
        n: n as u32,
        lr: cfg.lr,
        weight_decay: cfg.weight_decay,
        momentum: cfg.momentum,
        ..Params::default()
    };
    let binds = [
        Bind::read(1, grad),
        Bind::write(2, param),
        Bind::write(3, velocity),
    ];
    rec.dispatch_1d(OP, &SGD_STEP, &params, &binds, n as u64, WG)
}

/// AdamW step `step` (the first step is 1) over every element of `param`.
pub fn adamw_step(
    rec: &mut Recorder,
    cfg: &AdamW,
    step: u32,
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
) -> Result<()> {
    const OP: &str = "optim::adamw_step";
    check_tensors(OP, param, grad, &[m, v])?;
    check_hyper(
        OP,
        &[
            ("lr", cfg.lr),
            ("beta1", cfg.beta1),
            ("beta2", cfg.beta2),
            ("eps", cfg.eps),
            ("weight_decay", cfg.weight_decay),
        ],
    )?;
    if step == 0 {
        return Err(Error::Shape {
            op: OP,
            detail: "step must be ≥ 1 (bias correction divides by 1 − β^step)".into(),
        });
    }
    if !(0.0..1.0).contains(&cfg.beta1) || !(0.0..1.0).contains(&cfg.beta2) {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "beta1 = {} and beta2 = {} must lie in [0, 1)",
                cfg.beta1, cfg.beta2
            ),
        });
    }
    let (bc1, bc2) = cfg.bias_corrections(step);
    let n = param.len();
    let params = Params {
        n: n as u32,
        lr: cfg.lr,
        weight_decay: cfg.weight_decay,
        momentum: cfg.beta1,
        beta2: cfg.beta2,
        eps: cfg.eps,
        bc1: bc1 as f32,
        bc2: bc2 as f32,
        ..Params::default()
    };
    let binds = [
        Bind::read(1, grad),
        Bind::write(2, param),
        Bind::write(3, m),
        Bind::write(4, v),
    ];
    rec.dispatch_1d(OP, &ADAMW_STEP, &params, &binds, n as u64, WG)
}
