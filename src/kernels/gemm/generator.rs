//! The GEMM family's one source of truth: a configuration ([`Config`])
//! and the WGSL entry point it stands for ([`entry_source`]).
//!
//! `build.rs` includes this file and writes two modules into `OUT_DIR`:
//! [`module_source`]`(Module::Plain)` (configurations that need no
//! optional feature) and `Module::Subgroup` (those that share A through
//! subgroup operations). `src/gpu/pipelines.rs` appends them to
//! `shaders/gemm_common.wgsl`, whose helpers (`problem`, `load_a`,
//! `load_a4`, `load_b4`, `store4`, `store_bias_grad4`, `tile_of`) carry
//! every fusion, so every configuration honours every override: epilogue,
//! STORE_Z, prologues, BGRAD, TASKS.
//!
//! This file uses nothing outside itself (build.rs compiles it alone).

use std::fmt::Write as _;

/// How the A values of a tile reach the invocations that need them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Share {
    /// Every invocation loads every A value of its rows: one address across
    /// the workgroup (a uniform load on CPU drivers). No optional feature.
    Uniform,
    /// One subgroup per workgroup; lanes 0..7 load A and
    /// `subgroupBroadcast` with a constant lane hands the values to every
    /// lane (needs SUBGROUP with a fixed size ≥ 8).
    Broadcast,
    /// As `Broadcast`, but each lane loads rows lane, lane + SG, … and
    /// `subgroupShuffle` (a computed lane) shares them.
    Shuffle,
    /// Workgroup-memory tiles (64 × 64, k step 16, 16 × 16 invocations
    /// with 4 × 4 outputs each): what discrete GPUs want.
    Tiles,
}

impl Share {
    /// The prefix of the configuration's name.
    pub fn prefix(self) -> &'static str {
        match self {
            Share::Uniform => "rb",
            Share::Broadcast => "sgb",
            Share::Shuffle => "sgs",
            Share::Tiles => "tiled",
        }
    }

    /// Whether the configuration needs SUBGROUP (the subgroup module).
    pub fn needs_subgroup(self) -> bool {
        matches!(self, Share::Broadcast | Share::Shuffle)
    }
}

/// One member of the GEMM family. Register configurations (every
/// `Share` but `Tiles`) give each invocation `rows` rows × `4·vec4s`
/// columns of C, accumulated in `rows·vec4s` vec4 locals spelled out (no
/// local arrays: CPU drivers keep dynamically indexed arrays in memory),
/// and step k by `k_unroll` (1, or 4 with A read as one vec4 along k where
/// A's k is contiguous and aligned). Every configuration computes each
/// output as one fma chain over k ascending, so all agree bit for bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Config {
    /// How A is shared.
    pub share: Share,
    /// Rows of C per workgroup (all its invocations share them).
    pub rows: u32,
    /// vec4s of B (groups of 4 columns of C) per invocation.
    pub vec4s: u32,
    /// k values per loop iteration (1 or 4; 16 for `Tiles`, its k step).
    pub k_unroll: u32,
}

/// The register configurations of the search space: (sharing, rows,
/// vec4s, k unroll). Pruned from the grid rows ∈ {8, 16, 32, 64} × vec4s ∈
/// {1, 2, 4} × unroll ∈ {1, 4} (16 to 128 accumulators) by lavapipe sweeps
/// (docs/benchmarks.md): each member costs the driver a compile per
/// pipeline, so the family keeps the fast ones, the historical rb and
/// subgroup members, and a few for other adapters' trade-offs.
const REGISTER_SPACE: [(Share, u32, u32, u32); 13] = [
    (Share::Broadcast, 32, 2, 4),
    (Share::Broadcast, 64, 1, 4),
    (Share::Broadcast, 16, 2, 4),
    (Share::Broadcast, 32, 1, 4),
    (Share::Broadcast, 16, 1, 4),
    (Share::Broadcast, 8, 2, 4),
    (Share::Broadcast, 16, 2, 1),
    (Share::Shuffle, 32, 1, 1),
    (Share::Shuffle, 16, 2, 4),
    (Share::Uniform, 32, 1, 1),
    (Share::Uniform, 32, 1, 4),
    (Share::Uniform, 16, 4, 4),
    (Share::Uniform, 16, 2, 4),
];

/// Lanes of a subgroup that load A in `Broadcast` mode: constant lanes
/// 0..7 exist in every supported subgroup size.
pub const BROADCAST_LANES: u32 = 8;

impl Config {
    /// The workgroup-memory configuration (the GPU default).
    pub const TILED: Config = Config {
        share: Share::Tiles,
        rows: 64,
        vec4s: 1,
        k_unroll: 16,
    };

