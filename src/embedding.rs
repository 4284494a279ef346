//! `semantic` similarity in the tab: the scoring worker and its helpers embed the run's
//! texts with all-MiniLM-L6-v2 (`tracesift-embed`, the same code as the CLI), each text
//! once, a few texts per request, while the page keeps showing the results it has. The
//! model's files come from this app's own origin (the build copies them beside the app;
//! the service worker caches them on first use), never from anywhere else.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use futures_channel::oneshot;
use js_sys::{Promise, Uint8Array};
use tracesift_core::dataset::Scorer;
use tracesift_core::settings::SemanticPart;
use tracesift_embed::{Model, ModelFiles, Part};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, Response, WorkerGlobalScope};

use crate::protocol::ToPage;

/// Where the build puts the model's files, relative to the app's page.
pub const MODEL_FOLDER: &str = "all-MiniLM-L6-v2/";

/// Texts per request: a few seconds of work, so progress moves and a cancel is quick.
const TEXTS_PER_REQUEST: usize = 4;

thread_local! {
    /// This worker's model, and the folder it came from.
    static MODEL: RefCell<Option<(String, Rc<Model>)>> = const { RefCell::new(None) };
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

/// Loads the model from `model_url` into this worker, unless it holds it already. Each
/// file is checked against its pinned sha256 (`tracesift_embed::Model::load`).
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
    let weights = fetch_bytes(&format!("{model_url}model.safetensors")).await?;
    let tokenizer = fetch_bytes(&format!("{model_url}tokenizer.json")).await?;
    let config = fetch_bytes(&format!("{model_url}config.json")).await?;
    let model = Model::load(&ModelFiles {
        weights: &weights,
        tokenizer: &tokenizer,
        config: &config,
    })
    .map_err(|error| error.to_string())?;
    let model = Rc::new(model);
    MODEL.with(|m| *m.borrow_mut() = Some((model_url.to_owned(), Rc::clone(&model))));
    Ok(model)
}

fn model_part(part: SemanticPart) -> Part {
    match part {
        SemanticPart::First => Part::First,
        SemanticPart::Last => Part::Last,
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
            .embed(&[text], model_part(part))
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

/// `semantic`: embeds every text the scorer holds, on the scoring worker and its helpers,
/// posting progress to the page, and hands the embeddings to the scorer. Returns false,
/// leaving the run unfinished, once `superseded` says a newer run (or a cancel) replaced it.
pub async fn embed_run(
    scope: &DedicatedWorkerGlobalScope,
    run: u32,
    scorer: &mut Scorer,
    part: SemanticPart,
    model_url: &str,
    helper_script: Option<&str>,
    superseded: impl Fn() -> bool,
) -> Result<bool, String> {
    let taken = scorer.take_texts();
    if taken.is_empty() {
        return Ok(true);
    }
    let total = taken.len();
    let (trace_idxs, texts): (Vec<usize>, Vec<String>) = taken.into_iter().unzip();
    let progress = |done: usize| {
        let response = ToPage::Embedding {
            run,
            done: u32::try_from(done).unwrap_or(u32::MAX),
            total: u32::try_from(total).unwrap_or(u32::MAX),
        };
        crate::worker::post(scope, &response);
    };
    progress(0);
    let model = load_model(model_url).await?;
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
                        let response = ToPage::Embedding {
                            run,
                            done: u32::try_from(queue.done.get()).unwrap_or(u32::MAX),
                            total: u32::try_from(total).unwrap_or(u32::MAX),
                        };
                        crate::worker::post(&scope, &response);
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
    let own_share = |queue: &Queue| -> Result<(), String> {
        if let Some(range) = queue.take() {
            let embeddings = embed_with(&model, &queue.texts(&range), part)?;
            queue.store(range, embeddings);
            progress(queue.done.get());
        }
        Ok(())
    };
    // On a newer run, the helpers' tasks stop once they find the queue empty.
    let stop = |queue: &Queue| queue.waiting.borrow_mut().clear();
    while !queue.waiting.borrow().is_empty() {
        if superseded() {
            stop(&queue);
            return Ok(false);
        }
        own_share(&queue)?;
        yield_to_events().await;
    }
    for on_finished in helpers_done {
        let _ = on_finished.await;
    }
    // What a failing helper gave back after this worker's own loop had ended.
    while !queue.waiting.borrow().is_empty() {
        if superseded() {
            stop(&queue);
            return Ok(false);
        }
        own_share(&queue)?;
        yield_to_events().await;
    }
    if superseded() {
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
