//! Results of conformance cases: the table and JSON lines `manytask
//! validate` prints.

use std::fmt::Write as _;

use crate::conformance::Outcome;

/// One case run on one adapter.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// Adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub adapter: String,
    /// "Vulkan", "Gl", …
    pub backend: String,
    /// The case's kernel, e.g. "elementwise::add".
    pub kernel: String,
    /// The case's shape, e.g. "n=257".
    pub case: String,
    /// The comparison, or why the case could not run.
    pub outcome: Result<Outcome, String>,
    /// Set when the adapter lacks what the case needs: neither passed nor
    /// failed.
    pub skipped: Option<String>,
    /// Submit-to-finish wall time of the kernel's own submit (host clock).
    pub gpu_ms: f64,
    /// The whole case: inputs, upload, kernel, readback, reference.
    pub total_ms: f64,
}

impl CaseResult {
    /// Ran and passed.
    pub fn passed(&self) -> bool {
        matches!(&self.outcome, Ok(o) if o.pass)
    }

    /// Ran and did not pass (a skipped case has not failed).
    pub fn failed(&self) -> bool {
        self.skipped.is_none() && !self.passed()
    }

    /// One line of JSON: {"adapter", "backend", "kernel", "case",
    /// "max_abs_err", "max_rel_err", "pass", …}.
    pub fn to_json(&self) -> String {
        let mut s = String::from("{");
        let _ = write!(
            s,
            "\"adapter\":{},\"backend\":{},\"kernel\":{},\"case\":{},",
            json_string(&self.adapter),
            json_string(&self.backend),
            json_string(&self.kernel),
            json_string(&self.case)
        );
        match (&self.outcome, &self.skipped) {
            (_, Some(why)) => {
                let _ = write!(
                    s,
                    "\"max_abs_err\":null,\"max_rel_err\":null,\"pass\":null,\"skipped\":{}",
                    json_string(why)
                );
            }
            (Ok(o), None) => {
                let _ = write!(
                    s,
                    "\"max_abs_err\":{},\"max_rel_err\":{},\"pass\":{},\"elements\":{}",
                    json_number(o.max_abs_err),
                    json_number(o.max_rel_err),
                    o.pass,
                    o.elements
                );
                if let (false, Some(w)) = (o.pass, o.worst) {
                    let _ = write!(
                        s,
                        ",\"worst_index\":{},\"got\":{},\"want\":{}",
                        w.index,
                        json_number(w.got as f64),
                        json_number(w.want as f64)
                    );
                }
            }
            (Err(e), None) => {
                let _ = write!(
                    s,
                    "\"max_abs_err\":null,\"max_rel_err\":null,\"pass\":false,\"error\":{}",
                    json_string(e)
                );
            }
        }
        let _ = write!(s, ",\"gpu_ms\":{}}}", json_number(self.gpu_ms));
        s
    }

    /// A one-line description of a failure, for test assertions.
    pub fn failure_message(&self) -> String {
        match &self.outcome {
            Ok(o) => match o.worst {
                Some(w) => format!(
                    "{} {} on {} ({}): max_abs_err {:.3e}, max_rel_err {:.3e}; worst at index {}: got {} want {}",
                    self.kernel, self.case, self.adapter, self.backend, o.max_abs_err, o.max_rel_err, w.index, w.got, w.want
                ),
                None => format!(
                    "{} {} on {} ({}): output length differs from the reference",
                    self.kernel, self.case, self.adapter, self.backend
                ),
            },
            Err(e) => format!("{} {} on {} ({}): {e}", self.kernel, self.case, self.adapter, self.backend),
        }
    }
}

/// An aligned table of results with a summary line.
pub fn render_table(results: &[CaseResult]) -> String {
    let headers = [
        "backend",
        "kernel",
        "case",
        "max abs err",
        "max rel err",
        "result",
        "kernel ms",
    ];
    let rows: Vec<[String; 7]> = results
        .iter()
        .map(|r| {
            let (abs, rel) = match &r.outcome {
                Ok(o) => (
                    format!("{:.2e}", o.max_abs_err),
                    format!("{:.2e}", o.max_rel_err),
                ),
                Err(_) => ("-".into(), "-".into()),
            };
            let verdict = match &r.outcome {
                _ if r.skipped.is_some() => "skip".to_string(),
                Ok(o) if o.pass => "pass".to_string(),
                Ok(_) => "FAIL".to_string(),
                Err(e) => format!("ERROR: {e}"),
            };
            [
                r.backend.clone(),
                r.kernel.clone(),
                r.case.clone(),
                abs,
                rel,
                verdict,
                format!("{:.3}", r.gpu_ms),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            // Numbers right-aligned, text left-aligned; the verdict is last
            // but one and may be long, so it is not padded past its column.
            if i == 3 || i == 4 || i == 6 {
                let _ = write!(out, "{cell:>w$}  ");
            } else {
                let _ = write!(out, "{cell:<w$}  ");
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    };
    line(&mut out, &headers.map(String::from));
    for row in &rows {
        line(&mut out, row);
    }
    let failed = results.iter().filter(|r| r.failed()).count();
    let skipped = results.iter().filter(|r| r.skipped.is_some()).count();
    let _ = write!(
        out,
        "{} cases: {} passed, {} failed",
        results.len(),
        results.len() - failed - skipped,
        failed
    );
    if skipped > 0 {
        let reasons: std::collections::BTreeSet<&str> = results
            .iter()
            .filter_map(|r| r.skipped.as_deref())
            .collect();
        let _ = write!(
            out,
            ", {skipped} skipped ({})",
            reasons.into_iter().collect::<Vec<_>>().join("; ")
        );
    }
    out.push('\n');
    out
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// JSON has no NaN or infinity: those become null.
fn json_number(v: f64) -> String {
    if v.is_finite() {
        format!("{v:e}")
    } else {
        "null".into()
    }
}