    /// Whether the configuration belongs to the search space (the family
    /// the modules contain).
    pub fn in_space(&self) -> bool {
        search_space().contains(self)
    }

    /// The name flags and reports use: `sgb:16x2k4` (A sharing: rows ×
    /// vec4s per invocation, k unroll), `tiled` for the tiles.
    pub fn name(&self) -> String {
        match self.share {
            Share::Tiles => "tiled".to_string(),
            s => format!(
                "{}:{}x{}k{}",
                s.prefix(),
                self.rows,
                self.vec4s,
                self.k_unroll
            ),
        }
    }

    /// Parses [`Config::name`]'s form; None for a configuration outside
    /// the search space.
    pub fn parse(text: &str) -> Option<Config> {
        if text == "tiled" {
            return Some(Config::TILED);
        }
        let (prefix, rest) = text.split_once(':')?;
        let share = [Share::Uniform, Share::Broadcast, Share::Shuffle]
            .into_iter()
            .find(|s| s.prefix() == prefix)?;
        let (rows, rest) = rest.split_once('x')?;
        let (vec4s, k_unroll) = rest.split_once('k')?;
        let config = Config {
            share,
            rows: rows.parse().ok()?,
            vec4s: vec4s.parse().ok()?,
            k_unroll: k_unroll.parse().ok()?,
        };
        config.in_space().then_some(config)
    }

    /// The WGSL entry point: `gemm_sgb_r16_v2_k4`, `gemm_tiled`.
    pub fn entry(&self) -> String {
        match self.share {
            Share::Tiles => "gemm_tiled".to_string(),
            s => format!(
                "gemm_{}_r{}_v{}_k{}",
                s.prefix(),
                self.rows,
                self.vec4s,
                self.k_unroll
            ),
        }
    }

    /// Whether the configuration has an `_at` twin that reads a
    /// transposed A (stored K×M, M and its rows 4-aligned) as vec4s of
    /// four rows at one k: subgroup broadcast with k unroll 4.
    pub fn reads_transposed_a4(&self) -> bool {
        self.share == Share::Broadcast && self.k_unroll == 4
    }

    /// The `_at` twin's entry point: `gemm_sgb_r32_v2_k4_at`.
    pub fn entry_transposed_a(&self) -> String {
        format!("{}_at", self.entry())
    }

    /// The module the entry point lives in.
    pub fn module(&self) -> Module {
        if self.share.needs_subgroup() {
            Module::Subgroup
        } else {
            Module::Plain
        }
    }
}

/// Every configuration the modules contain: the tiles, then the register
/// configurations of the pruned space.
pub fn search_space() -> Vec<Config> {
    let mut all = vec![Config::TILED];
    all.extend(
        REGISTER_SPACE
            .iter()
            .map(|&(share, rows, vec4s, k_unroll)| Config {
                share,
                rows,
                vec4s,
                k_unroll,
            }),
    );
    all
}

/// The two generated modules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Module {
    /// Configurations that need no optional feature (Uniform, Tiles).
    Plain,
    /// Configurations that need SUBGROUP (Broadcast, Shuffle).
    Subgroup,
}

/// The WGSL text of one module: its override constants, then every
/// configuration of the search space that belongs to it.
pub fn module_source(module: Module) -> String {
    let mut s = String::from(
        "// GENERATED by src/kernels/gemm/generator.rs (build.rs): do not edit.\n\
         // The GEMM family's entry points; helpers in shaders/gemm_common.wgsl.\n",
    );
    match module {
        Module::Plain => s.push_str(
            "// Invocations of a register (rb) workgroup; the host sets 64 / vec4s.\n\
             override RB_WG: u32 = 64u;\n",
        ),
        Module::Subgroup => s.push_str(
            "// The adapter's fixed subgroup size (one subgroup per workgroup).\n\
             override SG: u32 = 8u;\n",
        ),
    }
    for config in search_space().iter().filter(|c| c.module() == module) {
        s.push('\n');
        s.push_str(&entry_source(config));
        if config.reads_transposed_a4() {
            s.push('\n');
            s.push_str(&register_source(config, ALoad::TransposedRows));
        }
    }
    s
}

/// How a register configuration's k-unrolled loop reads A.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ALoad {
    /// Four k of one row as a vec4 (VEC_A) or four scalars.
    AlongK,
    /// A stored K×M: four rows at one k as one vec4 (the `_at` entry).
    TransposedRows,
}

/// The WGSL of one configuration's entry point.
pub fn entry_source(config: &Config) -> String {
    match config.share {
        Share::Tiles => tiled_source(config),
        _ => register_source(config, ALoad::AlongK),
    }
}

