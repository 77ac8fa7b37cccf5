//! What `train` shows while it runs: a progress bar on a terminal, plain
//! periodic lines otherwise (CI logs stay readable), or nothing with
//! `--quiet`. An observer of the trainer's events.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::runlog::json_list;
use crate::error::Result;
use crate::train::{
    CheckpointEvent, CheckpointKind, EvaluationEvent, Observer, StartEvent, StepEvent,
};

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

/// Progress of one training run.
pub struct Progress {
    mode: Mode,
    bar: Option<ProgressBar>,
    /// The mean task loss of the last read step.
    mean_loss: Option<f32>,
}

impl Progress {
    /// Progress shown in `mode`; the bar appears when training starts.
    pub fn new(mode: Mode) -> Progress {
        Progress {
            mode,
            bar: None,
            mean_loss: None,
        }
    }

    /// Prints a line above the bar, or plainly (not in `Quiet`).
    fn say(&self, line: &str) {
        match (&self.bar, self.mode) {
            (Some(bar), _) => bar.println(line),
            (None, Mode::Quiet) => {}
            (None, _) => println!("{line}"),
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

impl Observer for Progress {
    fn on_start(&mut self, e: &StartEvent) -> Result<()> {
        let resumed = if e.start_step > 0 {
            format!(", from step {}", e.start_step)
        } else {
            String::new()
        };
        println!(
            "training: {} steps of {} rows ({} per epoch){resumed}",
            e.total_steps, e.batch_rows, e.steps_per_epoch
        );
        if self.mode == Mode::Bar {
            // The bar shares stdout with the summary, so it draws there.
            let bar = ProgressBar::with_draw_target(
                Some(e.total_steps as u64),
                ProgressDrawTarget::stdout(),
            );
            let style =
                ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_position(e.start_step as u64);
            bar.enable_steady_tick(Duration::from_millis(250));
            self.bar = Some(bar);
        }
        Ok(())
    }

    fn on_step(&mut self, e: &StepEvent) -> Result<()> {
        // Steps/s over the whole run (indicatif's own estimate weighs the
        // first, compiling steps).
        let rate = e.step as f64 / e.elapsed.as_secs_f64().max(1e-9);
        if let Some(losses) = e.losses {
            self.mean_loss = Some(losses.iter().sum::<f32>() / losses.len().max(1) as f32);
            if self.mode == Mode::Lines && e.logged {
                println!(
                    "step {:>6}/{}  losses {}  weights {}  lr {:.3e}  {rate:.1} steps/s",
                    e.step,
                    e.total_steps,
                    json_list(losses),
                    json_list(e.weights),
                    e.lr
                );
            }
        }
        if let Some(bar) = &self.bar {
            let loss = match self.mean_loss {
                Some(l) => format!("{l:.4}"),
                None => "-".into(),
            };
            bar.set_message(format!("mean loss {loss}  {rate:.1} steps/s"));
            bar.set_position(e.step as u64);
        }
        Ok(())
    }

    fn on_evaluation(&mut self, e: &EvaluationEvent) -> Result<()> {
        if self.mode != Mode::Lines {
            return Ok(());
        }
        let loss = match e.metrics.loss() {
            Some(l) => format!("{l:.4}"),
            None => "-".into(),
        };
        let mut line = format!(
            "epoch {:>4}{}  step {:>6}  validation loss {loss}",
            e.epoch,
            if e.complete { "" } else { " (partial)" },
            e.step
        );
        if let Some(w) = &e.watched {
            if w.metric != "loss" {
                line.push_str(&format!("  {} {:.4}", w.metric, w.value));
            }
            if w.verdict.improved {
                line.push_str("  (best)");
            }
        }
        self.say(&line);
        Ok(())
    }

    fn on_checkpoint(&mut self, e: &CheckpointEvent) -> Result<()> {
        let why = match e.kind {
            CheckpointKind::Best => "best",
            CheckpointKind::Periodic => "periodic",
        };
        self.say(&format!(
            "checkpoint ({why}, epoch {}, step {}): {}",
            e.epoch,
            e.step,
            e.path.display()
        ));
        Ok(())
    }
}
