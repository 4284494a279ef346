//! Milliseconds per text of the GPU encoder on this machine's adapter: 256-word-piece texts
//! (the CPU bench's), after a warm-up submission; 2,048 texts on a hardware GPU, 4 on a
//! software one (lavapipe needs seconds a text). Usage:
//! cargo run --release -p tracesift-embed --features gpu --example gpu_speed [MODEL_DIR] [TEXTS]
//! (run by `cargo xtask bench`).

use std::time::Instant;

use tracesift_embed::{MAX_WORD_PIECES, Model, Part};
use tracesift_gpu::Gpu;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .unwrap_or_else(|| "target/model/all-MiniLM-L6-v2".to_owned());
    let n_texts: Option<usize> = args.next().map(|n| n.parse()).transpose()?;
    let bytes = tracesift_embed::read_dir(std::path::Path::new(&dir))?;
    let files = bytes.files().check()?;
    let model = Model::load(&files)?;
    let started = Instant::now();
    let gpu = Gpu::new_blocking()?;
    let encoder = pollster::block_on(tracesift_embed::upload(&gpu, &files))?;
    let n_texts = n_texts.unwrap_or(if gpu.is_software() { 4 } else { 2048 });
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let sentence = "Knocking down the transcription factor reduces repression of the target \
                    gene, so its expression in this cell line should rise; ";
    let text: String = sentence.repeat(12);
    assert_eq!(
        model.word_pieces(&text, Part::First)?.len(),
        MAX_WORD_PIECES,
        "the text fills the model's input"
    );
    let embed = |texts: &[&str]| {
        pollster::block_on(model.embed_on(&gpu, &encoder, texts, Part::First, &mut |_| true))
    };
    embed(&[text.as_str()])?;
    let texts: Vec<&str> = vec![text.as_str(); n_texts];
    let started = Instant::now();
    embed(&texts)?;
    let per_text = started.elapsed().as_secs_f64() * 1e3 / n_texts as f64;
    println!(
        "embedding on the GPU ({}; all-MiniLM-L6-v2, 256 word-pieces): {per_text:.2} ms a text over {n_texts} texts ({:.0} texts a second); device start and weights upload {load_ms:.0} ms",
        gpu.adapter_name(),
        1e3 / per_text
    );
    Ok(())
}
