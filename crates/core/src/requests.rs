//! Request files: the prompts a run's responses answered, so that SFT exports carry the
//! real system and user messages where the response file holds none.
//!
//! Two kinds of file are read (JSONL, a JSON array or concatenated objects; see `split`):
//! - the OpenAI Batch input, `{"custom_id", "method", "url", "body": {…}}` per line,
//!   joined to the Batch output by `custom_id`;
//! - request bodies, one per response record: chat (`messages`), completions or llama.cpp
//!   `/completion` (`prompt`), the Responses API (`input`, `instructions`), Ollama
//!   `/api/generate` (`prompt`, `system`) and `/api/chat` (`messages`). They are joined by
//!   an id field (`custom_id`, `request_id`, `rid`, `id`) where the responses carry the
//!   same ids, otherwise by position: the n-th request answers the n-th response record.
//!
//! Parsing never fails as a whole: a line that cannot be used is listed with its line
//! number and the reason, and a trace that finds no request says why.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::chat_template;
use crate::dataset::{ScoredSet, TraceScores};
use crate::split::{DEFAULT_MAX_RECORD_BYTES, RecordSplitter, SplitEvent};

/// Who speaks in a prompt's turn. Other roles (tools, function results) are left out of
/// prompts: the SFT formats written here have no place for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// The OpenAI chat name of the role.
    pub fn name(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One turn of a prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

/// A prompt as turns. `chat` is false for plain text (a completions `prompt` without chat
/// markup), which TRL's standard format writes as a string rather than messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prompt {
    pub messages: Vec<Message>,
    pub chat: bool,
}

impl Prompt {
    /// Plain text, one user message.
    pub fn plain(text: &str) -> Prompt {
        Prompt {
            messages: vec![Message {
                role: Role::User,
                content: text.to_owned(),
            }],
            chat: false,
        }
    }

    /// Whether some user turn says something: a prompt without one trains on nothing.
    pub fn has_user_text(&self) -> bool {
        self.messages
            .iter()
            .any(|m| m.role == Role::User && !m.content.trim().is_empty())
    }
}

/// Where a trace's request is found in a request file, computed when the trace is scored
/// (the request file may come later, or not at all).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RequestKey {
    /// 0-based position of the trace's response among all responses of the run, files in
    /// order, failed ones included (each still answered a request); an assembled stream
    /// generation is one response.
    pub ordinal: u64,
    /// The id the response gives its request (`custom_id`, `request_id`, `id`, …) when it
    /// is not the question id (a `question_field` or `sample_suffix` changed that).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The response gives an id and the question id is that id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub id_is_question_id: bool,
    /// How many traces the response record gave (a request with several prompts gives
    /// `n` traces per prompt, in prompt order).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub traces_in_record: u32,
    /// Which of them this trace is.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub trace_in_record: u32,
}

impl RequestKey {
    /// The key of a trace: the response's position and trace count (`response`), the id
    /// the response gave (`own_id`, when the caller kept it apart) and the question id
    /// the trace ended up with.
    pub fn new(
        response: (u64, u32),
        trace_in_record: u32,
        has_own_id: bool,
        own_id: Option<String>,
        question_id: &str,
    ) -> RequestKey {
        let (id, id_is_question_id) = match own_id {
            Some(own) if own == question_id => (None, true),
            Some(own) => (Some(own), false),
            None => (None, has_own_id),
        };
        RequestKey {
            ordinal: response.0,
            id,
            id_is_question_id,
            traces_in_record: response.1,
            trace_in_record,
        }
    }
}

fn one() -> u32 {
    1
}

fn is_one(value: &u32) -> bool {
    *value == 1
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// A request line that gives no prompt, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestProblem {
    pub line: u64,
    pub reason: String,
}

/// Something left out of otherwise usable requests, counted over the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestNote {
    pub what: &'static str,
    /// Requests it concerned.
    pub requests: u64,
    /// The first lines it happened on (at most 20).
    pub lines: Vec<u64>,
}

