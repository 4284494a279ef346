//! The traces table (sortable by any score; virtualised: only the rows in its scroll
//! window are in the page, so a million rows scroll as fast as fifty) and the trace view
//! (tokens coloured by log-prob, the question's other samples beside it).

use std::sync::Arc;

use leptos::prelude::*;
use tracesift_core::dataset::{NO_CLASS, ScoredSet, TraceScores};
use tracesift_core::filter::Selection;
use tracesift_core::metrics::{ColumnSet, ScoreColumn, score_columns};

use tracesift_charts::HistogramLayout;
use tracesift_core::settings::Metric;

use crate::protocol::{TokenView, TraceDetail};

/// What the table shows of the run (None: every trace): a class clicked in the counts, a
/// bar of a class's histogram, or a rectangle brushed on the ppl × consistency scatter.
#[derive(Debug, Clone, PartialEq)]
pub enum TableFilter {
    Class { class: u32, bin: Option<BinFilter> },
    Brush(Brush),
}

/// A histogram bin: the traces its bar counted (by the bars' own binning rule).
#[derive(Debug, Clone, PartialEq)]
pub struct BinFilter {
    pub metric: Metric,
    pub layout: HistogramLayout,
    pub index: usize,
}

/// A rectangle on the scatter: the traces whose ppl and consistency both lie in these
/// closed ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct Brush {
    pub ppl: (f64, f64),
    pub consistency: (f64, f64),
}

impl TableFilter {
    pub fn class(class: u32) -> Self {
        TableFilter::Class { class, bin: None }
    }

    pub fn matches(&self, trace: &TraceScores) -> bool {
        match self {
            TableFilter::Class { class, bin } => {
                trace.class == Some(*class)
                    && bin.as_ref().is_none_or(|bin| {
                        trace
                            .metric(bin.metric)
                            .filter(|value| value.is_finite())
                            .is_some_and(|value| bin.layout.bin_index_of(value) == bin.index)
                    })
            }
            TableFilter::Brush(Brush { ppl, consistency }) => {
                let within = |value: Option<f64>, (low, high): (f64, f64)| {
                    value.is_some_and(|value| low <= value && value <= high)
                };
                within(trace.ppl, *ppl) && within(trace.consistency, *consistency)
            }
        }
    }

    pub fn describe(&self, set: &ScoredSet) -> String {
        match self {
            TableFilter::Class { class, bin: None } => {
                format!("class {}", set.class_name(Some(*class)).unwrap_or(NO_CLASS))
            }
            TableFilter::Class {
                class,
                bin: Some(bin),
            } => {
                let (low, high) = bin.layout.bin_edges(bin.index);
                format!(
                    "class {}, {} in [{low:.4}, {high:.4})",
                    set.class_name(Some(*class)).unwrap_or(NO_CLASS),
                    bin.metric.name()
                )
            }
            TableFilter::Brush(Brush { ppl, consistency }) => format!(
                "ppl in [{:.4}, {:.4}] and consistency in [{:.4}, {:.4}]",
                ppl.0, ppl.1, consistency.0, consistency.1
            ),
        }
    }
}

/// Height of a table row in CSS pixels (`.traces tbody tr` in main.css says the same).
const ROW_HEIGHT: f64 = 26.0;
/// Rows rendered above and below the scroll window, so a quick scroll shows no gap. Each
/// row is a layout object per column (every metric's): the frame that first shows a large
/// run lays out all of them, so the margin stays small.
const OVERSCAN_ROWS: usize = 4;
/// Rows rendered before the table has been measured: about what the dashboard shows at
/// 1440 × 900. Every row more is laid out in the frame that first shows a run's results,
/// the page's longest task on a large file; the measurement a frame later adds the rest.
const INITIAL_WINDOW_ROWS: usize = 16;
/// The tallest the scrolled content gets. Browsers cap an element's height (Firefox near
/// 17.9 million pixels); beyond this a scroll pixel moves more than one pixel of rows.
const MAX_SCROLL_HEIGHT: f64 = 15_000_000.0;

