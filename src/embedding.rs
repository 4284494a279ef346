//! `semantic` similarity in the tab: the run's texts are embedded with all-MiniLM-L6-v2
//! (`tracesift-embed`, the same code as the CLI) while the page keeps showing the results
//! it has. Where the backend runs a GPU (`gpu`, or `auto` with a hardware adapter) the
//! scoring worker runs the encoder on WebGPU; otherwise, or after a GPU failure, the
//! scoring worker and its helpers embed each text once, a few texts per request. The
//! model's files come from this app's own origin (the build copies them beside the app),
//! never from anywhere else, and are kept after the first use: by the service worker
//! (https and localhost), and in IndexedDB, which also works where no service worker runs
//! (an app served to a room over plain http).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use futures_channel::oneshot;
use js_sys::{Promise, Uint8Array};
use tracesift_core::dataset::Scorer;
use tracesift_core::settings::SemanticPart;
use tracesift_embed::{CheckedFiles, EmbedError, Model, ModelFiles};
use tracesift_gpu::{Encoder, Engine, Gpu};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    DedicatedWorkerGlobalScope, IdbDatabase, IdbRequest, IdbTransactionMode, Response,
    WorkerGlobalScope,
};

use crate::protocol::ToPage;

/// Where the build puts the model's files, relative to the app's page.
pub const MODEL_FOLDER: &str = "all-MiniLM-L6-v2/";

/// Texts per request: a few seconds of work, so progress moves and a cancel is quick.
const TEXTS_PER_REQUEST: usize = 4;

thread_local! {
    /// This worker's model, and the folder it came from.
    static MODEL: RefCell<Option<(String, Rc<Model>)>> = const { RefCell::new(None) };
    /// The model's weights on this worker's GPU, and the folder they came from.
    static ENCODER: RefCell<Option<(String, Rc<Encoder>)>> = const { RefCell::new(None) };
}

/// Fetches one of the model's files from this origin.
async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
    let failed = |what: &str| format!("cannot load the embedding model's {url}: {what}");
    let response = JsFuture::from(scope.fetch_with_str(url))
        .await
        .map_err(|_| failed("the request failed"))?;
    let response: Response = response.dyn_into().map_err(|_| failed("no response"))?;
    if !response.ok() {
        return Err(failed(&format!("HTTP {}", response.status())));
    }
    let buffer = response
        .array_buffer()
        .map_err(|_| failed("the body cannot be read"))?;
    let buffer = JsFuture::from(buffer)
        .await
        .map_err(|_| failed("the body cannot be read"))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// The model's files kept in IndexedDB, keyed by name and pinned sha256 (a new pin never
/// reads an old file). Every failure here only means the file is fetched.
mod kept {
    use super::*;

    const DATABASE: &str = "tracesift-model";
    const STORE: &str = "files";

    /// A request's result, once it succeeds.
    async fn done(request: &IdbRequest) -> Result<JsValue, JsValue> {
        let promise = Promise::new(&mut |resolve, reject| {
            let answered = request.clone();
            let on_success = wasm_bindgen::closure::Closure::once_into_js(move || {
                let _ = resolve.call1(&JsValue::NULL, &answered.result().unwrap_or_default());
            });
            let on_error = wasm_bindgen::closure::Closure::once_into_js(move || {
                let _ = reject.call0(&JsValue::NULL);
            });
            request.set_onsuccess(Some(on_success.unchecked_ref()));
            request.set_onerror(Some(on_error.unchecked_ref()));
        });
        JsFuture::from(promise).await
    }

    async fn database() -> Result<IdbDatabase, JsValue> {
        let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
        let factory = scope.indexed_db()?.ok_or(JsValue::NULL)?;
        let opening = factory.open_with_u32(DATABASE, 1)?;
        let upgrading = opening.clone();
        let on_upgrade = wasm_bindgen::closure::Closure::once_into_js(move || {
            if let Ok(database) = upgrading
                .result()
                .and_then(|db| db.dyn_into::<IdbDatabase>())
            {
                let _ = database.create_object_store(STORE);
            }
        });
        opening.set_onupgradeneeded(Some(on_upgrade.unchecked_ref()));
        done(&opening).await?.dyn_into::<IdbDatabase>()
    }

    fn key(file: &str) -> JsValue {
        let sha = tracesift_embed::pinned_sha256(file).unwrap_or_default();
        JsValue::from_str(&format!("{file} {sha}"))
    }

    pub async fn read(file: &str) -> Option<Vec<u8>> {
        let read = async {
            let database = database().await?;
            let store = database.transaction_with_str(STORE)?.object_store(STORE)?;
            let value = done(&store.get(&key(file))?).await?;
            database.close();
            Ok::<_, JsValue>(value)
        };
        let value = read.await.ok()?;
        value
            .dyn_ref::<js_sys::ArrayBuffer>()
            .map(|buffer| Uint8Array::new(buffer).to_vec())
    }

