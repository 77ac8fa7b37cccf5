//! Parameters and their gradients in flat arenas: one buffer for every
//! parameter, one for every gradient, one per optimiser state, so the
//! fused optimiser is ONE dispatch and a checkpoint is one read. Each
//! parameter is a view at an offset aligned to the adapter's storage
//! offset alignment; the padding between entries holds zeros in every
//! arena and stays zero under SGD and AdamW (zero gradient, zero value).

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
            .ok_or_else(|| Error::Shape {
                op: "ParamLayout::add",
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

    /// The same parameters laid out group by group (one group per
    /// distinct learning-rate multiplier, in order of first appearance),
    /// with each group's (multiplier, first element, elements): the
    /// optimiser runs once per group on views of the arenas.
    pub fn grouped(&self, align: usize) -> (ParamLayout, Vec<(f32, usize, usize)>) {
        let mut scales: Vec<f32> = Vec::new();
        for e in &self.entries {
            if !scales.contains(&e.lr_scale) {
                scales.push(e.lr_scale);
            }
        }
        let mut out = ParamLayout {
            entries: self.entries.clone(),
            total: 0,
        };
        let mut groups = Vec::new();
        let align = align.max(4);
        for &scale in &scales {
            let start = out.total.next_multiple_of(align);
            out.total = start;
            for e in out.entries.iter_mut().filter(|e| e.lr_scale == scale) {
                e.offset = out.total.next_multiple_of(align);
                out.total = e.offset + e.shape.iter().product::<usize>();
            }
            out.total = out.total.next_multiple_of(4);
            groups.push((scale, start, out.total - start));
        }
        (out, groups)
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
        let mut out = vec![0f32; self.total()];
        for e in &self.entries {
            // FNV-1a of the name: a parameter's values depend on its name
            // and the seed only, not on what else the model holds.
            let name_hash = e.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
            });
            let mut rng = Rng::new(seed ^ name_hash);
            let dst = &mut out[e.offset..e.offset + e.len()];
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

/// The GPU arenas of one model.
pub struct ParamArena {
    /// Names, shapes and offsets of the parameters in every arena.
    pub layout: ParamLayout,
    /// Every parameter's values, flat [layout.total()] (f32).
    pub values: Tensor,
    /// Every parameter's gradient, laid out like `values`.
    pub grads: Tensor,
    /// Optimiser state arenas (SGD: velocity; AdamW: m, v).
    pub states: Vec<Tensor>,
    value_views: Vec<Tensor>,
    grad_views: Vec<Tensor>,
}

impl ParamArena {
    /// Allocates the arenas: values initialised from `seed`, gradients
    /// and `states` optimiser-state arenas zeroed.
    pub fn new(ctx: &GpuContext, layout: ParamLayout, seed: u64, states: usize) -> Result<Self> {
        let n = layout.total();
        // Before any host buffer: the initial values alone would need
        // 4·n bytes of host memory.
        let bytes = (n as u64).saturating_mul(4);
        let limits = ctx.limits();
        let limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        if bytes > limit {
            let params: usize = layout.entries.iter().map(ParamInfo::len).sum();
            return Err(Error::Shape {
                op: "model size",
                detail: format!(
                    "the model has {params} parameters ({bytes} bytes in its parameter arena), \
                     but the arena is one storage buffer and this adapter binds at most {limit} \
                     bytes (max_storage_buffer_binding_size): use fewer or narrower layers"
                ),
            });
        }
        let values = Tensor::from_f32(ctx, "params", &[n], &layout.initial_values(seed))?;
        let grads = Tensor::from_f32(ctx, "grads", &[n], &vec![0.0; n])?;
        let states = (0..states)
            .map(|i| Tensor::from_f32(ctx, &format!("optimiser state {i}"), &[n], &vec![0.0; n]))
            .collect::<Result<Vec<_>>>()?;
        let views = |arena: &Tensor| -> Result<Vec<Tensor>> {
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

    /// Every parameter's values, by name (one read of the arena).
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
