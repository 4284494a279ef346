//! `--requests FILE`: reads the request file (plain or gzip) into the core's prompts,
//! joins it to the scored run, and refuses an SFT export whose prompts would be empty.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;
use tracesift_core::dataset::ScoredSet;
use tracesift_core::export::{self, ExportOptions};
use tracesift_core::requests::{RequestJoin, Requests};

use crate::run::BadArguments;
use tracesift_io::RecordStore;

/// How many unusable request lines are printed before the rest are only counted.
const MAX_PROBLEMS_SHOWN: usize = 20;

/// What the CLI adds to a refusal: how to give the prompts, or to export without them.
pub const EMPTY_PROMPT_HELP: &str = "give the requests with --requests FILE (the OpenAI Batch \
     input JSONL, or the request bodies as JSONL, one per response or with the responses' ids), \
     or a `prompt` field in canonical input; --allow-empty-prompt (settings: \
     \"allow_empty_prompt\": true) writes the export anyway";

/// Reads a request file, streamed in chunks, and prints the lines it cannot use.
pub fn read(path: &Path) -> anyhow::Result<Requests> {
    if path.as_os_str() == "-" {
        return Err(
            BadArguments("--requests needs a file (stdin is for trace input)".to_owned()).into(),
        );
    }
    let name = path.display().to_string();
    let file =
        File::open(path).map_err(|error| BadArguments(format!("cannot open {name}: {error}")))?;
    let mut reader = BufReader::with_capacity(256 << 10, file);
    let is_gzip = reader
        .fill_buf()
        .map(|head| head.starts_with(&[0x1f, 0x8b]))
        .unwrap_or(false);
    let stream: Box<dyn Read> = if is_gzip {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let requests = Requests::from_reader(stream, 256 << 10)
        .map_err(|error| BadArguments(format!("cannot read {name}: {error}")))?;
    for problem in requests.problems().iter().take(MAX_PROBLEMS_SHOWN) {
        eprintln!(
            "tracesift: {name}:{}: no prompt: {}",
            problem.line, problem.reason
        );
    }
    if requests.problems().len() > MAX_PROBLEMS_SHOWN {
        eprintln!(
            "tracesift: … and {} more request lines without a prompt",
            requests.problems().len() - MAX_PROBLEMS_SHOWN
        );
    }
    for note in requests.notes() {
        let lines: Vec<String> = note.lines.iter().map(u64::to_string).collect();
        eprintln!(
            "tracesift: {name}: {} ({} requests; lines {})",
            note.what,
            note.requests,
            lines.join(", ")
        );
    }
    Ok(requests)
}

/// Joins the requests to the run and says how.
pub fn join(requests: Requests, set: &ScoredSet) -> RequestJoin {
    let join = RequestJoin::new(requests, set);
    eprintln!("tracesift: requests joined {}", join.describe());
    join
}

/// Before an SFT export is written: refuses it (exit 2) when a chosen trace has no prompt
/// and empty prompts were not allowed; otherwise says where the prompts came from.
pub fn check_prompts(
    set: &ScoredSet,
    chosen: &[bool],
    options: &ExportOptions,
    store: &mut RecordStore,
) -> anyhow::Result<()> {
    let counts = export::check_prompts(set, chosen, options, |record| {
        store
            .read(record)
            .map_err(|error| format!("cannot read the record back: {error}"))
    })
    .map_err(|refusal| BadArguments(format!("{refusal}; {EMPTY_PROMPT_HELP}")))?;
    if export::is_sft(options.format) {
        eprintln!(
            "tracesift: prompts: {} from the requests, {} from the responses, {} empty",
            counts.from_requests, counts.from_responses, counts.empty
        );
    }
    Ok(())
}