    pub async fn write(file: &str, bytes: &[u8]) {
        let write = async {
            let database = database().await?;
            let store = database
                .transaction_with_str_and_mode(STORE, IdbTransactionMode::Readwrite)?
                .object_store(STORE)?;
            let buffer = Uint8Array::from(bytes).buffer();
            done(&store.put_with_key(&buffer, &key(file))?).await?;
            database.close();
            Ok::<_, JsValue>(())
        };
        if write.await.is_err() {
            web_sys::console::warn_1(
                &format!("cannot keep the embedding model's {file} in IndexedDB").into(),
            );
        }
    }
}

/// The files the model is loaded from.
const MODEL_FILES: [&str; 3] = ModelFiles::NAMES;

/// The sha256 of `bytes`: by the browser's SubtleCrypto (0.3 s over the weights) where
/// this worker has it (it is only given to secure contexts: https and localhost), else by
/// `tracesift_embed`'s own (5 s in wasm).
async fn sha256(bytes: &[u8]) -> [u8; 32] {
    let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
    let by_browser = async {
        if !scope.is_secure_context() {
            return None;
        }
        let subtle = scope.crypto().ok()?.subtle();
        // SubtleCrypto copies `bytes` (a view of this module's memory) before it returns.
        let digest = JsFuture::from(subtle.digest_with_str_and_u8_array("SHA-256", bytes).ok()?)
            .await
            .ok()?;
        Uint8Array::new(&digest).to_vec().try_into().ok()
    };
    match by_browser.await {
        Some(digest) => digest,
        None => tracesift_embed::sha256(bytes),
    }
}

/// The model's files (in [`MODEL_FILES`]' order) with their sha256, each the pinned one.
struct VerifiedFiles {
    bytes: [Vec<u8>; MODEL_FILES.len()],
    digests: [[u8; 32]; MODEL_FILES.len()],
}

impl VerifiedFiles {
    fn checked(&self) -> Result<CheckedFiles<'_>, String> {
        let [weights, tokenizer, config] = &self.bytes;
        let files = ModelFiles {
            weights,
            tokenizer,
            config,
        };
        files
            .check_digests(&self.digests)
            .map_err(|error| error.to_string())
    }
}

/// The sha256 of `bytes`, if they are the pinned `file`.
async fn pinned_digest(file: &'static str, bytes: &[u8]) -> Result<[u8; 32], EmbedError> {
    let found = sha256(bytes).await;
    tracesift_embed::check_digest(file, &found)?;
    Ok(found)
}

/// The model's files, each checked against its pinned sha256: the copy kept in IndexedDB
/// if it is the pinned file, else (none kept, or a copy damaged or of another model) the
/// one fetched from `model_url`, which is then kept in its place.
async fn verified_files(model_url: &str) -> Result<VerifiedFiles, String> {
    let mut verified = VerifiedFiles {
        bytes: Default::default(),
        digests: [[0; 32]; MODEL_FILES.len()],
    };
    for ((file, bytes), digest) in MODEL_FILES
        .into_iter()
        .zip(&mut verified.bytes)
        .zip(&mut verified.digests)
    {
        let kept = match kept::read(file).await {
            Some(copy) => pinned_digest(file, &copy)
                .await
                .ok()
                .map(|found| (copy, found)),
            None => None,
        };
        (*bytes, *digest) = match kept {
            Some(kept) => kept,
            None => {
                let fetched = fetch_bytes(&format!("{model_url}{file}")).await?;
                let found = pinned_digest(file, &fetched)
                    .await
                    .map_err(|error| error.to_string())?;
                kept::write(file, &fetched).await;
                (fetched, found)
            }
        };
    }
    Ok(verified)
}

/// Loads the model from `model_url` into this worker, unless it holds it already
/// ([`verified_files`]).
pub async fn load_model(model_url: &str) -> Result<Rc<Model>, String> {
    let held = MODEL.with(|m| {
        m.borrow()
            .as_ref()
            .filter(|(url, _)| url == model_url)
            .map(|(_, model)| Rc::clone(model))
    });
    if let Some(model) = held {
        return Ok(model);
    }
    let files = verified_files(model_url).await?;
    let model = Rc::new(Model::load(&files.checked()?).map_err(|error| error.to_string())?);
    MODEL.with(|m| *m.borrow_mut() = Some((model_url.to_owned(), Rc::clone(&model))));
    Ok(model)
}

