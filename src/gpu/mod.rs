//! The GPU layer: context, tensors and their pool, the kernel registry and
//! the one-submit recorder. Knows nothing of models, tapes or file formats.

pub mod context;
pub mod counters;
pub mod pipelines;
pub mod pool;
pub mod profile;
pub mod readback;
pub mod recorder;
pub mod tensor;

pub use crate::types::DType;
pub use context::{describe_adapter, BackendChoice, GpuContext, GrantedFeatures, BACKEND_ENV};
pub use counters::CounterSnapshot;
pub use pipelines::{KernelSpec, Shader};
pub use profile::{DispatchTime, LabelTotal, PendingProfile, Profile};
pub use readback::Readback;
pub(crate) use recorder::check_aliasing;
pub use recorder::{fold_grid, Access, Bind, Recorder, Submitted};
pub use tensor::Tensor;

impl GpuContext {
    /// A recorder for one batch of work (e.g. one training step).
    pub fn recorder(&self, label: &str) -> Recorder<'_> {
        Recorder::new(self, label)
    }
}
