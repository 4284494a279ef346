//! The page: load files, watch the worker score them, move the settings, see what is kept
//! per class, and download the fine-tuning set.

use std::sync::Arc;

use js_sys::{Array, Uint8Array};
use leptos::prelude::*;
use tracesift_core::compare::{Agreement, Interval, Ranking};
use tracesift_core::dataset::{NO_CLASS, ScoredSet, TraceScores};
use tracesift_core::evaluate::EvalReport;
use tracesift_core::filter::{self, FilterOptions, Selection};
use tracesift_core::settings::{Backend, Metric, Named, Rule, Settings};
use tracesift_core::signals::combo::parse_combine;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Blob, MessageEvent, Worker};

use crate::charts_view::{ChartKind, ChartPanel};
use crate::data_link::{DataLink, LinkState, LinkedDataPrompt, LinkedFile};
use crate::fragment;
use crate::offline::{OfflineStatus, register_service_worker};
use crate::protocol::{Envelope, ExportWhat, ToPage, ToWorker, TraceDetail};
use crate::traces::{TraceView, TracesTable};

/// The demo dataset, served from the app's own origin.
const DEMO_FILE: &str = "demo.jsonl.gz";

/// Where a run stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Idle,
    Loading {
        bytes_done: f64,
        bytes_total: f64,
    },
    /// `workers`: how many workers parsed the input (helpers for a large file).
    Ready {
        millis: f64,
        workers: u32,
    },
    Failed(String),
}

/// One sentence per metric, for the side panel and hover titles (from the core's table).
pub fn explain_metric(metric: Metric) -> &'static str {
    metric.info().summary
}

