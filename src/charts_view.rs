//! The charts on `<canvas>` (plotters-canvas), each downloadable as PNG (the canvas itself)
//! or SVG (the same drawing code on plotters' SVG backend).

use std::sync::Arc;

use leptos::prelude::*;
use tracesift_charts::plotters::coord::Shift;
use tracesift_charts::plotters::prelude::{DrawingArea, DrawingBackend, IntoDrawingArea};
use tracesift_charts::{
    ChartError, HistogramLayout, PerClassChart, ScatterChart, ScatterLayout, Stepwise,
    class_counts, per_class_histograms, scatter_ppl_consistency, selective_accuracy, to_svg,
};
use tracesift_core::compare::curves_to_show;
use tracesift_core::dataset::ScoredSet;
use tracesift_core::evaluate::EvalReport;
use tracesift_core::filter::{FilterOptions, Selection, rule_for_cutoff};
use tracesift_core::settings::{Metric, Scope, Settings};
use wasm_bindgen::JsCast;

use crate::measured_canvas::MeasuredCanvas;
use crate::traces::{BinFilter, Brush, TableFilter};

/// How near the cut-off line (in the chart's pixels) a press starts dragging it.
const GRAB_PIXELS: i32 = 8;
/// A brush smaller than this (in the chart's pixels, either side) is a click: it clears
/// the brush instead of selecting a sliver.
const MIN_BRUSH_PIXELS: i32 = 4;

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

    /// The mark its draw leaves on the page's timeline.
    fn timeline_name(self) -> &'static str {
        match self {
            ChartKind::PerClass => "page: draw the per-class chart",
            ChartKind::Counts => "page: draw the counts chart",
            ChartKind::Scatter => "page: draw the scatter",
            ChartKind::Selective => "page: draw the selective-accuracy chart",
        }
    }

    /// The mark each of its steps leaves, for the charts drawn in steps.
    fn step_timeline_name(self) -> &'static str {
        match self {
            ChartKind::PerClass => "page: draw a panel of the per-class chart",
            ChartKind::Scatter => "page: draw points of the scatter",
            ChartKind::Counts | ChartKind::Selective => self.timeline_name(),
        }
    }

    fn explanation(self) -> &'static str {
        match self {
            ChartKind::PerClass => {
                "Where each class's scores fall; the dashed line is the cut-off, the dark bars are kept."
            }
            ChartKind::Counts => "How many traces each class has, before and after filtering.",
            ChartKind::Scatter => {
                "Confident traces sit top-left: low perplexity, high agreement with the other samples. Drag a rectangle to show its traces in the table."
            }
            ChartKind::Selective => {
                "Accuracy of the most confident s % of labelled traces, for the chosen metric and the five best by PRR: higher curves rank errors better."
            }
        }
    }
}

/// Every character the charts draw: Latin letters, digits, punctuation and the symbols of
/// their titles, legends and footers.
const CHART_CHARACTERS: &str = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~∅—–·≥≤×↑→…ρ";

