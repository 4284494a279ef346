//! End-to-end checks of the core on small inputs whose scores are worked out by hand.

// Helpers in test crates may panic: a panic here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tracesift_core::dataset::{ScoredSet, score_bytes};
use tracesift_core::filter::{FilterOptions, random_sample, select, unfiltered};
use tracesift_core::settings::{Candidates, Metric, Rule, Scope, Settings, Similarity};

fn score(settings: &Settings, input: &str) -> ScoredSet {
    score_bytes(settings, &[("input.jsonl", input.as_bytes())]).unwrap()
}

fn close(actual: Option<f64>, expected: f64) -> bool {
    actual.is_some_and(|a| (a - expected).abs() <= 1e-12 * expected.abs().max(1.0))
}

#[track_caller]
fn assert_close(actual: Option<f64>, expected: f64) {
    assert!(
        close(actual, expected),
        "expected {expected}, got {actual:?}"
    );
}

fn by_id<'a>(set: &'a ScoredSet, trace_id: &str) -> &'a tracesift_core::dataset::TraceScores {
    set.traces.iter().find(|t| t.trace_id == trace_id).unwrap()
}

const THREE_CLASSES: &str = "up=up,upregulated,a;down=down,downregulated,b;none=none,no change,c";

#[test]
fn scores_by_hand() {
    let input = r#"{"question_id":"q1","trace_id":"g","greedy":true,"text":"ER stress. Final answer: Upregulated","logprobs":[-0.1,-0.2,-0.3],"top_logprobs":[[-0.1,-2.4],[-0.2,-1.7],[-0.3,-1.4]]}
{"question_id":"q1","trace_id":"s1","text":"Final answer: A","logprobs":[-0.5,-0.5]}
{"question_id":"q1","trace_id":"s2","text":"<answer>down</answer>","logprobs":[-1.0,-9999,NaN,-Infinity,0.5]}
{"question_id":"q1","trace_id":"s3","text":"I am not sure","logprobs":[-2.0]}
"#;
    let settings = Settings {
        classes: THREE_CLASSES.into(),
        ..Settings::default()
    };
    let set = score(&settings, input);
    assert_eq!(set.traces.len(), 4);
    let g = by_id(&set, "g");
    // msp = 0.6, ppl = 0.2; classes: g up, s1 up (alias a), s2 down, s3 ∅.
    assert_close(g.msp, 0.6);
    assert_close(g.ppl, 0.2);
    // Token entropies over the renormalised top-2: H(p) for p = softmax([ℓ1, ℓ2]).
    let h = |a: f64, b: f64| {
        let (pa, pb) = (a.exp() / (a.exp() + b.exp()), b.exp() / (a.exp() + b.exp()));
        -(pa * pa.ln() + pb * pb.ln())
    };
    assert_close(g.mte, (h(-0.1, -2.4) + h(-0.2, -1.7) + h(-0.3, -1.4)) / 3.0);
    // consistency(g) = mean over s1 (same), s2 (differs), s3 (∅) = 1/3.
    assert_close(g.consistency, 1.0 / 3.0);
    assert_close(g.cocoa_ppl(), 0.2 * (2.0 / 3.0));
    assert_close(g.cocoa_msp(), 0.6 * (2.0 / 3.0));
    assert_close(g.cocoa_mte(), g.mte.unwrap() * (2.0 / 3.0));
    assert_eq!(set.class_name(g.class), Some("up"));
    let s1 = by_id(&set, "s1");
    assert_eq!(set.class_name(s1.class), Some("up"));
    assert_eq!(s1.mte, None, "no top_logprobs → mte is null");
    assert_eq!(s1.cocoa_mte(), None);
    // s2: only −1.0 is valid; −9999, NaN, −∞ and 0.5 are dropped and counted.
    let s2 = by_id(&set, "s2");
    assert_eq!((s2.n_tokens, s2.invalid_tokens), (1, 4));
    assert_close(s2.msp, 1.0);
    assert_close(s2.consistency, 0.0);
    assert_eq!(set.class_name(s2.class), Some("down"));
    // ∅ is consistent with nothing, not even itself.
    let s3 = by_id(&set, "s3");
    assert_eq!(s3.class, None);
    assert_close(s3.consistency, 0.0);
    assert_close(s3.cocoa_ppl(), 2.0);
    assert_eq!(set.report.invalid_tokens, 4);
    // Majority agreement: answered classes up, up, down (∅ does not count) → 2/3.
    assert_close(set.questions[0].majority_agreement, 2.0 / 3.0);
    assert_eq!(set.report.classes.get("∅"), Some(&1));
    assert_eq!(set.report.classes.get("up"), Some(&2));
}

