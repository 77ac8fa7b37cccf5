//! Kernel registry: every `shaders/*.wgsl` embedded and named by `Shader`;
//! compute pipelines built lazily and cached by (shader, entry point,
//! override constants).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::gpu::context::GpuContext;

/// Activation functions shared by several families.
const ACTIVATION: &str = include_str!("../../shaders/activation.wgsl");
const BLOCK: &str = include_str!("../../shaders/block.wgsl");
const CROSS_STITCH: &str = include_str!("../../shaders/cross_stitch.wgsl");
const FUSED_MLP: &str = include_str!("../../shaders/fused_mlp.wgsl");
const ELEMENTWISE: &str = include_str!("../../shaders/elementwise.wgsl");
const GEMM_F32: &str = include_str!("../../shaders/gemm_f32.wgsl");
const GEMM_F16: &str = include_str!("../../shaders/gemm_f16.wgsl");
const GEMM_COMMON: &str = include_str!("../../shaders/gemm_common.wgsl");
const GEMM: &str = include_str!("../../shaders/gemm.wgsl");
/// The generated GEMM family (`kernels::gemm::generator`, written by
/// build.rs): configurations without optional features, and those that
/// need SUBGROUP.
const GEMM_FAMILY: &str = include_str!(concat!(env!("OUT_DIR"), "/gemm_family.wgsl"));
const GEMM_FAMILY_SUBGROUP: &str =
    include_str!(concat!(env!("OUT_DIR"), "/gemm_family_subgroup.wgsl"));
const LAYER_STITCH: &str = include_str!("../../shaders/layer_stitch.wgsl");
const LOSS: &str = include_str!("../../shaders/loss.wgsl");
const MOE: &str = include_str!("../../shaders/moe.wgsl");
const NONFINITE: &str = include_str!("../../shaders/nonfinite.wgsl");
const OPTIM: &str = include_str!("../../shaders/optim.wgsl");
const SOFT_SHARING: &str = include_str!("../../shaders/soft_sharing.wgsl");
const TRACE_NORM: &str = include_str!("../../shaders/trace_norm.wgsl");
const WEIGHTING: &str = include_str!("../../shaders/weighting.wgsl");
const ROOFLINE: &str = include_str!("../../shaders/roofline.wgsl");
const REDUCE: &str = include_str!("../../shaders/reduce.wgsl");

/// One shader file = one kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    /// `block.wgsl`: column blocks of matrices (concat, slice).
    Block,
    /// `cross_stitch.wgsl`: cross-stitch mixes and dα.
    CrossStitch,
    /// `elementwise.wgsl`: fill, copy, add, scale, axpy, activations and
    /// their derivatives.
    Elementwise,
    /// The fully fused narrow trunk.
    FusedMlp,
    /// `gemm.wgsl` (+ `gemm_common.wgsl`): the naive GEMM and the
    /// generated configurations that need no optional feature.
    Gemm,
    /// The generated GEMM configurations that need SUBGROUP: their own
    /// module, so adapters without subgroups never compile it.
    GemmSubgroup,
    /// The GEMM family with f16 storage (needs SHADER_F16).
    GemmF16,
    /// The subgroup GEMM configurations with f16 storage (needs SUBGROUP and SHADER_F16).
    GemmSubgroupF16,
    /// `layer_stitch.wgsl`: sluice layer-stitch mixes and dβ.
    LayerStitch,
    /// `loss.wgsl`: masked per-task losses, forward and backward fused.
    Loss,
    /// `moe.wgsl`: mixtures of experts (gated combination, gate softmax,
    /// DSelect-k gate) and their backward.
    Moe,
    /// `nonfinite.wgsl`: the record of the first step with a NaN / ±inf loss.
    Nonfinite,
    /// `optim.wgsl`: fused SGD / AdamW over a parameter arena.
    Optim,
    /// `reduce.wgsl`: deterministic sums and column sums.
    Reduce,
    /// `roofline.wgsl`: the FMA-peak and copy-bandwidth probes.
    Roofline,
    /// `soft_sharing.wgsl`: L2 distance, clustering, group lasso.
    SoftSharing,
    /// `trace_norm.wgsl`: the trace norms' Gram, Jacobi and
    /// Newton–Schulz kernels.
    TraceNorm,
    /// `weighting.wgsl`: Gram of per-task gradients, uncertainty
    /// weights, DWA loss sums.
    Weighting,
}