const LANES: [&str; 4] = ["x", "y", "z", "w"];

/// A register configuration (see [`Config`]); with
/// `ALoad::TransposedRows` its `_at` twin.
fn register_source(cfg: &Config, a_load: ALoad) -> String {
    let (rows, vec4s, unroll) = (cfg.rows, cfg.vec4s, cfg.k_unroll);
    let share = cfg.share;
    let width = if share == Share::Uniform {
        "RB_WG"
    } else {
        "SG"
    };
    let cols = 4 * vec4s;
    // A registers per lane: Uniform loads every row itself; the subgroup
    // modes spread the rows over lanes (8 lanes, or SG for Shuffle, whose
    // guards drop registers a larger subgroup does not need).
    let regs = match share {
        Share::Uniform => rows,
        _ => rows.div_ceil(BROADCAST_LANES),
    };
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "// {}: {rows} rows × {cols}·{width} columns per workgroup, {} sharing A, k step {unroll}.",
        cfg.name(),
        match share {
            Share::Uniform => "uniform loads",
            Share::Broadcast => "subgroupBroadcast",
            _ => "subgroupShuffle",
        }
    );
    let _ = writeln!(w, "@compute @workgroup_size({width})");
    let _ = writeln!(
        w,
        "fn {}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,",
        match a_load {
            ALoad::AlongK => cfg.entry(),
            ALoad::TransposedRows => cfg.entry_transposed_a(),
        }
    );
    if share == Share::Uniform {
        let _ = writeln!(
            w,
            "        @builtin(local_invocation_id) lid: vec3<u32>) {{"
        );
        let _ = writeln!(w, "    let lane = lid.x;");
    } else {
        let _ = writeln!(w, "        @builtin(subgroup_invocation_id) lane: u32) {{");
    }
    let _ = writeln!(w, "    let t = tile_of(wid, nwg);");
    let _ = writeln!(w, "    if (!t.valid) {{ return; }}");
    let _ = writeln!(w, "    let q = problem(wid.z);");
    let _ = writeln!(
        w,
        "    // Tiles past this problem's own size (a smaller task) have no work."
    );
    let _ = writeln!(
        w,
        "    if (t.row * {rows}u >= q.m || t.col * {cols}u * {width} >= q.n) {{ return; }}"
    );
    let _ = writeln!(w, "    let row0 = t.row * {rows}u;");
    let _ = writeln!(
        w,
        "    let col0 = t.col * {cols}u * {width} + {cols}u * lane;"
    );
    let _ = writeln!(w, "    let last_row = q.m - 1u;");
    for r in 0..regs {
        let row = match share {
            Share::Uniform => format!("row0 + {r}u"),
            Share::Broadcast => format!("row0 + lane % {BROADCAST_LANES}u + {}u", r * 8),
            _ => format!("row0 + lane + {r}u * SG"),
        };
        let _ = writeln!(w, "    let ra{r} = min({row}, last_row);");
    }
    for i in 0..rows {
        for j in 0..vec4s {
            let _ = writeln!(w, "    var c{i}_{j} = vec4<f32>();");
        }
    }
    for j in 0..vec4s {
        let _ = writeln!(w, "    var bs{j} = vec4<f32>();");
    }
    let _ = writeln!(w, "    var kk = 0u;");
    if unroll == 4 {
        let _ = writeln!(w, "    let k4 = q.k & ~3u;");
        if a_load == ALoad::TransposedRows {
            // A stored K×M, 4-aligned: lane l reads rows 4·(l % 8) .. +3
            // of each 32-row group at one k as one vec4.
            for r in 0..cfg.rows.div_ceil(AT_ROWS) {
                let _ = writeln!(
                    w,
                    "    let rt{r} = row0 + {}u + 4u * (lane % {BROADCAST_LANES}u);",
                    r * AT_ROWS
                );
            }
            let _ = writeln!(w, "    for (; kk < k4; kk = kk + 4u) {{");
            share_at(w, cfg);
            unrolled_products(w, cfg);
            let _ = writeln!(w, "    }}");
        }
        if a_load == ALoad::AlongK {
            let _ = writeln!(w, "    for (; kk < k4; kk = kk + 4u) {{");
            load_a(w, cfg, regs, true);
            share_a(w, cfg);
            unrolled_products(w, cfg);
            let _ = writeln!(w, "    }}");
        }
    }
    // k unroll 1, or the tail past the last whole group of 4.
    let _ = writeln!(w, "    for (; kk < q.k; kk = kk + 1u) {{");
    load_a(w, cfg, regs, false);
    share_a(w, cfg);
    k_step(w, cfg, "kk", "", |i| format!("ar{i}"));
    let _ = writeln!(w, "    }}");
    for j in 0..vec4s {
        let _ = writeln!(
            w,
            "    if (BGRAD && t.row == 0u) {{ store_bias_grad4(q, col0 + {}u, bs{j}); }}",
            4 * j
        );
    }
    for i in 0..rows {
        for j in 0..vec4s {
            let _ = writeln!(
                w,
                "    store4(q, row0 + {i}u, col0 + {}u, c{i}_{j});",
                4 * j
            );
        }
    }
    let _ = writeln!(w, "}}");
    s
}

