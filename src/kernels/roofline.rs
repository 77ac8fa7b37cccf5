//! Launchers for `shaders/roofline.wgsl`: the compute and bandwidth
//! ceilings `manytask bench` measures each kernel against.

use crate::error::{Error, Result};
use crate::gpu::{Bind, DType, KernelSpec, Recorder, Shader, Tensor};

/// `fma_peak`: independent FMA chains per invocation (compute ceiling).
pub const FMA_PEAK: KernelSpec = KernelSpec::new(Shader::Roofline, "fma_peak");
/// `copy_bandwidth`: a vec4 buffer copy (memory ceiling).
pub const COPY_BANDWIDTH: KernelSpec = KernelSpec::new(Shader::Roofline, "copy_bandwidth");

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    vec![FMA_PEAK, COPY_BANDWIDTH]
}

const WG: u64 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    iters: u32,
    n4: u32,
    row: u32,
    _pad: u32,
}

/// Flops of one `fma_peak` run: 8 chains × 4 lanes × 2 flops per step.
pub fn fma_flops(invocations: u64, iters: u32) -> f64 {
    invocations as f64 * iters as f64 * 64.0
}

/// `out` (f32, a multiple of 4 × 256 elements) receives one vec4 per
/// invocation; `out.len() / 4` invocations run `iters` steps each.
pub fn fma_peak(rec: &mut Recorder, out: &Tensor, iters: u32) -> Result<u64> {
    const OP: &str = "roofline::fma_peak";
    let vec4s = out.len() as u64 / 4;
    if out.dtype() != DType::F32 || vec4s == 0 || !vec4s.is_multiple_of(WG) {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "'{}' must be f32 with a multiple of 1024 elements",
                out.label()
            ),
        });
    }
    let groups = (vec4s / WG) as u32;
    let params = Params {
        iters,
        n4: vec4s as u32,
        row: 0,
        _pad: 0,
    };
    rec.dispatch(
        OP,
        &FMA_PEAK,
        &params,
        &[Bind::write(2, out)],
        [groups, 1, 1],
    )?;
    Ok(vec4s)
}

/// dst = src (same f32 length, a multiple of 4): 2 × size bytes moved.
pub fn copy_bandwidth(rec: &mut Recorder, src: &Tensor, dst: &Tensor) -> Result<()> {
    const OP: &str = "roofline::copy_bandwidth";
    if src.len() != dst.len()
        || !src.len().is_multiple_of(4)
        || src.dtype() != DType::F32
        || dst.dtype() != DType::F32
    {
        return Err(Error::Shape {
            op: OP,
            detail: "src and dst must be f32 of one length, a multiple of 4".into(),
        });
    }
    let n4 = (src.len() / 4) as u64;
    let [gx, gy, gz] = rec.grid_for_groups(OP, n4.div_ceil(WG))?;
    let params = Params {
        iters: 0,
        n4: n4 as u32,
        row: gx * WG as u32,
        _pad: 0,
    };
    rec.dispatch(
        OP,
        &COPY_BANDWIDTH,
        &params,
        &[Bind::read(1, src), Bind::write(2, dst)],
        [gx, gy, gz],
    )
}
