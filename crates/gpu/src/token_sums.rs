//! The per-trace token reduction (msp, ppl, mte inputs); `TokenBatch::cpu_stats` is its
//! CPU reference.

use bytemuck::{Pod, Zeroable};
use tracesift_core::score::{TokenBatch, TokenStats};

use crate::{GpuError, Kernel};

/// Tokens per segment: one workgroup's share, small enough that no invocation loops long.
const SEGMENT_TOKENS: u32 = 4096;

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct Segment {
    start: u32,
    end: u32,
    pad: [u32; 2],
}

/// Splits every trace into segments of at most [`SEGMENT_TOKENS`]; returns them with the
/// trace each belongs to. Traces without tokens have no segment.
fn segments(batch: &TokenBatch) -> (Vec<Segment>, Vec<usize>) {
    let mut segments = Vec::new();
    let mut owners = Vec::new();
    for (trace_idx, bounds) in batch.trace_offsets.windows(2).enumerate() {
        let (mut start, end) = (bounds[0], bounds[1]);
        while start < end {
            let stop = end.min(start.saturating_add(SEGMENT_TOKENS));
            segments.push(Segment {
                start,
                end: stop,
                pad: [0; 2],
            });
            owners.push(trace_idx);
            start = stop;
        }
    }
    (segments, owners)
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct TraceOut {
    sum_logprob: f32,
    sum_entropy: f32,
    n_valid: u32,
    n_invalid: u32,
    entropy_missing: u32,
    pad: [u32; 3],
}

/// The compiled kernel, built once per device.
pub(crate) struct Pipeline {
    kernel: Kernel,
}

impl Pipeline {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let shader = wgpu::include_wgsl!("token_sums.wgsl");
        Self {
            kernel: Kernel::new(device, "token_sums", shader),
        }
    }

    pub(crate) async fn run(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        batch: &TokenBatch,
    ) -> Result<Vec<TokenStats>, GpuError> {
        let n_traces = batch.n_traces();
        if n_traces == 0 {
            return Ok(Vec::new());
        }
        let (segments, owners) = segments(batch);
        let mut sums = vec![
            TokenStats {
                sum_entropy: Some(0.0),
                ..TokenStats::default()
            };
            n_traces
        ];
        if segments.is_empty() {
            return Ok(sums);
        }
        // Without any top-k list, one offset: the kernel then sees no lists at all.
        let no_top = [0u32];
        let top_offsets: &[u32] = if batch.top_values.is_empty() {
            &no_top
        } else {
            &batch.top_offsets
        };
        let inputs: [&[u8]; 4] = [
            bytemuck::cast_slice(&batch.logprobs),
            bytemuck::cast_slice(&segments),
            bytemuck::cast_slice(&batch.top_values),
            bytemuck::cast_slice(top_offsets),
        ];
        let out_bytes = (segments.len() * std::mem::size_of::<TraceOut>()) as u64;
        // One workgroup per segment.
        let bytes = self
            .kernel
            .run(device, queue, &inputs, out_bytes, segments.len())
            .await?;
        let outs: &[TraceOut] = bytemuck::try_cast_slice(&bytes)
            .map_err(|e| GpuError(format!("bad result buffer: {e}")))?;
        // A trace's segments are added in f64 on the host.
        for (out, &trace_idx) in outs.iter().zip(&owners) {
            if let Some(trace) = sums.get_mut(trace_idx) {
                trace.n_valid += out.n_valid;
                trace.n_invalid += out.n_invalid;
                trace.sum_logprob += f64::from(out.sum_logprob);
                trace.sum_entropy = match (trace.sum_entropy, out.entropy_missing) {
                    (Some(total), 0) => Some(total + f64::from(out.sum_entropy)),
                    _ => None,
                };
            }
        }
        Ok(sums)
    }
}
