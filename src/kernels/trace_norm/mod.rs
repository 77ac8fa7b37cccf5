//! Trace norms of a layer's stacked task weights (docs/math.md §4)
//! without a general SVD, in three variants over the tensor 𝒲 of a
//! task-dense layer, stored row-major as [T, in, out] (docs/math.md's
//! 𝒲 ∈ R^{in×out×T}, task axis last):
//! - `LastAxis` (LAF): ‖[T, in·out]‖_*, the storage as it is;
//! - `Tucker`: Σ over the unfoldings of all three axes: [T, in·out],
//!   [in, T·out] (the storage with its leading axes swapped) and
//!   [out, T·in] (the transpose of the storage viewed as [T·in, out]);
//! - `TensorTrain`: [in, out·T] and [in·out, T], which are the input-axis
//!   unfolding and the transpose of the task-axis one up to a column or
//!   row order (‖·‖_* ignores both and ‖Aᵀ‖_* = ‖A‖_*).
//!
//! Each unfolding is a matrix X [r, c]; route (a) (`jacobi`) when its small
//! side is ≤ `MAX_TASKS`, else route (b) (`newton_schulz`). Route (a) forms
//! a wide X's Gram by a GEMM (3 dispatches) or, when the Gram is small
//! enough or X longer than `LP_LOOP_LIMIT` (`GramKernel::for_matrix`), by
//! a deterministic split over the columns (`GramKernel::Chunked`, 4
//! dispatches). The gradient
//! λ·U·Vᵀ of every unfolding is folded back into storage order and added
//! to the weight gradient; the value is the sum of the norms. The proximal
//! step exists for `LastAxis` only: the prox of a sum of nuclear norms of
//! different unfoldings has no closed form (use the gradient form, as Yang
//! & Hospedales 2017 do). A `TraceNormPlan` owns every scratch buffer, so a
//! training program builds it once.
//! Reference: `reference::trace_norm`; tests: kernels-tests/trace_norm.rs.

mod jacobi;
mod newton_schulz;
mod ops;

// The chunked Gram kernel serves task weighting too (`weighting::gram`).
pub(crate) use ops::{gram_partials, GRAM_CHUNK};

use crate::error::{Error, Result};
use crate::gpu::{DType, GpuContext, KernelSpec, Recorder, Tensor};
use crate::kernels::check::require_f32;
use crate::kernels::gemm::Epilogue;
use crate::kernels::{elementwise, reduce};
pub use crate::types::{TaskStack, TraceNormVariant, Unfolding};

use jacobi::Jacobi;
use newton_schulz::NewtonSchulz;

/// The largest small side route (a) takes (s×s in workgroup memory).
pub const MAX_TASKS: usize = 64;
/// Jacobi sweeps: quadratic convergence makes 12 ample for s ≤ 64 in f32.
pub const SWEEPS: u32 = 12;
/// Route (a): σ below this fraction of σ_max is treated as zero.
pub const REL_TOL: f32 = 1e-3;
/// Newton–Schulz steps of route (b). σ/‖X‖_F grows ×1.5 per step while
/// small, so σ_min needs about log_1.5(‖X‖_F/σ_min) + 5 steps. Measured
/// (`newton_schulz_accuracy_by_condition_number`, 80×100, σ log-spaced
/// over κ, f32 on lavapipe): max |P − U·Vᵀ| = 5e-7 at κ = 10, 8e-6 at
/// κ = 1e3, 3e-2 at κ = 1e4, 0.14 at κ = 1e5 (48 steps: 4e-4, the f32
/// floor there). The unconverged error sits in the directions of the
/// smallest σ, whose weight in the gradient it shrinks toward 0 (as route
/// (a)'s `REL_TOL` cut does). More steps: `TraceNormPlan::with_steps`.
pub const NS_STEPS: u32 = 24;

/// `trace_norm_factor` (route (a)'s Jacobi factor): MODE 0 builds the
/// gradient factor V·diag(1/σ)·Vᵀ, MODE 1 (`prox`) the shrinkage
/// V·diag(max(σ − τ, 0)/σ)·Vᵀ.
pub fn factor_spec(prox: bool) -> KernelSpec {
    ops::factor_spec(prox)
}

/// Every pipeline this module can build (for the naga cross-compile test;
/// the chunked Gram's column sum is in `reduce::specs`).
pub fn specs() -> Vec<KernelSpec> {
    vec![
        ops::factor_spec(false),
        ops::factor_spec(true),
        ops::NS_NORMALISE,
        ops::ADD_DIAGONAL,
        ops::PRODUCT,
        ops::SWAP_LEADING_AXES,
        ops::GRAM_PARTIALS,
    ]
}

