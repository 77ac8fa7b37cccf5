//! Pipelines and dispatch of one GEMM: the override flags (`Flags`), the
//! pipeline spec of a variant (`spec`), every spec the naga test
//! translates (`specs`), the uniform parameters and `launch`, which binds
//! the buffers and sizes the grid.

use crate::error::{Error, Result};
use crate::gpu::{Bind, DType, KernelSpec, Recorder, Shader, Tensor};
use crate::kernels::gemm::generator::{search_space, Share};
use crate::kernels::gemm::{
    require_dtype_supported, subgroup_size, Epilogue, Fusion, GemmShape, Layout, Operand, Variant,
    OP, SUBGROUP_SIZES,
};
use crate::types::Activation;

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
    /// B loads as aligned vec4s (register configurations).
    pub vec_b: bool,
    /// A loads as aligned vec4s along k (configurations with k unroll 4).
    pub vec_a: bool,
    /// Transposed A loads as aligned vec4s of four rows: the variant's
    /// `_at` entry point (`Variant::reads_at4`).
    pub vec_at: bool,
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
    let subgroup = variant.config().is_some_and(|c| c.share.needs_subgroup());
    let shader = match (subgroup, flags.f16) {
        (false, false) => Shader::Gemm,
        (true, false) => Shader::GemmSubgroup,
        (false, true) => Shader::GemmF16,
        (true, true) => Shader::GemmSubgroupF16,
    };
    let entry = if flags.vec_at && variant.reads_at4() {
        variant.entry_transposed_a()
    } else {
        variant.entry()
    };
    let mut spec = KernelSpec::new(shader, entry);
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
    spec = flag(spec, "VEC_B", flags.vec_b && variant.reads_b4());
    spec = flag(spec, "VEC_A", flags.vec_a && variant.reads_a4());
    match variant.config().map(|c| c.share) {
        Some(Share::Broadcast | Share::Shuffle) => spec.with("SG", subgroup_size),
        Some(Share::Uniform) => spec.with("RB_WG", variant.rb_width()),
        _ => spec,
    }
}

/// The pipelines the naga cross-compile test translates. For the named
/// variants (naive, rb, subgroup, tiled): every epilogue (beta × bias ×
/// activation) for every layout in f32, and the fused and f16
/// specialisations over every layout and vector-load setting. For every
/// other generated configuration: every layout with the plain, the
/// fullest fused and the f16 specialisations, with vector loads where the
/// layout allows them. Every override therefore appears, alone and in the
/// combinations the dense layer and task GEMM use, and every entry point
/// of the family is translated; the full cross product would be ~10^6.
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
    let members =
        std::iter::once(Variant::Naive).chain(search_space().into_iter().map(Variant::Family));
    for variant in members {
        let named = Variant::ALL.contains(&variant);
        let subgroup = variant.config().is_some_and(|c| c.share.needs_subgroup());
        // The subgroup size changes no epilogue code: the first size gets
        // the flag sets, the others the plain pipeline.
        let sizes: &[u32] = if subgroup { &SUBGROUP_SIZES } else { &[0] };
        let fused_sets: &[Flags] = if named {
            &fused
        } else {
            &[fused[0], fused[2], fused[6]]
        };
        for (i, &sg) in sizes.iter().enumerate() {
            for layout in Layout::ALL {
                // Vector loads: (vec_a, vec_b) where this layout and
                // variant allow them (vec4 A needs A untransposed, vec4 B
                // B untransposed).
                let mut vec_options = vec![(false, false)];
                if variant.reads_b4() && !layout.trans_b() {
                    vec_options.push((false, true));
                }
                if variant.reads_a4() && !layout.trans_a() {
                    vec_options.push((true, !layout.trans_b() && variant.reads_b4()));
                }
                // Transposed A as vec4s of rows (the `vec_a` slot means
                // the `_at` entry where A is transposed).
                if variant.reads_at4() && layout.trans_a() {
                    vec_options.push((true, !layout.trans_b()));
                }
                for &(vec_a, vec_b) in &vec_options {
                    let (vec_a, vec_at) = if layout.trans_a() {
                        (false, vec_a)
                    } else {
                        (vec_a, false)
                    };
                    let base = Flags {
                        vec_a,
                        vec_at,
                        vec_b,
                        ..Flags::default()
                    };
                    if i > 0 {
                        all.push(spec(variant, layout, &base, sg));
                        continue;
                    }
                    if named {
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
                        for f in fused_sets {
                            let f = Flags {
                                f16,
                                vec_a,
                                vec_at,
                                vec_b,
                                ..*f
                            };
                            all.push(spec(variant, layout, &f, sg));
                        }
                    }
                }
            }
        }
    }
    all.sort_by_key(|s| s.label());
    all.dedup();
    all
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

