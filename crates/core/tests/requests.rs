//! Prompts from request files reach every SFT export: joined by `custom_id`, by an id in
//! the bodies, or by position; read back from chat markup in a response's own `prompt`;
//! and an export whose prompt would be empty is refused unless asked for.

// Helpers in test crates may panic: a panic here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::{Value, json};
use tracesift_core::dataset::{ScoredSet, score_bytes};
use tracesift_core::export::{self, EmptyPrompts, ExportOptions, PromptCounts};
use tracesift_core::requests::{RequestJoin, Requests};
use tracesift_core::settings::{ExportFormat, Settings};
use tracesift_core::trace::RecordRef;

fn score(input: &str) -> ScoredSet {
    score_bytes(
        &Settings::default(),
        &[("responses.jsonl", input.as_bytes())],
    )
    .unwrap()
}

/// Reads records back from the input in memory, as the CLI reads them from the file.
fn reader(input: &str) -> impl FnMut(&RecordRef) -> Result<Vec<u8>, String> + '_ {
    |record| {
        let start = record.offset as usize;
        Ok(input.as_bytes()[start..start + record.len as usize].to_vec())
    }
}

fn options(format: ExportFormat, set: &ScoredSet, requests: Option<&str>) -> ExportOptions {
    ExportOptions {
        format,
        requests: requests
            .map(|file| Arc::new(RequestJoin::new(Requests::from_bytes(file.as_bytes()), set))),
        ..ExportOptions::default()
    }
}

/// Every trace exported: the prompt check's counts and the lines written.
fn export_all(
    input: &str,
    set: &ScoredSet,
    options: &ExportOptions,
) -> Result<(PromptCounts, Vec<Value>), EmptyPrompts> {
    let chosen = vec![true; set.traces.len()];
    let counts = export::check_prompts(set, &chosen, options, reader(input))?;
    let mut out = Vec::new();
    let warnings = export::write_selection(set, &chosen, options, reader(input), &mut out).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let lines = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    Ok((counts, lines))
}

/// A chat completion as the OpenAI API returns it (openai 3.57.0 `ChatCompletion`), with
/// per-token log-probs and no trace of the prompt.
fn chat_response(id: &str, answers: &[&str]) -> Value {
    let choices: Vec<Value> = answers
        .iter()
        .enumerate()
        .map(|(index, answer)| {
            json!({"index": index, "message": {"role": "assistant", "content": answer},
                "logprobs": {"content": [
                    {"token": "Answer", "logprob": -0.1, "bytes": [65], "top_logprobs": []},
                    {"token": ":", "logprob": -0.2, "bytes": [58], "top_logprobs": []}]},
                "finish_reason": "stop"})
        })
        .collect();
    json!({"id": id, "object": "chat.completion", "created": 1752745012,
        "model": "gpt-4o-mini-2024-07-18", "choices": choices})
}

/// A Batch output line (openai 3.57.0 `BatchRequestOutput`: `{id, custom_id, response:
/// {status_code, request_id, body}, error}`).
fn batch_output(custom_id: &str, answers: &[&str]) -> String {
    json!({"id": format!("batch_req_{custom_id}"), "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": "r", "body": chat_response("chatcmpl-x", answers)},
        "error": null})
    .to_string()
}

fn jsonl(lines: &[String]) -> String {
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// The Batch input lines the OpenAI batch guide shows: `{custom_id, method, url, body}`.
fn batch_input(custom_id: &str, system: &str, user: &str) -> String {
    json!({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "logprobs": true, "top_logprobs": 2,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]}})
    .to_string()
}

