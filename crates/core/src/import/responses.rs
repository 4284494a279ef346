//! The OpenAI Responses API (`POST /v1/responses`): a response object's `output` items
//! become one trace. Its text is the `output_text` parts of the `message` items, joined in
//! order, and its log-probs are theirs (requested with `include:
//! ["message.output_text.logprobs"]` and `top_logprobs`), in the same order. Reasoning,
//! tool-call and refusal items carry no log-probs and are not part of the text.
//!
//! Shapes (openai-python 3.57.0, openai/types/responses/): `output[]` items are tagged by
//! `type` (response_output_item.py); a `message` item is `{id, content, role, status, type,
//! phase}` (response_output_message.py:16-38) whose `content[]` parts are `output_text`
//! `{annotations, text, type, logprobs: [{token, bytes, logprob, top_logprobs: [{token,
//! bytes, logprob}]}]}` (response_output_text.py:97-131) or `refusal`. Fields come in that
//! order, so a part's or item's `type` is known only after its content: content is read
//! into scratch buffers and kept once the type says it belongs to the answer.

use jiter::Jiter;

use crate::import::openai::read_token_objects;
use crate::import::{ImportOptions, clear_top_lists};
use crate::json::{self, Ctx, RecordResult};
use crate::trace::TraceBuf;

/// The report's note for a response whose answer text is only partly covered by log-probs.
pub(crate) const PARTIAL_LOGPROBS: &str = "log-probs left out: some `output_text` parts of \
     the response had log-probs and others with text had none, so the log-probs do not cover \
     the answer (count: traces)";

/// What [`read_output`] found besides the trace.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct OutputSummary {
    /// 1 when the log-probs were left out because they covered only part of the text.
    pub(super) n_partial_logprobs: u64,
}

/// One `output_text` part, read before its `type` is known.
#[derive(Debug, Default)]
struct TextPart {
    text: Option<String>,
    logprobs: TraceBuf,
    has_logprobs: bool,
}

/// Reads a response's `output` array into `buf`, one trace.
pub(super) fn read_output(
    jiter: &mut Jiter<'_>,
    options: ImportOptions,
    buf: &mut TraceBuf,
) -> RecordResult<OutputSummary> {
    let keep = options.keep_content;
    let mut joined = Joined::start(buf);
    let mut item_parts: Vec<TextPart> = Vec::new();
    json::for_each_element(jiter, "output", |jiter, _peek| {
        item_parts.clear();
        let mut item_type = None;
        json::for_each_member(jiter, "output", |jiter, key| {
            match key {
                "type" => item_type = json::next_id(jiter, "output.type")?,
                "content" => {
                    json::for_each_element(jiter, "output.content", |jiter, _peek| {
                        if let Some(part) = read_part(jiter, keep)? {
                            item_parts.push(part);
                        }
                        Ok(())
                    })?;
                }
                _ => jiter.next_skip().ctx(key)?,
            }
            Ok(())
        })?;
        if item_type.as_deref() == Some("message") {
            for part in &item_parts {
                joined.append(buf, part, keep);
            }
        }
        Ok(())
    })?;
    Ok(joined.finish(buf))
}

