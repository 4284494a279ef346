//! Messages between the page and the scoring worker. Settings and results travel as JSON
//! strings; files and downloaded bytes travel as JS objects beside them (no copy into JSON).

use serde::{Deserialize, Serialize};
use tracesift_core::compare::{Agreement, Ranking};
use tracesift_core::dataset::{ScoredPart, ScoredSet, TraceScores};
use tracesift_core::evaluate::EvalReport;

/// Page → worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
// Adjacently tagged, with the tag written first: serde then decodes the body straight into
// its variant. An internally tagged enum would first buffer every message, a scored part's
// thousand traces included, as a generic tree, which doubled the page's decoding time.
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum Request {
    /// Score the files sent alongside (as the message's `files` array of Blobs/Files).
    Score {
        run: u32,
        settings: String,
        names: Vec<String>,
        /// The worker's own bootstrap script, to start helper workers for large files.
        #[serde(default)]
        helper_script: Option<String>,
        /// The name of the request file sent alongside (as the message's `requests`
        /// Blob), whose prompts the downloads carry.
        #[serde(default)]
        requests_name: Option<String>,
        /// A data link the user chose to load: the worker downloads it and scores it as
        /// it arrives, instead of the `files`.
        #[serde(default)]
        link: Option<crate::data_link::LinkedFile>,
    },
    /// To a helper worker: score a part of a file (the message's `part` Blob), which
    /// starts at byte `start` of the file.
    ScorePart {
        id: u32,
        settings: String,
        name: String,
        start: f64,
    },
    /// Build a download from the last scored run.
    Export {
        run: u32,
        settings: String,
        what: ExportWhat,
    },
    /// Read one trace's full content back from its file (the page keeps only scores).
    Trace { run: u32, trace_idx: usize },
    /// Evaluate the last scored run against its gold labels with these filter settings.
    Evaluate { run: u32, settings: String },
    /// Rank the metrics of the last scored run (bootstrap seeded by the settings' seed)
    /// and measure how they agree: which signal fits this data.
    Compare { run: u32, settings: String },
}

/// Which set of traces a download holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportWhat {
    /// The kept traces, in the export format (what `tracesift filter` writes).
    Kept,
    /// The matched-size random baseline.
    Random,
    /// Every candidate, unfiltered.
    Unfiltered,
    /// A CSV of every trace's scores.
    ScoresCsv,
}

impl ExportWhat {
    pub fn file_stem(self) -> &'static str {
        match self {
            ExportWhat::Kept => "tracesift-kept",
            ExportWhat::Random => "tracesift-random-baseline",
            ExportWhat::Unfiltered => "tracesift-unfiltered",
            ExportWhat::ScoresCsv => "tracesift-scores",
        }
    }
}

/// Worker → page.
#[derive(Debug, Clone, Serialize, Deserialize)]
// Adjacently tagged, as `Request` is (see there).
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum Response {
    /// The worker has loaded and listens; `webgpu` names the WebGPU adapter it found.
    Ready {
        webgpu: Option<String>,
    },
    Progress {
        run: u32,
        bytes_done: f64,
        bytes_total: f64,
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
        #[serde(default)]
        requests: Option<String>,
    },
    /// A data link's file, downloaded whole (the message's `blob`), sent before `Scored`
    /// so the page keeps it as an input like a dropped file.
    Fetched {
        run: u32,
        name: String,
    },
    /// From a helper worker.
    PartScored {
        id: u32,
        part: Box<ScoredPart>,
    },
    PartFailed {
        id: u32,
        message: String,
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
    /// The bytes are in the message's `bytes` field (a Uint8Array).
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
