//! Scored runs as Arrow tables: the score rows of `tracesift score` (columns from the
//! core's metric table) and canonical exports read back into columns.

use std::io::Cursor;
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, StringBuilder, UInt32Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use tracesift_core::dataset::{ScoredSet, TraceScores};
use tracesift_core::metrics::{ColumnSet, score_columns};

/// The score-row columns (SPEC §10) in order: the trace fields, then every score column
/// of the metric table.
pub fn score_schema() -> Schema {
    let mut fields = vec![
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("question_id", DataType::Utf8, false),
        Field::new("class", DataType::Utf8, true),
        Field::new("greedy", DataType::Boolean, false),
        Field::new("n_tokens", DataType::UInt32, false),
        Field::new("invalid_tokens", DataType::UInt32, false),
    ];
    for column in score_columns(ColumnSet::ScoreRow) {
        fields.push(Field::new(column.name(), DataType::Float64, true));
    }
    Schema::new(fields)
}

/// One row per trace of `set` (those `chosen` marks, when given), in input order, with the
/// columns of [`score_schema`]: the same values `tracesift score` writes as JSON.
pub fn score_table(set: &ScoredSet, chosen: Option<&[bool]>) -> Result<RecordBatch, ArrowError> {
    let traces: Vec<&TraceScores> = match chosen {
        None => set.traces.iter().collect(),
        Some(chosen) => set
            .traces
            .iter()
            .zip(chosen)
            .filter(|(_, is_chosen)| **is_chosen)
            .map(|(trace, _)| trace)
            .collect(),
    };
    let n_rows = traces.len();
    let mut trace_ids = StringBuilder::with_capacity(n_rows, n_rows * 16);
    let mut question_ids = StringBuilder::with_capacity(n_rows, n_rows * 16);
    let mut classes = StringBuilder::with_capacity(n_rows, n_rows * 4);
    let mut greedy = BooleanBuilder::with_capacity(n_rows);
    let mut n_tokens = UInt32Builder::with_capacity(n_rows);
    let mut invalid_tokens = UInt32Builder::with_capacity(n_rows);
    for trace in &traces {
        trace_ids.append_value(&trace.trace_id);
        question_ids.append_value(set.question_id(trace));
        classes.append_option(set.class_name(trace.class));
        greedy.append_value(trace.greedy);
        n_tokens.append_value(trace.n_tokens);
        invalid_tokens.append_value(trace.invalid_tokens);
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(trace_ids.finish()),
        Arc::new(question_ids.finish()),
        Arc::new(classes.finish()),
        Arc::new(greedy.finish()),
        Arc::new(n_tokens.finish()),
        Arc::new(invalid_tokens.finish()),
    ];
    for column in score_columns(ColumnSet::ScoreRow) {
        let mut values = Float64Builder::with_capacity(n_rows);
        for trace in &traces {
            values.append_option(column.value(trace));
        }
        columns.push(Arc::new(values.finish()));
    }
    RecordBatch::try_new(Arc::new(score_schema()), columns)
}

/// JSONL (a canonical export: the kept records with their `scores` objects) read into
/// Arrow batches, the schema inferred from every line.
pub fn jsonl_to_batches(jsonl: &[u8]) -> Result<(Arc<Schema>, Vec<RecordBatch>), ArrowError> {
    let (schema, _) = arrow_json::reader::infer_json_schema(Cursor::new(jsonl), None)?;
    let schema = Arc::new(schema);
    let reader = arrow_json::ReaderBuilder::new(Arc::clone(&schema))
        .with_batch_size(8192)
        .build(Cursor::new(jsonl))?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok((schema, batches))
}
