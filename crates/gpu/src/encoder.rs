//! A BERT encoder (all-MiniLM-L6-v2's shape: post-norm layers, erf GELU, mean pooling) on
//! the GPU, from word-pieces to unit-length sentence embeddings.
//!
//! The weights are uploaded once ([`Gpu::encoder`]); texts then go up as word-piece ids,
//! packed one after another without padding, a chunk of at most [`Encoder::max_tokens`]
//! word-pieces per submission, and come back as one embedding each. Per layer: the fused
//! query/key/value product, attention within each text, the output product with its
//! residual, layer norm, the GELU product, the second product with its residual, layer
//! norm: 7 dispatches, 44 for six layers with the embedding sum, its norm and the pooling.
//! All arithmetic is f32, as on the CPU; the result agrees with it to about 1e-6.

use wgpu::util::DeviceExt;

use crate::{Gpu, GpuError, MAX_WORKGROUPS_X, compute_pipeline, read_back, whole_buffer_entries};

/// The encoder's shape, as in a BERT `config.json`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderConfig {
    pub vocab: u32,
    pub hidden: u32,
    pub heads: u32,
    pub intermediate: u32,
    pub layers: u32,
    pub max_positions: u32,
    pub layer_norm_eps: f32,
}

/// The attention kernel's head width (attention.wgsl's `HEAD_DIM`).
const HEAD_DIM: u32 = 32;
/// Queries per attention workgroup (attention.wgsl's `QUERIES`).
const QUERIES: u32 = 64;
/// Rows and columns of a matmul workgroup's tile (matmul.wgsl's `TILE`).
const TILE: u32 = 64;
/// Word-pieces per submission at most: about 90 GFLOP, a fraction of a second on a laptop's
/// GPU (browsers reset a device whose work runs for seconds).
const CHUNK_TOKENS: u32 = 4096;

const NO_EPILOGUE: u32 = 0;
const GELU: u32 = 1;
const RESIDUAL: u32 = 2;

struct Layer {
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

struct Linear {
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
    n: u32,
    k: u32,
}

struct Norm {
    gamma: wgpu::Buffer,
    beta: wgpu::Buffer,
}

struct Pipelines {
    embed: wgpu::ComputePipeline,
    norm: wgpu::ComputePipeline,
    matmul: wgpu::ComputePipeline,
    attention: wgpu::ComputePipeline,
    pool: wgpu::ComputePipeline,
}

/// Per-chunk buffers, sized for [`Encoder::max_tokens`] word-pieces.
struct Activations {
    pieces: wgpu::Buffer,
    texts: wgpu::Buffer,
    blocks: wgpu::Buffer,
    states: wgpu::Buffer,
    qkv: wgpu::Buffer,
    context: wgpu::Buffer,
    attended: wgpu::Buffer,
    intermediate: wgpu::Buffer,
    embeddings: wgpu::Buffer,
    staging: wgpu::Buffer,
}

/// The encoder's weights on a device, its pipelines and its buffers.
pub struct Encoder {
    config: EncoderConfig,
    pipelines: Pipelines,
    word: wgpu::Buffer,
    position: wgpu::Buffer,
    token_type: wgpu::Buffer,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    activations: Activations,
    max_tokens: u32,
}

impl Encoder {
    /// Word-pieces one submission holds at most (a text has at most `max_positions`).
    pub fn max_tokens(&self) -> u32 {
        self.max_tokens
    }

    /// Submits fewer word-pieces at a time (never fewer than one text's), for progress
    /// reported more often.
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = max_tokens.clamp(self.config.max_positions, self.max_tokens);
        self
    }
}

/// A weight's bytes by name: all of it, which must be `values` f32 (`Exact`), or its first
/// `values` f32 (`Leading`: a table's first rows). A missing or misshapen weight is an
/// error naming it.
enum Take {
    Exact,
    Leading,
}

fn weight_bytes<'w>(
    tensor: &impl Fn(&str) -> Option<&'w [u8]>,
    name: &str,
    values: u64,
    take: Take,
) -> Result<&'w [u8], GpuError> {
    let bytes = tensor(name).ok_or_else(|| GpuError(format!("the model has no tensor {name}")))?;
    let wanted = values as usize * 4;
    match take {
        Take::Exact if bytes.len() == wanted => Ok(bytes),
        Take::Leading if bytes.len() >= wanted => Ok(bytes.get(..wanted).unwrap_or(bytes)),
        _ => Err(GpuError(format!(
            "the model's {name} holds {} bytes, {} {values} f32",
            bytes.len(),
            match take {
                Take::Exact => "not",
                Take::Leading => "fewer than",
            }
        ))),
    }
}

