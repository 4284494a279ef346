//! Dot products of embedding pairs within questions, and the CPU reference.

use crate::{GpuError, Kernel};

/// Embeddings of one dimension, row after row, and the pairs whose dot products are wanted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmbeddingPairs {
    pub dim: u32,
    /// `embeddings[i * dim..(i + 1) * dim]` is item `i`.
    pub embeddings: Vec<f32>,
    pub pairs: Vec<[u32; 2]>,
}

/// The CPU reference, in f64.
pub fn cpu_embedding_dots(input: &EmbeddingPairs) -> Vec<f64> {
    let dim = input.dim as usize;
    let row = |item: u32| {
        let start = item as usize * dim;
        input.embeddings.get(start..start + dim).unwrap_or(&[])
    };
    input
        .pairs
        .iter()
        .map(|&[a, b]| {
            row(a)
                .iter()
                .zip(row(b))
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum()
        })
        .collect()
}

pub(crate) struct Pipeline {
    kernel: Kernel,
}

impl Pipeline {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let shader = wgpu::include_wgsl!("embedding_dots.wgsl");
        Self {
            kernel: Kernel::new(device, "embedding_dots", shader),
        }
    }

    pub(crate) async fn run(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        input: &EmbeddingPairs,
    ) -> Result<Vec<f64>, GpuError> {
        if input.pairs.is_empty() {
            return Ok(Vec::new());
        }
        let inputs: [&[u8]; 3] = [
            bytemuck::cast_slice(&input.embeddings),
            bytemuck::cast_slice(&input.pairs),
            bytemuck::cast_slice(std::slice::from_ref(&input.dim)),
        ];
        let out_bytes = (input.pairs.len() * std::mem::size_of::<f32>()) as u64;
        // One workgroup per pair.
        let bytes = self
            .kernel
            .run(device, queue, &inputs, out_bytes, input.pairs.len())
            .await?;
        let values: &[f32] = bytemuck::try_cast_slice(&bytes)
            .map_err(|e| GpuError(format!("bad result buffer: {e}")))?;
        Ok(values.iter().map(|&v| f64::from(v)).collect())
    }
}
