//! What `train` shows while it runs: a progress bar on a terminal, plain
//! periodic lines otherwise (CI logs stay readable), or nothing with
//! `--quiet`.

use std::cell::Cell;
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::runlog::json_list;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A bar redrawn in place: steps, mean loss, steps/s, ETA.
    Bar,
    /// One line per logged step (`--every`), as a log file wants them.
    Lines,
    /// Nothing while training.
    Quiet,
}

impl Mode {
    /// `Quiet` with `--quiet`; otherwise a bar when stdout is a terminal,
    /// plain lines when it is a pipe or a file.
    pub fn detect(quiet: bool) -> Mode {
        if quiet {
            Mode::Quiet
        } else if std::io::stdout().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

/// Progress of one training run of `total` steps.
pub struct Progress {
    mode: Mode,
    total: usize,
    bar: Option<ProgressBar>,
    start: Instant,
    /// The mean task loss of the last read step.
    mean_loss: Cell<Option<f32>>,
}

impl Progress {
    /// Starts showing progress (the bar appears at once in `Mode::Bar`).
    pub fn new(mode: Mode, total: usize) -> Progress {
        let bar = (mode == Mode::Bar).then(|| {
            // The bar shares stdout with the summary, so it draws there.
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stdout());
            let style =
                ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress {
            mode,
            total,
            bar,
            start: Instant::now(),
            mean_loss: Cell::new(None),
        }
    }

    /// `step` steps are done.
    pub fn advance(&self, step: usize) {
        if let Some(bar) = &self.bar {
            // Steps/s over the whole run, as the plain lines report it
            // (indicatif's own estimate weighs the first, compiling steps).
            let rate = step as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
            let loss = match self.mean_loss.get() {
                Some(l) => format!("{l:.4}"),
                None => "-".into(),
            };
            bar.set_message(format!("mean loss {loss}  {rate:.1} steps/s"));
            bar.set_position(step as u64);
        }
    }

    /// The losses and weights read after `step` steps; `line` marks a
    /// logged step (`--every`), which `Mode::Lines` prints.
    pub fn losses(&self, step: usize, losses: &[f32], weights: &[f32], rate: f64, line: bool) {
        match self.mode {
            Mode::Bar => {
                let mean = losses.iter().sum::<f32>() / losses.len().max(1) as f32;
                self.mean_loss.set(Some(mean));
            }
            Mode::Lines if line => println!(
                "step {step:>6}/{}  losses {}  weights {}  {rate:.1} steps/s",
                self.total,
                json_list(losses),
                json_list(weights)
            ),
            Mode::Lines | Mode::Quiet => {}
        }
    }

    /// Removes the bar (the summary follows on a clean line).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    /// An error ends the run mid-bar: clear it so the message starts a line.
    fn drop(&mut self) {
        self.finish();
    }
}
