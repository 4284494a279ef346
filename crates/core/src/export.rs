//! Exports (SPEC §8) and the per-trace score rows of `tracesift score` (SPEC §10). The app
//! and the CLI call the same functions, so a download is byte-for-byte the CLI's output.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::answer::AnswerExtractor;
use crate::chat_template;
use crate::dataset::{ScoredSet, TraceScores};
use crate::import::{self, Format, ImportOptions, TraceBatch};
use crate::json;
use crate::metrics::{ColumnSet, score_columns};
use crate::requests::{Prompt, RequestJoin, Role};
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
    /// System message for OpenAI / ShareGPT / Alpaca exports, where the prompt has none.
    pub system_prompt: Option<String>,
    /// Used to fill `answer` when a provider record has only text.
    pub answers: AnswerExtractor,
    /// Prompts from a request file, joined to this run's traces.
    pub requests: Option<Arc<RequestJoin>>,
    /// Write SFT examples whose prompt is empty instead of refusing the export.
    pub allow_empty_prompt: bool,
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
            requests: None,
            allow_empty_prompt: settings.allow_empty_prompt,
        })
    }
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            format: ExportFormat::Canonical,
            system_prompt: None,
            answers: AnswerExtractor::default(),
            requests: None,
            allow_empty_prompt: false,
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
    let kept = set.traces.iter().zip(chosen).enumerate();
    for (trace_idx, (trace, _)) in kept.filter(|(_, (_, kept))| **kept) {
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
        match write_trace(set, trace_idx, format, &record, options, &mut line) {
            Ok(()) => out.write_all(&line)?,
            Err(reason) => warnings.push(reason),
        }
        cached = Some((key.0, key.1, key.2, record));
    }
    Ok(warnings)
}

/// A trace's full content (prompt, text, token strings, top-k tokens), read again from its
/// source record: what exports write and what the app shows when a trace is opened.
pub fn reparse(set: &ScoredSet, trace: &TraceScores, record: &[u8]) -> Result<TraceBuf, String> {
    let file = set
        .files
        .get(trace.record.file_idx as usize)
        .ok_or_else(|| format!("line {}: unknown input file", trace.record.line))?;
    let source = file
        .format
        .ok_or_else(|| format!("line {}: the file has no known format", trace.record.line))?;
    let mut batch = TraceBatch::default();
    // A trace assembled from stream chunks: `record` is the span of its chunks.
    let (record, sub_idx) = if crate::stream::has_streams(source)
        && crate::stream::is_chunk(source, record, file.framing)
    {
        let whole = crate::stream::reassemble(source, record, file.framing, trace.record.sub_idx)
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

/// Appends the exported trace `set.traces[trace_idx]` as a JSON line. `record` is the
/// trace's source record, read again by its [`crate::trace::RecordRef`]; `source` is that
/// file's format.
pub fn write_trace(
    set: &ScoredSet,
    trace_idx: usize,
    source: Format,
    record: &[u8],
    options: &ExportOptions,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let trace = set
        .traces
        .get(trace_idx)
        .ok_or_else(|| format!("internal: no trace {trace_idx}"))?;
    // A `semantic` run's computed embedding replaces any the record brought.
    let computed = set.embeddings.get(trace_idx).and_then(Option::as_deref);
    let full = &reparse(set, trace, record)?;
    let completion = full
        .text
        .as_deref()
        .or(full.answer.as_deref())
        .unwrap_or("");
    let line = match options.format {
        ExportFormat::Csv => {
            write_csv_row(set, trace, true, out);
            return Ok(());
        }
        ExportFormat::Canonical if source == Format::Canonical => {
            canonical_passthrough(set, trace, computed, record)?
        }
        ExportFormat::Canonical => {
            canonical_from_trace(set, trace, computed, full, source, &options.answers)
        }
        ExportFormat::Openai
        | ExportFormat::Trl
        | ExportFormat::Sharegpt
        | ExportFormat::Alpaca => {
            let prompt = match resolve_prompt(set, trace, full, options) {
                Ok(prompt) => prompt,
                Err(_) if options.allow_empty_prompt => Cow::Owned(Prompt::plain("")),
                Err(reason) => {
                    return Err(format!(
                        "line {}: the prompt is empty ({reason})",
                        trace.record.line
                    ));
                }
            };
            sft_example(options, &prompt, completion)
        }
    };
    out.extend_from_slice(&line);
    out.push(b'\n');
    Ok(())
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Why a trace's prompt is empty, when no request file was given.
const NO_REQUEST_FILE: &str = "no request file was given";

/// The prompt of a trace's request, when a request file is joined.
fn request_prompt<'a>(
    set: &ScoredSet,
    trace: &TraceScores,
    options: &'a ExportOptions,
) -> Result<&'a Prompt, String> {
    match &options.requests {
        Some(join) => join.prompt(set, trace),
        None => Err(NO_REQUEST_FILE.to_owned()),
    }
}

/// The response's own `prompt`, its chat markup read back into turns.
fn response_prompt(full: &TraceBuf) -> Option<Prompt> {
    full.prompt
        .as_deref()
        .filter(|raw| !raw.trim().is_empty())
        .map(chat_template::parse)
}

/// Where a kept trace's prompt comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PromptSource {
    Request,
    Response,
}