#[test]
fn nulls_exactly_where_the_spec_says() {
    let input = r#"{"question_id":"alone","answer":"up","logprobs":[-0.3]}
{"question_id":"pair","answer":"up"}
{"question_id":"pair","answer":"up","logprobs":[]}
"#;
    let set = score(&Settings::default(), input);
    let alone = &set.traces[0];
    // A question with one trace has no consistency, so no CoCoA either.
    assert_eq!(alone.consistency, None);
    assert_eq!(alone.cocoa_ppl(), None);
    assert_close(alone.ppl, 0.3);
    // Without log-probs msp/ppl are null, never 0; consistency is still defined.
    for trace in &set.traces[1..] {
        assert_eq!((trace.msp, trace.ppl, trace.mte), (None, None, None));
        assert_close(trace.consistency, 1.0);
        assert_eq!(trace.cocoa_msp(), None);
    }
    // Default trace ids: <question_id>#<index within question>.
    let ids: Vec<&str> = set.traces.iter().map(|t| t.trace_id.as_str()).collect();
    assert_eq!(ids, ["alone#0", "pair#0", "pair#1"]);
}

#[test]
fn rouge_l_consistency_by_hand() {
    // Word lists: a = [the cat sat on the mat], b = [the cat is on a mat], c = [dogs bark].
    // LCS(a,b) = 4 → F1 = 8/12; LCS(a,c) = LCS(b,c) = 0.
    let input = r#"{"question_id":"q","trace_id":"a","text":"The cat sat on the mat."}
{"question_id":"q","trace_id":"b","text":"the CAT is on a mat"}
{"question_id":"q","trace_id":"c","text":"Dogs bark!"}
"#;
    let settings = Settings {
        sim: Similarity::RougeL,
        ..Settings::default()
    };
    let set = score(&settings, input);
    assert_close(by_id(&set, "a").consistency, (8.0 / 12.0) / 2.0);
    assert_close(by_id(&set, "b").consistency, (8.0 / 12.0) / 2.0);
    assert_close(by_id(&set, "c").consistency, 0.0);
}

#[test]
fn embedding_consistency_by_hand() {
    // sim = (1 + cos)/2: a·b orthogonal → 0.5, a·c identical direction → 1, b·c → 0.5.
    // A trace without an embedding has no consistency and is left out of the others' means.
    let input = r#"{"question_id":"q","trace_id":"a","answer":"up","embedding":[1,0]}
{"question_id":"q","trace_id":"b","answer":"up","embedding":[0,3]}
{"question_id":"q","trace_id":"c","answer":"up","embedding":[2,0]}
{"question_id":"q","trace_id":"d","answer":"up"}
{"question_id":"q","trace_id":"e","answer":"up","embedding":[1,2,3]}
"#;
    let settings = Settings {
        sim: Similarity::Embedding,
        ..Settings::default()
    };
    let set = score(&settings, input);
    assert_close(by_id(&set, "a").consistency, (0.5 + 1.0) / 2.0);
    assert_close(by_id(&set, "b").consistency, (0.5 + 0.5) / 2.0);
    assert_close(by_id(&set, "c").consistency, (1.0 + 0.5) / 2.0);
    assert_eq!(by_id(&set, "d").consistency, None);
    // A different dimension is a bad line, reported with the line that set the dimension.
    assert_eq!(set.traces.len(), 4);
    assert_eq!(set.report.skipped.len(), 1);
    assert_eq!(set.report.skipped[0].line, 5);
    assert_eq!(
        set.report.skipped[0].reason,
        "embedding has 3 dimensions, but the one on line 1 has 2"
    );
}

