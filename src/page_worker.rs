//! The page's side of the scoring worker: starting it, posting it requests (queued until
//! it is ready), and routing its answers into the page's signals.

use crate::app::{Status, save_bytes};
use crate::data_link::{DataLink, LinkState, LinkedFile};
use crate::evaluation_view::Comparison;
use crate::protocol::{Envelope, ToPage, ToWorker, TraceDetail};
use js_sys::{Array, Uint8Array};
use leptos::prelude::*;
use std::sync::Arc;
use tracesift_core::dataset::{ScoredSet, TraceScores};
use tracesift_core::evaluate::EvalReport;
use tracesift_core::settings::Settings;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Blob, MessageEvent, Worker};

/// Asks the worker to score the inputs, or to download and score a data link instead.
pub(crate) fn send_score(
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
        model_url: model_url(),
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

pub(crate) fn post_request(
    worker: &StoredValue<Option<WorkerHandle>, LocalStorage>,
    request: &ToWorker,
    files: Option<&Array>,
) {
    deliver(worker, request_message(request, files));
}

/// A message for the worker: the request, and the files beside it.
pub(crate) fn request_message(
    request: &ToWorker,
    files: Option<&Array>,
) -> Result<Envelope, String> {
    let message = Envelope::new(request)?;
    Ok(match files {
        Some(files) => message.with("files", files),
        None => message,
    })
}

/// Posts a message, or queues it until the worker is ready.
pub(crate) fn deliver(
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
pub(crate) struct WorkerSinks {
    pub(crate) scored: RwSignal<Option<Arc<ScoredSet>>>,
    pub(crate) status: RwSignal<Status>,
    pub(crate) notice: RwSignal<String>,
    pub(crate) run: StoredValue<u32>,
    /// The run whose results are shown (see `App`).
    pub(crate) shown_run: StoredValue<u32>,
    pub(crate) opened: RwSignal<Option<(usize, Arc<TraceDetail>)>>,
    pub(crate) adapter: RwSignal<Option<String>>,
    pub(crate) evaluation: RwSignal<Option<EvalReport>>,
    pub(crate) comparison: RwSignal<Option<Comparison>>,
    /// The traces of the run being received (its number, the parts so far).
    pub(crate) parts: StoredValue<(u32, Vec<TraceScores>), LocalStorage>,
    /// What the request file gave, for the line under its slot.
    pub(crate) requests_summary: RwSignal<Option<String>>,
    /// The inputs, which a downloaded data link joins as a Blob.
    pub(crate) inputs: StoredValue<Vec<(String, Blob)>, LocalStorage>,
    pub(crate) link: RwSignal<Option<DataLink>>,
}

pub(crate) fn start_worker(sinks: WorkerSinks) -> StoredValue<Option<WorkerHandle>, LocalStorage> {
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
        if !matches!(
            response,
            ToPage::Progress { .. } | ToPage::Embedding { .. } | ToPage::Ready { .. }
        ) {
            crate::timeline::mark("page: read a result from the worker");
        }
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
            ToPage::Embedding { run, done, total } if run == current => {
                let now = js_sys::Date::now();
                let since = match status.get_untracked() {
                    Status::Embedding {
                        since: Some(since), ..
                    } => Some(since),
                    // The rate is measured from the first text done, not from the model's
                    // loading.
                    _ if done > 0 => Some((now, done)),
                    _ => None,
                };
                status.set(Status::Embedding { done, total, since });
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
                        crate::timeline::mark("page: show the scored run");
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
            | ToPage::Embedding { .. }
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

/// The folder of the embedding model's files (`semantic`), on this app's origin: the
/// build copies them beside the app, and the service worker caches them on first use.
fn model_url() -> String {
    let base = window()
        .document()
        .and_then(|d| d.base_uri().ok().flatten())
        .unwrap_or_default();
    web_sys::Url::new_with_base(crate::embedding::MODEL_FOLDER, &base)
        .map(|url| url.href())
        .unwrap_or_default()
}

/// The worker's bootstrap script: load Trunk's worker glue and its wasm from this origin
/// (absolute URLs, so helper workers started from a blob URL find them too).
pub(crate) fn worker_source() -> Result<String, String> {
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

/// A `blob:` URL of a worker script: the page starts the scoring worker from one, the
/// scoring worker its helpers (from the same script, which the page hands it).
pub(crate) fn script_url(script: &str) -> Option<String> {
    let source = Array::new();
    source.push(&script.into());
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("text/javascript");
    let blob = Blob::new_with_str_sequence_and_options(&source, &options).ok()?;
    web_sys::Url::create_object_url_with_blob(&blob).ok()
}

pub(crate) fn spawn_worker() -> Result<Worker, String> {
    let url = script_url(&worker_source()?).ok_or("cannot create the worker")?;
    Worker::new(&url).map_err(|_| "this browser cannot start the scoring worker".to_owned())
}
