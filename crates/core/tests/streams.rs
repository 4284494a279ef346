//! Saved `"stream": true` responses, through the whole scorer: server-sent events and NDJSON
//! chunks become whole generations, are scored once each, and are read back for export.

// Helpers in test crates may panic: a panic here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tracesift_core::dataset::{ScoredSet, TraceScores, score_bytes};
use tracesift_core::export::reparse;
use tracesift_core::settings::Settings;

fn score(input: &str) -> ScoredSet {
    score_bytes(&Settings::default(), &[("stream.txt", input.as_bytes())]).unwrap()
}

/// The bytes of a trace's record (for an assembled stream, the span of its chunks).
fn span<'a>(input: &'a str, trace: &TraceScores) -> &'a [u8] {
    let start = trace.record.offset as usize;
    &input.as_bytes()[start..start + trace.record.len as usize]
}

#[track_caller]
fn assert_close(actual: Option<f64>, expected: f64) {
    let actual = actual.unwrap();
    assert!(
        (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0),
        "expected {expected}, got {actual}"
    );
}

/// An OpenAI chat stream with `n: 2`, as the server sends it: the choices interleave,
/// `[DONE]` ends it, and a usage-only chunk has no choices.
const CHAT_SSE: &str = include_str!("../../../tests/data/formats/openai_chat_stream_n2.sse");

#[test]
fn an_sse_chat_stream_is_one_question_of_whole_generations() {
    let set = score(CHAT_SSE);
    assert!(set.report.skipped.is_empty(), "{:?}", set.report.skipped);
    assert_eq!(set.report.format.as_deref(), Some("openai"));
    assert_eq!(set.traces.len(), 2);
    assert_eq!(set.questions.len(), 1);
    // Generations come out in the order they finished; both belong to the stream's id.
    let up = set.traces.iter().find(|t| t.record.sub_idx == 0).unwrap();
    let down = set.traces.iter().find(|t| t.record.sub_idx == 1).unwrap();
    assert_eq!(set.question_id(up), "chatcmpl-7");
    assert_eq!((up.n_tokens, down.n_tokens), (2, 1));
    assert_close(up.msp, 0.75);
    assert_close(up.ppl, 0.375);
    assert_close(down.msp, 1.25);
    assert_eq!(set.class_name(up.class), Some("up"));
    assert_eq!(set.class_name(down.class), Some("down"));
    // Two answers that disagree: consistency 0 for both.
    assert_eq!(up.consistency, Some(0.0));
    // Both start on line 1 (the chunk that opened them) and span to their last chunk.
    assert_eq!((up.record.line, down.record.line), (1, 1));
    let note = &set.report.notes[0];
    assert!(note.what.starts_with("stream chunks assembled"), "{note:?}");
    // Six chunk records (the usage-only one too) made two generations.
    assert_eq!((note.count, note.records), (6, 2));
    // Export and the trace view read each generation back from its span.
    let full = reparse(&set, up, span(CHAT_SSE, up)).unwrap();
    assert_eq!(full.text.as_deref(), Some("Final answer: up."));
    assert_eq!(full.tokens, ["Final answer: up", "."]);
    let full = reparse(&set, down, span(CHAT_SSE, down)).unwrap();
    assert_eq!(full.text.as_deref(), Some("Final answer: down"));
}

#[test]
fn a_stream_cut_off_before_its_last_chunk_is_reported_by_line() {
    // Everything up to the chunk that finishes choice 0: choice 1 never finishes.
    let cut = CHAT_SSE
        .split("\n\n")
        .take(4)
        .collect::<Vec<_>>()
        .join("\n\n");
    let set = score(&cut);
    assert_eq!(set.traces.len(), 1);
    assert_eq!(set.report.skipped.len(), 1);
    let skipped = &set.report.skipped[0];
    assert_eq!(skipped.line, 1);
    assert!(
        skipped.reason.contains("stream ended"),
        "{}",
        skipped.reason
    );
}