/// Route (a) forms a wide X's Gram by the chunked kernel when it holds at
/// most this many multiply-adds, s²·c (`GramKernel::for_matrix`).
///
/// Measured on lavapipe (2 CPU cores shared with a parallel build; CPU
/// times, criterion `trace_norm_gram`, the Gram alone, GEMM / chunked):
/// [8, 64K] 26.5 / 3.3 ms, [12, 64K] 34.3 / 9.4, [16, 16K] 8.9 / 4.0,
/// [16, 64K] 28.2 / 13.4 (s²·c = 2^24), then [24, 64K] 22.7 / 32.8,
/// [32, 64K] 22.7 / 52.2, [48, 64K] 117 / 121. The chunked kernel's time
/// grows as s²·c (it rereads each row once per block pair).
pub const CHUNKED_GRAM_MAX_MACS: usize = 1 << 24;

/// Loop iterations lavapipe / llvmpipe run per shader invocation, summed
/// over all its loops (gallivm's `LP_MAX_TGSI_LOOP_ITERATIONS`): past it a
/// loop stops early, silently. The GEMM kernels loop over K in one
/// invocation, so an NT Gram of X [s, c] with c > this sums only the first
/// 65535 columns there (measured: [1, 300 000] gave ‖X‖_* = 147 for 316).
/// The chunked kernel's loops are ≤ 64 iterations.
pub const LP_LOOP_LIMIT: usize = 65_535;

/// How route (a) forms the Gram X·Xᵀ of a wide X [s, c] (s ≤ c, s ≤ 64);
/// a tall X's Xᵀ·X (strided columns) is always the GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GramKernel {
    /// One NT GEMM: s×s outputs, so one or a few workgroups walk all of c
    /// (no split-K).
    Gemm,
    /// Split-K: per-chunk partials of 4×4 blocks of pairs
    /// (`gram_partials`), then a fixed-order column sum (deterministic).
    Chunked,
}

impl GramKernel {
    /// `Chunked` for a wide X with s²·c ≤ `CHUNKED_GRAM_MAX_MACS` (faster,
    /// measured) or c > `LP_LOOP_LIMIT` (the GEMM is wrong there on CPU
    /// adapters, and on a GPU a K loop that long is what the GEMM's missing
    /// split-K makes slow: not measured, no GPU here), else `Gemm`.
    pub fn for_matrix(rows: usize, cols: usize) -> GramKernel {
        let wide = rows <= cols && rows <= MAX_TASKS;
        if wide && (rows * rows * cols <= CHUNKED_GRAM_MAX_MACS || cols > LP_LOOP_LIMIT) {
            GramKernel::Chunked
        } else {
            GramKernel::Gemm
        }
    }
}

/// Partial-sum rows the chunked Gram of an X with `cols` columns needs.
pub fn gram_chunks(cols: usize) -> usize {
    cols.div_ceil(ops::GRAM_CHUNK)
}

/// G [s, s] = X·Xᵀ of a wide X [s, c] (s ≤ c, s ≤ `MAX_TASKS`) by route
/// (a)'s chunked kernel (`GramKernel::Chunked`), with `partials`
/// [`gram_chunks(c)`, s·s] as scratch: 2 dispatches. Plans own their
/// scratch; this is the kernel on its own, for tests.
pub fn chunked_gram(rec: &mut Recorder, x: &Tensor, partials: &Tensor, g: &Tensor) -> Result<()> {
    const OP: &str = "trace_norm::chunked_gram";
    for t in [x, partials, g] {
        require_f32(OP, t)?;
    }
    let &[s, c] = x.shape() else {
        return Err(shape_err(
            OP,
            format!(
                "'{}' is {:?}; X must be a matrix [s, c]",
                x.label(),
                x.shape()
            ),
        ));
    };
    if s == 0 || s > c || s > MAX_TASKS {
        return Err(shape_err(
            OP,
            format!("X [{s}, {c}] must be wide with 1..={MAX_TASKS} rows"),
        ));
    }
    if g.shape() != [s, s] || partials.shape() != [gram_chunks(c), s * s] {
        return Err(shape_err(
            OP,
            format!(
                "G {:?} / partials {:?} do not fit X [{s}, {c}]: [{s}, {s}] and [{}, {}]",
                g.shape(),
                partials.shape(),
                gram_chunks(c),
                s * s
            ),
        ));
    }
    if g.overlaps(x) || partials.overlaps(x) || g.overlaps(partials) {
        return Err(shape_err(OP, "X, partials and G must not alias".into()));
    }
    ops::gram_partials(rec, OP, x, partials)?;
    reduce::column_sums(rec, partials, &g.reshape(&[s * s])?)
}
/// How a matrix's trace norm is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// (a): Gram on the small side (≤ `MAX_TASKS`; `GramKernel`), Jacobi,
    /// one GEMM.
    Jacobi,
    /// (b): Newton–Schulz by GEMMs.
    NewtonSchulz,
}

