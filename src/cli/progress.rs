//! What `train` shows while it runs: a progress bar on a terminal, plain
//! periodic lines otherwise (CI logs stay readable), or nothing with
//! `--quiet`. An observer of the trainer's events.
//!
//! Lines show the step, the epoch (`epoch 3/10`), the losses (each task's
//! with up to 4 tasks, else their mean, min and max and the worst task by
//! name), steps/s and an ETA; numbers have 4 significant digits. Each
//! validation line adds how long that epoch took. While the GEMM
//! autotuner times a new shape, a one-line note says so.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::Result;
use crate::kernels::autotune;
use crate::train::{
    CheckpointEvent, CheckpointKind, EpochEvent, EvaluationEvent, Observer, StartEvent, StepEvent,
};

/// Up to this many tasks, lines list every task's value; above, a summary.
const LISTED_TASKS: usize = 4;

/// `x` with 4 significant digits: fixed notation between 1e-3 and 1e5,
/// scientific outside.
pub fn sig4(x: f32) -> String {
    let a = x.abs();
    if !x.is_finite() {
        format!("{x}")
    } else if a == 0.0 {
        "0".into()
    } else if (1e-3..1e5).contains(&a) {
        let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
        format!("{x:.decimals$}")
    } else {
        format!("{x:.3e}")
    }
}

/// `values` of the tasks `names`: each listed (`a=0.1234 b=5.000`) with
/// up to `LISTED_TASKS` (4) tasks, else `mean m  min m  max m (task)`.
pub fn task_summary(names: &[String], values: &[f32]) -> String {
    if values.len() <= LISTED_TASKS {
        let cells: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let name = names.get(i).map_or("?", |n| n.as_str());
                format!("{name}={}", sig4(*v))
            })
            .collect();
        return cells.join(" ");
    }
    let mean = values.iter().sum::<f32>() / values.len() as f32;
    let min = values.iter().copied().fold(f32::INFINITY, f32::min);
    // The worst task: the largest value (a NaN counts as the worst).
    let worst = (0..values.len()).fold(0, |w, i| {
        if values[i].is_nan() || (!values[w].is_nan() && values[i] > values[w]) {
            i
        } else {
            w
        }
    });
    let worst_name = names.get(worst).map_or("?", |n| n.as_str());
    format!(
        "mean {}  min {}  max {} ({worst_name})",
        sig4(mean),
        sig4(min),
        sig4(values[worst])
    )
}

/// A duration as `1h02m`, `3m07s` or `12s`.
pub fn short_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

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
    /// The run's epochs (its last step's epoch), from the start event.
    epochs: usize,
    /// Batches per epoch.
    steps_per_epoch: usize,
    /// The first step of this run (a resumed run starts later).
    start_step: usize,
    /// Wall time at the end of the last epoch (the run's start before).
    last_epoch_end: Duration,
    /// How long the last complete epoch took.
    last_epoch: Option<Duration>,
}

