//! The scoring worker: reads the dropped files in chunks (synchronously — it is a worker,
//! so the page never waits), feeds the core's `Scorer`, posts progress, and builds
//! downloads with the same export code as `tracesift filter`.
//!
//! On start it looks for a WebGPU adapter (`navigator.gpu`); with one, the backend setting
//! decides what runs on it, as in the CLI: `gpu` sends the token sums, the pairwise
//! similarities and `semantic`'s encoder there, `auto` only large ROUGE-L work and the
//! encoder on a hardware adapter, `cpu` nothing.
//! Without one everything runs on the CPU, silently.

use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;

use flate2::read::MultiGzDecoder;
use js_sys::{Array, Reflect, Uint8Array};
use tracesift_core::compare::{self, Agreement, Ranking};
use tracesift_core::dataset::{ScoreOptions, ScoredSet, Scorer};
use tracesift_core::evaluate::{EvalReport, evaluate};
use tracesift_core::export::{self, ExportOptions};
use tracesift_core::filter::{self, FilterOptions};
use tracesift_core::requests::RequestJoin;
use tracesift_core::settings::{ExportFormat, Settings, Similarity};
use tracesift_core::trace::{RecordRef, classify_logprob};
use tracesift_gpu::{Engine, Gpu};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Blob, DedicatedWorkerGlobalScope, FileReaderSync, MessageEvent};

use crate::protocol::{Envelope, ExportWhat, ToPage, ToWorker, TokenView, TraceDetail};

const CHUNK_BYTES: f64 = 4.0 * 1024.0 * 1024.0;

/// Traces per `ScoredPart` message, which the page decodes in a task of its own.
const TRACES_PER_PART: usize = 400;

/// What the worker keeps between requests: the inputs and the last scored run.
struct State {
    /// The page's id of the run this is; requests name the run they are about.
    run: u32,
    blobs: Vec<Blob>,
    gzipped: Vec<bool>,
    set: ScoredSet,
    /// The request file joined to the run, whose prompts the downloads carry.
    requests: Option<std::sync::Arc<RequestJoin>>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
    /// The newest run the page asked for. An older run still scoring (awaiting helpers or
    /// the GPU) stops at its next chunk, and its results are never kept: the state always
    /// belongs to the run on the screen.
    static NEWEST_RUN: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    static GPU: RefCell<Option<Rc<Gpu>>> = const { RefCell::new(None) };
}

/// The state of run `run`, or why there is none: nothing scored yet, or the run the
/// request is about is not the one the worker holds (a newer one is still scoring, or the
/// request was made before the newest run).
fn with_run<T, E: From<String>>(run: u32, f: impl FnOnce(&State) -> Result<T, E>) -> Result<T, E> {
    STATE.with(|state| {
        let state = state.borrow();
        match state.as_ref() {
            None => Err(E::from("load a file first".to_owned())),
            Some(state) if state.run != run => Err(E::from(format!(
                "these results are still being computed (run {run}; the worker holds run {}): \
                 try again when scoring has finished",
                state.run
            ))),
            Some(state) => f(state),
        }
    })
}

fn is_superseded(run: u32) -> bool {
    NEWEST_RUN.with(|newest| newest.get() != run)
}

