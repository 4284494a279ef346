//! Exports (SPEC §8) and the per-trace score rows of `tracesift score` (SPEC §10). The app
//! and the CLI call the same functions, so a download is byte-for-byte the CLI's output.

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::answer::AnswerExtractor;
use crate::dataset::{ScoredSet, TraceScores};
use crate::import::{self, Format, ImportOptions, TraceBatch};
use crate::json;
use crate::metrics::{ColumnSet, score_columns};
use crate::settings::ExportFormat;
use crate::trace::{TraceBuf, classify_logprob};

/// One line of `tracesift score` output: the fields SPEC §10 lists first, then the score
/// columns of the metric table in its order.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow<'a> {
    pub trace_id: &'a str,
    pub question_id: &'a str,
    pub class: Option<&'a str>,
    pub greedy: bool,
    pub n_tokens: u32,
    pub invalid_tokens: u32,
    pub trace: &'a TraceScores,
}

impl Serialize for ScoreRow<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let columns = score_columns(ColumnSet::ScoreRow);
        let mut map = serializer.serialize_map(Some(6 + columns.len()))?;
        map.serialize_entry("trace_id", self.trace_id)?;
        map.serialize_entry("question_id", self.question_id)?;
        map.serialize_entry("class", &self.class)?;
        map.serialize_entry("greedy", &self.greedy)?;
        map.serialize_entry("n_tokens", &self.n_tokens)?;
        map.serialize_entry("invalid_tokens", &self.invalid_tokens)?;
        for column in columns {
            map.serialize_entry(column.name(), &column.value(self.trace))?;
        }
        map.end()
    }
}

pub fn score_row<'a>(set: &'a ScoredSet, trace: &'a TraceScores) -> ScoreRow<'a> {
    ScoreRow {
        trace_id: &trace.trace_id,
        question_id: set.question_id(trace),
        class: set.class_name(trace.class),
        greedy: trace.greedy,
        n_tokens: trace.n_tokens,
        invalid_tokens: trace.invalid_tokens,
        trace,
    }
}

/// The `scores` object added to canonical exports: class and token counts, then every
/// score column (`consistency` and `inconsistency` both).
#[derive(Debug, Clone, PartialEq)]
struct ScoresObject<'a> {
    class: Option<&'a str>,
    trace: &'a TraceScores,
}

impl Serialize for ScoresObject<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let columns = score_columns(ColumnSet::Full);
        let mut map = serializer.serialize_map(Some(3 + columns.len()))?;
        map.serialize_entry("class", &self.class)?;
        map.serialize_entry("n_tokens", &self.trace.n_tokens)?;
        map.serialize_entry("invalid_tokens", &self.trace.invalid_tokens)?;
        for column in columns {
            map.serialize_entry(column.name(), &column.value(self.trace))?;
        }
        map.end()
    }
}

fn scores_object<'a>(set: &'a ScoredSet, trace: &'a TraceScores) -> ScoresObject<'a> {
    ScoresObject {
        class: set.class_name(trace.class),
        trace,
    }
}

/// What exports need besides the scores.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub format: ExportFormat,
    /// System message for OpenAI / ShareGPT / Alpaca exports.
    pub system_prompt: Option<String>,
    /// Used to fill `answer` when a provider record has only text.
    pub answers: AnswerExtractor,
}

impl ExportOptions {
    /// The export settings of a run: its format, system prompt and answer pattern.
    pub fn from_settings(
        settings: &crate::settings::Settings,
    ) -> Result<Self, crate::settings::SettingsError> {
        Ok(Self {
            format: settings.export,
            system_prompt: settings.system_prompt.clone(),
            answers: AnswerExtractor::new(settings.pattern.as_deref())?,
        })
    }
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            format: ExportFormat::Canonical,
            system_prompt: None,
            answers: AnswerExtractor::default(),
        }
    }
}

/// The CSV header: trace fields, every score column, and `kept` (whether the filter kept
/// the trace).
pub fn csv_header() -> String {
    let mut names = vec![
        "trace_id",
        "question_id",
        "class",
        "greedy",
        "n_tokens",
        "invalid_tokens",
    ];
    names.extend(
        score_columns(ColumnSet::Full)
            .iter()
            .map(|column| column.name()),
    );
    names.push("kept");
    let mut header = names.join(",");
    header.push('\n');
    header
}

/// Appends one CSV row.
pub fn write_csv_row(set: &ScoredSet, trace: &TraceScores, kept: bool, out: &mut Vec<u8>) {
    let number = |value: Option<f64>| value.map(|v| v.to_string()).unwrap_or_default();
    let mut fields = vec![
        csv_field(&trace.trace_id),
        csv_field(set.question_id(trace)),
        csv_field(set.class_name(trace.class).unwrap_or("")),
        trace.greedy.to_string(),
        trace.n_tokens.to_string(),
        trace.invalid_tokens.to_string(),
    ];
    fields.extend(
        score_columns(ColumnSet::Full)
            .iter()
            .map(|column| number(column.value(trace))),
    );
    fields.push(kept.to_string());
    out.extend_from_slice(fields.join(",").as_bytes());
    out.push(b'\n');
}

