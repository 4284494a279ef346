//! Components mounted in headless Chromium (wasm-bindgen-test) on a real scored set.
#![cfg(target_arch = "wasm32")]
// Helpers in test crates may panic: a panic here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use leptos::prelude::*;
use tracesift_core::dataset::{ScoredSet, score_bytes};
use tracesift_core::filter::{self, FilterOptions};
use tracesift_core::settings::{Rule, Settings};
use tracesift_web::summary_view::{ClassCounts, Summary};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

fn small_set() -> ScoredSet {
    let bytes = include_bytes!("data/small.jsonl");
    score_bytes(&Settings::default(), &[("small.jsonl", &bytes[..])]).unwrap()
}

fn host() -> web_sys::HtmlElement {
    let document = web_sys::window().unwrap().document().unwrap();
    let host = document.create_element("div").unwrap();
    document.body().unwrap().append_child(&host).unwrap();
    host.unchecked_into()
}

#[wasm_bindgen_test]
fn summary_says_traces_questions_classes_format_and_skipped_lines() {
    let host = host();
    let scored = RwSignal::new(Some(Arc::new(small_set())));
    let handle = leptos::mount::mount_to(host.clone(), move || view! { <Summary scored=scored /> });
    let text = host.text_content().unwrap();
    assert!(
        text.contains(
            "6 traces, 2 questions, 2 classes, format canonical; 8 lines read, 2 skipped."
        ),
        "{text}"
    );
    assert!(
        text.contains("line 6: not JSON: the line starts with `this is not json`"),
        "{text}"
    );
    assert!(
        text.contains("line 8: `tokens` has 1 entries but `logprobs` has 0"),
        "{text}"
    );
    assert!(
        host.query_selector("[data-testid=summary]")
            .unwrap()
            .is_some()
    );
    drop(handle);
}

#[wasm_bindgen_test]
fn class_counts_follow_the_filter() {
    let host = host();
    let set = small_set();
    let mut settings = Settings::default();
    settings.set_rule(Rule::Keep(0.5));
    let selection = filter::select(&set, &FilterOptions::from_settings(&settings).unwrap());
    let scored = RwSignal::new(Some(Arc::new(set)));
    let selection = Memo::new(move |_| Some(selection.clone()));
    let table_filter = RwSignal::new(None);
    let handle = leptos::mount::mount_to(host.clone(), move || {
        view! { <ClassCounts scored=scored selection=selection table_filter=table_filter /> }
    });
    let rows: Vec<String> = {
        let cells = host.query_selector_all("tbody tr").unwrap();
        (0..cells.length())
            .filter_map(|idx| cells.item(idx))
            .map(|row| row.text_content().unwrap_or_default())
            .collect()
    };
    // down: 3 traces, ⌈0.5·3⌉ = 2 kept; up: 2 traces, 1 kept; ∅: 1 trace, never kept.
    assert_eq!(rows, ["down32", "up21", "∅10"]);
    assert!(host.text_content().unwrap().contains("3 traces kept."));
    // A class (not ∅) is a button that shows only its traces in the table.
    let buttons = host.query_selector_all("tbody button").unwrap();
    assert_eq!(buttons.length(), 2, "down and up, not ∅");
    let down: web_sys::HtmlElement = buttons.item(0).unwrap().dyn_into().unwrap();
    down.click();
    let down_idx = scored.with_untracked(|set| {
        set.as_ref()
            .unwrap()
            .classes
            .iter()
            .position(|class| class == "down")
            .unwrap() as u32
    });
    assert_eq!(
        table_filter.get_untracked(),
        Some(tracesift_web::traces::TableFilter::class(down_idx))
    );
    drop(handle);
}
