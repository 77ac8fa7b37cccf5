//! Datasets in CSV files with a header row. A [`CsvColumns`] mapping picks
//! the feature columns and each task's target columns by header name.
//!
//! Cells are trimmed. An empty target cell is a missing label (the task's
//! mask is 0 for that sample; a task of several columns must have all or
//! none of them empty); an empty feature cell is an error. Class targets
//! are integer cells in [0, classes), binary targets 0 or 1. Errors name
//! the line (1-based, as an editor shows it), the column (1-based) and
//! its header when the caller named that column; they never quote a
//! cell or a header the caller did not give (the file might not be a CSV
//! file at all). A header-only file is a dataset of 0 samples.
//!
//! Default features ([`feature_columns`]): every column no task reads and
//! `exclude` does not list; a leftover column that looks like a target
//! is an error (label leakage), as is a target column listed as a
//! feature.

use std::collections::HashMap;
use std::path::Path;

use crate::data::dataset::{Dataset, Targets, TaskData};
use crate::error::{Error, Result};
use crate::types::TaskKind;

/// One task's target columns.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvTask {
    /// The task's name in the dataset.
    pub name: String,
    /// What it predicts (its width must match `columns`).
    pub kind: TaskKind,
    /// Header names: one for classification, else one per output/label.
    pub columns: Vec<String>,
}

impl CsvTask {
    /// A task read from the header columns `columns`.
    pub fn new(name: &str, kind: TaskKind, columns: &[&str]) -> Self {
        CsvTask {
            name: name.to_string(),
            kind,
            columns: columns.iter().map(|c| c.to_string()).collect(),
        }
    }
}

/// Which columns are features and which are targets.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvColumns {
    /// Feature columns by header name, in this order; `None`: every column
    /// no task uses and `exclude` does not list, in file order.
    pub features: Option<Vec<String>>,
    /// Columns that are neither features nor targets of these tasks (the
    /// labels of tasks not trained, ids): never taken as features.
    pub exclude: Vec<String>,
    /// The tasks and their target columns.
    pub tasks: Vec<CsvTask>,
}

/// A cell's place, for error messages: its header is shown only when the
/// caller named that column (file text is never echoed).
struct Cell<'a> {
    line: u64,
    column: usize,
    header: Option<&'a str>,
}

impl Cell<'_> {
    fn error(&self, path: &Path, what: String) -> Error {
        let header = self.header.map(|h| format!(" ('{h}')")).unwrap_or_default();
        data_err(
            path,
            format!(
                "line {}, column {}{header}: {what}",
                self.line,
                self.column + 1
            ),
        )
    }
}

fn data_err(path: &Path, detail: String) -> Error {
    Error::Data {
        file: path.display().to_string(),
        detail,
    }
}

/// A CSV error in words that quote nothing from the file.
fn describe(e: &::csv::Error) -> String {
    let line = |pos: &Option<::csv::Position>| {
        pos.as_ref()
            .map(|p| format!("line {}: ", p.line()))
            .unwrap_or_default()
    };
    match e.kind() {
        ::csv::ErrorKind::Io(io) => format!("cannot read: {io}"),
        ::csv::ErrorKind::Utf8 { pos, err } => {
            format!("{}field {} is not UTF-8 text", line(pos), err.field() + 1)
        }
        ::csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => format!(
            "{}{len} fields, but the header has {expected_len}",
            line(pos)
        ),
        _ => "not a valid CSV file".into(),
    }
}

/// The file's reader (regular files only, never read past their size)
/// and its header row.
fn open(path: &Path) -> Result<(::csv::Reader<std::io::Take<std::fs::File>>, Vec<String>)> {
    let err = |detail: String| data_err(path, detail);
    let (file, size) =
        crate::util::fs::open_regular(path).map_err(|e| err(format!("cannot read: {e}")))?;
    if size == 0 {
        return Err(err("empty file: a CSV file starts with a header row".into()));
    }
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true) // ragged rows are reported below, with their line
        .trim(::csv::Trim::All)
        // Never past the size the file had when opened.
        .from_reader(std::io::Read::take(file, size));
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| err(format!("the header row: {}", describe(&e))))?
        .iter()
        .map(str::to_string)
        .collect();
    Ok((reader, header))
}

/// Whether a column name says "target": `y`, `label(s)`, `target(s)`, or
/// a `y.`, `label_`, `label.`, `target_`, `target.`, `mask.`, `mask_`
/// prefix (any case).
fn looks_like_target(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["y", "label", "labels", "target", "targets"].contains(&n.as_str())
        || [
            "y.", "label_", "label.", "target_", "target.", "mask.", "mask_",
        ]
        .iter()
        .any(|p| n.starts_with(p))
}