/// The model's weights on `gpu`, uploaded once per worker ([`verified_files`]).
async fn load_encoder(model_url: &str, gpu: &Gpu) -> Result<Rc<Encoder>, String> {
    let held = ENCODER.with(|e| {
        e.borrow()
            .as_ref()
            .filter(|(url, _)| url == model_url)
            .map(|(_, encoder)| Rc::clone(encoder))
    });
    if let Some(encoder) = held {
        return Ok(encoder);
    }
    // Read and checked again after `load_model` (0.3 s: WebGPU, like SubtleCrypto, is only
    // given to secure contexts), so the scoring worker holds the 90 MB of bytes only while
    // it uploads them.
    let files = verified_files(model_url).await?;
    let encoder = Rc::new(
        tracesift_embed::upload(gpu, &files.checked()?)
            .await
            .map_err(|error| error.to_string())?,
    );
    ENCODER.with(|e| *e.borrow_mut() = Some((model_url.to_owned(), Rc::clone(&encoder))));
    Ok(encoder)
}

/// Every text on the GPU, reporting progress after each submission. `Ok(None)`: a newer
/// run (or a cancel) replaced this one.
async fn embed_on_gpu(
    scope: &DedicatedWorkerGlobalScope,
    run: u32,
    gpu: &Gpu,
    model: &Model,
    how: &EmbedRun<'_>,
    texts: &[String],
    superseded: &impl Fn() -> bool,
) -> Result<Option<Vec<Vec<f32>>>, EmbedError> {
    let encoder = load_encoder(how.model_url, gpu)
        .await
        .map_err(|message| EmbedError::Gpu(tracesift_gpu::GpuError(message)))?;
    let strs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let embedded = model
        .embed_on(gpu, &encoder, &strs, how.part, &mut |done| {
            report_progress(scope, run, done, texts.len());
            !superseded()
        })
        .await;
    match embedded {
        _ if superseded() => Ok(None),
        Ok(embeddings) => Ok(Some(embeddings)),
        Err(error) => Err(error),
    }
}

/// Embeds texts with the model this worker holds (a helper, after `load_model`).
pub fn embed_here(texts: &[String], part: SemanticPart) -> Result<Vec<Vec<f32>>, String> {
    let model = MODEL
        .with(|m| m.borrow().as_ref().map(|(_, model)| Rc::clone(model)))
        .ok_or("the embedding model is not loaded")?;
    embed_with(&model, texts, part)
}

fn embed_with(
    model: &Model,
    texts: &[String],
    part: SemanticPart,
) -> Result<Vec<Vec<f32>>, String> {
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    // One at a time: a batch pads every text to the longest, which costs more than it
    // saves at these lengths.
    let mut out = Vec::with_capacity(texts.len());
    for text in texts {
        let mut one = model
            .embed(&[text], part)
            .map_err(|error| error.to_string())?;
        out.push(one.pop().ok_or("the model gave no embedding")?);
    }
    Ok(out)
}

/// Lets the worker's event loop run (a newer run's message, a cancel) between requests.
async fn yield_to_events() {
    let promise = Promise::new(&mut |resolve, _| {
        let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
        let _ = scope.set_timeout_with_callback(&resolve);
    });
    let _ = JsFuture::from(promise).await;
}

/// Tells the page how many of the run's texts are embedded.
fn report_progress(scope: &DedicatedWorkerGlobalScope, run: u32, done: usize, total: usize) {
    let response = ToPage::Embedding {
        run,
        done: u32::try_from(done).unwrap_or(u32::MAX),
        total: u32::try_from(total).unwrap_or(u32::MAX),
    };
    crate::worker::post(scope, &response);
}

/// The texts of the run and where their embeddings go, shared by the scoring worker's own
/// loop and one task per helper.
struct Queue {
    texts: Vec<String>,
    /// Requests not yet taken (as ranges of `texts`).
    waiting: RefCell<VecDeque<std::ops::Range<usize>>>,
    embeddings: RefCell<Vec<Option<Vec<f32>>>>,
    done: Cell<usize>,
}

impl Queue {
    /// Tells the page how many texts are done.
    fn report(&self, scope: &DedicatedWorkerGlobalScope, run: u32) {
        report_progress(scope, run, self.done.get(), self.texts.len());
    }

    fn take(&self) -> Option<std::ops::Range<usize>> {
        self.waiting.borrow_mut().pop_front()
    }

    fn texts(&self, range: &std::ops::Range<usize>) -> Vec<String> {
        self.texts.get(range.clone()).unwrap_or_default().to_vec()
    }

    fn store(&self, range: std::ops::Range<usize>, embeddings: Vec<Vec<f32>>) {
        let count = range.len();
        let mut slots = self.embeddings.borrow_mut();
        for (slot, embedding) in slots
            .get_mut(range)
            .unwrap_or_default()
            .iter_mut()
            .zip(embeddings)
        {
            *slot = Some(embedding);
        }
        self.done.set(self.done.get() + count);
    }
}