impl Route {
    /// Jacobi when the small side is ≤ `MAX_TASKS`, else Newton–Schulz.
    pub fn for_matrix(rows: usize, cols: usize) -> Route {
        if rows.min(cols) <= MAX_TASKS {
            Route::Jacobi
        } else {
            Route::NewtonSchulz
        }
    }
}

enum MatrixRoute {
    Jacobi(Jacobi),
    NewtonSchulz(Box<NewtonSchulz>),
}

/// The trace norm of one matrix shape: route and scratch buffers.
struct MatrixPlan {
    rows: usize,
    cols: usize,
    route: MatrixRoute,
}

impl MatrixPlan {
    fn new(ctx: &GpuContext, rows: usize, cols: usize, prox: bool) -> Result<Self> {
        let route = match Route::for_matrix(rows, cols) {
            Route::Jacobi => MatrixRoute::Jacobi(Jacobi::new(ctx, rows, cols)?),
            Route::NewtonSchulz => {
                MatrixRoute::NewtonSchulz(Box::new(NewtonSchulz::new(ctx, rows, cols, prox)?))
            }
        };
        Ok(MatrixPlan { rows, cols, route })
    }

    /// Route (a)'s Gram kernel (None on route (b)).
    fn gram_kernel(&self) -> Option<GramKernel> {
        match &self.route {
            MatrixRoute::Jacobi(j) => Some(j.kernel()),
            MatrixRoute::NewtonSchulz(_) => None,
        }
    }

    /// out (+)= alpha·U·Vᵀ; norm = ‖X‖_*.
    #[allow(clippy::too_many_arguments)]
    fn gradient(
        &self,
        rec: &mut Recorder,
        op: &'static str,
        x: &Tensor,
        steps: u32,
        alpha: f32,
        accumulate: bool,
        out: &Tensor,
        norm: &Tensor,
    ) -> Result<()> {
        let shape = [self.rows, self.cols];
        let (x, out) = (x.reshape(&shape)?, out.reshape(&shape)?);
        match &self.route {
            MatrixRoute::Jacobi(j) => {
                let epi = Epilogue {
                    alpha,
                    beta: accumulate.then_some(1.0),
                    ..Epilogue::default()
                };
                j.run(rec, op, &x, None, &out, &epi, norm)
            }
            MatrixRoute::NewtonSchulz(ns) => {
                ns.gradient(rec, op, &x, steps, alpha, accumulate, &out, norm)
            }
        }
    }

    /// out = U·max(Σ − τ, 0)·Vᵀ; norm = ‖X‖_* before.
    #[allow(clippy::too_many_arguments)]
    fn prox(
        &self,
        rec: &mut Recorder,
        op: &'static str,
        x: &Tensor,
        steps: u32,
        tau: f32,
        out: &Tensor,
        norm: &Tensor,
    ) -> Result<()> {
        let shape = [self.rows, self.cols];
        let (x, out) = (x.reshape(&shape)?, out.reshape(&shape)?);
        match &self.route {
            MatrixRoute::Jacobi(j) => {
                j.run(rec, op, &x, Some(tau), &out, &Epilogue::default(), norm)
            }
            MatrixRoute::NewtonSchulz(ns) => ns.prox(rec, op, &x, steps, tau, &out, norm),
        }
    }
}

/// Everything one regularised layer needs, allocated once.
pub struct TraceNormPlan {
    stack: TaskStack,
    variant: TraceNormVariant,
    prox: bool,
    steps: u32,
    parts: Vec<(Unfolding, MatrixPlan)>,
    /// The input-axis unfolding's copy of W and its polar factor.
    swapped: Option<(Tensor, Tensor)>,
    /// Per-part norms after the first (which writes the caller's norm).
    norms: Vec<Tensor>,
}

fn shape_err(op: &'static str, detail: String) -> Error {
    Error::Shape { op, detail }
}

