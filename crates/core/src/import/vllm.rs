//! vLLM offline `RequestOutput` dumps: `{request_id, prompt, prompt_logprobs, outputs:
//! [{index, text, token_ids, cumulative_logprob, logprobs, finish_reason}], finished}`. One
//! trace per output.
//!
//! `outputs[].logprobs` comes in the two shapes of vllm/logprobs.py (vllm 0.33.0):
//! - a list with one `{"<token id>": {logprob, rank, decoded_token}}` dict per position,
//! - a `FlatLogprobs` object (`SamplingParams(flat_logprobs=True)`): `{start_indices,
//!   end_indices, token_ids, logprobs, ranks, decoded_tokens}`, position `i` being the
//!   entries `start_indices[i]..end_indices[i]`.
//!
//! Each position holds the sampled token first and then the top-k alternatives. The dict
//! keeps a token once; the flat lists repeat the sampled token when it is also in the top
//! k, so a repeated id is read once, as the dict would have it. The sampled token is the
//! entry whose id is `token_ids[i]`; the position's distinct entries are its top-k list.
//! `prompt_logprobs` describes the prompt and is never read.

use std::collections::HashSet;

use jiter::{Jiter, Peek};

use crate::import::{
    ImportOptions, RecordCommon, TokenTexts, TraceBatch, for_each_response, read_token_text,
    set_question_id,
};
use crate::json::{self, Ctx, RecordError, RecordResult};
use crate::trace::TraceBuf;

const LOGPROBS: &str = "outputs.logprobs";

/// Report note for a `CompletionOutput` with `finish_reason: null`.
pub(crate) const UNFINISHED: &str = "unfinished vLLM outputs (`finish_reason: null`, streamed \
     partial outputs) not scored: each generation is scored from its finished output (count: \
     partial outputs)";

pub(super) fn parse(
    record: &[u8],
    options: ImportOptions,
    out: &mut TraceBatch,
) -> RecordResult<()> {
    for_each_response(record, |jiter| {
        parse_request_output(jiter, record, options, out)
    })
}

/// One `RequestOutput`.
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
                    let (start, end) = json::value_span(jiter, "outputs")?;
                    // vllm/v1/engine/output_processor.py `_new_completion_output`: a stream
                    // sends an output per step with `finish_reason` None until its last.
                    // With the default CUMULATIVE output kind the finished one holds the
                    // whole generation; a partial one scored as well would add a short copy
                    // of the trace to the question. The request's own `finished` does not
                    // tell: with n > 1 it stays false until every sample has finished
                    // (v1/engine/parallel_sampling.py `get_outputs`).
                    if json::reread(record, start, end, is_unfinished)? {
                        out.note(UNFINISHED, 1);
                        return Ok(());
                    }
                    json::reread(record, start, end, |jiter| {
                        parse_output(jiter, record, start, options, out.push())
                    })
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

/// Whether a `CompletionOutput` has `finish_reason` present and `null`.
fn is_unfinished(jiter: &mut Jiter<'_>) -> RecordResult<bool> {
    let mut unfinished = false;
    json::for_each_member(jiter, "outputs", |jiter, key| {
        if key == "finish_reason" && jiter.peek().ctx(key)? == Peek::Null {
            unfinished = true;
        }
        jiter.next_skip().ctx(key)
    })?;
    Ok(unfinished)
}

/// Which shape `outputs[].logprobs` has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogprobsShape {
    /// `[{"<token id>": Logprob}, …]`
    Dicts,
    /// `FlatLogprobs` as an object of parallel lists.
    Flat,
}

