//! Text Generation Inference `/generate` responses: `{generated_text, details:
//! {finish_reason, generated_tokens, seed, prefill, tokens: [{id, text, logprob, special}],
//! top_tokens: [[{id, text, logprob, special}, …], …], best_of_sequences: [{generated_text,
//! …, tokens, top_tokens}]}}`. The main sequence is one trace and each of
//! `best_of_sequences` (the other candidates of `best_of`) another. `prefill` holds the
//! prompt's tokens and is not read. A record may also be a JSON array of responses.

use jiter::Jiter;

use crate::import::{
    ImportOptions, RecordCommon, TokenTexts, TraceBatch, clear_top_lists, for_each_member_or_null,
    for_each_response, read_token_text, read_top_list, set_question_id,
};
use crate::json::{self, Ctx, RecordError, RecordResult};
use crate::trace::TraceBuf;

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
    let main = out.traces().len();
    out.push();
    let mut common = RecordCommon::default();
    let mut id = None;
    json::for_each_member(jiter, "(record)", |jiter, key| {
        if common.read(jiter, key, options)? {
            return Ok(());
        }
        match key {
            "generated_text" => {
                let text = json::next_opt_string(jiter, key)?;
                main_trace(out, main)?.text = text;
            }
            // Not TGI's: a user's own question id, kept when present.
            "id" => id = json::next_id(jiter, key)?,
            "details" => {
                for_each_member_or_null(jiter, "details", |jiter, key| {
                    match key {
                        "tokens" | "top_tokens" => {
                            read_sequence_member(jiter, key, options, main_trace(out, main)?)?;
                        }
                        "best_of_sequences" => {
                            let field = "details.best_of_sequences";
                            json::for_each_element(jiter, field, |jiter, _peek| {
                                parse_sequence(jiter, options, out.push())
                            })?;
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
    set_question_id(out, main, id.as_deref());
    common.apply(out, main);
    Ok(())
}

/// The trace of the response's main sequence (pushed before its members are read).
fn main_trace(out: &mut TraceBatch, main: usize) -> RecordResult<&mut TraceBuf> {
    out.traces_mut()
        .get_mut(main)
        .ok_or_else(|| RecordError::new("internal error: the main sequence's trace is missing", 0))
}

/// One of `details.best_of_sequences`.
fn parse_sequence(
    jiter: &mut Jiter<'_>,
    options: ImportOptions,
    buf: &mut TraceBuf,
) -> RecordResult<()> {
    json::for_each_member(jiter, "details.best_of_sequences", |jiter, key| {
        match key {
            "generated_text" => {
                buf.text =
                    json::next_opt_string(jiter, "details.best_of_sequences.generated_text")?;
            }
            "tokens" | "top_tokens" => read_sequence_member(jiter, key, options, buf)?,
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })
}

/// `tokens` or `top_tokens` of a sequence.
fn read_sequence_member(
    jiter: &mut Jiter<'_>,
    key: &str,
    options: ImportOptions,
    buf: &mut TraceBuf,
) -> RecordResult<()> {
    let keep = options.keep_content;
    if key == "top_tokens" {
        let field = "details.top_tokens";
        buf.begin_top_lists();
        let given = json::for_each_element(jiter, field, |jiter, peek| {
            read_top_list(jiter, peek, field, keep, buf)
        })?;
        if !given || buf.n_top_lists() == 0 {
            clear_top_lists(buf);
        }
        return Ok(());
    }
    let field = "details.tokens";
    buf.logprobs.clear();
    buf.tokens.clear();
    let mut texts = TokenTexts::default();
    buf.has_logprobs = json::for_each_element(jiter, field, |jiter, _peek| {
        let mut logprob = f64::NAN;
        let mut text = String::new();
        let mut has_text = false;
        json::for_each_member(jiter, field, |jiter, key| {
            match key {
                "text" => has_text = read_token_text(jiter, field, keep, &mut text)?,
                "logprob" => {
                    let peek = jiter.peek().ctx(field)?;
                    logprob = json::known_f64_or_null(jiter, peek, field)?;
                }
                _ => jiter.next_skip().ctx(field)?,
            }
            Ok(())
        })?;
        buf.logprobs.push(logprob);
        texts.push(buf, keep, has_text, text);
        Ok(())
    })?;
    texts.finish(buf);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::import::Format;
    use crate::import::test_support::{assert_raw, parse, records, strings};

    const FIXTURE: &[u8] = include_bytes!("../../../../tests/data/formats/tgi.jsonl");

    #[test]
    fn main_and_best_of_sequences_become_traces() {
        let records = records(FIXTURE);
        assert_eq!(records.len(), 2);

        let traces = parse(Format::Tgi, &records[0]).unwrap();
        assert_eq!(traces.len(), 2);
        let main = &traces[0];
        assert_eq!(main.question_id.as_deref(), Some("HSPA5|ATF6|HepG2"));
        assert_eq!(main.label.as_deref(), Some("up"));
        assert_eq!(main.text.as_deref(), Some("Answer: up"));
        assert!(main.has_logprobs);
        // The prefill (prompt) tokens are not part of the trace; the EOS token is.
        assert_eq!(main.tokens, strings(&["Answer", ":", " up", "</s>"]));
        assert_eq!(main.n_token_strings, Some(4));
        assert_raw(&main.logprobs, &[-0.0031, -0.0002, -0.5108, -0.0105]);
        assert_eq!(main.n_top_lists(), 4);
        assert_raw(main.top_list(0), &[-0.0031, -5.9]);
        assert_raw(main.top_list(2), &[-0.5108, -0.9163]);
        assert_eq!(main.top_tokens[4..6], strings(&[" up", " down"]));

        let other = &traces[1];
        assert_eq!(other.question_id.as_deref(), Some("HSPA5|ATF6|HepG2"));
        assert_eq!(other.label.as_deref(), Some("up"));
        assert_eq!(other.text.as_deref(), Some("Answer: down"));
        assert_eq!(other.tokens, strings(&["Answer", ":", " down", "</s>"]));
        assert_raw(&other.logprobs, &[-0.0035, -0.0002, -0.9163, -0.0121]);
        assert_raw(other.top_list(2), &[-0.5108, -0.9163]);
    }

    #[test]
    fn a_batch_array_gives_one_trace_per_response() {
        let records = records(FIXTURE);
        let traces = parse(Format::Tgi, &records[1]).unwrap();
        assert_eq!(traces.len(), 2);
        assert_eq!(traces[0].question_id, None);
        assert_eq!(traces[0].text.as_deref(), Some("Answer: none"));
        assert_raw(&traces[0].logprobs, &[-0.0028, -0.0001, -0.3711]);
        // No `top_n_tokens` requested: no top-k lists.
        assert!(!traces[0].has_top());
        assert!(traces[0].greedy);
        assert_eq!(traces[1].question_id, None);
        assert_eq!(traces[1].text.as_deref(), Some("Answer: down"));
        assert_raw(&traces[1].logprobs, &[-0.0026, -0.0001, -0.2231]);
        assert!(!traces[1].greedy);
        // Without `details` there is text but no log-probs.
        let traces = parse(Format::Tgi, br#"{"generated_text":"Answer: up"}"#).unwrap();
        assert_eq!(traces.len(), 1);
        assert!(!traces[0].has_logprobs);
        assert_eq!(traces[0].text.as_deref(), Some("Answer: up"));
    }

    #[test]
    fn wrong_types_name_the_field() {
        let record = br#"{"generated_text":"up","details":{"tokens":[{"id":1,"text":"up","logprob":"x","special":false}]}}"#;
        let error = parse(Format::Tgi, record).unwrap_err();
        assert_eq!(
            error.message,
            "field `details.tokens`: expected a number, found a string"
        );
        let record = br#"{"generated_text":"up","details":{"best_of_sequences":{"tokens":[]}}}"#;
        let error = parse(Format::Tgi, record).unwrap_err();
        assert_eq!(
            error.message,
            "field `details.best_of_sequences`: expected an array, found an object"
        );
        let record = br#"[{"generated_text":"up"},7]"#;
        let error = parse(Format::Tgi, record).unwrap_err();
        assert_eq!(
            error.message,
            "the record must be an object, found a number"
        );
    }
}
