//! GPU timestamps around every dispatch of one recording
//! (`Recorder::profiled`): where a step's time goes, op by op.
//!
//! Timestamps bracket compute passes, so a profiled recording gives every
//! dispatch its own pass. That adds a little per dispatch: compare the
//! entries of one profile with each other, and a profile's total with
//! the unprofiled step only as a rough check. On lavapipe the "GPU" is
//! the CPU: these are CPU times of each dispatch, not GPU times.
//! Needs `TIMESTAMP_QUERY` (Vulkan lavapipe has it, GL here does not).

use std::sync::mpsc;

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;

/// wgpu's largest query set.
const QUERIES_PER_SET: u32 = 4096;
/// Timestamps per dispatch: the start and the end of its pass.
const PER_DISPATCH: u32 = 2;

/// The query sets and the dispatch labels of a recording being profiled.
pub(crate) struct Profiler {
    sets: Vec<wgpu::QuerySet>,
    labels: Vec<String>,
}

impl Profiler {
    /// Fails with `MissingFeature` when the adapter has no timestamps.
    pub(crate) fn new(ctx: &GpuContext) -> Result<Profiler> {
        if !ctx.granted().timestamp_query {
            return Err(Error::MissingFeature {
                op: "profile",
                feature: "TIMESTAMP_QUERY",
                adapter: ctx.describe(),
                hint: "profile on an adapter with GPU timestamps (`manytask info` lists them)",
            });
        }
        Ok(Profiler {
            sets: Vec::new(),
            labels: Vec::new(),
        })
    }

    /// The timestamp writes for the next dispatch, labelled `label`.
    pub(crate) fn next(
        &mut self,
        ctx: &GpuContext,
        label: String,
    ) -> wgpu::ComputePassTimestampWrites<'_> {
        let per_set = (QUERIES_PER_SET / PER_DISPATCH) as usize;
        let i = self.labels.len();
        if i / per_set == self.sets.len() {
            let set = ctx.serial(|| {
                ctx.device().create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("manytask profile"),
                    ty: wgpu::QueryType::Timestamp,
                    count: QUERIES_PER_SET,
                })
            });
            self.sets.push(set);
        }
        self.labels.push(label);
        let first = ((i % per_set) as u32) * PER_DISPATCH;
        wgpu::ComputePassTimestampWrites {
            query_set: &self.sets[i / per_set],
            beginning_of_pass_write_index: Some(first),
            end_of_pass_write_index: Some(first + 1),
        }
    }

    /// Records the resolve of every timestamp into a staging buffer.
    pub(crate) fn resolve(
        self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
    ) -> PendingProfile {
        let count = self.labels.len() as u64 * PER_DISPATCH as u64;
        let bytes = (count * 8).max(8);
        let buffer = |label: &str, usage: wgpu::BufferUsages| {
            ctx.serial(|| {
                ctx.device().create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: bytes.next_multiple_of(256),
                    usage,
                    mapped_at_creation: false,
                })
            })
        };
        let resolved = buffer(
            "manytask profile resolve",
            wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        );
        let staging = buffer(
            "manytask profile staging",
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        let per_set = QUERIES_PER_SET as u64;
        for (k, set) in self.sets.iter().enumerate() {
            let first = k as u64 * per_set;
            let n = (count - first).min(per_set);
            // Each set lands at its own (256-byte aligned) offset.
            encoder.resolve_query_set(set, 0..n as u32, &resolved, first * 8);
        }
        if count > 0 {
            encoder.copy_buffer_to_buffer(&resolved, 0, &staging, 0, bytes.next_multiple_of(256));
        }
        PendingProfile {
            staging,
            labels: self.labels,
            period_ns: ctx.queue().get_timestamp_period() as f64,
        }
    }
}

/// Timestamps on their way to the host; `wait` after the submit.
pub struct PendingProfile {
    staging: wgpu::Buffer,
    labels: Vec<String>,
    period_ns: f64,
}

impl PendingProfile {
    /// Waits for the submit and returns each dispatch's time.
    pub fn wait(self, ctx: &GpuContext) -> Result<Profile> {
        let fail = |message: String| Error::Readback {
            label: "profile timestamps".into(),
            message,
        };
        if self.labels.is_empty() {
            return Ok(Profile::default());
        }
        let (tx, rx) = mpsc::channel();
        ctx.serial(|| {
            self.staging
                .map_async(wgpu::MapMode::Read, .., move |r| drop(tx.send(r)))
        });
        ctx.wait_idle()?;
        rx.recv()
            .map_err(|_| fail("the map callback never ran".into()))?
            .map_err(|e| fail(e.to_string()))?;
        let ticks: Vec<u64> = ctx.serial(|| {
            let view = self
                .staging
                .get_mapped_range(..)
                .map_err(|e| fail(e.to_string()))?;
            Ok::<_, Error>(
                view.chunks_exact(8)
                    .take(self.labels.len() * PER_DISPATCH as usize)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .collect(),
            )
        })?;
        ctx.serial(|| self.staging.unmap());
        let dispatches = self
            .labels
            .into_iter()
            .zip(ticks.chunks_exact(2))
            .map(|(label, t)| DispatchTime {
                label,
                ms: t[1].saturating_sub(t[0]) as f64 * self.period_ns / 1e6,
            })
            .collect();
        Ok(Profile { dispatches })
    }
}

/// One dispatch's time.
#[derive(Clone, Debug, PartialEq)]
pub struct DispatchTime {
    /// "op kernel-label", e.g. "gemm gemm_rb[…]".
    pub label: String,
    /// From the start to the end of its pass, in milliseconds.
    pub ms: f64,
}

/// Every dispatch of a profiled recording, in recording order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// The dispatches, in the order they were recorded.
    pub dispatches: Vec<DispatchTime>,
}

/// The dispatches sharing one label: how many, and their summed time.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelTotal {
    /// The shared label.
    pub label: String,
    /// Dispatches with it.
    pub count: usize,
    /// Their summed time in milliseconds.
    pub ms: f64,
}

impl Profile {
    /// The summed time of every dispatch, in milliseconds.
    pub fn total_ms(&self) -> f64 {
        self.dispatches.iter().map(|d| d.ms).sum()
    }

    /// Times summed per label, most expensive first (ties by label).
    pub fn by_label(&self) -> Vec<LabelTotal> {
        let mut totals: Vec<LabelTotal> = Vec::new();
        for d in &self.dispatches {
            match totals.iter_mut().find(|t| t.label == d.label) {
                Some(t) => {
                    t.count += 1;
                    t.ms += d.ms;
                }
                None => totals.push(LabelTotal {
                    label: d.label.clone(),
                    count: 1,
                    ms: d.ms,
                }),
            }
        }
        totals.sort_by(|a, b| b.ms.total_cmp(&a.ms).then_with(|| a.label.cmp(&b.label)));
        totals
    }

    /// An aligned table of `by_label` with each label's share of the total.
    pub fn table(&self) -> String {
        let total = self.total_ms();
        let mut out = format!("{:>10} {:>6} {:>6}  op kernel\n", "ms", "share", "count");
        for t in self.by_label() {
            let share = if total > 0.0 {
                100.0 * t.ms / total
            } else {
                0.0
            };
            out.push_str(&format!(
                "{:>10.3} {:>5.1}% {:>6}  {}\n",
                t.ms, share, t.count, t.label
            ));
        }
        out.push_str(&format!(
            "{total:>10.3} 100.0% {:>6}  (all dispatches)\n",
            self.dispatches.len()
        ));
        out
    }
}
