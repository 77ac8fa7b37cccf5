//! GEMM autotuner: the first time a (adapter, layout, shape class) is seen,
//! every available variant but the naive one is timed on that shape and
//! the fastest is kept, in memory and in a cache file keyed by adapter name,
//! backend and driver, so later processes skip the timing.
//!
//! - `MANYTASK_AUTOTUNE=off` disables timing: the default rule picks
//!   (CPU devices: subgroup if available, else register-blocked; GPUs:
//!   tiled).
//! - `MANYTASK_CACHE_DIR` sets where the cache file lives (default
//!   `$XDG_CACHE_HOME/manytask` or `~/.cache/manytask`); `off` keeps the
//!   table in memory only.
//!
//! Timing a new class takes seconds to minutes on a CPU adapter, so an
//! application can be told first: [`set_tuning_observer`] registers a
//! callback that receives a [`TuningNotice`] before each new class is
//! timed (the CLI prints it as a one-line note).
//!
//! Tuning submits its own work (a few runs per candidate): call
//! [`tune_gemm`] ahead of a measured loop so that a training step stays
//! one submit. Every variant computes the same k-ordered fma chain, so the
//! choice does not change results beyond fma rounding (bit-identical on
//! lavapipe and llvmpipe, tested).

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use crate::error::Result;
use crate::gpu::{DType, GpuContext, Tensor};
use crate::kernels::gemm::{self, available_variants, Epilogue, GemmShape, Layout, Variant};

/// Environment variable that switches the autotuner (see the module doc).
pub const AUTOTUNE_ENV: &str = "MANYTASK_AUTOTUNE";
/// Environment variable naming the directory of the autotune table.
pub const CACHE_DIR_ENV: &str = "MANYTASK_CACHE_DIR";
const CACHE_FILE: &str = "gemm-autotune-v1.tsv";
const CACHE_HEADER: &str =
    "# manytask GEMM autotune table v1: backend, adapter, driver, layout, shape class, variant";

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

#[derive(Default)]
struct Table {
    loaded: bool,
    entries: HashMap<Key, Variant>,
}

fn table() -> &'static Mutex<Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE.get_or_init(|| Mutex::new(Table::default()))
}

fn lock_table() -> std::sync::MutexGuard<'static, Table> {
    table().lock().unwrap_or_else(|p| p.into_inner())
}

/// What the autotuner is about to time: a class it has no entry for.
#[derive(Clone, Debug)]
pub struct TuningNotice {
    /// The GEMM layout.
    pub layout: Layout,
    /// The problem that triggered the timing.
    pub shape: GemmShape,
    /// Its class (the entry the result is kept under).
    pub class: ShapeClass,
    /// How many variants will be timed.
    pub candidates: usize,
    /// Where the result will be kept, or None for memory only.
    pub cache_path: Option<PathBuf>,
}

impl std::fmt::Display for TuningNotice {
    /// One line: what is timed, and that it happens once.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.shape;
        let batch = if s.batch > 1 {
            format!("{}×", s.batch)
        } else {
            String::new()
        };
        write!(
            f,
            "autotune: timing {} GEMM kernels for a new shape, {} {batch}{}×{}×{} (once per adapter and shape class{})",
            self.candidates,
            self.layout,
            s.m,
            s.n,
            s.k,
            if self.cache_path.is_some() { "; cached" } else { "; not cached" }
        )
    }
}

/// A callback told before each new class is timed.
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Time candidates (else use [`default_variant`]).
    pub enabled: bool,
    /// Where the table is persisted; None keeps it in memory.
    pub cache_path: Option<PathBuf>,
}

