//! Launchers for `shaders/fused_mlp.wgsl`: a narrow trunk of dense layers
//! (every layer's output ≤ `MAX_WIDTH`; the input may be wider, it streams
//! through the tile in chunks) run whole per row tile, the tile's
//! activations kept in workgroup memory between layers
//! (docs/math.md §1, "fully fused trunk"):
//!
//! - forward, ONE dispatch: every layer's Y (and Z of GELU layers);
//! - backward, TWO dispatches: the layers walked backwards per tile
//!   (every D_l, and dX), then dW_l and db_l of all layers, each sum taken
//!   over the rows in order by one invocation: deterministic, no atomics.
//!
//! Parameters live in one flat buffer (W_l [in, out] row-major as in
//! `kernels::dense`, b_l) at offsets the caller chooses (`TrunkSpec`), so a
//! training graph binds its parameter arena as is; the gradients use the
//! same offsets in a buffer laid out like it. Activations and deltas are
//! flat too: layer l's [rows, out_l] block starts at rows × `y_col(l)`;
//! the LAST layer comes first, so the trunk's output is a view at 0.
//! Reference: `reference::fused_mlp`; tests: kernels-tests/fused_mlp.rs.

use crate::error::{Error, Result};
use crate::gpu::{Bind, DType, GpuContext, KernelSpec, Recorder, Shader, Tensor};
use crate::types::Activation;

pub use crate::reference::fused_mlp::TrunkLayer;

const OP: &str = "fused_mlp";

/// Widest layer output the fused kernels take (the trunk's input may be
/// wider).
pub const MAX_WIDTH: usize = 128;
/// Most layers in one fused trunk.
pub const MAX_DEPTH: usize = 8;
/// Rows per workgroup of the forward and backward kernels.
pub const TILE_ROWS: usize = 16;
/// Input features per weight-gradient workgroup.
const FEATURES: usize = 16;
/// Workgroup memory the kernels declare: two tiles of TILE_ROWS × MAX_WIDTH.
pub const WORKGROUP_BYTES: u64 = (2 * TILE_ROWS * MAX_WIDTH * 4) as u64;
const NONE: u32 = u32::MAX;

/// Environment variable choosing the kernels of a `Sharing::Hard` trunk:
/// `dense` (the default: dense layers), `auto` ([`measured_choice`]) or
/// `fused` (the fully fused kernels wherever the trunk fits them).
/// `Sharing::HardFused` always fuses. `auto` is opt-in because a fused
/// trunk has no per-layer graph nodes: GradNorm's last shared layer and
/// `retain_grad` on a trunk layer need dense layers.
pub const TRUNK_KERNELS_ENV: &str = "MANYTASK_TRUNK_KERNELS";

/// The kernels a hard-shared trunk runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrunkKernels {
    /// One fused dispatch forward, two backward (`trunk_forward`, ...).
    Fused,
    /// One dense layer after another (`kernels::dense`).
    Dense,
}

/// Whether layers of these output widths fit the fused kernels.
pub fn fits(widths: &[usize]) -> bool {
    (1..=MAX_DEPTH).contains(&widths.len()) && widths.iter().all(|w| (1..=MAX_WIDTH).contains(w))
}

/// The measured rule: the fused trunk only where it beat dense layers in
/// whole training steps (`manytask bench --filter trunk_step`, both timed
/// round-robin, batch 8 to 256, 3 layers of widths 8 to 128;
/// docs/benchmarks.md, "Fused trunk break-even"):
///
/// - GL on a CPU (llvmpipe): fused, 1.2–2.1× faster at every measured
///   shape: each GL dispatch costs far more there, and dense layers take
///   12 per step against the fused trunk's 3;
/// - Vulkan on a CPU (lavapipe): dense, 1.1–3.5× faster (a tie at batch
///   8): the tuned GEMMs outrun the fused kernels by more than the 9
///   saved launches cost;
/// - every other adapter: dense, until measured.
///
/// `rows` is part of the rule's signature for adapters whose break-even
/// depends on the batch; none measured so far does.
pub fn measured_choice(ctx: &GpuContext, rows: usize, widths: &[usize]) -> TrunkKernels {
    let _ = rows;
    let info = ctx.info();
    let llvmpipe_gl =
        info.backend == wgpu::Backend::Gl && info.device_type == wgpu::DeviceType::Cpu;
    if llvmpipe_gl && fits(widths) {
        TrunkKernels::Fused
    } else {
        TrunkKernels::Dense
    }
}