#[test]
fn batch_output_joins_batch_input_by_custom_id() {
    let input = jsonl(&[
        batch_output("q2", &["Answer: down"]),
        batch_output("q1", &["Answer: up", "Answer: none"]),
    ]);
    // The input lists the requests in another order: the join is by custom_id.
    let requests = jsonl(&[
        batch_input("q1", "Be brief.", "Is 7 prime?"),
        batch_input("q2", "Be brief.", "Is 9 prime?"),
    ]);
    let set = score(&input);
    assert_eq!(set.traces.len(), 3);
    let openai = options(ExportFormat::Openai, &set, Some(&requests));
    let (counts, lines) = export_all(&input, &set, &openai).unwrap();
    assert_eq!((counts.from_requests, counts.empty), (3, 0));
    assert_eq!(
        lines[0],
        json!({"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Is 9 prime?"},
            {"role": "assistant", "content": "Answer: down"}]})
    );
    assert_eq!(lines[2]["messages"][1]["content"], "Is 7 prime?");
    assert_eq!(lines[2]["messages"][2]["content"], "Answer: none");

    let sharegpt = options(ExportFormat::Sharegpt, &set, Some(&requests));
    let (_, lines) = export_all(&input, &set, &sharegpt).unwrap();
    assert_eq!(
        lines[1],
        json!({"conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Is 7 prime?"},
            {"from": "gpt", "value": "Answer: up"}]})
    );

    // TRL's conversational prompt-completion format (https://huggingface.co/docs/trl/dataset_formats).
    let trl = options(ExportFormat::Trl, &set, Some(&requests));
    let (_, lines) = export_all(&input, &set, &trl).unwrap();
    assert_eq!(
        lines[0],
        json!({"prompt": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": "Is 9 prime?"}],
               "completion": [{"role": "assistant", "content": "Answer: down"}]})
    );

    let alpaca = options(ExportFormat::Alpaca, &set, Some(&requests));
    let (_, lines) = export_all(&input, &set, &alpaca).unwrap();
    assert_eq!(
        lines[0],
        json!({"instruction": "Is 9 prime?", "input": "", "output": "Answer: down",
               "system": "Be brief."})
    );
}

#[test]
fn a_custom_id_missing_from_the_requests_refuses_the_export() {
    let input = jsonl(&[
        batch_output("q1", &["Answer: up"]),
        batch_output("q3", &["Answer: down"]),
    ]);
    let requests = jsonl(&[batch_input("q1", "Be brief.", "Is 7 prime?")]);
    let set = score(&input);
    let openai = options(ExportFormat::Openai, &set, Some(&requests));
    let refusal = export_all(&input, &set, &openai).unwrap_err();
    assert_eq!((refusal.kept, refusal.counts.empty), (2, 1));
    assert_eq!(
        refusal.counts.examples,
        [(
            2,
            "no request has the id \"q3\"; the response holds no prompt".to_owned()
        )]
    );
    let message = refusal.to_string();
    assert!(
        message.starts_with("refusing the openai export: 1 of 2 kept traces have an empty prompt"),
        "{message}"
    );
}

#[test]
fn responses_without_prompts_are_refused_unless_allowed() {
    let input = jsonl(&[chat_response("chatcmpl-1", &["Answer: up"]).to_string()]);
    let set = score(&input);
    for format in [
        ExportFormat::Openai,
        ExportFormat::Trl,
        ExportFormat::Sharegpt,
        ExportFormat::Alpaca,
    ] {
        let refusal = export_all(&input, &set, &options(format, &set, None)).unwrap_err();
        assert_eq!(
            refusal.counts.examples,
            [(
                1,
                "no request file was given; the response holds no prompt".to_owned()
            )]
        );
        // Asked for explicitly: written, with an empty user message.
        let allowed = ExportOptions {
            allow_empty_prompt: true,
            ..options(format, &set, None)
        };
        let (counts, lines) = export_all(&input, &set, &allowed).unwrap();
        assert_eq!(counts.empty, 1);
        assert_eq!(lines.len(), 1);
    }
    let allowed = ExportOptions {
        allow_empty_prompt: true,
        ..options(ExportFormat::Openai, &set, None)
    };
    let (_, lines) = export_all(&input, &set, &allowed).unwrap();
    assert_eq!(
        lines[0]["messages"][0],
        json!({"role": "user", "content": ""})
    );
    // Canonical and CSV have no prompt to miss.
    for format in [ExportFormat::Canonical, ExportFormat::Csv] {
        let chosen = vec![true; set.traces.len()];
        let counts =
            export::check_prompts(&set, &chosen, &options(format, &set, None), reader(&input))
                .unwrap();
        assert_eq!(counts, PromptCounts::default());
    }
}

