//! Launchers for `shaders/gemm.wgsl`: C = act(alpha·op(A)·op(B) + beta·C +
//! bias), in four variants and four layouts, optionally batched, in f32 or
//! (with SHADER_F16) f16 storage.
//!
//! `gemm` picks the variant for the adapter and shape (see
//! `kernels::autotune`); `gemm_with` runs the variant you name (tests and
//! benches use it to check and time every variant); `gemm_fused` adds the
//! dense-layer fusions (`Fusion`: activation-derivative prologue, bias
//! gradient). `kernels::dense` and `kernels::task_gemm` build on `launch`.
//!
//! One file, past 700 lines, on purpose: the variants, layouts, dtypes and
//! fusions share one parameter block, one set of shape checks and one
//! pipeline key, and splitting them would scatter that one contract.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::gpu::{Bind, DType, GpuContext, KernelSpec, Recorder, Shader, Tensor};
use crate::kernels::autotune;
use crate::types::Activation;

pub use crate::types::Layout;

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
    /// Every variant, available on this adapter or not.
    pub const ALL: [Variant; 4] = [
        Variant::Naive,
        Variant::RegisterBlocked,
        Variant::Subgroup,
        Variant::Tiled,
    ];

    /// The WGSL entry point, e.g. "gemm_tiled".
    pub fn entry(self) -> &'static str {
        match self {
            Variant::Naive => "gemm_naive",
            Variant::RegisterBlocked => "gemm_rb",
            Variant::Subgroup => "gemm_subgroup",
            Variant::Tiled => "gemm_tiled",
        }
    }

    /// Short name for flags and reports: naive, rb, subgroup, tiled.
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

    /// Loop iterations one invocation runs for a K-deep product (measured
    /// on llvmpipe, whose invocations stop after 65535: the tiled
    /// variant's tile loads add one iteration per 8 k).
    pub fn loop_iterations(self, k: u64) -> u64 {
        match self {
            Variant::Tiled => k.div_ceil(8) * 9,
            _ => k,
        }
    }

    /// Whether a K-deep product stays within the adapter's loop cap
    /// (`GpuContext::loop_limit`; always, where there is none).
    pub fn fits_loop_limit(self, ctx: &GpuContext, k: u64) -> bool {
        ctx.loop_limit()
            .is_none_or(|limit| self.loop_iterations(k) <= limit)
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
    /// Scale of the product (1 by default).
    pub alpha: f32,
    /// Accumulate into C (gradient accumulation): `Some(beta)`.
    pub beta: Option<f32>,
    /// One value per output column: shape \[N\] (shared by every batch) or
    /// [batch, N].
    pub bias: Option<&'t Tensor>,
    /// Activation applied last (identity by default).
    pub act: Activation,
    /// Also write the pre-activation `alpha·op(A)·op(B) + beta·C + bias`
    /// here (same shape as C): the Z a GELU layer's backward needs.
    pub z_out: Option<&'t Tensor>,
}

impl Default for Epilogue<'_> {
    fn default() -> Self {
        Epilogue {
            alpha: 1.0,
            beta: None,
            bias: None,
            act: Activation::Identity,
            z_out: None,
        }
    }
}

/// Which GEMM operand a prologue scales.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    /// The left operand (M × K after op).
    A,
    /// The right operand (K × N after op).
    B,
}

/// What the backward pass kept from the forward pass of a layer.
#[derive(Clone, Copy, Debug)]
pub enum Saved<'t> {
    /// Z, the pre-activation: works for every activation.
    PreActivation(&'t Tensor),
    /// Y = act(Z): enough for identity, relu (Y > 0 is the mask), tanh and
    /// sigmoid, so the forward pass need not keep Z at all.
    Output(&'t Tensor),
}

impl<'t> Saved<'t> {
    /// The tensor kept, Z or Y.
    pub fn tensor(&self) -> &'t Tensor {
        match *self {
            Saved::PreActivation(t) | Saved::Output(t) => t,
        }
    }

    fn is_output(&self) -> bool {
        matches!(self, Saved::Output(_))
    }
}

