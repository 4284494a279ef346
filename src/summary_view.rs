//! What the side panel says about a run: its status, summary, per-class counts and the
//! stepper that walks a newcomer through the loop.

use crate::app::Status;
use leptos::prelude::*;
use std::sync::Arc;
use tracesift_core::dataset::{NO_CLASS, ScoredSet};
use tracesift_core::filter::Selection;
use tracesift_core::settings::Backend;

#[component]
pub fn StatusLine(
    status: RwSignal<Status>,
    /// Stops embedding texts for `semantic` and goes back to the previous similarity.
    on_cancel: Callback<()>,
) -> impl IntoView {
    move || {
        match status.get() {
        Status::Embedding { done, total, since } => {
            let what = if done == 0 {
                " loading the sentence-embedding model (all-MiniLM-L6-v2, 90 MB, cached after the first time)…".to_owned()
            } else {
                format!(
                    " embedding texts for semantic similarity: {done} of {total}{}",
                    time_left(done, total, since)
                )
            };
            view! {
                <p class="status" data-testid="embedding" data-done=done.to_string() data-total=total.to_string()>
                    <progress data-testid="progress" max=f64::from(total.max(1)) value=f64::from(done)></progress>
                    {what}
                    " "
                    <button data-testid="cancel-embedding" title="Stop embedding and go back to the previous similarity; the results shown stay" on:click=move |_| on_cancel.run(())>"Cancel"</button>
                </p>
            }
            .into_any()
        }
        Status::Idle => view! { <p class="status">"No file loaded."</p> }.into_any(),
        Status::Loading { bytes_done, bytes_total } => view! {
            <p class="status">
                <progress data-testid="progress" max=bytes_total.max(1.0) value=bytes_done></progress>
                {if bytes_total > 0.0 {
                    format!(" reading and scoring… {:.1} of {:.1} MB", bytes_done / 1e6, bytes_total / 1e6)
                } else {
                    " reading and scoring…".to_owned()
                }}
            </p>
        }
        .into_any(),
        Status::Ready { millis, workers } => view! {
            <p class="status" data-testid="scored-in" data-millis=millis.to_string() data-workers=workers.to_string()>
                {if workers > 1 {
                    format!("Scored in {millis:.0} ms by {workers} workers.")
                } else {
                    format!("Scored in {millis:.0} ms.")
                }}
            </p>
        }
        .into_any(),
        Status::Failed(message) => view! { <p class="status error">{message}</p> }.into_any(),
    }
    }
}

/// ", about 4 min left", from the rate since the first text was done.
fn time_left(done: u32, total: u32, since: Option<(f64, u32)>) -> String {
    let Some((started, done_then)) = since else {
        return String::new();
    };
    let rate_done = done.saturating_sub(done_then);
    if rate_done == 0 {
        return String::new();
    }
    let elapsed = js_sys::Date::now() - started;
    let seconds = elapsed / f64::from(rate_done) * f64::from(total.saturating_sub(done)) / 1e3;
    if seconds < 90.0 {
        format!(", about {} s left", seconds.ceil())
    } else {
        format!(", about {} min left", (seconds / 60.0).round())
    }
}

#[component]
pub fn Summary(scored: RwSignal<Option<Arc<ScoredSet>>>) -> impl IntoView {
    move || {
        scored.with(|set| {
            let set = set.as_ref()?;
            let report = &set.report;
            let n_classes = report.classes.keys().filter(|name| name.as_str() != NO_CLASS).count();
            let format = report.format.clone().unwrap_or_else(|| "unknown".to_owned());
            let skipped: Vec<String> = report
                .skipped
                .iter()
                .map(|skip| {
                    let place = if skip.line == 0 { String::new() } else { format!("line {}: ", skip.line) };
                    match &skip.file {
                        Some(file) => format!("{file}: {place}{}", skip.reason),
                        None => format!("{place}{}", skip.reason),
                    }
                })
                .collect();
            let n_skipped = skipped.len();
            // What was assembled, left out or regrouped on the way in, by kind.
            let notes: Vec<String> = report
                .notes
                .iter()
                .map(|note| {
                    let lines: Vec<String> = note.lines.iter().map(u64::to_string).collect();
                    let more = if note.records > note.lines.len() as u64 { ", …" } else { "" };
                    format!("{} — {} ({} records; lines {}{more})", note.what, note.count, note.records, lines.join(", "))
                })
                .collect();
            let has_notes = !notes.is_empty();
            Some(view! {
                <section class="summary" data-testid="summary">
                    <p>
                        {format!(
                            "{} traces, {} questions, {} classes, format {}; {} lines read, {} skipped.",
                            report.traces, report.questions, n_classes, format, report.lines, n_skipped
                        )}
                    </p>
                    <Show when=move || { n_skipped > 0 }>
                        <ul class="skipped">
                            {skipped.iter().take(50).map(|line| view! { <li>{line.clone()}</li> }).collect_view()}
                        </ul>
                    </Show>
                    <Show when=move || has_notes>
                        <ul class="skipped" data-testid="import-notes">
                            {notes.iter().map(|line| view! { <li>{line.clone()}</li> }).collect_view()}
                        </ul>
                    </Show>
                </section>
            })
        })
    }
}

/// What ran the last scoring (the report's `cpu` / `gpu: <adapter>`), or before any run
/// what the backend setting would use.
pub fn backend_label(ran: Option<&str>, choice: Backend, adapter: Option<&str>) -> String {
    let adapter = match ran {
        Some(ran) => ran.strip_prefix("gpu: "),
        None => adapter.filter(|_| choice == Backend::Gpu),
    };
    match adapter {
        Some(name) => format!("WebGPU ({name})"),
        None => "CPU".to_owned(),
    }
}

