//! OpenAI: Chat Completions response objects, Batch API output lines, and legacy
//! Completions objects. One trace per choice.
//!
//! The chat and legacy shapes share one reader, which tells them apart per choice:
//! a chat choice has `message` and `logprobs.content[]`, a legacy choice has `text` and
//! `logprobs.{tokens, token_logprobs, top_logprobs}`. A Batch line wraps either one.

use jiter::{Jiter, Peek};

use crate::import::{
    ImportOptions, RecordCommon, TokenTexts, TraceBatch, clear_top_lists, for_each_member_or_null,
    for_each_response, read_token_text, read_top_list, set_question_id,
};
use crate::json::{self, Ctx, RecordError, RecordResult};
use crate::trace::TraceBuf;

/// A Chat Completions (`"object": "chat.completion"`) or legacy Completions
/// (`"object": "text_completion"`) response object; the shape is told per choice.
pub(super) fn parse_response_object(
    record: &[u8],
    options: ImportOptions,
    out: &mut TraceBatch,
) -> RecordResult<()> {
    for_each_response(record, |jiter| parse_plain_response(jiter, options, out))
}

/// One line of a Batch API output (or error) file:
/// `{id, custom_id, response: {status_code, request_id, body}, error}`.
pub(super) fn parse_batch(
    record: &[u8],
    options: ImportOptions,
    out: &mut TraceBatch,
) -> RecordResult<()> {
    for_each_response(record, |jiter| parse_batch_line(jiter, options, out))
}

/// The `error` object of an API response or a Batch line.
#[derive(Debug, Default)]
struct ApiError {
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

/// Reads an `error` value: `null` → None, an object with `message`/`code`, or a bare string.
fn read_api_error(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<Option<ApiError>> {
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
            json::for_each_member(jiter, field, |jiter, key| {
                match key {
                    "message" => error.message = json::next_id(jiter, field)?,
                    "code" => error.code = json::next_id(jiter, field)?,
                    _ => jiter.next_skip().ctx(field)?,
                }
                Ok(())
            })?;
            Ok(Some(error))
        }
        other => Err(json::wrong_type(
            field,
            "an error object",
            other,
            jiter.current_index(),
        )),
    }
}

/// What a response object said about itself besides its choices.
#[derive(Debug, Default)]
struct ResponseInfo {
    id: Option<String>,
    has_choices: bool,
    error: Option<ApiError>,
}

/// A bare response object (chat or legacy), as a line of its own.
fn parse_plain_response(
    jiter: &mut Jiter<'_>,
    options: ImportOptions,
    out: &mut TraceBatch,
) -> RecordResult<()> {
    let first = out.traces().len();
    let mut common = RecordCommon::default();
    let info = parse_response(jiter, "(record)", options, out, Some(&mut common))?;
    if let Some(error) = info.error {
        return Err(RecordError::new(format!("the request failed: {error}"), 0));
    }
    if !info.has_choices {
        return Err(RecordError::new("the OpenAI response has no `choices`", 0));
    }
    set_question_id(out, first, info.id.as_deref());
    common.apply(out, first);
    Ok(())
}

