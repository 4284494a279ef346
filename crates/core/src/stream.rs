//! Stream assembly: the chunks a server sends with `"stream": true` (OpenAI chat and legacy
//! completion chunks, llama.cpp `/completion` pieces with `"stop": false`, Ollama NDJSON with
//! `"done": false`), saved as JSONL or as raw server-sent events, are put back together into
//! whole generations before they reach an importer.
//!
//! Each chunk is keyed by generation (OpenAI: response `id` and choice `index`; llama.cpp:
//! the prompt `index`; Ollama: one at a time). A generation is finished by its last chunk
//! (`finish_reason`, `"stop": true`, `"done": true`) and then rendered as the provider's own
//! non-stream response, so the importers read it like any other record. Memory holds only
//! the generations still open. A generation's [`RecordRef`](crate::trace::RecordRef) spans
//! its chunks, from the first byte of its first chunk to the last byte of its last; exports
//! read that span again and [`reassemble`] it.

use jiter::{Jiter, Peek};

use crate::import::Format;
use crate::json::{self, Ctx, RecordError, RecordResult};
use crate::split::{Framing, RecordSplitter, SplitEvent};

/// The report's note for assembled streams.
pub const ASSEMBLED: &str = "stream chunks assembled into whole generations (count: chunk \
     records; records: generations; lines: where each generation starts)";

/// Whether chunks of `format` can be assembled here.
pub fn has_streams(format: Format) -> bool {
    matches!(
        format,
        Format::Openai
            | Format::Completions
            | Format::Llamacpp
            | Format::Ollama
            | Format::OpenaiResponses
            | Format::Tgi
            | Format::Sglang
    )
}

/// A Responses API stream event (`{"type": "response.…", "sequence_number": n, …}`). The
/// terminal events (`response.completed`, `response.incomplete`, `response.failed`) carry the
/// whole response, which is the generation; the others only repeat pieces of it.
#[derive(Debug, Default)]
struct ResponsesEvent {
    /// The response's id (from `response.id`), for matching `created` with its end.
    id: String,
    created: bool,
    /// Where the whole `response` object of a terminal event sits in the record.
    terminal: Option<(usize, usize)>,
}

/// Reads `record` as a Responses stream event; None when it is not one.
fn read_responses_event(record: &[u8]) -> RecordResult<Option<ResponsesEvent>> {
    let mut jiter = json::reader(record);
    if jiter.peek().ctx("(record)")? != Peek::Object {
        return Ok(None);
    }
    let mut event = ResponsesEvent::default();
    let mut kind: Option<String> = None;
    let mut sequenced = false;
    let mut response_span = None;
    json::for_each_member(&mut jiter, "(record)", |jiter, key| {
        match key {
            "type" => kind = json::next_opt_string(jiter, key)?,
            "sequence_number" => {
                sequenced = true;
                jiter.next_skip().ctx(key)?;
            }
            "response" => {
                jiter.peek().ctx(key)?;
                let start = jiter.current_index();
                json::for_each_member(jiter, key, |jiter, key| {
                    match key {
                        "id" => event.id = json::next_id(jiter, "response.id")?.unwrap_or_default(),
                        _ => jiter.next_skip().ctx(key)?,
                    }
                    Ok(())
                })?;
                response_span = Some((start, jiter.current_index()));
            }
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })?;
    let Some(kind) = kind.filter(|kind| sequenced && kind.starts_with("response.")) else {
        return Ok(None);
    };
    event.created = kind == "response.created";
    let terminal = [
        "response.completed",
        "response.incomplete",
        "response.failed",
    ];
    if terminal.contains(&kind.as_str()) {
        event.terminal = response_span;
    }
    Ok(Some(event))
}

/// One generation's share of a chunk.
#[derive(Debug, Default)]
struct Piece {
    id: String,
    index: u64,
    /// Text pieces: the answer, then reasoning/thinking.
    content: Option<String>,
    reasoning: Option<String>,
    /// Each per-token array's elements, raw and comma-separated, by the array's name in the
    /// whole response.
    arrays: Vec<(&'static str, Vec<u8>)>,
    /// Raw `finish_reason` (OpenAI) when the chunk finishes the generation.
    finish_reason: Option<Vec<u8>>,
    /// This chunk is the generation's last.
    closes: bool,
    /// `finish_reason` is present and null (a legacy completion chunk says so explicitly).
    open_ended: bool,
    /// The chunk holds the whole generation so far (SGLang's cumulative chunks, and the
    /// first of an incremental stream): it replaces what was gathered instead of adding.
    replaces: bool,
}

/// A record read as a stream chunk: its pieces and its other top-level members.
#[derive(Debug, Default)]
struct Chunk<'a> {
    members: Vec<(String, &'a [u8])>,
    pieces: Vec<Piece>,
    /// The record finishes an open generation only if one is open (llama.cpp's and Ollama's
    /// last chunk looks like a whole response).
    closes_only_if_open: bool,
}

/// Reads `record` as a chunk of `format`; None when it is a whole response.
fn read_chunk(format: Format, record: &[u8]) -> RecordResult<Option<Chunk<'_>>> {
    // A chunk is an object; an array (llama.cpp's or SGLang's answer to several prompts)
    // or anything else is a whole response for the importer to judge.
    if record.trim_ascii_start().first() != Some(&b'{') {
        return Ok(None);
    }
    match format {
        Format::Openai | Format::Completions => read_openai_chunk(record),
        Format::Llamacpp => read_flat_chunk(record, FlatShape::LLAMACPP),
        Format::Ollama => read_flat_chunk(record, FlatShape::OLLAMA),
        Format::Tgi => read_tgi_chunk(record),
        Format::Sglang => read_sglang_chunk(record),
        _ => Ok(None),
    }
}

/// The raw bytes of the whole value at the reader's position, skipped.
fn raw_value(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<Vec<u8>> {
    jiter.peek().ctx(field)?;
    let start = jiter.current_index();
    jiter.next_skip().ctx(field)?;
    Ok(jiter.slice_to_current(start).to_vec())
}

/// A TGI `/generate_stream` event: `{index, token, top_tokens, generated_text, details}`,
/// one token each; the last has the whole `generated_text` and `details` (router
/// `StreamResponse`). `index` counts tokens, so one stream is open at a time.
fn read_tgi_chunk(record: &[u8]) -> RecordResult<Option<Chunk<'_>>> {
    let members = json::raw_members(record)?;
    let mut piece = Piece::default();
    let mut is_event = false;
    for (name, value) in &members {
        let mut jiter = json::reader(value);
        match name.as_str() {
            "token" => {
                is_event = true;
                piece.arrays.push(("tokens", raw_value(&mut jiter, name)?));
            }
            // One position's list is one element of the whole response's `top_tokens`;
            // an empty one (no `top_n_tokens`) adds nothing.
            "top_tokens" if *value != b"[]".as_slice() => {
                piece
                    .arrays
                    .push(("top_tokens", raw_value(&mut jiter, name)?));
            }
            "generated_text" => {
                if let Some(text) = json::next_opt_string(&mut jiter, name)? {
                    piece.content = Some(text);
                    piece.closes = true;
                }
            }
            _ => {}
        }
    }
    if !is_event {
        return Ok(None);
    }
    Ok(Some(Chunk {
        members,
        pieces: vec![piece],
        closes_only_if_open: false,
    }))
}

/// An SGLang `/generate` stream chunk: `meta_info.finish_reason` null until the last. With
/// `incremental_streaming_output` a chunk holds only its new tokens (fewer than
/// `output_token_logprobs_length`, which counts them all); otherwise each holds the whole
/// generation so far, and so does the first chunk of an incremental stream.
fn read_sglang_chunk(record: &[u8]) -> RecordResult<Option<Chunk<'_>>> {
    let members = json::raw_members(record)?;
    let mut piece = Piece::default();
    let mut finish: Option<bool> = None;
    let mut entries: Option<u64> = None;
    let mut length: Option<u64> = None;
    for (name, value) in &members {
        let mut jiter = json::reader(value);
        match name.as_str() {
            "text" => piece.content = json::next_opt_string(&mut jiter, name)?,
            "meta_info" => {
                json::for_each_member(&mut jiter, name, |jiter, key| {
                    match key {
                        "id" => piece.id = json::next_id(jiter, key)?.unwrap_or_default(),
                        "finish_reason" => {
                            finish = Some(jiter.peek().ctx(key)? != Peek::Null);
                            jiter.next_skip().ctx(key)?;
                        }
                        "output_token_logprobs" | "output_top_logprobs" => {
                            let (joined, count) = raw_elements_counted(jiter, key)?;
                            if key == "output_token_logprobs" {
                                entries = Some(count);
                            }
                            let name = if key == "output_token_logprobs" {
                                "output_token_logprobs"
                            } else {
                                "output_top_logprobs"
                            };
                            piece.arrays.push((name, joined));
                        }
                        "output_token_logprobs_length" => {
                            length = json::next_id(jiter, key)?.and_then(|n| n.parse().ok());
                        }
                        _ => jiter.next_skip().ctx(key)?,
                    }
                    Ok(())
                })?;
            }
            _ => {}
        }
    }
    let Some(finished) = finish else {
        return Ok(None);
    };
    piece.closes = finished;
    piece.replaces = match (entries, length) {
        (Some(entries), Some(length)) => entries >= length,
        _ => true,
    };
    Ok(Some(Chunk {
        members,
        pieces: vec![piece],
        closes_only_if_open: finished,
    }))
}