/// Nine answered traces in two classes; with answer similarity many CoCoA scores are 0.
const TIES: &str = r#"{"question_id":"q1","trace_id":"q1-c","answer":"up","logprobs":[-0.3]}
{"question_id":"q1","trace_id":"q1-a","answer":"up","logprobs":[-0.3]}
{"question_id":"q1","trace_id":"q1-b","answer":"up","logprobs":[-0.1]}
{"question_id":"q2","trace_id":"q2-a","answer":"down","logprobs":[-0.2]}
{"question_id":"q2","trace_id":"q2-b","answer":"down","logprobs":[-0.4]}
{"question_id":"q3","trace_id":"q3-a","answer":"down","logprobs":[-0.5]}
{"question_id":"q3","trace_id":"q3-b","answer":"up","logprobs":[-0.6]}
{"question_id":"q4","trace_id":"q4-a","answer":"down","logprobs":[-0.7]}
{"question_id":"q4","trace_id":"q4-b","answer":"down","logprobs":[-0.05],"greedy":true}
"#;

fn kept_ids(set: &ScoredSet, options: &FilterOptions) -> Vec<String> {
    let selection = select(set, options);
    set.traces
        .iter()
        .zip(&selection.kept)
        .filter(|(_, kept)| **kept)
        .map(|(t, _)| t.trace_id.clone())
        .collect()
}

fn options(rule: Rule) -> FilterOptions {
    FilterOptions {
        metric: Metric::CocoaPpl,
        rule,
        scope: Scope::PerClass,
        candidates: Candidates::All,
        balanced: false,
    }
}

#[test]
fn ties_at_zero_are_broken_by_ppl_then_trace_id() {
    let set = score(&Settings::default(), TIES);
    // cocoa_ppl: q1-* and q2-* and q4-* are 0 (all agree); q3-a, q3-b are ppl × 1.
    // up: q1-b (0, ppl .1), q1-a (0, .3), q1-c (0, .3), q3-b (.6) → keep ⌈0.5·4⌉ = 2:
    //     q1-b, then q1-a before q1-c by trace_id (same score, same ppl).
    // down: q4-b (0, .05), q2-a (0, .2), q2-b (0, .4), q4-a (0, .7), q3-a (.5) → ⌈2.5⌉ = 3.
    let kept = kept_ids(&set, &options(Rule::Keep(0.5)));
    assert_eq!(kept, ["q1-a", "q1-b", "q2-a", "q2-b", "q4-b"]);
    let selection = select(&set, &options(Rule::Keep(0.5)));
    // Both cut-offs fall inside a tie group at exactly 0.
    assert!(
        selection
            .groups
            .iter()
            .all(|g| g.tie_at_cutoff && g.cutoff == Some(0.0))
    );
}