/// Rows of op(A) one vec4 load of the transposed path covers across the
/// 8 loading lanes (4 rows each).
const AT_ROWS: u32 = 4 * BROADCAST_LANES;

/// Accumulators (vec4s per invocation) from which the k-unrolled body is
/// written accumulator-major: measured on lavapipe, the order lifts the
/// 64-accumulator members ~25 % (their accumulators live in memory), does
/// nothing for smaller ones, and makes the driver's compile ~2× slower, so
/// smaller members keep the k-major order.
const ACCUMULATOR_MAJOR_FROM: u32 = 64;

/// The k-unrolled body's products. `ar{i}` holds row i's A values at the
/// four k. Accumulator-major (large members): four k of B, then each
/// accumulator's four fmas in a row, so a CPU driver that keeps
/// accumulators in memory loads and stores each once per four k.
/// Otherwise k-major: B at one k, every accumulator's fma, next k. Both
/// are the same k-ordered chain per output (bit-identical).
fn unrolled_products(w: &mut String, cfg: &Config) {
    if cfg.rows * cfg.vec4s < ACCUMULATOR_MAJOR_FROM {
        for (step, lane) in LANES.iter().enumerate() {
            k_step(w, cfg, &format!("kk + {step}u"), &format!("{step}"), |i| {
                format!("ar{i}.{lane}")
            });
        }
        return;
    }
    for step in 0..4 {
        load_b(w, cfg, &format!("kk + {step}u"), &format!("{step}"));
    }
    for i in 0..cfg.rows {
        for j in 0..cfg.vec4s {
            let mut chain = format!("c{i}_{j}");
            for (step, lane) in LANES.iter().enumerate() {
                chain = format!("fma(vec4<f32>(ar{i}.{lane}), b{step}_{j}, {chain})");
            }
            let _ = writeln!(w, "        c{i}_{j} = {chain};");
        }
    }
}

/// `ar{i}` for the transposed A path (the `_at` entry): at each of the four k, one
/// vec4 of four rows per lane, and row i broadcast from lane (i % 32) / 4.
fn share_at(w: &mut String, cfg: &Config) {
    for step in 0..4 {
        for r in 0..cfg.rows.div_ceil(AT_ROWS) {
            let _ = writeln!(
                w,
                "        let at{step}_{r} = load_at4(q, rt{r}, kk + {step}u);"
            );
        }
    }
    for i in 0..cfg.rows {
        let (r, lane, part) = (i / AT_ROWS, (i % AT_ROWS) / 4, LANES[(i % 4) as usize]);
        let values: Vec<String> = (0..4)
            .map(|step| format!("subgroupBroadcast(at{step}_{r}.{part}, {lane}u)"))
            .collect();
        let _ = writeln!(w, "        let ar{i} = vec4<f32>({});", values.join(", "));
    }
}

/// This iteration's A values of the registers a lane loads: `av{r}`, a
/// vec4 along k (`quad`) or a scalar. Shuffle lanes skip registers the
/// subgroup size leaves empty.
fn load_a(w: &mut String, cfg: &Config, regs: u32, quad: bool) {
    let (ty, call) = if quad {
        ("vec4<f32>", "load_a4")
    } else {
        ("f32", "load_a")
    };
    for r in 0..regs {
        if cfg.share == Share::Shuffle && r > 0 {
            let _ = writeln!(w, "        var av{r} = {ty}();");
            let _ = writeln!(
                w,
                "        if ({r}u * SG < {}u) {{ av{r} = {call}(q, ra{r}, kk); }}",
                cfg.rows
            );
        } else {
            let _ = writeln!(w, "        let av{r} = {call}(q, ra{r}, kk);");
        }
    }
}