/// OpenAI `chat.completion.chunk` (`choices[].delta`, `choices[].logprobs.content[]`) and
/// streamed legacy completions (`text_completion` whose choices all say `"finish_reason":
/// null`, or that finish an open generation).
fn read_openai_chunk(record: &[u8]) -> RecordResult<Option<Chunk<'_>>> {
    let members = json::raw_members(record)?;
    let is_chat_chunk = members
        .iter()
        .any(|(name, value)| name == "object" && *value == b"\"chat.completion.chunk\"".as_slice());
    let mut id = String::new();
    let mut choices: Option<&[u8]> = None;
    for (name, value) in &members {
        match name.as_str() {
            "id" => id = json::next_id(&mut json::reader(value), "id")?.unwrap_or_default(),
            "choices" => choices = Some(value),
            _ => {}
        }
    }
    let mut chunk = Chunk::default();
    let mut any_delta = false;
    let mut all_open_ended = true;
    if let Some(choices) = choices {
        let mut jiter = json::reader(choices);
        json::for_each_element(&mut jiter, "choices", |jiter, _| {
            let piece = read_openai_choice(jiter, &id, &mut any_delta)?;
            all_open_ended &= piece.open_ended;
            chunk.pieces.push(piece);
            Ok(())
        })?;
    }
    if is_chat_chunk || any_delta {
        chunk.members = members;
        return Ok(Some(chunk));
    }
    // A legacy completion: a chunk while unfinished, or the last chunk of an open one.
    if chunk.pieces.is_empty() {
        return Ok(None);
    }
    chunk.members = members;
    chunk.closes_only_if_open = !all_open_ended;
    Ok(Some(chunk))
}

