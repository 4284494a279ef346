//! Data links: a link whose fragment holds `data=<url>` (beside the settings) brings its
//! data. The page names the URL and fetches nothing until the user presses
//! *Load the linked data*; then the worker downloads the file and scores it as it arrives,
//! gunzipping when it starts like gzip, exactly as it reads a dropped file, and keeps the
//! whole file as a Blob so downloads and the trace view read records back as for a local
//! file. Failures get a sentence a user can act on.
//!
//! The page side is [`DataLink`] and [`LinkedDataPrompt`]; the worker side is
//! [`stream_into`].

use std::io::Write;

use flate2::write::MultiGzDecoder;
use js_sys::{Reflect, Uint8Array};
use leptos::prelude::*;
use tracesift_core::dataset::Scorer;
use tracesift_gpu::Engine;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, DedicatedWorkerGlobalScope};

use crate::app::Status;

/// A usable data link: where it points, and the names the page shows for it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinkedFile {
    /// The absolute http(s) URL.
    pub url: String,
    /// Host (and port), as users know the server.
    pub host: String,
    /// The file's name (the URL's last path segment), for the summary and downloads.
    pub name: String,
}

/// Where the linked data stands.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkState {
    /// Shown, waiting for the user.
    Offered,
    /// Downloading and scoring (a failure shows in the status line).
    Loading,
    /// Scored; the file is now an input like a dropped one.
    Loaded,
}

/// The link's data as the page knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DataLink {
    /// The URL as written in the link.
    pub raw: String,
    /// The file to fetch, or why this link cannot be loaded.
    pub file: Result<LinkedFile, String>,
    pub state: LinkState,
}

impl DataLink {
    /// The data link of a fragment, resolved against the page (`base`, its URL).
    pub fn from_fragment(fragment: &str, base: &str) -> Option<Self> {
        let raw = crate::fragment::data_link(fragment)?;
        Some(Self {
            file: resolve(&raw, base),
            raw,
            state: LinkState::Offered,
        })
    }
}

/// Checks a linked URL before anything is fetched: absolute (or relative to the page),
/// http or https, and not http from an https page (browsers block that).
pub fn resolve(raw: &str, base: &str) -> Result<LinkedFile, String> {
    let url = web_sys::Url::new_with_base(raw.trim(), base)
        .map_err(|_| format!("`{raw}` is not a web address, so there is nothing to load."))?;
    let protocol = url.protocol();
    if protocol != "https:" && protocol != "http:" {
        return Err(format!(
            "`{raw}` is not an http or https address; only files on a web server can be linked."
        ));
    }
    let page_is_https = web_sys::Url::new(base).is_ok_and(|page| page.protocol() == "https:");
    let local = matches!(url.hostname().as_str(), "localhost" | "127.0.0.1" | "[::1]");
    if page_is_https && protocol == "http:" && !local {
        return Err(format!(
            "This page is served over https, and browsers do not let it download from an \
             http address ({raw}). Use the https address of the file, or download it and \
             drop it here."
        ));
    }
    let path = url.pathname();
    let segment = path.rsplit('/').find(|segment| !segment.is_empty());
    let name = segment
        .and_then(|segment| js_sys::decode_uri_component(segment).ok())
        .and_then(|segment| segment.as_string())
        .unwrap_or_else(|| url.host());
    Ok(LinkedFile {
        host: url.host(),
        url: url.href(),
        name,
    })
}

