//! llama.cpp server `/completion` responses: `{index, content, completion_probabilities:
//! […], id_slot, stop, model, tokens_predicted, generation_settings, prompt, timings, …}`,
//! one trace per result. Three per-token shapes, by server version and request:
//! - current: `{id, token, logprob, bytes, top_logprobs: [{id, token, logprob, bytes}]}`;
//! - `post_sampling_probs: true`: `{id, token, prob, top_probs: [{id, token, prob}]}`,
//!   read as ln(prob) (a 0 becomes −∞, which the scorer counts as invalid);
//! - before 2025: `{content, probs: [{tok_str, prob}]}`: the sampled token is the entry
//!   whose `tok_str` equals `content` (NaN when none does); the list is all entries.
//!
//! llama.cpp's −3.4e38 (−FLT_MAX, its log of 0) and −∞ sentinels are stored raw.
//!
//! What the server writes is checked against what it generated (sources: llama.cpp as
//! vendored in the llama-cpp-python 0.3.36 sdist, `vendor/llama.cpp/tools/server/`, and
//! in 0.2.85, `vendor/llama.cpp/examples/server/server.cpp`):
//! - A request with several prompts, or with `n_cmpl`/`n` > 1, is answered with one JSON
//!   array of results (server-context.cpp:4337-4358; before 2025 `{"results": […]}`). The
//!   results of one prompt are its samples; results of different prompts are different
//!   questions. Each result carries its prompt text (`prompt`, server-context.cpp:2092),
//!   which tells them apart: the `index` is a flat counter over prompts and samples
//!   (server-queue.cpp:526-538) and `n_cmpl` is not echoed.
//! - `completion_probabilities` leaves out a token that ends inside a UTF-8 character
//!   (server-context.cpp:1825-1860: the token is never added, and its probability is not
//!   merged into the next entry, which carries only its own) and the stop word's tokens
//!   (2113-2121). `tokens_predicted` counts every generated token; the difference is
//!   counted in the report, never guessed at.
//! - Tokens accepted from a speculative draft get probability 1 and no top list, never
//!   computed (server-context.cpp:3980-3990): they are left out.
//! - With temperature ≤ 0 the probabilities are 1 by construction: post-sampling ones
//!   (the temperature sampler keeps only the best token, src/llama-sampler.cpp:270-286)
//!   and, before 2025, every one (server.cpp:2408-2415 in 0.2.85 writes 1 for the first
//!   candidate and 0 for the rest). Such a trace is left unscored.

use jiter::{Jiter, Peek};

use crate::import::openai::{POST_SAMPLING_PROBS, read_api_error};
use crate::import::{
    ImportOptions, RecordCommon, TokenTexts, TraceBatch, clear_top_lists, for_each_member_or_null,
    for_each_response, read_token_text, read_top_list,
};
use crate::json::{self, Ctx, RecordResult};
use crate::trace::TraceBuf;

const FIELD: &str = "completion_probabilities";

/// Report note: generated tokens that `completion_probabilities` has no entry for.
pub(crate) const TOKENS_WITHOUT_PROBS: &str = "llama.cpp generated tokens without an entry in \
     `completion_probabilities`, not scored: the server writes none for a token that ends \
     inside a UTF-8 character (its probability is dropped, not merged into the next entry) \
     nor for the stop word's tokens; counted as `tokens_predicted` minus the entries \
     (count: tokens)";

/// Report note: tokens of a speculative draft, written with probability 1 and no top list.
pub(crate) const SPECULATIVE_DRAFT: &str = "llama.cpp tokens accepted from a speculative \
     draft not scored: the server writes them with probability 1 and an empty top list, \
     never computed (count: tokens)";

/// Report note: probabilities that are 1 by construction at temperature ≤ 0.
pub(crate) const GREEDY_PLACEHOLDERS: &str = "llama.cpp probabilities of a greedy request \
     (temperature ≤ 0) not scored: post-sampling probabilities, and every probability of \
     servers before 2025, are 1 for the chosen token by construction there (count: tokens)";

/// Report note: the old shape's probabilities, taken after the sampling chain.
pub(crate) const OLD_PROBS: &str = "log-probs are the natural log of the `probs` of llama.cpp \
     servers before 2025, taken after the sampling chain (temperature, top-k, top-p): not \
     the model's own distribution (count: tokens)";

/// Report note: old-shape tokens sampled from outside their own `probs` list.
pub(crate) const OLD_SAMPLED_UNLISTED: &str = "llama.cpp tokens (servers before 2025) sampled \
     from outside the top `n_probs` candidates listed for them have no probability: counted \
     as invalid tokens (count: tokens)";

/// Report note: results grouped into questions by the prompt they answer.
pub(crate) const GROUPED_BY_PROMPT: &str = "llama.cpp results grouped into questions by the \
     prompt they answer, with the id `prompt-<hash of model and prompt>`: the server gives \
     no request id, and a request with several prompts or `n` samples answers with one \
     array; results with the same model and `prompt` are samples of one question \
     (count: traces)";

/// Report note: one request's results that cannot be told apart.
pub(crate) const PROMPTS_UNKNOWN: &str = "llama.cpp results of one request kept as one \
     question: they carry no `prompt` text, so separate prompts cannot be told from samples \
     of one prompt (count: traces)";