/// Leading dimensions and batch strides of A and B, in elements.
pub(super) struct Strides {
    pub lda: u32,
    pub ldb: u32,
    pub stride_a: u32,
    pub stride_b: u32,
}

pub(super) fn batch_stride(t: &Tensor, batch: usize) -> u32 {
    if t.shape().len() == 3 {
        (t.len() / batch) as u32
    } else {
        0
    }
}

/// Records one checked GEMM (operands as given).
#[allow(clippy::too_many_arguments)]
pub(super) fn record_checked(
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
pub(super) fn record_with(
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
    // Four consecutive k of one row of A form one aligned vec4 when A is
    // stored M×K with its row stride and batch stride multiples of 4.
    let vec_a =
        !layout.trans_a() && params.lda.is_multiple_of(4) && params.stride_a.is_multiple_of(4);
    // Four consecutive rows of op(A) at one k form one aligned vec4 when A
    // is stored K×M with M, its row stride and batch stride multiples of 4.
    let vec_at = layout.trans_a()
        && shape.m.is_multiple_of(4)
        && params.lda.is_multiple_of(4)
        && params.stride_a.is_multiple_of(4);
    let call = Launch {
        variant,
        layout,
        vec_b,
        vec_a,
        vec_at,
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
    /// A is stored with k contiguous and 4-aligned rows (VEC_A).
    pub vec_a: bool,
    /// A is stored K×M with M and its rows 4-aligned (the `_at` entry).
    pub vec_at: bool,
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
    // A configuration built by hand outside the search space has no entry
    // point in the generated modules.
    if let Some(config) = call.variant.config() {
        if !config.in_space() {
            return Err(Error::InvalidInput {
                op: OP,
                detail: format!(
                    "{} is not a member of the generated GEMM family; pick one of Variant::family()",
                    config.name()
                ),
            });
        }
    }
    let needs_subgroup = call
        .variant
        .config()
        .is_some_and(|c| c.share.needs_subgroup());
    let sg = if needs_subgroup {
        subgroup_size(ctx).ok_or_else(|| Error::MissingFeature {
            op: OP,
            feature: "SUBGROUP with one fixed subgroup size (the subgroup configurations)",
            adapter: ctx.describe(),
            hint: "use an rb:… configuration, tiled or naive",
        })?
    } else {
        0
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
        vec_b: call.vec_b && call.variant.reads_b4(),
        vec_a: call.vec_a && call.variant.reads_a4(),
        vec_at: call.vec_at && call.variant.reads_at4(),
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
    if call.variant.reads_b4() {
        // B and the prologue input as vec4s.
        binds.push(Bind::read(5, b));
        binds.push(Bind::read(7, saved));
    }
    if call.variant.reads_a4() {
        // A as vec4s along k.
        binds.push(Bind::read(11, a));
    }
    rec.dispatch(OP, &kernel, &params, &binds, [gx, gy, call.batch as u32])
}

/// u32 words per task-table row (`TaskDesc` in shaders/gemm_common.wgsl).
pub(crate) const TASK_WORDS: usize = 12;
