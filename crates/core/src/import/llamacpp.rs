//! llama.cpp server `/completion` responses: `{content, completion_probabilities: […],
//! id_slot, stop, model, tokens_predicted, …}`, one trace per response. Three per-token
//! shapes, by server version and request:
//! - current: `{id, token, logprob, bytes, top_logprobs: [{id, token, logprob, bytes}]}`;
//! - `post_sampling_probs: true`: `{id, token, prob, top_probs: [{id, token, prob}]}`,
//!   read as ln(prob) (a 0 becomes −∞, which the scorer counts as invalid);
//! - before 2025: `{content, probs: [{tok_str, prob}]}`: the sampled token is the entry
//!   whose `tok_str` equals `content` (NaN when none does); the list is all entries.
//!
//! llama.cpp's −3.4e38 (−FLT_MAX) and −∞ sentinels are stored raw.

use jiter::{Jiter, Peek};

use crate::import::{
    ImportOptions, RecordCommon, TokenTexts, TraceBatch, clear_top_lists, for_each_response,
    read_token_text, read_top_list,
};
use crate::json::{self, Ctx, RecordResult};
use crate::trace::TraceBuf;

const FIELD: &str = "completion_probabilities";

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
    json::for_each_member(jiter, "(record)", |jiter, key| {
        if common.read(jiter, key, options)? {
            return Ok(());
        }
        match key {
            "content" => buf.text = json::next_opt_string(jiter, key)?,
            // Not llama.cpp's (it has `id_slot`): a user's own question id, kept when present.
            "id" => buf.question_id = json::next_id(jiter, key)?,
            FIELD => read_probabilities(jiter, options.keep_content, buf)?,
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })?;
    common.apply(out, first);
    Ok(())
}

