//! SGLang native `/generate` responses with `return_logprob`: `{text, meta_info: {id,
//! prompt_tokens, completion_tokens, finish_reason, output_token_logprobs: [[logprob,
//! token_id, text or null], …], output_top_logprobs: [[[logprob, token_id, text or null],
//! …] or null, …]}}`. One trace per response; a batched request's JSON array of responses
//! gives one trace per element. Token texts are there only with `return_text_in_logprobs`.

use jiter::{Jiter, Peek};

use crate::import::{
    ImportOptions, RecordCommon, TokenTexts, TraceBatch, clear_top_lists, for_each_member_or_null,
    for_each_response, read_token_text,
};
use crate::json::{self, Ctx, RecordResult};
use crate::trace::TraceBuf;

const TOKENS: &str = "meta_info.output_token_logprobs";
const TOP: &str = "meta_info.output_top_logprobs";

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
    let keep = options.keep_content;
    let mut common = RecordCommon::default();
    json::for_each_member(jiter, "(record)", |jiter, key| {
        if common.read(jiter, key, options)? {
            return Ok(());
        }
        match key {
            "text" => buf.text = json::next_opt_string(jiter, key)?,
            "meta_info" => {
                for_each_member_or_null(jiter, "meta_info", |jiter, key| {
                    match key {
                        "id" => buf.question_id = json::next_id(jiter, "meta_info.id")?,
                        "output_token_logprobs" => read_token_logprobs(jiter, keep, buf)?,
                        "output_top_logprobs" => read_top_logprobs(jiter, keep, buf)?,
                        _ => jiter.next_skip().ctx(key)?,
                    }
                    Ok(())
                })?;
            }
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })?;
    common.apply(out, first);
    Ok(())
}

/// `output_token_logprobs`: one `[logprob, token_id, text]` per generated token.
fn read_token_logprobs(jiter: &mut Jiter<'_>, keep: bool, buf: &mut TraceBuf) -> RecordResult<()> {
    buf.logprobs.clear();
    buf.tokens.clear();
    let mut texts = TokenTexts::default();
    buf.has_logprobs = json::for_each_element(jiter, TOKENS, |jiter, peek| {
        let mut text = String::new();
        let (logprob, has_text) = read_entry(jiter, peek, TOKENS, keep, &mut text)?;
        buf.logprobs.push(logprob);
        texts.push(buf, keep, has_text, text);
        Ok(())
    })?;
    texts.finish(buf);
    Ok(())
}

/// `output_top_logprobs`: per token, a list of `[logprob, token_id, text]` (or `null`).
fn read_top_logprobs(jiter: &mut Jiter<'_>, keep: bool, buf: &mut TraceBuf) -> RecordResult<()> {
    buf.begin_top_lists();
    let given = json::for_each_element(jiter, TOP, |jiter, _peek| {
        json::for_each_element(jiter, TOP, |jiter, peek| {
            let mut text = String::new();
            let (logprob, _has_text) = read_entry(jiter, peek, TOP, keep, &mut text)?;
            buf.top_values.push(logprob);
            if keep {
                buf.top_tokens.push(text);
            }
            Ok(())
        })?;
        buf.end_top_list();
        Ok(())
    })?;
    // An empty list (no `top_logprobs_num`) carries no top-k data either.
    if !given || buf.n_top_lists() == 0 {
        clear_top_lists(buf);
    }
    Ok(())
}

