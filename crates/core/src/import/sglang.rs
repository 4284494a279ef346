//! SGLang native `/generate` responses with `return_logprob`: `{text, meta_info: {id,
//! finish_reason, output_token_logprobs: [[logprob, token_id, text or null], …],
//! output_token_logprobs_length, output_top_logprobs: [[[logprob, token_id, text or null],
//! …] or null, …]}}`. One trace per response; a batched request's JSON array of responses
//! gives one trace per element. Token texts are there only with `return_text_in_logprobs`.
//!
//! With `return_flat_raw_output_top_logprobs` the top lists come flat instead
//! (sglang 0.5.23 srt/managers/tokenizer_manager.py `_build_flat_top_logprobs_fields`):
//! `output_top_logprobs_val_flat` (or `…_val_flat_b64`, little-endian float32), `…_shape`
//! `[rows, k]` and `…_null_prefix`, position `i ≥ null_prefix` being the `k` values from
//! `(i − null_prefix)·k`. The `input_*` fields describe the prompt and are never read.

use jiter::{Jiter, Peek};

use crate::import::{
    ImportOptions, RecordCommon, TokenTexts, TraceBatch, clear_top_lists, for_each_member_or_null,
    for_each_response, read_token_text,
};
use crate::json::{self, Ctx, RecordError, RecordResult};
use crate::trace::TraceBuf;

const TOKENS: &str = "meta_info.output_token_logprobs";
const TOP: &str = "meta_info.output_top_logprobs";
const FLAT: &str = "meta_info.output_top_logprobs_val_flat";

/// Report note for a stream chunk whose generation has not finished yet.
pub(crate) const UNFINISHED: &str = "unfinished SGLang stream chunks (`finish_reason: null`) \
     not scored: each generation is scored from its finished chunk (count: chunks)";

/// Report note for the responses of one batched request, which SGLang cannot tell apart.
pub(crate) const SEPARATE: &str = "SGLang responses of one batched request each scored as \
     their own question: SGLang gives each of the n samples of a prompt a fresh random id, so \
     a response does not say which prompt it answers (count: responses)";

/// Report note for a batch whose ids SGLang numbered from one string `rid`.
pub(crate) const NUMBERED: &str = "SGLang responses with ids `<rid>_0`, `<rid>_1`, … scored as \
     separate questions: SGLang numbers the prompts of a batch so; if they were one prompt \
     repeated, group them with --sample-suffix '_[0-9]+$' (count: responses)";

pub(super) fn parse(
    record: &[u8],
    options: ImportOptions,
    out: &mut TraceBatch,
) -> RecordResult<()> {
    for_each_response(record, |jiter| {
        let start = jiter.current_index();
        jiter.next_skip().ctx("(record)")?;
        let end = jiter.current_index();
        // tokenizer_manager.py `_handle_batch_output`: `finish_reason` is None until the
        // generation's last chunk. The chunks of a (non-incremental) stream each hold the
        // generation so far; scored, each would be another short copy of the same trace.
        if json::reread(record, start, end, is_unfinished)? {
            out.note(UNFINISHED, 1);
            return Ok(());
        }
        json::reread(record, start, end, |jiter| {
            parse_response(jiter, options, out)
        })
    })?;
    let is_array = record.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'[');
    if is_array {
        note_separate_questions(out);
    }
    Ok(())
}

/// A non-stream request with `n > 1` or a list of prompts answers with one array. The n
/// samples of a prompt get ids from `uuid.uuid4().hex` (tokenizer_manager.py:2144,2174,
/// io_struct.py:382-388), and a string `rid` becomes `<rid>_0`, `<rid>_1`, … over the
/// prompts of a batch (io_struct.py:759-765), so no id says which responses share a
/// prompt. Grouping them by a guess could pool different prompts into one question; they
/// stay apart and the report says so.
fn note_separate_questions(out: &mut TraceBatch) {
    let traces = out.traces();
    if traces.len() < 2 {
        return;
    }
    let count = traces.len() as u64;
    let numbered = batch_rid_base(traces).is_some();
    out.note(if numbered { NUMBERED } else { SEPARATE }, count);
}