#[component]
pub fn App() -> impl IntoView {
    let initial_hash = window().location().hash().unwrap_or_default();
    let (initial_settings, link_problems) =
        fragment::apply_fragment(&initial_hash, &Settings::default());
    let page_url = window().location().href().unwrap_or_default();
    // A `#data=` link: offered, never fetched until the user asks.
    let link = RwSignal::new(DataLink::from_fragment(&initial_hash, &page_url));
    let offline_ready = RwSignal::new(false);
    register_service_worker(offline_ready);
    let settings = RwSignal::new(initial_settings);
    let scored: RwSignal<Option<Arc<ScoredSet>>> = RwSignal::new(None);
    let status = RwSignal::new(Status::Idle);
    let notice = RwSignal::new(link_problems.join("; "));
    // The newest run asked of the worker, and the run whose results are on the screen (0:
    // none). Requests about the results name the run shown, so a download, a trace or an
    // evaluation always matches the screen, even while a newer run is scoring.
    let run = StoredValue::new(0u32);
    let shown_run = StoredValue::new(0u32);
    let inputs: StoredValue<Vec<(String, Blob)>, LocalStorage> = StoredValue::new_local(Vec::new());
    // The request file, if one was given: its prompts go into the downloads.
    let requests_input: StoredValue<Option<(String, Blob)>, LocalStorage> =
        StoredValue::new_local(None);
    let requests_summary: RwSignal<Option<String>> = RwSignal::new(None);

    let opened: RwSignal<Option<(usize, Arc<TraceDetail>)>> = RwSignal::new(None);
    let downloaded = RwSignal::new(false);
    let opened_any = Signal::derive(move || opened.with(Option::is_some));
    // The WebGPU adapter the worker found, if any.
    let adapter: RwSignal<Option<String>> = RwSignal::new(None);
    // The paper's analysis, computed by the worker: only where the file has gold labels.
    let evaluation: RwSignal<Option<EvalReport>> = RwSignal::new(None);
    // Which signal fits this data: the ranking (with labels) and the agreement matrix.
    let comparison: RwSignal<Option<Comparison>> = RwSignal::new(None);
    // The table's view of the run (a class or a histogram bin clicked); a new run clears it.
    let table_filter: RwSignal<Option<crate::traces::TableFilter>> = RwSignal::new(None);
    Effect::new(move |_| {
        scored.track();
        table_filter.set(None);
    });
    let worker = start_worker(WorkerSinks {
        scored,
        status,
        notice,
        run,
        shown_run,
        opened,
        adapter,
        evaluation,
        comparison,
        parts: StoredValue::new_local((0, Vec::new())),
        requests_summary,
        inputs,
        link,
    });
    let open_trace = Callback::new(move |trace_idx: usize| {
        post_request(
            &worker,
            &ToWorker::Trace {
                run: shown_run.get_value(),
                trace_idx,
            },
            None,
        );
    });

    // A fragment edited by hand (or a link opened in this tab) changes the settings too.
    let on_hash_change = Closure::<dyn Fn()>::new(move || {
        let hash = window().location().hash().unwrap_or_default();
        let current = settings.get_untracked();
        let (next, problems) = fragment::apply_fragment(&hash, &current);
        if next != current {
            settings.set(next);
        }
        let href = window().location().href().unwrap_or_default();
        let next_link = DataLink::from_fragment(&hash, &href);
        if link.with_untracked(|now| {
            now.as_ref().map(|l| &l.raw) != next_link.as_ref().map(|l| &l.raw)
        }) {
            link.set(next_link);
        }
        if !problems.is_empty() {
            notice.set(problems.join("; "));
        }
    });
    let _ = window()
        .add_event_listener_with_callback("hashchange", on_hash_change.as_ref().unchecked_ref());
    // The page keeps listening for its whole life.
    on_hash_change.forget();

    // Keep the URL fragment in step with the settings, so a copied link reproduces the view.
    Effect::new(move |_| {
        let fragment = settings.with(fragment::to_fragment);
        let fragment = match link.with(|link| link.as_ref().map(|link| link.raw.clone())) {
            Some(raw) => fragment::with_data_link(fragment, &raw),
            None => fragment,
        };
        if let Ok(history) = window().history() {
            let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&fragment));
        }
    });

    // Scoring settings change the numbers: score again. Filter settings only re-filter.
    let scoring_key = Memo::new(move |_| {
        settings.with(|s| {
            (
                s.sim,
                s.backend,
                s.classes.clone(),
                s.pattern.clone(),
                s.format,
                s.question_field.clone(),
                s.sample_suffix.clone(),
                s.window,
                s.combine.clone(),
            )
        })
    });
    Effect::new(move |previous: Option<()>| {
        scoring_key.track();
        if previous.is_some() && inputs.with_value(|i| !i.is_empty()) {
            send_score(&worker, settings, status, run, inputs, requests_input, None);
        }
    });

    let selection = Memo::new(move |_| {
        let options = settings.with(FilterOptions::from_settings).ok()?;
        scored.with(|set| set.as_ref().map(|set| filter::select(set, &options)))
    });
    // Ask the worker to evaluate whenever the data or the filter changes; the page only
    // shows the answer (7 filter runs and AUROC sorts would block it on big files).
    let filter_options = Memo::new(move |_| settings.with(FilterOptions::from_settings).ok());
    Effect::new(move |_| {
        let options = filter_options.get();
        let labelled = scored.with(|set| {
            set.as_ref()
                .is_some_and(|set| set.traces.iter().any(|t| t.label.is_some()))
        });
        if labelled && options.is_some() {
            let request = ToWorker::Evaluate {
                run: shown_run.get_value(),
                settings: settings.get_untracked(),
            };
            post_request(&worker, &request, None);
        } else {
            evaluation.set(None);
        }
    });

    // Rank the metrics once per scored run and seed (the bootstrap does not depend on
    // the filter, so moving the filter does not redo it).
    let seed = Memo::new(move |_| settings.with(|s| s.seed));
    Effect::new(move |_| {
        seed.track();
        if scored.with(Option::is_some) {
            let request = ToWorker::Compare {
                run: shown_run.get_value(),
                settings: settings.get_untracked(),
            };
            post_request(&worker, &request, None);
        } else {
            comparison.set(None);
        }
    });

    let load = move |files: Vec<(String, Blob)>| {
        if files.is_empty() {
            return;
        }
        inputs.set_value(files);
        // The linked data, if it was loaded, is no longer what the page shows.
        link.update(|link| match link.as_ref().map(|link| &link.state) {
            Some(LinkState::Loaded) => *link = None,
            Some(LinkState::Loading) => {
                if let Some(link) = link {
                    link.state = LinkState::Offered;
                }
            }
            _ => {}
        });
        send_score(&worker, settings, status, run, inputs, requests_input, None);
    };
    let load_link = Callback::new(move |file: LinkedFile| {
        link.update(|link| {
            if let Some(link) = link {
                link.state = LinkState::Loading;
            }
        });
        send_score(
            &worker,
            settings,
            status,
            run,
            inputs,
            requests_input,
            Some(file),
        );
    });
    // A request file given after the traces scores them again, with its prompts joined.
    let on_requests = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        let file = input
            .files()
            .and_then(|list| file_list(&list).into_iter().next());
        requests_summary.set(None);
        requests_input.set_value(file);
        if inputs.with_value(|i| !i.is_empty()) {
            send_score(&worker, settings, status, run, inputs, requests_input, None);
        }
    };
    let on_files = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        if let Some(list) = input.files() {
            load(file_list(&list));
        }
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        if let Some(list) = ev.data_transfer().and_then(|transfer| transfer.files()) {
            load(file_list(&list));
        }
    };
    let load_demo = move |_| {
        status.set(Status::Loading {
            bytes_done: 0.0,
            bytes_total: 0.0,
        });
        leptos::task::spawn_local(async move {
            match fetch_blob(DEMO_FILE).await {
                Ok(blob) => load(vec![(DEMO_FILE.to_owned(), blob)]),
                Err(message) => status.set(Status::Failed(message)),
            }
        });
    };
    let download = move |what: ExportWhat| {
        let request = ToWorker::Export {
            run: shown_run.get_value(),
            settings: settings.get(),
            what,
        };
        post_request(&worker, &request, None);
        downloaded.set(true);
    };

    view! {
        <header>
            <h1>"tracesift"</h1>
            <p class="tagline">"Label-free filtering of LLM reasoning traces — everything stays in this tab."</p>
            <OfflineStatus ready=offline_ready />
            <span class="backend" title=move || backend_title(adapter.get())>"Backend: " <b data-testid="backend">{move || {
                let ran = scored.with(|set| set.as_ref().map(|set| set.report.backend.clone()));
                backend_label(ran.as_deref(), settings.with(|s| s.backend), adapter.get().as_deref())
            }}</b></span>
        </header>
        <div class="dashboard">
        // The side panel: what goes in, how it is filtered, what comes out.
        <aside class="side" aria-label="Load, settings and downloads">
            <section class="load"
                on:dragover=move |ev: leptos::ev::DragEvent| ev.prevent_default()
                on:drop=on_drop>
                <LinkedDataPrompt link=link status=status load=load_link />
                <p>"Drop trace files here (JSONL, JSON, .gz — OpenAI, OpenAI Batch, vLLM, TGI, llama.cpp, SGLang, Ollama or canonical), or "</p>
                <input type="file" multiple accept=".jsonl,.json,.gz,.ndjson" data-testid="file-input" on:change=on_files
                    aria-label="Trace files (JSONL, JSON or gzip)" />
                <button data-testid="demo" on:click=load_demo>"Try the demo data"</button>
                <label class="requests" title="The requests the responses answered: the OpenAI Batch input JSONL (joined by custom_id), or the request bodies as JSONL (joined by id, else one per response in order). The openai, trl, sharegpt and alpaca downloads then carry their system and user messages.">
                    "Requests (optional) "
                    <input type="file" accept=".jsonl,.json,.gz,.ndjson" data-testid="requests-input" on:change=on_requests />
                </label>
                <Show when=move || requests_summary.with(Option::is_some)>
                    <p class="requests-summary" data-testid="requests-summary">{move || requests_summary.get().unwrap_or_default()}</p>
                </Show>
                <StatusLine status=status />
            </section>
            <Guide scored=scored downloaded=downloaded opened_any=opened_any />
            <Show when=move || !notice.get().is_empty()>
                <p class="notice">{move || notice.get()}</p>
            </Show>
            <Summary scored=scored />
            <section class="downloads">
                <h2>"Download"</h2>
                <button data-testid="download-kept" disabled=move || scored.with(Option::is_none)
                    on:click=move |_| download(ExportWhat::Kept)>
                    {move || format!("Kept traces ({})", settings.with(|s| s.export.name()))}
                </button>
                <button data-testid="download-random" disabled=move || scored.with(Option::is_none)
                    on:click=move |_| download(ExportWhat::Random)>"Matched random baseline"</button>
                <button data-testid="download-unfiltered" disabled=move || scored.with(Option::is_none)
                    on:click=move |_| download(ExportWhat::Unfiltered)>"Unfiltered set"</button>
                <button data-testid="download-csv" disabled=move || scored.with(Option::is_none)
                    on:click=move |_| download(ExportWhat::ScoresCsv)>"Scores of every trace (CSV)"</button>
                <button data-testid="download-settings" on:click=move |_| {
                    let json = settings.with(Settings::to_json_pretty);
                    save_bytes(json.as_bytes(), "tracesift-settings.json", "application/json");
                }>"Download settings"</button>
                <button data-testid="copy-link" on:click=move |_| {
                    if let Ok(href) = window().location().href() {
                        let _ = window().navigator().clipboard().write_text(&href);
                        notice.set("Link copied: it reproduces these settings.".to_owned());
                    }
                }>"Copy link"</button>
            </section>
            <SettingsPanel settings=settings />
        </aside>
        // The workspace: the cut-off per class and the traces it keeps, together on the
        // first screen; an opened trace slides in over the table's right side.
        <main class="workspace">
            <div class="overview">
                <ChartPanel kind=ChartKind::PerClass scored=scored selection=selection settings=settings evaluation=evaluation table_filter=table_filter />
                <ClassCounts scored=scored selection=selection table_filter=table_filter />
            </div>
            <TracesTable scored=scored selection=selection open=open_trace table_filter=table_filter />
            <TraceView scored=scored selection=selection opened=opened open=open_trace />
            <section class="charts">
                <h2>"More charts"</h2>
                <ChartPanel kind=ChartKind::Counts scored=scored selection=selection settings=settings evaluation=evaluation />
                <ChartPanel kind=ChartKind::Scatter scored=scored selection=selection settings=settings evaluation=evaluation />
                <Show when=move || evaluation.with(Option::is_some)>
                    <ChartPanel kind=ChartKind::Selective scored=scored selection=selection settings=settings evaluation=evaluation />
                </Show>
            </section>
            <EvalTable evaluation=evaluation />
            <SignalFit comparison=comparison settings=settings />
        </main>
        </div>
    }
}

