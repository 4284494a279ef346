//! Scoring a file in parts (`Scorer::range_scorer` + `absorb`, what the CLI runs on several
//! cores) gives exactly what scoring it in one pass gives.

// Helpers in test crates may panic: a panic here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use tracesift_core::dataset::{ScoreOptions, ScoredSet, Scorer};
use tracesift_core::settings::{Settings, Similarity};

/// One line: a trace (with or without a trace id, a label, an answer) or junk.
fn line() -> impl Strategy<Value = String> {
    let trace = (
        0u8..6,
        prop::option::of(0u16..500),
        prop::sample::select(vec!["up", "down", "none", "maybe", ""]),
        prop::option::of(prop::sample::select(vec!["up", "down", "sideways"])),
        prop::collection::vec(-5.0f64..0.0, 0..6),
        prop::collection::vec(prop::sample::select(vec!["gene", "up", "cell", "the"]), 0..8),
    )
        .prop_map(|(question, trace_id, answer, label, logprobs, words)| {
            let trace_id = trace_id.map_or(String::new(), |id| format!(r#""trace_id":"t{id}","#));
            let label = label.map_or(String::new(), |l| format!(r#","label":"{l}""#));
            let logprobs: Vec<String> = logprobs.iter().map(|v| format!("{v:.4}")).collect();
            format!(
                r#"{{"question_id":"q{question}",{trace_id}"text":"{} Final answer: {answer}","logprobs":[{}]{label}}}"#,
                words.join(" "),
                logprobs.join(",")
            )
        });
    prop_oneof![
        12 => trace,
        1 => Just("not json at all".to_owned()),
        1 => Just(r#"{"question_id":"q1","tokens":["a"],"logprobs":[],"answer":"up"}"#.to_owned()),
        1 => Just(String::new()),
    ]
}

fn options(sim: Similarity) -> ScoreOptions {
    let settings = Settings {
        sim,
        ..Settings::default()
    };
    ScoreOptions::from_settings(&settings).unwrap()
}

fn one_pass(bytes: &[u8], sim: Similarity) -> ScoredSet {
    let mut scorer = Scorer::new(options(sim));
    scorer.begin_file("in.jsonl");
    scorer.feed(bytes);
    scorer.end_file();
    scorer.finish()
}

/// The first `head_lines` lines in the main scorer, the rest in ranges cut after the given
/// line counts (each range scored on its own, then absorbed in order).
/// Also returns how many ranges were scored apart (0 when the file could not be split).
fn in_parts(
    bytes: &[u8],
    sim: Similarity,
    head_lines: usize,
    cuts: &[usize],
) -> (ScoredSet, usize) {
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(
            bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .filter(|&start| start < bytes.len())
        .collect();
    let start_of = |line: usize| line_starts.get(line).copied().unwrap_or(bytes.len());
    let mut scorer = Scorer::new(options(sim));
    scorer.begin_file("in.jsonl");
    let head_end = start_of(head_lines);
    scorer.feed(&bytes[..head_end]);
    let mut bounds: Vec<usize> = cuts.iter().map(|&line| start_of(line)).collect();
    bounds.retain(|&b| b > head_end);
    bounds.push(bytes.len());
    bounds.sort_unstable();
    bounds.dedup();
    let mut start = head_end;
    let mut ranges = Vec::new();
    for end in bounds {
        if end > start {
            let Some(mut range) = scorer.range_scorer(start as u64) else {
                // Not splittable (format unknown after the head): finish in one pass.
                scorer.feed(&bytes[start..]);
                scorer.end_file();
                return (scorer.finish(), 0);
            };
            range.feed(&bytes[start..end]);
            ranges.push(range);
            start = end;
        }
    }
    let n_ranges = ranges.len();
    for (idx, range) in ranges.into_iter().enumerate() {
        if idx % 2 == 0 {
            scorer.absorb(range);
        } else {
            // As between Web Workers: the part crosses as MessagePack with field names
            // (the app's `protocol::to_bytes`).
            let bytes = rmp_serde::to_vec_named(&range.into_part()).unwrap();
            scorer.absorb_part(rmp_serde::from_slice(&bytes).unwrap());
        }
    }
    scorer.end_file();
    (scorer.finish(), n_ranges)
}

fn assert_same(a: &ScoredSet, b: &ScoredSet) {
    assert_eq!(a.traces, b.traces);
    assert_eq!(a.questions, b.questions);
    assert_eq!(a.classes, b.classes);
    assert_eq!(a.report, b.report);
}

#[test]
fn a_file_split_by_hand_scores_the_same() {
    let file = "\
{\"question_id\":\"q1\",\"text\":\"a b. Final answer: up\",\"logprobs\":[-0.1],\"label\":\"up\"}
{\"question_id\":\"q1\",\"text\":\"b c. Final answer: down\",\"logprobs\":[-0.5]}
not json
{\"question_id\":\"q2\",\"trace_id\":\"x\",\"answer\":\"none\",\"logprobs\":[-1.0]}
{\"question_id\":\"q1\",\"text\":\"a c. Final answer: sideways\",\"logprobs\":[-0.2],\"label\":\"sideways\"}
{\"question_id\":\"q2\",\"answer\":\"down\"}";
    for sim in [Similarity::Answer, Similarity::RougeL] {
        let whole = one_pass(file.as_bytes(), sim);
        let (parts, n_ranges) = in_parts(file.as_bytes(), sim, 1, &[2, 4, 5]);
        assert_eq!(n_ranges, 4);
        assert_same(&whole, &parts);
        // Made-up ids continue their question's numbering across parts; skipped lines
        // keep their line numbers.
        assert_eq!(parts.traces[3].trace_id, "q1#2");
        assert_eq!(parts.traces[4].trace_id, "q2#1");
        assert_eq!(parts.report.skipped[0].line, 3);
        assert_eq!(parts.report.lines, 6);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn parts_equal_one_pass(
        lines in prop::collection::vec(line(), 1..60),
        head in 1usize..10,
        cuts in prop::collection::vec(0usize..60, 0..6),
        rouge in any::<bool>(),
        final_newline in any::<bool>(),
    ) {
        let mut file = lines.join("\n");
        if final_newline {
            file.push('\n');
        }
        let sim = if rouge { Similarity::RougeL } else { Similarity::Answer };
        let (parts, n_ranges) = in_parts(file.as_bytes(), sim, head, &cuts);
        assert_same(&one_pass(file.as_bytes(), sim), &parts);
        // A file whose head is a trace is always split where there is something after it.
        let head_is_trace = lines.first().is_some_and(|l| l.starts_with('{') && l.contains("logprobs"));
        if head_is_trace && lines.len() > head && lines[head..].iter().any(|l| !l.is_empty()) {
            prop_assert!(n_ranges > 0);
        }
    }
}