/// What reading `completion_probabilities` found.
#[derive(Debug, Default)]
struct ProbsRead {
    /// Entries in the JSON, kept or not.
    entries: u64,
    /// Entries left out as speculative-draft placeholders.
    speculative: u64,
    /// Kept entries whose value is a post-sampling `prob`.
    post_sampling: u64,
    /// Kept entries of the old `{content, probs}` shape.
    old_shape: u64,
    /// Old-shape entries whose sampled token is not among the listed candidates.
    old_unlisted: u64,
    /// Kept entries whose value is a probability (either of the above) of exactly 1.
    prob_one: u64,
}

/// Fields of a result that say how many tokens were generated and how.
#[derive(Debug, Default)]
struct Generation {
    tokens_predicted: Option<u64>,
    timings_predicted_n: Option<u64>,
    /// Length of `tokens` (filled only with `return_tokens`).
    tokens_len: Option<u64>,
    temperature: Option<f64>,
    n_probs: Option<f64>,
}

impl Generation {
    /// Every token the server generated for the result, where the result says.
    fn tokens_generated(&self) -> Option<u64> {
        self.tokens_predicted
            .or(self.timings_predicted_n)
            .or(self.tokens_len.filter(|&len| len > 0))
    }
}

pub(super) fn parse(
    record: &[u8],
    options: ImportOptions,
    out: &mut TraceBatch,
) -> RecordResult<()> {
    let mut results = 0_u64;
    let mut without_prompt = 0_u64;
    let mut parse_one = |jiter: &mut Jiter<'_>| {
        results += 1;
        if !parse_response(jiter, record, options, out)? {
            without_prompt += 1;
        }
        Ok(())
    };
    if starts_with_results_member(record) {
        // Servers before 2025 answer several prompts with `{"results": [result, …]}`
        // (server.cpp:1853-1871 in the llama-cpp-python 0.2.85 sdist).
        let mut jiter = json::reader(record);
        json::for_each_member(&mut jiter, "(record)", |jiter, key| match key {
            "results" => {
                json::for_each_element(jiter, key, |jiter, _peek| parse_one(jiter)).map(|_| ())
            }
            _ => jiter.next_skip().ctx(key),
        })?;
        json::finish(&mut jiter)?;
    } else {
        for_each_response(record, parse_one)?;
    }
    if results > 1 && without_prompt > 0 {
        // Only `response_fields` leaves `prompt` out; such results stay on the record's
        // question, as samples or not.
        out.note(PROMPTS_UNKNOWN, without_prompt);
    }
    Ok(())
}

/// Whether the record is an object whose first member is `results`.
fn starts_with_results_member(record: &[u8]) -> bool {
    let mut jiter = json::reader(record);
    matches!(jiter.peek(), Ok(Peek::Object)) && matches!(jiter.known_object(), Ok(Some("results")))
}