#[test]
fn rules_scopes_candidates_and_balance() {
    let set = score(&Settings::default(), TIES);
    // Threshold 0 keeps every exact zero (7 traces), none of q3.
    assert_eq!(kept_ids(&set, &options(Rule::Threshold(0.0))).len(), 7);
    // Top 1 per class.
    assert_eq!(kept_ids(&set, &options(Rule::Top(1))), ["q1-b", "q4-b"]);
    // Global top 3 ignores classes: q4-b (ppl .05), q1-b (.1), q2-a (.2).
    let global = FilterOptions {
        scope: Scope::Global,
        ..options(Rule::Top(3))
    };
    assert_eq!(kept_ids(&set, &global), ["q1-b", "q2-a", "q4-b"]);
    // Greedy candidates: only q4-b is greedy.
    let greedy = FilterOptions {
        candidates: Candidates::Greedy,
        ..options(Rule::Keep(1.0))
    };
    assert_eq!(kept_ids(&set, &greedy), ["q4-b"]);
    // Balanced: up keeps 2, down 3 → both cut to 2 by the same order.
    let balanced = FilterOptions {
        balanced: true,
        ..options(Rule::Keep(0.5))
    };
    assert_eq!(kept_ids(&set, &balanced), ["q1-a", "q1-b", "q2-a", "q4-b"]);
    // Global + balanced: split the global top 5 by class, cut to the smaller class.
    // Global order: q4-b .05, q1-b .1, q2-a .2, q1-a .3, q1-c .3 → up 3, down 2 → 2 each.
    let global_balanced = FilterOptions {
        scope: Scope::Global,
        balanced: true,
        ..options(Rule::Top(5))
    };
    assert_eq!(
        kept_ids(&set, &global_balanced),
        ["q1-a", "q1-b", "q2-a", "q4-b"]
    );
}

#[test]
fn random_baseline_is_seeded_and_matched_in_size() {
    let set = score(&Settings::default(), TIES);
    let opts = options(Rule::Keep(0.5));
    let first = random_sample(&set, &opts, 5, 42);
    assert_eq!(first.iter().filter(|k| **k).count(), 5);
    assert_eq!(first, random_sample(&set, &opts, 5, 42));
    assert_ne!(first, random_sample(&set, &opts, 5, 43));
    // The unfiltered arm is the whole pool: what a sample as large as the pool selects.
    let everything = unfiltered(&set, &opts);
    assert_eq!(everything, random_sample(&set, &opts, usize::MAX, 7));
    assert_eq!(everything.iter().filter(|k| **k).count(), 9);
}

