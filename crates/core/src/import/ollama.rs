//! Ollama `/api/generate` (`{model, created_at, response, thinking?, done, …, logprobs}`)
//! and `/api/chat` (`{model, created_at, message: {role, content, thinking?}, done, …,
//! logprobs}`) responses, with `logprobs: [{token, logprob, bytes, top_logprobs: [{token,
//! logprob, bytes}]}]` (requested with `"logprobs": true, "top_logprobs": k`). One trace per
//! response; the text is `response` or `message.content`.

use jiter::Jiter;

use crate::import::openai::read_token_objects;
use crate::import::{
    ImportOptions, RecordCommon, TraceBatch, for_each_member_or_null, for_each_response,
};
use crate::json::{self, Ctx, RecordError, RecordResult};

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
    json::for_each_member(jiter, "(record)", |jiter, key| {
        if common.read(jiter, key, options)? {
            return Ok(());
        }
        match key {
            "response" => buf.text = json::next_opt_string(jiter, key)?,
            "message" => {
                for_each_member_or_null(jiter, "message", |jiter, key| {
                    match key {
                        "content" => buf.text = json::next_opt_string(jiter, "message.content")?,
                        _ => jiter.next_skip().ctx(key)?,
                    }
                    Ok(())
                })?;
            }
            // Not Ollama's: a user's own question id, kept when present.
            "id" => buf.question_id = json::next_id(jiter, key)?,
            "done" => done = json::next_opt_bool(jiter, key)?,
            "logprobs" => {
                buf.has_logprobs =
                    read_token_objects(jiter, "logprobs", options.keep_content, buf)?;
            }
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })?;
    if done == Some(false) {
        return Err(RecordError::new(
            "this is a streaming chunk (`\"done\": false`), one piece of a response; save the \
             complete response (`\"stream\": false`) instead",
            0,
        ));
    }
    common.apply(out, first);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::import::Format;
    use crate::import::test_support::{assert_raw, parse, records, strings};

    const FIXTURE: &[u8] = include_bytes!("../../../../tests/data/formats/ollama.jsonl");

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
        // `message.content`, not `message.thinking`.
        assert_eq!(trace.text.as_deref(), Some("Answer: down"));
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
}
