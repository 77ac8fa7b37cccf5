//! `train --plot F.svg`: the run's per-task loss curves, task weights and
//! validation losses, four panels in one SVG with the x-axis in epochs
//! (fractional between epoch ends) and the task legend in a strip to the
//! right of the data.
//!
//! 1. Relative loss: each task's loss over its first sampled value, on a
//!    log axis. Task losses can differ by orders of magnitude (the
//!    synthetic benchmark's task scales σ_t do): every curve starts at 1
//!    and their slopes compare.
//! 2. Absolute loss, on a log axis.
//! 3. Task weights.
//! 4. Validation loss per task at each validation pass (every epoch end),
//!    on a log axis, with a marker per pass.
//! 5. Mixtures of experts only: the load-balance map, each task's mean
//!    gate per expert at the last validation pass (one row per task, one
//!    column per expert, darker = more mass, the value printed in each
//!    cell), so expert collapse (one expert taking a task's whole mass,
//!    or every task on the same expert) shows at a glance.
//!
//! Training-loss curves are smoothed with an exponential moving average,
//! `s_k = 0.6 s_(k-1) + 0.4 x_k` ([`EMA_FACTOR`] = 0.6, over the ~200
//! samples a run keeps), drawn bold over the raw samples drawn faint.
//! Log axes are drawn as log10 of the value on a linear scale, labelled
//! with the value itself (plotters' own log axis leaves ranges below one
//! decade without labels).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::train::{EvaluationEvent, GateReport, Observer, StartEvent, StepEvent};

/// The weight of the previous smoothed value in the loss curves' EMA.
pub const EMA_FACTOR: f64 = 0.6;

/// Losses and weights sampled during training (about 200 points however
/// long the run) and the validation losses of every pass: an observer of
/// the trainer's events.
#[derive(Clone, Debug, Default)]
pub struct History {
    steps: Vec<usize>,
    losses: Vec<Vec<f32>>,
    weights: Vec<Vec<f32>>,
    /// Steps between samples.
    every: usize,
    /// Batches per epoch (the x-axis unit); 0 before the run starts.
    steps_per_epoch: usize,
    /// (step, per-task validation loss) at each validation pass.
    validation: Vec<(usize, Vec<Option<f64>>)>,
    /// A mixture's gates at the last validation pass, and its step.
    gates: Option<(usize, GateReport)>,
}

impl Observer for History {
    fn wants_losses(&self, step: usize) -> bool {
        self.every > 0 && step.is_multiple_of(self.every)
    }

    fn on_start(&mut self, e: &StartEvent) -> Result<()> {
        self.every = e.total_steps.div_ceil(200).max(1);
        self.steps_per_epoch = e.steps_per_epoch;
        Ok(())
    }

    fn on_step(&mut self, e: &StepEvent) -> Result<()> {
        if let Some(losses) = e.losses {
            self.push(e.step, losses, e.weights);
        }
        Ok(())
    }

    fn on_evaluation(&mut self, e: &EvaluationEvent) -> Result<()> {
        let losses = e.metrics.tasks.iter().map(|t| t.value("loss")).collect();
        self.validation.push((e.step, losses));
        if let Some(g) = &e.metrics.gates {
            self.gates = Some((e.step, g.clone()));
        }
        Ok(())
    }
}

impl History {
    /// Records the per-task losses and weights read after `step` steps.
    pub fn push(&mut self, step: usize, losses: &[f32], weights: &[f32]) {
        self.steps.push(step);
        self.losses.push(losses.to_vec());
        self.weights.push(weights.to_vec());
    }

    /// How many samples were recorded.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// No sample yet.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// `step` in epochs (the step itself before the run started).
    fn epochs(&self, step: usize) -> f64 {
        step as f64 / self.steps_per_epoch.max(1) as f64
    }

    /// Task `t`'s series of (epoch, value) from `rows`.
    fn series(&self, rows: &[Vec<f32>], t: usize) -> Vec<(f64, f64)> {
        self.steps
            .iter()
            .zip(rows)
            .filter_map(|(&s, row)| row.get(t).map(|&v| (self.epochs(s), v as f64)))
            .collect()
    }

    /// Task `t`'s losses over its first one (1 when that is not positive,
    /// which only a zero loss gives).
    fn relative_losses(&self, t: usize) -> Vec<(f64, f64)> {
        let series = self.series(&self.losses, t);
        let first = series.first().map_or(1.0, |p| p.1);
        let scale = if first > 0.0 { first } else { 1.0 };
        series.into_iter().map(|(s, v)| (s, v / scale)).collect()
    }

    /// Task `t`'s validation losses as (epoch, loss), passes without a
    /// value left out.
    fn validation_losses(&self, t: usize) -> Vec<(f64, f64)> {
        self.validation
            .iter()
            .filter_map(|(s, v)| Some((self.epochs(*s), (*v.get(t)?)?)))
            .collect()
    }
}

