//! `Recorder`: many dispatches into one command encoder, one submit.
//!
//! Kernel parameters go into a uniform arena (one buffer per 16 KiB of
//! parameters, written once at submit), so a step of many kernels costs one
//! `queue.submit`. Tensors bound by a recorded dispatch stay alive until the
//! submit, so dropping a tensor early never hands its buffer to someone else
//! while a recorded command still reads it.

use std::num::NonZeroU64;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::pipelines::KernelSpec;
use crate::gpu::profile::{PendingProfile, Profiler};
use crate::gpu::readback::Readback;
use crate::gpu::tensor::{Storage, Tensor};

/// How a dispatch uses a bound tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`: no other binding of the dispatch may
    /// overlap it.
    ReadWrite,
}

/// A tensor bound at `@group(0) @binding(binding)`.
#[derive(Clone, Copy, Debug)]
pub struct Bind<'t> {
    /// The `@binding` index (0 is the parameter block).
    pub binding: u32,
    /// The tensor (or view) bound.
    pub tensor: &'t Tensor,
    /// Read-only or read-write.
    pub access: Access,
}

impl<'t> Bind<'t> {
    /// `tensor` bound read-only at `binding`.
    pub fn read(binding: u32, tensor: &'t Tensor) -> Self {
        Bind {
            binding,
            tensor,
            access: Access::Read,
        }
    }
    /// `tensor` bound read-write at `binding`.
    pub fn write(binding: u32, tensor: &'t Tensor) -> Self {
        Bind {
            binding,
            tensor,
            access: Access::ReadWrite,
        }
    }
}

/// The uniform parameter block is always `@group(0) @binding(0)`.
pub const PARAMS_BINDING: u32 = 0;

/// Bytes of parameters per arena buffer.
const ARENA_CHUNK: u64 = 16 * 1024;

/// A dispatch recorded but not yet encoded: consecutive dispatches share one
/// compute pass (wgpu inserts the barriers between them).
struct PendingDispatch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
    /// "op kernel-label", kept for profiles (None when not profiling).
    label: Option<String>,
}

impl PendingDispatch {
    fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.groups;
        pass.dispatch_workgroups(x, y, z);
    }
}

struct ArenaChunk {
    buffer: wgpu::Buffer,
    bytes: Vec<u8>,
}

/// Splits `total` workgroups into an (x, y) grid within `max_dim` per
/// dimension. Shaders recover the linear group as `y * num_workgroups.x + x`
/// and skip groups at or past `total`.
pub fn fold_grid(total: u64, max_dim: u32) -> Option<[u32; 3]> {
    let max = max_dim as u64;
    if total <= max {
        return Some([total as u32, 1, 1]);
    }
    let y = total.div_ceil(max);
    (y <= max).then_some([max_dim, y as u32, 1])
}

/// Records dispatches, copies and readbacks into one command encoder
/// (consecutive dispatches in one compute pass), kernel parameters into a
/// uniform arena; `submit` sends it all in ONE `queue.submit`. Tensors it
/// binds stay alive until then.
pub struct Recorder<'a> {
    ctx: &'a GpuContext,
    label: String,
    encoder: wgpu::CommandEncoder,
    pending: Vec<PendingDispatch>,
    arena: Vec<ArenaChunk>,
    keep_alive: Vec<Arc<Storage>>,
    dispatches: u64,
    profiler: Option<Profiler>,
}

/// What `Recorder::submit` sent.
#[derive(Debug, Clone, Copy)]
pub struct Submitted {
    /// Dispatches in the submit.
    pub dispatches: u64,
}

impl<'a> Recorder<'a> {
    /// An empty recording; `label` names its encoder (wgpu errors quote
    /// it). `GpuContext::recorder` is the usual way in.
    pub fn new(ctx: &'a GpuContext, label: &str) -> Self {
        let encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        Recorder {
            ctx,
            label: label.to_string(),
            encoder,
            pending: Vec::new(),
            arena: Vec::new(),
            keep_alive: Vec::new(),
            dispatches: 0,
            profiler: None,
        }
    }

    /// The same recorder with a GPU timestamp around every dispatch
    /// (`gpu::profile`); submit it with `submit_profiled`. Fails when the
    /// adapter has no timestamp queries.
    pub fn profiled(mut self) -> Result<Self> {
        self.profiler = Some(Profiler::new(self.ctx)?);
        Ok(self)
    }

