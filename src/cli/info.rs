//! `manytask info`: what every adapter is and offers.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Args;

use crate::cli::{backend_from, open_contexts, BackendArg};
use crate::error::Result;
use crate::gpu::{BackendChoice, GpuContext};

/// `manytask info`'s flags.
#[derive(Args, Debug, Default)]
pub struct InfoArgs {
    /// Which adapters to list: auto (the best one), vulkan, metal, dx12, gl, or all [default: all].
    #[arg(long)]
    pub backend: Option<BackendArg>,
}

/// Prints every chosen adapter's name, backend, driver, features and limits.
pub fn run(args: &InfoArgs) -> Result<ExitCode> {
    let backend = match args.backend {
        Some(b) => b,
        None if std::env::var_os(crate::gpu::BACKEND_ENV).is_some() => backend_from(None)?,
        None => BackendArg::All,
    };
    let contexts = open_contexts(backend)?;
    // Which one `--backend auto` would pick, to mark it.
    let best = GpuContext::new(BackendChoice::Auto)
        .ok()
        .map(|c| c.describe());
    for (i, ctx) in contexts.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let marker = if best.as_deref() == Some(&ctx.describe()) {
            "  <- default"
        } else {
            ""
        };
        print!("{}", describe(ctx, i, marker));
    }
    Ok(ExitCode::SUCCESS)
}

/// The block `info` prints for one adapter.
pub fn describe(ctx: &GpuContext, index: usize, marker: &str) -> String {
    let info = ctx.info();
    let g = ctx.granted();
    let l = ctx.limits();
    let mut s = String::new();
    let _ = writeln!(s, "adapter {index}: {}{marker}", info.name);
    let rows: Vec<(&str, String)> = vec![
        ("backend", format!("{:?}", info.backend)),
        ("device type", format!("{:?}", info.device_type)),
        (
            "driver",
            format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
        ),
        (
            "vendor / device id",
            format!("{:#06x} / {:#06x}", info.vendor, info.device),
        ),
        ("shader f16", yes_no(g.shader_f16)),
        (
            "subgroups",
            if g.subgroup {
                format!("yes, size {}..{}", g.subgroup_min_size, g.subgroup_max_size)
            } else {
                "no".into()
            },
        ),
        ("subgroup barrier", yes_no(g.subgroup_barrier)),
        ("timestamp queries", yes_no(g.timestamp_query)),
        (
            "max storage binding",
            bytes(l.max_storage_buffer_binding_size),
        ),
        ("max buffer", bytes(l.max_buffer_size)),
        (
            "storage buffers / stage",
            l.max_storage_buffers_per_shader_stage.to_string(),
        ),
        (
            "workgroup storage",
            bytes(l.max_compute_workgroup_storage_size as u64),
        ),
        (
            "invocations / workgroup",
            l.max_compute_invocations_per_workgroup.to_string(),
        ),
        (
            "workgroup size x,y,z",
            format!(
                "{}, {}, {}",
                l.max_compute_workgroup_size_x,
                l.max_compute_workgroup_size_y,
                l.max_compute_workgroup_size_z
            ),
        ),
        (
            "workgroups / dimension",
            l.max_compute_workgroups_per_dimension.to_string(),
        ),
        ("uniform binding", bytes(l.max_uniform_buffer_binding_size)),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        let _ = writeln!(s, "  {k:<width$}  {v}");
    }
    s
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// 134217728 -> "128 MiB".
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
