//! tracesift's scoring core: trace model, importers, answers, uncertainty scores, filter,
//! evaluation and exports. No I/O, no UI, no GPU: bytes and settings in, values and
//! diagnostics out, so the CLI and the browser app run exactly the same code.

pub mod import;
pub mod json;
pub mod split;
pub mod trace;
