//! Checkpoints: one safetensors file holding the parameters in PyTorch
//! layout (`arch::Piece`: `trunk.{i}.weight` [out, in], `…bias` \[out\],
//! `heads.{task}.{j}.…`, `columns.{task}.{i}.…`; α, β and log σ² whole
//! under their graph names), the optimiser state (`optimizer.state.{k}`,
//! the flat arena: its buffers concatenated, the same bytes however the
//! arena is split, so a checkpoint loads across splits; and
//! `optimizer.step`), and metadata: the manytask
//! version, the arena layout (to refuse optimiser state from another
//! model) and whatever the caller adds (the config as JSON).
//!
//! Saves are atomic: the file is written next to the target under a
//! temporary name, synced, then renamed over it, so a failed or
//! interrupted save leaves the previous checkpoint intact. They are also
//! deterministic: the same parameters, state and metadata give the same
//! bytes (the header's metadata is written sorted by key).

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::arch::Piece;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::graph::Program;

const VERSION_KEY: &str = "manytask.version";
const LAYOUT_KEY: &str = "manytask.arena";
const STEP: &str = "optimizer.step";
/// The metadata key `manytask train` stores its resolved config under
/// (JSON, `config::Config::to_json`).
pub const CONFIG_KEY: &str = "config";

fn err(file: &Path, detail: String) -> Error {
    Error::Checkpoint {
        file: file.display().to_string(),
        detail,
    }
}

/// Every tensor of the checkpoint: the pieces, then every parameter no
/// piece covers, whole (name, shape, values).
fn tensors(
    program: &Program,
    pieces: &[Piece],
    values: &[f32],
) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let layout = &program.params().layout;
    let mut out = Vec::new();
    for e in layout.entries() {
        let own: Vec<&Piece> = pieces.iter().filter(|p| p.param == e.name).collect();
        let param = &values[e.offset..e.offset + e.len()];
        if own.is_empty() {
            out.push((e.name.clone(), e.shape.clone(), param.to_vec()));
        }
        for p in own {
            out.push((p.name.clone(), p.shape(), p.cut(param)));
        }
    }
    out
}

/// The arena layout as text (names, shapes, offsets): optimiser state
/// only loads into the same layout.
fn layout_text(program: &Program) -> String {
    program
        .params()
        .layout
        .entries()
        .iter()
        .map(|e| format!("{}{:?}@{}", e.name, e.shape, e.offset))
        .collect::<Vec<_>>()
        .join(";")
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes the checkpoint of `program` (parameters cut by `pieces`,
/// optimiser state and step) to `path` atomically; `metadata` is stored
/// beside the manytask version (e.g. "config" → the config as JSON).
pub fn save(
    ctx: &GpuContext,
    program: &Program,
    pieces: &[Piece],
    metadata: &[(String, String)],
    path: &Path,
) -> Result<()> {
    let values = program.params().values.to_f32_vec(ctx)?;
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = tensors(program, pieces, &values)
        .into_iter()
        .map(|(n, s, v)| (n, s, le_bytes(&v)))
        .collect();
    for (k, state) in program.params().states.iter().enumerate() {
        let v = state.to_f32_vec(ctx)?;
        owned.push((format!("optimizer.state.{k}"), vec![v.len()], le_bytes(&v)));
    }
    owned.push((
        STEP.into(),
        vec![1],
        (program.steps() as i64).to_le_bytes().to_vec(),
    ));
    let mut views = Vec::with_capacity(owned.len());
    for (name, shape, bytes) in &owned {
        let dtype = if name == STEP { Dtype::I64 } else { Dtype::F32 };
        let view = TensorView::new(dtype, shape.clone(), bytes)
            .map_err(|e| err(path, format!("tensor '{name}': {e}")))?;
        views.push((name.clone(), view));
    }
    let mut meta: BTreeMap<String, String> = metadata.iter().cloned().collect();
    meta.insert(VERSION_KEY.into(), env!("CARGO_PKG_VERSION").into());
    meta.insert(LAYOUT_KEY.into(), layout_text(program));
    let bytes = safetensors::tensor::serialize(views, None)
        .map_err(|e| err(path, format!("serialising: {e}")))?;
    let bytes = with_sorted_metadata(&bytes, &meta).map_err(|e| err(path, e))?;
    remove_stale_temps(path);
    crate::util::fs::write_atomic(path, &bytes).map_err(|e| err(path, format!("writing: {e}")))
}

/// How old a temporary file of ours must be to count as abandoned where
/// the process that wrote it cannot be looked up.
#[cfg(not(target_os = "linux"))]
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes the temporary files that saves to `path` killed mid-write left
/// behind (`.NAME.tmp-PID`, the atomic write's naming), so that a run
/// killed with `kill -9` does not leave a checkpoint-sized file forever.
/// Only files of exactly that naming are touched, and only when their
/// process is gone: on Linux when `/proc/PID` does not exist; elsewhere
/// when the file is over an hour old. Best effort: errors are ignored (the
/// save itself reports what matters).
pub fn remove_stale_temps(path: &Path) {
    let Some(name) = path.file_name() else {
        return;
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let own = std::process::id();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        // Not a symbolic link or folder: only plain files we wrote.
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if pid != own && meta.is_file() && writer_is_gone(pid, &meta) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether the process that wrote a temporary file is gone.
#[cfg(target_os = "linux")]
fn writer_is_gone(pid: u32, _meta: &std::fs::Metadata) -> bool {
    // Without /proc mounted nothing can be told: keep the file.
    Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether the process that wrote a temporary file is gone: without a
/// process table to look in, files over `STALE_AFTER` old count as gone.
#[cfg(not(target_os = "linux"))]
fn writer_is_gone(_pid: u32, meta: &std::fs::Metadata) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age > STALE_AFTER)
}

/// `file` (a safetensors serialisation without metadata) with `meta` as
/// its `__metadata__`, keys in order. The safetensors crate takes the
/// metadata as a `HashMap` and writes it in the map's (random) order, so
/// two saves of the same model would differ; this writes the same header
/// with the keys sorted: 8-byte little-endian header length, the JSON
/// header padded with spaces to a multiple of 8, then the data as is.
fn with_sorted_metadata(
    file: &[u8],
    meta: &BTreeMap<String, String>,
) -> std::result::Result<Vec<u8>, String> {
    let bad = || "serialising: unexpected safetensors layout".to_string();
    let n = u64::from_le_bytes(
        file.get(..8)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    let end = usize::try_from(n).map_err(|_| bad())? + 8;
    let header = std::str::from_utf8(file.get(8..end).ok_or_else(bad)?).map_err(|_| bad())?;
    let tensors = header.trim_end().strip_prefix('{').ok_or_else(bad)?;
    let meta_json =
        serde_json::to_string(meta).map_err(|e| format!("serialising metadata: {e}"))?;
    let mut text = format!("{{\"__metadata__\":{meta_json}");
    if tensors != "}" {
        text.push(',');
    }
    text.push_str(tensors);
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + file.len() - end);
    out.extend((text.len() as u64).to_le_bytes());
    out.extend(text.as_bytes());
    out.extend(&file[end..]);
    Ok(out)
}

/// The metadata of the checkpoint at `path` (its own keys and the
/// caller's), without reading the tensors into a model.
pub fn metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    let bytes =
        crate::util::fs::read_safetensors(path).map_err(|e| err(path, format!("reading: {e}")))?;
    header_metadata(path, &bytes)
}

/// The metadata in a safetensors file's header.
fn header_metadata(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, String>> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| corrupt(path, e))?;
    Ok(header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect())
}

/// The crate's message may quote the file's header; ours does not.
fn corrupt(path: &Path, e: safetensors::SafeTensorError) -> Error {
    let e = crate::data::safetensors::describe_error(&e);
    err(
        path,
        format!("not a safetensors file (corrupt or truncated?): {e}"),
    )
}

/// What `load` restores besides the parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restore {
    /// Parameters only (`--init`).
    Parameters,
    /// Parameters, optimiser state and step (`--resume`).
    Everything,
}

