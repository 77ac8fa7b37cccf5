//! Reading tensors back to the host through pooled staging buffers.
//!
//! A `Readback` is recorded (a copy into a staging buffer) and waited on
//! after its submit; `Recorder::read` records one inside a step so that the
//! copy rides in the step's single submit.

use std::sync::mpsc;
use std::sync::Arc;

use half::f16;

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::pool::BufferPool;
use crate::gpu::tensor::{DType, Tensor};

const STAGING_USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::MAP_READ.union(wgpu::BufferUsages::COPY_DST);

/// A copy of a tensor on its way to the host.
pub struct Readback {
    // None for an empty tensor: nothing to copy.
    staging: Option<wgpu::Buffer>,
    bytes: u64,
    len: usize,
    dtype: DType,
    label: String,
    pool: Arc<BufferPool>,
}

impl Readback {
    /// Records the copy of `tensor` into a staging buffer on `encoder`.
    pub(crate) fn record(
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        tensor: &Tensor,
    ) -> Readback {
        let bytes = if tensor.is_empty() {
            0
        } else {
            tensor.bound_bytes(4)
        };
        let staging = (bytes > 0).then(|| {
            let label = format!("{} readback", tensor.label());
            let staging =
                ctx.serial(|| ctx.pool.acquire(ctx.device(), &label, bytes, STAGING_USAGE));
            encoder.copy_buffer_to_buffer(
                tensor.buffer(),
                tensor.offset_bytes(),
                &staging,
                0,
                bytes,
            );
            staging
        });
        Readback {
            staging,
            bytes,
            len: tensor.len(),
            dtype: tensor.dtype(),
            label: tensor.label().to_string(),
            pool: ctx.pool.clone(),
        }
    }

    /// Records and submits the copy on its own (one submit).
    pub(crate) fn now(ctx: &GpuContext, tensor: &Tensor) -> Result<Readback> {
        let mut encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("manytask readback"),
            });
        let readback = Readback::record(ctx, &mut encoder, tensor);
        ctx.scoped("readback submit", || {
            let commands = encoder.finish();
            ctx.serial(|| ctx.queue().submit([commands]));
        })?;
        ctx.counters.add_submit();
        Ok(readback)
    }

    /// Waits for the copy, then hands the mapped bytes (without padding)
    /// to `read`, which converts them in one pass.
    fn wait_with<T>(mut self, ctx: &GpuContext, read: impl FnOnce(&[u8]) -> T) -> Result<T> {
        let Some(staging) = self.staging.take() else {
            return Ok(read(&[]));
        };
        let (tx, rx) = mpsc::channel();
        ctx.serial(|| {
            staging.map_async(wgpu::MapMode::Read, .., move |result| {
                let _ = tx.send(result);
            })
        });
        ctx.wait_idle()?;
        rx.recv()
            .map_err(|_| self.fail("the map callback never ran"))?
            .map_err(|e| self.fail(&e.to_string()))?;
        let data_bytes = (self.len as u64 * self.dtype.size_bytes()) as usize;
        let out = ctx.serial(|| {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| self.fail(&e.to_string()))?;
            Ok(read(&view[..data_bytes]))
        })?;
        ctx.serial(|| staging.unmap());
        ctx.counters.add_downloaded(self.bytes);
        self.pool.release(staging);
        Ok(out)
    }

    fn fail(&self, message: &str) -> Error {
        Error::Readback {
            label: self.label.clone(),
            message: message.to_string(),
        }
    }

    /// Waits and returns the values as f32 (f16 widened on the host).
    pub fn wait_f32(self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let (len, dtype) = (self.len, self.dtype);
        self.wait_with(ctx, |bytes| match dtype {
            DType::F32 => {
                let mut out = vec![0f32; len];
                bytemuck::cast_slice_mut::<f32, u8>(&mut out).copy_from_slice(bytes);
                out
            }
            DType::F16 => bytes
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            DType::U32 => bytes
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
                .collect(),
        })
    }

    /// Waits and returns the values as u32 (u32 tensors only).
    pub fn wait_u32(self, ctx: &GpuContext) -> Result<Vec<u32>> {
        if self.dtype != DType::U32 {
            return Err(self.fail(&format!("holds {}, not u32", self.dtype)));
        }
        self.wait_with(ctx, |bytes| {
            bytes
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
    }

    /// Waits and returns the values as f16 (f32 rounded on the host).
    pub fn wait_f16(self, ctx: &GpuContext) -> Result<Vec<f16>> {
        let (len, dtype) = (self.len, self.dtype);
        self.wait_with(ctx, |bytes| match dtype {
            DType::F16 => {
                let mut out = vec![f16::ZERO; len];
                bytemuck::cast_slice_mut::<f16, u8>(&mut out).copy_from_slice(bytes);
                out
            }
            DType::F32 => bytes
                .chunks_exact(4)
                .map(|b| f16::from_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            DType::U32 => bytes
                .chunks_exact(4)
                .map(|b| f16::from_f32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32))
                .collect(),
        })
    }
}

impl Drop for Readback {
    fn drop(&mut self) {
        // Never waited on: the staging buffer is unmapped, so it can go back.
        if let Some(staging) = self.staging.take() {
            self.pool.release(staging);
        }
    }
}