/// The `<rid>` of ids `<rid>_0`, `<rid>_1`, … in order, as `_normalize_rid` makes them.
fn batch_rid_base(traces: &[TraceBuf]) -> Option<&str> {
    let first = traces.first()?.question_id.as_deref()?;
    let base = first.strip_suffix("_0")?;
    let all_numbered = traces.iter().enumerate().all(|(index, trace)| {
        trace
            .question_id
            .as_deref()
            .and_then(|id| id.strip_prefix(base))
            .and_then(|rest| rest.strip_prefix('_'))
            == Some(index.to_string().as_str())
    });
    all_numbered.then_some(base)
}

/// Whether the response's `meta_info.finish_reason` is present and `null`.
fn is_unfinished(jiter: &mut Jiter<'_>) -> RecordResult<bool> {
    let mut unfinished = false;
    json::for_each_member(jiter, "(record)", |jiter, key| {
        if key != "meta_info" {
            return jiter.next_skip().ctx(key);
        }
        for_each_member_or_null(jiter, "meta_info", |jiter, key| {
            if key == "finish_reason" && jiter.peek().ctx(key)? == Peek::Null {
                unfinished = true;
            }
            jiter.next_skip().ctx(key)
        })?;
        Ok(())
    })?;
    Ok(unfinished)
}