pub(crate) fn backend_title(adapter: Option<String>) -> String {
    match adapter {
        Some(name) => format!(
            "Where the arithmetic runs. WebGPU adapter: {name}. Backend `gpu` uses it for token sums and similarities; `auto` only for large ROUGE-L work on a hardware GPU."
        ),
        None => "Where the arithmetic runs. This browser offers no WebGPU adapter, so everything runs on the CPU (the reference path).".to_owned(),
    }
}

#[component]
pub fn ClassCounts(
    scored: RwSignal<Option<Arc<ScoredSet>>>,
    selection: Memo<Option<Selection>>,
    table_filter: RwSignal<Option<crate::traces::TableFilter>>,
) -> impl IntoView {
    move || {
        let rows = scored.with(|set| {
            let set = set.as_ref()?;
            selection.with(|selection| {
                let selection = selection.as_ref()?;
                // Counted by class index (∅ last), named once per class.
                let mut counts = vec![(0usize, 0usize); set.classes.len() + 1];
                for (trace, kept) in set.traces.iter().zip(&selection.kept) {
                    let slot = trace
                        .class
                        .map_or(set.classes.len(), |class| class as usize);
                    if let Some(count) = counts.get_mut(slot) {
                        count.0 += 1;
                        count.1 += usize::from(*kept);
                    }
                }
                let mut rows: Vec<(String, usize, usize)> = counts
                    .into_iter()
                    .enumerate()
                    .filter(|(_, (all, _))| *all > 0)
                    .map(|(slot, (all, kept))| {
                        let class = u32::try_from(slot)
                            .ok()
                            .filter(|_| slot < set.classes.len());
                        let name = set.class_name(class).unwrap_or(NO_CLASS).to_owned();
                        (name, all, kept)
                    })
                    .collect();
                rows.sort();
                Some((
                    rows,
                    selection.n_kept,
                    selection.groups.iter().any(|g| g.tie_at_cutoff),
                ))
            })
        })?;
        let (rows, n_kept, tie) = rows;
        Some(view! {
            <section class="classes">
                <h2>"Per class"</h2>
                <table data-testid="class-counts">
                    <thead><tr><th>"class"</th><th>"traces"</th><th>"kept"</th></tr></thead>
                    <tbody>
                        {rows.into_iter().map(|(name, all, kept)| {
                            // A class (not ∅) shows only its traces in the table.
                            let class = scored.with_untracked(|set| {
                                set.as_ref().and_then(|set| set.classes.iter().position(|c| *c == name))
                            });
                            let cell = match class {
                                Some(class) => view! {
                                    <button class="link" title="Show only this class's traces in the table"
                                        on:click=move |_| table_filter.set(Some(crate::traces::TableFilter::class(class as u32)))>
                                        {name}
                                    </button>
                                }.into_any(),
                                None => view! { <span>{name}</span> }.into_any(),
                            };
                            view! { <tr><td>{cell}</td><td>{all}</td><td>{kept}</td></tr> }
                        }).collect_view()}
                    </tbody>
                </table>
                <p data-testid="kept-count">{format!("{n_kept} traces kept.")}</p>
                <Show when=move || tie>
                    <p class="notice">"Tied scores straddle a cut-off: the tie-break order (ppl, then trace id) decided part of what is kept."</p>
                </Show>
            </section>
        })
    }
}

/// Walks a newcomer from upload to export; the current step is highlighted.
#[component]
pub fn Guide(
    scored: RwSignal<Option<Arc<ScoredSet>>>,
    downloaded: RwSignal<bool>,
    opened_any: Signal<bool>,
) -> impl IntoView {
    let steps: [(&str, &str); 5] = [
        (
            "Load traces",
            "Drop a file of traces (or try the demo): one greedy and several sampled answers per question, with token log-probs.",
        ),
        (
            "Read the summary",
            "How many traces, questions and classes were found, and which lines were skipped and why.",
        ),
        (
            "Choose how to filter",
            "CoCoA (cocoa_ppl) multiplies perplexity by disagreement with the other samples; keeping its lowest 10 % per class is the paper's recipe.",
        ),
        (
            "Inspect",
            "Per-class counts and charts show what the cut-off keeps; click a trace to read it token by token.",
        ),
        (
            "Download",
            "Export the kept traces in your trainer's format, with the matched random baseline for comparison.",
        ),
    ];
    let current = move || {
        if scored.with(Option::is_none) {
            0
        } else if downloaded.get() {
            5
        } else if opened_any.get() {
            4
        } else {
            2
        }
    };
    // A compact stepper: the steps in a row (each explained on hover), and the current
    // step's explanation under them.
    let current_text = move || {
        steps
            .get(current())
            .map_or("Done: the kept traces are downloaded.", |(_, text)| *text)
    };
    view! {
        <section class="guide" data-testid="guide" aria-label="How it works">
            <ol class="stepper">
                {steps.into_iter().enumerate().map(|(idx, (title, text))| view! {
                    <li class:done=move || idx < current() class:current=move || idx == current()
                        title=text aria-current=move || (idx == current()).then_some("step")>
                        <span class="step-number">{idx + 1}</span>" "{title}
                    </li>
                }).collect_view()}
            </ol>
            <p class="explain">{current_text}</p>
        </section>
    }
}
