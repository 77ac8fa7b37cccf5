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
        let bytes = tensor.padded_size_bytes();
        let staging = (bytes > 0).then(|| {
            let staging = ctx.pool.acquire(
                ctx.device(),
                &format!("{} readback", tensor.label()),
                bytes,
                STAGING_USAGE,
            );
            encoder.copy_buffer_to_buffer(tensor.buffer(), 0, &staging, 0, bytes);
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
            ctx.queue().submit([encoder.finish()]);
        })?;
        ctx.counters.add_submit();
        Ok(readback)
    }

    /// Waits for the copy and returns the raw bytes (without padding).
    fn wait_bytes(mut self, ctx: &GpuContext) -> Result<Vec<u8>> {
        let Some(staging) = self.staging.take() else {
            return Ok(Vec::new());
        };
        let (tx, rx) = mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |result| {
            let _ = tx.send(result);
        });
        ctx.wait_idle()?;
        rx.recv()
            .map_err(|_| self.fail("the map callback never ran"))?
            .map_err(|e| self.fail(&e.to_string()))?;
        let data_bytes = (self.len as u64 * self.dtype.size_bytes()) as usize;
        let out = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| self.fail(&e.to_string()))?;
            view[..data_bytes].to_vec()
        };
        staging.unmap();
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

    /// Waits and returns the values as f32.
    pub fn wait_f32(self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let dtype = self.dtype;
        let bytes = self.wait_bytes(ctx)?;
        Ok(match dtype {
            DType::F32 => bytemuck::pod_collect_to_vec(&bytes),
            DType::F16 => bytemuck::pod_collect_to_vec::<u8, f16>(&bytes)
                .into_iter()
                .map(f32::from)
                .collect(),
        })
    }

    /// Waits and returns the values as f16.
    pub fn wait_f16(self, ctx: &GpuContext) -> Result<Vec<f16>> {
        let dtype = self.dtype;
        let bytes = self.wait_bytes(ctx)?;
        Ok(match dtype {
            DType::F16 => bytemuck::pod_collect_to_vec(&bytes),
            DType::F32 => bytemuck::pod_collect_to_vec::<u8, f32>(&bytes)
                .into_iter()
                .map(f16::from_f32)
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