impl Progress {
    /// Progress shown in `mode`; the bar appears when training starts.
    pub fn new(mode: Mode) -> Progress {
        Progress {
            mode,
            bar: None,
            mean_loss: None,
            epochs: 0,
            steps_per_epoch: 0,
            start_step: 0,
            last_epoch_end: Duration::ZERO,
            last_epoch: None,
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
        autotune::set_tuning_observer(None);
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
        self.steps_per_epoch = e.steps_per_epoch.max(1);
        self.epochs = e.total_steps.div_ceil(self.steps_per_epoch);
        self.start_step = e.start_step;
        println!(
            "training: {} steps of {} rows ({} per epoch), {} epoch(s){resumed}",
            e.total_steps, e.batch_rows, e.steps_per_epoch, self.epochs
        );
        if self.mode == Mode::Bar {
            // The bar shares stdout with the summary, so it draws there.
            let bar = ProgressBar::with_draw_target(
                Some(e.total_steps as u64),
                ProgressDrawTarget::stdout(),
            );
            let style = ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_position(e.start_step as u64);
            bar.enable_steady_tick(Duration::from_millis(250));
            self.bar = Some(bar);
        }
        if self.mode != Mode::Quiet {
            // The first steps on new shapes time GEMM kernels (seconds to
            // minutes on a CPU adapter): say so rather than look stuck.
            let bar = self.bar.clone();
            autotune::set_tuning_observer(Some(Box::new(move |notice| match &bar {
                Some(bar) => bar.println(notice.to_string()),
                None => println!("{notice}"),
            })));
        }
        Ok(())
    }

    fn on_step(&mut self, e: &StepEvent) -> Result<()> {
        // Steps/s over this run (indicatif's own estimate weighs the
        // first, compiling steps alike).
        let done = e.step.saturating_sub(self.start_step);
        let rate = done as f64 / e.elapsed.as_secs_f64().max(1e-9);
        let eta = short_duration(e.total_steps.saturating_sub(e.step) as f64 / rate.max(1e-9));
        let epoch = format!("epoch {}/{}", e.epoch, self.epochs.max(e.epoch));
        if let Some(losses) = e.losses {
            self.mean_loss = Some(losses.iter().sum::<f32>() / losses.len().max(1) as f32);
            if self.mode == Mode::Lines && e.logged {
                let names = e.learner.task_names();
                println!(
                    "step {:>6}/{}  {epoch}  loss {}  weights {}  lr {}  {} steps/s  ETA {eta}",
                    e.step,
                    e.total_steps,
                    task_summary(&names, losses),
                    task_summary(&names, e.weights),
                    sig4(e.lr),
                    sig4(rate as f32)
                );
            }
        }
        if let Some(bar) = &self.bar {
            let loss = match self.mean_loss {
                Some(l) => sig4(l),
                None => "-".into(),
            };
            bar.set_message(format!(
                "{epoch}  mean loss {loss}  {} steps/s  ETA {eta}",
                sig4(rate as f32)
            ));
            bar.set_position(e.step as u64);
        }
        Ok(())
    }

    fn on_epoch(&mut self, e: &EpochEvent) -> Result<()> {
        self.last_epoch = Some(e.elapsed.saturating_sub(self.last_epoch_end));
        self.last_epoch_end = e.elapsed;
        Ok(())
    }

    fn on_evaluation(&mut self, e: &EvaluationEvent) -> Result<()> {
        if self.mode != Mode::Lines {
            return Ok(());
        }
        let loss = match e.metrics.loss() {
            Some(l) => sig4(l as f32),
            None => "-".into(),
        };
        let took = match (e.complete, self.last_epoch) {
            (true, Some(d)) => format!("  ({:.1} s)", d.as_secs_f64()),
            _ => String::new(),
        };
        let mut line = format!(
            "epoch {}/{}{}{took}  step {:>6}  validation loss {loss}",
            e.epoch,
            self.epochs.max(e.epoch),
            if e.complete { "" } else { " (partial)" },
            e.step
        );
        if let Some(w) = &e.watched {
            if w.metric != "loss" {
                line.push_str(&format!("  {} {}", w.metric, sig4(w.value as f32)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_four_significant_digits_and_many_tasks_are_summarised() {
        assert_eq!(sig4(0.123456), "0.1235");
        assert_eq!(sig4(123.456), "123.5");
        assert_eq!(sig4(12345.6), "12346");
        assert_eq!(sig4(1.5e-5), "1.500e-5");
        let names: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        let mut values = vec![1.0f32; 11];
        values[7] = 3.0;
        values[2] = 0.5;
        let s = task_summary(&names, &values);
        assert_eq!(
            s,
            format!("mean {}  min 0.5000  max 3.000 (t7)", sig4(12.5 / 11.0))
        );
        assert_eq!(
            task_summary(&names[..2], &[0.25, 2.0]),
            "t0=0.2500 t1=2.000"
        );
        assert_eq!(short_duration(187.0), "3m07s");
    }
}
