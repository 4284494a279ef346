//! Perplexity against consistency, one colour per class, kept traces filled.

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use tracesift_core::dataset::{NO_CLASS, ScoredSet};
use tracesift_core::filter::Selection;

use crate::scale::{padded, subsample_stride, value_range};
use crate::style::{
    DESC_SIZE, FONT, LABEL_SIZE, Marker, NO_CLASS_COLOR, TEXT_COLOR, class_color, count_noun, fits,
    format_value, grid_bold, grid_light, legend, legend_width, message, short_label, size, titled,
    with_footer,
};
use crate::{ChartError, Stepwise};

/// Most points drawn: 100k SVG circles make a multi-megabyte file and a slow canvas, and
/// 2k already show the shape of the cloud.
const MAX_POINTS: usize = 2_000;
/// Data points' radius; legend markers use `style::LEGEND_RADIUS`.
const POINT_RADIUS: i32 = 3;

/// Scatter of `ppl` (x) against `consistency` (y), one colour per class (∅ grey), kept
/// traces filled and dropped ones hollow; traces lacking either value are skipped. Above
/// 2,000 points every k-th one (in input order) is drawn, and the footer says so.
pub fn scatter_ppl_consistency<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    set: &ScoredSet,
    selection: &Selection,
) -> Result<(), ChartError> {
    scatter_ppl_consistency_with_layout(area, set, selection).map(|_| ())
}

/// Where a drawn scatter put its plot, so a pointer on the drawing reads back as values
/// (the app's brush).
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterLayout {
    /// The ppl axis's range (x).
    pub x_range: (f64, f64),
    /// The consistency axis's range (y).
    pub y_range: (f64, f64),
    /// The plot in the drawing's pixels (right and bottom exclusive).
    pub x_pixels: (i32, i32),
    pub y_pixels: (i32, i32),
}

impl ScatterLayout {
    /// Whether pixel `(x, y)` is on the plot.
    pub fn contains(&self, x: i32, y: i32) -> bool {
        (self.x_pixels.0..self.x_pixels.1).contains(&x)
            && (self.y_pixels.0..self.y_pixels.1).contains(&y)
    }

    /// The (ppl, consistency) at pixel `(x, y)`, clamped to the plot (a brush dragged past
    /// its edge stops there).
    pub fn value_at(&self, x: i32, y: i32) -> (f64, f64) {
        let share = |at: i32, (from, to): (i32, i32)| {
            (f64::from(at - from) / f64::from((to - from).max(1))).clamp(0.0, 1.0)
        };
        let along = |share: f64, (low, high): (f64, f64)| low + share * (high - low);
        (
            along(share(x, self.x_pixels), self.x_range),
            // Pixel rows grow downwards, values upwards.
            along(1.0 - share(y, self.y_pixels), self.y_range),
        )
    }

    /// The pixel of `(ppl, consistency)`.
    pub fn pixel_of(&self, ppl: f64, consistency: f64) -> (i32, i32) {
        let share = |value: f64, (low, high): (f64, f64)| {
            if high > low {
                (value - low) / (high - low)
            } else {
                0.0
            }
        };
        let width = f64::from(self.x_pixels.1 - self.x_pixels.0);
        let height = f64::from(self.y_pixels.1 - self.y_pixels.0);
        (
            self.x_pixels.0 + (share(ppl, self.x_range) * width).round() as i32,
            self.y_pixels.1 - (share(consistency, self.y_range) * height).round() as i32,
        )
    }
}

/// [`scatter_ppl_consistency`], returning where its plot is (None when none was drawn).
pub fn scatter_ppl_consistency_with_layout<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    set: &ScoredSet,
    selection: &Selection,
) -> Result<Option<ScatterLayout>, ChartError> {
    let mut chart = ScatterChart::begin(area, set, selection)?;
    while chart.draw_next()? {}
    Ok(chart.finish())
}

