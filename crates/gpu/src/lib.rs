//! Batched reductions of tracesift's scores on the GPU through wgpu (WebGPU in the browser,
//! Vulkan natively), with the CPU path as the reference they are tested against.
//!
//! The device, queue and pipelines are built once ([`Gpu::new`]) and reused for every
//! batch. Numbers go up as f32 and come back as f32 sums (Kahan-compensated per trace);
//! they agree with the core's f64 to 1e-4 relative, as SPEC's GPU tolerance allows.

mod embedding_dots;
mod encoder;
mod engine;
mod lcs;
mod token_sums;

pub use embedding_dots::{EmbeddingPairs, cpu_embedding_dots};
pub use encoder::{Encoder, EncoderConfig};
pub use engine::Engine;
pub use lcs::{LcsPairs, cpu_lcs};
use tracesift_core::dataset::{PairItems, PairSimilarities, PairWork};
pub use tracesift_core::score::{TokenBatch, TokenStats};
use tracesift_core::similarity;

/// Token values a caller collects before sending them to the GPU in one batch (64 MiB of
/// f32, half WebGPU's default binding limit).
pub const FLUSH_VALUES: usize = 16 << 20;

/// Limb operations of the CPU's bit-parallel LCS above which starting a hardware GPU for
/// ROUGE-L pays off: about a second of one core's work, well above a device start.
const GPU_PAYS_OFF_LIMB_OPS: f64 = 2e9;

/// Whether `auto` should run this pairwise work on a (hardware) GPU: only ROUGE-L, only
/// when the CPU's bit-parallel LCS would take about a second or more. Token sums never
/// pay off: parsing dominates, and sending the values costs more than adding them up.
pub fn gpu_pays_off(work: &PairWork<'_>) -> bool {
    let PairItems::Words(seqs) = &work.items else {
        return false;
    };
    let len = |idx: usize| seqs.get(idx).map_or(0, |seq| seq.len()) as f64;
    let mut limb_ops = 0.0;
    for members in &work.questions {
        for (i, &a) in members.iter().enumerate() {
            for &b in members.iter().skip(i + 1) {
                let (short, long) = if len(a) <= len(b) {
                    (len(a), len(b))
                } else {
                    (len(b), len(a))
                };
                limb_ops += long * (short / 64.0).ceil();
            }
        }
    }
    limb_ops >= GPU_PAYS_OFF_LIMB_OPS
}

/// Embedding values one batch of [`Gpu::pair_similarities`] uploads at most (64 MiB).
const MAX_EMBEDDING_VALUES: usize = 16 << 20;

/// Why the GPU path is not available or failed; callers fall back to the CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuError(pub String);

impl std::fmt::Display for GpuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GPU: {}", self.0)
    }
}

impl std::error::Error for GpuError {}

/// A GPU device with tracesift's pipelines, built once and reused.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter_name: String,
    software: bool,
    token_sums: token_sums::Pipeline,
    embedding_dots: embedding_dots::Pipeline,
    lcs: lcs::Pipeline,
}

impl Gpu {
    /// Finds an adapter (any kind: a software one such as lavapipe or SwiftShader counts)
    /// and builds the pipelines.
    pub async fn new() -> Result<Gpu, GpuError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|error| GpuError(format!("no adapter: {error}")))?;
        let info = adapter.get_info();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("tracesift"),
                required_limits: adapter.limits(),
                ..Default::default()
            })
            .await
            .map_err(|error| GpuError(format!("no device: {error}")))?;
        let token_sums = token_sums::Pipeline::new(&device);
        let embedding_dots = embedding_dots::Pipeline::new(&device);
        let lcs = lcs::Pipeline::new(&device);
        Ok(Gpu {
            device,
            queue,
            software: info.device_type == wgpu::DeviceType::Cpu || is_software_name(&info.name),
            adapter_name: info.name,
            token_sums,
            embedding_dots,
            lcs,
        })
    }

    /// [`Gpu::new`] for native callers (blocks on the adapter request).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<Gpu, GpuError> {
        pollster::block_on(Gpu::new())
    }

    /// Whether the adapter runs on the CPU (lavapipe, SwiftShader): correct, never fast.
    pub fn is_software(&self) -> bool {
        self.software
    }

    /// Names the adapter where the backend gives no name (browsers may leave WebGPU's
    /// `description` empty; the caller knows the vendor and architecture).
    pub fn with_adapter_name(mut self, name: String) -> Self {
        self.software |= is_software_name(&name);
        self.adapter_name = name;
        self
    }

    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub fn adapter_name(&self) -> &str {
        &self.adapter_name
    }

    /// Per-trace sums of valid log-probs and top-k entropies, counts of valid and invalid
    /// tokens: everything msp, ppl and mte need.
    pub async fn token_sums(&self, batch: &TokenBatch) -> Result<Vec<TokenStats>, GpuError> {
        self.token_sums.run(&self.device, &self.queue, batch).await
    }

    /// Dot products of the given embedding pairs (the quadratic part of embedding
    /// consistency; the caller turns them into (1 + cos) / 2 with f64 norms).
    pub async fn embedding_dots(&self, input: &EmbeddingPairs) -> Result<Vec<f64>, GpuError> {
        self.embedding_dots
            .run(&self.device, &self.queue, input)
            .await
    }
}

