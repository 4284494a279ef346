//! The scoring pipeline: bytes in (chunk by chunk, file by file), scored traces and a run
//! report out. Each trace is reduced to its aggregates as it passes; token arrays are
//! never kept, so memory grows with the number of traces, not tokens.

use std::collections::{BTreeMap, HashMap};

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::answer::{AnswerExtractor, ClassMap};
use crate::import::{self, Format, ImportOptions, TraceBatch};
use crate::json;
use crate::score::{TokenBatch, TokenStats, token_stats};
use crate::settings::{FormatChoice, Metric, Settings, SettingsError, Similarity};
use crate::signals::question::{self as question_signals, GraphMember, GraphScratch, GraphSignals};
use crate::signals::token::{TokenScratch, token_signals};
use crate::signals::{Signals, combo};
use crate::similarity;
use crate::split::{Framing, Record, RecordSplitter, SplitEvent};
use crate::stream::{self, Fed, StreamAssembler};
use crate::trace::{RecordRef, TraceBuf, positive_zero};

/// How many records may pass without a recognisable shape before a file is declared to be
/// in no known format.
const DETECTION_WINDOW: usize = 32;

/// The class name reports use for "no answer" (SPEC §4).
pub const NO_CLASS: &str = "∅";

/// One scored trace: its aggregates, never its tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceScores {
    pub record: RecordRef,
    pub trace_id: String,
    pub question_idx: u32,
    pub greedy: bool,
    /// Index into [`ScoredSet::classes`]; None is ∅.
    pub class: Option<u32>,
    /// Gold label as a class index, when the trace has one.
    pub label: Option<u32>,
    pub n_tokens: u32,
    pub invalid_tokens: u32,
    pub msp: Option<f64>,
    pub ppl: Option<f64>,
    pub mte: Option<f64>,
    pub consistency: Option<f64>,
    /// The §5b signals.
    #[serde(default)]
    pub signals: Signals,
    /// What finds the trace's request in a request file (`--requests`).
    #[serde(default)]
    pub request: crate::requests::RequestKey,
}

impl TraceScores {
    pub fn inconsistency(&self) -> Option<f64> {
        self.consistency.map(|c| positive_zero(1.0 - c))
    }

    pub fn cocoa_msp(&self) -> Option<f64> {
        Some(positive_zero(self.msp? * self.inconsistency()?))
    }

    pub fn cocoa_ppl(&self) -> Option<f64> {
        Some(positive_zero(self.ppl? * self.inconsistency()?))
    }

    pub fn cocoa_mte(&self) -> Option<f64> {
        Some(positive_zero(self.mte? * self.inconsistency()?))
    }

    /// A metric's value as its paper reports it (see [`Metric::uncertainty`] for ranking).
    pub fn metric(&self, metric: Metric) -> Option<f64> {
        metric.value(self)
    }
}

/// A question: its id and summary statistics over its traces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    pub id: String,
    pub n_traces: u32,
    /// Share of its answered traces whose class is the most common class (SPEC §5).
    pub majority_agreement: Option<f64>,
}

/// One input file as seen by the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileInfo {
    pub name: String,
    /// The format used (detected or given); None if nothing in it was recognised.
    pub format: Option<Format>,
    /// How its records were framed (a span of it is split the same way when read again).
    #[serde(default = "lines_framing")]
    pub framing: Framing,
}

fn lines_framing() -> Framing {
    Framing::Lines
}

/// A line that was not (fully) used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub line: u64,
    pub reason: String,
}

/// How many lines to name per note in a report; the count covers them all.
const NOTE_LINES: usize = 20;

/// Something done to the input that changes what is scored without skipping it (see
/// [`import::ImportNote`]), counted over the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportNote {
    pub what: String,
    /// Tokens, traces or chunks concerned, summed over the run.
    pub count: u64,
    /// Records it concerned.
    pub records: u64,
    /// The first lines it happened on (at most 20).
    pub lines: Vec<u64>,
}

/// Adds `count` occurrences of `what` on `line` to `notes`.
fn add_note(notes: &mut Vec<ReportNote>, what: &str, count: u64, lines: &[u64], records: u64) {
    let note = match notes.iter().position(|note| note.what == what) {
        Some(idx) => &mut notes[idx],
        None => {
            notes.push(ReportNote {
                what: what.to_owned(),
                count: 0,
                records: 0,
                lines: Vec::new(),
            });
            let last = notes.len() - 1;
            &mut notes[last]
        }
    };
    note.count += count;
    note.records += records;
    let room = NOTE_LINES.saturating_sub(note.lines.len());
    note.lines.extend(lines.iter().take(room));
}

/// The run report of SPEC §10 (`--report`), also shown by the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub lines: u64,
    pub traces: u64,
    pub questions: u64,
    pub skipped: Vec<Skipped>,
    pub classes: BTreeMap<String, u64>,
    /// The format of the input (files' formats joined by `,` when they differ).
    pub format: Option<String>,
    pub files: Vec<FileInfo>,
    /// Dropped sentinel or impossible log-probs over all traces.
    pub invalid_tokens: u64,
    pub backend: String,
    /// What was assembled, left out or regrouped on the way in, by kind.
    #[serde(default)]
    pub notes: Vec<ReportNote>,
    /// Whole responses read (an assembled stream generation is one), failed ones included.
    #[serde(default)]
    pub responses: u64,
}

/// Everything a run produced (serialisable: the app's worker hands it to the page).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoredSet {
    pub traces: Vec<TraceScores>,
    /// `semantic` runs: each trace's embedding (by index into `traces`), None where it was
    /// not computed; empty for other similarities. The canonical export writes them as the
    /// `embedding` field, so a later `embedding` run reuses them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embeddings: Vec<Option<Vec<f32>>>,
    pub questions: Vec<Question>,
    pub classes: Vec<String>,
    pub files: Vec<FileInfo>,
    pub report: Report,
}

impl ScoredSet {
    pub fn class_name(&self, class: Option<u32>) -> Option<&str> {
        class
            .and_then(|idx| self.classes.get(idx as usize))
            .map(String::as_str)
    }

    pub fn question_id(&self, trace: &TraceScores) -> &str {
        self.questions
            .get(trace.question_idx as usize)
            .map_or("", |question| question.id.as_str())
    }
}

/// Settings as the pipeline needs them: parsed once, before any byte is read.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    pub format: FormatChoice,
    pub sim: Similarity,
    pub class_map: ClassMap,
    pub answers: AnswerExtractor,
    pub question_field: Option<String>,
    pub sample_suffix: Option<Regex>,
    pub max_record_bytes: usize,
    /// DeepConf's window (SPEC §5b), ≥ 1.
    pub window: u32,
    /// The metrics `combo` ranks by.
    pub combine: Vec<Metric>,
}

impl ScoreOptions {
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        let sample_suffix = settings
            .sample_suffix
            .as_deref()
            .filter(|pattern| !pattern.is_empty())
            .map(Regex::new)
            .transpose()
            .map_err(|error| SettingsError::BadSuffix(error.to_string()))?;
        Ok(Self {
            format: settings.format,
            sim: settings.sim,
            class_map: ClassMap::parse(&settings.classes)?,
            answers: AnswerExtractor::new(settings.pattern.as_deref())?,
            question_field: settings.question_field.clone().filter(|f| !f.is_empty()),
            sample_suffix,
            max_record_bytes: crate::split::DEFAULT_MAX_RECORD_BYTES,
            window: settings.window()?,
            combine: settings.combine_metrics()?,
        })
    }
}

