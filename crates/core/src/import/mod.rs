//! Importers: one module per provider format, each turning one JSON record into traces.
//! Records arrive already framed (see `split`); detection looks at the first records.

use jiter::{Jiter, Peek};
use serde::{Deserialize, Serialize};

use crate::json::{self, Ctx, RecordResult};
use crate::trace::TraceBuf;

mod canonical;

/// A trace file format of SPEC §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Canonical,
    Openai,
    OpenaiBatch,
    Completions,
    Vllm,
    Tgi,
    Llamacpp,
    Sglang,
    Ollama,
}

impl Format {
    pub const ALL: [Format; 9] = [
        Format::Canonical,
        Format::Openai,
        Format::OpenaiBatch,
        Format::Completions,
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

/// Reusable trace buffers for the traces of one record (a response with `n` choices has `n`).
#[derive(Debug, Default)]
pub struct TraceBatch {
    bufs: Vec<TraceBuf>,
    len: usize,
}

impl TraceBatch {
    pub fn clear(&mut self) {
        self.len = 0;
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
        other => Err(json::RecordError::new(
            format!("the {other} importer is not available"),
            0,
        )),
    };
    if result.is_err() {
        out.clear();
    }
    result
}

/// A record must be a JSON object (or, for batched provider responses, an array). Anything
/// else gets the JSON error that explains it, not a complaint about a missing field.
fn check_record_is_json_object(record: &[u8]) -> RecordResult<()> {
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
/// keys, one level below). None when the record is not an object of a known shape.
pub fn detect(record: &[u8]) -> Option<Format> {
    let mut jiter = json::reader(record);
    if jiter.peek().ok()? != Peek::Object {
        return None;
    }
    let mut keys: Vec<String> = Vec::new();
    let mut choice_keys: Vec<String> = Vec::new();
    let mut key = jiter.known_object().ok()?.map(str::to_owned);
    while let Some(name) = key {
        if name == "choices" {
            choice_keys = first_element_keys(&mut jiter).unwrap_or_default();
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
    if has("custom_id") && has("response") {
        Some(Format::OpenaiBatch)
    } else if has("choices") {
        if choice_has("message") || choice_has("delta") {
            Some(Format::Openai)
        } else {
            Some(Format::Completions)
        }
    } else if has("outputs") {
        Some(Format::Vllm)
    } else if has("completion_probabilities") {
        Some(Format::Llamacpp)
    } else if has("meta_info") {
        Some(Format::Sglang)
    } else if has("details") || has("generated_text") {
        Some(Format::Tgi)
    } else if has("logprobs") && (has("response") || has("message")) {
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
/// - `[{"token": "tok", "logprob": -0.1}, …]` (OpenAI Chat, Ollama; `prob` is also read),
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

/// One `{"token": …, "logprob": …}` alternative (also `prob`, `decoded_token`, `tok_str`).
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
                value = json::known_f64_or_null(jiter, peek, field)?.ln();
            }
            "token" | "decoded_token" | "tok_str" if keep_tokens => {
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