/// The kernels for a `Sharing::Hard` trunk of `widths` over `rows` rows,
/// as [`TRUNK_KERNELS_ENV`] says.
pub fn trunk_kernels(ctx: &GpuContext, rows: usize, widths: &[usize]) -> Result<TrunkKernels> {
    let setting = std::env::var(TRUNK_KERNELS_ENV).ok();
    trunk_kernels_for(setting.as_deref(), ctx, rows, widths)
}

/// [`trunk_kernels`] for the setting `setting` (None or "": the default,
/// dense); `fused` still needs a trunk that fits. An unknown setting is
/// an error.
pub fn trunk_kernels_for(
    setting: Option<&str>,
    ctx: &GpuContext,
    rows: usize,
    widths: &[usize],
) -> Result<TrunkKernels> {
    match setting.unwrap_or("") {
        "" | "dense" => Ok(TrunkKernels::Dense),
        "auto" => Ok(measured_choice(ctx, rows, widths)),
        "fused" if fits(widths) => Ok(TrunkKernels::Fused),
        "fused" => Ok(TrunkKernels::Dense),
        other => Err(Error::Shape {
            op: OP,
            detail: format!("{TRUNK_KERNELS_ENV}={other}: expected dense, auto or fused"),
        }),
    }
}

/// Workgroup sizes: one invocation per 4 columns of the widest layer, in
/// whole 8-lane vectors (llvmpipe's SIMD width; a GPU wave is wider, but
/// narrow trunks have little to spread anyway).
pub const LANE_COUNTS: [u32; 4] = [8, 16, 24, 32];

/// `trunk_forward` for workgroups of `lanes` invocations.
pub fn forward_spec(lanes: u32) -> KernelSpec {
    KernelSpec::new(Shader::FusedMlp, "trunk_forward").with("LANES", lanes)
}

/// `trunk_backward` (every D_l, and dX when `write_dx`, added to it with
/// `accumulate_dx`).
pub fn backward_spec(lanes: u32, write_dx: bool, accumulate_dx: bool) -> KernelSpec {
    KernelSpec::new(Shader::FusedMlp, "trunk_backward")
        .with("LANES", lanes)
        .with_flag("WRITE_DX", write_dx)
        .with_flag("ACCUMULATE_DX", accumulate_dx)
}

/// `trunk_weight_grads` (every dW_l and db_l, added with `accumulate`).
pub fn weight_grads_spec(lanes: u32, accumulate: bool) -> KernelSpec {
    KernelSpec::new(Shader::FusedMlp, "trunk_weight_grads")
        .with("LANES", lanes)
        .with_flag("ACCUMULATE", accumulate)
}

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    let mut all = Vec::new();
    for lanes in LANE_COUNTS {
        all.push(forward_spec(lanes));
        for (w, a) in [(false, false), (true, false), (true, true)] {
            all.push(backward_spec(lanes, w, a));
        }
        all.extend([false, true].map(|a| weight_grads_spec(lanes, a)));
    }
    all
}

/// Where a layer's parameters start in the parameter buffer (elements).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamOffsets {
    /// First element of W [in, out].
    pub w: usize,
    /// First element of b \[out\], if the layer has one.
    pub b: Option<usize>,
}

/// A trunk's shape and parameter layout, checked against the adapter.
#[derive(Clone, Debug)]
pub struct TrunkSpec {
    inputs: usize,
    layers: Vec<TrunkLayer>,
    offsets: Vec<ParamOffsets>,
}

fn shape_err(detail: String) -> Error {
    Error::Shape { op: OP, detail }
}

impl TrunkSpec {
    /// Parameters packed in layer order: W_0, b_0, W_1, b_1, …
    pub fn packed(ctx: &GpuContext, inputs: usize, layers: &[TrunkLayer]) -> Result<TrunkSpec> {
        let mut at = 0;
        let offsets = layers
            .iter()
            .scan(inputs, |fan_in, l| {
                let w = at;
                at += *fan_in * l.outputs;
                let b = l.bias.then_some(at);
                at += if l.bias { l.outputs } else { 0 };
                *fan_in = l.outputs;
                Some(ParamOffsets { w, b })
            })
            .collect::<Vec<_>>();
        TrunkSpec::with_offsets(ctx, inputs, layers, &offsets)
    }