/// What consistency needs from each trace, by similarity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum SimPayload {
    None,
    Words(Vec<u64>),
    Embedding(Vec<f64>),
    /// `semantic`: the text, until it is taken to be embedded.
    Text(String),
    /// `semantic`: the text was taken; its embedding has not come back (yet).
    Awaiting,
}

/// `semantic`: the texts still to embed, taken out of `payloads`, by position.
fn take_texts(payloads: &mut [SimPayload]) -> Vec<(usize, String)> {
    let mut texts = Vec::new();
    for (idx, payload) in payloads.iter_mut().enumerate() {
        if matches!(payload, SimPayload::Text(_))
            && let SimPayload::Text(text) = std::mem::replace(payload, SimPayload::Awaiting)
        {
            texts.push((idx, text));
        }
    }
    texts
}

/// `semantic`: a text's embedding, kept as f64 like any other embedding (exactly: every
/// f32 is an f64), so consistency, the graph signals and a GPU treat it alike.
fn set_embedding(payloads: &mut [SimPayload], idx: usize, embedding: &[f32]) {
    if let Some(payload) = payloads.get_mut(idx) {
        *payload = SimPayload::Embedding(embedding.iter().map(|&v| f64::from(v)).collect());
    }
}

/// Records read before the file's format is known.
#[derive(Debug)]
struct PendingRecord {
    bytes: Vec<u8>,
    offset: u64,
    line: u64,
}

/// The streaming scorer. Feed it files chunk by chunk, then [`Scorer::finish`].
#[derive(Debug)]
pub struct Scorer {
    options: ScoreOptions,
    splitter: RecordSplitter,
    /// Puts the current file's stream chunks back into generations.
    streams: StreamAssembler,
    /// The response position of each stream of the current file, by stream number.
    stream_responses: Vec<u64>,
    batch: TraceBatch,
    files: Vec<FileInfo>,
    file_open: bool,
    format: Option<Format>,
    pending: Vec<PendingRecord>,
    traces: Vec<TraceScores>,
    payloads: Vec<SimPayload>,
    /// `semantic`: the embeddings, moved here as their questions are scored.
    embeddings: Vec<Option<Vec<f32>>>,
    embedding_dim: Option<(usize, u64)>,
    question_idx_by_id: HashMap<String, u32>,
    questions: Vec<Question>,
    class_idx_by_name: HashMap<String, u32>,
    classes: Vec<String>,
    skipped: Vec<Skipped>,
    notes: Vec<ReportNote>,
    lines: u64,
    invalid_tokens: u64,
    /// Token arrays collected for a batch backend, when one reduces them.
    deferred: Option<DeferredTokens>,
    /// Per trace: its id was made up (`<question>#<index>`), so a merge must renumber it.
    defaulted_ids: Vec<bool>,
    /// Lines of the current file scored by range scorers and absorbed.
    absorbed_lines: u64,
    /// This scorer scores a part of a file for [`Scorer::absorb`].
    is_range: bool,
    /// Buffers of the token signals, reused from trace to trace.
    token_scratch: TokenScratch,
    /// Whole responses read so far, failed ones included: a request file joined by
    /// position pairs the n-th request with the n-th response.
    responses: u64,
    /// The response being imported: its position and how many traces it gave.
    current_response: (u64, u32),
}

/// A part of a file scored on its own (see [`Scorer::range_scorer`]), for
/// [`Scorer::absorb_part`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoredPart {
    traces: Vec<TraceScores>,
    payloads: Vec<SimPayload>,
    defaulted_ids: Vec<bool>,
    /// Question ids, in order of first appearance in the part.
    questions: Vec<String>,
    classes: Vec<String>,
    skipped: Vec<Skipped>,
    #[serde(default)]
    notes: Vec<ReportNote>,
    #[serde(default)]
    responses: u64,
    lines: u64,
    invalid_tokens: u64,
}

/// Traces whose tokens wait for a batch backend (the GPU), and those tokens.
#[derive(Debug, Clone, Default)]
pub struct DeferredTokens {
    /// Index of each batch trace in [`ScoredSet::traces`].
    pub trace_idxs: Vec<usize>,
    pub batch: TokenBatch,
}

/// What consistency needs, for a backend that computes the pairwise similarities itself:
/// every question's traces and each trace's item (word ids or embedding).
#[derive(Debug)]
pub struct PairWork<'a> {
    /// Per question, the indices of its traces (into `items`), in input order.
    pub questions: Vec<Vec<usize>>,
    pub items: PairItems<'a>,
}

