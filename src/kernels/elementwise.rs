//! Launchers for `shaders/elementwise.wgsl`. Each checks dtypes and shapes,
//! picks the pipeline and records one dispatch (none for empty tensors).

use crate::error::{Error, Result};
use crate::gpu::{Bind, KernelSpec, Recorder, Shader, Tensor};
use crate::kernels::check::{require_f32, require_same_shape};

pub use crate::types::Activation;

/// Invocations per workgroup in every elementwise entry point.
const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    alpha: f32,
    _pad: [u32; 2],
}

impl Params {
    fn new(n: usize, alpha: f32) -> Self {
        Params {
            n: n as u32,
            alpha,
            _pad: [0; 2],
        }
    }
}

const fn spec(entry: &'static str) -> KernelSpec {
    KernelSpec::new(Shader::Elementwise, entry)
}

/// `fill`: y = value.
pub const FILL: KernelSpec = spec("fill");
/// `copy`: y = x.
pub const COPY: KernelSpec = spec("copy");
/// `add`: y = a + b.
pub const ADD: KernelSpec = spec("add");
/// `scale`: y = alpha · x.
pub const SCALE: KernelSpec = spec("scale");
/// `axpy`: y += alpha · x.
pub const AXPY: KernelSpec = spec("axpy");

/// `act_forward` specialised for `act` (override ACT, shaders/activation.wgsl).
pub const fn act_forward_spec(act: Activation) -> KernelSpec {
    spec("act_forward").with("ACT", act as u32)
}

/// `act_backward_from_output` specialised for `act` (not GELU).
pub const fn act_backward_from_output_spec(act: Activation) -> KernelSpec {
    spec("act_backward_from_output").with("ACT", act as u32)
}

/// `act_backward` specialised for `act`.
pub const fn act_backward_spec(act: Activation) -> KernelSpec {
    spec("act_backward").with("ACT", act as u32)
}

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    let mut all = vec![FILL, COPY, ADD, SCALE, AXPY];
    all.extend(Activation::ALL.map(act_forward_spec));
    all.extend(Activation::ALL.map(act_backward_spec));
    all.extend(
        Activation::ALL
            .into_iter()
            .filter(|a| a.grad_from_output())
            .map(act_backward_from_output_spec),
    );
    all
}

/// `out[i] = value`
pub fn fill(rec: &mut Recorder, out: &Tensor, value: f32) -> Result<()> {
    const OP: &str = "elementwise::fill";
    require_f32(OP, out)?;
    let n = out.len();
    rec.dispatch_1d(
        OP,
        &FILL,
        &Params::new(n, value),
        &[Bind::write(3, out)],
        n as u64,
        WG,
    )
}

/// `out[i] = src[i]`
pub fn copy(rec: &mut Recorder, src: &Tensor, out: &Tensor) -> Result<()> {
    const OP: &str = "elementwise::copy";
    require_f32(OP, src)?;
    require_f32(OP, out)?;
    require_same_shape(OP, src, out)?;
    let n = out.len();
    let binds = [Bind::read(1, src), Bind::write(3, out)];
    rec.dispatch_1d(OP, &COPY, &Params::new(n, 0.0), &binds, n as u64, WG)
}

/// `out[i] = a[i] + b[i]`
pub fn add(rec: &mut Recorder, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    const OP: &str = "elementwise::add";
    for t in [a, b, out] {
        require_f32(OP, t)?;
    }
    require_same_shape(OP, a, b)?;
    require_same_shape(OP, a, out)?;
    let n = out.len();
    let binds = [Bind::read(1, a), Bind::read(2, b), Bind::write(3, out)];
    rec.dispatch_1d(OP, &ADD, &Params::new(n, 0.0), &binds, n as u64, WG)
}

/// `out[i] = alpha * a[i]`
pub fn scale(rec: &mut Recorder, a: &Tensor, alpha: f32, out: &Tensor) -> Result<()> {
    const OP: &str = "elementwise::scale";
    require_f32(OP, a)?;
    require_f32(OP, out)?;
    require_same_shape(OP, a, out)?;
    let n = out.len();
    let binds = [Bind::read(1, a), Bind::write(3, out)];
    rec.dispatch_1d(OP, &SCALE, &Params::new(n, alpha), &binds, n as u64, WG)
}

/// `y[i] += alpha * x[i]`, in place on `y`.
pub fn axpy(rec: &mut Recorder, alpha: f32, x: &Tensor, y: &Tensor) -> Result<()> {
    const OP: &str = "elementwise::axpy";
    require_f32(OP, x)?;
    require_f32(OP, y)?;
    require_same_shape(OP, x, y)?;
    let n = y.len();
    let binds = [Bind::read(1, x), Bind::write(3, y)];
    rec.dispatch_1d(OP, &AXPY, &Params::new(n, alpha), &binds, n as u64, WG)
}

/// `out[i] = act(z[i])`
pub fn act_forward(rec: &mut Recorder, act: Activation, z: &Tensor, out: &Tensor) -> Result<()> {
    const OP: &str = "elementwise::act_forward";
    require_f32(OP, z)?;
    require_f32(OP, out)?;
    require_same_shape(OP, z, out)?;
    let n = out.len();
    let binds = [Bind::read(1, z), Bind::write(3, out)];
    let kernel = &act_forward_spec(act);
    rec.dispatch_1d(OP, kernel, &Params::new(n, 0.0), &binds, n as u64, WG)
}

/// `grad_z[i] = grad_y[i] * act'(z[i])`
pub fn act_backward(
    rec: &mut Recorder,
    act: Activation,
    z: &Tensor,
    grad_y: &Tensor,
    grad_z: &Tensor,
) -> Result<()> {
    const OP: &str = "elementwise::act_backward";
    for t in [z, grad_y, grad_z] {
        require_f32(OP, t)?;
    }
    require_same_shape(OP, z, grad_y)?;
    require_same_shape(OP, z, grad_z)?;
    let n = grad_z.len();
    let binds = [
        Bind::read(1, z),
        Bind::read(2, grad_y),
        Bind::write(3, grad_z),
    ];
    let kernel = &act_backward_spec(act);
    rec.dispatch_1d(OP, kernel, &Params::new(n, 0.0), &binds, n as u64, WG)
}

/// `grad_z[i] = grad_y[i] * act'(z[i])`, with act' computed from the output
/// y = act(z) (identity, relu, tanh, sigmoid; GELU needs z).
pub fn act_backward_from_output(
    rec: &mut Recorder,
    act: Activation,
    y: &Tensor,
    grad_y: &Tensor,
    grad_z: &Tensor,
) -> Result<()> {
    const OP: &str = "elementwise::act_backward_from_output";
    for t in [y, grad_y, grad_z] {
        require_f32(OP, t)?;
    }
    require_same_shape(OP, y, grad_y)?;
    require_same_shape(OP, y, grad_z)?;
    if !act.grad_from_output() {
        return Err(Error::Shape {
            op: OP,
            detail: format!("{act}'s derivative needs the pre-activation z; use act_backward"),
        });
    }
    let n = grad_z.len();
    let binds = [
        Bind::read(1, y),
        Bind::read(2, grad_y),
        Bind::write(3, grad_z),
    ];
    let kernel = &act_backward_from_output_spec(act);
    rec.dispatch_1d(OP, kernel, &Params::new(n, 0.0), &binds, n as u64, WG)
}