/// The prompt an SFT export writes for a trace: its request's (from the joined request
/// file), else the response's own `prompt` read back from its chat markup; or why it has
/// none (no user text in either).
fn resolve_prompt<'a>(
    set: &ScoredSet,
    trace: &TraceScores,
    full: &TraceBuf,
    options: &'a ExportOptions,
) -> Result<Cow<'a, Prompt>, String> {
    resolve_prompt_with_source(set, trace, Some(full), options).map(|(prompt, _)| prompt)
}

/// [`resolve_prompt`], telling where the prompt came from; with `full` None only the
/// request is tried (the check reads the record again only when that fails).
fn resolve_prompt_with_source<'a>(
    set: &ScoredSet,
    trace: &TraceScores,
    full: Option<&TraceBuf>,
    options: &'a ExportOptions,
) -> Result<(Cow<'a, Prompt>, PromptSource), String> {
    let from_request = request_prompt(set, trace, options);
    if let Ok(prompt) = &from_request
        && prompt.has_user_text()
    {
        return Ok((Cow::Borrowed(*prompt), PromptSource::Request));
    }
    if let Some(prompt) = full.and_then(response_prompt).filter(Prompt::has_user_text) {
        return Ok((Cow::Owned(prompt), PromptSource::Response));
    }
    let request_reason = match from_request {
        Ok(_) => "its request has no user text".to_owned(),
        Err(reason) => reason,
    };
    Err(format!("{request_reason}; the response holds no prompt"))
}

/// One SFT example of a prompt and its completion, in the export format.
fn sft_example(options: &ExportOptions, prompt: &Prompt, completion: &str) -> Vec<u8> {
    // The prompt's own system message wins; the setting stands in where it has none.
    let setting = options
        .system_prompt
        .as_deref()
        .filter(|system| !system.is_empty());
    let has_system = prompt.messages.iter().any(|m| m.role == Role::System);
    let extra_system = setting.filter(|_| !has_system);
    let chat_messages = || {
        let mut messages: Vec<ChatMessage<'_>> = Vec::new();
        if let Some(system) = extra_system {
            messages.push(ChatMessage {
                role: Role::System.name(),
                content: system,
            });
        }
        messages.extend(prompt.messages.iter().map(|m| ChatMessage {
            role: m.role.name(),
            content: &m.content,
        }));
        messages
    };
    let assistant = ChatMessage {
        role: Role::Assistant.name(),
        content: completion,
    };
    match options.format {
        ExportFormat::Trl if prompt.chat => to_json(&TrlChatExample {
            prompt: chat_messages(),
            completion: vec![assistant],
        }),
        ExportFormat::Trl => to_json(&TrlExample {
            prompt: &joined_turns(prompt, Role::User),
            completion,
        }),
        ExportFormat::Sharegpt => {
            let mut conversations: Vec<ShareGptTurn<'_>> = chat_messages()
                .into_iter()
                .map(|m| ShareGptTurn {
                    from: match m.role {
                        "system" => "system",
                        "assistant" => "gpt",
                        _ => "human",
                    },
                    value: m.content,
                })
                .collect();
            conversations.push(ShareGptTurn {
                from: "gpt",
                value: completion,
            });
            to_json(&ShareGptExample { conversations })
        }
        ExportFormat::Alpaca => {
            let (history, instruction) = alpaca_turns(prompt);
            let own_system = joined_turns(prompt, Role::System);
            let system = if own_system.is_empty() {
                setting
            } else {
                Some(own_system.as_str())
            };
            to_json(&AlpacaExample {
                instruction: &instruction,
                input: "",
                output: completion,
                system,
                history,
            })
        }
        _ => {
            let mut messages = chat_messages();
            messages.push(assistant);
            to_json(&OpenaiExample { messages })
        }
    }
}