/// Each trace's similarity input; None where the trace has none (a pair with it is
/// undefined).
#[derive(Debug)]
pub enum PairItems<'a> {
    /// `answer` similarity: nothing pairwise to compute.
    None,
    Words(Vec<&'a [u64]>),
    Embeddings(Vec<Option<&'a [f64]>>),
}

/// Per question, the similarity of each pair of its traces, pairs in the order
/// (0,1), (0,2), …, (0,n−1), (1,2), …; None where undefined.
pub type PairSimilarities = Vec<Vec<Option<f64>>>;

impl Scorer {
    pub fn new(options: ScoreOptions) -> Self {
        // Classes the map names come first, in its order, so reports list them stably.
        let mut scorer = Self {
            splitter: RecordSplitter::new(options.max_record_bytes),
            streams: StreamAssembler::default(),
            stream_responses: Vec::new(),
            options,
            batch: TraceBatch::default(),
            files: Vec::new(),
            file_open: false,
            format: None,
            pending: Vec::new(),
            traces: Vec::new(),
            payloads: Vec::new(),
            embeddings: Vec::new(),
            embedding_dim: None,
            question_idx_by_id: HashMap::new(),
            questions: Vec::new(),
            class_idx_by_name: HashMap::new(),
            classes: Vec::new(),
            skipped: Vec::new(),
            notes: Vec::new(),
            lines: 0,
            invalid_tokens: 0,
            deferred: None,
            defaulted_ids: Vec::new(),
            absorbed_lines: 0,
            is_range: false,
            token_scratch: TokenScratch::default(),
            responses: 0,
            current_response: (0, 1),
        };
        for class in scorer.options.class_map.classes().to_vec() {
            scorer.class_idx(class);
        }
        scorer
    }

    /// Starts a new input file; `name` appears in reports of multi-file runs.
    pub fn begin_file(&mut self, name: &str) {
        self.end_file_if_open();
        self.splitter = RecordSplitter::new(self.options.max_record_bytes);
        self.absorbed_lines = 0;
        self.file_open = true;
        self.format = match self.options.format {
            FormatChoice::Auto => None,
            FormatChoice::Fixed(format) => Some(format),
        };
        self.files.push(FileInfo {
            name: name.to_owned(),
            format: self.format,
            framing: Framing::Lines,
        });
    }

    /// Feeds the next chunk of the current file.
    pub fn feed(&mut self, chunk: &[u8]) {
        if !self.file_open {
            self.begin_file("-");
        }
        let mut splitter = std::mem::take(&mut self.splitter);
        splitter.feed(chunk, &mut |event| self.on_event(event));
        self.splitter = splitter;
    }

    /// Records that the current file could not be read past this point (a truncated gzip,
    /// an I/O error); what was read before is still scored.
    pub fn note_read_error(&mut self, reason: &str) {
        let line = self.splitter.lines_seen() + 1;
        self.skip(line, reason.to_owned());
    }

    /// Ends the current file (also done by the next `begin_file` and by `finish`).
    pub fn end_file(&mut self) {
        self.end_file_if_open();
    }

    fn end_file_if_open(&mut self) {
        if !self.file_open {
            return;
        }
        self.file_open = false;
        let mut splitter = std::mem::take(&mut self.splitter);
        splitter.finish(&mut |event| self.on_event(event));
        if let Some(file) = self.files.last_mut() {
            file.framing = splitter.framing();
        }
        self.stream_responses.clear();
        for unfinished in self.streams.finish() {
            self.skip(
                unfinished.line,
                format!(
                    "the stream ended before this generation's last chunk ({} chunks, no \
                     finish_reason/stop/done): not scored",
                    unfinished.chunks
                ),
            );
        }
        self.lines += splitter.lines_seen() + self.absorbed_lines;
        if self.format.is_none() && !self.pending.is_empty() {
            self.give_up_detection();
        }
        if splitter.lines_seen() + self.absorbed_lines == 0 && !self.is_range {
            self.skip(0, "the file is empty".to_owned());
        }
    }

    fn on_event(&mut self, event: SplitEvent<'_>) {
        match event {
            SplitEvent::Problem { line, reason } => self.skip(line, reason),
            SplitEvent::Record(record) => self.on_record(record),
        }
    }

    fn on_record(&mut self, record: Record<'_>) {
        if let Some(format) = self.format {
            self.import(format, record);
            return;
        }
        match import::detect(record.bytes) {
            Some(format) => {
                self.format = Some(format);
                if let Some(file) = self.files.last_mut() {
                    file.format = Some(format);
                }
                for pending in std::mem::take(&mut self.pending) {
                    self.import(
                        format,
                        Record {
                            bytes: &pending.bytes,
                            offset: pending.offset,
                            line: pending.line,
                        },
                    );
                }
                self.import(format, record);
            }
            None => {
                self.pending.push(PendingRecord {
                    bytes: record.bytes.to_vec(),
                    offset: record.offset,
                    line: record.line,
                });
                if self.pending.len() >= DETECTION_WINDOW {
                    self.give_up_detection();
                }
            }
        }
    }

    /// No record matched a known shape: report each one, once, and stop trying.
    fn give_up_detection(&mut self) {
        for pending in std::mem::take(&mut self.pending) {
            let reason = match import::check_record_is_json_object(&pending.bytes) {
                Err(error) if error.message.starts_with("invalid JSON") => {
                    let (_, column) = json::line_col(&pending.bytes, error.index, pending.line);
                    format!("{} (column {column})", error.message)
                }
                Err(error) => error.message,
                Ok(()) => format!(
                    "not a trace in any known format (expected one of: {})",
                    Format::ALL.map(Format::name).join(", ")
                ),
            };
            self.skip(pending.line, reason);
        }
        // Keep reporting later records as unknown without buffering them.
        self.format = None;
    }

    /// Imports a record; stream chunks go to the assembler first, and each generation they
    /// finish is imported as one whole response spanning its chunks.
    fn import(&mut self, format: Format, record: Record<'_>) {
        if stream::has_streams(format) {
            let fed = self
                .streams
                .feed(format, record.bytes, record.offset, record.line);
            // Each stream answers one request: it takes its response position when it
            // starts, whenever its generations finish.
            while (self.stream_responses.len() as u64) < self.streams.streams_started() {
                self.stream_responses.push(self.responses);
                self.responses += 1;
            }
            match fed {
                Err(error) => {
                    self.skip(record.line, error.message);
                    return;
                }
                Ok(Fed::Chunk(finished)) => {
                    let lines: Vec<u64> = finished.iter().map(|done| done.line).collect();
                    let n_finished = finished.len() as u64;
                    add_note(&mut self.notes, stream::ASSEMBLED, 1, &lines, n_finished);
                    for assembled in finished {
                        let span = Record {
                            bytes: &assembled.record,
                            offset: assembled.offset,
                            line: assembled.line,
                        };
                        let ordinal = self
                            .stream_responses
                            .get(assembled.stream as usize)
                            .copied();
                        self.import_whole(format, span, assembled.len, assembled.sub_idx, ordinal);
                    }
                    return;
                }
                Ok(Fed::Whole) => {}
            }
        }
        self.import_whole(format, record, record.bytes.len() as u64, 0, None);
    }

    /// Imports one whole response. Its traces' [`RecordRef`]s cover `len` bytes from
    /// `record.offset` (for an assembled stream, the span of its chunks) and are numbered
    /// from `first_sub_idx`. `stream_response` is the response position of the stream it
    /// was assembled from; a whole record takes the next one.
    fn import_whole(
        &mut self,
        format: Format,
        record: Record<'_>,
        len: u64,
        first_sub_idx: u32,
        stream_response: Option<u64>,
    ) {
        let options = ImportOptions {
            keep_content: false,
        };
        let ordinal = stream_response.unwrap_or_else(|| {
            self.responses += 1;
            self.responses - 1
        });
        let mut batch = std::mem::take(&mut self.batch);
        match import::parse_record(format, record.bytes, options, &mut batch) {
            Err(error) => {
                let (line, column) = json::line_col(record.bytes, error.index, record.line);
                let reason = if error.message.starts_with("invalid JSON") {
                    format!("{} (column {column})", error.message)
                } else {
                    error.message
                };
                self.skip(line, reason);
            }
            Ok(()) => {
                for note in batch.notes() {
                    add_note(&mut self.notes, note.what, note.count, &[record.line], 1);
                }
                let n_traces = batch.traces().len();
                self.current_response = (ordinal, u32::try_from(n_traces).unwrap_or(u32::MAX));
                for (sub_idx, trace) in batch.traces_mut().iter_mut().enumerate() {
                    let record_ref = RecordRef {
                        file_idx: u32::try_from(self.files.len().saturating_sub(1)).unwrap_or(0),
                        offset: record.offset,
                        len,
                        line: record.line,
                        sub_idx: u32::try_from(sub_idx)
                            .unwrap_or(u32::MAX)
                            .saturating_add(first_sub_idx),
                    };
                    if let Err(reason) = self.add_trace(format, record.bytes, record_ref, trace) {
                        let reason = if n_traces > 1 {
                            format!("trace {} of the record: {reason}", sub_idx + 1)
                        } else {
                            reason
                        };
                        self.skip(record.line, reason);
                    }
                }
            }
        }
        self.batch = batch;
    }

    fn add_trace(
        &mut self,
        format: Format,
        record: &[u8],
        record_ref: RecordRef,
        trace: &mut TraceBuf,
    ) -> Result<(), String> {
        check_lengths(trace)?;
        let payload = match self.options.sim {
            Similarity::Answer => SimPayload::None,
            // SPEC §5 compares the two `text`s; a trace without text has an empty one.
            Similarity::RougeL => {
                SimPayload::Words(similarity::word_ids(trace.text.as_deref().unwrap_or("")))
            }
            Similarity::Semantic => SimPayload::Text(trace.text.clone().unwrap_or_default()),
            Similarity::Embedding => match trace.embedding.take() {
                None => SimPayload::None,
                Some(embedding) => {
                    match self.embedding_dim {
                        None => self.embedding_dim = Some((embedding.len(), record_ref.line)),
                        Some((dim, first_line)) if dim != embedding.len() => {
                            return Err(format!(
                                "embedding has {} dimensions, but the one on line {first_line} has {dim}",
                                embedding.len()
                            ));
                        }
                        Some(_) => {}
                    }
                    SimPayload::Embedding(embedding)
                }
            },
        };
        // The response's own id, kept apart only where the question id may differ from it.
        let has_own_id = trace.question_id.is_some();
        let question_may_differ =
            self.options.question_field.is_some() || self.options.sample_suffix.is_some();
        let own_id = question_may_differ
            .then(|| trace.question_id.clone())
            .flatten();
        let question_id = self.question_id(format, record, record_ref.line, trace)?;
        let request = crate::requests::RequestKey::new(
            self.current_response,
            record_ref.sub_idx,
            has_own_id,
            own_id,
            &question_id,
        );
        let question_idx = self.question_idx(question_id);
        let stats = match self.deferred.as_mut() {
            Some(deferred) => {
                deferred.trace_idxs.push(self.traces.len());
                deferred.batch.push_buf(trace);
                TokenStats::default()
            }
            None => token_stats(trace),
        };
        // The token signals stay on the CPU, also when the sums above wait for a GPU: they
        // are computed here, while the trace's tokens are at hand.
        let token = token_signals(trace, self.options.window, &mut self.token_scratch);
        if short_top_lists(trace) {
            add_note(&mut self.notes, SHORT_TOP_LISTS, 1, &[record_ref.line], 1);
        }
        let class = self.answer_class(trace);
        let label = trace
            .label
            .as_deref()
            .and_then(|label| self.options.class_map.classify_label(label))
            .map(|label| self.class_idx(label));
        let question = self
            .questions
            .get_mut(question_idx as usize)
            .ok_or_else(|| "internal: question index out of range".to_owned())?;
        let index_in_question = question.n_traces;
        question.n_traces += 1;
        self.defaulted_ids.push(trace.trace_id.is_none());
        let trace_id = trace
            .trace_id
            .take()
            .unwrap_or_else(|| format!("{}#{index_in_question}", question.id));
        self.invalid_tokens += u64::from(stats.n_invalid);
        self.traces.push(TraceScores {
            record: record_ref,
            trace_id,
            question_idx,
            greedy: trace.greedy,
            class,
            label,
            n_tokens: stats.n_valid,
            invalid_tokens: stats.n_invalid,
            msp: stats.msp(),
            ppl: stats.ppl(),
            mte: stats.mte(),
            consistency: None,
            signals: Signals {
                conf_mean: token.conf_mean.into(),
                conf_tail: token.conf_tail.into(),
                conf_bottom10: token.conf_bottom10.into(),
                conf_lowest: token.conf_lowest.into(),
                self_certainty: token.self_certainty.into(),
                ..Signals::default()
            },
            request,
        });
        self.payloads.push(payload);
        Ok(())
    }

    /// The question id: the configured field if any, else the format's own id, else (for
    /// provider dumps without ids) the record's line, so each record is its own question.
    fn question_id(
        &self,
        format: Format,
        record: &[u8],
        line: u64,
        trace: &mut TraceBuf,
    ) -> Result<String, String> {
        let configured = match &self.options.question_field {
            Some(path) => json::id_at_path(record, path).map_err(|error| error.message)?,
            None => None,
        };
        let id = match configured.or_else(|| trace.question_id.take()) {
            Some(id) => id,
            None if format == Format::Canonical => {
                return Err("missing required field `question_id`".to_owned());
            }
            None => match self.files.len() {
                0 | 1 => format!("line-{line}"),
                _ => format!(
                    "{}:line-{line}",
                    self.files.last().map_or("", |file| file.name.as_str())
                ),
            },
        };
        Ok(match &self.options.sample_suffix {
            Some(suffix) => suffix.replace(&id, "").into_owned(),
            None => id,
        })
    }

    fn answer_class(&mut self, trace: &TraceBuf) -> Option<u32> {
        let raw_answer = match trace.answer.as_deref() {
            Some(answer) => Some(answer),
            None => trace
                .text
                .as_deref()
                .and_then(|text| self.options.answers.extract(text)),
        }?;
        let class = self.options.class_map.classify(raw_answer)?;
        Some(self.class_idx(class))
    }

    fn class_idx(&mut self, class: String) -> u32 {
        if let Some(&idx) = self.class_idx_by_name.get(&class) {
            return idx;
        }
        let idx = u32::try_from(self.classes.len()).unwrap_or(u32::MAX);
        self.classes.push(class.clone());
        self.class_idx_by_name.insert(class, idx);
        idx
    }

    fn question_idx(&mut self, question_id: String) -> u32 {
        if let Some(&idx) = self.question_idx_by_id.get(&question_id) {
            return idx;
        }
        let idx = u32::try_from(self.questions.len()).unwrap_or(u32::MAX);
        self.questions.push(Question {
            id: question_id.clone(),
            n_traces: 0,
            majority_agreement: None,
        });
        self.question_idx_by_id.insert(question_id, idx);
        idx
    }

    fn skip(&mut self, line: u64, reason: String) {
        let file = self.files.last().map(|file| file.name.clone());
        self.skipped.push(Skipped { file, line, reason });
    }

    /// A scorer for a part of a canonical JSONL file starting at the line that begins at
    /// byte `byte_base`, built where the file's scorer is not at hand (another Web
    /// Worker); [`Scorer::range_scorer`] says whether the file may be split at all.
    pub fn for_part(options: ScoreOptions, file_name: &str, byte_base: u64) -> Scorer {
        let mut range = Scorer::new(options);
        range.splitter = RecordSplitter::for_lines_from(range.options.max_record_bytes, byte_base);
        range.file_open = true;
        range.is_range = true;
        range.format = Some(Format::Canonical);
        range.files = vec![FileInfo {
            name: file_name.to_owned(),
            format: range.format,
            framing: Framing::Lines,
        }];
        range
    }

    /// Ends a part's scoring and packs its results for [`Scorer::absorb_part`] (they may
    /// cross a thread or worker boundary as JSON).
    pub fn into_part(mut self) -> ScoredPart {
        self.end_file_if_open();
        ScoredPart {
            traces: self.traces,
            payloads: self.payloads,
            defaulted_ids: self.defaulted_ids,
            questions: self.questions.into_iter().map(|q| q.id).collect(),
            classes: self.classes,
            skipped: self.skipped,
            notes: self.notes,
            responses: self.responses,
            lines: self.lines,
            invalid_tokens: self.invalid_tokens,
        }
    }

    /// A scorer for a later part of the current file, to run on another thread: the same
    /// options and the file's format, JSONL framing, starting at the line that begins at
    /// byte `byte_base`. Feed it that part, then hand it to [`Scorer::absorb`], parts in
    /// file order. None where a file cannot be scored in parts: not JSONL, format not
    /// known yet or not canonical (other formats may number questions by line), embedding
    /// similarity (dimensions are checked across the file), or tokens deferred to a GPU.
    pub fn range_scorer(&self, byte_base: u64) -> Option<Scorer> {
        let parts_possible = self.file_open
            && self.splitter.framing() == Framing::Lines
            && self.format == Some(Format::Canonical)
            && self.options.sim != Similarity::Embedding
            && self.deferred.is_none();
        if !parts_possible {
            return None;
        }
        let name = self.files.last().map_or("-", |file| file.name.as_str());
        Some(Scorer::for_part(self.options.clone(), name, byte_base))
    }

    /// Takes in a range scorer's results as if its bytes had been fed here: its lines
    /// follow the lines read so far, its questions and classes join these, made-up trace
    /// ids are renumbered within their questions.
    pub fn absorb(&mut self, range: Scorer) {
        self.absorb_part(range.into_part());
    }

    /// [`Scorer::absorb`] for a part scored elsewhere.
    pub fn absorb_part(&mut self, range: ScoredPart) {
        let line_shift = self.splitter.lines_seen() + self.absorbed_lines;
        self.absorbed_lines += range.lines;
        let response_shift = self.responses;
        self.responses += range.responses;
        let file_idx = u32::try_from(self.files.len().saturating_sub(1)).unwrap_or(0);
        let class_map: Vec<u32> = range
            .classes
            .iter()
            .map(|class| self.class_idx(class.clone()))
            .collect();
        let question_map: Vec<u32> = range
            .questions
            .into_iter()
            .map(|id| self.question_idx(id))
            .collect();
        for mut skipped in range.skipped {
            skipped.line += line_shift;
            self.skipped.push(skipped);
        }
        for note in range.notes {
            let lines: Vec<u64> = note.lines.iter().map(|line| line + line_shift).collect();
            add_note(
                &mut self.notes,
                &note.what,
                note.count,
                &lines,
                note.records,
            );
        }
        let map = |map: &[u32], idx: u32| map.get(idx as usize).copied().unwrap_or(idx);
        let traces = range.traces.into_iter().zip(range.payloads);
        for ((mut trace, payload), defaulted) in traces.zip(range.defaulted_ids) {
            trace.question_idx = map(&question_map, trace.question_idx);
            trace.class = trace.class.map(|class| map(&class_map, class));
            trace.label = trace.label.map(|label| map(&class_map, label));
            trace.record.line += line_shift;
            trace.record.file_idx = file_idx;
            trace.request.ordinal += response_shift;
            if let Some(question) = self.questions.get_mut(trace.question_idx as usize) {
                if defaulted {
                    trace.trace_id = format!("{}#{}", question.id, question.n_traces);
                }
                question.n_traces += 1;
            }
            self.traces.push(trace);
            self.payloads.push(payload);
            self.defaulted_ids.push(defaulted);
        }
        self.invalid_tokens += range.invalid_tokens;
    }

    /// From now on, collect each trace's tokens for a batch backend instead of reducing
    /// them as they pass: take them with [`Scorer::take_tokens`] and hand the backend's
    /// results to [`Scorer::apply_token_stats`]. Tokens still waiting at
    /// [`Scorer::finish_with`] are reduced on the CPU.
    pub fn defer_token_stats(&mut self) {
        self.deferred.get_or_insert_with(DeferredTokens::default);
    }

    /// Values (log-probs and top-k entries) collected so far: 0 unless deferred.
    pub fn pending_values(&self) -> usize {
        self.deferred.as_ref().map_or(0, |deferred| {
            deferred.batch.n_tokens() + deferred.batch.top_values.len()
        })
    }

    /// The traces collected since the last call, with their tokens; None if there are none.
    pub fn take_tokens(&mut self) -> Option<DeferredTokens> {
        let deferred = self.deferred.as_mut()?;
        if deferred.trace_idxs.is_empty() {
            return None;
        }
        Some(std::mem::take(deferred))
    }

    /// Fills in msp, ppl and mte of the given traces from their token sums (one per trace,
    /// in the order of `tokens.trace_idxs`).
    pub fn apply_token_stats(&mut self, tokens: &DeferredTokens, stats: &[TokenStats]) {
        for (&trace_idx, stats) in tokens.trace_idxs.iter().zip(stats) {
            if let Some(trace) = self.traces.get_mut(trace_idx) {
                trace.n_tokens = stats.n_valid;
                trace.invalid_tokens = stats.n_invalid;
                trace.msp = stats.msp();
                trace.ppl = stats.ppl();
                trace.mte = stats.mte();
                self.invalid_tokens += u64::from(stats.n_invalid);
            }
        }
    }

    /// `semantic`: the texts read since the last call, by trace index, for the embedding
    /// model; hand each embedding back to [`Scorer::set_embedding`]. A trace without text
    /// has the empty text. Texts not embedded by [`Scorer::finish`] leave their traces'
    /// consistency null, with a note in the report.
    pub fn take_texts(&mut self) -> Vec<(usize, String)> {
        take_texts(&mut self.payloads)
    }

    /// `semantic`: the embedding of a text taken by [`Scorer::take_texts`].
    pub fn set_embedding(&mut self, trace_idx: usize, embedding: &[f32]) {
        set_embedding(&mut self.payloads, trace_idx, embedding);
    }

    /// Ends the input and lists the pairwise similarity work of consistency, for a backend
    /// that computes it; its answer goes to [`Scorer::finish_with`].
    pub fn pair_work(&mut self) -> PairWork<'_> {
        self.end_file_if_open();
        let questions = self.question_members();
        let items = match self.options.sim {
            Similarity::Answer => PairItems::None,
            Similarity::RougeL => PairItems::Words(
                self.payloads
                    .iter()
                    .map(|payload| match payload {
                        SimPayload::Words(words) => words.as_slice(),
                        _ => &[],
                    })
                    .collect(),
            ),
            Similarity::Embedding | Similarity::Semantic => PairItems::Embeddings(
                self.payloads
                    .iter()
                    .map(|payload| match payload {
                        SimPayload::Embedding(embedding) => Some(embedding.as_slice()),
                        _ => None,
                    })
                    .collect(),
            ),
        };
        PairWork { questions, items }
    }

    /// Ends the last file, computes consistency per question, and builds the report.
    pub fn finish(self) -> ScoredSet {
        self.finish_with(None)
    }

    /// [`Scorer::finish`] with the pairwise similarities computed elsewhere (by a backend
    /// answering [`Scorer::pair_work`]); None computes them here.
    pub fn finish_with(mut self, pair_similarities: Option<PairSimilarities>) -> ScoredSet {
        self.end_file_if_open();
        if let Some(tokens) = self.take_tokens() {
            let stats = tokens.batch.cpu_stats();
            self.apply_token_stats(&tokens, &stats);
        }
        let not_embedded: Vec<u64> = self
            .payloads
            .iter()
            .zip(&self.traces)
            .filter(|(payload, _)| matches!(payload, SimPayload::Text(_) | SimPayload::Awaiting))
            .map(|(_, trace)| trace.record.line)
            .collect();
        if !not_embedded.is_empty() {
            let count = not_embedded.len() as u64;
            add_note(&mut self.notes, NOT_EMBEDDED, count, &not_embedded, count);
        }
        if self.options.sim == Similarity::Semantic {
            self.embeddings = vec![None; self.traces.len()];
        }
        let members = self.question_members();
        let mut work = QuestionWork::default();
        for (question_idx, trace_idxs) in members.iter().enumerate() {
            let per_class = class_counts(&self.traces, trace_idxs);
            let given = pair_similarities
                .as_ref()
                .and_then(|all| all.get(question_idx))
                .map(Vec::as_slice);
            self.score_question(trace_idxs, &per_class, given, &mut work);
            if let Some(question) = self.questions.get_mut(question_idx) {
                question.majority_agreement = majority_agreement(&per_class);
            }
        }
        combo::fill_combo(&mut self.traces, &self.options.combine);
        let mut classes: BTreeMap<String, u64> = BTreeMap::new();
        for trace in &self.traces {
            let name = trace
                .class
                .and_then(|idx| self.classes.get(idx as usize))
                .map_or(NO_CLASS, String::as_str);
            *classes.entry(name.to_owned()).or_default() += 1;
        }
        let mut formats: Vec<&str> = Vec::new();
        for file in &self.files {
            if let Some(format) = file.format
                && !formats.contains(&format.name())
            {
                formats.push(format.name());
            }
        }
        // File names in skipped lines only matter when there is more than one file.
        if self.files.len() <= 1 {
            for skipped in &mut self.skipped {
                skipped.file = None;
            }
        }
        let report = Report {
            lines: self.lines,
            traces: self.traces.len() as u64,
            questions: self.questions.len() as u64,
            skipped: self.skipped,
            classes,
            format: (!formats.is_empty()).then(|| formats.join(",")),
            files: self.files.clone(),
            invalid_tokens: self.invalid_tokens,
            backend: "cpu".to_owned(),
            notes: self.notes,
            responses: self.responses,
        };
        ScoredSet {
            traces: self.traces,
            embeddings: self.embeddings,
            questions: self.questions,
            classes: self.classes,
            files: self.files,
            report,
        }
    }

    fn question_members(&self) -> Vec<Vec<usize>> {
        let mut members = vec![Vec::new(); self.questions.len()];
        for (trace_idx, trace) in self.traces.iter().enumerate() {
            if let Some(list) = members.get_mut(trace.question_idx as usize) {
                list.push(trace_idx);
            }
        }
        members
    }

    /// Consistency of every trace of one question (its mean similarity to the others) and
    /// the question's §5b signals. `given`: the question's pair similarities from another
    /// backend, in pair order.
    fn score_question(
        &mut self,
        trace_idxs: &[usize],
        per_class: &HashMap<u32, u32>,
        given: Option<&[Option<f64>]>,
        work: &mut QuestionWork,
    ) {
        let n = trace_idxs.len();
        let mut consistency = vec![None; n];
        // Whether the pair similarities are kept as a matrix for the similarity graph.
        let with_graph = n <= MAX_GRAPH_TRACES;
        match self.options.sim {
            Similarity::Answer => {
                // sim is 1 for equal non-∅ classes: count per class instead of pairs.
                if n >= 2 {
                    for (slot, &trace_idx) in consistency.iter_mut().zip(trace_idxs) {
                        let same = self
                            .traces
                            .get(trace_idx)
                            .and_then(|t| t.class)
                            .and_then(|class| per_class.get(&class))
                            .map_or(0, |count| count - 1);
                        *slot = Some(f64::from(same) / (n - 1) as f64);
                    }
                }
            }
            Similarity::RougeL | Similarity::Embedding | Similarity::Semantic if with_graph => {
                work.pairs.clear();
                work.pairs.resize(n * n, None);
                let mut given = given.map(|list| list.iter().copied());
                let payloads = &self.payloads;
                let payload = |i: usize| trace_idxs.get(i).and_then(|&idx| payloads.get(idx));
                // Pairs in the order (0,1), (0,2), …, (1,2), …: the order of `given`.
                for row in 0..n {
                    for col in row + 1..n {
                        let similarity = match given.as_mut() {
                            Some(list) => list.next().flatten(),
                            None => match (payload(row), payload(col)) {
                                (Some(SimPayload::Words(a)), Some(SimPayload::Words(b))) => {
                                    Some(similarity::rouge_l_f1(a, b))
                                }
                                (
                                    Some(SimPayload::Embedding(a)),
                                    Some(SimPayload::Embedding(b)),
                                ) => similarity::embedding_similarity(a, b),
                                _ => None,
                            },
                        };
                        for cell in [row * n + col, col * n + row] {
                            if let Some(slot) = work.pairs.get_mut(cell) {
                                *slot = similarity;
                            }
                        }
                    }
                }
                // Each row summed in column order adds the pairs in the order
                // `similarity::mean_pairwise` does, so the means are the same bits.
                for (row, slot) in consistency.iter_mut().enumerate() {
                    let (sum, count) = (0..n)
                        .filter(|&col| col != row)
                        .filter_map(|col| work.pairs.get(row * n + col).copied().flatten())
                        .fold((0.0f64, 0usize), |(sum, count), sim| (sum + sim, count + 1));
                    *slot = (count > 0).then(|| sum / count as f64);
                }
            }
            Similarity::RougeL | Similarity::Embedding | Similarity::Semantic
                if given.is_some() =>
            {
                // mean_pairwise asks for each pair once, in the order the list holds them.
                let mut given = given.unwrap_or(&[]).iter().copied();
                similarity::mean_pairwise(n, |_, _| given.next().flatten(), &mut consistency);
            }
            Similarity::RougeL | Similarity::Embedding | Similarity::Semantic => {
                let payloads = &self.payloads;
                let payload = |i: usize| trace_idxs.get(i).and_then(|&idx| payloads.get(idx));
                similarity::mean_pairwise(
                    n,
                    |i, j| match (payload(i)?, payload(j)?) {
                        (SimPayload::Words(a), SimPayload::Words(b)) => {
                            Some(similarity::rouge_l_f1(a, b))
                        }
                        (SimPayload::Embedding(a), SimPayload::Embedding(b)) => {
                            similarity::embedding_similarity(a, b)
                        }
                        _ => None,
                    },
                    &mut consistency,
                );
            }
        }
        for (&trace_idx, value) in trace_idxs.iter().zip(&consistency) {
            if let Some(trace) = self.traces.get_mut(trace_idx) {
                trace.consistency = *value;
            }
            // The payload is no longer needed once its question is scored; a computed
            // embedding moves to the set (losslessly back to the model's f32).
            if let Some(payload) = self.payloads.get_mut(trace_idx) {
                let payload = std::mem::replace(payload, SimPayload::None);
                if let (SimPayload::Embedding(embedding), Some(slot)) =
                    (payload, self.embeddings.get_mut(trace_idx))
                {
                    *slot = Some(embedding.iter().map(|&v| v as f32).collect());
                }
            }
        }
        self.score_question_signals(trace_idxs, &consistency, with_graph, work);
    }

    /// The §5b signals of one question, after its consistency: the answer entropy over all
    /// its traces, and the similarity-graph signals over the traces that have a consistency
    /// (W of SPEC §5b), taken in trace-id order so that no sum depends on the input order.
    fn score_question_signals(
        &mut self,
        trace_idxs: &[usize],
        consistency: &[Option<f64>],
        with_graph: bool,
        work: &mut QuestionWork,
    ) {
        let n = trace_idxs.len();
        let traces = &self.traces;
        let trace_at = |position: usize| trace_idxs.get(position).and_then(|&idx| traces.get(idx));
        work.classes.clear();
        work.classes
            .extend((0..n).map(|position| trace_at(position).and_then(|t| t.class)));
        let answer_entropy = question_signals::answer_entropy(&work.classes);

        work.order.clear();
        work.order.extend(
            (0..n).filter(|&position| consistency.get(position).copied().flatten().is_some()),
        );
        work.order.sort_by(|&a, &b| {
            let id =
                |position: usize| trace_at(position).map_or(&[][..], |t| t.trace_id.as_bytes());
            id(a).cmp(id(b)).then(a.cmp(&b))
        });
        work.members.clear();
        work.members.extend(work.order.iter().map(|&position| {
            trace_at(position).map_or(GraphMember::default(), |t| GraphMember {
                msp: t.msp,
                ppl: t.ppl,
            })
        }));
        let n_members = work.order.len();
        work.graph_out.clear();
        if n_members >= 2 {
            match self.options.sim {
                Similarity::Answer => {
                    work.member_classes.clear();
                    work.member_classes.extend(
                        work.order
                            .iter()
                            .map(|&position| work.classes.get(position).copied().flatten()),
                    );
                    question_signals::answer_graph(
                        &work.member_classes,
                        &work.members,
                        &mut work.graph_out,
                    );
                }
                Similarity::RougeL | Similarity::Embedding | Similarity::Semantic if with_graph => {
                    work.weights.clear();
                    for &row in &work.order {
                        for &col in &work.order {
                            let weight = if row == col {
                                1.0
                            } else {
                                // Two traces of W whose similarity is undefined (a vector
                                // with non-finite entries) are not similar.
                                work.pairs
                                    .get(row * n + col)
                                    .copied()
                                    .flatten()
                                    .unwrap_or(0.0)
                            };
                            work.weights.push(weight);
                        }
                    }
                    question_signals::similarity_graph(
                        &work.weights,
                        &work.members,
                        &mut work.graph,
                        &mut work.graph_out,
                    );
                }
                Similarity::RougeL | Similarity::Embedding | Similarity::Semantic => {
                    let line = trace_at(0).map_or(0, |t| t.record.line);
                    add_note(&mut self.notes, LARGE_QUESTION, n as u64, &[line], 1);
                }
            }
        }
        for &trace_idx in trace_idxs {
            if let Some(trace) = self.traces.get_mut(trace_idx) {
                trace.signals.answer_entropy = answer_entropy.into();
            }
        }
        for (&position, graph) in work.order.iter().zip(&work.graph_out) {
            let Some(trace) = trace_idxs
                .get(position)
                .and_then(|&idx| self.traces.get_mut(idx))
            else {
                continue;
            };
            trace.signals.eigv = graph.eigv.into();
            trace.signals.eccentricity = graph.eccentricity.into();
            trace.signals.kle = graph.kle.into();
            trace.signals.semantic_density = graph.semantic_density.into();
            trace.signals.sentence_sar = graph.sentence_sar.into();
        }
    }
}

