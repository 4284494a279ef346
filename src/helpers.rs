//! Helper workers: the scoring worker splits a large plain JSONL file into line-aligned
//! parts, it and its helper workers (one per core but one, which stays with the page)
//! score them, and the scoring worker absorbs the results in file order, exactly as the CLI does with
//! threads. A part a helper cannot deliver (it crashed, ran out of memory) is scored by
//! the scoring worker itself, so a failing helper costs time, never results.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::oneshot;
use js_sys::{Array, Object, Reflect};
use tracesift_core::dataset::{ScoredPart, Scorer};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Blob, DedicatedWorkerGlobalScope, ErrorEvent, MessageEvent, Worker};

use crate::protocol::{Request, Response};
use crate::worker::{BlobReader, read_blob};

/// Plain files at least this big are scored by helpers.
pub const PARALLEL_MIN_BYTES: f64 = 64.0 * 1024.0 * 1024.0;
/// What the scoring worker reads itself first, to learn the format.
const HEAD_BYTES: f64 = 4.0 * 1024.0 * 1024.0;
/// Parts per helper (several, so one slow part does not leave the others idle).
const PARTS_PER_HELPER: f64 = 4.0;
/// The name a helper is started with; it tells the worker not to look for a GPU.
pub const HELPER_NAME: &str = "tracesift-helper";

type PartResult = Result<ScoredPart, String>;

/// A part sent out, and the helper it went to.
struct Pending {
    helper: usize,
    answer: oneshot::Sender<PartResult>,
}

struct Helpers {
    workers: Vec<Worker>,
}

thread_local! {
    static HELPERS: RefCell<Option<Rc<Helpers>>> = const { RefCell::new(None) };
    static PENDING: RefCell<HashMap<u32, Pending>> = RefCell::new(HashMap::new());
    static READY: RefCell<HashMap<usize, oneshot::Sender<()>>> = RefCell::new(HashMap::new());
    static NEXT_ID: RefCell<u32> = const { RefCell::new(0) };
}

/// The helpers, started on first use (the same worker script, named [`HELPER_NAME`]).
async fn helpers(script: &str) -> Result<Rc<Helpers>, String> {
    if let Some(helpers) = HELPERS.with(|h| h.borrow().clone()) {
        return Ok(helpers);
    }
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let cores = scope.navigator().hardware_concurrency();
    // One core stays with the page; the scoring worker scores parts too.
    let count = (cores as usize).saturating_sub(1).clamp(1, 7);
    let source = Array::new();
    source.push(&script.into());
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("text/javascript");
    let blob = Blob::new_with_str_sequence_and_options(&source, &options)
        .map_err(|_| "cannot create a helper worker".to_owned())?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)
        .map_err(|_| "cannot create a helper worker".to_owned())?;
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
    let text = Reflect::get(data, &"response".into())
        .ok()
        .and_then(|value| value.as_string())
        .unwrap_or_default();
    match serde_json::from_str::<Response>(&text) {
        Ok(Response::Ready { .. }) => {
            if let Some(ready) = READY.with(|r| r.borrow_mut().remove(&helper)) {
                let _ = ready.send(());
            }
        }
        Ok(Response::PartScored { id, part }) => answer(id, Ok(*part)),
        Ok(Response::PartFailed { id, message }) => answer(id, Err(message)),
        Ok(_) => {}
        Err(error) => fail_helper(
            helper,
            &format!("a helper sent an unreadable answer: {error}"),
        ),
    }
}

fn answer(id: u32, result: PartResult) {
    if let Some(pending) = PENDING.with(|p| p.borrow_mut().remove(&id)) {
        let _ = pending.answer.send(result);
    }
}