/// One `CompletionOutput` read by a reader over `record[base..]`. Its `logprobs` may come
/// before `token_ids`, so the logprobs value is only located on the first pass and read
/// once the sampled ids are known.
fn parse_output(
    jiter: &mut Jiter<'_>,
    record: &[u8],
    base: usize,
    options: ImportOptions,
    buf: &mut TraceBuf,
) -> RecordResult<()> {
    let mut token_ids: Option<Vec<i64>> = None;
    let mut cumulative_logprob = None;
    let mut logprobs_at: Option<(usize, usize, LogprobsShape)> = None;
    json::for_each_member(jiter, "outputs", |jiter, key| {
        match key {
            "text" => buf.text = json::next_opt_string(jiter, "outputs.text")?,
            "token_ids" => token_ids = read_token_ids(jiter, "outputs.token_ids")?,
            "cumulative_logprob" => {
                let field = "outputs.cumulative_logprob";
                let peek = jiter.peek().ctx(field)?;
                cumulative_logprob = Some(json::known_f64_or_null(jiter, peek, field)?);
            }
            "logprobs" => {
                let peek = jiter.peek().ctx(LOGPROBS)?;
                let shape = match peek {
                    Peek::Null => None,
                    Peek::Array => Some(LogprobsShape::Dicts),
                    Peek::Object => Some(LogprobsShape::Flat),
                    other => {
                        return Err(json::wrong_type(
                            LOGPROBS,
                            "an array of {token id: Logprob} dicts, a FlatLogprobs object \
                             or null",
                            other,
                            jiter.current_index(),
                        ));
                    }
                };
                let (start, end) = json::value_span(jiter, LOGPROBS)?;
                logprobs_at = shape.map(|shape| (base + start, base + end, shape));
            }
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })?;
    let Some((start, end, shape)) = logprobs_at else {
        return Ok(());
    };
    let keep = options.keep_content;
    json::reread(record, start, end, |jiter| match shape {
        LogprobsShape::Dicts => read_logprobs(jiter, token_ids.as_deref(), keep, buf),
        LogprobsShape::Flat => read_flat_logprobs(jiter, token_ids.as_deref(), keep, buf),
    })?;
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
    check_cumulative(buf, cumulative_logprob, start)
}

/// `cumulative_logprob` is the running sum of the sampled tokens' log-probs over the whole
/// generation (vllm/v1/engine/logprobs.py `_update_sample_logprobs`), while a DELTA stream
/// piece carries only its new tokens' log-probs (output_processor.py
/// `_new_completion_output`). Log-probs that do not add up to it are part of a generation,
/// and scoring them as the whole would be a plausible wrong number. Rounded dumps differ
/// from the sum by up to half a unit in their last place per token, hence the tolerance.
fn check_cumulative(buf: &TraceBuf, cumulative: Option<f64>, index: usize) -> RecordResult<()> {
    const PER_TOKEN_TOLERANCE: f64 = 1e-4;
    let Some(cumulative) = cumulative.filter(|value| value.is_finite()) else {
        return Ok(());
    };
    if !buf.has_logprobs {
        return Ok(());
    }
    let sum: f64 = buf.logprobs.iter().sum();
    let n_tokens = buf.logprobs.len() as f64;
    if !sum.is_finite() || (sum - cumulative).abs() <= PER_TOKEN_TOLERANCE * n_tokens.max(1.0) {
        return Ok(());
    }
    Err(RecordError::new(
        format!(
            "vLLM output's {} sampled log-probs add up to {sum} but its cumulative_logprob is \
             {cumulative}: they cover only part of the generation (a DELTA stream piece?); \
             save each request's finished output with the CUMULATIVE or FINAL_ONLY output kind",
            buf.logprobs.len()
        ),
        index,
    ))
}

/// Reads `token_ids` (integers); `null` → None.
fn read_token_ids(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<Option<Vec<i64>>> {
    let mut ids = Vec::new();
    let given = json::for_each_element(jiter, field, |jiter, peek| {
        ids.push(read_integer(jiter, peek, field, "an array of token ids")?);
        Ok(())
    })?;
    Ok(given.then_some(ids))
}

/// One integer element of an id or index list.
fn read_integer(
    jiter: &mut Jiter<'_>,
    peek: Peek,
    field: &str,
    expected: &str,
) -> RecordResult<i64> {
    let index = jiter.current_index();
    if !json::is_number(peek) {
        return Err(json::wrong_type(field, expected, peek, index));
    }
    let text = jiter.known_number_bytes(peek).ctx(field)?;
    std::str::from_utf8(text)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| RecordError::new(format!("field `{field}`: expected an integer"), index))
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
                return Err(no_token_ids(jiter.current_index()));
            }
            chosen = Some(0);
        }
        finish_position(buf, &mut texts, keep, list_start, chosen, chosen_has_token);
        position += 1;
        Ok(())
    })?;
    texts.finish(buf);
    Ok(())
}

