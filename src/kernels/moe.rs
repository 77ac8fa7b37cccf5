//! Launchers for `shaders/moe.wgsl`: the gated combination of experts
//! (MMoE, CGC / PLE) and its fused backward, the per-block gate softmax,
//! and the DSelect-k gate (Hazimeh et al. 2021) with its entropy
//! regulariser's gradient. Each is ONE dispatch whatever the number of
//! experts and tasks.
//! Reference: `reference::moe`; tests: kernels-tests/moe.rs.

use crate::error::{Error, Result};
use crate::gpu::{Bind, GpuContext, KernelSpec, Recorder, Shader, Tensor};
use crate::kernels::check::{require_f32, require_loop_budget};

const WG: u32 = 256;

/// `moe_mix`: the gated combination.
pub fn mix_spec() -> KernelSpec {
    KernelSpec::new(Shader::Moe, "moe_mix")
}

/// `moe_mix_backward`: dF and dg in one dispatch (each added to with its
/// flag).
pub fn mix_backward_spec(accumulate_experts: bool, accumulate_gates: bool) -> KernelSpec {
    KernelSpec::new(Shader::Moe, "moe_mix_backward")
        .with_flag("ACCUMULATE", accumulate_experts)
        .with_flag("ACCUMULATE_GATES", accumulate_gates)
}

/// `gate_softmax`.
pub fn softmax_spec() -> KernelSpec {
    KernelSpec::new(Shader::Moe, "gate_softmax")
}

/// `gate_softmax_backward` (added with `accumulate`).
pub fn softmax_backward_spec(accumulate: bool) -> KernelSpec {
    KernelSpec::new(Shader::Moe, "gate_softmax_backward").with_flag("ACCUMULATE", accumulate)
}

/// `dselect_gate`.
pub fn dselect_spec() -> KernelSpec {
    KernelSpec::new(Shader::Moe, "dselect_gate")
}

/// `dselect_gate_backward` (added with `accumulate`).
pub fn dselect_backward_spec(accumulate: bool) -> KernelSpec {
    KernelSpec::new(Shader::Moe, "dselect_gate_backward").with_flag("ACCUMULATE", accumulate)
}

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    let mut all = vec![mix_spec(), softmax_spec(), dselect_spec()];
    for a in [false, true] {
        all.push(softmax_backward_spec(a));
        all.push(dselect_backward_spec(a));
        for b in [false, true] {
            all.push(mix_backward_spec(a, b));
        }
    }
    all
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    width: u32,
    tasks: u32,
    task_experts: u32,
    shared_experts: u32,
    shared_output: u32,
    row_groups: u32,
    selectors: u32,
    bits: u32,
    gamma: f32,
    entropy: f32,
    _pad: u32,
}

/// Whether a mixture also has PLE's shared output (a gate over every
/// expert feeding the next level's shared experts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedOutput {
    /// Only the T task outputs (MMoE, CGC, PLE's last level).
    No,
    /// The T task outputs, then one over all experts (PLE's inner levels).
    Yes,
}

/// How T task outputs mix E experts: task t's own `task_experts` (at
/// t·Es .. in the experts' columns) and the `shared_experts` (at T·Es ..),
/// each expert `width` wide. MMoE: Es = 0, Ss = E. The gates hold one
/// block per output, task t's at t·(Es + Ss) (own experts, then shared),
/// the shared output's (all E experts in order) last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mixture {
    /// T.
    pub tasks: usize,
    /// Es: experts of each task's own.
    pub task_experts: usize,
    /// Ss: experts every task's gate sees.
    pub shared_experts: usize,
    /// PLE's inner-level shared gate.
    pub shared_output: SharedOutput,
    /// W: each expert's output width.
    pub width: usize,
}

impl Mixture {
    /// E = T·Es + Ss.
    pub fn experts(&self) -> usize {
        self.tasks * self.task_experts + self.shared_experts
    }

    /// Outputs: T, plus the shared one.
    pub fn outputs(&self) -> usize {
        self.tasks + usize::from(self.has_shared_output())
    }

    /// Whether the shared output is there.
    pub fn has_shared_output(&self) -> bool {
        self.shared_output == SharedOutput::Yes
    }

