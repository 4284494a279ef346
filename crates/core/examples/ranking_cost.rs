//! What "which signal fits" costs: the ranking of every metric by PRR and AUROC with its
//! bootstrap intervals (`compare::rank_metrics`), on the labelled traces of a canonical
//! JSONL file: `cargo run --release -p tracesift-core --example ranking_cost -- FILE
//! [RESAMPLES]` (run by `cargo xtask bench` on its largest file). One core, best of 3.

use std::time::{Duration, Instant};

use tracesift_core::compare::{DEFAULT_RESAMPLES, rank_metrics};
use tracesift_core::dataset::score_bytes;
use tracesift_core::metrics::Metric;
use tracesift_core::settings::Settings;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: ranking_cost FILE (canonical JSONL) [RESAMPLES]")?;
    let resamples = match args.next() {
        Some(text) => text.parse().map_err(|_| format!("not a number: {text}"))?,
        None => DEFAULT_RESAMPLES,
    };
    let bytes = std::fs::read(&path).map_err(|error| format!("{path}: {error}"))?;
    let settings = Settings::default();
    let set = score_bytes(&settings, &[("bench.jsonl", &bytes)]).map_err(|e| e.to_string())?;
    drop(bytes);

    let mut best = Duration::MAX;
    let mut ranking = None;
    for _ in 0..3 {
        let started = Instant::now();
        ranking = Some(std::hint::black_box(rank_metrics(
            &set,
            resamples,
            settings.seed,
        )));
        best = best.min(started.elapsed());
    }
    let ranking = ranking.ok_or("no run")?;
    println!(
        "ranking on {path}: {} labelled traces × {} metrics × {resamples} resamples: {:.2} s \
         (one core, best of 3; best metric {})",
        ranking.n,
        Metric::ALL.len(),
        best.as_secs_f64(),
        ranking.best.map_or("none", |metric| metric.name()),
    );
    Ok(())
}
