//! OpenAI: Chat Completions response objects, Batch API output lines, legacy Completions
//! objects and Responses API objects. One trace per choice (one per Responses object).
//!
//! The chat and legacy shapes share one reader, which tells them apart per choice:
//! a chat choice has `message` and `logprobs.content[]`, a legacy choice has `text` and
//! `logprobs.{tokens, token_logprobs, top_logprobs}`. A Responses object has `output`
//! instead of `choices` (read in `responses.rs`). A Batch line wraps any of them.
//!
//! The same shapes come from OpenAI-compatible servers, with their own twists read here:
//! llama.cpp's `post_sampling_probs` (`prob` and `top_probs` instead of `logprob` and
//! `top_logprobs`), vLLM's and llama-cpp-python's `echo=true` legacy completions (the
//! prompt's tokens before the completion's), and vLLM `run_batch` error lines.

use jiter::{Jiter, Peek};

use crate::import::{
    ImportOptions, RecordCommon, TokenTexts, TraceBatch, clear_top_lists, for_each_member_or_null,
    for_each_response, read_token_text, read_top_list, responses, set_question_id,
};
use crate::json::{self, Ctx, RecordError, RecordResult};
use crate::trace::TraceBuf;

/// The report's note for the echoed prompt tokens cut from a legacy completion.
pub(crate) const ECHO_NOT_SCORED: &str = "echoed prompt tokens were not scored: with \
     `echo=true` a legacy completion's log-probs start with the prompt's tokens, which were \
     left out (count: tokens)";

/// The report's note for echoed completions whose prompt tokens could not be told apart.
pub(crate) const ECHO_SPLIT_UNKNOWN: &str = "log-probs left out: with `echo=true` the echoed \
     prompt's tokens could not be told from the completion's (no `usage.completion_tokens` \
     that fits this choice, and no vLLM `prompt_logprobs`) (count: tokens)";

/// The report's note for echoed completions whose text could not be cut from the prompt.
pub(crate) const ECHO_TEXT_UNKNOWN: &str = "text left out: with `echo=true` the choice's \
     text starts with the prompt, and where the prompt ends could not be told (count: traces)";

/// The report's note for llama.cpp's `post_sampling_probs` values.
pub(crate) const POST_SAMPLING_PROBS: &str = "log-probs are llama.cpp post-sampling \
     probabilities (`post_sampling_probs`: after temperature, top-k and top-p), read as their \
     natural log; they are not the model's own distribution (count: tokens)";

/// A Chat Completions (`"object": "chat.completion"`) or legacy Completions
/// (`"object": "text_completion"`) response object; the shape is told per choice.
pub(super) fn parse_response_object(
    record: &[u8],
    options: ImportOptions,
    out: &mut TraceBatch,
) -> RecordResult<()> {
    for_each_response(record, |jiter| {
        parse_plain_response(jiter, record, options, out, Expected::Choices)
    })
}

/// A Responses API object (`"object": "response"`).
pub(super) fn parse_responses_object(
    record: &[u8],
    options: ImportOptions,
    out: &mut TraceBatch,
) -> RecordResult<()> {
    for_each_response(record, |jiter| {
        parse_plain_response(jiter, record, options, out, Expected::Output)
    })
}

/// One line of a Batch API output (or error) file:
/// `{id, custom_id, response: {status_code, request_id, body}, error}`.
pub(super) fn parse_batch(
    record: &[u8],
    options: ImportOptions,
    out: &mut TraceBatch,
) -> RecordResult<()> {
    for_each_response(record, |jiter| {
        parse_batch_line(jiter, record, options, out)
    })
}

/// What a bare response of the format must hold (named in the error when it is missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Choices,
    Output,
}

/// The `error` object of an API response or a Batch line (also what llama.cpp and Ollama
/// write instead of a response).
#[derive(Debug, Default)]
pub(crate) struct ApiError {
    message: Option<String>,
    code: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.message, &self.code) {
            (Some(message), Some(code)) => write!(f, "{message} (code `{code}`)"),
            (Some(message), None) => f.write_str(message),
            (None, Some(code)) => write!(f, "error code `{code}`"),
            (None, None) => f.write_str("no error message given"),
        }
    }
}

