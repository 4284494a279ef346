//! Kernel throughput against the CPU path, at several sizes:
//! `cargo run --release -p tracesift-gpu --example bench` (also run by `cargo xtask bench`).
//!
//! Each GPU figure is a whole call as the scorer makes it: packing, upload, the kernel,
//! the read-back. The CPU figures are the production path on the same data: the core's
//! `token_stats` on parsed traces, its bit-parallel `lcs_len`, its f64 embedding cosine.
//! Times are the median of 3 runs after one warm-up.

use std::time::Instant;

use tracesift_core::score::token_stats;
use tracesift_core::similarity::embedding_similarity;
use tracesift_core::trace::TraceBuf;
use tracesift_gpu::{EmbeddingPairs, Gpu, LcsPairs, TokenBatch, cpu_lcs};

fn main() {
    let gpu = match Gpu::new_blocking() {
        Ok(gpu) => gpu,
        Err(error) => {
            eprintln!("bench: {error}");
            std::process::exit(1);
        }
    };
    println!(
        "GPU adapter: {}{}",
        gpu.adapter_name(),
        if gpu.is_software() { " (software)" } else { "" }
    );
    let mut random = Random(42);
    token_sums(&gpu, &mut random);
    rouge_l(&gpu, &mut random);
    embeddings(&gpu, &mut random);
}

struct Random(u64);

impl Random {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Every pair within each of `n_questions` questions of 9 consecutive items.
fn nine_sample_pairs(n_questions: usize) -> Vec<[u32; 2]> {
    let mut pairs = Vec::with_capacity(n_questions * 36);
    for question in 0..n_questions as u32 {
        for i in 0..9 {
            for j in i + 1..9 {
                pairs.push([question * 9 + i, question * 9 + j]);
            }
        }
    }
    pairs
}

/// A GPU call's result, or the end of the benchmark with its error.
fn ok<T>(result: Result<T, tracesift_gpu::GpuError>) -> T {
    result.unwrap_or_else(|error| {
        eprintln!("bench: {error}");
        std::process::exit(1)
    })
}

/// Median seconds of 3 runs after a warm-up.
fn time<T>(mut run: impl FnMut() -> T) -> f64 {
    std::hint::black_box(run());
    let mut seconds: Vec<f64> = (0..3)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(run());
            started.elapsed().as_secs_f64()
        })
        .collect();
    seconds.sort_by(f64::total_cmp);
    seconds[1]
}

fn token_sums(gpu: &Gpu, random: &mut Random) {
    // Up to one flush of the scorer's batch (FLUSH_VALUES = 16M values).
    println!("\ntoken sums (msp, ppl, mte inputs), 300 tokens per trace, top-5:");
    println!(
        "{:>9} {:>12} {:>12} {:>12} {:>12}",
        "traces", "MB (f32)", "GPU GB/s", "CPU GB/s", "GPU/CPU"
    );
    for n_traces in [1_000, 4_000, 8_000] {
        let traces: Vec<TraceBuf> = (0..n_traces)
            .map(|_| {
                let mut trace = TraceBuf {
                    logprobs: (0..300).map(|_| -5.0 * random.next()).collect(),
                    has_logprobs: true,
                    ..TraceBuf::default()
                };
                trace.begin_top_lists();
                for token_idx in 0..300 {
                    let chosen = trace.logprobs[token_idx];
                    trace.top_values.push(chosen);
                    for _ in 0..4 {
                        trace.top_values.push(chosen - 6.0 * random.next());
                    }
                    trace.end_top_list();
                }
                trace
            })
            .collect();
        let mut batch = TokenBatch::default();
        for trace in &traces {
            batch.push_buf(trace);
        }
        let megabytes = ((batch.logprobs.len() + batch.top_values.len()) * 4) as f64 / 1e6;
        let gpu_seconds = time(|| ok(pollster::block_on(gpu.token_sums(&batch))).len());
        let cpu_seconds = time(|| traces.iter().map(token_stats).count());
        println!(
            "{n_traces:>9} {megabytes:>12.1} {:>12.3} {:>12.3} {:>12.2}",
            megabytes / 1e3 / gpu_seconds,
            megabytes / 1e3 / cpu_seconds,
            cpu_seconds / gpu_seconds
        );
    }
}

fn rouge_l(gpu: &Gpu, random: &mut Random) {
    println!("\nROUGE-L LCS, questions of 9 samples (36 pairs each), 400-word vocabulary:");
    println!(
        "{:>9} {:>9} {:>10} {:>14} {:>14} {:>9}",
        "words", "questions", "pairs", "GPU pairs/s", "CPU pairs/s", "GPU/CPU"
    );
    for (words, n_questions) in [(50, 2_000), (300, 500), (1_000, 100), (2_000, 40)] {
        let seqs: Vec<Vec<u64>> = (0..n_questions * 9)
            .map(|_| (0..words).map(|_| (random.next() * 400.0) as u64).collect())
            .collect();
        let input = LcsPairs {
            seqs: seqs.iter().map(Vec::as_slice).collect(),
            pairs: nine_sample_pairs(n_questions),
        };
        let n_pairs = input.pairs.len() as f64;
        let gpu_seconds = time(|| ok(pollster::block_on(gpu.lcs_lengths(&input))).len());
        let cpu_seconds = time(|| cpu_lcs(&input).len());
        println!(
            "{words:>9} {n_questions:>9} {:>10} {:>14.0} {:>14.0} {:>9.2}",
            input.pairs.len(),
            n_pairs / gpu_seconds,
            n_pairs / cpu_seconds,
            cpu_seconds / gpu_seconds
        );
    }
}

fn embeddings(gpu: &Gpu, random: &mut Random) {
    println!("\nembedding dot products, questions of 9 samples (36 pairs each):");
    println!(
        "{:>9} {:>9} {:>10} {:>14} {:>14} {:>9}",
        "dim", "questions", "pairs", "GPU pairs/s", "CPU pairs/s", "GPU/CPU"
    );
    for (dim, n_questions) in [(384, 2_000), (1_024, 1_000), (4_096, 200)] {
        let rows: Vec<Vec<f64>> = (0..n_questions * 9)
            .map(|_| (0..dim).map(|_| random.next() - 0.5).collect())
            .collect();
        let input = EmbeddingPairs {
            dim: dim as u32,
            embeddings: rows.iter().flatten().map(|&v| v as f32).collect(),
            pairs: nine_sample_pairs(n_questions),
        };
        let n_pairs = input.pairs.len() as f64;
        let gpu_seconds = time(|| ok(pollster::block_on(gpu.embedding_dots(&input))).len());
        let cpu_seconds = time(|| {
            input
                .pairs
                .iter()
                .filter_map(|&[a, b]| embedding_similarity(&rows[a as usize], &rows[b as usize]))
                .count()
        });
        println!(
            "{dim:>9} {n_questions:>9} {:>10} {:>14.0} {:>14.0} {:>9.2}",
            input.pairs.len(),
            n_pairs / gpu_seconds,
            n_pairs / cpu_seconds,
            cpu_seconds / gpu_seconds
        );
    }
}