impl Gpu {
    /// Consistency's pairwise similarities for the core's work list
    /// ([`tracesift_core::dataset::Scorer::pair_work`]): ROUGE-L from exact LCS lengths
    /// (identical to the CPU), embedding similarity from f32 dot products (within 1e-4).
    pub async fn pair_similarities(
        &self,
        work: &PairWork<'_>,
    ) -> Result<PairSimilarities, GpuError> {
        match &work.items {
            PairItems::None => Ok(work.questions.iter().map(|_| Vec::new()).collect()),
            PairItems::Words(seqs) => {
                let pairs: Vec<[u32; 2]> = work
                    .questions
                    .iter()
                    .flat_map(|members| question_pairs(members))
                    .collect();
                let input = LcsPairs {
                    seqs: seqs.clone(),
                    pairs,
                };
                let lcs = self.lcs_lengths(&input).await?;
                let len = |idx: u32| seqs.get(idx as usize).map_or(0, |seq| seq.len());
                let mut scores = input.pairs.iter().zip(lcs).map(|(&[a, b], lcs)| {
                    Some(similarity::rouge_l_from_lcs(lcs as usize, len(a), len(b)))
                });
                Ok(work
                    .questions
                    .iter()
                    .map(|members| scores.by_ref().take(n_pairs(members.len())).collect())
                    .collect())
            }
            PairItems::Embeddings(rows) => {
                let mut out = Vec::with_capacity(work.questions.len());
                let mut start = 0;
                while start < work.questions.len() {
                    // Questions up to the upload budget (at least one).
                    let mut end = start;
                    let mut values = 0;
                    while let Some(members) = work.questions.get(end) {
                        let question_values: usize = members
                            .iter()
                            .map(|&idx| rows.get(idx).copied().flatten().map_or(0, <[f64]>::len))
                            .sum();
                        if end > start && values + question_values > MAX_EMBEDDING_VALUES {
                            break;
                        }
                        values += question_values;
                        end += 1;
                    }
                    let questions = work.questions.get(start..end).unwrap_or(&[]);
                    out.extend(self.embedding_similarities(rows, questions).await?);
                    start = end;
                }
                Ok(out)
            }
        }
    }

    /// Embedding similarities of some questions' pairs. Items that f32 cannot hold (a NaN,
    /// an infinity, a value beyond f32's range) are left to the CPU's f64 arithmetic.
    async fn embedding_similarities(
        &self,
        rows: &[Option<&[f64]>],
        questions: &[Vec<usize>],
    ) -> Result<PairSimilarities, GpuError> {
        let row = |idx: usize| rows.get(idx).copied().flatten();
        let fits_f32 = |values: &[f64]| values.iter().all(|&v| (v as f32).is_finite());
        let mut input = EmbeddingPairs::default();
        let mut slot_of_item: std::collections::HashMap<usize, u32> = Default::default();
        let mut norms_sq: Vec<f64> = Vec::new();
        // Per pair: the GPU pair it became, or its CPU answer.
        enum Pending {
            Gpu(usize, u32, u32),
            Done(Option<f64>),
        }
        let mut pending: Vec<Vec<Pending>> = Vec::with_capacity(questions.len());
        for members in questions {
            let mut question = Vec::with_capacity(n_pairs(members.len()));
            for (i, &item_a) in members.iter().enumerate() {
                for &item_b in members.iter().skip(i + 1) {
                    let (Some(a), Some(b)) = (row(item_a), row(item_b)) else {
                        question.push(Pending::Done(None));
                        continue;
                    };
                    if a.len() != b.len() || !fits_f32(a) || !fits_f32(b) {
                        question.push(Pending::Done(similarity::embedding_similarity(a, b)));
                        continue;
                    }
                    let mut slot = |item: usize, values: &[f64]| {
                        *slot_of_item.entry(item).or_insert_with(|| {
                            input.dim = values.len() as u32;
                            input.embeddings.extend(values.iter().map(|&v| v as f32));
                            norms_sq.push(values.iter().map(|v| v * v).sum());
                            (norms_sq.len() - 1) as u32
                        })
                    };
                    let (slot_a, slot_b) = (slot(item_a, a), slot(item_b, b));
                    question.push(Pending::Gpu(input.pairs.len(), slot_a, slot_b));
                    input.pairs.push([slot_a, slot_b]);
                }
            }
            pending.push(question);
        }
        let dots = self.embedding_dots(&input).await?;
        let norm = |slot: u32| norms_sq.get(slot as usize).copied().unwrap_or(0.0);
        Ok(pending
            .into_iter()
            .map(|question| {
                question
                    .into_iter()
                    .map(|pair| match pair {
                        Pending::Done(value) => value,
                        Pending::Gpu(pair_idx, a, b) => dots
                            .get(pair_idx)
                            .and_then(|&dot| similarity::embedding_from_dot(dot, norm(a), norm(b))),
                    })
                    .collect()
            })
            .collect())
    }

