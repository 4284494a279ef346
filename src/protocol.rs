//! The messages of the app's two channels, one typed enum per direction: page ↔ scoring
//! worker, scoring worker ↔ helper workers. Each is posted as MessagePack bytes whose
//! buffer is transferred; files, blobs and download bytes travel beside it as JS objects
//! (shared or transferred, never copied into the message). A message that cannot be read
//! is answered with an `Unreadable`, never dropped.

use js_sys::{Array, Object, Reflect, Uint8Array};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracesift_core::compare::{Agreement, Ranking};
use tracesift_core::dataset::{ScoredPart, ScoredSet, TraceScores};
use tracesift_core::evaluate::EvalReport;
use tracesift_core::settings::{SemanticPart, Settings};
use wasm_bindgen::{JsCast, JsValue};

/// Page → scoring worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToWorker {
    /// Score the files sent alongside (as the message's `files` array of Blobs/Files).
    Score {
        run: u32,
        settings: Settings,
        names: Vec<String>,
        /// The worker's own bootstrap script, to start helper workers for large files.
        helper_script: Option<String>,
        /// The folder of the embedding model's files on this app's origin (`semantic`).
        model_url: String,
        /// The name of the request file sent alongside (as the message's `requests`
        /// Blob), whose prompts the downloads carry.
        requests_name: Option<String>,
        /// A data link the user chose to load: the worker downloads it and scores it as
        /// it arrives, instead of the `files`.
        link: Option<crate::data_link::LinkedFile>,
    },
    /// Build a download from run `run`.
    Export {
        run: u32,
        settings: Settings,
        what: ExportWhat,
    },
    /// Read one trace's full content back from its file (the page keeps only scores).
    Trace { run: u32, trace_idx: usize },
    /// Evaluate run `run` against its gold labels with these filter settings.
    Evaluate { run: u32, settings: Settings },
    /// Rank the metrics of run `run` (bootstrap seeded by the settings' seed) and measure
    /// how they agree: which signal fits this data.
    Compare { run: u32, settings: Settings },
}

/// Which set of traces a download holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExportWhat {
    /// The kept traces, in the export format (what `tracesift filter` writes).
    Kept,
    /// The matched-size random baseline.
    Random,
    /// Every candidate, unfiltered.
    Unfiltered,
    /// A CSV of every trace's scores.
    ScoresCsv,
    /// The traces selected in the table (a class, a histogram bin, a scatter brush), in the
    /// export format. Indices into the run's traces.
    Selection(Vec<u32>),
}

impl ExportWhat {
    pub fn file_stem(&self) -> &'static str {
        match self {
            ExportWhat::Kept => "tracesift-kept",
            ExportWhat::Random => "tracesift-random-baseline",
            ExportWhat::Unfiltered => "tracesift-unfiltered",
            ExportWhat::ScoresCsv => "tracesift-scores",
            ExportWhat::Selection(_) => "tracesift-selection",
        }
    }
}

/// Scoring worker → page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToPage {
    /// The worker has loaded and listens; `webgpu` names the WebGPU adapter it found.
    Ready {
        webgpu: Option<String>,
    },
    Progress {
        run: u32,
        bytes_done: f64,
        bytes_total: f64,
    },
    /// `semantic`: `done` of the run's `total` texts are embedded (0 while the model loads).
    Embedding {
        run: u32,
        done: u32,
        total: u32,
    },
    /// A slice of the run's traces, in order; the page decodes each in its own task, so
    /// a big run never blocks it for long. `Scored` follows the last one.
    ScoredPart {
        run: u32,
        traces: Vec<TraceScores>,
    },
    /// Everything but the traces, which came in `ScoredPart`s.
    Scored {
        run: u32,
        set: Box<ScoredSet>,
        millis: f64,
        /// How many workers parsed the input: 1, or the helpers of a large file.
        workers: u32,
        /// What the request file gave and how it was joined (or why it could not be read).
        requests: Option<String>,
    },
    /// A data link's file, downloaded whole (the message's `blob`), sent before `Scored`
    /// so the page keeps it as an input like a dropped file.
    Fetched {
        run: u32,
        name: String,
    },
    /// None when no trace has a gold label.
    Evaluated {
        run: u32,
        report: Option<Box<EvalReport>>,
    },
    /// The ranking is None when no trace has a gold label.
    Compared {
        run: u32,
        ranking: Option<Box<Ranking>>,
        agreement: Box<Agreement>,
    },
    /// The bytes are in the message's `bytes` field (a Uint8Array, transferred).
    Exported {
        run: u32,
        what: ExportWhat,
        file_name: String,
        n_traces: usize,
    },
    Failed {
        run: u32,
        message: String,
    },
    /// A download refused: an SFT export whose kept traces have empty prompts.
    ExportRefused {
        run: u32,
        message: String,
    },
    Trace {
        run: u32,
        trace_idx: usize,
        detail: Box<TraceDetail>,
    },
    /// A message from the page that the worker could not read (a bug, never data): said
    /// out loud rather than dropped.
    Unreadable {
        message: String,
    },
}

/// Scoring worker → helper worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToHelper {
    /// Score a part of a file (the message's `part` Blob), which starts at byte `start` of
    /// the file.
    ScorePart {
        id: u32,
        settings: Settings,
        name: String,
        start: u64,
    },
    /// Fetch the embedding model from this folder URL and load it (once per helper).
    LoadModel { model_url: String },
    /// Embed these texts (`semantic`) with the loaded model.
    Embed {
        id: u32,
        texts: Vec<String>,
        part: SemanticPart,
    },
}