    /// Parameters at the given offsets (e.g. a training graph's arena).
    /// Fails when a width or the depth exceeds what the fused kernels take
    /// on this adapter, or when two parameters overlap.
    pub fn with_offsets(
        ctx: &GpuContext,
        inputs: usize,
        layers: &[TrunkLayer],
        offsets: &[ParamOffsets],
    ) -> Result<TrunkSpec> {
        if layers.is_empty() || layers.len() > MAX_DEPTH {
            return Err(shape_err(format!(
                "{} layers: a fused trunk has 1 to {MAX_DEPTH}; chain several trunks or use kernels::dense layers",
                layers.len()
            )));
        }
        if offsets.len() != layers.len() {
            return Err(shape_err(format!(
                "{} parameter offsets for {} layers",
                offsets.len(),
                layers.len()
            )));
        }
        let widths: Vec<usize> = std::iter::once(inputs)
            .chain(layers.iter().map(|l| l.outputs))
            .collect();
        if inputs == 0 {
            return Err(shape_err(format!(
                "widths {widths:?}: the trunk's input has no features"
            )));
        }
        if let Some(w) = widths[1..].iter().find(|&&w| w == 0 || w > MAX_WIDTH) {
            return Err(shape_err(format!(
                "widths {widths:?}: the fused trunk's layers output 1..={MAX_WIDTH} features \
                 (width {w} is out of range; the input may be wider); \
                 use kernels::dense layers (Graph::dense) for wider layers"
            )));
        }
        let limit = ctx.limits().max_compute_workgroup_storage_size as u64;
        if WORKGROUP_BYTES > limit {
            return Err(Error::MissingFeature {
                op: OP,
                feature: "16 KiB of workgroup memory (max_compute_workgroup_storage_size)",
                adapter: format!("{} (allows {limit} bytes)", ctx.describe()),
                hint: "use kernels::dense layers (Graph::dense) on this adapter",
            });
        }
        let trunk = TrunkSpec {
            inputs,
            layers: layers.to_vec(),
            offsets: offsets.to_vec(),
        };
        // Parameter windows must not overlap (the gradients share them).
        let mut windows: Vec<(usize, usize, usize)> = Vec::new();
        for (l, o) in offsets.iter().enumerate() {
            let (fan_in, fan_out) = (widths[l], widths[l + 1]);
            windows.push((o.w, o.w + fan_in * fan_out, l));
            if o.b.is_some() != layers[l].bias {
                return Err(shape_err(format!(
                    "layer {l}: give a bias offset exactly when the layer has a bias"
                )));
            }
            if let Some(b) = o.b {
                windows.push((b, b + fan_out, l));
            }
        }
        windows.sort_unstable();
        if let Some(w) = windows.windows(2).find(|w| w[1].0 < w[0].1) {
            return Err(shape_err(format!(
                "the parameters of layers {} and {} overlap at element {}",
                w[0].2, w[1].2, w[1].0
            )));
        }
        if trunk.param_len() > u32::MAX as usize {
            return Err(shape_err("parameter offsets do not fit in u32".into()));
        }
        Ok(trunk)
    }

    /// Width of the trunk's input.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// The layers, input side first.
    pub fn layers(&self) -> &[TrunkLayer] {
        &self.layers
    }

    /// Each layer's parameter offsets.
    pub fn offsets(&self) -> &[ParamOffsets] {
        &self.offsets
    }

    /// Invocations per workgroup for this trunk (`LANE_COUNTS`): enough
    /// for the widest layer, or the input up to one tile width (a wider
    /// input's dX is written in chunks of 4·lanes columns).
    fn lanes(&self) -> u32 {
        let widest = self
            .layers
            .iter()
            .map(|l| l.outputs)
            .fold(self.inputs.min(MAX_WIDTH), usize::max);
        (widest.div_ceil(4).next_multiple_of(8)).min(MAX_WIDTH / 4) as u32
    }

    /// Width of the last layer's output.
    pub fn outputs(&self) -> usize {
        self.layers.last().map_or(0, |l| l.outputs)
    }

    /// Inputs of layer l.
    pub fn fan_in(&self, l: usize) -> usize {
        if l == 0 {
            self.inputs
        } else {
            self.layers[l - 1].outputs
        }
    }

    /// One past the last parameter element.
    pub fn param_len(&self) -> usize {
        self.offsets
            .iter()
            .enumerate()
            .map(|(l, o)| {
                let w_end = o.w + self.fan_in(l) * self.layers[l].outputs;
                o.b.map_or(w_end, |b| w_end.max(b + self.layers[l].outputs))
            })
            .max()
            .unwrap_or(0)
    }

