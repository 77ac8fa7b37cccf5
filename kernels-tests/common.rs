//! Shared test setup: every adapter opened once for the whole binary.

use std::sync::OnceLock;

use manytask::conformance::{self, Case};
use manytask::gpu::{BackendChoice, GpuContext};

/// Backends that must be present, comma separated (CI sets "vulkan,gl" so
/// a missing driver fails the suite instead of shrinking it).
pub const REQUIRE_ENV: &str = "MANYTASK_TEST_REQUIRE";

static CONTEXTS: OnceLock<Vec<GpuContext>> = OnceLock::new();

/// Every adapter on this machine, best first.
pub fn contexts() -> &'static [GpuContext] {
    CONTEXTS.get_or_init(|| match GpuContext::all(BackendChoice::Auto) {
        Ok(all) => all,
        Err(e) => panic!("the kernel tests need at least one adapter: {e}"),
    })
}

/// Fresh contexts, one per adapter, for tests that assert on counters: the
/// shared ones see other tests' work, which runs in parallel.
pub fn private_contexts() -> Vec<GpuContext> {
    contexts()
        .iter()
        .map(|c| GpuContext::new(c.backend_choice()).expect("reopening an adapter"))
        .collect()
}

/// Runs every conformance case of `kernel` on every adapter and fails with
/// the list of all failing cases.
pub fn check_kernel(kernel: &str) {
    let cases: Vec<Case> = conformance::all_cases()
        .into_iter()
        .filter(|c| c.kernel == kernel)
        .collect();
    assert!(!cases.is_empty(), "no conformance case for {kernel}");
    let mut failures = Vec::new();
    for ctx in contexts() {
        for case in &cases {
            let result = conformance::run_case(ctx, case);
            if !result.passed() {
                failures.push(result.failure_message());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Deterministic test data in [-1, 1).
pub fn data(seed: u64, n: usize) -> Vec<f32> {
    manytask::util::rng::Rng::new(seed).uniform_vec(n, -1.0, 1.0)
}

/// Runs every conformance case `select` picks on every adapter; fails
/// listing every failing case, or when no adapter here could run any (a
/// kernel nobody runs is not "passing"). Returns how many case runs there
/// were.
pub fn check_cases(what: &str, select: impl Fn(&Case) -> bool) -> usize {
    let cases: Vec<Case> = conformance::all_cases()
        .into_iter()
        .filter(|c| select(c))
        .collect();
    assert!(!cases.is_empty(), "no conformance case for {what}");
    let mut failures = Vec::new();
    let mut ran = 0;
    for ctx in contexts() {
        for case in &cases {
            let r = conformance::run_case(ctx, case);
            if r.failed() {
                failures.push(r.failure_message());
            }
            ran += usize::from(r.skipped.is_none());
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(ran > 0, "no adapter here runs {what}");
    ran
}

/// Fills f32 input nodes of a program with uniform [-1, 1) data from
/// `seed`, in order.
pub fn randomize_inputs(
    ctx: &GpuContext,
    p: &manytask::graph::Program,
    nodes: &[manytask::graph::NodeId],
    seed: u64,
) {
    let mut rng = manytask::util::rng::Rng::new(seed);
    for &n in nodes {
        let t = p.input(n).expect("an input node");
        t.write_f32(ctx, &rng.uniform_vec(t.len(), -1.0, 1.0))
            .expect("writing an input");
    }
}

/// The objective Σ_t w_t L_t at the current parameters (a forward-only
/// step that reads the losses back).
pub fn objective(ctx: &GpuContext, p: &mut manytask::graph::Program) -> f64 {
    use manytask::graph::StepOptions;
    let r = p.step(ctx, StepOptions::EVALUATE).unwrap();
    let losses = r.losses.unwrap().wait(ctx).unwrap().losses;
    let w = p.task_weights().to_f32_vec(ctx).unwrap();
    losses
        .iter()
        .zip(&w)
        .map(|(&l, &w)| l as f64 * w as f64)
        .sum()
}

/// `samples` arena indices: every parameter in turn, a seeded random entry
/// of it each time.
pub fn sample_indices(p: &manytask::graph::Program, samples: usize) -> Vec<usize> {
    let entries = p.params().layout.entries();
    let mut rng = manytask::util::rng::Rng::new(99);
    (0..samples)
        .map(|s| {
            let e = &entries[s % entries.len()];
            e.offset + (rng.next_u64() as usize % e.len())
        })
        .collect()
}

/// Central differences of the objective at the arena `indices` against
/// the backward's gradients: (max error, max |gradient|).
pub fn finite_difference_check(
    ctx: &GpuContext,
    p: &mut manytask::graph::Program,
    indices: &[usize],
) -> (f32, f32) {
    use manytask::graph::StepOptions;
    p.step(ctx, StepOptions::GRADIENTS).unwrap();
    let grads = p.params().read_grads(ctx).unwrap();
    let fd = central_differences(ctx, p, indices);
    let (mut worst, mut top) = (0f32, 0f32);
    for (&i, d) in indices.iter().zip(fd) {
        worst = worst.max((d - grads[i]).abs());
        top = top.max(grads[i].abs());
    }
    (worst, top)
}

/// Central differences (h = 1e-2) of the objective at the arena
/// `indices`; the parameters are restored afterwards.
pub fn central_differences(
    ctx: &GpuContext,
    p: &mut manytask::graph::Program,
    indices: &[usize],
) -> Vec<f32> {
    let base = p.params().values.to_f32_vec(ctx).unwrap();
    const H: f32 = 1e-2;
    let fd = indices
        .iter()
        .map(|&i| {
            let mut v = base.clone();
            v[i] = base[i] + H;
            p.params().write_values(ctx, &v).unwrap();
            let up = objective(ctx, p);
            v[i] = base[i] - H;
            p.params().write_values(ctx, &v).unwrap();
            let down = objective(ctx, p);
            ((up - down) / (2.0 * H as f64)) as f32
        })
        .collect();
    p.params().write_values(ctx, &base).unwrap();
    fd
}

/// Runs the finite-difference check and asserts its bound: f32 losses
/// over 2h = 0.02 err by ~1e-5, truncation h²·|f'''| by ~1e-4.
pub fn assert_gradients_match(
    ctx: &GpuContext,
    p: &mut manytask::graph::Program,
    indices: &[usize],
    what: &str,
) {
    let (worst, top) = finite_difference_check(ctx, p, indices);
    assert!(top > 1e-3, "{what}: degenerate gradients");
    assert!(
        worst < 2e-3 * top.max(0.1) + 1e-4,
        "{what} on {}: max error {worst} (max |g| {top})",
        ctx.describe()
    );
}

/// max |a − b| over elements.
pub fn max_err(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Plain SGD (no momentum, no weight decay).
pub fn sgd(lr: f32) -> manytask::graph::Optimizer {
    manytask::graph::Optimizer::Sgd(manytask::types::Sgd {
        lr,
        momentum: 0.0,
        weight_decay: 0.0,
    })
}

/// A linear per-task output layer `name` (2 outputs per task) on the
/// `tasks` blocks of `h` (each `inputs` wide), MSE losses, and the targets
/// input it adds.
pub fn mse_heads(
    g: &mut manytask::graph::Graph,
    name: &str,
    h: manytask::graph::NodeId,
    tasks: usize,
    inputs: usize,
) -> manytask::graph::NodeId {
    use manytask::graph::{TaskBlock, TaskLoss};
    let rows = g.shape(h)[0];
    let blocks = vec![TaskBlock { inputs, outputs: 2 }; tasks];
    let act = manytask::types::Activation::Identity;
    let logits = g.task_dense(name, h, &blocks, act).unwrap();
    let targets = g.input("targets", &[rows, 2 * tasks], manytask::types::DType::F32);
    let losses = vec![
        TaskLoss {
            kind: manytask::types::LossKind::MeanSquaredError,
            // Over 2 outputs the mean is the half sum, as before reductions.
            reduction: manytask::types::Reduction::Mean,
            width: 2,
            masked: false
        };
        tasks
    ];
    g.losses("losses", logits, &losses, None, Some(targets), None)
        .unwrap();
    targets
}

/// The `manytask` binary under test, with the test run's
/// `MANYTASK_BACKEND` removed (each test names its own backend or takes
/// `auto`).
pub fn manytask() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_manytask"));
    cmd.env_remove("MANYTASK_BACKEND")
        .env("XDG_RUNTIME_DIR", std::env::temp_dir());
    cmd
}

/// A directory `manytask-{name}-{pid}` under the system temp dir, created.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("manytask-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// How long a CLI run in a test may take before it counts as a hang.
pub const RUN_SECS: u64 = 300;

/// Runs `cmd` to its end under a deadline, its output drained on
/// threads (a full pipe cannot stall it); a run past the deadline is
/// killed and fails the test (a hang fails the test, not the CI run).
pub fn run_timed(cmd: &mut std::process::Command, seconds: u64) -> std::process::Output {
    use std::io::Read as _;
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} ran past {seconds} s (a hang?)");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Runs `cmd` under [`RUN_SECS`], asserts it succeeded, and returns
/// (stdout, stderr).
pub fn run_ok(cmd: &mut std::process::Command) -> (String, String) {
    let out = run_timed(cmd, RUN_SECS);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "{cmd:?}\n{stdout}{stderr}");
    (stdout, stderr)
}
