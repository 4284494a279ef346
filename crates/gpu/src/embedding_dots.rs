//! Dot products of embedding pairs within questions, and the CPU reference.

use wgpu::util::DeviceExt;

use crate::{GpuError, read_back};

const MAX_WORKGROUPS_X: u32 = 65_535;

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
    pipeline: wgpu::ComputePipeline,
}

impl Pipeline {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let module = device.create_shader_module(wgpu::include_wgsl!("embedding_dots.wgsl"));
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("embedding_dots"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        Self { pipeline }
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
        let storage = |label: &str, bytes: &[u8]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytes,
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        // Storage buffers may not be empty.
        let embeddings_data = if input.embeddings.is_empty() {
            vec![0.0f32]
        } else {
            input.embeddings.clone()
        };
        let embeddings = storage("embeddings", bytemuck::cast_slice(&embeddings_data));
        let pairs = storage("pairs", bytemuck::cast_slice(&input.pairs));
        let params = storage("params", bytemuck::cast_slice(&[input.dim]));
        let out_bytes = (input.pairs.len() * std::mem::size_of::<f32>()) as u64;
        let dots = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dots"),
            size: out_bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dots_staging"),
            size: out_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("embedding_dots"),
            layout: &self.pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: embeddings.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: pairs.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: dots.as_entire_binding(),
                },
            ],
        });
        let n_pairs =
            u32::try_from(input.pairs.len()).map_err(|_| GpuError("too many pairs".to_owned()))?;
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("embedding_dots"),
        });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("embedding_dots"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(
                n_pairs.min(MAX_WORKGROUPS_X),
                n_pairs.div_ceil(MAX_WORKGROUPS_X),
                1,
            );
        }
        encoder.copy_buffer_to_buffer(&dots, 0, &staging, 0, out_bytes);
        queue.submit([encoder.finish()]);
        let bytes = read_back(device, &staging).await?;
        let values: &[f32] = bytemuck::try_cast_slice(&bytes)
            .map_err(|e| GpuError(format!("bad result buffer: {e}")))?;
        Ok(values.iter().map(|&v| f64::from(v)).collect())
    }
}