/// Activation-derivative prologue: every element of `operand` is
/// multiplied by act'(saved) as it is loaded (`saved` has the operand's
/// shape), so `D = G ⊙ act'(Z)` feeds the GEMM without being stored.
#[derive(Clone, Copy, Debug)]
pub struct Prologue<'t> {
    /// The operand scaled as it loads (the upstream gradient G).
    pub operand: Operand,
    /// Z or Y of the layer's forward pass, the operand's shape.
    pub saved: Saved<'t>,
    /// The layer's activation, whose derivative is applied.
    pub act: Activation,
}

/// Work fused into the GEMM's k loop (the dense-layer backward).
#[derive(Clone, Copy, Debug, Default)]
pub struct Fusion<'t> {
    /// Scale an operand by act' as it loads.
    pub prologue: Option<Prologue<'t>>,
    /// Column sums of op(B) (after the prologue): with B = D in
    /// `dW = Xᵀ·D`, the bias gradient. Shape \[N\] or [batch, N]; alpha and
    /// beta of the epilogue apply to it as to C.
    pub bias_grad: Option<&'t Tensor>,
}

/// Every override of the GEMM modules except the variant's own: the
/// pipeline-cache key of one specialisation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    /// f16 storage of A, B and C (the f16 modules).
    pub f16: bool,
    /// C is read and accumulated into (`Epilogue::beta`).
    pub beta: bool,
    /// A bias is added.
    pub bias: bool,
    /// The epilogue's activation.
    pub act: Activation,
    /// B loads as aligned vec4s (rb and subgroup variants).
    pub vec_b: bool,
    /// Problems come from a task table (`kernels::task_gemm`).
    pub tasks: bool,
    /// The pre-activation is written too (`Epilogue::z_out`).
    pub store_z: bool,
    /// (operand, activation, derivative from the output).
    pub prologue: Option<(Operand, Activation, bool)>,
    /// Column sums of op(B) are written (`Fusion::bias_grad`).
    pub bias_grad: bool,
}

/// The pipeline for one variant, layout and set of flags. Only overrides
/// that differ from the WGSL defaults are set, which keeps labels short.
pub fn spec(variant: Variant, layout: Layout, flags: &Flags, subgroup_size: u32) -> KernelSpec {
    let shader = match (variant == Variant::Subgroup, flags.f16) {
        (false, false) => Shader::Gemm,
        (true, false) => Shader::GemmSubgroup,
        (false, true) => Shader::GemmF16,
        (true, true) => Shader::GemmSubgroupF16,
    };
    let mut spec = KernelSpec::new(shader, variant.entry());
    let flag = |spec: KernelSpec, name: &'static str, on: bool| {
        if on {
            spec.with_flag(name, true)
        } else {
            spec
        }
    };
    spec = flag(spec, "TRANS_A", layout.trans_a());
    spec = flag(spec, "TRANS_B", layout.trans_b());
    spec = flag(spec, "BETA", flags.beta);
    spec = flag(spec, "BIAS", flags.bias);
    spec = flag(spec, "TASKS", flags.tasks);
    spec = flag(spec, "STORE_Z", flags.store_z);
    spec = flag(spec, "BGRAD", flags.bias_grad);
    if flags.act != Activation::Identity {
        spec = spec.with("ACT", flags.act as u32);
    }
    if let Some((operand, act, from_output)) = flags.prologue {
        spec = flag(spec, "PRO_A", operand == Operand::A);
        spec = flag(spec, "PRO_B", operand == Operand::B);
        spec = flag(spec, "SAVED_Y", from_output);
        if act != Activation::Identity {
            spec = spec.with("DACT", act as u32);
        }
    }
    match variant {
        Variant::Subgroup => flag(spec.with("SG", subgroup_size), "VEC_B", flags.vec_b),
        Variant::RegisterBlocked => flag(spec.with("RB_WG", RB_WG), "VEC_B", flags.vec_b),
        _ => spec,
    }
}

