//! Importers: one module per provider format, each turning one JSON record into traces.
//! Records arrive already framed (see `split`); detection looks at the first records.

use jiter::{Jiter, Peek};
use serde::{Deserialize, Serialize};

use crate::json::{self, Ctx, RecordResult};
use crate::trace::TraceBuf;

mod canonical;
mod llamacpp;
mod ollama;
mod openai;
mod responses;
mod sglang;
mod tgi;
mod vllm;

/// A trace file format of SPEC §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Canonical,
    Openai,
    OpenaiBatch,
    Completions,
    /// The OpenAI Responses API (`"object": "response"`, `output[].content[]`).
    OpenaiResponses,
    Vllm,
    Tgi,
    Llamacpp,
    Sglang,
    Ollama,
}

impl Format {
    pub const ALL: [Format; 10] = [
        Format::Canonical,
        Format::Openai,
        Format::OpenaiBatch,
        Format::Completions,
        Format::OpenaiResponses,
        Format::Vllm,
        Format::Tgi,
        Format::Llamacpp,
        Format::Sglang,
        Format::Ollama,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Format::Canonical => "canonical",
            Format::Openai => "openai",
            Format::OpenaiBatch => "openai-batch",
            Format::Completions => "completions",
            Format::OpenaiResponses => "openai-responses",
            Format::Vllm => "vllm",
            Format::Tgi => "tgi",
            Format::Llamacpp => "llamacpp",
            Format::Sglang => "sglang",
            Format::Ollama => "ollama",
        }
    }

    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|format| format.name() == name)
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What an importer should keep besides what scoring needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Keep token strings, top-k token strings and the prompt (for export and display).
    /// Scoring alone leaves them out, which keeps the hot path allocation-free per token.
    pub keep_content: bool,
}

/// Something an importer did to a record that changes what is scored without being an
/// error (prompt tokens left out, pieces without probabilities, samples regrouped). The
/// run report counts each kind with the lines it happened on (SPEC §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportNote {
    /// One sentence, the same for every record it applies to (it is the grouping key).
    pub what: &'static str,
    /// How many tokens, traces or chunks it concerned in this record.
    pub count: u64,
}

/// Reusable trace buffers for the traces of one record (a response with `n` choices has `n`).
#[derive(Debug, Default)]
pub struct TraceBatch {
    bufs: Vec<TraceBuf>,
    len: usize,
    notes: Vec<ImportNote>,
}

impl TraceBatch {
    pub fn clear(&mut self) {
        self.len = 0;
        self.notes.clear();
    }

    /// Records that `what` happened `count` times in this record (see [`ImportNote`]).
    pub fn note(&mut self, what: &'static str, count: u64) {
        if count == 0 {
            return;
        }
        match self.notes.iter_mut().find(|note| note.what == what) {
            Some(note) => note.count += count,
            None => self.notes.push(ImportNote { what, count }),
        }
    }

    pub fn notes(&self) -> &[ImportNote] {
        &self.notes
    }

    /// A cleared buffer for the next trace of the record.
    pub fn push(&mut self) -> &mut TraceBuf {
        if self.len == self.bufs.len() {
            self.bufs.push(TraceBuf::default());
        }
        let idx = self.len;
        self.len += 1;
        let buf = &mut self.bufs[idx];
        buf.clear();
        buf
    }

    pub fn traces(&self) -> &[TraceBuf] {
        self.bufs.get(..self.len).unwrap_or(&[])
    }

    pub fn traces_mut(&mut self) -> &mut [TraceBuf] {
        let len = self.len;
        self.bufs.get_mut(..len).unwrap_or(&mut [])
    }
}

