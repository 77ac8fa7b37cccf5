//! Parameters, their gradients and the optimiser state in flat arenas.
//!
//! Every parameter has ONE global element offset (`ParamInfo::offset`) in
//! a logical flat space laid out by learning-rate group, each entry at a
//! multiple of the adapter's storage offset alignment; the padding between
//! entries holds zeros in every arena and stays zero under SGD and AdamW
//! (zero gradient, zero value). Each arena kind (values, gradients, every
//! optimiser state) stores that space in one or more buffers.
//!
//! Why split: one storage binding is capped by the adapter
//! (`max_storage_buffer_binding_size`: 128 MiB on lavapipe, about 33.5 M
//! floats), and a model whose every layer would fit was refused when all
//! its parameters had to share one buffer. The split keeps what one
//! buffer gave: the optimiser is ONE dispatch per (learning-rate group,
//! buffer), a step still one submit, a checkpoint one flat array.
//!
//! Invariants of the split (`ParamLayout::split`):
//! - buffer k holds the elements [start_k, end_k) of the flat space; the
//!   ranges increase and do not overlap; the first starts at 0, the last
//!   ends at `ParamLayout::total`;
//! - every start is some entry's offset, so offsets local to a buffer
//!   (offset − start_k) are still aligned for views;
//! - every parameter lies wholly inside one buffer, and so does every
//!   bundle (`ParamBundle`: parameters one kernel binds through one
//!   buffer, like a fused trunk's, or one range, like the shared
//!   parameters Gram balancing compares);
//! - no buffer is larger than the cap (`ArenaCap`);
//! - the elements between two buffers (end_k to start_k+1) are padding
//!   that no buffer holds: flat reads give zeros there, flat writes skip
//!   them;
//! - offsets do not depend on the split: a split arena and a one-buffer
//!   arena of the same model have the same layout, the same checkpoint
//!   bytes and, step after step, the same weights bit for bit (the
//!   optimiser is elementwise). With one buffer everything is as before
//!   the split existed.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::gpu::{DType, GpuContext, Tensor};
use crate::util::rng::Rng;

/// Index of a parameter in its arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub usize);

/// How a parameter starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// All zeros (biases).
    Zeros,
    /// Uniform in ±sqrt(6 / (fan_in + fan_out)) (Glorot), seeded.
    Glorot {
        /// Inputs of the layer.
        fan_in: usize,
        /// Outputs of the layer.
        fan_out: usize,
    },
    /// Uniform in ±bound, seeded.
    Uniform(f32),
    /// Consecutive blocks of (elements, bound), each uniform in ±bound,
    /// drawn from one seeded stream (a task layer's per-task blocks).
    UniformBlocks(Vec<(usize, f32)>),
    /// Every element the same value.
    Constant(f32),
    /// Cross-stitch α: every trailing T×T block gets `diagonal` on the
    /// diagonal and (1 − diagonal)/(T − 1) off it (Misra et al.'s init).
    CrossStitch {
        /// T: the side of each block.
        tasks: usize,
        /// The diagonal value p.
        diagonal: f32,
    },
}

/// One entry of the arena.
#[derive(Clone, Debug)]
pub struct ParamInfo {
    /// Unique name, e.g. `trunk.0.weight`, `stitch.1.alpha`.
    pub name: String,
    /// Shape in elements (a dense weight is [in, out]).
    pub shape: Vec<usize>,
    /// First element in the arena.
    pub offset: usize,
    /// How its values start.
    pub init: Init,
    /// Multiplies the optimiser's learning rate for this parameter
    /// (cross-stitch α often learns faster).
    pub lr_scale: f32,
}