/// Which rows to render for a scroll position: (first row, rows, spacer above in px,
/// spacer below in px). With more rows than [`MAX_SCROLL_HEIGHT`] holds, positions are
/// scaled so the scrollbar still spans every row.
pub fn window_rows(
    n_rows: usize,
    scroll_top: f64,
    viewport_height: f64,
) -> (usize, usize, f64, f64) {
    let full_height = n_rows as f64 * ROW_HEIGHT;
    let visible = (viewport_height / ROW_HEIGHT).ceil() as usize;
    let scroll_top = scroll_top.max(0.0);
    let (first_visible, content_height) = if full_height > MAX_SCROLL_HEIGHT {
        // Scaled: the scroll position's fraction of the way down picks the same fraction
        // of the rows, so the bottom of the scrollbar shows the last row.
        let max_scroll = (MAX_SCROLL_HEIGHT - viewport_height).max(1.0);
        let fraction = (scroll_top / max_scroll).min(1.0);
        let last_first = n_rows.saturating_sub(visible);
        let first_visible = (fraction * last_first as f64).round() as usize;
        (first_visible, MAX_SCROLL_HEIGHT)
    } else {
        ((scroll_top / ROW_HEIGHT) as usize, full_height)
    };
    let first = first_visible.saturating_sub(OVERSCAN_ROWS).min(n_rows);
    // Overscan only where there are rows: none above the first row, none below the last.
    let end = (first_visible + visible + OVERSCAN_ROWS).min(n_rows);
    let count = end.saturating_sub(first);
    let above = if full_height > MAX_SCROLL_HEIGHT {
        // The first visible row sits at the top of the viewport.
        (scroll_top - (first_visible - first) as f64 * ROW_HEIGHT).max(0.0)
    } else {
        first as f64 * ROW_HEIGHT
    };
    let below = (content_height - above - count as f64 * ROW_HEIGHT).max(0.0);
    (first, count, above, below)
}

/// A sortable column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Position,
    TraceId,
    Question,
    Class,
    Kept,
    Tokens,
    /// A score column of the core's metric table.
    Score(ScoreColumn),
}

impl Column {
    /// Every column: the trace's fields, then the metric table's score columns in its order.
    pub fn all() -> Vec<Column> {
        let mut columns = vec![
            Column::Position,
            Column::TraceId,
            Column::Question,
            Column::Class,
            Column::Kept,
            Column::Tokens,
        ];
        columns.extend(
            score_columns(ColumnSet::Full)
                .iter()
                .map(|&column| Column::Score(column)),
        );
        columns
    }

    fn title(self) -> &'static str {
        match self {
            Column::Position => "#",
            Column::TraceId => "trace",
            Column::Question => "question",
            Column::Class => "class",
            Column::Kept => "kept",
            Column::Tokens => "tokens",
            Column::Score(column) => column.name(),
        }
    }

    /// The hover text of the column's header.
    fn explain(self) -> &'static str {
        match self {
            Column::Score(ScoreColumn::Metric(metric)) => metric.info().summary,
            Column::Score(ScoreColumn::Consistency) => {
                "Mean similarity to the question's other traces."
            }
            _ => "Sort by this column",
        }
    }

    /// What a row shows in this column.
    fn cell(self, set: &ScoredSet, idx: usize, trace: &TraceScores, kept: bool) -> String {
        match self {
            Column::Position => (idx + 1).to_string(),
            Column::TraceId => trace.trace_id.clone(),
            Column::Question => set.question_id(trace).to_owned(),
            Column::Class => set.class_name(trace.class).unwrap_or(NO_CLASS).to_owned(),
            Column::Kept => if kept { "✓" } else { "" }.to_owned(),
            Column::Tokens => trace.n_tokens.to_string(),
            Column::Score(column) => number(column.value(trace)),
        }
    }
}

fn number(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), |v| format!("{v:.4}"))
}

