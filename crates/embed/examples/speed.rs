//! Milliseconds per text of the embedding model on this machine: 256-word-piece texts one at
//! a time and in a batch of 32 on one thread, and as `--sim semantic` runs them
//! (`Model::embed_all`) on rayon's threads (`RAYON_NUM_THREADS`, else every core). Usage: cargo run --release -p tracesift-embed --example speed [MODEL_DIR]
//! (run by `cargo xtask bench`, once with RAYON_NUM_THREADS=1; the model comes from
//! `cargo xtask model`).

use std::time::Instant;

use tracesift_embed::{MAX_WORD_PIECES, Model, Part};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/model/all-MiniLM-L6-v2".to_owned());
    let model = tracesift_embed::load_dir(std::path::Path::new(&dir))?;
    // Realistic reasoning text, long enough to fill the model's 256 word-pieces.
    let sentence = "Knocking down the transcription factor reduces repression of the target \
                    gene, so its expression in this cell line should rise; ";
    let text: String = sentence.repeat(12);
    assert_eq!(
        model.word_pieces(&text, Part::First)?.len(),
        MAX_WORD_PIECES,
        "the text fills the model's input"
    );
    let texts: Vec<&str> = vec![text.as_str(); 32];
    let median = |mut times: Vec<f64>| {
        times.sort_by(f64::total_cmp);
        times.get(times.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let time_one = |model: &Model| -> Result<f64, Box<dyn std::error::Error>> {
        let started = Instant::now();
        model.embed(&[&text], Part::First)?;
        Ok(started.elapsed().as_secs_f64() * 1e3)
    };
    let single: Vec<f64> = (0..10)
        .map(|_| time_one(&model))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    model.embed(&texts, Part::First)?;
    let batch = started.elapsed().as_secs_f64() * 1e3 / texts.len() as f64;
    let many: Vec<&str> = vec![text.as_str(); 64];
    let started = Instant::now();
    model.embed_all(&many, Part::First, &|_| ())?;
    let all = started.elapsed().as_secs_f64() * 1e3 / many.len() as f64;
    println!(
        "embedding (all-MiniLM-L6-v2, 256 word-pieces, CPU native): {:.1} ms a text one at a time (median of 10) and {:.1} ms a text in a batch of 32, on one thread; {:.1} ms a text for 64 texts as `--sim semantic` runs them, on {} thread(s)",
        median(single),
        batch,
        all,
        rayon::current_num_threads(),
    );
    Ok(())
}