/// Entry point of the worker binary.
pub fn start() {
    console_error_panic_hook::set_once();
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    if scope.name() == crate::helpers::HELPER_NAME {
        // A helper scores parts of files on the CPU: no GPU to look for.
        crate::helpers::start_helper(&scope);
        return;
    }
    let handler_scope = scope.clone();
    let on_message = Closure::<dyn Fn(MessageEvent)>::new(move |event: MessageEvent| {
        handle(&handler_scope, &event.data());
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The worker lives as long as the page: its handler is never dropped.
    on_message.forget();
    wasm_bindgen_futures::spawn_local(async move {
        let gpu = find_webgpu().await;
        let webgpu = gpu.as_ref().map(|gpu| gpu.adapter_name().to_owned());
        GPU.with(|slot| *slot.borrow_mut() = gpu.map(Rc::new));
        post(&scope, &ToPage::Ready { webgpu });
    });
}

/// A WebGPU device, if the browser has an adapter. The adapter is asked for through
/// `navigator.gpu` first: without one (no WebGPU, or no adapter) wgpu is never started,
/// so nothing is logged. Its vendor and architecture name it when the browser gives no
/// description.
async fn find_webgpu() -> Option<Gpu> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let gpu = Reflect::get(&navigator, &"gpu".into())
        .ok()
        .filter(|gpu| !gpu.is_undefined() && !gpu.is_null())?;
    let request: js_sys::Function = Reflect::get(&gpu, &"requestAdapter".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let promise: js_sys::Promise = request.call0(&gpu).ok()?.dyn_into().ok()?;
    let adapter = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
    if adapter.is_null() || adapter.is_undefined() {
        return None;
    }
    let info = Reflect::get(&adapter, &"info".into()).ok();
    let field = |key: &str| {
        info.as_ref()
            .and_then(|info| Reflect::get(info, &key.into()).ok())
            .and_then(|value| value.as_string())
            .unwrap_or_default()
    };
    let name = match field("description") {
        description if !description.is_empty() => description,
        _ => format!("{} {}", field("vendor"), field("architecture"))
            .trim()
            .to_owned(),
    };
    let gpu = Gpu::new().await.ok()?;
    Some(if gpu.adapter_name().is_empty() {
        gpu.with_adapter_name(if name.is_empty() {
            "unnamed adapter".to_owned()
        } else {
            name
        })
    } else {
        gpu
    })
}

fn handle(scope: &DedicatedWorkerGlobalScope, data: &JsValue) {
    let request: ToWorker = match crate::protocol::open(data) {
        Ok(request) => request,
        Err(error) => {
            let message = format!("the worker got a message it cannot read: {error}");
            post(scope, &ToPage::Unreadable { message });
            return;
        }
    };
    match request {
        ToWorker::Score {
            run,
            settings,
            names,
            helper_script,
            model_url,
            requests_name,
            link,
        } => {
            let files: Vec<Blob> = Envelope::field(data, "files")
                .map(|files| {
                    Array::from(&files)
                        .iter()
                        .filter_map(|f| f.dyn_into().ok())
                        .collect()
                })
                .unwrap_or_default();
            let requests = Envelope::field(data, "requests")
                .and_then(|blob| blob.dyn_into::<Blob>().ok())
                .map(|blob| (requests_name.unwrap_or_else(|| "requests".to_owned()), blob));
            NEWEST_RUN.with(|newest| newest.set(run));
            let scope = scope.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let helper_script = helper_script.as_deref();
                let inputs = Inputs {
                    names: &names,
                    blobs: files,
                    requests,
                    link,
                    model_url,
                };
                let scored = score(&scope, run, &settings, inputs, helper_script).await;
                match scored {
                    Err(message) if !is_superseded(run) => {
                        post(&scope, &ToPage::Failed { run, message });
                    }
                    _ => {}
                }
            });
        }
        ToWorker::Trace { run, trace_idx } => match trace_detail(run, trace_idx) {
            Ok(detail) => {
                let response = ToPage::Trace {
                    run,
                    trace_idx,
                    detail: Box::new(detail),
                };
                post(scope, &response);
            }
            Err(message) => post(scope, &ToPage::Failed { run, message }),
        },
        ToWorker::Evaluate { run, settings } => match evaluation(run, &settings) {
            Ok(report) => post(scope, &ToPage::Evaluated { run, report }),
            Err(message) => post(scope, &ToPage::Failed { run, message }),
        },
        ToWorker::Compare { run, settings } => match comparison(run, &settings) {
            Ok((ranking, agreement)) => {
                let response = ToPage::Compared {
                    run,
                    ranking,
                    agreement,
                };
                post(scope, &response);
            }
            Err(message) => post(scope, &ToPage::Failed { run, message }),
        },
        ToWorker::Export {
            run,
            settings,
            what,
        } => match build_export(run, &settings, &what) {
            Err(ExportError::Refused(message)) => {
                post(scope, &ToPage::ExportRefused { run, message });
            }
            Ok((bytes, n_traces, file_name)) => {
                let array = Uint8Array::from(bytes.as_slice());
                let response = ToPage::Exported {
                    run,
                    what,
                    file_name,
                    n_traces,
                };
                post_with(scope, &response, Some(("bytes", array.as_ref())));
            }
            Err(ExportError::Failed(message)) => {
                post(scope, &ToPage::Failed { run, message });
            }
        },
    }
}