#[test]
fn bad_lines_are_reported_and_good_lines_still_scored() {
    let input = concat!(
        "{\"question_id\":\"q\",\"answer\":\"up\",\"logprobs\":[-0.1]}\n",
        "{\"question_id\":\"q\",\"answer\":\"up\",\"logprobs\":\"oops\"}\n",
        "{\"question_id\":\"q\",\"answer\":\"up\",\"tokens\":[\"a\",\"b\"],\"logprobs\":[-0.1]}\n",
        "{\"question_id\":\"q\",\"answer\":\"up\",\"logprobs\":[-0.1],\"top_logprobs\":[[-0.1],[-0.2]]}\n",
        "{\"question_id\":\"q\",\"answer\":\"up\",\"logprobs\":[-0.1\n",
        "\u{0}\u{1}\u{2}binary\u{ff}\n",
        "{\"trace_id\":\"x\",\"answer\":\"up\"}\n",
        "{\"question_id\":\"q\"}\n",
        "[1,2]\n",
        "{\"question_id\":\"q\",\"answer\":\"down\",\"logprobs\":[-0.2]}\n",
    );
    let set = score(&Settings::default(), input);
    assert_eq!(set.traces.len(), 2);
    assert_eq!(set.report.lines, 10);
    let skipped: Vec<(u64, &str)> = set
        .report
        .skipped
        .iter()
        .map(|s| (s.line, s.reason.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [
            (
                2,
                "field `logprobs`: expected an array of numbers, found a string"
            ),
            (3, "`tokens` has 2 entries but `logprobs` has 1"),
            (4, "`top_logprobs` has 2 entries but `logprobs` has 1"),
            (5, "invalid JSON: EOF while parsing a list (column 50)"),
            (6, "not JSON: the line starts with `···binary\u{ff}`"),
            (7, "missing required field `question_id`"),
            (8, "needs a `text` or an `answer` field; it has neither"),
            (9, "the record must be an object, found an array"),
        ]
    );
}

#[test]
fn unknown_formats_and_empty_files_say_so() {
    let set = score(&Settings::default(), "{\"hello\":1}\n{\"world\":2}\n");
    assert!(set.traces.is_empty());
    assert_eq!(set.report.skipped.len(), 2);
    assert!(
        set.report.skipped[0]
            .reason
            .starts_with("not a trace in any known format")
    );
    assert_eq!(set.report.format, None);

    let empty = score(&Settings::default(), "");
    assert_eq!(empty.report.skipped[0].reason, "the file is empty");
    let blank = score(&Settings::default(), "\n  \n");
    assert_eq!(blank.report.lines, 2);
    assert!(blank.traces.is_empty());
}

#[test]
fn question_field_and_sample_suffix_group_samples() {
    let input = r#"{"question_id":"q1__s0","answer":"up","meta":{"q":"A"}}
{"question_id":"q1__s1","answer":"up","meta":{"q":"A"}}
{"question_id":"q2__s0","answer":"down","meta":{"q":"B"}}
"#;
    let suffix = Settings {
        sample_suffix: Some(r"__s\d+$".into()),
        ..Settings::default()
    };
    let set = score(&suffix, input);
    assert_eq!(
        set.questions
            .iter()
            .map(|q| q.id.as_str())
            .collect::<Vec<_>>(),
        ["q1", "q2"]
    );
    assert_close(set.traces[0].consistency, 1.0);
    let field = Settings {
        question_field: Some("meta.q".into()),
        ..Settings::default()
    };
    let set = score(&field, input);
    assert_eq!(
        set.questions
            .iter()
            .map(|q| q.id.as_str())
            .collect::<Vec<_>>(),
        ["A", "B"]
    );
}

#[test]
fn rouge_l_compares_texts_only() {
    // Two traces with answers but no text: both texts are empty, so ROUGE-L is 0 (SPEC §5),
    // even though the answers are equal.
    let input =
        "{\"question_id\":\"q\",\"answer\":\"x\"}\n{\"question_id\":\"q\",\"answer\":\"x\"}\n";
    let settings = Settings {
        sim: Similarity::RougeL,
        ..Settings::default()
    };
    let set = score(&settings, input);
    assert_close(set.traces[0].consistency, 0.0);
    assert_close(set.traces[1].consistency, 0.0);
}

#[test]
fn near_parallel_embeddings_keep_full_precision() {
    // 1 − consistency is tiny here; rounding the vectors to f32 moved it by ~3e-6 relative.
    let a = [0.6236461f64, -0.8631614, -0.5399615];
    let b = [0.6309129f64, -0.8902245, -0.5099518];
    let input = format!(
        "{{\"question_id\":\"q\",\"answer\":\"a\",\"logprobs\":[-1],\"embedding\":{a:?}}}\n\
         {{\"question_id\":\"q\",\"answer\":\"a\",\"logprobs\":[-1],\"embedding\":{b:?}}}\n"
    );
    let settings = Settings {
        sim: Similarity::Embedding,
        ..Settings::default()
    };
    let set = score(&settings, &input);
    let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    let norms =
        (a.iter().map(|x| x * x).sum::<f64>() * b.iter().map(|x| x * x).sum::<f64>()).sqrt();
    let expected_inconsistency = 1.0 - (1.0 + dot / norms) / 2.0;
    // msp = 1, so cocoa_msp is the inconsistency itself (≈ 2.7409518e-4).
    let got = set.traces[0].cocoa_msp().unwrap();
    assert!(
        (got - expected_inconsistency).abs() <= 1e-9 * expected_inconsistency,
        "{got} vs {expected_inconsistency}"
    );
}

#[test]
fn eval_covers_every_labelled_trace_whatever_the_candidates() {
    use tracesift_core::evaluate::evaluate;
    let input = r#"{"question_id":"q","trace_id":"g","greedy":true,"answer":"up","label":"up","logprobs":[-1]}
{"question_id":"q","trace_id":"s","answer":"down","label":"up","logprobs":[-2]}
"#;
    let set = score(&Settings::default(), input);
    let greedy = FilterOptions {
        candidates: Candidates::Greedy,
        ..options(Rule::Keep(1.0))
    };
    let report = evaluate(&set, &greedy);
    // Both labelled traces count; the greedy candidates only shape kept-vs-dropped.
    assert_eq!(report.n, 2);
    assert_close(report.accuracy, 0.5);
    let msp = &report
        .metrics
        .0
        .iter()
        .find(|(m, _)| *m == Metric::Msp)
        .unwrap()
        .1;
    assert_close(msp.auroc, 1.0);
    assert_eq!(msp.kept, 1);
    assert_close(msp.kept_accuracy, 1.0);
}

#[test]
fn a_canonical_export_scores_again_as_it_was_scored() {
    use tracesift_core::export::{ExportOptions, write_selection};
    use tracesift_core::settings::{ExportFormat, FormatChoice};
    // A chat response whose top lists hold −∞ (written as the −9999 sentinel, so each list
    // keeps its two entries and mte is unchanged), and one with no text at all.
    let input = r#"{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Final answer: up"},"logprobs":{"content":[{"token":"Final answer: up","logprob":-0.5,"top_logprobs":[{"token":"a","logprob":-0.5},{"token":"b","logprob":-Infinity}]}]},"finish_reason":"stop"}]}
{"id":"c2","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":null},"logprobs":{"content":[{"token":"x","logprob":-1.5,"top_logprobs":[{"token":"x","logprob":-1.5},{"token":"y","logprob":-0.3}]}]},"finish_reason":"tool_calls"}]}
"#;
    let set = score(&Settings::default(), input);
    assert_eq!(set.traces.len(), 2);
    let chosen = vec![true; set.traces.len()];
    let read = |record: &tracesift_core::trace::RecordRef| {
        let start = record.offset as usize;
        Ok(input.as_bytes()[start..start + record.len as usize].to_vec())
    };
    let options = ExportOptions {
        format: ExportFormat::Canonical,
        ..ExportOptions::default()
    };
    let mut out = Vec::new();
    let warnings = write_selection(&set, &chosen, &options, read, &mut out).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let exported = String::from_utf8(out).unwrap();
    let settings = Settings {
        format: FormatChoice::Fixed(tracesift_core::import::Format::Canonical),
        ..Settings::default()
    };
    let again = score(&settings, &exported);
    assert!(
        again.report.skipped.is_empty(),
        "{:?}",
        again.report.skipped
    );
    assert_eq!(again.traces.len(), 2);
    for (before, after) in set.traces.iter().zip(&again.traces) {
        assert_eq!(before.n_tokens, after.n_tokens);
        assert_eq!(before.msp, after.msp);
        assert_eq!(before.mte, after.mte);
    }
    assert_eq!(set.traces[0].mte, Some(0.0));
}

