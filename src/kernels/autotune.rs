//! GEMM autotuner: the first time a (adapter, layout, shape class) is seen,
//! the available variants but the naive one are timed on that shape and
//! the fastest is kept, in memory and in a cache file keyed by adapter name,
//! backend and driver, so later processes skip the timing.
//!
//! Timing is bounded. Each class gets a budget (default 1 s): every
//! candidate runs once (the default variant first), those clearly slower
//! than the fastest (more than [`SCREEN_SLACK`]×) are dropped, and the rest
//! run again, round-robin, up to three runs each while the class budget
//! lasts; the fastest single run wins (on a shared machine the minimum is
//! the steadiest estimate). A candidate not reached within the budget is
//! not timed. The process has a total budget too (default 4 s): once it
//! is spent, a new class takes the choice of the nearest class tuned for
//! the same adapter and layout (else the default rule), kept in memory
//! only, so a later run tunes it. Problems under [`UNTIMED_FLOPS`] are
//! not timed at all (the default rule picks).
//!
//! - `MANYTASK_AUTOTUNE=off` disables timing: the default rule picks
//!   (CPU devices: subgroup if available, else register-blocked; GPUs:
//!   tiled).
//! - `MANYTASK_AUTOTUNE_CLASS_S` and `MANYTASK_AUTOTUNE_TOTAL_S`: the
//!   budgets above, in seconds (0 for the total: time nothing new).
//! - `MANYTASK_CACHE_DIR` sets where the cache file lives (default
//!   `$XDG_CACHE_HOME/manytask` or `~/.cache/manytask`); `off` keeps the
//!   table in memory only.
//!
//! [`set_tuning_observer`] registers a callback that receives a
//! [`TuningNotice`] before each new class is timed, after it (the choice
//! and every candidate's time), and when the total budget is spent (the
//! CLI prints each as a one-line note).
//!
//! Tuning submits its own work (a few runs per candidate): call
//! [`tune_gemm`] ahead of a measured loop so that a training step stays
//! one submit. Every variant computes the same k-ordered fma chain, so the
//! choice does not change results beyond fma rounding (bit-identical on
//! lavapipe and llvmpipe, tested); a warm cache also fixes the choice.

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::gpu::{DType, GpuContext, Tensor};
use crate::kernels::gemm::{self, available_family, Epilogue, GemmShape, Layout, Variant};

/// Environment variable that switches the autotuner (see the module doc).
pub const AUTOTUNE_ENV: &str = "MANYTASK_AUTOTUNE";
/// Environment variable: seconds of timing one new shape class may take.
pub const CLASS_BUDGET_ENV: &str = "MANYTASK_AUTOTUNE_CLASS_S";
/// Environment variable: seconds of timing one process may spend in all.
pub const TOTAL_BUDGET_ENV: &str = "MANYTASK_AUTOTUNE_TOTAL_S";
/// Default of [`CLASS_BUDGET_ENV`].
pub const DEFAULT_CLASS_BUDGET_S: f64 = 1.0;
/// Default of [`TOTAL_BUDGET_ENV`].
pub const DEFAULT_TOTAL_BUDGET_S: f64 = 4.0;
/// A candidate whose first run is more than this many times the fastest
/// first run is dropped without further runs.
pub const SCREEN_SLACK: f64 = 1.5;
/// Problems under this many flops (2^22: well under a millisecond, where
/// the submit's fixed cost decides) are not timed: the default rule picks.
pub const UNTIMED_FLOPS: f64 = (1u64 << 22) as f64;
/// Runs per candidate, at most.
const MAX_RUNS: usize = 3;
/// Environment variable naming the directory of the autotune table.
pub const CACHE_DIR_ENV: &str = "MANYTASK_CACHE_DIR";
/// v2: variants are members of the generated family (`sgb:16x2k4`, …);
/// a v1 table (four hand-written variants) lives in another file and is
/// ignored, and a file whose header is not this one is not read.
const CACHE_FILE: &str = "gemm-autotune-v2.tsv";
const CACHE_HEADER: &str =
    "# manytask GEMM autotune table v2: backend, adapter, driver, layout, shape class, variant";
/// Most candidates one class times (the shortlist, best prior first).
pub const MAX_CANDIDATES: usize = 6;

