//! The GPU kernels against the CPU reference, on a real device (Mesa lavapipe in CI):
//! a test that finds no adapter fails, it is never skipped.
// Helpers in test crates may panic: a panic here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use proptest::prelude::*;
use tracesift_gpu::{Gpu, TokenBatch, TokenStats};

fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        Gpu::new_blocking().expect("a GPU adapter (install mesa-vulkan-drivers for lavapipe)")
    })
}

fn gpu_sums(batch: &TokenBatch) -> Vec<TokenStats> {
    pollster::block_on(gpu().token_sums(batch)).unwrap()
}

/// Within 1e-4 relative to the magnitude summed (SPEC's GPU tolerance).
fn close(gpu: f64, cpu: f64, magnitude: f64) -> bool {
    (gpu - cpu).abs() <= 1e-4 * magnitude.max(1e-3)
}

#[track_caller]
fn assert_agree(batch: &TokenBatch) {
    let gpu = gpu_sums(batch);
    let cpu = batch.cpu_stats();
    assert_eq!(gpu.len(), cpu.len());
    for (trace_idx, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
        let start = batch.trace_offsets[trace_idx] as usize;
        let end = batch.trace_offsets[trace_idx + 1] as usize;
        let magnitude: f64 = batch.logprobs[start..end]
            .iter()
            .filter(|v| v.is_finite())
            .map(|v| f64::from(v.abs()))
            .sum();
        assert_eq!(
            (g.n_valid, g.n_invalid),
            (c.n_valid, c.n_invalid),
            "trace {trace_idx}"
        );
        assert!(
            close(g.sum_logprob, c.sum_logprob, magnitude),
            "trace {trace_idx}: {g:?} vs {c:?}"
        );
        match (g.sum_entropy, c.sum_entropy) {
            (Some(ge), Some(ce)) => {
                assert!(close(ge, ce, ce.abs()), "trace {trace_idx}: {g:?} vs {c:?}")
            }
            (None, None) => {}
            other => panic!("trace {trace_idx}: entropy {other:?}"),
        }
    }
}

#[test]
fn adapter_is_named() {
    assert!(!gpu().adapter_name().is_empty());
    eprintln!("adapter: {}", gpu().adapter_name());
}

#[test]
fn sums_and_counts_by_hand() {
    let mut batch = TokenBatch::default();
    // Valid: −0.5, −1.5 → Σ −2; invalid: −9999 (sentinel) and NaN.
    batch.push_trace(&[-0.5, -9999.0, -1.5, f64::NAN], None);
    // Uniform top-2 on both tokens → entropy ln 2 each.
    batch.push_trace(&[-0.7, -0.7], Some(&[vec![-0.7, -0.7], vec![-0.7, -0.7]]));
    batch.push_trace(&[], None);
    let sums = gpu_sums(&batch);
    assert_eq!((sums[0].n_valid, sums[0].n_invalid), (2, 2));
    assert!((sums[0].sum_logprob + 2.0).abs() < 1e-6);
    assert_eq!(sums[0].sum_entropy, None, "no top-k: mte is null");
    assert!((sums[1].sum_entropy.unwrap() - 2.0 * 2f64.ln()).abs() < 1e-5);
    assert_eq!((sums[2].n_valid, sums[2].n_invalid), (0, 0));
}

#[test]
fn ten_thousand_token_traces_stay_within_tolerance() {
    let mut batch = TokenBatch::default();
    let mut state = 7u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for _ in 0..3 {
        let logprobs: Vec<f64> = (0..10_000).map(|_| -6.0 * next()).collect();
        let tops: Vec<Vec<f64>> = logprobs
            .iter()
            .map(|&v| vec![v, v - 1.0 - next(), v - 3.0])
            .collect();
        batch.push_trace(&logprobs, Some(&tops));
    }
    assert_agree(&batch);
}

fn raw_logprob() -> impl Strategy<Value = f64> {
    prop_oneof![
        10 => -8.0f64..=0.0,
        1 => Just(-9999.0),
        1 => Just(f64::NAN),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(5e-7),
        1 => Just(0.5),
    ]
}

