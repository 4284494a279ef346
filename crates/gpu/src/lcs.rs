//! LCS lengths of word-id pairs (ROUGE-L's quadratic part); `similarity::lcs_len` of the
//! core is the CPU reference. The lengths are integers, so ROUGE-L from the GPU is
//! identical to the CPU's, not merely close.

use std::collections::HashMap;

use bytemuck::{Pod, Zeroable};
use tracesift_core::similarity::lcs_len;

use crate::{Dispatch, GpuError, Kernel};

/// Loop iterations one invocation may run per dispatch (rows × limbs of its window).
const WINDOW_BUDGET: u32 = 8192;
/// Pairs beyond these sizes go to the CPU: a bit side over 8,192 words would leave a
/// window only a few rows (and its masks could fill a buffer alone), and a scanned side
/// of more than 65,536 matching words would need too many dispatches.
const MAX_LIMBS: usize = 256;
const MAX_ROWS: usize = 1 << 16;
/// A batch is run once a buffer holds this many u32s (96 MiB): one more pair adds at most
/// 8 MiB, which keeps every buffer under WebGPU's default 128 MiB binding limit.
const MAX_BUFFER_WORDS: usize = 24 << 20;

/// Word-id sequences and the pairs of them whose LCS lengths are wanted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LcsPairs<'a> {
    pub seqs: Vec<&'a [u64]>,
    pub pairs: Vec<[u32; 2]>,
}