/// Reads one record of a known format, appending its traces to `out` (cleared first).
pub fn parse_record(
    format: Format,
    record: &[u8],
    options: ImportOptions,
    out: &mut TraceBatch,
) -> RecordResult<()> {
    out.clear();
    check_record_is_json_object(record)?;
    let result = match format {
        Format::Canonical => canonical::parse(record, options, out),
        Format::OpenaiBatch => openai::parse_batch(record, options, out),
        Format::Openai | Format::Completions => openai::parse_response_object(record, options, out),
        Format::OpenaiResponses => openai::parse_responses_object(record, options, out),
        Format::Vllm => vllm::parse(record, options, out),
        Format::Tgi => tgi::parse(record, options, out),
        Format::Llamacpp => llamacpp::parse(record, options, out),
        Format::Sglang => sglang::parse(record, options, out),
        Format::Ollama => ollama::parse(record, options, out),
    };
    if result.is_err() {
        out.clear();
    }
    result
}

/// A record must be a JSON object (or, for batched provider responses, an array). Anything
/// else gets the JSON error that explains it, not a complaint about a missing field.
pub fn check_record_is_json_object(record: &[u8]) -> RecordResult<()> {
    let mut jiter = json::reader(record);
    let peek = jiter.peek().ctx("(record)")?;
    if peek == Peek::Object || peek == Peek::Array {
        return Ok(());
    }
    if jiter.known_skip(peek).is_err() {
        return Err(json::RecordError::new(
            format!(
                "not JSON: the line starts with `{}`",
                json::preview(record, 24)
            ),
            0,
        ));
    }
    json::finish(&mut jiter)?;
    Err(json::RecordError::new(
        format!("expected a JSON object, found {}", json::peek_name(peek)),
        0,
    ))
}

/// Guesses the format of a record from its top-level keys (and, where two formats share
/// keys, one level below). A record that is a JSON array (TGI and SGLang answer a batched
/// request with a list of responses) is judged by its first element. None when the record
/// is not of a known shape.
pub fn detect(record: &[u8]) -> Option<Format> {
    let mut jiter = json::reader(record);
    match jiter.peek().ok()? {
        Peek::Object => detect_object(&mut jiter),
        Peek::Array => {
            if jiter.known_array().ok()?? != Peek::Object {
                return None;
            }
            // Only provider importers read arrays of responses; canonical lines are objects.
            detect_object(&mut jiter).filter(|format| *format != Format::Canonical)
        }
        _ => None,
    }
}

/// Format of the object at the reader's position, from its keys.
fn detect_object(jiter: &mut Jiter<'_>) -> Option<Format> {
    let mut keys: Vec<String> = Vec::new();
    let mut choice_keys: Vec<String> = Vec::new();
    // The `object` tag (`"response"`, `"chat.completion"`, …) where it is a string.
    let mut object_tag: Option<String> = None;
    let mut key = jiter.known_object().ok()?.map(str::to_owned);
    while let Some(name) = key {
        if name == "choices" {
            choice_keys = first_element_keys(jiter).unwrap_or_default();
        } else if name == "object" && jiter.peek().ok()? == Peek::String {
            object_tag = Some(jiter.known_str().ok()?.to_owned());
        } else {
            jiter.next_skip().ok()?;
        }
        keys.push(name);
        key = jiter.next_key().ok()?.map(str::to_owned);
    }
    let has = |name: &str| keys.iter().any(|k| k == name);
    let choice_has = |name: &str| choice_keys.iter().any(|k| k == name);
    // Provider shapes first: a provider dump that a user annotated with `question_id`
    // is still that provider's format.
    if has("sequence_number") && has("type") {
        // A Responses API stream event (`response.created`, `…output_text.delta`, …).
        Some(Format::OpenaiResponses)
    } else if has("custom_id") && has("response") {
        Some(Format::OpenaiBatch)
    } else if object_tag.as_deref() == Some("response") || (has("output") && has("created_at")) {
        Some(Format::OpenaiResponses)
    } else if has("choices") {
        if choice_has("message") || choice_has("delta") {
            Some(Format::Openai)
        } else {
            Some(Format::Completions)
        }
    } else if has("outputs") {
        Some(Format::Vllm)
    } else if has("completion_probabilities")
        || (has("content") && (has("id_slot") || has("tokens_predicted")))
    {
        Some(Format::Llamacpp)
    } else if has("meta_info") {
        Some(Format::Sglang)
    } else if has("details") || has("generated_text") {
        Some(Format::Tgi)
    } else if (has("response") || has("message")) && (has("logprobs") || has("done")) {
        Some(Format::Ollama)
    } else if has("question_id") {
        Some(Format::Canonical)
    } else {
        None
    }
}

