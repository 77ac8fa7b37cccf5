//! `train --plot F.svg`: the per-task loss curves and task weights of a
//! run, two panels in one SVG.
//!
//! Task losses can differ by orders of magnitude (the synthetic
//! benchmark's task scales σ_t do), so the top panel plots each loss over
//! its first sampled value, on a log axis: every curve starts at 1 and
//! their slopes compare. The axis is drawn as log10 of the ratio on a
//! linear scale, labelled with the ratio itself (plotters' own log axis
//! leaves ranges below one decade without labels).

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::train::{Observer, StartEvent, StepEvent};

/// Losses and weights sampled during training: about 200 points however
/// long the run (an observer of the trainer's events).
#[derive(Clone, Debug, Default)]
pub struct History {
    steps: Vec<usize>,
    losses: Vec<Vec<f32>>,
    weights: Vec<Vec<f32>>,
    /// Steps between samples.
    every: usize,
}

impl Observer for History {
    fn wants_losses(&self, step: usize) -> bool {
        self.every > 0 && step.is_multiple_of(self.every)
    }

    fn on_start(&mut self, e: &StartEvent) -> Result<()> {
        self.every = e.total_steps.div_ceil(200).max(1);
        Ok(())
    }

    fn on_step(&mut self, e: &StepEvent) -> Result<()> {
        if let Some(losses) = e.losses {
            self.push(e.step, losses, e.weights);
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

    /// Task `t`'s series of (step, value) from `rows`.
    fn series(&self, rows: &[Vec<f32>], t: usize) -> Vec<(f64, f64)> {
        self.steps
            .iter()
            .zip(rows)
            .filter_map(|(&s, row)| row.get(t).map(|&v| (s as f64, v as f64)))
            .collect()
    }

    /// Task `t`'s losses over its first one (1 when that is not positive,
    /// which only a zero loss gives); values clamped above 0 for the log axis.
    fn relative_losses(&self, t: usize) -> Vec<(f64, f64)> {
        let series = self.series(&self.losses, t);
        let first = series.first().map_or(1.0, |p| p.1);
        let scale = if first > 0.0 { first } else { 1.0 };
        series
            .into_iter()
            .map(|(s, v)| (s, (v / scale).max(1e-12)))
            .collect()
    }
}

/// Writes the two panels for `tasks` (names in the run's order) to `path`.
/// An empty history, or a file that cannot be written, is an error naming
/// the file.
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

/// Renders into a string, so that writing the file is ours to report.
fn draw(svg: &mut String, tasks: &[String], history: &History) -> DrawResult {
    let root = SVGBackend::with_string(svg, (900, 720)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(400);
    let last = *history.steps.last().unwrap_or(&1) as f64;
    let first = *history.steps.first().unwrap_or(&0) as f64;
    let x_range = first..last.max(first + 1.0);

    let losses: Vec<Vec<(f64, f64)>> = (0..tasks.len())
        .map(|t| {
            let rel = history.relative_losses(t);
            rel.into_iter().map(|(s, r)| (s, r.log10())).collect()
        })
        .collect();
    let (lo, hi) = bounds(losses.iter().flatten().map(|p| p.1));
    // Half a decade of room at least, so flat curves stay readable.
    let pad = ((0.5 - (hi - lo)) / 2.0).max(0.05 * (hi - lo));
    let mut chart = ChartBuilder::on(&top)
        .caption("loss / first sampled loss (log scale)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range.clone(), (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_desc("relative loss")
        .y_label_formatter(&|v| ratio_label(10f64.powf(*v)))
        .draw()?;
    for (t, name) in tasks.iter().enumerate() {
        let color = Palette99::pick(t).to_rgba();
        chart
            .draw_series(LineSeries::new(losses[t].clone(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;

    let weights: Vec<Vec<(f64, f64)>> = (0..tasks.len())
        .map(|t| history.series(&history.weights, t))
        .collect();
    let (wlo, whi) = bounds(weights.iter().flatten().map(|p| p.1));
    let (wlo, whi) = (wlo.min(0.0), whi.max(wlo + 1e-3) * 1.1);
    let mut chart = ChartBuilder::on(&bottom)
        .caption("task weights", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range, wlo..whi)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_desc("weight")
        .draw()?;
    for (t, series) in weights.into_iter().enumerate() {
        let color = Palette99::pick(t).to_rgba();
        chart.draw_series(LineSeries::new(series, color.stroke_width(2)))?;
    }
    root.present()?;
    Ok(())
}

/// A ratio for an axis label: three decimals, or scientific when tiny.
fn ratio_label(r: f64) -> String {
    if r >= 0.01 {
        format!("{r:.3}")
    } else {
        format!("{r:.1e}")
    }
}

/// (min, max) of the finite values; (1, 1) when there are none.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo.is_finite() {
        (lo, hi)
    } else {
        (1.0, 1.0)
    }
}