/// The prompt a data link opens with: what would be downloaded, from where, and a button.
#[component]
pub fn LinkedDataPrompt(
    link: RwSignal<Option<DataLink>>,
    status: RwSignal<Status>,
    load: Callback<LinkedFile>,
) -> impl IntoView {
    move || {
        let data_link = link.get()?;
        let view = match (data_link.file, data_link.state) {
            (Err(problem), _) => view! {
                <div class="linked-data" data-testid="linked-data">
                    <p>"This link comes with data, but it cannot be loaded: " {problem}</p>
                </div>
            }
            .into_any(),
            (Ok(file), LinkState::Loaded) => view! {
                <p class="linked-data-loaded" data-testid="linked-data-loaded">
                    "Scored the linked data: " <code>{file.url}</code>
                </p>
            }
            .into_any(),
            (Ok(file), state) => {
                let loading =
                    state == LinkState::Loading && matches!(status.get(), Status::Loading { .. });
                let failed =
                    state == LinkState::Loading && matches!(status.get(), Status::Failed(_));
                let LinkedFile { url, host, .. } = file.clone();
                view! {
                    <div class="linked-data" data-testid="linked-data" role="region" aria-label="Linked data">
                        <p>
                            "This link comes with data: " <code data-testid="linked-data-url">{url}</code>
                            " on " <b>{host.clone()}</b> "."
                        </p>
                        <p class="explain">
                            {format!(
                                "Nothing has been downloaded yet. Load it only if you trust the link: the \
                                 file comes from {host} into this tab and is scored here; nothing is sent \
                                 anywhere else."
                            )}
                        </p>
                        <button class="primary" data-testid="load-linked-data" disabled=loading
                            on:click=move |_| load.run(file.clone())>
                            {if failed { "Try again" } else { "Load the linked data" }}
                        </button>
                        " "
                        <button data-testid="dismiss-linked-data" on:click=move |_| link.set(None)>
                            "Not now"
                        </button>
                    </div>
                }
                .into_any()
            }
        };
        Some(view)
    }
}

// ---- In the worker ----

/// Bytes between two progress messages while downloading.
const PROGRESS_EVERY_BYTES: f64 = 1024.0 * 1024.0;

/// Downloads `file` and feeds it to `scorer` as it arrives (gunzipped when it starts like
/// gzip); returns the whole file as a Blob, and whether it was gzip. `progress` gets the
/// bytes so far and the expected total (0 when the server does not say).
pub async fn stream_into(
    scope: &DedicatedWorkerGlobalScope,
    file: &LinkedFile,
    scorer: &mut Scorer,
    engine: &mut Engine,
    mut progress: impl FnMut(f64, f64),
) -> Result<(Blob, bool), String> {
    let host = &file.host;
    let response = match JsFuture::from(scope.fetch_with_str(&file.url)).await {
        Ok(response) => response
            .dyn_into::<web_sys::Response>()
            .map_err(|_| unreachable_message(host))?,
        Err(_) => return Err(explain_failed_fetch(scope, file).await),
    };
    if !response.ok() {
        return Err(status_message(
            host,
            response.status(),
            &response.status_text(),
        ));
    }
    let total = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|length| length.parse::<f64>().ok())
        .unwrap_or(0.0);
    let body = response
        .body()
        .ok_or_else(|| format!("The server at {host} sent an empty answer for this file."))?;
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let parts = js_sys::Array::new();
    let mut decoder = Decoder::Undecided(Vec::new());
    let mut bytes_done = 0.0;
    let mut reported = 0.0;
    loop {
        let result = JsFuture::from(reader.read())
            .await
            .map_err(|_| broke_off_message(host, bytes_done))?;
        let finished = Reflect::get(&result, &"done".into())
            .ok()
            .and_then(|done| done.as_bool())
            .unwrap_or(true);
        if finished {
            break;
        }
        let Some(chunk) = Reflect::get(&result, &"value".into())
            .ok()
            .and_then(|value| value.dyn_into::<Uint8Array>().ok())
        else {
            break;
        };
        parts.push(&chunk);
        bytes_done += f64::from(chunk.length());
        if let Err(error) = decoder.push(&chunk.to_vec(), scorer) {
            // As for a dropped file: what was read counts, the rest is reported.
            scorer.note_read_error(&format!("cannot read further: {error}"));
            let _ = reader.cancel();
            break;
        }
        engine.after_chunk(scorer).await;
        if bytes_done - reported >= PROGRESS_EVERY_BYTES {
            progress(bytes_done, total.max(bytes_done));
            reported = bytes_done;
        }
    }
    progress(bytes_done, total.max(bytes_done));
    let is_gzip = match decoder.finish(scorer) {
        Ok(is_gzip) => is_gzip,
        Err(error) => {
            scorer.note_read_error(&format!("cannot read further: {error}"));
            true
        }
    };
    let blob = Blob::new_with_u8_array_sequence(&parts)
        .map_err(|_| "the downloaded file could not be kept in this tab".to_owned())?;
    Ok((blob, is_gzip))
}

