//! The canonical trace JSONL of SPEC §2: one trace per record.

use crate::import::{ImportOptions, TraceBatch, read_top_list};
use crate::json::{self, Ctx, RecordError, RecordResult};

pub(super) fn parse(
    record: &[u8],
    options: ImportOptions,
    out: &mut TraceBatch,
) -> RecordResult<()> {
    let mut jiter = json::reader(record);
    let buf = out.push();
    let mut has_top = false;
    let mut has_question_id = false;
    json::for_each_member(&mut jiter, "(record)", |jiter, key| {
        match key {
            "question_id" => {
                buf.question_id = json::next_id(jiter, key)?;
                has_question_id = buf.question_id.is_some();
            }
            "trace_id" => buf.trace_id = json::next_id(jiter, key)?,
            "greedy" => buf.greedy = json::next_opt_bool(jiter, key)?.unwrap_or(false),
            "prompt" if options.keep_content => buf.prompt = json::next_opt_string(jiter, key)?,
            "text" => buf.text = json::next_opt_string(jiter, key)?,
            // Answers and labels may be bare letters or numbers (`"a"`, `2`).
            "answer" => buf.answer = json::next_id(jiter, key)?,
            "label" => buf.label = json::next_id(jiter, key)?,
            "tokens" => {
                buf.n_token_strings =
                    json::next_string_array(jiter, key, options.keep_content, &mut buf.tokens)?;
            }
            "logprobs" => buf.has_logprobs = json::next_f64_array(jiter, key, &mut buf.logprobs)?,
            "top_logprobs" => {
                buf.begin_top_lists();
                has_top = json::for_each_element(jiter, key, |jiter, peek| {
                    read_top_list(jiter, peek, key, options.keep_content, buf)
                })?;
            }
            "embedding" => buf.embedding = json::next_embedding(jiter, key)?,
            _ => jiter.next_skip().ctx(key)?,
        }
        Ok(())
    })?;
    json::finish(&mut jiter)?;
    if !has_top {
        buf.top_offsets.clear();
    }
    if !has_question_id {
        return Err(RecordError::new("missing required field `question_id`", 0));
    }
    if buf.text.is_none() && buf.answer.is_none() {
        return Err(RecordError::new(
            "needs a `text` or an `answer` field; it has neither",
            0,
        ));
    }
    Ok(())
}