    /// Column offset of layer l's block in the activations (and deltas):
    /// the block starts at rows × y_col. The last layer comes first.
    pub fn y_col(&self, l: usize) -> usize {
        let last = self.layers.len() - 1;
        if l == last {
            0
        } else {
            self.layers[last].outputs + self.layers[..l].iter().map(|x| x.outputs).sum::<usize>()
        }
    }

    /// Column offset of layer l's Z among the GELU layers' Zs (None: not
    /// GELU, Z not kept; its derivative comes from Y).
    pub fn z_col(&self, l: usize) -> Option<usize> {
        (self.layers[l].act == Activation::Gelu).then(|| {
            self.layers[..l]
                .iter()
                .filter(|x| x.act == Activation::Gelu)
                .map(|x| x.outputs)
                .sum()
        })
    }

    /// Elements of the activations buffer (and of the deltas).
    pub fn acts_len(&self, rows: usize) -> usize {
        rows * self.layers.iter().map(|l| l.outputs).sum::<usize>()
    }

    /// Elements of the Z buffer (0 when no layer is GELU).
    pub fn zs_len(&self, rows: usize) -> usize {
        rows * self
            .layers
            .iter()
            .filter(|l| l.act == Activation::Gelu)
            .map(|l| l.outputs)
            .sum::<usize>()
    }

    /// The trunk's output Y_last [rows, outputs]: a view at the start of
    /// the activations.
    pub fn output(&self, ctx: &GpuContext, acts: &Tensor, rows: usize) -> Result<Tensor> {
        acts.view(ctx, 0, &[rows, self.outputs()])
    }

    /// 2·rows·Σ in_l·out_l: the flops of the forward pass; backward does
    /// twice that (dX chain and dW), minus layer 0's dX when not asked.
    pub fn forward_flops(&self, rows: usize) -> f64 {
        (0..self.layers.len())
            .map(|l| 2.0 * (rows * self.fan_in(l) * self.layers[l].outputs) as f64)
            .sum()
    }

    /// Weight-gradient workgroups of layer l: its inputs plus the bias row
    /// in blocks of FEATURES.
    fn grad_blocks(&self, l: usize) -> usize {
        (self.fan_in(l) + 1).div_ceil(FEATURES)
    }

    /// The shader's parameter block; `keep_z: false` leaves the GELU
    /// layers' Z unwritten (a forward pass nobody differentiates).
    fn params(&self, rows: usize, groups_x: u32, keep_z: bool) -> Params {
        let mut layers = [[0u32; 12]; MAX_DEPTH];
        let mut first_block = 0;
        for (l, layer) in self.layers.iter().enumerate() {
            let o = self.offsets[l];
            layers[l] = [
                self.fan_in(l) as u32,
                layer.outputs as u32,
                layer.act as u32,
                o.w as u32,
                o.b.map_or(NONE, |b| b as u32),
                self.y_col(l) as u32,
                self.z_col(l).filter(|_| keep_z).map_or(NONE, |z| z as u32),
                first_block as u32,
                0,
                0,
                0,
                0,
            ];
            first_block += self.grad_blocks(l);
        }
        Params {
            rows: rows as u32,
            depth: self.layers.len() as u32,
            groups_x,
            blocks: first_block as u32,
            layers,
        }
    }

    /// An upper estimate of the loop iterations one invocation of the
    /// forward, backward or weight-gradient kernel runs (the most of the
    /// three):
    /// input chunks (tile loads and products), dX chunks, every layer's
    /// product and row loops, and the weight gradients' walk over rows.
    fn loop_iterations(&self, rows: usize) -> u64 {
        let lanes = self.lanes() as u64;
        let tile = (TILE_ROWS * MAX_WIDTH) as u64;
        let chunks = (self.inputs as u64).div_ceil(MAX_WIDTH as u64);
        let layers: u64 = (0..self.layers.len())
            .map(|l| (self.fan_in(l).min(MAX_WIDTH) + TILE_ROWS + 8) as u64)
            .sum();
        // Forward: X chunks (tile load + product + rows); backward: dX
        // in chunks of 4·lanes columns (product + rows).
        let per_chunk = MAX_WIDTH as u64 + TILE_ROWS as u64;
        let forward = chunks * (tile.div_ceil(lanes) + per_chunk) + layers;
        let backward =
            tile.div_ceil(lanes) + (self.inputs as u64).div_ceil(4 * lanes) * per_chunk + layers;
        let sums = rows as u64 + MAX_DEPTH as u64;
        forward.max(backward).max(sums)
    }