/// The flat output top-logprob fields, read before the lists are built.
#[derive(Debug, Default)]
struct FlatTop {
    values: Option<Vec<f64>>,
    values_b64: Option<String>,
    values_b64_dtype: Option<String>,
    shape: Option<Vec<f64>>,
    null_prefix: Option<f64>,
    /// Where the first flat field starts, for errors.
    index: Option<usize>,
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
    let mut logprobs_length: Option<(f64, usize)> = None;
    let mut nested_top_at: Option<usize> = None;
    let mut flat = FlatTop::default();
    json::for_each_member(jiter, "(record)", |jiter, key| {
        if common.read(jiter, key, options)? {
            return Ok(());
        }
        match key {
            "text" => buf.text = json::next_opt_string(jiter, key)?,
            "meta_info" => {
                for_each_member_or_null(jiter, "meta_info", |jiter, key| {
                    let index = jiter.current_index();
                    let field = || format!("meta_info.{key}");
                    match key {
                        "id" => buf.question_id = json::next_id(jiter, "meta_info.id")?,
                        "output_token_logprobs" => read_token_logprobs(jiter, keep, buf)?,
                        "output_token_logprobs_length" => {
                            let value = next_number(jiter, &field())?;
                            logprobs_length = value.map(|value| (value, index));
                        }
                        "output_top_logprobs" => {
                            nested_top_at = Some(index);
                            read_top_logprobs(jiter, keep, buf)?;
                        }
                        "output_top_logprobs_val_flat" => {
                            flat.index.get_or_insert(index);
                            let mut values = Vec::new();
                            if json::next_f64_array(jiter, FLAT, &mut values)? {
                                flat.values = Some(values);
                            }
                        }
                        "output_top_logprobs_val_flat_b64" => {
                            flat.index.get_or_insert(index);
                            flat.values_b64 = json::next_opt_string(jiter, &field())?;
                        }
                        "output_top_logprobs_val_flat_b64_dtype" => {
                            flat.values_b64_dtype = json::next_opt_string(jiter, &field())?;
                        }
                        "output_top_logprobs_shape" => {
                            let mut shape = Vec::new();
                            if json::next_f64_array(jiter, &field(), &mut shape)? {
                                flat.shape = Some(shape);
                            }
                        }
                        "output_top_logprobs_null_prefix" => {
                            flat.null_prefix = next_number(jiter, &field())?;
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
    // In an incremental stream (`--incremental-streaming-output`) each chunk's per-token
    // lists hold only its new tokens while `output_token_logprobs_length` counts them all
    // (tokenizer_manager.py `_slice_streaming_output_meta_info`, `add_logprob_to_meta_info`).
    if let Some((length, index)) = logprobs_length
        && length != buf.logprobs.len() as f64
    {
        return Err(RecordError::new(
            format!(
                "SGLang response has {} output_token_logprobs but output_token_logprobs_length \
                 {length}: it holds only part of the generation (a chunk of an incremental \
                 stream?)",
                buf.logprobs.len()
            ),
            index,
        ));
    }
    if nested_top_at.is_none()
        && let Some(index) = flat.index
    {
        read_flat_top_logprobs(&flat, keep, buf)
            .map_err(|message| RecordError::new(format!("field `{FLAT}`: {message}"), index))?;
        if buf.n_top_lists() != buf.logprobs.len() {
            return Err(RecordError::new(
                format!(
                    "field `{FLAT}`: {} positions of top log-probs for {} generated tokens; \
                     cannot tell which list belongs to which token",
                    buf.n_top_lists(),
                    buf.logprobs.len()
                ),
                index,
            ));
        }
    }
    if let Some(index) = nested_top_at
        && buf.has_top()
        && buf.n_top_lists() != buf.logprobs.len()
    {
        return Err(RecordError::new(
            format!(
                "SGLang response has {} output_top_logprobs positions but {} \
                 output_token_logprobs; cannot tell which list belongs to which token",
                buf.n_top_lists(),
                buf.logprobs.len()
            ),
            index,
        ));
    }
    common.apply(out, first);
    Ok(())
}

/// A number or `null`.
fn next_number(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<Option<f64>> {
    let peek = jiter.peek().ctx(field)?;
    if peek == Peek::Null {
        jiter.known_null().ctx(field)?;
        return Ok(None);
    }
    json::known_f64_or_null(jiter, peek, field).map(Some)
}

/// A count read as a JSON number: a whole number from 0 to 2^53.
fn count(value: f64) -> Option<usize> {
    const MAX_EXACT: f64 = 9_007_199_254_740_992.0;
    (value.fract() == 0.0 && (0.0..=MAX_EXACT).contains(&value)).then_some(value as usize)
}

/// Builds the top lists from the flat fields: `null_prefix` empty lists (null rows), then
/// `rows` lists of `k` values (io_struct.py `flat_top_logprobs_layout`).
fn read_flat_top_logprobs(flat: &FlatTop, keep: bool, buf: &mut TraceBuf) -> Result<(), String> {
    let shape = flat
        .shape
        .as_deref()
        .ok_or("output_top_logprobs_shape is missing")?;
    let (rows, k) = match shape {
        [rows, k] => count(*rows).zip(count(*k)),
        _ => None,
    }
    .ok_or("output_top_logprobs_shape is not [rows, k]")?;
    let null_prefix = flat
        .null_prefix
        .map_or(Some(0), count)
        .ok_or("output_top_logprobs_null_prefix is not a count")?;
    let decoded;
    let values: &[f64] = match (&flat.values, &flat.values_b64) {
        (Some(values), _) => values,
        (None, Some(text)) => {
            match flat.values_b64_dtype.as_deref() {
                None | Some("float32") => {}
                Some(other) => return Err(format!("values of dtype {other} are not read")),
            }
            decoded = decode_f32_le(text)?;
            &decoded
        }
        (None, None) => return Err("no values".to_owned()),
    };
    if Some(values.len()) != rows.checked_mul(k) {
        return Err(format!("{} values for shape [{rows}, {k}]", values.len()));
    }
    buf.begin_top_lists();
    for _ in 0..null_prefix {
        buf.end_top_list();
    }
    if k > 0 {
        for row in values.chunks(k) {
            buf.top_values.extend_from_slice(row);
            if keep {
                buf.top_tokens.resize(buf.top_values.len(), String::new());
            }
            buf.end_top_list();
        }
    } else {
        for _ in 0..rows {
            buf.end_top_list();
        }
    }
    Ok(())
}

/// Decodes standard base64 (`pybase64.b64encode`) of little-endian float32 values
/// (`np.float32` arrays' `tobytes()` on the little-endian machines SGLang serves from).
fn decode_f32_le(text: &str) -> Result<Vec<f64>, String> {
    let bytes = decode_base64(text).ok_or("output_top_logprobs_val_flat_b64 is not base64")?;
    if bytes.len() % 4 != 0 {
        return Err(format!(
            "output_top_logprobs_val_flat_b64 has {} bytes, not whole float32 values",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|chunk| {
            let mut word = [0u8; 4];
            word.copy_from_slice(chunk);
            f64::from(f32::from_le_bytes(word))
        })
        .collect())
}

/// Standard-alphabet base64 with optional `=` padding; None on any other byte.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn sextet(byte: u8) -> Option<u32> {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        Some(u32::from(value))
    }
    let body = text.trim_end_matches('=').as_bytes();
    if body.len() % 4 == 1 || text.len() - body.len() > 2 {
        return None;
    }
    let mut bytes = Vec::with_capacity(body.len() * 3 / 4);
    for group in body.chunks(4) {
        let mut bits = 0u32;
        for (position, &byte) in group.iter().enumerate() {
            bits |= sextet(byte)? << (18 - 6 * position);
        }
        let [_, first, second, third] = bits.to_be_bytes();
        bytes.push(first);
        if group.len() > 2 {
            bytes.push(second);
        }
        if group.len() > 3 {
            bytes.push(third);
        }
    }
    Some(bytes)
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

    use crate::import::ImportNote;
    use crate::score::token_stats;
    use crate::trace::TraceBuf;

    // Written by SGLang's own code (sglang 0.5.23 wheel): `convert_logprob_style`,
    // `add_logprob_to_meta_info` and `detokenize_(top_)logprobs_tokens`
    // (srt/managers/tokenizer_manager.py:2840-3135), `_build_flat_top_logprobs_fields(
    // _from_arrays)` and `_slice_streaming_output_meta_info` (tokenizer_manager.py:364-441),
    // `flat_top_logprobs_layout` / `build_flat_top_logprobs_arrays` (io_struct.py:1582-1624),
    // with meta_info and the response laid out as `_handle_batch_output` does
    // (tokenizer_manager.py:2480-2672) and serialised by orjson with SGLang's options
    // (srt/utils/json_response.py).
    const FLAT: &[u8] = include_bytes!("../../../../tests/data/formats/sglang_flat.jsonl");
    // Line 1: text="…", sampling_params={"n": 2}; line 2: text=[p0, p1], rid="PDIA6".
    const BATCHES: &[u8] = include_bytes!("../../../../tests/data/formats/sglang_batches.jsonl");
    const STREAM: &[u8] = include_bytes!("../../../../tests/data/formats/sglang_stream.jsonl");
    const INCREMENTAL: &[u8] =
        include_bytes!("../../../../tests/data/formats/sglang_stream_incremental.jsonl");

    /// SGLang's float32 values as the JSON carries them.
    fn f32s(values: &[f32]) -> Vec<f64> {
        values.iter().map(|&value| f64::from(value)).collect()
    }

    fn parse_with_notes(record: &[u8]) -> (Vec<TraceBuf>, Vec<ImportNote>) {
        crate::import::test_support::parse_with_notes(Format::Sglang, record)
    }

    #[test]
    fn flat_top_logprobs_read_like_the_nested_lists() {
        // Records: `return_flat_raw_output_top_logprobs` (plain, then base64 float32) and
        // the same generation with nested lists; top_logprobs_num=3, logprob_start_len=0.
        let records = records(FLAT);
        let nested = &parse(Format::Sglang, &records[2]).unwrap()[0];
        assert_raw(
            &nested.logprobs,
            &f32s(&[-0.0017, -2.4e-5, -0.1625, -0.0004]),
        );
        assert_raw(nested.top_list(2), &f32s(&[-0.1625, -1.9022, -6.0]));
        assert_eq!(nested.top_tokens[6..9], strings(&[" up", " down", " none"]));
        for record in &records[..2] {
            let flat = &parse(Format::Sglang, record).unwrap()[0];
            assert_eq!(flat.question_id, nested.question_id);
            assert_eq!(flat.tokens, nested.tokens);
            assert_raw(&flat.logprobs, &nested.logprobs);
            assert_eq!(flat.top_offsets, nested.top_offsets);
            assert_raw(&flat.top_values, &nested.top_values);
            // The flat form has token ids, not texts.
            assert_eq!(flat.top_tokens, vec![String::new(); 12]);
        }
    }

    #[test]
    fn prompt_logprobs_are_never_read_as_generated_tokens() {
        // The records also carry 3 prompt positions (`input_token_logprobs`, first null)
        // and their top lists, nested and flat with a null prefix: none of them is read.
        for record in &records(FLAT)[..3] {
            let trace = &parse(Format::Sglang, record).unwrap()[0];
            assert_eq!(trace.logprobs.len(), 4);
            assert_eq!(trace.n_top_lists(), 4);
        }
    }

    #[test]
    fn logprobs_of_requested_token_ids_are_not_top_lists() {
        // `token_ids_logprob` adds `output_token_ids_logprobs`: log-probs of ids the caller
        // chose (tokenizer_manager.py:2965-3007), not the top of the distribution.
        let record = br#"{"text":"up","meta_info":{"id":"a","output_token_logprobs":[[-0.1,709,null]],"input_token_ids_logprobs":[null],"output_token_ids_logprobs":[[[-0.1,709,null],[-2.3,1523,null]]]}}"#;
        let trace = &parse(Format::Sglang, record).unwrap()[0];
        assert_raw(&trace.logprobs, &[-0.1]);
        assert!(!trace.has_top());
    }

    #[test]
    fn triples_without_text_and_one_entry_top_lists() {
        // `return_text_in_logprobs=false`: [logprob, token_id, null] (tokenizer_manager.py
        // `detokenize_logprob_tokens`); top_logprobs_num=1 gives the top token alone, so
        // there is no entropy to compute.
        let trace = &parse(Format::Sglang, &records(FLAT)[3]).unwrap()[0];
        assert_eq!(trace.n_token_strings, None);
        assert!(trace.tokens.is_empty());
        let expected = f32s(&[-0.0022, -3.1e-5, -0.5798, -0.0005]);
        assert_raw(&trace.logprobs, &expected);
        for (position, logprob) in expected.iter().enumerate() {
            assert_raw(trace.top_list(position), &[*logprob]);
        }
        assert_eq!(token_stats(trace).mte(), None);
    }

    #[test]
    fn samples_of_n_above_one_stay_apart_and_the_report_says_why() {
        // text="…", sampling_params={"n": 2}: one array, each sample with its own
        // uuid4().hex id (tokenizer_manager.py:2163-2183 `regenerate_rid`).
        let (traces, notes) = parse_with_notes(&records(BATCHES)[0]);
        assert_eq!(traces.len(), 2);
        assert_eq!(
            traces[0].question_id.as_deref(),
            Some("5a4b3c2d1e0f49a8b7c6d5e4f3a2b1c0")
        );
        assert_eq!(
            traces[1].question_id.as_deref(),
            Some("0f1e2d3c4b5a49687766554433221100")
        );
        assert_eq!(
            notes,
            [ImportNote {
                what: super::SEPARATE,
                count: 2
            }]
        );
        // A single response is no batch.
        let (_, notes) = parse_with_notes(&records(FLAT)[0]);
        assert!(notes.is_empty());
    }

    #[test]
    fn numbered_batch_ids_are_prompts_and_are_not_regrouped() {
        // text=[p0, p1], rid="PDIA6": io_struct.py:759-765 numbers the prompts PDIA6_0,
        // PDIA6_1. Stripping the suffix would pool two prompts into one question.
        let (traces, notes) = parse_with_notes(&records(BATCHES)[1]);
        let ids: Vec<_> = traces.iter().map(|t| t.question_id.as_deref()).collect();
        assert_eq!(ids, [Some("PDIA6_0"), Some("PDIA6_1")]);
        assert_eq!(
            notes,
            [ImportNote {
                what: super::NUMBERED,
                count: 2
            }]
        );
        // Only the exact sequence _0, _1, … is SGLang's numbering.
        let record =
            br#"[{"text":"a","meta_info":{"id":"q_1"}},{"text":"b","meta_info":{"id":"q_2"}}]"#;
        assert_eq!(parse_with_notes(record).1[0].what, super::SEPARATE);
        let record =
            br#"[{"text":"a","meta_info":{"id":"q_0"}},{"text":"b","meta_info":{"id":"r_1"}}]"#;
        assert_eq!(parse_with_notes(record).1[0].what, super::SEPARATE);
    }

    #[test]
    fn unfinished_stream_chunks_are_noted_not_scored() {
        // `"stream": true`: one chunk per token, each holding the generation so far,
        // `finish_reason` null until the last (tokenizer_manager.py:2506-2512, 2640-2664).
        let records = records(STREAM);
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
        assert_eq!(traces[0].text.as_deref(), Some("Answer: up"));
        assert_eq!(traces[0].logprobs.len(), 4);
        assert_eq!(traces[0].n_top_lists(), 4);
    }

    #[test]
    fn a_chunk_of_an_incremental_stream_is_refused() {
        // `--incremental-streaming-output`: the per-token lists are sliced to the chunk's
        // new tokens; `output_token_logprobs_length` still counts all of them.
        let records = records(INCREMENTAL);
        let error = parse(Format::Sglang, &records[3]).unwrap_err();
        assert_eq!(
            error.message,
            "SGLang response has 1 output_token_logprobs but output_token_logprobs_length 4: \
             it holds only part of the generation (a chunk of an incremental stream?)"
        );
    }

    #[test]
    fn inconsistent_flat_fields_are_errors() {
        let cases: [(&[u8], &str); 6] = [
            (
                br#"{"meta_info":{"id":"a","output_token_logprobs":[[-0.1,1,null]],"output_top_logprobs_val_flat":[-0.1,-2.0,-3.0],"output_top_logprobs_shape":[1,2],"output_top_logprobs_null_prefix":0}}"#,
                "3 values for shape [1, 2]",
            ),
            (
                br#"{"meta_info":{"id":"a","output_token_logprobs":[[-0.1,1,null]],"output_top_logprobs_val_flat":[-0.1,-2.0],"output_top_logprobs_null_prefix":0}}"#,
                "output_top_logprobs_shape is missing",
            ),
            (
                br#"{"meta_info":{"id":"a","output_token_logprobs":[[-0.1,1,null]],"output_top_logprobs_val_flat":[-0.1,-2.0],"output_top_logprobs_shape":[1,2],"output_top_logprobs_null_prefix":-1}}"#,
                "output_top_logprobs_null_prefix is not a count",
            ),
            (
                br#"{"meta_info":{"id":"a","output_token_logprobs":[[-0.1,1,null]],"output_top_logprobs_val_flat_b64":"AAAA","output_top_logprobs_val_flat_b64_dtype":"float16","output_top_logprobs_shape":[1,2]}}"#,
                "values of dtype float16 are not read",
            ),
            (
                br#"{"meta_info":{"id":"a","output_token_logprobs":[[-0.1,1,null]],"output_top_logprobs_val_flat_b64":"A*AA","output_top_logprobs_shape":[1,1]}}"#,
                "output_top_logprobs_val_flat_b64 is not base64",
            ),
            (
                br#"{"meta_info":{"id":"a","output_token_logprobs":[[-0.1,1,null]],"output_top_logprobs_val_flat":[-0.1,-2.0],"output_top_logprobs_shape":[1,2],"output_top_logprobs_null_prefix":1}}"#,
                "2 positions of top log-probs for 1 generated tokens; cannot tell which list \
                 belongs to which token",
            ),
        ];
        for (record, what) in cases {
            let error = parse(Format::Sglang, record).unwrap_err();
            assert_eq!(
                error.message,
                format!("field `meta_info.output_top_logprobs_val_flat`: {what}")
            );
        }
        // A null prefix gives empty lists first, as nested nulls do.
        let record = br#"{"meta_info":{"id":"a","output_token_logprobs":[[-0.1,1,null],[-0.2,2,null]],"output_top_logprobs_val_flat":[-0.2,-2.0],"output_top_logprobs_shape":[1,2],"output_top_logprobs_null_prefix":1}}"#;
        let trace = &parse(Format::Sglang, record).unwrap()[0];
        assert_raw(trace.top_list(0), &[]);
        assert_raw(trace.top_list(1), &[-0.2, -2.0]);
        // Nested lists for fewer positions than tokens cannot be aligned either.
        let record = br#"{"meta_info":{"id":"a","output_token_logprobs":[[-0.1,1,null],[-0.2,2,null]],"output_top_logprobs":[[[-0.1,1,null],[-2.0,3,null]]]}}"#;
        let error = parse(Format::Sglang, record).unwrap_err();
        assert!(error.message.starts_with(
            "SGLang response has 1 output_top_logprobs positions but 2 output_token_logprobs"
        ));
    }

    #[test]
    fn base64_decodes_the_standard_alphabet() {
        use super::decode_base64;
        for (text, bytes) in [
            ("", &b""[..]),
            ("Zg==", b"f"),
            ("Zm8=", b"fo"),
            ("Zm9v", b"foo"),
            ("Zm9vYg==", b"foob"),
            ("+/8=", b"\xfb\xff"),
        ] {
            assert_eq!(decode_base64(text).as_deref(), Some(bytes), "{text}");
        }
        for bad in ["Z", "Zm9v!", "Zg===", "Z-8="] {
            assert_eq!(decode_base64(bad), None, "{bad}");
        }
    }
}