    /// Es + Ss: the gate columns of one task.
    pub fn task_block(&self) -> usize {
        self.task_experts + self.shared_experts
    }

    /// G: every gate column.
    pub fn gate_columns(&self) -> usize {
        self.tasks * self.task_block() + usize::from(self.has_shared_output()) * self.experts()
    }

    /// Output o's gate columns: (first, count).
    pub fn gate_block(&self, o: usize) -> (usize, usize) {
        let n = if o < self.tasks {
            self.task_block()
        } else {
            self.experts()
        };
        (o * self.task_block(), n)
    }

    /// The expert gate column c weighs.
    pub fn expert_of(&self, c: usize) -> usize {
        let b = self.task_block();
        if c >= self.tasks * b {
            return c - self.tasks * b;
        }
        let (o, j) = (c / b, c % b);
        if j < self.task_experts {
            o * self.task_experts + j
        } else {
            self.tasks * self.task_experts + j - self.task_experts
        }
    }

    /// The output gate column c feeds.
    pub fn output_of(&self, c: usize) -> usize {
        (c / self.task_block()).min(self.tasks)
    }

    /// An error unless every count is usable (T ≥ 1, E ≥ 1, W ≥ 1).
    pub fn check(&self) -> Result<()> {
        if self.tasks == 0 || self.experts() == 0 || self.width == 0 || self.task_block() == 0 {
            return Err(Error::Shape {
                op: "moe",
                detail: format!(
                    "a mixture needs ≥ 1 task, ≥ 1 expert per gate and width ≥ 1 ({self:?})"
                ),
            });
        }
        Ok(())
    }

    fn params(&self, rows: usize, row_groups: u32) -> Params {
        Params {
            rows: rows as u32,
            width: self.width as u32,
            tasks: self.tasks as u32,
            task_experts: self.task_experts as u32,
            shared_experts: self.shared_experts as u32,
            shared_output: u32::from(self.has_shared_output()),
            row_groups,
            ..Params::default()
        }
    }

    /// Rows, after checking F [rows, E·W], g [rows, G] and h [rows, O·W].
    fn rows_of(&self, op: &'static str, f: &Tensor, g: &Tensor, h: &Tensor) -> Result<usize> {
        self.check()?;
        for t in [f, g, h] {
            require_f32(op, t)?;
        }
        let rows = f.shape().first().copied().unwrap_or(0);
        let want = [
            (f, self.experts() * self.width, "experts F"),
            (g, self.gate_columns(), "gates g"),
            (h, self.outputs() * self.width, "mixture h"),
        ];
        for (t, cols, what) in want {
            if t.shape() != [rows, cols] {
                return Err(Error::Shape {
                    op,
                    detail: format!(
                        "{what} '{}' is {:?}, expected [{rows}, {cols}] for {self:?}",
                        t.label(),
                        t.shape()
                    ),
                });
            }
        }
        Ok(rows)
    }
}

fn dispatch(
    rec: &mut Recorder,
    op: &'static str,
    spec: &KernelSpec,
    params: impl Fn(u32) -> Params,
    binds: &[Bind<'_>],
    threads: usize,
) -> Result<()> {
    if threads == 0 {
        return Ok(());
    }
    let groups = rec.grid_for_groups(op, (threads as u64).div_ceil(WG as u64))?;
    rec.dispatch(op, spec, &params(groups[0]), binds, groups)
}

/// h[r, o·W + w] = Σ_j g[r, o·B + j] · F[r, expert(o, j)·W + w]: every
/// output of the mixture in one dispatch.
pub fn moe_mix(
    rec: &mut Recorder,
    mix: &Mixture,
    f: &Tensor,
    g: &Tensor,
    h: &Tensor,
) -> Result<()> {
    const OP: &str = "moe::mix";
    let rows = mix.rows_of(OP, f, g, h)?;
    let binds = [Bind::read(1, f), Bind::read(2, g), Bind::write(3, h)];
    dispatch(
        rec,
        OP,
        &mix_spec(),
        |x| mix.params(rows, x),
        &binds,
        h.len(),
    )
}

/// Where the mixture's backward writes, and whether it adds.
pub struct MixGrads<'a> {
    /// dF [rows, E·W].
    pub experts: &'a Tensor,
    /// dg [rows, G].
    pub gates: &'a Tensor,
    /// Add into dF instead of overwriting it.
    pub accumulate_experts: bool,
    /// Add into dg instead of overwriting it.
    pub accumulate_gates: bool,
}