/// One element of `choices` of a chunk.
fn read_openai_choice(
    jiter: &mut Jiter<'_>,
    id: &str,
    any_delta: &mut bool,
) -> RecordResult<Piece> {
    let mut piece = Piece {
        id: id.to_owned(),
        ..Piece::default()
    };
    json::for_each_member(jiter, "choices[]", |jiter, key| {
        match key {
            "index" => {
                let value = json::next_id(jiter, "choices[].index")?;
                piece.index = value.and_then(|v| v.parse().ok()).unwrap_or(0);
            }
            "delta" => {
                *any_delta = true;
                read_delta(jiter, &mut piece)?;
            }
            "text" => piece.content = json::next_opt_string(jiter, "choices[].text")?,
            "logprobs" => read_chunk_logprobs(jiter, &mut piece)?,
            "finish_reason" => {
                jiter.peek().ctx(key)?;
                let start = jiter.current_index();
                jiter.next_skip().ctx(key)?;
                let raw = jiter.slice_to_current(start);
                if raw == b"null" {
                    piece.open_ended = true;
                } else {
                    piece.finish_reason = Some(raw.to_vec());
                    piece.closes = true;
                }
            }
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })?;
    Ok(piece)
}

/// `delta: {role, content, reasoning_content | reasoning}`.
fn read_delta(jiter: &mut Jiter<'_>, piece: &mut Piece) -> RecordResult<()> {
    if jiter.peek().ctx("delta")? == Peek::Null {
        return jiter.known_null().ctx("delta");
    }
    json::for_each_member(jiter, "delta", |jiter, key| {
        match key {
            "content" => piece.content = json::next_opt_string(jiter, "delta.content")?,
            "reasoning_content" | "reasoning" => {
                piece.reasoning = json::next_opt_string(jiter, "delta.reasoning_content")?;
            }
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })
}

/// A chunk's `logprobs`: chat `{content: […]}` (also `refusal`), or legacy `{tokens,
/// token_logprobs, top_logprobs, text_offset}`; each array's elements are kept raw.
fn read_chunk_logprobs(jiter: &mut Jiter<'_>, piece: &mut Piece) -> RecordResult<()> {
    if jiter.peek().ctx("logprobs")? == Peek::Null {
        return jiter.known_null().ctx("logprobs");
    }
    json::for_each_member(jiter, "logprobs", |jiter, key| {
        let name = match key {
            "content" => "content",
            "tokens" => "tokens",
            "token_logprobs" => "token_logprobs",
            "top_logprobs" => "top_logprobs",
            "text_offset" => "text_offset",
            _ => return jiter.next_skip().ctx(key),
        };
        let elements = raw_elements(jiter, key)?;
        piece.arrays.push((name, elements));
        Ok(())
    })
}

/// The elements of the array at the reader's position, raw and comma-separated (`null`:
/// none).
fn raw_elements(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<Vec<u8>> {
    raw_elements_counted(jiter, field).map(|(elements, _)| elements)
}

/// [`raw_elements`] and how many there were.
fn raw_elements_counted(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<(Vec<u8>, u64)> {
    let mut elements = Vec::new();
    let mut count = 0;
    match jiter.peek().ctx(field)? {
        Peek::Null => jiter.known_null().ctx(field)?,
        Peek::Array => {
            let mut element = jiter.known_array().ctx(field)?;
            while let Some(peek) = element {
                let start = jiter.current_index();
                jiter.known_skip(peek).ctx(field)?;
                if !elements.is_empty() {
                    elements.push(b',');
                }
                elements.extend_from_slice(jiter.slice_to_current(start));
                count += 1;
                element = jiter.array_step().ctx(field)?;
            }
        }
        other => {
            return Err(json::wrong_type(
                field,
                "an array",
                other,
                jiter.current_index(),
            ));
        }
    }
    Ok((elements, count))
}

/// The shape of a one-generation-per-record stream (llama.cpp, Ollama).
#[derive(Debug, Clone, Copy)]
struct FlatShape {
    /// The boolean that is false on every chunk but the last.
    more_flag: (&'static str, bool),
    /// String members whose pieces are concatenated (top level, or inside `message`).
    text_members: &'static [&'static str],
    /// Per-token arrays whose elements are concatenated.
    array_members: &'static [&'static str],
}

impl FlatShape {
    /// llama.cpp `/completion`: `{index, content, tokens, stop: false,
    /// completion_probabilities: […]}` per piece, `stop: true` on the last.
    const LLAMACPP: FlatShape = FlatShape {
        more_flag: ("stop", false),
        text_members: &["content"],
        array_members: &["completion_probabilities", "tokens"],
    };
    /// Ollama `/api/generate` (`response`, `thinking`) and `/api/chat` (`message: {content,
    /// thinking}`) with `done: false` on every chunk but the last.
    const OLLAMA: FlatShape = FlatShape {
        more_flag: ("done", false),
        text_members: &["response", "thinking", "message"],
        array_members: &["logprobs"],
    };
}

/// A llama.cpp or Ollama chunk. Both kinds of record, the chunk and the last one, carry
/// their pieces; the last one only closes a generation that is open.
fn read_flat_chunk(record: &[u8], shape: FlatShape) -> RecordResult<Option<Chunk<'_>>> {
    let members = json::raw_members(record)?;
    let (flag_name, more_value) = shape.more_flag;
    let mut flag = None;
    let mut piece = Piece::default();
    for (name, value) in &members {
        let mut jiter = json::reader(value);
        if name == flag_name {
            flag = json::next_opt_bool(&mut jiter, name)?;
        } else if name == "index" {
            piece.index = json::next_id(&mut jiter, name)?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        } else if name == "message" {
            // Ollama chat: `message: {role, content, thinking}`.
            if jiter.peek().ctx(name)? == Peek::Object {
                json::for_each_member(&mut jiter, "message", |jiter, key| {
                    match key {
                        "content" => piece.content = json::next_opt_string(jiter, key)?,
                        "thinking" => piece.reasoning = json::next_opt_string(jiter, key)?,
                        _ => jiter.next_skip().ctx(key)?,
                    }
                    Ok(())
                })?;
            }
        } else if shape.text_members.contains(&name.as_str()) {
            let text = json::next_opt_string(&mut jiter, name)?;
            if name == "thinking" {
                piece.reasoning = text;
            } else {
                piece.content = text;
            }
        } else if let Some(array) = shape.array_members.iter().find(|a| **a == name) {
            piece.arrays.push((array, raw_elements(&mut jiter, name)?));
        }
    }
    let Some(flag) = flag else {
        return Ok(None);
    };
    // llama.cpp's `prompt_progress` chunks (`return_progress`) report prompt processing:
    // their `tokens` entry is not a generated token.
    if members.iter().any(|(name, _)| name == "prompt_progress") {
        piece.arrays.clear();
        piece.content = None;
    }
    let closes = flag != more_value;
    piece.closes = closes;
    Ok(Some(Chunk {
        members,
        pieces: vec![piece],
        closes_only_if_open: closes,
    }))
}

/// A generation being put together.
#[derive(Debug)]
struct Generation {
    id: String,
    index: u64,
    /// Which stream of the file it belongs to (see [`StreamAssembler::streams_started`]).
    stream: u64,
    first_offset: u64,
    first_line: u64,
    end: u64,
    sub_idx: u32,
    chunks: u64,
    /// Top-level members of the first chunk (OpenAI) or of the last (llama.cpp, Ollama).
    members: Vec<(String, Vec<u8>)>,
    content: String,
    reasoning: String,
    /// Is this an Ollama `/api/chat` (text under `message`) generation?
    chat_message: bool,
    arrays: Vec<(&'static str, Vec<u8>)>,
    finish_reason: Option<Vec<u8>>,
}

impl Generation {
    fn add(&mut self, piece: &Piece) {
        if piece.replaces {
            self.content.clear();
            self.reasoning.clear();
            self.arrays.clear();
        }
        if let Some(content) = &piece.content {
            self.content.push_str(content);
        }
        if let Some(reasoning) = &piece.reasoning {
            self.reasoning.push_str(reasoning);
        }
        for (name, elements) in &piece.arrays {
            let joined = match self.arrays.iter_mut().find(|(n, _)| n == name) {
                Some((_, joined)) => joined,
                None => {
                    self.arrays.push((name, Vec::new()));
                    let last = self.arrays.len() - 1;
                    &mut self.arrays[last].1
                }
            };
            if !joined.is_empty() && !elements.is_empty() {
                joined.push(b',');
            }
            joined.extend_from_slice(elements);
        }
        if let Some(finish_reason) = &piece.finish_reason {
            self.finish_reason = Some(finish_reason.clone());
        }
    }

    fn array(&self, name: &str) -> Option<&[u8]> {
        self.arrays
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, joined)| joined.as_slice())
    }

    /// The generation as the provider's own whole response, for the importer.
    fn render(&self, format: Format) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.content.len() + 256);
        out.push(b'{');
        let skip: &[&str] = match format {
            Format::Openai | Format::Completions => &["choices", "object"],
            Format::Llamacpp => &["content", "completion_probabilities", "tokens", "stop"],
            Format::Tgi => &["index", "token", "top_tokens", "generated_text", "details"],
            Format::Sglang => &["text", "meta_info"],
            _ => &["response", "thinking", "message", "logprobs", "done"],
        };
        for (name, value) in &self.members {
            if skip.contains(&name.as_str()) {
                continue;
            }
            push_member(&mut out, name, value);
        }
        let text = json_string(&self.content);
        match format {
            Format::Openai => {
                push_member(&mut out, "object", b"\"chat.completion\"");
                let mut choice = format!(
                    "{{\"index\":{},\"message\":{{\"role\":\"assistant\",\"content\":{text}",
                    self.index
                )
                .into_bytes();
                if !self.reasoning.is_empty() {
                    choice.extend_from_slice(b",\"reasoning_content\":");
                    choice.extend_from_slice(json_string(&self.reasoning).as_bytes());
                }
                choice.extend_from_slice(b"},\"logprobs\":");
                match self.array("content") {
                    Some(content) => {
                        choice.extend_from_slice(b"{\"content\":[");
                        choice.extend_from_slice(content);
                        choice.extend_from_slice(b"]}");
                    }
                    None => choice.extend_from_slice(b"null"),
                }
                self.push_finish_reason(&mut choice);
                push_choices(&mut out, &choice);
            }
            Format::Completions => {
                push_member(&mut out, "object", b"\"text_completion\"");
                let mut choice =
                    format!("{{\"index\":{},\"text\":{text},\"logprobs\":", self.index)
                        .into_bytes();
                if self.arrays.is_empty() {
                    choice.extend_from_slice(b"null");
                } else {
                    choice.push(b'{');
                    for (idx, (name, joined)) in self.arrays.iter().enumerate() {
                        if idx > 0 {
                            choice.push(b',');
                        }
                        choice.extend_from_slice(format!("\"{name}\":[").as_bytes());
                        choice.extend_from_slice(joined);
                        choice.push(b']');
                    }
                    choice.push(b'}');
                }
                self.push_finish_reason(&mut choice);
                push_choices(&mut out, &choice);
            }
            Format::Llamacpp => {
                push_member(&mut out, "content", text.as_bytes());
                for (name, joined) in &self.arrays {
                    push_array(&mut out, name, joined);
                }
                push_member(&mut out, "stop", b"true");
            }
            Format::Tgi => {
                push_member(&mut out, "generated_text", text.as_bytes());
                // The last event's `details` (finish_reason, generated_tokens, seed) with
                // the tokens and top lists of every event.
                let mut details = b"{".to_vec();
                if let Some(last) = self.member("details") {
                    for (name, value) in json::raw_members(last).unwrap_or_default() {
                        if name != "tokens" && name != "top_tokens" {
                            push_member(&mut details, &name, value);
                        }
                    }
                }
                for (name, joined) in &self.arrays {
                    push_array(&mut details, name, joined);
                }
                details.push(b'}');
                push_member(&mut out, "details", &details);
            }
            Format::Sglang => {
                push_member(&mut out, "text", text.as_bytes());
                // The last chunk's `meta_info` (id, finish_reason, lengths, …) with the
                // log-probs of every chunk.
                let mut meta = b"{".to_vec();
                if let Some(last) = self.member("meta_info") {
                    for (name, value) in json::raw_members(last).unwrap_or_default() {
                        if !self.arrays.iter().any(|(array, _)| *array == name) {
                            push_member(&mut meta, &name, value);
                        }
                    }
                }
                for (name, joined) in &self.arrays {
                    push_array(&mut meta, name, joined);
                }
                meta.push(b'}');
                push_member(&mut out, "meta_info", &meta);
            }
            _ => {
                if self.chat_message {
                    let mut message =
                        format!("{{\"role\":\"assistant\",\"content\":{text}").into_bytes();
                    if !self.reasoning.is_empty() {
                        message.extend_from_slice(b",\"thinking\":");
                        message.extend_from_slice(json_string(&self.reasoning).as_bytes());
                    }
                    message.push(b'}');
                    push_member(&mut out, "message", &message);
                } else {
                    push_member(&mut out, "response", text.as_bytes());
                    if !self.reasoning.is_empty() {
                        push_member(
                            &mut out,
                            "thinking",
                            json_string(&self.reasoning).as_bytes(),
                        );
                    }
                }
                for (name, joined) in &self.arrays {
                    push_array(&mut out, name, joined);
                }
                push_member(&mut out, "done", b"true");
            }
        }
        out.push(b'}');
        out
    }

    /// The raw value of a top-level member of the kept chunk.
    fn member(&self, name: &str) -> Option<&[u8]> {
        self.members
            .iter()
            .find(|(member, _)| member == name)
            .map(|(_, value)| value.as_slice())
    }

    fn push_finish_reason(&self, choice: &mut Vec<u8>) {
        choice.extend_from_slice(b",\"finish_reason\":");
        choice.extend_from_slice(self.finish_reason.as_deref().unwrap_or(b"null"));
        choice.push(b'}');
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

fn push_member(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    if out.len() > 1 {
        out.push(b',');
    }
    out.extend_from_slice(json_string(name).as_bytes());
    out.push(b':');
    out.extend_from_slice(value);
}

fn push_array(out: &mut Vec<u8>, name: &str, joined: &[u8]) {
    let mut value = Vec::with_capacity(joined.len() + 2);
    value.push(b'[');
    value.extend_from_slice(joined);
    value.push(b']');
    push_member(out, name, &value);
}

fn push_choices(out: &mut Vec<u8>, choice: &[u8]) {
    let mut value = Vec::with_capacity(choice.len() + 2);
    value.push(b'[');
    value.extend_from_slice(choice);
    value.push(b']');
    push_member(out, "choices", &value);
}

/// A finished generation, rendered as a whole response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    /// The provider's non-stream response for this generation (one trace).
    pub record: Vec<u8>,
    /// First byte of its first chunk, and the length of the span up to the end of its last.
    pub offset: u64,
    pub len: u64,
    /// Line of its first chunk.
    pub line: u64,
    /// Which of the generations in its first chunk it is (see [`reassemble`]).
    pub sub_idx: u32,
    /// How many chunks it was made of.
    pub chunks: u64,
    /// Which stream of the file it belongs to, counted from 0 in the order streams start
    /// (the choices of one OpenAI stream share it: they answer one request).
    pub stream: u64,
}

