//! Property tests of the invariants SPEC §5–§6 promise: scores do not depend on line order,
//! the filter is deterministic and keeps the most trustworthy first by each metric's
//! direction, `balanced` balances, and no NaN reaches an output.

// Helpers in test crates may panic: a panic here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use proptest::prelude::*;
use tracesift_core::dataset::{ScoredSet, score_bytes};
use tracesift_core::export::score_row;
use tracesift_core::filter::{FilterOptions, select};
use tracesift_core::metrics::Direction;
use tracesift_core::settings::{Candidates, Metric, Rule, Scope, Settings, Similarity};

/// One generated trace line.
#[derive(Debug, Clone)]
struct GenTrace {
    question: u8,
    trace: u16,
    greedy: bool,
    answer: Option<&'static str>,
    logprobs: Vec<f64>,
    with_top: bool,
    words: Vec<&'static str>,
    embedding: [f32; 3],
}

const ANSWERS: [Option<&str>; 5] = [Some("up"), Some("down"), Some("none"), Some("a"), None];
const WORDS: [&str; 6] = ["gene", "up", "stress", "the", "cell", "down"];

fn logprob() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => -6.0f64..=0.0,
        1 => Just(-9999.0),
        1 => Just(f64::NAN),
        1 => Just(0.0),
    ]
}

fn gen_trace() -> impl Strategy<Value = GenTrace> {
    (
        0u8..5,
        any::<bool>(),
        prop::sample::select(ANSWERS.to_vec()),
        prop::collection::vec(logprob(), 0..6),
        any::<bool>(),
        prop::collection::vec(prop::sample::select(WORDS.to_vec()), 0..8),
        prop::array::uniform3(-1.0f32..1.0),
    )
        .prop_map(
            |(question, greedy, answer, logprobs, with_top, words, embedding)| GenTrace {
                question,
                trace: 0,
                greedy,
                answer,
                logprobs,
                with_top,
                words,
                embedding,
            },
        )
}

/// Traces with unique ids, and the same lines in a shuffled order.
fn dataset() -> impl Strategy<Value = (Vec<GenTrace>, Vec<GenTrace>)> {
    prop::collection::vec(gen_trace(), 1..30).prop_flat_map(|mut traces| {
        for (idx, trace) in traces.iter_mut().enumerate() {
            trace.trace = idx as u16;
        }
        let shuffled = Just(traces.clone()).prop_shuffle();
        (Just(traces), shuffled)
    })
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else {
        format!("{value:?}")
    }
}

fn to_jsonl(traces: &[GenTrace]) -> String {
    let mut out = String::new();
    for trace in traces {
        let logprobs: Vec<String> = trace.logprobs.iter().map(|&v| number(v)).collect();
        let mut line = format!(
            "{{\"question_id\":\"q{}\",\"trace_id\":\"t{:03}\",\"greedy\":{},\"logprobs\":[{}]",
            trace.question,
            trace.trace,
            trace.greedy,
            logprobs.join(",")
        );
        if trace.with_top {
            let top: Vec<String> = trace
                .logprobs
                .iter()
                .map(|&v| format!("[{},-3.5]", number(v)))
                .collect();
            line.push_str(&format!(",\"top_logprobs\":[{}]", top.join(",")));
        }
        let text = trace.words.join(" ");
        match trace.answer {
            Some(answer) => line.push_str(&format!(",\"text\":\"{text}\",\"answer\":\"{answer}\"")),
            None => line.push_str(&format!(",\"text\":\"{text}\"")),
        }
        let embedding: Vec<String> = trace.embedding.iter().map(|v| format!("{v:?}")).collect();
        line.push_str(&format!(",\"embedding\":[{}]}}\n", embedding.join(",")));
        out.push_str(&line);
    }
    out
}

fn settings(sim: Similarity) -> Settings {
    Settings {
        sim,
        classes: "up=up,a;down=down;none=none".into(),
        ..Settings::default()
    }
}

fn scored(sim: Similarity, traces: &[GenTrace]) -> ScoredSet {
    score_bytes(&settings(sim), &[("p.jsonl", to_jsonl(traces).as_bytes())]).unwrap()
}

fn rows_by_id(set: &ScoredSet) -> HashMap<String, Vec<Option<f64>>> {
    set.traces
        .iter()
        .map(|t| {
            let values = Metric::ALL
                .iter()
                .map(|&m| t.metric(m))
                .chain([t.consistency])
                .collect();
            (t.trace_id.clone(), values)
        })
        .collect()
}

fn same(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-12 * x.abs().max(1.0),
        (None, None) => true,
        _ => false,
    }
}

fn kept_ids(set: &ScoredSet, options: &FilterOptions) -> Vec<String> {
    let selection = select(set, options);
    let mut ids: Vec<String> = set
        .traces
        .iter()
        .zip(&selection.kept)
        .filter(|(_, kept)| **kept)
        .map(|(t, _)| t.trace_id.clone())
        .collect();
    ids.sort();
    ids
}