/// Reads one result into a new trace and notes what was left out; returns whether it had
/// a `prompt`, which gives its question id when the result has none of its own.
///
/// The prompt is what tells the results of one request apart: each result carries its
/// prompt as the server detokenised it (server-context.cpp:2092), the same for every sample
/// of a prompt (server-task.h:228-245 copies the parent's tokens), while `index` is a flat
/// counter over prompts and samples (server-queue.cpp:526-538) and `n_cmpl` is not echoed.
/// Keyed by the prompt, a saved array is grouped the same however it is framed (one
/// record, or one record per element), and so are samples sent as separate requests.
fn parse_response(
    jiter: &mut Jiter<'_>,
    record: &[u8],
    options: ImportOptions,
    out: &mut TraceBatch,
) -> RecordResult<bool> {
    let first = out.traces().len();
    let buf = out.push();
    let mut common = RecordCommon::default();
    let mut generation = Generation::default();
    let mut probs: Option<ProbsRead> = None;
    let mut prompt_span = None;
    let mut model_span = None;
    let mut server_error = None;
    json::for_each_member(jiter, "(record)", |jiter, key| {
        if key == "prompt" {
            // Read here, not by `RecordCommon`: its hash groups the samples of a prompt
            // even when the text itself is not kept.
            let peek = jiter.peek().ctx(key)?;
            let start = jiter.current_index();
            if peek == Peek::String && options.keep_content {
                buf.prompt = json::next_opt_string(jiter, key)?;
            } else {
                jiter.known_skip(peek).ctx(key)?;
            }
            prompt_span = (peek != Peek::Null).then(|| start..jiter.current_index());
            return Ok(());
        }
        if key == "model" {
            let start = jiter.peek().map(|_| jiter.current_index()).ctx(key)?;
            jiter.next_skip().ctx(key)?;
            model_span = Some(start..jiter.current_index());
            return Ok(());
        }
        if common.read(jiter, key, options)? {
            return Ok(());
        }
        match key {
            "content" => buf.text = json::next_opt_string(jiter, key)?,
            // Not llama.cpp's (it has `id_slot`): a user's own question id, kept when present.
            "id" => buf.question_id = json::next_id(jiter, key)?,
            FIELD => probs = Some(read_probabilities(jiter, options.keep_content, buf)?),
            // What the server writes instead of a response when the request failed.
            "error" => server_error = read_api_error(jiter, key)?,
            "tokens_predicted" => generation.tokens_predicted = next_count(jiter, key)?,
            "tokens" => generation.tokens_len = next_array_len(jiter, key)?,
            "timings" => {
                for_each_member_or_null(jiter, key, |jiter, key| match key {
                    "predicted_n" => {
                        generation.timings_predicted_n = next_count(jiter, key)?;
                        Ok(())
                    }
                    _ => jiter.next_skip().ctx(key),
                })?;
            }
            "generation_settings" => {
                for_each_member_or_null(jiter, key, |jiter, key| match key {
                    "temperature" => {
                        generation.temperature = next_lenient_f64(jiter, key)?;
                        Ok(())
                    }
                    "n_probs" => {
                        generation.n_probs = next_lenient_f64(jiter, key)?;
                        Ok(())
                    }
                    _ => jiter.next_skip().ctx(key),
                })?;
            }
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })?;
    if let Some(error) = server_error {
        return Err(json::RecordError::new(
            format!("the server answered with an error: {error}"),
            0,
        ));
    }
    let greedy_placeholders = probs
        .as_ref()
        .is_some_and(|probs| are_greedy_placeholders(probs, buf, generation.temperature));
    if greedy_placeholders {
        buf.logprobs.clear();
        buf.tokens.clear();
        buf.n_token_strings = None;
        buf.has_logprobs = false;
        clear_top_lists(buf);
    }
    let has_prompt = prompt_span.is_some();
    if let (None, Some(prompt_span)) = (&buf.question_id, prompt_span) {
        let model = model_span
            .and_then(|span| record.get(span))
            .unwrap_or_default();
        let prompt = record.get(prompt_span).unwrap_or_default();
        let hash = fnv1a(fnv1a(FNV_OFFSET, model), prompt);
        buf.question_id = Some(format!("prompt-{hash:016x}"));
        out.note(GROUPED_BY_PROMPT, 1);
    }
    common.apply(out, first);
    note_probabilities(out, probs.as_ref(), &generation, greedy_placeholders);
    Ok(has_prompt)
}

/// Whether every kept value is a probability of exactly 1 from a request at temperature
/// ≤ 0: then none of them says anything about the model (see the module comment).
fn are_greedy_placeholders(probs: &ProbsRead, buf: &TraceBuf, temperature: Option<f64>) -> bool {
    let kept = buf.logprobs.len() as u64;
    temperature.is_some_and(|temperature| temperature <= 0.0)
        && kept > 0
        && probs.post_sampling + probs.old_shape == kept
        && probs.prob_one == kept
}

/// Counts in the report what the result's probabilities leave out or are.
fn note_probabilities(
    out: &mut TraceBatch,
    probs: Option<&ProbsRead>,
    generation: &Generation,
    greedy_placeholders: bool,
) {
    let entries = probs.map_or(0, |probs| probs.entries);
    // Without `completion_probabilities` a missing token is only a missing entry when
    // probabilities were asked for (`n_probs` > 0): the server then omits an empty list.
    let asked = probs.is_some() || generation.n_probs.is_some_and(|n_probs| n_probs > 0.0);
    if asked && let Some(generated) = generation.tokens_generated() {
        out.note(TOKENS_WITHOUT_PROBS, generated.saturating_sub(entries));
    }
    let Some(probs) = probs else {
        return;
    };
    out.note(SPECULATIVE_DRAFT, probs.speculative);
    if greedy_placeholders {
        out.note(GREEDY_PLACEHOLDERS, probs.post_sampling + probs.old_shape);
    } else {
        out.note(POST_SAMPLING_PROBS, probs.post_sampling);
        out.note(OLD_PROBS, probs.old_shape);
    }
    out.note(OLD_SAMPLED_UNLISTED, probs.old_unlisted);
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, 64 bits, continued from `hash` over `bytes`: stable across runs and platforms,
/// so a question id is the same every time the file is read.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A count: a non-negative whole number, or None for `null` or anything else (a count a
/// server did not write is not worth failing the record for).
pub(super) fn next_count(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<Option<u64>> {
    Ok(next_lenient_f64(jiter, field)?
        .filter(|value| *value >= 0.0 && value.fract() == 0.0 && *value < 2f64.powi(53))
        .map(|value| value as u64))
}

/// A number, or None for anything else (skipped).
fn next_lenient_f64(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<Option<f64>> {
    let peek = jiter.peek().ctx(field)?;
    if json::is_number(peek) && peek != Peek::NaN {
        return Ok(Some(jiter.known_float(peek).ctx(field)?));
    }
    jiter.known_skip(peek).ctx(field)?;
    Ok(None)
}

/// The length of an array (its elements skipped), or None for anything else.
fn next_array_len(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<Option<u64>> {
    if jiter.peek().ctx(field)? != Peek::Array {
        jiter.next_skip().ctx(field)?;
        return Ok(None);
    }
    let mut len = 0;
    json::for_each_element(jiter, field, |jiter, peek| {
        len += 1;
        jiter.known_skip(peek).ctx(field)
    })?;
    Ok(Some(len))
}

/// Reads `completion_probabilities`, one object per generated token, in any of the shapes.
fn read_probabilities(
    jiter: &mut Jiter<'_>,
    keep: bool,
    buf: &mut TraceBuf,
) -> RecordResult<ProbsRead> {
    buf.logprobs.clear();
    buf.tokens.clear();
    buf.begin_top_lists();
    let mut read = ProbsRead::default();
    let mut texts = TokenTexts::default();
    let mut any_top = false;
    // Old shape: the `tok_str` of each entry of the current token's `probs`.
    let mut candidates: Vec<String> = Vec::new();
    buf.has_logprobs = json::for_each_element(jiter, FIELD, |jiter, _peek| {
        read.entries += 1;
        let mut logprob = f64::NAN;
        let mut has_logprob = false;
        let mut from_prob = false;
        let mut token = String::new();
        let mut has_token = false;
        let mut has_top = false;
        let mut top_is_array = false;
        let list_start = buf.top_values.len();
        let tokens_start = buf.top_tokens.len();
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
                    from_prob = false;
                }
                "prob" if !has_logprob || from_prob => {
                    let peek = jiter.peek().ctx(FIELD)?;
                    logprob = libm::log(json::known_f64_or_null(jiter, peek, FIELD)?);
                    has_logprob = true;
                    from_prob = true;
                }
                "top_logprobs" | "top_probs" | "probs" if !has_top => {
                    if key == "probs" {
                        read_old_probs(jiter, keep, buf, &mut candidates)?;
                        old_probs = true;
                    } else {
                        let peek = jiter.peek().ctx(FIELD)?;
                        top_is_array = peek == Peek::Array;
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
        // A current-shape entry whose top list is there but empty is a speculative draft
        // token: the server computed no probability for it and wrote 1 (see the module
        // comment). With `n_probs` > 0 a computed token's list is never empty.
        if top_is_array && buf.top_values.len() == list_start && has_logprob {
            read.speculative += 1;
            buf.top_offsets.pop();
            buf.top_tokens.truncate(tokens_start);
            return Ok(());
        }
        if !has_top {
            buf.end_top_list();
        }
        any_top |= has_top;
        if old_probs && !has_logprob {
            read.old_shape += 1;
            if logprob.is_nan() {
                read.old_unlisted += 1;
            }
        } else if from_prob {
            read.post_sampling += 1;
        }
        if ((old_probs && !has_logprob) || from_prob) && logprob == 0.0 {
            read.prob_one += 1;
        }
        buf.logprobs.push(logprob);
        texts.push(buf, keep, has_token, token);
        Ok(())
    })?;
    texts.finish(buf);
    if !any_top {
        clear_top_lists(buf);
    }
    Ok(read)
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
                    value = libm::log(json::known_f64_or_null(jiter, peek, field)?);
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
    use super::*;
    use crate::import::test_support::{assert_raw, parse, parse_as, records, strings};
    use crate::import::{Format, ImportNote};
    use crate::score::token_stats;

    const FIXTURE: &[u8] = include_bytes!("../../../../tests/data/formats/llamacpp.jsonl");
    /// Prompt A alone; one request with prompts [A, B] and `n_cmpl: 2`; C with `n_cmpl: 2`;
    /// two results saved with `response_fields` (no prompt).
    const BATCH: &[u8] = include_bytes!("../../../../tests/data/formats/llamacpp_batch.jsonl");
    /// Recorded from llama-server (llama-cpp-python 0.3.36 sdist, random-weight model):
    /// post-sampling at temperature 0; prompts [A, B] with `n_cmpl: 2`; a sampled text with
    /// byte tokens; a stop word; post-sampling at 0.8; `response_fields` without `prompt`.
    const REAL: &[u8] = include_bytes!("../../../../tests/data/formats/llamacpp_real.jsonl");
    /// A token that ended inside a UTF-8 character; a stop word.
    const DROPPED: &[u8] = include_bytes!("../../../../tests/data/formats/llamacpp_dropped.jsonl");

    fn parse_with_notes(record: &[u8]) -> (Vec<TraceBuf>, Vec<ImportNote>) {
        crate::import::test_support::parse_with_notes(Format::Llamacpp, record)
    }

    fn note(what: &'static str, count: u64) -> ImportNote {
        ImportNote { what, count }
    }

    fn question_ids(traces: &[TraceBuf]) -> Vec<&str> {
        traces
            .iter()
            .map(|trace| trace.question_id.as_deref().unwrap_or("(none)"))
            .collect()
    }

    #[test]
    fn current_logprob_shape() {
        let records = records(FIXTURE);
        assert_eq!(records.len(), 3);
        let traces = parse(Format::Llamacpp, &records[0]).unwrap();
        assert_eq!(traces.len(), 1);
        let trace = &traces[0];
        // Keyed by its prompt (see `prompts_tell_questions_apart`).
        assert!(trace.question_id.as_deref().unwrap().starts_with("prompt-"));
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
            &[
                libm::log(0.9907_f64),
                libm::log(1.0_f64),
                libm::log(0.5200_f64),
            ],
        );
        assert_raw(
            trace.top_list(0),
            &[libm::log(0.9907_f64), libm::log(0.0093_f64)],
        );
        // A post-sampling prob of 0 is ln(0) = −∞: kept, the scorer counts it invalid.
        assert_raw(trace.top_list(1), &[0.0, f64::NEG_INFINITY]);
        assert_raw(
            trace.top_list(2),
            &[
                libm::log(0.5200_f64),
                libm::log(0.4285_f64),
                libm::log(0.0515_f64),
            ],
        );
    }

    #[test]
    fn old_probs_shape_matches_the_sampled_string() {
        let records = records(FIXTURE);
        let traces = parse(Format::Llamacpp, &records[2]).unwrap();
        let trace = &traces[0];
        assert!(trace.question_id.as_deref().unwrap().starts_with("prompt-"));
        assert_eq!(trace.label.as_deref(), Some("none"));
        assert_eq!(trace.text.as_deref(), Some("Answer: none"));
        assert_eq!(trace.tokens, strings(&["Answer", ":", " none"]));
        // " none" was sampled from outside the two listed candidates: NaN (the list is the
        // first `n_probs` candidates after sampling, server.cpp:2399-2423 in the
        // llama-cpp-python 0.2.85 sdist; the sampled one need not be among them).
        assert_raw(
            &trace.logprobs,
            &[libm::log(0.982_f64), libm::log(0.9996_f64), f64::NAN],
        );
        assert_raw(
            trace.top_list(0),
            &[libm::log(0.982_f64), libm::log(0.011_f64)],
        );
        assert_raw(
            trace.top_list(2),
            &[libm::log(0.61_f64), libm::log(0.37_f64)],
        );
        assert_eq!(
            trace.top_tokens,
            strings(&["Answer", "Final", ":", " is", " down", " up"])
        );
        let (_, notes) = parse_with_notes(&records[2]);
        assert_eq!(
            notes[1..],
            [note(OLD_PROBS, 3), note(OLD_SAMPLED_UNLISTED, 1)]
        );
        // Matching needs the token strings even when they are not kept.
        let traces = parse_as(Format::Llamacpp, &records[2], false).unwrap();
        assert!(traces[0].tokens.is_empty());
        assert!(traces[0].top_tokens.is_empty());
        assert_eq!(traces[0].n_token_strings, Some(3));
        assert_raw(
            &traces[0].logprobs,
            &[libm::log(0.982_f64), libm::log(0.9996_f64), f64::NAN],
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

    // One request with prompts [A, B] and `n_cmpl: 2` is answered with one array
    // (server-context.cpp:4337-4358, llama-cpp-python 0.3.36 sdist); `index` counts prompts
    // and samples together (server-queue.cpp:526-538), and every sample of a prompt echoes
    // the same `prompt` (server-context.cpp:2092, server-task.h:228-245).
    #[test]
    fn prompts_tell_questions_apart() {
        let records = records(BATCH);
        assert_eq!(records.len(), 4);
        let (traces, notes) = parse_with_notes(&records[1]);
        assert_eq!(traces.len(), 4);
        let ids = question_ids(&traces);
        assert!(ids[0].starts_with("prompt-"), "{ids:?}");
        assert_eq!(ids[0], ids[1], "two samples of prompt A");
        assert_eq!(ids[2], ids[3], "two samples of prompt B");
        assert_ne!(ids[0], ids[2]);
        assert_eq!(notes, vec![note(GROUPED_BY_PROMPT, 4)]);
        assert!(traces[1].prompt.as_deref().unwrap().contains("MYC"));
        assert!(traces[2].prompt.as_deref().unwrap().contains("CDKN1A"));
        assert_raw(&traces[3].logprobs, &[-0.009, -0.0003, -0.25, -0.004]);
        // Prompt A sent on its own is the same question.
        let (alone, _) = parse_with_notes(&records[0]);
        assert_eq!(question_ids(&alone), [ids[0]]);
        // One prompt with `n_cmpl: 2`: one question.
        let (samples, _) = parse_with_notes(&records[2]);
        let sample_ids = question_ids(&samples);
        assert_eq!(sample_ids[0], sample_ids[1]);
        assert_ne!(sample_ids[0], ids[0]);
        // Scoring keeps no prompt text, and the ids are the same.
        let lean = parse_as(Format::Llamacpp, &records[1], false).unwrap();
        assert_eq!(question_ids(&lean), ids);
        assert_eq!(lean[0].prompt, None);
    }

    #[test]
    fn a_saved_array_framed_by_element_keeps_its_questions() {
        // A file that is one top-level array is framed element by element (split.rs), so
        // each result arrives as a record of its own: it still finds its prompt's question.
        let records = records(BATCH);
        let whole = parse(Format::Llamacpp, &records[1]).unwrap();
        let elements = super::tests::records(&records[1]);
        assert_eq!(elements.len(), 4);
        for (element, trace) in elements.iter().zip(&whole) {
            let alone = parse(Format::Llamacpp, element).unwrap();
            assert_eq!(alone[0].question_id, trace.question_id);
        }
        // Another model's answer to the same prompt is another question.
        let other_model = String::from_utf8(elements[0].clone())
            .unwrap()
            .replace("qwen2.5-0.5b-instruct-q8_0.gguf", "llama-3.2-1b-q8_0.gguf");
        let other = parse(Format::Llamacpp, other_model.as_bytes()).unwrap();
        assert_ne!(other[0].question_id, whole[0].question_id);
        // A user's own `id` is kept.
        let record = br#"[{"id":"q7","content":"up","prompt":"a","stop":true},{"content":"down","prompt":"b","stop":true}]"#;
        let (traces, notes) = parse_with_notes(record);
        assert_eq!(traces[0].question_id.as_deref(), Some("q7"));
        assert!(
            traces[1]
                .question_id
                .as_deref()
                .unwrap()
                .starts_with("prompt-")
        );
        assert_eq!(notes, vec![note(GROUPED_BY_PROMPT, 1)]);
    }

    // `response_fields` returns only the listed fields (server-task.cpp:362).
    #[test]
    fn results_without_a_prompt_stay_one_question() {
        let records = records(BATCH);
        let (traces, notes) = parse_with_notes(&records[3]);
        assert_eq!(traces.len(), 2);
        assert_eq!(question_ids(&traces), ["(none)", "(none)"]);
        assert_eq!(notes, vec![note(PROMPTS_UNKNOWN, 2)]);
        // A single result without a prompt is its record's question, as before.
        let (traces, notes) = parse_with_notes(br#"{"content":"up","id_slot":0,"stop":true}"#);
        assert_eq!(traces[0].question_id, None);
        assert!(notes.is_empty());
    }

    // Servers before 2025 answered several prompts with `{"results": […]}`
    // (examples/server/server.cpp:1853-1871 in the llama-cpp-python 0.2.85 sdist).
    #[test]
    fn old_results_wrapper() {
        let record = br#"{"results":[{"content":" up","id_slot":0,"stop":true,"model":"m.gguf","tokens_predicted":1,"generation_settings":{"temperature":0.8,"n_probs":2},"prompt":"Q1","completion_probabilities":[{"content":" up","probs":[{"tok_str":" up","prob":0.6},{"tok_str":" down","prob":0.3}]}]},{"content":" down","id_slot":1,"stop":true,"model":"m.gguf","tokens_predicted":1,"generation_settings":{"temperature":0.8,"n_probs":2},"prompt":"Q2","completion_probabilities":[{"content":" down","probs":[{"tok_str":" up","prob":0.5},{"tok_str":" down","prob":0.4}]}]}]}"#;
        let (traces, notes) = parse_with_notes(record);
        assert_eq!(traces.len(), 2);
        assert_ne!(traces[0].question_id, traces[1].question_id);
        assert_raw(&traces[0].logprobs, &[libm::log(0.6_f64)]);
        assert_raw(&traces[1].logprobs, &[libm::log(0.4_f64)]);
        assert_eq!(notes, vec![note(GROUPED_BY_PROMPT, 2), note(OLD_PROBS, 2)]);
    }

    // server-context.cpp:1825-1860: a token that leaves an incomplete UTF-8 character is
    // never added; the next entry's `token` is the whole character and its `logprob` its
    // own. 2113-2121: a non-stream response cuts tokenize(stopping_word).size() entries.
    // `tokens_predicted` is n_gen, every sampled token (server-task.cpp:348).
    #[test]
    fn generated_tokens_without_entries_are_counted_not_guessed() {
        let records = records(DROPPED);
        let (traces, notes) = parse_with_notes(&records[0]);
        let trace = &traces[0];
        assert_eq!(trace.text.as_deref(), Some("Answer: \u{2193} down"));
        assert_eq!(
            trace.tokens,
            strings(&["Answer", ":", " ", "\u{2193}", " down", ""])
        );
        assert_raw(
            &trace.logprobs,
            &[-0.01, -0.0003, -1.6, -0.05, -0.3, -0.002],
        );
        assert_raw(trace.top_list(3), &[-0.05, -3.1]);
        assert_eq!(notes[1..], [note(TOKENS_WITHOUT_PROBS, 1)]);
        // Stop word "\n\n" as two "\n": one entry cut, the first "\n" kept with text "".
        let (traces, notes) = parse_with_notes(&records[1]);
        assert_raw(&traces[0].logprobs, &[-0.02, -0.0005, -0.6, -0.7]);
        assert_eq!(traces[0].tokens[3], "");
        assert_eq!(notes[1..], [note(TOKENS_WITHOUT_PROBS, 1)]);
    }

    #[test]
    fn the_generated_count_falls_back_to_timings_and_tokens() {
        let entry = r#"{"id":1,"token":"up","bytes":[117,112],"logprob":-0.5,"top_logprobs":[{"id":1,"token":"up","bytes":[117,112],"logprob":-0.5},{"id":2,"token":"down","bytes":[100],"logprob":-1.0}]}"#;
        let record = format!(
            r#"{{"content":"up","id_slot":0,"timings":{{"predicted_n":3}},"completion_probabilities":[{entry}]}}"#
        );
        let (_, notes) = parse_with_notes(record.as_bytes());
        assert_eq!(notes, vec![note(TOKENS_WITHOUT_PROBS, 2)]);
        // `tokens` (with `return_tokens`) holds every generated token id.
        let record = format!(
            r#"{{"content":"up","tokens":[1,7,9,9],"id_slot":0,"completion_probabilities":[{entry},{entry}]}}"#
        );
        let (traces, notes) = parse_with_notes(record.as_bytes());
        assert_eq!(traces[0].logprobs.len(), 2);
        assert_eq!(notes, vec![note(TOKENS_WITHOUT_PROBS, 2)]);
        // Asked for (`n_probs` 2) but every entry cut: the server leaves the field out
        // (server-task.cpp:359).
        let record = br#"{"content":"","id_slot":0,"tokens_predicted":2,"generation_settings":{"n_probs":2},"stop_type":"word","stopping_word":"\n\n"}"#;
        let (traces, notes) = parse_with_notes(record);
        assert!(!traces[0].has_logprobs);
        assert_eq!(notes, vec![note(TOKENS_WITHOUT_PROBS, 2)]);
        // Not asked for: nothing is missing.
        let record = br#"{"content":"up","id_slot":0,"tokens_predicted":2,"generation_settings":{"n_probs":0}}"#;
        assert!(parse_with_notes(record).1.is_empty());
    }

    // server-context.cpp:3980-3997: tokens accepted from a speculative draft get `prob`
    // 1.0 and no `probs` ("TODO: set result.probs"), written as `logprob` 0 (or `prob` 1)
    // with an empty top list; a computed token's list is never empty (1945-2001).
    #[test]
    fn speculative_draft_tokens_are_left_out() {
        let record = br#"{"content":"Answer: up","id_slot":0,"tokens_predicted":3,"completion_probabilities":[{"id":1,"token":"Answer","bytes":[65],"logprob":-0.2,"top_logprobs":[{"id":1,"token":"Answer","bytes":[65],"logprob":-0.2},{"id":4,"token":"So","bytes":[83],"logprob":-1.9}]},{"id":2,"token":":","bytes":[58],"logprob":0.0,"top_logprobs":[]},{"id":3,"token":" up","bytes":[32],"logprob":-0.7,"top_logprobs":[{"id":3,"token":" up","bytes":[32],"logprob":-0.7},{"id":5,"token":" down","bytes":[32],"logprob":-0.9}]}]}"#;
        let (traces, notes) = parse_with_notes(record);
        let trace = &traces[0];
        assert_raw(&trace.logprobs, &[-0.2, -0.7]);
        assert_eq!(trace.tokens, strings(&["Answer", " up"]));
        assert_eq!(trace.n_top_lists(), 2);
        assert_raw(trace.top_list(1), &[-0.7, -0.9]);
        assert_eq!(trace.top_tokens, strings(&["Answer", "So", " up", " down"]));
        assert_eq!(notes, vec![note(SPECULATIVE_DRAFT, 1)]);
        let lean = parse_as(Format::Llamacpp, record, false).unwrap();
        assert_raw(&lean[0].logprobs, &[-0.2, -0.7]);
        assert_eq!(lean[0].n_token_strings, Some(2));
        // The post-sampling spelling of the same placeholder.
        let record = br#"{"content":"up","id_slot":0,"completion_probabilities":[{"id":2,"token":"up","bytes":[117],"prob":1.0,"top_probs":[]},{"id":3,"token":"!","bytes":[33],"prob":0.5,"top_probs":[{"id":3,"token":"!","bytes":[33],"prob":0.5},{"id":6,"token":".","bytes":[46],"prob":0.4}]}]}"#;
        let (traces, notes) = parse_with_notes(record);
        assert_raw(&traces[0].logprobs, &[libm::log(0.5_f64)]);
        assert_eq!(
            notes,
            vec![note(SPECULATIVE_DRAFT, 1), note(POST_SAMPLING_PROBS, 1)]
        );
    }

    #[test]
    fn greedy_placeholder_probabilities_are_not_scored() {
        // Post-sampling at temperature 0: the temperature sampler keeps only the best token
        // (src/llama-sampler.cpp:270-286), so its probability is 1 and the zeros are
        // filtered from the top list (server-context.cpp:1948-1975).
        let record = br#"{"content":"up!","id_slot":0,"tokens_predicted":2,"generation_settings":{"temperature":0.0,"n_probs":3,"post_sampling_probs":true},"completion_probabilities":[{"id":3,"token":"up","bytes":[117,112],"prob":1.0,"top_probs":[{"id":3,"token":"up","bytes":[117,112],"prob":1.0}]},{"id":0,"token":"!","bytes":[33],"prob":1.0,"top_probs":[{"id":0,"token":"!","bytes":[33],"prob":1.0}]}]}"#;
        let (traces, notes) = parse_with_notes(record);
        let trace = &traces[0];
        assert!(!trace.has_logprobs);
        assert!(trace.logprobs.is_empty() && trace.tokens.is_empty() && !trace.has_top());
        assert_eq!(trace.text.as_deref(), Some("up!"));
        assert_eq!(notes, vec![note(GREEDY_PLACEHOLDERS, 2)]);
        // Without the temperature nothing is guessed.
        let unknown = String::from_utf8(record.to_vec())
            .unwrap()
            .replace(r#""temperature":0.0,"#, "");
        let (traces, notes) = parse_with_notes(unknown.as_bytes());
        assert_raw(&traces[0].logprobs, &[0.0, 0.0]);
        assert_eq!(notes, vec![note(POST_SAMPLING_PROBS, 2)]);
        // Servers before 2025 at temperature 0: 1 for the first candidate, 0 for the rest
        // (examples/server/server.cpp:2408-2415 in the llama-cpp-python 0.2.85 sdist).
        let old = br#"{"content":" up","stop":true,"tokens_predicted":1,"generation_settings":{"temperature":0.0,"n_probs":2},"completion_probabilities":[{"content":" up","probs":[{"tok_str":" up","prob":1.0},{"tok_str":" down","prob":0.0}]}]}"#;
        let (traces, notes) = parse_with_notes(old);
        assert!(traces[0].logprobs.is_empty());
        assert_eq!(notes, vec![note(GREEDY_PLACEHOLDERS, 1)]);
        // Between those versions greedy requests got a softmax over the top `n_probs`: real
        // numbers, read.
        let softmax = br#"{"content":" up","stop":true,"tokens_predicted":1,"generation_settings":{"temperature":0.0,"n_probs":2},"completion_probabilities":[{"content":" up","probs":[{"tok_str":" up","prob":0.93},{"tok_str":" down","prob":0.07}]}]}"#;
        let (traces, notes) = parse_with_notes(softmax);
        assert_raw(&traces[0].logprobs, &[libm::log(0.93_f64)]);
        assert_eq!(notes, vec![note(OLD_PROBS, 1)]);
    }

    // With post-sampling probabilities the zeros are filtered out of the top list
    // (server-context.cpp:1963-1975): a token the sampler left alone has a list of one.
    #[test]
    fn a_post_sampling_top_list_of_one_gives_no_entropy() {
        let record = br#"{"content":"up down","id_slot":0,"tokens_predicted":2,"generation_settings":{"temperature":0.7,"n_probs":2,"post_sampling_probs":true},"completion_probabilities":[{"id":3,"token":"up","bytes":[117],"prob":1.0,"top_probs":[{"id":3,"token":"up","bytes":[117],"prob":1.0}]},{"id":4,"token":" down","bytes":[32],"prob":0.6,"top_probs":[{"id":4,"token":" down","bytes":[32],"prob":0.6},{"id":5,"token":" up","bytes":[32],"prob":0.4}]}]}"#;
        let (traces, notes) = parse_with_notes(record);
        let trace = &traces[0];
        assert_raw(&trace.logprobs, &[0.0, libm::log(0.6_f64)]);
        assert_eq!(trace.top_list(0).len(), 1);
        let stats = token_stats(trace);
        assert_eq!(stats.n_valid, 2);
        assert_eq!(stats.mte(), None);
        assert!(stats.msp().is_some());
        assert_eq!(notes, vec![note(POST_SAMPLING_PROBS, 2)]);
    }

    // The sampled token's probability is looked up over the whole vocabulary, not the top
    // `n_probs` (server-context.cpp:1977-1988), so `logprob` is right even when the token is
    // not in `top_logprobs`; log(0) is written as −FLT_MAX (server-task.cpp:304-307).
    #[test]
    fn the_entry_value_is_read_even_outside_its_top_list() {
        let record = br#"{"content":" none.","id_slot":0,"tokens_predicted":2,"completion_probabilities":[{"id":7,"token":" none","bytes":[32],"logprob":-2.3,"top_logprobs":[{"id":4,"token":" down","bytes":[32],"logprob":-0.2},{"id":5,"token":" up","bytes":[32],"logprob":-1.9}]},{"id":8,"token":".","bytes":[46],"logprob":-3.4028234663852886e38,"top_logprobs":[{"id":9,"token":"!","bytes":[33],"logprob":-0.01},{"id":8,"token":".","bytes":[46],"logprob":-3.4028234663852886e38}]}]}"#;
        let (traces, notes) = parse_with_notes(record);
        let trace = &traces[0];
        assert_raw(&trace.logprobs, &[-2.3, -3.4028234663852886e38]);
        assert_raw(trace.top_list(0), &[-0.2, -1.9]);
        let stats = token_stats(trace);
        assert_eq!((stats.n_valid, stats.n_invalid), (1, 1));
        assert!(notes.is_empty(), "{notes:?}");
    }

    /// Each result's values as the file writes them: `logprob`, or ln(`prob`).
    fn values_in_file(record: &[u8]) -> Vec<Vec<f64>> {
        let value: serde_json::Value = serde_json::from_slice(record).unwrap();
        let results = match value {
            serde_json::Value::Array(results) => results,
            result => vec![result],
        };
        results
            .iter()
            .map(|result| {
                let entries = result["completion_probabilities"].as_array().unwrap();
                entries
                    .iter()
                    .map(|entry| match entry.get("logprob") {
                        Some(logprob) => logprob.as_f64().unwrap(),
                        None => libm::log(entry["prob"].as_f64().unwrap()),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn recorded_llama_server_output() {
        let records = records(REAL);
        assert_eq!(records.len(), 6);
        // Greedy post-sampling: every `prob` is 1.0 with a top list of one.
        let (traces, notes) = parse_with_notes(&records[0]);
        assert!(traces[0].logprobs.is_empty() && !traces[0].has_logprobs);
        assert_eq!(
            notes,
            vec![note(GROUPED_BY_PROMPT, 1), note(GREEDY_PLACEHOLDERS, 12)]
        );
        // Prompts [A, B], two samples each; result 3 lost a token to a split character
        // (its ` →` entry carries the bytes of both tokens: 32, 226, 134, 146).
        let (traces, notes) = parse_with_notes(&records[1]);
        let ids = question_ids(&traces);
        assert_eq!(
            (ids[0] == ids[1], ids[2] == ids[3], ids[0] == ids[2]),
            (true, true, false)
        );
        for (trace, expected) in traces.iter().zip(values_in_file(&records[1])) {
            assert_raw(&trace.logprobs, &expected);
            // SPEC §5: msp = −Σ ℓ over the valid tokens.
            let msp = -expected.iter().sum::<f64>();
            assert!((token_stats(trace).msp().unwrap() - msp).abs() < 1e-9);
        }
        assert_eq!(traces[3].logprobs.len(), 11);
        assert_eq!(
            notes,
            vec![note(GROUPED_BY_PROMPT, 4), note(TOKENS_WITHOUT_PROBS, 1)]
        );
        // 24 generated, 22 entries; the stop word "e " cut 2 of 4 entries.
        for (record, missing) in [(&records[2], 2), (&records[3], 2)] {
            let (traces, notes) = parse_with_notes(record);
            assert_raw(&traces[0].logprobs, &values_in_file(record)[0]);
            assert_eq!(notes[1..], [note(TOKENS_WITHOUT_PROBS, missing)]);
        }
        // Post-sampling at temperature 0.8: read, and said to be post-sampling.
        let (traces, notes) = parse_with_notes(&records[4]);
        assert_raw(&traces[0].logprobs, &values_in_file(&records[4])[0]);
        assert_eq!(notes[1..], [note(POST_SAMPLING_PROBS, 12)]);
        // `response_fields` left `prompt` out: the two prompts cannot be told apart.
        let (traces, notes) = parse_with_notes(&records[5]);
        assert_eq!(question_ids(&traces), ["(none)", "(none)"]);
        assert_eq!(notes, vec![note(PROMPTS_UNKNOWN, 2)]);
    }

    #[test]
    fn a_server_error_line_is_skipped_with_its_message() {
        // Ollama writes `{"error": "…"}` into a stream or as the body (server/routes.go);
        // llama.cpp `{"error": {"code", "message", "type"}}` (server-context.cpp:4403).
        for record in [
            &br#"{"error":"model runner has unexpectedly stopped"}"#[..],
            br#"{"error":{"code":500,"message":"context size exceeded","type":"server_error"}}"#,
        ] {
            let error = crate::import::test_support::parse_as(
                crate::import::Format::Llamacpp,
                record,
                true,
            )
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