impl TraceNormPlan {
    /// A plan for the gradient form, or (`prox`) the proximal step, of
    /// `variant` on `stack`. Errors: an empty stack, or a prox of Tucker /
    /// TT (no closed form: use the gradient form).
    pub fn new(
        ctx: &GpuContext,
        stack: TaskStack,
        variant: TraceNormVariant,
        prox: bool,
    ) -> Result<Self> {
        const OP: &str = "trace_norm::plan";
        if stack.is_empty() {
            return Err(shape_err(OP, format!("{stack:?} has no weights")));
        }
        if prox && variant != TraceNormVariant::LastAxis {
            return Err(shape_err(
                OP,
                format!(
                    "the {variant:?} trace norm has no proximal step (the prox of a sum of nuclear norms of different unfoldings has no closed form); use its gradient form (Regulariser::TraceNorm) or the LastAxis prox"
                ),
            ));
        }
        let mut parts = Vec::new();
        let mut swapped = None;
        for &u in variant.unfoldings() {
            let (r, c) = u.matrix(stack);
            parts.push((u, MatrixPlan::new(ctx, r, c, prox)?));
            if u == Unfolding::Inputs {
                let t = |l| Tensor::empty(ctx, l, &[stack.len()], DType::F32);
                swapped = Some((t("trace_norm.unfold_in")?, t("trace_norm.unfold_in.grad")?));
            }
        }
        let norms = (1..parts.len())
            .map(|_| Tensor::empty(ctx, "trace_norm.part_norm", &[1], DType::F32))
            .collect::<Result<_>>()?;
        Ok(TraceNormPlan {
            stack,
            variant,
            prox,
            steps: NS_STEPS,
            parts,
            swapped,
            norms,
        })
    }

    /// Newton–Schulz steps for route (b) (default `NS_STEPS`).
    pub fn with_steps(mut self, steps: u32) -> Self {
        self.steps = steps;
        self
    }

    /// `with_steps` on a built plan.
    pub fn set_steps(&mut self, steps: u32) {
        self.steps = steps;
    }

    /// Forms every wide route (a) Gram with `kernel` instead of by the
    /// `GramKernel::for_matrix` rule (tall ones keep the GEMM): for tests
    /// and benches that compare the two.
    pub fn with_gram_kernel(mut self, kernel: GramKernel) -> Self {
        for (_, m) in &mut self.parts {
            if let MatrixRoute::Jacobi(j) = &mut m.route {
                j.set_kernel(kernel);
            }
        }
        self
    }

    /// Each unfolding's route (a) Gram kernel (None on route (b)), in the
    /// order they run.
    pub fn gram_kernels(&self) -> Vec<Option<GramKernel>> {
        self.parts.iter().map(|(_, m)| m.gram_kernel()).collect()
    }

    /// The regularised weights' shape.
    pub fn stack(&self) -> TaskStack {
        self.stack
    }

    /// Which unfoldings it sums.
    pub fn variant(&self) -> TraceNormVariant {
        self.variant
    }

    /// (unfolding, its matrix, its route), in the order they run.
    pub fn routes(&self) -> Vec<(Unfolding, (usize, usize), Route)> {
        self.parts
            .iter()
            .map(|(u, m)| (*u, (m.rows, m.cols), Route::for_matrix(m.rows, m.cols)))
            .collect()
    }

    /// GEMM flops of one gradient (or, `prox`, proximal) step, the napkin
    /// count benches report throughput by. With s the small and l the large
    /// side of an unfolding: route (a) 2·s²·l (Gram) + 2·s²·l (apply);
    /// route (b) 4·s²·l per step, and for the prox 2·s²·l (H) + 4·s³ per
    /// sign step + 2·s³ + 2·s²·l. Jacobi and element-wise passes not counted.
    pub fn flops(&self, prox: bool) -> f64 {
        let steps = self.steps as f64;
        self.parts
            .iter()
            .map(|(_, m)| {
                let (s, l) = (m.rows.min(m.cols) as f64, m.rows.max(m.cols) as f64);
                match (Route::for_matrix(m.rows, m.cols), prox) {
                    (Route::Jacobi, _) => 4.0 * s * s * l,
                    (Route::NewtonSchulz, false) => steps * 4.0 * s * s * l,
                    (Route::NewtonSchulz, true) => {
                        steps * 4.0 * s * s * l
                            + 4.0 * s * s * l
                            + steps * 4.0 * s * s * s
                            + 2.0 * s * s * s
                    }
                }
            })
            .sum()
    }

    fn check(&self, op: &'static str, w: &Tensor, out: &Tensor, norm: &Tensor) -> Result<()> {
        for t in [w, out, norm] {
            require_f32(op, t)?;
        }
        if w.len() != self.stack.len() || out.len() != w.len() {
            return Err(shape_err(
                op,
                format!(
                    "'{}' ({} elements) and '{}' ({}) must both hold the {:?} ({} weights)",
                    w.label(),
                    w.len(),
                    out.label(),
                    out.len(),
                    self.stack,
                    self.stack.len()
                ),
            ));
        }
        if norm.len() != 1 {
            return Err(shape_err(
                op,
                format!("norm '{}' must have one element", norm.label()),
            ));
        }
        if w.overlaps(out) {
            return Err(shape_err(
                op,
                format!("'{}' must not alias '{}'", out.label(), w.label()),
            ));
        }
        Ok(())
    }

