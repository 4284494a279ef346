//! The page: load files, watch the worker score them, move the settings, see what is kept
//! per class, and download the fine-tuning set.

use std::sync::Arc;

use js_sys::{Array, Uint8Array};
use leptos::prelude::*;
use tracesift_core::dataset::ScoredSet;
use tracesift_core::evaluate::EvalReport;
use tracesift_core::filter::{self, FilterOptions};
use tracesift_core::settings::{Metric, Settings, Similarity};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::Blob;

use crate::charts_view::{ChartKind, ChartPanel};
use crate::data_link::{DataLink, LinkState, LinkedDataPrompt, LinkedFile};
use crate::evaluation_view::{Comparison, EvalTable, SignalFit};
use crate::fragment;
use crate::offline::{OfflineStatus, register_service_worker};
use crate::page_worker::{WorkerSinks, post_request, send_score, start_worker};
use crate::protocol::{ExportWhat, ToWorker, TraceDetail};
use crate::settings_view::SettingsPanel;
use crate::summary_view::{ClassCounts, Guide, StatusLine, Summary, backend_label, backend_title};
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
    /// `semantic`: `done` of `total` texts embedded (0 while the model loads); `since` is
    /// when (ms) and at how many texts the rate is measured from, for the time left.
    Embedding {
        done: u32,
        total: u32,
        since: Option<(f64, u32)>,
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
    // Once the page is up: rasterise the charts' text while nothing else runs.
    set_timeout(
        crate::charts_view::warm_up_chart_text,
        std::time::Duration::from_millis(50),
    );
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

    // The similarity to go back to when embedding for `semantic` is cancelled.
    let sim_before_semantic = StoredValue::new(Similarity::Answer);
    Effect::new(move |previous: Option<Similarity>| {
        let sim = settings.with(|s| s.sim);
        if let Some(previous) = previous
            && sim == Similarity::Semantic
            && previous != Similarity::Semantic
        {
            sim_before_semantic.set_value(previous);
        }
        sim
    });
    let cancel_embedding = Callback::new(move |()| {
        settings.update(|s| s.sim = sim_before_semantic.get_value());
    });

    // Scoring settings change the numbers: score again. Filter settings only re-filter.
    let scoring_key = Memo::new(move |_| {
        settings.with(|s| {
            (
                s.sim,
                (s.sim == Similarity::Semantic).then_some(s.semantic_part),
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
        // Read, not only tracked: a memo nobody has read has not run, so it would not yet
        // depend on the settings and would never change.
        scoring_key.with(|_| ());
        if previous.is_some() && inputs.with_value(|i| !i.is_empty()) {
            send_score(&worker, settings, status, run, inputs, requests_input, None);
        }
    });

    // The groups in the filter's order, sorted again only when the metric, scope or
    // candidates change: dragging a cut-off only moves the rule, which is cheap.
    let ranking_key = Memo::new(move |_| settings.with(|s| (s.metric, s.scope, s.candidates)));
    let ranked = Memo::new(move |_| {
        let (metric, scope, candidates) = ranking_key.get();
        scored.with(|set| {
            set.as_ref()
                .map(|set| Arc::new(filter::rank_groups(set, metric, scope, candidates)))
        })
    });
    let selection = Memo::new(move |_| {
        let options = settings.with(FilterOptions::from_settings).ok()?;
        ranked.with(|ranked| {
            let ranked = ranked.as_ref()?;
            scored.with(|set| {
                let set = set.as_ref()?;
                Some(ranked.select(set, options.rule, options.balanced))
            })
        })
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
        seed.with(|_| ());
        if scored.with(Option::is_some) {
            // The ranking bootstraps every metric, seconds of the worker's time on a big
            // file: it is asked for once the page is idle, after the run's results are
            // drawn, so on a machine with few cores it does not slow their drawing down.
            crate::timeline::when_idle(move || {
                let request = ToWorker::Compare {
                    run: shown_run.get_value(),
                    settings: settings.get_untracked(),
                };
                post_request(&worker, &request, None);
            });
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
    let export_rows =
        Callback::new(move |indices: Vec<u32>| download(ExportWhat::Selection(indices)));

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
                <StatusLine status=status on_cancel=cancel_embedding />
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
            <TracesTable scored=scored selection=selection open=open_trace table_filter=table_filter export_rows=export_rows />
            <TraceView scored=scored selection=selection opened=opened open=open_trace />
            <section class="charts">
                <h2>"More charts"</h2>
                <ChartPanel kind=ChartKind::Counts scored=scored selection=selection settings=settings evaluation=evaluation />
                <ChartPanel kind=ChartKind::Scatter scored=scored selection=selection settings=settings evaluation=evaluation table_filter=table_filter />
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
