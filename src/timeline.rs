//! The page's main-thread timeline: named marks (User Timing) and work put off until the
//! page is idle. Each of the page's own tasks that can take long on a big file (reading a
//! worker message, showing a run, the table's rows, a chart) marks its start, so a profile,
//! and `tests/e2e/bench-app.mjs`, can say what a long main-thread task was doing.

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;

/// The longest [`when_idle`] waits for an idle moment, in milliseconds.
const IDLE_TIMEOUT_MS: u32 = 1_000;

/// Marks the start of `what` on the timeline; nothing happens where there is no
/// `performance` (a worker) or marking fails.
pub fn mark(what: &str) {
    if let Some(performance) = web_sys::window().and_then(|window| window.performance()) {
        let _ = performance.mark(what);
    }
}

/// Runs `work` when the page is next idle (`requestIdleCallback`), at the latest after
/// [`IDLE_TIMEOUT_MS`]; in the next task where the browser has no idle callbacks (Safari).
pub fn when_idle(work: impl FnOnce() + 'static) {
    let Some(window) = web_sys::window() else {
        work();
        return;
    };
    let callback = Closure::once_into_js(work);
    let options = web_sys::IdleRequestOptions::new();
    options.set_timeout(IDLE_TIMEOUT_MS);
    if window
        .request_idle_callback_with_options(callback.unchecked_ref(), &options)
        .is_err()
    {
        let _ = window.set_timeout_with_callback(callback.unchecked_ref());
    }
}
