//! The GPU encoder (crates/gpu's WGSL kernels) against the CPU encoder and
//! sentence-transformers' stored embeddings: within 1e-4, on whatever adapter wgpu finds
//! (Mesa's lavapipe in CI; `cargo xtask test` installs it).
// A panic here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "gpu")]

mod common;

use common::{max_difference, model_dir, reference};
use tracesift_embed::{DIMENSIONS, Model, Part};
use tracesift_gpu::Gpu;

const TOLERANCE: f32 = 1e-4;

struct Loaded {
    model: Model,
    gpu: Gpu,
    encoder: tracesift_gpu::Encoder,
}

fn load() -> Loaded {
    let bytes = tracesift_embed::read_dir(&model_dir()).unwrap();
    let files = bytes.files().check().unwrap();
    let model = Model::load(&files).unwrap();
    let gpu = Gpu::new_blocking().expect("a wgpu adapter (Mesa's lavapipe will do)");
    let encoder = pollster::block_on(tracesift_embed::upload(&gpu, &files)).unwrap();
    Loaded {
        model,
        gpu,
        encoder,
    }
}

fn embed_on_gpu(loaded: &Loaded, texts: &[&str], part: Part) -> (Vec<Vec<f32>>, Vec<usize>) {
    let mut done = Vec::new();
    let embeddings = pollster::block_on(loaded.model.embed_on(
        &loaded.gpu,
        &loaded.encoder,
        texts,
        part,
        &mut |count| {
            done.push(count);
            true
        },
    ))
    .unwrap();
    (embeddings, done)
}

#[test]
fn the_gpu_gives_sentence_transformers_embeddings_as_the_cpu_does() {
    let loaded = load();
    let reference = reference();
    let texts: Vec<&str> = reference.texts.iter().map(|t| t.text.as_str()).collect();
    let (mut off_cpu, mut off_reference) = (0.0f32, 0.0f32);
    for part in [Part::First, Part::Last] {
        let (on_gpu, done) = embed_on_gpu(&loaded, &texts, part);
        assert_eq!(done, vec![texts.len()], "one submission");
        let on_cpu = loaded.model.embed_all(&texts, part, &|_| ()).unwrap();
        for ((text, gpu), cpu) in reference.texts.iter().zip(&on_gpu).zip(&on_cpu) {
            assert_eq!(gpu.len(), DIMENSIONS);
            let difference = max_difference(gpu, cpu);
            off_cpu = off_cpu.max(difference);
            assert!(
                difference <= TOLERANCE,
                "{part:?} of {:?}: GPU off the CPU by {difference}",
                text.text
            );
            let expected = match part {
                Part::First => &text.first_256,
                Part::Last => text.last_256.as_ref().unwrap_or(&text.first_256),
            };
            let difference = max_difference(gpu, expected);
            off_reference = off_reference.max(difference);
            assert!(
                difference <= TOLERANCE,
                "{part:?} of {:?}: GPU off sentence-transformers by {difference}",
                text.text
            );
        }
    }
    eprintln!(
        "GPU ({}): largest difference {off_cpu:e} from the CPU, {off_reference:e} from sentence-transformers",
        loaded.gpu.adapter_name()
    );
}

#[test]
fn texts_beyond_one_submission_are_packed_into_several() {
    let mut loaded = load();
    // Submissions of at most 256 word-pieces: the 8 texts (26 to 222 word-pieces) take 6.
    loaded.encoder = loaded.encoder.with_max_tokens(256);
    assert_eq!(loaded.encoder.max_tokens(), 256);
    let texts: Vec<String> = (0..8)
        .map(|i| {
            (0..12 + 14 * i)
                .map(|w| format!("gene{} {}", (w * 7 + i) % 97, ["up", "down", "none"][w % 3]))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let strs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (on_gpu, done) = embed_on_gpu(&loaded, &strs, Part::Last);
    let pieces: Vec<usize> = strs
        .iter()
        .map(|text| loaded.model.word_pieces(text, Part::Last).unwrap().len())
        .collect();
    // Texts in order, as many as fit in 256 word-pieces each time.
    let mut expected = Vec::new();
    let mut filled = 0;
    for (idx, len) in pieces.iter().enumerate() {
        if filled + len > 256 {
            expected.push(idx);
            filled = 0;
        }
        filled += len;
    }
    expected.push(strs.len());
    assert_eq!(done, expected, "word-pieces per text: {pieces:?}");
    assert!(done.len() >= 4, "{done:?}");
    let on_cpu = loaded.model.embed_all(&strs, Part::Last, &|_| ()).unwrap();
    for (idx, (gpu, cpu)) in on_gpu.iter().zip(&on_cpu).enumerate() {
        let difference = max_difference(gpu, cpu);
        assert!(difference <= TOLERANCE, "text {idx}: off by {difference}");
    }
    // Cancelled after the first submission.
    let mut calls = 0;
    let cancelled = pollster::block_on(loaded.model.embed_on(
        &loaded.gpu,
        &loaded.encoder,
        &strs,
        Part::Last,
        &mut |_| {
            calls += 1;
            false
        },
    ));
    assert_eq!(calls, 1);
    assert!(cancelled.is_err());
}
