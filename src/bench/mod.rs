//! Measured performance, for `manytask bench` and the criterion benches:
//! an empirical roofline of the adapter (FMA-chain peak and copy
//! bandwidth) and a table of kernel timings against it.
//!
//! Times are wall-clock medians of record → submit → wait on the GPU, one
//! submit per run (~0.05–0.1 ms of fixed cost on lavapipe), after an
//! untimed run that builds the pipelines. On a CPU adapter such as
//! lavapipe these are CPU times: compare rows of one run as ratios.

pub mod compare;
pub mod workloads;

use std::time::Instant;

use crate::error::Result;
use crate::gpu::{DType, GpuContext, Recorder, Tensor};
use crate::kernels::dense::BackwardPlan;
use crate::kernels::gemm::{self, Epilogue, Layout, Variant};
use crate::kernels::{elementwise, optim, reduce, roofline};
use crate::types::Activation;
use crate::types::AdamW;

use crate::graph::StepOptions;
use workloads::{ArchWorkload, DenseWorkload, HeadsWorkload, LossWorkload, MtlMlpWorkload};

/// One measurement; fields that do not apply are None (null in JSON).
#[derive(Clone, Debug, PartialEq)]
pub struct BenchRow {
    /// Kernel or workload, e.g. "gemm", "dense_fused".
    pub kernel: String,
    /// GEMM variant (naive, rb, subgroup, tiled).
    pub variant: Option<String>,
    /// GEMM layout (NN, NT, TN, TT).
    pub layout: Option<String>,
    /// Rows of the output (or batch rows).
    pub m: Option<usize>,
    /// Columns of the output.
    pub n: Option<usize>,
    /// The reduced dimension.
    pub k: Option<usize>,
    /// Storage type, "f32" or "f16".
    pub dtype: Option<&'static str>,
    /// Median wall time of one run, submit to completion, in ms.
    pub median_ms: f64,
    /// GFLOP/s at the median (compute rows).
    pub gflops: Option<f64>,
    /// GB/s at the median (memory rows).
    pub gbps: Option<f64>,
    /// Share of the adapter's measured ceiling: FLOP/s for compute rows,
    /// bytes/s for memory rows.
    pub roofline_pct: Option<f64>,
    /// Dispatches one run records (not part of the JSON schema the issue
    /// fixed; printed in the table).
    pub dispatches: u64,
}

fn json_opt<T: std::fmt::Display>(v: &Option<T>, quote: bool) -> String {
    match v {
        None => "null".into(),
        Some(x) if quote => format!("\"{x}\""),
        Some(x) => x.to_string(),
    }
}

fn json_num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.6}"),
        _ => "null".into(),
    }
}

impl BenchRow {
    /// One JSON object with exactly the documented fields.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"kernel\":\"{}\",\"variant\":{},\"layout\":{},\"m\":{},\"n\":{},\"k\":{},\"dtype\":{},\"median_ms\":{},\"gflops\":{},\"gbps\":{},\"roofline_pct\":{}}}",
            self.kernel,
            json_opt(&self.variant, true),
            json_opt(&self.layout, true),
            json_opt(&self.m, false),
            json_opt(&self.n, false),
            json_opt(&self.k, false),
            json_opt(&self.dtype, true),
            json_num(Some(self.median_ms)),
            json_num(self.gflops),
            json_num(self.gbps),
            json_num(self.roofline_pct),
        )
    }
}

/// The adapter's measured ceilings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Roofline {
    /// Measured FMA peak, GFLOP/s.
    pub peak_gflops: f64,
    /// Measured copy bandwidth, GB/s (bytes read + written).
    pub peak_gbps: f64,
}

/// How long to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Square GEMM sizes.
    pub sizes: Vec<usize>,
    /// Timed runs per measurement, at most (fewer when one run is slow).
    pub reps: usize,
    /// Stop adding runs once a measurement has used this many seconds.
    pub budget_s: f64,
    /// Run only rows whose kernel name contains this text (the roofline
    /// always runs: the percentages need it).
    pub filter: Option<String>,
    /// Smaller shapes for the stitch and trunk-step rows (`--quick`).
    pub small: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            sizes: vec![256, 512, 1024],
            reps: 5,
            budget_s: 3.0,
            filter: None,
            small: false,
        }
    }
}

