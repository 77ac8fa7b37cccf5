//! Kernel conformance cases, shared by `kernels-tests/` and `manytask
//! validate`, so a user's GPU runs exactly the cases CI runs.
//!
//! A case makes host inputs from a fixed seed, runs the kernel through a
//! `Recorder`, runs the CPU reference and compares element by element with
//! `|got - want| <= abs + rel * |want|`.

pub mod block;
pub mod compare;
pub mod cross_stitch;
pub mod dense;
pub mod elementwise;
pub mod f16;
pub mod fused_mlp;
pub mod gemm;
pub mod layer_stitch;
pub mod loss;
pub mod moe;
pub mod nonfinite;
pub mod optim;
pub mod reduce;
pub mod report;
pub mod soft_sharing;
pub mod task_gemm;
pub mod trace_norm;
pub mod weighting;

use std::sync::Arc;
use std::time::Instant;

pub use compare::{compare, Mismatch, Outcome, Tolerance};
pub use report::CaseResult;

use crate::error::Result;
use crate::gpu::{GpuContext, Recorder, Tensor};

/// Element counts every elementwise / reduction kernel is checked at:
/// empty, one, odd, around the workgroup size, past 2^16, and one that
/// needs more than 65 535 workgroups of 256 in one dimension.
pub const SIZES: &[usize] = &[0, 1, 7, 255, 256, 257, 65_537, LARGE];
/// 2^24 + 1 elements: 65 537 workgroups of 256.
pub const LARGE: usize = (1 << 24) + 1;

/// A host array with its shape.
#[derive(Clone, Debug)]
pub struct HostTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor of this shape over `data`.
    pub fn new(shape: &[usize], data: Vec<f32>) -> Self {
        HostTensor {
            shape: shape.to_vec(),
            data,
        }
    }
}

/// What the reference says the output must be, and how close is close
/// enough.
pub struct Expected {
    /// The reference output, flat.
    pub values: Vec<f32>,
    /// Allowed |got − want| ≤ abs + rel·|want|.
    pub tolerance: Tolerance,
}

/// Makes a case's inputs (deterministically: same inputs every call).
pub type InputsFn = dyn Fn() -> Vec<HostTensor> + Send + Sync;
/// Records the kernel on the uploaded inputs; returns the output tensor.
pub type GpuFn = dyn Fn(&mut Recorder, &[Tensor]) -> Result<Tensor> + Send + Sync;
/// The CPU reference's answer for the inputs.
pub type ReferenceFn = dyn Fn(&[HostTensor]) -> Expected + Send + Sync;

/// An optional feature a case's kernel needs; on adapters without it the
/// case is reported as skipped (never as passed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// Runs on every adapter.
    None,
    /// SUBGROUP with one fixed subgroup size (`gemm::subgroup_size`).
    FixedSubgroup,
    /// SHADER_F16 (f16 storage); without it the kernels return
    /// `Error::MissingFeature`, tested separately.
    ShaderF16,
    /// Both.
    F16AndSubgroup,
}

impl Requirement {
    /// What a GEMM-family variant needs (f32 storage).
    pub fn for_variant(variant: crate::kernels::gemm::Variant) -> Requirement {
        if variant.config().is_some_and(|c| c.share.needs_subgroup()) {
            Requirement::FixedSubgroup
        } else {
            Requirement::None
        }
    }

    /// None when met, else why not.
    pub fn unmet(self, ctx: &GpuContext) -> Option<&'static str> {
        match self {
            Requirement::None => None,
            Requirement::FixedSubgroup => crate::kernels::gemm::subgroup_size(ctx)
                .is_none()
                .then_some("needs SUBGROUP with a fixed subgroup size"),
            Requirement::ShaderF16 => (!ctx.granted().shader_f16).then_some("needs SHADER_F16"),
            Requirement::F16AndSubgroup => Requirement::ShaderF16
                .unmet(ctx)
                .or(Requirement::FixedSubgroup.unmet(ctx)),
        }
    }
}