/// Above this many traces in a question, `rouge_l` and `embedding` runs leave the
/// similarity-graph signals null: their eigen-decompositions grow as M³ and the matrix as
/// M² (`answer` similarity has closed forms and no limit). Samples per question are
/// usually 5–64.
pub const MAX_GRAPH_TRACES: usize = 256;

/// The report's note for questions too large for the similarity graph.
const NOT_EMBEDDED: &str = "consistency and the similarity-graph signals left null: the \
     trace's text was not embedded (semantic similarity needs the embedding model)";
const LARGE_QUESTION: &str = "eigv, eccentricity, kle, semantic_density and sentence_sar left \
     null: the question has more than 256 traces to compare (rouge_l and embedding graphs \
     grow as M³; answer similarity has no such limit)";

/// Buffers of the per-question work in `finish`, reused from question to question.
#[derive(Debug, Default)]
struct QuestionWork {
    /// Pair similarities of the question's traces, n × n (rouge_l and embedding).
    pairs: Vec<Option<f64>>,
    /// Every trace's class, by position in the question.
    classes: Vec<Option<u32>>,
    /// Positions of W's traces, in trace-id order.
    order: Vec<usize>,
    member_classes: Vec<Option<u32>>,
    members: Vec<GraphMember>,
    weights: Vec<f64>,
    graph: GraphScratch,
    graph_out: Vec<GraphSignals>,
}