/// Shapes are tuned per class: each of batch, M, N, K rounded up to a
/// power of two (so 1000 and 1024 share a class).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShapeClass {
    /// Batch, rounded up to a power of two.
    pub batch: u32,
    /// Rows of C, rounded up to a power of two.
    pub m: u32,
    /// Columns of C, rounded up to a power of two.
    pub n: u32,
    /// The reduced dimension, rounded up to a power of two.
    pub k: u32,
}

impl ShapeClass {
    /// The class of `shape`.
    pub fn of(shape: GemmShape) -> Self {
        let up = |v: usize| (v.max(1) as u64).next_power_of_two() as u32;
        ShapeClass {
            batch: up(shape.batch),
            m: up(shape.m),
            n: up(shape.n),
            k: up(shape.k),
        }
    }

    fn text(&self) -> String {
        format!("{}x{}x{}x{}", self.batch, self.m, self.n, self.k)
    }

    fn parse(s: &str) -> Option<Self> {
        let v: Vec<u32> = s
            .split('x')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        match v[..] {
            [batch, m, n, k] => Some(ShapeClass { batch, m, n, k }),
            _ => None,
        }
    }
}

/// The adapter a table row belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct AdapterKey {
    backend: String,
    name: String,
    driver: String,
}

impl AdapterKey {
    fn of(ctx: &GpuContext) -> Self {
        let info = ctx.info();
        AdapterKey {
            backend: format!("{:?}", info.backend),
            name: info.name.clone(),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
        }
    }
}

type Key = (AdapterKey, Layout, ShapeClass);

/// A table entry: measured ones are persisted; stand-ins chosen after the
/// total budget was spent live in memory only.
#[derive(Clone, Copy, Debug)]
struct Entry {
    variant: Variant,
    measured: bool,
}

#[derive(Default)]
struct Table {
    loaded: bool,
    entries: HashMap<Key, Entry>,
    /// Timing spent in this process (against the total budget).
    spent: Duration,
    /// Whether the observer was told that the total budget is spent.
    told_spent: bool,
}

fn table() -> &'static Mutex<Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE.get_or_init(|| Mutex::new(Table::default()))
}

fn lock_table() -> std::sync::MutexGuard<'static, Table> {
    table().lock().unwrap_or_else(|p| p.into_inner())
}

/// What the autotuner is doing, for [`set_tuning_observer`].
#[derive(Clone, Debug)]
pub enum TuningEvent {
    /// About to time the candidates for a class it has no entry for.
    Timing {
        /// How many variants are candidates.
        candidates: usize,
        /// The class budget, seconds.
        budget_s: f64,
    },
    /// Timing finished: the choice, kept for the class.
    Chosen(TuneReport),
    /// The total budget is spent: this class (and later new ones) takes
    /// a stand-in choice, not timed and not cached.
    OverBudget {
        /// The stand-in: the nearest tuned class's choice, or the default.
        variant: Variant,
        /// The total budget, seconds.
        total_s: f64,
    },
}

/// One notice from the autotuner: the class concerned and what happens.
#[derive(Clone, Debug)]
pub struct TuningNotice {
    /// The GEMM layout.
    pub layout: Layout,
    /// The problem that triggered the notice.
    pub shape: GemmShape,
    /// Its class (the entry the result is kept under).
    pub class: ShapeClass,
    /// Where results are kept, or None for memory only.
    pub cache_path: Option<PathBuf>,
    /// What happens.
    pub event: TuningEvent,
}

impl std::fmt::Display for TuningNotice {
    /// One line: what is timed or chosen, and that it happens once.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.shape;
        let batch = if s.batch > 1 {
            format!("{}×", s.batch)
        } else {
            String::new()
        };
        let problem = format!("{} {batch}{}×{}×{}", self.layout, s.m, s.n, s.k);
        match &self.event {
            TuningEvent::Timing {
                candidates,
                budget_s,
            } => write!(
                f,
                "autotune: timing {candidates} GEMM kernels for a new shape, {problem} (≤ {budget_s} s; once per adapter and shape class{})",
                if self.cache_path.is_some() { "; cached" } else { "; not cached" }
            ),
            TuningEvent::Chosen(report) => write!(f, "autotune: {problem} → {report}"),
            TuningEvent::OverBudget { variant, total_s } => write!(
                f,
                "autotune: the {total_s} s budget is spent; {problem} and later new shapes use the nearest tuned choice ({variant} here), not cached ({TOTAL_BUDGET_ENV} raises it)"
            ),
        }
    }
}