/// One element of an item's `content`; Some only for an `output_text` part.
fn read_part(jiter: &mut Jiter<'_>, keep: bool) -> RecordResult<Option<TextPart>> {
    const FIELD: &str = "output.content";
    let mut part = TextPart::default();
    let mut part_type = None;
    json::for_each_member(jiter, FIELD, |jiter, key| {
        match key {
            "type" => part_type = json::next_id(jiter, "output.content.type")?,
            "text" => part.text = json::next_opt_string(jiter, "output.content.text")?,
            "logprobs" => {
                part.has_logprobs =
                    read_token_objects(jiter, "output.content.logprobs", keep, &mut part.logprobs)?;
            }
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })?;
    Ok((part_type.as_deref() == Some("output_text")).then_some(part))
}

/// The trace being joined from `output_text` parts.
#[derive(Debug, Default)]
struct Joined {
    text: Option<String>,
    n_tokens: usize,
    with_logprobs: usize,
    /// Parts with text but no log-probs.
    text_without_logprobs: usize,
    any_top: bool,
    any_token_strings: bool,
}

impl Joined {
    fn start(buf: &mut TraceBuf) -> Joined {
        buf.logprobs.clear();
        buf.tokens.clear();
        buf.begin_top_lists();
        Joined::default()
    }

    /// Appends one part's text and tokens (each with its top list, empty where it had none).
    fn append(&mut self, buf: &mut TraceBuf, part: &TextPart, keep: bool) {
        let text = part.text.as_deref().unwrap_or_default();
        self.text.get_or_insert_with(String::new).push_str(text);
        if !part.has_logprobs {
            if !text.is_empty() {
                self.text_without_logprobs += 1;
            }
            return;
        }
        self.with_logprobs += 1;
        let source = &part.logprobs;
        let has_strings = source.n_token_strings.is_some();
        self.any_token_strings |= has_strings;
        self.any_top |= source.has_top();
        for (token_idx, &value) in source.logprobs.iter().enumerate() {
            buf.logprobs.push(value);
            buf.top_values.extend_from_slice(source.top_list(token_idx));
            if keep {
                let (start, end) = (
                    source.top_offsets.get(token_idx).copied().unwrap_or(0) as usize,
                    source.top_offsets.get(token_idx + 1).copied().unwrap_or(0) as usize,
                );
                if let Some(top_tokens) = source.top_tokens.get(start..end) {
                    buf.top_tokens.extend_from_slice(top_tokens);
                }
                let token = if has_strings {
                    source.tokens.get(token_idx).cloned().unwrap_or_default()
                } else {
                    String::new()
                };
                buf.tokens.push(token);
            }
            buf.end_top_list();
        }
        self.n_tokens += source.logprobs.len();
    }

    fn finish(self, buf: &mut TraceBuf) -> OutputSummary {
        buf.text = self.text;
        let partial = self.with_logprobs > 0 && self.text_without_logprobs > 0;
        buf.has_logprobs = self.with_logprobs > 0 && !partial;
        if !buf.has_logprobs {
            buf.logprobs.clear();
            buf.tokens.clear();
            clear_top_lists(buf);
            return OutputSummary {
                n_partial_logprobs: u64::from(partial),
            };
        }
        if self.any_token_strings {
            buf.n_token_strings = Some(self.n_tokens);
        } else {
            buf.n_token_strings = None;
            buf.tokens.clear();
        }
        if !self.any_top {
            clear_top_lists(buf);
        }
        OutputSummary::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::PARTIAL_LOGPROBS;
    use crate::import::test_support::{assert_raw, parse, parse_as, records, strings};
    use crate::import::{Format, ImportNote, ImportOptions, TraceBatch, detect, parse_record};

    // Written by openai-python 3.57.0's own types, `Response.model_dump_json()`
    // (scripts/fixtures/openai_responses.py), and a Batch output line whose body is the first.
    const RESPONSES: &[u8] =
        include_bytes!("../../../../tests/data/formats/openai_responses.jsonl");
    const BATCH: &[u8] =
        include_bytes!("../../../../tests/data/formats/openai_batch_responses.jsonl");

    const UP_LOGPROBS: [f64; 3] = [-0.0021, -1.5e-05, -0.2614];

    #[test]
    fn a_response_is_one_trace_of_its_output_text() {
        let records = records(RESPONSES);
        assert_eq!(records.len(), 6);

        // Reasoning item, then a message: only the message's output_text is the trace.
        let traces = parse(Format::OpenaiResponses, &records[0]).unwrap();
        assert_eq!(traces.len(), 1);
        let first = &traces[0];
        assert_eq!(
            first.question_id.as_deref(),
            Some("resp_68a4c1e2f0b48190a6d1c3e5f7091b2d")
        );
        assert_eq!(first.text.as_deref(), Some("Answer: up"));
        assert!(first.has_logprobs);
        assert_raw(&first.logprobs, &UP_LOGPROBS);
        assert_eq!(first.tokens, strings(&["Answer", ":", " up"]));
        assert_eq!(first.n_token_strings, Some(3));
        assert_raw(first.top_list(0), &[-0.0021, -6.4]);
        assert_raw(first.top_list(2), &[-0.2614, -1.4689]);
        assert_eq!(
            first.top_tokens,
            strings(&["Answer", "Final", ":", " :", " up", " down"])
        );
        // The top-level `prompt` of a Response is a template reference, not a prompt text.
        assert_eq!(first.prompt, None);

        // Two messages (commentary, final answer): text and tokens joined in order.
        let traces = parse(Format::OpenaiResponses, &records[1]).unwrap();
        let joined = &traces[0];
        assert_eq!(
            joined.text.as_deref(),
            Some("Knock-down is neutral. Answer: none")
        );
        assert_raw(
            &joined.logprobs,
            &[-0.3102, -0.0457, -0.9, -1.2, -0.05, -0.011, -2e-06, -0.7133],
        );
        assert_eq!(joined.n_token_strings, Some(8));
        assert_eq!(joined.n_top_lists(), 8);
        assert_raw(joined.top_list(7), &[-0.7133, -0.6733]);

        // No log-probs requested.
        let traces = parse(Format::OpenaiResponses, &records[2]).unwrap();
        assert_eq!(traces[0].text.as_deref(), Some("Answer: up"));
        assert!(!traces[0].has_logprobs);
        assert!(traces[0].logprobs.is_empty());
        assert!(!traces[0].has_top());
        assert_eq!(traces[0].n_token_strings, None);

        // Cut off by max_output_tokens (status `incomplete`): still a trace.
        let traces = parse(Format::OpenaiResponses, &records[3]).unwrap();
        assert_eq!(traces[0].text.as_deref(), Some("Answer:"));
        assert_raw(&traces[0].logprobs, &UP_LOGPROBS[..2]);

        // A refusal has no output_text: no text, no log-probs.
        let traces = parse(Format::OpenaiResponses, &records[4]).unwrap();
        assert_eq!(traces[0].text, None);
        assert!(!traces[0].has_logprobs);

        // A failed response is an error naming the reason.
        let error = parse(Format::OpenaiResponses, &records[5]).unwrap_err();
        assert_eq!(
            error.message,
            "the request failed: The server had an error while processing your request. \
             (code `server_error`)"
        );

        // A Batch line of `/v1/responses`: the same trace, under its custom_id.
        let batch = self::records(BATCH);
        assert_eq!(batch.len(), 1);
        let traces = parse(Format::OpenaiBatch, &batch[0]).unwrap();
        assert_eq!(traces.len(), 1);
        assert_eq!(
            traces[0].question_id.as_deref(),
            Some("SLC35B1|PDIA6|K562__s3")
        );
        assert_eq!(traces[0].text.as_deref(), Some("Answer: up"));
        assert_raw(&traces[0].logprobs, &UP_LOGPROBS);
    }

    #[test]
    fn without_content_only_counts_and_values_are_kept() {
        let records = records(RESPONSES);
        let traces = parse_as(Format::OpenaiResponses, &records[1], false).unwrap();
        assert!(traces[0].tokens.is_empty());
        assert!(traces[0].top_tokens.is_empty());
        assert_eq!(traces[0].n_token_strings, Some(8));
        assert_eq!(
            traces[0].text.as_deref(),
            Some("Knock-down is neutral. Answer: none")
        );
        assert_raw(traces[0].top_list(0), &[-0.3102, -1.3311]);
    }

    #[test]
    fn detection_knows_responses_by_their_object_tag() {
        assert_eq!(
            detect(br#"{"id":"resp_1","object":"response","created_at":1.0,"output":[]}"#),
            Some(Format::OpenaiResponses)
        );
        // Without the tag, `output` and `created_at` together still tell it.
        assert_eq!(
            detect(br#"{"id":"resp_1","created_at":1.0,"status":"completed","output":[]}"#),
            Some(Format::OpenaiResponses)
        );
        assert_eq!(
            detect(br#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"message":{}}]}"#),
            Some(Format::Openai)
        );
    }

    #[test]
    fn items_and_parts_other_than_message_output_text_are_not_the_answer() {
        // `type` first here (any key order is read), reasoning text, a tool call between.
        let record = br#"{"id":"resp_2","object":"response","status":"completed","output":[
            {"type":"reasoning","id":"rs_1","summary":[],"content":[{"type":"reasoning_text","text":"PDIA6 loss raises ER stress."}]},
            {"type":"function_call","id":"fc_1","call_id":"call_1","name":"lookup","arguments":"{}"},
            {"type":"message","id":"msg_1","role":"assistant","content":[
                {"type":"output_text","text":"Answer: down","annotations":[],"logprobs":[
                    {"token":"Answer: down","logprob":-0.5,"bytes":[],"top_logprobs":[]}]}]}]}"#;
        let traces = parse(Format::OpenaiResponses, record).unwrap();
        assert_eq!(traces[0].text.as_deref(), Some("Answer: down"));
        assert_raw(&traces[0].logprobs, &[-0.5]);
        // `top_logprobs: []` (none requested) is read as chat's is: an empty list per token,
        // which gives no entropy.
        assert_eq!(traces[0].n_top_lists(), 1);
        assert!(traces[0].top_list(0).is_empty());
    }

    #[test]
    fn log_probs_covering_part_of_the_text_are_left_out_with_a_note() {
        let record = br#"{"id":"resp_3","object":"response","status":"completed","output":[
            {"type":"message","id":"msg_1","role":"assistant","content":[
                {"type":"output_text","text":"Answer:","annotations":[],"logprobs":[
                    {"token":"Answer:","logprob":-0.1,"bytes":[],"top_logprobs":[]}]},
                {"type":"output_text","text":" up","annotations":[],"logprobs":null}]}]}"#;
        let mut out = TraceBatch::default();
        let options = ImportOptions { keep_content: true };
        parse_record(Format::OpenaiResponses, record, options, &mut out).unwrap();
        let trace = &out.traces()[0];
        assert_eq!(trace.text.as_deref(), Some("Answer: up"));
        assert!(!trace.has_logprobs);
        assert!(trace.logprobs.is_empty());
        assert!(trace.tokens.is_empty());
        assert_eq!(
            out.notes(),
            &[ImportNote {
                what: PARTIAL_LOGPROBS,
                count: 1
            }]
        );
    }

    #[test]
    fn unfinished_or_cancelled_responses_are_refused() {
        let record = br#"{"id":"resp_4","object":"response","status":"in_progress","output":[]}"#;
        let error = parse(Format::OpenaiResponses, record).unwrap_err();
        assert_eq!(
            error.message,
            "the response is not finished (status `in_progress`); save it once its status is \
             `completed`"
        );
        let record = br#"{"id":"resp_5","object":"response","status":"cancelled","output":[]}"#;
        let error = parse(Format::OpenaiResponses, record).unwrap_err();
        assert_eq!(
            error.message,
            "the response was cancelled (status `cancelled`)"
        );
        let record = br#"{"id":"resp_6","object":"response","status":"completed"}"#;
        let error = parse(Format::OpenaiResponses, record).unwrap_err();
        assert_eq!(error.message, "the OpenAI response has no `output`");
    }
}