/// `series` smoothed by the EMA of [`EMA_FACTOR`] (non-finite samples
/// are passed over, keeping the last smoothed value).
pub fn ema(series: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut smoothed: Option<f64> = None;
    series
        .iter()
        .map(|&(x, v)| {
            let s = match smoothed {
                Some(s) if v.is_finite() => EMA_FACTOR * s + (1.0 - EMA_FACTOR) * v,
                Some(s) => s,
                None => v,
            };
            if s.is_finite() {
                smoothed = Some(s);
            }
            (x, s)
        })
        .collect()
}

/// Writes the four panels for `tasks` (names in the run's order) to
/// `path`. An empty history, or a file that cannot be written, is an error
/// naming the file.
pub fn write_svg(path: &Path, tasks: &[String], history: &History) -> Result<()> {
    let fail = |detail: String| Error::Data {
        file: path.display().to_string(),
        detail: format!("--plot: {detail}"),
    };
    if history.is_empty() {
        return Err(fail("no losses were sampled (no step ran)".into()));
    }
    let mut svg = String::new();
    draw(&mut svg, tasks, history).map_err(|e| fail(format!("drawing: {e}")))?;
    std::fs::write(path, svg).map_err(|e| fail(format!("writing: {e}")))
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// How a panel's y-axis maps values.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scale {
    Linear,
    /// log10 of the value (clamped above 0), labelled with the value.
    Log,
}

impl Scale {
    fn map(self, v: f64) -> f64 {
        match self {
            Scale::Linear => v,
            Scale::Log => v.max(1e-12).log10(),
        }
    }
}

/// One panel: its title, y-axis, and per task a faint raw series and a
/// bold drawn one (the raw one empty when nothing is smoothed).
struct Panel<'a> {
    caption: &'a str,
    y_desc: &'a str,
    scale: Scale,
    raw: Vec<Vec<(f64, f64)>>,
    bold: Vec<Vec<(f64, f64)>>,
    /// A marker on every bold point (series of a few points).
    markers: bool,
}