/// Loads `path` into `program`: every piece and whole parameter must be
/// present with its exact shape (a checkpoint of another model is an
/// error naming the first mismatch), and with `Restore::Everything` the
/// optimiser state of the same arena layout. Returns the metadata.
pub fn load(
    ctx: &GpuContext,
    program: &mut Program,
    pieces: &[Piece],
    path: &Path,
    restore: Restore,
) -> Result<BTreeMap<String, String>> {
    let bytes =
        crate::util::fs::read_safetensors(path).map_err(|e| err(path, format!("reading: {e}")))?;
    let meta = header_metadata(path, &bytes)?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(path, e))?;
    let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let t = file.tensor(name).map_err(|_| {
            err(
                path,
                format!("no tensor '{name}' (a checkpoint of a different model?)"),
            )
        })?;
        if t.dtype() != Dtype::F32 || t.shape() != shape {
            return Err(err(
                path,
                format!(
                    "tensor '{name}' is {:?} {:?}; this model needs F32 {shape:?} (a checkpoint of a different model shape?)",
                    t.dtype(),
                    t.shape()
                ),
            ));
        }
        let v: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(err(
                path,
                format!("tensor '{name}' holds a non-finite value at {i}"),
            ));
        }
        Ok(v)
    };
    let layout = program.params().layout.clone();
    let mut values = program.params().values.to_f32_vec(ctx)?;
    for e in layout.entries() {
        let own: Vec<&Piece> = pieces.iter().filter(|p| p.param == e.name).collect();
        let param = &mut values[e.offset..e.offset + e.len()];
        if own.is_empty() {
            param.copy_from_slice(&read(&e.name, &e.shape)?);
        }
        for p in own {
            p.paste(&read(&p.name, &p.shape())?, param);
        }
    }
    let mut states = Vec::new();
    let mut step = None;
    if restore == Restore::Everything {
        if meta.get(LAYOUT_KEY) != Some(&layout_text(program)) {
            return Err(err(
                path,
                "its optimiser state belongs to a different parameter layout (load parameters only, with --init)".into(),
            ));
        }
        for (k, state) in program.params().states.iter().enumerate() {
            states.push(read(&format!("optimizer.state.{k}"), &[state.len()])?);
        }
        let t = file
            .tensor(STEP)
            .map_err(|_| err(path, format!("no tensor '{STEP}'")))?;
        let data = t.data();
        if t.dtype() != Dtype::I64 || data.len() != 8 {
            return Err(err(path, format!("'{STEP}' must be one I64")));
        }
        let s = i64::from_le_bytes(data.try_into().expect("8 bytes"));
        step = Some(u32::try_from(s).map_err(|_| err(path, format!("step {s} is out of range")))?);
    }
    // Only now, with everything read and checked, touch the program.
    program.params().write_values(ctx, &values)?;
    for (state, v) in program.params().states.iter().zip(&states) {
        state.write_f32(ctx, v)?;
    }
    if let Some(s) = step {
        program.set_steps(s);
    }
    Ok(meta)
}