pub(crate) fn post(scope: &DedicatedWorkerGlobalScope, response: &ToPage) {
    post_with(scope, response, None);
}

/// Posts a response with a JS object beside it (`bytes` of a download, the `blob` of a
/// downloaded data link), which travels without a copy into the message.
fn post_with(
    scope: &DedicatedWorkerGlobalScope,
    response: &ToPage,
    beside: Option<(&str, &JsValue)>,
) {
    let envelope = match Envelope::new(response) {
        Ok(envelope) => envelope,
        Err(message) => {
            web_sys::console::error_1(&message.clone().into());
            match Envelope::new(&ToPage::Unreadable { message }) {
                Ok(envelope) => envelope,
                Err(_) => return,
            }
        }
    };
    let envelope = match beside {
        Some((key, value)) => envelope.with(key, value),
        None => envelope,
    };
    if let Err(error) = scope.post_message_with_transfer(&envelope.object, &envelope.transfer) {
        web_sys::console::error_2(&"the worker cannot post to the page:".into(), &error);
    }
}

/// Records larger than this are reported and skipped in the browser (the CLI allows
/// 1 GiB): a tab's wasm memory must hold the record while it is parsed, and more.
const BROWSER_MAX_RECORD_BYTES: usize = 512 << 20;

pub(crate) fn browser_options(settings: &Settings) -> Result<ScoreOptions, String> {
    let mut options = ScoreOptions::from_settings(settings).map_err(|error| error.to_string())?;
    options.max_record_bytes = BROWSER_MAX_RECORD_BYTES;
    Ok(options)
}

/// What a run reads: the trace files (or a data link to download), and the request file
/// if one was given.
struct Inputs<'a> {
    names: &'a [String],
    blobs: Vec<Blob>,
    requests: Option<(String, Blob)>,
    link: Option<crate::data_link::LinkedFile>,
    /// Where the embedding model's files are, for `semantic`.
    model_url: String,
}

