//! Selective-accuracy curves of every metric on one chart (SPEC §7).

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use tracesift_core::evaluate::EvalReport;
use tracesift_core::settings::Metric;

use crate::ChartError;
use crate::scale::value_range;
use crate::style::{
    DESC_SIZE, FONT, LABEL_SIZE, Marker, NO_CLASS_COLOR, TEXT_COLOR, count_noun, fits,
    format_percent, format_value, grid_bold, grid_light, legend, legend_width, message,
    series_color, size, titled, with_footer,
};

/// Radius of the dots on each curve's 20 coverage levels.
const DOT_RADIUS: i32 = 3;

/// The selective-accuracy curve of every metric in `report` (x = share kept, 5 %..100 %;
/// y = accuracy of those traces), one line per metric with a legend that names it and its
/// AUROC, and the accuracy over all labelled traces as a dashed baseline. Without gold
/// labels (`report.n == 0`) a "no gold labels" message is drawn instead.
pub fn selective_accuracy<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    report: &EvalReport,
) -> Result<(), ChartError> {
    let Some(body) = titled(
        area,
        "Selective accuracy — the most confident share, per metric",
    )?
    else {
        return Ok(());
    };
    if report.n == 0 {
        return message(
            &body,
            "no gold labels: add a \"label\" to traces to evaluate the metrics",
        );
    }
    let footer = [
        format!(
            "{} · x: share kept, most confident first (the filter's order) · y: accuracy of those kept",
            count_noun(report.n, "labelled trace", "labelled traces")
        ),
        String::new(),
    ];
    let body = with_footer(&body, &footer)?;
    let baseline = report.accuracy.filter(|accuracy| accuracy.is_finite());
    // Colours follow the metric's place in `Metric::ALL`, whatever the report's order.
    let colors: Vec<RGBColor> = report
        .metrics
        .0
        .iter()
        .enumerate()
        .map(|(idx, (metric, _))| {
            series_color(Metric::ALL.iter().position(|m| m == metric).unwrap_or(idx))
        })
        .collect();
    let color_of = |idx: usize| colors.get(idx).copied().unwrap_or(NO_CLASS_COLOR);

    // Each curve as runs of (share in %, accuracy); a None level breaks the line. Shares
    // are whole percents, and an integer axis is the one plotters gives custom ticks.
    let curves: Vec<Vec<Vec<(i32, f64)>>> = report
        .metrics
        .0
        .iter()
        .map(|(_, evaluation)| {
            let mut runs: Vec<Vec<(i32, f64)>> = Vec::new();
            let mut current = Vec::new();
            for (step, value) in evaluation.selective_accuracy.iter().enumerate() {
                match value.filter(|accuracy| accuracy.is_finite()) {
                    Some(accuracy) => current.push((5 * (step as i32 + 1), accuracy)),
                    None if !current.is_empty() => runs.push(std::mem::take(&mut current)),
                    None => {}
                }
            }
            if !current.is_empty() {
                runs.push(current);
            }
            runs
        })
        .collect();

    // Metrics often share a curve exactly (with answer similarity every CoCoA score is 0
    // for a fully consistent trace, so they rank alike); a repeated curve is drawn dashed
    // over the first so both colours show, and its legend entry names the first.
    let same_as: Vec<Option<usize>> = curves
        .iter()
        .enumerate()
        .map(|(idx, runs)| {
            if runs.is_empty() {
                return None;
            }
            curves.iter().take(idx).position(|earlier| earlier == runs)
        })
        .collect();
    let mut rows: Vec<(Marker, String)> = report
        .metrics
        .0
        .iter()
        .enumerate()
        .map(|(idx, (metric, evaluation))| {
            let mut detail = match (evaluation.n, evaluation.auroc) {
                (0, _) => "no scores".to_owned(),
                (_, Some(auroc)) => format!("AUROC {auroc:.2}"),
                (_, None) => "AUROC –".to_owned(),
            };
            let first = same_as.get(idx).copied().flatten();
            if let Some((first_metric, _)) = first.and_then(|first| report.metrics.0.get(first)) {
                detail.push_str(&format!(" (= {})", first_metric.name()));
            }
            (
                Marker::Line(color_of(idx), first.is_some()),
                format!("{} · {detail}", metric.name()),
            )
        })
        .collect();
    if let Some(accuracy) = baseline {
        rows.push((
            Marker::Line(NO_CLASS_COLOR, true),
            format!("all labelled · {}", format_percent(accuracy)),
        ));
    }

    let (width, _) = size(&body);
    // The legend takes what its labels need, up to a third of the width.
    let legend_px = legend_width(&rows, 120, (width / 3).max(120));
    if !fits(&body, legend_px + 160, 120) {
        return Ok(());
    }
    let (plot_area, legend_area) = body.split_horizontally(width - legend_px);

    // Zoom the y axis to the data (accuracies often differ by a few points), from a round
    // 10 % step below the lowest value up to just above 100 %.
    let lowest = value_range(
        curves
            .iter()
            .flatten()
            .flatten()
            .map(|&(_, accuracy)| accuracy)
            .chain(baseline),
    )
    .map_or(0.0, |(lo, _)| lo);
    let y_lo = ((lowest - 0.05) * 10.0).floor().clamp(0.0, 9.0) / 10.0;
    let y_range = (y_lo, 1.0 + (1.0 - y_lo) * 0.04);
    let x_ticks: Vec<i32> = (0..=5).map(|i| i * 20).collect();
    let x_light: Vec<i32> = (0..5).map(|i| i * 20 + 10).collect();

    let mut chart = ChartBuilder::on(&plot_area)
        .margin(10)
        .margin_right(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(
            (0..103).with_key_points(x_ticks).with_light_points(x_light),
            y_range.0..y_range.1,
        )?;
    let x_format = |value: &i32| format!("{value} %");
    let y_format = |value: &f64| {
        // Ticks fall on whole percents unless the axis spans less than ten.
        let percent = format_value(*value * 100.0, (y_range.1 - y_range.0) * 1000.0);
        format!("{percent} %")
    };
    chart
        .configure_mesh()
        .light_line_style(grid_light())
        .bold_line_style(grid_bold())
        .max_light_lines(1)
        .y_labels(6)
        .x_label_formatter(&x_format)
        .y_label_formatter(&y_format)
        .label_style((FONT, LABEL_SIZE).into_font().color(&TEXT_COLOR))
        .axis_desc_style((FONT, DESC_SIZE).into_font().color(&TEXT_COLOR))
        .x_desc("share kept (most confident first)")
        .y_desc("accuracy")
        .draw()?;

    if let Some(accuracy) = baseline {
        chart.draw_series(std::iter::once(DashedPathElement::new(
            vec![(0, accuracy), (100, accuracy)],
            6,
            4,
            NO_CLASS_COLOR.stroke_width(2),
        )))?;
    }
    for (idx, runs) in curves.iter().enumerate() {
        let color = color_of(idx);
        let repeated = same_as.get(idx).copied().flatten().is_some();
        for run in runs {
            if repeated {
                chart.draw_series(DashedLineSeries::new(
                    run.iter().copied(),
                    6,
                    6,
                    color.stroke_width(2),
                ))?;
            } else {
                chart.draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(2)))?;
                chart.draw_series(
                    run.iter()
                        .map(|&point| Circle::new(point, DOT_RADIUS, color.filled())),
                )?;
            }
        }
    }
    legend(&legend_area.margin(10, 0, 0, 0), &rows)?;
    Ok(())
}
