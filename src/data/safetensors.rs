//! Datasets in safetensors files:
//! - `x`: [N, D] features, F32 or F16 (F16 widened to f32 exactly); a
//!   rank > 2 tensor (e.g. [N, 28, 28] images) is flattened to [N, D];
//! - `y.<task>`: I64 class ids \[N\], or F32 targets \[N\] or [N, k] (real
//!   values, or 0/1 binary labels);
//! - `mask.<task>` (optional): U8 \[N\], 1 = labelled, 0 = missing.
//!
//! Other tensors are ignored. [`write()`] also stores each task's kind in
//! the header metadata (`task.<i>` = `"<kind> <width> <name>"`), so such a
//! file can be read without naming its tasks.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use ::safetensors::tensor::{Dtype, SafeTensors, TensorView, View};

use crate::data::dataset::{Dataset, Targets, TaskData, TaskSchema};
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

/// Reads `tasks` (name and kind each) from the file at `path`, or, with
/// `None`, the tasks its metadata lists (files made by [`write()`]).
pub fn read(path: &Path, tasks: Option<&[TaskSchema]>) -> Result<Dataset> {
    let bytes = crate::util::fs::read_safetensors(path).map_err(|e| {
        let what = match e.kind() {
            std::io::ErrorKind::InvalidData => "not a valid safetensors file",
            _ => "cannot read",
        };
        data_err(path, format!("{what}: {e}"))
    })?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| data_err(path, format!("not a valid safetensors file: {e}")))?;
    let listed;
    let tasks = match tasks {
        Some(t) => t,
        None => {
            listed = tasks_from_metadata(path, &bytes)?;
            &listed
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
    for task in tasks {
        let y_name = format!("y.{}", task.name);
        let targets = read_targets(&get(&y_name)?, &y_name, task.kind, rows).map_err(err)?;
        let mask_name = format!("mask.{}", task.name);
        let mask = match file.tensor(&mask_name) {
            Ok(view) => Some(read_mask(&view, &mask_name, rows).map_err(err)?),
            Err(_) => None,
        };
        data_tasks.push(TaskData::new(&task.name, targets, mask));
    }
    Dataset::new(&path.display().to_string(), rows, features, x, data_tasks)
}

fn names(file: &SafeTensors) -> String {
    let mut names = file.names();
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

/// The task list [`write`] stores in the header metadata.
fn tasks_from_metadata(path: &Path, bytes: &[u8]) -> Result<Vec<TaskSchema>> {
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| data_err(path, format!("not a valid safetensors file: {e}")))?;
    let map = meta.metadata().clone().unwrap_or_default();
    let mut tasks = Vec::new();
    while let Some(entry) = map.get(&format!("task.{}", tasks.len())) {
        let key = format!("task.{}", tasks.len());
        let bad = || {
            data_err(
                path,
                format!("metadata key '{key}' is '{entry}', expected '<kind> <width> <name>'"),
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
    if tasks.is_empty() {
        return Err(data_err(
            path,
            "the metadata lists no tasks (no key 'task.0'): name the tasks to read".into(),
        ));
    }
    Ok(tasks)
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
    ::safetensors::tensor::serialize_to_file(views, Some(meta), path)
        .map_err(|e| data_err(path, format!("cannot write: {e}")))
}