    fn total_grad_blocks(&self) -> usize {
        (0..self.layers.len()).map(|l| self.grad_blocks(l)).sum()
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    depth: u32,
    groups_x: u32,
    blocks: u32,
    /// Per layer: inputs, outputs, act, w_off, b_off, y_col, z_col,
    /// first_block, 4 × padding (`Layer` in the shader).
    layers: [[u32; 12]; MAX_DEPTH],
}

fn require_f32(t: &Tensor) -> Result<()> {
    if t.dtype() != DType::F32 {
        return Err(Error::DType {
            op: OP,
            got: t.dtype(),
            supported: "f32 (the fused trunk has no f16 kernels; use kernels::dense for f16)",
        });
    }
    Ok(())
}

fn require_shape(what: &str, t: &Tensor, shape: &[usize]) -> Result<()> {
    require_f32(t)?;
    if t.shape() != shape {
        return Err(shape_err(format!(
            "{what} '{}' is {:?}, expected {shape:?}",
            t.label(),
            t.shape()
        )));
    }
    Ok(())
}

fn require_len(what: &str, t: &Tensor, len: usize) -> Result<()> {
    require_f32(t)?;
    if t.len() < len {
        return Err(shape_err(format!(
            "{what} '{}' has {} elements; the trunk needs {len}",
            t.label(),
            t.len()
        )));
    }
    Ok(())
}

/// Checks X and the flat buffers every pass reads; returns rows.
fn check_common(
    ctx: &GpuContext,
    trunk: &TrunkSpec,
    x: &Tensor,
    params: &Tensor,
    acts: &Tensor,
    zs: Option<&Tensor>,
    need_zs: bool,
) -> Result<usize> {
    require_f32(x)?;
    let rows = match *x.shape() {
        [rows, i] if i == trunk.inputs => rows,
        _ => {
            return Err(shape_err(format!(
                "X '{}' is {:?}; expected [rows, {}]",
                x.label(),
                x.shape(),
                trunk.inputs
            )))
        }
    };
    require_len("parameters", params, trunk.param_len())?;
    require_len("activations", acts, trunk.acts_len(rows))?;
    match (zs, trunk.zs_len(rows)) {
        (Some(z), need) if need > 0 => require_len("Z", z, need)?,
        (None, 0) => {}
        (None, _) if !need_zs => {}
        (Some(_), _) => {
            return Err(shape_err(
                "Z is kept only for GELU layers and this trunk has none: pass None".into(),
            ))
        }
        (None, _) => {
            return Err(shape_err(
                "the trunk has GELU layers: pass a Z buffer of TrunkSpec::zs_len elements".into(),
            ))
        }
    }
    if rows == 0 {
        return Err(shape_err(format!(
            "X '{}' has no rows: nothing to run (and no gradient to sum)",
            x.label()
        )));
    }
    let widest = trunk.inputs.max(MAX_WIDTH);
    let iterations = trunk.loop_iterations(rows);
    crate::kernels::check::require_loop_budget(
        ctx,
        OP,
        iterations,
        || {
            format!(
                "{rows} rows of {} inputs loop up to {iterations} times per invocation",
                trunk.inputs
            )
        },
        "fewer rows per step (the weight gradients walk every row) or a narrower input; \
         or use kernels::dense layers",
    )?;
    if trunk.acts_len(rows).max(rows * widest) > u32::MAX as usize {
        return Err(shape_err(format!(
            "{rows} rows: offsets do not fit in u32; split the batch"
        )));
    }
    Ok(rows)
}

/// The (x, y, 1) grid of `groups` workgroups and its x extent.
fn grid(rec: &Recorder, groups: usize) -> Result<([u32; 3], u32)> {
    let g = rec.grid_for_groups(OP, groups as u64)?;
    Ok((g, g[0]))
}

/// Every layer's Y (into `acts`, `TrunkSpec::acts_len` elements) and the
/// GELU layers' Z (into `zs`, `TrunkSpec::zs_len`, which the backward pass
/// needs; None when there are none, or for a forward pass only), in one
/// dispatch.
pub fn trunk_forward(
    rec: &mut Recorder,
    trunk: &TrunkSpec,
    x: &Tensor,
    params: &Tensor,
    acts: &Tensor,
    zs: Option<&Tensor>,
) -> Result<()> {
    let rows = check_common(rec.ctx(), trunk, x, params, acts, zs, false)?;
    let (groups, groups_x) = grid(rec, rows.div_ceil(TILE_ROWS))?;
    let keep_z = zs.is_some();
    let stand_in;
    let zs = match zs {
        Some(z) => z,
        None => {
            stand_in = rec.ctx().stand_in("fused_mlp.unused_z", 4, DType::F32)?;
            &stand_in
        }
    };
    let binds = [
        Bind::read(1, x),
        Bind::read(2, params),
        Bind::write(3, acts),
        Bind::write(4, zs),
    ];
    rec.dispatch(
        OP,
        &forward_spec(trunk.lanes()),
        &trunk.params(rows, groups_x, keep_z),
        &binds,
        groups,
    )
}

/// Where the backward pass writes. `dx: None` skips dX (the trunk reads
/// data). `accumulate` adds dW and db into `grads` (laid out like the
/// parameters), `accumulate_dx` adds into dX; otherwise they are
/// overwritten. `deltas` ([`TrunkSpec::acts_len`] elements) receives
/// every D_l between the two dispatches.
#[derive(Clone, Copy, Debug)]
pub struct TrunkGrads<'t> {
    /// dX [rows, inputs], or None to skip it.
    pub dx: Option<&'t Tensor>,
    /// dW and db of every layer, laid out like the parameters.
    pub grads: &'t Tensor,
    /// Scratch for every layer's D_l.
    pub deltas: &'t Tensor,
    /// Add into `grads` instead of overwriting.
    pub accumulate: bool,
    /// Add into dX instead of overwriting.
    pub accumulate_dx: bool,
}