#[test]
fn request_bodies_join_by_position() {
    let input = jsonl(&[
        chat_response("chatcmpl-1", &["Answer: up"]).to_string(),
        // A failed response still answered a request: the next one keeps its place.
        json!({"id": "chatcmpl-2", "object": "chat.completion", "choices": [{"index": 0,
            "message": {"role": "assistant", "content": "x"},
            "logprobs": {"content": [{"token": "x", "logprob": "high"}]}}]})
        .to_string(),
        chat_response("chatcmpl-3", &["Answer: down"]).to_string(),
    ]);
    let requests = jsonl(&[
        json!({"model": "m", "messages": [{"role": "user", "content": "Is 7 prime?"}]}).to_string(),
        json!({"model": "m", "messages": [{"role": "user", "content": "Is 8 prime?"}]}).to_string(),
        json!({"model": "m", "messages": [{"role": "user", "content": "Is 9 prime?"}]}).to_string(),
    ]);
    let set = score(&input);
    assert_eq!(set.report.responses, 3);
    assert_eq!(set.report.skipped.len(), 1);
    let openai = options(ExportFormat::Openai, &set, Some(&requests));
    assert!(
        openai
            .requests
            .as_ref()
            .unwrap()
            .describe()
            .starts_with("by position")
    );
    let (_, lines) = export_all(&input, &set, &openai).unwrap();
    assert_eq!(lines[0]["messages"][0]["content"], "Is 7 prime?");
    assert_eq!(lines[1]["messages"][0]["content"], "Is 9 prime?");

    // One request fewer than responses: no position can be trusted.
    let short = jsonl(&[
        json!({"messages": [{"role": "user", "content": "Is 7 prime?"}]}).to_string(),
        json!({"messages": [{"role": "user", "content": "Is 8 prime?"}]}).to_string(),
    ]);
    let refusal = export_all(
        &input,
        &set,
        &options(ExportFormat::Openai, &set, Some(&short)),
    )
    .unwrap_err();
    assert!(
        refusal.counts.examples[0]
            .1
            .starts_with("the request file has 2 requests and the trace files 3 responses"),
        "{:?}",
        refusal.counts.examples
    );
}

/// vLLM's `RequestOutput` carries its `request_id`; request bodies with the same
/// `request_id` join by it, whatever their order.
#[test]
fn request_bodies_join_by_id_when_the_responses_carry_it() {
    let vllm = |id: &str, text: &str| {
        json!({"request_id": id, "prompt": null, "prompt_token_ids": [1, 2],
            "outputs": [{"index": 0, "text": text, "token_ids": [5, 6], "cumulative_logprob": -0.3,
                "logprobs": [{"5": {"logprob": -0.1, "rank": 1, "decoded_token": "A"}},
                             {"6": {"logprob": -0.2, "rank": 1, "decoded_token": "B"}}],
                "finish_reason": "stop"}], "finished": true})
        .to_string()
    };
    let input = jsonl(&[vllm("b", "Answer: down"), vllm("a", "Answer: up")]);
    let requests = jsonl(&[
        json!({"request_id": "a", "prompt": "Is 7 prime?"}).to_string(),
        json!({"request_id": "b", "prompt": "Is 9 prime?"}).to_string(),
    ]);
    let set = score(&input);
    let trl = options(ExportFormat::Trl, &set, Some(&requests));
    assert_eq!(trl.requests.as_ref().unwrap().describe(), "by id");
    let (_, lines) = export_all(&input, &set, &trl).unwrap();
    // A plain completions prompt: TRL's standard (text) prompt-completion format.
    assert_eq!(
        lines,
        [
            json!({"prompt": "Is 9 prime?", "completion": "Answer: down"}),
            json!({"prompt": "Is 7 prime?", "completion": "Answer: up"}),
        ]
    );
}

/// A response's own rendered prompt (vLLM writes the templated string) is read back into
/// its turns; no request file is needed.
#[test]
fn a_templated_prompt_in_the_response_becomes_messages() {
    let input = jsonl(&[json!({"request_id": "q1",
        "prompt": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nIs 7 prime?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        "prompt_token_ids": [1],
        "outputs": [{"index": 0, "text": "Answer: up", "token_ids": [5], "cumulative_logprob": -0.1,
            "logprobs": [{"5": {"logprob": -0.1, "rank": 1, "decoded_token": "A"}}], "finish_reason": "stop"}],
        "finished": true})
    .to_string()]);
    let set = score(&input);
    let openai = ExportOptions {
        // The prompt's own system message wins over the setting.
        system_prompt: Some("Ignored.".to_owned()),
        ..options(ExportFormat::Openai, &set, None)
    };
    let (counts, lines) = export_all(&input, &set, &openai).unwrap();
    assert_eq!(counts.from_responses, 1);
    assert_eq!(
        lines[0],
        json!({"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Is 7 prime?"},
            {"role": "assistant", "content": "Answer: up"}]})
    );
}