/// Median wall time (ms) of `record` + submit + wait, and the dispatches
/// one run records. One untimed run first builds pipelines.
pub fn time_median(
    ctx: &GpuContext,
    opts: &BenchOptions,
    mut record: impl FnMut(&mut Recorder) -> Result<()>,
) -> Result<(f64, u64)> {
    let mut rec = ctx.recorder("bench warm-up");
    record(&mut rec)?;
    let dispatches = rec.dispatch_count();
    rec.submit()?;
    ctx.wait_idle()?;
    let mut times = Vec::new();
    let started = Instant::now();
    while times.len() < opts.reps.max(1) {
        let mut rec = ctx.recorder("bench");
        record(&mut rec)?;
        let t0 = Instant::now();
        rec.submit()?;
        ctx.wait_idle()?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        if started.elapsed().as_secs_f64() > opts.budget_s {
            break;
        }
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], dispatches))
}

/// One alternative of a comparison (`time_interleaved`).
pub type Record<'r> = Box<dyn FnMut(&mut Recorder) -> Result<()> + 'r>;

/// Median wall times (ms) and dispatch counts of several alternatives for
/// the same work, timed round-robin (A, B, C, A, B, C, …) so that load
/// changes on a shared machine hit every alternative alike: the ratios of
/// these medians are what comparisons should quote.
pub fn time_interleaved(
    ctx: &GpuContext,
    opts: &BenchOptions,
    records: &mut [Record],
) -> Result<Vec<(f64, u64)>> {
    let mut dispatches = Vec::new();
    for record in records.iter_mut() {
        let mut rec = ctx.recorder("bench warm-up");
        record(&mut rec)?;
        dispatches.push(rec.dispatch_count());
        rec.submit()?;
        ctx.wait_idle()?;
    }
    let mut times = vec![Vec::new(); records.len()];
    let started = Instant::now();
    // Comparisons get 3× the budget of one measurement: they are the point.
    while times[0].len() < opts.reps.max(1) {
        for (record, t) in records.iter_mut().zip(times.iter_mut()) {
            let mut rec = ctx.recorder("bench");
            record(&mut rec)?;
            let t0 = Instant::now();
            rec.submit()?;
            ctx.wait_idle()?;
            t.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        if started.elapsed().as_secs_f64() > 3.0 * opts.budget_s {
            break;
        }
    }
    Ok(times
        .into_iter()
        .zip(dispatches)
        .map(|(mut t, d)| {
            t.sort_by(f64::total_cmp);
            (t[t.len() / 2], d)
        })
        .collect())
}

/// FMA-chain peak and copy bandwidth.
pub fn measure_roofline(
    ctx: &GpuContext,
    opts: &BenchOptions,
) -> Result<(Roofline, Vec<BenchRow>)> {
    // 128 workgroups × 256 invocations, 2048 steps: ~4.3 GFLOP.
    let invocations = 128 * 256;
    let iters = 2048;
    let out = Tensor::empty(ctx, "roofline.fma", &[invocations * 4], DType::F32)?;
    let (ms, d1) = time_median(ctx, opts, |rec| {
        roofline::fma_peak(rec, &out, iters).map(|_| ())
    })?;
    let peak_gflops = roofline::fma_flops(invocations as u64, iters) / ms / 1e6;
    // 64 MiB copied: 128 MiB moved.
    let n = 16 << 20;
    let src = Tensor::zeros(ctx, "roofline.src", &[n])?;
    let dst = Tensor::empty(ctx, "roofline.dst", &[n], DType::F32)?;
    let (ms_copy, d2) = time_median(ctx, opts, |rec| roofline::copy_bandwidth(rec, &src, &dst))?;
    let peak_gbps = 8.0 * n as f64 / ms_copy / 1e6;
    let row = |kernel: &str, variant: &str, ms, gflops, gbps, dispatches| BenchRow {
        kernel: kernel.into(),
        variant: Some(variant.into()),
        layout: None,
        m: None,
        n: None,
        k: None,
        dtype: Some("f32"),
        median_ms: ms,
        gflops,
        gbps,
        roofline_pct: Some(100.0),
        dispatches,
    };
    let rows = vec![
        row("roofline", "fma_chain", ms, Some(peak_gflops), None, d1),
        row("roofline", "copy", ms_copy, None, Some(peak_gbps), d2),
    ];
    Ok((
        Roofline {
            peak_gflops,
            peak_gbps,
        },
        rows,
    ))
}

/// Builds rows as measurements finish (so a caller can print them live).
struct Suite<'a, F: FnMut(&BenchRow)> {
    ctx: &'a GpuContext,
    opts: &'a BenchOptions,
    roof: Roofline,
    emit: F,
    rows: Vec<BenchRow>,
}

