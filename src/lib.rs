//! tracesift in the browser: a Leptos page over the same core as the CLI, with the parsing
//! and scoring in a Web Worker so the page never freezes.

pub mod app;
pub mod charts_view;
pub mod data_link;
pub mod embedding;
pub mod evaluation_view;
pub mod fragment;
pub mod helpers;
pub mod measured_canvas;
pub mod offline;
pub mod page_worker;
pub mod protocol;
pub mod requests;
pub mod settings_view;
pub mod summary_view;
pub mod timeline;
pub mod traces;
pub mod worker;