/// Keys of the first object in the array at the reader's position (the rest is skipped).
fn first_element_keys(jiter: &mut Jiter<'_>) -> Option<Vec<String>> {
    let mut keys = Vec::new();
    let mut element = jiter.next_array().ok()?;
    let mut first = true;
    while let Some(peek) = element {
        if first && peek == Peek::Object {
            let mut key = jiter.known_object().ok()?.map(str::to_owned);
            while let Some(name) = key {
                jiter.next_skip().ok()?;
                keys.push(name);
                key = jiter.next_key().ok()?.map(str::to_owned);
            }
        } else {
            jiter.known_skip(peek).ok()?;
        }
        first = false;
        element = jiter.array_step().ok()?;
    }
    Some(keys)
}

/// Reads one token's top-k alternatives in any of the shapes providers use, appending
/// them to `buf` as one CSR list:
/// - `[-0.1, -2.3]` (canonical),
/// - `{"tok": -0.1, "tok2": -2.3}` (legacy Completions),
/// - `[{"token": "tok", "logprob": -0.1}, …]` (OpenAI Chat, Ollama, llama.cpp, TGI; `prob`
///   is also read, as its natural log),
/// - `null` (an empty list).
pub(crate) fn read_top_list(
    jiter: &mut Jiter<'_>,
    peek: Peek,
    field: &str,
    keep_tokens: bool,
    buf: &mut TraceBuf,
) -> RecordResult<()> {
    match peek {
        Peek::Null => jiter.known_null().ctx(field)?,
        Peek::Array => {
            let mut element = jiter.known_array().ctx(field)?;
            while let Some(element_peek) = element {
                if element_peek == Peek::Object {
                    read_top_entry_object(jiter, field, keep_tokens, buf)?;
                } else {
                    let value = json::known_f64_or_null(jiter, element_peek, field)?;
                    buf.top_values.push(value);
                }
                element = jiter.array_step().ctx(field)?;
            }
        }
        Peek::Object => {
            let mut key = jiter.known_object().ctx(field)?.map(str::to_owned);
            while let Some(token) = key {
                let value_peek = jiter.peek().ctx(field)?;
                let value = json::known_f64_or_null(jiter, value_peek, field)?;
                buf.top_values.push(value);
                if keep_tokens {
                    buf.top_tokens.push(token);
                }
                key = jiter.next_key().ctx(field)?.map(str::to_owned);
            }
        }
        other => {
            return Err(json::wrong_type(
                field,
                "a list of top log-probs",
                other,
                jiter.current_index(),
            ));
        }
    }
    buf.end_top_list();
    Ok(())
}

/// One `{"token": …, "logprob": …}` alternative (also `prob`, and the token under
/// `decoded_token`, `tok_str` or `text`, as vLLM, old llama.cpp and TGI name it).
fn read_top_entry_object(
    jiter: &mut Jiter<'_>,
    field: &str,
    keep_tokens: bool,
    buf: &mut TraceBuf,
) -> RecordResult<()> {
    let mut value = f64::NAN;
    let mut token = String::new();
    json::for_each_member(jiter, field, |jiter, key| {
        match key {
            "logprob" => {
                let peek = jiter.peek().ctx(field)?;
                value = json::known_f64_or_null(jiter, peek, field)?;
            }
            "prob" => {
                let peek = jiter.peek().ctx(field)?;
                value = libm::log(json::known_f64_or_null(jiter, peek, field)?);
            }
            "token" | "decoded_token" | "tok_str" | "text" if keep_tokens => {
                token = json::next_id(jiter, field)?.unwrap_or_default();
            }
            _ => jiter.next_skip().ctx(field)?,
        }
        Ok(())
    })?;
    buf.top_values.push(value);
    if keep_tokens {
        buf.top_tokens.push(token);
    }
    Ok(())
}

