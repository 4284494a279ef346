//! tracesift's scoring core: trace model, importers, answers, uncertainty scores, filter,
//! evaluation and exports. No I/O, no UI, no GPU: bytes and settings in, values and
//! diagnostics out, so the CLI and the browser app run exactly the same code.

pub mod answer;
pub mod chat_template;
pub mod compare;
pub mod dataset;
pub mod eval;
pub mod evaluate;
pub mod exp;
pub mod export;
pub mod filter;
pub mod import;
pub mod json;
pub mod metrics;
pub mod parts;
pub mod requests;
pub mod score;
pub mod settings;
pub mod signals;
pub mod similarity;
pub mod split;
pub mod stream;
pub mod trace;