async fn score(
    scope: &DedicatedWorkerGlobalScope,
    run: u32,
    settings: &Settings,
    inputs: Inputs<'_>,
    helper_script: Option<&str>,
) -> Result<(), String> {
    let Inputs {
        names,
        mut blobs,
        requests,
        link,
        model_url,
    } = inputs;
    let started = js_sys::Date::now();
    let options = browser_options(settings)?;
    let mut scorer = Scorer::new(options);
    let gpu = GPU.with(|gpu| gpu.borrow().clone());
    let warn = Box::new(|message: &str| web_sys::console::warn_1(&message.into()));
    let mut engine = Engine::new(settings.backend, gpu, warn);
    engine.prepare(&mut scorer);
    let bytes_total: f64 = blobs.iter().map(Blob::size).sum();
    let mut bytes_before = 0.0;
    let mut gzipped = Vec::new();
    let mut workers = 1u32;
    if let Some(file) = &link {
        // A data link is the run's only input: scored while it downloads, then kept as a
        // Blob like a dropped file (and handed to the page, so scoring again is local).
        scorer.begin_file(&file.name);
        let progress = |bytes_done: f64, bytes_total: f64| {
            let response = ToPage::Progress {
                run,
                bytes_done,
                bytes_total,
            };
            post(scope, &response);
        };
        let (blob, is_gzip) =
            crate::data_link::stream_into(scope, file, &mut scorer, &mut engine, progress).await?;
        scorer.end_file();
        let fetched = ToPage::Fetched {
            run,
            name: file.name.clone(),
        };
        post_with(
            scope,
            &fetched,
            Some(("blob", AsRef::<JsValue>::as_ref(&blob))),
        );
        blobs = vec![blob];
        gzipped.push(is_gzip);
    }
    // The files not read yet: all of them, or none after a data link.
    for (file_idx, blob) in blobs.iter().enumerate().skip(gzipped.len()) {
        if is_superseded(run) {
            return Ok(());
        }
        let name = names.get(file_idx).map_or("input", String::as_str);
        let reader = BlobReader::new(blob.clone())?;
        let is_gzip = reader.starts_with(&[0x1f, 0x8b]);
        gzipped.push(is_gzip);
        scorer.begin_file(name);
        let progress = |done: f64| {
            let response = ToPage::Progress {
                run,
                bytes_done: bytes_before + done,
                bytes_total,
            };
            post(scope, &response);
        };
        let parallel = !is_gzip && crate::helpers::worth_splitting(blob.size());
        if let (true, Some(script)) = (parallel, helper_script) {
            let mut report = |done: f64| progress(done);
            let helpers = crate::helpers::score_in_parts(
                &mut scorer,
                blob,
                name,
                settings,
                script,
                &mut report,
            )
            .await?;
            if let Some(helpers) = helpers {
                workers = workers.max(helpers as u32);
                scorer.end_file();
                bytes_before += blob.size();
                continue;
            }
        }
        let result = if is_gzip {
            let mut stream = MultiGzDecoder::new(reader.with_progress(progress));
            feed(run, &mut scorer, &mut engine, &mut stream).await
        } else {
            feed(
                run,
                &mut scorer,
                &mut engine,
                &mut reader.with_progress(progress),
            )
            .await
        };
        if let Err(error) = result {
            scorer.note_read_error(&format!("cannot read further: {error}"));
        }
        scorer.end_file();
        bytes_before += blob.size();
    }
    if is_superseded(run) {
        return Ok(());
    }
    if settings.sim == Similarity::Semantic {
        let how = crate::embedding::EmbedRun {
            part: settings.semantic_part,
            model_url: &model_url,
            helper_script,
        };
        let embedded =
            crate::embedding::embed_run(scope, run, &mut scorer, &mut engine, how, || {
                is_superseded(run)
            })
            .await?;
        if !embedded {
            return Ok(());
        }
    }
    let set = engine.finish(scorer).await;
    if is_superseded(run) {
        return Ok(());
    }
    let millis = js_sys::Date::now() - started;
    for part in set.traces.chunks(TRACES_PER_PART) {
        let response = ToPage::ScoredPart {
            run,
            traces: part.to_vec(),
        };
        post(scope, &response);
    }
    let without_traces = ScoredSet {
        traces: Vec::new(),
        embeddings: Vec::new(),
        questions: set.questions.clone(),
        classes: set.classes.clone(),
        files: set.files.clone(),
        report: set.report.clone(),
    };
    // The request file, joined to this run: the downloads carry its prompts.
    let (requests, requests_summary) = match &requests {
        None => (None, None),
        Some((name, blob)) => match crate::requests::join(blob, name, &set) {
            Ok((join, summary)) => (Some(join), Some(summary)),
            Err(message) => (None, Some(message)),
        },
    };
    let response = ToPage::Scored {
        run,
        set: Box::new(without_traces),
        millis,
        workers,
        requests: requests_summary,
    };
    post(scope, &response);
    STATE.with(|state| {
        *state.borrow_mut() = Some(State {
            run,
            blobs,
            gzipped,
            set,
            requests,
        })
    });
    Ok(())
}