/// What became of a record fed to the assembler.
#[derive(Debug)]
pub enum Fed {
    /// Not a stream chunk: import it as it is.
    Whole,
    /// A chunk; these generations were finished by it.
    Chunk(Vec<Assembled>),
}

/// A generation the stream never finished, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    pub line: u64,
    pub chunks: u64,
}

/// Puts chunks back into generations; one per input file.
#[derive(Debug, Default)]
pub struct StreamAssembler {
    open: Vec<Generation>,
    /// OpenAI generations already finished (id, choice index): a later chunk of one is an
    /// error, not a new generation.
    finished: std::collections::HashSet<(String, u64)>,
    /// Responses API streams created and not ended yet: (response id, line, events, stream).
    open_responses: Vec<(String, u64, u64, u64)>,
    /// Streams started so far, and the stream of each OpenAI id.
    streams: u64,
    stream_of_id: std::collections::HashMap<String, u64>,
}

impl StreamAssembler {
    /// Feeds one record of `format` (at `offset`, `line`); whole responses pass through.
    pub fn feed(
        &mut self,
        format: Format,
        record: &[u8],
        offset: u64,
        line: u64,
    ) -> RecordResult<Fed> {
        if format == Format::OpenaiResponses {
            return self.feed_responses_event(record, offset, line);
        }
        let Some(chunk) = read_chunk(format, record)? else {
            return Ok(Fed::Whole);
        };
        // OpenAI chunks are keyed by id and choice, keep the first chunk's members and
        // never reopen a finished generation; SGLang's by id, keeping the last chunk's
        // members; llama.cpp, Ollama and TGI streams carry no id.
        let keyed = matches!(format, Format::Openai | Format::Completions);
        let by_id = keyed || format == Format::Sglang;
        if chunk.closes_only_if_open {
            let any_open = chunk
                .pieces
                .iter()
                .any(|piece| self.position(&piece.id, piece.index).is_some());
            if !any_open {
                return Ok(Fed::Whole);
            }
        }
        let end = offset + record.len() as u64;
        let mut done = Vec::new();
        for (position, piece) in chunk.pieces.iter().enumerate() {
            let idx = match self.position(&piece.id, piece.index) {
                Some(idx) => idx,
                None => {
                    if keyed && self.finished.contains(&(piece.id.clone(), piece.index)) {
                        return Err(RecordError::new(
                            format!(
                                "stream chunk of `{}` choice {} after that generation finished",
                                piece.id, piece.index
                            ),
                            0,
                        ));
                    }
                    let stream = if by_id {
                        match self.stream_of_id.get(&piece.id) {
                            Some(&stream) => stream,
                            None => {
                                self.stream_of_id.insert(piece.id.clone(), self.streams);
                                self.next_stream()
                            }
                        }
                    } else {
                        self.next_stream()
                    };
                    self.open.push(Generation {
                        id: piece.id.clone(),
                        index: piece.index,
                        stream,
                        first_offset: offset,
                        first_line: line,
                        end,
                        sub_idx: u32::try_from(position).unwrap_or(u32::MAX),
                        chunks: 0,
                        members: Vec::new(),
                        content: String::new(),
                        reasoning: String::new(),
                        chat_message: false,
                        arrays: Vec::new(),
                        finish_reason: None,
                    });
                    self.open.len() - 1
                }
            };
            let generation = &mut self.open[idx];
            generation.chunks += 1;
            generation.end = end;
            // OpenAI keeps the first chunk's members (id, model, created, user fields) and
            // adds those only later chunks have (`usage`, which tells an echoed prompt from
            // the completion); llama.cpp and Ollama keep the last one's (totals, timings,
            // done_reason).
            if generation.members.is_empty() || !keyed {
                generation.members = chunk
                    .members
                    .iter()
                    .map(|(name, value)| (name.clone(), value.to_vec()))
                    .collect();
                generation.chat_message |= chunk.members.iter().any(|(n, _)| n == "message");
            } else {
                for (name, value) in &chunk.members {
                    if !generation.members.iter().any(|(known, _)| known == name) {
                        generation.members.push((name.clone(), value.to_vec()));
                    }
                }
            }
            generation.add(piece);
            if piece.closes {
                let generation = self.open.swap_remove(idx);
                if keyed {
                    self.finished
                        .insert((generation.id.clone(), generation.index));
                }
                done.push(Assembled {
                    record: generation.render(format),
                    offset: generation.first_offset,
                    len: generation.end - generation.first_offset,
                    line: generation.first_line,
                    sub_idx: generation.sub_idx,
                    chunks: generation.chunks,
                    stream: generation.stream,
                });
            }
        }
        // Generations finished by one chunk are handed out in their order in it.
        done.sort_by_key(|assembled| assembled.sub_idx);
        Ok(Fed::Chunk(done))
    }