/// `ar{i}`: row i's A value(s) in every lane.
fn share_a(w: &mut String, cfg: &Config) {
    for i in 0..cfg.rows {
        let value = match cfg.share {
            Share::Uniform => format!("av{i}"),
            Share::Broadcast => format!(
                "subgroupBroadcast(av{}, {}u)",
                i / BROADCAST_LANES,
                i % BROADCAST_LANES
            ),
            _ => {
                // Row i lives in lane i % SG, register i / SG (SG ≥ 8).
                let regs = cfg.rows.div_ceil(BROADCAST_LANES);
                let mut pick = format!("av{}", regs - 1);
                for r in (0..regs - 1).rev() {
                    pick = format!("select({pick}, av{r}, {i}u / SG == {r}u)");
                }
                format!("subgroupShuffle({pick}, {i}u % SG)")
            }
        };
        let _ = writeln!(w, "        let ar{i} = {value};");
    }
}

/// B's vec4s of this lane at one k (`b{step}_{j}`) and the bias-gradient
/// sums.
fn load_b(w: &mut String, cfg: &Config, k: &str, step: &str) {
    for j in 0..cfg.vec4s {
        let _ = writeln!(
            w,
            "        let b{step}_{j} = load_b4(q, {k}, col0 + {}u);",
            4 * j
        );
        let _ = writeln!(w, "        if (BGRAD) {{ bs{j} = bs{j} + b{step}_{j}; }}");
    }
}

/// One k value: B's vec4s of this lane (`b{step}_{j}`), the
/// bias-gradient sums, and one fma per accumulator (`a(i)`: row i's A
/// value at this k).
fn k_step(w: &mut String, cfg: &Config, k: &str, step: &str, a: impl Fn(u32) -> String) {
    load_b(w, cfg, k, step);
    for i in 0..cfg.rows {
        let av = a(i);
        for j in 0..cfg.vec4s {
            let _ = writeln!(
                w,
                "        c{i}_{j} = fma(vec4<f32>({av}), b{step}_{j}, c{i}_{j});"
            );
        }
    }
}

/// The workgroup-memory configuration.
fn tiled_source(cfg: &Config) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// {}: 16×16 invocations; invocation (x, y) owns rows tile_row·64 + y + 16·i and\n\
         // columns tile_col·64 + x + 16·j (i, j < 4); A and B tiles of 16 k in workgroup memory.",
        cfg.name()
    );
    s.push_str(
        r#"var<workgroup> tile_a: array<f32, 1024>;  // [16 k][64 rows]
var<workgroup> tile_b: array<f32, 1024>;  // [16 k][64 cols]

@compute @workgroup_size(16, 16)
fn gemm_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let t = tile_of(wid, nwg);
    if (!t.valid) { return; }
    let q = problem(wid.z);
    let row0 = t.row * 64u;
    let col0 = t.col * 64u;
    if (row0 >= q.m || col0 >= q.n) { return; }
    var acc: array<f32, 16>;
    var bsum = vec4<f32>();
    for (var k0 = 0u; k0 < q.k; k0 = k0 + 16u) {
        // 256 invocations stage 1024 values of each tile, 4 apiece. Past K
        // the tiles hold zeros, so the fma chain below stays exact.
        for (var e = 0u; e < 4u; e = e + 1u) {
            let idx = li + 256u * e;
            let kk = idx / 64u;
            let rc = idx % 64u;
            let kin = k0 + kk < q.k;
            let kc = min(k0 + kk, q.k - 1u);
            tile_a[idx] = select(0.0, load_a(q, min(row0 + rc, q.m - 1u), kc), kin);
            tile_b[idx] = select(0.0, load_b(q, kc, min(col0 + rc, q.n - 1u)), kin);
        }
        workgroupBarrier();
        let kmax = min(16u, q.k - k0);
        for (var kk = 0u; kk < kmax; kk = kk + 1u) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i = i + 1u) {
                av[i] = tile_a[kk * 64u + lid.y + 16u * i];
                bv[i] = tile_b[kk * 64u + lid.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i = i + 1u) {
                for (var j = 0u; j < 4u; j = j + 1u) {
                    acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]);
                }
            }
            if (BGRAD) { bsum = bsum + vec4<f32>(bv[0], bv[1], bv[2], bv[3]); }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            store(q, row0 + lid.y + 16u * i, col0 + lid.x + 16u * j, acc[i * 4u + j]);
        }
    }
    if (BGRAD && t.row == 0u && lid.y == 0u) {
        store_bias_grad(q, col0 + lid.x, bsum.x);
        store_bias_grad(q, col0 + lid.x + 16u, bsum.y);
        store_bias_grad(q, col0 + lid.x + 32u, bsum.z);
        store_bias_grad(q, col0 + lid.x + 48u, bsum.w);
    }
}
"#,
    );
    s
}