/// A read-only storage buffer holding `contents`.
fn storage_buffer(device: &wgpu::Device, label: &str, contents: &[u8]) -> wgpu::Buffer {
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents,
        usage: wgpu::BufferUsages::STORAGE,
    })
}

impl Gpu {
    /// Uploads an encoder's weights. `tensor` gives each weight's bytes (little-endian f32,
    /// as a safetensors file stores them) by its Hugging Face BERT name, e.g.
    /// `encoder.layer.0.attention.self.query.weight`; a missing or misshapen one is an
    /// error naming it, as is a device that refuses the kernels or the buffers.
    pub async fn encoder<'w>(
        &self,
        config: EncoderConfig,
        tensor: impl Fn(&str) -> Option<&'w [u8]>,
    ) -> Result<Encoder, GpuError> {
        let (built, error) = self
            .capturing_errors(|| self.build_encoder(config, tensor))
            .await;
        match error {
            Some(error) => Err(GpuError(format!("cannot set the encoder up: {error}"))),
            None => built,
        }
    }

    /// Runs `work` with the device's validation and out-of-memory errors captured (wgpu's
    /// default is a panic) and returns the first.
    async fn capturing_errors<T>(&self, work: impl FnOnce() -> T) -> (T, Option<wgpu::Error>) {
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let out = work();
        let memory_error = memory.pop().await;
        let validation_error = validation.pop().await;
        (out, memory_error.or(validation_error))
    }

    fn build_encoder<'w>(
        &self,
        config: EncoderConfig,
        tensor: impl Fn(&str) -> Option<&'w [u8]>,
    ) -> Result<Encoder, GpuError> {
        if config.heads == 0 || config.hidden != config.heads * HEAD_DIM {
            return Err(GpuError(format!(
                "the encoder runs heads of {HEAD_DIM} values; this model's are {} / {}",
                config.hidden, config.heads
            )));
        }
        let device = &self.device;
        let upload = |name: &str, values: u64| -> Result<wgpu::Buffer, GpuError> {
            let bytes = weight_bytes(&tensor, name, values, Take::Exact)?;
            Ok(storage_buffer(device, name, bytes))
        };
        let hidden = u64::from(config.hidden);
        let intermediate = u64::from(config.intermediate);
        let norm = |prefix: &str| -> Result<Norm, GpuError> {
            Ok(Norm {
                gamma: upload(&format!("{prefix}.LayerNorm.weight"), hidden)?,
                beta: upload(&format!("{prefix}.LayerNorm.bias"), hidden)?,
            })
        };
        let linear = |prefix: &str, n: u32, k: u32| -> Result<Linear, GpuError> {
            Ok(Linear {
                weight: upload(&format!("{prefix}.weight"), u64::from(n) * u64::from(k))?,
                bias: upload(&format!("{prefix}.bias"), u64::from(n))?,
                n,
                k,
            })
        };
        let mut layers = Vec::with_capacity(config.layers as usize);
        for layer in 0..config.layers {
            let prefix = format!("encoder.layer.{layer}");
            layers.push(Layer {
                qkv: self.fused_qkv(&prefix, config, &tensor)?,
                attention_out: linear(
                    &format!("{prefix}.attention.output.dense"),
                    config.hidden,
                    config.hidden,
                )?,
                attention_norm: norm(&format!("{prefix}.attention.output"))?,
                intermediate: linear(
                    &format!("{prefix}.intermediate.dense"),
                    config.intermediate,
                    config.hidden,
                )?,
                output: linear(
                    &format!("{prefix}.output.dense"),
                    config.hidden,
                    config.intermediate,
                )?,
                output_norm: norm(&format!("{prefix}.output"))?,
            });
        }
        // The first rows of a table: position embeddings up to the longest text read,
        // token type 0 (every word-piece's).
        let first_rows = |name: &str, rows: u32| -> Result<wgpu::Buffer, GpuError> {
            let bytes = weight_bytes(&tensor, name, u64::from(rows) * hidden, Take::Leading)?;
            Ok(storage_buffer(device, name, bytes))
        };
        let limits = device.limits();
        let widest_row = 4 * u64::from(config.intermediate.max(3 * config.hidden));
        let max_tokens = [
            u64::from(CHUNK_TOKENS),
            limits.max_storage_buffer_binding_size / widest_row,
            limits.max_buffer_size / widest_row,
            u64::from(MAX_WORKGROUPS_X),
        ]
        .into_iter()
        .min()
        .unwrap_or(0) as u32;
        if max_tokens < config.max_positions {
            return Err(GpuError(format!(
                "the device's buffers hold {max_tokens} word-pieces, fewer than one text's {}",
                config.max_positions
            )));
        }
        Ok(Encoder {
            config,
            pipelines: Pipelines {
                embed: compute_pipeline(
                    device,
                    "encoder embed",
                    wgpu::include_wgsl!("encoder/embed.wgsl"),
                ),
                norm: compute_pipeline(
                    device,
                    "encoder norm",
                    wgpu::include_wgsl!("encoder/norm.wgsl"),
                ),
                matmul: compute_pipeline(
                    device,
                    "encoder matmul",
                    wgpu::include_wgsl!("encoder/matmul.wgsl"),
                ),
                attention: compute_pipeline(
                    device,
                    "encoder attention",
                    wgpu::include_wgsl!("encoder/attention.wgsl"),
                ),
                pool: compute_pipeline(
                    device,
                    "encoder pool",
                    wgpu::include_wgsl!("encoder/pool.wgsl"),
                ),
            },
            word: upload(
                "embeddings.word_embeddings.weight",
                u64::from(config.vocab) * hidden,
            )?,
            position: first_rows(
                "embeddings.position_embeddings.weight",
                config.max_positions,
            )?,
            token_type: first_rows("embeddings.token_type_embeddings.weight", 1)?,
            embedding_norm: norm("embeddings")?,
            layers,
            activations: activations(device, max_tokens, hidden, intermediate),
            max_tokens,
        })
    }

    /// The query, key and value products of one layer as one [3·hidden, hidden] product.
    fn fused_qkv<'w>(
        &self,
        prefix: &str,
        config: EncoderConfig,
        tensor: &impl Fn(&str) -> Option<&'w [u8]>,
    ) -> Result<Linear, GpuError> {
        let hidden = config.hidden as usize;
        let mut weight = Vec::with_capacity(3 * hidden * hidden * 4);
        let mut bias = Vec::with_capacity(3 * hidden * 4);
        for part in ["query", "key", "value"] {
            for (suffix, values, out) in [
                ("weight", (hidden * hidden) as u64, &mut weight),
                ("bias", hidden as u64, &mut bias),
            ] {
                let name = format!("{prefix}.attention.self.{part}.{suffix}");
                out.extend_from_slice(weight_bytes(tensor, &name, values, Take::Exact)?);
            }
        }
        Ok(Linear {
            weight: storage_buffer(&self.device, "qkv weight", &weight),
            bias: storage_buffer(&self.device, "qkv bias", &bias),
            n: 3 * config.hidden,
            k: config.hidden,
        })
    }

    /// Unit-length embeddings of texts given as word-pieces (each `[CLS] … [SEP]`, at most
    /// the model's `max_positions`), in order. `progress` is told how many texts are done
    /// after each submission; when it returns false the run stops with an error.
    pub async fn encode(
        &self,
        encoder: &Encoder,
        texts: &[&[u32]],
        progress: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Vec<Vec<f32>>, GpuError> {
        let config = encoder.config;
        if let Some(text) = texts
            .iter()
            .find(|text| text.is_empty() || text.len() > config.max_positions as usize)
        {
            return Err(GpuError(format!(
                "a text of {} word-pieces (the encoder takes 1 to {})",
                text.len(),
                config.max_positions
            )));
        }
        if let Some(&id) = texts
            .iter()
            .flat_map(|text| text.iter())
            .find(|&&id| id >= config.vocab)
        {
            return Err(GpuError(format!(
                "word-piece {id} is outside the vocabulary of {}",
                config.vocab
            )));
        }
        let mut out = Vec::with_capacity(texts.len());
        let mut start = 0;
        while start < texts.len() {
            let mut end = start;
            let mut tokens = 0;
            while let Some(text) = texts.get(end) {
                if tokens + text.len() > encoder.max_tokens as usize {
                    break;
                }
                tokens += text.len();
                end += 1;
            }
            let chunk = texts.get(start..end).unwrap_or(&[]);
            out.extend(self.encode_chunk(encoder, chunk).await?);
            start = end;
            if !progress(end) {
                return Err(GpuError("cancelled".to_owned()));
            }
        }
        Ok(out)
    }

    async fn encode_chunk(
        &self,
        encoder: &Encoder,
        texts: &[&[u32]],
    ) -> Result<Vec<Vec<f32>>, GpuError> {
        let (out_bytes, error) = self
            .capturing_errors(|| self.submit_chunk(encoder, texts))
            .await;
        if let Some(error) = error {
            return Err(GpuError(format!("the encoder failed: {error}")));
        }
        let bytes = read_back(&self.device, &encoder.activations.staging, out_bytes).await?;
        let values: &[f32] = bytemuck::try_cast_slice(&bytes)
            .map_err(|error| GpuError(format!("bad embedding buffer: {error}")))?;
        Ok(values
            .chunks_exact(encoder.config.hidden as usize)
            .map(<[f32]>::to_vec)
            .collect())
    }

    /// Uploads one chunk's word-pieces and submits its dispatches; returns the bytes of
    /// embeddings to read back.
    fn submit_chunk(&self, encoder: &Encoder, texts: &[&[u32]]) -> u64 {
        let config = encoder.config;
        let buffers = &encoder.activations;
        let mut pieces: Vec<[u32; 2]> = Vec::new();
        let mut spans: Vec<[u32; 2]> = Vec::with_capacity(texts.len());
        let mut blocks: Vec<[u32; 4]> = Vec::new();
        for text in texts {
            let start = pieces.len() as u32;
            let len = text.len() as u32;
            pieces.extend(
                text.iter()
                    .zip(0u32..)
                    .map(|(&id, position)| [id, position]),
            );
            spans.push([start, len]);
            for first_query in (start..start + len).step_by(QUERIES as usize) {
                blocks.push([start, len, first_query, 0]);
            }
        }
        let tokens = pieces.len() as u32;
        let n_texts = texts.len() as u32;
        let queue = &self.queue;
        queue.write_buffer(&buffers.pieces, 0, bytemuck::cast_slice(&pieces));
        queue.write_buffer(&buffers.texts, 0, bytemuck::cast_slice(&spans));
        queue.write_buffer(&buffers.blocks, 0, bytemuck::cast_slice(&blocks));

        let device = &self.device;
        let uniform = |values: [u32; 4]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("encoder params"),
                contents: bytemuck::cast_slice(&values),
                usage: wgpu::BufferUsages::UNIFORM,
            })
        };
        let eps = config.layer_norm_eps.to_bits();
        let token_params = uniform([tokens, config.hidden, 0, 0]);
        let norm_params = uniform([tokens, config.hidden, eps, 0]);
        let attention_params = uniform([
            config.hidden,
            (1.0 / (HEAD_DIM as f32).sqrt()).to_bits(),
            0,
            0,
        ]);
        let pool_params = uniform([n_texts, config.hidden, 0, 0]);
        let matmul_params =
            |linear: &Linear, epilogue: u32| uniform([tokens, linear.n, linear.k, epilogue]);

        let bind = |pipeline: &wgpu::ComputePipeline, buffers: &[&wgpu::Buffer]| {
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipeline.get_bind_group_layout(0),
                entries: &whole_buffer_entries(buffers.iter().copied()),
            })
        };
        let rows_grid = |rows: u32| {
            (
                rows.min(MAX_WORKGROUPS_X),
                rows.div_ceil(MAX_WORKGROUPS_X),
                1,
            )
        };
        let pipelines = &encoder.pipelines;
        // Every dispatch of the chunk: its pipeline, bind group and grid.
        let mut dispatches: Vec<(&wgpu::ComputePipeline, wgpu::BindGroup, (u32, u32, u32))> =
            Vec::new();
        let norm_dispatch = |norm: &Norm, rows: &wgpu::Buffer| {
            (
                &pipelines.norm,
                bind(
                    &pipelines.norm,
                    &[&norm.gamma, &norm.beta, rows, &norm_params],
                ),
                rows_grid(tokens),
            )
        };
        let mut matmul_params_kept = Vec::new();
        let mut matmul_dispatch = |linear: &Linear,
                                   epilogue: u32,
                                   x: &wgpu::Buffer,
                                   residual: &wgpu::Buffer,
                                   y: &wgpu::Buffer| {
            let params = matmul_params(linear, epilogue);
            let group = bind(
                &pipelines.matmul,
                &[x, &linear.weight, &linear.bias, residual, y, &params],
            );
            matmul_params_kept.push(params);
            (
                &pipelines.matmul,
                group,
                (linear.n.div_ceil(TILE), tokens.div_ceil(TILE), 1),
            )
        };
        dispatches.push((
            &pipelines.embed,
            bind(
                &pipelines.embed,
                &[
                    &encoder.word,
                    &encoder.position,
                    &encoder.token_type,
                    &buffers.pieces,
                    &buffers.states,
                    &token_params,
                ],
            ),
            rows_grid(tokens),
        ));
        dispatches.push(norm_dispatch(&encoder.embedding_norm, &buffers.states));
        for layer in &encoder.layers {
            dispatches.push(matmul_dispatch(
                &layer.qkv,
                NO_EPILOGUE,
                &buffers.states,
                &buffers.states,
                &buffers.qkv,
            ));
            dispatches.push((
                &pipelines.attention,
                bind(
                    &pipelines.attention,
                    &[
                        &buffers.qkv,
                        &buffers.blocks,
                        &buffers.context,
                        &attention_params,
                    ],
                ),
                (blocks.len() as u32, config.heads, 1),
            ));
            dispatches.push(matmul_dispatch(
                &layer.attention_out,
                RESIDUAL,
                &buffers.context,
                &buffers.states,
                &buffers.attended,
            ));
            dispatches.push(norm_dispatch(&layer.attention_norm, &buffers.attended));
            dispatches.push(matmul_dispatch(
                &layer.intermediate,
                GELU,
                &buffers.attended,
                &buffers.attended,
                &buffers.intermediate,
            ));
            dispatches.push(matmul_dispatch(
                &layer.output,
                RESIDUAL,
                &buffers.intermediate,
                &buffers.attended,
                &buffers.states,
            ));
            dispatches.push(norm_dispatch(&layer.output_norm, &buffers.states));
        }
        dispatches.push((
            &pipelines.pool,
            bind(
                &pipelines.pool,
                &[
                    &buffers.states,
                    &buffers.texts,
                    &buffers.embeddings,
                    &pool_params,
                ],
            ),
            rows_grid(n_texts),
        ));

        let mut commands = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("encoder"),
        });
        {
            let mut pass = commands.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("encoder"),
                timestamp_writes: None,
            });
            for (pipeline, group, (x, y, z)) in &dispatches {
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, group, &[]);
                pass.dispatch_workgroups(*x, *y, *z);
            }
        }
        let out_bytes = u64::from(n_texts) * u64::from(config.hidden) * 4;
        commands.copy_buffer_to_buffer(&buffers.embeddings, 0, &buffers.staging, 0, out_bytes);
        queue.submit([commands.finish()]);
        out_bytes
    }
}

