//! Launchers for `shaders/gemm.wgsl`: C = act(alpha·op(A)·op(B) + beta·C +
//! bias), in four variants and four layouts, optionally batched.
//!
//! `gemm` picks the variant for the adapter and shape (see
//! `kernels::autotune`); `gemm_with` runs the variant you name (tests and
//! benches use it to check and time every variant).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::gpu::{Bind, GpuContext, KernelSpec, Recorder, Shader, Tensor};
use crate::kernels::autotune;
use crate::kernels::check::require_f32;
use crate::reference::activation::Activation;

pub use crate::reference::gemm::Layout;

/// GEMM implementations; all compute the same k-ordered fma chain per
/// output, so they agree to the rounding of fma itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// One invocation per output: the plain reference variant.
    Naive,
    /// 32 rows × 4 columns per invocation, A loads uniform across the
    /// workgroup, no workgroup memory.
    RegisterBlocked,
    /// One subgroup per workgroup, 32 rows × 4 columns per lane, A shared
    /// through subgroupShuffle; needs SUBGROUP and a fixed subgroup size ≥ 8.
    Subgroup,
    /// 64×64 workgroup-memory tiles.
    Tiled,
}

impl Variant {
    pub const ALL: [Variant; 4] = [
        Variant::Naive,
        Variant::RegisterBlocked,
        Variant::Subgroup,
        Variant::Tiled,
    ];

    pub fn entry(self) -> &'static str {
        match self {
            Variant::Naive => "gemm_naive",
            Variant::RegisterBlocked => "gemm_rb",
            Variant::Subgroup => "gemm_subgroup",
            Variant::Tiled => "gemm_tiled",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Variant::Naive => "naive",
            Variant::RegisterBlocked => "rb",
            Variant::Subgroup => "subgroup",
            Variant::Tiled => "tiled",
        }
    }

    /// (rows, columns) of C one workgroup computes.
    fn tile(self, subgroup_size: u32) -> (u64, u64) {
        match self {
            Variant::Naive => (16, 16),
            Variant::RegisterBlocked => (32, 4 * RB_WG as u64),
            Variant::Tiled => (64, 64),
            Variant::Subgroup => (32, 4 * subgroup_size as u64),
        }
    }

    /// Whether this adapter can run the variant.
    pub fn available(self, ctx: &GpuContext) -> bool {
        match self {
            Variant::Subgroup => subgroup_size(ctx).is_some(),
            _ => true,
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| {
                format!("unknown GEMM variant '{s}': expected naive, rb, subgroup or tiled")
            })
    }
}

/// The subgroup size `gemm_subgroup` can be specialised for: the adapter
/// must grant SUBGROUP and report one fixed size (a range would let the
/// driver pick a size the kernel was not built for).
pub fn subgroup_size(ctx: &GpuContext) -> Option<u32> {
    let g = ctx.granted();
    (g.subgroup
        && g.subgroup_min_size == g.subgroup_max_size
        && SUBGROUP_SIZES.contains(&g.subgroup_min_size))
    .then_some(g.subgroup_min_size)
}

/// Invocations of a `gemm_rb` workgroup (override RB_WG): 64 suits GPUs;
/// on lavapipe 8 and 64 measured the same within noise.
const RB_WG: u32 = 64;

/// Subgroup sizes `gemm_subgroup` supports: powers of two from 8 (its 16
/// rows come from at most two loads per lane) to 128, the largest devices
/// report.
pub const SUBGROUP_SIZES: [u32; 5] = [8, 16, 32, 64, 128];

/// The variants this adapter can run.
pub fn available_variants(ctx: &GpuContext) -> Vec<Variant> {
    Variant::ALL
        .into_iter()
        .filter(|v| v.available(ctx))
        .collect()
}

/// What happens to each output after the product:
/// `C = act(alpha·op(A)·op(B) + beta·C_old + bias)`.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'t> {
    pub alpha: f32,
    /// Accumulate into C (gradient accumulation): `Some(beta)`.
    pub beta: Option<f32>,
    /// One value per output column: shape [N] (shared by every batch) or
    /// [batch, N].
    pub bias: Option<&'t Tensor>,
    pub act: Activation,
}

impl Default for Epilogue<'_> {
    fn default() -> Self {
        Epilogue {
            alpha: 1.0,
            beta: None,
            bias: None,
            act: Activation::Identity,
        }
    }
}