impl ParamInfo {
    /// Elements: the product of the shape.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The layout of a model's parameters, before any buffer exists.
#[derive(Clone, Debug, Default)]
pub struct ParamLayout {
    entries: Vec<ParamInfo>,
    /// Elements, including alignment padding.
    total: usize,
}

impl ParamLayout {
    /// Adds a parameter; `align` is in elements.
    pub fn add(
        &mut self,
        name: &str,
        shape: &[usize],
        init: Init,
        align: usize,
    ) -> Result<ParamId> {
        if self.entries.iter().any(|e| e.name == name) {
            return Err(Error::Shape {
                op: "ParamLayout::add",
                detail: format!("a parameter named '{name}' already exists"),
            });
        }
        // Checked: a model too large for any arena is an error, not an
        // overflow (the arena's own size is checked before allocating).
        let end = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|len| {
                self.total
                    .checked_next_multiple_of(align.max(1))
                    .and_then(|offset| offset.checked_add(len))
                    .and_then(|end| end.checked_next_multiple_of(4).map(|_| end))
            })
            .ok_or_else(|| Error::ModelTooLarge {
                detail: format!(
                    "parameter '{name}' {shape:?} takes the model past {} elements",
                    usize::MAX
                ),
            })?;
        let info = ParamInfo {
            name: name.to_string(),
            shape: shape.to_vec(),
            offset: end - shape.iter().product::<usize>(),
            init,
            lr_scale: 1.0,
        };
        self.total = end;
        self.entries.push(info);
        Ok(ParamId(self.entries.len() - 1))
    }

    /// Sets a parameter's learning-rate multiplier.
    pub fn set_lr_scale(&mut self, id: ParamId, scale: f32) {
        self.entries[id.0].lr_scale = scale;
    }

    /// The distinct learning-rate multipliers, in order of first
    /// appearance: the groups `grouped` lays out.
    pub fn lr_scales(&self) -> Vec<f32> {
        let mut scales: Vec<f32> = Vec::new();
        for e in &self.entries {
            if !scales.contains(&e.lr_scale) {
                scales.push(e.lr_scale);
            }
        }
        scales
    }

    /// The same parameters laid out group by group (one group per
    /// distinct learning-rate multiplier, `lr_scales` order), each group
    /// contiguous: the optimiser runs once per group and arena buffer
    /// (`split`) on views of the arenas.
    pub fn grouped(&self, align: usize) -> ParamLayout {
        let mut out = ParamLayout {
            entries: self.entries.clone(),
            total: 0,
        };
        let align = align.max(4);
        for scale in self.lr_scales() {
            out.total = out.total.next_multiple_of(align);
            for e in out.entries.iter_mut().filter(|e| e.lr_scale == scale) {
                e.offset = out.total.next_multiple_of(align);
                out.total = e.offset + e.shape.iter().product::<usize>();
            }
            out.total = out.total.next_multiple_of(4);
        }
        out
    }

    /// Every parameter, in the order added (ids index it).
    pub fn entries(&self) -> &[ParamInfo] {
        &self.entries
    }

    /// One parameter's entry (panics if `id` is past the last entry).
    pub fn get(&self, id: ParamId) -> &ParamInfo {
        &self.entries[id.0]
    }

    /// Elements of one arena (at least 4, a multiple of 4).
    pub fn total(&self) -> usize {
        self.total.next_multiple_of(4).max(4)
    }

    /// The initial values, from `seed` (each entry from a stream keyed by
    /// its name, so adding a parameter does not change the others').
    pub fn initial_values(&self, seed: u64) -> Vec<f32> {
        self.initial_values_in(seed, 0..self.total())
    }