/// The contents of a prompt's turns of one role, paragraph by paragraph.
fn joined_turns(prompt: &Prompt, role: Role) -> String {
    let texts: Vec<&str> = prompt
        .messages
        .iter()
        .filter(|m| m.role == role)
        .map(|m| m.content.as_str())
        .collect();
    texts.join("\n\n")
}

/// A prompt as Alpaca holds it: earlier (user, assistant) exchanges as `history` (the
/// LLaMA-Factory Alpaca column) and the last user turn as the instruction. Turns of one
/// role in a row are joined.
fn alpaca_turns(prompt: &Prompt) -> (Vec<[String; 2]>, String) {
    let mut history: Vec<[String; 2]> = Vec::new();
    let mut pending_user: Option<String> = None;
    for message in prompt.messages.iter().filter(|m| m.role != Role::System) {
        match message.role {
            Role::User => match &mut pending_user {
                Some(user) => {
                    user.push_str("\n\n");
                    user.push_str(&message.content);
                }
                None => pending_user = Some(message.content.clone()),
            },
            _ => match pending_user.take() {
                Some(user) => history.push([user, message.content.clone()]),
                None => match history.last_mut() {
                    Some([_, answer]) => {
                        answer.push_str("\n\n");
                        answer.push_str(&message.content);
                    }
                    None => history.push([String::new(), message.content.clone()]),
                },
            },
        }
    }
    (history, pending_user.unwrap_or_default())
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

/// TRL's standard prompt-completion example (https://huggingface.co/docs/trl/dataset_formats).
#[derive(Serialize)]
struct TrlExample<'a> {
    prompt: &'a str,
    completion: &'a str,
}

/// TRL's conversational prompt-completion example: both sides as message lists.
#[derive(Serialize)]
struct TrlChatExample<'a> {
    prompt: Vec<ChatMessage<'a>>,
    completion: Vec<ChatMessage<'a>>,
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    history: Vec<[String; 2]>,
}

/// Where the kept traces' prompts come from, for an SFT export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromptCounts {
    /// Kept traces whose prompt is their request's.
    pub from_requests: usize,
    /// Kept traces whose prompt is the response's own `prompt` field.
    pub from_responses: usize,
    /// Kept traces with no prompt.
    pub empty: usize,
    /// The first few of those: (line, why).
    pub examples: Vec<(u64, String)>,
}

/// How many traces without a prompt a refusal names.
const EMPTY_PROMPT_EXAMPLES: usize = 3;

/// An SFT export refused because kept traces have no prompt: fine-tuning on them would
/// train a model to answer nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing the {format} export: {} of {kept} kept traces have an empty prompt ({}), and \
     fine-tuning on them would train on nothing",
    counts.empty,
    describe_examples(&counts.examples)
)]
pub struct EmptyPrompts {
    pub format: ExportFormat,
    pub kept: usize,
    pub counts: PromptCounts,
}

fn describe_examples(examples: &[(u64, String)]) -> String {
    let described: Vec<String> = examples
        .iter()
        .map(|(line, reason)| format!("line {line}: {reason}"))
        .collect();
    described.join("; ")
}

/// Whether an export format is a fine-tuning set with a prompt per example.
pub fn is_sft(format: ExportFormat) -> bool {
    matches!(
        format,
        ExportFormat::Openai | ExportFormat::Trl | ExportFormat::Sharegpt | ExportFormat::Alpaca
    )
}

