//! vLLM offline `RequestOutput` dumps: `{request_id, prompt, outputs: [{index, text,
//! token_ids, cumulative_logprob, logprobs: [{"<token id>": {logprob, rank,
//! decoded_token}, …}, …] | null, finish_reason}], finished}`. One trace per output.
//!
//! Each position's dict holds the sampled token and the top-k alternatives (k + 1 entries
//! when the sampled token is not among them). The sampled token is the entry whose key is
//! `token_ids[i]`; the whole dict is the position's top-k list.

use jiter::{Jiter, Peek};

use crate::import::{
    ImportOptions, RecordCommon, TokenTexts, TraceBatch, for_each_response, read_token_text,
    set_question_id,
};
use crate::json::{self, Ctx, RecordError, RecordResult};
use crate::trace::TraceBuf;

const LOGPROBS: &str = "outputs.logprobs";

pub(super) fn parse(
    record: &[u8],
    options: ImportOptions,
    out: &mut TraceBatch,
) -> RecordResult<()> {
    for_each_response(record, |jiter| {
        parse_request_output(jiter, record, options, out)
    })
}

fn parse_request_output(
    jiter: &mut Jiter<'_>,
    record: &[u8],
    options: ImportOptions,
    out: &mut TraceBatch,
) -> RecordResult<()> {
    let first = out.traces().len();
    let mut common = RecordCommon::default();
    let mut request_id = None;
    json::for_each_member(jiter, "(record)", |jiter, key| {
        if common.read(jiter, key, options)? {
            return Ok(());
        }
        match key {
            "request_id" => request_id = json::next_id(jiter, key)?,
            "outputs" => {
                json::for_each_element(jiter, "outputs", |jiter, _peek| {
                    parse_output(jiter, record, options, out.push())
                })?;
            }
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })?;
    set_question_id(out, first, request_id.as_deref());
    common.apply(out, first);
    Ok(())
}

/// One `CompletionOutput`. Its `logprobs` may come before `token_ids`, so the logprobs
/// value is only located on the first pass and read once the sampled ids are known.
fn parse_output(
    jiter: &mut Jiter<'_>,
    record: &[u8],
    options: ImportOptions,
    buf: &mut TraceBuf,
) -> RecordResult<()> {
    let mut token_ids: Option<Vec<i64>> = None;
    let mut logprobs_span: Option<(usize, usize)> = None;
    json::for_each_member(jiter, "outputs", |jiter, key| {
        match key {
            "text" => buf.text = json::next_opt_string(jiter, "outputs.text")?,
            "token_ids" => token_ids = read_token_ids(jiter, "outputs.token_ids")?,
            "logprobs" => match jiter.peek().ctx(LOGPROBS)? {
                Peek::Null => jiter.known_null().ctx(LOGPROBS)?,
                Peek::Array => {
                    let start = jiter.current_index();
                    jiter.known_skip(Peek::Array).ctx(LOGPROBS)?;
                    logprobs_span = Some((start, jiter.current_index()));
                }
                other => {
                    return Err(json::wrong_type(
                        LOGPROBS,
                        "an array of {token id: Logprob} dicts or null",
                        other,
                        jiter.current_index(),
                    ));
                }
            },
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })?;
    let Some((start, end)) = logprobs_span else {
        return Ok(());
    };
    let bytes = record.get(start..end).unwrap_or(&[]);
    let mut sub = json::reader(bytes);
    read_logprobs(&mut sub, token_ids.as_deref(), options.keep_content, buf).map_err(
        |mut error| {
            error.index += start;
            error
        },
    )?;
    if let Some(ids) = &token_ids
        && ids.len() != buf.logprobs.len()
    {
        return Err(RecordError::new(
            format!(
                "vLLM output has {} logprobs entries but {} token_ids; cannot tell which \
                 token was sampled where",
                buf.logprobs.len(),
                ids.len()
            ),
            start,
        ));
    }
    Ok(())
}

/// Reads `token_ids` (integers); `null` → None.
fn read_token_ids(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<Option<Vec<i64>>> {
    let mut ids = Vec::new();
    let given = json::for_each_element(jiter, field, |jiter, peek| {
        let index = jiter.current_index();
        if !json::is_number(peek) {
            return Err(json::wrong_type(
                field,
                "an array of token ids",
                peek,
                index,
            ));
        }
        let text = jiter.known_number_bytes(peek).ctx(field)?;
        let id = std::str::from_utf8(text)
            .ok()
            .and_then(|text| text.parse::<i64>().ok())
            .ok_or_else(|| {
                RecordError::new(
                    format!("field `{field}`: expected an integer token id"),
                    index,
                )
            })?;
        ids.push(id);
        Ok(())
    })?;
    Ok(given.then_some(ids))
}

/// Reads the per-position dicts. `token_ids` says which entry was sampled; without it a
/// position must have a single entry.
fn read_logprobs(
    jiter: &mut Jiter<'_>,
    token_ids: Option<&[i64]>,
    keep: bool,
    buf: &mut TraceBuf,
) -> RecordResult<()> {
    buf.logprobs.clear();
    buf.tokens.clear();
    buf.begin_top_lists();
    let mut texts = TokenTexts::default();
    let mut position = 0usize;
    buf.has_logprobs = json::for_each_element(jiter, LOGPROBS, |jiter, peek| {
        let sampled = token_ids.and_then(|ids| ids.get(position).copied());
        let list_start = buf.top_values.len();
        let mut chosen: Option<usize> = None;
        let mut chosen_has_token = false;
        let mut entries = 0usize;
        match peek {
            Peek::Null => jiter.known_null().ctx(LOGPROBS)?,
            Peek::Object => {
                json::for_each_member(jiter, LOGPROBS, |jiter, key| {
                    let mut token = String::new();
                    let (logprob, has_token) = read_entry(jiter, keep, &mut token)?;
                    if sampled.is_some() && key.trim().parse::<i64>().ok() == sampled {
                        chosen = Some(entries);
                        chosen_has_token = has_token;
                    }
                    if entries == 0 && token_ids.is_none() {
                        chosen_has_token = has_token;
                    }
                    buf.top_values.push(logprob);
                    if keep {
                        buf.top_tokens
                            .push(if has_token { token } else { String::new() });
                    }
                    entries += 1;
                    Ok(())
                })?;
            }
            other => {
                return Err(json::wrong_type(
                    LOGPROBS,
                    "a {token id: Logprob} dict",
                    other,
                    jiter.current_index(),
                ));
            }
        }
        if token_ids.is_none() {
            if entries != 1 {
                return Err(RecordError::new(
                    "vLLM output has logprobs but no token_ids; cannot tell which token was \
                     sampled",
                    jiter.current_index(),
                ));
            }
            chosen = Some(0);
        }
        buf.end_top_list();
        // A sampled id missing from its dict has no log-prob: NaN, counted as invalid.
        let chosen_idx = chosen.map(|offset| list_start + offset);
        let logprob = chosen_idx
            .and_then(|idx| buf.top_values.get(idx).copied())
            .unwrap_or(f64::NAN);
        buf.logprobs.push(logprob);
        let token = chosen_idx
            .filter(|_| keep)
            .and_then(|idx| buf.top_tokens.get(idx).cloned())
            .unwrap_or_default();
        texts.push(buf, keep, chosen_idx.is_some() && chosen_has_token, token);
        position += 1;
        Ok(())
    })?;
    texts.finish(buf);
    Ok(())
}

/// One dict value: a `Logprob` object `{logprob, rank, decoded_token}`, or a bare number.
/// Returns the log-prob and whether a decoded token string was there.
fn read_entry(jiter: &mut Jiter<'_>, keep: bool, token: &mut String) -> RecordResult<(f64, bool)> {
    let peek = jiter.peek().ctx(LOGPROBS)?;
    if peek != Peek::Object {
        return Ok((json::known_f64_or_null(jiter, peek, LOGPROBS)?, false));
    }
    let mut logprob = f64::NAN;
    let mut has_token = false;
    json::for_each_member(jiter, LOGPROBS, |jiter, key| {
        match key {
            "logprob" => {
                let peek = jiter.peek().ctx(LOGPROBS)?;
                logprob = json::known_f64_or_null(jiter, peek, LOGPROBS)?;
            }
            "decoded_token" => has_token = read_token_text(jiter, LOGPROBS, keep, token)?,
            _ => jiter.next_skip().ctx(LOGPROBS)?,
        }
        Ok(())
    })?;
    Ok((logprob, has_token))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::import::Format;
    use crate::import::test_support::{assert_raw, parse, parse_as, records, strings};

    const FIXTURE: &[u8] = include_bytes!("../../../../tests/data/formats/vllm.jsonl");

    #[test]
    fn outputs_become_traces_with_the_sampled_entry() {
        let records = records(FIXTURE);
        assert_eq!(records.len(), 2);

        let traces = parse(Format::Vllm, &records[0]).unwrap();
        assert_eq!(traces.len(), 2);
        let first = &traces[0];
        assert_eq!(first.question_id.as_deref(), Some("SLC35B1|PDIA6|K562"));
        assert!(
            first
                .prompt
                .as_deref()
                .is_some_and(|p| p.contains("knock-down of PDIA6"))
        );
        assert_eq!(first.text.as_deref(), Some("Answer: up"));
        assert!(!first.greedy);
        assert!(first.has_logprobs);
        assert_eq!(first.tokens, strings(&["Answer", ":", " up", "<|eot_id|>"]));
        assert_eq!(first.n_token_strings, Some(4));
        assert_raw(&first.logprobs, &[-0.0021, -3.5e-5, -0.2877, -0.0006]);
        assert_eq!(first.n_top_lists(), 4);
        assert_raw(first.top_list(0), &[-0.0021, -6.4]);
        assert_raw(first.top_list(2), &[-0.2877, -1.3863]);
        // Python's `-Infinity` is read and stored raw.
        assert_raw(first.top_list(3), &[-0.0006, f64::NEG_INFINITY]);
        assert_eq!(first.top_tokens[6..], strings(&["<|eot_id|>", "\n"]));

        // The sampled " none" (id 2290) is outside the top 2: a third entry, here −9999.
        let second = &traces[1];
        assert_eq!(second.question_id.as_deref(), Some("SLC35B1|PDIA6|K562"));
        assert_eq!(second.text.as_deref(), Some("Answer: none"));
        assert_eq!(
            second.tokens,
            strings(&["Answer", ":", " none", "<|eot_id|>"])
        );
        assert_raw(&second.logprobs, &[-0.0019, -4.1e-5, -9999.0, -0.0011]);
        assert_raw(second.top_list(2), &[-0.2877, -1.3863, -9999.0]);
        assert_eq!(second.top_tokens[4..7], strings(&[" up", " down", " none"]));
        // Python's `NaN` is read (lenient JSON) and kept as NaN.
        assert_raw(second.top_list(3), &[-0.0011, f64::NAN]);

        let traces = parse(Format::Vllm, &records[1]).unwrap();
        assert_eq!(traces.len(), 1);
        let greedy = &traces[0];
        assert_eq!(greedy.question_id.as_deref(), Some("HSPA5|ATF6|HepG2"));
        assert_eq!(greedy.text.as_deref(), Some("Answer: down"));
        assert!(greedy.greedy);
        assert_eq!(greedy.label.as_deref(), Some("down"));
        assert!(!greedy.has_logprobs);
        assert!(greedy.logprobs.is_empty());
        assert!(!greedy.has_top());
    }

    #[test]
    fn without_content_only_counts_and_values_are_kept() {
        let records = records(FIXTURE);
        let traces = parse_as(Format::Vllm, &records[0], false).unwrap();
        assert_eq!(traces[1].prompt, None);
        assert!(traces[1].tokens.is_empty());
        assert!(traces[1].top_tokens.is_empty());
        assert_eq!(traces[1].n_token_strings, Some(4));
        assert_raw(&traces[1].logprobs, &[-0.0019, -4.1e-5, -9999.0, -0.0011]);
    }

    #[test]
    fn logprobs_before_token_ids_and_a_missing_sampled_id() {
        // Keys in any order; id 709 is not in its dict → NaN (invalid), list kept.
        let record = br#"{"request_id":"q7","outputs":[{"logprobs":[{"16533":{"logprob":-0.01,"rank":1,"decoded_token":"Answer"}},{"1523":{"logprob":-0.4,"rank":1,"decoded_token":" down"},"2290":{"logprob":-1.2,"rank":2,"decoded_token":" none"}}],"token_ids":[16533,709],"text":"Answer up","index":0}]}"#;
        let traces = parse(Format::Vllm, record).unwrap();
        assert_raw(&traces[0].logprobs, &[-0.01, f64::NAN]);
        assert_raw(traces[0].top_list(1), &[-0.4, -1.2]);
        assert_eq!(traces[0].tokens, strings(&["Answer", ""]));
        assert_eq!(traces[0].n_token_strings, Some(2));
    }

    #[test]
    fn without_token_ids_only_single_entry_dicts_are_readable() {
        let record = br#"{"request_id":"q8","outputs":[{"index":0,"text":" up","logprobs":[{"709":{"logprob":-0.3,"rank":1,"decoded_token":" up"}}]}]}"#;
        let traces = parse(Format::Vllm, record).unwrap();
        assert_raw(&traces[0].logprobs, &[-0.3]);
        assert_raw(traces[0].top_list(0), &[-0.3]);

        let record = br#"{"request_id":"q8","outputs":[{"index":0,"text":" up","logprobs":[{"709":{"logprob":-0.3,"rank":1,"decoded_token":" up"},"1523":{"logprob":-1.5,"rank":2,"decoded_token":" down"}}]}]}"#;
        let error = parse(Format::Vllm, record).unwrap_err();
        assert_eq!(
            error.message,
            "vLLM output has logprobs but no token_ids; cannot tell which token was sampled"
        );
    }

    #[test]
    fn bad_shapes_are_errors() {
        let record = br#"{"request_id":"q9","outputs":[{"index":0,"text":" up","token_ids":[709],"logprobs":"x"}]}"#;
        let error = parse(Format::Vllm, record).unwrap_err();
        assert_eq!(
            error.message,
            "field `outputs.logprobs`: expected an array of {token id: Logprob} dicts or null, \
             found a string"
        );
        let record = br#"{"request_id":"q9","outputs":[{"index":0,"token_ids":[709,25],"logprobs":[{"709":-0.3}]}]}"#;
        let error = parse(Format::Vllm, record).unwrap_err();
        assert_eq!(
            error.message,
            "vLLM output has 1 logprobs entries but 2 token_ids; cannot tell which token was \
             sampled where"
        );
        let record = br#"{"request_id":"q9","outputs":[{"index":0,"token_ids":[709],"logprobs":[{"709":{"logprob":"-0.3"}}]}]}"#;
        let error = parse(Format::Vllm, record).unwrap_err();
        assert_eq!(
            error.message,
            "field `outputs.logprobs`: expected a number, found a string"
        );
        // The error points into the record, not into the re-read logprobs slice.
        assert!(error.index > 40, "index {}", error.index);
        let record =
            br#"{"request_id":"q9","outputs":[{"index":0,"token_ids":["a"],"logprobs":null}]}"#;
        let error = parse(Format::Vllm, record).unwrap_err();
        assert_eq!(
            error.message,
            "field `outputs.token_ids`: expected an array of token ids, found a string"
        );
    }
}