    /// The initial values of the elements `range` of the flat space (the
    /// entries inside it; one buffer of a split arena), equal to that
    /// slice of `initial_values`.
    pub fn initial_values_in(&self, seed: u64, range: Range<usize>) -> Vec<f32> {
        let mut out = vec![0f32; range.len()];
        for e in self
            .entries
            .iter()
            .filter(|e| e.offset >= range.start && e.offset + e.len() <= range.end)
        {
            // FNV-1a of the name: a parameter's values depend on its name
            // and the seed only, not on what else the model holds.
            let name_hash = e.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
            });
            let mut rng = Rng::new(seed ^ name_hash);
            let at = e.offset - range.start;
            let dst = &mut out[at..at + e.len()];
            match e.init {
                Init::Zeros => {}
                Init::Constant(v) => dst.fill(v),
                Init::Uniform(b) => dst.iter_mut().for_each(|x| *x = rng.uniform(-b, b)),
                Init::UniformBlocks(ref blocks) => {
                    let bounds = blocks.iter().flat_map(|&(n, b)| std::iter::repeat_n(b, n));
                    for (x, b) in dst.iter_mut().zip(bounds) {
                        *x = rng.uniform(-b, b);
                    }
                }
                Init::CrossStitch { tasks, diagonal } => {
                    let off = if tasks > 1 {
                        (1.0 - diagonal) / (tasks - 1) as f32
                    } else {
                        0.0
                    };
                    for (j, x) in dst.iter_mut().enumerate() {
                        let within = j % (tasks * tasks).max(1);
                        *x = if within / tasks == within % tasks {
                            diagonal
                        } else {
                            off
                        };
                    }
                }
                Init::Glorot { fan_in, fan_out } => {
                    let b = (6.0 / (fan_in + fan_out).max(1) as f32).sqrt();
                    dst.iter_mut().for_each(|x| *x = rng.uniform(-b, b));
                }
            }
        }
        out
    }
}

/// The most bytes one arena buffer may hold, and the name of the limit
/// that sets it (errors quote it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArenaCap {
    /// Bytes.
    pub bytes: u64,
    /// Where the cap comes from, e.g. `max_storage_buffer_binding_size`.
    pub limit: &'static str,
}

impl ArenaCap {
    /// The adapter's cap: a buffer must fit `max_buffer_size` and be bound
    /// whole (`max_storage_buffer_binding_size`), whichever is smaller.
    pub fn of_adapter(ctx: &GpuContext) -> ArenaCap {
        let limits = ctx.limits();
        if limits.max_buffer_size < limits.max_storage_buffer_binding_size {
            ArenaCap {
                bytes: limits.max_buffer_size,
                limit: "max_buffer_size",
            }
        } else {
            ArenaCap {
                bytes: limits.max_storage_buffer_binding_size,
                limit: "max_storage_buffer_binding_size",
            }
        }
    }

    /// This cap, or `bytes` (named `limit`) when that is lower.
    pub fn lowered(self, bytes: Option<u64>, limit: &'static str) -> ArenaCap {
        match bytes {
            Some(bytes) if bytes < self.bytes => ArenaCap { bytes, limit },
            _ => self,
        }
    }

    /// Whole elements (f32) one buffer holds, a multiple of 4.
    fn elements(self) -> usize {
        let words = usize::try_from(self.bytes / 4).unwrap_or(usize::MAX);
        words - words % 4
    }
}

/// Parameters that must share one arena buffer: a kernel binds them
/// through one buffer (a fused trunk's weights and biases) or reads them
/// as one range (the shared parameters Gram balancing compares).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamBundle {
    /// What binds them, for errors (e.g. "fused trunk 'trunk'").
    pub what: String,
    /// The parameters.
    pub params: Vec<ParamId>,
}

/// A run of entries no buffer boundary may cut.
struct Unit {
    /// The first entry's offset.
    start: usize,
    /// One past the last element of its last entry.
    end: usize,
    /// The bundles it holds, by index.
    bundles: Vec<usize>,
}