/// Helper worker → scoring worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FromHelper {
    Ready,
    PartScored {
        id: u32,
        part: Box<ScoredPart>,
    },
    PartFailed {
        id: u32,
        message: String,
    },
    /// The answer to `LoadModel`: None when the model is loaded, else why not.
    ModelLoaded {
        failure: Option<String>,
    },
    Embedded {
        id: u32,
        embeddings: Vec<Vec<f32>>,
    },
    EmbedFailed {
        id: u32,
        message: String,
    },
    /// A message the helper could not read: every part it holds is scored elsewhere.
    Unreadable {
        message: String,
    },
}

/// The field of a posted object that holds the encoded message; files, blobs and
/// download bytes travel beside it under their own names.
const MESSAGE_FIELD: &str = "message";

/// A message as MessagePack bytes. Binary, so a scored part's numbers are copied, not
/// printed and parsed again; with field names, so `Option` fields and defaults read as
/// they do in JSON.
pub fn to_bytes<T: Serialize>(message: &T) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(message).map_err(|error| format!("cannot encode a message: {error}"))
}

pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    rmp_serde::from_slice(bytes).map_err(|error| error.to_string())
}

/// A message to post, and the buffers to transfer with it (the encoded message's own, and
/// any `beside` Uint8Array's): transferred, not copied.
pub struct Envelope {
    pub object: Object,
    pub transfer: Array,
}

impl Envelope {
    pub fn new<T: Serialize>(message: &T) -> Result<Self, String> {
        let bytes = to_bytes(message)?;
        let array = Uint8Array::from(bytes.as_slice());
        let object = Object::new();
        let transfer = Array::new();
        let _ = Reflect::set(&object, &MESSAGE_FIELD.into(), &array);
        transfer.push(&array.buffer());
        Ok(Self { object, transfer })
    }

    /// Puts a JS object beside the message: Blobs and Files are shared without a copy, a
    /// Uint8Array's buffer is transferred.
    pub fn with(self, key: &str, value: &JsValue) -> Self {
        let _ = Reflect::set(&self.object, &key.into(), value);
        if let Some(bytes) = value.dyn_ref::<Uint8Array>() {
            self.transfer.push(&bytes.buffer());
        }
        self
    }

    /// The posted object's field `key`, if there is one.
    pub fn field(data: &JsValue, key: &str) -> Option<JsValue> {
        Reflect::get(data, &key.into())
            .ok()
            .filter(|value| !value.is_undefined() && !value.is_null())
    }
}

/// Reads the message of a posted object.
pub fn open<T: DeserializeOwned>(data: &JsValue) -> Result<T, String> {
    let array = Envelope::field(data, MESSAGE_FIELD)
        .and_then(|value| value.dyn_into::<Uint8Array>().ok())
        .ok_or("it holds no encoded message")?;
    from_bytes(&array.to_vec())
}

/// What the trace view shows: the trace's text and each token with its log-prob and the
/// alternatives the model considered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceDetail {
    pub prompt: Option<String>,
    pub text: Option<String>,
    pub answer: Option<String>,
    pub tokens: Vec<TokenView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenView {
    /// The token's text; None when the file has log-probs but no token strings.
    pub text: Option<String>,
    /// None for a sentinel or impossible value (dropped from the scores).
    pub logprob: Option<f64>,
    /// Top-k alternatives: (token text, log-prob).
    pub top: Vec<(String, f64)>,
}

#[cfg(test)]
mod tests {
    // A panic here is a failed test.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tracesift_core::dataset::score_bytes;
    // The app's tests run in the browser (wasm-bindgen-test): a plain #[test] would not.
    use wasm_bindgen_test::wasm_bindgen_test as test;

    wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

    fn small_set() -> ScoredSet {
        let bytes = include_bytes!("../tests/data/small.jsonl");
        score_bytes(&Settings::default(), &[("small.jsonl", &bytes[..])]).unwrap()
    }

    #[test]
    fn a_scored_set_and_its_traces_come_back_equal() {
        let set = small_set();
        let part = ToPage::ScoredPart {
            run: 3,
            traces: set.traces.clone(),
        };
        let ToPage::ScoredPart { run, traces } = from_bytes(&to_bytes(&part).unwrap()).unwrap()
        else {
            panic!("another variant came back");
        };
        assert_eq!(run, 3);
        assert_eq!(traces, set.traces);
        let scored = ToPage::Scored {
            run: 3,
            set: Box::new(set.clone()),
            millis: 1.5,
            workers: 1,
            requests: None,
        };
        let ToPage::Scored { set: back, .. } = from_bytes(&to_bytes(&scored).unwrap()).unwrap()
        else {
            panic!("another variant came back");
        };
        assert_eq!(back.report, set.report);
        assert_eq!(back.questions, set.questions);
        assert_eq!(back.classes, set.classes);
    }

    #[test]
    fn settings_travel_typed_and_unchanged() {
        let settings = Settings {
            keep: Some(0.25),
            window: 7,
            ..Settings::default()
        };
        let message = ToWorker::Evaluate {
            run: 1,
            settings: settings.clone(),
        };
        let ToWorker::Evaluate { settings: back, .. } =
            from_bytes(&to_bytes(&message).unwrap()).unwrap()
        else {
            panic!("another variant came back");
        };
        assert_eq!(back, settings);
    }

    #[test]
    fn a_message_of_another_channel_or_garbage_is_an_error_not_a_default() {
        let bytes = to_bytes(&FromHelper::Ready).unwrap();
        assert!(from_bytes::<ToPage>(&bytes).is_err());
        assert!(from_bytes::<ToWorker>(b"\xc1 not msgpack").is_err());
    }
}