/// How a run embeds: where, and with which model.
pub struct EmbedRun<'a> {
    pub part: SemanticPart,
    pub model_url: &'a str,
    pub helper_script: Option<&'a str>,
}

/// `semantic`: embeds every text the scorer holds, on the GPU the engine offers, else on
/// the scoring worker and its helpers, posting progress to the page, and hands the
/// embeddings to the scorer. Returns false, leaving the run unfinished, once `superseded`
/// says a newer run (or a cancel) replaced it.
pub async fn embed_run(
    scope: &DedicatedWorkerGlobalScope,
    run: u32,
    scorer: &mut Scorer,
    engine: &mut Engine,
    how: EmbedRun<'_>,
    superseded: impl Fn() -> bool,
) -> Result<bool, String> {
    let taken = scorer.take_texts();
    if taken.is_empty() {
        return Ok(true);
    }
    let total = taken.len();
    let (trace_idxs, texts): (Vec<usize>, Vec<String>) = taken.into_iter().unzip();
    // The page shows the embedding's progress (and its Cancel) from here on, while the
    // model loads.
    report_progress(scope, run, 0, total);
    if let Some(gpu) = engine.embedding_gpu() {
        let model = load_model(how.model_url).await?;
        let embedded = embed_on_gpu(scope, run, &gpu, &model, &how, &texts, &superseded).await;
        match embedded {
            Ok(None) => return Ok(false),
            Ok(Some(embeddings)) => {
                engine.embedded_on_gpu();
                for (trace_idx, embedding) in trace_idxs.iter().zip(embeddings) {
                    scorer.set_embedding(*trace_idx, &embedding);
                }
                return Ok(true);
            }
            Err(EmbedError::Gpu(error)) => engine.fail(&error),
            Err(other) => return Err(other.to_string()),
        }
    }
    let EmbedRun {
        part,
        model_url,
        helper_script,
    } = how;
    let queue = Rc::new(Queue {
        texts,
        waiting: RefCell::new(
            (0..total)
                .step_by(TEXTS_PER_REQUEST)
                .map(|start| start..(start + TEXTS_PER_REQUEST).min(total))
                .collect(),
        ),
        embeddings: RefCell::new(vec![None; total]),
        done: Cell::new(0),
    });
    let model = load_model(model_url).await?;
    let helpers = match helper_script {
        Some(script) => crate::helpers::embedding_helpers(script, model_url).await,
        None => Vec::new(),
    };
    let mut helpers_done = Vec::with_capacity(helpers.len());
    for helper in helpers {
        let (finished, on_finished) = oneshot::channel::<()>();
        helpers_done.push(on_finished);
        let queue = Rc::clone(&queue);
        let scope = scope.clone();
        wasm_bindgen_futures::spawn_local(async move {
            while let Some(range) = queue.take() {
                match crate::helpers::embed_on(helper, queue.texts(&range), part).await {
                    Ok(embeddings) if embeddings.len() == range.len() => {
                        queue.store(range, embeddings);
                        queue.report(&scope, run);
                    }
                    failure => {
                        // Its request goes back to the queue; the scoring worker takes it.
                        let reason = match failure {
                            Err(message) => message,
                            Ok(_) => "a helper gave the wrong number of embeddings".to_owned(),
                        };
                        web_sys::console::warn_1(&format!("{reason}; embedding elsewhere").into());
                        queue.waiting.borrow_mut().push_back(range);
                        break;
                    }
                }
            }
            let _ = finished.send(());
        });
    }
    // This worker's share while the helpers work; then, once they are done, what a
    // failing helper gave back after this worker's own loop had ended.
    let embed_waiting_here = async || -> Result<bool, String> {
        while let Some(range) = queue.take() {
            if superseded() {
                // The helpers' tasks stop once they find the queue empty.
                queue.waiting.borrow_mut().clear();
                return Ok(false);
            }
            let embeddings = embed_with(&model, &queue.texts(&range), part)?;
            queue.store(range, embeddings);
            queue.report(scope, run);
            yield_to_events().await;
        }
        Ok(true)
    };
    if !embed_waiting_here().await? {
        return Ok(false);
    }
    for on_finished in helpers_done {
        let _ = on_finished.await;
    }
    if !embed_waiting_here().await? || superseded() {
        return Ok(false);
    }
    let embeddings = queue.embeddings.take();
    for (trace_idx, embedding) in trace_idxs.into_iter().zip(embeddings) {
        if let Some(embedding) = embedding {
            scorer.set_embedding(trace_idx, &embedding);
        }
    }
    Ok(true)
}