#[test]
fn llamacpp_and_ollama_streams_are_assembled_one_after_another() {
    // Two llama.cpp `/completion` streams saved back to back, then a whole response.
    let llama = r#"{"index":0,"content":"Answer:","tokens":[1],"stop":false,"id_slot":0,"tokens_predicted":1,"completion_probabilities":[{"id":1,"token":"Answer:","logprob":-0.5,"bytes":[65],"top_logprobs":[{"id":1,"token":"Answer:","logprob":-0.5},{"id":2,"token":"So","logprob":-1.0}]}]}
{"index":0,"content":" up","tokens":[3],"stop":false,"id_slot":0,"tokens_predicted":2,"completion_probabilities":[{"id":3,"token":" up","logprob":-0.25,"bytes":[32],"top_logprobs":[{"id":3,"token":" up","logprob":-0.25},{"id":4,"token":" down","logprob":-2.0}]}]}
{"index":0,"content":"","tokens":[],"stop":true,"id_slot":0,"tokens_predicted":2,"stop_type":"eos"}
{"index":0,"content":"Answer: down","tokens":[5],"stop":false,"id_slot":0,"completion_probabilities":[{"id":5,"token":"Answer: down","logprob":-2.0,"bytes":[65],"top_logprobs":[{"id":5,"token":"Answer: down","logprob":-2.0},{"id":1,"token":"Answer:","logprob":-0.3}]}]}
{"index":0,"content":"","tokens":[],"stop":true,"id_slot":0,"tokens_predicted":1,"stop_type":"eos"}
{"index":0,"content":"Answer: none","stop":true,"id_slot":0,"tokens_predicted":1,"completion_probabilities":[{"id":6,"token":"Answer: none","logprob":-0.75,"bytes":[65],"top_logprobs":[{"id":6,"token":"Answer: none","logprob":-0.75},{"id":1,"token":"Answer:","logprob":-1.3}]}]}
"#;
    let set = score(llama);
    assert!(set.report.skipped.is_empty(), "{:?}", set.report.skipped);
    assert_eq!(set.traces.len(), 3);
    let msp: Vec<f64> = set.traces.iter().map(|t| t.msp.unwrap()).collect();
    assert_eq!(msp, [0.75, 2.0, 0.75]);
    let lines: Vec<u64> = set.traces.iter().map(|t| t.record.line).collect();
    assert_eq!(lines, [1, 4, 6]);
    let first = &set.traces[0];
    let full = reparse(&set, first, span(llama, first)).unwrap();
    assert_eq!(full.text.as_deref(), Some("Answer: up"));

    // Ollama's default: NDJSON chunks with `done: false`, then a `done: true` summary.
    let ollama = r#"{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","response":"Answer","done":false,"logprobs":[{"token":"Answer","logprob":-0.1,"top_logprobs":[{"token":"Answer","logprob":-0.1},{"token":"So","logprob":-2.5}]}]}
{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","response":": up","done":false,"logprobs":[{"token":": up","logprob":-0.3,"top_logprobs":[{"token":": up","logprob":-0.3},{"token":": down","logprob":-1.4}]}]}
{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","response":"","done":true,"done_reason":"stop","eval_count":2}
"#;
    let set = score(ollama);
    assert!(set.report.skipped.is_empty(), "{:?}", set.report.skipped);
    assert_eq!(set.traces.len(), 1);
    assert_close(set.traces[0].msp, 0.4);
    assert_eq!(set.class_name(set.traces[0].class), Some("up"));
}

#[test]
fn each_stream_is_one_response_for_a_request_file_joined_by_position() {
    use std::sync::Arc;
    use tracesift_core::export::{ExportOptions, write_selection};
    use tracesift_core::requests::{RequestJoin, Requests};
    use tracesift_core::settings::ExportFormat;

    // Two saved streams back to back: the n = 2 one (its choices answer one request) and a
    // one-choice stream with another id; the request file has two bodies, in that order.
    let second = CHAT_SSE
        .replace("chatcmpl-7", "chatcmpl-8")
        .replace(r#",{"index":1,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}"#, "");
    let second: String = second
        .split("\n\n")
        .filter(|event| !event.contains(r#""index":1"#))
        .collect::<Vec<_>>()
        .join("\n\n");
    let input = format!("{CHAT_SSE}{second}");
    let set = score(&input);
    assert!(set.report.skipped.is_empty(), "{:?}", set.report.skipped);
    assert_eq!(set.traces.len(), 3);
    assert_eq!(set.report.responses, 2);
    let requests = r#"{"messages":[{"role":"user","content":"Knock down PDIA6: SLC35B1?"}]}
{"messages":[{"role":"user","content":"Knock down ATF6: HSPA5?"}]}
"#;
    let options = ExportOptions {
        format: ExportFormat::Trl,
        requests: Some(Arc::new(RequestJoin::new(
            Requests::from_bytes(requests.as_bytes()),
            &set,
        ))),
        ..ExportOptions::default()
    };
    let mut out = Vec::new();
    let read = |record: &tracesift_core::trace::RecordRef| {
        let start = record.offset as usize;
        Ok(input.as_bytes()[start..start + record.len as usize].to_vec())
    };
    let chosen = vec![true; set.traces.len()];
    let warnings = write_selection(&set, &chosen, &options, read, &mut out).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let prompts: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["prompt"][0]["content"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        prompts,
        [
            "Knock down PDIA6: SLC35B1?",
            "Knock down PDIA6: SLC35B1?",
            "Knock down ATF6: HSPA5?"
        ]
    );
}

#[test]
fn every_recorded_trace_reads_back_from_its_record_as_it_was_scored() {
    // What exports and the trace view do: read each trace's record (an assembled stream's
    // span) again and parse it with its content; the valid log-probs must be the ones that
    // were scored.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/real");
    let mut files = Vec::new();
    for provider in std::fs::read_dir(&root).unwrap() {
        let provider = provider.unwrap().path();
        if !provider.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&provider).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".expected.json") || name.ends_with(".md") || name == "VERSION" {
                continue;
            }
            files.push(path);
        }
    }
    assert!(files.len() >= 40, "recorded files: {}", files.len());
    let mut streams = 0;
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let set = score_bytes(&Settings::default(), &[("real", &bytes)]).unwrap();
        streams += usize::from(
            set.report
                .notes
                .iter()
                .any(|n| n.what.starts_with("stream")),
        );
        for trace in &set.traces {
            let start = trace.record.offset as usize;
            let record = &bytes[start..start + trace.record.len as usize];
            let full = reparse(&set, trace, record)
                .unwrap_or_else(|reason| panic!("{}: {reason}", path.display()));
            let valid = full
                .logprobs
                .iter()
                .filter(|&&value| tracesift_core::trace::classify_logprob(value).is_some())
                .count();
            assert_eq!(
                valid,
                trace.n_tokens as usize,
                "{} line {}",
                path.display(),
                trace.record.line
            );
        }
    }
    assert!(streams >= 8, "stream files assembled: {streams}");
}
