//! Helper workers: the scoring worker splits a large plain JSONL file into line-aligned
//! parts, it and its helper workers (one per core but one, which stays with the page)
//! score them, and the scoring worker absorbs the results in file order, exactly as the CLI does with
//! threads. A part a helper cannot deliver (it crashed, ran out of memory) is scored by
//! the scoring worker itself, so a failing helper costs time, never results.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::oneshot;
use tracesift_core::dataset::{ScoredPart, Scorer};
use tracesift_core::parts;
use tracesift_core::settings::Settings;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Blob, DedicatedWorkerGlobalScope, ErrorEvent, MessageEvent, Worker};

use crate::protocol::{Envelope, FromHelper, ToHelper};
use crate::worker::{BlobReader, read_blob};

/// The name a helper is started with; it tells the worker not to look for a GPU.
pub const HELPER_NAME: &str = "tracesift-helper";

/// What a helper answers a request with.
enum Reply {
    Part(Box<ScoredPart>),
    Embeddings(Vec<Vec<f32>>),
}

type ReplyResult = Result<Reply, String>;

/// A request sent out (a part to score, texts to embed), and the helper it went to.
struct Pending {
    helper: usize,
    answer: oneshot::Sender<ReplyResult>,
}

struct Helpers {
    workers: Vec<Worker>,
}

thread_local! {
    static HELPERS: RefCell<Option<Rc<Helpers>>> = const { RefCell::new(None) };
    static PENDING: RefCell<HashMap<u32, Pending>> = RefCell::new(HashMap::new());
    static READY: RefCell<HashMap<usize, oneshot::Sender<()>>> = RefCell::new(HashMap::new());
    /// Helpers loading the embedding model, and the answer each is awaited with.
    static LOADING: RefCell<HashMap<usize, oneshot::Sender<Result<(), String>>>> =
        RefCell::new(HashMap::new());
    /// Helpers that hold the embedding model, by the folder it came from.
    static MODEL_IN: RefCell<HashMap<usize, String>> = RefCell::new(HashMap::new());
    static NEXT_ID: RefCell<u32> = const { RefCell::new(0) };
}