/// A callback told what the autotuner does (see [`TuningEvent`]).
pub type TuningObserver = Box<dyn Fn(&TuningNotice) + Send + Sync>;

fn observer_slot() -> &'static Mutex<Option<TuningObserver>> {
    static OBSERVER: OnceLock<Mutex<Option<TuningObserver>>> = OnceLock::new();
    OBSERVER.get_or_init(|| Mutex::new(None))
}

/// Registers (or with None removes) the process-wide tuning observer.
pub fn set_tuning_observer(observer: Option<TuningObserver>) {
    *observer_slot().lock().unwrap_or_else(|p| p.into_inner()) = observer;
}

fn notify(notice: &TuningNotice) {
    if let Some(observer) = &*observer_slot().lock().unwrap_or_else(|p| p.into_inner()) {
        observer(notice);
    }
}

/// How the autotuner behaves; read from the environment on first use,
/// replaceable with [`configure`].
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Time candidates (else use [`default_variant`]).
    pub enabled: bool,
    /// Where the table is persisted; None keeps it in memory.
    pub cache_path: Option<PathBuf>,
    /// Seconds of timing per new class (at least one run of one candidate
    /// happens, however small).
    pub class_budget_s: f64,
    /// Seconds of timing per process; past it new classes take stand-ins.
    pub total_budget_s: f64,
}

impl Settings {
    /// `MANYTASK_AUTOTUNE` (off/0/false/no disables),
    /// `MANYTASK_AUTOTUNE_CLASS_S`, `MANYTASK_AUTOTUNE_TOTAL_S` and
    /// `MANYTASK_CACHE_DIR`. A budget that does not parse as a
    /// non-negative number of seconds is reported and the default used.
    pub fn from_env() -> Self {
        let enabled = match std::env::var(AUTOTUNE_ENV) {
            Ok(v) => !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "off" | "0" | "false" | "no"
            ),
            Err(_) => true,
        };
        Settings {
            enabled,
            cache_path: default_cache_path(),
            class_budget_s: seconds_from_env(CLASS_BUDGET_ENV, DEFAULT_CLASS_BUDGET_S),
            total_budget_s: seconds_from_env(TOTAL_BUDGET_ENV, DEFAULT_TOTAL_BUDGET_S),
        }
    }
}

fn seconds_from_env(name: &str, default: f64) -> f64 {
    let Ok(text) = std::env::var(name) else {
        return default;
    };
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => v,
        _ => {
            eprintln!("manytask: {name}={text:?} is not a number of seconds ≥ 0; using {default}");
            default
        }
    }
}

fn settings_slot() -> &'static Mutex<Settings> {
    static SETTINGS: OnceLock<Mutex<Settings>> = OnceLock::new();
    SETTINGS.get_or_init(|| Mutex::new(Settings::from_env()))
}