impl Settings {
    /// `MANYTASK_AUTOTUNE` (off/0/false/no disables) and `MANYTASK_CACHE_DIR`.
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

/// Replaces the settings (process-wide) and forgets the in-memory table,
/// so the next lookup reads the new cache file.
pub fn configure(settings: Settings) {
    *settings_slot().lock().unwrap_or_else(|p| p.into_inner()) = settings;
    forget();
}

/// Drops the in-memory table (the cache file stays).
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

/// The variant used when nothing was measured: measured on lavapipe, CPU
/// devices want no workgroup memory (and subgroup sharing when offered);
/// GPUs want workgroup-memory tiles.
pub fn default_variant(ctx: &GpuContext) -> Variant {
    if ctx.info().device_type == wgpu::DeviceType::Cpu {
        if Variant::Subgroup.available(ctx) {
            Variant::Subgroup
        } else {
            Variant::RegisterBlocked
        }
    } else {
        Variant::Tiled
    }
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
    if !enabled() {
        return Ok(default_variant(ctx));
    }
    let key = (AdapterKey::of(ctx), layout, ShapeClass::of(shape));
    {
        let mut t = lock_table();
        if !t.loaded {
            load_cache(&mut t);
        }
        if let Some(&v) = t.entries.get(&key) {
            if v.available(ctx) {
                return Ok(v);
            }
        }
    }
    notify(&TuningNotice {
        layout,
        shape,
        class: key.2,
        candidates: candidates(ctx, shape).len(),
        cache_path: cache_path(),
    });
    let (best, _) = measure(ctx, layout, shape)?;
    let mut t = lock_table();
    t.entries.insert(key, best);
    save_cache(&t);
    Ok(best)
}

/// Tunes ahead of time (e.g. before a timed training loop).
pub fn tune_gemm(ctx: &GpuContext, layout: Layout, shape: GemmShape) -> Result<Variant> {
    gemm_variant(ctx, layout, shape)
}

/// Times the candidates: each variant's sorted run times in milliseconds,
/// after one untimed run that also builds the pipeline (and lets the driver
/// compile it); at least one timed run. Inputs are zeros: timing does not
/// depend on values.
pub fn time_variants(
    ctx: &GpuContext,
    layout: Layout,
    shape: GemmShape,
    variants: &[Variant],
    runs: usize,
) -> Result<Vec<(Variant, Vec<f64>)>> {
    let (ar, ac) = layout.a_stored(shape.m, shape.k);
    let (br, bc) = layout.b_stored(shape.k, shape.n);
    let batched = |r: usize, c: usize| {
        if shape.batch > 1 {
            vec![shape.batch, r, c]
        } else {
            vec![r, c]
        }
    };
    let a = Tensor::zeros(ctx, "autotune A", &batched(ar, ac))?;
    let b = Tensor::zeros(ctx, "autotune B", &batched(br, bc))?;
    let c = Tensor::empty(ctx, "autotune C", &batched(shape.m, shape.n), DType::F32)?;
    let mut all = Vec::new();
    for &variant in variants {
        let mut samples = Vec::new();
        for run in 0..=runs.max(1) {
            let mut rec = ctx.recorder("autotune");
            gemm::gemm_with(&mut rec, variant, layout, &a, &b, &c, &Epilogue::default())?;
            let start = Instant::now();
            rec.submit()?;
            ctx.wait_idle()?;
            if run > 0 {
                samples.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        samples.sort_by(f64::total_cmp);
        all.push((variant, samples));
    }
    Ok(all)
}

/// The fastest non-naive variant on `shape` by median time, and every
/// candidate's median (ms), fastest first.
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

/// The variants timed for `shape`: every available one but the naive,
/// less those past the driver's loop cap (they would be refused).
fn candidates(ctx: &GpuContext, shape: GemmShape) -> Vec<Variant> {
    let fits = |v: &Variant| v.fits_loop_limit(ctx, shape.k as u64);
    available_variants(ctx)
        .into_iter()
        .filter(|&v| v != Variant::Naive)
        .filter(fits)
        .collect()
}

/// Reads the cache file into the table. A missing file is normal; a
/// malformed line is skipped with a warning (the table is only a cache).
fn load_cache(t: &mut Table) {
    t.loaded = true;
    let Some(path) = cache_path() else { return };
    let Ok(text) = fs::read_to_string(&path) else {
        return;
    };
    let mut bad = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        match parse_line(line) {
            Some((key, v)) => {
                t.entries.insert(key, v);
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
        .map(|((a, layout, class), v)| {
            let clean = |s: &str| s.replace(['\t', '\n'], " ");
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                clean(&a.backend),
                clean(&a.name),
                clean(&a.driver),
                layout.name(),
                class.text(),
                v.name()
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