/// The report's note for traces whose mte is null for want of top-k alternatives.
const SHORT_TOP_LISTS: &str = "mte left null: a valid token's top list has fewer than 2 entries \
     (only the sampled token, as with top_logprobs=0 or vLLM logprobs=0); entropy needs k ≥ 2";

/// Whether a trace has top lists but some valid token's list is too short for entropy.
fn short_top_lists(trace: &TraceBuf) -> bool {
    trace.has_top()
        && trace.logprobs.iter().enumerate().any(|(token_idx, &raw)| {
            crate::trace::classify_logprob(raw).is_some()
                && trace.top_list(token_idx).len() < crate::score::MIN_TOP_K
        })
}

/// `tokens` and `top_logprobs` must line up with `logprobs` (SPEC §2).
fn check_lengths(trace: &TraceBuf) -> Result<(), String> {
    let n_logprobs = trace.logprobs.len();
    if let Some(n_tokens) = trace.n_token_strings
        && trace.has_logprobs
        && n_tokens != n_logprobs
    {
        return Err(format!(
            "`tokens` has {n_tokens} entries but `logprobs` has {n_logprobs}"
        ));
    }
    if trace.has_top() && trace.n_top_lists() != n_logprobs {
        return Err(format!(
            "`top_logprobs` has {} entries but `logprobs` has {n_logprobs}",
            trace.n_top_lists()
        ));
    }
    Ok(())
}