/// `semantic` with stand-in vectors: the core takes whatever the embedding model gives.
fn semantic_run(input: &str, embed: impl Fn(&str) -> Option<Vec<f32>>) -> ScoredSet {
    use tracesift_core::dataset::{ScoreOptions, Scorer};
    let settings = Settings {
        sim: Similarity::Semantic,
        ..Settings::default()
    };
    let mut scorer = Scorer::new(ScoreOptions::from_settings(&settings).unwrap());
    scorer.begin_file("input.jsonl");
    scorer.feed(input.as_bytes());
    scorer.end_file();
    for (trace_idx, text) in scorer.take_texts() {
        if let Some(embedding) = embed(&text) {
            scorer.set_embedding(trace_idx, &embedding);
        }
    }
    assert!(scorer.take_texts().is_empty(), "texts are taken once");
    scorer.finish()
}

#[test]
fn semantic_compares_the_embeddings_of_the_texts_and_exports_them() {
    use tracesift_core::export::{ExportOptions, write_selection};
    use tracesift_core::settings::{ExportFormat, FormatChoice};
    // A trace without text embeds the empty text.
    let input = r#"{"question_id":"q","trace_id":"a","text":"one","answer":"up"}
{"question_id":"q","trace_id":"b","text":"two","answer":"up","embedding":[9,9,9]}
{"question_id":"q","trace_id":"c","answer":"up"}
"#;
    let vector = |text: &str| match text {
        "one" => Some(vec![1.0f32, 0.0]),
        "two" => Some(vec![0.1, 0.7]),
        "" => Some(vec![0.5, 0.5]),
        _ => None,
    };
    let set = semantic_run(input, vector);
    let sim = |a: [f64; 2], b: [f64; 2]| {
        let dot = a[0] * b[0] + a[1] * b[1];
        let norm = |v: [f64; 2]| (v[0] * v[0] + v[1] * v[1]).sqrt();
        (1.0 + dot / (norm(a) * norm(b))) / 2.0
    };
    let (one, two, empty) = (
        [1.0, 0.0],
        [f64::from(0.1f32), f64::from(0.7f32)],
        [0.5, 0.5],
    );
    assert_close(
        by_id(&set, "a").consistency,
        (sim(one, two) + sim(one, empty)) / 2.0,
    );
    assert_close(
        by_id(&set, "c").consistency,
        (sim(empty, one) + sim(empty, two)) / 2.0,
    );
    assert!(set.report.notes.is_empty(), "{:?}", set.report.notes);
    assert_eq!(set.embeddings[1], Some(vec![0.1f32, 0.7]));

    // The canonical export carries the computed embeddings (replacing the record's own), so
    // an `embedding` run on it scores exactly as the `semantic` run did.
    let read = |record: &tracesift_core::trace::RecordRef| {
        let start = record.offset as usize;
        Ok(input.as_bytes()[start..start + record.len as usize].to_vec())
    };
    let mut out = Vec::new();
    let options = ExportOptions {
        format: ExportFormat::Canonical,
        ..ExportOptions::default()
    };
    let chosen = vec![true; set.traces.len()];
    let warnings = write_selection(&set, &chosen, &options, read, &mut out).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let exported = String::from_utf8(out).unwrap();
    assert_eq!(exported.matches("\"embedding\"").count(), 3, "{exported}");
    assert!(!exported.contains("[9,9,9]"), "{exported}");
    let again = score(
        &Settings {
            sim: Similarity::Embedding,
            format: FormatChoice::Fixed(tracesift_core::import::Format::Canonical),
            ..Settings::default()
        },
        &exported,
    );
    for (before, after) in set.traces.iter().zip(&again.traces) {
        assert_eq!(before.consistency, after.consistency, "{}", before.trace_id);
        assert_eq!(
            before.signals.eigv, after.signals.eigv,
            "{}",
            before.trace_id
        );
    }
}

#[test]
fn texts_left_unembedded_leave_consistency_null_with_a_note() {
    let input = r#"{"question_id":"q","trace_id":"a","text":"one","answer":"up"}
{"question_id":"q","trace_id":"b","text":"two","answer":"up"}
{"question_id":"q","trace_id":"c","text":"three","answer":"up"}
"#;
    let set = semantic_run(input, |text| (text != "two").then(|| vec![1.0, 0.0]));
    assert_close(by_id(&set, "a").consistency, 1.0);
    assert_eq!(by_id(&set, "b").consistency, None);
    assert_eq!(set.embeddings[1], None);
    let note = &set.report.notes[0];
    assert!(note.what.contains("not embedded"), "{}", note.what);
    assert_eq!((note.count, note.lines.clone()), (1, vec![2]));
}
