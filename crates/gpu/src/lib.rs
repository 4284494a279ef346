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
