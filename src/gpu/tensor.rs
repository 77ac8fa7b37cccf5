//! `Tensor`: a labelled storage buffer with a shape and an element type.
//! Buffers come from the context's pool and go back to it on drop.

use std::fmt;
use std::sync::Arc;

use half::f16;

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::pool::BufferPool;
use crate::gpu::readback::Readback;
pub use crate::types::DType;

/// Usage of every tensor buffer: bound as storage, filled and read by copies.
pub(crate) const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// The buffer behind one or more tensor views. Dropping the last view
/// returns the buffer to the pool.
pub(crate) struct Storage {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) label: String,
    pool: Arc<BufferPool>,
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.pool.release(self.buffer.clone());
    }
}

/// A dense, row-major tensor on the GPU. Cloning makes another view of the
/// same buffer (cheap); `reshape` likewise.
#[derive(Clone)]
pub struct Tensor {
    pub(crate) storage: Arc<Storage>,
    shape: Vec<usize>,
    dtype: DType,
    /// Byte offset of element 0 in the buffer (non-zero for views into an
    /// arena, see `view`).
    offset: u64,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor('{}', {:?}, {})",
            self.label(),
            self.shape,
            self.dtype
        )
    }
}

/// Number of elements of `shape`, or an error naming `op` on overflow.
pub fn element_count(op: &'static str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::Shape {
            op,
            detail: format!("shape {shape:?} has more elements than fit in usize"),
        })
}

/// Bytes a buffer needs for `len` elements: copies and writes move whole
/// 4-byte words.
fn padded_bytes(len: usize, dtype: DType) -> u64 {
    (len as u64 * dtype.size_bytes()).next_multiple_of(4)
}