const NOTE_LINES: usize = 20;

const TOOL_TURNS_LEFT_OUT: &str =
    "tool calls and tool results left out of the prompt (the SFT formats have no place for them)";
const NON_TEXT_PARTS_LEFT_OUT: &str = "non-text content parts (images, audio, files) left out";

/// One request record: its line and its prompts (several for a multi-prompt request), or
/// why it has none.
#[derive(Debug, Clone)]
struct Entry {
    line: u64,
    prompts: Result<Vec<Prompt>, String>,
}

/// A request file, read.
#[derive(Debug, Clone, Default)]
pub struct Requests {
    entries: Vec<Entry>,
    /// Entry index by id; None where the id is on several lines.
    by_id: HashMap<String, Option<usize>>,
    /// Records that were Batch input lines (`custom_id` and `body`).
    batch_lines: usize,
    problems: Vec<RequestProblem>,
    notes: Vec<RequestNote>,
    lines: u64,
}

impl Requests {
    /// Reads a whole request file from memory.
    pub fn from_bytes(bytes: &[u8]) -> Requests {
        let mut reader = RequestReader::new();
        reader.feed(bytes);
        reader.finish()
    }

    /// Reads a whole request file from a stream (a file, a Blob, a gzip decoder), a chunk
    /// of `chunk_size` bytes at a time; the stream's own error ends it.
    pub fn from_reader(
        mut stream: impl std::io::Read,
        chunk_size: usize,
    ) -> std::io::Result<Requests> {
        let mut requests = RequestReader::new();
        let mut chunk = vec![0u8; chunk_size.max(1)];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => return Ok(requests.finish()),
                Ok(n) => requests.feed(chunk.get(..n).unwrap_or(&[])),
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }

    /// Request records read (lines that were not JSON included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Lines read.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Lines that give no prompt, with the reason.
    pub fn problems(&self) -> &[RequestProblem] {
        &self.problems
    }

    /// What was left out of usable requests.
    pub fn notes(&self) -> &[RequestNote] {
        &self.notes
    }

    /// Every record was a Batch input line: the join is by `custom_id` only.
    fn is_batch_input(&self) -> bool {
        self.batch_lines > 0 && self.batch_lines == self.entries.len()
    }

    fn note(&mut self, what: &'static str, line: u64) {
        let note = match self.notes.iter().position(|note| note.what == what) {
            Some(idx) => &mut self.notes[idx],
            None => {
                self.notes.push(RequestNote {
                    what,
                    requests: 0,
                    lines: Vec::new(),
                });
                let last = self.notes.len() - 1;
                &mut self.notes[last]
            }
        };
        note.requests += 1;
        if note.lines.len() < NOTE_LINES {
            note.lines.push(line);
        }
    }