struct Spec<'s> {
    kernel: &'s str,
    variant: Option<String>,
    layout: Option<Layout>,
    mnk: Option<(usize, usize, usize)>,
    dtype: &'static str,
    flops: Option<f64>,
    bytes: Option<f64>,
}

impl<F: FnMut(&BenchRow)> Suite<'_, F> {
    fn wanted(&self, kernel: &str) -> bool {
        self.opts
            .filter
            .as_ref()
            .is_none_or(|f| kernel.contains(f.as_str()))
    }

    fn measure(
        &mut self,
        spec: Spec,
        record: impl FnMut(&mut Recorder) -> Result<()>,
    ) -> Result<()> {
        if !self.wanted(spec.kernel) {
            return Ok(());
        }
        let timing = time_median(self.ctx, self.opts, record)?;
        self.push(spec, timing);
        Ok(())
    }

    /// Alternatives for the same work, timed round-robin.
    fn compare(&mut self, specs: Vec<Spec>, mut records: Vec<Record>) -> Result<()> {
        if !self.wanted(specs[0].kernel) {
            return Ok(());
        }
        let timings = time_interleaved(self.ctx, self.opts, &mut records)?;
        for (spec, timing) in specs.into_iter().zip(timings) {
            self.push(spec, timing);
        }
        Ok(())
    }

    fn push(&mut self, spec: Spec, (ms, dispatches): (f64, u64)) {
        let gflops = spec.flops.map(|f| f / ms / 1e6);
        let gbps = spec.bytes.map(|b| b / ms / 1e6);
        let roofline_pct = match (gflops, gbps) {
            (Some(g), _) => Some(100.0 * g / self.roof.peak_gflops),
            (None, Some(b)) => Some(100.0 * b / self.roof.peak_gbps),
            _ => None,
        };
        let row = BenchRow {
            kernel: spec.kernel.to_string(),
            variant: spec.variant,
            layout: spec.layout.map(|l| l.to_string()),
            m: spec.mnk.map(|x| x.0),
            n: spec.mnk.map(|x| x.1),
            k: spec.mnk.map(|x| x.2),
            dtype: Some(spec.dtype),
            median_ms: ms,
            gflops,
            gbps,
            roofline_pct,
            dispatches,
        };
        (self.emit)(&row);
        self.rows.push(row);
    }
}