impl ParamLayout {
    /// The buffers (element ranges of the flat space, see the module docs)
    /// that hold this layout with at most `cap` bytes each, every entry
    /// and every bundle inside one of them: buffers fill in offset order
    /// and a new one starts before the first entry that would not fit.
    /// One range, [0, total), when everything fits in one buffer. Fails
    /// naming the parameter or bundle that alone is over the cap.
    pub fn split(&self, cap: ArenaCap, bundles: &[ParamBundle]) -> Result<Vec<Range<usize>>> {
        let total = self.total();
        let cap_elems = cap.elements();
        let round4 = |n: usize| n.next_multiple_of(4);
        let limit_text = || format!("{} bytes ({})", cap.bytes, cap.limit);
        let params: usize = self.entries.iter().map(ParamInfo::len).sum();
        let arena_bytes = (total as u64).saturating_mul(4);
        for e in &self.entries {
            if round4(e.len()) > cap_elems {
                return Err(Error::ModelTooLarge {
                    detail: format!(
                        "parameter '{}' {:?} takes {} bytes, but every parameter must fit in one \
                         arena buffer and this adapter's buffers hold at most {} (the model has \
                         {params} parameters, {arena_bytes} bytes in its parameter arena): use \
                         narrower layers",
                        e.name,
                        e.shape,
                        (e.len() as u64).saturating_mul(4),
                        limit_text()
                    ),
                });
            }
        }
        let mut order: Vec<&ParamInfo> = self.entries.iter().collect();
        order.sort_by_key(|e| e.offset);
        // Bundles' spans in the flat space: no boundary strictly inside.
        let spans: Vec<Range<usize>> = bundles
            .iter()
            .map(|b| {
                let infos = b.params.iter().filter_map(|p| self.entries.get(p.0));
                let start = infos.clone().map(|e| e.offset).min().unwrap_or(0);
                let end = infos.map(|e| e.offset + e.len()).max().unwrap_or(0);
                start..end
            })
            .collect();
        let mut units: Vec<Unit> = Vec::new();
        for e in order {
            let cut_allowed = !spans.iter().any(|s| s.start < e.offset && e.offset < s.end);
            match units.last_mut() {
                Some(u) if !cut_allowed => u.end = u.end.max(e.offset + e.len()),
                _ => units.push(Unit {
                    start: e.offset,
                    end: e.offset + e.len(),
                    bundles: Vec::new(),
                }),
            }
        }
        for (b, s) in spans.iter().enumerate() {
            if let Some(u) = units
                .iter_mut()
                .find(|u| u.start <= s.start && s.start < u.end)
            {
                u.bundles.push(b);
            }
        }
        let mut ranges = Vec::new();
        let (mut start, mut end) = (0, 0);
        for u in &units {
            if round4(u.end) - u.start > cap_elems {
                let what: Vec<&str> = u
                    .bundles
                    .iter()
                    .map(|&b| bundles[b].what.as_str())
                    .collect();
                return Err(Error::ModelTooLarge {
                    detail: format!(
                        "the parameters of {} take {} bytes and must share one arena buffer (one \
                         kernel binds them together), but this adapter's buffers hold at most {}: \
                         use narrower or fewer layers there",
                        what.join(" and "),
                        ((u.end - u.start) as u64).saturating_mul(4),
                        limit_text()
                    ),
                });
            }
            if round4(u.end) - start > cap_elems && end > start {
                // Rounded up to whole vec4s, short of the next entry.
                ranges.push(start..round4(end).min(u.start));
                start = u.start;
            }
            end = u.end;
        }
        ranges.push(start..total);
        Ok(ranges)
    }
}

/// One parameter read back.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedValues {
    /// The parameter's name in the arena.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f32>,
}

/// One arena kind (values, gradients or one optimiser state) over the
/// flat space: one buffer per range of the split. Reads and writes are
/// flat, over the whole space (padding between buffers reads as zeros).
pub struct SplitArena {
    buffers: Vec<Tensor>,
    starts: Vec<usize>,
    total: usize,
}