/// Fails every part the helper holds (their scoring falls back to the scoring worker),
/// and its start if it never said it was ready (the scoring worker then scores alone).
fn fail_helper(helper: usize, message: &str) {
    // Dropping the sender ends the wait for this helper with an error.
    READY.with(|r| r.borrow_mut().remove(&helper));
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

/// The helper's side: score bytes `start..` of a file (the blob is that part) and send
/// the result back.
pub fn score_part(
    scope: &DedicatedWorkerGlobalScope,
    id: u32,
    settings: &str,
    name: &str,
    start: f64,
    part: Blob,
) {
    let response = match scored_part(settings, name, start, part) {
        Ok(part) => Response::PartScored {
            id,
            part: Box::new(part),
        },
        Err(message) => Response::PartFailed { id, message },
    };
    crate::worker::post(scope, &response, None);
}

fn scored_part(settings: &str, name: &str, start: f64, part: Blob) -> Result<ScoredPart, String> {
    let settings = tracesift_core::settings::Settings::from_json(settings)
        .map_err(|error| error.to_string())?;
    let options = crate::worker::browser_options(&settings)?;
    let mut range = Scorer::for_part(options, name, start as u64);
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

/// The offset just past the first newline at or after `from`, if any.
fn next_line_start(blob: &Blob, from: f64) -> Result<Option<f64>, String> {
    let size = blob.size();
    let mut at = (from - 1.0).max(0.0);
    while at < size {
        let end = (at + 65_536.0).min(size);
        let window = blob
            .slice_with_f64_and_f64(at, end)
            .map_err(|_| "cannot slice the file".to_owned())?;
        let bytes = read_blob(&window)?;
        if let Some(newline) = memchr::memchr(b'\n', &bytes) {
            return Ok(Some(at + newline as f64 + 1.0));
        }
        at = end;
    }
    Ok(None)
}

/// Scores a part in this worker (its share, or one a helper failed to deliver).
fn score_here(scorer: &Scorer, start: f64, part_blob: &Blob) -> Result<ScoredPart, String> {
    let range = scorer.range_scorer(start as u64);
    let mut range = range.ok_or("the file can no longer be split")?;
    feed_blob(&mut range, part_blob.clone(), &mut |_| {})?;
    Ok(range.into_part())
}

/// The scoring worker's side, for one plain file of at least [`PARALLEL_MIN_BYTES`]:
/// reads the head itself, then has the helpers score the rest in parts. Returns how many
/// helpers did (0 when the head shows the file cannot be split and it was streamed here),
/// or None, having read nothing, when the head holds no line end (the caller streams it).
pub async fn score_in_parts(
    scorer: &mut Scorer,
    blob: &Blob,
    name: &str,
    settings: &str,
    helper_script: &str,
    progress: &mut dyn FnMut(f64),
) -> Result<Option<usize>, String> {
    let size = blob.size();
    let head_blob = blob
        .slice_with_f64_and_f64(0.0, HEAD_BYTES.min(size))
        .map_err(|_| "cannot slice the file".to_owned())?;
    let head = read_blob(&head_blob)?;
    let Some(last_newline) = memchr::memrchr(b'\n', &head) else {
        return Ok(None);
    };
    let head_end = (last_newline + 1) as f64;
    scorer.feed(head.get(..=last_newline).unwrap_or(&[]));
    progress(head_end);
    let rest = |from: f64| {
        blob.slice_with_f64_and_f64(from, size)
            .map_err(|_| "cannot slice the file".to_owned())
    };
    if scorer.range_scorer(head_end as u64).is_none() {
        feed_blob(scorer, rest(head_end)?, &mut |done| {
            progress(head_end + done)
        })?;
        return Ok(Some(0));
    }
    let helpers = match helpers(helper_script).await {
        Ok(helpers) => helpers,
        Err(message) => {
            web_sys::console::warn_1(&format!("{message}; scoring on one core").into());
            feed_blob(scorer, rest(head_end)?, &mut |done| {
                progress(head_end + done)
            })?;
            return Ok(Some(0));
        }
    };
    // Line-aligned parts: each starts after the first newline at or past its cut. Every
    // (helpers + 1)-th part is scored here, the others by the helpers.
    let n_scorers = helpers.workers.len() + 1;
    let n_parts = n_scorers as f64 * PARTS_PER_HELPER;
    // Whole bytes: Blob.slice rounds a fractional offset ([Clamp]), which would shift a
    // part's start off its line.
    let share = ((size - head_end) / n_parts)
        .floor()
        .max(16.0 * 1024.0 * 1024.0);
    let mut starts = vec![head_end];
    while let Some(&last) = starts.last() {
        match next_line_start(blob, last + share)? {
            Some(start) if start < size && start > last => starts.push(start),
            _ => break,
        }
    }
    let mut parts = Vec::with_capacity(starts.len());
    for (idx, &start) in starts.iter().enumerate() {
        let end = starts.get(idx + 1).copied().unwrap_or(size);
        let part_blob = blob
            .slice_with_f64_and_f64(start, end)
            .map_err(|_| "cannot slice the file".to_owned())?;
        let helper = idx % n_scorers;
        if helper == helpers.workers.len() {
            parts.push((start, end, part_blob, None));
            continue;
        }
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
        let request = Request::ScorePart {
            id,
            settings: settings.to_owned(),
            name: name.to_owned(),
            start,
        };
        let message = Object::new();
        let text = serde_json::to_string(&request).unwrap_or_default();
        let _ = Reflect::set(&message, &"request".into(), &text.into());
        let _ = Reflect::set(&message, &"part".into(), &part_blob);
        if let Some(worker) = helpers.workers.get(helper)
            && worker.post_message(&message).is_err()
        {
            answer(id, Err("cannot reach a helper worker".to_owned()));
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
                Ok(Ok(part)) => part,
                failure => {
                    let reason = match failure {
                        Ok(Err(message)) => message,
                        _ => "the helper went away".to_owned(),
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
        progress(end);
    }
    Ok(Some(n_scorers))
}
