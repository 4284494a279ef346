//! The `tracesift._tracesift` extension: thin glue between Python and the core. Arguments
//! arrive as Arrow streams (the PyCapsule interface), paths, bytes and a settings JSON;
//! the work runs with the GIL released; tables leave as Arrow; errors become `ValueError`
//! with the core's message. The Python package around it (`python/tracesift`) turns
//! keyword arguments into settings and sources into inputs.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow_pyarrow::{FromPyArrow, IntoPyArrow, Table};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tracesift_core::compare::{DEFAULT_RESAMPLES, EvalOutput, agreement, rank_metrics};
use tracesift_core::dataset::{
    GatheredTrace, ScoreOptions, ScoredSet, Scorer, TracePart, gather_run, score_gathered_question,
};
use tracesift_core::evaluate::evaluate as evaluate_set;
use tracesift_core::export::{self as core_export, ExportOptions};
use tracesift_core::filter::{self as core_filter, FilterOptions};
use tracesift_core::settings::{Backend, ExportFormat, Settings, Similarity};
use tracesift_io::{Input, NoProgress, Progress, RecordStore, Threads};

/// How many skipped lines a "nothing usable" error names before it only counts them.
const MAX_SKIPS_NAMED: usize = 20;

/// The Parquet export's name, beside the core's export formats.
const PARQUET_EXPORT: &str = "parquet";

fn value_error(error: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(error.to_string())
}

/// The settings JSON's keys, for the Python side to check keyword arguments against.
#[pyfunction]
fn settings_keys() -> PyResult<Vec<String>> {
    let value = serde_json::to_value(Settings::default()).map_err(value_error)?;
    Ok(value
        .as_object()
        .map(|object| object.keys().cloned().collect())
        .unwrap_or_default())
}

/// The metric table's names, in its order.
#[pyfunction]
fn metric_names() -> Vec<&'static str> {
    tracesift_core::metrics::Metric::ALL
        .iter()
        .map(|metric| metric.name())
        .collect()
}

/// Settings from their JSON, checked as the CLI checks them; the module runs on the CPU.
fn settings_from(settings_json: &str) -> PyResult<Settings> {
    let settings = Settings::from_json(settings_json).map_err(|error| {
        // An unknown key is a wrong keyword argument.
        if error.to_string().contains("unknown field") {
            PyTypeError::new_err(error.to_string())
        } else {
            value_error(error)
        }
    })?;
    settings.window().map_err(value_error)?;
    settings.combine_metrics().map_err(value_error)?;
    settings.rule().map_err(value_error)?;
    if settings.backend == Backend::Gpu {
        return Err(value_error(
            "backend `gpu` is the CLI's; the Python module scores on the CPU",
        ));
    }
    Ok(settings)
}