/// A legacy completions request with two prompts and `n: 2` gets four choices, prompt by
/// prompt (OpenAI and vLLM number them `prompt_idx * n + i`).
#[test]
fn a_multi_prompt_request_gives_each_choice_its_prompt() {
    let choice = |index: usize, text: &str| {
        json!({"text": text, "index": index, "finish_reason": "stop",
            "logprobs": {"tokens": [" x"], "token_logprobs": [-0.5], "top_logprobs": [{" x": -0.5, " y": -1.0}], "text_offset": [0]}})
    };
    let input = jsonl(&[
        json!({"id": "cmpl-1", "object": "text_completion", "model": "m",
        "choices": [choice(0, " up"), choice(1, " up"), choice(2, " down"), choice(3, " none")]})
        .to_string(),
    ]);
    let requests = jsonl(&[
        json!({"model": "m", "prompt": ["Is 7 prime?", "Is 9 prime?"], "n": 2, "logprobs": 2})
            .to_string(),
    ]);
    let set = score(&input);
    assert_eq!(set.traces.len(), 4);
    let alpaca = options(ExportFormat::Alpaca, &set, Some(&requests));
    let (_, lines) = export_all(&input, &set, &alpaca).unwrap();
    let instructions: Vec<&str> = lines
        .iter()
        .map(|line| line["instruction"].as_str().unwrap())
        .collect();
    assert_eq!(
        instructions,
        ["Is 7 prime?", "Is 7 prime?", "Is 9 prime?", "Is 9 prime?"]
    );
}

#[test]
fn alpaca_keeps_earlier_exchanges_as_history() {
    let input = jsonl(&[chat_response("chatcmpl-1", &["Answer: up"]).to_string()]);
    let requests = jsonl(&[json!({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Is 7 prime?"}]})
    .to_string()]);
    let set = score(&input);
    let (_, lines) = export_all(
        &input,
        &set,
        &options(ExportFormat::Alpaca, &set, Some(&requests)),
    )
    .unwrap();
    assert_eq!(
        lines[0],
        json!({"instruction": "Is 7 prime?", "input": "", "output": "Answer: up",
               "system": "Be brief.", "history": [["Hi", "Hello!"]]})
    );
    let (_, lines) = export_all(
        &input,
        &set,
        &options(ExportFormat::Sharegpt, &set, Some(&requests)),
    )
    .unwrap();
    let from: Vec<&str> = lines[0]["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|turn| turn["from"].as_str().unwrap())
        .collect();
    assert_eq!(from, ["system", "human", "gpt", "human", "gpt"]);
}

/// Scoring a canonical file in parts numbers responses as one pass does.
#[test]
fn parts_number_responses_like_one_pass() {
    let line =
        |i: usize| format!("{{\"question_id\":\"q{i}\",\"text\":\"up\",\"logprobs\":[-0.1]}}\n");
    let input: String = (0..40).map(line).collect();
    let one_pass = score(&input);
    let settings = Settings::default();
    let options = tracesift_core::dataset::ScoreOptions::from_settings(&settings).unwrap();
    let mut scorer = tracesift_core::dataset::Scorer::new(options);
    scorer.begin_file("responses.jsonl");
    let cut = input.match_indices('\n').nth(14).unwrap().0 + 1;
    scorer.feed(&input.as_bytes()[..cut]);
    let mut part = scorer.range_scorer(cut as u64).unwrap();
    part.feed(&input.as_bytes()[cut..]);
    scorer.absorb(part);
    let in_parts = scorer.finish();
    assert_eq!(in_parts.report.responses, 40);
    let ordinals: Vec<u64> = in_parts.traces.iter().map(|t| t.request.ordinal).collect();
    assert_eq!(ordinals, (0..40).collect::<Vec<u64>>());
    assert_eq!(in_parts.traces, one_pass.traces);
}