/// Feeds a stream to the scorer in chunks; stops early, with what it has, once a newer
/// run has been asked for (that run's results are the ones kept).
async fn feed(
    run: u32,
    scorer: &mut Scorer,
    engine: &mut Engine,
    stream: &mut dyn Read,
) -> std::io::Result<()> {
    let mut chunk = vec![0u8; CHUNK_BYTES as usize];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(_) if is_superseded(run) => return Ok(()),
            Ok(n) => {
                scorer.feed(chunk.get(..n).unwrap_or(&[]));
                engine.after_chunk(scorer).await;
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

/// The last run against its gold labels (None without any), off the page's thread.
fn evaluation(run: u32, settings: &Settings) -> Result<Option<Box<EvalReport>>, String> {
    let options = FilterOptions::from_settings(settings).map_err(|e| e.to_string())?;
    with_run(run, |state| {
        let set = &state.set;
        let labelled = set.traces.iter().any(|trace| trace.label.is_some());
        Ok(labelled.then(|| Box::new(evaluate(set, &options))))
    })
}

/// The metrics ranked on the labelled traces (None without labels) and their agreement:
/// the bootstrap and the Spearman sorts stay here, off the page's thread.
type Comparison = (Option<Box<Ranking>>, Box<Agreement>);

fn comparison(run: u32, settings: &Settings) -> Result<Comparison, String> {
    with_run(run, |state| {
        let set = &state.set;
        let labelled = set.traces.iter().any(|trace| trace.label.is_some());
        let ranking = labelled.then(|| {
            Box::new(compare::rank_metrics(
                set,
                compare::DEFAULT_RESAMPLES,
                settings.seed,
            ))
        });
        Ok((ranking, Box::new(compare::agreement(set))))
    })
}

/// Why a download was not built.
enum ExportError {
    Failed(String),
    /// An SFT export whose kept traces have empty prompts (see `export::check_prompts`).
    Refused(String),
}

impl From<String> for ExportError {
    fn from(message: String) -> Self {
        ExportError::Failed(message)
    }
}

impl From<&str> for ExportError {
    fn from(message: &str) -> Self {
        ExportError::Failed(message.to_owned())
    }
}

/// Builds a download from the last run: `(bytes, traces in it, file name)`.
fn build_export(
    run: u32,
    settings: &Settings,
    what: &ExportWhat,
) -> Result<(Vec<u8>, usize, String), ExportError> {
    let filter_options = FilterOptions::from_settings(settings).map_err(|e| e.to_string())?;
    let export_options = ExportOptions::from_settings(settings).map_err(|e| e.to_string())?;
    with_run(run, |state| {
        let n_traces = state.set.traces.len();
        let chosen = match what {
            ExportWhat::Kept | ExportWhat::ScoresCsv => {
                filter::select(&state.set, &filter_options).kept
            }
            ExportWhat::Random => {
                let n_kept = filter::select(&state.set, &filter_options).n_kept;
                filter::random_sample(&state.set, &filter_options, n_kept, settings.seed)
            }
            ExportWhat::Unfiltered => filter::unfiltered(&state.set, &filter_options),
            ExportWhat::Selection(indices) => {
                let mut chosen = vec![false; n_traces];
                for &idx in indices {
                    match chosen.get_mut(idx as usize) {
                        Some(slot) => *slot = true,
                        None => {
                            return Err(ExportError::Failed(format!(
                                "the selection names trace {idx}, but the run has {n_traces}"
                            )));
                        }
                    }
                }
                chosen
            }
        };
        let format = if *what == ExportWhat::ScoresCsv {
            ExportFormat::Csv
        } else {
            settings.export
        };
        let options = ExportOptions {
            format,
            requests: state.requests.clone(),
            ..export_options
        };
        if export::is_sft(format) {
            let mut check_records = RecordSource::new(state, &chosen);
            export::check_prompts(&state.set, &chosen, &options, |record| {
                check_records.read(record)
            })
            .map_err(|refusal| {
                ExportError::Refused(format!("{refusal}; {}", crate::requests::EMPTY_PROMPT_HELP))
            })?;
        }
        let n_traces = chosen.iter().filter(|kept| **kept).count();
        let mut records = RecordSource::new(state, &chosen);
        let mut bytes = Vec::new();
        let warnings = export::write_selection(
            &state.set,
            &chosen,
            &options,
            |record| records.read(record),
            &mut bytes,
        )
        .map_err(|error| error.to_string())?;
        for warning in warnings {
            web_sys::console::warn_1(&format!("not exported: {warning}").into());
        }
        let extension = if format == ExportFormat::Csv {
            "csv"
        } else {
            "jsonl"
        };
        Ok((bytes, n_traces, format!("{}.{extension}", what.file_stem())))
    })
}

/// Reads one trace back and lays out its tokens for the trace view.
fn trace_detail(run: u32, trace_idx: usize) -> Result<TraceDetail, String> {
    with_run(run, |state| {
        let trace = state.set.traces.get(trace_idx).ok_or("no such trace")?;
        let mut chosen = vec![false; state.set.traces.len()];
        if let Some(slot) = chosen.get_mut(trace_idx) {
            *slot = true;
        }
        let mut records = RecordSource::new(state, &chosen);
        let record = records.read(&trace.record)?;
        let full = export::reparse(&state.set, trace, &record)?;
        let has_strings = full.tokens.len() == full.logprobs.len();
        let tokens = full
            .logprobs
            .iter()
            .enumerate()
            .map(|(idx, &raw)| {
                let top_values = full.top_list(idx);
                let start = full.top_offsets.get(idx).copied().unwrap_or(0) as usize;
                let top = top_values
                    .iter()
                    .enumerate()
                    .filter(|(_, value)| value.is_finite())
                    .map(|(k, &value)| {
                        (
                            full.top_tokens.get(start + k).cloned().unwrap_or_default(),
                            value,
                        )
                    })
                    .collect();
                TokenView {
                    text: if has_strings {
                        full.tokens.get(idx).cloned()
                    } else {
                        None
                    },
                    logprob: classify_logprob(raw),
                    top,
                }
            })
            .collect();
        Ok(TraceDetail {
            prompt: full.prompt,
            text: full.text,
            answer: full.answer,
            tokens,
        })
    })
}

/// Reads records back: plain files by slicing at the record's offset; gzipped files by one
/// decompressing pass that collects the records the export needs.
struct RecordSource<'a> {
    state: &'a State,
    from_gzip: std::collections::HashMap<RecordKey, Vec<u8>>,
}

/// A record's bytes by file, offset and length: a generation assembled from a stream spans
/// its chunks, so two of them can start at the same chunk and overlap.
type RecordKey = (u32, u64, u64);

fn record_key(record: &RecordRef) -> RecordKey {
    (record.file_idx, record.offset, record.len)
}

impl<'a> RecordSource<'a> {
    fn new(state: &'a State, chosen: &[bool]) -> Self {
        let mut wanted: Vec<RecordRef> = state
            .set
            .traces
            .iter()
            .zip(chosen)
            .filter(|(trace, kept)| {
                **kept
                    && state
                        .gzipped
                        .get(trace.record.file_idx as usize)
                        .copied()
                        .unwrap_or(false)
            })
            .map(|(trace, _)| trace.record)
            .collect();
        wanted.sort_by_key(record_key);
        wanted.dedup_by_key(|record| record_key(record));
        let mut from_gzip = std::collections::HashMap::new();
        for (file_idx, blob) in state.blobs.iter().enumerate() {
            let in_file: Vec<&RecordRef> = wanted
                .iter()
                .filter(|record| record.file_idx as usize == file_idx)
                .collect();
            if in_file.is_empty() {
                continue;
            }
            let Ok(reader) = BlobReader::new(blob.clone()) else {
                continue;
            };
            let _ = collect_ranges(MultiGzDecoder::new(reader), &in_file, &mut from_gzip);
        }
        Self { state, from_gzip }
    }

    fn read(&mut self, record: &RecordRef) -> Result<Vec<u8>, String> {
        let gzipped = self
            .state
            .gzipped
            .get(record.file_idx as usize)
            .copied()
            .unwrap_or(false);
        if gzipped {
            return self.from_gzip.remove(&record_key(record)).ok_or_else(|| {
                "the record could not be read back from the gzip stream".to_owned()
            });
        }
        let blob = self
            .state
            .blobs
            .get(record.file_idx as usize)
            .ok_or("unknown input")?;
        let start = record.offset as f64;
        let slice = blob
            .slice_with_f64_and_f64(start, start + record.len as f64)
            .map_err(|_| "cannot slice the file".to_owned())?;
        read_blob(&slice)
    }
}

/// Streams `stream` once, copying out the byte ranges of `records` (sorted by offset; the
/// ranges may overlap).
fn collect_ranges(
    mut stream: impl Read,
    records: &[&RecordRef],
    out: &mut std::collections::HashMap<RecordKey, Vec<u8>>,
) -> std::io::Result<()> {
    let mut position: u64 = 0;
    let mut chunk = vec![0u8; 1 << 20];
    let mut next = 0;
    // Records that have started but not ended, with the bytes read of each so far.
    let mut open: Vec<(&RecordRef, Vec<u8>)> = Vec::new();
    while next < records.len() || !open.is_empty() {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        let chunk_start = position;
        position += n as u64;
        while let Some(&record) = records.get(next) {
            if record.offset >= position {
                break;
            }
            open.push((record, Vec::new()));
            next += 1;
        }
        open.retain_mut(|(record, bytes)| {
            let end = record.offset + record.len;
            let from = record.offset.max(chunk_start) - chunk_start;
            let to = end.min(position) - chunk_start;
            bytes.extend_from_slice(chunk.get(from as usize..to as usize).unwrap_or(&[]));
            if end > position {
                return true;
            }
            out.insert(record_key(record), std::mem::take(bytes));
            false
        });
    }
    Ok(())
}

pub(crate) fn read_blob(blob: &Blob) -> Result<Vec<u8>, String> {
    let reader = FileReaderSync::new().map_err(|_| "FileReaderSync is not available".to_owned())?;
    let buffer = reader
        .read_as_array_buffer(blob)
        .map_err(|_| "the file could not be read (was it moved or deleted?)".to_owned())?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// `std::io::Read` over a Blob, a chunk at a time.
pub(crate) struct BlobReader<P = fn(f64)> {
    blob: Blob,
    position: f64,
    buffer: Vec<u8>,
    buffer_pos: usize,
    on_progress: P,
}

impl BlobReader {
    pub(crate) fn new(blob: Blob) -> Result<Self, String> {
        Ok(Self {
            blob,
            position: 0.0,
            buffer: Vec::new(),
            buffer_pos: 0,
            on_progress: |_| {},
        })
    }
}

impl<P: FnMut(f64)> BlobReader<P> {
    pub(crate) fn with_progress<Q: FnMut(f64)>(self, on_progress: Q) -> BlobReader<Q> {
        BlobReader {
            blob: self.blob,
            position: self.position,
            buffer: self.buffer,
            buffer_pos: self.buffer_pos,
            on_progress,
        }
    }

    fn starts_with(&self, prefix: &[u8]) -> bool {
        self.blob
            .slice_with_f64_and_f64(0.0, prefix.len() as f64)
            .ok()
            .and_then(|head| read_blob(&head).ok())
            .is_some_and(|head| head == prefix)
    }
}

impl<P: FnMut(f64)> Read for BlobReader<P> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.buffer_pos >= self.buffer.len() {
            let size = self.blob.size();
            if self.position >= size {
                return Ok(0);
            }
            let end = (self.position + CHUNK_BYTES).min(size);
            let slice = self
                .blob
                .slice_with_f64_and_f64(self.position, end)
                .map_err(|_| std::io::Error::other("cannot slice the file"))?;
            self.buffer = read_blob(&slice).map_err(std::io::Error::other)?;
            self.buffer_pos = 0;
            self.position = end;
            (self.on_progress)(self.position);
        }
        let available = self.buffer.get(self.buffer_pos..).unwrap_or(&[]);
        let n = available.len().min(out.len());
        if let (Some(target), Some(source)) = (out.get_mut(..n), available.get(..n)) {
            target.copy_from_slice(source);
        }
        self.buffer_pos += n;
        Ok(n)
    }
}