#[component]
pub fn StatusLine(status: RwSignal<Status>) -> impl IntoView {
    move || {
        match status.get() {
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

fn backend_title(adapter: Option<String>) -> String {
    match adapter {
        Some(name) => format!(
            "Where the arithmetic runs. WebGPU adapter: {name}. Backend `gpu` uses it for token sums and similarities; `auto` only for large ROUGE-L work on a hardware GPU."
        ),
        None => "Where the arithmetic runs. This browser offers no WebGPU adapter, so everything runs on the CPU (the reference path).".to_owned(),
    }
}

/// A `<select>` over one named setting, in step with the settings signal.
fn enum_select<T: Named + Send + Sync>(
    settings: RwSignal<Settings>,
    test_id: &'static str,
    get: fn(&Settings) -> T,
    set: fn(&mut Settings, T),
) -> impl IntoView {
    view! {
        <select data-testid=test_id on:change=move |ev| {
            if let Some(value) = T::from_name(&event_target_value(&ev)) {
                settings.update(|s| set(s, value));
            }
        }>
            {T::ALL.iter().map(|&value| view! {
                <option value=value.name() selected=move || settings.with(|s| get(s) == value)>{value.name()}</option>
            }).collect_view()}
        </select>
    }
}

#[component]
pub fn SettingsPanel(settings: RwSignal<Settings>) -> impl IntoView {
    let rule_kind = move || match settings.with(|s| s.rule()) {
        Ok(Rule::Threshold(_)) => "threshold",
        Ok(Rule::Top(_)) => "top",
        _ => "keep",
    };
    let keep_value = move || match settings.with(|s| s.rule()) {
        Ok(Rule::Keep(q)) => q,
        _ => 0.1,
    };
    view! {
        <section class="settings">
            <h2>"Settings"</h2>
            <label title=move || explain_metric(settings.with(|s| s.metric))>"Metric "
                {enum_select(settings, "metric", |s| s.metric, |s, value| s.metric = value)}
            </label>
            <p class="explain">{move || explain_metric(settings.with(|s| s.metric))}</p>
            <label title="How two traces of a question are compared for consistency">"Similarity "
                {enum_select(settings, "sim", |s| s.sim, |s, value| s.sim = value)}
            </label>
            <label title="Where the scores are computed: gpu runs token sums and similarities on WebGPU, auto only large ROUGE-L work on a hardware GPU, cpu never. Results agree within 1e-4 (ROUGE-L exactly).">"Backend "
                {enum_select(settings, "backend-choice", |s| s.backend, |s, value| s.backend = value)}
            </label>
            <label title="Score every trace, or only the greedy one of each question (as the paper does)">"Candidates "
                {enum_select(settings, "candidates", |s| s.candidates, |s, value| s.candidates = value)}
            </label>
            <label title="Keep the most confident per predicted class (per_class), or over everything (global)">"Scope "
                {enum_select(settings, "scope", |s| s.scope, |s, value| s.scope = value)}
            </label>
            <div class="rule" title="Keep a fraction of each group, the scores up to a threshold, or the top n">
                <label>"Rule "
                    <select data-testid="rule" on:change=move |ev| {
                        let rule = match event_target_value(&ev).as_str() {
                            "threshold" => Rule::Threshold(0.1),
                            "top" => Rule::Top(100),
                            _ => Rule::Keep(0.1),
                        };
                        settings.update(|s| s.set_rule(rule));
                    }>
                        <option value="keep" selected=move || rule_kind() == "keep">"keep a fraction"</option>
                        <option value="threshold" selected=move || rule_kind() == "threshold">"threshold"</option>
                        <option value="top" selected=move || rule_kind() == "top">"top n"</option>
                    </select>
                </label>
                {move || match rule_kind() {
                    "threshold" => view! {
                        <input type="number" step="0.01" data-testid="threshold"
                            prop:value=move || settings.with(|s| s.threshold.unwrap_or(0.1)).to_string()
                            on:change=move |ev| {
                                if let Ok(x) = event_target_value(&ev).parse::<f64>() && x.is_finite() {
                                    settings.update(|s| s.set_rule(Rule::Threshold(x)));
                                }
                            } />
                    }.into_any(),
                    "top" => view! {
                        <input type="number" min="0" step="1" data-testid="top"
                            prop:value=move || settings.with(|s| s.top.unwrap_or(100)).to_string()
                            on:change=move |ev| {
                                if let Ok(n) = event_target_value(&ev).parse::<u64>() {
                                    settings.update(|s| s.set_rule(Rule::Top(n)));
                                }
                            } />
                    }.into_any(),
                    _ => view! {
                        <input type="range" min="0.01" max="1" step="0.01" data-testid="keep"
                            aria-label="Share of traces kept per group"
                            prop:value=move || keep_value().to_string()
                            on:input=move |ev| {
                                if let Ok(q) = event_target_value(&ev).parse::<f64>() && q > 0.0 && q <= 1.0 {
                                    settings.update(|s| s.set_rule(Rule::Keep(q)));
                                }
                            } />
                        <span>{move || format!("{:.0} %", keep_value() * 100.0)}</span>
                    }.into_any(),
                }}
            </div>
            <label title="Cut every class to the smallest class's count">
                <input type="checkbox" data-testid="balanced" prop:checked=move || settings.with(|s| s.balanced)
                    on:change=move |ev| {
                        let input: web_sys::HtmlInputElement = event_target(&ev);
                        settings.update(|s| s.balanced = input.checked());
                    } />
                " balanced"
            </label>
            <label title="Map raw answers onto classes: up=up,upregulated,a;down=down,b (end with ! to make it strict)">"Class map "
                <input type="text" data-testid="classes" placeholder="up=up,upregulated,a;down=down,b;none=none,c"
                    prop:value=move || settings.with(|s| s.classes.clone())
                    on:change=move |ev| settings.update(|s| s.classes = event_target_value(&ev)) />
            </label>
            <label title="Regular expression for the final answer (first group, last match); empty for the default">"Answer pattern "
                <input type="text" data-testid="pattern" placeholder="default: Final answer: … or <answer>…</answer>"
                    prop:value=move || settings.with(|s| s.pattern.clone().unwrap_or_default())
                    on:change=move |ev| {
                        let value = event_target_value(&ev);
                        settings.update(|s| s.pattern = (!value.is_empty()).then_some(value));
                    } />
            </label>
            <label title="DeepConf's sliding window in tokens, for conf_tail, conf_bottom10 and conf_lowest">"Window "
                <input type="number" min="1" step="1" data-testid="window"
                    prop:value=move || settings.with(|s| s.window).to_string()
                    on:change=move |ev| {
                        if let Ok(window) = event_target_value(&ev).parse::<u32>() && window >= 1 {
                            settings.update(|s| s.window = window);
                        }
                    } />
            </label>
            <label title="Metrics whose percentile ranks combo averages, comma-separated">"Combine "
                <input type="text" data-testid="combine"
                    prop:value=move || settings.with(|s| s.combine.clone())
                    on:change=move |ev| {
                        let value = event_target_value(&ev);
                        if parse_combine(&value).is_ok() {
                            settings.update(|s| s.combine = value);
                        }
                    } />
            </label>
            <label title="The format of the downloaded set">"Export "
                {enum_select(settings, "export", |s| s.export, |s, value| s.export = value)}
            </label>
            <label title="An openai, trl, sharegpt or alpaca download in which a kept trace has no prompt would train on nothing, so it is refused; tick to download it anyway">
                <input type="checkbox" data-testid="allow-empty-prompt" prop:checked=move || settings.with(|s| s.allow_empty_prompt)
                    on:change=move |ev| {
                        let input: web_sys::HtmlInputElement = event_target(&ev);
                        settings.update(|s| s.allow_empty_prompt = input.checked());
                    } />
                " allow empty prompts"
            </label>
        </section>
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
                let mut rows: Vec<(String, usize, usize)> = Vec::new();
                for (trace, kept) in set.traces.iter().zip(&selection.kept) {
                    let name = set.class_name(trace.class).unwrap_or(NO_CLASS).to_owned();
                    match rows.iter_mut().find(|row| row.0 == name) {
                        Some(row) => {
                            row.1 += 1;
                            row.2 += usize::from(*kept);
                        }
                        None => rows.push((name, 1, usize::from(*kept))),
                    }
                }
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
                                        on:click=move |_| table_filter.set(Some(crate::traces::TableFilter { class: class as u32, bin: None }))>
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

fn file_list(list: &web_sys::FileList) -> Vec<(String, Blob)> {
    (0..list.length())
        .filter_map(|idx| list.get(idx))
        .map(|file| (file.name(), Blob::from(file)))
        .collect()
}

async fn fetch_blob(path: &str) -> Result<Blob, String> {
    let promise = window().fetch_with_str(path);
    let response: web_sys::Response = wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .map_err(|_| format!("cannot load {path}"))?
        .dyn_into()
        .map_err(|_| format!("cannot load {path}"))?;
    if !response.ok() {
        return Err(format!("cannot load {path}: HTTP {}", response.status()));
    }
    let blob = response.blob().map_err(|_| format!("cannot read {path}"))?;
    wasm_bindgen_futures::JsFuture::from(blob)
        .await
        .map_err(|_| format!("cannot read {path}"))?
        .dyn_into()
        .map_err(|_| format!("cannot read {path}"))
}

/// Asks the worker to score the inputs, or to download and score a data link instead.
fn send_score(
    worker: &StoredValue<Option<WorkerHandle>, LocalStorage>,
    settings: RwSignal<Settings>,
    status: RwSignal<Status>,
    run: StoredValue<u32>,
    inputs: StoredValue<Vec<(String, Blob)>, LocalStorage>,
    requests: StoredValue<Option<(String, Blob)>, LocalStorage>,
    link: Option<LinkedFile>,
) {
    let next_run = run.get_value() + 1;
    run.set_value(next_run);
    status.set(Status::Loading {
        bytes_done: 0.0,
        bytes_total: 0.0,
    });
    let (names, files) = match &link {
        Some(file) => (vec![file.name.clone()], Array::new()),
        None => inputs.with_value(|inputs| {
            let names: Vec<String> = inputs.iter().map(|(name, _)| name.clone()).collect();
            let files = Array::new();
            for (_, blob) in inputs {
                files.push(blob);
            }
            (names, files)
        }),
    };
    let requests = requests.get_value();
    let request = ToWorker::Score {
        run: next_run,
        settings: settings.get(),
        names,
        helper_script: worker_source().ok(),
        requests_name: requests.as_ref().map(|(name, _)| name.clone()),
        link,
    };
    let message = request_message(&request, Some(&files)).map(|message| match &requests {
        Some((_, blob)) => message.with("requests", blob),
        None => message,
    });
    deliver(worker, message);
}

/// The worker and what was asked of it before its wasm had loaded (a worker drops messages
/// that arrive before its handler exists, so they wait here until it says `Ready`).
pub struct WorkerHandle {
    worker: Worker,
    ready: bool,
    queued: Vec<Envelope>,
    /// Where a message that cannot be sent is said.
    notice: RwSignal<String>,
}

impl WorkerHandle {
    fn send(&self, message: &Envelope) {
        if let Err(error) = self
            .worker
            .post_message_with_transfer(&message.object, &message.transfer)
        {
            web_sys::console::error_2(&"cannot post to the scoring worker:".into(), &error);
            self.notice
                .set("The page could not reach its scoring worker: reload the page.".to_owned());
        }
    }
}

fn post_request(
    worker: &StoredValue<Option<WorkerHandle>, LocalStorage>,
    request: &ToWorker,
    files: Option<&Array>,
) {
    deliver(worker, request_message(request, files));
}

/// A message for the worker: the request, and the files beside it.
fn request_message(request: &ToWorker, files: Option<&Array>) -> Result<Envelope, String> {
    let message = Envelope::new(request)?;
    Ok(match files {
        Some(files) => message.with("files", files),
        None => message,
    })
}

/// Posts a message, or queues it until the worker is ready.
fn deliver(
    worker: &StoredValue<Option<WorkerHandle>, LocalStorage>,
    message: Result<Envelope, String>,
) {
    worker.update_value(|handle| {
        let Some(handle) = handle else { return };
        match message {
            Err(message) => {
                web_sys::console::error_1(&message.clone().into());
                handle.notice.set(message);
            }
            Ok(message) if handle.ready => handle.send(&message),
            Ok(message) => handle.queued.push(message),
        }
    });
}

/// Starts the scoring worker (Trunk builds it as `worker.js` + `worker_bg.wasm`) and routes
/// its messages into the page's signals.
/// Where the worker's answers go.
struct WorkerSinks {
    scored: RwSignal<Option<Arc<ScoredSet>>>,
    status: RwSignal<Status>,
    notice: RwSignal<String>,
    run: StoredValue<u32>,
    /// The run whose results are shown (see `App`).
    shown_run: StoredValue<u32>,
    opened: RwSignal<Option<(usize, Arc<TraceDetail>)>>,
    adapter: RwSignal<Option<String>>,
    evaluation: RwSignal<Option<EvalReport>>,
    comparison: RwSignal<Option<Comparison>>,
    /// The traces of the run being received (its number, the parts so far).
    parts: StoredValue<(u32, Vec<TraceScores>), LocalStorage>,
    /// What the request file gave, for the line under its slot.
    requests_summary: RwSignal<Option<String>>,
    /// The inputs, which a downloaded data link joins as a Blob.
    inputs: StoredValue<Vec<(String, Blob)>, LocalStorage>,
    link: RwSignal<Option<DataLink>>,
}

fn start_worker(sinks: WorkerSinks) -> StoredValue<Option<WorkerHandle>, LocalStorage> {
    let WorkerSinks {
        scored,
        status,
        notice,
        run,
        shown_run,
        opened,
        adapter,
        evaluation,
        comparison,
        parts,
        requests_summary,
        inputs,
        link,
    } = sinks;
    let worker = match spawn_worker() {
        Ok(worker) => worker,
        Err(message) => {
            status.set(Status::Failed(message));
            return StoredValue::new_local(None);
        }
    };
    let handle: StoredValue<Option<WorkerHandle>, LocalStorage> =
        StoredValue::new_local(Some(WorkerHandle {
            worker: worker.clone(),
            ready: false,
            queued: Vec::new(),
            notice,
        }));
    // A worker that dies (out of memory on a file too big for the tab, say) must not leave
    // the page waiting: say so, and how to go on.
    let on_error =
        Closure::<dyn Fn(web_sys::ErrorEvent)>::new(move |event: web_sys::ErrorEvent| {
            event.prevent_default();
            status.set(Status::Failed(format!(
                "The scoring worker stopped ({}). The file may need more memory than this tab has: \
             reload the page to try again, or score it with the tracesift CLI, which reads \
             files of any size.",
                event.message()
            )));
        });
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    on_error.forget();
    let on_message = Closure::<dyn Fn(MessageEvent)>::new(move |event: MessageEvent| {
        let data = event.data();
        let response = match crate::protocol::open::<ToPage>(&data) {
            Ok(response) => response,
            Err(error) => {
                let message =
                    format!("the page got a message from its worker that it cannot read: {error}");
                web_sys::console::error_1(&message.clone().into());
                status.set(Status::Failed(message));
                return;
            }
        };
        let current = run.get_value();
        let shown = shown_run.get_value();
        match response {
            ToPage::Ready { webgpu } => handle.update_value(|handle| {
                adapter.set(webgpu);
                if let Some(handle) = handle {
                    handle.ready = true;
                    for message in std::mem::take(&mut handle.queued) {
                        handle.send(&message);
                    }
                }
            }),
            ToPage::Progress {
                run,
                bytes_done,
                bytes_total,
            } if run == current => {
                status.set(Status::Loading {
                    bytes_done,
                    bytes_total,
                });
            }
            ToPage::ScoredPart { run, traces } if run == current => {
                parts.update_value(|(parts_run, received)| {
                    if *parts_run != run {
                        *parts_run = run;
                        received.clear();
                    }
                    received.extend(traces);
                });
            }
            ToPage::Scored {
                run: scored_run,
                mut set,
                millis,
                workers,
                requests,
            } if scored_run == current => {
                requests_summary.set(requests);
                set.traces = parts
                    .try_update_value(|(parts_run, received)| {
                        if *parts_run == scored_run {
                            std::mem::take(received)
                        } else {
                            Vec::new()
                        }
                    })
                    .unwrap_or_default();
                // Shown in a task of its own: this one decoded the message, the next
                // filters and renders, so neither blocks the page for long.
                set_timeout(
                    move || {
                        if run.get_value() == current {
                            shown_run.set_value(current);
                            scored.set(Some(Arc::new(*set)));
                            status.set(Status::Ready { millis, workers });
                        }
                    },
                    std::time::Duration::ZERO,
                );
            }
            ToPage::Fetched { run, name } if run == current => {
                // Kept like a dropped file: scoring again reads it here, without a download.
                if let Some(Ok(blob)) = Envelope::field(&data, "blob").map(JsCast::dyn_into::<Blob>)
                {
                    inputs.set_value(vec![(name, blob)]);
                }
                link.update(|link| {
                    if let Some(link) = link {
                        link.state = LinkState::Loaded;
                    }
                });
            }
            ToPage::Evaluated { run, report } if run == shown => {
                evaluation.set(report.map(|report| *report));
            }
            ToPage::Compared {
                run,
                ranking,
                agreement,
            } if run == shown => {
                comparison.set(Some(Comparison {
                    ranking: ranking.map(|ranking| *ranking),
                    agreement: *agreement,
                }));
            }
            ToPage::Exported {
                run,
                what,
                file_name,
                n_traces,
            } if run == shown => {
                if let Some(bytes) = Envelope::field(&data, "bytes") {
                    let bytes = Uint8Array::new(&bytes).to_vec();
                    let mime = if file_name.ends_with(".csv") {
                        "text/csv"
                    } else {
                        "application/jsonl"
                    };
                    save_bytes(&bytes, &file_name, mime);
                    notice.set(format!(
                        "Downloaded {file_name}: {n_traces} traces ({}).",
                        what.file_stem()
                    ));
                }
            }
            ToPage::Trace {
                run,
                trace_idx,
                detail,
            } if run == shown => {
                opened.set(Some((trace_idx, Arc::new(*detail))));
            }
            // Only the run on the screen speaks: an earlier run's answers are out of date.
            ToPage::Failed { run, message } if run == current => {
                status.set(Status::Failed(message));
            }
            // A request about the results shown failed while a newer run scores.
            ToPage::Failed { run, message } if run == shown => notice.set(message),
            ToPage::ExportRefused { run, message } if run == shown => notice.set(message),
            ToPage::Unreadable { message } => {
                web_sys::console::error_1(&message.clone().into());
                notice.set(message);
            }
            // Answers about a run that is neither scoring nor shown: out of date.
            ToPage::Progress { .. }
            | ToPage::ScoredPart { .. }
            | ToPage::Scored { .. }
            | ToPage::Fetched { .. }
            | ToPage::Evaluated { .. }
            | ToPage::Compared { .. }
            | ToPage::Exported { .. }
            | ToPage::Failed { .. }
            | ToPage::ExportRefused { .. }
            | ToPage::Trace { .. } => {}
        }
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The page keeps its worker for its whole life.
    on_message.forget();
    handle
}

/// The worker's bootstrap script: load Trunk's worker glue and its wasm from this origin
/// (absolute URLs, so helper workers started from a blob URL find them too).
fn worker_source() -> Result<String, String> {
    let base = window()
        .document()
        .and_then(|d| d.base_uri().ok().flatten())
        .unwrap_or_default();
    let script_url = web_sys::Url::new_with_base("worker.js", &base)
        .map_err(|_| "bad worker URL".to_owned())?
        .href();
    let wasm_url = web_sys::Url::new_with_base("worker_bg.wasm", &base)
        .map_err(|_| "bad worker URL".to_owned())?
        .href();
    Ok(format!(
        "importScripts({script_url:?}); wasm_bindgen({wasm_url:?});"
    ))
}

fn spawn_worker() -> Result<Worker, String> {
    let script = Array::new();
    script.push(&worker_source()?.into());
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("text/javascript");
    let blob = Blob::new_with_str_sequence_and_options(&script, &options)
        .map_err(|_| "cannot create the worker".to_owned())?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)
        .map_err(|_| "cannot create the worker".to_owned())?;
    Worker::new(&url).map_err(|_| "this browser cannot start the scoring worker".to_owned())
}

/// Offers bytes as a file download (no request leaves the page).
pub fn save_bytes(bytes: &[u8], file_name: &str, mime: &str) {
    let parts = Array::new();
    parts.push(&Uint8Array::from(bytes));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let Ok(blob) = Blob::new_with_u8_array_sequence_and_options(&parts, &options) else {
        return;
    };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else {
        return;
    };
    save_url(&url, file_name);
    let _ = web_sys::Url::revoke_object_url(&url);
}

/// Offers a blob: or data: URL as a file download.
pub fn save_url(url: &str, file_name: &str) {
    let Some(document) = window().document() else {
        return;
    };
    if let Ok(anchor) = document.create_element("a") {
        let _ = anchor.set_attribute("href", url);
        let _ = anchor.set_attribute("download", file_name);
        if let Some(anchor) = anchor.dyn_ref::<web_sys::HtmlElement>() {
            anchor.click();
        }
    }
}

/// AUROC and PRR of every metric, and the kept-vs-dropped accuracy (with gold labels).
#[component]
pub fn EvalTable(evaluation: RwSignal<Option<EvalReport>>) -> impl IntoView {
    move || {
        evaluation.with(|report| {
            let report = report.as_ref()?;
            let number = |value: Option<f64>| value.map_or_else(|| "—".to_owned(), |v| format!("{v:.3}"));
            let rows = report
                .metrics
                .0
                .iter()
                .map(|(metric, evaluation)| {
                    view! {
                        <tr title=explain_metric(*metric)>
                            <td>{metric.name()}</td>
                            <td>{number(evaluation.auroc)}</td>
                            <td>{number(evaluation.prr)}</td>
                            <td>{number(evaluation.kept_accuracy)}</td>
                            <td>{number(evaluation.dropped_accuracy)}</td>
                        </tr>
                    }
                })
                .collect_view();
            Some(view! {
                <section class="evaluation">
                    <h2 title="Only traces with a gold `label` count">
                        {format!("Against gold labels: {} traces, accuracy {}", report.n, number(report.accuracy))}
                    </h2>
                    <table data-testid="eval-table">
                        <thead><tr>
                            <th title="How well the score ranks errors above right answers (0.5 = chance)">"metric"</th>
                            <th title="Area under the ROC curve of the score as an error detector">"AUROC"</th>
                            <th title="Prediction-rejection ratio at 50 % rejection (1 = oracle, 0 = random)">"PRR"</th>
                            <th title="Accuracy of the traces the filter keeps with this metric">"kept acc."</th>
                            <th title="Accuracy of the traces it drops">"dropped acc."</th>
                        </tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                </section>
            })
        })
    }
}

/// What the worker found about which signal fits the data.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// None without gold labels.
    pub ranking: Option<Ranking>,
    pub agreement: Agreement,
}

fn estimate(value: Option<f64>, interval: Option<Interval>) -> String {
    match (value, interval) {
        (Some(value), Some(ci)) => format!("{value:.3} [{:.3}, {:.3}]", ci.low, ci.high),
        (Some(value), None) => format!("{value:.3}"),
        (None, _) => "—".to_owned(),
    }
}

/// Which signal fits this data: with labels, every metric ranked by PRR and AUROC with
/// bootstrap intervals and a button that filters by the best; without, how strongly the
/// metrics agree (Spearman's ρ), to see which are redundant.
#[component]
pub fn SignalFit(
    comparison: RwSignal<Option<Comparison>>,
    settings: RwSignal<Settings>,
) -> impl IntoView {
    move || {
        comparison.with(|found| {
            let found = found.as_ref()?;
            let ranking = found.ranking.as_ref().map(|ranking| {
                let best = ranking.best;
                let rows = ranking
                    .metrics
                    .iter()
                    .map(|entry| {
                        let gap = match entry.prr_gap_to_best {
                            Some(ci) if ci.low > 0.0 => format!("worse [{:.3}, {:.3}]", ci.low, ci.high),
                            Some(ci) => format!("as good [{:.3}, {:.3}]", ci.low, ci.high),
                            None if Some(entry.metric) == best => "best".to_owned(),
                            None => "—".to_owned(),
                        };
                        view! {
                            <tr title=explain_metric(entry.metric)>
                                <td>{entry.metric.name()}</td>
                                <td>{entry.direction.arrow()}</td>
                                <td>{entry.n}</td>
                                <td>{estimate(entry.prr, entry.prr_ci)}</td>
                                <td>{estimate(entry.auroc, entry.auroc_ci)}</td>
                                <td>{gap}</td>
                            </tr>
                        }
                    })
                    .collect_view();
                view! {
                    <h3>{format!("Ranked on {} labelled traces ({} bootstrap resamples, seed {})", ranking.n, ranking.resamples, ranking.seed)}</h3>
                    {best.map(|best| view! {
                        <button data-testid="use-best" title="Filter by the metric with the highest PRR on the labelled traces"
                            disabled=move || settings.with(|s| s.metric == best)
                            on:click=move |_| settings.update(|s| s.metric = best)>
                            {format!("Use the best: {}", best.name())}
                        </button>
                    })}
                    <table data-testid="ranking-table">
                        <thead><tr>
                            <th>"metric"</th>
                            <th title="↑u: an uncertainty, lower is kept first; ↑c: a confidence, higher is kept first">"dir"</th>
                            <th title="Labelled traces where the metric is defined">"n"</th>
                            <th title="PRR at 50 % rejection with its 95 % bootstrap interval">"PRR [95 %]"</th>
                            <th title="AUROC as an error detector with its 95 % bootstrap interval">"AUROC [95 %]"</th>
                            <th title="PRR gap to the best over the same resamples: worse when the whole interval is above 0">"vs the best"</th>
                        </tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                }
            });
            let agreement = &found.agreement;
            let header = agreement
                .metrics
                .iter()
                .map(|metric| view! { <th title=explain_metric(*metric)>{metric.name()}</th> })
                .collect_view();
            let body = agreement
                .metrics
                .iter()
                .zip(&agreement.spearman)
                .map(|(metric, row)| {
                    let cells = row
                        .iter()
                        .map(|rho| {
                            let text = rho.map_or_else(|| "—".to_owned(), |rho| format!("{rho:.2}"));
                            // Stronger agreement, darker cell: redundant signals stand out.
                            let shade = rho.map_or(0.0, f64::abs);
                            let style = format!("background: rgba(70, 110, 200, {:.2})", shade * 0.6);
                            view! { <td style=style>{text}</td> }
                        })
                        .collect_view();
                    view! { <tr><th>{metric.name()}</th>{cells}</tr> }
                })
                .collect_view();
            let open = found.ranking.is_none();
            Some(view! {
                <section class="evaluation" data-testid="signal-fit">
                    <h2>"Which signal fits this data?"</h2>
                    {ranking}
                    <details open=open>
                        <summary>"How strongly the metrics agree (Spearman's ρ over the traces; near 1: redundant)"</summary>
                        <div class="table-scroll" tabindex="0" role="region" aria-label="Agreement between the metrics">
                            <table data-testid="agreement-table">
                                <thead><tr><th></th>{header}</tr></thead>
                                <tbody>{body}</tbody>
                            </table>
                        </div>
                    </details>
                </section>
            })
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
