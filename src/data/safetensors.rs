//! Datasets in safetensors files:
//! - `x`: [N, D] features, F32 or F16 (F16 widened to f32 exactly); a
//!   rank > 2 tensor (e.g. [N, 28, 28] images) is flattened to [N, D];
//! - `y.<task>`: I64 class ids \[N\], or F32 targets \[N\] or [N, k] (real
//!   values, or 0/1 binary labels);
//! - `mask.<task>` (optional): U8 \[N\], 1 = labelled, 0 = missing.
//!
//! Other tensors are ignored. [`write()`] also stores each task's kind in
//! the header metadata (`task.<i>` = `"<kind> <width> <name>"`), so such a
//! file can be read without naming its tasks; a file without that
//! metadata (one written by PyTorch's `safetensors.torch.save_file`, say)
//! is read with the tasks the caller names (a config's `[[tasks]]`).
//! A regression task's target scale may be stored as `scale.<task>` =
//! `"<mean>,<std>"`: the stored targets are (y − mean) / std.
//!
//! Errors name the file and the tensor or key; they never quote the
//! file's bytes (names from the header are shown only when plain).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use ::safetensors::tensor::{Dtype, SafeTensors, TensorView, View};
use ::safetensors::SafeTensorError;

use crate::data::dataset::{Dataset, TargetScale, Targets, TaskData, TaskSchema};
use crate::error::{Error, Result};
use crate::types::TaskKind;

/// Element type of `x` in a written file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// x stored as F32 (exact).
    F32,
    /// x stored as F16 (half the bytes; read back as f32).
    F16,
}

fn data_err(path: &Path, detail: String) -> Error {
    Error::Data {
        file: path.display().to_string(),
        detail,
    }
}

/// A safetensors parse error in words that quote nothing from the file
/// (the crate's own messages may quote a tensor name or a header string).
pub fn describe_error(e: &SafeTensorError) -> String {
    use SafeTensorError as E;
    #[allow(unreachable_patterns)] // the crate may add variants
    let text = match e {
        E::InvalidHeader(_) => "the header is not UTF-8 text",
        E::InvalidHeaderDeserialization(json) | E::JsonError(json) => {
            return format!(
                "the header is not a valid safetensors JSON header (line {}, column {})",
                json.line(),
                json.column()
            )
        }
        E::HeaderTooLarge => "the header length is over the format's 100 MB limit",
        E::HeaderTooSmall => "too short for the 8-byte header length",
        E::InvalidHeaderLength => "the header length points past the end of the file",
        E::TensorNotFound(_) => "a tensor is missing",
        E::TensorInvalidInfo => "a tensor's dtype, shape and byte offsets disagree",
        E::InvalidOffset(_) => "a tensor's byte offsets overlap, leave gaps or run past the data",
        E::IoError(io) => return format!("I/O error ({})", io.kind()),
        E::InvalidTensorView(..) => "a tensor's byte size does not match its shape and dtype",
        E::MetadataIncompleteBuffer => {
            "the tensors do not cover the data exactly (truncated, or bytes after the last tensor)"
        }
        E::ValidationOverflow => "a tensor's shape or byte size overflows",
        E::MisalignedSlice => "a tensor's data is not byte aligned",
        _ => "the file does not follow the safetensors format",
    };
    text.to_string()
}