/// The settings in force.
pub fn settings() -> Settings {
    settings_slot()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// Replaces the settings (process-wide) and forgets the in-memory table
/// (and the time spent), so the next lookup reads the new cache file.
pub fn configure(settings: Settings) {
    *settings_slot().lock().unwrap_or_else(|p| p.into_inner()) = settings;
    forget();
}

/// Drops the in-memory table and the time spent (the cache file stays).
pub fn forget() {
    *lock_table() = Table::default();
}

/// Whether timing is enabled.
pub fn enabled() -> bool {
    settings().enabled
}

/// Where the table is persisted, or None.
pub fn cache_path() -> Option<PathBuf> {
    settings().cache_path
}

fn default_cache_path() -> Option<PathBuf> {
    let dir = match std::env::var(CACHE_DIR_ENV) {
        Ok(v) if v.trim().eq_ignore_ascii_case("off") => return None,
        Ok(v) if !v.trim().is_empty() => PathBuf::from(v),
        _ => match (std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME")) {
            (Some(x), _) if !x.is_empty() => PathBuf::from(x).join("manytask"),
            (_, Some(h)) if !h.is_empty() => PathBuf::from(h).join(".cache").join("manytask"),
            _ => return None,
        },
    };
    Some(dir.join(CACHE_FILE))
}

/// The variant used when nothing was measured: the first of the prior
/// order (measured on lavapipe: CPU devices want no workgroup memory, and
/// subgroup broadcast when offered; GPUs want workgroup-memory tiles).
pub fn default_variant(ctx: &GpuContext) -> Variant {
    prior(ctx)
        .into_iter()
        .find(|v| v.available(ctx))
        .unwrap_or(Variant::RegisterBlocked)
}

/// The variant `gemm::gemm` uses for this problem, timing the candidates
/// the first time its class is seen.
pub fn gemm_variant(ctx: &GpuContext, layout: Layout, shape: GemmShape) -> Result<Variant> {
    let chosen = tuned_variant(ctx, layout, shape)?;
    // Where the driver caps an invocation's loop iterations, a variant
    // that would pass the cap yields to the default when that one fits
    // (else the launch reports the cap).
    let fits = |v: Variant| v.fits_loop_limit(ctx, shape.k as u64);
    let fallback = default_variant(ctx);
    Ok(if !fits(chosen) && fits(fallback) {
        fallback
    } else {
        chosen
    })
}

fn tuned_variant(ctx: &GpuContext, layout: Layout, shape: GemmShape) -> Result<Variant> {
    let settings = settings();
    if !settings.enabled || shape.flops() < UNTIMED_FLOPS {
        return Ok(large_problem_lead(ctx, shape).unwrap_or_else(|| default_variant(ctx)));
    }
    let key = (AdapterKey::of(ctx), layout, ShapeClass::of(shape));
    let notice = |event| TuningNotice {
        layout,
        shape,
        class: key.2,
        cache_path: settings.cache_path.clone(),
        event,
    };
    {
        let mut t = lock_table();
        if !t.loaded {
            load_cache(&mut t);
        }
        if let Some(e) = t.entries.get(&key) {
            if e.variant.available(ctx) {
                return Ok(e.variant);
            }
        }
        if t.spent.as_secs_f64() >= settings.total_budget_s {
            // Past the budget: a large problem takes its lead, anything
            // else the nearest measured class's choice.
            let variant = large_problem_lead(ctx, shape)
                .or_else(|| nearest_tuned(&t, &key))
                .unwrap_or_else(|| default_variant(ctx));
            t.entries.insert(
                key.clone(),
                Entry {
                    variant,
                    measured: false,
                },
            );
            if !t.told_spent {
                t.told_spent = true;
                drop(t);
                notify(&notice(TuningEvent::OverBudget {
                    variant,
                    total_s: settings.total_budget_s,
                }));
            }
            return Ok(variant);
        }
    }
    let candidates = candidates(ctx, shape);
    notify(&notice(TuningEvent::Timing {
        candidates: candidates.len(),
        budget_s: settings.class_budget_s,
    }));
    let started = Instant::now();
    let budget = Duration::from_secs_f64(settings.class_budget_s.min(3600.0));
    let report = measure_within(ctx, layout, shape, &candidates, budget)?;
    let best = report.chosen;
    {
        let mut t = lock_table();
        t.spent += started.elapsed();
        t.entries.insert(
            key.clone(),
            Entry {
                variant: best,
                measured: true,
            },
        );
        save_cache(&t);
    }
    notify(&notice(TuningEvent::Chosen(report)));
    Ok(best)
}

/// The choice of the measured class nearest to `key` (same adapter and
/// layout; distance: the sum of |log2| differences of the four sizes; ties
/// go to the smaller class, so the answer does not depend on table order).
fn nearest_tuned(t: &Table, key: &Key) -> Option<Variant> {
    let log = |v: u32| v.max(1).ilog2() as i64;
    let distance = |c: &ShapeClass| {
        (log(c.batch) - log(key.2.batch)).abs()
            + (log(c.m) - log(key.2.m)).abs()
            + (log(c.n) - log(key.2.n)).abs()
            + (log(c.k) - log(key.2.k)).abs()
    };
    t.entries
        .iter()
        .filter(|((a, l, _), e)| e.measured && *a == key.0 && *l == key.1)
        .min_by_key(|((_, _, c), _)| (distance(c), c.batch, c.m, c.n, c.k))
        .map(|(_, e)| e.variant)
}

/// Tunes ahead of time (e.g. before a timed training loop).
pub fn tune_gemm(ctx: &GpuContext, layout: Layout, shape: GemmShape) -> Result<Variant> {
    gemm_variant(ctx, layout, shape)
}

/// Zero operands for timing `shape` (timing does not depend on values).
struct Operands {
    a: Tensor,
    b: Tensor,
    c: Tensor,
}

impl Operands {
    fn new(ctx: &GpuContext, layout: Layout, shape: GemmShape) -> Result<Self> {
        let (ar, ac) = layout.a_stored(shape.m, shape.k);
        let (br, bc) = layout.b_stored(shape.k, shape.n);
        let batched = |r: usize, c: usize| {
            if shape.batch > 1 {
                vec![shape.batch, r, c]
            } else {
                vec![r, c]
            }
        };
        Ok(Operands {
            a: Tensor::zeros(ctx, "autotune A", &batched(ar, ac))?,
            b: Tensor::zeros(ctx, "autotune B", &batched(br, bc))?,
            c: Tensor::empty(ctx, "autotune C", &batched(shape.m, shape.n), DType::F32)?,
        })
    }

    /// One timed run in milliseconds: recording (which builds the pipeline
    /// the first time) happens before the clock starts.
    fn run(&self, ctx: &GpuContext, variant: Variant, layout: Layout) -> Result<f64> {
        let mut rec = ctx.recorder("autotune");
        gemm::gemm_with(
            &mut rec,
            variant,
            layout,
            &self.a,
            &self.b,
            &self.c,
            &Epilogue::default(),
        )?;
        let start = Instant::now();
        rec.submit()?;
        ctx.wait_idle()?;
        Ok(start.elapsed().as_secs_f64() * 1e3)
    }
}

/// Times the candidates: each variant's sorted run times in milliseconds,
/// after one untimed run that also builds the pipeline (and lets the driver
/// compile it); at least one timed run. Inputs are zeros: timing does not
/// depend on values. (Unbudgeted: for examples and studies.)
pub fn time_variants(
    ctx: &GpuContext,
    layout: Layout,
    shape: GemmShape,
    variants: &[Variant],
    runs: usize,
) -> Result<Vec<(Variant, Vec<f64>)>> {
    let ops = Operands::new(ctx, layout, shape)?;
    let mut all = Vec::new();
    for &variant in variants {
        let mut samples = Vec::new();
        for run in 0..=runs.max(1) {
            let ms = ops.run(ctx, variant, layout)?;
            if run > 0 {
                samples.push(ms);
            }
        }
        samples.sort_by(f64::total_cmp);
        all.push((variant, samples));
    }
    Ok(all)
}

/// One candidate's timings within [`TuneReport`].
#[derive(Clone, Debug)]
pub struct CandidateTimes {
    /// The variant.
    pub variant: Variant,
    /// Its screening run (ms), or None where the budget ran out first.
    pub screen_ms: Option<f64>,
    /// Its runs on the full problem (ms, in run order).
    pub full_ms: Vec<f64>,
}

/// What timing one class found.
#[derive(Clone, Debug)]
pub struct TuneReport {
    /// The variant kept.
    pub chosen: Variant,
    /// Every candidate, in the order they were screened.
    pub samples: Vec<CandidateTimes>,
    /// Candidates dropped after screening (clearly slower).
    pub dropped: Vec<Variant>,
    /// The problem the screen ran on.
    pub screened_on: GemmShape,
    /// Seconds the timing took, pipeline builds included.
    pub elapsed_s: f64,
}

impl std::fmt::Display for TuneReport {
    /// `subgroup (screen on 1×64×1024×250: subgroup 2.1 ms, rb 7.9 ms
    /// dropped, tiled not timed; full: subgroup 8.3 ms ×1; 0.4 s)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.screened_on;
        let screen: Vec<String> = self
            .samples
            .iter()
            .map(|c| match c.screen_ms {
                None => format!("{} not timed", c.variant),
                Some(ms) if self.dropped.contains(&c.variant) => {
                    format!("{} {ms:.1} ms dropped", c.variant)
                }
                Some(ms) => format!("{} {ms:.1} ms", c.variant),
            })
            .collect();
        let full: Vec<String> = self
            .samples
            .iter()
            .filter_map(|c| {
                let best = c.full_ms.iter().copied().min_by(f64::total_cmp)?;
                Some(format!("{} {best:.1} ms ×{}", c.variant, c.full_ms.len()))
            })
            .collect();
        write!(
            f,
            "{} (screen on {}×{}×{}×{}: {}",
            self.chosen,
            s.batch,
            s.m,
            s.n,
            s.k,
            screen.join(", ")
        )?;
        if !full.is_empty() {
            write!(f, "; full: {}", full.join(", "))?;
        }
        write!(f, "; {:.1} s)", self.elapsed_s)
    }
}