    /// A Responses API event: the terminal one hands out its whole `response` (its
    /// record points at that object, so exports read it like any response).
    fn feed_responses_event(&mut self, record: &[u8], offset: u64, line: u64) -> RecordResult<Fed> {
        let Some(event) = read_responses_event(record)? else {
            return Ok(Fed::Whole);
        };
        // Events between `created` and the end name an item, not the response: they count
        // towards the latest open one.
        let open = if event.id.is_empty() {
            self.open_responses.len().checked_sub(1)
        } else {
            self.open_responses
                .iter()
                .position(|(id, _, _, _)| *id == event.id)
        };
        if let Some(idx) = open {
            self.open_responses[idx].2 += 1;
        } else if event.created {
            let stream = self.next_stream();
            self.open_responses
                .push((event.id.clone(), line, 1, stream));
        }
        let Some((start, end)) = event.terminal else {
            return Ok(Fed::Chunk(Vec::new()));
        };
        let (first_line, events, stream) = match open {
            Some(idx) => {
                let (_, first_line, events, stream) = self.open_responses.swap_remove(idx);
                (first_line, events, stream)
            }
            None => (line, 1, self.next_stream()),
        };
        let response = record.get(start..end).unwrap_or(&[]);
        Ok(Fed::Chunk(vec![Assembled {
            record: response.to_vec(),
            offset: offset + start as u64,
            len: response.len() as u64,
            line: first_line.min(line),
            sub_idx: 0,
            chunks: events,
            stream,
        }]))
    }