impl Shader {
    /// Every shader, for the cross-compile test and `validate`.
    pub const ALL: &'static [Shader] = &[
        Shader::Block,
        Shader::CrossStitch,
        Shader::Elementwise,
        Shader::FusedMlp,
        Shader::Gemm,
        Shader::GemmSubgroup,
        Shader::GemmF16,
        Shader::GemmSubgroupF16,
        Shader::LayerStitch,
        Shader::Loss,
        Shader::Moe,
        Shader::Nonfinite,
        Shader::Optim,
        Shader::Reduce,
        Shader::Roofline,
        Shader::SoftSharing,
        Shader::TraceNorm,
        Shader::Weighting,
    ];

    /// The family name: `shaders/<name>.wgsl`, `src/kernels/<name>.rs`, …
    pub fn name(self) -> &'static str {
        match self {
            Shader::Block => "block",
            Shader::CrossStitch => "cross_stitch",
            Shader::Elementwise => "elementwise",
            Shader::FusedMlp => "fused_mlp",
            Shader::Gemm => "gemm",
            Shader::GemmSubgroup => "gemm_subgroup",
            Shader::GemmF16 => "gemm_f16",
            Shader::GemmSubgroupF16 => "gemm_subgroup_f16",
            Shader::LayerStitch => "layer_stitch",
            Shader::Loss => "loss",
            Shader::Moe => "moe",
            Shader::Nonfinite => "nonfinite",
            Shader::Optim => "optim",
            Shader::Reduce => "reduce",
            Shader::Roofline => "roofline",
            Shader::SoftSharing => "soft_sharing",
            Shader::TraceNorm => "trace_norm",
            Shader::Weighting => "weighting",
        }
    }

    /// The WGSL the pipelines are built from: the family's files, after
    /// the shared snippets they use (WGSL has no includes).
    pub fn source(self) -> String {
        self.parts().concat()
    }

    /// The files making up the module, in order.
    pub fn parts(self) -> &'static [&'static str] {
        match self {
            Shader::Block => &[BLOCK],
            Shader::CrossStitch => &[CROSS_STITCH],
            Shader::Elementwise => &[ACTIVATION, ELEMENTWISE],
            Shader::FusedMlp => &[ACTIVATION, FUSED_MLP],
            Shader::Gemm => &[GEMM_F32, ACTIVATION, GEMM_COMMON, GEMM, GEMM_FAMILY],
            Shader::GemmSubgroup => &[GEMM_F32, ACTIVATION, GEMM_COMMON, GEMM_FAMILY_SUBGROUP],
            Shader::GemmF16 => &[GEMM_F16, ACTIVATION, GEMM_COMMON, GEMM, GEMM_FAMILY],
            Shader::GemmSubgroupF16 => &[GEMM_F16, ACTIVATION, GEMM_COMMON, GEMM_FAMILY_SUBGROUP],
            Shader::LayerStitch => &[LAYER_STITCH],
            Shader::Loss => &[LOSS],
            Shader::Moe => &[MOE],
            Shader::Nonfinite => &[NONFINITE],
            Shader::Optim => &[OPTIM],
            Shader::Reduce => &[REDUCE],
            Shader::Roofline => &[ROOFLINE],
            Shader::SoftSharing => &[SOFT_SHARING],
            Shader::TraceNorm => &[TRACE_NORM],
            Shader::Weighting => &[WEIGHTING],
        }
    }
}

/// Most override constants one pipeline sets.
pub const MAX_CONSTANTS: usize = 16;

