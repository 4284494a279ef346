//! The three commands: settings from `--config` and flags, scoring, and writing outputs.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tracesift_core::compare::{EvalOutput, Interval, agreement, rank_metrics};
use tracesift_core::dataset::{ScoreOptions as CoreScoreOptions, ScoredSet, Scorer};
use tracesift_core::evaluate::evaluate;
use tracesift_core::export::{self, ExportOptions};
use tracesift_core::filter::{self, FilterOptions};
use tracesift_core::settings::{
    Backend, Candidates, ExportFormat, FormatChoice, Metric, Rule, Scope, SemanticPart, Settings,
    Similarity,
};

use crate::args::{Cli, Command, FilterRuleArgs, ScoreOptions};
use crate::backend::CliEngine;
use tracesift_io::{Input, InputError, RecordStore, Threads};

/// An error in what the user asked for (exit code 2).
#[derive(Debug)]
pub struct BadArguments(pub String);

impl std::fmt::Display for BadArguments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadArguments {}

fn bad(message: impl Into<String>) -> anyhow::Error {
    BadArguments(message.into()).into()
}

/// How many skipped lines are printed to stderr before the rest are only counted.
const MAX_SKIPS_SHOWN: usize = 20;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Score(args) => {
            let settings = settings_from(&args.common, None)?;
            let (set, _) = score_inputs(&args.common, &settings, false)?;
            let mut out = output(args.common.out.as_deref())?;
            for trace in &set.traces {
                serde_json::to_writer(&mut out, &export::score_row(&set, trace))?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Filter(args) => {
            let mut settings = settings_from(&args.common, Some(&args.rule))?;
            // Parquet is the canonical export in columns: the core writes the records,
            // the I/O crate turns them into a file.
            let mut as_parquet = false;
            if let Some(name) = &args.export {
                if name == PARQUET_EXPORT {
                    settings.export = ExportFormat::Canonical;
                    as_parquet = true;
                } else {
                    settings.export = parse_name(name, "export", ExportFormat::from_name, || {
                        format!("{}|{PARQUET_EXPORT}", ExportFormat::names())
                    })?;
                }
            }
            if let Some(seed) = args.seed {
                settings.seed = seed;
            }
            if let Some(system_prompt) = &args.system_prompt {
                settings.system_prompt = Some(system_prompt.clone());
            }
            if args.allow_empty_prompt {
                settings.allow_empty_prompt = true;
            }
            // Read before scoring, so a missing file fails fast.
            let requests = args
                .requests
                .as_deref()
                .map(crate::requests::read)
                .transpose()?;
            let options =
                FilterOptions::from_settings(&settings).map_err(|e| bad(e.to_string()))?;
            let (set, mut store) = score_inputs(&args.common, &settings, true)?;
            let selection = filter::select(&set, &options);
            let mut export_options =
                ExportOptions::from_settings(&settings).map_err(|e| bad(e.to_string()))?;
            export_options.requests =
                requests.map(|requests| Arc::new(crate::requests::join(requests, &set)));
            crate::requests::check_prompts(&set, &selection.kept, &export_options, &mut store)?;
            let mut out = output(args.common.out.as_deref())?;
            write_export(
                &set,
                &selection.kept,
                &export_options,
                as_parquet,
                &mut store,
                &mut out,
            )?;
            out.flush()?;
            if let Some(path) = &args.random_baseline {
                let sample = filter::random_sample(&set, &options, selection.n_kept, settings.seed);
                crate::requests::check_prompts(&set, &sample, &export_options, &mut store)?;
                let mut file = output(Some(path))?;
                write_export(
                    &set,
                    &sample,
                    &export_options,
                    as_parquet,
                    &mut store,
                    &mut file,
                )?;
                file.flush()?;
            }
            if let Some(path) = &args.unfiltered {
                let everything = filter::unfiltered(&set, &options);
                crate::requests::check_prompts(&set, &everything, &export_options, &mut store)?;
                let mut file = output(Some(path))?;
                write_export(
                    &set,
                    &everything,
                    &export_options,
                    as_parquet,
                    &mut store,
                    &mut file,
                )?;
                file.flush()?;
            }
            let cut_by_ties = selection.groups.iter().filter(|g| g.tie_at_cutoff).count();
            eprintln!(
                "tracesift: kept {} of {} traces ({} by {}, {})",
                selection.n_kept,
                set.traces.len(),
                describe_rule(&options.rule),
                options.metric,
                options.scope
            );
            if cut_by_ties > 0 {
                eprintln!(
                    "tracesift: in {cut_by_ties} group(s) tied scores straddle the cut-off; \
                     the tie-break order (ppl, then trace_id) decided which were kept"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval(args) => {
            let mut settings = settings_from(&args.common, Some(&args.rule))?;
            if let Some(seed) = args.seed {
                settings.seed = seed;
            }
            let options =
                FilterOptions::from_settings(&settings).map_err(|e| bad(e.to_string()))?;
            let (set, _) = score_inputs(&args.common, &settings, false)?;
            let report = evaluate(&set, &options);
            if report.n == 0 {
                eprintln!(
                    "tracesift: no trace has a gold `label`; only how the metrics agree (Spearman) is reported"
                );
            }
            let ranking = rank_metrics(&set, args.resamples, settings.seed);
            if let Some(best) = &ranking.metrics.first().filter(|_| ranking.best.is_some()) {
                eprintln!(
                    "tracesift: best on the {} labelled traces: {} (PRR {}, AUROC {})",
                    ranking.n,
                    best.metric,
                    describe_estimate(best.prr, best.prr_ci),
                    describe_estimate(best.auroc, best.auroc_ci)
                );
            }
            let output_object = EvalOutput {
                report: &report,
                ranking: (ranking.n > 0).then_some(&ranking),
                agreement: &agreement(&set),
            };
            let mut out = output(args.common.out.as_deref())?;
            serde_json::to_writer(&mut out, &output_object)?;
            out.write_all(b"\n")?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `0.412 [0.301, 0.520]`, or `–` when undefined.
fn describe_estimate(value: Option<f64>, interval: Option<Interval>) -> String {
    match (value, interval) {
        (Some(value), Some(ci)) => format!("{value:.3} [{:.3}, {:.3}]", ci.low, ci.high),
        (Some(value), None) => format!("{value:.3}"),
        (None, _) => "–".to_owned(),
    }
}

fn describe_rule(rule: &Rule) -> String {
    match rule {
        Rule::Keep(q) => format!("keep {q}"),
        Rule::Threshold(x) => format!("threshold {x}"),
        Rule::Top(n) => format!("top {n}"),
    }
}

/// Settings: defaults, then `--config`, then flags.
fn settings_from(common: &ScoreOptions, rule: Option<&FilterRuleArgs>) -> anyhow::Result<Settings> {
    let mut settings = match &common.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| bad(format!("cannot read {}: {error}", path.display())))?;
            Settings::from_json(&text)
                .map_err(|error| bad(format!("{}: {error}", path.display())))?
        }
        None => Settings::default(),
    };
    if let Some(name) = &common.format {
        settings.format = FormatChoice::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = tracesift_core::import::Format::ALL
                .iter()
                .map(|format| format.name())
                .collect();
            bad(format!(
                "unknown --format `{name}`; expected auto|{}",
                names.join("|")
            ))
        })?;
    }
    if let Some(name) = &common.sim {
        settings.sim = parse_name(name, "sim", Similarity::from_name, Similarity::names)?;
    }
    if let Some(name) = &common.semantic_part {
        settings.semantic_part = parse_name(
            name,
            "semantic-part",
            SemanticPart::from_name,
            SemanticPart::names,
        )?;
    }
    if let Some(name) = &common.backend {
        settings.backend = parse_name(name, "backend", Backend::from_name, Backend::names)?;
    }
    if let Some(classes) = &common.classes {
        settings.classes = classes.clone();
    }
    if let Some(pattern) = &common.answer_pattern {
        settings.pattern = Some(pattern.clone());
    }
    if let Some(field) = &common.question_field {
        settings.question_field = Some(field.clone());
    }
    if let Some(suffix) = &common.sample_suffix {
        settings.sample_suffix = Some(suffix.clone());
    }
    if let Some(window) = common.window {
        settings.window = window;
    }
    if let Some(combine) = &common.combine {
        settings.combine = combine.clone();
    }
    settings.window().map_err(|error| bad(error.to_string()))?;
    settings
        .combine_metrics()
        .map_err(|error| bad(error.to_string()))?;
    if let Some(rule_args) = rule {
        if let Some(name) = &rule_args.metric {
            settings.metric = parse_name(name, "metric", Metric::from_name, Metric::names)?;
        }
        if let Some(q) = rule_args.keep {
            settings.set_rule(Rule::Keep(q));
        }
        if let Some(x) = rule_args.threshold {
            settings.set_rule(Rule::Threshold(x));
        }
        if let Some(n) = rule_args.top {
            settings.set_rule(Rule::Top(n));
        }
        if let Some(name) = &rule_args.scope {
            settings.scope = parse_name(name, "scope", Scope::from_name, Scope::names)?;
        }
        if let Some(name) = &rule_args.candidates {
            settings.candidates =
                parse_name(name, "candidates", Candidates::from_name, Candidates::names)?;
        }
        if rule_args.balanced {
            settings.balanced = true;
        }
    }
    settings.rule().map_err(|error| bad(error.to_string()))?;
    Ok(settings)
}

fn parse_name<T>(
    name: &str,
    flag: &str,
    from_name: impl Fn(&str) -> Option<T>,
    names: impl Fn() -> String,
) -> anyhow::Result<T> {
    from_name(name).ok_or_else(|| bad(format!("unknown --{flag} `{name}`; expected {}", names())))
}

/// Scores every input, prints skipped lines to stderr, writes `--report`, and fails with
/// exit code 1 when nothing usable was found.
fn score_inputs(
    common: &ScoreOptions,
    settings: &Settings,
    keep_records: bool,
) -> anyhow::Result<(ScoredSet, RecordStore)> {
    let options =
        CoreScoreOptions::from_settings(settings).map_err(|error| bad(error.to_string()))?;
    let mut engine = CliEngine::new(settings.backend)?;
    let mut scorer = Scorer::new(options);
    engine.prepare(&mut scorer);
    let threads = match common.threads {
        Some(count) => Threads {
            count: usize::from(count),
            asked: true,
        },
        None => Threads::all_cores(),
    };
    let inputs: Vec<Input> = common.inputs.iter().cloned().map(Input::Path).collect();
    let store = tracesift_io::feed_inputs(
        &inputs,
        &mut scorer,
        keep_records,
        threads,
        &mut crate::progress::bar_for,
        &mut |scorer| engine.after_chunk(scorer),
    )
    .map_err(|error| match error {
        // A missing or unreadable input is the user's to fix (exit 2).
        InputError::Open { .. } => bad(error.to_string()),
        InputError::Io { .. } => anyhow::Error::new(error),
    })?;
    if settings.sim == Similarity::Semantic {
        embed_texts(&mut scorer, common, settings.semantic_part, &mut engine)?;
    }
    let set = engine.finish(scorer);
    let report = &set.report;
    for skipped in report.skipped.iter().take(MAX_SKIPS_SHOWN) {
        let file = skipped
            .file
            .as_deref()
            .or_else(|| common.inputs.first().map(String::as_str));
        eprintln!(
            "tracesift: {}:{}: skipped: {}",
            file.unwrap_or("-"),
            skipped.line,
            skipped.reason
        );
    }
    if report.skipped.len() > MAX_SKIPS_SHOWN {
        eprintln!(
            "tracesift: … and {} more skipped lines (all are listed by --report)",
            report.skipped.len() - MAX_SKIPS_SHOWN
        );
    }
    for note in &report.notes {
        let lines: Vec<String> = note.lines.iter().map(u64::to_string).collect();
        let more = if note.records > note.lines.len() as u64 {
            ", …"
        } else {
            ""
        };
        eprintln!(
            "tracesift: note: {} — {} in {} records (lines {}{more})",
            note.what,
            note.count,
            note.records,
            lines.join(", ")
        );
    }
    if let Some(path) = &common.report {
        let mut file = output(Some(path))?;
        serde_json::to_writer_pretty(&mut file, report)?;
        file.write_all(b"\n")?;
        file.flush()?;
    }
    if set.traces.is_empty() {
        anyhow::bail!(
            "nothing usable in the input: {} lines read, {} skipped",
            report.lines,
            report.skipped.len()
        );
    }
    Ok((set, store))
}

/// `semantic`: embeds every trace's text with the model and hands the vectors to the
/// scorer: on the GPU where the backend runs one (`gpu`, or `auto` with a hardware GPU),
/// else, or after a GPU failure, on every core. A model that cannot be loaded is the
/// user's to fix (exit 2).
fn embed_texts(
    scorer: &mut Scorer,
    common: &ScoreOptions,
    part: SemanticPart,
    engine: &mut CliEngine,
) -> anyhow::Result<()> {
    let dir = common
        .model_dir
        .clone()
        .or_else(tracesift_embed::default_dir)
        .ok_or_else(|| bad("--sim semantic: name the model's folder with --model-dir"))?;
    let bytes =
        tracesift_embed::read_dir(&dir).map_err(|error| bad(format!("--sim semantic: {error}")))?;
    let checked = bytes
        .files()
        .check()
        .map_err(|error| bad(format!("--sim semantic: {error}")))?;
    let model = tracesift_embed::Model::load(&checked)
        .map_err(|error| bad(format!("--sim semantic: {error}")))?;
    let bar = crate::progress::texts_bar();
    let gpu = engine.embedding_gpu();
    tracesift_embed::embed_scorer_with(scorer, |texts| {
        bar.set_length(texts.len() as u64);
        if let Some(gpu) = gpu {
            let on_gpu = pollster::block_on(async {
                let encoder = tracesift_embed::upload(&gpu, &checked).await?;
                model
                    .embed_on(&gpu, &encoder, texts, part, &mut |done| {
                        bar.set_position(done as u64);
                        true
                    })
                    .await
            });
            match on_gpu {
                Ok(embeddings) => {
                    engine.embedded_on_gpu();
                    return Ok(embeddings);
                }
                Err(tracesift_embed::EmbedError::Gpu(error)) => engine.fail(&error),
                Err(other) => return Err(other),
            }
        }
        model.embed_all(texts, part, &|done| bar.set_position(done as u64))
    })
    .map_err(|error| anyhow::anyhow!("--sim semantic: {error}"))?;
    bar.finish_and_clear();
    Ok(())
}

fn output(path: Option<&Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(path) if path.as_os_str() != "-" => Box::new(BufWriter::with_capacity(
            1 << 20,
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        _ => Box::new(BufWriter::with_capacity(1 << 20, io::stdout().lock())),
    })
}

/// The `--export` name of a Parquet file of the canonical records and their scores.
const PARQUET_EXPORT: &str = "parquet";

/// Writes the traces marked in `chosen`, in input order, in the export format (as a
/// Parquet file of the canonical export when `as_parquet`).
fn write_export(
    set: &ScoredSet,
    chosen: &[bool],
    options: &ExportOptions,
    as_parquet: bool,
    store: &mut RecordStore,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if as_parquet {
        let mut jsonl = Vec::new();
        write_export(set, chosen, options, false, store, &mut jsonl)?;
        let mut parquet = Vec::new();
        tracesift_io::parquet_files::write_jsonl_as_parquet(&jsonl, &mut parquet)
            .context("cannot write the Parquet export")?;
        out.write_all(&parquet)?;
        return Ok(());
    }
    let warnings = export::write_selection(
        set,
        chosen,
        options,
        |record| {
            store
                .read(record)
                .map_err(|error| format!("cannot read the record back: {error}"))
        },
        out,
    )?;
    for warning in warnings {
        eprintln!("tracesift: not exported: {warning}");
    }
    Ok(())
}