    /// grad += λ·Σ_unfoldings fold(U·Vᵀ); norm = Σ ‖unfolding‖_*.
    pub fn gradient(
        &self,
        rec: &mut Recorder,
        w: &Tensor,
        lambda: f32,
        grad: &Tensor,
        norm: &Tensor,
    ) -> Result<()> {
        const OP: &str = "trace_norm::gradient";
        self.check(OP, w, grad, norm)?;
        if !lambda.is_finite() {
            return Err(shape_err(OP, format!("λ = {lambda} must be finite")));
        }
        let s = self.stack;
        for (i, (u, plan)) in self.parts.iter().enumerate() {
            let part_norm = if i == 0 { norm } else { &self.norms[i - 1] };
            match u {
                Unfolding::Tasks | Unfolding::Outputs => {
                    plan.gradient(rec, OP, w, self.steps, lambda, true, grad, part_norm)?
                }
                Unfolding::Inputs => {
                    let (xs, gs) = self.swapped.as_ref().expect("planned with the unfolding");
                    ops::swap_leading_axes(
                        rec,
                        OP,
                        w,
                        [s.tasks, s.inputs, s.outputs],
                        1.0,
                        false,
                        xs,
                    )?;
                    plan.gradient(rec, OP, xs, self.steps, 1.0, false, gs, part_norm)?;
                    ops::swap_leading_axes(
                        rec,
                        OP,
                        gs,
                        [s.inputs, s.tasks, s.outputs],
                        lambda,
                        true,
                        grad,
                    )?;
                }
            }
            if i > 0 {
                elementwise::axpy(rec, 1.0, part_norm, norm)?;
            }
        }
        Ok(())
    }

    /// out = U·max(Σ − τ, 0)·Vᵀ of the [T, in·out] stack (`LastAxis`
    /// plans built with `prox`); norm = ‖W‖_* before the step.
    pub fn prox(
        &self,
        rec: &mut Recorder,
        w: &Tensor,
        tau: f32,
        out: &Tensor,
        norm: &Tensor,
    ) -> Result<()> {
        const OP: &str = "trace_norm::prox";
        self.check(OP, w, out, norm)?;
        if !self.prox {
            return Err(shape_err(
                OP,
                "this plan was built for the gradient form (prox: false)".into(),
            ));
        }
        if !(tau >= 0.0 && tau.is_finite()) {
            return Err(shape_err(OP, format!("τ = {tau} must be finite and ≥ 0")));
        }
        let (_, plan) = &self.parts[0];
        plan.prox(rec, OP, w, self.steps, tau, out, norm)
    }
}

/// grad += λ·U·Vᵀ for the stacked X [T, d] (LAF; a plan built per call);
/// `norm` = ‖X‖_*.
pub fn trace_norm_gradient(
    rec: &mut Recorder,
    x: &Tensor,
    tasks: usize,
    lambda: f32,
    grad: &Tensor,
    norm: &Tensor,
) -> Result<()> {
    let stack = stack_of("trace_norm::gradient", x, tasks)?;
    TraceNormPlan::new(rec.ctx(), stack, TraceNormVariant::LastAxis, false)?
        .gradient(rec, x, lambda, grad, norm)
}

/// out = U·max(Σ − τ, 0)·Vᵀ for the stacked X [T, d] (`out` laid out like
/// `x`, not aliasing it); `norm` = ‖X‖_* before the step.
pub fn trace_norm_prox(
    rec: &mut Recorder,
    x: &Tensor,
    tasks: usize,
    tau: f32,
    out: &Tensor,
    norm: &Tensor,
) -> Result<()> {
    let stack = stack_of("trace_norm::prox", x, tasks)?;
    TraceNormPlan::new(rec.ctx(), stack, TraceNormVariant::LastAxis, true)?
        .prox(rec, x, tau, out, norm)
}

fn stack_of(op: &'static str, x: &Tensor, tasks: usize) -> Result<TaskStack> {
    if tasks == 0 || x.is_empty() || !x.len().is_multiple_of(tasks) {
        return Err(shape_err(
            op,
            format!(
                "'{}' ({} elements) must stack {tasks} equal task blocks",
                x.label(),
                x.len()
            ),
        ));
    }
    Ok(TaskStack::flat(tasks, x.len() / tasks))
}