/// Times `candidates` (the first is the choice when nothing else runs) on
/// `shape` within `budget`, in two stages:
///
/// 1. *Screening*: each candidate runs once on a reduced problem (batch 1
///    and a quarter of the rows, at least 64, when the problem is large;
///    else the problem itself); those more than [`SCREEN_SLACK`]× the
///    fastest are dropped.
/// 2. *Refinement*: the rest run on the full problem, round-robin, up to
///    three runs each, while the budget lasts.
///
/// The fastest single run wins, on the full problem when every survivor
/// ran it, else on the screen (ties: candidate order). Each pipeline is
/// first run on a tiny problem, untimed, so that a driver compiling at
/// the first dispatch does not charge that to the candidate. The first
/// candidate is always screened, so the budget can be overrun by its
/// pipeline build and one run; no other run starts once the time spent
/// plus the run's expected time passes the budget.
pub fn measure_within(
    ctx: &GpuContext,
    layout: Layout,
    shape: GemmShape,
    candidates: &[Variant],
    budget: Duration,
) -> Result<TuneReport> {
    let started = Instant::now();
    let screen_shape = screening_shape(shape);
    let full_is_screen = screen_shape == shape;
    let screen = Operands::new(ctx, layout, screen_shape)?;
    // The driver may compile a pipeline at its first dispatch (llvmpipe
    // does): a tiny problem with the same pipeline pays that before the
    // clock runs, for little. Same layout and residues mod 4 of M, N and
    // K, so the same vec4 loads (VEC_A, the `_at` entry, VEC_B).
    let tiny = GemmShape {
        batch: 1,
        m: 8 + shape.m % 4,
        n: 4 + shape.n % 4,
        k: 8 + shape.k % 4,
    };
    let warm = Operands::new(ctx, layout, tiny)?;
    let fits = |expected_ms: f64| {
        started.elapsed().as_secs_f64() * 1e3 + expected_ms <= budget.as_secs_f64() * 1e3
    };
    let min = |s: &[f64]| s.iter().copied().min_by(f64::total_cmp);

    // Stage 1: one screening run each.
    let mut screened: Vec<(Variant, f64)> = Vec::new();
    for (i, &variant) in candidates.iter().enumerate() {
        let best_so_far = screened.iter().map(|s| s.1).min_by(f64::total_cmp);
        if i > 0 && !fits(best_so_far.unwrap_or(0.0)) {
            break;
        }
        warm.run(ctx, variant, layout)?;
        screened.push((variant, screen.run(ctx, variant, layout)?));
    }
    drop(screen);
    let first_best = screened
        .iter()
        .map(|s| s.1)
        .min_by(f64::total_cmp)
        .unwrap_or(f64::INFINITY);
    let dropped: Vec<Variant> = screened
        .iter()
        .filter(|s| s.1 > SCREEN_SLACK * first_best)
        .map(|s| s.0)
        .collect();
    let survivors: Vec<Variant> = screened
        .iter()
        .map(|s| s.0)
        .filter(|v| !dropped.contains(v))
        .collect();

    // Stage 2: full-problem runs of the survivors (a lone survivor needs
    // none). Where the screen was the full problem, its run counts.
    let mut full: Vec<(Variant, Vec<f64>)> = survivors
        .iter()
        .map(|&v| {
            let first = screened.iter().find(|s| s.0 == v).map(|s| s.1);
            (
                v,
                if full_is_screen {
                    first.into_iter().collect()
                } else {
                    Vec::new()
                },
            )
        })
        .collect();
    if survivors.len() > 1 {
        let ops = Operands::new(ctx, layout, shape)?;
        // A full run is expected to take the screen time scaled by work.
        let scale = shape.flops() / screen_shape.flops().max(1.0);
        'rounds: for round in 0..MAX_RUNS {
            for (v, s) in full.iter_mut() {
                if s.len() > round {
                    continue;
                }
                let expected = min(s).unwrap_or_else(|| {
                    screened.iter().find(|x| x.0 == *v).map_or(0.0, |x| x.1) * scale
                });
                if !fits(expected) {
                    break 'rounds;
                }
                s.push(ops.run(ctx, *v, layout)?);
            }
        }
    }
    let all_full = full.iter().all(|(_, s)| !s.is_empty());
    let score = |v: Variant| -> f64 {
        let t = if all_full {
            full.iter().find(|x| x.0 == v).and_then(|x| min(&x.1))
        } else {
            screened.iter().find(|x| x.0 == v).map(|x| x.1)
        };
        t.unwrap_or(f64::INFINITY)
    };
    let chosen = survivors
        .iter()
        .copied()
        .min_by(|&x, &y| score(x).total_cmp(&score(y)))
        .or_else(|| candidates.first().copied())
        .unwrap_or(Variant::Naive);
    let samples = candidates
        .iter()
        .map(|&v| {
            let screen_ms = screened.iter().find(|s| s.0 == v).map(|s| s.1);
            let full_ms = full
                .iter()
                .find(|s| s.0 == v)
                .map(|s| s.1.clone())
                .unwrap_or_default();
            CandidateTimes {
                variant: v,
                screen_ms,
                full_ms,
            }
        })
        .collect();
    Ok(TuneReport {
        chosen,
        samples,
        dropped,
        screened_on: screen_shape,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

/// The problem candidates are screened on: the problem itself when it is
/// small (under 2^26 flops, a few ms on a CPU adapter), else batch 1 and
/// a quarter of the rows (at least 64).
pub fn screening_shape(shape: GemmShape) -> GemmShape {
    if shape.flops() < (1u64 << 26) as f64 {
        return shape;
    }
    GemmShape {
        batch: 1,
        m: shape.m.div_ceil(4).max(64).min(shape.m),
        ..shape
    }
}

/// The fastest non-naive variant on `shape` by median time, and every
/// candidate's median (ms), fastest first. (Unbudgeted: three runs each.)
pub fn measure(
    ctx: &GpuContext,
    layout: Layout,
    shape: GemmShape,
) -> Result<(Variant, Vec<(Variant, f64)>)> {
    let candidates = candidates(ctx, shape);
    let mut times: Vec<(Variant, f64)> = time_variants(ctx, layout, shape, &candidates, 3)?
        .into_iter()
        .map(|(v, samples)| (v, samples[samples.len() / 2]))
        .collect();
    times.sort_by(|x, y| x.1.total_cmp(&y.1));
    let best = times.first().map_or(default_variant(ctx), |t| t.0);
    Ok((best, times))
}

/// The family members worth timing for `shape`, best prior first (the
/// default rule's choice leads): every available member but the naive,
/// less those past the driver's loop cap (they would be refused), less
/// those whose tile wastes much more of the grid on this shape than the
/// best-fitting member's (a 32-row tile on an 8-row problem), cut to
/// [`MAX_CANDIDATES`]. Cheap to screen means few: each candidate costs a
/// pipeline build and a run.
pub fn candidates(ctx: &GpuContext, shape: GemmShape) -> Vec<Variant> {
    let fits = |v: &Variant| v.fits_loop_limit(ctx, shape.k as u64);
    let sg = gemm::subgroup_size(ctx).unwrap_or(0);
    let mut list: Vec<Variant> = available_family(ctx)
        .into_iter()
        .filter(|&v| v != Variant::Naive)
        .filter(fits)
        .collect();
    // Share of the launched tiles' outputs that are inside C.
    let fill = |v: &Variant| {
        let (rows, cols) = v.tile_shape(sg);
        let (m, n) = (shape.m as f64, shape.n as f64);
        m * n / ((m / rows as f64).ceil() * rows as f64 * (n / cols as f64).ceil() * cols as f64)
    };
    let best_fill = list.iter().map(fill).fold(0.0, f64::max);
    list.retain(|v| fill(v) >= 0.5 * best_fill);
    let order = prior(ctx);
    let rank = |v: &Variant| order.iter().position(|p| p == v).unwrap_or(order.len());
    list.sort_by_key(|v| (rank(v), *v));
    let default = large_problem_lead(ctx, shape).unwrap_or_else(|| default_variant(ctx));
    if let Some(i) = list.iter().position(|&v| v == default) {
        let d = list.remove(i);
        list.insert(0, d);
    }
    list.truncate(MAX_CANDIDATES);
    list
}

/// The order candidates are tried in (measured on lavapipe and llvmpipe
/// for CPU adapters, docs/benchmarks.md; the tiles first on GPUs). Members
/// not listed come after, in name order.
fn prior(ctx: &GpuContext) -> Vec<Variant> {
    let cpu = ctx.info().device_type == wgpu::DeviceType::Cpu;
    let names: &[&str] = match (cpu, gemm::subgroup_size(ctx).is_some()) {
        (true, true) => &CPU_SUBGROUP_PRIOR,
        (true, false) => &CPU_PRIOR,
        (false, _) => &GPU_PRIOR,
    };
    names.iter().filter_map(|n| n.parse().ok()).collect()
}

/// Problems from this many flops up (a 256×1024×512 product) lead with
/// `sgb:32x2k4` on CPU adapters with subgroups: the largest
/// members are the fastest there (docs/benchmarks.md) but cost the driver
/// about twice the compile, which only a large problem repays on its first
/// steps (the class budget rarely times a second candidate after a slow
/// compile, so the lead is usually the choice).
pub const LARGE_PROBLEM_FLOPS: f64 = (1u64 << 28) as f64;
const LARGE_PROBLEM_LEAD: &str = "sgb:32x2k4";

fn large_problem_lead(ctx: &GpuContext, shape: GemmShape) -> Option<Variant> {
    let cpu = ctx.info().device_type == wgpu::DeviceType::Cpu;
    (cpu && gemm::subgroup_size(ctx).is_some() && shape.flops() >= LARGE_PROBLEM_FLOPS)
        .then(|| LARGE_PROBLEM_LEAD.parse().ok())
        .flatten()
}

/// Candidate order on CPU adapters with subgroups (lavapipe).
const CPU_SUBGROUP_PRIOR: [&str; 9] = [
    "sgb:16x2k4",
    "sgb:32x1k4",
    "sgb:32x2k4",
    "sgb:64x1k4",
    "sgs:16x2k4",
    "sgb:16x1k4",
    "sgb:8x2k4",
    "sgb:16x2k1",
    "subgroup",
];
/// Candidate order on CPU adapters without subgroups (llvmpipe GL).
const CPU_PRIOR: [&str; 4] = ["rb:16x2k4", "rb:16x4k4", "rb:32x1k4", "rb"];
/// Candidate order on GPUs: workgroup-memory tiles, then subgroup sharing.
const GPU_PRIOR: [&str; 4] = ["tiled", "sgb:32x1k4", "sgb:16x2k4", "rb:32x1k4"];

/// Reads the cache file into the table. A missing file is normal; a
/// malformed line is skipped with a warning (the table is only a cache).
fn load_cache(t: &mut Table) {
    t.loaded = true;
    let Some(path) = cache_path() else { return };
    let Ok(text) = fs::read_to_string(&path) else {
        return;
    };
    if text.lines().next() != Some(CACHE_HEADER) {
        // Another format (or garbage): re-measure and overwrite.
        eprintln!(
            "manytask: {} is not a v2 autotune table; it will be re-measured",
            path.display()
        );
        return;
    }
    let mut bad = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        match parse_line(line) {
            Some((key, v)) => {
                t.entries.insert(
                    key,
                    Entry {
                        variant: v,
                        measured: true,
                    },
                );
            }
            None => bad += 1,
        }
    }
    if bad > 0 {
        eprintln!(
            "manytask: ignored {bad} malformed line(s) in {}; they will be re-measured",
            path.display()
        );
    }
}

fn parse_line(line: &str) -> Option<(Key, Variant)> {
    let f: Vec<&str> = line.split('\t').collect();
    let [backend, name, driver, layout, class, variant] = f[..] else {
        return None;
    };
    let layout = Layout::ALL.into_iter().find(|l| l.name() == layout)?;
    let key = AdapterKey {
        backend: backend.to_string(),
        name: name.to_string(),
        driver: driver.to_string(),
    };
    Some((
        (key, layout, ShapeClass::parse(class)?),
        variant.parse().ok()?,
    ))
}

/// Writes the whole table atomically (temp file + rename); failure to
/// write only costs re-measuring next time, so it warns and goes on.
fn save_cache(t: &Table) {
    let Some(path) = cache_path() else { return };
    let mut rows: Vec<String> = t
        .entries
        .iter()
        .filter(|(_, e)| e.measured)
        .map(|((a, layout, class), e)| {
            let clean = |s: &str| s.replace(['\t', '\n'], " ");
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                clean(&a.backend),
                clean(&a.name),
                clean(&a.driver),
                layout.name(),
                class.text(),
                e.variant.name()
            )
        })
        .collect();
    rows.sort();
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut f = fs::File::create(&tmp)?;
        writeln!(f, "{CACHE_HEADER}")?;
        for r in &rows {
            writeln!(f, "{r}")?;
        }
        f.sync_all()?;
        fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        eprintln!(
            "manytask: could not write the autotune cache {}: {e}",
            path.display()
        );
    }
}