/// Share of a question's answered traces that give its most common class.
fn majority_agreement(per_class: &HashMap<u32, u32>) -> Option<f64> {
    let top = per_class.values().copied().max()?;
    let answered: u32 = per_class.values().sum();
    Some(f64::from(top) / f64::from(answered))
}

/// How many of a question's traces give each class (∅ not counted).
fn class_counts(traces: &[TraceScores], trace_idxs: &[usize]) -> HashMap<u32, u32> {
    let mut per_class: HashMap<u32, u32> = HashMap::new();
    for class in trace_idxs.iter().filter_map(|&idx| traces.get(idx)?.class) {
        *per_class.entry(class).or_default() += 1;
    }
    per_class
}

/// Scores whole in-memory inputs in one call (tests, the app's small files).
pub fn score_bytes(
    settings: &Settings,
    files: &[(&str, &[u8])],
) -> Result<ScoredSet, SettingsError> {
    let mut scorer = Scorer::new(ScoreOptions::from_settings(settings)?);
    for (name, bytes) in files {
        scorer.begin_file(name);
        scorer.feed(bytes);
        scorer.end_file();
    }
    Ok(scorer.finish())
}

/// One trace's part of a run, on its own: what an engine that spreads a run over machines
/// (Ray Data) moves from the per-trace pass to the per-question pass, never the tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TracePart {
    pub question_id: String,
    pub trace_id: String,
    /// A [`ScoredPart`] holding this trace alone.
    pub part: ScoredPart,
}