/// dF (per expert) and dg of the mixture from dh, in one dispatch.
pub fn moe_mix_backward(
    rec: &mut Recorder,
    mix: &Mixture,
    f: &Tensor,
    g: &Tensor,
    dh: &Tensor,
    grads: &MixGrads<'_>,
) -> Result<()> {
    const OP: &str = "moe::mix_backward";
    let rows = mix.rows_of(OP, f, g, dh)?;
    for (a, b) in [(grads.experts, f), (grads.gates, g)] {
        require_f32(OP, a)?;
        crate::kernels::check::require_same_shape(OP, a, b)?;
    }
    let iterations = (mix.width + mix.experts() + mix.tasks) as u64;
    require_loop_budget(
        rec.ctx(),
        OP,
        iterations,
        || format!("{} columns per expert", mix.width),
        "use narrower experts",
    )?;
    let binds = [
        Bind::read(1, f),
        Bind::read(2, g),
        Bind::write(3, grads.experts),
        Bind::read(4, dh),
        Bind::write(5, grads.gates),
    ];
    let spec = mix_backward_spec(grads.accumulate_experts, grads.accumulate_gates);
    let threads = f.len().max(g.len());
    dispatch(rec, OP, &spec, |x| mix.params(rows, x), &binds, threads)
}

fn softmax_rows(op: &'static str, mix: &Mixture, a: &Tensor, b: &Tensor) -> Result<usize> {
    mix.check()?;
    for t in [a, b] {
        require_f32(op, t)?;
    }
    crate::kernels::check::require_same_shape(op, a, b)?;
    match *a.shape() {
        [rows, cols] if cols == mix.gate_columns() => Ok(rows),
        _ => Err(Error::Shape {
            op,
            detail: format!(
                "gates '{}' are {:?}, expected [rows, {}] for {mix:?}",
                a.label(),
                a.shape(),
                mix.gate_columns()
            ),
        }),
    }
}

/// g = softmax of each output's block of z, per row (one dispatch).
pub fn gate_softmax(rec: &mut Recorder, mix: &Mixture, z: &Tensor, g: &Tensor) -> Result<()> {
    const OP: &str = "moe::gate_softmax";
    let rows = softmax_rows(OP, mix, z, g)?;
    let binds = [Bind::read(1, z), Bind::write(3, g)];
    let threads = rows * mix.outputs();
    dispatch(
        rec,
        OP,
        &softmax_spec(),
        |x| mix.params(rows, x),
        &binds,
        threads,
    )
}

/// dz (+)= g ⊙ (dg − ⟨g, dg⟩) per block, from the softmax output g.
pub fn gate_softmax_backward(
    rec: &mut Recorder,
    mix: &Mixture,
    g: &Tensor,
    dg: &Tensor,
    dz: &Tensor,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "moe::gate_softmax_backward";
    let rows = softmax_rows(OP, mix, g, dg)?;
    crate::kernels::check::require_same_shape(OP, g, dz)?;
    let binds = [Bind::read(1, g), Bind::write(3, dz), Bind::read(4, dg)];
    let spec = softmax_backward_spec(accumulate);
    let threads = rows * mix.outputs();
    dispatch(rec, OP, &spec, |x| mix.params(rows, x), &binds, threads)
}

pub use crate::types::{MAX_DSELECT_EXPERTS, MAX_SELECTORS};

/// A DSelect-k gate: per task, k selectors over E experts, each of m =
/// ⌈log2 E⌉ smooth-step bits (width γ), mixed by softmax weights; the
/// entropy regulariser's weight λ (0: off).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DSelect {
    /// T.
    pub tasks: usize,
    /// E (≤ `MAX_DSELECT_EXPERTS`).
    pub experts: usize,
    /// k (≤ `MAX_SELECTORS`).
    pub selectors: usize,
    /// The smooth step's width γ (> 0).
    pub gamma: f32,
    /// λ of the selectors' entropy Σ_i H(r_i), averaged over rows.
    pub entropy: f32,
}