/// Reads an `error` value: `null` → None, an object with `message`/`code`, or a bare
/// string. vLLM (0.10 on) wraps the object once more: `{"error": {"message", "code", …}}`.
pub(crate) fn read_api_error(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<Option<ApiError>> {
    match jiter.peek().ctx(field)? {
        Peek::Null => {
            jiter.known_null().ctx(field)?;
            Ok(None)
        }
        Peek::String => Ok(Some(ApiError {
            message: Some(jiter.known_str().ctx(field)?.to_owned()),
            code: None,
        })),
        Peek::Object => {
            let mut error = ApiError::default();
            let mut inner = None;
            json::for_each_member(jiter, field, |jiter, key| {
                match key {
                    "message" => error.message = json::next_id(jiter, field)?,
                    "code" => error.code = json::next_id(jiter, field)?,
                    "error" => inner = read_api_error(jiter, field)?,
                    _ => jiter.next_skip().ctx(field)?,
                }
                Ok(())
            })?;
            Ok(Some(match inner {
                Some(inner) if error.message.is_none() => inner,
                _ => error,
            }))
        }
        other => Err(json::wrong_type(
            field,
            "an error object",
            other,
            jiter.current_index(),
        )),
    }
}

/// Token counts of a response's `usage` (legacy and chat names).
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

/// Reads `usage`; a count that is not a non-negative integer is treated as absent.
fn read_usage(jiter: &mut Jiter<'_>) -> RecordResult<Usage> {
    let mut usage = Usage::default();
    for_each_member_or_null(jiter, "usage", |jiter, key| {
        match key {
            "prompt_tokens" => usage.prompt_tokens = next_count(jiter, "usage.prompt_tokens")?,
            "completion_tokens" => {
                usage.completion_tokens = next_count(jiter, "usage.completion_tokens")?;
            }
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })?;
    Ok(usage)
}

/// A token count: a non-negative whole number, else None.
fn next_count(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<Option<u64>> {
    let peek = jiter.peek().ctx(field)?;
    if !json::is_number(peek) {
        jiter.known_skip(peek).ctx(field)?;
        return Ok(None);
    }
    let value = jiter.known_float(peek).ctx(field)?;
    let whole = value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value < 9.0e15;
    // Checked above: a whole number in u64 range, so the cast is exact.
    Ok(whole.then_some(value as u64))
}

/// Counts the elements of an array (`null` → None) without keeping them.
fn next_array_len(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<Option<usize>> {
    let mut count = 0;
    let given = json::for_each_element(jiter, field, |jiter, peek| {
        count += 1;
        jiter.known_skip(peek).ctx(field)
    })?;
    Ok(given.then_some(count))
}

/// Skips the value at the reader's position and returns its byte span in the record.
fn next_span(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<(usize, usize)> {
    let peek = jiter.peek().ctx(field)?;
    let start = jiter.current_index();
    jiter.known_skip(peek).ctx(field)?;
    Ok((start, jiter.current_index()))
}

/// What a legacy or chat choice said besides its trace, for the checks made once the whole
/// response (its `usage` included) has been read.
#[derive(Debug, Default)]
struct ChoiceInfo {
    /// Index of the choice's trace in the batch.
    trace_idx: usize,
    /// The legacy `token_logprobs` starts with `null`: the prompt was echoed (`echo=true`).
    echoed: bool,
    /// Number of entries of vLLM's `prompt_logprobs` and `prompt_token_ids`, where given.
    prompt_logprobs_len: Option<usize>,
    prompt_token_ids_len: Option<usize>,
    /// Byte spans of the legacy `logprobs.tokens` and `logprobs.text_offset` arrays, read
    /// again only for an echoed choice (so plain scoring keeps no token strings).
    tokens_span: Option<(usize, usize)>,
    text_offset_span: Option<(usize, usize)>,
    /// Tokens whose value was a llama.cpp post-sampling probability.
    n_post_sampling: usize,
}

/// What a response object said about itself besides its traces.
#[derive(Debug, Default)]
struct ResponseInfo {
    /// Index in the batch of the response's first trace; its traces follow it.
    first_trace: usize,
    id: Option<String>,
    has_choices: bool,
    has_output: bool,
    error: Option<ApiError>,
    /// Responses API `status` (`completed`, `incomplete`, `failed`, `in_progress`, …).
    status: Option<String>,
    usage: Usage,
    choices: Vec<ChoiceInfo>,
    /// Byte span of a `prompt` string at the record's top level (a user's annotation), read
    /// only where it is needed.
    prompt_span: Option<(usize, usize)>,
    /// Output items whose text had no log-probs while others had (Responses API).
    n_partial_logprobs: u64,
}

/// A bare response object (chat, legacy or Responses), as a line of its own.
fn parse_plain_response(
    jiter: &mut Jiter<'_>,
    record: &[u8],
    options: ImportOptions,
    out: &mut TraceBatch,
    expected: Expected,
) -> RecordResult<()> {
    let first = out.traces().len();
    let mut common = RecordCommon::default();
    let info = parse_response(jiter, "(record)", options, out, Some(&mut common))?;
    if let Some(error) = &info.error {
        return Err(RecordError::new(format!("the request failed: {error}"), 0));
    }
    check_finished(&info)?;
    if !info.has_choices && !info.has_output {
        let message = match expected {
            Expected::Choices => "the OpenAI response has no `choices`",
            Expected::Output => "the OpenAI response has no `output`",
        };
        return Err(RecordError::new(message, 0));
    }
    finish_response(record, out, &info, info.prompt_span, options);
    set_question_id(out, first, info.id.as_deref());
    common.apply(out, first);
    Ok(())
}

/// A Responses object that is not finished, or failed without an `error`, is no trace.
fn check_finished(info: &ResponseInfo) -> RecordResult<()> {
    match info.status.as_deref() {
        Some(status @ ("in_progress" | "queued")) => Err(RecordError::new(
            format!(
                "the response is not finished (status `{status}`); save it once its status \
                 is `completed`"
            ),
            0,
        )),
        Some("cancelled") => Err(RecordError::new(
            "the response was cancelled (status `cancelled`)",
            0,
        )),
        Some("failed") => Err(RecordError::new("the response failed (status `failed`)", 0)),
        _ => Ok(()),
    }
}

/// One Batch output line. Its `custom_id` is the question id; a failed request (an
/// `error`, no `response`, or a status other than 200) is an error naming the reason.
fn parse_batch_line(
    jiter: &mut Jiter<'_>,
    record: &[u8],
    options: ImportOptions,
    out: &mut TraceBatch,
) -> RecordResult<()> {
    let first = out.traces().len();
    let mut common = RecordCommon::default();
    let mut custom_id = None;
    let mut error = None;
    let mut has_response = false;
    let mut status: Option<String> = None;
    let mut body: Option<ResponseInfo> = None;
    let mut prompt_span = None;
    json::for_each_member(jiter, "(record)", |jiter, key| {
        if key == "prompt" && jiter.peek().ctx(key)? == Peek::String {
            prompt_span = Some(next_span(jiter, key)?);
            return Ok(());
        }
        if common.read(jiter, key, options)? {
            return Ok(());
        }
        match key {
            "custom_id" => custom_id = json::next_id(jiter, key)?,
            "error" => error = read_api_error(jiter, key)?,
            "response" => {
                has_response = for_each_member_or_null(jiter, "response", |jiter, key| {
                    match key {
                        "status_code" => status = json::next_id(jiter, "response.status_code")?,
                        // vLLM's `run_batch` writes `"body": null` beside its `error`.
                        "body" if jiter.peek().ctx(key)? == Peek::Null => {
                            jiter.known_null().ctx(key)?;
                        }
                        "body" => {
                            body =
                                Some(parse_response(jiter, "response.body", options, out, None)?);
                        }
                        _ => jiter.next_skip().ctx(key)?,
                    }
                    Ok(())
                })?;
            }
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })?;
    if let Some(error) = error {
        return Err(RecordError::new(
            format!("the batch request failed: {error}"),
            0,
        ));
    }
    if !has_response {
        return Err(RecordError::new(
            "the batch request failed: the line has no `response`",
            0,
        ));
    }
    let body_error = body.as_mut().and_then(|body| body.error.take());
    if let Some(status) = status.filter(|status| status != "200") {
        let detail = body_error
            .map(|error| format!(": {error}"))
            .unwrap_or_default();
        return Err(RecordError::new(
            format!("the batch request failed with HTTP status {status}{detail}"),
            0,
        ));
    }
    if let Some(error) = body_error {
        return Err(RecordError::new(
            format!("the batch request failed: {error}"),
            0,
        ));
    }
    let Some(body) = body else {
        return Err(RecordError::new("the batch response has no `body`", 0));
    };
    check_finished(&body)?;
    if !body.has_choices && !body.has_output {
        return Err(RecordError::new(
            "the batch response body has no `choices` or `output`",
            0,
        ));
    }
    finish_response(record, out, &body, prompt_span, options);
    // The request's `custom_id` names the question; the body's `id` only names the response.
    let question_id = custom_id.or(body.id);
    for trace in out.traces_mut().iter_mut().skip(first) {
        trace.question_id.clone_from(&question_id);
    }
    common.apply(out, first);
    Ok(())
}

/// Reads a response object, pushing one trace per choice (or one for a Responses object's
/// `output`). `common` reads the record-level annotations where the response is the record
/// itself (not a Batch line's body).
fn parse_response(
    jiter: &mut Jiter<'_>,
    field: &str,
    options: ImportOptions,
    out: &mut TraceBatch,
    mut common: Option<&mut RecordCommon>,
) -> RecordResult<ResponseInfo> {
    let mut info = ResponseInfo {
        first_trace: out.traces().len(),
        ..ResponseInfo::default()
    };
    // vLLM's `ErrorResponse` before 0.10 is flat: `{object: "error", message, type, code}`.
    let mut object_tag = None;
    let mut flat_error = ApiError::default();
    json::for_each_member(jiter, field, |jiter, key| {
        if let Some(common) = common.as_deref_mut() {
            // The prompt is kept apart from the other annotations: an echoed completion
            // needs it to find where its text's prompt ends, with or without content.
            if key == "prompt" && jiter.peek().ctx(key)? == Peek::String {
                info.prompt_span = Some(next_span(jiter, key)?);
                return Ok(());
            }
            if common.read(jiter, key, options)? {
                return Ok(());
            }
        }
        match key {
            "id" => info.id = json::next_id(jiter, key)?,
            "choices" => {
                info.has_choices = json::for_each_element(jiter, "choices", |jiter, _peek| {
                    let trace_idx = out.traces().len();
                    let mut choice = parse_choice(jiter, options, out.push())?;
                    choice.trace_idx = trace_idx;
                    info.choices.push(choice);
                    Ok(())
                })?;
            }
            "output" => {
                if jiter.peek().ctx(key)? == Peek::Null {
                    jiter.known_null().ctx(key)?;
                } else {
                    let summary = responses::read_output(jiter, options, out.push())?;
                    info.has_output = true;
                    info.n_partial_logprobs += summary.n_partial_logprobs;
                }
            }
            "status" => info.status = json::next_id(jiter, key)?,
            "usage" => info.usage = read_usage(jiter)?,
            "error" => info.error = read_api_error(jiter, "error")?,
            "object" => object_tag = json::next_id(jiter, key)?,
            "message" => flat_error.message = json::next_id(jiter, key)?,
            "code" => flat_error.code = json::next_id(jiter, key)?,
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })?;
    if object_tag.as_deref() == Some("error") && info.error.is_none() {
        info.error = Some(flat_error);
    }
    Ok(info)
}

/// One element of `choices`, chat or legacy.
fn parse_choice(
    jiter: &mut Jiter<'_>,
    options: ImportOptions,
    buf: &mut TraceBuf,
) -> RecordResult<ChoiceInfo> {
    let keep = options.keep_content;
    let mut info = ChoiceInfo::default();
    // Legacy `top_logprobs`: None when absent, else whether it was a list.
    let mut legacy_top: Option<bool> = None;
    let mut legacy_logprobs = false;
    json::for_each_member(jiter, "choices", |jiter, key| {
        match key {
            "message" => {
                for_each_member_or_null(jiter, "choices.message", |jiter, key| {
                    match key {
                        "content" => {
                            buf.text = json::next_opt_string(jiter, "choices.message.content")?;
                        }
                        _ => jiter.next_skip().ctx(key)?,
                    }
                    Ok(())
                })?;
            }
            "delta" => {
                return Err(RecordError::new(
                    "this is a streaming chunk (`choices[].delta`), one piece of a response; \
                     save the complete response object instead",
                    jiter.current_index(),
                ));
            }
            "text" => buf.text = json::next_opt_string(jiter, "choices.text")?,
            // vLLM: the prompt's own log-probs and ids, one entry per prompt token.
            "prompt_logprobs" => {
                info.prompt_logprobs_len = next_array_len(jiter, "choices.prompt_logprobs")?;
            }
            "prompt_token_ids" => {
                info.prompt_token_ids_len = next_array_len(jiter, "choices.prompt_token_ids")?;
            }
            "logprobs" => {
                for_each_member_or_null(jiter, "choices.logprobs", |jiter, key| {
                    match key {
                        // Chat (and llama.cpp's legacy endpoint): one object per token.
                        "content" => {
                            let read =
                                read_token_list(jiter, "choices.logprobs.content", keep, buf)?;
                            buf.has_logprobs = read.given;
                            info.n_post_sampling = read.n_post_sampling;
                        }
                        // Legacy: parallel arrays; the caller checks their lengths.
                        "tokens" if keep => {
                            buf.n_token_strings = json::next_string_array(
                                jiter,
                                "choices.logprobs.tokens",
                                true,
                                &mut buf.tokens,
                            )?;
                        }
                        "tokens" => {
                            let field = "choices.logprobs.tokens";
                            let start = {
                                jiter.peek().ctx(field)?;
                                jiter.current_index()
                            };
                            buf.n_token_strings =
                                json::next_string_array(jiter, field, false, &mut buf.tokens)?;
                            info.tokens_span = Some((start, jiter.current_index()));
                        }
                        "token_logprobs" => {
                            buf.has_logprobs = json::next_f64_array(
                                jiter,
                                "choices.logprobs.token_logprobs",
                                &mut buf.logprobs,
                            )?;
                            legacy_logprobs = true;
                        }
                        "top_logprobs" => {
                            let field = "choices.logprobs.top_logprobs";
                            buf.begin_top_lists();
                            let given = json::for_each_element(jiter, field, |jiter, peek| {
                                read_top_list(jiter, peek, field, keep, buf)
                            })?;
                            legacy_top = Some(given);
                        }
                        "text_offset" => {
                            info.text_offset_span =
                                Some(next_span(jiter, "choices.logprobs.text_offset")?);
                        }
                        _ => jiter.next_skip().ctx(key)?,
                    }
                    Ok(())
                })?;
            }
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })?;
    // A `null` or empty `top_logprobs` (top-k not requested) carries no top-k data.
    if legacy_top == Some(false) || (legacy_top.is_some() && buf.n_top_lists() == 0) {
        clear_top_lists(buf);
    }
    // With `echo=true` the first entry is the prompt's first token, which has no log-prob
    // (OpenAI; llama-cpp-python llama.py:1785-1787; vLLM's `prompt_logprobs[0]` is None).
    // A generated token always has one.
    info.echoed = legacy_logprobs && buf.logprobs.first().is_some_and(|value| value.is_nan());
    Ok(info)
}

/// Per-choice work that needs the whole response: echoed prompts cut off, notes counted.
fn finish_response(
    record: &[u8],
    out: &mut TraceBatch,
    info: &ResponseInfo,
    prompt_span: Option<(usize, usize)>,
    options: ImportOptions,
) {
    let echoed = info.choices.iter().any(|choice| choice.echoed);
    let prompt = prompt_span
        .filter(|_| echoed || options.keep_content)
        .and_then(|span| read_string(record, span));
    let prompt = prompt.as_deref();
    let n_post_sampling: usize = info
        .choices
        .iter()
        .map(|choice| choice.n_post_sampling)
        .sum();
    out.note(POST_SAMPLING_PROBS, n_post_sampling as u64);
    out.note(responses::PARTIAL_LOGPROBS, info.n_partial_logprobs);
    if echoed {
        let echoed_counts = echoed_prompt_counts(out, info);
        for (choice, echoed) in info.choices.iter().zip(echoed_counts) {
            // Zero echoed entries: the first `null` was an invalid value, not a prompt token.
            if choice.echoed && echoed != Some(0) {
                cut_echoed_prompt(record, out, choice, echoed, prompt, options);
            }
        }
    }
    if options.keep_content
        && let Some(prompt) = prompt
    {
        for trace in out.traces_mut().iter_mut().skip(info.first_trace) {
            trace.prompt = Some(prompt.to_owned());
        }
    }
}

/// How many leading entries of each choice's log-probs are the echoed prompt's; None where
/// that cannot be known. In order of preference:
/// 1. vLLM writes the prompt's own `prompt_logprobs` (and, when asked, `prompt_token_ids`)
///    beside an echoed choice, one entry per prompt token (vLLM 0.33
///    entrypoints/openai/completion/serving.py:586-632, protocol.py:389-391: echo asks for
///    prompt log-probs). This also holds with `max_tokens=0`, where vLLM generates one token
///    it does not show but counts in `usage`.
/// 2. With one choice, `usage.completion_tokens` is that choice's generated tokens, and the
///    rest are the prompt's. `usage.prompt_tokens` must then be the same count, or one more:
///    llama-cpp-python leaves the BOS token out of the echo but counts it
///    (llama_cpp/llama.py:1737-1742 and 1803-1807, 0.3.36).
/// 3. With several choices of one prompt (`n` > 1), every choice echoes `usage.prompt_tokens`
///    tokens (counted once; OpenAI, vLLM serving.py:662-666, SGLang usage_processor.py:25-31),
///    which is checked against the total: Σ entries − completion_tokens = n × prompt_tokens.
///    Several prompts in one request fail this check: their split is not known.
///
/// Where `usage` counts every entry as generated, there is no echoed prompt (0): the first
/// `null` is then an invalid value of a generated token, counted as such by the scorer.
fn echoed_prompt_counts(out: &TraceBatch, info: &ResponseInfo) -> Vec<Option<usize>> {
    let traces = out.traces();
    let n_entries = |choice: &ChoiceInfo| {
        traces
            .get(choice.trace_idx)
            .map_or(0, |trace| trace.logprobs.len())
    };
    let per_choice =
        |choice: &ChoiceInfo| match (choice.prompt_logprobs_len, choice.prompt_token_ids_len) {
            (Some(a), Some(b)) if a != b => None,
            (Some(count), _) | (None, Some(count)) => Some(count),
            (None, None) => None,
        };
    let fits = |count: usize, choice: &ChoiceInfo| count <= n_entries(choice);
    let Usage {
        prompt_tokens,
        completion_tokens,
    } = info.usage;
    let from_usage: Option<usize> = match info.choices.as_slice() {
        [only] => completion_tokens
            .and_then(|generated| usize::try_from(generated).ok())
            .and_then(|generated| n_entries(only).checked_sub(generated))
            .filter(|&echoed| match prompt_tokens {
                _ if echoed == 0 => true,
                Some(prompt_tokens) => {
                    let echoed = echoed as u64;
                    echoed == prompt_tokens || echoed + 1 == prompt_tokens
                }
                None => true,
            }),
        choices => {
            let all_echoed = choices.iter().all(|choice| choice.echoed);
            let total: usize = choices.iter().map(n_entries).sum();
            match (prompt_tokens, completion_tokens) {
                (_, Some(generated)) if total as u64 == generated => Some(0),
                (Some(prompt_tokens), Some(generated)) if all_echoed => {
                    let n_choices = choices.len() as u64;
                    let echoed_total = (total as u64).checked_sub(generated);
                    (echoed_total == n_choices.checked_mul(prompt_tokens))
                        .then(|| usize::try_from(prompt_tokens).ok())
                        .flatten()
                }
                _ => None,
            }
        }
    };
    info.choices
        .iter()
        .map(|choice| {
            per_choice(choice)
                .or(from_usage)
                .filter(|&count| fits(count, choice))
        })
        .collect()
}

/// Cuts the echoed prompt from one echoed choice: its first `echoed` log-prob entries
/// (with their token strings and top lists) and the prompt at the start of its text. Where
/// `echoed` is None no entry is scored, and the text is kept only if the prompt can still
/// be cut from it.
fn cut_echoed_prompt(
    record: &[u8],
    out: &mut TraceBatch,
    choice: &ChoiceInfo,
    echoed: Option<usize>,
    prompt: Option<&str>,
    options: ImportOptions,
) {
    let Some(trace) = out.traces_mut().get_mut(choice.trace_idx) else {
        return;
    };
    let n_entries = trace.logprobs.len();
    let token_strings = match choice.tokens_span {
        Some(span) if !options.keep_content => read_token_strings(record, span),
        _ => (!trace.tokens.is_empty()).then(|| trace.tokens.clone()),
    };
    let text_offsets = choice
        .text_offset_span
        .and_then(|span| read_text_offsets(record, span));
    let cut = trace.text.as_deref().and_then(|text| {
        echoed_text_len(
            text,
            prompt,
            echoed,
            token_strings.as_deref(),
            text_offsets.as_deref(),
        )
    });
    let text_known = match (cut, trace.text.take()) {
        (Some(cut), Some(mut text)) => {
            let completion = text.split_off(cut);
            // vLLM with `return_token_ids` echoes no prompt text: no prompt to keep.
            if options.keep_content && !text.is_empty() {
                trace.prompt = Some(text);
            }
            trace.text = Some(completion);
            true
        }
        (_, None) => true,
        (None, Some(_)) => false,
    };
    match echoed {
        Some(echoed) => drop_leading_tokens(trace, echoed),
        None => {
            trace.logprobs.clear();
            trace.has_logprobs = false;
            trace.tokens.clear();
            trace.n_token_strings = None;
            clear_top_lists(trace);
        }
    }
    if !text_known {
        out.note(ECHO_TEXT_UNKNOWN, 1);
    }
    match echoed {
        Some(echoed) => out.note(ECHO_NOT_SCORED, echoed as u64),
        None => out.note(ECHO_SPLIT_UNKNOWN, n_entries as u64),
    }
}

/// Byte length of the echoed prompt at the start of `text`, where it can be told:
/// - the record's own `prompt`, when the text starts with it;
/// - the token strings: the completion's tokens spell the end of the text and the prompt's
///   tokens end with the rest (vLLM's prompt tokens start with the BOS token's text, which
///   the echoed text lacks; with `return_token_ids` vLLM echoes no prompt text at all);
/// - `text_offset`: the first completion token's offset (in characters) from the first
///   token's, when the text there starts with that token (llama-cpp-python, whose token
///   strings drop the pieces of a character split across tokens).
fn echoed_text_len(
    text: &str,
    prompt: Option<&str>,
    echoed: Option<usize>,
    token_strings: Option<&[String]>,
    text_offsets: Option<&[u64]>,
) -> Option<usize> {
    if let Some(prompt) = prompt
        && text.starts_with(prompt)
    {
        return Some(prompt.len());
    }
    let echoed = echoed?;
    let tokens = token_strings?;
    let (prompt_tokens, completion_tokens) = (tokens.get(..echoed)?, tokens.get(echoed..)?);
    let completion: String = completion_tokens.concat();
    if let Some(cut) = text.len().checked_sub(completion.len())
        && text.ends_with(completion.as_str())
        && prompt_tokens.concat().ends_with(text.get(..cut)?)
    {
        return Some(cut);
    }
    let offsets = text_offsets?;
    let chars = offsets.get(echoed)?.checked_sub(*offsets.first()?)?;
    let cut = match text.char_indices().nth(usize::try_from(chars).ok()?) {
        Some((byte_idx, _)) => byte_idx,
        None if chars == text.chars().count() as u64 => text.len(),
        None => return None,
    };
    let first_completion_token = completion_tokens.iter().find(|token| !token.is_empty());
    match first_completion_token {
        Some(token) if text.get(cut..)?.starts_with(token.as_str()) => Some(cut),
        None if cut == text.len() => Some(cut),
        _ => None,
    }
}

/// Reads the string at `span` of the record.
fn read_string(record: &[u8], span: (usize, usize)) -> Option<String> {
    let bytes = record.get(span.0..span.1)?;
    json::next_opt_string(&mut json::reader(bytes), "prompt").ok()?
}

/// Reads the legacy `tokens` array at `span` of the record again.
fn read_token_strings(record: &[u8], span: (usize, usize)) -> Option<Vec<String>> {
    let bytes = record.get(span.0..span.1)?;
    let mut jiter = json::reader(bytes);
    let mut strings = Vec::new();
    json::next_string_array(&mut jiter, "choices.logprobs.tokens", true, &mut strings).ok()??;
    Some(strings)
}

/// Reads the legacy `text_offset` array at `span` of the record (None if any entry is not a
/// non-negative whole number: SGLang writes −1, "not supported").
fn read_text_offsets(record: &[u8], span: (usize, usize)) -> Option<Vec<u64>> {
    let bytes = record.get(span.0..span.1)?;
    let mut jiter = json::reader(bytes);
    let mut offsets = Vec::new();
    let mut all_whole = true;
    json::for_each_element(
        &mut jiter,
        "choices.logprobs.text_offset",
        |jiter, _peek| {
            match next_count(jiter, "choices.logprobs.text_offset")? {
                Some(offset) => offsets.push(offset),
                None => all_whole = false,
            }
            Ok(())
        },
    )
    .ok()?;
    all_whole.then_some(offsets)
}

/// Removes the first `count` tokens of a trace: log-probs, token strings, top lists.
fn drop_leading_tokens(buf: &mut TraceBuf, count: usize) {
    buf.logprobs.drain(..count.min(buf.logprobs.len()));
    buf.tokens.drain(..count.min(buf.tokens.len()));
    if let Some(n_strings) = buf.n_token_strings {
        buf.n_token_strings = Some(n_strings.saturating_sub(count));
    }
    if buf.has_top() {
        let n_lists = count.min(buf.n_top_lists());
        let first_kept = buf.top_offsets.get(n_lists).copied().unwrap_or(0);
        let first_kept_idx = first_kept as usize;
        buf.top_values
            .drain(..first_kept_idx.min(buf.top_values.len()));
        buf.top_tokens
            .drain(..first_kept_idx.min(buf.top_tokens.len()));
        buf.top_offsets.drain(..n_lists);
        for offset in &mut buf.top_offsets {
            *offset = offset.saturating_sub(first_kept);
        }
        if buf.top_values.is_empty() {
            clear_top_lists(buf);
        }
    }
}

/// What [`read_token_list`] found.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct TokenList {
    /// The list was given (not `null`).
    pub(super) given: bool,
    /// Tokens whose value came from a post-sampling `prob` instead of a `logprob`.
    pub(super) n_post_sampling: usize,
}

/// Reads a list of per-token objects `{token, logprob, bytes, top_logprobs: [{token,
/// logprob, bytes}, …]}` (OpenAI Chat `logprobs.content`, Ollama `logprobs`) into `buf`.
/// Returns false for `null` (no log-probs). A token without `logprob` gets NaN; a token
/// without `top_logprobs` gets an empty list, and a list where no token had one, none.
pub(super) fn read_token_objects(
    jiter: &mut Jiter<'_>,
    field: &str,
    keep: bool,
    buf: &mut TraceBuf,
) -> RecordResult<bool> {
    Ok(read_token_list(jiter, field, keep, buf)?.given)
}

/// [`read_token_objects`], also reading llama.cpp's `post_sampling_probs` shape, where each
/// entry has `prob` and `top_probs: [{id, token, bytes, prob}]` instead (probabilities,
/// stored as their natural log; llama.cpp tools/server/server-task.cpp:264-298 in the
/// llama-cpp-python 0.3.36 sdist).
pub(super) fn read_token_list(
    jiter: &mut Jiter<'_>,
    field: &str,
    keep: bool,
    buf: &mut TraceBuf,
) -> RecordResult<TokenList> {
    buf.logprobs.clear();
    buf.tokens.clear();
    buf.begin_top_lists();
    let mut texts = TokenTexts::default();
    let mut any_top = false;
    let mut n_post_sampling = 0;
    let given = json::for_each_element(jiter, field, |jiter, _peek| {
        let mut logprob = None;
        let mut prob = None;
        let mut token = String::new();
        let mut has_token = false;
        let mut has_top = false;
        json::for_each_member(jiter, field, |jiter, key| {
            match key {
                "token" => has_token = read_token_text(jiter, field, keep, &mut token)?,
                "logprob" => {
                    let peek = jiter.peek().ctx(field)?;
                    logprob = Some(json::known_f64_or_null(jiter, peek, field)?);
                }
                "prob" => {
                    let peek = jiter.peek().ctx(field)?;
                    prob = Some(json::known_f64_or_null(jiter, peek, field)?);
                }
                "top_logprobs" | "top_probs" if !has_top => {
                    let peek = jiter.peek().ctx(field)?;
                    read_top_list(jiter, peek, field, keep, buf)?;
                    has_top = true;
                }
                _ => jiter.next_skip().ctx(field)?,
            }
            Ok(())
        })?;
        if !has_top {
            buf.end_top_list();
        }
        any_top |= has_top;
        let value = match (logprob, prob) {
            (Some(logprob), _) => logprob,
            (None, Some(prob)) => {
                n_post_sampling += 1;
                libm::log(prob)
            }
            (None, None) => f64::NAN,
        };
        buf.logprobs.push(value);
        texts.push(buf, keep, has_token, token);
        Ok(())
    })?;
    texts.finish(buf);
    if !any_top {
        clear_top_lists(buf);
    }
    Ok(TokenList {
        given,
        n_post_sampling,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{ECHO_NOT_SCORED, ECHO_SPLIT_UNKNOWN, ECHO_TEXT_UNKNOWN, POST_SAMPLING_PROBS};
    use crate::import::test_support::{assert_raw, parse, parse_as, records, strings};
    use crate::import::{Format, ImportNote, ImportOptions, TraceBatch, detect, parse_record};
    use crate::trace::TraceBuf;

    const CHAT: &[u8] = include_bytes!("../../../../tests/data/formats/openai_chat.jsonl");
    const CHAT_ARRAY: &[u8] =
        include_bytes!("../../../../tests/data/formats/openai_chat_array.json");
    const BATCH: &[u8] = include_bytes!("../../../../tests/data/formats/openai_batch.jsonl");
    const COMPLETIONS: &[u8] = include_bytes!("../../../../tests/data/formats/completions.jsonl");
    const LLAMA_CPP_PYTHON_ECHO: &[u8] =
        include_bytes!("../../../../tests/data/formats/llama_cpp_python_echo.jsonl");
    const VLLM_ECHO: &[u8] =
        include_bytes!("../../../../tests/data/formats/vllm_completions_echo.jsonl");
    const VLLM_BATCH_ERRORS: &[u8] =
        include_bytes!("../../../../tests/data/formats/vllm_run_batch_errors.jsonl");
    const LLAMACPP_POST_SAMPLING: &[u8] =
        include_bytes!("../../../../tests/data/formats/llamacpp_oai_post_sampling.jsonl");

    /// Parses a record as `format` and returns its traces and the importer's notes.
    fn parse_noted(
        format: Format,
        record: &[u8],
        keep_content: bool,
    ) -> (Vec<TraceBuf>, Vec<ImportNote>) {
        let mut out = TraceBatch::default();
        parse_record(format, record, ImportOptions { keep_content }, &mut out).unwrap();
        (out.traces().to_vec(), out.notes().to_vec())
    }

    fn note(what: &'static str, count: u64) -> ImportNote {
        ImportNote { what, count }
    }

    #[test]
    fn chat_choices_become_traces() {
        let records = records(CHAT);
        assert_eq!(records.len(), 2);

        let traces = parse(Format::Openai, &records[0]).unwrap();
        assert_eq!(traces.len(), 2);
        let first = &traces[0];
        assert_eq!(
            first.question_id.as_deref(),
            Some("chatcmpl-BvPDIA6xK562kd0001")
        );
        assert_eq!(first.text.as_deref(), Some("Answer: up"));
        assert!(!first.greedy);
        assert_eq!(first.label, None);
        assert!(first.has_logprobs);
        assert_eq!(first.tokens, strings(&["Answer", ":", " up"]));
        assert_eq!(first.n_token_strings, Some(3));
        assert_raw(&first.logprobs, &[-0.0012, -1.23e-5, -0.3567]);
        assert_eq!(first.n_top_lists(), 3);
        assert_raw(first.top_list(0), &[-0.0012, -6.75, -8.125]);
        assert_raw(first.top_list(1), &[-1.23e-5, -11.5, -12.25]);
        assert_raw(first.top_list(2), &[-0.3567, -1.2039, -3.912]);
        assert_eq!(
            first.top_tokens,
            strings(&[
                "Answer", "Final", "The", ":", " :", ":\n", " up", " down", " none"
            ])
        );

        let second = &traces[1];
        assert_eq!(
            second.question_id.as_deref(),
            Some("chatcmpl-BvPDIA6xK562kd0001")
        );
        assert_eq!(second.text.as_deref(), Some("Answer: down"));
        // OpenAI's −9999 "not in the top 20" sentinel is stored raw.
        assert_raw(&second.logprobs, &[-0.0015, -2.1e-5, -9999.0]);
        assert_raw(second.top_list(2), &[-0.0503, -3.2189, -5.875]);
        assert_eq!(second.tokens, strings(&["Answer", ":", " down"]));

        // No log-probs requested: `"logprobs": null`; the user's annotations apply.
        let traces = parse(Format::Openai, &records[1]).unwrap();
        assert_eq!(traces.len(), 1);
        let only = &traces[0];
        assert_eq!(
            only.question_id.as_deref(),
            Some("chatcmpl-BvPDIA6xK562kd0002")
        );
        assert_eq!(only.text.as_deref(), Some("Answer: none"));
        assert!(only.greedy);
        assert_eq!(only.label.as_deref(), Some("none"));
        assert!(!only.has_logprobs);
        assert!(only.logprobs.is_empty());
        assert!(!only.has_top());
        assert_eq!(only.n_token_strings, None);
    }

    #[test]
    fn chat_without_content_keeps_counts_only() {
        let records = records(CHAT);
        let traces = parse_as(Format::Openai, &records[0], false).unwrap();
        assert!(traces[0].tokens.is_empty());
        assert!(traces[0].top_tokens.is_empty());
        assert_eq!(traces[0].n_token_strings, Some(3));
        assert_raw(&traces[0].logprobs, &[-0.0012, -1.23e-5, -0.3567]);
        assert_raw(traces[0].top_list(2), &[-0.3567, -1.2039, -3.912]);
    }

    #[test]
    fn chat_array_file_is_framed_into_responses() {
        let records = records(CHAT_ARRAY);
        assert_eq!(records.len(), 2);
        let first = parse(Format::Openai, &records[0]).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(
            first[0].question_id.as_deref(),
            Some("chatcmpl-7f3a9c2e51b04d8e")
        );
        // `reasoning_content` is not the text; `content` is.
        assert_eq!(first[0].text.as_deref(), Some("Final answer: none"));
        assert_eq!(
            first[0].tokens,
            strings(&["Final", " answer", ":", " none"])
        );
        assert_raw(&first[0].logprobs, &[-0.2107, -0.0004, 0.0, -0.6917]);
        assert_raw(first[0].top_list(3), &[-0.6917, -0.7985]);

        let second = parse(Format::Openai, &records[1]).unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(
            second[0].question_id.as_deref(),
            Some("chatcmpl-0c61d8a4e2f94b17")
        );
        assert_eq!(second[0].text.as_deref(), Some("Final answer: down"));
        // `logprobs.content: null` → no log-probs.
        assert!(!second[0].has_logprobs);
        assert!(second[0].logprobs.is_empty());
    }

    #[test]
    fn batch_lines_use_custom_id_and_fail_loudly() {
        let records = records(BATCH);
        assert_eq!(records.len(), 4);

        let chat = parse(Format::OpenaiBatch, &records[0]).unwrap();
        assert_eq!(chat.len(), 2);
        assert_eq!(
            chat[0].question_id.as_deref(),
            Some("SLC35B1|PDIA6|K562__s0")
        );
        assert_eq!(
            chat[1].question_id.as_deref(),
            Some("SLC35B1|PDIA6|K562__s0")
        );
        assert_eq!(chat[0].text.as_deref(), Some("Answer: up"));
        assert_eq!(chat[1].text.as_deref(), Some("Answer: none"));
        assert_raw(&chat[0].logprobs, &[-0.0009, -3.1e-6, -0.4155]);
        assert_raw(&chat[1].logprobs, &[-0.0011, -4.5e-6, -9999.0]);
        assert_raw(chat[1].top_list(2), &[-0.1393, -2.0402]);
        assert_eq!(chat[1].tokens, strings(&["Answer", ":", " none"]));

        // A legacy Completions body in a Batch line.
        let legacy = parse(Format::OpenaiBatch, &records[1]).unwrap();
        assert_eq!(legacy.len(), 1);
        assert_eq!(
            legacy[0].question_id.as_deref(),
            Some("HSPA5|ATF6|HepG2__s1")
        );
        assert_eq!(legacy[0].text.as_deref(), Some(" down"));
        assert_eq!(legacy[0].tokens, strings(&[" down"]));
        assert_raw(&legacy[0].logprobs, &[-0.1054]);
        assert_raw(legacy[0].top_list(0), &[-0.1054, -2.3104]);
        assert_eq!(legacy[0].top_tokens, strings(&[" down", " up"]));

        let error = parse(Format::OpenaiBatch, &records[2]).unwrap_err();
        assert_eq!(
            error.message,
            "the batch request failed with HTTP status 400: This model's maximum context \
             length is 16385 tokens. However, you requested 16500 tokens. Please reduce the \
             length of the messages or completion. (code `context_length_exceeded`)"
        );
        let error = parse(Format::OpenaiBatch, &records[3]).unwrap_err();
        assert_eq!(
            error.message,
            "the batch request failed: This request could not be executed before the \
             completion window expired. (code `batch_expired`)"
        );
    }

    #[test]
    fn legacy_completions_read_every_choice() {
        let records = records(COMPLETIONS);
        assert_eq!(records.len(), 2);

        let traces = parse(Format::Completions, &records[0]).unwrap();
        assert_eq!(traces.len(), 2);
        assert_eq!(
            traces[0].question_id.as_deref(),
            Some("cmpl-9QkXc0mPDIA6K562a")
        );
        assert_eq!(traces[0].text.as_deref(), Some(" up"));
        assert_eq!(traces[0].tokens, strings(&[" up", "<|endoftext|>"]));
        assert_eq!(traces[0].n_token_strings, Some(2));
        assert_raw(&traces[0].logprobs, &[-0.2231, -0.0067]);
        assert_raw(traces[0].top_list(0), &[-0.2231, -1.7148]);
        assert_raw(traces[0].top_list(1), &[-0.0067, -5.1]);
        assert_eq!(traces[1].text.as_deref(), Some(" down"));
        assert_raw(&traces[1].logprobs, &[-1.7148, -0.0102]);
        // Not echoed: nothing is cut and nothing is noted.
        let (_, notes) = parse_noted(Format::Completions, &records[0], false);
        assert!(notes.is_empty(), "{notes:?}");
    }

    // echo=true on OpenAI's legacy endpoint: `text` and the log-probs start with the prompt,
    // whose first token has `null` log-prob and top list; `usage.completion_tokens` counts
    // the completion's own tokens.
    #[test]
    fn legacy_echo_scores_only_the_completion() {
        let records = records(COMPLETIONS);
        for keep_content in [true, false] {
            let (traces, notes) = parse_noted(Format::Completions, &records[1], keep_content);
            assert_eq!(traces.len(), 1);
            let echo = &traces[0];
            assert_eq!(echo.text.as_deref(), Some(" up"));
            assert_raw(&echo.logprobs, &[-0.2231]);
            assert!(echo.has_logprobs);
            assert_eq!(echo.n_token_strings, Some(1));
            assert_eq!(echo.n_top_lists(), 1);
            assert_raw(echo.top_list(0), &[-0.2231, -1.7148]);
            assert_eq!(notes, vec![note(ECHO_NOT_SCORED, 2)]);
            if keep_content {
                assert_eq!(echo.tokens, strings(&[" up"]));
                assert_eq!(echo.top_tokens, strings(&[" up", " down"]));
                assert_eq!(echo.prompt.as_deref(), Some("Answer:"));
            } else {
                assert!(echo.tokens.is_empty());
                assert_eq!(echo.prompt, None);
            }
        }
    }

    // llama-cpp-python 0.3.36's own `Llama._create_completion` (llama_cpp/llama.py:1722-1807),
    // run on a stand-in byte-level model (scripts/fixtures/llama_cpp_python_echo.py): lines
    // 1, 3 are echo=True, lines 2, 4 the same generations without echo, line 5 echo=True cut
    // off by max_tokens. The echo leaves the BOS token out (llama.py:1737-1742) but counts
    // it in `usage.prompt_tokens` (llama.py:1803-1807).
    #[test]
    fn llama_cpp_python_echo_matches_the_same_completion_without_echo() {
        let records = records(LLAMA_CPP_PYTHON_ECHO);
        assert_eq!(records.len(), 5);
        let prompt = "Q: Does PDIA6 knock-down change SLC35B1 in K562?\nA:";
        for (echo_idx, plain_idx, text) in [(0, 1, " Answer: up"), (2, 3, " Answer: \u{e9}up")] {
            for keep_content in [true, false] {
                let (plain, plain_notes) =
                    parse_noted(Format::Completions, &records[plain_idx], keep_content);
                assert!(plain_notes.is_empty());
                let (echo, notes) =
                    parse_noted(Format::Completions, &records[echo_idx], keep_content);
                assert_eq!(notes, vec![note(ECHO_NOT_SCORED, 51)]);
                let (plain, echo) = (&plain[0], &echo[0]);
                // The echoed record's completion entries are the plain record's, bit for bit.
                assert_raw(&echo.logprobs, &plain.logprobs);
                assert_eq!(echo.top_offsets, plain.top_offsets);
                assert_raw(&echo.top_values, &plain.top_values);
                assert_eq!(echo.n_token_strings, plain.n_token_strings);
                assert_eq!(echo.tokens, plain.tokens);
                assert_eq!(echo.top_tokens, plain.top_tokens);
                assert_eq!(echo.text.as_deref(), Some(text));
                assert_eq!(plain.text.as_deref(), Some(text));
                let expected_prompt = keep_content.then_some(prompt);
                assert_eq!(echo.prompt.as_deref(), expected_prompt);
            }
        }
        // Cut off by max_tokens: 66 entries, 15 generated.
        let (traces, notes) = parse_noted(Format::Completions, &records[4], false);
        assert_eq!(notes, vec![note(ECHO_NOT_SCORED, 51)]);
        assert_eq!(traces[0].logprobs.len(), 15);
        assert_eq!(traces[0].text.as_deref(), Some(" Answer: up and"));
    }

    // vLLM 0.33 `request_output_to_completion_response` with echo
    // (entrypoints/openai/completion/serving.py:586-632): the prompt's tokens, BOS included,
    // then the output's; `prompt_logprobs` beside the choice has one entry per prompt token
    // (scripts/fixtures/vllm_fixtures.py).
    #[test]
    fn vllm_echo_is_cut_by_its_prompt_logprobs() {
        let records = records(VLLM_ECHO);
        assert_eq!(records.len(), 4);
        let prompt = "Does PDIA6 knock-down change SLC35B1? Answer:";

        let (traces, notes) = parse_noted(Format::Completions, &records[0], true);
        assert_eq!(notes, vec![note(ECHO_NOT_SCORED, 16)]);
        assert_eq!(traces[0].text.as_deref(), Some(" up"));
        assert_eq!(traces[0].prompt.as_deref(), Some(prompt));
        assert_raw(&traces[0].logprobs, &[-0.2231, -0.0067]);
        assert_eq!(traces[0].tokens, strings(&[" up", ""]));
        assert_raw(traces[0].top_list(0), &[-0.2231, -1.7148]);

        // n=2: both choices echo the prompt.
        let (traces, notes) = parse_noted(Format::Completions, &records[1], false);
        assert_eq!(notes, vec![note(ECHO_NOT_SCORED, 32)]);
        assert_eq!(traces[0].text.as_deref(), Some(" up"));
        assert_eq!(traces[1].text.as_deref(), Some(" down."));
        assert_raw(&traces[1].logprobs, &[-1.7148, -0.4055, -0.0102]);
        assert_eq!(traces[1].n_token_strings, Some(3));

        // max_tokens=0: only the prompt, though `usage` counts one generated token (which
        // would wrongly leave the prompt's last token in).
        let (traces, notes) = parse_noted(Format::Completions, &records[2], true);
        assert_eq!(notes, vec![note(ECHO_NOT_SCORED, 16)]);
        assert!(traces[0].logprobs.is_empty());
        assert!(!traces[0].has_top());
        assert_eq!(traces[0].text.as_deref(), Some(""));
        assert_eq!(traces[0].prompt.as_deref(), Some(prompt));

        // return_token_ids: no prompt text is echoed, the prompt's ids are given.
        let (traces, notes) = parse_noted(Format::Completions, &records[3], true);
        assert_eq!(notes, vec![note(ECHO_NOT_SCORED, 16)]);
        assert_eq!(traces[0].text.as_deref(), Some(" up"));
        assert_eq!(traces[0].prompt, None);
        assert_raw(&traces[0].logprobs, &[-0.2231, -0.0067]);
    }

    /// A legacy echo response of `choices` (each `[text, tokens, logprobs]`) and `usage`.
    fn echo_record(choices: &[(&str, &[&str], &[f64])], usage: &str) -> Vec<u8> {
        let choices: Vec<String> = choices
            .iter()
            .enumerate()
            .map(|(index, (text, tokens, logprobs))| {
                let logprobs: Vec<String> = logprobs
                    .iter()
                    .map(|value| if value.is_nan() { "null".to_owned() } else { value.to_string() })
                    .collect();
                format!(
                    r#"{{"text":{text:?},"index":{index},"logprobs":{{"tokens":{tokens:?},"token_logprobs":[{}],"top_logprobs":null}},"finish_reason":"stop"}}"#,
                    logprobs.join(",")
                )
            })
            .collect();
        format!(
            r#"{{"id":"cmpl-echo","object":"text_completion","model":"gpt-3.5-turbo-instruct","choices":[{}]{usage}}}"#,
            choices.join(",")
        )
        .into_bytes()
    }

    // OpenAI (and SGLang, usage_processor.py:25-31) count a prompt's tokens once for n > 1.
    #[test]
    fn echo_with_several_samples_of_one_prompt_uses_the_prompt_count() {
        let nan = f64::NAN;
        let record = echo_record(
            &[
                ("Answer: up", &["Answer", ":", " up"], &[nan, -0.01, -0.2]),
                (
                    "Answer: down.",
                    &["Answer", ":", " down", "."],
                    &[nan, -0.01, -1.7, -0.3],
                ),
            ],
            r#","usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}"#,
        );
        let (traces, notes) = parse_noted(Format::Completions, &record, false);
        assert_eq!(notes, vec![note(ECHO_NOT_SCORED, 4)]);
        assert_eq!(traces[0].text.as_deref(), Some(" up"));
        assert_raw(&traces[0].logprobs, &[-0.2]);
        assert_eq!(traces[1].text.as_deref(), Some(" down."));
        assert_raw(&traces[1].logprobs, &[-1.7, -0.3]);
    }

    #[test]
    fn a_null_first_value_that_usage_counts_as_generated_is_no_echo() {
        let nan = f64::NAN;
        let one: &[(&str, &[&str], &[f64])] = &[(" up", &[" up", "<|endoftext|>"], &[nan, -0.01])];
        let record = echo_record(
            one,
            r#","usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}"#,
        );
        let (traces, notes) = parse_noted(Format::Completions, &record, false);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(traces[0].text.as_deref(), Some(" up"));
        assert_raw(&traces[0].logprobs, &[nan, -0.01]);
    }

    #[test]
    fn echo_without_a_known_split_leaves_the_log_probs_out() {
        let nan = f64::NAN;
        let two_prompts: &[(&str, &[&str], &[f64])] = &[
            ("Answer: up", &["Answer", ":", " up"], &[nan, -0.01, -0.2]),
            (
                "Final answer: down",
                &["Final", " answer", ":", " down"],
                &[nan, -0.5, -0.01, -1.7],
            ),
        ];
        // Two prompts in one request: usage totals do not say which tokens are whose.
        let record = echo_record(
            two_prompts,
            r#","usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}"#,
        );
        let (traces, notes) = parse_noted(Format::Completions, &record, true);
        assert_eq!(
            notes,
            vec![note(ECHO_TEXT_UNKNOWN, 2), note(ECHO_SPLIT_UNKNOWN, 7)]
        );
        for trace in &traces {
            assert!(!trace.has_logprobs);
            assert!(trace.logprobs.is_empty());
            assert!(trace.tokens.is_empty());
            assert_eq!(trace.n_token_strings, None);
            assert_eq!(trace.text, None);
        }
        // No usage at all.
        let one: &[(&str, &[&str], &[f64])] =
            &[("Answer: up", &["Answer", ":", " up"], &[nan, -0.01, -0.2])];
        let (traces, notes) = parse_noted(Format::Completions, &echo_record(one, ""), false);
        assert_eq!(
            notes,
            vec![note(ECHO_TEXT_UNKNOWN, 1), note(ECHO_SPLIT_UNKNOWN, 3)]
        );
        assert!(!traces[0].has_logprobs);
        // A usage that does not fit: 2 echoed entries, but 10 prompt tokens.
        let record = echo_record(
            one,
            r#","usage":{"prompt_tokens":10,"completion_tokens":1,"total_tokens":11}"#,
        );
        let (traces, notes) = parse_noted(Format::Completions, &record, false);
        assert_eq!(
            notes,
            vec![note(ECHO_TEXT_UNKNOWN, 1), note(ECHO_SPLIT_UNKNOWN, 3)]
        );
        assert!(traces[0].logprobs.is_empty());
        // The record's own `prompt` still tells where the text's prompt ends.
        let mut record = echo_record(one, "");
        record.pop();
        record.extend_from_slice(br#","prompt":"Answer:"}"#);
        let (traces, notes) = parse_noted(Format::Completions, &record, true);
        assert_eq!(notes, vec![note(ECHO_SPLIT_UNKNOWN, 3)]);
        assert_eq!(traces[0].text.as_deref(), Some(" up"));
        assert_eq!(traces[0].prompt.as_deref(), Some("Answer:"));
        assert!(traces[0].logprobs.is_empty());
    }

    // llama.cpp tools/server/server-task.cpp:264-298 (llama-cpp-python 0.3.36 sdist): with
    // `post_sampling_probs` each token has `prob` and `top_probs` (probabilities after the
    // sampler chain; zero ones left out, server-context.cpp:1948-1975); the chat and the
    // legacy endpoint both put them in `logprobs.content` (server-task.cpp:370-383, 425-436).
    #[test]
    fn llama_cpp_post_sampling_probs_are_read_as_their_log() {
        let records = records(LLAMACPP_POST_SAMPLING);
        assert_eq!(records.len(), 2);
        assert_eq!(detect(&records[0]), Some(Format::Openai));
        let (traces, notes) = parse_noted(Format::Openai, &records[0], true);
        assert_eq!(notes, vec![note(POST_SAMPLING_PROBS, 3)]);
        let chat = &traces[0];
        assert_eq!(chat.text.as_deref(), Some("Answer: up"));
        assert!(chat.has_logprobs);
        let (answer, colon, up) = (
            0.991_727_948_188_781_7_f64,
            1.0_f64,
            0.770_294_666_290_283_2_f64,
        );
        assert_raw(&chat.logprobs, &[answer.ln(), colon.ln(), up.ln()]);
        assert_raw(
            chat.top_list(0),
            &[answer.ln(), 0.008_272_051_811_218_262_f64.ln()],
        );
        assert_raw(chat.top_list(1), &[0.0]);
        assert_raw(
            chat.top_list(2),
            &[up.ln(), 0.180_204_316_973_686_22_f64.ln()],
        );
        assert_eq!(chat.tokens, strings(&["Answer", ":", " up"]));
        assert_eq!(
            chat.top_tokens,
            strings(&["Answer", "Final", ":", " up", " down"])
        );

        assert_eq!(detect(&records[1]), Some(Format::Completions));
        let (traces, notes) = parse_noted(Format::Completions, &records[1], false);
        assert_eq!(notes, vec![note(POST_SAMPLING_PROBS, 1)]);
        assert_eq!(traces[0].text.as_deref(), Some(" down"));
        assert_raw(&traces[0].logprobs, &[0.6213_f64.ln()]);
        assert_raw(traces[0].top_list(0), &[0.6213_f64.ln(), 0.3787_f64.ln()]);
    }

    // vLLM run_batch: `make_error_request_output` (0.33 launchers/run_batch.py:588-600) writes
    // a string `error` and `"body": null`; a handler's ErrorResponse goes to `error`, nested
    // (0.33 run_batch.py:628-637, serve/engine/protocol.py:79-87) or flat (0.6.6.post1
    // openai/run_batch.py:177-185, openai/protocol.py:65-70).
    #[test]
    fn vllm_run_batch_error_lines_report_the_error_vllm_wrote() {
        let records = records(VLLM_BATCH_ERRORS);
        let messages: Vec<String> = records
            .iter()
            .map(|record| parse(Format::OpenaiBatch, record).unwrap_err().message)
            .collect();
        assert_eq!(
            messages,
            vec![
                "the batch request failed: Request must not be sent in stream mode".to_owned(),
                "the batch request failed: This model's maximum context length is 2048 tokens. \
                 However, you requested 2113 tokens (65 in the messages, 2048 in the \
                 completion). Please reduce the length of the messages or completion. (code \
                 `400`)"
                    .to_owned(),
                "the batch request failed: The model `llama-3` does not exist. (code `404`)"
                    .to_owned(),
            ]
        );
    }

    #[test]
    fn batch_bodies_that_are_errors_or_null_name_the_reason() {
        let record = br#"{"id":"b1","custom_id":"q1","response":{"status_code":400,"request_id":"r1","body":{"object":"error","message":"max_tokens must be at least 1, got 0.","type":"BadRequestError","param":null,"code":400}},"error":null}"#;
        let error = parse(Format::OpenaiBatch, record).unwrap_err();
        assert_eq!(
            error.message,
            "the batch request failed with HTTP status 400: max_tokens must be at least 1, got \
             0. (code `400`)"
        );
        let record = br#"{"id":"b1","custom_id":"q1","response":{"status_code":200,"request_id":"r1","body":null},"error":null}"#;
        let error = parse(Format::OpenaiBatch, record).unwrap_err();
        assert_eq!(error.message, "the batch response has no `body`");
    }

    #[test]
    fn a_prompt_annotation_is_kept_only_with_content() {
        let record = br#"{"id":"chatcmpl-1","object":"chat.completion","prompt":"Does PDIA6 knock-down change SLC35B1?","choices":[{"index":0,"message":{"role":"assistant","content":"up"}}]}"#;
        let traces = parse_as(Format::Openai, record, true).unwrap();
        assert_eq!(
            traces[0].prompt.as_deref(),
            Some("Does PDIA6 knock-down change SLC35B1?")
        );
        let traces = parse_as(Format::Openai, record, false).unwrap();
        assert_eq!(traces[0].prompt, None);
        // A Batch line's own `prompt` applies to its body's traces.
        let record = br#"{"id":"b1","custom_id":"q1","prompt":"Does PDIA6 knock-down change SLC35B1?","response":{"status_code":200,"body":{"id":"c1","choices":[{"index":0,"message":{"content":"up"}}]}},"error":null}"#;
        let traces = parse_as(Format::OpenaiBatch, record, true).unwrap();
        assert_eq!(
            traces[0].prompt.as_deref(),
            Some("Does PDIA6 knock-down change SLC35B1?")
        );
    }

    #[test]
    fn legacy_length_mismatch_is_left_to_the_caller() {
        let record = br#"{"id":"cmpl-x","object":"text_completion","choices":[{"text":" up","index":0,"logprobs":{"tokens":[" up","<|endoftext|>"],"token_logprobs":[-0.2],"top_logprobs":null,"text_offset":[0,3]},"finish_reason":"stop"}]}"#;
        let traces = parse(Format::Completions, record).unwrap();
        assert_eq!(traces[0].n_token_strings, Some(2));
        assert_raw(&traces[0].logprobs, &[-0.2]);
        assert!(!traces[0].has_top());
    }

    #[test]
    fn wrong_types_name_the_field() {
        let record = br#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"up"},"logprobs":"x","finish_reason":"stop"}]}"#;
        let error = parse(Format::Openai, record).unwrap_err();
        assert_eq!(
            error.message,
            "field `choices.logprobs`: expected an object or null, found a string"
        );

        let record = br#"{"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assistant","content":"up"},"logprobs":{"content":[{"token":"up","logprob":"-0.1","top_logprobs":[]}]}}]}"#;
        let error = parse(Format::Openai, record).unwrap_err();
        assert_eq!(
            error.message,
            "field `choices.logprobs.content`: expected a number, found a string"
        );

        let record = br#"{"id":"chatcmpl-1","choices":[{"index":0,"message":{"content":7}}]}"#;
        let error = parse(Format::Openai, record).unwrap_err();
        assert_eq!(
            error.message,
            "field `choices.message.content`: expected a string, found a number"
        );

        let record =
            br#"{"id":"cmpl-1","choices":[{"text":"up","logprobs":{"token_logprobs":{"a":1}}}]}"#;
        let error = parse(Format::Completions, record).unwrap_err();
        assert_eq!(
            error.message,
            "field `choices.logprobs.token_logprobs`: expected an array of numbers, found an object"
        );

        let record = br#"{"id":"x","custom_id":"q1","response":{"status_code":200,"body":{"id":"c","choices":[]}},"error":null,"greedy":"yes"}"#;
        let error = parse(Format::OpenaiBatch, record).unwrap_err();
        assert_eq!(
            error.message,
            "field `greedy`: expected a boolean, found a string"
        );
    }

    #[test]
    fn responses_without_choices_and_stream_chunks_are_rejected() {
        let record = br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        let error = parse_as(Format::Openai, record, false).unwrap_err();
        assert_eq!(
            error.message,
            "the request failed: Incorrect API key provided (code `invalid_api_key`)"
        );
        let error = parse_as(Format::Openai, br#"{"id":"chatcmpl-1"}"#, false).unwrap_err();
        assert_eq!(error.message, "the OpenAI response has no `choices`");
        let record = br#"{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"up"},"logprobs":null}]}"#;
        let error = parse(Format::Openai, record).unwrap_err();
        assert!(
            error.message.starts_with("this is a streaming chunk"),
            "{}",
            error.message
        );
        let record = br#"{"id":"x","custom_id":"q1","response":null,"error":null}"#;
        let error = parse(Format::OpenaiBatch, record).unwrap_err();
        assert_eq!(
            error.message,
            "the batch request failed: the line has no `response`"
        );
    }
}
