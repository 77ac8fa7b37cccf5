//! `GpuContext`: instance, adapter, device and queue, made once and passed
//! in. It also owns the pipeline cache, the buffer pool and the counters, so
//! everything that launches work needs only `&GpuContext`.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::counters::{CounterSnapshot, Counters};
use crate::gpu::pipelines::PipelineCache;
use crate::gpu::pool::BufferPool;
use crate::gpu::tensor::{DType, Tensor};

/// Environment variable that picks the backend (same values as `--backend`).
pub const BACKEND_ENV: &str = "MANYTASK_BACKEND";

/// Which graphics API to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// The best adapter found: discrete GPU, then integrated, then CPU
    /// devices; Vulkan/Metal/DX12 before GL.
    Auto,
    /// Vulkan (Linux, Windows, Android; lavapipe on the CPU).
    Vulkan,
    /// Metal (macOS, iOS).
    Metal,
    /// Direct3D 12 (Windows).
    Dx12,
    /// OpenGL / GLES through EGL (llvmpipe on the CPU): the fallback.
    Gl,
}

impl BackendChoice {
    /// `MANYTASK_BACKEND` if set (and valid), else `Auto`.
    pub fn from_env() -> Result<Self> {
        match std::env::var(BACKEND_ENV) {
            Ok(value) if !value.trim().is_empty() => value.parse(),
            _ => Ok(BackendChoice::Auto),
        }
    }

    /// The wgpu backends this choice enumerates.
    pub fn backends(self) -> wgpu::Backends {
        match self {
            BackendChoice::Auto => {
                wgpu::Backends::VULKAN
                    | wgpu::Backends::METAL
                    | wgpu::Backends::DX12
                    | wgpu::Backends::GL
            }
            BackendChoice::Vulkan => wgpu::Backends::VULKAN,
            BackendChoice::Metal => wgpu::Backends::METAL,
            BackendChoice::Dx12 => wgpu::Backends::DX12,
            BackendChoice::Gl => wgpu::Backends::GL,
        }
    }

    fn install_hint(self) -> &'static str {
        match self {
            BackendChoice::Metal => "Metal exists only on macOS / iOS.",
            BackendChoice::Dx12 => "DX12 exists only on Windows 10 and later.",
            BackendChoice::Gl => {
                "On headless Linux, Mesa's llvmpipe gives a GL adapter: \
                 `apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri`."
            }
            BackendChoice::Vulkan | BackendChoice::Auto => {
                "On headless Linux, install Mesa's software Vulkan driver (lavapipe): \
                 `apt-get update && apt-get install -y mesa-vulkan-drivers`; on a machine \
                 with a GPU, install its vendor's Vulkan driver."
            }
        }
    }
}

impl FromStr for BackendChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(BackendChoice::Auto),
            "vulkan" | "vk" => Ok(BackendChoice::Vulkan),
            "metal" | "mtl" => Ok(BackendChoice::Metal),
            "dx12" | "d3d12" => Ok(BackendChoice::Dx12),
            "gl" | "gles" | "opengl" => Ok(BackendChoice::Gl),
            other => Err(Error::UnknownBackend(other.to_string())),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Vulkan => "vulkan",
            BackendChoice::Metal => "metal",
            BackendChoice::Dx12 => "dx12",
            BackendChoice::Gl => "gl",
        };
        f.write_str(name)
    }
}

/// Optional features the kernels can use, and whether this device has them.
/// Kernels read this to pick variants; nothing else requests features.
#[derive(Clone, Debug)]
pub struct GrantedFeatures {
    /// `SHADER_F16`: f16 in shaders (the f16-storage GEMM and dense
    /// kernels).
    pub shader_f16: bool,
    /// `SUBGROUP`: subgroup operations (the subgroup GEMM variant).
    pub subgroup: bool,
    /// `SUBGROUP_BARRIER`: subgroup barriers.
    pub subgroup_barrier: bool,
    /// `TIMESTAMP_QUERY`: GPU timestamps (reported by `manytask info`).
    pub timestamp_query: bool,
    /// Subgroup sizes the adapter reports (0 when subgroups are absent).
    pub subgroup_min_size: u32,
    /// Largest subgroup size (0 when subgroups are absent).
    pub subgroup_max_size: u32,
    /// Exactly what the device was opened with.
    pub features: wgpu::Features,
}

/// Features we ask for when the adapter offers them.
fn wanted_features() -> wgpu::Features {
    wgpu::Features::SHADER_F16
        | wgpu::Features::SUBGROUP
        | wgpu::Features::SUBGROUP_BARRIER
        | wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
}

/// Orders adapters best first: device type, then API.
fn adapter_rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let api = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    };
    (device, api)
}