fn filter_options() -> impl Strategy<Value = FilterOptions> {
    (
        prop::sample::select(Metric::ALL.to_vec()),
        prop_oneof![
            (0.01f64..=1.0).prop_map(Rule::Keep),
            (0.0f64..3.0).prop_map(Rule::Threshold),
            (0u64..5).prop_map(Rule::Top),
        ],
        prop::sample::select(vec![Scope::PerClass, Scope::Global]),
        prop::sample::select(vec![Candidates::All, Candidates::Greedy]),
        any::<bool>(),
    )
        .prop_map(
            |(metric, rule, scope, candidates, balanced)| FilterOptions {
                metric,
                rule,
                scope,
                candidates,
                balanced,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn scores_do_not_depend_on_line_order((traces, shuffled) in dataset()) {
        for sim in [Similarity::Answer, Similarity::RougeL, Similarity::Embedding] {
            let original = rows_by_id(&scored(sim, &traces));
            let reordered = rows_by_id(&scored(sim, &shuffled));
            prop_assert_eq!(original.len(), reordered.len());
            for (trace_id, values) in &original {
                let other = &reordered[trace_id];
                for (a, b) in values.iter().zip(other) {
                    prop_assert!(same(*a, *b), "{sim} {trace_id}: {a:?} vs {b:?}");
                }
            }
        }
    }

    #[test]
    fn the_filter_is_deterministic((traces, shuffled) in dataset(), options in filter_options()) {
        let original = scored(Similarity::Answer, &traces);
        let reordered = scored(Similarity::Answer, &shuffled);
        prop_assert_eq!(kept_ids(&original, &options), kept_ids(&reordered, &options));
        prop_assert_eq!(kept_ids(&original, &options), kept_ids(&original, &options));
    }

    #[test]
    fn balanced_gives_equal_class_counts((traces, _) in dataset(), options in filter_options()) {
        let set = scored(Similarity::Answer, &traces);
        let options = FilterOptions { balanced: true, ..options };
        let selection = select(&set, &options);
        let mut per_class: HashMap<Option<u32>, usize> = HashMap::new();
        for (trace, kept) in set.traces.iter().zip(&selection.kept) {
            if *kept {
                *per_class.entry(trace.class).or_default() += 1;
            }
        }
        prop_assert!(!per_class.contains_key(&None), "balanced never keeps ∅");
        let counts: Vec<usize> = per_class.values().copied().collect();
        prop_assert!(counts.windows(2).all(|w| w[0] == w[1]), "{per_class:?}");
    }

    #[test]
    fn no_nan_reaches_an_output((traces, _) in dataset()) {
        for sim in [Similarity::Answer, Similarity::RougeL, Similarity::Embedding] {
            let set = scored(sim, &traces);
            for trace in &set.traces {
                let row = serde_json::to_string(&score_row(&set, trace)).unwrap();
                prop_assert!(!row.contains("NaN") && !row.contains("inf"), "{row}");
                for metric in Metric::ALL {
                    if let Some(value) = trace.metric(*metric) {
                        prop_assert!(value.is_finite(), "{metric} = {value}");
                        // SentenceSAR is −ln of a sum that may exceed 1; self-certainty is
                        // negative when a top list's probabilities add up to more than 1.
                        let may_be_negative =
                            matches!(metric, Metric::SentenceSar | Metric::SelfCertainty);
                        prop_assert!(may_be_negative || value >= 0.0, "{metric} = {value}");
                    }
                }
                for metric in [Metric::Combo, Metric::SemanticDensity, Metric::Kle] {
                    if let Some(value) = trace.metric(metric) {
                        prop_assert!((0.0..=1.0 + 1e-9).contains(&value), "{metric} = {value}");
                    }
                }
                if let Some(c) = trace.consistency {
                    prop_assert!((0.0..=1.0).contains(&c));
                }
            }
        }
    }

    #[test]
    fn the_filter_keeps_the_most_trustworthy_first(
        (traces, _) in dataset(),
        options in filter_options(),
    ) {
        let set = scored(Similarity::Answer, &traces);
        let options = FilterOptions { balanced: false, ..options };
        let selection = select(&set, &options);
        let metric = options.metric;
        // Within each scope group, every kept trace is at least as trustworthy as every
        // dropped candidate: a lower uncertainty, or a higher confidence.
        let group_of = |trace: &tracesift_core::dataset::TraceScores| match options.scope {
            Scope::PerClass => trace.class.map(Some),
            Scope::Global => Some(None),
        };
        let candidate = |trace: &tracesift_core::dataset::TraceScores| {
            trace.metric(metric).is_some()
                && (options.candidates == Candidates::All || trace.greedy)
                && group_of(trace).is_some()
        };
        for (kept_trace, _) in set.traces.iter().zip(&selection.kept).filter(|(_, k)| **k) {
            prop_assert!(candidate(kept_trace));
            let kept_value = kept_trace.metric(metric).unwrap();
            if let Rule::Threshold(x) = options.rule {
                match metric.direction() {
                    Direction::Uncertainty => prop_assert!(kept_value <= x),
                    Direction::Confidence => prop_assert!(kept_value >= x),
                }
            }
            for (dropped, _) in set.traces.iter().zip(&selection.kept).filter(|(t, k)| !**k && candidate(t)) {
                if group_of(dropped) != group_of(kept_trace) {
                    continue;
                }
                let dropped_value = dropped.metric(metric).unwrap();
                match metric.direction() {
                    Direction::Uncertainty => prop_assert!(kept_value <= dropped_value, "{metric}"),
                    Direction::Confidence => prop_assert!(kept_value >= dropped_value, "{metric}"),
                }
            }
        }
    }
}
