//! Which backend does the arithmetic: the CPU (the reference) or the GPU through wgpu.
//!
//! `--backend gpu` runs the token sums and the pairwise similarities on the GPU.
//! `--backend auto` parses and sums tokens on the CPU (parsing is the bottleneck: shipping
//! the log-probs to a GPU costs more than adding them up as they pass, see the README's
//! benchmark) and moves only the quadratic ROUGE-L work to a hardware GPU, when there is
//! enough of it to pay for starting the device. A software adapter (lavapipe, SwiftShader)
//! is never chosen by `auto`: it is correct but slower than the CPU path at every size.

use tracesift_core::dataset::{PairItems, PairWork, ScoredSet, Scorer};
use tracesift_core::settings::Backend;
use tracesift_gpu::{Gpu, GpuError};

use crate::run::BadArguments;

/// Token values collected before they go to the GPU in one batch (64 MiB of f32).
const FLUSH_VALUES: usize = 16 << 20;

/// Limb operations of the CPU's bit-parallel LCS above which `auto` starts a hardware GPU
/// for ROUGE-L: about a second of one core's work, well above a device start.
const AUTO_GPU_LCS_LIMB_OPS: f64 = 2e9;

pub struct Engine {
    choice: Backend,
    gpu: Option<Gpu>,
    /// Why the GPU stopped being used, printed once.
    gpu_failed: bool,
}

impl Engine {
    /// `--backend gpu` fails here, before any input is read, when no adapter is found.
    pub fn new(choice: Backend) -> anyhow::Result<Self> {
        let gpu = match choice {
            Backend::Gpu => Some(Gpu::new_blocking().map_err(|error| {
                BadArguments(format!(
                    "--backend gpu: {error} (install a Vulkan driver, e.g. Debian's mesa-vulkan-drivers, or use --backend cpu)"
                ))
            })?),
            Backend::Auto | Backend::Cpu => None,
        };
        Ok(Self {
            choice,
            gpu,
            gpu_failed: false,
        })
    }

    /// Sets the scorer up for this backend before it is fed.
    pub fn prepare(&self, scorer: &mut Scorer) {
        if self.gpu.is_some() {
            scorer.defer_token_stats();
        }
    }

    /// Between chunks: sends the collected tokens to the GPU once there are enough.
    pub fn after_chunk(&mut self, scorer: &mut Scorer) {
        if scorer.pending_values() >= FLUSH_VALUES {
            self.flush_tokens(scorer);
        }
    }

    fn flush_tokens(&mut self, scorer: &mut Scorer) {
        let Some(tokens) = scorer.take_tokens() else {
            return;
        };
        let stats = match self.gpu.as_ref() {
            Some(gpu) if !self.gpu_failed => {
                match pollster::block_on(gpu.token_sums(&tokens.batch)) {
                    Ok(stats) => stats,
                    Err(error) => {
                        self.fail(&error);
                        tokens.batch.cpu_stats()
                    }
                }
            }
            _ => tokens.batch.cpu_stats(),
        };
        scorer.apply_token_stats(&tokens, &stats);
    }

    fn fail(&mut self, error: &GpuError) {
        if !self.gpu_failed {
            eprintln!("tracesift: {error}; finishing on the CPU");
        }
        self.gpu_failed = true;
    }

    /// Ends the run: the last tokens, then consistency on the chosen backend. The report
    /// names what ran: `cpu`, or `gpu: <adapter>`.
    pub fn finish(mut self, mut scorer: Scorer) -> ScoredSet {
        self.flush_tokens(&mut scorer);
        let work = scorer.pair_work();
        if self.choice == Backend::Auto && self.gpu.is_none() && worth_a_gpu(&work) {
            // A failed start only means the CPU does it.
            self.gpu = Gpu::new_blocking().ok().filter(|gpu| !gpu.is_software());
        }
        let similarities = match self.gpu.as_ref() {
            Some(gpu) if !self.gpu_failed && !matches!(work.items, PairItems::None) => {
                match pollster::block_on(gpu.pair_similarities(&work)) {
                    Ok(similarities) => Some(similarities),
                    Err(error) => {
                        self.fail(&error);
                        None
                    }
                }
            }
            _ => None,
        };
        let mut set = scorer.finish_with(similarities);
        set.report.backend = match (&self.gpu, self.gpu_failed) {
            (Some(gpu), false) => format!("gpu: {}", gpu.adapter_name()),
            _ => "cpu".to_owned(),
        };
        set
    }
}

/// Whether the pairwise ROUGE-L work is big enough for `auto` to use a hardware GPU.
fn worth_a_gpu(work: &PairWork<'_>) -> bool {
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
    limb_ops >= AUTO_GPU_LCS_LIMB_OPS
}
