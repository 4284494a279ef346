//! The progress bar on stderr while inputs are read (only when stderr is a terminal).

use std::io::{self, IsTerminal};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracesift_io::Progress;

/// One input's bar.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// A bar for an input of `size` bytes (a spinner when the size is unknown); hidden unless
/// stderr is a terminal.
pub fn bar_for(name: &str, size: Option<u64>) -> Arc<dyn Progress> {
    if !io::stderr().is_terminal() {
        return Arc::new(Bar(ProgressBar::hidden()));
    }
    let bar = match size {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg} {spinner} {bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.set_message(name.to_owned());
    Arc::new(Bar(bar))
}

/// A bar counting texts embedded for `semantic` (its length is set once the texts are
/// known); hidden unless stderr is a terminal.
pub fn texts_bar() -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("embedding texts [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar
}