    fn next_stream(&mut self) -> u64 {
        self.streams += 1;
        self.streams - 1
    }

    /// How many streams have started so far: each answers one request, whether or not it
    /// finishes, so a request file joined by position counts them as responses.
    pub fn streams_started(&self) -> u64 {
        self.streams
    }

    fn position(&self, id: &str, index: u64) -> Option<usize> {
        self.open
            .iter()
            .position(|generation| generation.index == index && generation.id == id)
    }

    /// Ends the input: generations still open were cut off before their last chunk.
    pub fn finish(&mut self) -> Vec<Unfinished> {
        let mut unfinished: Vec<Unfinished> = self
            .open
            .drain(..)
            .map(|generation| Unfinished {
                line: generation.first_line,
                chunks: generation.chunks,
            })
            .collect();
        unfinished.extend(
            self.open_responses
                .drain(..)
                .map(|(_, line, chunks, _)| Unfinished { line, chunks }),
        );
        unfinished.sort_by_key(|generation| generation.line);
        self.finished.clear();
        self.stream_of_id.clear();
        self.streams = 0;
        unfinished
    }
}

/// The records of a span of a stream framed as `framing`, split exactly as the whole
/// stream was (so a line that was not a record then is not one now), with their offsets in
/// the span.
fn span_records(span: &[u8], framing: Framing) -> Vec<(usize, Vec<u8>)> {
    let mut splitter = RecordSplitter::for_span(framing);
    let mut records = Vec::new();
    let mut on_event = |event: SplitEvent<'_>| {
        if let SplitEvent::Record(record) = event {
            records.push((record.offset as usize, record.bytes.to_vec()));
        }
    };
    splitter.feed(span, &mut on_event);
    splitter.finish(&mut on_event);
    records
}

/// Whether `record` is a stream chunk of `format` (so a trace read from it was assembled
/// and its span must go through [`reassemble`]).
pub fn is_chunk(format: Format, span: &[u8], framing: Framing) -> bool {
    let Some((_, first)) = span_records(span, framing).into_iter().next() else {
        return false;
    };
    matches!(read_chunk(format, &first), Ok(Some(chunk)) if !chunk.closes_only_if_open)
}