/// One `[logprob, token_id, text or null]` entry (a two-element `[logprob, token_id]` is
/// read too). Returns the log-prob (NaN for `null`) and whether there was a text.
fn read_entry(
    jiter: &mut Jiter<'_>,
    peek: Peek,
    field: &str,
    keep: bool,
    text: &mut String,
) -> RecordResult<(f64, bool)> {
    if peek != Peek::Array {
        return Err(json::wrong_type(
            field,
            "a [logprob, token_id, text] list",
            peek,
            jiter.current_index(),
        ));
    }
    let mut logprob = f64::NAN;
    let mut has_text = false;
    let mut position = 0usize;
    let mut element = jiter.known_array().ctx(field)?;
    while let Some(element_peek) = element {
        match position {
            0 => logprob = json::known_f64_or_null(jiter, element_peek, field)?,
            2 => has_text = read_token_text(jiter, field, keep, text)?,
            _ => jiter.known_skip(element_peek).ctx(field)?,
        }
        position += 1;
        element = jiter.array_step().ctx(field)?;
    }
    Ok((logprob, has_text))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::import::Format;
    use crate::import::test_support::{assert_raw, parse, parse_as, records, strings};

    const FIXTURE: &[u8] = include_bytes!("../../../../tests/data/formats/sglang.jsonl");

    #[test]
    fn single_response_with_token_texts() {
        let records = records(FIXTURE);
        assert_eq!(records.len(), 2);
        let traces = parse(Format::Sglang, &records[0]).unwrap();
        assert_eq!(traces.len(), 1);
        let trace = &traces[0];
        assert_eq!(
            trace.question_id.as_deref(),
            Some("8c2f4a1e9b7d4c3e8f0a6b5d2e1c9f7a")
        );
        assert_eq!(trace.text.as_deref(), Some("Answer: up"));
        assert_eq!(trace.label.as_deref(), Some("up"));
        assert!(trace.has_logprobs);
        assert_eq!(trace.tokens, strings(&["Answer", ":", " up", "<|eot_id|>"]));
        assert_eq!(trace.n_token_strings, Some(4));
        assert_raw(&trace.logprobs, &[-0.0017, -2.4e-5, -0.1625, -0.0004]);
        assert_eq!(trace.n_top_lists(), 4);
        assert_raw(trace.top_list(0), &[-0.0017, -6.52, -8.1]);
        assert_raw(trace.top_list(2), &[-0.1625, -1.9022, -6.0]);
        assert_eq!(trace.top_tokens[6..9], strings(&[" up", " down", " none"]));
        // Without content nothing textual is kept, counts are.
        let traces = parse_as(Format::Sglang, &records[0], false).unwrap();
        assert!(traces[0].tokens.is_empty() && traces[0].top_tokens.is_empty());
        assert_eq!(traces[0].n_token_strings, Some(4));
    }

    #[test]
    fn a_batch_array_gives_one_trace_per_response() {
        let records = records(FIXTURE);
        let traces = parse(Format::Sglang, &records[1]).unwrap();
        assert_eq!(traces.len(), 2);
        assert_eq!(
            traces[0].question_id.as_deref(),
            Some("1d9e0b6c7a5f4e2d9c8b7a6f5e4d3c2b")
        );
        assert_eq!(traces[0].text.as_deref(), Some("Answer: none"));
        // No `return_text_in_logprobs`: texts are null, so there are no token strings.
        assert_eq!(traces[0].n_token_strings, None);
        assert!(traces[0].tokens.is_empty());
        assert_raw(&traces[0].logprobs, &[-0.0022, -3.1e-5, -0.5798]);
        // The first position's top list is null: an empty list.
        assert_raw(traces[0].top_list(0), &[]);
        assert_raw(traces[0].top_list(2), &[-0.5798, -0.8210]);
        assert_eq!(traces[0].top_tokens, strings(&["", "", "", ""]));
        assert_eq!(
            traces[1].question_id.as_deref(),
            Some("5a4b3c2d1e0f49a8b7c6d5e4f3a2b1c0")
        );
        assert_eq!(traces[1].text.as_deref(), Some("Answer: down"));
        assert_raw(&traces[1].logprobs, &[-0.0024, -2.9e-5, -0.8210]);
        assert!(!traces[1].has_top());
    }

    #[test]
    fn wrong_types_name_the_field() {
        let record =
            br#"{"text":"up","meta_info":{"id":"a","output_token_logprobs":[{"logprob":-0.1}]}}"#;
        let error = parse(Format::Sglang, record).unwrap_err();
        assert_eq!(
            error.message,
            "field `meta_info.output_token_logprobs`: expected a [logprob, token_id, text] list, \
             found an object"
        );
        let record =
            br#"{"text":"up","meta_info":{"id":"a","output_token_logprobs":[["x",709,null]]}}"#;
        let error = parse(Format::Sglang, record).unwrap_err();
        assert_eq!(
            error.message,
            "field `meta_info.output_token_logprobs`: expected a number, found a string"
        );
        let record = br#"{"text":"up","meta_info":"x"}"#;
        let error = parse(Format::Sglang, record).unwrap_err();
        assert_eq!(
            error.message,
            "field `meta_info`: expected an object or null, found a string"
        );
    }
}