/// Backward of `trunk_forward` from `dy = dL/dY_last` and what the forward
/// pass kept (`acts`, `zs`): two dispatches.
#[allow(clippy::too_many_arguments)]
pub fn trunk_backward(
    rec: &mut Recorder,
    trunk: &TrunkSpec,
    x: &Tensor,
    params: &Tensor,
    acts: &Tensor,
    zs: Option<&Tensor>,
    dy: &Tensor,
    grads: &TrunkGrads,
) -> Result<()> {
    let rows = check_common(rec.ctx(), trunk, x, params, acts, zs, true)?;
    require_shape("dL/dY", dy, &[rows, trunk.outputs()])?;
    if let Some(dx) = grads.dx {
        require_shape("dX", dx, &[rows, trunk.inputs])?;
    }
    require_len("gradients", grads.grads, trunk.param_len())?;
    require_len("deltas", grads.deltas, trunk.acts_len(rows))?;
    let ctx = rec.ctx();
    let (unused_z, unused_dx);
    let zs = match zs {
        Some(z) => z,
        None => {
            unused_z = ctx.stand_in("fused_mlp.unused_z", 4, DType::F32)?;
            &unused_z
        }
    };
    let dx = match grads.dx {
        Some(dx) => dx,
        None => {
            unused_dx = ctx.stand_in("fused_mlp.unused_dx", 4, DType::F32)?;
            &unused_dx
        }
    };
    // Check the second dispatch's bindings too before recording the first,
    // so a rejected call leaves the recorder as it was.
    let walk = [
        Bind::read(2, params),
        Bind::read(5, acts),
        Bind::read(6, zs),
        Bind::read(7, dy),
        Bind::write(8, dx),
        Bind::write(9, grads.deltas),
    ];
    let sums = [
        Bind::read(1, x),
        Bind::read(5, acts),
        Bind::read(10, grads.deltas),
        Bind::write(11, grads.grads),
    ];
    for binds in [&walk[..], &sums[..]] {
        crate::gpu::check_aliasing(OP, binds)?;
    }
    let (groups, groups_x) = grid(rec, rows.div_ceil(TILE_ROWS))?;
    let (grad_groups, grad_x) = grid(rec, trunk.total_grad_blocks())?;
    rec.dispatch(
        OP,
        &backward_spec(trunk.lanes(), grads.dx.is_some(), grads.accumulate_dx),
        &trunk.params(rows, groups_x, true),
        &walk,
        groups,
    )?;
    rec.dispatch(
        OP,
        &weight_grads_spec(trunk.lanes(), grads.accumulate),
        &trunk.params(rows, grad_x, true),
        &sums,
        grad_groups,
    )
}