impl ScoredPart {
    /// Splits a part into one part per trace, each with its own question and classes, to
    /// be gathered by question and absorbed by [`score_gathered_question`]. Skipped lines
    /// and notes stay with the caller (returned beside the parts).
    pub fn split_by_trace(self) -> (Vec<TracePart>, Vec<Skipped>, Vec<ReportNote>) {
        let classes = self.classes;
        let questions = self.questions;
        let class_name = |idx: Option<u32>| idx.and_then(|idx| classes.get(idx as usize)).cloned();
        let mut parts = Vec::with_capacity(self.traces.len());
        let traces = self.traces.into_iter().zip(self.payloads);
        for ((mut trace, payload), defaulted) in traces.zip(self.defaulted_ids) {
            let question_id = questions
                .get(trace.question_idx as usize)
                .cloned()
                .unwrap_or_default();
            let mut own_classes: Vec<String> = Vec::new();
            let mut own_idx = |name: Option<String>| {
                let name = name?;
                let idx = own_classes.iter().position(|known| *known == name);
                Some(idx.unwrap_or_else(|| {
                    own_classes.push(name);
                    own_classes.len() - 1
                }) as u32)
            };
            trace.class = own_idx(class_name(trace.class));
            trace.label = own_idx(class_name(trace.label));
            trace.question_idx = 0;
            parts.push(TracePart {
                question_id: question_id.clone(),
                trace_id: trace.trace_id.clone(),
                part: ScoredPart {
                    invalid_tokens: u64::from(trace.invalid_tokens),
                    traces: vec![trace],
                    payloads: vec![payload],
                    defaulted_ids: vec![defaulted],
                    questions: vec![question_id],
                    classes: own_classes,
                    skipped: Vec::new(),
                    notes: Vec::new(),
                    responses: 0,
                    lines: 0,
                },
            });
        }
        (parts, self.skipped, self.notes)
    }
}