/// RFC 4180 quoting where needed.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// Writes the chosen traces, in input order, in the export format: the one function behind
/// `tracesift filter` and the app's downloads, so both give the same bytes. CSV lists every
/// trace with a `kept` column. `read_record` returns a trace's source record (by its
/// offset); traces it cannot export are skipped and described in the returned warnings.
pub fn write_selection(
    set: &ScoredSet,
    chosen: &[bool],
    options: &ExportOptions,
    mut read_record: impl FnMut(&crate::trace::RecordRef) -> Result<Vec<u8>, String>,
    out: &mut dyn std::io::Write,
) -> std::io::Result<Vec<String>> {
    let mut warnings = Vec::new();
    let mut line = Vec::new();
    if options.format == ExportFormat::Csv {
        out.write_all(csv_header().as_bytes())?;
        for (trace, &kept) in set.traces.iter().zip(chosen) {
            line.clear();
            write_csv_row(set, trace, kept, &mut line);
            out.write_all(&line)?;
        }
        return Ok(warnings);
    }
    // A response with n choices yields n traces from one record: read it once.
    let mut cached: Option<(u32, u64, u64, Vec<u8>)> = None;
    for (trace, _) in set.traces.iter().zip(chosen).filter(|(_, kept)| **kept) {
        let Some(format) = set
            .files
            .get(trace.record.file_idx as usize)
            .and_then(|f| f.format)
        else {
            continue;
        };
        let key = (trace.record.file_idx, trace.record.offset, trace.record.len);
        let record = match cached.take() {
            Some((file_idx, offset, len, bytes)) if (file_idx, offset, len) == key => bytes,
            _ => match read_record(&trace.record) {
                Ok(bytes) => bytes,
                Err(reason) => {
                    warnings.push(format!("line {}: {reason}", trace.record.line));
                    continue;
                }
            },
        };
        line.clear();
        match write_trace(set, trace, format, &record, options, &mut line) {
            Ok(()) => out.write_all(&line)?,
            Err(reason) => warnings.push(reason),
        }
        cached = Some((key.0, key.1, key.2, record));
    }
    Ok(warnings)
}

/// A trace's full content (prompt, text, token strings, top-k tokens), read again from its
/// source record: what exports write and what the app shows when a trace is opened.
pub fn reparse(trace: &TraceScores, source: Format, record: &[u8]) -> Result<TraceBuf, String> {
    let mut batch = TraceBatch::default();
    // A trace assembled from stream chunks: `record` is the span of its chunks.
    let (record, sub_idx) =
        if crate::stream::has_streams(source) && crate::stream::is_chunk(source, record) {
            let whole = crate::stream::reassemble(source, record, trace.record.sub_idx)
                .map_err(|reason| format!("line {}: {reason}", trace.record.line))?;
            (std::borrow::Cow::Owned(whole), 0)
        } else {
            (std::borrow::Cow::Borrowed(record), trace.record.sub_idx)
        };
    import::parse_record(
        source,
        &record,
        ImportOptions { keep_content: true },
        &mut batch,
    )
    .map_err(|error| format!("line {}: {}", trace.record.line, error.message))?;
    batch
        .traces_mut()
        .get_mut(sub_idx as usize)
        .map(std::mem::take)
        .ok_or_else(|| {
            format!(
                "line {}: the record changed since it was scored",
                trace.record.line
            )
        })
}

/// Appends one exported trace as a JSON line. `record` is the trace's source record, read
/// again by its [`crate::trace::RecordRef`]; `source` is that file's format.
pub fn write_trace(
    set: &ScoredSet,
    trace: &TraceScores,
    source: Format,
    record: &[u8],
    options: &ExportOptions,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let full = &reparse(trace, source, record)?;
    let prompt = full.prompt.as_deref().unwrap_or("");
    let completion = full
        .text
        .as_deref()
        .or(full.answer.as_deref())
        .unwrap_or("");
    let system = options.system_prompt.as_deref().filter(|s| !s.is_empty());
    let line = match options.format {
        ExportFormat::Csv => {
            write_csv_row(set, trace, true, out);
            return Ok(());
        }
        ExportFormat::Canonical if source == Format::Canonical => {
            canonical_passthrough(set, trace, record)?
        }
        ExportFormat::Canonical => canonical_from_trace(set, trace, full, source, &options.answers),
        ExportFormat::Openai => {
            let mut messages = Vec::new();
            if let Some(system) = system {
                messages.push(ChatMessage {
                    role: "system",
                    content: system,
                });
            }
            messages.push(ChatMessage {
                role: "user",
                content: prompt,
            });
            messages.push(ChatMessage {
                role: "assistant",
                content: completion,
            });
            to_json(&OpenaiExample { messages })
        }
        ExportFormat::Trl => to_json(&TrlExample { prompt, completion }),
        ExportFormat::Sharegpt => {
            let mut conversations = Vec::new();
            if let Some(system) = system {
                conversations.push(ShareGptTurn {
                    from: "system",
                    value: system,
                });
            }
            conversations.push(ShareGptTurn {
                from: "human",
                value: prompt,
            });
            conversations.push(ShareGptTurn {
                from: "gpt",
                value: completion,
            });
            to_json(&ShareGptExample { conversations })
        }
        ExportFormat::Alpaca => to_json(&AlpacaExample {
            instruction: prompt,
            input: "",
            output: completion,
            system,
        }),
    };
    out.extend_from_slice(&line);
    out.push(b'\n');
    Ok(())
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Serialize)]
struct OpenaiExample<'a> {
    messages: Vec<ChatMessage<'a>>,
}