fn activations(
    device: &wgpu::Device,
    max_tokens: u32,
    hidden: u64,
    intermediate: u64,
) -> Activations {
    let tokens = u64::from(max_tokens);
    // Each text has at least one word-piece.
    let max_texts = tokens;
    let max_blocks = tokens;
    let buffer = |label: &str, bytes: u64, usage: wgpu::BufferUsages| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage,
            mapped_at_creation: false,
        })
    };
    let storage = wgpu::BufferUsages::STORAGE;
    let input = storage | wgpu::BufferUsages::COPY_DST;
    Activations {
        pieces: buffer("pieces", tokens * 8, input),
        texts: buffer("texts", max_texts * 8, input),
        blocks: buffer("blocks", max_blocks * 16, input),
        states: buffer("states", tokens * hidden * 4, storage),
        qkv: buffer("qkv", tokens * 3 * hidden * 4, storage),
        context: buffer("context", tokens * hidden * 4, storage),
        attended: buffer("attended", tokens * hidden * 4, storage),
        intermediate: buffer("intermediate", tokens * intermediate * 4, storage),
        embeddings: buffer(
            "embeddings",
            max_texts * hidden * 4,
            storage | wgpu::BufferUsages::COPY_SRC,
        ),
        staging: buffer(
            "embeddings read back",
            max_texts * hidden * 4,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        ),
    }
}
