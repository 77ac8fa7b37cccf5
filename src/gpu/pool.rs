//! Buffer pool: freed buffers are kept by (usage, size class) and handed out
//! again, so a training loop stops allocating after its first step.

use std::collections::HashMap;
use std::sync::Mutex;

/// Default cap on bytes kept in free lists; beyond it freed buffers are
/// destroyed instead of kept.
pub const DEFAULT_MAX_FREE_BYTES: u64 = 1 << 30;

/// Smallest buffer the pool makes (also the uniform-offset alignment on
/// every adapter we know).
const MIN_CLASS: u64 = 256;

/// Rounds a request up to its size class: a multiple of an eighth of the
/// next power of two (at least 256 B), so at most 25% of a buffer is slack.
pub fn size_class(bytes: u64) -> u64 {
    if bytes <= MIN_CLASS {
        return MIN_CLASS;
    }
    let pow = bytes.next_power_of_two();
    let step = (pow / 8).max(MIN_CLASS);
    bytes.div_ceil(step) * step
}

/// What the buffer pool has done since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers allocated from the device (no free one of the size class).
    pub buffers_created: u64,
    /// Requests served from a free list.
    pub buffers_reused: u64,
    /// Bytes sitting in free lists, ready for reuse.
    pub free_bytes: u64,
}

/// Free storage buffers by (usage, size class), handed out again when a
/// tensor of the same class is made; one per `GpuContext`.
#[derive(Debug)]
pub struct BufferPool {
    inner: Mutex<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    free: HashMap<(u32, u64), Vec<wgpu::Buffer>>,
    stats: PoolStats,
    max_free_bytes: u64,
}

impl Default for BufferPool {
    fn default() -> Self {
        BufferPool {
            inner: Mutex::new(PoolInner {
                free: HashMap::new(),
                stats: PoolStats::default(),
                max_free_bytes: DEFAULT_MAX_FREE_BYTES,
            }),
        }
    }
}

impl BufferPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, PoolInner> {
        // A panic while holding the lock cannot leave the free lists
        // inconsistent (each operation is one push or pop), so recover.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A buffer of at least `bytes` with exactly `usage`. New buffers are
    /// labelled with `label` and their class; reused ones keep their label.
    pub fn acquire(
        &self,
        device: &wgpu::Device,
        label: &str,
        bytes: u64,
        usage: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        let class = size_class(bytes);
        {
            let mut inner = self.lock();
            if let Some(buffer) = inner
                .free
                .get_mut(&(usage.bits(), class))
                .and_then(|list| list.pop())
            {
                inner.stats.buffers_reused += 1;
                inner.stats.free_bytes -= class;
                return buffer;
            }
            inner.stats.buffers_created += 1;
        }
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(&format!("{label} [pool {class} B]")),
            size: class,
            usage,
            mapped_at_creation: false,
        })
    }

    /// Gives a buffer back. The caller guarantees no unsubmitted command
    /// still uses it (tensors and recorders keep their buffers alive until
    /// their work is submitted).
    pub fn release(&self, buffer: wgpu::Buffer) {
        let class = buffer.size();
        let mut inner = self.lock();
        if inner.stats.free_bytes + class > inner.max_free_bytes {
            drop(inner);
            buffer.destroy();
            return;
        }
        inner.stats.free_bytes += class;
        inner
            .free
            .entry((buffer.usage().bits(), class))
            .or_default()
            .push(buffer);
    }

    /// Drops every free buffer (e.g. between phases with different shapes).
    pub fn trim(&self) {
        let mut inner = self.lock();
        inner.free.clear();
        inner.stats.free_bytes = 0;
    }

    /// Caps the bytes kept in free lists; buffers freed beyond it are
    /// dropped.
    pub fn set_max_free_bytes(&self, bytes: u64) {
        self.lock().max_free_bytes = bytes;
    }

    /// Buffers created and reused, and the bytes in free lists.
    pub fn stats(&self) -> PoolStats {
        self.lock().stats
    }
}
