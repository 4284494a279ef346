//! Command-line arguments, exactly the commands and flags of SPEC §10 (plus a few
//! documented extras: `--question-field`, `--sample-suffix`, `--unfiltered`,
//! `--system-prompt`, `--threads`, `--requests`, `--allow-empty-prompt`, `--semantic-part`,
//! `--model-dir`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tracesift",
    version,
    about = "Score LLM reasoning traces by uncertainty and keep the most confident per class"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write one JSON object of scores per trace, in input order.
    Score(ScoreArgs),
    /// Write the kept traces, in input order, in the export format.
    Filter(FilterArgs),
    /// Every metric's AUROC, PRR and selective accuracy on the labelled traces, the metrics
    /// ranked with bootstrap intervals, and how strongly they agree; one JSON object.
    Eval(EvalArgs),
}

/// Options every command shares (reading and scoring).
#[derive(Debug, Args)]
pub struct ScoreOptions {
    /// Trace files (`-` for stdin; `.gz` or any gzip stream is decompressed).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// auto|canonical|openai|openai-batch|completions|openai-responses|vllm|tgi|llamacpp|sglang|ollama
    #[arg(long)]
    pub format: Option<String>,
    /// Similarity for consistency: answer|rouge_l|embedding|semantic (semantic embeds each
    /// text with all-MiniLM-L6-v2, on every core)
    #[arg(long)]
    pub sim: Option<String>,
    /// The part of a long text `semantic` embeds: first|last (its first or last 254
    /// word-pieces; default first, as sentence-transformers does)
    #[arg(long, value_name = "PART")]
    pub semantic_part: Option<String>,
    /// The all-MiniLM-L6-v2 folder for `semantic` (model.safetensors, tokenizer.json,
    /// config.json; `cargo xtask model` fetches it); default $TRACESIFT_MODEL_DIR, else
    /// model/all-MiniLM-L6-v2 beside the program's folder
    #[arg(long, value_name = "DIR")]
    pub model_dir: Option<PathBuf>,
    /// Class map, e.g. `up=up,upregulated,a;down=down,b;none=none,c` (`!` at the end: strict).
    #[arg(long)]
    pub classes: Option<String>,
    /// Regex for the final answer in the text (first capture group, last match).
    #[arg(long)]
    pub answer_pattern: Option<String>,
    /// Dotted path of the question id field (e.g. `custom_id`, `metadata.qid`).
    #[arg(long)]
    pub question_field: Option<String>,
    /// Regex removed from question ids to group samples (e.g. `__s\d+$`).
    #[arg(long)]
    pub sample_suffix: Option<String>,
    /// auto|cpu|gpu
    #[arg(long)]
    pub backend: Option<String>,
    /// DeepConf's sliding window in tokens, for conf_tail, conf_bottom10, conf_lowest (default 2048).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub window: Option<u32>,
    /// Metrics whose percentile ranks `combo` averages, comma-separated (default cocoa_ppl,conf_mean).
    #[arg(long, value_name = "LIST")]
    pub combine: Option<String>,
    /// Threads that parse a plain JSONL file of 64 MiB or more (default: every core, for
    /// files of 256 MiB or more).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Settings JSON (the app's "Download settings"); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write the run report (lines, traces, skipped lines, classes, format) as JSON.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Output file (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub common: ScoreOptions,
}

/// The filter rule and scope (SPEC §6).
#[derive(Debug, Args)]
pub struct FilterRuleArgs {
    #[arg(long, value_name = "NAME", help = metric_help())]
    pub metric: Option<String>,
    /// Keep this fraction of each scope group (0 < Q ≤ 1), most trustworthy first.
    #[arg(long, value_name = "Q", group = "rule")]
    pub keep: Option<f64>,
    /// Keep traces whose metric is ≤ X (an uncertainty) or ≥ X (a confidence).
    #[arg(long, value_name = "X", group = "rule", allow_negative_numbers = true)]
    pub threshold: Option<f64>,
    /// Keep the first N of each scope group.
    #[arg(long, value_name = "N", group = "rule")]
    pub top: Option<u64>,
    /// per_class|global
    #[arg(long)]
    pub scope: Option<String>,
    /// all|greedy
    #[arg(long)]
    pub candidates: Option<String>,
    /// Cut every class to the smallest class's count.
    #[arg(long)]
    pub balanced: bool,
}

#[derive(Debug, Args)]
pub struct FilterArgs {
    #[command(flatten)]
    pub common: ScoreOptions,
    #[command(flatten)]
    pub rule: FilterRuleArgs,
    /// canonical|openai|trl|sharegpt|alpaca|csv|parquet (parquet: the canonical export's
    /// records and scores as a Parquet file)
    #[arg(long)]
    pub export: Option<String>,
    /// Also write a matched-size random sample (same pool, same format) to FILE.
    #[arg(long, value_name = "FILE")]
    pub random_baseline: Option<PathBuf>,
    /// Seed of the random baseline.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Also write every candidate trace, unfiltered, in the same format to FILE.
    #[arg(long, value_name = "FILE")]
    pub unfiltered: Option<PathBuf>,
    /// System message for openai / sharegpt / alpaca exports, where the prompt has none.
    #[arg(long)]
    pub system_prompt: Option<String>,
    /// The requests the responses answered (gzip ok): the OpenAI Batch input JSONL (joined
    /// by custom_id), or request bodies as JSONL (joined by id, else by position), so
    /// openai/trl/sharegpt/alpaca exports carry the real system and user messages.
    #[arg(long, value_name = "FILE")]
    pub requests: Option<PathBuf>,
    /// Write openai/trl/sharegpt/alpaca exports even when a kept trace has an empty prompt
    /// (refused by default).
    #[arg(long)]
    pub allow_empty_prompt: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub common: ScoreOptions,
    /// The rule used for the kept-vs-dropped accuracies (default: keep 0.1 per class).
    #[command(flatten)]
    pub rule: FilterRuleArgs,
    /// Bootstrap resamples of the labelled traces behind the ranking's intervals.
    #[arg(long, value_name = "N", default_value_t = tracesift_core::compare::DEFAULT_RESAMPLES)]
    pub resamples: u32,
    /// Seed of the bootstrap.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// `--metric`'s help: every name of the core's metric table, with its direction.
fn metric_help() -> String {
    let names: Vec<String> = tracesift_core::metrics::Metric::ALL
        .iter()
        .map(|metric| format!("{} {}", metric.name(), metric.direction().arrow()))
        .collect();
    format!(
        "Metric to rank by (↑u: lower is kept first, ↑c: higher is kept first): {}",
        names.join(", ")
    )
}
