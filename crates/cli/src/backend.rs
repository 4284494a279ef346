//! The CLI's side of [`tracesift_gpu::Engine`]: `--backend gpu` needs a device before any
//! input is read; `auto` starts one only once the input shows it would pay off.

use tracesift_core::dataset::{ScoredSet, Scorer};
use tracesift_core::settings::Backend;
use tracesift_gpu::{Engine, Gpu};

use crate::run::BadArguments;

pub struct CliEngine(Engine);

impl CliEngine {
    /// Fails (exit code 2) for `--backend gpu` when no adapter is found.
    pub fn new(choice: Backend) -> anyhow::Result<Self> {
        let gpu = match choice {
            Backend::Gpu => Some(std::rc::Rc::new(Gpu::new_blocking().map_err(|error| {
                BadArguments(format!(
                    "--backend gpu: {error} (install a Vulkan driver, e.g. Debian's mesa-vulkan-drivers, or use --backend cpu)"
                ))
            })?)),
            Backend::Auto | Backend::Cpu => None,
        };
        let warn = Box::new(|message: &str| eprintln!("tracesift: {message}"));
        Ok(Self(Engine::new(choice, gpu, warn)))
    }

    pub fn prepare(&self, scorer: &mut Scorer) {
        self.0.prepare(scorer);
    }

    pub fn after_chunk(&mut self, scorer: &mut Scorer) {
        pollster::block_on(self.0.after_chunk(scorer));
    }

    /// The device `semantic` embeds on, if any: `auto` starts one now (a hardware GPU only).
    pub fn embedding_gpu(&mut self) -> Option<std::rc::Rc<Gpu>> {
        if self.0.wants_gpu_for_embedding() {
            self.0.set_gpu(Gpu::new_blocking().ok());
        }
        self.0.embedding_gpu()
    }

    pub fn embedded_on_gpu(&mut self) {
        self.0.embedded_on_gpu();
    }

    /// A GPU failure while embedding: warned about, and the CPU takes over.
    pub fn fail(&mut self, error: &tracesift_gpu::GpuError) {
        self.0.fail(error);
    }

    pub fn finish(mut self, mut scorer: Scorer) -> ScoredSet {
        if self.0.wants_gpu(&mut scorer) {
            // A failed start only means the CPU does it.
            self.0.set_gpu(Gpu::new_blocking().ok());
        }
        pollster::block_on(self.0.finish(scorer))
    }
}