/// The helpers, started on first use (the same worker script, named [`HELPER_NAME`]).
async fn helpers(script: &str) -> Result<Rc<Helpers>, String> {
    if let Some(helpers) = HELPERS.with(|h| h.borrow().clone()) {
        return Ok(helpers);
    }
    let count = helper_count();
    let url = crate::page_worker::script_url(script).ok_or("cannot create a helper worker")?;
    let mut workers = Vec::with_capacity(count);
    let mut ready = Vec::with_capacity(count);
    for helper in 0..count {
        let worker_options = web_sys::WorkerOptions::new();
        worker_options.set_name(HELPER_NAME);
        let worker = Worker::new_with_options(&url, &worker_options)
            .map_err(|_| "this browser cannot start helper workers".to_owned())?;
        let (sender, receiver) = oneshot::channel();
        READY.with(|r| r.borrow_mut().insert(helper, sender));
        ready.push(receiver);
        let on_message = Closure::<dyn Fn(MessageEvent)>::new(move |event: MessageEvent| {
            on_helper_message(helper, &event.data());
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();
        let on_error = Closure::<dyn Fn(ErrorEvent)>::new(move |event: ErrorEvent| {
            event.prevent_default();
            fail_helper(
                helper,
                &format!("a helper worker stopped: {}", event.message()),
            );
        });
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        on_error.forget();
        workers.push(worker);
    }
    for receiver in ready {
        receiver
            .await
            .map_err(|_| "a helper worker did not start".to_owned())?;
    }
    let helpers = Rc::new(Helpers { workers });
    HELPERS.with(|h| *h.borrow_mut() = Some(Rc::clone(&helpers)));
    Ok(helpers)
}

fn on_helper_message(helper: usize, data: &JsValue) {
    match crate::protocol::open::<FromHelper>(data) {
        Ok(FromHelper::Ready) => {
            if let Some(ready) = READY.with(|r| r.borrow_mut().remove(&helper)) {
                let _ = ready.send(());
            }
        }
        Ok(FromHelper::PartScored { id, part }) => answer(id, Ok(Reply::Part(part))),
        Ok(FromHelper::PartFailed { id, message }) => answer(id, Err(message)),
        Ok(FromHelper::ModelLoaded { failure }) => {
            if let Some(loading) = LOADING.with(|l| l.borrow_mut().remove(&helper)) {
                let _ = loading.send(failure.map_or(Ok(()), Err));
            }
        }
        Ok(FromHelper::Embedded { id, embeddings }) => {
            answer(id, Ok(Reply::Embeddings(embeddings)))
        }
        Ok(FromHelper::EmbedFailed { id, message }) => answer(id, Err(message)),
        Ok(FromHelper::Unreadable { message }) => fail_helper(helper, &message),
        Err(error) => fail_helper(
            helper,
            &format!("a helper sent an answer that cannot be read: {error}"),
        ),
    }
}

fn answer(id: u32, result: ReplyResult) {
    if let Some(pending) = PENDING.with(|p| p.borrow_mut().remove(&id)) {
        let _ = pending.answer.send(result);
    }
}

/// Fails every part the helper holds (their scoring falls back to the scoring worker),
/// and its start if it never said it was ready (the scoring worker then scores alone).
fn fail_helper(helper: usize, message: &str) {
    // Dropping the sender ends the wait for this helper with an error.
    READY.with(|r| r.borrow_mut().remove(&helper));
    LOADING.with(|l| l.borrow_mut().remove(&helper));
    MODEL_IN.with(|m| m.borrow_mut().remove(&helper));
    let ids: Vec<u32> = PENDING.with(|p| {
        p.borrow()
            .iter()
            .filter(|(_, pending)| pending.helper == helper)
            .map(|(&id, _)| id)
            .collect()
    });
    for id in ids {
        answer(id, Err(message.to_owned()));
    }
}

/// The helper's side: answers each part it is sent with its scores, and each list of texts
/// with their embeddings.
pub fn start_helper(scope: &DedicatedWorkerGlobalScope) {
    let handler_scope = scope.clone();
    let on_message = Closure::<dyn Fn(MessageEvent)>::new(move |event: MessageEvent| {
        let data = event.data();
        let answer = match crate::protocol::open::<ToHelper>(&data) {
            Ok(ToHelper::ScorePart {
                id,
                settings,
                name,
                start,
            }) => match Envelope::field(&data, "part").map(JsCast::dyn_into::<Blob>) {
                Some(Ok(part)) => match scored_part(&settings, &name, start, part) {
                    Ok(part) => FromHelper::PartScored {
                        id,
                        part: Box::new(part),
                    },
                    Err(message) => FromHelper::PartFailed { id, message },
                },
                _ => FromHelper::PartFailed {
                    id,
                    message: "the part to score did not arrive".to_owned(),
                },
            },
            Ok(ToHelper::LoadModel { model_url }) => {
                let scope = handler_scope.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let failure = crate::embedding::load_model(&model_url).await.err();
                    post_to_worker(&scope, &FromHelper::ModelLoaded { failure });
                });
                return;
            }
            Ok(ToHelper::Embed { id, texts, part }) => {
                match crate::embedding::embed_here(&texts, part) {
                    Ok(embeddings) => FromHelper::Embedded { id, embeddings },
                    Err(message) => FromHelper::EmbedFailed { id, message },
                }
            }
            Err(error) => FromHelper::Unreadable {
                message: format!("a helper got a message it cannot read: {error}"),
            },
        };
        post_to_worker(&handler_scope, &answer);
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // A helper lives as long as its scoring worker.
    on_message.forget();
    post_to_worker(scope, &FromHelper::Ready);
}

fn post_to_worker(scope: &DedicatedWorkerGlobalScope, answer: &FromHelper) {
    let envelope =
        Envelope::new(answer).or_else(|message| Envelope::new(&FromHelper::Unreadable { message }));
    let posted = envelope
        .map(|envelope| scope.post_message_with_transfer(&envelope.object, &envelope.transfer));
    if !matches!(posted, Ok(Ok(()))) {
        web_sys::console::error_1(&"a helper cannot answer its scoring worker".into());
    }
}

fn scored_part(
    settings: &Settings,
    name: &str,
    start: u64,
    part: Blob,
) -> Result<ScoredPart, String> {
    let options = crate::worker::browser_options(settings)?;
    let mut range = Scorer::for_part(options, name, start);
    feed_blob(&mut range, part, &mut |_| {})?;
    Ok(range.into_part())
}

/// Feeds a whole blob to a scorer in chunks; `progress` gets the bytes read so far.
fn feed_blob(scorer: &mut Scorer, blob: Blob, progress: &mut dyn FnMut(f64)) -> Result<(), String> {
    use std::io::Read;
    let mut reader = BlobReader::new(blob)?.with_progress(progress);
    let mut chunk = vec![0u8; 4 << 20];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => scorer.feed(chunk.get(..n).unwrap_or(&[])),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                scorer.note_read_error(&format!("cannot read further: {error}"));
                return Ok(());
            }
        }
    }
}

