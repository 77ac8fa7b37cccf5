//! The fused dense layer (docs/math.md §1) on the GEMM kernels of
//! `shaders/gemm.wgsl` (the fusions live in `shaders/gemm_common.wgsl`):
//!
//! - forward, ONE dispatch: `Y = act(X·W + b)`, optionally also writing Z;
//! - backward, TWO dispatches and no stored D: `dX = (G ⊙ act'(S))·Wᵀ`
//!   with the derivative applied while loading G (prologue on A), and
//!   `dW = Xᵀ·(G ⊙ act'(S))` with the bias gradient `db = colsum(D)`
//!   summed in the same k loop (prologue on B + BGRAD), deterministically.
//!
//! S is what the forward pass kept: Y itself for identity/relu/tanh/sigmoid
//! (for relu, Y > 0 is the mask: no extra buffer at all), Z for GELU.
//! W is stored inputs×outputs (the layout the forward GEMM reads as vec4s);
//! checkpoints convert to PyTorch's [out, in] at I/O.
//! Reference: `reference::dense`; tests: kernels-tests/dense.rs.

use crate::error::{Error, Result};
use crate::gpu::{Recorder, Tensor};
use crate::kernels::elementwise;
use crate::kernels::gemm::{self, Epilogue, Fusion, Layout, Operand, Prologue, Saved, Variant};
use crate::types::Activation;

const OP: &str = "dense";

/// How the backward pass forms D = G ⊙ act'(S).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackwardPlan {
    /// Never stored: applied while loading G in both GEMMs (2 dispatches).
    /// Saves D's memory traffic, at the price of re-evaluating act' in
    /// every GEMM tile that loads G.
    Prologue,
    /// Stored once by an elementwise pass, then read by both GEMMs
    /// (3 dispatches; the bias gradient is still fused into dW). f32 only.
    StoreDelta,
}

impl BackwardPlan {
    /// The plan measured faster for this adapter and element type. On CPU
    /// adapters (lavapipe) the prologue's extra loads inside the GEMM cost
    /// more than one elementwise pass over D (measured: `manytask bench
    /// --filter dense`); GPUs are expected to prefer the prologue (D's
    /// traffic saved, GEMM compute-bound) but that is not measured here.
    /// f16 always uses the prologue (the elementwise kernels are f32).
    pub fn default_for(ctx: &crate::gpu::GpuContext, dtype: crate::types::DType) -> BackwardPlan {
        if dtype == crate::types::DType::F32 && ctx.info().device_type == wgpu::DeviceType::Cpu {
            BackwardPlan::StoreDelta
        } else {
            BackwardPlan::Prologue
        }
    }
}

/// One dense layer's operands: X [rows, inputs], W [inputs, outputs],
/// optional b \[outputs\].
#[derive(Clone, Copy, Debug)]
pub struct Dense<'t> {
    /// Input [rows, inputs].
    pub x: &'t Tensor,
    /// Weight [inputs, outputs].
    pub w: &'t Tensor,
    /// Bias \[outputs\], if any.
    pub bias: Option<&'t Tensor>,
    /// Activation of the output.
    pub act: Activation,
}

/// Where the backward pass writes. `dx: None` skips the dX GEMM (first
/// layer). `accumulate` adds dW and db into the existing gradients (a
/// weight used twice), `accumulate_dx` adds dX (an input used twice);
/// otherwise they are overwritten.
#[derive(Clone, Copy, Debug)]
pub struct DenseGrads<'t> {
    /// dX [rows, inputs], or None to skip it.
    pub dx: Option<&'t Tensor>,
    /// dW [inputs, outputs].
    pub dw: &'t Tensor,
    /// db \[outputs\] (required when the layer has a bias).
    pub db: Option<&'t Tensor>,
    /// Add into dW and db instead of overwriting them.
    pub accumulate: bool,
    /// Add into dX instead of overwriting it.
    pub accumulate_dx: bool,
    /// Where the `StoreDelta` plan keeps D ([rows, outputs]); None takes a
    /// pool buffer (the autograd graph passes a planned one).
    pub delta_scratch: Option<&'t Tensor>,
}

fn matrix(t: &Tensor, what: &str) -> Result<(usize, usize)> {
    match *t.shape() {
        [r, c] => Ok((r, c)),
        _ => Err(Error::Shape {
            op: OP,
            detail: format!(
                "{what} '{}' is {:?}; expected a matrix",
                t.label(),
                t.shape()
            ),
        }),
    }
}

/// Checks X and W and returns (rows, inputs, outputs).
fn dims(layer: &Dense) -> Result<(usize, usize, usize)> {
    let (rows, inputs) = matrix(layer.x, "X")?;
    let (w_in, outputs) = matrix(layer.w, "W")?;
    if w_in != inputs {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "X '{}' {:?} has {inputs} features but W '{}' {:?} expects {w_in} (W is stored [inputs, outputs])",
                layer.x.label(),
                layer.x.shape(),
                layer.w.label(),
                layer.w.shape()
            ),
        });
    }
    Ok((rows, inputs, outputs))
}

/// `Y = act(X·W + b)` in one dispatch; with `z`, Z is written too (keep it
/// for GELU, whose derivative Y does not determine).
pub fn dense_forward(
    rec: &mut Recorder,
    variant: Option<Variant>,
    layer: &Dense,
    y: &Tensor,
    z: Option<&Tensor>,
) -> Result<()> {
    dims(layer)?;
    let epi = Epilogue {
        bias: layer.bias,
        act: layer.act,
        z_out: z,
        ..Epilogue::default()
    };
    gemm::gemm_fused(
        rec,
        variant,
        Layout::NN,
        layer.x,
        layer.w,
        y,
        &epi,
        &Fusion::default(),
    )
}