    fn add_record(&mut self, bytes: &[u8], line: u64) {
        let mut left_out = LeftOut::default();
        let (id, prompts) = match serde_json::from_slice::<Value>(bytes) {
            Err(error) => (None, Err(format!("not valid JSON: {error}"))),
            Ok(Value::Object(object)) => {
                let batch_body = object
                    .get("custom_id")
                    .zip(object.get("body"))
                    .and_then(|(_, body)| body.as_object());
                match batch_body {
                    Some(body) => {
                        self.batch_lines += 1;
                        match id_of(&object, &["custom_id"]) {
                            Some(id) => (Some(id), prompts_of_body(body, &mut left_out)),
                            None => (
                                None,
                                Err("`custom_id` must be a string or a number".to_owned()),
                            ),
                        }
                    }
                    None => (
                        id_of(&object, &["custom_id", "request_id", "rid", "id"]),
                        prompts_of_body(&object, &mut left_out),
                    ),
                }
            }
            Ok(other) => (
                None,
                Err(format!(
                    "expected a JSON object, found {}",
                    value_kind(&other)
                )),
            ),
        };
        if left_out.tool_turns {
            self.note(TOOL_TURNS_LEFT_OUT, line);
        }
        if left_out.non_text_parts {
            self.note(NON_TEXT_PARTS_LEFT_OUT, line);
        }
        if let Err(reason) = &prompts {
            self.problems.push(RequestProblem {
                line,
                reason: reason.clone(),
            });
        }
        let idx = self.entries.len();
        if let Some(id) = id {
            match self.by_id.get_mut(&id) {
                Some(slot) => {
                    let first = slot
                        .and_then(|first| self.entries.get(first))
                        .map_or(0, |entry| entry.line);
                    *slot = None;
                    self.problems.push(RequestProblem {
                        line,
                        reason: format!(
                            "id \"{id}\" is also on line {first}: responses with it get no prompt"
                        ),
                    });
                }
                None => {
                    self.by_id.insert(id, Some(idx));
                }
            }
        }
        self.entries.push(Entry { line, prompts });
    }
}

/// Reads a request file chunk by chunk (the CLI streams it, the app reads a Blob).
#[derive(Debug)]
pub struct RequestReader {
    splitter: RecordSplitter,
    requests: Requests,
}

