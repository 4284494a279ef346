//! Sentence embeddings by all-MiniLM-L6-v2, computed as sentence-transformers computes them
//! (SPEC §5, `semantic`): the model's own WordPiece tokenizer, at most 256 word-pieces with
//! `[CLS]` and `[SEP]` (254 of the text), no padding, the BERT encoder, the mean of the
//! token states over the attention mask, L2-normalised. Which 254 word-pieces of a longer
//! text is a choice: the first (sentence-transformers' own truncation) or the last (where a
//! reasoning trace states its conclusion).
//!
//! The weights are bytes in, so the same code runs natively and in a Web Worker. The core
//! never sees the model: it takes the vectors like any other embedding.

use safetensors::SafeTensors;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;
use tracesift_core::dataset::Scorer;

mod encoder;
#[cfg(feature = "gpu")]
mod gpu;
#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(feature = "gpu")]
pub use gpu::upload;
#[cfg(not(target_arch = "wasm32"))]
pub use native::{DIR_ENV, ModelBytes, default_dir, load_dir, read_dir};

/// Word-pieces the model reads at most, `[CLS]` and `[SEP]` included
/// (`sentence_bert_config.json`'s `max_seq_length`).
pub const MAX_WORD_PIECES: usize = 256;
/// Dimensions of an embedding.
pub const DIMENSIONS: usize = 384;

/// Which part of a text longer than the model reads is embedded: the settings' own
/// `semantic_part` (`First`: the first 254 word-pieces, sentence-transformers' truncation;
/// `Last`: the last 254, where a reasoning trace states its conclusion).
pub use tracesift_core::settings::SemanticPart as Part;

/// The model's pins (crates/embed/model.json): where `cargo xtask model` fetches it from and
/// the sha256 of every file, shared with scripts/fetch_model.py.
pub const PINS_JSON: &str = include_str!("../model.json");

#[derive(Deserialize)]
struct Pins {
    files: std::collections::BTreeMap<String, String>,
}

/// The pinned sha256 of one of the model's files (`model.safetensors`, `tokenizer.json`,
/// `config.json`, …), lower-case hex.
pub fn pinned_sha256(file: &str) -> Option<String> {
    let pins: Pins = serde_json::from_str(PINS_JSON).ok()?;
    pins.files.get(file).cloned()
}

/// The sha256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Fails unless `digest` is the pinned sha256 of the model's `file`, that is unless the
/// bytes it was computed from are exactly the pinned file: another model (or a truncated
/// download) would give embeddings that look fine and are wrong.
pub fn check_digest(file: &'static str, digest: &[u8; 32]) -> Result<(), EmbedError> {
    let expected = pinned_sha256(file).ok_or(EmbedError::Load {
        what: file,
        message: "it has no pinned sha256".to_owned(),
    })?;
    let found: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    if found == expected {
        Ok(())
    } else {
        Err(EmbedError::Checksum {
            file,
            found,
            expected,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(
        "the model's {file} is not the pinned all-MiniLM-L6-v2 file (sha256 {found}, expected {expected}); fetch it again with `cargo xtask model`"
    )]
    Checksum {
        file: &'static str,
        found: String,
        expected: String,
    },
    #[error("cannot read the model's {what}: {message}")]
    Load { what: &'static str, message: String },
    #[error("cannot tokenize a text: {0}")]
    Tokenize(String),
    /// The GPU encoder failed (callers fall back to the CPU).
    #[cfg(feature = "gpu")]
    #[error("{0}")]
    Gpu(#[from] tracesift_gpu::GpuError),
}

/// `semantic`: takes every text `scorer` holds ([`Scorer::take_texts`]), embeds them with
/// `embed` (one vector per text, in order) and hands each vector back.
pub fn embed_scorer_with(
    scorer: &mut Scorer,
    embed: impl FnOnce(&[&str]) -> Result<Vec<Vec<f32>>, EmbedError>,
) -> Result<(), EmbedError> {
    let texts = scorer.take_texts();
    let strs: Vec<&str> = texts.iter().map(|(_, text)| text.as_str()).collect();
    let embeddings = embed(&strs)?;
    for ((trace_idx, _), embedding) in texts.iter().zip(&embeddings) {
        scorer.set_embedding(*trace_idx, embedding);
    }
    Ok(())
}

/// The model's files, as bytes.
#[derive(Clone, Copy)]
pub struct ModelFiles<'a> {
    /// `model.safetensors` (f32).
    pub weights: &'a [u8],
    /// `tokenizer.json`.
    pub tokenizer: &'a [u8],
    /// `config.json`.
    pub config: &'a [u8],
}

impl<'a> ModelFiles<'a> {
    /// The files' names, in the order of [`ModelFiles::check_digests`]' digests.
    pub const NAMES: [&'static str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

    fn each(&self) -> [&'a [u8]; 3] {
        [self.weights, self.tokenizer, self.config]
    }

    /// The files, once each is found to be the pinned one ([`check_digest`] of its
    /// [`sha256`]).
    pub fn check(self) -> Result<CheckedFiles<'a>, EmbedError> {
        self.check_digests(&self.each().map(sha256))
    }

    /// [`ModelFiles::check`] with each file's sha256 computed by the caller, in the order
    /// of [`ModelFiles::NAMES`] (in the tab, the browser's SubtleCrypto takes 0.3 s over
    /// the weights where [`sha256`] compiled to wasm takes 5 s). The caller vouches that
    /// the digests are of these bytes.
    pub fn check_digests(self, digests: &[[u8; 32]; 3]) -> Result<CheckedFiles<'a>, EmbedError> {
        for (name, digest) in Self::NAMES.into_iter().zip(digests) {
            check_digest(name, digest)?;
        }
        Ok(CheckedFiles(self))
    }
}

/// The model's files, each checked against its pinned sha256: what [`Model::load`] and the
/// GPU upload take, so a caller that loads both checks the files once.
#[derive(Clone, Copy)]
pub struct CheckedFiles<'a>(ModelFiles<'a>);

impl<'a> CheckedFiles<'a> {
    pub fn files(&self) -> ModelFiles<'a> {
        self.0
    }
}