/// The pipeline for one (variant, layout, epilogue) combination.
pub fn spec(
    variant: Variant,
    layout: Layout,
    beta: bool,
    bias: bool,
    act: Activation,
    subgroup_size: u32,
    vec_b: bool,
) -> KernelSpec {
    let shader = if variant == Variant::Subgroup {
        Shader::GemmSubgroup
    } else {
        Shader::Gemm
    };
    let spec = KernelSpec::new(shader, variant.entry())
        .with_flag("TRANS_A", layout.trans_a())
        .with_flag("TRANS_B", layout.trans_b())
        .with_flag("BETA", beta)
        .with_flag("BIAS", bias)
        .with("ACT", act as u32);
    match variant {
        Variant::Subgroup => spec.with("SG", subgroup_size).with_flag("VEC_B", vec_b),
        Variant::RegisterBlocked => spec.with("RB_WG", RB_WG).with_flag("VEC_B", vec_b),
        _ => spec,
    }
}

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    let mut all = Vec::new();
    for variant in Variant::ALL {
        let sizes: &[u32] = if variant == Variant::Subgroup {
            &SUBGROUP_SIZES
        } else {
            &[0]
        };
        let vec_b_options: &[bool] = match variant {
            Variant::RegisterBlocked | Variant::Subgroup => &[false, true],
            _ => &[false],
        };
        for &sg in sizes {
            for layout in Layout::ALL {
                for &vec_b in vec_b_options {
                    if vec_b && layout.trans_b() {
                        continue; // vec4 loads need B untransposed
                    }
                    for beta in [false, true] {
                        for bias in [false, true] {
                            for act in Activation::ALL {
                                all.push(spec(variant, layout, beta, bias, act, sg, vec_b));
                            }
                        }
                    }
                }
            }
        }
    }
    all
}

/// The problem a GEMM call describes, after its shapes are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GemmShape {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