/// The whole table: roofline, GEMM (every variant, the three training
/// layouts), the fused dense layer against the separate kernels, batched
/// task heads against one GEMM per head, MTL-MLP training steps, losses,
/// memory-bound kernels.
pub fn run_suite(
    ctx: &GpuContext,
    opts: &BenchOptions,
    mut emit: impl FnMut(&BenchRow),
) -> Result<Vec<BenchRow>> {
    let (roof, roof_rows) = measure_roofline(ctx, opts)?;
    for r in &roof_rows {
        emit(r);
    }
    let mut s = Suite {
        ctx,
        opts,
        roof,
        emit,
        rows: roof_rows,
    };

    // GEMM: the named variants and the autotuned family member. The naive
    // variant is ~40× slower than the others: it runs at every size in NN
    // (the ratio the docs quote) and up to 512 elsewhere.
    let variants = gemm::available_variants(ctx);
    for &size in &opts.sizes {
        let a = Tensor::zeros(ctx, "A", &[size, size])?;
        let b = Tensor::zeros(ctx, "B", &[size, size])?;
        let c = Tensor::empty(ctx, "C", &[size, size], DType::F32)?;
        for layout in [Layout::NN, Layout::NT, Layout::TN] {
            // The named variants, and the autotuned family member.
            let shape = gemm::GemmShape {
                batch: 1,
                m: size,
                n: size,
                k: size,
            };
            let mut row_variants = variants.clone();
            if s.wanted("gemm") {
                let tuned = crate::kernels::autotune::tune_gemm(ctx, layout, shape)?;
                if !row_variants.contains(&tuned) {
                    row_variants.push(tuned);
                }
            }
            for &variant in &row_variants {
                if variant == Variant::Naive && size > 512 && layout != Layout::NN {
                    continue;
                }
                let spec = Spec {
                    kernel: "gemm",
                    variant: Some(variant.to_string()),
                    layout: Some(layout),
                    mnk: Some((size, size, size)),
                    dtype: "f32",
                    flops: Some(2.0 * (size as f64).powi(3)),
                    bytes: None,
                };
                s.measure(spec, |rec| {
                    gemm::gemm_with(rec, variant, layout, &a, &b, &c, &Epilogue::default())
                })?;
            }
        }
    }
    // f16 storage at the largest size, where granted.
    if ctx.granted().shader_f16 {
        if let Some(&size) = opts.sizes.last() {
            let a = Tensor::empty(ctx, "A16", &[size, size], DType::F16)?;
            let c = Tensor::empty(ctx, "C16", &[size, size], DType::F16)?;
            let zero = vec![half::f16::ZERO; size * size];
            a.write_f16(ctx, &zero)?;
            for &variant in variants.iter().filter(|&&v| v != Variant::Naive) {
                let spec = Spec {
                    kernel: "gemm",
                    variant: Some(variant.to_string()),
                    layout: Some(Layout::NN),
                    mnk: Some((size, size, size)),
                    dtype: "f16",
                    flops: Some(2.0 * (size as f64).powi(3)),
                    bytes: None,
                };
                s.measure(spec, |rec| {
                    gemm::gemm_with(rec, variant, Layout::NN, &a, &a, &c, &Epilogue::default())
                })?;
            }
        }
    }

    // The fused dense layer (forward + backward) against the separate
    // kernels, at the MTL trunk shapes (B = 256, 512 → 1024 → 1024).
    for (inputs, outputs) in [(512, 1024), (1024, 1024)] {
        let w = DenseWorkload::new(ctx, 256, inputs, outputs, Activation::Relu)?;
        let plans = [
            Some(BackwardPlan::Prologue),
            Some(BackwardPlan::StoreDelta),
            None,
        ];
        let specs = plans
            .iter()
            .map(|plan| Spec {
                kernel: "dense_fwd_bwd",
                variant: Some(
                    match plan {
                        Some(BackwardPlan::Prologue) => "fused_prologue",
                        Some(BackwardPlan::StoreDelta) => "fused_store_d",
                        None => "separate",
                    }
                    .into(),
                ),
                layout: None,
                mnk: Some((256, outputs, inputs)),
                dtype: "f32",
                flops: Some(w.flops()),
                bytes: None,
            })
            .collect();
        let w = &w;
        let records: Vec<Record> = plans
            .into_iter()
            .map(|plan| -> Record {
                Box::new(move |rec: &mut Recorder| match plan {
                    Some(_) => w.record_fused(rec, None, plan),
                    None => w.record_separate(rec, None),
                })
            })
            .collect();
        s.compare(specs, records)?;
    }

    // Eight task heads 1024 → 256, B = 256: one batched dispatch vs eight.
    let heads = HeadsWorkload::new(ctx, 256, 1024, &[256; 8])?;
    let specs = ["batched", "per_task"]
        .into_iter()
        .map(|variant| Spec {
            kernel: "task_heads",
            variant: Some(variant.into()),
            layout: Some(Layout::NN),
            mnk: Some((256, 256, 1024)),
            dtype: "f32",
            flops: Some(heads.flops()),
            bytes: None,
        })
        .collect();
    let h = &heads;
    let records: Vec<Record> = vec![
        Box::new(move |rec: &mut Recorder| h.record_batched(rec, None)),
        Box::new(move |rec: &mut Recorder| h.record_per_task(rec, None)),
    ];
    s.compare(specs, records)?;

    // Whole training steps (forward + backward + SGD, one submit).
    for small in [true, false] {
        if !s.wanted("train_step") {
            break;
        }
        let mut w = if small {
            MtlMlpWorkload::small(ctx)?
        } else {
            MtlMlpWorkload::standard(ctx)?
        };
        let spec = Spec {
            kernel: "train_step",
            variant: Some(if small { "mtl_mlp_small" } else { "mtl_mlp" }.into()),
            layout: None,
            mnk: None,
            dtype: "f32",
            flops: Some(w.flops),
            bytes: None,
        };
        s.measure(spec, |rec| {
            w.program
                .record_step(rec, StepOptions::default())
                .map(|_| ())
        })?;
    }

    // One step of each MTL architecture on the MTL-MLP shapes.
    if s.wanted("arch_step") {
        for (name, sharing) in ArchWorkload::mtl_mlp_sharings() {
            let mut w = ArchWorkload::mtl_mlp(ctx, sharing)?;
            let spec = Spec {
                kernel: "arch_step",
                variant: Some(name.into()),
                layout: None,
                mnk: None,
                dtype: "f32",
                flops: Some(w.flops),
                bytes: None,
            };
            s.measure(spec, |rec| {
                w.program
                    .record_step(rec, StepOptions::default())
                    .map(|_| ())
            })?;
        }
    }

    // Losses: 8 softmax-CE tasks of 10 classes, B = 256, one dispatch.
    let loss = LossWorkload::new(ctx, 256, 8, 10)?;
    let spec = Spec {
        kernel: "masked_losses",
        variant: Some("softmax_ce".into()),
        layout: None,
        mnk: None,
        dtype: "f32",
        flops: None,
        bytes: Some(loss.bytes()),
    };
    s.measure(spec, |rec| loss.record(rec))?;

    // Memory-bound kernels on 4M elements.
    let n = 4 << 20;
    let x = Tensor::zeros(ctx, "x", &[n])?;
    let y = Tensor::zeros(ctx, "y", &[n])?;
    let out = Tensor::empty(ctx, "out", &[n], DType::F32)?;
    let m = Tensor::zeros(ctx, "m", &[n])?;
    let v = Tensor::zeros(ctx, "v", &[n])?;
    let total = Tensor::empty(ctx, "sum", &[1], DType::F32)?;
    let memory = |kernel, bytes: f64| Spec {
        kernel,
        variant: None,
        layout: None,
        mnk: None,
        dtype: "f32",
        flops: None,
        bytes: Some(bytes),
    };
    s.measure(memory("add", 12.0 * n as f64), |rec| {
        elementwise::add(rec, &x, &y, &out)
    })?;
    s.measure(memory("sum", 4.0 * n as f64), |rec| {
        reduce::sum(rec, &x, &total)
    })?;
    // AdamW reads grad, param, m, v and writes param, m, v.
    s.measure(memory("adamw_step", 28.0 * n as f64), |rec| {
        optim::adamw_step(rec, &AdamW::default(), 1, &out, &x, &m, &v)
    })?;
    stitch_rows(&mut s)?;
    trunk_rows(&mut s)?;
    Ok(s.rows)
}

