//! Launchers for `shaders/layer_stitch.wgsl`: the layer-stitch unit of
//! sluice networks (z_t = Σ_k β_tk h_tk over K layer outputs of task t),
//! its input gradient and its deterministic β gradient.
//! Reference: `reference::layer_stitch`; tests: kernels-tests/layer_stitch.rs.

use crate::error::{Error, Result};
use crate::gpu::{Bind, KernelSpec, Recorder, Shader, Tensor};
use crate::kernels::check::require_f32;

const WG: u64 = 256;

/// `layer_stitch_mix`: z = Σ_k β_k h_k (added into z with `accumulate`).
pub fn mix_spec(accumulate: bool) -> KernelSpec {
    KernelSpec::new(Shader::LayerStitch, "layer_stitch_mix").with_flag("ACCUMULATE", accumulate)
}

/// `layer_stitch_spread`: dh_k = β_k dz (added with `accumulate`).
pub fn spread_spec(accumulate: bool) -> KernelSpec {
    KernelSpec::new(Shader::LayerStitch, "layer_stitch_spread").with_flag("ACCUMULATE", accumulate)
}

/// `layer_stitch_beta_grad`: dβ_tk = ⟨dz_t, h_tk⟩ (added with
/// `accumulate`).
pub fn beta_grad_spec(accumulate: bool) -> KernelSpec {
    KernelSpec::new(Shader::LayerStitch, "layer_stitch_beta_grad")
        .with_flag("ACCUMULATE", accumulate)
}

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    [false, true]
        .into_iter()
        .flat_map(|a| [mix_spec(a), spread_spec(a), beta_grad_spec(a)])
        .collect()
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    channels: u32,
    tasks: u32,
    layers: u32,
    row_groups: u32,
    _pad: [u32; 3],
}

/// The shape of one unit: H is [rows, layers·tasks·channels] (layer k's
/// task blocks at columns k·T·C ..), z is [rows, tasks·channels], β is
/// [tasks, layers].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerStitch {
    /// T.
    pub tasks: usize,
    /// K: layer outputs mixed.
    pub layers: usize,
}

impl LayerStitch {
    /// (rows, channels), checked.
    fn check(
        &self,
        op: &'static str,
        h: &Tensor,
        beta: &Tensor,
        z: &Tensor,
    ) -> Result<(usize, usize)> {
        for t in [h, beta, z] {
            require_f32(op, t)?;
        }
        let bad = |detail: String| Error::Shape { op, detail };
        let (&[rows, hw], &[zr, zw]) = (h.shape(), z.shape()) else {
            return Err(bad(format!(
                "H '{}' {:?} and z '{}' {:?} must be matrices",
                h.label(),
                h.shape(),
                z.label(),
                z.shape()
            )));
        };
        if self.tasks == 0 || self.layers == 0 {
            return Err(bad("a layer stitch needs ≥ 1 task and ≥ 1 layer".into()));
        }
        if zr != rows || hw != self.layers * zw || zw % self.tasks != 0 {
            return Err(bad(format!(
                "H {:?} must be [rows, {} layers × z's columns] and z {:?} [rows, {} tasks × channels]",
                h.shape(),
                self.layers,
                z.shape(),
                self.tasks
            )));
        }
        if beta.shape() != [self.tasks, self.layers] {
            return Err(bad(format!(
                "β '{}' is {:?}, expected [{}, {}]",
                beta.label(),
                beta.shape(),
                self.tasks,
                self.layers
            )));
        }
        Ok((rows, zw / self.tasks))
    }

    fn params(&self, rows: usize, channels: usize, row_groups: u32) -> Params {
        Params {
            rows: rows as u32,
            channels: channels as u32,
            tasks: self.tasks as u32,
            layers: self.layers as u32,
            row_groups,
            _pad: [0; 3],
        }
    }
}

/// z (+)= Σ_k β_tk h_tk (forward).
pub fn layer_stitch_mix(
    rec: &mut Recorder,
    unit: &LayerStitch,
    h: &Tensor,
    beta: &Tensor,
    z: &Tensor,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "layer_stitch::mix";
    let (rows, channels) = unit.check(OP, h, beta, z)?;
    let n = z.len() as u64;
    let [gx, gy, gz] = rec.grid_for_groups(OP, n.div_ceil(WG))?;
    let binds = [Bind::read(1, h), Bind::read(2, beta), Bind::write(3, z)];
    let params = unit.params(rows, channels, gx);
    rec.dispatch(OP, &mix_spec(accumulate), &params, &binds, [gx, gy, gz])
}

/// dH (+)= β_tk · dz_t for every layer k (the input gradient).
pub fn layer_stitch_spread(
    rec: &mut Recorder,
    unit: &LayerStitch,
    dz: &Tensor,
    beta: &Tensor,
    dh: &Tensor,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "layer_stitch::spread";
    let (rows, channels) = unit.check(OP, dh, beta, dz)?;
    let n = dz.len() as u64;
    let [gx, gy, gz] = rec.grid_for_groups(OP, n.div_ceil(WG))?;
    let binds = [Bind::read(1, dz), Bind::read(2, beta), Bind::write(3, dh)];
    let params = unit.params(rows, channels, gx);
    rec.dispatch(OP, &spread_spec(accumulate), &params, &binds, [gx, gy, gz])
}

/// dβ_tk (+)= ⟨dz_t, h_tk⟩ summed over rows and channels, deterministic.
pub fn layer_stitch_beta_grad(
    rec: &mut Recorder,
    unit: &LayerStitch,
    h: &Tensor,
    dz: &Tensor,
    dbeta: &Tensor,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "layer_stitch::beta_grad";
    let (rows, channels) = unit.check(OP, h, dbeta, dz)?;
    let groups = (unit.tasks * unit.layers) as u64;
    let [gx, gy, gz] = rec.grid_for_groups(OP, groups)?;
    if gy > 1 {
        return Err(Error::GridTooLarge {
            op: OP,
            detail: format!("{groups} (task, layer) pairs need one workgroup row"),
        });
    }
    // Each lane walks every row, its channels strided by 256.
    let iterations = rows as u64 * (channels as u64).div_ceil(256) + 8;
    crate::kernels::check::require_row_walk(rec.ctx(), OP, rows, channels, iterations)?;
    let binds = [Bind::read(1, h), Bind::write(3, dbeta), Bind::read(4, dz)];
    let params = unit.params(rows, channels, gx);
    rec.dispatch(
        OP,
        &beta_grad_spec(accumulate),
        &params,
        &binds,
        [gx, gy, gz],
    )
}