/// Inputs as the Python side hands them: `("path", str)`, `("bytes", bytes)` or
/// `("arrow", object with __arrow_c_stream__)`. Arrow streams are read here, with the GIL.
fn inputs_from(inputs: Vec<(String, Bound<'_, PyAny>)>) -> PyResult<Vec<Input>> {
    let mut converted = Vec::with_capacity(inputs.len());
    for (index, (kind, value)) in inputs.into_iter().enumerate() {
        converted.push(match kind.as_str() {
            "path" => Input::Path(value.extract::<String>()?),
            "bytes" => Input::Bytes {
                name: format!("<bytes {}>", index + 1),
                bytes: value.cast::<PyBytes>()?.as_bytes().to_vec(),
            },
            "arrow" => {
                let (batches, _) = Table::from_pyarrow_bound(&value)?.into_inner();
                Input::Batches {
                    name: format!("<table {}>", index + 1),
                    batches,
                }
            }
            other => return Err(value_error(format!("unknown input kind `{other}`"))),
        });
    }
    Ok(converted)
}

/// The embedding model of `semantic`, loaded once per process (a Ray worker scores many
/// batches), with the folder it came from.
static MODEL: Mutex<Option<(PathBuf, Arc<tracesift_embed::Model>)>> = Mutex::new(None);

/// `semantic`: embeds the texts the scorer holds with the model in `$TRACESIFT_MODEL_DIR`
/// (`cargo xtask model` fetches it), on every core; any other similarity: nothing to do.
fn embed_texts(scorer: &mut Scorer, settings: &Settings) -> Result<(), String> {
    if settings.sim != Similarity::Semantic {
        return Ok(());
    }
    let dir = std::env::var_os(tracesift_embed::DIR_ENV)
        .map(PathBuf::from)
        .ok_or_else(|| {
            format!(
                "sim=\"semantic\" needs the all-MiniLM-L6-v2 model: set {} to its folder (model.safetensors, tokenizer.json, config.json; `cargo xtask model` fetches it)",
                tracesift_embed::DIR_ENV
            )
        })?;
    let model = {
        let mut held = MODEL
            .lock()
            .map_err(|_| "the model's lock is poisoned".to_owned())?;
        match held.as_ref() {
            Some((from, model)) if *from == dir => Arc::clone(model),
            _ => {
                let model = Arc::new(
                    tracesift_embed::load_dir(&dir)
                        .map_err(|error| format!("sim=\"semantic\": {error}"))?,
                );
                *held = Some((dir, Arc::clone(&model)));
                model
            }
        }
    };
    model
        .embed_scorer(scorer, settings.semantic_part, &|_, _| ())
        .map_err(|error| format!("sim=\"semantic\": {error}"))
}

/// A run's outcome before it is checked for usable traces.
struct Scored {
    set: ScoredSet,
    store: RecordStore,
}

/// Scores the inputs (no GIL held by the caller); fails when nothing usable was found,
/// naming the skipped lines and why, as the CLI's exit code 1 does.
fn score_inputs(
    inputs: &[Input],
    settings: &Settings,
    keep_records: bool,
) -> Result<Scored, String> {
    let options = ScoreOptions::from_settings(settings).map_err(|error| error.to_string())?;
    let mut scorer = Scorer::new(options);
    let store = tracesift_io::feed_inputs(
        inputs,
        &mut scorer,
        keep_records,
        Threads::all_cores(),
        &mut |_, _| -> Arc<dyn Progress> { Arc::new(NoProgress) },
        &mut |_| {},
    )
    .map_err(|error| error.to_string())?;
    embed_texts(&mut scorer, settings)?;
    let set = scorer.finish();
    if set.traces.is_empty() {
        let report = &set.report;
        let mut reasons: Vec<String> = report
            .skipped
            .iter()
            .take(MAX_SKIPS_NAMED)
            .map(|skipped| match &skipped.file {
                Some(file) => format!("{file}:{}: {}", skipped.line, skipped.reason),
                None => format!("line {}: {}", skipped.line, skipped.reason),
            })
            .collect();
        if report.skipped.len() > MAX_SKIPS_NAMED {
            reasons.push(format!(
                "… and {} more skipped lines",
                report.skipped.len() - MAX_SKIPS_NAMED
            ));
        }
        return Err(format!(
            "nothing usable in the input: {} lines read, {} skipped\n{}",
            report.lines,
            report.skipped.len(),
            reasons.join("\n")
        ));
    }
    Ok(Scored { set, store })
}

fn report_json(set: &ScoredSet) -> PyResult<String> {
    serde_json::to_string(&set.report).map_err(value_error)
}

fn table_to_python(
    py: Python<'_>,
    batches: Vec<RecordBatch>,
    schema: Arc<Schema>,
) -> PyResult<Py<PyAny>> {
    Ok(Table::try_new(batches, schema)
        .map_err(value_error)?
        .into_pyarrow(py)?
        .unbind())
}

/// `tracesift score`: one row per trace, in input order; and the run report as JSON.
#[pyfunction]
fn score(
    py: Python<'_>,
    inputs: Vec<(String, Bound<'_, PyAny>)>,
    settings_json: &str,
) -> PyResult<(Py<PyAny>, String)> {
    let settings = settings_from(settings_json)?;
    let inputs = inputs_from(inputs)?;
    let (table, report) = py
        .detach(|| -> Result<_, String> {
            let scored = score_inputs(&inputs, &settings, false)?;
            let table =
                tracesift_io::tables::score_table(&scored.set, None).map_err(|e| e.to_string())?;
            Ok((table, scored.set))
        })
        .map_err(value_error)?;
    let schema = table.schema();
    Ok((
        table_to_python(py, vec![table], schema)?,
        report_json(&report)?,
    ))
}

/// The bytes `tracesift filter --export FORMAT` writes, and the run's set and selection.
fn export_bytes(
    inputs: &[Input],
    settings: &Settings,
    as_parquet: bool,
) -> Result<(Vec<u8>, ScoredSet, usize), String> {
    let filter_options = FilterOptions::from_settings(settings).map_err(|e| e.to_string())?;
    let export_options = ExportOptions::from_settings(settings).map_err(|e| e.to_string())?;
    let Scored { set, mut store } = score_inputs(inputs, settings, true)?;
    let selection = core_filter::select(&set, &filter_options);
    let mut read_back = |record: &tracesift_core::trace::RecordRef| {
        store
            .read(record)
            .map_err(|error| format!("cannot read the record back: {error}"))
    };
    core_export::check_prompts(&set, &selection.kept, &export_options, &mut read_back)
        .map_err(|refusal| format!("{refusal}; give allow_empty_prompt=True to export anyway"))?;
    let mut out = Vec::new();
    core_export::write_selection(
        &set,
        &selection.kept,
        &export_options,
        &mut read_back,
        &mut out,
    )
    .map_err(|error| error.to_string())?;
    if as_parquet {
        let mut parquet = Vec::new();
        tracesift_io::parquet_files::write_jsonl_as_parquet(&out, &mut parquet)
            .map_err(|error| error.to_string())?;
        out = parquet;
    }
    Ok((out, set, selection.n_kept))
}

/// Settings with the export format named `format` (`parquet` is the canonical export in
/// columns); returns whether it is Parquet.
fn with_export_format(settings: &mut Settings, format: &str) -> PyResult<bool> {
    if format == PARQUET_EXPORT {
        settings.export = ExportFormat::Canonical;
        return Ok(true);
    }
    settings.export = ExportFormat::from_name(format).ok_or_else(|| {
        value_error(format!(
            "unknown export format `{format}`; expected {}|{PARQUET_EXPORT}",
            ExportFormat::names()
        ))
    })?;
    Ok(false)
}

/// `tracesift filter --export FORMAT`: the bytes it writes, and the report JSON.
#[pyfunction]
fn export(
    py: Python<'_>,
    inputs: Vec<(String, Bound<'_, PyAny>)>,
    settings_json: &str,
    format: &str,
) -> PyResult<(Py<PyBytes>, String)> {
    let mut settings = settings_from(settings_json)?;
    let as_parquet = with_export_format(&mut settings, format)?;
    let inputs = inputs_from(inputs)?;
    let (bytes, set, _) = py
        .detach(|| export_bytes(&inputs, &settings, as_parquet))
        .map_err(value_error)?;
    Ok((PyBytes::new(py, &bytes).unbind(), report_json(&set)?))
}

/// `tracesift filter` as a table: the kept records (canonical export, `scores` included)
/// read into columns; and the report JSON.
#[pyfunction]
fn filter(
    py: Python<'_>,
    inputs: Vec<(String, Bound<'_, PyAny>)>,
    settings_json: &str,
) -> PyResult<(Py<PyAny>, String)> {
    let mut settings = settings_from(settings_json)?;
    settings.export = ExportFormat::Canonical;
    let inputs = inputs_from(inputs)?;
    let (schema, batches, set) = py
        .detach(|| -> Result<_, String> {
            let (jsonl, set, _) = export_bytes(&inputs, &settings, false)?;
            let (schema, batches) =
                tracesift_io::tables::jsonl_to_batches(&jsonl).map_err(|e| e.to_string())?;
            Ok((schema, batches, set))
        })
        .map_err(value_error)?;
    Ok((table_to_python(py, batches, schema)?, report_json(&set)?))
}

/// `tracesift eval`: its JSON, and the report JSON.
#[pyfunction]
#[pyo3(signature = (inputs, settings_json, resamples = DEFAULT_RESAMPLES))]
fn evaluate(
    py: Python<'_>,
    inputs: Vec<(String, Bound<'_, PyAny>)>,
    settings_json: &str,
    resamples: u32,
) -> PyResult<(String, String)> {
    let settings = settings_from(settings_json)?;
    let inputs = inputs_from(inputs)?;
    py.detach(|| -> Result<_, String> {
        let options = FilterOptions::from_settings(&settings).map_err(|e| e.to_string())?;
        let Scored { set, .. } = score_inputs(&inputs, &settings, false)?;
        let report = evaluate_set(&set, &options);
        let ranking = rank_metrics(&set, resamples, settings.seed);
        let output = EvalOutput {
            report: &report,
            ranking: (ranking.n > 0).then_some(&ranking),
            agreement: &agreement(&set),
        };
        let eval_json = serde_json::to_string(&output).map_err(|e| e.to_string())?;
        let report_json = serde_json::to_string(&set.report).map_err(|e| e.to_string())?;
        Ok((eval_json, report_json))
    })
    .map_err(value_error)
}

/// A column of per-row JSON blobs (binary or large binary, as Ray may hand it back).
fn blobs(column: &ArrayRef) -> PyResult<Vec<&[u8]>> {
    let rows: Vec<Option<&[u8]>> = match column.data_type() {
        DataType::Binary => column.as_binary::<i32>().iter().collect(),
        DataType::LargeBinary => column.as_binary::<i64>().iter().collect(),
        DataType::BinaryView => column.as_binary_view().iter().collect(),
        other => {
            return Err(value_error(format!(
                "expected a binary column, got {other}"
            )));
        }
    };
    rows.into_iter()
        .map(|row| row.ok_or_else(|| value_error("a null in a column of scored parts")))
        .collect()
}

/// The blob column named `name` of every batch of a table.
fn table_blobs<'a>(batches: &'a [RecordBatch], name: &str) -> PyResult<Vec<&'a [u8]>> {
    let mut all = Vec::new();
    for batch in batches {
        let column = batch
            .column_by_name(name)
            .ok_or_else(|| value_error(format!("no `{name}` column")))?;
        all.extend(blobs(column)?);
    }
    Ok(all)
}

fn blob_table(
    py: Python<'_>,
    keys: Vec<(String, String)>,
    blob_name: &str,
    values: Vec<Vec<u8>>,
) -> PyResult<Py<PyAny>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("question_id", DataType::Utf8, false),
        Field::new("trace_id", DataType::Utf8, false),
        Field::new(blob_name, DataType::Binary, false),
    ]));
    let question_ids: StringArray = keys.iter().map(|(q, _)| Some(q.as_str())).collect();
    let trace_ids: StringArray = keys.iter().map(|(_, t)| Some(t.as_str())).collect();
    let values: BinaryArray = values.iter().map(|v| Some(v.as_slice())).collect();
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(question_ids),
            Arc::new(trace_ids),
            Arc::new(values),
        ],
    )
    .map_err(|error: ArrowError| value_error(error))?;
    table_to_python(py, vec![batch], schema)
}