/// One kernel at one shape.
#[derive(Clone)]
pub struct Case {
    /// "elementwise::add", "reduce::column_sums", …
    pub kernel: String,
    /// "n=257", "rows=7 cols=3", …
    pub case: String,
    /// Its inputs, uploaded as f32 tensors in this order.
    pub inputs: Arc<InputsFn>,
    /// Records the kernel on the uploaded inputs and returns its output.
    pub gpu: Arc<GpuFn>,
    /// The expected output and tolerance.
    pub reference: Arc<ReferenceFn>,
    /// The optional feature it needs.
    pub requires: Requirement,
}

impl Case {
    /// The same case checked against another reference (tests use this to
    /// prove that a wrong answer fails).
    pub fn with_reference(mut self, reference: Arc<ReferenceFn>) -> Self {
        self.reference = reference;
        self
    }
}

/// Every case of every kernel family.
pub fn all_cases() -> Vec<Case> {
    let mut all = elementwise::cases();
    all.extend(block::cases());
    all.extend(cross_stitch::cases());
    all.extend(dense::cases());
    all.extend(f16::cases());
    all.extend(fused_mlp::cases());
    all.extend(gemm::cases());
    all.extend(layer_stitch::cases());
    all.extend(loss::cases());
    all.extend(moe::cases());
    all.extend(nonfinite::cases());
    all.extend(optim::cases());
    all.extend(reduce::cases());
    all.extend(soft_sharing::cases());
    all.extend(task_gemm::cases());
    all.extend(trace_norm::cases());
    all.extend(weighting::cases());
    all
}

/// Runs one case; failures to run (not mismatches) are reported in the
/// result, never as a panic.
pub fn run_case(ctx: &GpuContext, case: &Case) -> CaseResult {
    let started = Instant::now();
    let skipped = case.requires.unmet(ctx).map(str::to_string);
    let (outcome, gpu_ms) = if let Some(why) = &skipped {
        (Err(why.clone()), 0.0)
    } else {
        match run_case_inner(ctx, case) {
            Ok((outcome, gpu_ms)) => (Ok(outcome), gpu_ms),
            Err(e) => (Err(e.to_string()), 0.0),
        }
    };
    CaseResult {
        adapter: ctx.info().name.clone(),
        backend: format!("{:?}", ctx.backend()),
        kernel: case.kernel.clone(),
        case: case.case.clone(),
        outcome,
        skipped,
        gpu_ms,
        total_ms: started.elapsed().as_secs_f64() * 1e3,
    }
}

fn run_case_inner(ctx: &GpuContext, case: &Case) -> Result<(Outcome, f64)> {
    let inputs = (case.inputs)();
    let tensors = inputs
        .iter()
        .enumerate()
        .map(|(i, h)| {
            Tensor::from_f32(
                ctx,
                &format!("{} input {i}", case.kernel),
                &h.shape,
                &h.data,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    // Land the uploads first so the timing covers the kernel alone.
    ctx.serial(|| ctx.queue().submit([]));
    ctx.wait_idle()?;

    let mut rec = ctx.recorder(&case.kernel);
    let output = (case.gpu)(&mut rec, &tensors)?;
    // The case may have uploaded a poisoned output while recording: land
    // that too before the clock starts.
    ctx.serial(|| ctx.queue().submit([]));
    ctx.wait_idle()?;
    let started = Instant::now();
    rec.submit()?;
    ctx.wait_idle()?;
    let gpu_ms = started.elapsed().as_secs_f64() * 1e3;

    let got = output.to_f32_vec(ctx)?;
    let expected = (case.reference)(&inputs);
    Ok((compare(&got, &expected.values, expected.tolerance), gpu_ms))
}

/// An output tensor pre-filled with NaN by a host upload (not by a kernel
/// under test): an element a kernel forgets to write can never pass by
/// holding a stale value from a reused pool buffer.
pub fn poisoned_output(ctx: &GpuContext, label: &str, shape: &[usize]) -> Result<Tensor> {
    let len = shape.iter().product();
    Tensor::from_f32(ctx, label, shape, &vec![f32::NAN; len])
}

/// Runs `cases` on `ctx`, in order.
pub fn run_all(ctx: &GpuContext, cases: &[Case]) -> Vec<CaseResult> {
    cases.iter().map(|c| run_case(ctx, c)).collect()
}
