//! The encoder on a GPU (`gpu` feature): the same model, tokenized the same way, run by
//! crates/gpu's WGSL kernels instead of src/encoder.rs; embeddings agree with the CPU's to 1e-4.

use safetensors::SafeTensors;
use tracesift_gpu::{Encoder, EncoderConfig, Gpu};

use crate::{CheckedFiles, EmbedError, Model, Part};

/// Uploads the model's checked weights to `gpu`.
pub async fn upload(gpu: &Gpu, checked: &CheckedFiles<'_>) -> Result<Encoder, EmbedError> {
    let files = checked.files();
    let config = crate::config(files.config)?;
    let tensors = SafeTensors::deserialize(files.weights).map_err(|error| EmbedError::Load {
        what: "model.safetensors",
        message: error.to_string(),
    })?;
    let dim = |value: usize| u32::try_from(value).unwrap_or(u32::MAX);
    let encoder_config = EncoderConfig {
        vocab: dim(config.vocab_size),
        hidden: dim(config.hidden_size),
        heads: dim(config.num_attention_heads),
        intermediate: dim(config.intermediate_size),
        layers: dim(config.num_hidden_layers),
        max_positions: dim(config.max_position_embeddings.min(crate::MAX_WORD_PIECES)),
        layer_norm_eps: config.layer_norm_eps as f32,
    };
    let f32_bytes = |name: &str| {
        let view = tensors.tensor(name).ok()?;
        (view.dtype() == safetensors::Dtype::F32).then(|| view.data())
    };
    Ok(gpu.encoder(encoder_config, f32_bytes).await?)
}

impl Model {
    /// [`Model::embed`] of many texts on a GPU, in order. `progress` is told how many texts
    /// are done after each submission; when it returns false the run stops
    /// ([`EmbedError::Gpu`] "cancelled").
    pub async fn embed_on(
        &self,
        gpu: &Gpu,
        encoder: &Encoder,
        texts: &[&str],
        part: Part,
        progress: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let pieces = texts
            .iter()
            .map(|text| self.word_pieces(text, part))
            .collect::<Result<Vec<_>, _>>()?;
        let slices: Vec<&[u32]> = pieces.iter().map(Vec::as_slice).collect();
        Ok(gpu.encode(encoder, &slices, progress).await?)
    }
}