/// The per-trace pass (Ray `map_batches`): a batch of canonical rows scored as far as one
/// trace allows — token signals, class, similarity payload — and returned as one row per
/// trace (`question_id`, `trace_id`, `part`), without the tokens. Also the batch's
/// skipped rows as JSON.
#[pyfunction]
fn trace_pass(
    py: Python<'_>,
    batch: Bound<'_, PyAny>,
    settings_json: &str,
) -> PyResult<(Py<PyAny>, String)> {
    let settings = settings_from(settings_json)?;
    let (batches, _) = Table::from_pyarrow_bound(&batch)?.into_inner();
    let (keys, values, skipped) = py
        .detach(|| -> Result<_, String> {
            let options = ScoreOptions::from_settings(&settings).map_err(|e| e.to_string())?;
            let mut scorer = Scorer::for_part(options, "<batch>", 0);
            let mut encoder = tracesift_io::records::JsonlEncoder::default();
            for batch in &batches {
                scorer.feed(encoder.encode(batch).map_err(|e| e.to_string())?);
            }
            // Each batch's texts are embedded where the batch is: the heavy work spreads
            // over the cluster with the batches.
            embed_texts(&mut scorer, &settings)?;
            let (parts, skipped, _) = scorer.into_part().split_by_trace();
            let mut keys = Vec::with_capacity(parts.len());
            let mut values = Vec::with_capacity(parts.len());
            for part in parts {
                keys.push((part.question_id.clone(), part.trace_id.clone()));
                values.push(serde_json::to_vec(&part).map_err(|e| e.to_string())?);
            }
            let skipped = serde_json::to_string(&skipped).map_err(|e| e.to_string())?;
            Ok((keys, values, skipped))
        })
        .map_err(value_error)?;
    Ok((blob_table(py, keys, "part", values)?, skipped))
}

