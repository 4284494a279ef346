//! Parity of the SPEC §5b signals with their reference implementations: the score rows of
//! `tests/data/signals.jsonl` against the rows `scripts/reference.py` writes for it, whose
//! §5b part is transcribed from DeepConf's `utils.py` and LM-Polygraph's estimators
//! (`scripts/check_upstream.py` runs those files unchanged against the transcription).

// Helpers in test crates may panic: a panic here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use tracesift_core::dataset::score_bytes;
use tracesift_core::export::score_row;
use tracesift_core::metrics::Metric;
use tracesift_core::settings::{Settings, Similarity};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

/// Equal within 1e-9 relative, or both zero up to rounding (an eigensolver's 1e-16 for an
/// exact 0), or both null; strings and booleans exactly.
fn agree(ours: &serde_json::Value, theirs: &serde_json::Value) -> bool {
    match (ours.as_f64(), theirs.as_f64()) {
        (Some(a), Some(b)) => {
            (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) || (a - b).abs() <= 1e-12
        }
        _ => ours == theirs,
    }
}

/// Scores the fixture with `settings` and compares every field of every row with the
/// reference's rows in `expected`.
fn check(settings: &Settings, expected: &str, regenerate: &str) {
    let input = std::fs::read(data("signals.jsonl")).unwrap();
    let set = score_bytes(settings, &[("signals.jsonl", &input)]).unwrap();
    assert!(set.report.skipped.is_empty(), "{:?}", set.report.skipped);
    let expected = std::fs::read_to_string(data(expected)).unwrap();
    let expected: Vec<serde_json::Value> = expected
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(set.traces.len(), expected.len());
    let mut compared = 0;
    for (trace, theirs) in set.traces.iter().zip(&expected) {
        let ours = serde_json::to_value(score_row(&set, trace)).unwrap();
        let ours = ours.as_object().unwrap();
        assert_eq!(
            ours.len(),
            theirs.as_object().unwrap().len(),
            "{}",
            trace.trace_id
        );
        for (key, value) in ours {
            assert!(
                agree(value, &theirs[key]),
                "{} `{key}`: ours {value}, reference {} (regenerate with `{regenerate}`)",
                trace.trace_id,
                theirs[key]
            );
            compared += usize::from(value.is_number());
        }
    }
    assert!(compared > 300, "{compared} numbers compared");
}

#[test]
fn answer_similarity_with_an_eight_token_window() {
    let settings = Settings {
        window: 8,
        ..Settings::default()
    };
    check(
        &settings,
        "signals.answer.expected.jsonl",
        "python3 scripts/reference.py score tests/data/signals.jsonl --sim answer --window 8",
    );
}

#[test]
fn rouge_l_with_the_default_window_and_a_graph_combination() {
    let settings = Settings {
        sim: Similarity::RougeL,
        combine: "eigv,semantic_density,conf_lowest".to_owned(),
        ..Settings::default()
    };
    check(
        &settings,
        "signals.rouge_l.expected.jsonl",
        "python3 scripts/reference.py score tests/data/signals.jsonl --sim rouge_l --combine eigv,semantic_density,conf_lowest",
    );
}

#[test]
fn embedding_similarity_with_a_trace_outside_the_graph() {
    let settings = Settings {
        sim: Similarity::Embedding,
        window: 8,
        combine: "conf_tail,kle".to_owned(),
        ..Settings::default()
    };
    check(
        &settings,
        "signals.embedding.expected.jsonl",
        "python3 scripts/reference.py score tests/data/signals.jsonl --sim embedding --window 8 --combine conf_tail,kle",
    );
}

/// The fixture really has the cases the parity tests are meant to cover.
#[test]
fn the_fixture_covers_the_edge_cases() {
    let input = std::fs::read(data("signals.jsonl")).unwrap();
    let settings = Settings {
        window: 8,
        ..Settings::default()
    };
    let set = score_bytes(&settings, &[("signals.jsonl", &input)]).unwrap();
    let by_id = |id: &str| set.traces.iter().find(|t| t.trace_id == id).unwrap();
    // A trace without top-k: no confidences; one without valid log-probs: no msp, no SAR.
    assert_eq!(by_id("q3-1").metric(Metric::ConfMean), None);
    assert_eq!(by_id("q4-0").metric(Metric::SentenceSar), None);
    assert!(by_id("q4-0").metric(Metric::Eigv).is_some());
    // A question of one trace: no answer entropy, no graph.
    assert_eq!(by_id("q2-0").metric(Metric::AnswerEntropy), None);
    assert_eq!(by_id("q2-0").metric(Metric::Kle), None);
    // Windows longer than a trace (5 tokens, w = 8) and shorter (q5, b > 1 windows).
    let short = by_id("q1-0");
    assert_eq!(
        short.metric(Metric::ConfLowest),
        short.metric(Metric::ConfMean)
    );
    let long = by_id("q5-5");
    assert!(long.metric(Metric::ConfBottom10) > long.metric(Metric::ConfLowest));
    // Unanswered traces are clusters of their own; twins tie exactly.
    assert!(by_id("q6-0").class.is_none() && by_id("q6-1").class.is_none());
    assert_eq!(
        by_id("q6-2").metric(Metric::Combo),
        by_id("q6-3").metric(Metric::Combo)
    );
}