    /// LCS lengths of the given word-id pairs (ROUGE-L's quadratic part). Exact: the
    /// caller's ROUGE-L equals the CPU's.
    pub async fn lcs_lengths(&self, input: &LcsPairs<'_>) -> Result<Vec<u32>, GpuError> {
        self.lcs.run(&self.device, &self.queue, input).await
    }
}

/// Software rasterisers that do not say so in their device type.
fn is_software_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["swiftshader", "llvmpipe", "lavapipe", "software"]
        .iter()
        .any(|marker| name.contains(marker))
}

fn n_pairs(n: usize) -> usize {
    n * n.saturating_sub(1) / 2
}

/// A question's pairs (i < j) of item indices, in the order the core expects.
fn question_pairs(members: &[usize]) -> impl Iterator<Item = [u32; 2]> + '_ {
    members.iter().enumerate().flat_map(move |(i, &a)| {
        members
            .iter()
            .skip(i + 1)
            .map(move |&b| [a as u32, b as u32])
    })
}

/// WebGPU guarantees 65,535 workgroups per dispatch dimension; more use the y dimension
/// (the kernels compute their index as `x + y * 65535`).
const MAX_WORKGROUPS_X: u32 = 65_535;

/// Bind-group entries for whole buffers at bindings 0, 1, 2, … in order.
pub(crate) fn whole_buffer_entries<'a>(
    buffers: impl Iterator<Item = &'a wgpu::Buffer>,
) -> Vec<wgpu::BindGroupEntry<'a>> {
    buffers
        .zip(0u32..)
        .map(|(buffer, binding)| wgpu::BindGroupEntry {
            binding,
            resource: buffer.as_entire_binding(),
        })
        .collect()
}

/// A shader's entry point `main` as a compute pipeline, its layout taken from the shader.
pub(crate) fn compute_pipeline(
    device: &wgpu::Device,
    label: &'static str,
    shader: wgpu::ShaderModuleDescriptor<'_>,
) -> wgpu::ComputePipeline {
    let module = device.create_shader_module(shader);
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(label),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    })
}

/// A compute kernel whose entry point `main` reads storage buffers at bindings
/// `0..inputs.len()`, then (if any) a read-write scratch buffer, then writes one output
/// buffer at the next binding, then (if windowed) reads a uniform `Window`.
pub(crate) struct Kernel {
    label: &'static str,
    pipeline: wgpu::ComputePipeline,
}

/// One run of a [`Kernel`].
pub(crate) struct Dispatch<'a> {
    pub inputs: &'a [&'a [u8]],
    /// Initial contents of a read-write buffer that persists across windows.
    pub scratch: Option<&'a [u8]>,
    pub out_bytes: u64,
    pub n_workgroups: usize,
    /// One dispatch per entry, each seeing its entry as the uniform `Window`, in order
    /// (later dispatches see earlier ones' writes). None: one dispatch, no uniform.
    pub windows: Option<&'a [[u32; 4]]>,
}

impl Kernel {
    pub(crate) fn new(
        device: &wgpu::Device,
        label: &'static str,
        shader: wgpu::ShaderModuleDescriptor<'_>,
    ) -> Self {
        Self {
            label,
            pipeline: compute_pipeline(device, label, shader),
        }
    }

    /// Uploads `inputs`, runs `n_workgroups` workgroups once and returns the output
    /// buffer's `out_bytes` bytes.
    pub(crate) async fn run(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        inputs: &[&[u8]],
        out_bytes: u64,
        n_workgroups: usize,
    ) -> Result<Vec<u8>, GpuError> {
        let dispatch = Dispatch {
            inputs,
            scratch: None,
            out_bytes,
            n_workgroups,
            windows: None,
        };
        self.run_dispatch(device, queue, &dispatch).await
    }