/// Orders trace indices by a column; nulls last either way, input order breaks ties.
pub fn sort_rows(set: &ScoredSet, kept: &[bool], column: Column, ascending: bool) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..set.traces.len()).collect();
    let traces = &set.traces;
    let value = |idx: usize| -> Option<f64> {
        let trace = traces.get(idx)?;
        match column {
            Column::Score(column) => column.value(trace),
            Column::Tokens => Some(f64::from(trace.n_tokens)),
            Column::Kept => Some(f64::from(u8::from(kept.get(idx).copied().unwrap_or(false)))),
            _ => None,
        }
    };
    let text = |idx: usize| -> String {
        traces
            .get(idx)
            .map_or_else(String::new, |trace| match column {
                Column::TraceId => trace.trace_id.clone(),
                Column::Question => set.question_id(trace).to_owned(),
                Column::Class => set.class_name(trace.class).unwrap_or(NO_CLASS).to_owned(),
                _ => String::new(),
            })
    };
    match column {
        Column::Position => {}
        Column::TraceId | Column::Question | Column::Class => {
            let keys: Vec<String> = rows.iter().map(|&idx| text(idx)).collect();
            rows.sort_by(|&a, &b| keys.get(a).cmp(&keys.get(b)).then(a.cmp(&b)));
        }
        _ => {
            let keys: Vec<Option<f64>> = rows.iter().map(|&idx| value(idx)).collect();
            rows.sort_by(|&a, &b| {
                let (x, y) = (
                    keys.get(a).copied().flatten(),
                    keys.get(b).copied().flatten(),
                );
                match (x, y) {
                    (Some(x), Some(y)) => {
                        let order = x.total_cmp(&y);
                        if ascending { order } else { order.reverse() }
                    }
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                }
                .then(a.cmp(&b))
            });
            return rows;
        }
    }
    if !ascending {
        rows.reverse();
    }
    rows
}