/// The first line start at or after `from` (just past a newline at or after `from - 1`),
/// if any.
fn next_line_start(blob: &Blob, from: u64) -> Result<Option<u64>, String> {
    let size = blob.size() as u64;
    let mut at = from.saturating_sub(1);
    while at < size {
        let end = (at + 65_536).min(size);
        let bytes = read_blob(&slice(blob, at, end)?)?;
        if let Some(newline) = memchr::memchr(b'\n', &bytes) {
            return Ok(Some(at + newline as u64 + 1));
        }
        at = end;
    }
    Ok(None)
}

/// Bytes `start..end` of a blob. Whole bytes: Blob.slice rounds a fractional offset
/// ([Clamp]), which would shift a part's start off its line.
fn slice(blob: &Blob, start: u64, end: u64) -> Result<Blob, String> {
    blob.slice_with_f64_and_f64(start as f64, end as f64)
        .map_err(|_| "cannot slice the file".to_owned())
}

/// Scores a part in this worker (its share, or one a helper failed to deliver).
fn score_here(scorer: &Scorer, start: u64, part_blob: &Blob) -> Result<ScoredPart, String> {
    let range = scorer.range_scorer(start);
    let mut range = range.ok_or("the file can no longer be split")?;
    feed_blob(&mut range, part_blob.clone(), &mut |_| {})?;
    Ok(range.into_part())
}

/// Whether a plain file of this size is scored in parts by helpers (the core's planner
/// decides, for this many cores).
pub fn worth_splitting(size: f64) -> bool {
    parts::worth_splitting(size as u64, helper_count() + 1)
}

/// Helpers to start: one per core but one, which stays with the page; the scoring worker
/// scores parts too.
fn helper_count() -> usize {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let cores = scope.navigator().hardware_concurrency();
    (cores as usize).saturating_sub(1).clamp(1, 7)
}

/// The scoring worker's side, for one plain file that is [`worth_splitting`]: reads the
/// head itself, then has the helpers score the rest in the parts the core's planner cuts
/// ([`tracesift_core::parts`]). Returns how many helpers did (0 when the head shows the
/// file cannot be split and it was streamed here), or None, having read nothing, when the
/// head holds no line end (the caller streams it).
pub async fn score_in_parts(
    scorer: &mut Scorer,
    blob: &Blob,
    name: &str,
    settings: &Settings,
    helper_script: &str,
    progress: &mut dyn FnMut(f64),
) -> Result<Option<usize>, String> {
    let size = blob.size() as u64;
    let head = read_blob(&slice(blob, 0, parts::HEAD_BYTES.min(size))?)?;
    let Some(head_end) = parts::head_end(&head) else {
        return Ok(None);
    };
    scorer.feed(head.get(..head_end as usize).unwrap_or(&[]));
    progress(head_end as f64);
    let mut stream_rest = |scorer: &mut Scorer| {
        feed_blob(scorer, slice(blob, head_end, size)?, &mut |done| {
            progress(head_end as f64 + done)
        })
    };
    if scorer.range_scorer(head_end).is_none() {
        stream_rest(scorer)?;
        return Ok(Some(0));
    }
    let helpers = match helpers(helper_script).await {
        Ok(helpers) => helpers,
        Err(message) => {
            web_sys::console::warn_1(&format!("{message}; scoring on one core").into());
            stream_rest(scorer)?;
            return Ok(Some(0));
        }
    };
    // Every (helpers + 1)-th part is scored here, the others by the helpers.
    let n_scorers = helpers.workers.len() + 1;
    let planned = parts::plan(head_end, size, n_scorers, |offset| {
        next_line_start(blob, offset)
    })?;
    let mut parts = Vec::with_capacity(planned.len());
    for (idx, part) in planned.into_iter().enumerate() {
        let parts::Part { start, end } = part;
        let part_blob = slice(blob, start, end)?;
        let helper = idx % n_scorers;
        if helper == helpers.workers.len() {
            parts.push((start, end, part_blob, None));
            continue;
        }
        let (id, receiver) = expect_reply(helper);
        let request = ToHelper::ScorePart {
            id,
            settings: settings.clone(),
            name: name.to_owned(),
            start,
        };
        let posted = Envelope::new(&request).and_then(|envelope| {
            let worker = helpers.workers.get(helper).ok_or("no such helper")?;
            send(worker, &envelope.with("part", &part_blob))
        });
        if let Err(message) = posted {
            answer(id, Err(message));
        }
        parts.push((start, end, part_blob, Some(receiver)));
    }
    // This worker's own parts, while the helpers work on theirs.
    let mut scored_here = Vec::with_capacity(parts.len());
    for (start, _, part_blob, receiver) in &parts {
        scored_here.push(match receiver {
            None => Some(score_here(scorer, *start, part_blob)?),
            Some(_) => None,
        });
    }
    for ((start, end, part_blob, receiver), here) in parts.into_iter().zip(scored_here) {
        let part = match (here, receiver) {
            (Some(part), _) => part,
            (None, Some(receiver)) => match receiver.await {
                Ok(Ok(Reply::Part(part))) => *part,
                failure => {
                    let reason = match failure {
                        Ok(Err(message)) => message,
                        Ok(Ok(_)) => "the helper answered another request".to_owned(),
                        Err(_) => "the helper went away".to_owned(),
                    };
                    web_sys::console::warn_1(
                        &format!("{reason}; scoring bytes {start}..{end} here instead").into(),
                    );
                    score_here(scorer, start, &part_blob)?
                }
            },
            (None, None) => score_here(scorer, start, &part_blob)?,
        };
        scorer.absorb_part(part);
        progress(end as f64);
    }
    Ok(Some(n_scorers))
}