/// The feature columns of the file at `path` under `columns`, by header
/// name: `columns.features` when given (each checked present and not a
/// target or excluded column), else every column that no task reads and
/// `exclude` does not list, in file order. In that default, a column that
/// looks like a target (`y`, `label…`, `target…`, `y.…`, `mask.…`) is an
/// error: the file holds targets the tasks do not name, and feeding them
/// in as features would leak labels; list the features, or exclude those
/// columns.
pub fn feature_columns(path: &Path, columns: &CsvColumns) -> Result<Vec<String>> {
    let (_, header) = open(path)?;
    let index = column_index(path, &header)?;
    Ok(resolve(path, &header, &index, columns)?
        .into_iter()
        .map(|c| header[c].clone())
        .collect())
}

/// The feature columns (indices) of `columns` in `header`.
fn resolve(
    path: &Path,
    header: &[String],
    index: &HashMap<String, usize>,
    columns: &CsvColumns,
) -> Result<Vec<usize>> {
    let err = |detail: String| data_err(path, detail);
    let find = |name: &str| {
        index.get(name).copied().ok_or_else(|| {
            err(format!(
                "no column '{name}' in the header row ({} columns)",
                header.len()
            ))
        })
    };
    let mut targets = Vec::new();
    for task in &columns.tasks {
        for c in &task.columns {
            targets.push((find(c)?, task.name.as_str()));
        }
    }
    let excluded = columns
        .exclude
        .iter()
        .map(|c| find(c))
        .collect::<Result<Vec<_>>>()?;
    let features: Vec<usize> = match &columns.features {
        Some(names) => {
            let cols = names.iter().map(|c| find(c)).collect::<Result<Vec<_>>>()?;
            for (&c, name) in cols.iter().zip(names) {
                if let Some((_, task)) = targets.iter().find(|t| t.0 == c) {
                    return Err(err(format!(
                        "feature column '{name}' is a target column of task '{task}': its \
                         labels would be fed in as inputs (label leakage)"
                    )));
                }
                if excluded.contains(&c) {
                    return Err(err(format!("feature column '{name}' is also excluded")));
                }
            }
            cols
        }
        None => {
            let free: Vec<usize> = (0..header.len())
                .filter(|c| !targets.iter().any(|t| t.0 == *c) && !excluded.contains(c))
                .collect();
            // Names that matched the pattern are shown: they are short,
            // plain and look like column names, not arbitrary content.
            let suspects: Vec<String> = free
                .iter()
                .filter(|&&c| crate::data::plain_name(&header[c]) && looks_like_target(&header[c]))
                .map(|&c| format!("column {} ('{}')", c + 1, header[c]))
                .collect();
            if !suspects.is_empty() {
                return Err(err(format!(
                    "{} look(s) like target column(s) but no task reads them; as default \
                     features they would leak labels into the inputs: list the feature columns \
                     (data.features) or leave these out (data.exclude)",
                    suspects.join(", ")
                )));
            }
            free
        }
    };
    if features.is_empty() {
        return Err(err("no feature columns".into()));
    }
    Ok(features)
}