impl SplitArena {
    /// One buffer per range, each filled by `fill(range)`.
    fn new(
        ctx: &GpuContext,
        label: &str,
        ranges: &[Range<usize>],
        total: usize,
        fill: impl Fn(Range<usize>) -> Vec<f32>,
    ) -> Result<SplitArena> {
        let buffers = ranges
            .iter()
            .enumerate()
            .map(|(k, r)| {
                let label = match ranges.len() {
                    1 => label.to_string(),
                    _ => format!("{label} (buffer {k})"),
                };
                Tensor::from_f32(ctx, &label, &[r.len()], &fill(r.clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SplitArena {
            buffers,
            starts: ranges.iter().map(|r| r.start).collect(),
            total,
        })
    }

    /// The buffers, in the order of their ranges.
    pub fn buffers(&self) -> &[Tensor] {
        &self.buffers
    }

    /// Buffer `k` (panics if `k` is past the last buffer).
    pub fn buffer(&self, k: usize) -> &Tensor {
        &self.buffers[k]
    }

    /// The element of the flat space where each buffer starts.
    pub fn starts(&self) -> &[usize] {
        &self.starts
    }

    /// Elements of the flat space (`ParamLayout::total`).
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether the space holds no elements (never: at least 4).
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The buffer holding the elements [start, start + len) whole.
    fn holding(&self, start: usize, len: usize) -> Option<usize> {
        let k = self
            .starts
            .partition_point(|&s| s <= start)
            .checked_sub(1)?;
        (start + len <= self.starts[k] + self.buffers[k].len()).then_some(k)
    }

    /// A view of the elements [start, start + len) of the flat space with
    /// `shape`: they must lie in one buffer, at an aligned local offset.
    pub fn view(&self, ctx: &GpuContext, start: usize, shape: &[usize]) -> Result<Tensor> {
        let len = crate::gpu::tensor::element_count("SplitArena::view", shape)?;
        let k = self.holding(start, len).ok_or_else(|| Error::Shape {
            op: "SplitArena::view",
            detail: format!(
                "elements {start}..{} of '{}' do not lie in one of its buffers (starting at {:?})",
                start + len,
                self.buffers[0].label(),
                self.starts
            ),
        })?;
        self.buffers[k].view(ctx, start - self.starts[k], shape)
    }

    /// The whole flat space, one read per buffer.
    pub fn to_f32_vec(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        if let [only] = &self.buffers[..] {
            return only.to_f32_vec(ctx);
        }
        let mut out = vec![0f32; self.total];
        for (b, &start) in self.buffers.iter().zip(&self.starts) {
            out[start..start + b.len()].copy_from_slice(&b.to_f32_vec(ctx)?);
        }
        Ok(out)
    }

    /// Overwrites the whole flat space (`len()` values; those between
    /// buffers are padding and are dropped).
    pub fn write_f32(&self, ctx: &GpuContext, data: &[f32]) -> Result<()> {
        if data.len() != self.total {
            return Err(Error::Shape {
                op: "SplitArena::write_f32",
                detail: format!(
                    "host slice has {} elements, the arena '{}' has {}",
                    data.len(),
                    self.buffers[0].label(),
                    self.total
                ),
            });
        }
        for (b, &start) in self.buffers.iter().zip(&self.starts) {
            b.write_f32(ctx, &data[start..start + b.len()])?;
        }
        Ok(())
    }
}

/// The GPU arenas of one model.
pub struct ParamArena {
    /// Names, shapes and offsets of the parameters in every arena.
    pub layout: ParamLayout,
    /// Every parameter's values, flat [layout.total()] (f32).
    pub values: SplitArena,
    /// Every parameter's gradient, laid out like `values`.
    pub grads: SplitArena,
    /// Optimiser state arenas (SGD: velocity; AdamW: m, v).
    pub states: Vec<SplitArena>,
    /// The element ranges of the flat space each buffer holds.
    ranges: Vec<Range<usize>>,
    /// Per entry: the buffer holding it.
    buffer_of: Vec<usize>,
    value_views: Vec<Tensor>,
    grad_views: Vec<Tensor>,
}

impl ParamArena {
    /// Allocates the arenas in buffers of at most `cap` bytes, each
    /// bundle in one buffer (`ParamLayout::split`): values initialised
    /// from `seed`, gradients and `states` optimiser-state arenas zeroed.
    /// Every size is checked before any allocation, host or GPU.
    pub fn new(
        ctx: &GpuContext,
        layout: ParamLayout,
        cap: ArenaCap,
        bundles: &[ParamBundle],
        seed: u64,
        states: usize,
    ) -> Result<Self> {
        let n = layout.total();
        // All the arenas together (values, gradients, states) must have a
        // size at all; each buffer is then checked against the cap.
        let kinds = 2 + states as u64;
        let bytes = (n as u64).checked_mul(4).and_then(|b| b.checked_mul(kinds));
        if bytes.is_none() {
            return Err(Error::ModelTooLarge {
                detail: format!(
                    "the model's {n} arena elements times {kinds} arenas overflow 64-bit bytes"
                ),
            });
        }
        let ranges = layout.split(cap, bundles)?;
        let buffer_of = layout
            .entries
            .iter()
            .map(|e| {
                ranges
                    .partition_point(|r| r.start <= e.offset)
                    .saturating_sub(1)
            })
            .collect();
        let values = SplitArena::new(ctx, "params", &ranges, n, |r| {
            layout.initial_values_in(seed, r)
        })?;
        let zeros = |r: Range<usize>| vec![0.0; r.len()];
        let grads = SplitArena::new(ctx, "grads", &ranges, n, zeros)?;
        let states = (0..states)
            .map(|i| SplitArena::new(ctx, &format!("optimiser state {i}"), &ranges, n, zeros))
            .collect::<Result<Vec<_>>>()?;
        let views = |arena: &SplitArena| -> Result<Vec<Tensor>> {
            layout
                .entries
                .iter()
                .map(|e| arena.view(ctx, e.offset, &e.shape))
                .collect()
        };
        Ok(ParamArena {
            value_views: views(&values)?,
            grad_views: views(&grads)?,
            layout,
            values,
            grads,
            states,
            ranges,
            buffer_of,
        })
    }

    /// A view of one parameter's values, with its shape.
    pub fn value(&self, id: ParamId) -> &Tensor {
        &self.value_views[id.0]
    }

    /// A view of one parameter's gradient, with its shape.
    pub fn grad(&self, id: ParamId) -> &Tensor {
        &self.grad_views[id.0]
    }

    /// The element ranges of the flat space the buffers hold (one per
    /// buffer, in every arena kind alike).
    pub fn buffer_ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }

    /// The buffer holding parameter `id` (panics if `id` is past the last
    /// entry).
    pub fn buffer_of(&self, id: ParamId) -> usize {
        self.buffer_of[id.0]
    }

    /// Parameter `id`'s offset inside its buffer.
    pub fn local_offset(&self, id: ParamId) -> usize {
        self.layout.get(id).offset - self.ranges[self.buffer_of(id)].start
    }

    /// Every parameter's values, by name (one read per buffer).
    pub fn read_all(&self, ctx: &GpuContext) -> Result<Vec<NamedValues>> {
        let all = self.values.to_f32_vec(ctx)?;
        Ok(self
            .layout
            .entries
            .iter()
            .map(|e| NamedValues {
                name: e.name.clone(),
                shape: e.shape.clone(),
                values: all[e.offset..e.offset + e.len()].to_vec(),
            })
            .collect())
    }

    /// Every gradient, flat in arena order (padding included).
    pub fn read_grads(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        self.grads.to_f32_vec(ctx)
    }

    /// Overwrites the parameter values (arena order, padding included).
    pub fn write_values(&self, ctx: &GpuContext, values: &[f32]) -> Result<()> {
        self.values.write_f32(ctx, values)
    }

    /// The element type of every arena (f32).
    pub fn dtype(&self) -> DType {
        DType::F32
    }
}
