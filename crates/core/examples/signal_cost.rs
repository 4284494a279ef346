//! What the SPEC §5b signals cost on top of the §5 scores, on a canonical JSONL file:
//! `cargo run --release -p tracesift-core --example signal_cost -- FILE` (run by
//! `cargo xtask bench`). Times, on one core and best of 3, the importer, the §5 token sums,
//! the new token signals (DeepConf, self-certainty) over the same parsed traces, and the
//! per-question graph signals for answer similarity (closed forms) and for a similarity
//! matrix (eigen-decompositions) on questions of the file's sizes, then a whole
//! `score_bytes` run for scale.

use std::time::{Duration, Instant};

use tracesift_core::dataset::score_bytes;
use tracesift_core::import::{Format, ImportOptions, TraceBatch, parse_record};
use tracesift_core::score::token_stats;
use tracesift_core::settings::Settings;
use tracesift_core::signals::question::{
    GraphMember, GraphScratch, answer_graph, similarity_graph,
};
use tracesift_core::signals::token::{DEFAULT_WINDOW, TokenScratch, token_signals};
use tracesift_core::trace::TraceBuf;

/// The best of three runs of `work`, which returns a checksum so nothing is optimised away.
fn best_of_three(mut work: impl FnMut() -> f64) -> (Duration, f64) {
    let mut best = Duration::MAX;
    let mut checksum = 0.0;
    for _ in 0..3 {
        let started = Instant::now();
        checksum = std::hint::black_box(work());
        best = best.min(started.elapsed());
    }
    (best, checksum)
}

fn main() -> Result<(), String> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: signal_cost FILE (canonical JSONL)")?;
    let bytes = std::fs::read(&path).map_err(|error| format!("{path}: {error}"))?;
    let megabytes = bytes.len() as f64 / 1e6;
    let lines: Vec<&[u8]> = bytes
        .split(|&byte| byte == b'\n')
        .filter(|line| !line.is_empty())
        .collect();

    let mut traces: Vec<TraceBuf> = Vec::new();
    let mut questions: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let (parse, _) = best_of_three(|| {
        traces.clear();
        let mut batch = TraceBatch::default();
        for line in &lines {
            let options = ImportOptions {
                keep_content: false,
            };
            if parse_record(Format::Canonical, line, options, &mut batch).is_ok() {
                traces.extend(batch.traces().iter().cloned());
            }
        }
        traces.len() as f64
    });
    for trace in &traces {
        *questions
            .entry(trace.question_id.clone().unwrap_or_default())
            .or_default() += 1;
    }
    let n_tokens: usize = traces.iter().map(|trace| trace.logprobs.len()).sum();

    let (sums, _) = best_of_three(|| {
        traces
            .iter()
            .map(|trace| token_stats(trace).sum_logprob)
            .sum()
    });
    let mut scratch = TokenScratch::default();
    let (signals, _) = best_of_three(|| {
        traces
            .iter()
            .map(|trace| {
                token_signals(trace, DEFAULT_WINDOW, &mut scratch)
                    .conf_lowest
                    .unwrap_or(0.0)
            })
            .sum()
    });
    // A short window makes every trace slide (300-token traces never fill DeepConf's 2048).
    let (sliding, _) = best_of_three(|| {
        traces
            .iter()
            .map(|trace| {
                token_signals(trace, 32, &mut scratch)
                    .conf_bottom10
                    .unwrap_or(0.0)
            })
            .sum()
    });

    // Per question: the closed forms of answer similarity, and eigen-decompositions of a
    // similarity matrix, on questions of the file's sizes.
    let sizes: Vec<usize> = questions.values().copied().collect();
    let members: Vec<GraphMember> = (0..sizes.iter().copied().max().unwrap_or(0))
        .map(|idx| GraphMember {
            msp: Some(100.0 + idx as f64),
            ppl: Some(0.3 + idx as f64 * 0.01),
        })
        .collect();
    let mut out = Vec::new();
    let (closed_forms, _) = best_of_three(|| {
        let mut total = 0.0;
        for &size in &sizes {
            let classes: Vec<Option<u32>> = (0..size).map(|idx| Some((idx % 3) as u32)).collect();
            answer_graph(&classes, members.get(..size).unwrap_or(&[]), &mut out);
            total += out.first().and_then(|s| s.kle).unwrap_or(0.0);
        }
        total
    });
    let mut graph_scratch = GraphScratch::default();
    let (eigen, _) = best_of_three(|| {
        let mut total = 0.0;
        for &size in &sizes {
            let weights: Vec<f64> = (0..size * size)
                .map(|cell| {
                    let (row, col) = (cell / size, cell % size);
                    if row == col {
                        1.0
                    } else {
                        0.2 + 0.6 * (((row + col) * 7 % 11) as f64 / 11.0)
                    }
                })
                .collect();
            similarity_graph(
                &weights,
                members.get(..size).unwrap_or(&[]),
                &mut graph_scratch,
                &mut out,
            );
            total += out.first().and_then(|s| s.kle).unwrap_or(0.0);
        }
        total
    });
    let (whole, _) = best_of_three(|| {
        score_bytes(&Settings::default(), &[("bench.jsonl", &bytes)])
            .map_or(0.0, |set| set.traces.len() as f64)
    });

    let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
    let share = |duration: Duration| 100.0 * duration.as_secs_f64() / whole.as_secs_f64();
    println!(
        "signal cost on {path}: {megabytes:.0} MB, {} traces, {n_tokens} tokens, {} questions (one core, best of 3)",
        traces.len(),
        sizes.len()
    );
    println!(
        "  whole score_bytes run (answer similarity): {:.1} ms",
        ms(whole)
    );
    println!("  importer alone:                 {:.1} ms", ms(parse));
    println!(
        "  §5 token sums (msp, ppl, mte):  {:.1} ms ({:.1} % of the run)",
        ms(sums),
        share(sums)
    );
    println!(
        "  §5b token signals, w = 2048:    {:.1} ms ({:.1} % of the run, {:.2} ns/token)",
        ms(signals),
        share(signals),
        signals.as_secs_f64() * 1e9 / n_tokens.max(1) as f64
    );
    println!(
        "  §5b token signals, w = 32:      {:.1} ms ({:.1} % of the run; every trace slides)",
        ms(sliding),
        share(sliding)
    );
    println!(
        "  graph signals, answer (closed): {:.1} ms ({:.1} % of the run)",
        ms(closed_forms),
        share(closed_forms)
    );
    println!(
        "  graph signals, eigen (rouge_l/embedding W): {:.1} ms ({:.1} µs per question)",
        ms(eigen),
        eigen.as_secs_f64() * 1e6 / sizes.len().max(1) as f64
    );
    Ok(())
}