/// The per-question pass (Ray `map_groups`): one question's trace parts gathered, scored
/// together (consistency, answer entropy, graph signals); one row per trace
/// (`question_id`, `trace_id`, `scored`).
#[pyfunction]
fn question_pass(
    py: Python<'_>,
    group: Bound<'_, PyAny>,
    settings_json: &str,
) -> PyResult<Py<PyAny>> {
    let settings = settings_from(settings_json)?;
    let (batches, _) = Table::from_pyarrow_bound(&group)?.into_inner();
    let parts: Vec<TracePart> = table_blobs(&batches, "part")?
        .into_iter()
        .map(|blob| serde_json::from_slice(blob).map_err(value_error))
        .collect::<PyResult<_>>()?;
    let (keys, values) = py
        .detach(|| -> Result<_, String> {
            let options = ScoreOptions::from_settings(&settings).map_err(|e| e.to_string())?;
            let set = score_gathered_question(options, parts);
            let mut keys = Vec::new();
            let mut values = Vec::new();
            for gathered in GatheredTrace::from_set(set) {
                keys.push((
                    gathered.question_id.clone(),
                    gathered.scores.trace_id.clone(),
                ));
                values.push(serde_json::to_vec(&gathered).map_err(|e| e.to_string())?);
            }
            Ok((keys, values))
        })
        .map_err(value_error)?;
    blob_table(py, keys, "scored", values)
}