impl GemmShape {
    /// Multiply-adds × 2.
    pub fn flops(&self) -> f64 {
        2.0 * self.batch as f64 * self.m as f64 * self.n as f64 * self.k as f64
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    tiles_m: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    tiles: u32,
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    stride_bias: u32,
    alpha: f32,
    beta: f32,
    _pad: [u32; 2],
}

const OP: &str = "gemm";

/// (batch, rows, cols) of a 2-D or 3-D operand; batch 0 means "2-D: the
/// same matrix for every batch".
fn dims(name: &str, t: &Tensor) -> Result<(usize, usize, usize)> {
    match *t.shape() {
        [r, c] => Ok((0, r, c)),
        [b, r, c] => Ok((b, r, c)),
        _ => Err(Error::Shape {
            op: OP,
            detail: format!(
                "{name} '{}' is {:?}; expected a matrix or a batch of matrices",
                t.label(),
                t.shape()
            ),
        }),
    }
}

/// Checks the operands of `C = op(A)·op(B)` and returns the problem shape.
pub fn check(
    layout: Layout,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    epi: &Epilogue,
) -> Result<GemmShape> {
    for t in [a, b, c].into_iter().chain(epi.bias) {
        require_f32(OP, t)?;
    }
    let (ba, ar, ac) = dims("A", a)?;
    let (bb, br, bc) = dims("B", b)?;
    let (bc_, m, n) = dims("C", c)?;
    let (am, ak) = if layout.trans_a() { (ac, ar) } else { (ar, ac) };
    let (bk, bn) = if layout.trans_b() { (bc, br) } else { (br, bc) };
    let mismatch = |detail: String| Error::Shape { op: OP, detail };
    if ak != bk {
        return Err(mismatch(format!(
            "{layout}: op(A) of '{}' {:?} is {am}×{ak} but op(B) of '{}' {:?} is {bk}×{bn}: inner sizes differ",
            a.label(),
            a.shape(),
            b.label(),
            b.shape()
        )));
    }
    if am != m || bn != n {
        return Err(mismatch(format!(
            "{layout}: op(A)·op(B) is {am}×{bn} but C '{}' is {:?}",
            c.label(),
            c.shape()
        )));
    }
    if ak == 0 {
        return Err(mismatch(format!(
            "K = 0 ('{}' {:?}, '{}' {:?}): the product is empty; fill C instead",
            a.label(),
            a.shape(),
            b.label(),
            b.shape()
        )));
    }
    let batch = bc_.max(1);
    for (name, t, tb) in [("A", a, ba), ("B", b, bb)] {
        if tb != 0 && tb != batch {
            return Err(mismatch(format!(
                "{name} '{}' {:?} has batch {tb} but C '{}' {:?} has batch {batch}",
                t.label(),
                t.shape(),
                c.label(),
                c.shape()
            )));
        }
    }
    if let Some(bias) = epi.bias {
        let ok = bias.shape() == [n] || bias.shape() == [batch, n];
        if !ok {
            return Err(mismatch(format!(
                "bias '{}' is {:?}; expected [{n}] or [{batch}, {n}]",
                bias.label(),
                bias.shape()
            )));
        }
    }
    Ok(GemmShape { batch, m, n, k: ak })
}

/// `C = act(alpha·op(A)·op(B) + beta·C + bias)` with the variant the
/// autotuner (or, with autotuning off, the default rule) picks for this
/// adapter, layout and shape.
pub fn gemm(
    rec: &mut Recorder,
    layout: Layout,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    epi: &Epilogue,
) -> Result<()> {
    let shape = check(layout, a, b, c, epi)?;
    if shape.m == 0 || shape.n == 0 {
        return Ok(()); // nothing to compute, nothing to tune
    }
    let variant = autotune::gemm_variant(rec.ctx(), layout, shape)?;
    record(rec, variant, layout, shape, a, b, c, epi)
}

/// As `gemm`, with the variant chosen by the caller.
pub fn gemm_with(
    rec: &mut Recorder,
    variant: Variant,
    layout: Layout,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    epi: &Epilogue,
) -> Result<()> {
    let shape = check(layout, a, b, c, epi)?;
    record(rec, variant, layout, shape, a, b, c, epi)
}

#[allow(clippy::too_many_arguments)]
fn record(
    rec: &mut Recorder,
    variant: Variant,
    layout: Layout,
    shape: GemmShape,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    epi: &Epilogue,
) -> Result<()> {
    if shape.m == 0 || shape.n == 0 || shape.batch == 0 {
        return Ok(());
    }
    let sg = match variant {
        Variant::Subgroup => subgroup_size(rec.ctx()).ok_or_else(|| Error::Shape {
            op: OP,
            detail: format!(
                "the subgroup variant needs SUBGROUP with one fixed subgroup size; {} has neither",
                rec.ctx().describe()
            ),
        })?,
        _ => 0,
    };
    let (tile_rows, tile_cols) = variant.tile(sg);
    let tiles_m = (shape.m as u64).div_ceil(tile_rows);
    let tiles = tiles_m * (shape.n as u64).div_ceil(tile_cols);
    let [gx, gy, _] = rec.grid_for_groups(OP, tiles)?;
    let max_z = rec.ctx().limits().max_compute_workgroups_per_dimension as usize;
    if shape.batch > max_z {
        return Err(Error::GridTooLarge {
            op: OP,
            detail: format!(
                "batch {} exceeds {max_z} (grid z); split the batch",
                shape.batch
            ),
        });
    }
    // Row-major leading dimensions are the stored column counts.
    let ld = |t: &Tensor| *t.shape().last().unwrap_or(&1) as u32;
    let batch_stride = |t: &Tensor| {
        if t.shape().len() == 3 {
            (t.len() / shape.batch) as u32
        } else {
            0
        }
    };
    let params = Params {
        m: shape.m as u32,
        n: shape.n as u32,
        k: shape.k as u32,
        tiles_m: tiles_m as u32,
        lda: ld(a),
        ldb: ld(b),
        ldc: shape.n as u32,
        tiles: tiles as u32,
        stride_a: batch_stride(a),
        stride_b: batch_stride(b),
        stride_c: (shape.m * shape.n) as u32,
        stride_bias: epi.bias.map_or(0, |t| {
            if t.shape().len() == 2 {
                shape.n as u32
            } else {
                0
            }
        }),
        alpha: epi.alpha,
        beta: epi.beta.unwrap_or(0.0),
        _pad: [0; 2],
    };
    // Four consecutive B columns form one aligned vec4 when B is stored
    // K×N with N, its row stride and its batch stride multiples of 4.
    let vec_b = !layout.trans_b()
        && shape.n.is_multiple_of(4)
        && params.ldb.is_multiple_of(4)
        && params.stride_b.is_multiple_of(4);
    let kernel = spec(
        variant,
        layout,
        epi.beta.is_some(),
        epi.bias.is_some(),
        epi.act,
        sg,
        vec_b,
    );
    // The shader declares the bias binding whether or not BIAS is set;
    // without a bias, A stands in (read-only, never read there).
    let bias = epi.bias.unwrap_or(a);
    let binds = [
        Bind::read(1, a),
        Bind::read(2, b),
        Bind::write(3, c),
        Bind::read(4, bias),
        // B as vec4s: register-blocked and subgroup variants only.
        Bind::read(5, b),
    ];
    let used = if matches!(variant, Variant::RegisterBlocked | Variant::Subgroup) {
        5
    } else {
        4
    };
    rec.dispatch(
        OP,
        &kernel,
        &params,
        &binds[..used],
        [gx, gy, shape.batch as u32],
    )
}