/// Assembles the generation a trace came from again, from the bytes of its span (its
/// [`RecordRef`](crate::trace::RecordRef)): the `sub_idx`-th generation of the span's first
/// chunk.
pub fn reassemble(
    format: Format,
    span: &[u8],
    framing: Framing,
    sub_idx: u32,
) -> Result<Vec<u8>, String> {
    let mut assembler = StreamAssembler::default();
    for (offset, record) in span_records(span, framing) {
        // A record the first pass could not read was skipped there too.
        let Ok(fed) = assembler.feed(format, &record, offset as u64, 0) else {
            continue;
        };
        if let Fed::Chunk(done) = fed
            && let Some(found) = done
                .into_iter()
                .find(|assembled| assembled.offset == 0 && assembled.sub_idx == sub_idx)
        {
            return Ok(found.record);
        }
    }
    Err("the stream changed since it was scored: its last chunk is missing".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::import::test_support::parse_as;

    fn feed_all(format: Format, lines: &[&str]) -> (Vec<Assembled>, Vec<usize>, Vec<Unfinished>) {
        let mut assembler = StreamAssembler::default();
        let mut done = Vec::new();
        let mut whole = Vec::new();
        let mut offset = 0u64;
        for (idx, line) in lines.iter().enumerate() {
            match assembler
                .feed(format, line.as_bytes(), offset, idx as u64 + 1)
                .unwrap()
            {
                Fed::Whole => whole.push(idx),
                Fed::Chunk(finished) => done.extend(finished),
            }
            offset += line.len() as u64 + 1;
        }
        (done, whole, assembler.finish())
    }

    const CHAT: [&str; 5] = [
        r#"{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"Answer"},"logprobs":{"content":[{"token":"Answer","logprob":-0.5,"bytes":[65],"top_logprobs":[{"token":"Answer","logprob":-0.5},{"token":"So","logprob":-1.2}]}]},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":": up"},"logprobs":{"content":[{"token":":","logprob":-0.25,"top_logprobs":[{"token":":","logprob":-0.25},{"token":"!","logprob":-2.0}]},{"token":" up","logprob":-1.0,"top_logprobs":[{"token":" up","logprob":-1.0},{"token":" down","logprob":-1.5}]}]},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}"#,
    ];

    #[test]
    fn chat_chunks_become_one_response() {
        let (done, whole, unfinished) = feed_all(Format::Openai, &CHAT);
        assert!(whole.is_empty() && unfinished.is_empty());
        assert_eq!(done.len(), 1);
        let assembled = &done[0];
        assert_eq!(
            (assembled.offset, assembled.line, assembled.chunks),
            (0, 1, 4)
        );
        let traces = parse_as(Format::Openai, &assembled.record, true).unwrap();
        assert_eq!(traces.len(), 1);
        let trace = &traces[0];
        assert_eq!(trace.text.as_deref(), Some("Answer: up"));
        assert_eq!(trace.logprobs, vec![-0.5, -0.25, -1.0]);
        assert_eq!(trace.n_top_lists(), 3);
        assert_eq!(trace.top_list(2), &[-1.0, -1.5]);
        assert_eq!(trace.question_id.as_deref(), Some("c1"));
    }

    #[test]
    fn interleaved_choices_are_kept_apart_and_reassembled_from_their_span() {
        let lines = [
            r#"{"id":"c2","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"up"},"logprobs":{"content":[{"token":"up","logprob":-0.1,"top_logprobs":[]}]},"finish_reason":null},{"index":1,"delta":{"content":"down"},"logprobs":{"content":[{"token":"down","logprob":-0.7,"top_logprobs":[]}]},"finish_reason":null}]}"#,
            r#"{"id":"c2","object":"chat.completion.chunk","choices":[{"index":1,"delta":{"content":"!"},"logprobs":{"content":[{"token":"!","logprob":-0.2,"top_logprobs":[]}]},"finish_reason":"stop"}]}"#,
            r#"{"id":"c2","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}]}"#,
        ];
        let (done, _, _) = feed_all(Format::Openai, &lines);
        assert_eq!(done.len(), 2);
        let file = lines.join("\n");
        for assembled in &done {
            let span = &file.as_bytes()
                [assembled.offset as usize..(assembled.offset + assembled.len) as usize];
            let again =
                reassemble(Format::Openai, span, Framing::Lines, assembled.sub_idx).unwrap();
            assert_eq!(again, assembled.record);
        }
        let texts: Vec<String> = done
            .iter()
            .map(|a| {
                parse_as(Format::Openai, &a.record, true).unwrap()[0]
                    .text
                    .clone()
                    .unwrap()
            })
            .collect();
        assert_eq!(texts, ["down!", "up"]);
    }

    #[test]
    fn a_cut_off_stream_is_reported_not_scored() {
        let (done, _, unfinished) = feed_all(Format::Openai, &CHAT[..3]);
        assert!(done.is_empty());
        assert_eq!(unfinished, vec![Unfinished { line: 1, chunks: 3 }]);
    }

    #[test]
    fn whole_responses_pass_through() {
        let whole = r#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"up"},"logprobs":null,"finish_reason":"stop"}]}"#;
        let legacy = r#"{"id":"y","object":"text_completion","choices":[{"index":0,"text":"up","logprobs":null,"finish_reason":"stop"}]}"#;
        let (done, whole_idxs, _) = feed_all(Format::Openai, &[whole]);
        assert!(done.is_empty());
        assert_eq!(whole_idxs, [0]);
        let (_, whole_idxs, _) = feed_all(Format::Completions, &[legacy]);
        assert_eq!(whole_idxs, [0]);
        let llama = r#"{"index":0,"content":"up","stop":true,"completion_probabilities":[]}"#;
        let (_, whole_idxs, _) = feed_all(Format::Llamacpp, &[llama]);
        assert_eq!(whole_idxs, [0]);
        let ollama = r#"{"model":"m","response":"up","done":true}"#;
        let (_, whole_idxs, _) = feed_all(Format::Ollama, &[ollama]);
        assert_eq!(whole_idxs, [0]);
    }

    #[test]
    fn legacy_completion_chunks() {
        let lines = [
            r#"{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":" up","logprobs":{"tokens":[" up"],"token_logprobs":[-0.3],"top_logprobs":[{" up":-0.3," down":-1.6}],"text_offset":[10]},"finish_reason":null}]}"#,
            r#"{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":".","logprobs":{"tokens":["."],"token_logprobs":[-0.05],"top_logprobs":[{".":-0.05,"!":-3.1}],"text_offset":[13]},"finish_reason":"stop"}]}"#,
        ];
        let (done, whole, unfinished) = feed_all(Format::Completions, &lines);
        assert!(whole.is_empty() && unfinished.is_empty());
        assert_eq!(done.len(), 1);
        let trace = &parse_as(Format::Completions, &done[0].record, true).unwrap()[0];
        assert_eq!(trace.text.as_deref(), Some(" up."));
        assert_eq!(trace.logprobs, vec![-0.3, -0.05]);
        assert_eq!(trace.top_list(1), &[-0.05, -3.1]);
    }

    #[test]
    fn a_streamed_echo_completion_keeps_the_usage_of_its_last_chunk() {
        // vLLM streams an echoed prompt in the first chunk (null first log-prob) and puts
        // `usage` on the last one; the completion's own tokens are the ones scored.
        let lines = [
            r#"{"id":"cmpl-e","object":"text_completion","choices":[{"index":0,"text":"Q?","logprobs":{"tokens":["Q","?"],"token_logprobs":[null,-1.5],"top_logprobs":[null,{"?":-1.5,"!":-2.0}],"text_offset":[0,1]},"finish_reason":null}]}"#,
            r#"{"id":"cmpl-e","object":"text_completion","choices":[{"index":0,"text":" up","logprobs":{"tokens":[" up"],"token_logprobs":[-0.25],"top_logprobs":[{" up":-0.25," down":-1.6}],"text_offset":[2]},"finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}"#,
        ];
        let (done, _, _) = feed_all(Format::Completions, &lines);
        assert_eq!(done.len(), 1);
        let trace = &parse_as(Format::Completions, &done[0].record, true).unwrap()[0];
        assert_eq!(trace.logprobs, vec![-0.25]);
        assert_eq!(trace.text.as_deref(), Some(" up"));
    }

    #[test]
    fn llamacpp_pieces_until_stop() {
        let lines = [
            r#"{"index":0,"content":"Ans","tokens":[5],"stop":false,"id_slot":0,"completion_probabilities":[{"id":5,"token":"Ans","logprob":-0.2,"bytes":[65],"top_logprobs":[{"id":5,"token":"Ans","logprob":-0.2},{"id":7,"token":"So","logprob":-2.0}]}]}"#,
            r#"{"index":0,"content":"wer","tokens":[6],"stop":false,"id_slot":0,"completion_probabilities":[{"id":6,"token":"wer","logprob":-0.4,"bytes":[119],"top_logprobs":[{"id":6,"token":"wer","logprob":-0.4},{"id":8,"token":"x","logprob":-1.0}]}]}"#,
            r#"{"index":0,"content":"","tokens":[],"stop":true,"id_slot":0,"tokens_predicted":2,"stop_type":"eos"}"#,
            r#"{"index":0,"content":"whole","stop":true,"id_slot":0,"completion_probabilities":[]}"#,
        ];
        let (done, whole, unfinished) = feed_all(Format::Llamacpp, &lines);
        assert_eq!(whole, [3]);
        assert!(unfinished.is_empty());
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].chunks, 3);
        let trace = &parse_as(Format::Llamacpp, &done[0].record, true).unwrap()[0];
        assert_eq!(trace.text.as_deref(), Some("Answer"));
        assert_eq!(trace.logprobs, vec![-0.2, -0.4]);
    }

    #[test]
    fn llamacpp_progress_chunks_and_arrays_are_not_pieces() {
        // `return_progress: true` sends prompt-progress chunks whose `tokens` entry is not a
        // generated token; a JSONL line holding the array answer to several prompts is a
        // whole response (server-context.cpp:3401, 4337-4358 in llama-cpp-python 0.3.36).
        let lines = [
            r#"{"index":0,"content":"","tokens":[0],"stop":false,"id_slot":-1,"tokens_predicted":0,"prompt_progress":{"total":10,"processed":10}}"#,
            r#"{"index":0,"content":"up","tokens":[7],"stop":false,"id_slot":-1,"tokens_predicted":1,"completion_probabilities":[{"id":7,"token":"up","logprob":-0.5,"top_logprobs":[{"id":7,"token":"up","logprob":-0.5},{"id":8,"token":"down","logprob":-1.5}]}]}"#,
            r#"{"index":0,"content":"","tokens":[],"stop":true,"id_slot":2,"tokens_predicted":1,"prompt":"Q"}"#,
            r#"[{"index":0,"content":"up","stop":true,"prompt":"A"},{"index":1,"content":"down","stop":true,"prompt":"B"}]"#,
        ];
        let (done, whole, unfinished) = feed_all(Format::Llamacpp, &lines);
        assert_eq!(whole, [3]);
        assert!(unfinished.is_empty());
        assert_eq!(done.len(), 1);
        let record = String::from_utf8(done[0].record.clone()).unwrap();
        assert!(record.contains(r#""tokens":[7]"#), "{record}");
        assert!(record.contains(r#""prompt":"Q""#), "{record}");
    }

    #[test]
    fn ollama_chunks_until_done() {
        let lines = [
            r#"{"model":"qwen3","created_at":"t","message":{"role":"assistant","content":"","thinking":"Hmm"},"done":false,"logprobs":[{"token":"Hmm","logprob":-0.9,"top_logprobs":[]}]}"#,
            r#"{"model":"qwen3","created_at":"t","message":{"role":"assistant","content":"up"},"done":false,"logprobs":[{"token":"up","logprob":-0.1,"top_logprobs":[]}]}"#,
            r#"{"model":"qwen3","created_at":"t","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","eval_count":2}"#,
        ];
        let (done, whole, _) = feed_all(Format::Ollama, &lines);
        assert!(whole.is_empty());
        assert_eq!(done.len(), 1);
        let trace = &parse_as(Format::Ollama, &done[0].record, true).unwrap()[0];
        assert_eq!(trace.logprobs, vec![-0.9, -0.1]);
        let record = String::from_utf8(done[0].record.clone()).unwrap();
        assert!(record.contains(r#""thinking":"Hmm""#), "{record}");
        assert!(record.contains(r#""eval_count":2"#), "{record}");
    }

    #[test]
    fn responses_events_hand_out_the_completed_response() {
        let lines = [
            r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","created_at":1,"status":"in_progress","output":[]}}"#,
            r#"{"type":"response.output_text.delta","sequence_number":1,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"up","logprobs":[{"token":"up","logprob":-0.2,"top_logprobs":[]}]}"#,
            r#"{"type":"response.completed","sequence_number":2,"response":{"id":"resp_1","object":"response","created_at":1,"status":"completed","output":[{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"up","annotations":[],"logprobs":[{"token":"up","logprob":-0.2,"bytes":[117,112],"top_logprobs":[{"token":"up","logprob":-0.2,"bytes":[117,112]},{"token":"down","logprob":-1.7,"bytes":[100]}]}]}]}]}}"#,
        ];
        let (done, whole, unfinished) = feed_all(Format::OpenaiResponses, &lines);
        assert!(whole.is_empty() && unfinished.is_empty());
        assert_eq!(done.len(), 1);
        let assembled = &done[0];
        assert_eq!((assembled.line, assembled.chunks), (1, 3));
        let file = lines.join("\n");
        let span = &file.as_bytes()
            [assembled.offset as usize..(assembled.offset + assembled.len) as usize];
        assert_eq!(span, assembled.record.as_slice());
        assert!(!is_chunk(Format::OpenaiResponses, span, Framing::Lines));
        let trace = &parse_as(Format::OpenaiResponses, span, true).unwrap()[0];
        assert_eq!(trace.text.as_deref(), Some("up"));
        assert_eq!(trace.logprobs, vec![-0.2]);
        // A stream cut off before `response.completed` is reported.
        let (done, _, unfinished) = feed_all(Format::OpenaiResponses, &lines[..2]);
        assert!(done.is_empty());
        assert_eq!(unfinished, vec![Unfinished { line: 1, chunks: 2 }]);
    }

    #[test]
    fn span_records_split_as_the_whole_stream_did() {
        let sse = b"{\"a\":1}\n\nevent: x\ndata: {\"b\":2}\n\n: comment\ndata:{\"c\":3}\n\ndata: [DONE]\n";
        let records: Vec<Vec<u8>> = span_records(sse, Framing::Lines)
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        assert_eq!(records, [&b"{\"a\":1}"[..], b"{\"b\":2}", b"{\"c\":3}"]);
        // A line that was not one record in the whole file is not one in its span either.
        let junk = b"{\"a\":1} trailing\n{\"b\":2}\n";
        let records = span_records(junk, Framing::Lines);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].1, b"{\"a\":1} trailing");
        // Chunks saved as a JSON array: the span starts inside it.
        let array = b"{\"a\":1},\n  {\"b\":[1,2]}\n]";
        assert_eq!(span_records(array, Framing::Array).len(), 2);
    }
}