/// Feeds downloaded bytes to the scorer: as they are, or through gzip, decided by the
/// first two bytes (gzip's magic number), as for a dropped file.
enum Decoder {
    Undecided(Vec<u8>),
    Plain,
    Gzip(Box<MultiGzDecoder<Vec<u8>>>),
}

impl Decoder {
    fn push(&mut self, bytes: &[u8], scorer: &mut Scorer) -> std::io::Result<()> {
        match self {
            Decoder::Undecided(head) => {
                head.extend_from_slice(bytes);
                if head.len() >= 2 {
                    let head = std::mem::take(head);
                    *self = if head.starts_with(&[0x1f, 0x8b]) {
                        Decoder::Gzip(Box::new(MultiGzDecoder::new(Vec::new())))
                    } else {
                        Decoder::Plain
                    };
                    self.push(&head, scorer)?;
                }
            }
            Decoder::Plain => scorer.feed(bytes),
            Decoder::Gzip(decoder) => {
                decoder.write_all(bytes)?;
                let inflated = decoder.get_mut();
                scorer.feed(inflated);
                inflated.clear();
            }
        }
        Ok(())
    }

    /// Flushes what is left; returns whether the file was gzip.
    fn finish(self, scorer: &mut Scorer) -> std::io::Result<bool> {
        match self {
            Decoder::Undecided(head) => {
                scorer.feed(&head);
                Ok(false)
            }
            Decoder::Plain => Ok(false),
            Decoder::Gzip(mut decoder) => {
                decoder.try_finish()?;
                scorer.feed(decoder.get_ref());
                Ok(true)
            }
        }
    }
}

/// A fetch that fails before any answer is either the network (offline, wrong address,
/// server down) or CORS (the server answered but does not let this page read it), and the
/// browser does not say which. An opaque `no-cors` request to the same URL tells them
/// apart: it succeeds whenever the server answers at all. It is aborted as soon as the
/// headers arrive, so the file is not downloaded twice.
async fn explain_failed_fetch(scope: &DedicatedWorkerGlobalScope, file: &LinkedFile) -> String {
    let host = &file.host;
    let online = Reflect::get(&scope.navigator(), &"onLine".into())
        .ok()
        .and_then(|online| online.as_bool())
        .unwrap_or(true);
    if !online {
        return format!(
            "This computer is offline, so the linked data on {host} cannot be downloaded. \
             Connect and press Load again, or drop a copy of the file here."
        );
    }
    let controller = web_sys::AbortController::new().ok();
    let init = web_sys::RequestInit::new();
    init.set_mode(web_sys::RequestMode::NoCors);
    if let Some(controller) = &controller {
        init.set_signal(Some(&controller.signal()));
    }
    let probe = JsFuture::from(scope.fetch_with_str_and_init(&file.url, &init)).await;
    if let Some(controller) = &controller {
        controller.abort();
    }
    match probe {
        Ok(_) => format!(
            "The server on {host} answered, but it does not let other websites read this \
             file, so the browser blocked it (the answer has no CORS header, \
             Access-Control-Allow-Origin). Download the file yourself and drop it here, or \
             ask its owner to share it from a place that allows this (a GitHub raw link, a \
             Hugging Face dataset file, or a bucket with CORS switched on)."
        ),
        Err(_) => unreachable_message(host),
    }
}

fn unreachable_message(host: &str) -> String {
    format!(
        "Could not reach {host}: nothing answered there. The address may be wrong, the server \
         may be down, or a firewall may block it. Check the link, or download the file \
         yourself and drop it here."
    )
}

fn status_message(host: &str, status: u16, status_text: &str) -> String {
    let code = if status_text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status} {status_text}")
    };
    match status {
        404 | 410 => format!(
            "The server on {host} has no file at this address ({code}). Check the link with \
             whoever sent it, or ask them for the file itself."
        ),
        401 | 403 => format!(
            "The server on {host} refused to hand out this file ({code}): it is private, or \
             the link has expired. Ask for a public link, or for the file itself."
        ),
        _ => format!(
            "The server on {host} could not deliver this file ({code}). Try again later, or \
             ask for the file itself."
        ),
    }
}

fn broke_off_message(host: &str, bytes_done: f64) -> String {
    format!(
        "The download from {host} stopped after {:.1} MB (the connection dropped). Press \
         Load again to retry.",
        bytes_done / 1e6
    )
}