/// Reads `tasks` (name and kind each) from the file at `path`. With
/// `None`, the tasks its header metadata lists (`task.<i>`, as [`write()`]
/// stores them). When both exist, every task given must be listed with
/// the same kind: a difference is an error naming both. A file with no
/// task metadata needs `tasks` (e.g. from a config's `[[tasks]]`).
/// Target scales stored as `scale.<task>` = `"mean,std"` are recorded on
/// the dataset (`Dataset::target_scale`).
pub fn read(path: &Path, tasks: Option<&[TaskSchema]>) -> Result<Dataset> {
    let bytes = crate::util::fs::read_safetensors(path).map_err(|e| {
        let what = match e.kind() {
            std::io::ErrorKind::InvalidData => "not a valid safetensors file",
            _ => "cannot read",
        };
        data_err(path, format!("{what}: {e}"))
    })?;
    let invalid = |e: SafeTensorError| {
        data_err(
            path,
            format!("not a valid safetensors file: {}", describe_error(&e)),
        )
    };
    let file = SafeTensors::deserialize(&bytes).map_err(invalid)?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(invalid)?;
    let meta = header.metadata().clone().unwrap_or_default();
    let listed = tasks_from_metadata(path, &meta)?;
    let tasks: Vec<TaskSchema> = match (tasks, listed) {
        (Some(given), Some(listed)) => {
            check_against_metadata(path, given, &listed)?;
            given.to_vec()
        }
        (Some(given), None) => given.to_vec(),
        (None, Some(listed)) => listed,
        (None, None) => {
            return Err(data_err(
                path,
                format!(
                    "no task kinds: the header metadata lists none (keys 'task.0', 'task.1', …) \
                     and none were given; add a [[tasks]] entry (name, kind and \
                     classes/outputs/labels) for each target tensor y.<task> to read{}",
                    target_names(&file)
                ),
            ))
        }
    };
    let err = |detail: String| data_err(path, detail);
    let get = |name: &str| {
        file.tensor(name).map_err(|_| {
            err(format!(
                "tensor '{name}' is missing (tensors present: {})",
                names(&file)
            ))
        })
    };

    let x_view = get("x")?;
    let (rows, features) = match x_view.shape() {
        [n, rest @ ..] if !rest.is_empty() => (*n, rest.iter().product::<usize>()),
        shape => {
            return Err(err(format!(
                "tensor 'x' has shape {shape:?}, expected [N, D]"
            )))
        }
    };
    let x = match x_view.dtype() {
        Dtype::F32 => f32s(x_view.data()),
        Dtype::F16 => x_view
            .data()
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => return Err(err(format!("tensor 'x' is {other:?}, expected F32 or F16"))),
    };
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(err(format!(
            "tensor 'x' holds {} at sample {}, feature {}",
            x[i],
            i / features.max(1),
            i % features.max(1)
        )));
    }

    let mut data_tasks = Vec::with_capacity(tasks.len());
    for task in &tasks {
        let y_name = format!("y.{}", task.name);
        let targets = read_targets(&get(&y_name)?, &y_name, task.kind, rows).map_err(err)?;
        let mask_name = format!("mask.{}", task.name);
        let mask = match file.tensor(&mask_name) {
            Ok(view) => Some(read_mask(&view, &mask_name, rows).map_err(err)?),
            Err(_) => None,
        };
        data_tasks.push(TaskData::new(&task.name, targets, mask));
    }
    let mut data = Dataset::new(&path.display().to_string(), rows, features, x, data_tasks)?;
    for task in &tasks {
        let key = format!("{SCALE_PREFIX}{}", task.name);
        if let Some(text) = meta.get(&key) {
            let scale = parse_scale(text).ok_or_else(|| {
                err(format!(
                    "metadata key '{key}' is not \"<mean>,<std>\" (two finite numbers, std > 0)"
                ))
            })?;
            data = data
                .with_target_scale(&task.name, scale)
                .map_err(|e| err(format!("metadata key '{key}': {e}")))?;
        }
    }
    Ok(data)
}

/// The metadata key prefix of a task's target scale (`scale.<task>`).
pub const SCALE_PREFIX: &str = "scale.";

/// "mean,std" as a target scale, or `None` when it is not one.
fn parse_scale(text: &str) -> Option<TargetScale> {
    let (mean, std) = text.split_once(',')?;
    let scale = TargetScale {
        mean: mean.trim().parse().ok()?,
        std: std.trim().parse().ok()?,
    };
    scale.check().ok().map(|_| scale)
}

/// A task kind in words: "regression with 3 outputs".
pub fn describe_kind(kind: TaskKind) -> String {
    match kind {
        TaskKind::Classification { classes } => format!("classification with {classes} classes"),
        TaskKind::Regression { outputs } => format!("regression with {outputs} output(s)"),
        TaskKind::Binary { labels } => format!("binary with {labels} label(s)"),
    }
}

/// Every task given must be in the file's list, with the same kind.
fn check_against_metadata(path: &Path, given: &[TaskSchema], listed: &[TaskSchema]) -> Result<()> {
    for task in given {
        let Some(i) = listed.iter().position(|t| t.name == task.name) else {
            return Err(data_err(
                path,
                format!(
                    "task '{}' is given (e.g. by the config's [[tasks]]) but the file's metadata \
                     lists {} other task(s) and not this one",
                    task.name,
                    listed.len()
                ),
            ));
        };
        if listed[i].kind != task.kind {
            return Err(data_err(
                path,
                format!(
                    "task '{}': given (e.g. by the config's [[tasks]]) as {}, but the file's \
                     metadata (task.{i}) says {}",
                    task.name,
                    describe_kind(task.kind),
                    describe_kind(listed[i].kind)
                ),
            ));
        }
    }
    Ok(())
}

