//! `manytask bench`: the adapter's empirical roofline and every kernel's
//! timing against it, as an aligned table or JSON lines.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use crate::bench::compare::parse_rows;
use crate::bench::{run_suite, BenchOptions, BenchRow};
use crate::cli::{backend_from, open_contexts, BackendArg};
use crate::error::Result;

/// `manytask bench`'s flags.
#[derive(Args, Debug, Default)]
pub struct BenchArgs {
    /// Adapter(s) to run on: auto, vulkan, metal, dx12, gl, or all [default: $MANYTASK_BACKEND or auto].
    #[arg(long)]
    pub backend: Option<BackendArg>,
    /// Print one JSON object per measurement and line: kernel, variant, layout, m, n, k, dtype, median_ms, gflops, gbps, roofline_pct (null where a field does not apply).
    #[arg(long)]
    pub json: bool,
    /// Square GEMM sizes, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "256,512,1024")]
    pub sizes: Vec<usize>,
    /// Timed runs per measurement, at most (the median is reported; a
    /// measurement stops adding runs after ~3 s).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Only measurements whose kernel name contains this (e.g. gemm, dense, heads, loss).
    #[arg(long)]
    pub filter: Option<String>,
    /// Small sizes and 3 runs: a smoke test of the whole table in seconds.
    #[arg(long)]
    pub quick: bool,
    /// Compare two `bench --json` outputs (A B): per-row B/A time ratios, rows matched by kernel, variant, layout, shape and dtype; unmatched rows listed. Runs nothing on an adapter.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    pub compare: Option<Vec<std::path::PathBuf>>,
}

const HEADER: &str = "kernel          variant     layout  m×n×k             dtype   median ms     GFLOP/s      GB/s  % roofline  dispatches";

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

/// One aligned table row of a bench measurement (units in the cells).
pub fn table_line(r: &BenchRow) -> String {
    let shape = match (r.m, r.n, r.k) {
        (Some(m), Some(n), Some(k)) => format!("{m}×{n}×{k}"),
        _ => "-".into(),
    };
    format!(
        "{:<15} {:<11} {:<7} {:<17} {:<5} {:>11.3} {:>11} {:>9} {:>11} {:>11}",
        r.kernel,
        r.variant.as_deref().unwrap_or("-"),
        r.layout.as_deref().unwrap_or("-"),
        shape,
        r.dtype.unwrap_or("-"),
        r.median_ms,
        fmt_opt(r.gflops, 2),
        fmt_opt(r.gbps, 2),
        fmt_opt(r.roofline_pct, 1),
        r.dispatches
    )
}

/// `--compare A B`: prints the comparison table.
fn compare(files: &[std::path::PathBuf]) -> Result<ExitCode> {
    let mut rows = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let text = std::fs::read_to_string(f).map_err(|e| crate::Error::Data {
            file: name.clone(),
            detail: format!("cannot read it: {e}"),
        })?;
        rows.push(parse_rows(&name, &text)?);
    }
    let [a, b] = &rows[..] else {
        return Err(crate::Error::InvalidInput {
            op: "bench --compare",
            detail: "takes two files: A B".into(),
        });
    };
    println!("A: {}", files[0].display());
    println!("B: {}", files[1].display());
    print!("{}", crate::bench::compare::compare(a, b));
    Ok(ExitCode::SUCCESS)
}

/// Measures the roofline and every kernel on the chosen adapters; prints
/// a table or JSON lines.
pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    if let Some(files) = &args.compare {
        return compare(files);
    }
    let mut opts = BenchOptions {
        sizes: args.sizes.clone(),
        reps: args.reps.max(1),
        filter: args.filter.clone(),
        ..BenchOptions::default()
    };
    if args.quick {
        opts.sizes = vec![64, 128];
        opts.reps = 3;
        opts.budget_s = 1.0;
        opts.small = true;
    }
    let contexts = open_contexts(backend_from(args.backend)?)?;
    let mut out = std::io::stdout().lock();
    for ctx in &contexts {
        if !args.json {
            let _ = writeln!(out, "adapter: {}", ctx.describe());
            let _ = writeln!(
                out,
                "wall-clock medians of submit + wait; on a CPU adapter these are CPU times (compare rows as ratios)"
            );
            let _ = writeln!(out, "{HEADER}");
        }
        run_suite(ctx, &opts, |row| {
            let line = if args.json {
                row.to_json()
            } else {
                table_line(row)
            };
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        })?;
        if !args.json {
            let _ = writeln!(out);
        }
    }
    Ok(ExitCode::SUCCESS)
}