/// The run-wide pass over every trace's scores (never tokens): `combo` ranked over the
/// run, then the filter of SPEC §6. Returns the score table (rows in the given order) and
/// whether the filter keeps each row.
#[pyfunction]
fn gather(
    py: Python<'_>,
    scored: Bound<'_, PyAny>,
    settings_json: &str,
) -> PyResult<(Py<PyAny>, Vec<bool>)> {
    let settings = settings_from(settings_json)?;
    let (batches, _) = Table::from_pyarrow_bound(&scored)?.into_inner();
    let gathered: Vec<GatheredTrace> = table_blobs(&batches, "scored")?
        .into_iter()
        .map(|blob| serde_json::from_slice(blob).map_err(value_error))
        .collect::<PyResult<_>>()?;
    let (table, kept) = py
        .detach(|| -> Result<_, String> {
            let combine = settings.combine_metrics().map_err(|e| e.to_string())?;
            let options = FilterOptions::from_settings(&settings).map_err(|e| e.to_string())?;
            let set = gather_run(gathered, &combine);
            let selection = core_filter::select(&set, &options);
            let table = tracesift_io::tables::score_table(&set, None).map_err(|e| e.to_string())?;
            Ok((table, selection.kept))
        })
        .map_err(value_error)?;
    let schema = table.schema();
    Ok((table_to_python(py, vec![table], schema)?, kept))
}

#[pymodule]
fn _tracesift(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(settings_keys, module)?)?;
    module.add_function(wrap_pyfunction!(metric_names, module)?)?;
    module.add_function(wrap_pyfunction!(score, module)?)?;
    module.add_function(wrap_pyfunction!(filter, module)?)?;
    module.add_function(wrap_pyfunction!(export, module)?)?;
    module.add_function(wrap_pyfunction!(evaluate, module)?)?;
    module.add_function(wrap_pyfunction!(trace_pass, module)?)?;
    module.add_function(wrap_pyfunction!(question_pass, module)?)?;
    module.add_function(wrap_pyfunction!(gather, module)?)?;
    Ok(())
}
