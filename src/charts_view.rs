//! The charts on `<canvas>` (plotters-canvas), each downloadable as PNG (the canvas itself)
//! or SVG (the same drawing code on plotters' SVG backend).

use std::sync::Arc;

use leptos::prelude::*;
use plotters_canvas::CanvasBackend;
use tracesift_charts::plotters::coord::Shift;
use tracesift_charts::plotters::prelude::{DrawingArea, DrawingBackend, IntoDrawingArea};
use tracesift_charts::{
    ChartError, class_counts, per_class_histograms, scatter_ppl_consistency, selective_accuracy,
    to_svg,
};
use tracesift_core::compare::curves_to_show;
use tracesift_core::dataset::ScoredSet;
use tracesift_core::evaluate::EvalReport;
use tracesift_core::filter::Selection;
use tracesift_core::settings::{Metric, Settings};

const WIDTH: u32 = 900;
const HEIGHT: u32 = 360;
/// Curves on the selective-accuracy chart: the chosen metric and the best others.
const SELECTIVE_CURVES: usize = 6;

/// Which chart a panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartKind {
    /// Per-class histograms of the filter metric with the cut-off, kept vs dropped.
    PerClass,
    /// Traces per class before and after the filter.
    Counts,
    /// Perplexity against consistency, coloured by class.
    Scatter,
    /// Selective accuracy of the chosen metric and the best others (needs gold labels).
    Selective,
}

impl ChartKind {
    fn test_id(self) -> &'static str {
        match self {
            ChartKind::PerClass => "chart-per-class",
            ChartKind::Counts => "chart-counts",
            ChartKind::Scatter => "chart-scatter",
            ChartKind::Selective => "chart-selective",
        }
    }

    fn explanation(self) -> &'static str {
        match self {
            ChartKind::PerClass => {
                "Where each class's scores fall; the dashed line is the cut-off, the dark bars are kept."
            }
            ChartKind::Counts => "How many traces each class has, before and after filtering.",
            ChartKind::Scatter => {
                "Confident traces sit top-left: low perplexity, high agreement with the other samples."
            }
            ChartKind::Selective => {
                "Accuracy of the most confident s % of labelled traces, for the chosen metric and the five best by PRR: higher curves rank errors better."
            }
        }
    }
}

/// Draws a chart on any plotters backend: the canvas and the SVG download share this.
fn draw<DB: DrawingBackend>(
    kind: ChartKind,
    area: &DrawingArea<DB, Shift>,
    set: &ScoredSet,
    selection: &Selection,
    metric: Metric,
    report: Option<&EvalReport>,
) -> Result<(), ChartError> {
    match kind {
        ChartKind::PerClass => per_class_histograms(area, set, selection, metric),
        ChartKind::Counts => class_counts(area, set, selection),
        ChartKind::Scatter => scatter_ppl_consistency(area, set, selection),
        ChartKind::Selective => match report {
            Some(report) => {
                selective_accuracy(area, &curves_to_show(report, metric, SELECTIVE_CURVES))
            }
            None => Ok(()),
        },
    }
}

#[component]
pub fn ChartPanel(
    kind: ChartKind,
    scored: RwSignal<Option<Arc<ScoredSet>>>,
    selection: Memo<Option<Selection>>,
    settings: RwSignal<Settings>,
    evaluation: RwSignal<Option<EvalReport>>,
) -> impl IntoView {
    let canvas_ref = NodeRef::<leptos::html::Canvas>::new();
    let drawn = RwSignal::new(false);
    let generation = StoredValue::new(0u64);
    // Redraw whenever the data, the filter or the metric changes. Each chart draws in a
    // task of its own (a timeout), so a big file's charts never block the page together;
    // a draw that a newer one has superseded is skipped.
    Effect::new(move |_| {
        let Some(canvas) = canvas_ref.get() else {
            return;
        };
        let metric = settings.with(|s| s.metric);
        let set = scored.get();
        let selection = selection.get();
        // Only the selective-accuracy chart depends on the evaluation.
        let report = (kind == ChartKind::Selective)
            .then(|| evaluation.get())
            .flatten();
        generation.update_value(|count| *count += 1);
        let mine = generation.get_value();
        // After the next frame has rendered: the browser has then laid out whatever the
        // new data changed (the traces table above all), so the text measurements of
        // the draw do not force that layout inside the chart's own task.
        let draw_after_frame = move || {
            set_timeout(
                move || {
                    if generation.try_get_value() != Some(mine) {
                        return;
                    }
                    let (Some(set), Some(selection)) = (set, selection) else {
                        let _ = drawn.try_set(false);
                        return;
                    };
                    let outcome = CanvasBackend::with_canvas_object(canvas)
                        .ok_or_else(|| "this browser has no 2D canvas".to_owned())
                        .and_then(|backend| {
                            let area = backend.into_drawing_area();
                            draw(kind, &area, &set, &selection, metric, report.as_ref())
                                .map_err(|e| e.to_string())?;
                            area.present().map_err(|e| e.to_string())
                        });
                    match outcome {
                        Ok(()) => {
                            let _ = drawn.try_set(true);
                        }
                        Err(message) => {
                            let _ = drawn.try_set(false);
                            web_sys::console::warn_1(&format!("chart not drawn: {message}").into());
                        }
                    }
                },
                std::time::Duration::ZERO,
            );
        };
        request_animation_frame(draw_after_frame);
    });
    let download_png = move |_| {
        if let Some(canvas) = canvas_ref.get()
            && let Ok(url) = canvas.to_data_url_with_type("image/png")
        {
            crate::app::save_url(&url, &format!("{}.png", kind.test_id()));
        }
    };
    let download_svg = move |_| {
        let metric = settings.with(|s| s.metric);
        let svg = scored.with(|set| {
            selection.with(|selection| {
                evaluation.with(|report| {
                    let (Some(set), Some(selection)) = (set.as_ref(), selection.as_ref()) else {
                        return None;
                    };
                    to_svg(WIDTH, HEIGHT, |area| {
                        draw(kind, area, set, selection, metric, report.as_ref())
                    })
                    .ok()
                })
            })
        });
        if let Some(svg) = svg {
            crate::app::save_bytes(
                svg.as_bytes(),
                &format!("{}.svg", kind.test_id()),
                "image/svg+xml",
            );
        }
    };
    view! {
        <figure class="chart">
            <canvas node_ref=canvas_ref width=WIDTH height=HEIGHT data-testid=kind.test_id()
                data-drawn=move || drawn.get().to_string()></canvas>
            <figcaption>
                {kind.explanation()}
                " "
                <button on:click=download_png title="Download this chart as a PNG image">"PNG"</button>
                <button on:click=download_svg title="Download this chart as an SVG drawing">"SVG"</button>
            </figcaption>
        </figure>
    }
}