/// Top-level fields that every provider importer reads the same way: a user who annotates
/// provider dumps with `greedy`, `label` or `prompt` gets them on every trace of the record.
#[derive(Debug, Default)]
pub(crate) struct RecordCommon {
    greedy: Option<bool>,
    label: Option<String>,
    prompt: Option<String>,
}

impl RecordCommon {
    /// Reads the value of `key` if it is one of the common fields; returns false (and reads
    /// nothing) otherwise.
    pub(crate) fn read(
        &mut self,
        jiter: &mut Jiter<'_>,
        key: &str,
        options: ImportOptions,
    ) -> RecordResult<bool> {
        match key {
            "greedy" => self.greedy = json::next_opt_bool(jiter, key)?,
            "label" => self.label = json::next_id(jiter, key)?,
            // Providers also echo prompts as token-id lists; only a string is a prompt text.
            "prompt" if options.keep_content && jiter.peek().ctx(key)? == Peek::String => {
                self.prompt = json::next_opt_string(jiter, key)?;
            }
            "prompt" => jiter.next_skip().ctx(key)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Sets the common fields on every trace of `out` from index `first` on.
    pub(crate) fn apply(&self, out: &mut TraceBatch, first: usize) {
        for trace in out.traces_mut().iter_mut().skip(first) {
            if let Some(greedy) = self.greedy {
                trace.greedy = greedy;
            }
            if self.label.is_some() {
                trace.label.clone_from(&self.label);
            }
            if self.prompt.is_some() {
                trace.prompt.clone_from(&self.prompt);
            }
        }
    }
}

/// Sets `question_id` on every trace of `out` from index `first` on that has none yet.
pub(crate) fn set_question_id(out: &mut TraceBatch, first: usize, id: Option<&str>) {
    let Some(id) = id else {
        return;
    };
    for trace in out.traces_mut().iter_mut().skip(first) {
        if trace.question_id.is_none() {
            trace.question_id = Some(id.to_owned());
        }
    }
}

/// Runs `parse_one` on the record's object, or on each element of a record that is a JSON
/// array of responses (a batched request), then checks that nothing follows the value.
pub(crate) fn for_each_response(
    record: &[u8],
    mut parse_one: impl FnMut(&mut Jiter<'_>) -> RecordResult<()>,
) -> RecordResult<()> {
    let mut jiter = json::reader(record);
    if jiter.peek().ctx("(record)")? == Peek::Array {
        json::for_each_element(&mut jiter, "(record)", |jiter, _peek| parse_one(jiter))?;
    } else {
        parse_one(&mut jiter)?;
    }
    json::finish(&mut jiter)
}

/// Walks the members of an object like [`json::for_each_member`]; `null` is read as an
/// absent object (returns false). Anything else is a wrong type naming `field`.
pub(crate) fn for_each_member_or_null(
    jiter: &mut Jiter<'_>,
    field: &str,
    on_member: impl FnMut(&mut Jiter<'_>, &str) -> RecordResult<()>,
) -> RecordResult<bool> {
    match jiter.peek().ctx(field)? {
        Peek::Null => {
            jiter.known_null().ctx(field)?;
            Ok(false)
        }
        Peek::Object => {
            json::for_each_member(jiter, field, on_member)?;
            Ok(true)
        }
        other => Err(json::wrong_type(
            field,
            "an object or null",
            other,
            jiter.current_index(),
        )),
    }
}

/// Reads one token's text (a string, or `null` for none) into `slot` when `keep`; returns
/// whether there was a string.
pub(crate) fn read_token_text(
    jiter: &mut Jiter<'_>,
    field: &str,
    keep: bool,
    slot: &mut String,
) -> RecordResult<bool> {
    match jiter.peek().ctx(field)? {
        Peek::Null => {
            jiter.known_null().ctx(field)?;
            Ok(false)
        }
        Peek::String => {
            if keep {
                slot.clear();
                slot.push_str(jiter.known_str().ctx(field)?);
            } else {
                jiter.known_skip(Peek::String).ctx(field)?;
            }
            Ok(true)
        }
        other => Err(json::wrong_type(
            field,
            "a string",
            other,
            jiter.current_index(),
        )),
    }
}

/// Counts the token strings of a per-token list, keeping `tokens` parallel to `logprobs`:
/// a token without a string gets `""`, and a list where no token had one has none at all.
#[derive(Debug, Default)]
pub(crate) struct TokenTexts {
    entries: usize,
    with_text: usize,
}

impl TokenTexts {
    /// Records one token (its text in `text` when `keep`, `has_text` whether it had one).
    pub(crate) fn push(&mut self, buf: &mut TraceBuf, keep: bool, has_text: bool, text: String) {
        self.entries += 1;
        if has_text {
            self.with_text += 1;
        }
        if keep {
            buf.tokens.push(if has_text { text } else { String::new() });
        }
    }

    /// Sets `n_token_strings` (and drops the placeholder strings when no token had text).
    pub(crate) fn finish(&self, buf: &mut TraceBuf) {
        if self.with_text > 0 {
            buf.n_token_strings = Some(self.entries);
        } else {
            buf.n_token_strings = None;
            buf.tokens.clear();
        }
    }
}

/// Drops the top-k lists of a trace that turned out to have none.
pub(crate) fn clear_top_lists(buf: &mut TraceBuf) {
    buf.top_offsets.clear();
    buf.top_values.clear();
    buf.top_tokens.clear();
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod test_support {
    //! Shared by the importers' tests: frame a fixture, detect and parse its records.

    use super::{Format, ImportOptions, TraceBatch, detect, parse_record};
    use crate::json::RecordResult;
    use crate::split::{RecordSplitter, SplitEvent};
    use crate::trace::TraceBuf;

    /// The records of a fixture file, framed as the app frames them (JSONL or JSON array).
    pub(crate) fn records(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut splitter = RecordSplitter::default();
        let mut records = Vec::new();
        let mut problems = Vec::new();
        let mut emit = |event: SplitEvent<'_>| match event {
            SplitEvent::Record(record) => records.push(record.bytes.to_vec()),
            SplitEvent::Problem { line, reason } => problems.push(format!("{line}: {reason}")),
        };
        splitter.feed(bytes, &mut emit);
        splitter.finish(&mut emit);
        assert!(problems.is_empty(), "framing problems: {problems:?}");
        records
    }

    /// Detects the record's format, checks it is `expected`, and parses it with full content.
    pub(crate) fn parse(expected: Format, record: &[u8]) -> RecordResult<Vec<TraceBuf>> {
        assert_eq!(
            detect(record),
            Some(expected),
            "detect() on {}",
            String::from_utf8_lossy(record)
        );
        parse_as(expected, record, true)
    }

    /// Parses a record as `format` with full content, returning its traces and notes.
    pub(crate) fn parse_with_notes(
        format: Format,
        record: &[u8],
    ) -> (Vec<TraceBuf>, Vec<crate::import::ImportNote>) {
        let mut out = TraceBatch::default();
        let options = ImportOptions { keep_content: true };
        parse_record(format, record, options, &mut out).unwrap();
        (out.traces().to_vec(), out.notes().to_vec())
    }

    /// Parses a record as `format`, with or without content.
    pub(crate) fn parse_as(
        format: Format,
        record: &[u8],
        keep_content: bool,
    ) -> RecordResult<Vec<TraceBuf>> {
        let mut out = TraceBatch::default();
        parse_record(format, record, ImportOptions { keep_content }, &mut out)?;
        Ok(out.traces().to_vec())
    }

    /// Exact comparison of raw log-probs, NaN equal to NaN.
    #[track_caller]
    pub(crate) fn assert_raw(actual: &[f64], expected: &[f64]) {
        let same = actual.len() == expected.len()
            && actual
                .iter()
                .zip(expected)
                .all(|(a, e)| a.to_bits() == e.to_bits() || (a.is_nan() && e.is_nan()));
        assert!(
            same,
            "raw log-probs differ:\n  actual   {actual:?}\n  expected {expected:?}"
        );
    }

    pub(crate) fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn detect_reads_arrays_by_their_first_element() {
        assert_eq!(
            detect(br#"[{"generated_text":"up","details":null},{"generated_text":"down"}]"#),
            Some(Format::Tgi)
        );
        assert_eq!(
            detect(br#"[{"text":"up","meta_info":{"id":"a"}}]"#),
            Some(Format::Sglang)
        );
        // Canonical traces are one object per line, never an array.
        assert_eq!(detect(br#"[{"question_id":"q1","text":"up"}]"#), None);
        assert_eq!(detect(b"[1, 2]"), None);
        assert_eq!(detect(b"[]"), None);
    }

    #[test]
    fn detect_knows_responses_without_log_probs() {
        // llama.cpp without `n_probs`, Ollama without `logprobs`.
        assert_eq!(
            detect(br#"{"index":0,"content":"Answer: up","tokens":[],"id_slot":0,"stop":true}"#),
            Some(Format::Llamacpp)
        );
        assert_eq!(
            detect(br#"{"model":"llama3.2","response":"Answer: up","done":true}"#),
            Some(Format::Ollama)
        );
        assert_eq!(
            detect(
                br#"{"model":"qwen3","message":{"role":"assistant","content":"up"},"done":true}"#
            ),
            Some(Format::Ollama)
        );
        // A Batch line is still a Batch line when its `response` is null.
        assert_eq!(
            detect(br#"{"id":"b","custom_id":"q","response":null,"error":{"code":"x"}}"#),
            Some(Format::OpenaiBatch)
        );
    }

    #[test]
    fn common_fields_apply_to_every_trace_of_the_record() {
        let record = br#"{"request_id":"q1","prompt":"Does PDIA6 knock-down change SLC35B1?","greedy":false,"label":2,"outputs":[{"index":0,"text":"up"},{"index":1,"text":"down"}]}"#;
        let mut out = TraceBatch::default();
        let options = ImportOptions { keep_content: true };
        parse_record(Format::Vllm, record, options, &mut out).unwrap();
        assert_eq!(out.traces().len(), 2);
        for trace in out.traces() {
            assert_eq!(trace.question_id.as_deref(), Some("q1"));
            assert_eq!(trace.label.as_deref(), Some("2"));
            assert!(!trace.greedy);
            assert_eq!(
                trace.prompt.as_deref(),
                Some("Does PDIA6 knock-down change SLC35B1?")
            );
        }
        // Without content the prompt is not kept; a prompt of token ids is not a text.
        let options = ImportOptions {
            keep_content: false,
        };
        parse_record(Format::Vllm, record, options, &mut out).unwrap();
        assert_eq!(out.traces()[0].prompt, None);
        let record = br#"{"request_id":"q1","prompt":[1,2,3],"outputs":[{"index":0,"text":"up"}]}"#;
        let options = ImportOptions { keep_content: true };
        parse_record(Format::Vllm, record, options, &mut out).unwrap();
        assert_eq!(out.traces()[0].prompt, None);
        // A failed record leaves no traces behind.
        let record =
            br#"{"request_id":"q1","outputs":[{"index":0,"text":"up"},{"index":1,"text":3}]}"#;
        assert!(parse_record(Format::Vllm, record, options, &mut out).is_err());
        assert!(out.traces().is_empty());
    }
}