/// Reads the file at `path` with the column mapping `columns`.
pub fn read(path: &Path, columns: &CsvColumns) -> Result<Dataset> {
    let err = |detail: String| data_err(path, detail);
    let (mut reader, header) = open(path)?;
    let index = column_index(path, &header)?;
    let find = |name: &str| {
        index.get(name).copied().ok_or_else(|| {
            err(format!(
                "no column '{name}' in the header row ({} columns)",
                header.len()
            ))
        })
    };

    let mut task_cols = Vec::with_capacity(columns.tasks.len());
    for task in &columns.tasks {
        let want = match task.kind {
            TaskKind::Classification { .. } => 1,
            kind => kind.width(),
        };
        if task.columns.len() != want {
            return Err(err(format!(
                "task '{}' maps {} columns, its kind {:?} needs {want}",
                task.name,
                task.columns.len(),
                task.kind
            )));
        }
        let cols = task
            .columns
            .iter()
            .map(|c| find(c))
            .collect::<Result<Vec<_>>>()?;
        task_cols.push(cols);
    }
    let feature_cols = resolve(path, &header, &index, columns)?;
    // Headers the caller named may be shown in errors; others may not.
    let named = |c: usize| {
        columns.features.iter().flatten().any(|f| *f == header[c])
            || columns.tasks.iter().any(|t| t.columns.contains(&header[c]))
    };

    let mut x = Vec::new();
    let mut targets: Vec<Vec<f32>> = vec![Vec::new(); columns.tasks.len()];
    let mut ids: Vec<Vec<u32>> = vec![Vec::new(); columns.tasks.len()];
    let mut masks: Vec<Vec<bool>> = vec![Vec::new(); columns.tasks.len()];
    let mut rows = 0;
    for record in reader.records() {
        let record = record.map_err(|e| err(describe(&e)))?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != header.len() {
            return Err(err(format!(
                "line {line}: {} fields, but the header has {}",
                record.len(),
                header.len()
            )));
        }
        let cell = |column: usize| {
            (
                &record[column],
                Cell {
                    line,
                    column,
                    header: named(column).then_some(header[column].as_str()),
                },
            )
        };
        for &c in &feature_cols {
            let (text, at) = cell(c);
            if text.is_empty() {
                return Err(at.error(path, "empty feature cell".into()));
            }
            x.push(parse_real(text).map_err(|e| at.error(path, e))?);
        }
        for (t, (task, cols)) in columns.tasks.iter().zip(&task_cols).enumerate() {
            let empty = cols.iter().filter(|&&c| record[c].is_empty()).count();
            if empty > 0 && empty < cols.len() {
                return Err(err(format!(
                    "line {line}: task '{}' has {empty} of {} cells empty; a label is all \
                     present or all missing",
                    task.name,
                    cols.len()
                )));
            }
            let labelled = empty == 0;
            masks[t].push(labelled);
            for &c in cols {
                let (text, at) = cell(c);
                match task.kind {
                    TaskKind::Classification { classes } => {
                        let id = if labelled {
                            parse_class(text, classes).map_err(|e| at.error(path, e))?
                        } else {
                            0
                        };
                        ids[t].push(id);
                    }
                    TaskKind::Regression { .. } => targets[t].push(if labelled {
                        parse_real(text).map_err(|e| at.error(path, e))?
                    } else {
                        0.0
                    }),
                    TaskKind::Binary { .. } => targets[t].push(if labelled {
                        parse_binary(text).map_err(|e| at.error(path, e))?
                    } else {
                        0.0
                    }),
                }
            }
        }
        rows += 1;
    }

    let tasks = columns
        .tasks
        .iter()
        .zip(targets.into_iter().zip(ids).zip(masks))
        .map(|(task, ((values, ids), mask))| {
            let targets = match task.kind {
                TaskKind::Classification { classes } => Targets::Classes { classes, ids },
                TaskKind::Regression { outputs } => Targets::Real { outputs, values },
                TaskKind::Binary { labels } => Targets::Binary { labels, values },
            };
            // A task with every label present needs no mask.
            let mask = mask.contains(&false).then_some(mask);
            TaskData::new(&task.name, targets, mask)
        })
        .collect();
    let path_name = path.display().to_string();
    Dataset::new(&path_name, rows, feature_cols.len(), x, tasks)
}

/// Header name → column index; duplicate or empty names are errors since a
/// mapping could not tell them apart.
fn column_index(path: &Path, header: &[String]) -> Result<HashMap<String, usize>> {
    let mut index = HashMap::with_capacity(header.len());
    for (c, name) in header.iter().enumerate() {
        if name.is_empty() {
            return Err(data_err(
                path,
                format!("line 1, column {}: empty header name", c + 1),
            ));
        }
        if let Some(first) = index.insert(name.clone(), c) {
            return Err(data_err(
                path,
                format!(
                    "line 1: columns {} and {} have the same header name",
                    first + 1,
                    c + 1
                ),
            ));
        }
    }
    Ok(index)
}

// Parse errors say what the cell is not, never what it holds.

fn parse_real(text: &str) -> std::result::Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err(format!("the cell is {v}, expected a finite number")),
        Err(_) => Err("the cell is not a number".into()),
    }
}

fn parse_class(text: &str, classes: usize) -> std::result::Result<u32, String> {
    let id: i64 = text
        .parse()
        .map_err(|_| "the cell is not an integer class id".to_string())?;
    if id < 0 || id as u64 >= classes as u64 {
        return Err(format!("class id {id} is outside [0, {classes})"));
    }
    Ok(id as u32)
}

fn parse_binary(text: &str) -> std::result::Result<f32, String> {
    match parse_real(text)? {
        v if v == 0.0 || v == 1.0 => Ok(v),
        v => Err(format!("binary label {v}, expected 0 or 1")),
    }
}
