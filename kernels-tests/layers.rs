//! The module layers of lib.rs, checked on the source: every
//! `crate::<module>` path a module names (in `use` lines and inline) must
//! be one its layer may use. A new arrow upwards fails here with the file,
//! the line and the rule.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Top-level module → the top-level modules it may name (besides itself).
fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    const BOTTOM: &[&str] = &["types", "error", "util"];
    let mut rules: BTreeMap<&'static str, &'static [&'static str]> = BTreeMap::new();
    // GPU-free, at the bottom.
    rules.insert("types", &[]);
    rules.insert("error", &["types"]);
    rules.insert("util", &["types", "error"]);
    // Beside the stack, no GPU code.
    rules.insert("reference", BOTTOM);
    rules.insert("data", BOTTOM);
    // `weighting` for the task-weighting method a config names (its enum
    // is host-side; the GPU half of weighting is never reached from here).
    rules.insert("config", &["types", "error", "util", "data", "weighting"]);
    // The stack, each layer over the ones below.
    rules.insert("gpu", BOTTOM);
    // `reference` for the small geometry structs a launcher shares with
    // its oracle (Block, TaskProblem, TrunkLayer): one definition, no
    // launcher code flows the other way.
    rules.insert("kernels", &["types", "error", "util", "gpu", "reference"]);
    rules.insert("graph", &["types", "error", "util", "gpu", "kernels"]);
    rules.insert(
        "arch",
        &["types", "error", "util", "gpu", "kernels", "graph"],
    );
    rules.insert(
        "weighting",
        &["types", "error", "util", "gpu", "kernels", "graph"],
    );
    // `data` (GPU-free, beside the stack) for its safetensors error text.
    rules.insert(
        "checkpoint",
        &["types", "error", "util", "data", "gpu", "graph", "arch"],
    );
    rules.insert(
        "train",
        &[
            "types",
            "error",
            "util",
            "gpu",
            "kernels",
            "graph",
            "arch",
            "weighting",
            "data",
            "config",
            "checkpoint",
        ],
    );
    // Pairs kernels with references; measures kernels.
    rules.insert(
        "conformance",
        &["types", "error", "util", "gpu", "kernels", "reference"],
    );
    rules.insert(
        "bench",
        &[
            "types",
            "error",
            "util",
            "gpu",
            "kernels",
            "reference",
            "graph",
            "arch",
            "weighting",
            "data",
            "conformance",
        ],
    );
    rules
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src/ is readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under src/ belongs to (`None`: lib.rs,
/// main.rs, prelude — the crate root may name everything).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    match name {
        "lib" | "main" | "prelude" => None,
        _ => Some(name.to_string()),
    }
}

/// Every `crate::<name>` in a line, outside `//` comments.
fn crate_paths(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    code.match_indices("crate::")
        .filter(|(i, _)| {
            // `manytask::crate::` never occurs; skip `$crate::` in macros.
            !code[..*i].ends_with('$')
        })
        .map(|(i, m)| {
            code[i + m.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rules = allowed();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let Some(may_use) = rules.get(module.as_str()) else {
            // `cli` (the binary's verbs) may use everything; any other
            // module must be placed in the table.
            if module != "cli" {
                broken.push(format!(
                    "{}: module '{module}' has no layer rule",
                    file.display()
                ));
            }
            continue;
        };
        let text = fs::read_to_string(file).expect("source files are UTF-8");
        for (n, line) in text.lines().enumerate() {
            for used in crate_paths(line) {
                checked += 1;
                if used == module || used.is_empty() || may_use.contains(&used.as_str()) {
                    continue;
                }
                // Re-exports at the crate root (`crate::Error`,
                // `crate::Result`) are the error module.
                if (used == "Error" || used == "Result")
                    && (may_use.contains(&"error") || module == "error")
                {
                    continue;
                }
                broken.push(format!(
                    "{}:{}: '{module}' uses crate::{used} (may use {may_use:?})",
                    file.display(),
                    n + 1
                ));
            }
        }
    }
    assert!(checked > 100, "only {checked} paths found: is src/ there?");
    assert!(
        broken.is_empty(),
        "layer rules broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_checker_sees_an_upward_arrow() {
    // A data module naming the graph must be caught.
    let paths = crate_paths("use crate::graph::Program; // crate::cli in a comment");
    assert_eq!(paths, vec!["graph".to_string()]);
    assert!(!allowed()["data"].contains(&"graph"));
}