fn trace() -> impl Strategy<Value = (Vec<f64>, Option<Vec<Vec<f64>>>)> {
    prop::collection::vec(
        (raw_logprob(), prop::collection::vec(raw_logprob(), 0..6)),
        0..40,
    )
    .prop_flat_map(|tokens| {
        let logprobs: Vec<f64> = tokens.iter().map(|(v, _)| *v).collect();
        let tops: Vec<Vec<f64>> = tokens.into_iter().map(|(_, top)| top).collect();
        (Just(logprobs), prop::option::of(Just(tops)))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn gpu_equals_cpu_on_ragged_batches(traces in prop::collection::vec(trace(), 1..32)) {
        let mut batch = TokenBatch::default();
        for (logprobs, tops) in &traces {
            batch.push_trace(logprobs, tops.as_deref());
        }
        assert_agree(&batch);
    }
}

#[test]
fn long_traces_and_more_segments_than_one_dispatch_dimension() {
    // 100,000 tokens: 25 segments of one trace, added on the host.
    let mut batch = TokenBatch::default();
    let long: Vec<f64> = (0..100_000).map(|i| -((i % 97) as f64) / 10.0).collect();
    batch.push_trace(&long, None);
    // 70,000 one-token traces: more segments than the 65,535 workgroups of one dimension.
    for i in 0..70_000 {
        batch.push_trace(&[-((i % 13) as f64) / 4.0], None);
    }
    assert_agree(&batch);
    let sums = gpu_sums(&batch);
    assert_eq!(sums[0].n_valid, 100_000);
    assert_eq!(sums.len(), 70_001);
}

/// All pairs (i < j) within each question of `sizes` consecutive items.
fn question_pairs(sizes: &[u32]) -> Vec<[u32; 2]> {
    let mut pairs = Vec::new();
    let mut first = 0;
    for &size in sizes {
        for i in first..first + size {
            for j in i + 1..first + size {
                pairs.push([i, j]);
            }
        }
        first += size;
    }
    pairs
}

mod embeddings {
    use super::*;
    use tracesift_gpu::{EmbeddingPairs, cpu_embedding_dots};

    #[track_caller]
    fn assert_dots_agree(input: &EmbeddingPairs) {
        let gpu = pollster::block_on(gpu().embedding_dots(input)).unwrap();
        let cpu = cpu_embedding_dots(input);
        let dim = input.dim as usize;
        let norm = |item: u32| {
            let start = item as usize * dim;
            input.embeddings[start..start + dim]
                .iter()
                .map(|v| f64::from(*v).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        assert_eq!(gpu.len(), cpu.len());
        for ((g, c), &[a, b]) in gpu.iter().zip(&cpu).zip(&input.pairs) {
            // Relative to |a|·|b|: that is the scale cos is measured against.
            let scale = (norm(a) * norm(b)).max(1e-12);
            assert!((g - c).abs() <= 1e-4 * scale, "pair ({a}, {b}): {g} vs {c}");
        }
    }

    #[test]
    fn dots_by_hand() {
        let input = EmbeddingPairs {
            dim: 3,
            embeddings: vec![1.0, 2.0, 3.0, -1.0, 0.5, 2.0, 0.0, 0.0, 0.0],
            pairs: vec![[0, 1], [0, 2], [1, 1]],
        };
        // 1·−1 + 2·0.5 + 3·2 = 6; anything · 0 = 0; |b|² = 1 + 0.25 + 4 = 5.25.
        let dots = pollster::block_on(gpu().embedding_dots(&input)).unwrap();
        assert_eq!(dots, vec![6.0, 0.0, 5.25]);
    }

    #[test]
    fn thirty_two_samples_of_4096_dimensions() {
        let mut state = 11u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32
        };
        let input = EmbeddingPairs {
            dim: 4096,
            embeddings: (0..32 * 4096).map(|_| next()).collect(),
            pairs: question_pairs(&[32]),
        };
        assert_eq!(input.pairs.len(), 496);
        assert_dots_agree(&input);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn gpu_dots_equal_cpu(
            dim in 1u32..300,
            sizes in prop::collection::vec(1u32..33, 1..6),
            seed in any::<u64>(),
        ) {
            let n_items: u32 = sizes.iter().sum();
            let mut state = seed;
            let embeddings = (0..n_items * dim)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u32 << 24) as f32) * 2.0 - 1.0
                })
                .collect();
            assert_dots_agree(&EmbeddingPairs { dim, embeddings, pairs: question_pairs(&sizes) });
        }
    }
}

