//! The bench's figures as SVG (plotters, SVG backend only): empirical CDFs
//! of latencies per class, and throughput against its limit. Each figure
//! is drawn into a string first, so a unit test can check one from fixed
//! data without a run or a file.

use std::cell::Cell;
use std::path::PathBuf;

use plotters::coord::ranged1d::SegmentValue;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

const SIZE: (u32, u32) = (900, 540);
/// Points per CDF line: quantiles rather than every sample, so a class of
/// 10 000 samples stays a few KiB in the repository.
const CDF_POINTS: usize = 400;
/// Okabe–Ito: told apart with any colour vision.
const COLOURS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
    RGBColor(0, 0, 0),
];

/// One CDF line: a class's latencies (ms).
pub(crate) struct Line<'a> {
    pub(crate) label: String,
    pub(crate) samples: &'a [f64],
    pub(crate) colour: usize,
    pub(crate) dashed: bool,
}

impl<'a> Line<'a> {
    pub(crate) fn new(label: impl Into<String>, samples: &'a [f64], colour: usize) -> Self {
        Line {
            label: label.into(),
            samples,
            colour,
            dashed: false,
        }
    }

    pub(crate) fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }
}

/// Where the bench writes its figures (`--svg DIR`); without a directory
/// nothing is drawn. A figure that cannot be written is reported and
/// makes the run's exit status a failure, without stopping the run.
pub(crate) struct Figures {
    dir: Option<PathBuf>,
    failed: Cell<bool>,
}

impl Figures {
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        Figures {
            dir,
            failed: Cell::new(false),
        }
    }

    pub(crate) fn failed(&self) -> bool {
        self.failed.get()
    }

    /// Draws `name` (a file name ending in `.svg`) if figures are wanted;
    /// returns the report's line naming the file written.
    pub(crate) fn save(
        &self,
        name: &str,
        draw: impl FnOnce() -> Result<String, String>,
    ) -> Option<String> {
        let dir = self.dir.as_deref()?;
        let path = dir.join(name);
        let written = draw().and_then(|svg| {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            std::fs::write(&path, svg).map_err(|e| e.to_string())
        });
        match written {
            Ok(()) => Some(format!("Figure: `{}`\n", path.display())),
            Err(e) => {
                eprintln!("veil-bench: could not write {}: {e}", path.display());
                self.failed.set(true);
                None
            }
        }
    }
}

/// The empirical CDF of `samples` at no more than `points` points:
/// (the i-th smallest sample, (i + 1) / n) for evenly spaced ranks i.
pub(crate) fn ecdf(samples: &[f64], points: usize) -> Vec<(f64, f64)> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 || points < 2 {
        return Vec::new();
    }
    let ranks: Vec<usize> = if n <= points {
        (0..n).collect()
    } else {
        (0..points).map(|k| k * (n - 1) / (points - 1)).collect()
    };
    ranks
        .into_iter()
        .map(|i| (v[i], (i + 1) as f64 / n as f64))
        .collect()
}

/// The x range a CDF figure shows: the 0.5th to the 99th percentile over
/// all lines (and the marks), so the slowest 1 % does not squash the rest
/// into a corner.
fn cdf_range(lines: &[Line], marks: &[(String, f64)]) -> (f64, f64) {
    let q = veil_tests::stats::quantile;
    let lows = lines.iter().map(|l| q(l.samples, 0.005));
    let highs = lines.iter().map(|l| q(l.samples, 0.99));
    let marks_x = marks.iter().map(|m| m.1);
    let lo = lows
        .chain(marks_x.clone())
        .filter(|x| x.is_finite())
        .fold(f64::INFINITY, f64::min);
    let hi = highs
        .chain(marks_x)
        .filter(|x| x.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.03).max(hi.abs() * 1e-4).max(1e-6);
    (lo - pad, hi + pad)
}

/// A dashed line's sample in the legend, as long as a solid one's.
fn legend_dash(
    (x, y): (i32, i32),
    style: ShapeStyle,
) -> DashedPathElement<std::vec::IntoIter<(i32, i32)>, i32> {
    DashedPathElement::new(vec![(x, y), (x + 24, y)], 5, 3, style)
}