/// Reads `completion_probabilities`, one object per generated token, in any of the shapes.
fn read_probabilities(jiter: &mut Jiter<'_>, keep: bool, buf: &mut TraceBuf) -> RecordResult<()> {
    buf.logprobs.clear();
    buf.tokens.clear();
    buf.begin_top_lists();
    let mut texts = TokenTexts::default();
    let mut any_top = false;
    // Old shape: the `tok_str` of each entry of the current token's `probs`.
    let mut candidates: Vec<String> = Vec::new();
    buf.has_logprobs = json::for_each_element(jiter, FIELD, |jiter, _peek| {
        let mut logprob = f64::NAN;
        let mut has_logprob = false;
        let mut token = String::new();
        let mut has_token = false;
        let mut has_top = false;
        let mut list_start = buf.top_values.len();
        let mut old_probs = false;
        json::for_each_member(jiter, FIELD, |jiter, key| {
            match key {
                "token" => has_token = read_token_text(jiter, FIELD, keep, &mut token)?,
                // The old shape's name for the token; it is matched against `probs`, so it
                // is read even when token strings are not kept.
                "content" => has_token = read_token_text(jiter, FIELD, true, &mut token)?,
                "logprob" => {
                    let peek = jiter.peek().ctx(FIELD)?;
                    logprob = json::known_f64_or_null(jiter, peek, FIELD)?;
                    has_logprob = true;
                }
                "prob" => {
                    let peek = jiter.peek().ctx(FIELD)?;
                    logprob = json::known_f64_or_null(jiter, peek, FIELD)?.ln();
                    has_logprob = true;
                }
                "top_logprobs" | "top_probs" | "probs" if !has_top => {
                    list_start = buf.top_values.len();
                    if key == "probs" {
                        read_old_probs(jiter, keep, buf, &mut candidates)?;
                        old_probs = true;
                    } else {
                        let peek = jiter.peek().ctx(FIELD)?;
                        read_top_list(jiter, peek, FIELD, keep, buf)?;
                    }
                    has_top = true;
                }
                _ => jiter.next_skip().ctx(FIELD)?,
            }
            Ok(())
        })?;
        if old_probs && !has_logprob {
            // The sampled token is the candidate spelled like `content`; NaN if none is.
            logprob = candidates
                .iter()
                .position(|candidate| has_token && *candidate == token)
                .and_then(|idx| buf.top_values.get(list_start + idx).copied())
                .unwrap_or(f64::NAN);
        }
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
    Ok(())
}

/// The old shape's `probs: [{tok_str, prob}, …]`: one top-k list of ln(prob), and each
/// entry's `tok_str` in `candidates` (to find the sampled one).
fn read_old_probs(
    jiter: &mut Jiter<'_>,
    keep: bool,
    buf: &mut TraceBuf,
    candidates: &mut Vec<String>,
) -> RecordResult<()> {
    let field = "completion_probabilities.probs";
    candidates.clear();
    let peek = jiter.peek().ctx(field)?;
    if peek != Peek::Array && peek != Peek::Null {
        return Err(json::wrong_type(
            field,
            "an array of {tok_str, prob}",
            peek,
            jiter.current_index(),
        ));
    }
    json::for_each_element(jiter, field, |jiter, _peek| {
        let mut value = f64::NAN;
        let mut tok_str = String::new();
        json::for_each_member(jiter, field, |jiter, key| {
            match key {
                "tok_str" => {
                    read_token_text(jiter, field, true, &mut tok_str)?;
                }
                "prob" => {
                    let peek = jiter.peek().ctx(field)?;
                    value = json::known_f64_or_null(jiter, peek, field)?.ln();
                }
                _ => jiter.next_skip().ctx(field)?,
            }
            Ok(())
        })?;
        buf.top_values.push(value);
        if keep {
            buf.top_tokens.push(tok_str.clone());
        }
        candidates.push(tok_str);
        Ok(())
    })?;
    buf.end_top_list();
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::import::Format;
    use crate::import::test_support::{assert_raw, parse, parse_as, records, strings};

    const FIXTURE: &[u8] = include_bytes!("../../../../tests/data/formats/llamacpp.jsonl");

    #[test]
    fn current_logprob_shape() {
        let records = records(FIXTURE);
        assert_eq!(records.len(), 3);
        let traces = parse(Format::Llamacpp, &records[0]).unwrap();
        assert_eq!(traces.len(), 1);
        let trace = &traces[0];
        assert_eq!(trace.question_id, None);
        assert_eq!(trace.text.as_deref(), Some("Answer: down"));
        assert!(trace.prompt.as_deref().is_some_and(|p| p.contains("MYC")));
        assert!(trace.has_logprobs);
        assert_eq!(trace.tokens, strings(&["Answer", ":", " down"]));
        assert_eq!(trace.n_token_strings, Some(3));
        assert_raw(&trace.logprobs, &[-0.0093, -0.0001, -0.6539]);
        assert_eq!(trace.n_top_lists(), 3);
        assert_raw(trace.top_list(0), &[-0.0093, -4.81, -7.2]);
        // A masked alternative at −FLT_MAX is stored raw.
        assert_raw(trace.top_list(1), &[-0.0001, -9.95, -3.4028234663852886e38]);
        assert_raw(trace.top_list(2), &[-0.6539, -0.8473, -3.0445]);
        assert_eq!(trace.top_tokens[6..], strings(&[" down", " up", " none"]));
    }

    #[test]
    fn post_sampling_probs_are_logged() {
        let records = records(FIXTURE);
        let traces = parse(Format::Llamacpp, &records[1]).unwrap();
        let trace = &traces[0];
        assert_eq!(trace.question_id.as_deref(), Some("MYC|BRD4|K562"));
        assert!(trace.greedy);
        assert_eq!(trace.text.as_deref(), Some("Answer: down"));
        assert_eq!(trace.tokens, strings(&["Answer", ":", " down"]));
        assert_raw(
            &trace.logprobs,
            &[0.9907_f64.ln(), 1.0_f64.ln(), 0.5200_f64.ln()],
        );
        assert_raw(trace.top_list(0), &[0.9907_f64.ln(), 0.0093_f64.ln()]);
        // A post-sampling prob of 0 is ln(0) = −∞: kept, the scorer counts it invalid.
        assert_raw(trace.top_list(1), &[0.0, f64::NEG_INFINITY]);
        assert_raw(
            trace.top_list(2),
            &[0.5200_f64.ln(), 0.4285_f64.ln(), 0.0515_f64.ln()],
        );
    }

    #[test]
    fn old_probs_shape_matches_the_sampled_string() {
        let records = records(FIXTURE);
        let traces = parse(Format::Llamacpp, &records[2]).unwrap();
        let trace = &traces[0];
        assert_eq!(trace.question_id, None);
        assert_eq!(trace.label.as_deref(), Some("none"));
        assert_eq!(trace.text.as_deref(), Some("Answer: none"));
        assert_eq!(trace.tokens, strings(&["Answer", ":", " none"]));
        // " none" was sampled from outside the two listed candidates: NaN.
        assert_raw(
            &trace.logprobs,
            &[0.982_f64.ln(), 0.9996_f64.ln(), f64::NAN],
        );
        assert_raw(trace.top_list(0), &[0.982_f64.ln(), 0.011_f64.ln()]);
        assert_raw(trace.top_list(2), &[0.61_f64.ln(), 0.37_f64.ln()]);
        assert_eq!(
            trace.top_tokens,
            strings(&["Answer", "Final", ":", " is", " down", " up"])
        );
        // Matching needs the token strings even when they are not kept.
        let traces = parse_as(Format::Llamacpp, &records[2], false).unwrap();
        assert!(traces[0].tokens.is_empty());
        assert!(traces[0].top_tokens.is_empty());
        assert_eq!(traces[0].n_token_strings, Some(3));
        assert_raw(
            &traces[0].logprobs,
            &[0.982_f64.ln(), 0.9996_f64.ln(), f64::NAN],
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        let record = br#"{"content":"up","completion_probabilities":[{"id":1,"token":"up","logprob":true,"top_logprobs":[]}]}"#;
        let error = parse(Format::Llamacpp, record).unwrap_err();
        assert_eq!(
            error.message,
            "field `completion_probabilities`: expected a number, found a boolean"
        );
        let record = br#"{"content":"up","completion_probabilities":{"up":-0.1}}"#;
        let error = parse(Format::Llamacpp, record).unwrap_err();
        assert_eq!(
            error.message,
            "field `completion_probabilities`: expected an array, found an object"
        );
        let record =
            br#"{"content":"up","completion_probabilities":[{"content":"up","probs":"x"}]}"#;
        let error = parse(Format::Llamacpp, record).unwrap_err();
        assert_eq!(
            error.message,
            "field `completion_probabilities.probs`: expected an array of {tok_str, prob}, \
             found a string"
        );
    }
}