/// One line naming an adapter, for messages and tables.
pub fn describe_adapter(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

/// Everything needed to launch kernels on one device.
pub struct GpuContext {
    // Kept alive for the device's lifetime (GL needs its instance).
    _instance: wgpu::Instance,
    adapter: wgpu::Adapter,
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    granted: GrantedFeatures,
    limits: wgpu::Limits,
    pub(crate) pipelines: PipelineCache,
    /// Small buffers bound where a kernel declares a binding a call does
    /// not use (see `stand_in`); made once per context.
    stand_ins: Mutex<std::collections::HashMap<(&'static str, DType), Tensor>>,
    pub(crate) pool: Arc<BufferPool>,
    pub(crate) counters: Counters,
    /// GL only: serialises our calls into wgpu (see [`GpuContext::serial`]).
    gl_serial: Option<Mutex<()>>,
    // wgpu errors raised outside any error scope land here instead of
    // panicking; `take_uncaptured_errors` turns them into `Error`s.
    uncaptured: Arc<Mutex<Vec<String>>>,
}

impl fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &describe_adapter(&self.info))
            .finish_non_exhaustive()
    }
}

fn make_instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// Adapters of the given choice, best first.
fn ranked_adapters(instance: &wgpu::Instance, choice: BackendChoice) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(choice.backends()));
    adapters.sort_by_key(|a| adapter_rank(&a.get_info()));
    adapters
}

