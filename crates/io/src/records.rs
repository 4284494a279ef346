//! Arrow rows as canonical trace records (SPEC §2): each row becomes one JSONL line, so
//! Parquet files and Arrow tables take the same import path as JSONL files and export
//! byte for byte as what was scored.

use arrow_array::RecordBatch;
use arrow_json::writer::{LineDelimited, WriterBuilder};
use arrow_schema::ArrowError;

/// Encodes batches as canonical JSONL, reusing one buffer. Null values leave their field
/// out (an absent `answer` is extracted from `text`, as in a JSONL file); a NaN inside a
/// list is written as `null`, which the importer counts as an invalid log-prob.
#[derive(Debug, Default)]
pub struct JsonlEncoder {
    buffer: Vec<u8>,
}

impl JsonlEncoder {
    /// The batch's rows, one JSON object per line.
    pub fn encode(&mut self, batch: &RecordBatch) -> Result<&[u8], ArrowError> {
        self.buffer.clear();
        let mut writer = WriterBuilder::new()
            .with_explicit_nulls(false)
            .build::<_, LineDelimited>(&mut self.buffer);
        writer.write(batch)?;
        writer.finish()?;
        drop(writer);
        Ok(&self.buffer)
    }
}

/// All rows of some batches as canonical JSONL.
pub fn batches_to_jsonl(batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let mut encoder = JsonlEncoder::default();
    let mut out = Vec::new();
    for batch in batches {
        out.extend_from_slice(encoder.encode(batch)?);
    }
    Ok(out)
}