#[component]
pub fn TracesTable(
    scored: RwSignal<Option<Arc<ScoredSet>>>,
    selection: Memo<Option<Selection>>,
    open: Callback<usize>,
    table_filter: RwSignal<Option<TableFilter>>,
    /// Downloads the traces the table shows (indices into the run's traces).
    export_rows: Callback<Vec<u32>>,
) -> impl IntoView {
    let sort = RwSignal::new((Column::Position, true));
    // The scroll window: (scroll offset, visible height) of the table's scroll box.
    let scroll = RwSignal::new((0.0f64, INITIAL_WINDOW_ROWS as f64 * ROW_HEIGHT));
    let scroll_box = NodeRef::<leptos::html::Div>::new();
    let rows = Memo::new(move |_| {
        let (column, ascending) = sort.get();
        scored.with(|set| {
            let set = set.as_ref()?;
            // Only the "kept" column's order depends on the filter: other orders are not
            // sorted again when a cut-off moves.
            let kept = if column == Column::Kept {
                selection
                    .with(|s| s.as_ref().map(|s| s.kept.clone()))
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let mut rows = sort_rows(set, &kept, column, ascending);
            table_filter.with(|filter| {
                if let Some(filter) = filter {
                    rows.retain(|&idx| {
                        set.traces
                            .get(idx)
                            .is_some_and(|trace| filter.matches(trace))
                    });
                }
            });
            Some(Arc::new(rows))
        })
    });
    let n_rows = move || rows.with(|rows| rows.as_ref().map_or(0, |rows| rows.len()));
    let measure = move || {
        if let Some(element) = scroll_box.get_untracked() {
            scroll.set((
                f64::from(element.scroll_top()),
                f64::from(element.client_height()),
            ));
        }
    };
    // New rows (a new run, another sort): measure the scroll box again, as it may have
    // been laid out since, or resized.
    // Measured at the next frame: read now, right after the rows changed, the size would
    // force a layout of the page of its own; in the frame's callback it is the layout the
    // frame does anyway.
    Effect::new(move |_| {
        rows.with(|_| ());
        request_animation_frame(measure);
    });
    let on_scroll = move |_| measure();
    // A new run's rows render in a task after the frame that shows the rest of its results
    // (the overview, the summary, the table's header): that first frame lays out the whole
    // dashboard, the largest main-thread task on a big file, and rows in it make it longer.
    // `rows_for` is the run whose rows may render (its set's address).
    let rows_for = RwSignal::new(0usize);
    Effect::new(move |_| {
        let Some(address) = scored.with(|set| set.as_ref().map(|set| Arc::as_ptr(set) as usize))
        else {
            return;
        };
        request_animation_frame(move || {
            set_timeout(
                move || {
                    crate::timeline::mark("page: render the table's rows");
                    let _ = rows_for.try_set(address);
                },
                std::time::Duration::ZERO,
            );
        });
    });
    move || {
        scored.with(|set| set.as_ref().map(Arc::clone)).map(|set| {
            let header = Column::all()
                .into_iter()
                .map(|column| {
                    let marker = move || match sort.get() {
                        (c, true) if c == column => " ▲",
                        (c, false) if c == column => " ▼",
                        _ => "",
                    };
                    let aria_sort = move || match sort.get() {
                        (c, true) if c == column => "ascending",
                        (c, false) if c == column => "descending",
                        _ => "none",
                    };
                    // A button in the header cell: sortable from the keyboard too.
                    view! {
                        <th class="sortable" aria-sort=aria_sort>
                            <button class="sort" title=column.explain() on:click=move |_| {
                                sort.update(|(current, ascending)| {
                                    if *current == column { *ascending = !*ascending } else { *current = column; *ascending = true }
                                });
                                if let Some(element) = scroll_box.get() {
                                    element.set_scroll_top(0);
                                }
                            }>{column.title()}{marker}</button>
                        </th>
                    }
                })
                .collect_view();
            let set_for_rows = Arc::clone(&set);
            let body = move || {
                if rows_for.get() != Arc::as_ptr(&set_for_rows) as usize {
                    return None;
                }
                let kept = selection.with(|s| s.as_ref().map(|s| s.kept.clone())).unwrap_or_default();
                let (scroll_top, viewport_height) = scroll.get();
                rows.with(|rows| {
                    let rows = rows.as_ref()?;
                    let (first, count, above, below) = window_rows(rows.len(), scroll_top, viewport_height);
                    let n_columns = Column::all().len().to_string();
                    let spacer = move |height: f64| view! {
                        <tr class="spacer" aria-hidden="true"><td colspan=n_columns.clone() style=format!("height:{height}px")></td></tr>
                    };
                    Some(view! {
                        {spacer(above)}
                        {rows.iter()
                            .skip(first)
                            .take(count)
                            .filter_map(|&idx| set_for_rows.traces.get(idx).map(|t| (idx, t)))
                            .map(|(idx, trace)| row_view(&set_for_rows, idx, trace, kept.get(idx).copied().unwrap_or(false), open))
                            .collect_view()}
                        {spacer(below)}
                    })
                })
            };
            view! {
                <section class="traces">
                    <h2>"Traces"</h2>
                    <p class="explain">"Click a column to sort, a row to read the trace; a class or a histogram bar to show only its traces."</p>
                    {move || table_filter.get().map(|filter| {
                        let text = scored.with(|set| set.as_ref().map(|set| filter.describe(set))).unwrap_or_default();
                        view! {
                            <p class="table-filter" data-testid="table-filter">
                                {format!("Showing {text}: {} traces. ", n_rows())}
                                <button data-testid="clear-table-filter" on:click=move |_| table_filter.set(None)>"Show all"</button>
                                " "
                                <button data-testid="export-selection" title="Download these traces in the export format"
                                    on:click=move |_| {
                                        let mut indices: Vec<u32> = rows.with_untracked(|rows| {
                                            rows.as_ref().map(|rows| rows.iter().map(|&idx| idx as u32).collect()).unwrap_or_default()
                                        });
                                        // In file order, as every other download.
                                        indices.sort_unstable();
                                        export_rows.run(indices);
                                    }>"Download these"</button>
                            </p>
                        }
                    })}
                    <div class="table-scroll" tabindex="0" role="region" aria-label="Traces table"
                        node_ref=scroll_box on:scroll=on_scroll>
                        <table data-testid="traces-table" data-rows=move || n_rows().to_string()>
                            <thead><tr>{header}</tr></thead>
                            <tbody>{body}</tbody>
                        </table>
                    </div>
                </section>
            }
        })
    }
}

fn row_view(
    set: &ScoredSet,
    idx: usize,
    trace: &TraceScores,
    kept: bool,
    open: Callback<usize>,
) -> impl IntoView + use<> {
    let cells: Vec<String> = Column::all()
        .into_iter()
        .map(|column| column.cell(set, idx, trace, kept))
        .collect();
    view! {
        <tr class:kept=kept tabindex="0" on:click=move |_| open.run(idx) on:keydown=move |ev| open_on_key(&ev, || open.run(idx))>
            {cells.into_iter().map(|cell| view! { <td>{cell}</td> }).collect_view()}
        </tr>
    }
}

/// Enter or Space on a focused row opens it, as a click does.
fn open_on_key(event: &leptos::ev::KeyboardEvent, open: impl FnOnce()) {
    if matches!(event.key().as_str(), "Enter" | " ") {
        event.prevent_default();
        open();
    }
}

/// Background colour of a token: green for likely, red for unlikely (by probability).
pub fn token_colour(logprob: Option<f64>) -> String {
    match logprob {
        None => "hsl(0, 0%, 80%)".to_owned(),
        Some(logprob) => {
            let probability = logprob.exp().clamp(0.0, 1.0);
            format!("hsl({:.0}, 75%, 85%)", 120.0 * probability)
        }
    }
}

fn token_title(token: &TokenView) -> String {
    let mut title = match token.logprob {
        Some(logprob) => format!("log-prob {logprob:.4} (p = {:.3})", logprob.exp()),
        None => "invalid log-prob (a sentinel): not scored".to_owned(),
    };
    for (text, logprob) in token.top.iter().take(10) {
        title.push_str(&format!("\n  {text:?}: {logprob:.4}"));
    }
    title
}

#[component]
pub fn TraceView(
    scored: RwSignal<Option<Arc<ScoredSet>>>,
    selection: Memo<Option<Selection>>,
    opened: RwSignal<Option<(usize, Arc<TraceDetail>)>>,
    open: Callback<usize>,
) -> impl IntoView {
    move || {
        let (trace_idx, detail) = opened.get()?;
        let set = scored.with(|set| set.as_ref().map(Arc::clone))?;
        let trace = set.traces.get(trace_idx)?.clone();
        let kept = selection
            .with(|s| s.as_ref().map(|s| s.kept.clone()))
            .unwrap_or_default();
        let class = set.class_name(trace.class).unwrap_or(NO_CLASS).to_owned();
        let siblings: Vec<usize> = set
            .traces
            .iter()
            .enumerate()
            .filter(|(idx, t)| t.question_idx == trace.question_idx && *idx != trace_idx)
            .map(|(idx, _)| idx)
            .collect();
        let tokens = if detail.tokens.is_empty() {
            view! { <p class="explain">"This trace has no token log-probs."</p> }.into_any()
        } else {
            detail
                .tokens
                .iter()
                .enumerate()
                .map(|(idx, token)| {
                    let text = token.text.clone().unwrap_or_else(|| format!("[{idx}]"));
                    view! {
                        <span class="token" style=format!("background:{}", token_colour(token.logprob)) title=token_title(token)>{text}</span>
                    }
                })
                .collect_view()
                .into_any()
        };
        Some(view! {
            <section class="trace-view" data-testid="trace-view" role="dialog" aria-label="Trace"
                on:keydown=move |ev| if ev.key() == "Escape" { opened.set(None) }>
                <h2>{format!("Trace {} — question {}", trace.trace_id, set.question_id(&trace))}</h2>
                <p>
                    {format!(
                        "class {class} · {} · ppl {} · consistency {} · cocoa_ppl {} · {} valid tokens, {} invalid",
                        if kept.get(trace_idx).copied().unwrap_or(false) { "kept" } else { "dropped" },
                        number(trace.ppl), number(trace.consistency), number(trace.cocoa_ppl()),
                        trace.n_tokens, trace.invalid_tokens
                    )}
                    <button data-testid="close-trace" title="Close (Esc)" on:click=move |_| opened.set(None)>"Close"</button>
                </p>
                {detail.prompt.clone().map(|prompt| view! { <h3>"Prompt"</h3><p class="prompt">{prompt}</p> })}
                <h3 title="Each token is coloured by its probability (green likely, red unlikely); hover for the log-prob and the alternatives">"Reasoning"</h3>
                <p class="tokens">{tokens}</p>
                {(detail.tokens.iter().all(|t| t.text.is_none())).then(|| detail.text.clone().map(|text| view! { <p class="text">{text}</p> }))}
                <p>{format!("Answer: {}", detail.answer.clone().unwrap_or_else(|| class.clone()))}</p>
                <h3>{format!("Other samples of this question ({})", siblings.len())}</h3>
                <table>
                    <thead><tr><th>"trace"</th><th>"class"</th><th>"kept"</th><th>"ppl"</th><th>"consistency"</th><th>"cocoa_ppl"</th></tr></thead>
                    <tbody>
                        {siblings.into_iter().filter_map(|idx| set.traces.get(idx).map(|t| (idx, t.clone()))).map(|(idx, sibling)| {
                            let sibling_class = set.class_name(sibling.class).unwrap_or(NO_CLASS).to_owned();
                            view! {
                                <tr tabindex="0" on:click=move |_| open.run(idx) on:keydown=move |ev| open_on_key(&ev, || open.run(idx))>
                                    <td>{sibling.trace_id.clone()}</td>
                                    <td>{sibling_class}</td>
                                    <td>{if kept.get(idx).copied().unwrap_or(false) { "✓" } else { "" }}</td>
                                    <td>{number(sibling.ppl)}</td>
                                    <td>{number(sibling.consistency)}</td>
                                    <td>{number(sibling.cocoa_ppl())}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </section>
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test as test;

    wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

    #[test]
    fn the_window_holds_the_visible_rows_and_the_overscan_that_exists() {
        let viewport = 16.0 * ROW_HEIGHT;
        assert_eq!(window_rows(0, 0.0, viewport), (0, 0, 0.0, 0.0));
        // At the top: no overscan above.
        assert_eq!(
            window_rows(1000, 0.0, viewport),
            (0, 20, 0.0, (1000.0 - 20.0) * ROW_HEIGHT)
        );
        // Scrolled to row 100: four rows above it, the visible 16 and four below.
        assert_eq!(
            window_rows(1000, 100.0 * ROW_HEIGHT, viewport),
            (96, 24, 96.0 * ROW_HEIGHT, (1000.0 - 120.0) * ROW_HEIGHT)
        );
        // At the bottom: no overscan below, no space left below.
        assert_eq!(
            window_rows(120, 104.0 * ROW_HEIGHT, viewport),
            (100, 20, 100.0 * ROW_HEIGHT, 0.0)
        );
        // Fewer rows than the viewport holds: all of them.
        assert_eq!(window_rows(5, 0.0, viewport), (0, 5, 0.0, 0.0));
    }

    #[test]
    fn a_huge_table_scales_its_scroll_height_and_still_reaches_its_last_row() {
        let viewport = 16.0 * ROW_HEIGHT;
        let n_rows = 10_000_000;
        let (first, count, above, below) =
            window_rows(n_rows, MAX_SCROLL_HEIGHT - viewport, viewport);
        assert!(first + count >= n_rows - 1, "{first} + {count}");
        assert!(above + count as f64 * ROW_HEIGHT + below <= MAX_SCROLL_HEIGHT + ROW_HEIGHT);
    }
}
