//! `manytask bench --compare a.jsonl b.jsonl`: per-row ratios of two
//! `bench --json` outputs (two adapters, drivers, machines or commits).
//! GPU-free: it only reads the files.
//!
//! Rows are matched by kernel, variant, layout, m, n, k and dtype; a key
//! that occurs several times in a file (`--backend all` writes one table
//! per adapter) is matched occurrence by occurrence, in file order. Rows
//! only one file has are listed, not dropped silently.

use std::fmt::Write as _;

use serde::Deserialize;

use crate::error::{Error, Result};

/// One row of `bench --json` (fields the comparison reads).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct JsonRow {
    /// Kernel or workload.
    pub kernel: String,
    /// GEMM variant or workload variant.
    pub variant: Option<String>,
    /// GEMM layout.
    pub layout: Option<String>,
    /// Rows.
    pub m: Option<u64>,
    /// Columns.
    pub n: Option<u64>,
    /// Reduced dimension.
    pub k: Option<u64>,
    /// Storage type.
    pub dtype: Option<String>,
    /// Median wall time, ms.
    pub median_ms: f64,
}

impl JsonRow {
    /// The matching key as one readable label, e.g.
    /// `gemm subgroup NN 512×512×512 f32`.
    pub fn key(&self) -> String {
        let mut s = self.kernel.clone();
        for part in [&self.variant, &self.layout].into_iter().flatten() {
            let _ = write!(s, " {part}");
        }
        if let (Some(m), Some(n), Some(k)) = (self.m, self.n, self.k) {
            let _ = write!(s, " {m}×{n}×{k}");
        }
        if let Some(d) = &self.dtype {
            let _ = write!(s, " {d}");
        }
        s
    }
}

/// Parses `bench --json` output: one object per non-empty line (lines
/// that are not JSON objects, such as a stray log line, are an error
/// naming the line).
pub fn parse_rows(file: &str, text: &str) -> Result<Vec<JsonRow>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str::<JsonRow>(line).map_err(|e| Error::Data {
                file: file.to_string(),
                detail: format!("line {}: not a `bench --json` row ({e})", i + 1),
            })
        })
        .collect()
}

/// A matched row: its key, both medians and B's time over A's.
#[derive(Clone, Debug, PartialEq)]
pub struct Matched {
    /// The row's key (`JsonRow::key`), with `#2`… for repeats.
    pub key: String,
    /// A's median, ms.
    pub a_ms: f64,
    /// B's median, ms.
    pub b_ms: f64,
}

impl Matched {
    /// B's time over A's (below 1: B is faster).
    pub fn ratio(&self) -> f64 {
        self.b_ms / self.a_ms
    }
}

/// Both files' rows, matched.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Comparison {
    /// Rows in both, in A's order.
    pub matched: Vec<Matched>,
    /// Keys only A has.
    pub only_a: Vec<String>,
    /// Keys only B has.
    pub only_b: Vec<String>,
}

/// Keys with their occurrence number (`key`, `key #2`, …).
fn numbered(rows: &[JsonRow]) -> Vec<(String, f64)> {
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    rows.iter()
        .map(|r| {
            let key = r.key();
            let count = seen.entry(key.clone()).or_insert(0);
            *count += 1;
            let key = if *count > 1 {
                format!("{key} #{count}")
            } else {
                key
            };
            (key, r.median_ms)
        })
        .collect()
}

/// Matches A's rows with B's.
pub fn compare(a: &[JsonRow], b: &[JsonRow]) -> Comparison {
    let (a, b) = (numbered(a), numbered(b));
    let mut out = Comparison::default();
    for (key, a_ms) in &a {
        match b.iter().find(|(k, _)| k == key) {
            Some((_, b_ms)) => out.matched.push(Matched {
                key: key.clone(),
                a_ms: *a_ms,
                b_ms: *b_ms,
            }),
            None => out.only_a.push(key.clone()),
        }
    }
    out.only_b = b
        .iter()
        .filter(|(k, _)| !a.iter().any(|(ka, _)| ka == k))
        .map(|(k, _)| k.clone())
        .collect();
    out
}

impl std::fmt::Display for Comparison {
    /// An aligned table (key, A ms, B ms, B/A), then the unmatched rows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = self
            .matched
            .iter()
            .map(|m| m.key.chars().count())
            .max()
            .unwrap_or(3)
            .max(3);
        writeln!(
            f,
            "{:<width$}  {:>11}  {:>11}  {:>7}",
            "row", "A ms", "B ms", "B/A"
        )?;
        for m in &self.matched {
            writeln!(
                f,
                "{:<width$}  {:>11.3}  {:>11.3}  {:>7.3}",
                m.key,
                m.a_ms,
                m.b_ms,
                m.ratio()
            )?;
        }
        writeln!(
            f,
            "{} row(s) matched; B/A < 1: B is faster (wall-clock medians; on CPU adapters, CPU times)",
            self.matched.len()
        )?;
        for (name, keys) in [("A", &self.only_a), ("B", &self.only_b)] {
            if !keys.is_empty() {
                writeln!(f, "only in {name} ({}):", keys.len())?;
                for k in keys {
                    writeln!(f, "  {k}")?;
                }
            }
        }
        Ok(())
    }
}