/// One compute pipeline: an entry point of a shader with its override
/// constants (`override NAME: u32` / `bool` in WGSL; bools take 0 / 1).
/// Each launcher module lists every spec it can build in `specs()`, so the
/// naga cross-compile test sees every combination the code uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelSpec {
    /// The shader module.
    pub shader: Shader,
    /// The entry point's name in it.
    pub entry: &'static str,
    constants: [(&'static str, u32); MAX_CONSTANTS],
    count: u8,
}

impl KernelSpec {
    /// An entry point with no override constants set.
    pub const fn new(shader: Shader, entry: &'static str) -> Self {
        KernelSpec {
            shader,
            entry,
            constants: [("", 0); MAX_CONSTANTS],
            count: 0,
        }
    }

    /// The same pipeline with one more override constant set.
    /// Panics (at compile time for `const` specs) past `MAX_CONSTANTS`.
    pub const fn with(mut self, name: &'static str, value: u32) -> Self {
        self.constants[self.count as usize] = (name, value);
        self.count += 1;
        self
    }

    /// `with(name, value as u32)` for boolean overrides.
    pub const fn with_flag(self, name: &'static str, value: bool) -> Self {
        self.with(name, value as u32)
    }

    /// The override constants set, as (name, value).
    pub fn constants(&self) -> &[(&'static str, u32)] {
        &self.constants[..self.count as usize]
    }

    /// "elementwise::act_forward[ACT=1]", for labels and messages.
    pub fn label(&self) -> String {
        let mut s = format!("{}::{}", self.shader.name(), self.entry);
        if self.count > 0 {
            let list: Vec<String> = self
                .constants()
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            s.push_str(&format!("[{}]", list.join(",")));
        }
        s
    }
}

/// A built pipeline and its bind group layout (group 0).
pub struct CachedPipeline {
    /// The compute pipeline.
    pub pipeline: wgpu::ComputePipeline,
    /// Its bind group 0 layout (from the shader's reflection).
    pub layout: wgpu::BindGroupLayout,
}

/// Shader modules and pipelines built so far, keyed by shader and by
/// `KernelSpec`; one per `GpuContext`.
#[derive(Default)]
pub struct PipelineCache {
    modules: Mutex<HashMap<Shader, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<KernelSpec, Arc<CachedPipeline>>>,
}

impl GpuContext {
    /// The pipeline for `spec`, built on first use. Shader or pipeline
    /// errors come back as `Error::Wgpu`, never as a panic.
    pub fn pipeline(&self, spec: &KernelSpec) -> Result<Arc<CachedPipeline>> {
        let cache = &self.pipelines;
        if let Some(p) = lock(&cache.pipelines).get(spec) {
            return Ok(p.clone());
        }
        let module = self.shader_module(spec.shader)?;
        let label = spec.label();
        let constants: Vec<(&str, f64)> = spec
            .constants()
            .iter()
            .map(|&(k, v)| (k, v as f64))
            .collect();
        let built = self.scoped(&format!("building pipeline {label}"), || {
            let pipeline = self.serial(|| {
                self.device()
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(&label),
                        layout: None,
                        module: &module,
                        entry_point: Some(spec.entry),
                        compilation_options: wgpu::PipelineCompilationOptions {
                            constants: &constants,
                            zero_initialize_workgroup_memory: false,
                        },
                        cache: None,
                    })
            });
            let layout = pipeline.get_bind_group_layout(0);
            CachedPipeline { pipeline, layout }
        })?;
        self.counters.add_pipeline_built();
        let built = Arc::new(built);
        // Two threads may build the same pipeline; the first one stored wins.
        Ok(lock(&cache.pipelines).entry(*spec).or_insert(built).clone())
    }

    fn shader_module(&self, shader: Shader) -> Result<wgpu::ShaderModule> {
        if let Some(m) = lock(&self.pipelines.modules).get(&shader) {
            return Ok(m.clone());
        }
        let module = self.scoped(&format!("compiling shaders/{}.wgsl", shader.name()), || {
            self.serial(|| {
                self.device()
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(shader.name()),
                        source: wgpu::ShaderSource::Wgsl(shader.source().into()),
                    })
            })
        })?;
        Ok(lock(&self.pipelines.modules)
            .entry(shader)
            .or_insert(module)
            .clone())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
