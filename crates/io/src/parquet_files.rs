//! Parquet in and out: canonical-column files read as Arrow batches, and exports written
//! as Parquet.

use std::io::Write;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::ChunkReader;

/// Rows per batch read: large enough to amortise the JSON encoding, small enough that a
/// batch of long traces stays well within memory.
const READ_BATCH_ROWS: usize = 1024;

/// The record batches of a Parquet file, read lazily, one row group after another.
pub fn read_batches<Source: ChunkReader + 'static>(
    source: Source,
) -> Result<ParquetRecordBatchReader, ParquetError> {
    ParquetRecordBatchReaderBuilder::try_new(source)?
        .with_batch_size(READ_BATCH_ROWS)
        .build()
}

/// Writes batches as one Parquet file (zstd, as pyarrow and polars read by default).
pub fn write_batches(
    schema: Arc<Schema>,
    batches: &[RecordBatch],
    out: impl Write + Send,
) -> Result<(), ParquetError> {
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer = ArrowWriter::try_new(out, schema, Some(properties))?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(())
}

/// A canonical export (JSONL) as a Parquet file: the same records and `scores`, in
/// columns.
pub fn write_jsonl_as_parquet(jsonl: &[u8], out: impl Write + Send) -> Result<(), ParquetError> {
    let (schema, batches) = crate::tables::jsonl_to_batches(jsonl)
        .map_err(|error: ArrowError| ParquetError::External(Box::new(error)))?;
    write_batches(schema, &batches, out)
}