/// Draws the charts' characters once in every chart font, one font a task, on a canvas of
/// its own. The first chart of a run otherwise rasterises each glyph as it first draws
/// it — in software (most laptops' Chromium, any headless one) tens of milliseconds that
/// would land in the one task that draws it. Started when the page has loaded, so it
/// runs while the user picks a file and the worker scores it.
pub fn warm_up_chart_text() {
    let Some(canvas) = document()
        .create_element("canvas")
        .ok()
        .and_then(|element| element.dyn_into::<web_sys::HtmlCanvasElement>().ok())
    else {
        return;
    };
    canvas.set_width(64);
    canvas.set_height(64);
    let Some(context) = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|context| context.dyn_into::<web_sys::CanvasRenderingContext2d>().ok())
    else {
        return;
    };
    fn next(context: web_sys::CanvasRenderingContext2d, mut fonts: Vec<String>) {
        let Some(font) = fonts.pop() else { return };
        set_timeout(
            move || {
                context.set_font(&font);
                for rotated in [false, true] {
                    context.save();
                    if rotated {
                        // The y axes' descriptions are drawn turned a quarter.
                        let _ = context.rotate(-std::f64::consts::FRAC_PI_2);
                    }
                    let _ = context.fill_text(CHART_CHARACTERS, 0.0, 32.0);
                    let _ = context.measure_text(CHART_CHARACTERS);
                    context.restore();
                }
                next(context, fonts);
            },
            std::time::Duration::ZERO,
        );
    }
    next(context, tracesift_charts::text_fonts());
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
    /// Where a click on a histogram bar (the per-class chart) or a brushed rectangle (the
    /// scatter) sends the table.
    #[prop(optional)]
    table_filter: Option<RwSignal<Option<TableFilter>>>,
) -> impl IntoView {
    let canvas_ref = NodeRef::<leptos::html::Canvas>::new();
    // The per-class chart's panels as last drawn, and its cut-off lines (class, pixel).
    let layout = StoredValue::new(None::<HistogramLayout>);
    let cutoff_pixels = RwSignal::new(Vec::<(u32, i32)>::new());
    let dragging = StoredValue::new(None::<u32>);
    // The scatter's plot as last drawn, and the brush: where it started and its rectangle
    // (left, top, right, bottom) in the drawing's pixels.
    let scatter_layout = StoredValue::new(None::<ScatterLayout>);
    let brush_start = StoredValue::new(None::<(i32, i32)>);
    let brush_rect = RwSignal::new(None::<(i32, i32, i32, i32)>);
    // Another filter replaces the brush: its rectangle goes.
    if let Some(table_filter) = table_filter {
        Effect::new(move |_| {
            if !table_filter.with(|filter| matches!(filter, Some(TableFilter::Brush(_)))) {
                brush_rect.set(None);
            }
        });
    }
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
                    crate::timeline::mark(kind.timeline_name());
                    let (Some(set), Some(selection)) = (set, selection) else {
                        let _ = drawn.try_set(false);
                        return;
                    };
                    let finish = move |outcome: Result<(), String>| match outcome {
                        Ok(()) => {
                            let _ = drawn.try_set(true);
                        }
                        Err(message) => {
                            let _ = drawn.try_set(false);
                            web_sys::console::warn_1(&format!("chart not drawn: {message}").into());
                        }
                    };
                    let Some(backend) = MeasuredCanvas::new(canvas) else {
                        finish(Err("this browser has no 2D canvas".to_owned()));
                        return;
                    };
                    let area = backend.into_drawing_area();
                    let current = move || generation.try_get_value() == Some(mine);
                    // The big charts draw their frame in this task, then a part per task (a
                    // class's panel, a slice of points): either whole is the page's longest
                    // task on a big file.
                    match kind {
                        ChartKind::PerClass => {
                            match PerClassChart::begin(&area, &set, &selection, metric) {
                                Ok(chart) => draw_steps(kind, chart, current, move |outcome| {
                                    if let Ok(drawn_layout) = &outcome {
                                        let _ = cutoff_pixels.try_set(drawn_layout.cutoff_pixels());
                                        layout.set_value(Some(drawn_layout.clone()));
                                    }
                                    finish(outcome.map(|_| ()));
                                }),
                                Err(error) => finish(Err(error.to_string())),
                            }
                        }
                        ChartKind::Scatter => match ScatterChart::begin(&area, &set, &selection) {
                            Ok(chart) => draw_steps(kind, chart, current, move |outcome| {
                                if let Ok(drawn_layout) = &outcome {
                                    scatter_layout.set_value(drawn_layout.clone());
                                }
                                finish(outcome.map(|_| ()));
                            }),
                            Err(error) => finish(Err(error.to_string())),
                        },
                        ChartKind::Counts | ChartKind::Selective => finish(
                            draw(kind, &area, &set, &selection, metric, report.as_ref())
                                .and_then(|()| area.present().map_err(ChartError::from))
                                .map_err(|e| e.to_string()),
                        ),
                    }
                },
                std::time::Duration::ZERO,
            );
        };
        request_animation_frame(draw_after_frame);
    });
    // The pointer in the drawing's pixels (the canvas is scaled, contained, top-left).
    let to_chart = move |ev: &leptos::ev::PointerEvent| -> Option<(i32, i32)> {
        let canvas = canvas_ref.get_untracked()?;
        let rect = canvas.get_bounding_client_rect();
        let scale = (rect.width() / f64::from(WIDTH)).min(rect.height() / f64::from(HEIGHT));
        if scale <= 0.0 {
            return None;
        }
        let x = (f64::from(ev.client_x()) - rect.left()) / scale;
        let y = (f64::from(ev.client_y()) - rect.top()) / scale;
        Some((x.round() as i32, y.round() as i32))
    };
    // Dragging a class's cut-off moves the keep rule (and so the URL and every view).
    let move_cutoff = move |class: u32, x: i32| {
        let Some(value) = layout.with_value(|layout| layout.as_ref()?.value_at(class, x)) else {
            return;
        };
        let rule = scored.with_untracked(|set| {
            let set = set.as_ref()?;
            let options = settings.with_untracked(FilterOptions::from_settings).ok()?;
            let group = (options.scope == Scope::PerClass).then_some(class);
            rule_for_cutoff(set, &options, group, value)
        });
        if let Some(rule) = rule {
            settings.update(|s| s.set_rule(rule));
        }
    };
    let capture = move |ev: &leptos::ev::PointerEvent| {
        if let Some(canvas) = canvas_ref.get_untracked() {
            let _ = canvas.set_pointer_capture(ev.pointer_id());
        }
        ev.prevent_default();
    };
    let on_pointer_down = move |ev: leptos::ev::PointerEvent| {
        let Some((x, y)) = to_chart(&ev) else { return };
        if kind == ChartKind::Scatter {
            if scatter_layout.with_value(|l| l.as_ref().is_some_and(|l| l.contains(x, y))) {
                brush_start.set_value(Some((x, y)));
                brush_rect.set(Some((x, y, x, y)));
                capture(&ev);
            }
            return;
        }
        let Some((class, _)) = layout.with_value(|l| l.as_ref().and_then(|l| l.locate(x, y)))
        else {
            return;
        };
        let near_line = cutoff_pixels.with_untracked(|lines| {
            lines
                .iter()
                .any(|&(c, px)| c == class && (px - x).abs() <= GRAB_PIXELS)
        });
        if near_line {
            dragging.set_value(Some(class));
            capture(&ev);
        }
    };
    // The brush's rectangle, kept on the plot.
    let brush_to = move |x: i32, y: i32| -> Option<(i32, i32, i32, i32)> {
        let (x0, y0) = brush_start.get_value()?;
        let (x1, y1) = scatter_layout.with_value(|layout| {
            let layout = layout.as_ref()?;
            Some((
                x.clamp(layout.x_pixels.0, layout.x_pixels.1),
                y.clamp(layout.y_pixels.0, layout.y_pixels.1),
            ))
        })?;
        Some((x0.min(x1), y0.min(y1), x0.max(x1), y0.max(y1)))
    };
    let on_pointer_move = move |ev: leptos::ev::PointerEvent| {
        if kind == ChartKind::Scatter {
            if let (Some(_), Some((x, y))) = (brush_start.get_value(), to_chart(&ev)) {
                brush_rect.set(brush_to(x, y));
            }
            return;
        }
        if let (Some(class), Some((x, _))) = (dragging.get_value(), to_chart(&ev)) {
            move_cutoff(class, x);
        }
    };
    let on_pointer_up = move |ev: leptos::ev::PointerEvent| {
        if kind == ChartKind::Scatter {
            let rect = to_chart(&ev).and_then(|(x, y)| brush_to(x, y));
            brush_start.set_value(None);
            let Some(table_filter) = table_filter else {
                return;
            };
            match rect {
                Some((left, top, right, bottom))
                    if right - left >= MIN_BRUSH_PIXELS && bottom - top >= MIN_BRUSH_PIXELS =>
                {
                    let brush = scatter_layout.with_value(|layout| {
                        let layout = layout.as_ref()?;
                        let (ppl_low, consistency_high) = layout.value_at(left, top);
                        let (ppl_high, consistency_low) = layout.value_at(right, bottom);
                        Some(Brush {
                            ppl: (ppl_low, ppl_high),
                            consistency: (consistency_low, consistency_high),
                        })
                    });
                    brush_rect.set(rect);
                    if let Some(brush) = brush {
                        table_filter.set(Some(TableFilter::Brush(brush)));
                    }
                }
                // A click: no rectangle, and the brush's selection goes with it.
                _ => {
                    brush_rect.set(None);
                    if table_filter.with_untracked(|f| matches!(f, Some(TableFilter::Brush(_)))) {
                        table_filter.set(None);
                    }
                }
            }
            return;
        }
        if dragging.get_value().is_some() {
            dragging.set_value(None);
            return;
        }
        // A click on a panel shows that bar's traces in the table.
        let (Some(table_filter), Some((x, y))) = (table_filter, to_chart(&ev)) else {
            return;
        };
        let metric = settings.with_untracked(|s| s.metric);
        let filter = layout.with_value(|layout| {
            let layout = layout.as_ref()?;
            let (class, value) = layout.locate(x, y)?;
            Some(TableFilter::Class {
                class,
                bin: Some(BinFilter {
                    metric,
                    layout: layout.clone(),
                    index: layout.bin_index_of(value),
                }),
            })
        });
        if let Some(filter) = filter {
            table_filter.set(Some(filter));
        }
    };
    let interactive = matches!(kind, ChartKind::PerClass | ChartKind::Scatter);
    // The brush over the canvas, in percent of the drawing (the canvas keeps its aspect).
    let brush_style = move || {
        brush_rect.get().map(|(left, top, right, bottom)| {
            let x = |px: i32| f64::from(px) * 100.0 / f64::from(WIDTH);
            let y = |px: i32| f64::from(px) * 100.0 / f64::from(HEIGHT);
            format!(
                "left:{:.3}%;top:{:.3}%;width:{:.3}%;height:{:.3}%",
                x(left),
                y(top),
                x(right - left),
                y(bottom - top)
            )
        })
    };
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
            <div class="chart-canvas">
            <canvas node_ref=canvas_ref width=WIDTH height=HEIGHT data-testid=kind.test_id()
                data-drawn=move || drawn.get().to_string()
                class:interactive=interactive
                data-cutoffs=move || cutoff_pixels.with(|lines| {
                    lines.iter().map(|(class, px)| format!("{class}:{px}")).collect::<Vec<_>>().join(",")
                })
                on:pointerdown=move |ev| if interactive { on_pointer_down(ev) }
                on:pointermove=move |ev| if interactive { on_pointer_move(ev) }
                on:pointerup=move |ev| if interactive { on_pointer_up(ev) }></canvas>
            {move || brush_style().map(|style| {
                // The brushed ranges in full precision (ppl low, high, consistency low, high).
                let range = table_filter.and_then(|filter| filter.with(|filter| match filter {
                    Some(TableFilter::Brush(Brush { ppl, consistency })) => Some(format!(
                        "{},{},{},{}", ppl.0, ppl.1, consistency.0, consistency.1
                    )),
                    _ => None,
                }));
                view! {
                    <div class="brush" data-testid="scatter-brush" aria-hidden="true" style=style data-range=range></div>
                }
            })}
            </div>
            <figcaption>
                {kind.explanation()}
                " "
                <button on:click=download_png title="Download this chart as a PNG image">"PNG"</button>
                <button on:click=download_svg title="Download this chart as an SVG drawing">"SVG"</button>
            </figcaption>
        </figure>
    }
}

/// Draws `chart`'s parts in a task each, from the next task on; stops when `current` says a
/// newer draw has replaced this one, and hands the layout to `done` after the last.
fn draw_steps<C: Stepwise + 'static>(
    kind: ChartKind,
    mut chart: C,
    current: impl Fn() -> bool + 'static,
    done: impl FnOnce(Result<C::Layout, String>) + 'static,
) {
    set_timeout(
        move || {
            if !current() {
                return;
            }
            crate::timeline::mark(kind.step_timeline_name());
            match chart.draw_next() {
                Ok(true) => draw_steps(kind, chart, current, done),
                Ok(false) => done(Ok(chart.finish())),
                Err(error) => done(Err(error.to_string())),
            }
        },
        std::time::Duration::ZERO,
    );
}
