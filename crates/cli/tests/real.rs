//! Real provider output (tests/data/real/<provider>/, re-created by `cargo xtask record`)
//! scored by the `tracesift` binary, against what scripts/record/expected.py computed from
//! the same files without tracesift: trace count, n_tokens, msp and mte of every trace, and
//! the report's lines, questions, skipped lines, invalid tokens and the notes that count
//! echoed prompt tokens left out and stream chunks assembled.

// Helpers in test crates may panic: a panic here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Relative tolerance of msp and mte: both sides sum the same f64 values, in different
/// orders.
const TOLERANCE: f64 = 1e-9;

fn real_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/real")
}

/// Every `*.expected.json` under `dir`, sorted.
fn expectations(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(expectations(&path));
        } else if path.to_string_lossy().ends_with(".expected.json") {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= TOLERANCE * expected.abs().max(actual.abs()) + 1e-15
}

/// `what` of a score: both null, or both numbers within [`TOLERANCE`].
fn check_score(problems: &mut Vec<String>, what: &str, actual: &Value, expected: &Value) {
    match (actual.as_f64(), expected.as_f64()) {
        (None, None) if actual.is_null() && expected.is_null() => {}
        (Some(a), Some(e)) if close(a, e) => {}
        _ => problems.push(format!("{what}: got {actual}, expected {expected}")),
    }
}

/// Orders traces by (n_tokens, msp), to pair traces that came out in another order.
fn sort_key(trace: &Value) -> (u64, f64) {
    (
        trace["n_tokens"].as_u64().unwrap_or(u64::MAX),
        trace["msp"].as_f64().unwrap_or(f64::INFINITY),
    )
}

/// The differences between scored rows and expected traces, pair by pair.
fn compare_traces<'a>(
    actual: impl Iterator<Item = &'a Value>,
    expected: impl Iterator<Item = &'a Value>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (idx, (actual, wanted)) in actual.zip(expected).enumerate() {
        let mut trace_problems = Vec::new();
        for field in ["n_tokens", "invalid_tokens"] {
            if actual[field] != wanted[field] {
                trace_problems.push(format!(
                    "{field}: got {}, expected {}",
                    actual[field], wanted[field]
                ));
            }
        }
        check_score(&mut trace_problems, "msp", &actual["msp"], &wanted["msp"]);
        check_score(&mut trace_problems, "mte", &actual["mte"], &wanted["mte"]);
        if !trace_problems.is_empty() {
            problems.push(format!(
                "trace {idx} ({}): {}",
                actual["trace_id"],
                trace_problems.join("; ")
            ));
        }
    }
    problems
}

/// Scores one data file and lists every way it differs from its expectation.
fn check_file(expected_path: &Path) -> Vec<String> {
    let expected = read_json(expected_path);
    let data_path = PathBuf::from(
        expected_path
            .to_string_lossy()
            .trim_end_matches(".expected.json"),
    );
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let scores_path = dir.path().join("scores.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_tracesift"))
        .arg("score")
        .arg(&data_path)
        .args(
            expected["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str),
        )
        .args(["--backend", "cpu", "--report"])
        .arg(&report_path)
        .arg("--out")
        .arg(&scores_path)
        .output()
        .unwrap();
    let mut problems = Vec::new();
    let expected_traces = expected["traces"].as_array().unwrap();
    let expected_exit = if expected_traces.is_empty() { 1 } else { 0 };
    if output.status.code() != Some(expected_exit) {
        problems.push(format!(
            "exit code {:?}, expected {expected_exit}; stderr: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
        return problems;
    }

    let rows: Vec<Value> = std::fs::read_to_string(&scores_path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    if rows.len() != expected_traces.len() {
        problems.push(format!(
            "{} traces, expected {}: n_tokens {}, expected {}",
            rows.len(),
            expected_traces.len(),
            Value::from_iter(rows.iter().map(|r| r["n_tokens"].clone())),
            Value::from_iter(expected_traces.iter().map(|t| t["n_tokens"].clone())),
        ));
    } else {
        // In input order first; stream assembly may finish generations in another order
        // than they started, so the same traces in another order pass too.
        let in_order = compare_traces(rows.iter(), expected_traces.iter());
        if !in_order.is_empty() {
            let mut actual_sorted: Vec<&Value> = rows.iter().collect();
            let mut expected_sorted: Vec<&Value> = expected_traces.iter().collect();
            actual_sorted.sort_by(|a, b| sort_key(a).partial_cmp(&sort_key(b)).unwrap());
            expected_sorted.sort_by(|a, b| sort_key(a).partial_cmp(&sort_key(b)).unwrap());
            if !compare_traces(actual_sorted.into_iter(), expected_sorted.into_iter()).is_empty() {
                problems.extend(in_order);
            }
        }
    }

    let report = read_json(&report_path);
    for (field, wanted) in [
        ("lines", &expected["lines"]),
        ("traces", &Value::from(expected_traces.len())),
        ("questions", &expected["questions"]),
        ("invalid_tokens", &expected["invalid_tokens"]),
    ] {
        // A null expectation is a count that depends on a setting (e.g. question grouping).
        if !wanted.is_null() && &report[field] != wanted {
            problems.push(format!(
                "report {field}: got {}, expected {wanted}",
                report[field]
            ));
        }
    }
    // Left out or assembled: a note of the report that names it, with the expected count.
    for wanted in expected["notes"].as_array().into_iter().flatten() {
        let about = wanted["about"].as_str().unwrap_or_default();
        let found = report["notes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|note| {
                note["what"]
                    .as_str()
                    .is_some_and(|what| what.to_lowercase().contains(about))
                    && note["count"] == wanted["count"]
            });
        if !found {
            problems.push(format!(
                "report notes: none about `{about}` with count {}; notes: {}",
                wanted["count"], report["notes"]
            ));
        }
    }
    let skipped: Vec<&Value> = report["skipped"]
        .as_array()
        .map(|entries| entries.iter().map(|entry| &entry["line"]).collect())
        .unwrap_or_default();
    let expected_skipped: Vec<&Value> = expected["skipped_lines"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    if skipped != expected_skipped {
        problems.push(format!(
            "report skipped lines {skipped:?}, expected {expected_skipped:?}: {}",
            report["skipped"]
        ));
    }
    problems
}

#[test]
fn recorded_real_output_scores_as_computed_from_the_files() {
    let files = expectations(&real_data());
    assert!(
        files.len() >= 20,
        "only {} expectation files under tests/data/real",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let problems = check_file(path);
        if !problems.is_empty() {
            let name = path
                .strip_prefix(real_data())
                .unwrap_or(path)
                .to_string_lossy()
                .trim_end_matches(".expected.json")
                .to_owned();
            failures.push(format!("{name}:\n    {}", problems.join("\n    ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} real files scored wrong:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