/// Points a [`Stepwise::draw_next`] draws: a canvas fills a few hundred small circles in a
/// few milliseconds, and the whole sample at once is the page's longest task on a big file.
pub const POINTS_PER_STEP: usize = 250;

/// [`scatter_ppl_consistency`] drawn a slice of points at a time, so a page can draw each
/// slice in a task of its own: [`ScatterChart::begin`] reads the traces and draws the
/// title, footer, axes and legend, each [`Stepwise::draw_next`] the next [`POINTS_PER_STEP`] points (the dropped ones first, the kept on top).
pub struct ScatterChart<DB: DrawingBackend> {
    plot: Option<DrawingArea<DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>>,
    /// The sample's points in drawing order and how many are drawn.
    points: Vec<Point>,
    drawn: usize,
    layout: Option<ScatterLayout>,
}

struct Point {
    ppl: f64,
    consistency: f64,
    class: Option<u32>,
    kept: bool,
}

impl<DB: DrawingBackend> ScatterChart<DB> {
    /// Reads the traces and draws everything but the points.
    pub fn begin(
        area: &DrawingArea<DB, Shift>,
        set: &ScoredSet,
        selection: &Selection,
    ) -> Result<Self, ChartError> {
        let mut chart = Self {
            plot: None,
            points: Vec::new(),
            drawn: 0,
            layout: None,
        };
        let Some(body) = titled(area, "ppl vs consistency — kept vs dropped")? else {
            return Ok(chart);
        };
        let points: Vec<Point> = set
            .traces
            .iter()
            .enumerate()
            .filter_map(|(idx, trace)| {
                // Non-finite values cannot happen (SPEC: finite or null); skip them if they do.
                let finite = |value: Option<f64>| value.filter(|value| value.is_finite());
                Some(Point {
                    ppl: finite(trace.ppl)?,
                    consistency: finite(trace.consistency)?,
                    class: trace.class,
                    kept: selection.kept.get(idx).copied().unwrap_or(false),
                })
            })
            .collect();
        let n_skipped = set.traces.len() - points.len();
        let stride = subsample_stride(points.len(), MAX_POINTS);
        let n_sample = points.len().div_ceil(stride);

        let mut notes = vec![format!(
            "{} plotted",
            count_noun(points.len(), "trace", "traces")
        )];
        if n_skipped > 0 {
            notes.push(format!(
                "{} without ppl or consistency skipped",
                count_noun(n_skipped, "trace", "traces")
            ));
        }
        if stride > 1 {
            notes.push(format!(
                "subsample: every {} point drawn ({} of {})",
                ordinal(stride),
                n_sample,
                points.len()
            ));
        }
        let footer = [
            "Filled: kept · hollow: dropped · ppl = mean −log p per token".to_owned(),
            notes.join(" · "),
        ];
        let body = with_footer(&body, &footer)?;
        // The x range covers every point, not just the sample, so the axis does not depend on
        // which points the stride happened to pick.
        let Some(x_range) = value_range(points.iter().map(|point| point.ppl)) else {
            message(&body, "no traces with both ppl and consistency")?;
            return Ok(chart);
        };
        let x_range = padded(x_range, 0.04);
        // Consistency is a mean similarity in [0, 1]; the fixed axis keeps charts comparable.
        let y_range = value_range(
            points
                .iter()
                .map(|point| point.consistency)
                .chain([0.0, 1.0]),
        )
        .map_or((-0.05, 1.05), |range| padded(range, 0.05));

        // Legend: the classes that have points, in class order, then the two marker kinds.
        let mut present = vec![false; set.classes.len()];
        let mut has_no_class = false;
        for point in &points {
            match point.class {
                Some(class) => {
                    if let Some(flag) = present.get_mut(class as usize) {
                        *flag = true;
                    }
                }
                None => has_no_class = true,
            }
        }
        let mut rows: Vec<(Marker, String)> = present
            .iter()
            .enumerate()
            .filter(|(_, present)| **present)
            .map(|(class, _)| {
                let name = set.class_name(Some(class as u32)).unwrap_or("");
                (
                    Marker::Square(class_color(Some(class as u32))),
                    short_label(name, 18),
                )
            })
            .collect();
        if has_no_class {
            rows.push((
                Marker::Square(NO_CLASS_COLOR),
                format!("{NO_CLASS} (no answer)"),
            ));
        }
        rows.push((Marker::Circle(TEXT_COLOR, true), "kept".to_owned()));
        rows.push((Marker::Circle(TEXT_COLOR, false), "dropped".to_owned()));

        let (width, _) = size(&body);
        let legend_px = legend_width(&rows, 90, (width / 4).clamp(90, 170));
        if !fits(&body, legend_px + 160, 120) {
            return Ok(chart);
        }
        let (plot_area, legend_area) = body.split_horizontally(width - legend_px);

        let mut axes = ChartBuilder::on(&plot_area)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)?;
        let x_span = x_range.1 - x_range.0;
        let x_format = |value: &f64| format_value(*value, x_span);
        let y_format = |value: &f64| format_value(*value, 1.0);
        axes.configure_mesh()
            .light_line_style(grid_light())
            .bold_line_style(grid_bold())
            .max_light_lines(1)
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&x_format)
            .y_label_formatter(&y_format)
            .label_style((FONT, LABEL_SIZE).into_font().color(&TEXT_COLOR))
            .axis_desc_style((FONT, DESC_SIZE).into_font().color(&TEXT_COLOR))
            .x_desc("ppl (log-perplexity)")
            .y_desc("consistency")
            .draw()?;
        legend(&legend_area.margin(10, 0, 0, 0), &rows)?;
        let plot = axes.plotting_area().clone();
        let (x_pixels, y_pixels) = plot.get_pixel_range();
        chart.layout = Some(ScatterLayout {
            x_range,
            y_range,
            x_pixels: (x_pixels.start, x_pixels.end),
            y_pixels: (y_pixels.start, y_pixels.end),
        });
        chart.plot = Some(plot);
        // Dropped first, kept on top: the kept traces are what the chart is about.
        let (kept, dropped): (Vec<Point>, Vec<Point>) = points
            .into_iter()
            .step_by(stride)
            .partition(|point| point.kept);
        chart.points = dropped;
        chart.points.extend(kept);
        Ok(chart)
    }
}