/// An empirical-CDF figure: one line per class, and vertical marks (a
/// floor, a target) drawn grey and dashed. Latencies in ms.
pub(crate) fn cdf_svg(
    title: &str,
    lines: &[Line],
    marks: &[(String, f64)],
) -> Result<String, String> {
    let (lo, hi) = cdf_range(lines, marks);
    let decimals = match hi - lo {
        s if s >= 20.0 => 0,
        s if s >= 2.0 => 1,
        s if s >= 0.2 => 2,
        _ => 3,
    };
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(lo..hi, 0.0..1.0)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("latency (ms)")
            .y_desc("fraction of attempts at most this long")
            .x_label_formatter(&|x| format!("{x:.decimals$}"))
            .draw()
            .map_err(|e| e.to_string())?;
        for line in lines {
            let colour = COLOURS[line.colour % COLOURS.len()];
            let style = colour.stroke_width(2);
            let points: Vec<(f64, f64)> = ecdf(line.samples, CDF_POINTS)
                .into_iter()
                .filter(|(x, _)| (lo..=hi).contains(x))
                .collect();
            let drawn = if line.dashed {
                chart.draw_series(DashedLineSeries::new(points, 7, 5, style))
            } else {
                chart.draw_series(LineSeries::new(points, style))
            };
            let series = drawn.map_err(|e| e.to_string())?.label(&line.label);
            if line.dashed {
                series.legend(move |(x, y)| legend_dash((x, y), style));
            } else {
                series.legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
            }
        }
        for (label, x) in marks {
            let grey = RGBColor(120, 120, 120).stroke_width(1);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(*x, 0.0), (*x, 1.0)],
                    4,
                    4,
                    grey,
                ))
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| legend_dash((x, y), grey));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Throughput bars, one per client count K, against the limit (a line)
/// and the target (90 % of it, dashed).
pub(crate) fn throughput_svg(
    title: &str,
    rates: &[(usize, f64)],
    limit: f64,
) -> Result<String, String> {
    // Room above the limit line for the legend.
    let top = rates.iter().map(|r| r.1).fold(limit, f64::max) * 1.35;
    let n = rates.len() as u32;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(56)
            // n segments: 0 ..= n - 1.
            .build_cartesian_2d((0..n.saturating_sub(1)).into_segmented(), 0.0..top.max(1.0))
            .map_err(|e| e.to_string())?;
        let label = |v: &SegmentValue<u32>| match v {
            SegmentValue::CenterOf(i) => rates
                .get(*i as usize)
                .map_or_else(String::new, |r| format!("K = {}", r.0)),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("concurrent clients")
            .y_desc("requests per second")
            .x_label_formatter(&label)
            .draw()
            .map_err(|e| e.to_string())?;
        let fill = COLOURS[0].filled();
        chart
            .draw_series(rates.iter().enumerate().map(|(i, r)| {
                let i = i as u32;
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), r.1),
                    ],
                    fill,
                );
                bar.set_margin(0, 0, 18, 18);
                bar
            }))
            .map_err(|e| e.to_string())?
            .label("measured")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 24, y + 5)], fill));
        let across = |y: f64| vec![(SegmentValue::Exact(0), y), (SegmentValue::Exact(n), y)];
        let limit_style = COLOURS[1].stroke_width(2);
        chart
            .draw_series(LineSeries::new(across(limit), limit_style))
            .map_err(|e| e.to_string())?
            .label(format!("limit: cores / argon2 median = {limit:.1}/s"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], limit_style));
        let target_style = COLOURS[1].stroke_width(1);
        chart
            .draw_series(DashedLineSeries::new(
                across(0.9 * limit),
                6,
                4,
                target_style,
            ))
            .map_err(|e| e.to_string())?
            .label("target at K = cores: 90 % of the limit")
            .legend(move |(x, y)| legend_dash((x, y), target_style));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
#[path = "svg_tests.rs"]
mod tests;