/// ", (this file has: y.a, y.b)" for the error asking for tasks.
fn target_names(file: &SafeTensors) -> String {
    let mut ys: Vec<String> = file
        .names()
        .into_iter()
        .filter(|n| n.starts_with("y."))
        .map(shown)
        .collect();
    ys.sort_unstable();
    if ys.is_empty() {
        " (this file has no y.<task> tensor)".into()
    } else {
        format!(" (this file has: {})", ys.join(", "))
    }
}

/// A tensor name from the file as an error may show it: plain names
/// (letters, digits, `_ . -`, ≤ 64) as they are, others withheld.
fn shown(name: &str) -> String {
    if crate::data::plain_name(name) {
        name.to_string()
    } else {
        "<a tensor with an unusual name>".to_string()
    }
}

fn names(file: &SafeTensors) -> String {
    let mut names: Vec<String> = file.names().into_iter().map(shown).collect();
    names.sort_unstable();
    names.join(", ")
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// `y.<task>` as targets of `kind`; errors name the tensor.
fn read_targets(
    view: &TensorView,
    name: &str,
    kind: TaskKind,
    rows: usize,
) -> std::result::Result<Targets, String> {
    let shape = view.shape();
    if shape.first() != Some(&rows) {
        return Err(format!(
            "tensor '{name}' has shape {shape:?} but 'x' has {rows} samples"
        ));
    }
    if let TaskKind::Classification { classes } = kind {
        if view.dtype() != Dtype::I64 || shape.len() != 1 {
            return Err(format!(
                "tensor '{name}' is {:?} {shape:?}, expected class ids I64 [{rows}]",
                view.dtype()
            ));
        }
        let mut ids = Vec::with_capacity(rows);
        for (row, b) in view.data().chunks_exact(8).enumerate() {
            let id = i64::from_le_bytes(b.try_into().expect("chunks of 8"));
            if id < 0 || id as u64 >= classes as u64 {
                return Err(format!(
                    "tensor '{name}': class id {id} at sample {row} is outside [0, {classes})"
                ));
            }
            ids.push(id as u32);
        }
        return Ok(Targets::Classes { classes, ids });
    }
    let width = kind.width();
    let shape_ok = match shape {
        [_] => width == 1,
        [_, k] => *k == width,
        _ => false,
    };
    if view.dtype() != Dtype::F32 || !shape_ok {
        return Err(format!(
            "tensor '{name}' is {:?} {shape:?}, expected F32 [{rows}, {width}]",
            view.dtype()
        ));
    }
    let values = f32s(view.data());
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "tensor '{name}' holds {} at sample {}",
            values[i],
            i / width
        ));
    }
    Ok(match kind {
        TaskKind::Regression { outputs } => Targets::Real { outputs, values },
        TaskKind::Binary { labels } => Targets::Binary { labels, values },
        TaskKind::Classification { .. } => unreachable!("returned above"),
    })
}

fn read_mask(view: &TensorView, name: &str, rows: usize) -> std::result::Result<Vec<bool>, String> {
    if view.dtype() != Dtype::U8 || view.shape() != [rows] {
        return Err(format!(
            "tensor '{name}' is {:?} {:?}, expected U8 [{rows}]",
            view.dtype(),
            view.shape()
        ));
    }
    view.data()
        .iter()
        .enumerate()
        .map(|(row, &m)| match m {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(format!(
                "tensor '{name}' holds {m} at sample {row}, expected 0 or 1"
            )),
        })
        .collect()
}

/// The task list [`write`] stores in the header metadata, `None` when
/// there is none (no key `task.0`).
fn tasks_from_metadata(
    path: &Path,
    map: &HashMap<String, String>,
) -> Result<Option<Vec<TaskSchema>>> {
    let mut tasks = Vec::new();
    while let Some(entry) = map.get(&format!("task.{}", tasks.len())) {
        let key = format!("task.{}", tasks.len());
        // The entry is not quoted back: it is the file's content.
        let bad = || {
            data_err(
                path,
                format!("metadata key '{key}' is not '<kind> <width> <name>'"),
            )
        };
        let mut parts = entry.splitn(3, ' ');
        let (kind, width, name) = (parts.next(), parts.next(), parts.next());
        let width: usize = width.and_then(|w| w.parse().ok()).ok_or_else(bad)?;
        let kind = match kind {
            Some("classification") => TaskKind::Classification { classes: width },
            Some("regression") => TaskKind::Regression { outputs: width },
            Some("binary") => TaskKind::Binary { labels: width },
            _ => return Err(bad()),
        };
        tasks.push(TaskSchema::new(name.ok_or_else(bad)?, kind));
    }
    Ok((!tasks.is_empty()).then_some(tasks))
}