#[derive(Serialize)]
struct TrlExample<'a> {
    prompt: &'a str,
    completion: &'a str,
}

#[derive(Serialize)]
struct ShareGptTurn<'a> {
    from: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct ShareGptExample<'a> {
    conversations: Vec<ShareGptTurn<'a>>,
}

#[derive(Serialize)]
struct AlpacaExample<'a> {
    instruction: &'a str,
    input: &'a str,
    output: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
}

/// A canonical record exactly as it was (unknown fields included, Python NaN/Infinity
/// written as null), with `trace_id` added if it was defaulted and `scores` (re)placed last.
fn canonical_passthrough(
    set: &ScoredSet,
    trace: &TraceScores,
    record: &[u8],
) -> Result<Vec<u8>, String> {
    let members = json::raw_members(record)
        .map_err(|error| format!("line {}: {}", trace.record.line, error.message))?;
    let mut out = Vec::with_capacity(record.len() + 256);
    out.push(b'{');
    let mut has_trace_id = false;
    for (key, raw) in members.iter().filter(|(key, _)| key != "scores") {
        has_trace_id |= key == "trace_id";
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(&to_json(key));
        out.push(b':');
        json::write_standard_json(raw, &mut out);
    }
    if !has_trace_id {
        out.extend_from_slice(b",\"trace_id\":");
        out.extend_from_slice(&to_json(&trace.trace_id));
    }
    out.extend_from_slice(b",\"scores\":");
    out.extend_from_slice(&to_json(&scores_object(set, trace)));
    out.push(b'}');
    Ok(out)
}

/// A provider trace rewritten as a canonical record (SPEC §2), invalid tokens dropped.
fn canonical_from_trace(
    set: &ScoredSet,
    trace: &TraceScores,
    full: &TraceBuf,
    source: Format,
    answers: &AnswerExtractor,
) -> Vec<u8> {
    let valid: Vec<usize> = full
        .logprobs
        .iter()
        .enumerate()
        .filter(|(_, value)| classify_logprob(**value).is_some())
        .map(|(idx, _)| idx)
        .collect();
    let tokens: Option<Vec<&str>> =
        (full.tokens.len() == full.logprobs.len() && !full.tokens.is_empty()).then(|| {
            valid
                .iter()
                .filter_map(|&i| full.tokens.get(i).map(String::as_str))
                .collect()
        });
    let logprobs: Option<Vec<f64>> = full.has_logprobs.then(|| {
        valid
            .iter()
            .filter_map(|&i| full.logprobs.get(i).copied().and_then(classify_logprob))
            .collect()
    });
    let top_logprobs: Option<Vec<Vec<f64>>> = full.has_top().then(|| {
        valid
            .iter()
            .map(|&i| {
                full.top_list(i)
                    .iter()
                    .copied()
                    .filter(|v| v.is_finite())
                    .collect()
            })
            .collect()
    });
    let answer = full.answer.clone().or_else(|| {
        full.text
            .as_deref()
            .and_then(|text| answers.extract(text))
            .map(str::to_owned)
    });
    let record = CanonicalRecord {
        question_id: set.question_id(trace),
        trace_id: &trace.trace_id,
        greedy: trace.greedy,
        prompt: full.prompt.as_deref(),
        text: full.text.as_deref(),
        answer: answer.as_deref(),
        tokens,
        logprobs,
        top_logprobs,
        label: full.label.as_deref(),
        embedding: full.embedding.as_deref(),
        source_format: source.name(),
        scores: scores_object(set, trace),
    };
    to_json(&record)
}

#[derive(Serialize)]
struct CanonicalRecord<'a> {
    question_id: &'a str,
    trace_id: &'a str,
    greedy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_logprobs: Option<Vec<Vec<f64>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    embedding: Option<&'a [f64]>,
    source_format: &'a str,
    scores: ScoresObject<'a>,
}
