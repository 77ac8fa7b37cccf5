//! Launchers for `shaders/layer_stitch.wgsl`: the layer-stitch unit of
//! sluice networks (z_t = Σ_k β_tk h_tk over K layer outputs of task t),
//! its input gradient and its deterministic β gradient.
//! Reference: `reference::layer_stitch`; tests: kernels-tests/layer_stitch.rs.

use crate::error::{Error, Result};
use crate::gpu::{Bind, DType, KernelSpec, Recorder, Shader, Tensor};
use crate::kernels::check::require_f32;
use crate::kernels::cross_stitch::{sum_partials, ChunkPlan, Lanes, Stage2};

const WG: u64 = 256;

/// `layer_stitch_mix`: z = Σ_k β_k h_k (added into z with `accumulate`).
pub fn mix_spec(accumulate: bool) -> KernelSpec {
    KernelSpec::new(Shader::LayerStitch, "layer_stitch_mix").with_flag("ACCUMULATE", accumulate)
}

/// `layer_stitch_spread`: dh_k = β_k dz (added with `accumulate`).
pub fn spread_spec(accumulate: bool) -> KernelSpec {
    KernelSpec::new(Shader::LayerStitch, "layer_stitch_spread").with_flag("ACCUMULATE", accumulate)
}

/// `layer_stitch_beta_partials`: dβ's first stage, per-chunk partial
/// sums (vec4 loads with `lanes` = `Lanes::Vec4`); the second stage is
/// `cross_stitch`'s fixed-order sum.
pub fn beta_partials_spec(lanes: Lanes) -> KernelSpec {
    KernelSpec::new(Shader::LayerStitch, "layer_stitch_beta_partials")
        .with_flag("VEC4", lanes == Lanes::Vec4)
}

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    [false, true]
        .into_iter()
        .flat_map(|a| [mix_spec(a), spread_spec(a)])
        .chain([Lanes::Vec4, Lanes::Scalar].map(beta_partials_spec))
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
    chunk_rows: u32,
    chunks: u32,
    _pad: u32,
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
            chunk_rows: 0,
            chunks: 0,
            _pad: 0,
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

/// dβ_tk (+)= ⟨dz_t, h_tk⟩ summed over rows and channels in two
/// fixed-order stages (row chunks, then their partials): deterministic,
/// and exact past llvmpipe's loop cap.
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
    // Stage 1: per-chunk partials [chunk·G + g, T, K]; stage 2: their
    // fixed-order sum (a 256-lane tree per entry) into dβ.
    let groups = channels.div_ceil(4) as u64;
    let per_chunk = (unit.tasks * unit.layers.div_ceil(4)) as u64 * groups;
    let plan = ChunkPlan::new(rows, per_chunk, groups, Stage2::Tree.lanes(), channels == 0);
    crate::kernels::check::require_row_walk(
        rec.ctx(),
        OP,
        rows,
        channels,
        plan.iterations(Stage2::Tree.lanes()),
    )?;
    let outputs = dbeta.len() as u64;
    let partials = Tensor::empty(
        rec.ctx(),
        "layer_stitch dβ partials",
        &[(plan.terms * outputs).max(1) as usize],
        DType::F32,
    )?;
    if plan.terms > 0 {
        let [gx, gy, gz] = rec.grid_for_groups(OP, (plan.chunks * per_chunk).div_ceil(WG))?;
        let params = Params {
            chunk_rows: plan.chunk_rows as u32,
            chunks: plan.chunks as u32,
            ..unit.params(rows, channels, gx)
        };
        let binds = [
            Bind::read(1, h),
            Bind::write(3, &partials),
            Bind::read(4, dz),
            Bind::read(5, h),
            Bind::read(7, dz),
        ];
        let spec = beta_partials_spec(Lanes::for_channels(channels));
        rec.dispatch(OP, &spec, &params, &binds, [gx, gy, gz])?;
    }
    sum_partials(
        rec,
        OP,
        Stage2::Tree,
        &partials,
        dbeta,
        plan.terms,
        accumulate,
    )
}
