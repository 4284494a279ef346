//! `tracesift filter --requests FILE` and `--allow-empty-prompt`: SFT exports carry the
//! prompts of the request file, and an export with empty prompts is refused (exit 2).

// Helpers in test crates may panic: a panic here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn tracesift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tracesift"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stderr: {}",
        stderr(output)
    );
}

fn lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Everything kept, in the given export format, with the extra arguments.
fn filter_all(input: &str, export: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "filter", input, "--metric", "ppl", "--keep", "1", "--scope", "global", "--export", export,
    ];
    args.extend_from_slice(extra);
    tracesift(&args)
}

const SYSTEM: &str =
    "You are a molecular biologist. End with 'Answer: up', 'Answer: down' or 'Answer: none'.";

#[test]
fn batch_input_gives_the_openai_export_its_system_and_user_messages() {
    let output = filter_all(
        &data("formats/openai_batch.jsonl"),
        "openai",
        &["--requests", &data("requests/openai_batch_input.jsonl")],
    );
    assert_exit(&output, 0);
    let examples = lines(&output);
    assert_eq!(examples.len(), 3, "{}", stderr(&output));
    assert_eq!(
        examples[0]["messages"],
        serde_json::json!([
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "In K562 cells, does CRISPRi knock-down of PDIA6 change the expression of SLC35B1?"},
            {"role": "assistant", "content": "Answer: up"}])
    );
    // The legacy completions line: its prompt is plain text.
    assert_eq!(
        examples[2]["messages"][0]["content"],
        "In HepG2 cells, does CRISPRi knock-down of ATF6 change the expression of HSPA5?\nAnswer:"
    );
    let log = stderr(&output);
    assert!(log.contains("requests joined by id"), "{log}");
    assert!(
        log.contains("prompts: 3 from the requests, 0 from the responses, 0 empty"),
        "{log}"
    );
}

#[test]
fn request_bodies_join_chat_responses_by_position_and_gzip_is_read() {
    let bodies = std::fs::read(data("requests/openai_chat_bodies.jsonl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gzipped = dir.path().join("bodies.jsonl.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&bodies).unwrap();
    std::fs::write(&gzipped, encoder.finish().unwrap()).unwrap();
    // The third response has no valid token, so only --unfiltered holds every trace.
    let unfiltered = dir.path().join("unfiltered.jsonl");
    let output = filter_all(
        &data("formats/openai_chat.jsonl"),
        "sharegpt",
        &[
            "--requests",
            gzipped.to_str().unwrap(),
            "--unfiltered",
            unfiltered.to_str().unwrap(),
        ],
    );
    assert_exit(&output, 0);
    let written = std::fs::read_to_string(&unfiltered).unwrap();
    let humans: Vec<String> = written
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .map(|example| {
            example["conversations"][1]["value"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let question =
        "In K562 cells, does CRISPRi knock-down of PDIA6 change the expression of SLC35B1?";
    assert_eq!(
        humans,
        [
            question.to_owned(),
            question.to_owned(),
            format!("{question} Think step by step.")
        ]
    );
    assert!(stderr(&output).contains("requests joined by position"));
}

#[test]
fn an_sft_export_without_prompts_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("sft.jsonl");
    for export in ["openai", "trl", "sharegpt", "alpaca"] {
        let output = filter_all(
            &data("formats/openai_chat.jsonl"),
            export,
            &["--out", out.to_str().unwrap()],
        );
        assert_exit(&output, 2);
        let log = stderr(&output);
        assert!(
            log.contains(&format!(
                "refusing the {export} export: 2 of 2 kept traces have an empty prompt"
            )),
            "{log}"
        );
        assert!(log.contains("--requests FILE"), "{log}");
        assert!(log.contains("--allow-empty-prompt"), "{log}");
        // Nothing is written, not even an empty file.
        assert!(!out.exists());
    }
}

#[test]
fn empty_prompts_are_written_when_asked_for() {
    let output = filter_all(
        &data("formats/openai_chat.jsonl"),
        "openai",
        &["--allow-empty-prompt"],
    );
    assert_exit(&output, 0);
    let examples = lines(&output);
    assert_eq!(examples.len(), 2);
    assert_eq!(
        examples[0]["messages"][0],
        serde_json::json!({"role": "user", "content": ""})
    );
    assert!(stderr(&output).contains("0 from the requests, 0 from the responses, 2 empty"));
    // The same from a settings file, as the app shares it.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("settings.json");
    std::fs::write(
        &config,
        r#"{"allow_empty_prompt": true, "export": "alpaca"}"#,
    )
    .unwrap();
    let output = tracesift(&[
        "filter",
        &data("formats/openai_chat.jsonl"),
        "--metric",
        "ppl",
        "--keep",
        "1",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_exit(&output, 0);
    assert_eq!(lines(&output).len(), 2);
}

#[test]
fn canonical_and_csv_exports_need_no_prompt() {
    for export in ["canonical", "csv"] {
        let output = filter_all(&data("formats/openai_chat.jsonl"), export, &[]);
        assert_exit(&output, 0);
        assert!(!stderr(&output).contains("refusing"));
    }
}

/// vLLM writes the templated prompt into its output: no request file needed.
#[test]
fn a_prompt_in_the_responses_is_used_without_requests() {
    let output = filter_all(&data("formats/vllm.jsonl"), "trl", &[]);
    assert_exit(&output, 0);
    let examples = lines(&output);
    assert_eq!(
        examples[0]["prompt"],
        serde_json::json!([{"role": "user", "content": "In K562 cells, does CRISPRi knock-down of PDIA6 change the expression of SLC35B1? Answer up, down or none."}])
    );
    assert_eq!(examples[0]["completion"][0]["role"], "assistant");
}

#[test]
fn request_lines_without_a_prompt_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let requests = dir.path().join("requests.jsonl");
    let mut text = std::fs::read_to_string(data("requests/openai_batch_input.jsonl")).unwrap();
    text.push_str("not json\n{\"custom_id\": \"x\", \"body\": {\"prompt\": [1, 2]}}\n");
    std::fs::write(&requests, text).unwrap();
    let output = filter_all(
        &data("formats/openai_batch.jsonl"),
        "openai",
        &["--requests", requests.to_str().unwrap()],
    );
    assert_exit(&output, 0);
    let log = stderr(&output);
    assert!(
        log.contains("requests.jsonl:5: no prompt: not valid JSON"),
        "{log}"
    );
    assert!(
        log.contains("requests.jsonl:6: no prompt: `prompt` is token ids"),
        "{log}"
    );
}

#[test]
fn a_missing_request_file_is_a_bad_argument() {
    let output = filter_all(
        &data("formats/openai_batch.jsonl"),
        "openai",
        &["--requests", "/nonexistent/requests.jsonl"],
    );
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("cannot open /nonexistent/requests.jsonl"));
}