mod lcs {
    use super::*;
    use tracesift_gpu::{LcsPairs, cpu_lcs};

    #[track_caller]
    fn assert_lcs_agree(seqs: &[Vec<u64>], pairs: Vec<[u32; 2]>) {
        let input = LcsPairs {
            seqs: seqs.iter().map(Vec::as_slice).collect(),
            pairs,
        };
        let gpu = pollster::block_on(gpu().lcs_lengths(&input)).unwrap();
        // Integers: exactly equal, not merely close.
        assert_eq!(gpu, cpu_lcs(&input));
    }

    #[test]
    fn lcs_by_hand() {
        // "a b c b d a b" vs "b d c a b a": LCS 4 (b c a b, among others).
        let seqs = [
            vec![1, 2, 3, 2, 4, 1, 2],
            vec![2, 4, 3, 1, 2, 1],
            vec![],
            vec![9, 9, 9],
        ];
        let input = LcsPairs {
            seqs: seqs.iter().map(Vec::as_slice).collect(),
            pairs: vec![[0, 1], [1, 0], [0, 2], [0, 3], [3, 3], [0, 0]],
        };
        let lcs = pollster::block_on(gpu().lcs_lengths(&input)).unwrap();
        assert_eq!(lcs, vec![4, 4, 0, 0, 3, 7]);
    }

    #[test]
    fn ten_thousand_words_cross_many_windows_and_limbs() {
        // Words from a small vocabulary so that nearly every position matches: 10,000
        // rows of 79 limbs take dozens of windows. The 9,000-word side has 282 limbs and
        // goes to the CPU; both must come out exact.
        let mut state = 3u64;
        let mut word = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 59) % 7
        };
        let seqs: Vec<Vec<u64>> = [10_000, 2_500, 2_517, 9_000]
            .iter()
            .map(|&len| (0..len).map(|_| word()).collect())
            .collect();
        assert_lcs_agree(&seqs, question_pairs(&[4]));
    }

    fn words() -> impl Strategy<Value = Vec<u64>> {
        prop_oneof![
            1 => Just(Vec::new()),
            1 => prop::collection::vec(0u64..4, 1..2),
            6 => prop::collection::vec(0u64..12, 0..200),
            1 => prop::collection::vec(any::<u64>(), 0..70),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn gpu_lcs_equals_cpu(
            questions in prop::collection::vec(prop::collection::vec(words(), 1..33), 1..5),
        ) {
            let sizes: Vec<u32> = questions.iter().map(|q| q.len() as u32).collect();
            let seqs: Vec<Vec<u64>> = questions.into_iter().flatten().collect();
            assert_lcs_agree(&seqs, question_pairs(&sizes));
        }
    }
}

/// The whole pipeline: a GPU-backed run of the core's scorer against its CPU run.
mod scorer {
    use super::*;
    use tracesift_core::dataset::{ScoreOptions, ScoredSet, Scorer};
    use tracesift_core::settings::{Metric, Settings, Similarity};

