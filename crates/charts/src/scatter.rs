//! Perplexity against consistency, one colour per class, kept traces filled.

use plotters::coord::Shift;
use plotters::prelude::*;
use tracesift_core::dataset::{NO_CLASS, ScoredSet};
use tracesift_core::filter::Selection;

use crate::ChartError;
use crate::scale::{padded, subsample_stride, value_range};
use crate::style::{
    DESC_SIZE, FONT, LABEL_SIZE, Marker, NO_CLASS_COLOR, TEXT_COLOR, class_color, count_noun, fits,
    format_value, grid_bold, grid_light, legend, legend_width, message, short_label, size, titled,
    with_footer,
};

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
    let Some(body) = titled(area, "ppl vs consistency — kept vs dropped")? else {
        return Ok(None);
    };
    struct Point {
        ppl: f64,
        consistency: f64,
        class: Option<u32>,
        kept: bool,
    }
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
    let sample: Vec<&Point> = points.iter().step_by(stride).collect();

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
            sample.len(),
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
        return message(&body, "no traces with both ppl and consistency").map(|()| None);
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
        return Ok(None);
    }
    let (plot_area, legend_area) = body.split_horizontally(width - legend_px);

    let mut chart = ChartBuilder::on(&plot_area)
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(52)
        .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)?;
    let x_span = x_range.1 - x_range.0;
    let x_format = |value: &f64| format_value(*value, x_span);
    let y_format = |value: &f64| format_value(*value, 1.0);
    chart
        .configure_mesh()
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
    let (x_pixels, y_pixels) = chart.plotting_area().get_pixel_range();
    let layout = ScatterLayout {
        x_range,
        y_range,
        x_pixels: (x_pixels.start, x_pixels.end),
        y_pixels: (y_pixels.start, y_pixels.end),
    };

    // Dropped first, kept on top: the kept traces are what the chart is about.
    for kept in [false, true] {
        let circles = sample
            .iter()
            .filter(|point| point.kept == kept)
            .map(|point| {
                let color = class_color(point.class);
                let style = if kept {
                    color.filled()
                } else {
                    color.stroke_width(1)
                };
                Circle::new((point.ppl, point.consistency), POINT_RADIUS, style)
            });
        chart.draw_series(circles)?;
    }
    legend(&legend_area.margin(10, 0, 0, 0), &rows)?;
    Ok(Some(layout))
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
