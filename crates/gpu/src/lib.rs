//! Batched reductions of tracesift's scores on the GPU through wgpu (WebGPU in the browser,
//! Vulkan natively), with the CPU path as the reference they are tested against.
//!
//! The device, queue and pipelines are built once ([`Gpu::new`]) and reused for every
//! batch. Numbers go up as f32 and come back as f32 sums (Kahan-compensated per trace);
//! they agree with the core's f64 to 1e-4 relative, as SPEC's GPU tolerance allows.

mod embedding_dots;
mod token_sums;

pub use embedding_dots::{EmbeddingPairs, cpu_embedding_dots};
pub use token_sums::{TokenBatch, TraceSums, cpu_token_sums};

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
    token_sums: token_sums::Pipeline,
    embedding_dots: embedding_dots::Pipeline,
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
        Ok(Gpu {
            device,
            queue,
            adapter_name: info.name,
            token_sums,
            embedding_dots,
        })
    }

    /// [`Gpu::new`] for native callers (blocks on the adapter request).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<Gpu, GpuError> {
        pollster::block_on(Gpu::new())
    }

    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub fn adapter_name(&self) -> &str {
        &self.adapter_name
    }

    /// Per-trace sums of valid log-probs and top-k entropies, counts of valid and invalid
    /// tokens: everything msp, ppl and mte need.
    pub async fn token_sums(&self, batch: &TokenBatch) -> Result<Vec<TraceSums>, GpuError> {
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

/// WebGPU guarantees 65,535 workgroups per dispatch dimension; more use the y dimension
/// (the kernels compute their index as `x + y * 65535`).
const MAX_WORKGROUPS_X: u32 = 65_535;

/// A compute kernel whose entry point `main` reads storage buffers at bindings
/// `0..inputs.len()` and writes one output buffer at the next binding.
pub(crate) struct Kernel {
    label: &'static str,
    pipeline: wgpu::ComputePipeline,
}

impl Kernel {
    pub(crate) fn new(
        device: &wgpu::Device,
        label: &'static str,
        shader: wgpu::ShaderModuleDescriptor<'_>,
    ) -> Self {
        let module = device.create_shader_module(shader);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        Self { label, pipeline }
    }

    /// Uploads `inputs`, runs `n_workgroups` workgroups and returns the output buffer's
    /// `out_bytes` bytes.
    pub(crate) async fn run(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        inputs: &[&[u8]],
        out_bytes: u64,
        n_workgroups: usize,
    ) -> Result<Vec<u8>, GpuError> {
        use wgpu::util::DeviceExt;
        let n_workgroups = u32::try_from(n_workgroups)
            .map_err(|_| GpuError(format!("{}: too many workgroups", self.label)))?;
        // Storage buffers may not be empty; the kernels never read the padding.
        let inputs: Vec<wgpu::Buffer> = inputs
            .iter()
            .map(|bytes| {
                device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(self.label),
                    contents: if bytes.is_empty() { &[0; 4] } else { bytes },
                    usage: wgpu::BufferUsages::STORAGE,
                })
            })
            .collect();
        let buffer = |usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(self.label),
                size: out_bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        let out = buffer(wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC);
        let staging = buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        let entries: Vec<wgpu::BindGroupEntry<'_>> = inputs
            .iter()
            .chain([&out])
            .zip(0u32..)
            .map(|(buffer, binding)| wgpu::BindGroupEntry {
                binding,
                resource: buffer.as_entire_binding(),
            })
            .collect();
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(self.label),
            layout: &self.pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some(self.label),
        });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(self.label),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(
                n_workgroups.min(MAX_WORKGROUPS_X),
                n_workgroups.div_ceil(MAX_WORKGROUPS_X),
                1,
            );
        }
        encoder.copy_buffer_to_buffer(&out, 0, &staging, 0, out_bytes);
        queue.submit([encoder.finish()]);
        read_back(device, &staging).await
    }
}

/// Waits for a buffer mapping: natively by polling the device, on the web by yielding to
/// the browser (never a blocking wait there).
async fn read_back(device: &wgpu::Device, buffer: &wgpu::Buffer) -> Result<Vec<u8>, GpuError> {
    let (sender, receiver) = futures_channel::oneshot::channel();
    buffer.map_async(wgpu::MapMode::Read, .., move |result| {
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
        .get_mapped_range(..)
        .map_err(|error| GpuError(format!("cannot read the results back: {error}")))?
        .to_vec();
    buffer.unmap();
    Ok(bytes)
}
