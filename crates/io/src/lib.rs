//! Files in and out of the tracesift core, shared by the CLI and the Python module: inputs
//! (JSONL, JSON, gzip, Parquet, Arrow batches) streamed into the core's `Scorer`, kept
//! records read back for exports, score tables as Arrow, exports as Parquet. The core
//! itself does no I/O and knows nothing of Arrow.

pub mod input;
#[cfg(feature = "parquet")]
pub mod parquet_files;
pub mod records;
pub mod tables;

pub use input::{Input, InputError, NoProgress, Progress, RecordStore, Threads, feed_inputs};