/// A named tensor to serialise: its bytes are already little-endian.
struct Owned {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Owned {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Writes `data` in the layout [`read`] takes, `x` as `precision`
/// (F16 rounds to nearest; a value beyond its range is an error), with
/// the task list in the metadata.
pub fn write(path: &Path, data: &Dataset, precision: Precision) -> Result<()> {
    let (n, d) = (data.rows(), data.features());
    let x = match precision {
        Precision::F32 => Owned {
            dtype: Dtype::F32,
            shape: vec![n, d],
            bytes: data.x().iter().flat_map(|v| v.to_le_bytes()).collect(),
        },
        Precision::F16 => {
            let halves: Vec<half::f16> = data.x().iter().map(|&v| half::f16::from_f32(v)).collect();
            // |x| > 65504 would become ±Inf, which `read` then refuses.
            if let Some(i) = halves.iter().position(|h| !h.is_finite()) {
                return Err(data_err(
                    path,
                    format!(
                        "x is {} at sample {}, feature {}: beyond the f16 range (±65504); write F32",
                        data.x()[i],
                        i / d,
                        i % d
                    ),
                ));
            }
            Owned {
                dtype: Dtype::F16,
                shape: vec![n, d],
                bytes: halves.iter().flat_map(|h| h.to_le_bytes()).collect(),
            }
        }
    };
    let mut tensors = vec![("x".to_string(), x)];
    let mut meta = HashMap::new();
    for (i, task) in data.tasks().iter().enumerate() {
        let (kind, y) = match &task.targets {
            Targets::Classes { ids, .. } => (
                "classification",
                Owned {
                    dtype: Dtype::I64,
                    shape: vec![n],
                    bytes: ids.iter().flat_map(|&c| (c as i64).to_le_bytes()).collect(),
                },
            ),
            Targets::Real { outputs: k, values } | Targets::Binary { labels: k, values } => (
                if matches!(task.targets, Targets::Real { .. }) {
                    "regression"
                } else {
                    "binary"
                },
                Owned {
                    dtype: Dtype::F32,
                    shape: vec![n, *k],
                    bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                },
            ),
        };
        let width = task.targets.kind().width();
        meta.insert(format!("task.{i}"), format!("{kind} {width} {}", task.name));
        if let Some(scale) = data.target_scale(&task.name) {
            meta.insert(
                format!("{SCALE_PREFIX}{}", task.name),
                format!("{},{}", scale.mean, scale.std),
            );
        }
        tensors.push((format!("y.{}", task.name), y));
        if let Some(mask) = &task.mask {
            let mask = Owned {
                dtype: Dtype::U8,
                shape: vec![n],
                bytes: mask.iter().map(|&m| m as u8).collect(),
            };
            tensors.push((format!("mask.{}", task.name), mask));
        }
    }
    let views = tensors.iter().map(|(name, t)| (name.as_str(), t));
    let mut bytes = ::safetensors::tensor::serialize(views, Some(meta))
        .map_err(|e| data_err(path, format!("cannot write: {}", describe_error(&e))))?;
    sort_header(&mut bytes);
    crate::util::fs::write_atomic(path, &bytes)
        .map_err(|e| data_err(path, format!("cannot write: {e}")))
}

/// Rewrites a serialised safetensors file's JSON header with its keys in
/// sorted order (tensor entries and `__metadata__` keys alike), so the
/// same tensors and metadata always give the same bytes: the crate
/// writes the metadata map in hash order, which differs run to run.
/// Readers do not depend on the order (offsets say where data is). The
/// header keeps its length (the same JSON, compact, in another order);
/// bytes that do not parse are left as they are.
pub fn sort_header(bytes: &mut [u8]) {
    let Some(len) = bytes
        .get(..8)
        .and_then(|b| usize::try_from(u64::from_le_bytes(b.try_into().ok()?)).ok())
    else {
        return;
    };
    let Some(header) = len.checked_add(8).and_then(|end| bytes.get(8..end)) else {
        return;
    };
    // serde_json's maps are ordered by key (no `preserve_order`).
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(header) else {
        return;
    };
    let Ok(sorted) = serde_json::to_vec(&value) else {
        return;
    };
    let trimmed = header.trim_ascii_end().len();
    if sorted.len() == trimmed {
        bytes[8..8 + trimmed].copy_from_slice(&sorted);
    }
}