impl Default for RequestReader {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestReader {
    pub fn new() -> Self {
        Self {
            splitter: RecordSplitter::new(DEFAULT_MAX_RECORD_BYTES),
            requests: Requests::default(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        let requests = &mut self.requests;
        self.splitter
            .feed(chunk, &mut |event| on_event(requests, event));
    }

    /// Ends the file.
    pub fn finish(mut self) -> Requests {
        let requests = &mut self.requests;
        self.splitter.finish(&mut |event| on_event(requests, event));
        requests.lines = self.splitter.lines_seen();
        if requests.entries.is_empty() && requests.problems.is_empty() {
            requests.problems.push(RequestProblem {
                line: 0,
                reason: "the request file is empty".to_owned(),
            });
        }
        self.requests
    }
}

fn on_event(requests: &mut Requests, event: SplitEvent<'_>) {
    match event {
        SplitEvent::Record(record) => requests.add_record(record.bytes, record.line),
        SplitEvent::Problem { line, reason } => {
            requests.problems.push(RequestProblem { line, reason });
        }
    }
}

/// What a request had that its prompt leaves out.
#[derive(Debug, Default)]
struct LeftOut {
    tool_turns: bool,
    non_text_parts: bool,
}

fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The first of `fields` that holds a string or a number.
fn id_of(object: &Map<String, Value>, fields: &[&str]) -> Option<String> {
    fields.iter().find_map(|field| match object.get(*field)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    })
}

/// The prompts of one request body.
///
/// Shapes, by source:
/// - chat: `messages: [{role, content: string | [{type: "text", text}, …] | null}]`
///   (openai 3.57.0 `types/chat/completion_create_params.py`; Ollama `api/types.go:133`
///   `ChatRequest`, `:197` `Message`, at commit fb30760);
/// - Responses API: `instructions` (a system message) and `input: string | [items]`, items
///   `{role, content}` or `{type: "message", role, content: [{type: "input_text", text}]}`
///   (openai 3.57.0 `types/responses/response_create_params.py:100,112`,
///   `easy_input_message_param.py:22,28`; llama.cpp `tools/server/server-chat.cpp:15-95`
///   makes the same messages of them);
/// - completions and llama.cpp `/completion`: `prompt: string | [string, …] | [token ids]
///   | {prompt_string}` (llama.cpp `tools/server/server-common.cpp:972-1028`: an array
///   without numbers is several prompts, one with numbers a single tokenised prompt);
/// - Ollama `/api/generate`: `prompt` and `system` (`api/types.go:62-87`).
fn prompts_of_body(
    body: &Map<String, Value>,
    left_out: &mut LeftOut,
) -> Result<Vec<Prompt>, String> {
    let mut system = Vec::new();
    // Ollama leaves `system` out of a `raw` prompt, which is sent as it is.
    let raw = body.get("raw").and_then(Value::as_bool) == Some(true);
    let system_fields: &[&str] = if raw {
        &["instructions"]
    } else {
        &["instructions", "system"]
    };
    for &field in system_fields {
        match body.get(field) {
            None | Some(Value::Null) => {}
            Some(value) => {
                let text = content_text(value, left_out)
                    .map_err(|reason| format!("`{field}`: {reason}"))?;
                if !text.is_empty() {
                    system.push(Message {
                        role: Role::System,
                        content: text,
                    });
                }
            }
        }
    }
    // Written before the prompt's own turns, as llama.cpp turns `instructions` into the
    // first system message (tools/server/server-chat.cpp:19-24).
    let with_system = |mut prompt: Prompt| {
        if !system.is_empty() {
            let mut messages = system.clone();
            messages.append(&mut prompt.messages);
            prompt.messages = messages;
            prompt.chat = true;
        }
        prompt
    };
    if let Some(messages) = body.get("messages") {
        let Value::Array(list) = messages else {
            return Err(format!(
                "`messages` must be an array, found {}",
                value_kind(messages)
            ));
        };
        let messages = messages_of(list, "messages", left_out)?;
        return Ok(vec![with_system(Prompt {
            messages,
            chat: true,
        })]);
    }
    if let Some(input) = body.get("input") {
        let messages = match input {
            Value::String(text) => vec![Message {
                role: Role::User,
                content: text.clone(),
            }],
            Value::Array(items) => messages_of(items, "input", left_out)?,
            other => {
                return Err(format!(
                    "`input` must be a string or an array, found {}",
                    value_kind(other)
                ));
            }
        };
        return Ok(vec![with_system(Prompt {
            messages,
            chat: true,
        })]);
    }
    if let Some(prompt) = body.get("prompt") {
        let texts = prompt_texts(prompt)?;
        return Ok(texts
            .iter()
            .map(|text| with_system(chat_template::parse(text)))
            .collect());
    }
    Err("no `messages`, `input` or `prompt` in the request".to_owned())
}

/// The prompt strings of a `prompt` field.
fn prompt_texts(prompt: &Value) -> Result<Vec<String>, String> {
    const TOKEN_IDS: &str =
        "`prompt` is token ids, which cannot be turned back into text without the tokenizer";
    let one = |value: &Value| -> Result<String, String> {
        match value {
            Value::String(text) => Ok(text.clone()),
            Value::Object(object) => match object.get("prompt_string") {
                Some(Value::String(text)) => Ok(text.clone()),
                _ => Err("a `prompt` object needs a `prompt_string`".to_owned()),
            },
            Value::Array(_) | Value::Number(_) => Err(TOKEN_IDS.to_owned()),
            other => Err(format!(
                "`prompt` must be a string or an array of strings, found {}",
                value_kind(other)
            )),
        }
    };
    match prompt {
        Value::Array(items) if items.is_empty() => Err("`prompt` is empty".to_owned()),
        Value::Array(items) if items.iter().any(Value::is_number) => Err(TOKEN_IDS.to_owned()),
        Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

/// The turns of a chat `messages` list or a Responses `input` item list.
fn messages_of(
    list: &[Value],
    field: &str,
    left_out: &mut LeftOut,
) -> Result<Vec<Message>, String> {
    let mut messages = Vec::new();
    for (idx, item) in list.iter().enumerate() {
        let Value::Object(item) = item else {
            return Err(format!(
                "`{field}[{idx}]` must be an object, found {}",
                value_kind(item)
            ));
        };
        // Responses items that are not messages: tool calls, their outputs, reasoning.
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        if kind != "message" {
            left_out.tool_turns = true;
            continue;
        }
        let role = match item.get("role").and_then(Value::as_str) {
            Some("system" | "developer") => Role::System,
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some("tool" | "function" | "ipython") => {
                left_out.tool_turns = true;
                continue;
            }
            Some(other) => return Err(format!("`{field}[{idx}].role` \"{other}\" is not known")),
            None => return Err(format!("`{field}[{idx}]` has no `role`")),
        };
        let content = match item.get("content") {
            None | Some(Value::Null) => String::new(),
            Some(value) => content_text(value, left_out)
                .map_err(|reason| format!("`{field}[{idx}].content`: {reason}"))?,
        };
        // An assistant turn that only called tools says nothing an SFT example can hold.
        if role == Role::Assistant && content.is_empty() && item.contains_key("tool_calls") {
            left_out.tool_turns = true;
            continue;
        }
        messages.push(Message { role, content });
    }
    Ok(messages)
}

/// A message content: a string, or a list of parts whose text parts are joined with a
/// newline, as vLLM joins them (vllm 0.33.0 `renderers/chat_utils/chat_message.py:161`).
fn content_text(value: &Value, left_out: &mut LeftOut) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Array(parts) => {
            let mut texts = Vec::new();
            for part in parts {
                match part {
                    Value::String(text) => texts.push(text.as_str()),
                    Value::Object(part) => {
                        let kind = part.get("type").and_then(Value::as_str);
                        match (kind, part.get("text")) {
                            (
                                Some("text" | "input_text" | "output_text") | None,
                                Some(Value::String(text)),
                            ) => texts.push(text),
                            _ => left_out.non_text_parts = true,
                        }
                    }
                    other => {
                        return Err(format!(
                            "a content part must be an object, found {}",
                            value_kind(other)
                        ));
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        other => Err(format!(
            "must be a string or a list of parts, found {}",
            value_kind(other)
        )),
    }
}

/// How traces find their requests in a run: decided once per run from the request file
/// and the traces' keys.
#[derive(Debug, Clone)]
pub struct RequestJoin {
    requests: Requests,
    by: JoinBy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum JoinBy {
    Id,
    Position,
    /// Neither works; the reason is every trace's.
    Nothing(String),
}

impl RequestJoin {
    /// By id when the file is an OpenAI Batch input or when some response's id names a
    /// request; else by position, when there is one request per response record. Mixing
    /// the two would give some traces another trace's prompt, so a run uses one.
    pub fn new(requests: Requests, set: &ScoredSet) -> RequestJoin {
        let responses = set.report.responses;
        let by = if requests.is_empty() {
            JoinBy::Nothing("the request file holds no request".to_owned())
        } else if requests.is_batch_input()
            || set.traces.iter().any(|trace| {
                request_id(set, trace).is_some_and(|id| requests.by_id.contains_key(id))
            })
        {
            JoinBy::Id
        } else if requests.len() as u64 == responses {
            JoinBy::Position
        } else {
            JoinBy::Nothing(format!(
                "the request file has {} requests and the trace files {responses} responses, \
                 and no response carries the id of a request: joining by position needs one \
                 request per response, in the same order",
                requests.len()
            ))
        };
        RequestJoin { requests, by }
    }

    /// How the join was made, for messages: `by id`, `by position` or why there is none.
    pub fn describe(&self) -> String {
        match &self.by {
            JoinBy::Id => "by id".to_owned(),
            JoinBy::Position => "by position (the n-th request for the n-th response)".to_owned(),
            JoinBy::Nothing(reason) => format!("not joined: {reason}"),
        }
    }

    pub fn requests(&self) -> &Requests {
        &self.requests
    }

    /// The prompt of a trace's request, or why it has none.
    pub fn prompt(&self, set: &ScoredSet, trace: &TraceScores) -> Result<&Prompt, String> {
        let key = &trace.request;
        let entry = match &self.by {
            JoinBy::Nothing(reason) => return Err(reason.clone()),
            JoinBy::Id => {
                let Some(id) = request_id(set, trace) else {
                    return Err("the response carries no request id".to_owned());
                };
                match self.requests.by_id.get(id) {
                    None => return Err(format!("no request has the id \"{id}\"")),
                    Some(None) => {
                        return Err(format!("several requests have the id \"{id}\""));
                    }
                    Some(Some(idx)) => self.requests.entries.get(*idx),
                }
            }
            JoinBy::Position => usize::try_from(key.ordinal)
                .ok()
                .and_then(|idx| self.requests.entries.get(idx)),
        };
        let entry = entry.ok_or_else(|| "no request for this response".to_owned())?;
        let prompts = entry.prompts.as_ref().map_err(|reason| {
            format!("its request (line {}) has no prompt: {reason}", entry.line)
        })?;
        let n_prompts = prompts.len().max(1);
        let traces = (key.traces_in_record as usize).max(1);
        // `n` traces per prompt, prompts in order (OpenAI and vLLM number the choices of
        // a multi-prompt completion this way; llama.cpp answers with one result each).
        let prompt_idx = match (n_prompts, traces % n_prompts) {
            (1, _) => Some(0),
            (_, 0) => Some(key.trace_in_record as usize / (traces / n_prompts)),
            _ => None,
        };
        prompt_idx.and_then(|idx| prompts.get(idx)).ok_or_else(|| {
            format!(
                "its request (line {}) has {} prompts and its response {traces} traces",
                entry.line,
                prompts.len()
            )
        })
    }
}

/// The id a trace's response gives its request, if any.
pub fn request_id<'a>(set: &'a ScoredSet, trace: &'a TraceScores) -> Option<&'a str> {
    match &trace.request.id {
        Some(id) => Some(id),
        None if trace.request.id_is_question_id => Some(set.question_id(trace)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Message {
        Message {
            role: Role::User,
            content: text.to_owned(),
        }
    }

    fn system(text: &str) -> Message {
        Message {
            role: Role::System,
            content: text.to_owned(),
        }
    }

    fn assistant(text: &str) -> Message {
        Message {
            role: Role::Assistant,
            content: text.to_owned(),
        }
    }

    fn chat(messages: Vec<Message>) -> Prompt {
        Prompt {
            messages,
            chat: true,
        }
    }

    fn prompts(requests: &Requests, idx: usize) -> Result<Vec<Prompt>, String> {
        requests.entries[idx].prompts.clone()
    }

    /// The Batch input line of the OpenAI docs' batch guide (`/v1/chat/completions`), with
    /// a multi-part user content as openai 3.57.0's `ChatCompletionContentPartTextParam`
    /// writes it, and a legacy completions line.
    #[test]
    fn batch_input_lines_by_custom_id() {
        let file = br#"{"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": [{"type": "text", "text": "Is 7 prime?"}, {"type": "image_url", "image_url": {"url": "data:"}}, {"type": "text", "text": "Answer yes or no."}]}], "logprobs": true}}
{"custom_id": "q2", "method": "POST", "url": "/v1/completions", "body": {"model": "gpt-3.5-turbo-instruct", "prompt": "Is 9 prime?", "logprobs": 5}}
"#;
        let requests = Requests::from_bytes(file);
        assert!(requests.is_batch_input());
        assert_eq!(requests.len(), 2);
        assert_eq!(requests.by_id.get("q2"), Some(&Some(1)));
        assert_eq!(
            prompts(&requests, 0).unwrap(),
            [chat(vec![
                system("You are a helpful assistant."),
                user("Is 7 prime?\nAnswer yes or no."),
            ])]
        );
        assert_eq!(
            prompts(&requests, 1).unwrap(),
            [Prompt::plain("Is 9 prime?")]
        );
        assert_eq!(requests.notes()[0].what, NON_TEXT_PARTS_LEFT_OUT);
        assert_eq!(requests.notes()[0].lines, [1]);
        assert!(requests.problems().is_empty());
    }

    #[test]
    fn request_bodies_of_every_kind() {
        let file = [
            // Responses API: instructions and input items (openai 3.57.0
            // response_create_params.py:100,112; easy_input_message_param.py).
            r#"{"model":"gpt-4.1","instructions":"Be brief.","input":[{"role":"developer","content":"Use one word."},{"type":"message","role":"user","content":[{"type":"input_text","text":"Is 7 prime?"}]},{"type":"function_call_output","call_id":"c","output":"x"}]}"#,
            // Responses API with a string input.
            r#"{"model":"gpt-4.1","input":"Is 11 prime?"}"#,
            // Ollama /api/generate with a system message (api/types.go:62-87).
            r#"{"model":"llama3.2","prompt":"Is 13 prime?","system":"Answer yes or no.","stream":false,"logprobs":true}"#,
            // Ollama /api/chat (api/types.go:133, 197), with an earlier exchange.
            r#"{"model":"llama3.2","messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"},{"role":"user","content":"Is 17 prime?"}]}"#,
            // llama.cpp /completion with a templated prompt (server-common.cpp:972-1028).
            r#"{"prompt":"<|im_start|>user\nIs 19 prime?<|im_end|>\n<|im_start|>assistant\n","n_predict":8,"n_probs":5}"#,
            // A multi-prompt completions request.
            r#"{"prompt":["Is 2 prime?","Is 4 prime?"],"n":2}"#,
            // Ollama /api/generate with `raw`: the prompt goes as it is, `system` unused.
            r#"{"model":"llama3.2","prompt":"<|start_header_id|>user<|end_header_id|>\n\nIs 23 prime?<|eot_id|>","system":"unused","raw":true}"#,
            // Chat with a tool exchange.
            r#"{"messages":[{"role":"user","content":"Weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"t"}]},{"role":"tool","tool_call_id":"t","content":"sunny"},{"role":"user","content":"So?"}]}"#,
        ]
        .join("\n");
        let requests = Requests::from_bytes(file.as_bytes());
        assert!(requests.problems().is_empty(), "{:?}", requests.problems());
        assert!(!requests.is_batch_input());
        assert_eq!(
            prompts(&requests, 0).unwrap(),
            [chat(vec![
                system("Be brief."),
                system("Use one word."),
                user("Is 7 prime?")
            ])]
        );
        assert_eq!(
            prompts(&requests, 1).unwrap(),
            [chat(vec![user("Is 11 prime?")])]
        );
        assert_eq!(
            prompts(&requests, 2).unwrap(),
            [chat(vec![
                system("Answer yes or no."),
                user("Is 13 prime?")
            ])]
        );
        assert_eq!(
            prompts(&requests, 3).unwrap(),
            [chat(vec![
                user("Hi"),
                assistant("Hello!"),
                user("Is 17 prime?")
            ])]
        );
        assert_eq!(
            prompts(&requests, 4).unwrap(),
            [chat(vec![user("Is 19 prime?")])]
        );
        assert_eq!(
            prompts(&requests, 5).unwrap(),
            [Prompt::plain("Is 2 prime?"), Prompt::plain("Is 4 prime?")]
        );
        assert_eq!(
            prompts(&requests, 6).unwrap(),
            [chat(vec![user("Is 23 prime?")])]
        );
        assert_eq!(
            prompts(&requests, 7).unwrap(),
            [chat(vec![user("Weather?"), user("So?")])]
        );
        let tools = &requests.notes()[0];
        assert_eq!(
            (tools.what, tools.lines.as_slice()),
            (TOOL_TURNS_LEFT_OUT, &[1, 8][..])
        );
    }

    #[test]
    fn ids_are_read_from_bodies() {
        let file = br#"{"id":"a","prompt":"x"}
{"request_id":"b","rid":"not this","prompt":"y"}
{"rid":7,"prompt":"z"}
{"prompt":"w"}
"#;
        let requests = Requests::from_bytes(file);
        let ids: Vec<_> = requests
            .by_id
            .iter()
            .map(|(id, idx)| (id.as_str(), *idx))
            .collect();
        let mut ids = ids;
        ids.sort();
        assert_eq!(ids, [("7", Some(2)), ("a", Some(0)), ("b", Some(1))]);
    }

    #[test]
    fn bad_lines_are_reported_with_line_numbers() {
        let file = br#"{"custom_id":"q1","body":{"messages":[{"role":"user","content":"Hi"}]}}
not json
[1,2]
{"custom_id":"q2","body":{"prompt":[101,2023,102]}}
{"custom_id":"q1","body":{"messages":"Hi"}}
{"custom_id":"q3","body":{"max_tokens":5}}
{"custom_id":"q4","body":{"messages":[{"role":"narrator","content":"x"}]}}
"#;
        let requests = Requests::from_bytes(file);
        let problems: Vec<(u64, &str)> = requests
            .problems()
            .iter()
            .map(|p| (p.line, p.reason.as_str()))
            .collect();
        assert_eq!(problems.len(), 7, "{problems:#?}");
        assert_eq!(problems[0].0, 2);
        assert!(problems[0].1.starts_with("not valid JSON"), "{problems:?}");
        assert_eq!(problems[1], (3, "expected a JSON object, found an array"));
        assert_eq!(
            problems[2],
            (
                4,
                "`prompt` is token ids, which cannot be turned back into text without the tokenizer"
            )
        );
        assert_eq!(
            problems[3],
            (5, "`messages` must be an array, found a string")
        );
        assert_eq!(
            problems[4],
            (
                5,
                "id \"q1\" is also on line 1: responses with it get no prompt"
            )
        );
        assert_eq!(
            problems[5],
            (6, "no `messages`, `input` or `prompt` in the request")
        );
        assert_eq!(
            problems[6],
            (7, "`messages[0].role` \"narrator\" is not known")
        );
        assert_eq!(requests.by_id.get("q1"), Some(&None));
        assert_eq!(requests.len(), 7);
    }

    #[test]
    fn an_empty_file_says_so() {
        let requests = Requests::from_bytes(b"\n\n");
        assert!(requests.is_empty());
        assert_eq!(requests.problems()[0].reason, "the request file is empty");
    }

    #[test]
    fn chunked_reading_equals_one_piece() {
        let file = br#"{"custom_id":"q1","body":{"messages":[{"role":"user","content":"Hi"}]}}
{"custom_id":"q2","body":{"prompt":"Yo"}}
"#;
        let mut reader = RequestReader::new();
        for chunk in file.chunks(7) {
            reader.feed(chunk);
        }
        let chunked = reader.finish();
        let whole = Requests::from_bytes(file);
        assert_eq!(chunked.len(), 2);
        assert_eq!(prompts(&chunked, 0), prompts(&whole, 0));
        assert_eq!(prompts(&chunked, 1), prompts(&whole, 1));
    }

    #[test]
    fn nothing_panics_on_odd_json() {
        for line in [
            r#"{"messages":[1]}"#,
            r#"{"messages":[{"role":"user","content":[1]}]}"#,
            r#"{"messages":[{"content":"x"}]}"#,
            r#"{"input":5}"#,
            r#"{"prompt":[]}"#,
            r#"{"prompt":{"x":1}}"#,
            r#"{"prompt":null}"#,
            r#"{"system":5,"prompt":"x"}"#,
            r#"{"custom_id":{"a":1},"body":{"prompt":"x"}}"#,
            "",
            "{",
        ] {
            let requests = Requests::from_bytes(line.as_bytes());
            assert!(!requests.problems().is_empty(), "{line}");
        }
    }
}