/// The model's shape, from its `config.json`.
fn config(bytes: &[u8]) -> Result<encoder::Config, EmbedError> {
    serde_json::from_slice(bytes).map_err(|error| EmbedError::Load {
        what: "config.json",
        message: error.to_string(),
    })
}

/// The loaded model, ready to embed.
pub struct Model {
    encoder: encoder::Encoder,
    tokenizer: Tokenizer,
    cls: u32,
    sep: u32,
}

impl Model {
    /// Loads the model from its checked files.
    pub fn load(checked: &CheckedFiles<'_>) -> Result<Self, EmbedError> {
        let files = checked.files();
        let config = config(files.config)?;
        let mut tokenizer =
            Tokenizer::from_bytes(files.tokenizer).map_err(|error| EmbedError::Load {
                what: "tokenizer.json",
                message: error.to_string(),
            })?;
        // The shipped tokenizer.json truncates at 128 and pads to 128; sentence-transformers
        // overrides both on every call, and so do we (the cut is made below, per `Part`).
        tokenizer
            .with_truncation(None)
            .map_err(|error| EmbedError::Load {
                what: "tokenizer.json",
                message: error.to_string(),
            })?;
        tokenizer.with_padding(None);
        let token = |name: &str| {
            tokenizer.token_to_id(name).ok_or(EmbedError::Load {
                what: "tokenizer.json",
                message: format!("it has no {name} token"),
            })
        };
        let (cls, sep) = (token("[CLS]")?, token("[SEP]")?);
        let tensors =
            SafeTensors::deserialize(files.weights).map_err(|error| EmbedError::Load {
                what: "model.safetensors",
                message: error.to_string(),
            })?;
        let encoder = encoder::Encoder::new(&config, |name| {
            let view = tensors.tensor(name).ok()?;
            (view.dtype() == safetensors::Dtype::F32).then(|| view.data())
        })?;
        Ok(Self {
            encoder,
            tokenizer,
            cls,
            sep,
        })
    }

    /// The word-pieces the model reads for `text`: `[CLS]`, at most 254 of the text's
    /// (the first or the last), `[SEP]`.
    pub fn word_pieces(&self, text: &str, part: Part) -> Result<Vec<u32>, EmbedError> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|error| EmbedError::Tokenize(error.to_string()))?;
        let ids = encoding.get_ids();
        let keep = MAX_WORD_PIECES - 2;
        let kept = match part {
            Part::First => ids.get(..keep.min(ids.len())),
            Part::Last => ids.get(ids.len().saturating_sub(keep)..),
        }
        .unwrap_or(&[]);
        let mut pieces = Vec::with_capacity(kept.len() + 2);
        pieces.push(self.cls);
        pieces.extend_from_slice(kept);
        pieces.push(self.sep);
        Ok(pieces)
    }

    /// One unit-length embedding per text, in order, on the calling thread. Texts are run
    /// together, packed without padding; attention stays within each text, so a text's
    /// embedding does not depend on its company (to float rounding).
    pub fn embed(&self, texts: &[&str], part: Part) -> Result<Vec<Vec<f32>>, EmbedError> {
        let pieces = texts
            .iter()
            .map(|text| self.word_pieces(text, part))
            .collect::<Result<Vec<_>, _>>()?;
        self.embed_pieces(&pieces)
    }

    /// [`Model::embed`] of texts already cut into word-pieces by [`Model::word_pieces`].
    pub fn embed_pieces(&self, pieces: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let slices: Vec<&[u32]> = pieces.iter().map(Vec::as_slice).collect();
        self.encoder.encode(&slices)
    }
}