/// The per-question pass over one question's traces gathered from anywhere: consistency,
/// answer entropy and the similarity-graph signals, as [`Scorer::finish`] computes them.
/// The parts are absorbed in the order given, which callers make the input order: the
/// order [`Scorer::finish`] sums consistency in, so a gathered question scores bit for bit
/// as the whole run does (the graph signals sort by trace id themselves). The traces come
/// back in that order. `combo`, which ranks over the whole run, is filled in later by
/// [`gather_run`].
pub fn score_gathered_question(options: ScoreOptions, parts: Vec<TracePart>) -> ScoredSet {
    let mut scorer = Scorer::new(options);
    for part in parts {
        scorer.absorb_part(part.part);
    }
    scorer.finish()
}

/// One scored trace of a run gathered from per-question passes, with the names its
/// indices stand for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatheredTrace {
    pub question_id: String,
    pub class: Option<String>,
    pub label: Option<String>,
    pub scores: TraceScores,
    /// `semantic` runs: the trace's embedding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

impl GatheredTrace {
    /// The traces of a scored set (a question scored by [`score_gathered_question`]).
    pub fn from_set(set: ScoredSet) -> Vec<GatheredTrace> {
        let ScoredSet {
            traces,
            embeddings,
            questions,
            classes,
            ..
        } = set;
        let mut embeddings = embeddings.into_iter();
        let name = |idx: Option<u32>| idx.and_then(|idx| classes.get(idx as usize)).cloned();
        traces
            .into_iter()
            .map(|scores| GatheredTrace {
                question_id: questions
                    .get(scores.question_idx as usize)
                    .map(|question| question.id.clone())
                    .unwrap_or_default(),
                class: name(scores.class),
                label: name(scores.label),
                scores,
                embedding: embeddings.next().flatten(),
            })
            .collect()
    }
}

/// A run put together from its questions' traces, in the given order: question and class
/// indices rebuilt, `combo` ranked over the whole run. The filter, exports of score rows
/// and the evaluation then work on it as on a run scored in one pass.
pub fn gather_run(gathered: Vec<GatheredTrace>, combine: &[Metric]) -> ScoredSet {
    let mut question_idx_by_id: HashMap<String, u32> = HashMap::new();
    let mut questions: Vec<Question> = Vec::new();
    let mut class_idx_by_name: HashMap<String, u32> = HashMap::new();
    let mut classes: Vec<String> = Vec::new();
    let mut class_idx = |name: Option<String>| {
        let name = name?;
        Some(*class_idx_by_name.entry(name.clone()).or_insert_with(|| {
            classes.push(name);
            u32::try_from(classes.len() - 1).unwrap_or(u32::MAX)
        }))
    };
    let mut traces = Vec::with_capacity(gathered.len());
    let semantic = gathered.iter().any(|item| item.embedding.is_some());
    let mut embeddings = Vec::new();
    for item in gathered {
        if semantic {
            embeddings.push(item.embedding);
        }
        let mut trace = item.scores;
        trace.class = class_idx(item.class);
        trace.label = class_idx(item.label);
        let question_idx = *question_idx_by_id
            .entry(item.question_id.clone())
            .or_insert_with(|| {
                questions.push(Question {
                    id: item.question_id,
                    n_traces: 0,
                    majority_agreement: None,
                });
                u32::try_from(questions.len() - 1).unwrap_or(u32::MAX)
            });
        if let Some(question) = questions.get_mut(question_idx as usize) {
            question.n_traces += 1;
        }
        trace.question_idx = question_idx;
        traces.push(trace);
    }
    combo::fill_combo(&mut traces, combine);
    let mut class_counts: BTreeMap<String, u64> = BTreeMap::new();
    for trace in &traces {
        let name = trace
            .class
            .and_then(|idx| classes.get(idx as usize))
            .map_or(NO_CLASS, String::as_str);
        *class_counts.entry(name.to_owned()).or_default() += 1;
    }
    let report = Report {
        lines: 0,
        traces: traces.len() as u64,
        questions: questions.len() as u64,
        skipped: Vec::new(),
        classes: class_counts,
        format: None,
        files: Vec::new(),
        invalid_tokens: traces.iter().map(|t| u64::from(t.invalid_tokens)).sum(),
        backend: "cpu".to_owned(),
        notes: Vec::new(),
        responses: 0,
    };
    ScoredSet {
        traces,
        embeddings,
        questions,
        classes,
        files: Vec::new(),
        report,
    }
}