/// The pipelines the naga cross-compile test translates: every epilogue
/// (beta × bias × activation) for every variant and layout in f32, and the
/// fused and f16 specialisations over every variant and layout. Every
/// override therefore appears, alone and in the combinations the dense
/// layer and task GEMM use; the full cross product would be ~10^5.
pub fn specs() -> Vec<KernelSpec> {
    let mut all = Vec::new();
    let relu_y = Some((Operand::B, Activation::Relu, true));
    let fused: [Flags; 7] = [
        Flags::default(),
        Flags {
            tasks: true,
            bias: true,
            act: Activation::Tanh,
            ..Flags::default()
        },
        Flags {
            store_z: true,
            bias: true,
            act: Activation::Gelu,
            ..Flags::default()
        },
        Flags {
            prologue: Some((Operand::A, Activation::Relu, true)),
            ..Flags::default()
        },
        Flags {
            prologue: Some((Operand::A, Activation::Gelu, false)),
            beta: true,
            ..Flags::default()
        },
        Flags {
            prologue: Some((Operand::B, Activation::Sigmoid, false)),
            bias_grad: true,
            ..Flags::default()
        },
        Flags {
            prologue: relu_y,
            bias_grad: true,
            beta: true,
            tasks: true,
            ..Flags::default()
        },
    ];
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
        for (i, &sg) in sizes.iter().enumerate() {
            for layout in Layout::ALL {
                for &vec_b in vec_b_options {
                    if vec_b && layout.trans_b() {
                        continue; // vec4 loads need B untransposed
                    }
                    let base = Flags {
                        vec_b,
                        ..Flags::default()
                    };
                    // The full epilogue product once per variant (first
                    // subgroup size only: the size changes no epilogue code).
                    if i == 0 {
                        for beta in [false, true] {
                            for bias in [false, true] {
                                for act in Activation::ALL {
                                    let f = Flags {
                                        beta,
                                        bias,
                                        act,
                                        ..base
                                    };
                                    all.push(spec(variant, layout, &f, sg));
                                }
                            }
                        }
                    }
                    for f16 in [false, true] {
                        for f in &fused {
                            let f = Flags { f16, vec_b, ..*f };
                            all.push(spec(variant, layout, &f, sg));
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
    /// Independent products (1 for a 2-D GEMM).
    pub batch: usize,
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// The reduced dimension.
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
pub(crate) struct Params {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub tiles_m: u32,
    pub lda: u32,
    pub ldb: u32,
    pub ldc: u32,
    pub tiles: u32,
    pub stride_a: u32,
    pub stride_b: u32,
    pub stride_c: u32,
    pub stride_bias: u32,
    pub alpha: f32,
    pub beta: f32,
    pub _pad: [u32; 2],
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

/// Every tensor of one GEMM call shares one storage type: f32, or f16.
pub(crate) fn common_dtype(op: &'static str, tensors: &[&Tensor]) -> Result<DType> {
    let first = tensors[0].dtype();
    for t in tensors {
        if t.dtype() == DType::U32 || t.dtype() != first {
            return Err(Error::DType {
                op,
                got: t.dtype(),
                supported: "f32 or f16, the same for every operand of one call",
            });
        }
    }
    Ok(first)
}

/// Every tensor one GEMM call touches.
pub(crate) fn operands<'t>(
    a: &'t Tensor,
    b: &'t Tensor,
    c: &'t Tensor,
    epi: &Epilogue<'t>,
    fusion: &Fusion<'t>,
) -> Vec<&'t Tensor> {
    let mut all = vec![a, b, c];
    all.extend(epi.bias);
    all.extend(epi.z_out);
    all.extend(fusion.bias_grad);
    all.extend(fusion.prologue.map(|p| p.saved.tensor()));
    all
}

/// f16 storage needs SHADER_F16; say so instead of failing in wgpu.
pub(crate) fn require_dtype_supported(
    op: &'static str,
    ctx: &GpuContext,
    dtype: DType,
) -> Result<()> {
    if dtype == DType::F16 && !ctx.granted().shader_f16 {
        return Err(Error::MissingFeature {
            op,
            feature: "SHADER_F16 (f16 storage)",
            adapter: ctx.describe(),
            hint: "use f32 tensors here, or an adapter with f16 support (on this machine: Vulkan/lavapipe)",
        });
    }
    Ok(())
}

fn same_shape(op: &'static str, what: &str, t: &Tensor, like: &Tensor) -> Result<()> {
    if t.shape() != like.shape() {
        return Err(Error::Shape {
            op,
            detail: format!(
                "{what} '{}' is {:?} but must match '{}' {:?}",
                t.label(),
                t.shape(),
                like.label(),
                like.shape()
            ),
        });
    }
    Ok(())
}

/// Checks the prologue's activation can be differentiated from what was
/// saved (GELU needs Z).
pub(crate) fn check_prologue(op: &'static str, pro: &Prologue) -> Result<()> {
    if pro.saved.is_output() && !pro.act.grad_from_output() {
        return Err(Error::Shape {
            op,
            detail: format!(
                "{} backward needs the pre-activation Z, not the output Y (keep Z in the forward pass: Epilogue::z_out)",
                pro.act
            ),
        });
    }
    Ok(())
}

/// Checks the operands of `C = op(A)·op(B)` (and of the fusions) and
/// returns the problem shape.
pub fn check(
    layout: Layout,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    epi: &Epilogue,
    fusion: &Fusion,
) -> Result<GemmShape> {
    common_dtype(OP, &operands(a, b, c, epi, fusion))?;
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
    for (what, t) in [("bias", epi.bias), ("bias gradient", fusion.bias_grad)] {
        let Some(t) = t else { continue };
        let ok = t.shape() == [n] || t.shape() == [batch, n];
        if !ok {
            return Err(mismatch(format!(
                "{what} '{}' is {:?}; expected [{n}] or [{batch}, {n}]",
                t.label(),
                t.shape()
            )));
        }
    }
    if let (Some(x), Some(y)) = (epi.bias, fusion.bias_grad) {
        same_shape(OP, "bias gradient", y, x)?;
    }
    if let Some(z) = epi.z_out {
        same_shape(OP, "z_out", z, c)?;
    }
    if let Some(pro) = &fusion.prologue {
        check_prologue(OP, pro)?;
        let operand = if pro.operand == Operand::A { a } else { b };
        same_shape(OP, "prologue input", pro.saved.tensor(), operand)?;
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
    gemm_fused(rec, None, layout, a, b, c, epi, &Fusion::default())
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
    gemm_fused(rec, Some(variant), layout, a, b, c, epi, &Fusion::default())
}

/// The general form: optional variant (None = autotuned), epilogue and
/// fusions.
#[allow(clippy::too_many_arguments)]
pub fn gemm_fused(
    rec: &mut Recorder,
    variant: Option<Variant>,
    layout: Layout,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    epi: &Epilogue,
    fusion: &Fusion,
) -> Result<()> {
    let shape = check(layout, a, b, c, epi, fusion)?;
    if shape.m == 0 || shape.n == 0 || shape.batch == 0 {
        return Ok(()); // nothing to compute, nothing to tune
    }
    if let Some(chunk) = split_k_chunk(rec.ctx(), shape.k) {
        return split_k(rec, variant, layout, a, b, c, epi, fusion, shape, chunk);
    }
    let variant = match variant {
        Some(v) => v,
        None => autotune::gemm_variant(rec.ctx(), layout, shape)?,
    };
    record_checked(rec, variant, layout, a, b, c, epi, fusion, shape)
}

/// K per split-K chunk on an adapter with a loop cap, when `k` needs
/// more than one: the largest power of two every variant runs within the
/// cap (llvmpipe: 32768; the tiled variant loops 9 times per 8 k), or
/// None where one launch is fine.
pub fn split_k_chunk(ctx: &GpuContext, k: usize) -> Option<usize> {
    let limit = ctx.loop_limit()?;
    if Variant::ALL
        .iter()
        .all(|v| v.loop_iterations(k as u64) <= limit)
    {
        return None;
    }
    let mut chunk = 1usize << 30;
    while chunk > 64
        && Variant::ALL
            .iter()
            .any(|v| v.loop_iterations(chunk as u64) > limit)
    {
        chunk /= 2;
    }
    Some(chunk)
}

/// Split-K for adapters that cap an invocation's loop iterations
/// (llvmpipe): K is cut into chunks of `chunk` (a multiple of 64, so every
/// chunk starts on an aligned element of A and B) and the chunks run in
/// order, each adding into C (epilogue beta = 1; the first applies the
/// caller's beta; the last the bias, activation and Z). Deterministic: a
/// fixed chunking and order. The bias-gradient fusion accumulates the
/// same way; the prologue's saved tensor is cut like its operand.
#[allow(clippy::too_many_arguments)]
fn split_k(
    rec: &mut Recorder,
    variant: Option<Variant>,
    layout: Layout,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    epi: &Epilogue,
    fusion: &Fusion,
    shape: GemmShape,
    chunk: usize,
) -> Result<()> {
    let ctx = rec.ctx();
    // Element offset of k0 in a stored operand, and its row stride.
    let a_at = |k0: usize| if layout.trans_a() { k0 * shape.m } else { k0 };
    let b_at = |k0: usize| if layout.trans_b() { k0 } else { k0 * shape.n };
    let tail = |t: &Tensor, at: usize| t.view(ctx, at, &[t.len() - at]);
    let chunks = shape.k.div_ceil(chunk);
    for i in 0..chunks {
        let k0 = i * chunk;
        let kc = chunk.min(shape.k - k0);
        let (first, last) = (i == 0, i + 1 == chunks);
        let (av, bv) = (tail(a, a_at(k0))?, tail(b, b_at(k0))?);
        let saved_view = match &fusion.prologue {
            Some(p) => {
                let at = if p.operand == Operand::A {
                    a_at(k0)
                } else {
                    b_at(k0)
                };
                Some(tail(p.saved.tensor(), at)?)
            }
            None => None,
        };
        let prologue = fusion.prologue.map(|p| Prologue {
            saved: match (p.saved, &saved_view) {
                (Saved::PreActivation(_), Some(v)) => Saved::PreActivation(v),
                (Saved::Output(_), Some(v)) => Saved::Output(v),
                (s, None) => s,
            },
            ..p
        });
        let part = Epilogue {
            alpha: epi.alpha,
            beta: if first { epi.beta } else { Some(1.0) },
            bias: if last { epi.bias } else { None },
            act: if last { epi.act } else { Activation::Identity },
            z_out: if last { epi.z_out } else { None },
        };
        let part_fusion = Fusion {
            prologue,
            bias_grad: fusion.bias_grad,
        };
        let part_shape = GemmShape { k: kc, ..shape };
        let v = match variant {
            Some(v) => v,
            None => autotune::gemm_variant(ctx, layout, part_shape)?,
        };
        // The views keep the full operands' leading dimensions.
        let lda = if layout.trans_a() { shape.m } else { shape.k };
        let ldb = if layout.trans_b() { shape.k } else { shape.n };
        record_chunk(
            rec,
            v,
            layout,
            (&av, lda),
            (&bv, ldb),
            c,
            &part,
            &part_fusion,
            part_shape,
            (a, b),
        )?;
    }
    Ok(())
}

/// One split-K chunk: `record_checked` with the leading dimensions and
/// batch strides of the full operands (`full`), which the views lack.
#[allow(clippy::too_many_arguments)]
fn record_chunk(
    rec: &mut Recorder,
    variant: Variant,
    layout: Layout,
    (a, lda): (&Tensor, usize),
    (b, ldb): (&Tensor, usize),
    c: &Tensor,
    epi: &Epilogue,
    fusion: &Fusion,
    shape: GemmShape,
    full: (&Tensor, &Tensor),
) -> Result<()> {
    let strides = Strides {
        lda: lda as u32,
        ldb: ldb as u32,
        stride_a: batch_stride(full.0, shape.batch),
        stride_b: batch_stride(full.1, shape.batch),
    };
    record_with(rec, variant, layout, a, b, c, epi, fusion, shape, strides)
}

/// Leading dimensions and batch strides of A and B, in elements.
struct Strides {
    lda: u32,
    ldb: u32,
    stride_a: u32,
    stride_b: u32,
}

fn batch_stride(t: &Tensor, batch: usize) -> u32 {
    if t.shape().len() == 3 {
        (t.len() / batch) as u32
    } else {
        0
    }
}

/// Records one checked GEMM (operands as given).
#[allow(clippy::too_many_arguments)]
fn record_checked(
    rec: &mut Recorder,
    variant: Variant,
    layout: Layout,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    epi: &Epilogue,
    fusion: &Fusion,
    shape: GemmShape,
) -> Result<()> {
    // Row-major leading dimensions are the stored column counts.
    let ld = |t: &Tensor| *t.shape().last().unwrap_or(&1) as u32;
    let strides = Strides {
        lda: ld(a),
        ldb: ld(b),
        stride_a: batch_stride(a, shape.batch),
        stride_b: batch_stride(b, shape.batch),
    };
    record_with(rec, variant, layout, a, b, c, epi, fusion, shape, strides)
}

#[allow(clippy::too_many_arguments)]
fn record_with(
    rec: &mut Recorder,
    variant: Variant,
    layout: Layout,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    epi: &Epilogue,
    fusion: &Fusion,
    shape: GemmShape,
    strides: Strides,
) -> Result<()> {
    let per_batch_bias = epi
        .bias
        .or(fusion.bias_grad)
        .is_some_and(|t| t.shape().len() == 2);
    let params = Params {
        m: shape.m as u32,
        n: shape.n as u32,
        k: shape.k as u32,
        tiles_m: 0, // set by `launch`
        lda: strides.lda,
        ldb: strides.ldb,
        ldc: shape.n as u32,
        tiles: 0,
        stride_a: strides.stride_a,
        stride_b: strides.stride_b,
        stride_c: (shape.m * shape.n) as u32,
        stride_bias: if per_batch_bias { shape.n as u32 } else { 0 },
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
    let call = Launch {
        variant,
        layout,
        vec_b,
        grid_m: shape.m,
        grid_n: shape.n,
        batch: shape.batch,
        params,
        tasks: None,
    };
    launch(rec, &call, a, b, c, epi, fusion)
}

/// One recorded GEMM dispatch, after the caller checked its operands.
pub(crate) struct Launch<'t> {
    pub variant: Variant,
    pub layout: Layout,
    pub vec_b: bool,
    /// The grid covers grid_m × grid_n outputs per z (the largest task).
    pub grid_m: usize,
    pub grid_n: usize,
    /// Grid z: batch entries or tasks.
    pub batch: usize,
    pub params: Params,
    /// The task table (u32, 12 per task) for `task_gemm`.
    pub tasks: Option<&'t Tensor>,
}

/// Records one GEMM dispatch: picks the pipeline, sizes the grid, binds
/// every buffer the entry point declares (unused ones get stand-ins).
pub(crate) fn launch(
    rec: &mut Recorder,
    call: &Launch,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    epi: &Epilogue,
    fusion: &Fusion,
) -> Result<()> {
    let ctx = rec.ctx();
    let dtype = a.dtype();
    require_dtype_supported(OP, ctx, dtype)?;
    let sg = match call.variant {
        Variant::Subgroup => subgroup_size(ctx).ok_or_else(|| Error::MissingFeature {
            op: OP,
            feature: "SUBGROUP with one fixed subgroup size (the subgroup variant)",
            adapter: ctx.describe(),
            hint: "use the rb, tiled or naive variant",
        })?,
        _ => 0,
    };
    let k = call.params.k as u64;
    crate::kernels::check::require_loop_budget(
        ctx,
        OP,
        call.variant.loop_iterations(k),
        || {
            format!(
                "a {:?} GEMM with K = {k} loops {} times in one invocation",
                call.variant,
                call.variant.loop_iterations(k)
            )
        },
        "split K into chunks of at most 65535 and add the partial products (Epilogue beta = 1), \
         e.g. fewer rows per batch for a weight gradient; or run on a GPU",
    )?;
    let (tile_rows, tile_cols) = call.variant.tile(sg);
    let tiles_m = (call.grid_m as u64).div_ceil(tile_rows);
    let tiles = tiles_m * (call.grid_n as u64).div_ceil(tile_cols);
    let [gx, gy, _] = rec.grid_for_groups(OP, tiles)?;
    let max_z = ctx.limits().max_compute_workgroups_per_dimension as usize;
    if call.batch > max_z {
        return Err(Error::GridTooLarge {
            op: OP,
            detail: format!(
                "{} batch entries or tasks exceed {max_z} (grid z); split the call",
                call.batch
            ),
        });
    }
    let params = Params {
        tiles_m: tiles_m as u32,
        tiles: tiles as u32,
        ..call.params
    };
    let flags = Flags {
        f16: dtype == DType::F16,
        beta: epi.beta.is_some(),
        bias: epi.bias.is_some(),
        act: epi.act,
        vec_b: call.vec_b,
        tasks: call.tasks.is_some(),
        store_z: epi.z_out.is_some(),
        prologue: fusion
            .prologue
            .map(|p| (p.operand, p.act, p.saved.is_output())),
        bias_grad: fusion.bias_grad.is_some(),
    };
    let kernel = spec(call.variant, call.layout, &flags, sg);
    // The entry points declare every binding of gemm_common.wgsl that
    // their code mentions, whatever the overrides; bindings a call does not
    // use get stand-ins that are never touched: A for read-only ones,
    // the context's stand-in buffers for writable ones (they must not
    // alias C).
    let (unused_z, unused_db, unused_tasks);
    let z_out = match epi.z_out {
        Some(t) => t,
        None => {
            unused_z = ctx.stand_in("gemm.unused_z", 4, dtype)?;
            &unused_z
        }
    };
    let bias_grad = match fusion.bias_grad {
        Some(t) => t,
        None => {
            unused_db = ctx.stand_in("gemm.unused_dbias", 4, dtype)?;
            &unused_db
        }
    };
    let tasks = match call.tasks {
        Some(t) => t,
        None => {
            unused_tasks = ctx.stand_in("gemm.unused_tasks", TASK_WORDS, DType::U32)?;
            &unused_tasks
        }
    };
    let saved = fusion.prologue.map_or(a, |p| p.saved.tensor());
    let mut binds = vec![
        Bind::read(1, a),
        Bind::read(2, b),
        Bind::write(3, c),
        Bind::read(4, epi.bias.unwrap_or(a)),
        Bind::read(6, saved),
        Bind::write(8, z_out),
        Bind::write(9, bias_grad),
        Bind::read(10, tasks),
    ];
    if matches!(call.variant, Variant::RegisterBlocked | Variant::Subgroup) {
        // B and the prologue input as vec4s.
        binds.push(Bind::read(5, b));
        binds.push(Bind::read(7, saved));
    }
    rec.dispatch(OP, &kernel, &params, &binds, [gx, gy, call.batch as u32])
}

/// u32 words per task-table row (`TaskDesc` in shaders/gemm_common.wgsl).
pub(crate) const TASK_WORDS: usize = 12;