/// The CPU reference.
pub fn cpu_lcs(input: &LcsPairs<'_>) -> Vec<u32> {
    input
        .pairs
        .iter()
        .map(|&[a, b]| {
            let seq = |idx: u32| input.seqs.get(idx as usize).copied().unwrap_or(&[]);
            u32::try_from(lcs_len(seq(a), seq(b))).unwrap_or(u32::MAX)
        })
        .collect()
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct Pair {
    rows_start: u32,
    n_rows: u32,
    masks_base: u32,
    limbs: u32,
    state_base: u32,
    pad: [u32; 3],
}

/// The bit side of a pair: where its masks start and which mask each word has.
struct BitSide {
    masks_base: u32,
    mask_of_word: HashMap<u64, u32>,
}

/// Pairs gathered for one run of the kernel.
#[derive(Default)]
struct Batch {
    masks: Vec<u32>,
    rows: Vec<u32>,
    pairs: Vec<Pair>,
    /// Where each batch pair's result goes in the caller's output.
    out_idxs: Vec<usize>,
    n_state: usize,
    max_rows: u32,
    max_limbs: u32,
    bit_sides: HashMap<u32, BitSide>,
}

impl Batch {
    fn is_full(&self) -> bool {
        self.masks.len().max(self.rows.len()).max(self.n_state) >= MAX_BUFFER_WORDS
    }

    /// Adds a pair; returns false if it is left to the CPU (too large for a window).
    fn push(&mut self, seqs: &[&[u64]], short_idx: u32, long: &[u64], out_idx: usize) -> bool {
        let short = seqs.get(short_idx as usize).copied().unwrap_or(&[]);
        let limbs = short.len().div_ceil(32);
        if limbs > MAX_LIMBS {
            return false;
        }
        let masks = &mut self.masks;
        let side = self.bit_sides.entry(short_idx).or_insert_with(|| {
            let masks_base = u32::try_from(masks.len()).unwrap_or(u32::MAX);
            let mut mask_of_word = HashMap::new();
            for (pos, word) in short.iter().enumerate() {
                let next = u32::try_from(mask_of_word.len()).unwrap_or(u32::MAX);
                let mask = *mask_of_word.entry(*word).or_insert_with(|| {
                    masks.resize(masks.len() + limbs, 0);
                    next
                });
                let at = masks_base as usize + mask as usize * limbs + pos / 32;
                if let Some(limb) = masks.get_mut(at) {
                    *limb |= 1 << (pos % 32);
                }
            }
            BitSide {
                masks_base,
                mask_of_word,
            }
        });
        let rows_start = self.rows.len();
        self.rows.extend(
            long.iter()
                .filter_map(|word| side.mask_of_word.get(word).copied()),
        );
        let n_rows = self.rows.len() - rows_start;
        if n_rows > MAX_ROWS {
            self.rows.truncate(rows_start);
            return false;
        }
        let as_u32 = |value: usize| u32::try_from(value).unwrap_or(u32::MAX);
        self.pairs.push(Pair {
            rows_start: as_u32(rows_start),
            n_rows: as_u32(n_rows),
            masks_base: side.masks_base,
            limbs: as_u32(limbs),
            state_base: as_u32(self.n_state),
            pad: [0; 3],
        });
        self.out_idxs.push(out_idx);
        self.n_state += limbs;
        self.max_rows = self.max_rows.max(as_u32(n_rows));
        self.max_limbs = self.max_limbs.max(as_u32(limbs));
        true
    }
}

pub(crate) struct Pipeline {
    kernel: Kernel,
}

impl Pipeline {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let shader = wgpu::include_wgsl!("lcs.wgsl");
        Self {
            kernel: Kernel::new(device, "lcs", shader),
        }
    }

    pub(crate) async fn run(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        input: &LcsPairs<'_>,
    ) -> Result<Vec<u32>, GpuError> {
        let mut lcs = vec![0u32; input.pairs.len()];
        let mut batch = Batch::default();
        for (out_idx, &[a, b]) in input.pairs.iter().enumerate() {
            let seq = |idx: u32| input.seqs.get(idx as usize).copied().unwrap_or(&[]);
            let (short_idx, long) = if seq(a).len() <= seq(b).len() {
                (a, seq(b))
            } else {
                (b, seq(a))
            };
            if seq(short_idx).is_empty() {
                continue;
            }
            if !batch.push(&input.seqs, short_idx, long, out_idx) {
                lcs[out_idx] = u32::try_from(lcs_len(seq(a), seq(b))).unwrap_or(u32::MAX);
            }
            if batch.is_full() {
                self.run_batch(device, queue, &std::mem::take(&mut batch), &mut lcs)
                    .await?;
            }
        }
        self.run_batch(device, queue, &batch, &mut lcs).await?;
        Ok(lcs)
    }

    async fn run_batch(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        batch: &Batch,
        lcs: &mut [u32],
    ) -> Result<(), GpuError> {
        // Pairs without a shared word have LCS 0 and need no kernel.
        if batch.max_rows == 0 {
            return Ok(());
        }
        let rows_per_window = (WINDOW_BUDGET / (batch.max_limbs + 1)).max(1);
        let windows: Vec<[u32; 4]> = (0..batch.max_rows.div_ceil(rows_per_window))
            .map(|window_idx| [window_idx * rows_per_window, rows_per_window, 0, 0])
            .collect();
        let state = vec![u32::MAX; batch.n_state];
        let inputs: [&[u8]; 3] = [
            bytemuck::cast_slice(&batch.masks),
            bytemuck::cast_slice(&batch.rows),
            bytemuck::cast_slice(&batch.pairs),
        ];
        let dispatch = Dispatch {
            inputs: &inputs,
            scratch: Some(bytemuck::cast_slice(&state)),
            out_bytes: (batch.pairs.len() * std::mem::size_of::<u32>()) as u64,
            // One invocation per pair, 64 to a workgroup.
            n_workgroups: batch.pairs.len().div_ceil(64),
            windows: Some(&windows),
        };
        let bytes = self.kernel.run_dispatch(device, queue, &dispatch).await?;
        let values: &[u32] = bytemuck::try_cast_slice(&bytes)
            .map_err(|e| GpuError(format!("bad result buffer: {e}")))?;
        for (&out_idx, &value) in batch.out_idxs.iter().zip(values) {
            if let Some(slot) = lcs.get_mut(out_idx) {
                *slot = value;
            }
        }
        Ok(())
    }
}