    /// The context it records for.
    pub fn ctx(&self) -> &'a GpuContext {
        self.ctx
    }

    /// Dispatches recorded so far.
    pub fn dispatch_count(&self) -> u64 {
        self.dispatches
    }

    /// Records one dispatch of `kernel` over `groups` workgroups, with
    /// `params` as its uniform block and `binds` as its storage buffers.
    /// `op` names the public operation in error messages.
    pub fn dispatch<P: bytemuck::Pod>(
        &mut self,
        op: &'static str,
        kernel: &KernelSpec,
        params: &P,
        binds: &[Bind<'_>],
        groups: [u32; 3],
    ) -> Result<()> {
        check_aliasing(op, binds)?;
        let max = self.ctx.limits().max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(Error::GridTooLarge {
                op,
                detail: format!("grid {groups:?} exceeds {max} workgroups per dimension"),
            });
        }
        let cached = self.ctx.pipeline(kernel)?;
        let (params_buffer, params_offset, params_size) =
            self.push_params(bytemuck::bytes_of(params));

        let mut entries = Vec::with_capacity(binds.len() + 1);
        entries.push(wgpu::BindGroupEntry {
            binding: PARAMS_BINDING,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &params_buffer,
                offset: params_offset,
                size: NonZeroU64::new(params_size),
            }),
        });
        for b in binds {
            // Bindings cover whole 16-byte units (pool buffers are
            // multiples of 256 B, so this stays inside the buffer): a
            // kernel may view a small tensor as vec4s, and an empty tensor
            // still needs a non-empty binding. Kernels bound their reads by
            // their parameters, never by the binding's length.
            let size = b.tensor.bound_bytes(16);
            entries.push(wgpu::BindGroupEntry {
                binding: b.binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b.tensor.buffer(),
                    offset: b.tensor.offset_bytes(),
                    size: NonZeroU64::new(size),
                }),
            });
        }
        let label = kernel.label();
        let bind_group = self.ctx.scoped(&format!("{op}: binding {label}"), || {
            self.ctx
                .device()
                .create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(&label),
                    layout: &cached.layout,
                    entries: &entries,
                })
        })?;
        for b in binds {
            self.keep_alive.push(b.tensor.storage.clone());
        }
        self.pending.push(PendingDispatch {
            pipeline: cached.pipeline.clone(),
            bind_group,
            groups,
            label: self.profiler.is_some().then(|| format!("{op} {label}")),
        });
        self.dispatches += 1;
        Ok(())
    }

    /// Records a dispatch of `threads` invocations in workgroups of
    /// `workgroup_size`, folding the grid into (x, y) when one dimension is
    /// not enough. Nothing is recorded when `threads` is 0.
    pub fn dispatch_1d<P: bytemuck::Pod>(
        &mut self,
        op: &'static str,
        kernel: &KernelSpec,
        params: &P,
        binds: &[Bind<'_>],
        threads: u64,
        workgroup_size: u32,
    ) -> Result<()> {
        if threads == 0 {
            return Ok(());
        }
        let groups = self.grid_for_groups(op, threads.div_ceil(workgroup_size as u64))?;
        self.dispatch(op, kernel, params, binds, groups)
    }

    /// The (x, y, 1) grid for `total` workgroups on this adapter.
    pub fn grid_for_groups(&self, op: &'static str, total: u64) -> Result<[u32; 3]> {
        let max = self.ctx.limits().max_compute_workgroups_per_dimension;
        fold_grid(total, max).ok_or_else(|| Error::GridTooLarge {
            op,
            detail: format!("{total} workgroups do not fit a {max} x {max} grid"),
        })
    }

    /// Places `bytes` in the uniform arena; returns (buffer, offset, size).
    fn push_params(&mut self, bytes: &[u8]) -> (wgpu::Buffer, u64, u64) {
        let align = (self.ctx.limits().min_uniform_buffer_offset_alignment as u64).max(16);
        // Uniform blocks are sized in 16-byte units.
        let size = (bytes.len() as u64).next_multiple_of(16).max(16);
        let fits_last = self
            .arena
            .last()
            .is_some_and(|c| (c.bytes.len() as u64).next_multiple_of(align) + size <= ARENA_CHUNK);
        if !fits_last {
            let label = format!("{} params", self.label);
            let ctx = self.ctx;
            let buffer = ctx.serial(|| {
                ctx.pool.acquire(
                    ctx.device(),
                    &label,
                    ARENA_CHUNK,
                    wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                )
            });
            self.arena.push(ArenaChunk {
                buffer,
                bytes: Vec::new(),
            });
        }
        let last = self.arena.len() - 1; // non-empty: ensured just above
        let chunk = &mut self.arena[last];
        let offset = (chunk.bytes.len() as u64).next_multiple_of(align);
        chunk.bytes.resize(offset as usize, 0);
        chunk.bytes.extend_from_slice(bytes);
        chunk.bytes.resize((offset + size) as usize, 0);
        (chunk.buffer.clone(), offset, size)
    }

    /// Encodes the pending dispatches into one compute pass.
    fn flush_pass(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Some(profiler) = &mut self.profiler {
            // One pass per dispatch: timestamps bracket passes.
            for mut d in self.pending.drain(..) {
                let writes = profiler.next(self.ctx, d.label.take().unwrap_or_default());
                let mut pass = self
                    .encoder
                    .begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(&self.label),
                        timestamp_writes: Some(writes),
                    });
                d.encode(&mut pass);
            }
            return;
        }
        let mut pass = self
            .encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&self.label),
                timestamp_writes: None,
            });
        for d in self.pending.drain(..) {
            d.encode(&mut pass);
        }
    }

    /// Records a copy of `tensor` to the host, ordered after every dispatch
    /// recorded so far. Wait on it after `submit`.
    pub fn read(&mut self, tensor: &Tensor) -> Readback {
        self.flush_pass();
        self.keep_alive.push(tensor.storage.clone());
        Readback::record(self.ctx, &mut self.encoder, tensor)
    }

    /// Records a copy of `src` into `dst` (same dtype and length).
    pub fn copy(&mut self, src: &Tensor, dst: &Tensor) -> Result<()> {
        const OP: &str = "Recorder::copy";
        if src.dtype() != dst.dtype() || src.len() != dst.len() {
            return Err(Error::Shape {
                op: OP,
                detail: format!("cannot copy {src:?} into {dst:?}"),
            });
        }
        if (src.same_storage(dst) && src.offset_bytes() == dst.offset_bytes()) || src.is_empty() {
            return Ok(());
        }
        self.flush_pass();
        self.encoder.copy_buffer_to_buffer(
            src.buffer(),
            src.offset_bytes(),
            dst.buffer(),
            dst.offset_bytes(),
            src.bound_bytes(4).min(dst.bound_bytes(4)),
        );
        self.keep_alive.push(src.storage.clone());
        self.keep_alive.push(dst.storage.clone());
        Ok(())
    }

    /// Writes the parameters, finishes the encoder and submits it: one
    /// `queue.submit` for everything recorded. (A `profiled` recorder's
    /// timestamps are dropped: use `submit_profiled`.)
    pub fn submit(self) -> Result<Submitted> {
        self.submit_with_profile().map(|(s, _)| s)
    }

    /// `submit`, plus the timestamps of a `profiled` recorder (an error
    /// for one that is not).
    pub fn submit_profiled(self) -> Result<(Submitted, PendingProfile)> {
        if self.profiler.is_none() {
            return Err(Error::Shape {
                op: "Recorder::submit_profiled",
                detail: format!("recorder '{}' was not made with profiled()", self.label),
            });
        }
        let (submitted, profile) = self.submit_with_profile()?;
        Ok((submitted, profile.expect("a profiled recorder resolves")))
    }

    fn submit_with_profile(mut self) -> Result<(Submitted, Option<PendingProfile>)> {
        self.flush_pass();
        let ctx = self.ctx;
        let profile = self
            .profiler
            .take()
            .map(|p| p.resolve(ctx, &mut self.encoder));
        for chunk in &self.arena {
            ctx.serial(|| ctx.queue().write_buffer(&chunk.buffer, 0, &chunk.bytes));
            ctx.counters.add_uniform_bytes(chunk.bytes.len() as u64);
        }
        let encoder = self.encoder;
        ctx.scoped(&format!("submitting '{}'", self.label), || {
            let commands = encoder.finish();
            ctx.serial(|| ctx.queue().submit([commands]));
        })?;
        ctx.counters.add_submit();
        ctx.counters.add_dispatches(self.dispatches);
        // Safe to recycle now: later writes and submits are queue-ordered
        // after this submission.
        for chunk in self.arena {
            ctx.pool.release(chunk.buffer);
        }
        drop(self.keep_alive);
        let submitted = Submitted {
            dispatches: self.dispatches,
        };
        Ok((submitted, profile))
    }
}

/// WebGPU forbids one buffer bound writable together with any other binding
/// in the same dispatch.
pub(crate) fn check_aliasing(op: &'static str, binds: &[Bind<'_>]) -> Result<()> {
    for (i, a) in binds.iter().enumerate() {
        for b in &binds[i + 1..] {
            let written = a.access == Access::ReadWrite || b.access == Access::ReadWrite;
            // Overlapping bytes with a writer race; and wgpu tracks usage
            // per buffer, so one buffer may not be bound read-only and
            // read-write in one dispatch even at disjoint views.
            let mixed = a.tensor.same_storage(b.tensor) && a.access != b.access;
            if written && (a.tensor.overlaps(b.tensor) || mixed) {
                return Err(Error::Aliasing {
                    op,
                    label: a.tensor.label().to_string(),
                });
            }
        }
    }
    Ok(())
}