/// Finds where every chosen trace's prompt comes from, before anything is written: an SFT
/// export with an empty prompt is refused unless `allow_empty_prompt`. Records are read
/// again (`read_record`) only for traces whose request gives no prompt. Other formats
/// pass with empty counts.
pub fn check_prompts(
    set: &ScoredSet,
    chosen: &[bool],
    options: &ExportOptions,
    mut read_record: impl FnMut(&crate::trace::RecordRef) -> Result<Vec<u8>, String>,
) -> Result<PromptCounts, EmptyPrompts> {
    let mut counts = PromptCounts::default();
    if !is_sft(options.format) {
        return Ok(counts);
    }
    let mut kept = 0;
    let mut cached: Option<(crate::trace::RecordRef, Vec<u8>)> = None;
    for (trace, _) in set.traces.iter().zip(chosen).filter(|(_, kept)| **kept) {
        kept += 1;
        let resolved = match resolve_prompt_with_source(set, trace, None, options) {
            Ok((_, source)) => Ok(source),
            Err(_) => {
                let same_record = |record: &crate::trace::RecordRef| {
                    (record.file_idx, record.offset, record.len)
                        == (trace.record.file_idx, trace.record.offset, trace.record.len)
                };
                let record = match cached.take() {
                    Some((record_ref, bytes)) if same_record(&record_ref) => bytes,
                    // The export itself reports a record it cannot read back.
                    _ => match read_record(&trace.record) {
                        Ok(bytes) => bytes,
                        Err(_) => continue,
                    },
                };
                let resolved = match reparse(set, trace, &record) {
                    Ok(full) => resolve_prompt_with_source(set, trace, Some(&full), options)
                        .map(|(_, source)| source),
                    Err(_) => continue,
                };
                cached = Some((trace.record, record));
                resolved
            }
        };
        match resolved {
            Ok(PromptSource::Request) => counts.from_requests += 1,
            Ok(PromptSource::Response) => counts.from_responses += 1,
            Err(reason) => {
                counts.empty += 1;
                // One example per record: its choices share the reason.
                let last_line = counts.examples.last().map(|(line, _)| *line);
                let new_line = last_line != Some(trace.record.line);
                if new_line && counts.examples.len() < EMPTY_PROMPT_EXAMPLES {
                    counts.examples.push((trace.record.line, reason));
                }
            }
        }
    }
    if counts.empty > 0 && !options.allow_empty_prompt {
        return Err(EmptyPrompts {
            format: options.format,
            kept,
            counts,
        });
    }
    Ok(counts)
}

/// A canonical record exactly as it was (unknown fields included, Python NaN/Infinity
/// written as null), with `trace_id` added if it was defaulted, `embedding` replaced by the
/// `computed` one if any, and `scores` (re)placed last.
fn canonical_passthrough(
    set: &ScoredSet,
    trace: &TraceScores,
    computed: Option<&[f32]>,
    record: &[u8],
) -> Result<Vec<u8>, String> {
    let members = json::raw_members(record)
        .map_err(|error| format!("line {}: {}", trace.record.line, error.message))?;
    let mut out = Vec::with_capacity(record.len() + 256);
    out.push(b'{');
    let mut has_trace_id = false;
    let replaced = |key: &str| key == "scores" || (computed.is_some() && key == "embedding");
    for (key, raw) in members.iter().filter(|(key, _)| !replaced(key)) {
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
    if let Some(embedding) = computed {
        out.extend_from_slice(b",\"embedding\":");
        out.extend_from_slice(&to_json(&ComputedEmbedding(embedding)));
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
    computed: Option<&[f32]>,
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
    let top_logprobs: Option<Vec<Vec<Option<f64>>>> = full.has_top().then(|| {
        valid
            .iter()
            .map(|&i| {
                // Standard JSON has no −∞ or NaN: −∞ (probability 0) is written as the
                // −9999 sentinel and anything else non-finite as null, so every list keeps
                // its length (mte needs k ≥ 2 entries) and reads back the same.
                full.top_list(i)
                    .iter()
                    .map(|&v| match v {
                        f64::NEG_INFINITY => Some(crate::trace::SENTINEL_LOGPROB),
                        v if v.is_finite() => Some(v),
                        _ => None,
                    })
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
        // A canonical record needs a text or an answer (SPEC §2): a generation with neither
        // (a refusal, a tool call) is written with an empty text.
        text: full.text.as_deref().or(answer.is_none().then_some("")),
        answer: answer.as_deref(),
        tokens,
        logprobs,
        top_logprobs,
        label: full.label.as_deref(),
        embedding: match computed {
            Some(embedding) => Some(Embedding::Computed(ComputedEmbedding(embedding))),
            None => full.embedding.as_deref().map(Embedding::Given),
        },
        source_format: source.name(),
        scores: scores_object(set, trace),
    };
    to_json(&record)
}

/// A record's own embedding, or the one a `semantic` run computed.
#[derive(Serialize)]
#[serde(untagged)]
enum Embedding<'a> {
    Given(&'a [f64]),
    Computed(ComputedEmbedding<'a>),
}

/// The model's f32 values written as the f64s they are (`0.10000000149011612`, not
/// `0.1`), so an `embedding` run on the export reads back exactly the vectors the
/// `semantic` run compared, and scores bit for bit the same.
struct ComputedEmbedding<'a>(&'a [f32]);

impl Serialize for ComputedEmbedding<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|&v| f64::from(v)))
    }
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
    top_logprobs: Option<Vec<Vec<Option<f64>>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    embedding: Option<Embedding<'a>>,
    source_format: &'a str,
    scores: ScoresObject<'a>,
}