/// One Batch output line. Its `custom_id` is the question id; a failed request (an
/// `error`, no `response`, or a status other than 200) is an error naming the reason.
fn parse_batch_line(
    jiter: &mut Jiter<'_>,
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
    json::for_each_member(jiter, "(record)", |jiter, key| {
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
    if !body.has_choices {
        return Err(RecordError::new(
            "the batch response body has no `choices`",
            0,
        ));
    }
    // The request's `custom_id` names the question; the body's `id` only names the response.
    let question_id = custom_id.or(body.id);
    for trace in out.traces_mut().iter_mut().skip(first) {
        trace.question_id.clone_from(&question_id);
    }
    common.apply(out, first);
    Ok(())
}

/// Reads a response object, pushing one trace per choice. `common` reads the record-level
/// annotations where the response is the record itself (not a Batch line's body).
fn parse_response(
    jiter: &mut Jiter<'_>,
    field: &str,
    options: ImportOptions,
    out: &mut TraceBatch,
    mut common: Option<&mut RecordCommon>,
) -> RecordResult<ResponseInfo> {
    let mut info = ResponseInfo::default();
    json::for_each_member(jiter, field, |jiter, key| {
        if let Some(common) = common.as_deref_mut()
            && common.read(jiter, key, options)?
        {
            return Ok(());
        }
        match key {
            "id" => info.id = json::next_id(jiter, key)?,
            "choices" => {
                info.has_choices = json::for_each_element(jiter, "choices", |jiter, _peek| {
                    parse_choice(jiter, options, out.push())
                })?;
            }
            "error" => info.error = read_api_error(jiter, "error")?,
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })?;
    Ok(info)
}

/// One element of `choices`, chat or legacy.
fn parse_choice(
    jiter: &mut Jiter<'_>,
    options: ImportOptions,
    buf: &mut TraceBuf,
) -> RecordResult<()> {
    let keep = options.keep_content;
    // Legacy `top_logprobs`: None when absent, else whether it was a list.
    let mut legacy_top: Option<bool> = None;
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
            "logprobs" => {
                for_each_member_or_null(jiter, "choices.logprobs", |jiter, key| {
                    match key {
                        // Chat: one object per token.
                        "content" => {
                            buf.has_logprobs =
                                read_token_objects(jiter, "choices.logprobs.content", keep, buf)?;
                        }
                        // Legacy: parallel arrays; the caller checks their lengths.
                        "tokens" => {
                            buf.n_token_strings = json::next_string_array(
                                jiter,
                                "choices.logprobs.tokens",
                                keep,
                                &mut buf.tokens,
                            )?;
                        }
                        "token_logprobs" => {
                            buf.has_logprobs = json::next_f64_array(
                                jiter,
                                "choices.logprobs.token_logprobs",
                                &mut buf.logprobs,
                            )?;
                        }
                        "top_logprobs" => {
                            let field = "choices.logprobs.top_logprobs";
                            buf.begin_top_lists();
                            let given = json::for_each_element(jiter, field, |jiter, peek| {
                                read_top_list(jiter, peek, field, keep, buf)
                            })?;
                            legacy_top = Some(given);
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
    Ok(())
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
    buf.logprobs.clear();
    buf.tokens.clear();
    buf.begin_top_lists();
    let mut texts = TokenTexts::default();
    let mut any_top = false;
    let given = json::for_each_element(jiter, field, |jiter, _peek| {
        let mut logprob = f64::NAN;
        let mut token = String::new();
        let mut has_token = false;
        let mut has_top = false;
        json::for_each_member(jiter, field, |jiter, key| {
            match key {
                "token" => has_token = read_token_text(jiter, field, keep, &mut token)?,
                "logprob" => {
                    let peek = jiter.peek().ctx(field)?;
                    logprob = json::known_f64_or_null(jiter, peek, field)?;
                }
                "top_logprobs" if !has_top => {
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
        buf.logprobs.push(logprob);
        texts.push(buf, keep, has_token, token);
        Ok(())
    })?;
    texts.finish(buf);
    if !any_top {
        clear_top_lists(buf);
    }
    Ok(given)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::import::Format;
    use crate::import::test_support::{assert_raw, parse, parse_as, records, strings};

    const CHAT: &[u8] = include_bytes!("../../../../tests/data/formats/openai_chat.jsonl");
    const CHAT_ARRAY: &[u8] =
        include_bytes!("../../../../tests/data/formats/openai_chat_array.json");
    const BATCH: &[u8] = include_bytes!("../../../../tests/data/formats/openai_batch.jsonl");
    const COMPLETIONS: &[u8] = include_bytes!("../../../../tests/data/formats/completions.jsonl");

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
    fn legacy_completions_keep_the_echo_null() {
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

        // echo=true: the prompt's first token has no log-prob (null → NaN, and an empty list).
        let traces = parse(Format::Completions, &records[1]).unwrap();
        assert_eq!(traces.len(), 1);
        let echo = &traces[0];
        assert_eq!(echo.text.as_deref(), Some("Answer: up"));
        assert_eq!(echo.tokens, strings(&["Answer", ":", " up"]));
        assert_raw(&echo.logprobs, &[f64::NAN, -0.0021, -0.2231]);
        assert_eq!(echo.n_top_lists(), 3);
        assert_raw(echo.top_list(0), &[]);
        assert_raw(echo.top_list(1), &[-0.0021, -6.3]);
        assert_eq!(echo.top_tokens, strings(&[":", " is", " up", " down"]));
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
