//! Ollama `/api/generate` (`{model, created_at, response, thinking?, done, …, logprobs}`)
//! and `/api/chat` (`{model, created_at, message: {role, content, thinking?}, done, …,
//! logprobs}`) responses, with `logprobs: [{token, logprob, bytes, top_logprobs: [{token,
//! logprob, bytes}]}]` (requested with `"logprobs": true, "top_logprobs": k`). One trace per
//! response.
//!
//! Sources: github:ollama/ollama at fb30760 (2026-08), api/types.go and server/routes.go;
//! its Go runners as of 9db4bdbad^ (v0.12.11, the first with log-probs, to v0.29).
//! - A response is the fold of the generation's chunks (routes.go:750-787 generate,
//!   2387-2428 chat): `thinking` and `response` (or `message.thinking` and `.content`)
//!   are each concatenated, `logprobs` appended chunk after chunk. The log-probs come from
//!   the raw completion, before the thinking parser splits its text
//!   (routes.go:670-700), so they cover the thinking's tokens and then the response's, in
//!   the order generated. The thinking is the reasoning trace: the trace's text is the
//!   thinking, then the response (whose final answer comes last, so it is the one found).
//! - `eval_count` counts every generated token; `logprobs` leaves some out: the
//!   end-of-sequence token and a matched stop sequence (runner/ollamarunner/runner.go:775-
//!   822 before v0.30), and with the llama-server engine of v0.30 on, tokens that add no
//!   text (llm/llama_server.go:1705 drops a chunk with empty content; for chat, llama.cpp
//!   sends no chunk for a token without a text delta, server-task.cpp:1144-1158 in the
//!   llama-cpp-python 0.3.36 sdist). The difference is counted in the report.
//! - A model load or unload (`done_reason` `load`/`unload`, routes.go:403-414, 477-485)
//!   answers with no generation; it is refused with that reason.

use jiter::Jiter;

use crate::import::llamacpp::next_count;
use crate::import::openai::{read_api_error, read_token_objects};
use crate::import::{
    ImportOptions, RecordCommon, TraceBatch, for_each_member_or_null, for_each_response,
};
use crate::json::{self, Ctx, RecordError, RecordResult};

/// Report note: the thinking is kept as the trace's text.
pub(crate) const THINKING_IN_TEXT: &str = "Ollama thinking kept as the trace's text, before \
     the response: the reasoning is the trace, and `logprobs` cover the thinking's tokens \
     and then the response's, in the order generated (count: traces)";

/// Report note: generated tokens that `logprobs` leaves out.
pub(crate) const TOKENS_WITHOUT_LOGPROBS: &str = "Ollama generated tokens without log-probs, \
     not scored: `eval_count` counts tokens that `logprobs` leaves out (the end-of-sequence \
     token, a matched stop sequence and, with the llama-server engine of v0.30 on, tokens \
     that add no text such as thinking tags) (count: tokens)";

pub(super) fn parse(
    record: &[u8],
    options: ImportOptions,
    out: &mut TraceBatch,
) -> RecordResult<()> {
    for_each_response(record, |jiter| parse_response(jiter, options, out))
}