/// Posts a request to a helper, its buffers transferred.
fn send(worker: &Worker, envelope: &Envelope) -> Result<(), String> {
    worker
        .post_message_with_transfer(&envelope.object, &envelope.transfer)
        .map_err(|_| "cannot reach a helper worker".to_owned())
}

/// A new request id for `helper`, and the receiver its reply (or failure) arrives on.
fn expect_reply(helper: usize) -> (u32, oneshot::Receiver<ReplyResult>) {
    let id = NEXT_ID.with(|n| {
        let mut n = n.borrow_mut();
        *n = n.wrapping_add(1);
        *n
    });
    let (sender, receiver) = oneshot::channel();
    PENDING.with(|p| {
        p.borrow_mut().insert(
            id,
            Pending {
                helper,
                answer: sender,
            },
        )
    });
    (id, receiver)
}

/// The helpers that hold the embedding model from `model_url`, loading it where it is
/// missing (each helper fetches it; the browser's cache serves the repeats). A helper that
/// cannot start or load it is left out: the scoring worker embeds without it.
pub async fn embedding_helpers(helper_script: &str, model_url: &str) -> Vec<usize> {
    let helpers = match helpers(helper_script).await {
        Ok(helpers) => helpers,
        Err(message) => {
            web_sys::console::warn_1(&format!("{message}; embedding on one core").into());
            return Vec::new();
        }
    };
    let mut loading = Vec::new();
    for (helper, worker) in helpers.workers.iter().enumerate() {
        let holds = MODEL_IN.with(|m| m.borrow().get(&helper).is_some_and(|url| url == model_url));
        if holds {
            loading.push((helper, None));
            continue;
        }
        let (sender, receiver) = oneshot::channel();
        LOADING.with(|l| l.borrow_mut().insert(helper, sender));
        let request = ToHelper::LoadModel {
            model_url: model_url.to_owned(),
        };
        match Envelope::new(&request).and_then(|envelope| send(worker, &envelope)) {
            Ok(()) => loading.push((helper, Some(receiver))),
            Err(message) => web_sys::console::warn_1(&message.into()),
        }
    }
    let mut ready = Vec::new();
    for (helper, receiver) in loading {
        let loaded = match receiver {
            None => Ok(()),
            Some(receiver) => receiver
                .await
                .unwrap_or_else(|_| Err("the helper went away".to_owned())),
        };
        match loaded {
            Ok(()) => {
                MODEL_IN.with(|m| m.borrow_mut().insert(helper, model_url.to_owned()));
                ready.push(helper);
            }
            Err(message) => web_sys::console::warn_1(
                &format!("a helper cannot load the embedding model: {message}").into(),
            ),
        }
    }
    ready
}

/// Has helper `helper` embed `texts`.
pub async fn embed_on(
    helper: usize,
    texts: Vec<String>,
    part: tracesift_core::settings::SemanticPart,
) -> Result<Vec<Vec<f32>>, String> {
    let worker = HELPERS
        .with(|h| {
            h.borrow()
                .as_ref()
                .and_then(|h| h.workers.get(helper).cloned())
        })
        .ok_or("no such helper")?;
    let (id, receiver) = expect_reply(helper);
    let request = ToHelper::Embed { id, texts, part };
    if let Err(message) = Envelope::new(&request).and_then(|envelope| send(&worker, &envelope)) {
        answer(id, Err(message));
    }
    match receiver.await {
        Ok(Ok(Reply::Embeddings(embeddings))) => Ok(embeddings),
        Ok(Ok(Reply::Part(_))) => Err("the helper answered another request".to_owned()),
        Ok(Err(message)) => Err(message),
        Err(_) => Err("the helper went away".to_owned()),
    }
}
