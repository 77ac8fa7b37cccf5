//! `Variant`: the names of the GEMM family's members (the naive
//! reference and every generated [`Config`]), what each needs and how far
//! it loops.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use crate::gpu::GpuContext;
use crate::kernels::gemm::generator::{search_space, Config, Share};

/// A member of the GEMM family. Every member computes the same k-ordered
/// fma chain per output, so all agree to the rounding of fma itself (bit
/// for bit where fma is fused).
///
/// Names (`Display` / `FromStr`): `naive`; `rb`, `subgroup` and `tiled`
/// for the three historical members; and every generated configuration as
/// `share:ROWSxVEC4SkUNROLL`, e.g. `sgb:16x2k4` (see [`Config::name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// One invocation per output: the plain reference variant.
    Naive,
    /// A generated configuration (`kernels::gemm::generator`).
    Family(Config),
}

#[allow(non_upper_case_globals)]
impl Variant {
    /// `rb`: 32 rows × 4 columns per invocation, A loads uniform across
    /// the workgroup, no workgroup memory (`rb:32x1k1`).
    pub const RegisterBlocked: Variant = Variant::Family(Config {
        share: Share::Uniform,
        rows: 32,
        vec4s: 1,
        k_unroll: 1,
    });
    /// `subgroup`: one subgroup per workgroup, 32 rows × 4 columns per
    /// lane, A shared through subgroupShuffle (`sgs:32x1k1`); needs SUBGROUP
    /// and a fixed subgroup size ≥ 8.
    pub const Subgroup: Variant = Variant::Family(Config {
        share: Share::Shuffle,
        rows: 32,
        vec4s: 1,
        k_unroll: 1,
    });
    /// `tiled`: 64×64 workgroup-memory tiles.
    pub const Tiled: Variant = Variant::Family(Config::TILED);

    /// The four named variants (the conformance suites run each).
    pub const ALL: [Variant; 4] = [
        Variant::Naive,
        Variant::RegisterBlocked,
        Variant::Subgroup,
        Variant::Tiled,
    ];

    /// The whole family, available on this adapter or not: the naive
    /// reference, then every generated configuration.
    pub fn family() -> Vec<Variant> {
        std::iter::once(Variant::Naive)
            .chain(search_space().into_iter().map(Variant::Family))
            .collect()
    }

    /// The generated configuration, or None for the naive variant.
    pub fn config(self) -> Option<Config> {
        match self {
            Variant::Naive => None,
            Variant::Family(c) => Some(c),
        }
    }

    /// The WGSL entry point, e.g. "gemm_tiled", "gemm_sgb_r16_v2_k4"
    /// (`gemm_naive` for a configuration outside the search space, which
    /// `launch` refuses before any dispatch).
    pub fn entry(self) -> &'static str {
        match self {
            Variant::Naive => "gemm_naive",
            Variant::Family(c) => entry_names().get(&c).copied().unwrap_or("gemm_naive"),
        }
    }

    /// Name for flags and reports: `naive`, `rb`, `subgroup`, `tiled`,
    /// `sgb:16x2k4`, …
    pub fn name(self) -> String {
        match self {
            Variant::Naive => "naive".to_string(),
            v if v == Variant::RegisterBlocked => "rb".to_string(),
            v if v == Variant::Subgroup => "subgroup".to_string(),
            Variant::Family(c) => c.name(),
        }
    }

    /// Invocations per workgroup along x that the host sets (RB_WG for
    /// uniform configurations: 64 / vec4s, so a tile is 256 columns).
    pub(crate) fn rb_width(self) -> u32 {
        match self {
            Variant::Family(c) if c.share == Share::Uniform => 64 / c.vec4s,
            _ => 0,
        }
    }

    /// (rows, columns) of C one workgroup computes, for an adapter with
    /// this subgroup size (ignored by configurations without subgroups).
    pub fn tile_shape(self, subgroup_size: u32) -> (u64, u64) {
        self.tile(subgroup_size)
    }

    /// (rows, columns) of C one workgroup computes.
    pub(crate) fn tile(self, subgroup_size: u32) -> (u64, u64) {
        match self {
            Variant::Naive => (16, 16),
            Variant::Family(c) => match c.share {
                Share::Tiles => (64, 64),
                Share::Uniform => (c.rows as u64, 4 * (c.vec4s * self.rb_width()) as u64),
                Share::Broadcast | Share::Shuffle => {
                    (c.rows as u64, 4 * (c.vec4s * subgroup_size) as u64)
                }
            },
        }
    }

    /// Whether this variant reads A as vec4s along k (its k unroll is 4).
    pub(crate) fn reads_a4(self) -> bool {
        matches!(self, Variant::Family(c) if c.k_unroll == 4 && c.share != Share::Tiles)
    }

    /// Whether this variant can read a transposed A as vec4s of four rows
    /// at one k (its `_at` entry point: subgroup broadcast with k unroll 4).
    pub fn reads_at4(self) -> bool {
        matches!(self, Variant::Family(c) if c.reads_transposed_a4())
    }

    /// The `_at` twin's entry point (the plain entry where there is none).
    pub fn entry_transposed_a(self) -> &'static str {
        match self {
            Variant::Family(c) if c.reads_transposed_a4() => transposed_entry_names()
                .get(&c)
                .copied()
                .unwrap_or("gemm_naive"),
            v => v.entry(),
        }
    }

    /// Whether this variant reads B as vec4s (the register configurations).
    pub(crate) fn reads_b4(self) -> bool {
        matches!(self, Variant::Family(c) if c.share != Share::Tiles)
    }

    /// Loop iterations one invocation runs for a K-deep product (measured
    /// on llvmpipe, whose invocations stop after 65535: the tiled
    /// variant's tile loads add one iteration per 8 k; an unrolled
    /// configuration's loop runs K/4 times and its tail under 4).
    pub fn loop_iterations(self, k: u64) -> u64 {
        match self {
            Variant::Family(c) if c.share == Share::Tiles => k.div_ceil(8) * 9,
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
            Variant::Family(c) if c.share.needs_subgroup() => subgroup_size(ctx).is_some(),
            _ => true,
        }
    }
}