/// Whole training steps of a 3-layer ReLU trunk (2 heads of 16 units),
/// fully fused (`Sharing::HardFused`, 3 dispatches for the trunk) against
/// dense layers (`Sharing::Hard`), timed round-robin: where fusing pays
/// on this adapter. m = batch rows, n = trunk width, k = layers.
fn trunk_rows<F: FnMut(&BenchRow)>(s: &mut Suite<'_, F>) -> Result<()> {
    use crate::arch::Sharing;
    if !s.wanted("trunk_step") {
        return Ok(());
    }
    let (batches, widths): (&[usize], &[usize]) = if s.opts.small {
        (&[8, 32], &[16, 64])
    } else {
        (&[8, 32, 256], &[8, 16, 32, 64, 128])
    };
    for &rows in batches {
        for &width in widths {
            let trunk = vec![width; 3];
            let mut fused = ArchWorkload::with_shapes(
                s.ctx,
                Sharing::HardFused {
                    trunk: trunk.clone(),
                },
                rows,
                width,
                2,
                16,
            )?;
            let mut dense =
                ArchWorkload::with_shapes(s.ctx, Sharing::Hard { trunk }, rows, width, 2, 16)?;
            let flops = dense.flops;
            let specs = ["fused", "dense"]
                .into_iter()
                .map(|variant| Spec {
                    kernel: "trunk_step",
                    variant: Some(variant.into()),
                    layout: None,
                    mnk: Some((rows, width, 3)),
                    dtype: "f32",
                    flops: Some(flops),
                    bytes: None,
                })
                .collect();
            let records: Vec<Record> = vec![
                Box::new(|rec: &mut Recorder| {
                    fused
                        .program
                        .record_step(rec, StepOptions::default())
                        .map(|_| ())
                }),
                Box::new(|rec: &mut Recorder| {
                    dense
                        .program
                        .record_step(rec, StepOptions::default())
                        .map(|_| ())
                }),
            ];
            s.compare(specs, records)?;
        }
    }
    Ok(())
}