impl Tensor {
    /// A tensor whose contents are unspecified (a reused buffer keeps old
    /// data). Fails with a clear error when it cannot be bound on this
    /// adapter.
    pub fn empty(ctx: &GpuContext, label: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        const OP: &str = "Tensor::empty";
        let len = element_count(OP, shape)?;
        let bytes = (len as u64)
            .checked_mul(dtype.size_bytes())
            .ok_or_else(|| Error::Shape {
                op: OP,
                detail: format!("shape {shape:?} is too large"),
            })?;
        let limit = ctx
            .limits()
            .max_storage_buffer_binding_size
            .min(ctx.limits().max_buffer_size);
        if bytes > limit {
            return Err(Error::BufferTooLarge {
                op: OP,
                label: label.to_string(),
                bytes,
                limit,
            });
        }
        if len > u32::MAX as usize {
            // Kernels index elements with u32.
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "'{label}' {shape:?} has {len} elements; kernels index at most 2^32 - 1"
                ),
            });
        }
        let buffer = ctx.serial(|| {
            ctx.pool
                .acquire(ctx.device(), label, padded_bytes(len, dtype), TENSOR_USAGE)
        });
        Ok(Tensor {
            storage: Arc::new(Storage {
                buffer,
                label: label.to_string(),
                pool: ctx.pool.clone(),
            }),
            shape: shape.to_vec(),
            dtype,
            offset: 0,
        })
    }

    /// An f32 tensor holding `data` (row-major, `data.len()` must match `shape`).
    pub fn from_f32(
        ctx: &GpuContext,
        label: &str,
        shape: &[usize],
        data: &[f32],
    ) -> Result<Tensor> {
        let t = Tensor::empty(ctx, label, shape, DType::F32)?;
        t.write_f32(ctx, data)?;
        Ok(t)
    }

    /// An f16 tensor holding `data`.
    pub fn from_f16(
        ctx: &GpuContext,
        label: &str,
        shape: &[usize],
        data: &[f16],
    ) -> Result<Tensor> {
        let t = Tensor::empty(ctx, label, shape, DType::F16)?;
        t.write_f16(ctx, data)?;
        Ok(t)
    }

    /// A u32 tensor holding `data`.
    pub fn from_u32(
        ctx: &GpuContext,
        label: &str,
        shape: &[usize],
        data: &[u32],
    ) -> Result<Tensor> {
        let t = Tensor::empty(ctx, label, shape, DType::U32)?;
        t.write_u32(ctx, data)?;
        Ok(t)
    }

    /// An f32 tensor of zeros.
    pub fn zeros(ctx: &GpuContext, label: &str, shape: &[usize]) -> Result<Tensor> {
        let len = element_count("Tensor::zeros", shape)?;
        Tensor::from_f32(ctx, label, shape, &vec![0.0; len])
    }

    /// Overwrites the contents from the host. The write lands before the
    /// next submit on this queue.
    pub fn write_f32(&self, ctx: &GpuContext, data: &[f32]) -> Result<()> {
        self.expect_host_write("Tensor::write_f32", DType::F32, data.len())?;
        self.write_bytes(ctx, bytemuck::cast_slice(data));
        Ok(())
    }

    /// `write_f32` for an f16 tensor.
    pub fn write_f16(&self, ctx: &GpuContext, data: &[f16]) -> Result<()> {
        self.expect_host_write("Tensor::write_f16", DType::F16, data.len())?;
        let mut bytes: Vec<u8> = bytemuck::cast_slice(data).to_vec();
        bytes.resize(bytes.len().next_multiple_of(4), 0);
        self.write_bytes(ctx, &bytes);
        Ok(())
    }

    /// `write_f32` for a u32 tensor (labels, tables).
    pub fn write_u32(&self, ctx: &GpuContext, data: &[u32]) -> Result<()> {
        self.expect_host_write("Tensor::write_u32", DType::U32, data.len())?;
        self.write_bytes(ctx, bytemuck::cast_slice(data));
        Ok(())
    }

    fn expect_host_write(&self, op: &'static str, dtype: DType, len: usize) -> Result<()> {
        if self.dtype != dtype {
            return Err(Error::DType {
                op,
                got: self.dtype,
                supported: dtype.name(),
            });
        }
        if len != self.len() {
            return Err(Error::Shape {
                op,
                detail: format!(
                    "host slice has {len} elements, tensor '{}' {:?} has {}",
                    self.label(),
                    self.shape,
                    self.len()
                ),
            });
        }
        Ok(())
    }

    fn write_bytes(&self, ctx: &GpuContext, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        ctx.serial(|| {
            ctx.queue()
                .write_buffer(&self.storage.buffer, self.offset, bytes)
        });
        ctx.counters.add_uploaded(bytes.len() as u64);
    }

    /// Reads the tensor back as f32 (f16 tensors are widened on the host).
    /// One submit and a wait; inside a step, use `Recorder::read` instead.
    pub fn to_f32_vec(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        Readback::now(ctx, self)?.wait_f32(ctx)
    }

    /// Reads an f16 tensor back as f16 (f32 tensors are rounded on the host).
    pub fn to_f16_vec(&self, ctx: &GpuContext) -> Result<Vec<f16>> {
        Readback::now(ctx, self)?.wait_f16(ctx)
    }

    /// Reads a u32 tensor back.
    pub fn to_u32_vec(&self, ctx: &GpuContext) -> Result<Vec<u32>> {
        Readback::now(ctx, self)?.wait_u32(ctx)
    }

    /// Another view of the same buffer with a new shape of equal size.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let len = element_count("Tensor::reshape", shape)?;
        if len != self.len() {
            return Err(Error::Shape {
                op: "Tensor::reshape",
                detail: format!(
                    "cannot view {:?} ({} elements) as {shape:?} ({len} elements)",
                    self.shape,
                    self.len()
                ),
            });
        }
        Ok(Tensor {
            storage: self.storage.clone(),
            shape: shape.to_vec(),
            dtype: self.dtype,
            offset: self.offset,
        })
    }

    /// A view of `shape` starting `element_offset` elements into this
    /// tensor (parameter and gradient arenas hand out their entries this
    /// way). The start must be a multiple of the adapter's
    /// `min_storage_buffer_offset_alignment` bytes and the view must lie
    /// inside this tensor.
    pub fn view(&self, ctx: &GpuContext, element_offset: usize, shape: &[usize]) -> Result<Tensor> {
        const OP: &str = "Tensor::view";
        let len = element_count(OP, shape)?;
        let size = self.dtype.size_bytes();
        let align = ctx.limits().min_storage_buffer_offset_alignment as u64;
        let start = self.offset + element_offset as u64 * size;
        if element_offset + len > self.len() {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "elements {element_offset}..{} of '{}' {:?} ({} elements)",
                    element_offset + len,
                    self.label(),
                    self.shape,
                    self.len()
                ),
            });
        }
        if !start.is_multiple_of(align) || (self.dtype == DType::F16 && len % 2 == 1) {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "a view of '{}' must start at a multiple of {align} bytes (this adapter's storage offset alignment), and f16 views need an even length; got byte {start}, {len} elements",
                    self.label()
                ),
            });
        }
        Ok(Tensor {
            storage: self.storage.clone(),
            shape: shape.to_vec(),
            dtype: self.dtype,
            offset: start,
        })
    }

    /// Byte offset of element 0 in the buffer.
    pub fn offset_bytes(&self) -> u64 {
        self.offset
    }

    /// Bytes a binding or copy of this tensor covers: the data rounded up
    /// to `unit` bytes (kernels may read small tensors as vec4s), never
    /// past the end of the buffer.
    pub(crate) fn bound_bytes(&self, unit: u64) -> u64 {
        let room = self.storage.buffer.size() - self.offset;
        self.padded_size_bytes()
            .next_multiple_of(unit)
            .max(unit)
            .min(room)
    }

    /// Whether the two tensors share any byte of one buffer.
    pub fn overlaps(&self, other: &Tensor) -> bool {
        let end = |t: &Tensor| t.offset + t.size_bytes().max(1);
        self.same_storage(other) && self.offset < end(other) && other.offset < end(self)
    }

    /// Dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes of data (not counting pool slack).
    pub fn size_bytes(&self) -> u64 {
        self.len() as u64 * self.dtype.size_bytes()
    }
    /// Bytes that copies and bindings of this tensor cover (4-byte padded).
    pub(crate) fn padded_size_bytes(&self) -> u64 {
        padded_bytes(self.len(), self.dtype)
    }
    /// The label of its buffer (wgpu errors name buffers by it).
    pub fn label(&self) -> &str {
        &self.storage.label
    }
    /// The whole underlying buffer (a view starts at `offset_bytes`).
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.storage.buffer
    }
    /// True when both views share one buffer.
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }
}
