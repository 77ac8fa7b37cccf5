//! Counters of work sent to the GPU. They do not drift with machine load,
//! so tests and benches compare them exactly (timings they only report).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::gpu::pool::BufferPool;

#[derive(Default, Debug)]
pub(crate) struct Counters {
    dispatches: AtomicU64,
    submits: AtomicU64,
    bytes_uploaded: AtomicU64,
    bytes_downloaded: AtomicU64,
    uniform_bytes: AtomicU64,
    pipelines_built: AtomicU64,
}

impl Counters {
    pub(crate) fn add_dispatches(&self, n: u64) {
        self.dispatches.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_submit(&self) {
        self.submits.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_uploaded(&self, bytes: u64) {
        self.bytes_uploaded.fetch_add(bytes, Ordering::Relaxed);
    }
    pub(crate) fn add_downloaded(&self, bytes: u64) {
        self.bytes_downloaded.fetch_add(bytes, Ordering::Relaxed);
    }
    pub(crate) fn add_uniform_bytes(&self, bytes: u64) {
        self.uniform_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    pub(crate) fn add_pipeline_built(&self) {
        self.pipelines_built.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, pool: &BufferPool) -> CounterSnapshot {
        let pool = pool.stats();
        CounterSnapshot {
            dispatches: self.dispatches.load(Ordering::Relaxed),
            submits: self.submits.load(Ordering::Relaxed),
            bytes_uploaded: self.bytes_uploaded.load(Ordering::Relaxed),
            bytes_downloaded: self.bytes_downloaded.load(Ordering::Relaxed),
            uniform_bytes: self.uniform_bytes.load(Ordering::Relaxed),
            pipelines_built: self.pipelines_built.load(Ordering::Relaxed),
            buffers_created: pool.buffers_created,
            buffers_reused: pool.buffers_reused,
        }
    }
}

/// A reading of the counters. Subtract two readings with [`CounterSnapshot::since`]
/// to count one piece of work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Compute dispatches recorded and submitted.
    pub dispatches: u64,
    /// `queue.submit` calls (kernel work, uploads' flushes and readbacks).
    pub submits: u64,
    /// Tensor bytes written from the host.
    pub bytes_uploaded: u64,
    /// Tensor bytes read back to the host.
    pub bytes_downloaded: u64,
    /// Kernel parameter bytes (uniforms) written from the host.
    pub uniform_bytes: u64,
    /// Compute pipelines compiled (cache misses).
    pub pipelines_built: u64,
    /// Buffers the pool had to create.
    pub buffers_created: u64,
    /// Buffer requests the pool served from freed buffers.
    pub buffers_reused: u64,
}

impl CounterSnapshot {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &CounterSnapshot) -> CounterSnapshot {
        CounterSnapshot {
            dispatches: self.dispatches - earlier.dispatches,
            submits: self.submits - earlier.submits,
            bytes_uploaded: self.bytes_uploaded - earlier.bytes_uploaded,
            bytes_downloaded: self.bytes_downloaded - earlier.bytes_downloaded,
            uniform_bytes: self.uniform_bytes - earlier.uniform_bytes,
            pipelines_built: self.pipelines_built - earlier.pipelines_built,
            buffers_created: self.buffers_created - earlier.buffers_created,
            buffers_reused: self.buffers_reused - earlier.buffers_reused,
        }
    }
}