    fn file(n_questions: usize, with_embedding: bool) -> String {
        let mut state = 5u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let vocabulary = [
            "gene", "up", "down", "the", "knock", "cell", "so", "none", "is",
        ];
        let mut out = String::new();
        for question in 0..n_questions {
            // Questions of 1 to 32 samples, one of them without any text.
            for sample in 0..(question * 7 % 32 + 1) {
                let n_tokens = (next() * 60.0) as usize;
                let logprobs: Vec<String> = (0..n_tokens)
                    .map(|_| format!("{:.6}", -5.0 * next()))
                    .collect();
                let text: Vec<&str> = (0..n_tokens)
                    .map(|_| vocabulary[(next() * 9.0) as usize])
                    .collect();
                let text = if sample == 3 {
                    String::new()
                } else {
                    text.join(" ")
                };
                // Every other trace has top-k lists, so the token signals that stay on the
                // CPU (DeepConf, self-certainty) are exercised beside the GPU's sums.
                let top = if sample % 2 == 0 {
                    let lists: Vec<String> = logprobs
                        .iter()
                        .map(|value| format!("[{value},{:.6},-4.5]", -6.0 * next()))
                        .collect();
                    format!(r#","top_logprobs":[{}]"#, lists.join(","))
                } else {
                    String::new()
                };
                let embedding = if with_embedding && sample != 2 {
                    let values: Vec<String> =
                        (0..16).map(|_| format!("{:.5}", next() - 0.5)).collect();
                    format!(r#","embedding":[{}]"#, values.join(","))
                } else {
                    String::new()
                };
                out.push_str(&format!(
                    r#"{{"question_id":"q{question}","sample_idx":{sample},"text":"{text}","answer":"up","logprobs":[{}]{top}{embedding}}}"#,
                    logprobs.join(",")
                ));
                out.push('\n');
            }
        }
        out
    }

    fn run(bytes: &[u8], sim: Similarity, on_gpu: bool) -> ScoredSet {
        let settings = Settings {
            sim,
            // A window shorter than most traces, so the sliding windows are exercised.
            window: 16,
            ..Settings::default()
        };
        let mut scorer = Scorer::new(ScoreOptions::from_settings(&settings).unwrap());
        if on_gpu {
            scorer.defer_token_stats();
        }
        scorer.feed(bytes);
        if !on_gpu {
            return scorer.finish();
        }
        let tokens = scorer.take_tokens().unwrap();
        let stats = pollster::block_on(gpu().token_sums(&tokens.batch)).unwrap();
        scorer.apply_token_stats(&tokens, &stats);
        let sims = pollster::block_on(gpu().pair_similarities(&scorer.pair_work())).unwrap();
        scorer.finish_with(Some(sims))
    }

    fn assert_close(gpu: Option<f64>, cpu: Option<f64>, what: &str) {
        match (gpu, cpu) {
            (Some(g), Some(c)) => assert!(
                (g - c).abs() <= 1e-4 * c.abs().max(1e-3),
                "{what}: {g} vs {c}"
            ),
            (g, c) => assert_eq!(g, c, "{what}"),
        }
    }

    #[test]
    fn gpu_run_matches_cpu_run() {
        for (sim, with_embedding) in [(Similarity::RougeL, false), (Similarity::Embedding, true)] {
            let bytes = file(40, with_embedding);
            let cpu = run(bytes.as_bytes(), sim, false);
            let gpu = run(bytes.as_bytes(), sim, true);
            assert_eq!(gpu.traces.len(), cpu.traces.len());
            assert!(cpu.traces.len() > 300);
            for metric in [
                Metric::ConfLowest,
                Metric::Eigv,
                Metric::SentenceSar,
                Metric::Combo,
            ] {
                assert!(
                    cpu.traces.iter().any(|t| t.metric(metric).is_some()),
                    "{metric} is computed somewhere"
                );
            }
            assert_eq!(gpu.report.invalid_tokens, cpu.report.invalid_tokens);
            for (g, c) in gpu.traces.iter().zip(&cpu.traces) {
                assert_eq!(
                    (g.n_tokens, g.invalid_tokens),
                    (c.n_tokens, c.invalid_tokens)
                );
                assert_close(g.msp, c.msp, "msp");
                assert_close(g.ppl, c.ppl, "ppl");
                assert_close(g.mte, c.mte, "mte");
                // The token signals are computed on the CPU while parsing, also when the
                // sums wait for the GPU: the same bits.
                for metric in [
                    Metric::ConfMean,
                    Metric::ConfTail,
                    Metric::ConfBottom10,
                    Metric::ConfLowest,
                    Metric::SelfCertainty,
                ] {
                    assert_eq!(g.metric(metric), c.metric(metric), "{metric}");
                }
                for &metric in Metric::ALL {
                    assert_close(g.metric(metric), c.metric(metric), metric.name());
                }
                if sim == Similarity::RougeL {
                    // Exact LCS: the same f64 bits.
                    assert_eq!(g.consistency, c.consistency, "{}", c.trace_id);
                } else {
                    assert_close(g.consistency, c.consistency, &c.trace_id);
                }
            }
        }
    }
}
