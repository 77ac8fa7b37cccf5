//! Where a training step's time goes, op by op: one step of each MTL
//! architecture on the MTL-MLP shapes (B = 256 × 512 inputs, 8 tasks,
//! heads 256 → 10; see `bench::workloads::ArchWorkload`), profiled with a
//! GPU timestamp around every dispatch (`Program::profile_step`).
//!
//!   cargo run --release --example profile_step             # every architecture
//!   cargo run --release --example profile_step -- sluice   # names containing "sluice"
//!   cargo run --release --example profile_step -- hard 5   # the 5 costliest kernels
//!
//! Needs timestamp queries (Vulkan lavapipe has them; GL does not). On
//! lavapipe the "GPU" is the CPU: these are CPU times per dispatch.

use manytask::bench::workloads::ArchWorkload;
use manytask::gpu::GpuContext;
use manytask::graph::StepOptions;

fn main() -> manytask::Result<()> {
    let ctx = GpuContext::from_env()?;
    let mut args = std::env::args().skip(1);
    let filter = args.next().unwrap_or_default();
    let top: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(12);
    println!("adapter: {}", ctx.describe());
    for (name, sharing) in ArchWorkload::mtl_mlp_sharings() {
        if !name.contains(&filter) {
            continue;
        }
        let mut w = ArchWorkload::mtl_mlp(&ctx, sharing)?;
        // A warm-up step builds every pipeline first.
        w.program.step(&ctx, StepOptions::TRAIN)?;
        let (report, profile) = w.program.profile_step(&ctx, StepOptions::TRAIN)?;
        println!(
            "\n{name}: {} dispatches, {} submit(s); {:.1} ms summed over dispatches",
            report.dispatches,
            report.submits,
            profile.total_ms()
        );
        // The costliest kernels, then the rest as one line.
        let table = profile.table();
        let lines: Vec<&str> = table.lines().collect();
        let body = &lines[1..lines.len() - 1];
        println!("{}", lines[0]);
        for line in body.iter().take(top) {
            println!("{line}");
        }
        if body.len() > top {
            let rest: f64 = profile.by_label()[top..].iter().map(|t| t.ms).sum();
            println!(
                "{rest:>10.3}        {:>6}  (the other kernels)",
                body.len() - top
            );
        }
        println!("{}", lines[lines.len() - 1]);
    }
    Ok(())
}