/// Cross-stitch and layer-stitch units (memory-bound): the mix, its
/// accumulated transpose (dX) and the α / β gradients, at 4M-element
/// activations (`small`: 256K; T = 4, C = 256, and an odd T = 3, C = 255
/// that takes the scalar path). Bytes: every operand read or written once.
fn stitch_rows<F: FnMut(&BenchRow)>(s: &mut Suite<'_, F>) -> Result<()> {
    use crate::kernels::cross_stitch::{stitch_alpha_grad, stitch_mix, Stitch};
    use crate::kernels::layer_stitch::{
        layer_stitch_beta_grad, layer_stitch_mix, layer_stitch_spread, LayerStitch,
    };
    let ctx = s.ctx;
    let rows = if s.opts.small { 256 } else { 4096 };
    if s.wanted("cross_stitch") {
        for (tasks, channels) in [(4, 256), (3, 255)] {
            let n = rows * tasks * channels;
            let x = Tensor::zeros(ctx, "x", &[rows, tasks * channels])?;
            let dy = Tensor::zeros(ctx, "dy", &[rows, tasks * channels])?;
            let out = Tensor::zeros(ctx, "out", &[rows, tasks * channels])?;
            for per_channel in [false, true] {
                let unit = Stitch { tasks, per_channel };
                let alpha = Tensor::zeros(ctx, "alpha", &unit.alpha_shape(channels))?;
                let da = Tensor::zeros(ctx, "dalpha", &unit.alpha_shape(channels))?;
                let suffix = if per_channel { "_pc" } else { "" };
                let spec = |what: &str, bytes: f64| Spec {
                    kernel: "cross_stitch",
                    variant: Some(format!("{what}{suffix}")),
                    layout: None,
                    mnk: Some((rows, tasks * channels, tasks)),
                    dtype: "f32",
                    flops: None,
                    bytes: Some(bytes),
                };
                s.measure(spec("mix", 8.0 * n as f64), |rec| {
                    stitch_mix(rec, &unit, &x, &alpha, &out, false, false)
                })?;
                s.measure(spec("dx_acc", 12.0 * n as f64), |rec| {
                    stitch_mix(rec, &unit, &dy, &alpha, &out, true, true)
                })?;
                s.measure(spec("dalpha", 8.0 * n as f64), |rec| {
                    stitch_alpha_grad(rec, &unit, &x, &dy, &da, false)
                })?;
            }
        }
    }
    if s.wanted("layer_stitch") {
        let (rows, tasks, channels, layers) = (rows / 2, 4, 256, 3);
        let n = rows * tasks * channels;
        let unit = LayerStitch { tasks, layers };
        let h = Tensor::zeros(ctx, "h", &[rows, layers * tasks * channels])?;
        let dh = Tensor::zeros(ctx, "dh", &[rows, layers * tasks * channels])?;
        let z = Tensor::zeros(ctx, "z", &[rows, tasks * channels])?;
        let beta = Tensor::zeros(ctx, "beta", &[tasks, layers])?;
        let db = Tensor::zeros(ctx, "dbeta", &[tasks, layers])?;
        let moved = 4.0 * ((layers + 1) * n) as f64;
        let spec = |what: &str| Spec {
            kernel: "layer_stitch",
            variant: Some(what.into()),
            layout: None,
            mnk: Some((rows, tasks * channels, layers)),
            dtype: "f32",
            flops: None,
            bytes: Some(moved),
        };
        s.measure(spec("mix"), |rec| {
            layer_stitch_mix(rec, &unit, &h, &beta, &z, false)
        })?;
        s.measure(spec("spread"), |rec| {
            layer_stitch_spread(rec, &unit, &z, &beta, &dh, false)
        })?;
        s.measure(spec("dbeta"), |rec| {
            layer_stitch_beta_grad(rec, &unit, &h, &z, &db, false)
        })?;
    }
    Ok(())
}