impl<DB: DrawingBackend> Stepwise for ScatterChart<DB> {
    type Layout = Option<ScatterLayout>;

    /// Draws the next [`POINTS_PER_STEP`] points; false when every point has been drawn.
    fn draw_next(&mut self) -> Result<bool, ChartError> {
        let Some(plot) = &self.plot else {
            return Ok(false);
        };
        let end = (self.drawn + POINTS_PER_STEP).min(self.points.len());
        for point in self.points.get(self.drawn..end).unwrap_or_default() {
            let color = class_color(point.class);
            let style = if point.kept {
                color.filled()
            } else {
                color.stroke_width(1)
            };
            plot.draw(&Circle::new(
                (point.ppl, point.consistency),
                POINT_RADIUS,
                style,
            ))?;
        }
        self.drawn = end;
        Ok(self.drawn < self.points.len())
    }

    /// Where the plot is (None when the chart had no room or no points for one).
    fn finish(self) -> Option<ScatterLayout> {
        self.layout
    }
}

/// 2 → "2nd", 3 → "3rd", 11 → "11th", 21 → "21st".
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod ordinal_tests {
    #[test]
    fn ordinals() {
        let got: Vec<String> = [2, 3, 4, 11, 12, 13, 21, 22, 101, 111]
            .into_iter()
            .map(super::ordinal)
            .collect();
        assert_eq!(
            got,
            [
                "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"
            ]
        );
    }
}
