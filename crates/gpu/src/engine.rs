//! Which backend does a run's arithmetic, shared by the CLI and the app's worker.
//!
//! - `gpu`: the token sums, the pairwise similarities and `semantic`'s embedding model run
//!   on the GPU.
//! - `auto`: parsing and token sums stay on the CPU (parsing is the bottleneck: sending
//!   the log-probs to a GPU costs more than adding them up as they pass); large ROUGE-L
//!   work ([`gpu_pays_off`]) and the embedding model (always far heavier than a device
//!   start) move to a hardware GPU. A software adapter (lavapipe, SwiftShader) is never
//!   chosen by `auto`: correct, but slower than the CPU.
//! - `cpu`: nothing runs on the GPU.
//!
//! A GPU error mid-run is reported once through the warning callback and the run
//! finishes on the CPU. The report names what ran: `cpu` or `gpu: <adapter>`.

use std::rc::Rc;

use tracesift_core::dataset::{PairItems, ScoredSet, Scorer};
use tracesift_core::settings::Backend;

use crate::{FLUSH_VALUES, Gpu, GpuError, gpu_pays_off};

pub struct Engine {
    choice: Backend,
    gpu: Option<Rc<Gpu>>,
    failed: bool,
    embedded_on_gpu: bool,
    warn: Box<dyn Fn(&str)>,
}

impl Engine {
    /// `gpu`: the device to use, if there is one (`auto` may be given one later, see
    /// [`Engine::wants_gpu`]).
    pub fn new(choice: Backend, gpu: Option<Rc<Gpu>>, warn: Box<dyn Fn(&str)>) -> Self {
        let gpu = gpu.filter(|_| choice != Backend::Cpu);
        Self {
            choice,
            gpu,
            failed: false,
            embedded_on_gpu: false,
            warn,
        }
    }

    /// Sets the scorer up before it is fed.
    pub fn prepare(&self, scorer: &mut Scorer) {
        if self.tokens_on_gpu() {
            scorer.defer_token_stats();
        }
    }

    fn tokens_on_gpu(&self) -> bool {
        self.choice == Backend::Gpu && self.gpu.is_some()
    }

    /// Whether `auto` would use a GPU for what the scorer holds but has none yet: callers
    /// that start devices lazily (the CLI) ask before [`Engine::finish`].
    pub fn wants_gpu(&self, scorer: &mut Scorer) -> bool {
        self.choice == Backend::Auto && self.gpu.is_none() && gpu_pays_off(&scorer.pair_work())
    }

    pub fn set_gpu(&mut self, gpu: Option<Gpu>) {
        self.gpu = gpu.map(Rc::new);
    }

    /// Whether `auto` would embed `semantic`'s texts on a GPU but has none yet: callers
    /// that start devices lazily ask before [`Engine::embedding_gpu`].
    pub fn wants_gpu_for_embedding(&self) -> bool {
        self.choice == Backend::Auto && self.gpu.is_none()
    }

    /// The device to run the embedding model on, if this run uses one for it.
    pub fn embedding_gpu(&self) -> Option<Rc<Gpu>> {
        let gpu = self.gpu.clone().filter(|_| !self.failed)?;
        match self.choice {
            Backend::Gpu => Some(gpu),
            Backend::Auto => (!gpu.is_software()).then_some(gpu),
            Backend::Cpu => None,
        }
    }

    /// Tells the engine the texts were embedded on its GPU (the report names it).
    pub fn embedded_on_gpu(&mut self) {
        self.embedded_on_gpu = true;
    }

    /// A GPU error outside the engine's own work (the embedding model): warned about
    /// once, and the rest of the run stays on the CPU.
    pub fn fail(&mut self, error: &GpuError) {
        if !self.failed {
            (self.warn)(&format!("{error}; finishing on the CPU"));
        }
        self.failed = true;
    }

    /// Between chunks: sends the collected tokens to the GPU once there are enough.
    pub async fn after_chunk(&mut self, scorer: &mut Scorer) {
        if scorer.pending_values() >= FLUSH_VALUES {
            self.flush_tokens(scorer).await;
        }
    }

    async fn flush_tokens(&mut self, scorer: &mut Scorer) {
        let Some(tokens) = scorer.take_tokens() else {
            return;
        };
        let mut stats = None;
        if let Some(gpu) = self.gpu.clone().filter(|_| !self.failed) {
            match gpu.token_sums(&tokens.batch).await {
                Ok(sums) => stats = Some(sums),
                Err(error) => self.fail(&error),
            }
        }
        let stats = stats.unwrap_or_else(|| tokens.batch.cpu_stats());
        scorer.apply_token_stats(&tokens, &stats);
    }

    /// Ends the run: the last tokens, then consistency on the chosen backend.
    pub async fn finish(mut self, mut scorer: Scorer) -> ScoredSet {
        self.flush_tokens(&mut scorer).await;
        let work = scorer.pair_work();
        let pairs_on_gpu = !matches!(work.items, PairItems::None)
            && match self.choice {
                Backend::Gpu => true,
                Backend::Auto => {
                    self.gpu.as_ref().is_some_and(|gpu| !gpu.is_software()) && gpu_pays_off(&work)
                }
                Backend::Cpu => false,
            };
        let mut similarities = None;
        if let Some(gpu) = self.gpu.clone().filter(|_| pairs_on_gpu && !self.failed) {
            match gpu.pair_similarities(&work).await {
                Ok(found) => similarities = Some(found),
                Err(error) => self.fail(&error),
            }
        }
        let used_gpu = !self.failed
            && (self.tokens_on_gpu() || similarities.is_some() || self.embedded_on_gpu);
        let mut set = scorer.finish_with(similarities);
        set.report.backend = match &self.gpu {
            Some(gpu) if used_gpu => format!("gpu: {}", gpu.adapter_name()),
            _ => "cpu".to_owned(),
        };
        set
    }
}
