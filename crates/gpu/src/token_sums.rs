//! The per-trace token reduction (msp, ppl, mte inputs) and its CPU reference.

use bytemuck::{Pod, Zeroable};
use tracesift_core::score::top_k_entropy;
use tracesift_core::trace::classify_logprob;

use crate::{GpuError, Kernel};

/// Tokens per segment: one workgroup's share, small enough that no invocation loops long.
const SEGMENT_TOKENS: u32 = 4096;

/// Many traces' tokens in CSR form. Values are stored as the core classifies them: an
/// invalid log-prob (sentinel, NaN, impossible) as NaN, so GPU and CPU agree on which
/// tokens count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenBatch {
    /// Log-probs of every token of every trace, trace after trace.
    pub logprobs: Vec<f32>,
    /// `logprobs[trace_offsets[t]..trace_offsets[t + 1]]` are trace `t`'s tokens.
    pub trace_offsets: Vec<u32>,
    /// Top-k log-probs of every token (invalid entries as NaN).
    pub top_values: Vec<f32>,
    /// `top_values[top_offsets[i]..top_offsets[i + 1]]` is token `i`'s list; empty when
    /// the batch has no top-k at all.
    pub top_offsets: Vec<u32>,
}

impl TokenBatch {
    /// Adds one trace: raw log-probs, and for each token its raw top-k list (or none).
    pub fn push_trace(&mut self, logprobs: &[f64], top_lists: Option<&[Vec<f64>]>) {
        if self.trace_offsets.is_empty() {
            self.trace_offsets.push(0);
        }
        if self.top_offsets.is_empty() {
            self.top_offsets.push(0);
        }
        for (token_idx, &raw) in logprobs.iter().enumerate() {
            self.logprobs
                .push(classify_logprob(raw).map_or(f32::NAN, |v| v as f32));
            let list = top_lists.and_then(|lists| lists.get(token_idx));
            for &value in list.into_iter().flatten() {
                self.top_values
                    .push(classify_logprob(value).map_or(f32::NAN, |v| v as f32));
            }
            self.top_offsets
                .push(u32::try_from(self.top_values.len()).unwrap_or(u32::MAX));
        }
        self.trace_offsets
            .push(u32::try_from(self.logprobs.len()).unwrap_or(u32::MAX));
    }

    pub fn n_traces(&self) -> usize {
        self.trace_offsets.len().saturating_sub(1)
    }
}

/// What one trace's tokens add up to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceSums {
    pub n_valid: u32,
    pub n_invalid: u32,
    pub sum_logprob: f64,
    /// None when a valid token has no usable top-k list.
    pub sum_entropy: Option<f64>,
}

/// The CPU reference: the core's own arithmetic in f64 on the same (f32) batch.
pub fn cpu_token_sums(batch: &TokenBatch) -> Vec<TraceSums> {
    batch
        .trace_offsets
        .windows(2)
        .map(|bounds| {
            let (start, end) = (bounds[0] as usize, bounds[1] as usize);
            let mut sums = TraceSums {
                n_valid: 0,
                n_invalid: 0,
                sum_logprob: 0.0,
                sum_entropy: Some(0.0),
            };
            for token_idx in start..end.min(batch.logprobs.len()) {
                let value = f64::from(batch.logprobs[token_idx]);
                if !value.is_finite() {
                    sums.n_invalid += 1;
                    continue;
                }
                sums.n_valid += 1;
                sums.sum_logprob += value;
                let list: Vec<f64> = match (
                    batch.top_offsets.get(token_idx),
                    batch.top_offsets.get(token_idx + 1),
                ) {
                    (Some(&a), Some(&b)) => batch
                        .top_values
                        .get(a as usize..b as usize)
                        .unwrap_or(&[])
                        .iter()
                        .map(|&v| f64::from(v))
                        .collect(),
                    _ => Vec::new(),
                };
                sums.sum_entropy = match (sums.sum_entropy, top_k_entropy(&list)) {
                    (Some(total), Some(entropy)) => Some(total + entropy),
                    _ => None,
                };
            }
            sums
        })
        .collect()
}

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
    ) -> Result<Vec<TraceSums>, GpuError> {
        let n_traces = batch.n_traces();
        if n_traces == 0 {
            return Ok(Vec::new());
        }
        let (segments, owners) = segments(batch);
        let mut sums = vec![
            TraceSums {
                n_valid: 0,
                n_invalid: 0,
                sum_logprob: 0.0,
                sum_entropy: Some(0.0)
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