/// Backward of `dense_forward` from `g = dL/dY` and what the forward pass
/// kept (`saved`, same shape as Y): two dispatches (`Prologue`) or three
/// (`StoreDelta`); `plan: None` takes `BackwardPlan::default_for`.
pub fn dense_backward(
    rec: &mut Recorder,
    variant: Option<Variant>,
    plan: Option<BackwardPlan>,
    layer: &Dense,
    saved: Saved,
    g: &Tensor,
    grads: &DenseGrads,
) -> Result<()> {
    let (rows, inputs, outputs) = dims(layer)?;
    if g.shape() != [rows, outputs] || saved.tensor().shape() != [rows, outputs] {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "dL/dY '{}' {:?} and the saved '{}' {:?} must both be [{rows}, {outputs}] (Y's shape)",
                g.label(),
                g.shape(),
                saved.tensor().label(),
                saved.tensor().shape()
            ),
        });
    }
    if grads.db.is_some() != layer.bias.is_some() {
        return Err(Error::Shape {
            op: OP,
            detail: "pass db exactly when the layer has a bias".into(),
        });
    }
    // Everything is checked before the first dispatch is recorded, so a
    // rejected call leaves the recorder as it was.
    let expected: [(&str, Option<&Tensor>, Vec<usize>); 3] = [
        ("dX", grads.dx, vec![rows, inputs]),
        ("dW", Some(grads.dw), vec![inputs, outputs]),
        ("db", grads.db, vec![outputs]),
    ];
    for (name, t, shape) in expected {
        if let Some(t) = t {
            if t.shape() != shape.as_slice() {
                return Err(Error::Shape {
                    op: OP,
                    detail: format!(
                        "{name} '{}' is {:?}, expected {shape:?}",
                        t.label(),
                        t.shape()
                    ),
                });
            }
        }
    }
    gemm::check_prologue(
        OP,
        &Prologue {
            operand: Operand::A,
            saved,
            act: layer.act,
        },
    )?;
    let plan = plan.unwrap_or_else(|| BackwardPlan::default_for(rec.ctx(), g.dtype()));
    if plan == BackwardPlan::StoreDelta && g.dtype() != crate::types::DType::F32 {
        return Err(Error::DType {
            op: OP,
            got: g.dtype(),
            supported: "f32 for BackwardPlan::StoreDelta (use Prologue for f16)",
        });
    }
    let epi = Epilogue {
        beta: grads.accumulate.then_some(1.0),
        ..Epilogue::default()
    };
    let epi_dx = Epilogue {
        beta: grads.accumulate_dx.then_some(1.0),
        ..Epilogue::default()
    };
    if let Some(d) = grads.delta_scratch {
        if d.shape() != [rows, outputs] || d.dtype() != g.dtype() {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "scratch '{}' {:?} must be like dL/dY {:?}",
                    d.label(),
                    d.shape(),
                    g.shape()
                ),
            });
        }
    }
    if layer.act == Activation::Identity {
        // act' = 1: D is G itself, no prologue and no pass.
        return backward_from_delta(rec, variant, layer, g, grads, &epi, &epi_dx);
    }
    if plan == BackwardPlan::StoreDelta {
        // D = G ⊙ act'(S) once, then two plain GEMMs (bias grad fused).
        let own;
        let d = match grads.delta_scratch {
            Some(d) => d,
            None => {
                own = Tensor::empty(rec.ctx(), "dense.delta", &[rows, outputs], g.dtype())?;
                &own
            }
        };
        match saved {
            Saved::PreActivation(z) => elementwise::act_backward(rec, layer.act, z, g, d)?,
            Saved::Output(y) => elementwise::act_backward_from_output(rec, layer.act, y, g, d)?,
        }
        return backward_from_delta(rec, variant, layer, d, grads, &epi, &epi_dx);
    }
    if let Some(dx) = grads.dx {
        let fusion = Fusion {
            prologue: Some(Prologue {
                operand: Operand::A,
                saved,
                act: layer.act,
            }),
            bias_grad: None,
        };
        gemm::gemm_fused(rec, variant, Layout::NT, g, layer.w, dx, &epi_dx, &fusion)?;
    }
    let fusion = Fusion {
        prologue: Some(Prologue {
            operand: Operand::B,
            saved,
            act: layer.act,
        }),
        bias_grad: grads.db,
    };
    gemm::gemm_fused(
        rec,
        variant,
        Layout::TN,
        layer.x,
        g,
        grads.dw,
        &epi,
        &fusion,
    )
}

/// dX = D·Wᵀ and dW = Xᵀ·D with db fused, from a D already formed (G
/// itself for identity layers, or the stored D).
fn backward_from_delta(
    rec: &mut Recorder,
    variant: Option<Variant>,
    layer: &Dense,
    d: &Tensor,
    grads: &DenseGrads,
    epi: &Epilogue,
    epi_dx: &Epilogue,
) -> Result<()> {
    if let Some(dx) = grads.dx {
        gemm::gemm_fused(
            rec,
            variant,
            Layout::NT,
            d,
            layer.w,
            dx,
            epi_dx,
            &Fusion::default(),
        )?;
    }
    let fusion = Fusion {
        prologue: None,
        bias_grad: grads.db,
    };
    gemm::gemm_fused(rec, variant, Layout::TN, layer.x, d, grads.dw, epi, &fusion)
}