fn no_token_ids(index: usize) -> RecordError {
    RecordError::new(
        "vLLM output has logprobs but no token_ids; cannot tell which token was sampled",
        index,
    )
}

/// Closes a position's top list and records its sampled token (entry `chosen` of the list
/// that starts at `list_start`). A sampled id missing from its position has no log-prob:
/// NaN, counted as invalid.
fn finish_position(
    buf: &mut TraceBuf,
    texts: &mut TokenTexts,
    keep: bool,
    list_start: usize,
    chosen: Option<usize>,
    chosen_has_token: bool,
) {
    buf.end_top_list();
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

/// The lists of a dumped `FlatLogprobs` (vllm/logprobs.py `FlatLogprobs`); `ranks` are not
/// needed.
#[derive(Debug, Default)]
struct FlatLists {
    start_indices: Option<Vec<i64>>,
    end_indices: Option<Vec<i64>>,
    token_ids: Option<Vec<i64>>,
    logprobs: Option<Vec<f64>>,
    /// Each entry's decoded token (kept only with content; `Some("")` stands for a string
    /// that was there but not kept).
    decoded_tokens: Option<Vec<Option<String>>>,
}

const FLAT: &str = "outputs.logprobs (FlatLogprobs)";

impl FlatLists {
    fn read(jiter: &mut Jiter<'_>, keep: bool) -> RecordResult<FlatLists> {
        let mut lists = FlatLists::default();
        json::for_each_member(jiter, LOGPROBS, |jiter, key| {
            let field = format!("{LOGPROBS}.{key}");
            match key {
                "start_indices" => lists.start_indices = read_indices(jiter, &field)?,
                "end_indices" => lists.end_indices = read_indices(jiter, &field)?,
                "token_ids" => lists.token_ids = read_token_ids(jiter, &field)?,
                "logprobs" => {
                    let mut values = Vec::new();
                    if json::next_f64_array(jiter, &field, &mut values)? {
                        lists.logprobs = Some(values);
                    }
                }
                "decoded_tokens" => {
                    let mut tokens = Vec::new();
                    let given = json::for_each_element(jiter, &field, |jiter, _peek| {
                        let mut token = String::new();
                        let has_token = read_token_text(jiter, &field, keep, &mut token)?;
                        tokens.push(has_token.then_some(token));
                        Ok(())
                    })?;
                    lists.decoded_tokens = given.then_some(tokens);
                }
                _ => jiter.next_skip().ctx(&field)?,
            }
            Ok(())
        })?;
        Ok(lists)
    }
}

fn read_indices(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<Option<Vec<i64>>> {
    let mut indices = Vec::new();
    let given = json::for_each_element(jiter, field, |jiter, peek| {
        indices.push(read_integer(jiter, peek, field, "an array of indices")?);
        Ok(())
    })?;
    Ok(given.then_some(indices))
}

/// Reads a `FlatLogprobs` object into the same per-position log-probs and top lists as the
/// dict form.
fn read_flat_logprobs(
    jiter: &mut Jiter<'_>,
    token_ids: Option<&[i64]>,
    keep: bool,
    buf: &mut TraceBuf,
) -> RecordResult<()> {
    let index = jiter.current_index();
    let lists = FlatLists::read(jiter, keep)?;
    let inconsistent = |what: String| {
        RecordError::new(
            format!("field `{FLAT}`: {what}; cannot tell which log-prob belongs where"),
            index,
        )
    };
    let (Some(starts), Some(ends), Some(ids), Some(values)) = (
        &lists.start_indices,
        &lists.end_indices,
        &lists.token_ids,
        &lists.logprobs,
    ) else {
        return Err(inconsistent(
            "start_indices, end_indices, token_ids and logprobs must all be lists".to_owned(),
        ));
    };
    if starts.len() != ends.len() {
        return Err(inconsistent(format!(
            "{} start_indices but {} end_indices",
            starts.len(),
            ends.len()
        )));
    }
    if ids.len() != values.len() {
        return Err(inconsistent(format!(
            "{} token_ids but {} logprobs",
            ids.len(),
            values.len()
        )));
    }
    if let Some(decoded) = &lists.decoded_tokens
        && decoded.len() != values.len()
    {
        return Err(inconsistent(format!(
            "{} decoded_tokens but {} logprobs",
            decoded.len(),
            values.len()
        )));
    }
    buf.logprobs.clear();
    buf.tokens.clear();
    buf.begin_top_lists();
    buf.has_logprobs = true;
    let mut texts = TokenTexts::default();
    // Python's dict keeps a token id once; `FlatLogprobs.append_fast` writes the sampled
    // token again when it is also among the top k.
    let mut seen: HashSet<i64> = HashSet::new();
    for (position, (&start, &end)) in starts.iter().zip(ends).enumerate() {
        let range = usize::try_from(start)
            .ok()
            .zip(usize::try_from(end).ok())
            .filter(|(start, end)| start <= end && *end <= values.len());
        let Some((start, end)) = range else {
            return Err(inconsistent(format!(
                "position {position} spans {start}..{end} of {} entries",
                values.len()
            )));
        };
        let sampled = token_ids.and_then(|sampled| sampled.get(position).copied());
        let list_start = buf.top_values.len();
        let mut chosen: Option<usize> = None;
        let mut chosen_has_token = false;
        let mut entries = 0usize;
        seen.clear();
        for entry in start..end {
            let (Some(&id), Some(&value)) = (ids.get(entry), values.get(entry)) else {
                continue;
            };
            if !seen.insert(id) {
                continue;
            }
            let decoded = lists
                .decoded_tokens
                .as_ref()
                .and_then(|decoded| decoded.get(entry))
                .and_then(Option::as_ref);
            if chosen.is_none() && (sampled == Some(id) || token_ids.is_none()) {
                chosen = Some(entries);
                chosen_has_token = decoded.is_some();
            }
            buf.top_values.push(value);
            if keep {
                buf.top_tokens.push(decoded.cloned().unwrap_or_default());
            }
            entries += 1;
        }
        if token_ids.is_none() && entries != 1 {
            return Err(no_token_ids(index));
        }
        finish_position(buf, &mut texts, keep, list_start, chosen, chosen_has_token);
    }
    texts.finish(buf);
    Ok(())
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
            "field `outputs.logprobs`: expected an array of {token id: Logprob} dicts, a \
             FlatLogprobs object or null, found a string"
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

    use crate::import::ImportNote;
    use crate::score::token_stats;
    use crate::trace::TraceBuf;

    // Written by vLLM's own classes (vllm 0.33.0 wheel): `FlatLogprobs` and
    // `append_logprobs_for_next_position` (vllm/logprobs.py:31-209), `CompletionOutput` and
    // `RequestOutput` (vllm/outputs.py:58-256), with the per-step bookkeeping of
    // vllm/v1/engine/logprobs.py:76-116 (sampled token first, running cumulative_logprob)
    // and vllm/v1/engine/output_processor.py:475-530 (CUMULATIVE / DELTA outputs), dumped as
    // `json.dumps(request_output, default=vars)`.
    const FLAT: &[u8] = include_bytes!("../../../../tests/data/formats/vllm_flat.jsonl");
    const DICTS: &[u8] = include_bytes!("../../../../tests/data/formats/vllm_logprobs0.jsonl");
    const CUMULATIVE: &[u8] =
        include_bytes!("../../../../tests/data/formats/vllm_stream_cumulative.jsonl");
    const DELTA: &[u8] = include_bytes!("../../../../tests/data/formats/vllm_stream_delta.jsonl");
    const STREAM_N2: &[u8] = include_bytes!("../../../../tests/data/formats/vllm_stream_n2.jsonl");

    /// The sampler's float32 values as Python floats (what `.tolist()` gives).
    fn f32s(values: &[f32]) -> Vec<f64> {
        values.iter().map(|&value| f64::from(value)).collect()
    }

    fn parse_with_notes(record: &[u8]) -> (Vec<TraceBuf>, Vec<ImportNote>) {
        crate::import::test_support::parse_with_notes(Format::Vllm, record)
    }

    #[test]
    fn flat_logprobs_read_like_the_dict_form() {
        // vllm/logprobs.py:84-92 `append_fast`: the sampled token first, then the top k,
        // so the sampled token appears twice when it is also in the top k.
        let flat = parse(Format::Vllm, &records(FLAT)[0]).unwrap();
        let dicts = parse(Format::Vllm, &records(DICTS)[1]).unwrap();
        assert_eq!(flat, dicts);
        assert_eq!(flat.len(), 2);

        let up = &flat[0];
        assert_eq!(up.question_id.as_deref(), Some("SLC35B1|PDIA6|K562"));
        assert_eq!(up.tokens, strings(&["Answer", ":", " up", "<|eot_id|>"]));
        assert_raw(&up.logprobs, &f32s(&[-0.0021, -3.5e-5, -0.2877, -0.0006]));
        // Each repeated sampled id is read once: two entries, not three.
        assert_eq!(up.n_top_lists(), 4);
        assert_raw(up.top_list(0), &f32s(&[-0.0021, -6.4]));
        assert_raw(up.top_list(3), &f32s(&[-0.0006, -7.9]));
        assert_eq!(up.top_tokens[..2], strings(&["Answer", "Final"]));

        // " none" (rank 3) is outside the top 2: three distinct entries, sampled first.
        let none = &flat[1];
        assert_raw(&none.logprobs, &f32s(&[-0.0019, -4.1e-5, -2.9957, -0.0011]));
        assert_raw(none.top_list(2), &f32s(&[-2.9957, -0.2877, -1.3863]));
        assert_eq!(none.top_tokens[4..7], strings(&[" none", " up", " down"]));
        // The sum matches the dump's cumulative_logprob, so nothing is missing.
        let sum: f64 = none.logprobs.iter().sum();
        assert_eq!(sum, -2.998_740_882_532_729_3);
    }

    #[test]
    fn prompt_logprobs_are_never_read_as_generated_tokens() {
        // Both fixtures carry `prompt_logprobs` (first entry None, vllm/logprobs.py:165-170),
        // flat in one and as dicts in the other; only the 4 generated tokens are read.
        for record in [&records(FLAT)[0], &records(DICTS)[0], &records(DICTS)[1]] {
            for trace in parse(Format::Vllm, record).unwrap() {
                assert_eq!(trace.logprobs.len(), 4);
                assert_eq!(trace.n_top_lists(), 4);
                assert_eq!(trace.n_token_strings, Some(4));
            }
        }
    }

    #[test]
    fn logprobs_zero_gives_one_entry_top_lists_and_no_entropy() {
        // `logprobs=0`: vllm/logprobs.py:187-193 ranks only the sampled token, so each
        // position holds it alone. Its list has one entry (no invented alternative, no
        // second copy of the sampled token), and mte is null rather than 0.
        let flat = parse(Format::Vllm, &records(FLAT)[1]).unwrap();
        let dicts = parse(Format::Vllm, &records(DICTS)[0]).unwrap();
        assert_eq!(flat, dicts);
        let trace = &flat[0];
        let expected = f32s(&[-0.0024, -2.9e-5, -0.821, -0.0009]);
        assert_raw(&trace.logprobs, &expected);
        for (position, logprob) in expected.iter().enumerate() {
            assert_raw(trace.top_list(position), &[*logprob]);
        }
        let stats = token_stats(trace);
        assert_eq!(stats.mte(), None);
        assert!(stats.msp().is_some());
    }

    #[test]
    fn flat_entries_are_matched_to_the_sampled_id() {
        // The sampled id decides, wherever it stands; a repeat of it is skipped.
        let record = br#"{"request_id":"q1","outputs":[{"index":0,"token_ids":[709,25],"logprobs":{"start_indices":[0,3],"end_indices":[3,5],"token_ids":[1523,709,709,25,512],"logprobs":[-1.2,-0.4,-0.4,-0.01,-5.0],"ranks":[1,2,2,1,2],"decoded_tokens":[" down"," up"," up",":",null]}}]}"#;
        let traces = parse(Format::Vllm, record).unwrap();
        assert_raw(&traces[0].logprobs, &[-0.4, -0.01]);
        assert_raw(traces[0].top_list(0), &[-1.2, -0.4]);
        assert_raw(traces[0].top_list(1), &[-0.01, -5.0]);
        assert_eq!(traces[0].tokens, strings(&[" up", ":"]));
        assert_eq!(traces[0].top_tokens, strings(&[" down", " up", ":", ""]));

        // Without `token_ids` only one-entry positions can be read, as with dicts.
        let record = br#"{"request_id":"q1","outputs":[{"index":0,"logprobs":{"start_indices":[0],"end_indices":[1],"token_ids":[709],"logprobs":[-0.4],"ranks":[1],"decoded_tokens":[" up"]}}]}"#;
        let traces = parse(Format::Vllm, record).unwrap();
        assert_raw(&traces[0].logprobs, &[-0.4]);
        let record = br#"{"request_id":"q1","outputs":[{"index":0,"logprobs":{"start_indices":[0],"end_indices":[2],"token_ids":[709,1523],"logprobs":[-0.4,-1.2],"ranks":[1,2],"decoded_tokens":[" up"," down"]}}]}"#;
        let error = parse(Format::Vllm, record).unwrap_err();
        assert_eq!(
            error.message,
            "vLLM output has logprobs but no token_ids; cannot tell which token was sampled"
        );
    }

    #[test]
    fn inconsistent_flat_logprobs_are_errors() {
        let cases: [(&[u8], &str); 4] = [
            (
                br#"{"request_id":"q1","outputs":[{"index":0,"token_ids":[709],"logprobs":{"start_indices":[0],"end_indices":[2],"token_ids":[709],"logprobs":[-0.4]}}]}"#,
                "position 0 spans 0..2 of 1 entries",
            ),
            (
                br#"{"request_id":"q1","outputs":[{"index":0,"token_ids":[709],"logprobs":{"start_indices":[0],"end_indices":[1,1],"token_ids":[709],"logprobs":[-0.4]}}]}"#,
                "1 start_indices but 2 end_indices",
            ),
            (
                br#"{"request_id":"q1","outputs":[{"index":0,"token_ids":[709],"logprobs":{"start_indices":[0],"end_indices":[1],"token_ids":[709,1],"logprobs":[-0.4]}}]}"#,
                "2 token_ids but 1 logprobs",
            ),
            (
                br#"{"request_id":"q1","outputs":[{"index":0,"token_ids":[709],"logprobs":{"start_indices":[0],"end_indices":[1],"logprobs":[-0.4]}}]}"#,
                "start_indices, end_indices, token_ids and logprobs must all be lists",
            ),
        ];
        for (record, what) in cases {
            let error = parse(Format::Vllm, record).unwrap_err();
            assert_eq!(
                error.message,
                format!(
                    "field `outputs.logprobs (FlatLogprobs)`: {what}; cannot tell which \
                     log-prob belongs where"
                )
            );
            assert!(error.index > 50, "index {}", error.index);
        }
        // More positions than sampled tokens is caught as for dicts.
        let record = br#"{"request_id":"q1","outputs":[{"index":0,"token_ids":[709],"logprobs":{"start_indices":[0,1],"end_indices":[1,2],"token_ids":[709,25],"logprobs":[-0.4,-0.1]}}]}"#;
        let error = parse(Format::Vllm, record).unwrap_err();
        assert!(
            error
                .message
                .starts_with("vLLM output has 2 logprobs entries but 1")
        );
    }

    #[test]
    fn unfinished_outputs_of_a_cumulative_stream_are_noted_not_scored() {
        // CUMULATIVE (the default output kind): every step's RequestOutput holds the whole
        // generation so far, `finish_reason` None until the last (output_processor.py:386-401,
        // 475-530).
        let records = records(CUMULATIVE);
        assert_eq!(records.len(), 4);
        for record in &records[..3] {
            let (traces, notes) = parse_with_notes(record);
            assert!(traces.is_empty());
            assert_eq!(
                notes,
                [ImportNote {
                    what: super::UNFINISHED,
                    count: 1
                }]
            );
        }
        let (traces, notes) = parse_with_notes(&records[3]);
        assert!(notes.is_empty());
        assert_eq!(traces.len(), 1);
        assert_eq!(traces[0].question_id.as_deref(), Some("q-stream"));
        assert_eq!(traces[0].text.as_deref(), Some("Answer: up"));
        assert_raw(
            &traces[0].logprobs,
            &f32s(&[-0.0021, -3.5e-5, -0.2877, -0.0006]),
        );
    }

    #[test]
    fn a_delta_stream_piece_is_refused_not_scored_as_the_generation() {
        // DELTA: each RequestOutput holds only its new tokens' log-probs
        // (output_processor.py:491-498) while cumulative_logprob runs over the whole
        // generation (logprobs.py:109-110); the finished piece alone is one token of four.
        let records = records(DELTA);
        for record in &records[..3] {
            let (traces, notes) = parse_with_notes(record);
            assert!(traces.is_empty());
            assert_eq!(notes.len(), 1);
        }
        let error = parse(Format::Vllm, &records[3]).unwrap_err();
        assert!(
            error
                .message
                .starts_with("vLLM output's 1 sampled log-probs add up to -0.0006"),
            "{}",
            error.message
        );
        assert!(error.message.contains("cumulative_logprob is -0.29043"));
    }

    #[test]
    fn rounded_dumps_still_match_their_cumulative_logprob() {
        // Values rounded to 4 digits differ from the running sum by less than 1e-4 a token.
        let record = br#"{"request_id":"q1","outputs":[{"index":0,"token_ids":[709,25],"cumulative_logprob":-0.4101,"logprobs":[{"709":{"logprob":-0.4}},{"25":{"logprob":-0.01}}]}]}"#;
        assert!(parse(Format::Vllm, record).is_ok());
        // An empty DELTA piece (no new tokens) against a non-zero running sum is refused.
        let record = br#"{"request_id":"q1","outputs":[{"index":0,"token_ids":[],"cumulative_logprob":-0.41,"logprobs":[]}]}"#;
        assert!(parse(Format::Vllm, record).is_err());
        // A null or non-finite cumulative_logprob, or an invalid sampled value, is not
        // checked.
        let record = br#"{"request_id":"q1","outputs":[{"index":0,"token_ids":[709],"cumulative_logprob":null,"logprobs":[{"709":-0.4}]}]}"#;
        assert!(parse(Format::Vllm, record).is_ok());
        let record = br#"{"request_id":"q1","outputs":[{"index":0,"token_ids":[709],"cumulative_logprob":-3.0,"logprobs":[{"1":-0.4}]}]}"#;
        assert!(parse(Format::Vllm, record).is_ok());
    }

    #[test]
    fn a_sample_that_finishes_first_in_an_n2_stream_is_scored() {
        // n=2, CUMULATIVE: each RequestOutput carries one sample's output, and `finished`
        // stays false until both samples are done (v1/engine/parallel_sampling.py:102-128),
        // so sample 0's finished output arrives in a RequestOutput with `finished: false`.
        let records = records(STREAM_N2);
        assert_eq!(records.len(), 8);
        let mut scored = Vec::new();
        let mut partial = 0;
        for record in &records {
            let (traces, notes) = parse_with_notes(record);
            partial += notes.iter().map(|note| note.count).sum::<u64>();
            scored.extend(traces);
        }
        assert_eq!(partial, 6);
        let texts: Vec<_> = scored.iter().map(|t| t.text.as_deref()).collect();
        assert_eq!(texts, [Some("Answer: up"), Some("Answer: none")]);
        for trace in &scored {
            assert_eq!(trace.question_id.as_deref(), Some("q-n2"));
            assert_eq!(trace.logprobs.len(), 4);
        }
    }
}