impl DSelect {
    /// m = ⌈log2 E⌉ (0 for one expert).
    pub fn bits(&self) -> usize {
        self.experts.next_power_of_two().trailing_zeros() as usize
    }

    /// Logit columns per task: k·m selector bits, then k weights.
    pub fn task_logits(&self) -> usize {
        self.selectors * (self.bits() + 1)
    }

    /// An error unless the counts and γ, λ are usable.
    pub fn check(&self) -> Result<()> {
        let ok = self.tasks >= 1
            && (1..=MAX_DSELECT_EXPERTS).contains(&self.experts)
            && (1..=MAX_SELECTORS).contains(&self.selectors)
            && self.gamma.is_finite()
            && self.gamma > 0.0
            && self.entropy.is_finite()
            && self.entropy >= 0.0;
        if !ok {
            return Err(Error::Shape {
                op: "moe::dselect",
                detail: format!(
                    "DSelect-k needs ≥ 1 task, 1..={MAX_DSELECT_EXPERTS} experts, 1..={MAX_SELECTORS} selectors, \
                     γ > 0 and entropy λ ≥ 0, all finite ({self:?})"
                ),
            });
        }
        Ok(())
    }

    fn params(&self, rows: usize, row_groups: u32) -> Params {
        Params {
            rows: rows as u32,
            tasks: self.tasks as u32,
            shared_experts: self.experts as u32,
            row_groups,
            selectors: self.selectors as u32,
            bits: self.bits() as u32,
            gamma: self.gamma,
            entropy: self.entropy / rows.max(1) as f32,
            ..Params::default()
        }
    }

    fn rows_of(
        &self,
        ctx: &GpuContext,
        op: &'static str,
        logits: &Tensor,
        gates: &Tensor,
    ) -> Result<usize> {
        self.check()?;
        for t in [logits, gates] {
            require_f32(op, t)?;
        }
        let rows = logits.shape().first().copied().unwrap_or(0);
        let want = [
            (logits, self.tasks * self.task_logits(), "logits"),
            (gates, self.tasks * self.experts, "gates"),
        ];
        for (t, cols, what) in want {
            if t.shape() != [rows, cols] {
                return Err(Error::Shape {
                    op,
                    detail: format!(
                        "{what} '{}' are {:?}, expected [{rows}, {cols}] for {self:?}",
                        t.label(),
                        t.shape()
                    ),
                });
            }
        }
        let codes = 1u64 << self.bits();
        let iterations = (self.selectors * self.bits().max(1)) as u64 * codes * 8;
        require_loop_budget(
            ctx,
            op,
            iterations,
            || format!("{} selectors over {} experts", self.selectors, self.experts),
            "use fewer experts or selectors",
        )?;
        Ok(rows)
    }
}

/// The DSelect-k gates [rows, T·E] from the logits [rows, T·k·(m + 1)].
pub fn dselect_gate(
    rec: &mut Recorder,
    gate: &DSelect,
    logits: &Tensor,
    gates: &Tensor,
) -> Result<()> {
    const OP: &str = "moe::dselect_gate";
    let rows = gate.rows_of(rec.ctx(), OP, logits, gates)?;
    let binds = [Bind::read(1, logits), Bind::write(3, gates)];
    let threads = rows * gate.tasks;
    dispatch(
        rec,
        OP,
        &dselect_spec(),
        |x| gate.params(rows, x),
        &binds,
        threads,
    )
}

/// d(logits) (+)= the gate's backward of dq, plus λ/rows times the
/// gradient of the selectors' entropy.
pub fn dselect_gate_backward(
    rec: &mut Recorder,
    gate: &DSelect,
    logits: &Tensor,
    dq: &Tensor,
    dlogits: &Tensor,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "moe::dselect_gate_backward";
    let rows = gate.rows_of(rec.ctx(), OP, logits, dq)?;
    crate::kernels::check::require_same_shape(OP, logits, dlogits)?;
    let binds = [
        Bind::read(1, logits),
        Bind::write(3, dlogits),
        Bind::read(4, dq),
    ];
    let spec = dselect_backward_spec(accumulate);
    let threads = rows * gate.tasks;
    dispatch(rec, OP, &spec, |x| gate.params(rows, x), &binds, threads)
}
