//! Embeddings against sentence-transformers' own (tests/data/embed/sentence-transformers.json,
//! written by scripts/embed_reference.py with sentence-transformers 6.2.0 and torch 2.15):
//! the same word-pieces, and every dimension within 1e-5, one text at a time and in a
//! padded batch. The weights are fetched by `cargo xtask model` (`cargo xtask test` does).
// A panic here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{max_difference, model_dir, reference};
use tracesift_embed::{DIMENSIONS, EmbedError, Model, Part};

const TOLERANCE: f32 = 1e-5;

fn model() -> Model {
    tracesift_embed::load_dir(&model_dir()).unwrap()
}

#[test]
fn every_reference_text_gets_sentence_transformers_word_pieces_and_embedding() {
    let model = model();
    let reference = reference();
    // Empty, blank, short, unicode, exactly 254 and 255 word-pieces, and far longer.
    assert!(reference.texts.iter().any(|t| t.word_pieces == 0));
    assert!(reference.texts.iter().any(|t| t.word_pieces > 900));
    for text in &reference.texts {
        let pieces = model.word_pieces(&text.text, Part::First).unwrap();
        assert_eq!(pieces, text.input_ids_first_256, "{:?}", text.text);
        let embedding = model.embed(&[&text.text], Part::First).unwrap().remove(0);
        assert_eq!(embedding.len(), DIMENSIONS);
        let difference = max_difference(&embedding, &text.first_256);
        assert!(
            difference <= TOLERANCE,
            "{:?}: off by {difference}",
            text.text
        );
        if let (Some(ids), Some(expected)) = (&text.input_ids_last_256, &text.last_256) {
            assert_eq!(&model.word_pieces(&text.text, Part::Last).unwrap(), ids);
            let embedding = model.embed(&[&text.text], Part::Last).unwrap().remove(0);
            let difference = max_difference(&embedding, expected);
            assert!(
                difference <= TOLERANCE,
                "last part of {:?}: off by {difference}",
                text.text
            );
        } else {
            // A text the model reads whole: both parts are the whole text.
            assert_eq!(
                model.word_pieces(&text.text, Part::Last).unwrap(),
                text.input_ids_first_256
            );
        }
    }
}

#[test]
fn a_padded_batch_gives_each_text_its_own_embedding() {
    let model = model();
    let reference = reference();
    let texts: Vec<&str> = reference.texts.iter().map(|t| t.text.as_str()).collect();
    let embeddings = model.embed(&texts, Part::First).unwrap();
    assert_eq!(embeddings.len(), texts.len());
    for (text, embedding) in reference.texts.iter().zip(&embeddings) {
        let difference = max_difference(embedding, &text.first_256);
        assert!(
            difference <= TOLERANCE,
            "{:?} in a batch: off by {difference}",
            text.text
        );
    }
    assert!(model.embed(&[], Part::First).unwrap().is_empty());
}

#[test]
fn every_core_embeds_each_text_as_alone_and_reports_progress() {
    let model = model();
    let reference = reference();
    let texts: Vec<&str> = reference.texts.iter().map(|t| t.text.as_str()).collect();
    let done = std::sync::Mutex::new(Vec::new());
    let embeddings = model
        .embed_all(&texts, Part::First, &|count| {
            done.lock().unwrap().push(count)
        })
        .unwrap();
    assert_eq!(embeddings.len(), texts.len());
    for (text, embedding) in reference.texts.iter().zip(&embeddings) {
        let difference = max_difference(embedding, &text.first_256);
        assert!(
            difference <= TOLERANCE,
            "{:?}: off by {difference}",
            text.text
        );
    }
    let mut done = done.into_inner().unwrap();
    done.sort_unstable();
    assert_eq!(done.last(), Some(&texts.len()), "{done:?}");
    assert!(
        model
            .embed_all(&[], Part::Last, &|_| ())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_file_that_is_not_the_pinned_one_is_refused() {
    let dir = model_dir();
    let mut bytes = tracesift_embed::read_dir(&dir).unwrap();
    bytes.config.push(b' ');
    let refused = bytes.files().check();
    match refused {
        Err(EmbedError::Checksum { file, .. }) => assert_eq!(file, "config.json"),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a changed config.json was accepted"),
    }
    // Digests computed elsewhere (the browser's SubtleCrypto) are held to the same pins.
    let files = bytes.files();
    let digests = [files.weights, files.tokenizer, files.config].map(tracesift_embed::sha256);
    match files.check_digests(&digests) {
        Err(EmbedError::Checksum { file, .. }) => assert_eq!(file, "config.json"),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("the digest of a changed config.json was accepted"),
    }
    bytes.config.pop();
    let files = bytes.files();
    let digests = [files.weights, files.tokenizer, files.config].map(tracesift_embed::sha256);
    assert!(files.check_digests(&digests).is_ok());
    assert!(files.check().is_ok());
    let mut wrong = digests;
    wrong[1][31] ^= 1;
    match bytes.files().check_digests(&wrong) {
        Err(EmbedError::Checksum { file, .. }) => assert_eq!(file, "tokenizer.json"),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a wrong digest of tokenizer.json was accepted"),
    }
    let missing = tracesift_embed::load_dir(&dir.join("nowhere"));
    let message = missing
        .err()
        .map(|error| error.to_string())
        .unwrap_or_default();
    assert!(message.contains("cargo xtask model"), "{message}");
}