/// Renders into a string, so that writing the file is ours to report.
fn draw(svg: &mut String, tasks: &[String], history: &History) -> DrawResult {
    let height = if history.gates.is_some() { 1550 } else { 1240 };
    let root = SVGBackend::with_string(svg, (1000, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plots, legend) = root.split_horizontally(820);
    let first = history.epochs(*history.steps.first().unwrap_or(&0));
    let last = history
        .validation
        .iter()
        .map(|v| v.0)
        .chain(history.steps.last().copied())
        .map(|s| history.epochs(s))
        .fold(first, f64::max);
    let x_range = first.min(last)..last.max(first + 1e-3);

    let n = tasks.len();
    let relative: Vec<_> = (0..n).map(|t| history.relative_losses(t)).collect();
    let absolute: Vec<_> = (0..n).map(|t| history.series(&history.losses, t)).collect();
    let panels = [
        Panel {
            caption: "training loss / first sampled loss (log scale, EMA-smoothed)",
            y_desc: "relative loss",
            scale: Scale::Log,
            bold: relative.iter().map(|s| ema(s)).collect(),
            raw: relative,
            markers: false,
        },
        Panel {
            caption: "training loss (log scale, EMA-smoothed)",
            y_desc: "loss",
            scale: Scale::Log,
            bold: absolute.iter().map(|s| ema(s)).collect(),
            raw: absolute,
            markers: false,
        },
        Panel {
            caption: "task weights",
            y_desc: "weight",
            scale: Scale::Linear,
            bold: (0..n)
                .map(|t| history.series(&history.weights, t))
                .collect(),
            raw: Vec::new(),
            markers: false,
        },
        Panel {
            caption: "validation loss per epoch (log scale)",
            y_desc: "validation loss",
            scale: Scale::Log,
            bold: (0..n).map(|t| history.validation_losses(t)).collect(),
            raw: Vec::new(),
            markers: true,
        },
    ];
    let rows = panels.len() + usize::from(history.gates.is_some());
    let areas = plots.split_evenly((rows, 1));
    for (area, panel) in areas.iter().zip(&panels) {
        draw_panel(area, panel, x_range.clone())?;
    }
    if let (Some((step, gates)), Some(area)) = (&history.gates, areas.get(panels.len())) {
        draw_gates(area, gates, history.epochs(*step))?;
    }
    draw_legend(&legend, tasks)?;
    root.present()?;
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<SVGBackend, Shift>,
    panel: &Panel,
    x: std::ops::Range<f64>,
) -> DrawResult {
    let scale = panel.scale;
    let mapped = |series: &[Vec<(f64, f64)>]| -> Vec<Vec<(f64, f64)>> {
        series
            .iter()
            .map(|s| s.iter().map(|&(e, v)| (e, scale.map(v))).collect())
            .collect()
    };
    let (raw, bold) = (mapped(&panel.raw), mapped(&panel.bold));
    let (mut lo, mut hi) = bounds(raw.iter().chain(&bold).flatten().map(|p| p.1));
    if scale == Scale::Linear {
        (lo, hi) = (lo.min(0.0), hi.max(lo + 1e-3) * 1.1);
    }
    // Room around the curves (half a decade at least on a log axis), so
    // flat curves stay readable.
    let least = if scale == Scale::Log { 0.5 } else { 0.0 };
    let pad = ((least - (hi - lo)) / 2.0).max(0.05 * (hi - lo)).max(1e-6);
    let mut chart = ChartBuilder::on(area)
        .caption(panel.caption, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(34)
        .y_label_area_size(64)
        .build_cartesian_2d(x, (lo - pad)..(hi + pad))?;
    let label = |v: &f64| match scale {
        Scale::Linear => format!("{v:.3}"),
        Scale::Log => value_label(10f64.powf(*v)),
    };
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_label_formatter(&|v| format!("{v:.2}"))
        .y_desc(panel.y_desc)
        .y_label_formatter(&label)
        .draw()?;
    for (t, series) in raw.into_iter().enumerate() {
        let color = Palette99::pick(t).mix(0.3);
        chart.draw_series(LineSeries::new(series, color.stroke_width(1)))?;
    }
    for (t, series) in bold.into_iter().enumerate() {
        let color = Palette99::pick(t).to_rgba();
        if panel.markers {
            chart.draw_series(series.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
        chart.draw_series(LineSeries::new(series, color.stroke_width(2)))?;
    }
    Ok(())
}

/// The load-balance map: task rows × expert columns, each cell shaded
/// by the task's mean gate on that expert and labelled with it.
fn draw_gates(area: &DrawingArea<SVGBackend, Shift>, gates: &GateReport, epoch: f64) -> DrawResult {
    let (experts, tasks) = (gates.experts.len(), gates.tasks.len());
    let caption = format!("gate mass per expert at the last validation pass (epoch {epoch:.2})");
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(34)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..experts.max(1) as f64, 0.0..tasks.max(1) as f64)?;
    let expert_label = |v: &f64| {
        let i = v.floor() as usize;
        match gates.experts.get(i) {
            Some(name) if (v - i as f64 - 0.5).abs() < 1e-6 => name.clone(),
            _ => String::new(),
        }
    };
    let task_label = |v: &f64| {
        let i = v.floor() as usize;
        match gates.tasks.get(tasks.saturating_sub(1 + i)) {
            Some(t) if (v - i as f64 - 0.5).abs() < 1e-6 => t.task.clone(),
            _ => String::new(),
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("expert")
        .x_labels(2 * experts + 1)
        .x_label_formatter(&expert_label)
        .y_labels(2 * tasks + 1)
        .y_label_formatter(&task_label)
        .draw()?;
    for (row, task) in gates.tasks.iter().enumerate() {
        // The first task on top.
        let y = (tasks - 1 - row) as f64;
        for (e, &m) in task.mass.iter().enumerate() {
            let shade = (255.0 * (1.0 - f64::from(m).clamp(0.0, 1.0))) as u8;
            let fill = RGBColor(shade, shade, 255);
            let cell = [(e as f64, y), (e as f64 + 1.0, y + 1.0)];
            chart.draw_series(std::iter::once(Rectangle::new(cell, fill.filled())))?;
            chart.draw_series(std::iter::once(Rectangle::new(cell, BLACK.mix(0.2))))?;
            let ink = if m > 0.5 { WHITE } else { BLACK };
            let text = Text::new(
                format!("{m:.2}"),
                (e as f64 + 0.35, y + 0.6),
                ("sans-serif", 12).into_font().color(&ink),
            );
            chart.draw_series(std::iter::once(text))?;
        }
    }
    Ok(())
}

/// The task legend, a column in its own strip beside the panels.
fn draw_legend(area: &DrawingArea<SVGBackend, Shift>, tasks: &[String]) -> DrawResult {
    area.draw(&Text::new("tasks", (10, 40), ("sans-serif", 16)))?;
    for (t, name) in tasks.iter().enumerate() {
        let y = 70 + 22 * t as i32;
        let color = Palette99::pick(t).to_rgba();
        area.draw(&PathElement::new(
            vec![(10, y), (34, y)],
            color.stroke_width(2),
        ))?;
        area.draw(&Text::new(name.as_str(), (42, y - 7), ("sans-serif", 14)))?;
    }
    Ok(())
}

/// A value for a log axis label: four significant digits, or scientific
/// when tiny or huge.
fn value_label(r: f64) -> String {
    if (0.01..1e5).contains(&r) {
        let decimals = (3 - r.log10().floor() as i32).max(0) as usize;
        format!("{r:.decimals$}")
    } else {
        format!("{r:.2e}")
    }
}

/// (min, max) of the finite values; (0, 0) when there are none.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo.is_finite() {
        (lo, hi)
    } else {
        (0.0, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_weighs_the_previous_value_by_the_factor() {
        let s = ema(&[(0.0, 1.0), (1.0, 2.0), (2.0, f64::NAN), (3.0, 0.0)]);
        let second = 0.6 + 0.4 * 2.0;
        assert_eq!(s[0].1, 1.0);
        assert!((s[1].1 - second).abs() < 1e-12);
        assert_eq!(s[2].1, second);
        assert!((s[3].1 - 0.6 * second).abs() < 1e-12);
    }
}