fn parse_response(
    jiter: &mut Jiter<'_>,
    options: ImportOptions,
    out: &mut TraceBatch,
) -> RecordResult<()> {
    let first = out.traces().len();
    let buf = out.push();
    let mut common = RecordCommon::default();
    let mut done = None;
    let mut done_reason = None;
    let mut thinking = None;
    let mut eval_count = None;
    let mut server_error = None;
    json::for_each_member(jiter, "(record)", |jiter, key| {
        if common.read(jiter, key, options)? {
            return Ok(());
        }
        match key {
            "response" => buf.text = json::next_opt_string(jiter, key)?,
            "thinking" => thinking = json::next_opt_string(jiter, key)?,
            "message" => {
                for_each_member_or_null(jiter, "message", |jiter, key| {
                    match key {
                        "content" => buf.text = json::next_opt_string(jiter, "message.content")?,
                        "thinking" => thinking = json::next_opt_string(jiter, "message.thinking")?,
                        _ => jiter.next_skip().ctx(key)?,
                    }
                    Ok(())
                })?;
            }
            // Not Ollama's: a user's own question id, kept when present.
            "id" => buf.question_id = json::next_id(jiter, key)?,
            // What the server writes instead of a response when the request failed.
            "error" => server_error = read_api_error(jiter, key)?,
            "done" => done = json::next_opt_bool(jiter, key)?,
            "done_reason" => done_reason = json::next_opt_string(jiter, key)?,
            "eval_count" => eval_count = next_count(jiter, key)?,
            "logprobs" => {
                buf.has_logprobs =
                    read_token_objects(jiter, "logprobs", options.keep_content, buf)?;
            }
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })?;
    if let Some(error) = server_error {
        return Err(RecordError::new(
            format!("the server answered with an error: {error}"),
            0,
        ));
    }
    if done == Some(false) {
        return Err(RecordError::new(
            "this is a streaming chunk (`\"done\": false`), one piece of a response; save the \
             complete response (`\"stream\": false`) instead",
            0,
        ));
    }
    let is_load = matches!(done_reason.as_deref(), Some("load" | "unload"));
    if is_load && !buf.has_logprobs && buf.text.as_deref().unwrap_or_default().is_empty() {
        return Err(RecordError::new(
            format!(
                "an Ollama model {} reply (`\"done_reason\": \"{}\"`), not a generation",
                done_reason.as_deref().unwrap_or_default(),
                done_reason.as_deref().unwrap_or_default()
            ),
            0,
        ));
    }
    let n_logprobs = buf.logprobs.len() as u64;
    let has_logprobs = buf.has_logprobs;
    let thinking = thinking.filter(|thinking| !thinking.is_empty());
    let has_thinking = thinking.is_some();
    if let Some(thinking) = thinking {
        buf.text = Some(match buf.text.take().filter(|text| !text.is_empty()) {
            Some(response) => format!("{}\n\n{response}", thinking.trim_end()),
            None => thinking,
        });
    }
    common.apply(out, first);
    if has_thinking {
        out.note(THINKING_IN_TEXT, 1);
    }
    if let (true, Some(eval_count)) = (has_logprobs, eval_count) {
        out.note(
            TOKENS_WITHOUT_LOGPROBS,
            eval_count.saturating_sub(n_logprobs),
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::import::test_support::{assert_raw, parse, parse_as, records, strings};
    use crate::import::{Format, ImportNote};
    use crate::trace::TraceBuf;

    const FIXTURE: &[u8] = include_bytes!("../../../../tests/data/formats/ollama.jsonl");
    /// `think: true` on /api/generate and /api/chat, then a model load reply.
    const THINKING: &[u8] = include_bytes!("../../../../tests/data/formats/ollama_thinking.jsonl");

    fn parse_with_notes(record: &[u8]) -> (Vec<TraceBuf>, Vec<ImportNote>) {
        crate::import::test_support::parse_with_notes(Format::Ollama, record)
    }

    fn note(what: &'static str, count: u64) -> ImportNote {
        ImportNote { what, count }
    }

    #[test]
    fn generate_response() {
        let records = records(FIXTURE);
        assert_eq!(records.len(), 2);
        let traces = parse(Format::Ollama, &records[0]).unwrap();
        assert_eq!(traces.len(), 1);
        let trace = &traces[0];
        assert_eq!(trace.question_id, None);
        assert_eq!(trace.text.as_deref(), Some("Answer: down"));
        assert!(!trace.greedy);
        assert!(trace.has_logprobs);
        assert_eq!(trace.tokens, strings(&["Answer", ":", " down"]));
        assert_eq!(trace.n_token_strings, Some(3));
        assert_raw(&trace.logprobs, &[-0.0141, -0.0003, -0.4463]);
        assert_raw(trace.top_list(0), &[-0.0141, -4.27]);
        assert_raw(trace.top_list(2), &[-0.4463, -1.0217]);
        assert_eq!(
            trace.top_tokens,
            strings(&["Answer", "Final", ":", " -", " down", " up"])
        );
    }

    #[test]
    fn chat_response() {
        let records = records(FIXTURE);
        let traces = parse(Format::Ollama, &records[1]).unwrap();
        assert_eq!(traces.len(), 1);
        let trace = &traces[0];
        assert_eq!(trace.question_id.as_deref(), Some("CDKN1A|TP53|MCF7"));
        assert!(trace.greedy);
        assert_eq!(trace.label.as_deref(), Some("down"));
        // The thinking, then `message.content`.
        assert_eq!(
            trace.text.as_deref(),
            Some(
                "TP53 loss removes the main transactivator of CDKN1A (p21), so p21 falls.\n\n\
                 Answer: down"
            )
        );
        assert_eq!(trace.tokens, strings(&["Answer", ":", " down"]));
        assert_raw(&trace.logprobs, &[-0.0002, 0.0, -0.0513]);
        assert_raw(trace.top_list(2), &[-0.0513, -2.9957, -6.2146]);
    }

    #[test]
    fn stream_chunks_and_wrong_types_are_errors() {
        let record = br#"{"model":"llama3.2","created_at":"2025-11-12T10:00:00Z","response":" up","done":false,"logprobs":[{"token":" up","logprob":-0.2,"bytes":[32,117,112],"top_logprobs":[]}]}"#;
        let error = parse(Format::Ollama, record).unwrap_err();
        assert!(
            error.message.starts_with("this is a streaming chunk"),
            "{}",
            error.message
        );
        let record = br#"{"model":"llama3.2","response":"up","done":true,"logprobs":"x"}"#;
        let error = parse(Format::Ollama, record).unwrap_err();
        assert_eq!(
            error.message,
            "field `logprobs`: expected an array, found a string"
        );
        let record = br#"{"model":"llama3.2","message":["up"],"done":true}"#;
        let error = parse(Format::Ollama, record).unwrap_err();
        assert_eq!(
            error.message,
            "field `message`: expected an object or null, found an array"
        );
    }

    // routes.go:750-787 (github:ollama/ollama fb30760): the response is the fold of the
    // chunks, `logprobs` appended in order; each chunk's log-probs come from the raw
    // completion (routes.go:670-684) before the thinking parser splits its text
    // (686-700), so they cover `<think>`, the thinking, `</think>` and the response.
    #[test]
    fn the_thinking_is_the_trace_and_every_logprob_is_scored() {
        let records = records(THINKING);
        assert_eq!(records.len(), 3);
        let (traces, notes) = parse_with_notes(&records[0]);
        assert_eq!(traces.len(), 1);
        let trace = &traces[0];
        assert_eq!(
            trace.text.as_deref(),
            Some("TP53 activates p21.\n\nAnswer: down")
        );
        assert_eq!(trace.tokens.len(), 13);
        assert_eq!(trace.tokens[0], "<think>");
        assert_eq!(trace.tokens[8], "</think>");
        assert_eq!(trace.tokens[12], " down");
        assert_raw(
            &trace.logprobs,
            &[
                -0.0001, -0.002, -0.9, -0.0005, -0.35, -0.02, -0.0001, -0.6, -0.04, -0.001, -0.01,
                -0.0002, -0.12,
            ],
        );
        assert_raw(trace.top_list(2), &[-0.9, -0.7]);
        // eval_count 14: the end-of-sequence token has no log-prob
        // (runner/ollamarunner/runner.go:775-789 at 9db4bdbad^).
        assert_eq!(
            notes,
            vec![note(THINKING_IN_TEXT, 1), note(TOKENS_WITHOUT_LOGPROBS, 1)]
        );
        // /api/chat: `message.thinking` (routes.go:2387-2428).
        let (chat, notes) = parse_with_notes(&records[1]);
        assert_eq!(chat[0].text, trace.text);
        assert_raw(&chat[0].logprobs, &trace.logprobs);
        assert_eq!(notes.len(), 2);
        // Scoring alone reads the same numbers.
        let lean = parse_as(Format::Ollama, &records[0], false).unwrap();
        assert_raw(&lean[0].logprobs, &trace.logprobs);
    }

    #[test]
    fn a_thinking_without_a_response_is_the_text() {
        // A reply that is only a tool call has an empty content (routes.go:2429-2431 adds
        // the tool calls beside it).
        let record = br#"{"model":"qwen3","message":{"role":"assistant","content":"","thinking":"Call the tool.","tool_calls":[{"function":{"name":"lookup","arguments":{}}}]},"done":true,"done_reason":"stop"}"#;
        let (traces, notes) = parse_with_notes(record);
        assert_eq!(traces[0].text.as_deref(), Some("Call the tool."));
        assert_eq!(notes, vec![note(THINKING_IN_TEXT, 1)]);
        // No thinking, no note; no log-probs, nothing missing to count.
        let record =
            br#"{"model":"llama3.2","response":"up","thinking":"","done":true,"eval_count":3}"#;
        let (traces, notes) = parse_with_notes(record);
        assert_eq!(traces[0].text.as_deref(), Some("up"));
        assert!(notes.is_empty(), "{notes:?}");
    }

    // routes.go:403-414 and 477-485: an empty prompt loads (or, with keep_alive 0,
    // unloads) the model and answers `done_reason` `load`/`unload` with no generation.
    #[test]
    fn a_model_load_reply_is_refused_with_its_reason() {
        let records = records(THINKING);
        let error = parse(Format::Ollama, &records[2]).unwrap_err();
        assert_eq!(
            error.message,
            "an Ollama model load reply (`\"done_reason\": \"load\"`), not a generation"
        );
        let record = br#"{"model":"qwen3","created_at":"2025-12-02T10:10:00Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"unload"}"#;
        let error = parse(Format::Ollama, record).unwrap_err();
        assert!(error.message.contains("unload"), "{}", error.message);
    }

    #[test]
    fn a_server_error_line_is_skipped_with_its_message() {
        // Ollama writes `{"error": "…"}` into a stream or as the body (server/routes.go);
        // llama.cpp `{"error": {"code", "message", "type"}}` (server-context.cpp:4403).
        for record in [
            &br#"{"error":"model runner has unexpectedly stopped"}"#[..],
            br#"{"error":{"code":500,"message":"context size exceeded","type":"server_error"}}"#,
        ] {
            let error =
                crate::import::test_support::parse_as(crate::import::Format::Ollama, record, true)
                    .unwrap_err();
            assert!(
                error
                    .message
                    .starts_with("the server answered with an error: "),
                "{}",
                error.message
            );
        }
    }
}