/// Entry-point names of the search space, built once (the set is fixed,
/// so the strings live for the process).
fn entry_names() -> &'static HashMap<Config, &'static str> {
    static NAMES: OnceLock<HashMap<Config, &'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        search_space()
            .into_iter()
            .map(|c| {
                let name: &'static str = Box::leak(c.entry().into_boxed_str());
                (c, name)
            })
            .collect()
    })
}

/// The `_at` entry-point names, built once like [`entry_names`].
fn transposed_entry_names() -> &'static HashMap<Config, &'static str> {
    static NAMES: OnceLock<HashMap<Config, &'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        search_space()
            .into_iter()
            .filter(Config::reads_transposed_a4)
            .map(|c| {
                let name: &'static str = Box::leak(c.entry_transposed_a().into_boxed_str());
                (c, name)
            })
            .collect()
    })
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "naive" => return Ok(Variant::Naive),
            "rb" => return Ok(Variant::RegisterBlocked),
            "subgroup" => return Ok(Variant::Subgroup),
            _ => {}
        }
        Config::parse(s).map(Variant::Family).ok_or_else(|| {
            format!(
                "unknown GEMM variant '{s}': expected naive, rb, subgroup, tiled or a family \
                 member such as sgb:16x2k4 (`manytask bench` lists them)"
            )
        })
    }
}

/// The subgroup size the subgroup configurations are specialised for: the
/// adapter must grant SUBGROUP and report one fixed size (a range would
/// let the driver pick a size the kernel was not built for).
pub fn subgroup_size(ctx: &GpuContext) -> Option<u32> {
    let g = ctx.granted();
    (g.subgroup
        && g.subgroup_min_size == g.subgroup_max_size
        && SUBGROUP_SIZES.contains(&g.subgroup_min_size))
    .then_some(g.subgroup_min_size)
}

/// Subgroup sizes the subgroup configurations support: powers of two from
/// 8 (broadcast reads A from lanes 0..7; shuffle keeps at most 4 A
/// registers per lane) to 128, the largest devices report.
pub const SUBGROUP_SIZES: [u32; 5] = [8, 16, 32, 64, 128];

/// The named variants this adapter can run (naive, rb, subgroup, tiled).
pub fn available_variants(ctx: &GpuContext) -> Vec<Variant> {
    Variant::ALL
        .into_iter()
        .filter(|v| v.available(ctx))
        .collect()
}

/// Every member of the family this adapter can run.
pub fn available_family(ctx: &GpuContext) -> Vec<Variant> {
    Variant::family()
        .into_iter()
        .filter(|v| v.available(ctx))
        .collect()
}