    pub(crate) async fn run_dispatch(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        dispatch: &Dispatch<'_>,
    ) -> Result<Vec<u8>, GpuError> {
        use wgpu::util::DeviceExt;
        let n_workgroups = u32::try_from(dispatch.n_workgroups)
            .map_err(|_| GpuError(format!("{}: too many workgroups", self.label)))?;
        let max_binding = device.limits().max_storage_buffer_binding_size;
        let largest = dispatch
            .inputs
            .iter()
            .chain(&dispatch.scratch)
            .map(|bytes| bytes.len() as u64)
            .chain([dispatch.out_bytes])
            .max()
            .unwrap_or(0);
        if largest > max_binding {
            return Err(GpuError(format!(
                "{}: a buffer of {largest} bytes exceeds the device's {max_binding}",
                self.label
            )));
        }
        let upload = |bytes: &[u8], usage| {
            // Storage buffers may not be empty; the kernels never read the padding.
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(self.label),
                contents: if bytes.is_empty() { &[0; 4] } else { bytes },
                usage,
            })
        };
        let mut storage: Vec<wgpu::Buffer> = dispatch
            .inputs
            .iter()
            .map(|bytes| upload(bytes, wgpu::BufferUsages::STORAGE))
            .collect();
        if let Some(scratch) = dispatch.scratch {
            storage.push(upload(scratch, wgpu::BufferUsages::STORAGE));
        }
        let buffer = |usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(self.label),
                size: dispatch.out_bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        storage.push(buffer(
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        ));
        let staging = buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        // Each window's uniform sits at its own aligned offset of one buffer.
        let stride = u64::from(device.limits().min_uniform_buffer_offset_alignment).max(16);
        let windows = dispatch.windows.unwrap_or(&[]);
        let uniforms = dispatch.windows.map(|windows| {
            let mut bytes = vec![0u8; windows.len() * stride as usize];
            for (window, slot) in windows.iter().zip(bytes.chunks_mut(stride as usize)) {
                if let Some(head) = slot.get_mut(..16) {
                    head.copy_from_slice(bytemuck::cast_slice(window));
                }
            }
            upload(&bytes, wgpu::BufferUsages::UNIFORM)
        });
        let layout = self.pipeline.get_bind_group_layout(0);
        let bind_group = |window_idx: Option<u64>| {
            let mut entries = whole_buffer_entries(storage.iter());
            if let (Some(uniforms), Some(window_idx)) = (&uniforms, window_idx) {
                entries.push(wgpu::BindGroupEntry {
                    binding: storage.len() as u32,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: uniforms,
                        offset: window_idx * stride,
                        size: wgpu::BufferSize::new(16),
                    }),
                });
            }
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(self.label),
                layout: &layout,
                entries: &entries,
            })
        };
        let bind_groups: Vec<wgpu::BindGroup> = if dispatch.windows.is_some() {
            (0..windows.len() as u64)
                .map(|idx| bind_group(Some(idx)))
                .collect()
        } else {
            vec![bind_group(None)]
        };
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some(self.label),
        });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(self.label),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            for group in &bind_groups {
                pass.set_bind_group(0, group, &[]);
                pass.dispatch_workgroups(
                    n_workgroups.min(MAX_WORKGROUPS_X),
                    n_workgroups.div_ceil(MAX_WORKGROUPS_X),
                    1,
                );
            }
        }
        let out = storage
            .last()
            .ok_or_else(|| GpuError(format!("{}: no output buffer", self.label)))?;
        encoder.copy_buffer_to_buffer(out, 0, &staging, 0, dispatch.out_bytes);
        queue.submit([encoder.finish()]);
        read_back(device, &staging, dispatch.out_bytes).await
    }
}

/// Reads a buffer's first `len` bytes back, waiting for the mapping: natively by polling
/// the device, on the web by yielding to the browser (never a blocking wait there).
async fn read_back(
    device: &wgpu::Device,
    buffer: &wgpu::Buffer,
    len: u64,
) -> Result<Vec<u8>, GpuError> {
    let (sender, receiver) = futures_channel::oneshot::channel();
    buffer.map_async(wgpu::MapMode::Read, ..len, move |result| {
        let _ = sender.send(result);
    });
    #[cfg(not(target_arch = "wasm32"))]
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|error| GpuError(format!("device lost: {error}")))?;
    #[cfg(target_arch = "wasm32")]
    let _ = device;
    receiver
        .await
        .map_err(|_| GpuError("the mapping was cancelled".to_owned()))?
        .map_err(|error| GpuError(format!("cannot read the results back: {error}")))?;
    let bytes = buffer
        .get_mapped_range(..len)
        .map_err(|error| GpuError(format!("cannot read the results back: {error}")))?
        .to_vec();
    buffer.unmap();
    Ok(bytes)
}
