//! What the embedding tests share: the model's folder, sentence-transformers' stored
//! embeddings (tests/data/embed/sentence-transformers.json, written by
//! scripts/embed_reference.py with sentence-transformers 6.2.0 and torch 2.15), and the
//! largest difference of two embeddings.
// A panic here is a failed test.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Deserialize)]
pub struct Reference {
    pub texts: Vec<Text>,
}

#[derive(Deserialize)]
pub struct Text {
    pub text: String,
    pub word_pieces: usize,
    pub input_ids_first_256: Vec<u32>,
    pub first_256: Vec<f32>,
    #[serde(default)]
    pub input_ids_last_256: Option<Vec<u32>>,
    #[serde(default)]
    pub last_256: Option<Vec<f32>>,
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `$TRACESIFT_MODEL_DIR`, else where `cargo xtask model` puts the model.
pub fn model_dir() -> PathBuf {
    std::env::var_os(tracesift_embed::DIR_ENV).map_or_else(
        || root().join("target/model/all-MiniLM-L6-v2"),
        PathBuf::from,
    )
}

pub fn reference() -> Reference {
    let path = root().join("tests/data/embed/sentence-transformers.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

pub fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
