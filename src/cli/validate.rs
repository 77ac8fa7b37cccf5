//! `manytask validate`: the conformance cases on this machine's adapters.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Args;

use crate::cli::{backend_from, open_contexts, BackendArg};
use crate::conformance::{self, report::render_table, Case, CaseResult};
use crate::error::Result;
use crate::gpu::GpuContext;

/// `manytask validate`'s flags.
#[derive(Args, Debug, Default)]
pub struct ValidateArgs {
    /// Adapter(s) to run on: auto, vulkan, metal, dx12, gl, or all [default: $MANYTASK_BACKEND or auto].
    #[arg(long)]
    pub backend: Option<BackendArg>,
    /// Print one JSON object per case and line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Run only cases whose "kernel case" text contains this.
    #[arg(long)]
    pub filter: Option<String>,
    /// List the cases and exit.
    #[arg(long)]
    pub list: bool,
}

/// Runs the conformance cases on the chosen adapters; exit 0 when all
/// pass, 1 when one fails, 2 when nothing could run.
pub fn run(args: &ValidateArgs) -> Result<ExitCode> {
    let cases: Vec<Case> = conformance::all_cases()
        .into_iter()
        .filter(|c| match &args.filter {
            Some(f) => format!("{} {}", c.kernel, c.case).contains(f.as_str()),
            None => true,
        })
        .collect();
    if args.list {
        for c in &cases {
            println!("{} {}", c.kernel, c.case);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if cases.is_empty() {
        eprintln!(
            "no case matches --filter {:?}; see `manytask validate --list`",
            args.filter
        );
        return Ok(ExitCode::from(2));
    }
    let contexts = open_contexts(backend_from(args.backend)?)?;
    let mut stdout = std::io::stdout().lock();
    let failures = validate(&contexts, &cases, args.json, &mut stdout);
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs `cases` on every context, writing the table (or JSON lines) to
/// `out`. Returns the number of failed cases: the exit status is non-zero
/// exactly when this is.
pub fn validate(
    contexts: &[GpuContext],
    cases: &[Case],
    json: bool,
    out: &mut impl Write,
) -> usize {
    let progress = !json && std::io::stderr().is_terminal();
    let mut failures = 0;
    for ctx in contexts {
        if !json {
            let _ = writeln!(out, "adapter: {}", ctx.describe());
        }
        let mut results: Vec<CaseResult> = Vec::with_capacity(cases.len());
        for (i, case) in cases.iter().enumerate() {
            if progress {
                eprint!(
                    "\r\x1b[2K[{}/{}] {} {}",
                    i + 1,
                    cases.len(),
                    case.kernel,
                    case.case
                );
            }
            let result = conformance::run_case(ctx, case);
            if json {
                let _ = writeln!(out, "{}", result.to_json());
            }
            results.push(result);
        }
        if progress {
            eprint!("\r\x1b[2K");
        }
        failures += results.iter().filter(|r| r.failed()).count();
        if !json {
            let _ = write!(out, "{}", render_table(&results));
            for r in results.iter().filter(|r| r.failed()) {
                let _ = writeln!(out, "FAILED: {}", r.failure_message());
            }
            let _ = writeln!(out);
        }
    }
    failures
}