fn no_adapter_error(choice: BackendChoice) -> Error {
    // Say what exists on any backend, so the user sees what to pick instead.
    let instance = make_instance(BackendChoice::Auto.backends());
    let all = ranked_adapters(&instance, BackendChoice::Auto);
    let found = if all.is_empty() {
        "none".to_string()
    } else {
        all.iter()
            .map(|a| describe_adapter(&a.get_info()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    Error::NoAdapter {
        requested: choice.to_string(),
        found,
        hint: format!(
            "{} Choose another backend with --backend or {BACKEND_ENV}.",
            choice.install_hint()
        ),
    }
}

impl GpuContext {
    /// Opens the best adapter for `choice`.
    pub fn new(choice: BackendChoice) -> Result<Self> {
        let instance = make_instance(choice.backends());
        let mut last_err = None;
        for adapter in ranked_adapters(&instance, choice) {
            match Self::open(instance.clone(), adapter) {
                Ok(ctx) => return Ok(ctx),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| no_adapter_error(choice)))
    }

    /// Opens the adapter chosen by `MANYTASK_BACKEND` (or the best one).
    pub fn from_env() -> Result<Self> {
        Self::new(BackendChoice::from_env()?)
    }

    /// Opens every adapter of `choice`, best first. Errors only when none
    /// opens; adapters that fail to open are skipped.
    pub fn all(choice: BackendChoice) -> Result<Vec<Self>> {
        let instance = make_instance(choice.backends());
        let mut opened = Vec::new();
        let mut last_err = None;
        for adapter in ranked_adapters(&instance, choice) {
            match Self::open(instance.clone(), adapter) {
                Ok(ctx) => opened.push(ctx),
                Err(e) => last_err = Some(e),
            }
        }
        if opened.is_empty() {
            return Err(last_err.unwrap_or_else(|| no_adapter_error(choice)));
        }
        Ok(opened)
    }

    fn open(instance: wgpu::Instance, adapter: wgpu::Adapter) -> Result<Self> {
        let info = adapter.get_info();
        let features = adapter.features() & wanted_features();
        // Ask for everything the adapter allows: the kernels check their
        // launches against these limits and say so when one is exceeded.
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("manytask device"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            Error::RequestDevice {
                adapter: describe_adapter(&info),
                message: e.to_string(),
            }
        })?;

        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |err: wgpu::Error| {
            if let Ok(mut list) = sink.lock() {
                list.push(crate::error::error_chain(&err));
            }
        }));

        let subgroup = features.contains(wgpu::Features::SUBGROUP);
        let granted = GrantedFeatures {
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroup,
            subgroup_barrier: features.contains(wgpu::Features::SUBGROUP_BARRIER),
            timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            subgroup_min_size: if subgroup { info.subgroup_min_size } else { 0 },
            subgroup_max_size: if subgroup { info.subgroup_max_size } else { 0 },
            features,
        };
        let gl_serial = (info.backend == wgpu::Backend::Gl).then(Mutex::default);
        Ok(GpuContext {
            _instance: instance,
            adapter,
            device,
            queue,
            info,
            granted,
            limits,
            pipelines: PipelineCache::default(),
            stand_ins: Mutex::default(),
            pool: Arc::new(BufferPool::default()),
            counters: Counters::default(),
            gl_serial,
            uncaptured,
        })
    }

    /// The wgpu device (opened with the adapter's full limits).
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }
    /// The device's queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }
    /// The adapter the device was opened on.
    pub fn adapter(&self) -> &wgpu::Adapter {
        &self.adapter
    }
    /// The adapter's name, backend, device type and driver.
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }
    /// The adapter's API (Vulkan, Metal, DX12, GL).
    pub fn backend(&self) -> wgpu::Backend {
        self.info.backend
    }
    /// The choice that selects this adapter's API (to open it again).
    pub fn backend_choice(&self) -> BackendChoice {
        match self.info.backend {
            wgpu::Backend::Vulkan => BackendChoice::Vulkan,
            wgpu::Backend::Metal => BackendChoice::Metal,
            wgpu::Backend::Dx12 => BackendChoice::Dx12,
            wgpu::Backend::Gl => BackendChoice::Gl,
            _ => BackendChoice::Auto,
        }
    }
    /// "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)".
    pub fn describe(&self) -> String {
        describe_adapter(&self.info)
    }
    /// The most loop iterations one shader invocation may run, all its
    /// loops together, when the driver caps them: Mesa's llvmpipe (GL)
    /// and lavapipe (Vulkan) stop an invocation after 65535
    /// (`LP_MAX_TGSI_LOOP_ITERATIONS`) without an error, so a longer loop
    /// silently returns a partial result (measured: a GEMM with K = 65536
    /// sums 65535 terms). None: no known cap. Launchers whose loops grow
    /// with the data check it (`kernels::check::require_loop_budget`).
    pub fn loop_limit(&self) -> Option<u64> {
        self.info.name.contains("llvmpipe").then_some(65_535)
    }

    /// The optional features the device was opened with.
    pub fn granted(&self) -> &GrantedFeatures {
        &self.granted
    }
    /// The device's limits (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// The context's stand-in buffer `name` of `dtype` with at least `len`
    /// elements, made on first use: bound where a kernel's layout declares
    /// a binding the call leaves unused, so hot paths allocate nothing.
    /// Kernels never read or write a stand-in; distinct names give
    /// distinct buffers (two writable stand-ins may not alias).
    pub(crate) fn stand_in(&self, name: &'static str, len: usize, dtype: DType) -> Result<Tensor> {
        let mut all = self.stand_ins.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = all.get(&(name, dtype)).filter(|t| t.len() >= len) {
            return Ok(t.clone());
        }
        let t = Tensor::empty(self, name, &[len], dtype)?;
        all.insert((name, dtype), t.clone());
        Ok(t)
    }

    /// Dispatches, submits and bytes moved since the context was made
    /// (subtract two snapshots with `since`), with the pool's statistics.
    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot(&self.pool)
    }

    /// Blocks until the GPU has finished everything submitted so far.
    pub fn wait_idle(&self) -> Result<()> {
        // On GL, wgpu-hal holds the adapter's single context lock for the
        // whole fence wait, and any other thread that waits more than 6 s
        // for that lock panics ("Could not lock adapter context"): a long
        // job on a loaded machine kills a neighbour. Short bounded waits
        // release the lock between tries.
        let timeout = (self.info.backend == wgpu::Backend::Gl)
            .then_some(std::time::Duration::from_millis(20));
        loop {
            let wait = wgpu::PollType::Wait {
                submission_index: None,
                timeout,
            };
            match self.serial(|| self.device.poll(wait)) {
                Ok(_) => return Ok(()),
                Err(wgpu::PollError::Timeout) if timeout.is_some() => continue,
                Err(e) => {
                    return Err(Error::Wgpu {
                        op: "wait for the GPU".into(),
                        kind: "poll",
                        message: e.to_string(),
                    })
                }
            }
        }
    }

    /// Runs `f` (one call into wgpu) alone among this context's threads on
    /// GL. wgpu-hal's GL backend guards the adapter's one GL context with a
    /// lock that panics after 6 s of waiting ("Could not lock adapter
    /// context"), and a shader compile or a heavy submit on a loaded CPU
    /// can hold it that long. Taking our own lock first (no timeout) means
    /// our threads queue here instead of timing out there. Other backends
    /// run `f` directly. `f` must not call `serial` again.
    pub(crate) fn serial<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.gl_serial {
            Some(m) => {
                let _alone = m.lock().unwrap_or_else(|p| p.into_inner());
                f()
            }
            None => f(),
        }
    }

    /// Runs `f` inside validation + out-of-memory error scopes and turns
    /// anything wgpu reported into an `Error` naming `op`.
    pub(crate) fn scoped<T>(&self, op: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let validation_err = pollster::block_on(validation.pop());
        let oom_err = pollster::block_on(oom.pop());
        if let Some(e) = validation_err.or(oom_err) {
            return Err(Error::from_wgpu(op, e));
        }
        self.take_uncaptured_errors(op)?;
        Ok(value)
    }

    /// Errors wgpu raised outside our scopes (e.g. on another thread).
    pub(crate) fn take_uncaptured_errors(&self, op: &str) -> Result<()> {
        let mut list = match self.uncaptured.lock() {
            Ok(list) => list,
            Err(poisoned) => poisoned.into_inner(),
        };
        if list.is_empty() {
            return Ok(());
        }
        let message = list.drain(..).collect::<Vec<_>>().join("; ");
        Err(Error::Wgpu {
            op: op.to_string(),
            kind: "uncaptured",
            message,
        })
    }
}
