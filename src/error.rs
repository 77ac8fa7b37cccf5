//! The one error type of the crate. Every public entry point returns
//! `Result<T>`; messages name the op, the shapes and what to do instead.

use crate::types::DType;

/// Everything that can go wrong in manytask; `Display` gives the whole
/// message (what failed, the shapes, what to do instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter matched the request (or none exists at all).
    #[error("no GPU adapter found for backend '{requested}' (adapters seen: {found}). {hint}")]
    NoAdapter {
        /// The backend asked for.
        requested: String,
        /// The adapters that do exist (name, backend, type).
        found: String,
        /// How to get an adapter of that backend.
        hint: String,
    },

    /// A backend name we do not know, from `MANYTASK_BACKEND` or `--backend`.
    #[error("unknown backend '{0}': expected one of auto, vulkan, metal, dx12, gl")]
    UnknownBackend(String),

    /// The adapter exists but refused to open a device.
    #[error("could not open a device on '{adapter}': {message}")]
    RequestDevice {
        /// The adapter's description.
        adapter: String,
        /// wgpu's reason.
        message: String,
    },

    /// Shapes (or host slice lengths) do not fit the op.
    #[error("{op}: shape mismatch: {detail}")]
    Shape {
        /// The op or entry point that refused.
        op: &'static str,
        /// The shapes involved and what was expected.
        detail: String,
    },

    /// The op has no kernel for this element type.
    #[error("{op}: unsupported dtype {got} (this op takes {supported})")]
    DType {
        /// The op that refused.
        op: &'static str,
        /// The element type passed.
        got: DType,
        /// The element types the op takes, e.g. "f32".
        supported: &'static str,
    },

    /// The op needs a device feature this adapter did not grant.
    #[error("{op}: needs {feature}, which '{adapter}' does not offer; {hint}")]
    MissingFeature {
        /// The op that needs it.
        op: &'static str,
        /// The wgpu feature, e.g. "SHADER_F16".
        feature: &'static str,
        /// The adapter's description.
        adapter: String,
        /// What to use instead.
        hint: &'static str,
    },

    /// A tensor larger than one storage binding may be on this adapter.
    #[error(
        "{op}: tensor '{label}' needs {bytes} bytes, but this adapter binds at most {limit} bytes \
         per storage buffer (max_storage_buffer_binding_size); split the tensor or use a smaller batch"
    )]
    BufferTooLarge {
        /// The op that would bind it.
        op: &'static str,
        /// The tensor's label.
        label: String,
        /// Bytes the tensor needs.
        bytes: u64,
        /// The adapter's `max_storage_buffer_binding_size`.
        limit: u64,
    },

    /// A launch would need more workgroups than the grid can express.
    #[error("{op}: {detail}")]
    GridTooLarge {
        /// The launcher.
        op: &'static str,
        /// The grid needed and the adapter's limit.
        detail: String,
    },

    /// A kernel invocation would loop more often than the adapter allows:
    /// Mesa's llvmpipe / lavapipe silently stop an invocation after 65535
    /// loop iterations in all (`GpuContext::loop_limit`), which would
    /// truncate the result, so the launch is refused instead.
    #[error("{op}: {detail}; {adapter} stops every invocation after {limit} loop iterations (Mesa's LP_MAX_TGSI_LOOP_ITERATIONS) and would silently truncate the result: {hint}")]
    LoopLimit {
        /// The launcher.
        op: &'static str,
        /// What needs how many iterations.
        detail: String,
        /// The adapter.
        adapter: String,
        /// Its limit.
        limit: u64,
        /// What to do instead.
        hint: &'static str,
    },

    /// One buffer bound both for writing and for another use in a single
    /// dispatch; WebGPU forbids it, so we refuse before wgpu does.
    #[error("{op}: tensor '{label}' is bound twice and written; use a separate output tensor")]
    Aliasing {
        /// The launcher.
        op: &'static str,
        /// The tensor bound twice.
        label: String,
    },

    /// A wgpu validation / out-of-memory / internal error, captured by an
    /// error scope instead of panicking.
    #[error("wgpu {kind} error during {op}: {message}")]
    Wgpu {
        /// What we were doing (a recorder label, a pipeline).
        op: String,
        /// "validation", "out-of-memory" or "internal".
        kind: &'static str,
        /// wgpu's message.
        message: String,
    },

    /// A model that cannot exist on this adapter (or in memory at all):
    /// `detail` says how large it is and which limit it passes.
    #[error("model too large: {detail}")]
    ModelTooLarge {
        /// Its size, the limit (by name) and what to change.
        detail: String,
    },

    /// A state the engine's own invariants rule out (a bug in manytask,
    /// not in the caller's input), reported instead of a panic.
    #[error("internal error in {op}: {detail} (a bug in manytask: please report it)")]
    Internal {
        /// Where it was detected.
        op: &'static str,
        /// What was found.
        detail: String,
    },

    /// A checkpoint that cannot be written, read, or does not fit the
    /// model; `detail` names the tensor and what was expected.
    #[error("checkpoint {file}: {detail}")]
    Checkpoint {
        /// The checkpoint's path.
        file: String,
        /// The tensor at fault and what was expected.
        detail: String,
    },

    /// A host-side argument out of its domain (a non-finite Gram entry, a
    /// negative loss, an unknown method name); `detail` says what to pass.
    #[error("{op}: invalid input: {detail}")]
    InvalidInput {
        /// The function that refused.
        op: &'static str,
        /// What was wrong and what to pass.
        detail: String,
    },

    /// Mapping a staging buffer for readback failed, or the device was lost.
    #[error("reading back '{label}' failed: {message}")]
    Readback {
        /// The tensor being read.
        label: String,
        /// wgpu's reason.
        message: String,
    },

    /// A data file (or an in-memory dataset, named by its source) that
    /// cannot be read or does not fit: `detail` names the tensor, line,
    /// column or key.
    #[error("{file}: {detail}")]
    Data {
        /// The file, or the dataset's source.
        file: String,
        /// What is wrong and where.
        detail: String,
    },

    /// A task's loss became NaN or ±inf: training stopped at optimiser
    /// step `step` before anything was saved.
    #[error("training diverged at step {step}: {task} loss is {value}; stopped")]
    Diverged {
        /// The optimiser step (1-based) whose loss was not finite.
        step: u64,
        /// The task: "task 'depth'", or "task 2" where only the index is known.
        task: String,
        /// The loss read back (NaN or ±inf).
        value: f32,
    },

    /// A config file (or a checkpoint's stored config) that cannot be read
    /// or holds an unknown key or an impossible value: `detail` names the
    /// key, e.g. `model.widths[1] = 0: widths must be positive`.
    #[error("config {file}: {detail}")]
    Config {
        /// The config file, or the checkpoint holding it.
        file: String,
        /// The key at fault and what is wrong with its value.
        detail: String,
    },
}

/// `std::result::Result` with manytask's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Turns a captured wgpu error into ours, naming what we were doing.
    pub(crate) fn from_wgpu(op: impl Into<String>, err: wgpu::Error) -> Self {
        let kind = match &err {
            wgpu::Error::OutOfMemory { .. } => "out-of-memory",
            wgpu::Error::Validation { .. } => "validation",
            wgpu::Error::Internal { .. } => "internal",
        };
        Error::Wgpu {
            op: op.into(),
            kind,
            message: error_chain(&err),
        }
    }
}

/// "outer: cause: root cause", skipping causes that repeat their parent.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
